// Test helper for the ZeroMQ tests: loopback endpoints and encoded batches.
#pragma once

#include "index_helpers.hpp"

#include <kvbm/msgpack.hpp>

#include <unistd.h>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>

namespace kvbm_test {

using namespace std::chrono_literals;

/// A fresh ipc endpoint in the temp directory (unique per process and call).
inline std::string ipc_endpoint() {
    static std::atomic<int> counter{0};
    const auto path = std::filesystem::temp_directory_path() /
                      ("kvbm-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + ".sock");
    std::filesystem::remove(path);
    return "ipc://" + path.string();
}

inline std::vector<std::uint8_t> encoded(const Batch& b) { return kvbm::msgpack::encode(b); }

}  // namespace kvbm_test
