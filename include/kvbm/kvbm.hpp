/// @file kvbm/kvbm.hpp
/// Umbrella header: everything in the core target kvbm::kvbm (no third-party dependency).
/// The optional parts have their own headers and targets:
///   <kvbm/tokens.hpp> (kvbm::tokens, xxHash), <kvbm/json.hpp> (kvbm::json, nlohmann_json),
///   <kvbm/zmq.hpp> (kvbm::zmq, cppzmq).
#pragma once

#include <kvbm/broadcast.hpp>
#include <kvbm/config.hpp>
#include <kvbm/events.hpp>
#include <kvbm/hash.hpp>
#include <kvbm/release.hpp>
#include <kvbm/index.hpp>
#include <kvbm/uint128.hpp>
#include <kvbm/policy.hpp>
#include <kvbm/registry.hpp>
#include <kvbm/batcher.hpp>
#include <kvbm/manager.hpp>
#include <kvbm/events_publisher.hpp>
