/// @file kvbm/nats_publisher.hpp
/// The worker's NATS transport (target kvbm::nats): `NatsPublisher`, satisfying the
/// Publisher concept, wire-compatible with the reference's `pubsub::nats::NatsPublisher`.
///
/// Wire (the reference's): each batch is one NATS message on `"{prefix}.{subject}"` (the
/// events publisher's subject, default "kvbm.events", so "ns1.kvbm.events" under prefix
/// "ns1"), whose payload is the MessagePack KvbmCacheEvents; no topic frame.
///
/// Resync: NATS keeps no message for a subscriber that is not there (core NATS). A worker's
/// view reaches a hub again through a resync (Shutdown for the instance, then its live
/// set), which the events publisher sends when `take_resync_request()` returns true:
/// - after this client reconnects to a server (a broker restart or a network cut may have
///   lost what was in flight, and a hub may have missed it);
/// - when a hub asks on `"{prefix}.kvbm.resync"` (any payload): a hub that starts empty, or
///   reconnects, or finds a gap in its JetStream replay, asks every worker at once. This
///   covers the order "worker reconnects, then hub resubscribes", where the worker's own
///   resync went nowhere. It is a kvbm extension: Rust workers ignore it.
#pragma once

#include <kvbm/config.hpp>
#include <kvbm/nats_connection.hpp>
#include <kvbm/publisher.hpp>

#include <nats/nats.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>

KVBM_NAMESPACE_BEGIN

/// Settings of a NatsPublisher.
struct NatsPublisherOptions {
    NatsConnectionOptions connection;
    /// Prepended to every subject as `"{prefix}.{subject}"`; empty: none (the reference's
    /// `NatsConfig::subject_prefix`).
    std::string subject_prefix;
    /// How long flush() waits for the server to confirm everything published before it.
    std::chrono::milliseconds flush_timeout{5000};
    /// Listen for hubs' resync requests on `"{prefix}.kvbm.resync"`.
    bool listen_for_resync_requests = true;
};

/// A worker's transport over NATS. Satisfies kvbm::Publisher and kvbm::ResyncSignalling.
///
/// `publish` hands the payload to nats.c, which copies it into its outgoing buffer and
/// returns; its flusher thread sends it. While the client is reconnecting, payloads go to
/// the reconnect buffer (`connection.reconnect_buffer_bytes`) and are sent once it is back;
/// when that is full, or the connection is closed, publish fails and counts a drop.
/// `flush` is the client's flush: success means the server has received everything
/// published before it (a PING/PONG round trip), failure that it could not say within
/// `flush_timeout` (not connected, or too slow).
///
/// Thread-safety: publish, flush and take_resync_request are called by one thread at a time
/// (the events publisher's worker); the counters may be read from any thread. Movable, not
/// copyable. Destruction closes the connection, discarding what the client has not sent:
/// call flush() first to know.
class NatsPublisher {
public:
    /// Connects (blocking, up to `connection.connect_timeout` per server). Throws NatsError
    /// when no server can be reached (unless `connection.retry_on_failed_connect`) and
    /// std::invalid_argument for contradictory options.
    explicit NatsPublisher(NatsPublisherOptions options = {}) : m_state(std::make_unique<State>(std::move(options))) {}

    NatsPublisher(NatsPublisher&&) noexcept = default;
    NatsPublisher& operator=(NatsPublisher&&) noexcept = default;

    /// Publishes `bytes` on `"{prefix}.{subject}"`. Never throws.
    PublishResult publish(std::string_view subject, std::span<const std::uint8_t> bytes) noexcept {
        State& s = *m_state;
        try {
            if (subject != s.last_subject || s.wire_subject.empty()) {
                s.last_subject.assign(subject);
                s.wire_subject = nats_subject(s.options.subject_prefix, subject);
            }
        } catch (...) {
            s.failed.fetch_add(1, std::memory_order_relaxed);
            return PublishResult::failure("kvbm::NatsPublisher: out of memory");
        }
        const natsStatus st = natsConnection_Publish(s.connection.get(), s.wire_subject.c_str(), bytes.data(),
                                                     static_cast<int>(bytes.size()));
        if (st != NATS_OK) {
            s.failed.fetch_add(1, std::memory_order_relaxed);
            try {
                return PublishResult::failure(
                    detail::nats_describe("kvbm::NatsPublisher: publish on " + s.wire_subject + " failed", st));
            } catch (...) {
                return PublishResult::failure({});
            }
        }
        s.published.fetch_add(1, std::memory_order_relaxed);
        s.bytes.fetch_add(bytes.size(), std::memory_order_relaxed);
        return PublishResult::success();
    }

    /// Waits up to `flush_timeout` for the server to confirm everything published so far.
    /// Never throws.
    PublishResult flush() noexcept {
        State& s = *m_state;
        const natsStatus st =
            natsConnection_FlushTimeout(s.connection.get(), static_cast<int64_t>(s.options.flush_timeout.count()));
        if (st == NATS_OK) {
            return PublishResult::success();
        }
        s.flush_failures.fetch_add(1, std::memory_order_relaxed);
        try {
            return PublishResult::failure(detail::nats_describe(
                "kvbm::NatsPublisher: flush (" + std::to_string(s.options.flush_timeout.count()) + " ms)", st));
        } catch (...) {
            return PublishResult::failure({});
        }
    }

    /// True once after each reconnection of this client and once per batch of hub resync
    /// requests received since the last call (see the file brief).
    [[nodiscard]] bool take_resync_request() noexcept {
        State& s = *m_state;
        bool requested = s.reconnect_watch.reconnected_since_last(s.connection.get());
        if (s.resync_sub) {
            // Drain every pending request: one resync answers them all.
            for (;;) {
                natsMsg* raw = nullptr;
                if (natsSubscription_NextMsg(&raw, s.resync_sub.get(), 0) != NATS_OK || raw == nullptr) {
                    break;
                }
                natsMsg_Destroy(raw);
                s.resync_requests.fetch_add(1, std::memory_order_relaxed);
                requested = true;
            }
        }
        if (requested) {
            s.resyncs_signalled.fetch_add(1, std::memory_order_relaxed);
        }
        return requested;
    }

    /// Waits until the hub-request subscription is registered with the server, so that a
    /// hub's request sent afterwards reaches this publisher; false on timeout.
    [[nodiscard]] bool wait_connected(std::chrono::milliseconds timeout) noexcept {
        return natsConnection_FlushTimeout(m_state->connection.get(), static_cast<int64_t>(timeout.count())) == NATS_OK;
    }

    /// Whether the client is connected right now (not reconnecting, not closed).
    [[nodiscard]] bool connected() const noexcept {
        return natsConnection_Status(m_state->connection.get()) == NATS_CONN_STATUS_CONNECTED;
    }

    /// The client's reconnections so far.
    [[nodiscard]] std::uint64_t reconnects() const noexcept {
        return detail::nats_reconnects(m_state->connection.get());
    }

    /// Batches handed to the client.
    [[nodiscard]] std::uint64_t published() const noexcept {
        return m_state->published.load(std::memory_order_relaxed);
    }
    /// Payload bytes of those batches.
    [[nodiscard]] std::uint64_t bytes() const noexcept { return m_state->bytes.load(std::memory_order_relaxed); }
    /// Batches the client refused (reconnect buffer full, connection closed, too large).
    [[nodiscard]] std::uint64_t dropped() const noexcept { return m_state->failed.load(std::memory_order_relaxed); }
    /// Flushes that failed.
    [[nodiscard]] std::uint64_t flush_failures() const noexcept {
        return m_state->flush_failures.load(std::memory_order_relaxed);
    }
    /// Resync requests received from hubs.
    [[nodiscard]] std::uint64_t resync_requests() const noexcept {
        return m_state->resync_requests.load(std::memory_order_relaxed);
    }
    /// Times take_resync_request() returned true.
    [[nodiscard]] std::uint64_t resyncs_signalled() const noexcept {
        return m_state->resyncs_signalled.load(std::memory_order_relaxed);
    }

    /// The events subject on the wire for the reference's default subject.
    [[nodiscard]] std::string events_subject() const {
        return nats_subject(m_state->options.subject_prefix, nats_events_subject);
    }

    /// The nats.c connection, for what kvbm does not wrap (same thread rules).
    [[nodiscard]] natsConnection* connection() const noexcept { return m_state->connection.get(); }

private:
    // On the heap so that the publisher can move while nats.c holds the connection.
    struct State {
        explicit State(NatsPublisherOptions o)
            : options(std::move(o)), connection(detail::nats_connect(options.connection)) {
            if (options.listen_for_resync_requests) {
                const std::string subject = nats_subject(options.subject_prefix, nats_resync_subject);
                natsSubscription* raw = nullptr;
                detail::nats_check(natsConnection_SubscribeSync(&raw, connection.get(), subject.c_str()),
                                   "kvbm::NatsPublisher: subscribe to " + subject);
                resync_sub.reset(raw);
            }
        }
        ~State() {
            resync_sub.reset();  // before the connection it belongs to
        }
        State(const State&) = delete;
        State& operator=(const State&) = delete;

        NatsPublisherOptions options;
        detail::nats_connection_ptr connection;
        detail::nats_subscription_ptr resync_sub;
        detail::NatsReconnectWatch reconnect_watch;
        std::string last_subject;
        std::string wire_subject;
        std::atomic<std::uint64_t> published{0};
        std::atomic<std::uint64_t> bytes{0};
        std::atomic<std::uint64_t> failed{0};
        std::atomic<std::uint64_t> flush_failures{0};
        std::atomic<std::uint64_t> resync_requests{0};
        std::atomic<std::uint64_t> resyncs_signalled{0};
    };

    std::unique_ptr<State> m_state;
};

static_assert(Publisher<NatsPublisher>);
static_assert(ResyncSignalling<NatsPublisher>);

KVBM_NAMESPACE_END
