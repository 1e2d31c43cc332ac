/// @file kvbm/zmq.hpp
/// The ZeroMQ transport (target kvbm::zmq, needs cppzmq): `ZmqPublisher`, a worker's side,
/// satisfying the Publisher concept, and `ZmqHub`, the hub's ingest loop feeding a
/// PositionalIndex (or any sink).
///
/// Wire (Dynamo's): the worker's socket connects to the hub, which binds a SUB socket
/// subscribed to everything. A message is two frames: the topic `"kvbm.kv_index"`, then
/// one MessagePack-encoded KvbmCacheEvents. The hub treats a one-frame message as that
/// topic.
///
/// Loss is never silent. ZeroMQ's PUB socket discards quietly in two cases: nobody is
/// subscribed yet (the "slow joiner": a fresh connection's subscription arrives a little
/// after connect) and a full send queue. ZmqPublisher therefore uses XPUB, the PUB socket
/// that shows subscriptions (the hub's SUB cannot tell them apart on the wire), with
/// ZMQ_XPUB_NODROP: it knows when a hub is subscribed, `wait_connected` can wait for that,
/// and both cases are counted as drops and reported as failed publishes. A hub that falls
/// behind pushes back over TCP until the worker's queue fills, so loss shows up on the
/// worker's counters, not silently in between.
#pragma once

#include <kvbm/config.hpp>
#include <kvbm/events.hpp>
#include <kvbm/index.hpp>
#include <kvbm/msgpack.hpp>
#include <kvbm/publisher.hpp>

#include <zmq.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

KVBM_NAMESPACE_BEGIN

/// The topic frame of every index message (Dynamo's `kvbm.kv_index`).
inline constexpr std::string_view kv_index_topic = "kvbm.kv_index";

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
};

/// A worker's transport: connects to a hub and sends each published batch as the two
/// frames (topic, payload). Satisfies kvbm::Publisher.
///
/// The `subject` argument of publish (a NATS subject in the reference, default
/// "kvbm.events") is not sent: the topic frame is `options.topic`, which is what the hub
/// routes on, so the wire stays exactly two frames.
///
/// Connection loss: ZeroMQ keeps the queue of a connecting socket across reconnects, so
/// batches queued while the hub restarts are delivered to it once it is back (and count as
/// drops once the queue is full). A hub that never subscribed receives nothing: publishes
/// fail until it does.
///
/// Thread-safety: publish, flush, wait_connected and subscribed are called by one thread
/// at a time (ZeroMQ sockets are single-threaded; the events publisher's worker is that
/// thread); the counters may be read from any thread. Destruction waits up to
/// `options.linger` for queued messages, then discards them.
class ZmqPublisher {
public:
    /// Connects to `endpoint` (e.g. "tcp://127.0.0.1:5557", "ipc:///run/kvbm.sock") with a
    /// ZeroMQ context of its own. Connecting is asynchronous: see wait_connected. Throws
    /// zmq::error_t for a malformed endpoint.
    explicit ZmqPublisher(const std::string& endpoint, ZmqPublisherOptions options = {})
        : m_own_context(std::make_unique<zmq::context_t>(1)),
          m_options(std::move(options)),
          m_socket(*m_own_context, zmq::socket_type::xpub) {
        setup(endpoint);
    }

    /// The same on a caller's context, which must outlive this publisher (share one context
    /// between many publishers in a process).
    ZmqPublisher(zmq::context_t& context, const std::string& endpoint, ZmqPublisherOptions options = {})
        : m_options(std::move(options)), m_socket(context, zmq::socket_type::xpub) {
        setup(endpoint);
    }

    ZmqPublisher(const ZmqPublisher&) = delete;
    ZmqPublisher& operator=(const ZmqPublisher&) = delete;

    /// Sends one encoded batch. Fails, counting a drop, when no hub is subscribed or the
    /// send queue stays full for `options.send_timeout`; the batch is then lost (the caller
    /// may retry). `bytes` is copied before returning. Never throws.
    PublishResult publish(std::string_view /*subject*/, std::span<const std::uint8_t> bytes) noexcept {
        try {
            poll_subscriptions(0);
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
            return PublishResult::success();
        } catch (const std::exception& e) {
            m_failed.fetch_add(1, std::memory_order_relaxed);
            return PublishResult::failure(std::string("kvbm::ZmqPublisher: ") + e.what());
        }
    }

    /// kvbm holds nothing back: every accepted batch is already in ZeroMQ's queue, which
    /// its I/O thread keeps sending (and destruction waits up to `linger` for). So flush
    /// only reports: success while a hub is subscribed, failure otherwise (what was queued
    /// may then never arrive). Never throws.
    PublishResult flush() noexcept {
        try {
            poll_subscriptions(0);
        } catch (const std::exception& e) {
            return PublishResult::failure(std::string("kvbm::ZmqPublisher: ") + e.what());
        }
        return m_subscribed ? PublishResult::success()
                            : PublishResult::failure("kvbm::ZmqPublisher: no hub subscribed");
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

    /// The underlying socket, for options kvbm does not wrap (same thread rules).
    [[nodiscard]] zmq::socket_t& socket() noexcept { return m_socket; }

private:
    void setup(const std::string& endpoint) {
        m_socket.set(zmq::sockopt::sndhwm, m_options.send_hwm);
        m_socket.set(zmq::sockopt::xpub_nodrop, 1);  // full queue: EAGAIN, not a silent drop
        m_socket.set(zmq::sockopt::sndtimeo, static_cast<int>(m_options.send_timeout.count()));
        m_socket.set(zmq::sockopt::linger, static_cast<int>(m_options.linger.count()));
        m_socket.connect(endpoint);
    }

    /// Reads pending (un)subscription messages, waiting up to `timeout_ms` for the first.
    /// XPUB (non-verbose) reports a prefix's first subscriber as "\x01prefix" and the loss of
    /// its last one as "\x00prefix" (also when the hub disconnects).
    void poll_subscriptions(long timeout_ms) {
        zmq::pollitem_t item{m_socket.handle(), 0, ZMQ_POLLIN, 0};
        if (zmq::poll(&item, 1, std::chrono::milliseconds(timeout_ms)) == 0) {
            return;
        }
        zmq::message_t msg;
        while (m_socket.recv(msg, zmq::recv_flags::dontwait)) {
            const auto* data = static_cast<const char*>(msg.data());
            if (msg.size() == 0 || (data[0] != 0 && data[0] != 1)) {
                continue;  // not a subscription message
            }
            std::string prefix(data + 1, msg.size() - 1);
            if (data[0] == 1) {
                m_prefixes.insert(std::move(prefix));
            } else {
                m_prefixes.erase(prefix);
            }
        }
        const std::string_view topic = m_options.topic;
        m_subscribed = std::any_of(m_prefixes.begin(), m_prefixes.end(),
                                   [&](const std::string& p) { return topic.starts_with(p); });
    }

    std::unique_ptr<zmq::context_t> m_own_context;  // declared first: outlives the socket
    ZmqPublisherOptions m_options;
    zmq::socket_t m_socket;
    std::set<std::string> m_prefixes;  // topic prefixes some hub subscribes to
    bool m_subscribed = false;
    std::atomic<std::uint64_t> m_published{0};
    std::atomic<std::uint64_t> m_bytes{0};
    std::atomic<std::uint64_t> m_dropped_queue_full{0};
    std::atomic<std::uint64_t> m_dropped_no_subscriber{0};
    std::atomic<std::uint64_t> m_failed{0};
};

static_assert(Publisher<ZmqPublisher>);

/// Settings of a ZmqHub.
struct ZmqHubOptions {
    /// Where to bind: "tcp://127.0.0.1:*" picks a free port (see ZmqHub::endpoint),
    /// "tcp://*:5557" listens on every interface, "ipc:///run/kvbm.sock" a local socket.
    std::string bind = "tcp://127.0.0.1:*";
    /// Messages queued from each worker before the hub stops reading it (TCP back-pressure
    /// then fills the worker's queue, where drops are counted).
    int receive_hwm = 1024;
};

/// What a ZmqHub received, by outcome. Every message counts once in `messages` and once in
/// exactly one of batches_applied, unknown_topic, empty, undecodable, malformed,
/// apply_failed; `untopiced` counts one-frame messages again (they are handled as index
/// messages).
struct ZmqHubStats {
    std::uint64_t messages = 0;         ///< messages received, of any shape
    std::uint64_t batches_applied = 0;  ///< decoded and handed to the index (or sink)
    std::uint64_t events_applied = 0;   ///< hashes in those batches
    std::uint64_t bytes_applied = 0;    ///< payload bytes of those batches
    std::uint64_t untopiced = 0;        ///< one-frame messages (no topic frame)
    std::uint64_t unknown_topic = 0;    ///< a topic frame other than kvbm.kv_index: skipped
    std::uint64_t empty = 0;            ///< an index message with an empty payload
    std::uint64_t undecodable = 0;      ///< a payload that is not a KvbmCacheEvents
    std::uint64_t malformed = 0;        ///< more than two frames
    std::uint64_t apply_failed = 0;     ///< the sink threw (e.g. std::bad_alloc)

    /// Messages not applied, for whatever reason.
    [[nodiscard]] std::uint64_t rejected() const noexcept {
        return unknown_topic + empty + undecodable + malformed + apply_failed;
    }
    friend bool operator==(const ZmqHubStats&, const ZmqHubStats&) = default;
};

/// The hub's ingest loop: binds a SUB socket subscribed to everything and, on a background
/// thread, receives messages, routes them by topic, decodes them and applies them to a
/// PositionalIndex (or hands them to a sink). A bad message is counted and skipped; nothing
/// stops the loop but destruction or stop().
///
/// Thread-safety: all members may be called from any thread; the sink runs on the hub's
/// thread only, one batch at a time. Destruction stops the loop at once (pending messages
/// are discarded) and never hangs.
template <WireSequenceHash H = PositionalLineageHash>
class ZmqHub {
public:
    using sink_type = std::function<void(const KvbmCacheEvents<H>&)>;

    /// Binds, then applies every batch to `index`, which must outlive the hub.
    /// Throws zmq::error_t when the endpoint cannot be bound.
    explicit ZmqHub(PositionalIndex<H>& index, ZmqHubOptions options = {})
        : ZmqHub([&index](const KvbmCacheEvents<H>& batch) { index.apply(batch); }, std::move(options)) {}

    /// Binds, then hands every decoded batch to `sink`.
    explicit ZmqHub(sink_type sink, ZmqHubOptions options = {})
        : m_sink(std::move(sink)), m_socket(m_context, zmq::socket_type::sub) {
        m_socket.set(zmq::sockopt::rcvhwm, options.receive_hwm);
        m_socket.set(zmq::sockopt::linger, 0);
        m_socket.set(zmq::sockopt::subscribe, "");
        m_socket.bind(options.bind);
        m_endpoint = m_socket.get(zmq::sockopt::last_endpoint);
        m_thread = std::thread([this] { run(); });
    }

    ZmqHub(const ZmqHub&) = delete;
    ZmqHub& operator=(const ZmqHub&) = delete;

    ~ZmqHub() { stop(); }

    /// Stops receiving and joins the hub's thread; idempotent. Counters stay readable.
    void stop() noexcept {
        std::call_once(m_stopped, [this] {
            m_context.shutdown();  // the blocked recv returns ETERM at once
            if (m_thread.joinable()) {
                m_thread.join();
            }
            m_socket.close();
        });
    }

    /// The bound endpoint with the port resolved ("tcp://127.0.0.1:41234"): what
    /// publishers connect to.
    [[nodiscard]] const std::string& endpoint() const noexcept { return m_endpoint; }

    [[nodiscard]] ZmqHubStats stats() const {
        std::lock_guard lock(m_mutex);
        return m_stats;
    }
    [[nodiscard]] std::uint64_t messages() const { return stats().messages; }
    [[nodiscard]] std::uint64_t batches_applied() const { return stats().batches_applied; }
    [[nodiscard]] std::uint64_t events_applied() const { return stats().events_applied; }
    [[nodiscard]] std::uint64_t rejected() const { return stats().rejected(); }

    /// Why the last rejected message was rejected (empty if none was).
    [[nodiscard]] std::string last_error() const {
        std::lock_guard lock(m_mutex);
        return m_last_error;
    }

    /// Waits until at least `n` messages (of any outcome) have been handled; false on timeout.
    [[nodiscard]] bool wait_for_messages(std::uint64_t n, std::chrono::milliseconds timeout) const {
        std::unique_lock lock(m_mutex);
        return m_progress.wait_for(lock, timeout, [&] { return m_stats.messages >= n; });
    }

    /// Waits until at least `n` batches have been applied; false on timeout.
    [[nodiscard]] bool wait_for_batches(std::uint64_t n, std::chrono::milliseconds timeout) const {
        std::unique_lock lock(m_mutex);
        return m_progress.wait_for(lock, timeout, [&] { return m_stats.batches_applied >= n; });
    }

private:
    enum class Outcome { applied, unknown_topic, empty, undecodable, malformed, apply_failed };

    void run() noexcept {
        std::vector<zmq::message_t> frames;
        for (;;) {
            frames.clear();
            try {
                // One message, all its frames (ZeroMQ delivers them together).
                do {
                    frames.emplace_back();
                    if (!m_socket.recv(frames.back(), zmq::recv_flags::none)) {
                        frames.pop_back();  // EAGAIN: cannot happen without a timeout
                        break;
                    }
                } while (frames.back().more());
            } catch (const zmq::error_t& e) {
                if (e.num() == ETERM) {
                    return;  // stop()
                }
                continue;  // EINTR and the like: try again
            } catch (...) {
                continue;  // std::bad_alloc: drop this message, keep going
            }
            if (!frames.empty()) {
                try {
                    handle(frames);
                } catch (...) {
                    // Only std::bad_alloc while counting; the message is lost, the loop goes on.
                }
            }
        }
    }

    void handle(const std::vector<zmq::message_t>& frames) {
        const zmq::message_t* payload = nullptr;
        Outcome outcome = Outcome::applied;
        std::string error;
        std::size_t events = 0;
        if (frames.size() == 1) {
            payload = &frames[0];  // no topic frame: the index topic, as Dynamo's hub does
        } else if (frames.size() == 2) {
            const std::string_view topic(static_cast<const char*>(frames[0].data()), frames[0].size());
            if (topic == kv_index_topic) {
                payload = &frames[1];
            } else {
                outcome = Outcome::unknown_topic;
                error = "unknown topic '" + std::string(topic.substr(0, 64)) + "'";
            }
        } else {
            outcome = Outcome::malformed;
            error = std::to_string(frames.size()) + " frames (expected topic and payload)";
        }
        if (payload != nullptr && payload->size() == 0) {
            outcome = Outcome::empty;
            error = "empty payload";
        } else if (payload != nullptr) {
            try {
                const std::span<const std::uint8_t> bytes(static_cast<const std::uint8_t*>(payload->data()),
                                                          payload->size());
                auto decoded = msgpack::decode_batch<H>(bytes);
                if (!decoded) {
                    outcome = Outcome::undecodable;
                    error = "undecodable payload: " + decoded.error().message();
                } else {
                    events = decoded.value().events.hashes.size();
                    m_sink(decoded.value());
                }
            } catch (const std::exception& e) {
                outcome = Outcome::apply_failed;
                error = std::string("sink failed: ") + e.what();
            } catch (...) {
                outcome = Outcome::apply_failed;
                error = "sink failed";
            }
        }
        {
            std::lock_guard lock(m_mutex);
            ++m_stats.messages;
            m_stats.untopiced += frames.size() == 1 ? 1U : 0U;
            switch (outcome) {
                case Outcome::applied:
                    ++m_stats.batches_applied;
                    m_stats.events_applied += events;
                    m_stats.bytes_applied += payload->size();
                    break;
                case Outcome::unknown_topic:
                    ++m_stats.unknown_topic;
                    break;
                case Outcome::empty:
                    ++m_stats.empty;
                    break;
                case Outcome::undecodable:
                    ++m_stats.undecodable;
                    break;
                case Outcome::malformed:
                    ++m_stats.malformed;
                    break;
                case Outcome::apply_failed:
                    ++m_stats.apply_failed;
                    break;
            }
            if (outcome != Outcome::applied) {
                m_last_error = std::move(error);
            }
        }
        m_progress.notify_all();
    }

    sink_type m_sink;
    zmq::context_t m_context{1};  // its own: stop() shuts it down to wake the hub's thread
    zmq::socket_t m_socket;
    std::string m_endpoint;
    std::thread m_thread;
    std::once_flag m_stopped;
    mutable std::mutex m_mutex;
    mutable std::condition_variable m_progress;
    ZmqHubStats m_stats;
    std::string m_last_error;
};

KVBM_NAMESPACE_END
