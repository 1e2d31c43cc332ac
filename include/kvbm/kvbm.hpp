/// @file kvbm/kvbm.hpp
/// Umbrella header: everything in the core target kvbm::kvbm (no third-party dependency).
/// The optional parts have their own headers and targets:
///   <kvbm/tokens.hpp> (kvbm::tokens, xxHash), <kvbm/json.hpp> (kvbm::json, nlohmann_json),
///   <kvbm/zmq.hpp> (kvbm::zmq, cppzmq).
#pragma once

#include <kvbm/config.hpp>
#include <kvbm/decode_result.hpp>
#include <kvbm/events.hpp>
#include <kvbm/hash.hpp>
#include <kvbm/msgpack.hpp>
#include <kvbm/uint128.hpp>
