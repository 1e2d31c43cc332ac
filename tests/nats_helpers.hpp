// Test helpers for the NATS tests: a real server (nats_server.hpp) and encoded batches.
#pragma once

#include "index_helpers.hpp"
#include "nats_server.hpp"

#include <kvbm/msgpack.hpp>

#include <cstdint>
#include <vector>

namespace kvbm_test {

inline std::vector<std::uint8_t> encoded_batch(const Batch& b) { return kvbm::msgpack::encode(b); }

}  // namespace kvbm_test
