/// @file kvbm/publisher.hpp
/// The transport seam: what the events publisher hands encoded batches to (Rust:
/// `publish(subject, bytes)` and `flush()`). kvbm::zmq provides one; tests and users
/// plug in their own (NATS, a file, a discard sink).
#pragma once

#include <kvbm/config.hpp>

#include <concepts>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>

KVBM_NAMESPACE_BEGIN

/// The outcome of a publish or flush: success, or a failure with a reason. Failures are
/// counted and logged by the events publisher, never fatal (as in the reference).
class [[nodiscard]] PublishResult {
public:
    [[nodiscard]] static PublishResult success() { return PublishResult{}; }
    [[nodiscard]] static PublishResult failure(std::string reason) {
        PublishResult r;
        r.m_failed = true;
        r.m_error = std::move(reason);
        return r;
    }
    [[nodiscard]] bool ok() const noexcept { return !m_failed; }
    explicit operator bool() const noexcept { return ok(); }
    /// Empty on success.
    [[nodiscard]] const std::string& error() const noexcept { return m_error; }

private:
    bool m_failed = false;
    std::string m_error;
};

/// A transport for encoded batches. `publish` may be called from one thread at a time
/// (the events publisher's worker); `bytes` is only valid during the call.
template <class P>
concept Publisher = requires(P& p, std::string_view subject, std::span<const std::uint8_t> bytes) {
    { p.publish(subject, bytes) } -> std::same_as<PublishResult>;
    { p.flush() } -> std::same_as<PublishResult>;
};

/// Optional for a `Publisher`: a transport that can see a hub (re)connect (a new ZeroMQ
/// subscriber, a NATS reconnect) provides `take_resync_request()`, which returns true once
/// per such event. The events publisher polls it and answers with a resync (Shutdown for the
/// instance, then the live set), since a new hub cannot know what was registered before.
template <class P>
concept ResyncSignalling = requires(P& p) {
    { p.take_resync_request() } -> std::same_as<bool>;
};

KVBM_NAMESPACE_END
