/// @file kvbm/zmq_publisher.hpp
/// The worker's side of the ZeroMQ transport (target kvbm::zmq, needs cppzmq):
/// `ZmqPublisher`, satisfying the Publisher and ResyncSignalling concepts. It does not
/// include the hub's index or ingest (see <kvbm/zmq_hub.hpp> for the hub side).
///
/// Wire (Dynamo's): the worker's socket connects to the hub, which binds a SUB socket
/// subscribed to everything. A message is two frames: the topic `"kvbm.kv_index"`, then
/// one MessagePack-encoded KvbmCacheEvents.
///
/// Loss is never silent. ZeroMQ's PUB socket discards quietly in two cases: nobody is
/// subscribed yet (the "slow joiner": a fresh connection's subscription arrives a little
/// after connect) and a full send queue. ZmqPublisher therefore uses XPUB, the PUB socket
/// that shows subscriptions (the hub's SUB cannot tell them apart on the wire), with
/// ZMQ_XPUB_NODROP: it knows when a hub is subscribed, `wait_connected` can wait for that,
/// and both cases are counted as drops and reported as failed publishes. A hub that falls
/// behind pushes back over TCP until the worker's queue fills, so loss shows up on the
/// worker's counters, not silently in between.
///
/// A hub that (re)connects cannot know what was registered before: with ZMQ_XPUB_VERBOSER
/// every subscription message reaches the publisher, one per connecting hub and one per
/// reconnection, and each sets the resync request that `take_resync_request` hands to the
/// events publisher (which then sends Shutdown + the live set).
#pragma once

#include <kvbm/config.hpp>
#include <kvbm/metrics.hpp>
#include <kvbm/publisher.hpp>
#include <kvbm/topics.hpp>

#include <zmq.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>

KVBM_NAMESPACE_BEGIN

/// Settings of a ZmqPublisher.
struct ZmqPublisherOptions {
    /// Topic frame sent before each payload.
    std::string topic{kv_index_topic};
    /// Messages ZeroMQ may queue towards the hub before publishes fail (the Rust worker
    /// side queues 1024 batches).
    int send_hwm = 1024;
    /// How long publish waits for room when the queue is full before dropping the batch:
    /// 0 drops at once (the Rust worker's behaviour), -1 waits as long as it takes
    /// (back-pressure instead of loss).
    std::chrono::milliseconds send_timeout{0};
    /// How long destruction waits for queued messages to reach the hub (ZMQ_LINGER).
    std::chrono::milliseconds linger{2000};
    /// ZMQ_SNDBUF of the connection in bytes (0: the system's default, which on Linux grows
    /// to a few MB): how much may sit in the kernel beyond the queue flush waits for.
    int send_buffer_bytes = 0;
    /// How long flush() waits for the send queue to drain before reporting failure.
    std::chrono::milliseconds flush_timeout{2000};
    /// ZeroMQ CURVE (encryption and authentication; kvbm-hub --curve-secret-key): the
    /// hub's public key and this worker's key pair, Z85 text of 40 characters each (as
    /// zmq_curve_keypair makes them). All empty: plain TCP. The hub admits only listed keys.
    std::string curve_server_key;
    std::string curve_public_key;
    std::string curve_secret_key;
};

/// A worker's transport: connects to a hub and sends each published batch as the two
/// frames (topic, payload). Satisfies kvbm::Publisher and kvbm::ResyncSignalling.
///
/// The `subject` argument of publish (a NATS subject in the reference, default
/// "kvbm.events") is not sent: the topic frame is `options.topic`, which is what the hub
/// routes on, so the wire stays exactly two frames.
///
/// Connection loss: ZeroMQ keeps the queue of a connecting socket across reconnects, so
/// batches queued while the hub restarts are delivered to it once it is back (and count as
/// drops once the queue is full). A hub that never subscribed receives nothing: publishes
/// fail until it does. Every (re)subscription raises a resync request.
///
/// Thread-safety: publish, flush, wait_connected, subscribed and take_resync_request are
/// called by one thread at a time (ZeroMQ sockets are single-threaded; the events
/// publisher's worker is that thread); the counters and for_each_metric may be called from
/// any thread. Destruction waits up to `options.linger` for queued messages, then discards
/// them.
class ZmqPublisher {
public:
    /// Connects to `endpoint` (e.g. "tcp://127.0.0.1:5557", "ipc:///run/kvbm.sock") with a
    /// ZeroMQ context of its own. Connecting is asynchronous: see wait_connected. Throws
    /// zmq::error_t for a malformed endpoint or CURVE key.
    explicit ZmqPublisher(const std::string& endpoint, ZmqPublisherOptions options = {})
        : m_own_context(std::make_unique<zmq::context_t>(1)),
          m_options(std::move(options)),
          m_socket(*m_own_context, zmq::socket_type::xpub),
          m_endpoint(endpoint) {
        setup();
    }

    /// The same on a caller's context, which must outlive this publisher (share one context
    /// between many publishers in a process).
    ZmqPublisher(zmq::context_t& context, const std::string& endpoint, ZmqPublisherOptions options = {})
        : m_options(std::move(options)), m_socket(context, zmq::socket_type::xpub), m_endpoint(endpoint) {
        setup();
    }

    ZmqPublisher(const ZmqPublisher&) = delete;
    ZmqPublisher& operator=(const ZmqPublisher&) = delete;

    /// Sends one encoded batch. Fails, counting a drop, when no hub is subscribed or the
    /// send queue stays full for `options.send_timeout`; the batch is then lost (the caller
    /// may retry). `bytes` is copied before returning. Never throws.
    PublishResult publish(std::string_view /*subject*/, std::span<const std::uint8_t> bytes) noexcept {
        try {
            poll_subscriptions(0);
            if (!m_subscribed && m_reopened) {
                // The first publish after a draining flush: the fresh connection's
                // subscription is a round trip away; wait for it (bounded) instead of failing.
                (void)wait_connected(m_options.flush_timeout);
            }
            if (!m_subscribed) {
                m_dropped_no_subscriber.fetch_add(1, std::memory_order_relaxed);
                return PublishResult::failure("kvbm::ZmqPublisher: no hub subscribed, batch dropped");
            }
            const auto sent = m_socket.send(zmq::const_buffer(m_options.topic.data(), m_options.topic.size()),
                                            zmq::send_flags::sndmore);
            if (!sent) {
                m_dropped_queue_full.fetch_add(1, std::memory_order_relaxed);
                return PublishResult::failure("kvbm::ZmqPublisher: send queue full (" +
                                              std::to_string(m_options.send_hwm) + " messages), batch dropped");
            }
            // Once the first frame is accepted the last one is too: ZeroMQ counts the queue
            // limit in whole messages, so a message is never split by a full queue.
            if (!m_socket.send(zmq::const_buffer(bytes.data(), bytes.size()), zmq::send_flags::none)) {
                m_failed.fetch_add(1, std::memory_order_relaxed);  // unreachable per the above
                return PublishResult::failure("kvbm::ZmqPublisher: payload frame refused");
            }
            m_published.fetch_add(1, std::memory_order_relaxed);
            m_bytes.fetch_add(bytes.size(), std::memory_order_relaxed);
            ++m_published_since_flush;
            return PublishResult::success();
        } catch (const std::exception& e) {
            m_failed.fetch_add(1, std::memory_order_relaxed);
            return PublishResult::failure(std::string("kvbm::ZmqPublisher: ") + e.what());
        }
    }

    /// Waits, at most `options.flush_timeout`, until every batch accepted so far has left
    /// the process (written to the hub's connection), and says whether it did. Never throws.
    ///
    /// How: ZeroMQ has no "queue empty" query; the one exact signal it gives is the
    /// termination of a context, which returns once every queued message has been written
    /// to its connection or the sockets' linger ran out (the rest is then discarded). So,
    /// when something was published since the last flush, flush closes the socket with
    /// ZMQ_LINGER = the time left, terminates the publisher's own context, and succeeds if
    /// that returned before the deadline; then it opens a fresh context and socket to the
    /// same endpoint without waiting (the next publish waits, up to flush_timeout, for the
    /// hub's subscription on it, so a flush at stop costs only the drain). A drained
    /// reconnection raises no resync request (the hub lost nothing); a failed drain raises
    /// one (it may have lost the tail).
    ///
    /// Guarantee on success: every accepted batch was handed to the kernel's connection to
    /// the hub (a hub that stopped reading with the kernel buffers full may still miss the
    /// last few KB, which ZeroMQ cannot report). Nothing published: success iff a hub is
    /// subscribed. On a caller's (shared) context the context cannot be terminated, so a
    /// flush with batches pending reports failure ("cannot confirm").
    PublishResult flush() noexcept {
        try {
            poll_subscriptions(0);
            if (!m_subscribed && m_reopened) {
                (void)wait_connected(m_options.flush_timeout);  // as publish does
            }
            if (m_published_since_flush == 0) {
                return m_subscribed ? PublishResult::success()
                                    : PublishResult::failure("kvbm::ZmqPublisher: no hub subscribed");
            }
            if (!m_own_context) {
                return PublishResult::failure(
                    "kvbm::ZmqPublisher: cannot confirm delivery on a shared ZeroMQ context (flush needs its own)");
            }
            return drain_and_reopen();
        } catch (const std::exception& e) {
            return PublishResult::failure(std::string("kvbm::ZmqPublisher: ") + e.what());
        }
    }

    /// True once after each hub (re)subscription seen since the last call: a new hub, or
    /// one that restarted, cannot know what this worker registered before, so the caller
    /// resyncs (the events publisher polls this on every turn of its loop, idle or not).
    /// Reads the subscription messages waiting on the socket first (without blocking), so
    /// a hub that restarts while the worker is idle is noticed without a publish: call it
    /// from the publishing thread, like publish and flush.
    [[nodiscard]] bool take_resync_request() noexcept {
        try {
            poll_subscriptions(0);
        } catch (...) {
            // A socket error here shows up again on the next publish, which reports it.
        }
        return m_resync_requested.exchange(false, std::memory_order_acq_rel);
    }

    /// Waits until a hub's subscription has arrived, so that what is published next is
    /// delivered (ZeroMQ's slow-joiner gap); returns false on timeout.
    [[nodiscard]] bool wait_connected(std::chrono::milliseconds timeout) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        poll_subscriptions(0);
        while (!m_subscribed) {
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) {
                return false;
            }
            poll_subscriptions(left.count());
        }
        return true;
    }

    /// Whether a hub is subscribed to this publisher's topic right now.
    [[nodiscard]] bool subscribed() {
        poll_subscriptions(0);
        return m_subscribed;
    }

    /// Batches handed to ZeroMQ.
    [[nodiscard]] std::uint64_t published() const noexcept { return m_published.load(std::memory_order_relaxed); }
    /// Payload bytes of those batches.
    [[nodiscard]] std::uint64_t bytes() const noexcept { return m_bytes.load(std::memory_order_relaxed); }
    /// Batches dropped because the send queue was full.
    [[nodiscard]] std::uint64_t dropped_queue_full() const noexcept {
        return m_dropped_queue_full.load(std::memory_order_relaxed);
    }
    /// Batches dropped because no hub was subscribed.
    [[nodiscard]] std::uint64_t dropped_no_subscriber() const noexcept {
        return m_dropped_no_subscriber.load(std::memory_order_relaxed);
    }
    /// Batches ZeroMQ refused with an error (e.g. the context was terminated).
    [[nodiscard]] std::uint64_t failed() const noexcept { return m_failed.load(std::memory_order_relaxed); }
    /// Every batch publish did not send: dropped_queue_full + dropped_no_subscriber + failed.
    [[nodiscard]] std::uint64_t dropped() const noexcept {
        return dropped_queue_full() + dropped_no_subscriber() + failed();
    }
    /// Hub subscriptions seen (the first connection and every reconnection).
    [[nodiscard]] std::uint64_t subscriptions() const noexcept {
        return m_subscriptions.load(std::memory_order_relaxed);
    }

    /// Flushes that had something to drain, and those of them that ran out of time.
    [[nodiscard]] std::uint64_t flushes() const noexcept { return m_flushes.load(std::memory_order_relaxed); }
    [[nodiscard]] std::uint64_t flush_failures() const noexcept {
        return m_flush_failures.load(std::memory_order_relaxed);
    }

    /// The metrics (see <kvbm/metrics.hpp>): `kvbm_zmq_publisher_batches_total`,
    /// `kvbm_zmq_publisher_bytes_total`, `kvbm_zmq_publisher_dropped_total{reason=...}`
    /// (queue_full, no_subscriber, error), `kvbm_zmq_publisher_subscriptions_total` and the
    /// gauge `kvbm_zmq_publisher_subscribed` (as of the last publish/flush),
    /// `kvbm_zmq_publisher_flushes_total{result="drained"|"timed_out"}`.
    template <class Visitor>
    void for_each_metric(Visitor&& visit) const {
        using detail::visit_metric;
        const auto value = [](const std::atomic<std::uint64_t>& a) {
            return static_cast<double>(a.load(std::memory_order_relaxed));
        };
        visit_metric(visit, "kvbm_zmq_publisher_batches_total", "Batches handed to ZeroMQ.", MetricKind::counter,
                     value(m_published));
        visit_metric(visit, "kvbm_zmq_publisher_bytes_total", "Payload bytes of the batches handed to ZeroMQ.",
                     MetricKind::counter, value(m_bytes));
        constexpr std::string_view dropped_help = "Batches the ZeroMQ publisher could not send, by reason.";
        visit_metric(visit, "kvbm_zmq_publisher_dropped_total", dropped_help, MetricKind::counter,
                     {{"reason", "queue_full"}}, value(m_dropped_queue_full));
        visit_metric(visit, "kvbm_zmq_publisher_dropped_total", dropped_help, MetricKind::counter,
                     {{"reason", "no_subscriber"}}, value(m_dropped_no_subscriber));
        visit_metric(visit, "kvbm_zmq_publisher_dropped_total", dropped_help, MetricKind::counter,
                     {{"reason", "error"}}, value(m_failed));
        visit_metric(visit, "kvbm_zmq_publisher_subscriptions_total",
                     "Hub subscriptions seen (first connection and every reconnection).", MetricKind::counter,
                     value(m_subscriptions));
        visit_metric(visit, "kvbm_zmq_publisher_subscribed", "1 while a hub is subscribed, else 0.", MetricKind::gauge,
                     m_subscribed_seen.load(std::memory_order_relaxed) ? 1.0 : 0.0);
    }

    /// The underlying socket, for options kvbm does not wrap (same thread rules). A flush
    /// that drained replaces it with a fresh one (options set here must be set again).
    [[nodiscard]] zmq::socket_t& socket() noexcept { return m_socket; }

private:
    void setup() {
        m_socket.set(zmq::sockopt::sndhwm, m_options.send_hwm);
        m_socket.set(zmq::sockopt::xpub_nodrop, 1);  // full queue: EAGAIN, not a silent drop
        // Every subscription and unsubscription reaches us, one per hub connection, not
        // only the first/last per prefix: a reconnecting hub is seen (resync), and the
        // per-prefix counts below stay exact.
        m_socket.set(zmq::sockopt::xpub_verboser, 1);
        m_socket.set(zmq::sockopt::sndtimeo, static_cast<int>(m_options.send_timeout.count()));
        m_socket.set(zmq::sockopt::linger, static_cast<int>(m_options.linger.count()));
        if (!m_options.curve_server_key.empty() || !m_options.curve_public_key.empty() ||
            !m_options.curve_secret_key.empty()) {
            // Throws zmq::error_t (EINVAL) for a key that is not 40 characters of Z85.
            m_socket.set(zmq::sockopt::curve_serverkey, m_options.curve_server_key);
            m_socket.set(zmq::sockopt::curve_publickey, m_options.curve_public_key);
            m_socket.set(zmq::sockopt::curve_secretkey, m_options.curve_secret_key);
        }
        if (m_options.send_buffer_bytes > 0) {
            m_socket.set(zmq::sockopt::sndbuf, m_options.send_buffer_bytes);
        }
        m_socket.connect(m_endpoint);
    }

    /// flush's drain: close with linger, terminate the context, reopen (see flush).
    PublishResult drain_and_reopen() {
        using clock = std::chrono::steady_clock;
        const auto deadline = clock::now() + m_options.flush_timeout;
        m_socket.set(zmq::sockopt::linger, static_cast<int>(m_options.flush_timeout.count()));
        m_socket.close();
        m_own_context->close();  // zmq_ctx_term: returns once drained or when the linger ran out
        const bool drained = clock::now() < deadline;
        m_flushes.fetch_add(1, std::memory_order_relaxed);
        if (!drained) {
            m_flush_failures.fetch_add(1, std::memory_order_relaxed);
            m_resync_requested.store(true, std::memory_order_release);  // the hub may have lost the tail
        }
        m_published_since_flush = 0;
        m_prefixes.clear();
        m_subscribed = false;
        m_subscribed_seen.store(false, std::memory_order_relaxed);
        m_own_context = std::make_unique<zmq::context_t>(1);
        m_socket = zmq::socket_t(*m_own_context, zmq::socket_type::xpub);
        m_suppress_resync = drained;  // our own reconnection: the hub lost nothing
        m_reopened = true;            // the next publish waits for the subscription
        setup();
        if (!drained) {
            return PublishResult::failure("kvbm::ZmqPublisher: send queue not drained within " +
                                          std::to_string(m_options.flush_timeout.count()) +
                                          " ms; the rest was discarded");
        }
        return PublishResult::success();
    }

    /// Reads pending (un)subscription messages, waiting up to `timeout_ms` for the first.
    /// With XPUB_VERBOSER each connected hub's subscription arrives as "\x01prefix" and its
    /// loss (unsubscribe or disconnect) as "\x00prefix", so a count per prefix says whether
    /// some hub still listens.
    void poll_subscriptions(long timeout_ms) {
        zmq::pollitem_t item{m_socket.handle(), 0, ZMQ_POLLIN, 0};
        if (zmq::poll(&item, 1, std::chrono::milliseconds(timeout_ms)) == 0) {
            return;
        }
        const std::string_view topic = m_options.topic;
        zmq::message_t msg;
        while (m_socket.recv(msg, zmq::recv_flags::dontwait)) {
            const auto* data = static_cast<const char*>(msg.data());
            if (msg.size() == 0 || (data[0] != 0 && data[0] != 1)) {
                continue;  // not a subscription message
            }
            std::string prefix(data + 1, msg.size() - 1);
            const bool ours = topic.starts_with(prefix);
            if (data[0] == 1) {
                ++m_prefixes[std::move(prefix)];
                if (ours) {
                    m_subscriptions.fetch_add(1, std::memory_order_relaxed);
                    if (m_suppress_resync) {
                        m_suppress_resync = false;
                    } else {
                        m_resync_requested.store(true, std::memory_order_release);
                    }
                }
            } else if (const auto it = m_prefixes.find(prefix); it != m_prefixes.end() && --it->second == 0) {
                m_prefixes.erase(it);
            }
        }
        m_subscribed = false;
        for (const auto& [prefix, count] : m_prefixes) {
            m_subscribed = m_subscribed || topic.starts_with(prefix);
        }
        m_subscribed_seen.store(m_subscribed, std::memory_order_relaxed);
        m_reopened = m_reopened && !m_subscribed;
    }

    std::unique_ptr<zmq::context_t> m_own_context;  // declared first: outlives the socket
    ZmqPublisherOptions m_options;
    zmq::socket_t m_socket;
    std::string m_endpoint;
    std::map<std::string, std::size_t> m_prefixes;  // topic prefix -> hub connections subscribed to it
    bool m_subscribed = false;
    bool m_suppress_resync = false;  // the next subscription is flush's own reconnection
    bool m_reopened = false;         // flush reopened the socket; no subscription on it yet
    std::uint64_t m_published_since_flush = 0;
    std::atomic<bool> m_subscribed_seen{false};  // m_subscribed, for other threads (metrics)
    std::atomic<bool> m_resync_requested{false};
    std::atomic<std::uint64_t> m_published{0};
    std::atomic<std::uint64_t> m_bytes{0};
    std::atomic<std::uint64_t> m_dropped_queue_full{0};
    std::atomic<std::uint64_t> m_dropped_no_subscriber{0};
    std::atomic<std::uint64_t> m_failed{0};
    std::atomic<std::uint64_t> m_subscriptions{0};
    std::atomic<std::uint64_t> m_flushes{0};
    std::atomic<std::uint64_t> m_flush_failures{0};
};

static_assert(Publisher<ZmqPublisher>);
static_assert(ResyncSignalling<ZmqPublisher>);
static_assert(MetricSource<ZmqPublisher>);

KVBM_NAMESPACE_END
