/// @file kvbm/zmq_hub.hpp
/// The hub's side of the ZeroMQ transport (target kvbm::zmq, needs cppzmq): `ZmqHub`, a
/// socket loop that hands every received message to a HubIngest (<kvbm/hub_ingest.hpp>),
/// which decodes, classifies, counts and applies it. ZeroMQ-specific here: binding, the
/// frame shape (one frame = untopiced, two = topic + payload, more = malformed), the frame
/// size limit (ZMQ_MAXMSGSIZE) and the sender's CURVE identity for authorisation.
#pragma once

#include <kvbm/config.hpp>
#include <kvbm/hub_ingest.hpp>
#include <kvbm/index.hpp>
#include <kvbm/metrics.hpp>
#include <kvbm/topics.hpp>

#include <zmq.hpp>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

KVBM_NAMESPACE_BEGIN

/// Settings of a ZmqHub.
struct ZmqHubOptions {
    /// Where to bind: "tcp://127.0.0.1:*" picks a free port (see ZmqHub::endpoint),
    /// "tcp://*:5557" listens on every interface, "ipc:///run/kvbm.sock" a local socket.
    std::string bind = "tcp://127.0.0.1:*";
    /// Messages queued from each worker before the hub stops reading it (TCP back-pressure
    /// then fills the worker's queue, where drops are counted).
    int receive_hwm = 1024;
    /// ZMQ_MAXMSGSIZE: the largest frame ZeroMQ accepts (64 MiB, far above any real batch:
    /// one million hashes encode to ~18 MiB). ZeroMQ enforces it while reading and drops
    /// the connection of a peer that exceeds it; the frame never reaches the hub, so it
    /// cannot be counted as a frame (it shows as a disconnect; the peer reconnects and
    /// goes on). -1: no limit.
    std::int64_t max_message_bytes = std::int64_t{64} << 20;
    /// For the ingest the hub owns (the constructors taking an index or a sink).
    HubIngestOptions ingest = {};
    /// Called with the socket before it binds: set what kvbm does not wrap (CURVE server
    /// keys, a ZAP domain, buffer sizes).
    std::function<void(zmq::socket_t&)> configure = {};
    /// Optional authorisation: `authorize(user_id, instance_id)` is asked for every decoded
    /// batch, with the ZAP "User-Id" of the message (the sender's CURVE identity as the
    /// ZAP handler named it; empty without ZAP); false rejects the batch as unauthorized.
    /// Runs on the hub's thread.
    std::function<bool(std::string_view user_id, const InstanceId& instance_id)> authorize = {};
};

/// What a ZmqHub received, by outcome (the ingest's counters).
using ZmqHubStats = HubIngestStats;

/// The hub's ZeroMQ ingest loop: binds a SUB socket subscribed to everything and, on a
/// background thread, receives messages and hands each one to a HubIngest. A bad message
/// is counted and skipped; nothing stops the loop but destruction or stop().
///
/// Thread-safety: all members may be called from any thread, stop() also from the sink
/// (the ingest's index or sink runs on the hub's thread only, one batch at a time).
/// Destruction stops the loop at once (pending messages are discarded) and never hangs;
/// it must not run on the hub's own thread (i.e. from the sink).
template <WireSequenceHash H = PositionalLineageHash>
class ZmqHub : public HubTransportBase<H> {
    using base = HubTransportBase<H>;

public:
    using typename base::ingest_type;
    using typename base::sink_type;

    /// Binds, then applies every batch to `index`, which must outlive the hub.
    /// Throws zmq::error_t when the endpoint cannot be bound.
    explicit ZmqHub(PositionalIndex<H>& index, ZmqHubOptions options = {})
        : base(index, options.ingest), m_socket(m_context, zmq::socket_type::sub) {
        start(std::move(options));
    }

    /// Binds, then hands every decoded batch to `sink` (on the hub's thread).
    explicit ZmqHub(sink_type sink, ZmqHubOptions options = {})
        : base(std::move(sink), options.ingest), m_socket(m_context, zmq::socket_type::sub) {
        start(std::move(options));
    }

    /// Binds, then feeds `ingest` (shared with other transports; it must outlive the hub,
    /// and its options apply instead of `options.ingest`).
    explicit ZmqHub(ingest_type& ingest, ZmqHubOptions options = {})
        : base(ingest), m_socket(m_context, zmq::socket_type::sub) {
        start(std::move(options));
    }

    ZmqHub(const ZmqHub&) = delete;
    ZmqHub& operator=(const ZmqHub&) = delete;

    ~ZmqHub() { stop(); }

    /// Stops receiving: no message is handed to the ingest after stop() began (what is still
    /// queued is discarded); idempotent; counters stay readable. From any thread but the hub's
    /// own it also joins the hub's thread. From the hub's thread (the sink) it only asks the
    /// loop to end after the current batch: the join happens in the destructor (or a later
    /// stop() from another thread).
    void stop() noexcept {
        m_stop_requested.store(true, std::memory_order_release);       // no message is handled after this
        std::call_once(m_shutdown, [this] { m_context.shutdown(); });  // the blocked recv returns ETERM
        if (std::this_thread::get_id() == m_thread_id.load()) {
            return;  // the sink: joining itself would throw (std::terminate under noexcept)
        }
        std::lock_guard lock(m_join_mutex);
        if (m_thread.joinable()) {
            m_thread.join();
        }
    }

    /// The bound endpoint with the port resolved ("tcp://127.0.0.1:41234"): what
    /// publishers connect to.
    [[nodiscard]] const std::string& endpoint() const noexcept { return m_endpoint; }

    /// The hub's ZeroMQ context, for sockets that must share it: a ZAP handler
    /// (`inproc://zeromq.zap.01`, which authenticates CURVE peers) serves the sockets of its
    /// own context only. Such a socket must be closed once its blocking calls fail with ETERM
    /// (stop() shuts the context down), and before the hub is destroyed.
    [[nodiscard]] zmq::context_t& context() noexcept { return m_context; }

    /// The metrics of the ingest when the hub owns it (constructed from an index or a
    /// sink); a shared ingest is exported by its owner.
    template <class Visitor>
    void for_each_metric(Visitor&& visit) const {
        this->for_each_owned_ingest_metric(visit);
    }

private:
    void start(ZmqHubOptions options) {
        m_socket.set(zmq::sockopt::rcvhwm, options.receive_hwm);
        m_socket.set(zmq::sockopt::maxmsgsize, options.max_message_bytes);
        m_socket.set(zmq::sockopt::linger, 0);
        m_socket.set(zmq::sockopt::subscribe, "");
        if (options.configure) {
            options.configure(m_socket);
        }
        m_authorize = std::move(options.authorize);
        m_socket.bind(options.bind);
        m_endpoint = m_socket.get(zmq::sockopt::last_endpoint);
        m_thread = std::thread([this] {
            m_thread_id.store(std::this_thread::get_id());
            run();
        });
    }

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
            // ZeroMQ may hand out messages already queued for a while after the shutdown:
            // stop() means none of them reaches the ingest.
            if (m_stop_requested.load(std::memory_order_acquire)) {
                return;
            }
            if (!frames.empty()) {
                handle(frames);
            }
        }
    }

    /// The whole ZeroMQ-specific part of handling a message: its shape and its sender.
    void handle(std::vector<zmq::message_t>& frames) noexcept {
        const auto bytes = [](const zmq::message_t& m) {
            return std::span<const std::uint8_t>(static_cast<const std::uint8_t*>(m.data()), m.size());
        };
        if (frames.size() > 2) {
            char detail[64];
            std::snprintf(detail, sizeof(detail), "%zu frames (expected topic and payload)", frames.size());
            this->ingest().reject(IngestOutcome::malformed, detail);
            return;
        }
        zmq::message_t& payload = frames.back();
        const auto authorize = [&](const InstanceId& id) { return !m_authorize || m_authorize(user_id(payload), id); };
        if (frames.size() == 1) {
            (void)this->ingest().ingest_untopiced(bytes(payload), authorize);
        } else {
            const std::string_view topic(static_cast<const char*>(frames[0].data()), frames[0].size());
            (void)this->ingest().ingest(topic, bytes(payload), authorize);
        }
    }

    /// The ZAP User-Id of a received message ("" when no ZAP handler named the sender).
    static std::string_view user_id(zmq::message_t& msg) noexcept {
        const char* id = zmq_msg_gets(msg.handle(), "User-Id");
        return id == nullptr ? std::string_view{} : std::string_view{id};
    }

    std::function<bool(std::string_view, const InstanceId&)> m_authorize;
    zmq::context_t m_context{1};  // its own: stop() shuts it down to wake the hub's thread
    zmq::socket_t m_socket;       // after the context: closed before it terminates
    std::string m_endpoint;
    std::thread m_thread;
    std::atomic<std::thread::id> m_thread_id{};
    std::atomic<bool> m_stop_requested{false};
    std::once_flag m_shutdown;
    std::mutex m_join_mutex;
};

KVBM_NAMESPACE_END
