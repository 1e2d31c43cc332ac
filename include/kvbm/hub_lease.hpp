/// @file kvbm/hub_lease.hpp
/// A worker's lease at a kvbm-hub, whatever carries its events (target kvbm::hub, needs
/// cpp-httplib): probe `GET {hub}/v1/features/kv-index/config`, refuse a hub whose block size
/// differs, register the instance (`POST /v1/instances`), keep the lease alive from a
/// background thread, and unregister (`DELETE /v1/instances/{id}`, which sweeps the instance
/// from the hub's index) on stop. A worker that dies without a word stops renewing, and the
/// hub sweeps it one TTL later: this is what keeps the router's view right after a crash.
///
/// HubClient (<kvbm/hub_client.hpp>) is a HubLease plus the ZeroMQ publisher the hub
/// advertises. A worker that publishes over NATS to a `kvbm-hub --nats` joins with a HubLease
/// and its NatsPublisher, tied together by a LeasedPublisher:
///
///     kvbm::HubLeaseOptions options;
///     options.instance_id = id;
///     options.block_size = 16;
///     kvbm::HubLease lease("http://hub:1337", options);
///     kvbm::NatsPublisher nats(nats_options);
///     kvbm::LeasedPublisher transport(lease, nats);  // a Publisher; resyncs after a lost lease
///     kvbm::EventsPublisher publisher(manager, registry, &transport, id);
///
/// A lease the hub let expire (the worker was unreachable longer than the TTL, and the hub
/// swept its entries) is noticed by the next keepalive (404): the lease is taken again and a
/// resync request raised (`take_resync_request`), so an EventsPublisher republishes the live
/// set and the hub's view is whole again.
#pragma once

#include <kvbm/config.hpp>
#include <kvbm/detail/json_reader.hpp>
#include <kvbm/events.hpp>
#include <kvbm/publisher.hpp>
#include <kvbm/uint128.hpp>

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

KVBM_NAMESPACE_BEGIN

/// Why a HubLease or HubClient could not join its hub (unreachable, refused, incompatible).
class HubClientError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// Settings of a HubLease (and the lease part of a HubClient).
struct HubLeaseOptions {
    /// This worker's instance id (Dynamo: a random u128).
    InstanceId instance_id{};
    /// Tokens per block of this worker's cache: the hub must index the same size.
    std::uint64_t block_size = 0;
    /// When set, registration asks the hub to index sequences up to this length (the hub
    /// grows, never shrinks).
    std::optional<std::uint64_t> max_seq_len;
    /// Bearer token for the registration routes (kvbm-hub --control-token); empty: none.
    std::string control_token;
    /// The discovery prefix probed for /config (the Rust connector's; kvbm-hub answers it
    /// and `/v1/features/indexer`).
    std::string discovery_prefix = "/v1/features/kv-index";
    /// Keepalive period; 0 picks a third of the lease TTL the hub grants.
    std::chrono::milliseconds keepalive_interval{0};
    /// Connect, read and write timeout of each HTTP request.
    std::chrono::milliseconds http_timeout{5000};
};

/// What the hub's `GET /config` said.
struct HubConfig {
    std::uint64_t max_seq_len = 0;
    std::uint64_t block_size = 0;
    std::uint64_t num_positions = 0;
    /// Where the hub's ZeroMQ ingest listens (empty when it has none, e.g. NATS only).
    std::string zmq_endpoint;
    /// kvbm-hub's CURVE public key when its ingest needs CURVE (empty otherwise).
    std::string zmq_curve_server_key;
};

/// A registered worker's lease at a kvbm-hub. See the file comment.
///
/// Thread-safety: every member may be called from any thread; stop from one at a time. The
/// keepalive thread only does HTTP. Destruction stops (unregistering) and never throws.
class HubLease {
public:
    /// Called with the hub's /config before registering; throws (HubClientError) to refuse.
    using ConfigCheck = std::function<void(const HubConfig&)>;

    /// Joins the hub at `hub_url` ("http://HOST:PORT"). Throws HubClientError when the hub
    /// cannot be reached, refuses the registration, indexes another block size, or
    /// `check` refuses its /config (then nothing was registered).
    HubLease(std::string hub_url, HubLeaseOptions options, const ConfigCheck& check = {})
        : m_url(std::move(hub_url)), m_options(std::move(options)), m_http(make_client(m_url, m_options)) {
        if (m_options.block_size == 0) {
            throw HubClientError("kvbm::HubLease: block_size must be > 0");
        }
        m_config = probe();
        if (m_config.block_size != m_options.block_size) {
            throw HubClientError("kvbm::HubLease: block size mismatch: this worker uses blocks of " +
                                 std::to_string(m_options.block_size) + " tokens, the hub at " + m_url +
                                 " indexes blocks of " + std::to_string(m_config.block_size));
        }
        if (check) {
            check(m_config);
        }
        register_instance();
        m_interval = m_options.keepalive_interval.count() > 0
                         ? m_options.keepalive_interval
                         : std::max(std::chrono::milliseconds(10), m_lease_ttl.load() / 3);
        try {
            m_keepalive = std::thread([this] { keepalive_loop(); });
        } catch (...) {
            (void)unregister();
            throw;
        }
    }

    HubLease(const HubLease&) = delete;
    HubLease& operator=(const HubLease&) = delete;

    ~HubLease() { (void)stop(); }

    /// Stops the keepalive and unregisters (the hub sweeps this instance from its index).
    /// Stop the events publisher first, so its Shutdown is sent before. Returns false when
    /// the hub could not be told (the lease then runs out on its own). Idempotent.
    bool stop() noexcept {
        {
            std::lock_guard lock(m_mutex);
            if (m_stopped) {
                return m_unregistered;
            }
            m_stopped = true;
        }
        m_wake.notify_all();
        if (m_keepalive.joinable()) {
            m_keepalive.join();
        }
        m_unregistered = unregister();
        return m_unregistered;
    }

    /// True once after the lease was taken again (it had expired and the hub swept this
    /// instance): the live set must be published again.
    [[nodiscard]] bool take_resync_request() noexcept { return m_resync.exchange(false); }

    [[nodiscard]] const std::string& hub_url() const noexcept { return m_url; }
    [[nodiscard]] const HubConfig& config() const noexcept { return m_config; }
    [[nodiscard]] const InstanceId& instance_id() const noexcept { return m_options.instance_id; }
    [[nodiscard]] std::chrono::milliseconds lease_ttl() const noexcept { return m_lease_ttl.load(); }
    [[nodiscard]] std::chrono::milliseconds keepalive_interval() const noexcept { return m_interval; }
    /// Keepalives the hub acknowledged.
    [[nodiscard]] std::uint64_t keepalives() const noexcept { return m_keepalives.load(); }
    /// Keepalives that failed (hub unreachable or erroring).
    [[nodiscard]] std::uint64_t keepalive_failures() const noexcept { return m_keepalive_failures.load(); }
    /// Registrations after a lost lease.
    [[nodiscard]] std::uint64_t reregistrations() const noexcept { return m_reregistrations.load(); }
    /// Why the last keepalive or registration failed (empty if none did).
    [[nodiscard]] std::string last_error() const {
        std::lock_guard lock(m_mutex);
        return m_last_error;
    }

private:
    static std::unique_ptr<httplib::Client> make_client(const std::string& url, const HubLeaseOptions& o) {
        auto client = std::make_unique<httplib::Client>(url);
        if (!client->is_valid()) {
            throw HubClientError("kvbm::HubLease: '" + url + "' is not an http://HOST:PORT URL");
        }
        const auto t = o.http_timeout;
        const auto sec = static_cast<time_t>(t.count() / 1000);
        const auto usec = static_cast<time_t>((t.count() % 1000) * 1000);
        client->set_connection_timeout(sec, usec);
        client->set_read_timeout(sec, usec);
        client->set_write_timeout(sec, usec);
        client->set_keep_alive(true);
        client->set_tcp_nodelay(true);
        if (!o.control_token.empty()) {
            client->set_bearer_token_auth(o.control_token);
        }
        return client;
    }

    /// "error" of a {"error": "..."} body, else the body itself (shortened).
    static std::string hub_error(const std::string& body) {
        detail::JsonReader in(body);
        std::string message;
        const bool ok =
            in.object([&](std::string_view key) { return key == "error" ? in.string(message) : in.skip_value(); });
        return ok && !message.empty() ? message : body.substr(0, 200);
    }

    [[noreturn]] void fail_request(std::string_view what, const httplib::Result& r) const {
        if (!r) {
            throw HubClientError("kvbm::HubLease: cannot reach the hub at " + m_url + " (" + std::string(what) +
                                 "): " + httplib::to_string(r.error()));
        }
        throw HubClientError("kvbm::HubLease: the hub at " + m_url + " answered " + std::to_string(r->status) + " to " +
                             std::string(what) + ": " + hub_error(r->body));
    }

    HubConfig probe() {
        const std::string path = m_options.discovery_prefix + "/config";
        const auto r = m_http->Get(path.c_str());
        if (!r || r->status != 200) {
            fail_request("GET " + path, r);
        }
        HubConfig c;
        detail::JsonReader in(r->body);
        bool have_block_size = false;
        const bool ok = in.object([&](std::string_view key) {
            if (key == "max_seq_len") {
                return in.u64(c.max_seq_len, key);
            }
            if (key == "block_size") {
                have_block_size = true;
                return in.u64(c.block_size, key);
            }
            if (key == "num_positions") {
                return in.u64(c.num_positions, key);
            }
            if (key == "zmq_curve_server_key") {
                return in.string(c.zmq_curve_server_key);
            }
            if (key == "zmq_endpoint") {
                return in.peek() == 'n' ? in.null() : in.string(c.zmq_endpoint);
            }
            return in.skip_value();
        });
        if (!ok || !in.at_end() || !have_block_size) {
            throw HubClientError("kvbm::HubLease: the hub at " + m_url + " sent a /config this client cannot read (" +
                                 (ok ? std::string("no block_size") : in.error()) + "): " + r->body.substr(0, 200));
        }
        return c;
    }

    /// POST /v1/instances; throws HubClientError unless the hub granted a lease.
    void register_instance() {
        std::string body = "{\"instance_id\":\"" + m_options.instance_id.to_string() +
                           "\",\"block_size\":" + std::to_string(m_options.block_size);
        if (m_options.max_seq_len) {
            body += ",\"max_seq_len\":" + std::to_string(*m_options.max_seq_len);
        }
        body += '}';
        const auto r = m_http->Post("/v1/instances", body, "application/json");
        if (!r || r->status != 200) {
            fail_request("POST /v1/instances", r);
        }
        detail::JsonReader in(r->body);
        std::uint64_t ttl_ms = 0;
        const bool ok = in.object(
            [&](std::string_view key) { return key == "lease_ttl_ms" ? in.u64(ttl_ms, key) : in.skip_value(); });
        if (!ok || ttl_ms == 0) {
            throw HubClientError("kvbm::HubLease: the hub at " + m_url +
                                 " granted a registration without a lease_ttl_ms: " + r->body.substr(0, 200));
        }
        m_lease_ttl = std::chrono::milliseconds(static_cast<std::int64_t>(ttl_ms));
    }

    bool unregister() noexcept {
        try {
            const std::string path = "/v1/instances/" + m_options.instance_id.to_string();
            const auto r = m_http->Delete(path.c_str());
            // 404: the lease had already expired and the hub swept us; nothing left to undo.
            return r && (r->status == 200 || r->status == 404);
        } catch (...) {
            return false;
        }
    }

    void note_failure(std::string message) {
        m_keepalive_failures.fetch_add(1);
        std::lock_guard lock(m_mutex);
        m_last_error = std::move(message);
    }

    void keepalive_loop() noexcept {
        const std::string path = "/v1/instances/" + m_options.instance_id.to_string() + "/keepalive";
        std::unique_lock lock(m_mutex);
        for (;;) {
            if (m_wake.wait_for(lock, m_interval, [this] { return m_stopped; })) {
                return;
            }
            lock.unlock();
            try {
                const auto r = m_http->Post(path.c_str(), "", "application/json");
                if (r && r->status == 200) {
                    m_keepalives.fetch_add(1);
                } else if (r && r->status == 404) {
                    // The hub let the lease expire and swept this instance: join again and
                    // have the live set republished.
                    register_instance();
                    m_reregistrations.fetch_add(1);
                    m_resync.store(true);
                } else {
                    note_failure(r ? "keepalive answered " + std::to_string(r->status) + ": " + hub_error(r->body)
                                   : "keepalive: " + httplib::to_string(r.error()));
                }
            } catch (const std::exception& e) {
                try {
                    note_failure(e.what());
                } catch (...) {  // NOLINT(bugprone-empty-catch): out of memory; retry next period
                }
            }
            lock.lock();
        }
    }

    std::string m_url;
    HubLeaseOptions m_options;
    std::unique_ptr<httplib::Client> m_http;  // the constructor's, then the keepalive thread's, then stop's
    HubConfig m_config;
    std::atomic<std::chrono::milliseconds> m_lease_ttl{std::chrono::milliseconds(0)};
    std::chrono::milliseconds m_interval{0};
    std::atomic<bool> m_resync{false};
    std::atomic<std::uint64_t> m_keepalives{0};
    std::atomic<std::uint64_t> m_keepalive_failures{0};
    std::atomic<std::uint64_t> m_reregistrations{0};
    mutable std::mutex m_mutex;
    std::condition_variable m_wake;
    bool m_stopped = false;
    std::atomic<bool> m_unregistered{false};
    std::string m_last_error;
    std::thread m_keepalive;
};

/// A transport publisher `P` (ZmqPublisher, NatsPublisher, ...) tied to a HubLease: publishes
/// through `P`, and asks for a resync when either the lease was taken again (the hub had
/// swept this worker) or `P` itself asks (a hub or broker reconnection). Both must outlive it.
template <Publisher P>
class LeasedPublisher {
public:
    LeasedPublisher(HubLease& lease, P& publisher) noexcept : m_lease(&lease), m_publisher(&publisher) {}

    PublishResult publish(std::string_view subject, std::span<const std::uint8_t> bytes) noexcept {
        return m_publisher->publish(subject, bytes);
    }
    PublishResult flush() noexcept { return m_publisher->flush(); }

    /// True when the lease or the transport asks for the live set again; both requests are
    /// taken (so neither is asked for twice).
    [[nodiscard]] bool take_resync_request() noexcept {
        const bool lease = m_lease->take_resync_request();
        if constexpr (ResyncSignalling<P>) {
            return m_publisher->take_resync_request() || lease;
        } else {
            return lease;
        }
    }

    [[nodiscard]] HubLease& lease() noexcept { return *m_lease; }
    [[nodiscard]] P& publisher() noexcept { return *m_publisher; }

private:
    HubLease* m_lease;
    P* m_publisher;
};

KVBM_NAMESPACE_END
