/// @file kvbm/kvbm.hpp
/// Umbrella header: everything in the core target kvbm::kvbm (no third-party dependency).
/// The optional parts have their own headers and targets:
///   <kvbm/tokens.hpp> (kvbm::tokens, xxHash), <kvbm/json.hpp> (kvbm::json: nlohmann DOM adapters),
///   <kvbm/zmq.hpp> (kvbm::zmq, cppzmq: <kvbm/zmq_publisher.hpp> for a worker,
///   <kvbm/zmq_hub.hpp> for a hub), <kvbm/hub_client.hpp> (kvbm::hub, cpp-httplib + cppzmq:
///   a worker joining a kvbm-hub; <kvbm/hub_lease.hpp> for its lease alone, whatever the
///   transport), <kvbm/nats_publisher.hpp> and <kvbm/nats_hub.hpp>
///   (kvbm::nats, nats.c).
#pragma once

#include <kvbm/batcher.hpp>
#include <kvbm/broadcast.hpp>
#include <kvbm/config.hpp>
#include <kvbm/decode_result.hpp>
#include <kvbm/events.hpp>
#include <kvbm/events_publisher.hpp>
#include <kvbm/hash.hpp>
#include <kvbm/hub_ingest.hpp>
#include <kvbm/index.hpp>
#include <kvbm/index_snapshot.hpp>
#include <kvbm/json_text.hpp>
#include <kvbm/manager.hpp>
#include <kvbm/metrics.hpp>
#include <kvbm/msgpack.hpp>
#include <kvbm/policy.hpp>
#include <kvbm/prometheus.hpp>
#include <kvbm/publisher.hpp>
#include <kvbm/registry.hpp>
#include <kvbm/release.hpp>
#include <kvbm/topics.hpp>
#include <kvbm/uint128.hpp>
