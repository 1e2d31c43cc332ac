// kvbm-hub's server: the index, ZeroMQ ingest, the lease sweeper and the HTTP listener
// (cpp-httplib) around HubApi. kvbm-hub's main and kvbm-demo's in-process hub both run it.
#pragma once

#include "curve.hpp"
#include "hub_api.hpp"

#include <kvbm/index.hpp>
#include <kvbm/prometheus.hpp>
#include <kvbm/zmq_hub.hpp>
#ifdef KVBM_HUB_HAVE_NATS
#include <kvbm/nats_hub.hpp>
#endif

#include <httplib.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

namespace kvbm_hub {

/// Everything kvbm-hub's flags set.
struct HubOptions {
    std::string http_host = "127.0.0.1";
    int http_port = 1337;  ///< 0 picks a free port
    std::string zmq_bind = "tcp://0.0.0.0:0";
    std::string advertise_host = "127.0.0.1";
    std::uint64_t block_size = 16;
    std::uint64_t max_seq_len = 65536;
    std::chrono::milliseconds lease_ttl{10000};
    std::size_t max_body_bytes = std::size_t{1} << 20;  ///< larger request bodies get 413
    std::size_t http_threads = 16;                      ///< connections served at once
    std::optional<std::string> control_token;
    /// Drop batches of instances without a live lease (see ApiOptions::require_lease).
    bool require_lease = false;
    /// When set, ingest needs CURVE with a listed key, and a key publishes only for its ids.
    std::optional<CurveConfig> curve;
#ifdef KVBM_HUB_HAVE_NATS
    /// When set, batches are also read from NATS (`[prefix.]kvbm.events`, optionally through
    /// JetStream with an index snapshot), into the same ingest as ZeroMQ.
    std::optional<kvbm::NatsHubOptions> nats;
#endif
    /// When set (kvbm-hub sets it beside a JetStream snapshot, as SNAPSHOT.leases): the
    /// registered instances are saved there on every change, and a hub that starts with the
    /// file gives each listed instance a fresh lease (see LeaseFile).
    std::string leases_path;
};

namespace detail {

/// httplib's server with a deeper listen backlog: the compiled library listens with a
/// backlog of 5, so a burst of connecting clients (a load generator) would see SYNs dropped
/// and retried a second later. Linux lets listen() be called again to change it.
class Listener : public httplib::Server {
public:
    void deepen_backlog(int backlog) {
        const auto fd = svr_sock_.load();
        if (fd != INVALID_SOCKET) {
            (void)::listen(fd, backlog);
        }
    }
};

/// The port of a bound "tcp://host:port" endpoint.
inline std::string endpoint_port(const std::string& endpoint) {
    const auto colon = endpoint.rfind(':');
    if (colon == std::string::npos) {
        throw std::invalid_argument("no port in endpoint " + endpoint);
    }
    return endpoint.substr(colon + 1);
}

}  // namespace detail

/// The running hub. Construction binds both listeners (throws on failure) and starts every
/// thread; destruction (or stop()) stops them. Thread-safe.
class HubServer {
public:
    explicit HubServer(HubOptions options)
        : m_options(std::move(options)),
          m_index(m_options.max_seq_len, m_options.block_size),
          m_leases(m_options.lease_ttl),
          m_api(m_index, m_leases, api_options(m_options)),
          m_ingest([this](const kvbm::KvbmCacheEvents<Hash>& batch) { (void)m_api.apply(batch); },
                   ingest_options(m_options)) {
#ifdef KVBM_HUB_HAVE_NATS
        if (m_options.nats) {  // the same ingest (one set of counters), and the index for snapshots
            m_nats = std::make_unique<kvbm::NatsHub<Hash>>(m_ingest.ingest(), *m_options.nats, &m_index);
        }
#endif
        if (m_options.curve) {
            m_zap = std::make_unique<ZapHandler>(m_ingest.context(), *m_options.curve);
        }
        const std::string bound = m_ingest.endpoint();
        m_zmq_endpoint = "tcp://" + m_options.advertise_host + ":" + detail::endpoint_port(bound);
        m_api.set_zmq_endpoint(m_zmq_endpoint);
        m_api.set_metrics_renderer([this] { return metrics_text(); });
        if (!m_options.leases_path.empty()) {
            restore_leases();
            m_api.set_leases_changed([this] { save_leases(); });
        }
        setup_http();
        m_sweeper = std::thread([this] { sweep(); });
        m_http_thread = std::thread([this] { m_http.listen_after_bind(); });
        // httplib's stop() does nothing before the loop runs: wait for it, so stop() always
        // ends it.
        const auto deadline = Clock::now() + std::chrono::seconds(10);
        while (!m_http.is_running() && Clock::now() < deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    }

    HubServer(const HubServer&) = delete;
    HubServer& operator=(const HubServer&) = delete;
    ~HubServer() { stop(); }

    /// Stops HTTP, ingest and the sweeper; idempotent.
    void stop() {
        std::call_once(m_stopped, [this] {
            m_http.stop();
            if (m_http_thread.joinable()) {
                m_http_thread.join();
            }
            m_stop.store(true);
            m_leases.wake();
            if (m_sweeper.joinable()) {
                m_sweeper.join();
            }
#ifdef KVBM_HUB_HAVE_NATS
            m_nats.reset();  // stops reading; with JetStream, saves the last snapshot
#endif
            m_ingest.stop();  // shuts the context down: the ZAP handler's socket closes
            if (m_zap) {
                m_zap->stop();
            }
        });
    }

    /// "http://HOST:PORT", with the port resolved.
    [[nodiscard]] const std::string& http_url() const noexcept { return m_http_url; }
    /// The advertised ingest endpoint ("tcp://ADVERTISE_HOST:PORT").
    [[nodiscard]] const std::string& zmq_endpoint() const noexcept { return m_zmq_endpoint; }
    /// The one line kvbm-hub prints when ready.
    [[nodiscard]] std::string ready_line() const {
        std::string nats;
#ifdef KVBM_HUB_HAVE_NATS
        if (m_nats) {
            nats = ",\"nats\":\"" + m_nats->events_subject() + "\"";
        }
#endif
        return "{\"http\":\"" + m_http_url + "\",\"zmq\":\"" + m_zmq_endpoint + "\"" + nats + "}";
    }

    [[nodiscard]] kvbm::PositionalIndex<Hash>& index() noexcept { return m_index; }
    [[nodiscard]] HubApi& api() noexcept { return m_api; }

    /// Every metric of the hub (ingest, index, leases, HTTP, CURVE handshakes).
    template <class Visitor>
    void for_each_metric(Visitor&& visit) const {
        m_ingest.for_each_metric(visit);
#ifdef KVBM_HUB_HAVE_NATS
        if (m_nats) {
            m_nats->for_each_metric(visit);  // kvbm_nats_hub_* (the ingest is the one above)
        }
#endif
        m_index.for_each_metric(visit);
        m_api.for_each_metric(visit);
        if (m_zap) {
            using kvbm::MetricKind;
            using kvbm::detail::visit_metric;
            visit_metric(visit, "kvbm_hub_zap_admitted_total", "CURVE handshakes of a listed key (ZAP 200).",
                         MetricKind::counter, static_cast<double>(m_zap->admitted()));
            visit_metric(visit, "kvbm_hub_zap_denied_total", "Handshakes refused: unlisted key or not CURVE (ZAP 400).",
                         MetricKind::counter, static_cast<double>(m_zap->denied()));
        }
    }

    /// /metrics' body.
    [[nodiscard]] std::string metrics_text() const;

private:
    static ApiOptions api_options(const HubOptions& o) {
        ApiOptions a;
        a.block_size = o.block_size;
        a.max_seq_len = o.max_seq_len;
        a.lease_ttl = o.lease_ttl;
        a.control_token = o.control_token;
        a.require_lease = o.require_lease;
        if (o.curve) {
            a.zmq_curve_server_key = o.curve->public_key;
        }
        return a;
    }

    kvbm::ZmqHubOptions ingest_options(const HubOptions& o) const {
        kvbm::ZmqHubOptions z;
        z.bind = o.zmq_bind;
        if (o.curve) {
            const CurveConfig* curve = &*m_options.curve;  // m_options outlives the ingest
            z.configure = [curve](zmq::socket_t& socket) {
                socket.set(zmq::sockopt::curve_server, 1);
                socket.set(zmq::sockopt::curve_secretkey, curve->secret_key);
                socket.set(zmq::sockopt::zap_domain, "kvbm");
                // Refuse handshakes while no ZAP handler answers (a draft option: where libzmq
                // lacks it, such a peer still gets no User-Id, so authorize refuses its batches).
                int enforce = 1;
                (void)zmq_setsockopt(socket.handle(), 93 /* ZMQ_ZAP_ENFORCE_DOMAIN */, &enforce, sizeof(enforce));
            };
            z.authorize = [curve](std::string_view user_id, const InstanceId& id) {
                return curve->may_publish(user_id, id);
            };
        }
        return z;
    }

    void setup_http() {
        const std::size_t threads = m_options.http_threads;
        m_http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
        m_http.set_keep_alive_max_count(std::size_t{1} << 30);
        m_http.set_tcp_nodelay(true);  // headers and body are two writes: no Nagle + delayed-ACK stall
        m_http.set_payload_max_length(m_options.max_body_bytes);
        // httplib's default also sets SO_REUSEPORT, which lets a second hub bind the same port
        // and silently take half the connections: only SO_REUSEADDR here, so that fails.
        m_http.set_socket_options([](socket_t sock) {
            int yes = 1;
            (void)::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
        });
        const auto handler = [this](const httplib::Request& req, httplib::Response& res) { serve(req, res); };
        m_http.Get(".*", handler);
        m_http.Post(".*", handler);
        m_http.Put(".*", handler);
        m_http.Patch(".*", handler);
        m_http.Delete(".*", handler);
        m_http.Options(".*", handler);
        // Answers httplib makes itself (413 body too large, 400 malformed request, ...):
        // counted and given the API's JSON error shape. The API's own answers have a body.
        m_http.set_error_handler(
            httplib::Server::HandlerWithResponse([this](const httplib::Request& req, httplib::Response& res) {
                if (!res.body.empty()) {
                    return httplib::Server::HandlerResponse::Unhandled;
                }
                m_api.count_transport_error(req.path, res.status);
                const std::string reason =
                    res.status == 413
                        ? "request body above the limit of " + std::to_string(m_options.max_body_bytes) + " bytes"
                        : "malformed request (status " + std::to_string(res.status) +
                              "; a POST needs a Content-Length header, 0 when empty)";
                res.set_content(error_response(res.status, reason).body, "application/json");
                return httplib::Server::HandlerResponse::Handled;
            }));
        const int port =
            m_options.http_port == 0
                ? m_http.bind_to_any_port(m_options.http_host)
                : (m_http.bind_to_port(m_options.http_host, m_options.http_port) ? m_options.http_port : -1);
        if (port < 0) {
            throw std::runtime_error("cannot listen for HTTP on " + m_options.http_host + ":" +
                                     std::to_string(m_options.http_port));
        }
        m_http.deepen_backlog(1024);
        m_http_url = "http://" + m_options.http_host + ":" + std::to_string(port);
    }

    void serve(const httplib::Request& req, httplib::Response& res) {
        std::optional<std::string_view> bearer;
        const auto& auth = req.get_header_value("Authorization");
        if (std::string_view(auth).starts_with("Bearer ")) {
            bearer = std::string_view(auth).substr(7);
        }
        ApiResponse r = m_api.handle(req.method, req.path, bearer, req.body);
        res.status = r.status;
        res.body = std::move(r.body);
        res.set_header("Content-Type", std::string(r.content_type));
        if (!r.allow.empty()) {
            res.set_header("Allow", std::string(r.allow));
        }
        if (r.www_authenticate) {
            res.set_header("WWW-Authenticate", "Bearer");
        }
    }

    // A bad file is reported and ignored: the hub then behaves as without one (instances
    // re-register on their keepalive's 404; the dead ones are not swept).
    void restore_leases() {
        try {
            const auto ids = m_lease_file.load();
            const auto now = Clock::now();
            for (const auto& id : ids) {
                (void)m_leases.grant(id, now);
            }
            if (!ids.empty()) {
                std::fprintf(stderr, "kvbm-hub: %zu leases restored from %s (each must be renewed within %lld ms)\n",
                             ids.size(), m_lease_file.path().c_str(),
                             static_cast<long long>(m_options.lease_ttl.count()));
            }
        } catch (const std::exception& e) {
            std::fprintf(stderr, "kvbm-hub: ignoring the lease file: %s\n", e.what());
        }
    }

    // Serialised, and the set taken under the same lock: saves land in the order of the sets.
    void save_leases() {
        std::lock_guard lock(m_lease_file_mutex);
        if (!m_lease_file.save(m_leases.ids())) {
            std::fprintf(stderr, "kvbm-hub: cannot write %s\n", m_lease_file.path().c_str());
        }
    }

    void sweep() {
        while (!m_stop.load()) {
            const auto expired = m_leases.wait_expired(m_stop);
            m_api.sweep_expired(expired);
        }
    }

    HubOptions m_options;
    kvbm::PositionalIndex<Hash> m_index;
    LeaseTable m_leases;
    LeaseFile m_lease_file{m_options.leases_path};
    std::mutex m_lease_file_mutex;
    HubApi m_api;
    kvbm::ZmqHub<Hash> m_ingest;
#ifdef KVBM_HUB_HAVE_NATS
    std::unique_ptr<kvbm::NatsHub<Hash>> m_nats;  // after m_ingest, whose ingest it feeds
#endif
    std::unique_ptr<ZapHandler> m_zap;  // CURVE only; on the ingest's context
    std::string m_zmq_endpoint;
    std::string m_http_url;
    detail::Listener m_http;
    std::atomic<bool> m_stop{false};
    std::once_flag m_stopped;
    std::thread m_sweeper;
    std::thread m_http_thread;
};

inline std::string HubServer::metrics_text() const { return kvbm::prometheus::render(*this); }

}  // namespace kvbm_hub
