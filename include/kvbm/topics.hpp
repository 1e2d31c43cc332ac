/// @file kvbm/topics.hpp
/// The names on the wire that both sides of a transport agree on, in one place so a
/// worker-side header (the ZeroMQ publisher) and the hub side (HubIngest) share them
/// without including each other.
#pragma once

#include <kvbm/config.hpp>

#include <string_view>

KVBM_NAMESPACE_BEGIN

/// The topic frame of every index message over ZeroMQ (Dynamo's `kvbm.kv_index`).
inline constexpr std::string_view kv_index_topic = "kvbm.kv_index";

/// The subject the reference publishes batches under (kvbm-logical's `kvbm.events`; a NATS
/// transport prefixes it as `"{prefix}.kvbm.events"`).
inline constexpr std::string_view kv_events_subject = "kvbm.events";

KVBM_NAMESPACE_END
