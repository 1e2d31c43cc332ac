// kvbm-hub's HTTP API, independent of any socket: the discovery routes of the Rust hub
// (SPEC section 10) under /v1/features/indexer and /v1/features/kv-index, kvbm's
// registration with leases under /v1/instances, /health and /metrics. `HubApi::handle`
// takes a method, a path, a bearer token and a body and returns a status and a body; the
// HTTP server (hub_server.hpp) is a thin loop over it, and kvbm-demo's in-process hub runs
// the same code.
//
// Bad input never changes state: every handler validates the whole request before it
// touches the index or the leases, and answers 400 with {"error": "..."} naming the field.
#pragma once

#include <kvbm/detail/json_reader.hpp>
#include <kvbm/hash.hpp>
#include <kvbm/index.hpp>
#include <kvbm/metrics.hpp>
#include <kvbm/uint128.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace kvbm_hub {

using Hash = kvbm::PositionalLineageHash;
using kvbm::InstanceId;
using kvbm::Uint128;
using Clock = std::chrono::steady_clock;

/// The leases of registered instances. An instance is registered until it unregisters or
/// its lease runs out (no keepalive within the TTL). Thread-safe.
class LeaseTable {
public:
    explicit LeaseTable(std::chrono::milliseconds ttl) : m_ttl(ttl) {}

    [[nodiscard]] std::chrono::milliseconds ttl() const noexcept { return m_ttl; }

    /// Registers `id` (or renews it when already registered); true when it is new.
    bool grant(const InstanceId& id, Clock::time_point now) {
        std::lock_guard lock(m_mutex);
        const bool fresh = m_expiry.insert_or_assign(id, now + m_ttl).second;
        m_changed.notify_all();
        return fresh;
    }

    /// Renews the lease of `id`; false when `id` is not registered.
    bool renew(const InstanceId& id, Clock::time_point now) {
        std::lock_guard lock(m_mutex);
        const auto it = m_expiry.find(id);
        if (it == m_expiry.end()) {
            return false;
        }
        it->second = now + m_ttl;
        return true;
    }

    /// Whether `id` holds a lease (registered, not yet expired by the sweeper).
    [[nodiscard]] bool contains(const InstanceId& id) const {
        std::lock_guard lock(m_mutex);
        return m_expiry.contains(id);
    }

    /// Ends the lease of `id`; false when it was not registered.
    bool revoke(const InstanceId& id) {
        std::lock_guard lock(m_mutex);
        return m_expiry.erase(id) != 0;
    }

    /// The registered instances, sorted.
    [[nodiscard]] std::vector<InstanceId> ids() const {
        std::lock_guard lock(m_mutex);
        std::vector<InstanceId> out;
        out.reserve(m_expiry.size());
        for (const auto& kv : m_expiry) {
            out.push_back(kv.first);
        }
        return out;
    }

    [[nodiscard]] std::size_t size() const {
        std::lock_guard lock(m_mutex);
        return m_expiry.size();
    }

    /// Waits until a lease expires (then removes and returns the expired ones), `stop` turns
    /// true (returns empty), or a grant changes the earliest expiry (returns empty). Call it
    /// in a loop from one sweeping thread; `wake()` after setting `stop`.
    [[nodiscard]] std::vector<InstanceId> wait_expired(const std::atomic<bool>& stop) {
        std::unique_lock lock(m_mutex);
        for (;;) {
            if (stop.load()) {
                return {};
            }
            const auto now = Clock::now();
            std::vector<InstanceId> expired;
            auto next = Clock::time_point::max();
            for (auto it = m_expiry.begin(); it != m_expiry.end();) {
                if (it->second <= now) {
                    expired.push_back(it->first);
                    it = m_expiry.erase(it);
                } else {
                    next = std::min(next, it->second);
                    ++it;
                }
            }
            if (!expired.empty()) {
                return expired;
            }
            if (next == Clock::time_point::max()) {
                m_changed.wait(lock);
            } else {
                m_changed.wait_until(lock, next);
            }
        }
    }

    /// Wakes wait_expired (e.g. to stop).
    void wake() {
        std::lock_guard lock(m_mutex);
        m_changed.notify_all();
    }

private:
    std::chrono::milliseconds m_ttl;
    mutable std::mutex m_mutex;
    std::condition_variable m_changed;
    std::map<InstanceId, Clock::time_point> m_expiry;
};

/// The registered instances in a file, so that a hub restarted with its index (a JetStream
/// snapshot) also knows who was registered: it gives each a fresh lease, which a live worker
/// keeps renewing and a worker that died while the hub was down lets run out (and is swept).
/// Without it such a worker's blocks would come back with the snapshot and stay for good.
/// The file may lag the truth either way, which is safe: an instance missing from it gets a
/// 404 on its next keepalive and registers again (and resyncs); an instance listed after it
/// left is swept one TTL after the restart. Text: a header line, then one u128 per line.
class LeaseFile {
public:
    static constexpr std::string_view header = "kvbm-hub leases 1";

    explicit LeaseFile(std::string path) : m_path(std::move(path)) {}

    [[nodiscard]] const std::string& path() const noexcept { return m_path; }

    /// The ids in the file: empty when there is no file; throws std::runtime_error naming the
    /// line when it is not one this hub wrote (nothing is granted from a file half-read).
    [[nodiscard]] std::vector<InstanceId> load() const {
        std::ifstream in(m_path);
        if (!in) {
            return {};
        }
        std::string line;
        if (!std::getline(in, line) || line != header) {
            throw std::runtime_error(m_path + ": line 1: expected '" + std::string(header) + "'");
        }
        std::vector<InstanceId> ids;
        for (std::size_t n = 2; std::getline(in, line); ++n) {
            InstanceId id;
            const auto [end, ec] = kvbm::from_chars(line.data(), line.data() + line.size(), id);
            if (ec != std::errc{} || end != line.data() + line.size()) {
                throw std::runtime_error(m_path + ": line " + std::to_string(n) + ": not a u128 decimal");
            }
            ids.push_back(id);
        }
        return ids;
    }

    /// Replaces the file with `ids` (atomically: a crash leaves the old or the new file).
    /// Returns false (and leaves the old file) when it cannot be written.
    bool save(const std::vector<InstanceId>& ids) const {
        const std::string tmp = m_path + ".tmp";
        {
            std::ofstream out(tmp, std::ios::trunc);
            out << header << '\n';
            for (const auto& id : ids) {
                out << id.to_string() << '\n';
            }
            out.flush();
            if (!out) {
                return false;
            }
        }
        return std::rename(tmp.c_str(), m_path.c_str()) == 0;
    }

private:
    std::string m_path;
};

/// The routes of the API, the label of `kvbm_hub_http_requests_total{route=...}`.
enum class Route : std::uint8_t {
    config,
    instances,
    by_position,
    query,
    kv_config,
    kv_instances,
    kv_by_position,
    kv_query,
    register_instance,
    keepalive,
    unregister,
    health,
    metrics,
    unmatched,
    count_
};

inline constexpr std::array<std::string_view, static_cast<std::size_t>(Route::count_)> route_labels = {
    "/v1/features/indexer/config",
    "/v1/features/indexer/instances",
    "/v1/features/indexer/hashes/by_position/{pos}",
    "/v1/features/indexer/query",
    "/v1/features/kv-index/config",
    "/v1/features/kv-index/instances",
    "/v1/features/kv-index/hashes/by_position/{pos}",
    "/v1/features/kv-index/query",
    "/v1/instances",
    "/v1/instances/{id}/keepalive",
    "/v1/instances/{id}",
    "/health",
    "/metrics",
    "unmatched",
};

/// Requests per (route, status code), lock-free.
class HttpCounters {
public:
    void count(Route route, int status) noexcept {
        m_counts[static_cast<std::size_t>(route)][slot(status)].fetch_add(1, std::memory_order_relaxed);
    }

    [[nodiscard]] std::uint64_t get(Route route, int status) const noexcept {
        return m_counts[static_cast<std::size_t>(route)][slot(status)].load(std::memory_order_relaxed);
    }

    /// `kvbm_hub_http_requests_total{route, code}` for every pair seen at least once.
    template <class Visitor>
    void for_each_metric(Visitor&& visit) const {
        for (std::size_t r = 0; r < m_counts.size(); ++r) {
            for (std::size_t s = 0; s < codes.size(); ++s) {
                const std::uint64_t n = m_counts[r][s].load(std::memory_order_relaxed);
                if (n != 0) {
                    kvbm::detail::visit_metric(
                        visit, "kvbm_hub_http_requests_total", "HTTP requests answered, by route and status code.",
                        kvbm::MetricKind::counter, {{"route", route_labels[r]}, {"code", code_labels[s]}},
                        static_cast<double>(n));
                }
            }
        }
    }

private:
    static constexpr std::array<int, 11> codes = {200, 400, 401, 404, 405, 408, 413, 414, 431, 500, 0};
    static constexpr std::array<std::string_view, 11> code_labels = {"200", "400", "401", "404", "405",  "408",
                                                                     "413", "414", "431", "500", "other"};
    static std::size_t slot(int status) noexcept {
        for (std::size_t i = 0; i + 1 < codes.size(); ++i) {
            if (codes[i] == status) {
                return i;
            }
        }
        return codes.size() - 1;
    }

    std::array<std::array<std::atomic<std::uint64_t>, codes.size()>, static_cast<std::size_t>(Route::count_)>
        m_counts{};
};

/// One answer of the API.
struct ApiResponse {
    ApiResponse() = default;
    ApiResponse(int status_, std::string body_) : status(status_), body(std::move(body_)) {}

    int status = 200;
    std::string body;
    std::string_view content_type = "application/json";
    std::string_view allow;  ///< for 405: the methods the route takes
    bool www_authenticate = false;
};

/// The settings the API answers with.
struct ApiOptions {
    std::uint64_t block_size = 16;
    std::uint64_t max_seq_len = 65536;
    std::chrono::milliseconds lease_ttl{10000};
    /// The advertised ingest endpoint (GET /config's zmq_endpoint).
    std::string zmq_endpoint;
    /// The hub's CURVE public key (Z85) when ingest needs CURVE; GET /config then adds it as
    /// `zmq_curve_server_key` (absent otherwise, so the shape stays the Rust hub's).
    std::string zmq_curve_server_key;
    /// When set, the registration routes require `Authorization: Bearer <token>`.
    std::optional<std::string> control_token;
    /// When set, batches of an instance without a live lease are dropped (counted in
    /// kvbm_hub_batches_dropped_unleased_total): every block in the index then belongs to a
    /// leased worker, so every dead worker leaves the view. Off by default, as on the Rust
    /// hub, whose workers do not register with kvbm's control plane.
    bool require_lease = false;
};

/// `{"error":"..."}`.
[[nodiscard]] inline ApiResponse error_response(int status, std::string_view message) {
    ApiResponse r;
    r.status = status;
    r.body = "{\"error\":";
    kvbm::detail::append_json_string(r.body, message);
    r.body += '}';
    return r;
}

/// The JSON of one index entry (SPEC section 10's IndexEntry).
inline void append_entry(std::string& out, const kvbm::IndexMatch<Hash>& m) {
    out += "{\"hash\":";
    kvbm::detail::append_json_string(out, m.hash.to_string());
    out += ",\"hash_u128\":\"";
    out += m.hash.raw().to_string();
    out += "\",\"position\":";
    out += std::to_string(m.position);
    out += ",\"instances\":[";
    for (std::size_t i = 0; i < m.holders.size(); ++i) {
        out += i == 0 ? "\"" : ",\"";
        out += m.holders[i].to_string();
        out += '"';
    }
    out += "]}";
}

/// The hub's API over an index and a lease table. Every member may be called from any
/// number of threads at once (the HTTP server's pool). `metrics_text` renders /metrics.
class HubApi {
public:
    using MetricsRenderer = std::function<std::string()>;

    HubApi(kvbm::PositionalIndex<Hash>& index, LeaseTable& leases, ApiOptions options)
        : m_index(index), m_leases(leases), m_options(std::move(options)) {}

    /// Sets what GET /metrics answers (Prometheus text); called once before serving.
    void set_metrics_renderer(MetricsRenderer renderer) { m_render_metrics = std::move(renderer); }
    /// Sets the advertised ingest endpoint; called once before serving.
    void set_zmq_endpoint(std::string endpoint) { m_options.zmq_endpoint = std::move(endpoint); }
    /// Sets what runs after the set of registered instances changed (a new registration, an
    /// unregistration, a sweep; not a renewal), e.g. to save it; called once before serving.
    void set_leases_changed(std::function<void()> changed) { m_leases_changed = std::move(changed); }

    [[nodiscard]] const HttpCounters& http_counters() const noexcept { return m_http; }
    [[nodiscard]] const ApiOptions& options() const noexcept { return m_options; }

    /// Registrations, unregistrations and lease expiries so far.
    [[nodiscard]] std::uint64_t registrations() const noexcept { return m_registrations.load(); }
    /// Instances registered now (live leases).
    [[nodiscard]] std::size_t registered() const { return m_leases.size(); }
    [[nodiscard]] std::uint64_t unregistrations() const noexcept { return m_unregistrations.load(); }
    [[nodiscard]] std::uint64_t leases_expired() const noexcept { return m_leases_expired.load(); }
    /// Index holdings removed by unregistrations and lease expiries.
    [[nodiscard]] std::uint64_t swept_entries() const noexcept { return m_swept_entries.load(); }

    /// The ingest's sink: applies a decoded batch to the index, unless its instance was swept
    /// or unregistered within the last `tombstone_ttl()`. Such a batch is a late one from a
    /// worker that is gone (still queued in a socket or a broker when its lease ran out):
    /// applying it would bring the dead worker's blocks back, and nothing would ever sweep
    /// them again (it holds no lease). A worker that is in fact alive learns on its next
    /// keepalive (404) that it was swept, registers again, which lifts the tombstone, and
    /// resyncs. Instances that never registered are applied as the Rust hub does, unless
    /// `require_lease` is set. Returns false when the batch was dropped (counted in
    /// kvbm_hub_batches_dropped_swept_total or kvbm_hub_batches_dropped_unleased_total).
    bool apply(const kvbm::KvbmCacheEvents<Hash>& batch) {
        {
            std::lock_guard lock(m_apply_mutex);  // a sweep cannot fall between check and apply
            if (buried(batch.instance_id, Clock::now())) {
                m_dropped_swept.fetch_add(1);
                return false;
            }
            if (m_options.require_lease && !m_leases.contains(batch.instance_id)) {
                m_dropped_unleased.fetch_add(1);
                return false;
            }
            m_index.apply(batch);
        }
        std::lock_guard lock(m_applied_mutex);
        ++m_applied[batch.instance_id];
        return true;
    }

    /// Unregisters and sweeps every instance whose lease ran out (the sweeper's work).
    void sweep_expired(const std::vector<InstanceId>& expired) {
        for (const auto& id : expired) {
            m_swept_entries.fetch_add(bury_and_sweep(id));
            m_leases_expired.fetch_add(1);
        }
        if (!expired.empty()) {
            leases_changed();
        }
    }

    /// How long a swept or unregistered instance's late batches are dropped: six lease TTLs,
    /// at least a minute (a batch is late by milliseconds; a live worker re-registers within
    /// one keepalive interval).
    [[nodiscard]] std::chrono::milliseconds tombstone_ttl() const noexcept {
        return std::max<std::chrono::milliseconds>(std::chrono::minutes(1), 6 * m_leases.ttl());
    }
    [[nodiscard]] std::uint64_t batches_dropped_swept() const noexcept { return m_dropped_swept.load(); }
    /// Batches dropped by `require_lease`: their instance held no lease.
    [[nodiscard]] std::uint64_t batches_dropped_unleased() const noexcept { return m_dropped_unleased.load(); }

    /// Answers one request. `bearer` is the token of an `Authorization: Bearer` header
    /// (nullopt without one). Counts the answer under its route and status.
    [[nodiscard]] ApiResponse handle(std::string_view method, std::string_view path,
                                     const std::optional<std::string_view>& bearer, std::string_view body) {
        Route route = Route::unmatched;
        ApiResponse r;
        try {
            r = dispatch(method, path, bearer, body, route);
        } catch (const std::exception& e) {
            r = error_response(500, std::string("internal error: ") + e.what());
        }
        m_http.count(route, r.status);
        return r;
    }

    /// Counts an answer the HTTP layer made itself (413 body too large, 400 bad request line).
    void count_transport_error(std::string_view path, int status) noexcept { m_http.count(classify(path), status); }

    /// The route a path belongs to, whatever the method.
    [[nodiscard]] static Route classify(std::string_view path) noexcept {
        std::string_view rest;
        bool kv = false;
        if (strip(path, "/v1/features/indexer/", rest) || (kv = strip(path, "/v1/features/kv-index/", rest))) {
            const auto pick = [kv](Route indexer, Route kv_index) { return kv ? kv_index : indexer; };
            if (rest == "config") {
                return pick(Route::config, Route::kv_config);
            }
            if (rest == "instances") {
                return pick(Route::instances, Route::kv_instances);
            }
            if (rest == "query") {
                return pick(Route::query, Route::kv_query);
            }
            std::string_view pos;
            if (strip(rest, "hashes/by_position/", pos) && !pos.empty() && pos.find('/') == pos.npos) {
                return pick(Route::by_position, Route::kv_by_position);
            }
            return Route::unmatched;
        }
        if (path == "/v1/instances") {
            return Route::register_instance;
        }
        if (strip(path, "/v1/instances/", rest) && !rest.empty()) {
            const auto slash = rest.find('/');
            if (slash == rest.npos) {
                return Route::unregister;
            }
            return rest.substr(slash) == "/keepalive" && slash > 0 ? Route::keepalive : Route::unmatched;
        }
        if (path == "/health") {
            return Route::health;
        }
        if (path == "/metrics") {
            return Route::metrics;
        }
        return Route::unmatched;
    }

    /// For /metrics: gauges and counters the API itself keeps (leases, registrations).
    template <class Visitor>
    void for_each_metric(Visitor&& visit) const {
        using kvbm::MetricKind;
        using kvbm::detail::visit_metric;
        visit_metric(visit, "kvbm_hub_instances", "Instances registered with a live lease.", MetricKind::gauge,
                     static_cast<double>(m_leases.size()));
        visit_metric(visit, "kvbm_hub_registrations_total", "Registrations (POST /v1/instances) of a new instance.",
                     MetricKind::counter, static_cast<double>(m_registrations.load()));
        visit_metric(visit, "kvbm_hub_unregistrations_total", "Instances unregistered by DELETE /v1/instances/{id}.",
                     MetricKind::counter, static_cast<double>(m_unregistrations.load()));
        visit_metric(visit, "kvbm_hub_leases_expired_total", "Instances unregistered because their lease ran out.",
                     MetricKind::counter, static_cast<double>(m_leases_expired.load()));
        visit_metric(visit, "kvbm_hub_swept_entries_total",
                     "Index holdings removed by unregistration or lease expiry (the sweep).", MetricKind::counter,
                     static_cast<double>(m_swept_entries.load()));
        visit_metric(visit, "kvbm_hub_batches_dropped_swept_total",
                     "Batches dropped because their instance was swept or unregistered shortly before (late "
                     "batches of a worker that is gone).",
                     MetricKind::counter, static_cast<double>(m_dropped_swept.load()));
        visit_metric(visit, "kvbm_hub_batches_dropped_unleased_total",
                     "Batches dropped because their instance held no lease (kvbm-hub --require-lease).",
                     MetricKind::counter, static_cast<double>(m_dropped_unleased.load()));
        m_http.for_each_metric(visit);
    }

private:
    static bool strip(std::string_view s, std::string_view prefix, std::string_view& rest) noexcept {
        if (!s.starts_with(prefix)) {
            return false;
        }
        rest = s.substr(prefix.size());
        return true;
    }

    static ApiResponse method_not_allowed(std::string_view method, std::string_view path, std::string_view allow) {
        ApiResponse r = error_response(405, "method " + std::string(method) + " is not allowed on " +
                                                std::string(path) + " (use " + std::string(allow) + ")");
        r.allow = allow;
        return r;
    }

    ApiResponse dispatch(std::string_view method, std::string_view path, const std::optional<std::string_view>& bearer,
                         std::string_view body, Route& route) {
        route = classify(path);
        const bool get = method == "GET" || method == "HEAD";
        const bool post = method == "POST";
        switch (route) {
            case Route::config:
            case Route::kv_config:
                return get ? config() : method_not_allowed(method, path, "GET");
            case Route::instances:
            case Route::kv_instances:
                return get ? instances() : method_not_allowed(method, path, "GET");
            case Route::by_position:
            case Route::kv_by_position:
                return get ? by_position(path.substr(path.rfind('/') + 1)) : method_not_allowed(method, path, "GET");
            case Route::query:
            case Route::kv_query:
                return post ? query(body) : method_not_allowed(method, path, "POST");
            case Route::register_instance:
                if (!post) {
                    return method_not_allowed(method, path, "POST");
                }
                return authorized(bearer) ? register_instance(body) : unauthorized();
            case Route::keepalive: {
                if (!post) {
                    return method_not_allowed(method, path, "POST");
                }
                const std::string_view rest = path.substr(std::string_view("/v1/instances/").size());
                return authorized(bearer) ? keepalive(rest.substr(0, rest.find('/'))) : unauthorized();
            }
            case Route::unregister:
                if (get) {
                    return instance_info(path.substr(std::string_view("/v1/instances/").size()));
                }
                if (method != "DELETE") {
                    return method_not_allowed(method, path, "GET, DELETE");
                }
                return authorized(bearer) ? unregister(path.substr(std::string_view("/v1/instances/").size()))
                                          : unauthorized();
            case Route::health:
                return get ? ApiResponse{200, "{\"status\":\"ok\"}"} : method_not_allowed(method, path, "GET");
            case Route::metrics: {
                if (!get) {
                    return method_not_allowed(method, path, "GET");
                }
                ApiResponse r;
                r.body = m_render_metrics ? m_render_metrics() : std::string();
                r.content_type = "text/plain; version=0.0.4; charset=utf-8";
                return r;
            }
            case Route::unmatched:
            case Route::count_:
                break;
        }
        return error_response(404, "no route " + std::string(method) + " " + std::string(path));
    }

    [[nodiscard]] bool authorized(const std::optional<std::string_view>& bearer) const noexcept {
        if (!m_options.control_token) {
            return true;
        }
        if (!bearer) {
            return false;
        }
        // Constant time in the token's content: a timing probe learns only its length.
        const std::string& want = *m_options.control_token;
        if (bearer->size() != want.size()) {
            return false;
        }
        unsigned char diff = 0;
        for (std::size_t i = 0; i < want.size(); ++i) {
            diff = static_cast<unsigned char>(
                diff | (static_cast<unsigned char>((*bearer)[i]) ^ static_cast<unsigned char>(want[i])));
        }
        return diff == 0;
    }

    static ApiResponse unauthorized() {
        ApiResponse r = error_response(401, "this route needs 'Authorization: Bearer <control token>'");
        r.www_authenticate = true;
        return r;
    }

    ApiResponse config() const {
        const std::uint64_t max_seq_len = m_index.max_seq_len();
        std::string out = "{\"max_seq_len\":" + std::to_string(max_seq_len) +
                          ",\"block_size\":" + std::to_string(m_index.block_size()) +
                          ",\"num_positions\":" + std::to_string(max_seq_len / m_index.block_size()) +
                          ",\"zmq_endpoint\":";
        kvbm::detail::append_json_string(out, m_options.zmq_endpoint);
        if (!m_options.zmq_curve_server_key.empty()) {
            out += ",\"zmq_curve_server_key\":";
            kvbm::detail::append_json_string(out, m_options.zmq_curve_server_key);
        }
        out += '}';
        return {200, std::move(out)};
    }

    ApiResponse instances() const {
        std::string out = "{\"instances\":[";
        const auto ids = m_leases.ids();
        for (std::size_t i = 0; i < ids.size(); ++i) {
            out += i == 0 ? "\"" : ",\"";
            out += ids[i].to_string();
            out += '"';
        }
        out += "]}";
        return {200, std::move(out)};
    }

    ApiResponse by_position(std::string_view text) const {
        Uint128 pos;
        if (text.size() > 1 && text[0] == '0') {
            return error_response(400, "pos: '" + std::string(text) + "' has leading zeros");
        }
        if (!kvbm::detail::JsonReader::digits(text, pos) || pos.high() != 0) {
            return error_response(400, "pos: '" + std::string(text.substr(0, 64)) +
                                           "' is not a position (an unsigned 64-bit decimal integer)");
        }
        std::string out = "{\"position\":" + std::to_string(pos.low()) + ",\"entries\":[";
        const auto entries = m_index.by_position(pos.low());
        for (std::size_t i = 0; i < entries.size(); ++i) {
            if (i != 0) {
                out += ',';
            }
            append_entry(out, entries[i]);
        }
        out += "]}";
        return {200, std::move(out)};
    }

    /// One SequenceHash of a request: a JSON integer (kvbm 1.2), an array of its 16
    /// big-endian bytes (1.3+) or a decimal string.
    static bool read_hash(kvbm::detail::JsonReader& in, std::size_t i, Hash& out) {
        const auto what = [i] { return "hashes[" + std::to_string(i) + "]"; };
        Uint128 raw;
        switch (in.peek()) {
            case '[': {
                std::array<std::uint8_t, 16> bytes{};
                std::size_t n = 0;
                const bool ok = in.array([&](std::size_t j) {
                    std::uint64_t b = 0;
                    if (j >= 16) {
                        return in.fail(what() + ": an array hash has exactly 16 bytes, this one has more");
                    }
                    if (!in.u64(b, what() + "[" + std::to_string(j) + "]")) {
                        return false;
                    }
                    if (b > 255) {
                        return in.fail(what() + "[" + std::to_string(j) + "]: " + std::to_string(b) + " is not a byte");
                    }
                    bytes[j] = static_cast<std::uint8_t>(b);
                    n = j + 1;
                    return true;
                });
                if (!ok) {
                    return false;
                }
                if (n != 16) {
                    return in.fail(what() + ": an array hash has exactly 16 bytes, this one has " + std::to_string(n));
                }
                raw = Uint128::from_be_bytes(std::span<const std::uint8_t, 16>(bytes));
                break;
            }
            case '"': {
                std::string text;
                if (!in.string(text)) {
                    return false;
                }
                if ((text.size() > 1 && text[0] == '0') || !kvbm::detail::JsonReader::digits(text, raw)) {
                    return in.fail(what() + ": the string '" + text.substr(0, 64) +
                                   "' is not a decimal u128 without leading zeros");
                }
                break;
            }
            default:
                if (!in.u128(raw, what())) {
                    return false;
                }
        }
        out = Hash::from_raw(raw);
        return true;
    }

    ApiResponse query(std::string_view body) const {
        kvbm::detail::JsonReader in(body);
        std::vector<Hash> hashes;
        bool have_hashes = false;
        const bool ok = in.object([&](std::string_view key) {
            if (key != "hashes") {
                return in.skip_value();  // unknown fields are ignored, as serde does
            }
            if (have_hashes) {
                return in.fail("hashes: duplicate field");
            }
            have_hashes = true;
            if (in.peek() != '[') {
                return in.fail("hashes: expected an array of hashes");
            }
            return in.array([&](std::size_t i) {
                Hash h;
                if (!read_hash(in, i, h)) {
                    return false;
                }
                hashes.push_back(h);
                return true;
            });
        });
        if (!ok || !in.at_end()) {
            return error_response(400, "invalid query body: " + in.error());
        }
        if (!have_hashes) {
            return error_response(400, "hashes: missing field (expected {\"hashes\": [...]})");
        }
        const auto hit = m_index.query(hashes);
        if (!hit) {
            return {200, "{\"hit\":null}"};
        }
        std::string out = "{\"hit\":";
        append_entry(out, *hit);
        out += '}';
        return {200, std::move(out)};
    }

    /// An instance id in a body: a decimal string (the documented form) or a JSON integer.
    static bool read_instance_id(kvbm::detail::JsonReader& in, InstanceId& id) {
        if (in.peek() == '"') {
            std::string text;
            if (!in.string(text)) {
                return false;
            }
            if ((text.size() > 1 && text[0] == '0') || !kvbm::detail::JsonReader::digits(text, id)) {
                return in.fail("instance_id: '" + text.substr(0, 64) + "' is not a u128 decimal string");
            }
            return true;
        }
        return in.u128(id, "instance_id");
    }

    static bool parse_id_path(std::string_view text, InstanceId& id) {
        return !(text.size() > 1 && text[0] == '0') && kvbm::detail::JsonReader::digits(text, id);
    }

    ApiResponse register_instance(std::string_view body) {
        kvbm::detail::JsonReader in(body);
        std::optional<InstanceId> id;
        std::optional<std::uint64_t> block_size;
        std::optional<std::uint64_t> max_seq_len;
        const bool ok = in.object([&](std::string_view key) {
            const auto dup = [&](std::string_view name) { return in.fail(std::string(name) + ": duplicate field"); };
            if (key == "instance_id") {
                if (id) {
                    return dup(key);
                }
                InstanceId v;
                if (!read_instance_id(in, v)) {
                    return false;
                }
                id = v;
                return true;
            }
            if (key == "block_size" || key == "max_seq_len") {
                auto& slot = key == "block_size" ? block_size : max_seq_len;
                if (slot) {
                    return dup(key);
                }
                std::uint64_t v = 0;
                if (!in.u64(v, key)) {
                    return false;
                }
                slot = v;
                return true;
            }
            return in.skip_value();
        });
        if (!ok || !in.at_end()) {
            return error_response(400, "invalid registration body: " + in.error());
        }
        if (!id) {
            return error_response(400, "instance_id: missing field (a u128 decimal string)");
        }
        const std::uint64_t hub_block_size = m_index.block_size();
        if (!block_size) {
            return error_response(400, "block_size: missing field (this hub indexes blocks of " +
                                           std::to_string(hub_block_size) + " tokens)");
        }
        if (*block_size != hub_block_size) {
            return error_response(400, "block_size: " + std::to_string(*block_size) +
                                           " differs from this hub's block size " + std::to_string(hub_block_size));
        }
        if (max_seq_len && (*max_seq_len == 0 || *max_seq_len % hub_block_size != 0)) {
            return error_response(400, "max_seq_len: " + std::to_string(*max_seq_len) +
                                           " is not a positive multiple of the block size " +
                                           std::to_string(hub_block_size));
        }
        if (max_seq_len && *max_seq_len > m_index.max_seq_len()) {
            std::lock_guard lock(m_grow_mutex);  // two registrations growing at once: the larger wins
            if (*max_seq_len > m_index.max_seq_len()) {
                m_index.grow(*max_seq_len);
            }
        }
        {
            std::lock_guard lock(m_apply_mutex);
            m_tombstones.erase(*id);  // registered again: its batches count from now on
        }
        if (m_leases.grant(*id, Clock::now())) {
            m_registrations.fetch_add(1);
            leases_changed();
        }
        return {200, lease_body(*id)};
    }

    [[nodiscard]] std::string lease_body(const InstanceId& id) const {
        return "{\"instance_id\":\"" + id.to_string() +
               "\",\"lease_ttl_ms\":" + std::to_string(m_leases.ttl().count()) + "}";
    }

    ApiResponse keepalive(std::string_view text) {
        InstanceId id;
        if (!parse_id_path(text, id)) {
            return error_response(400, "id: '" + std::string(text.substr(0, 64)) + "' is not a u128 decimal");
        }
        if (!m_leases.renew(id, Clock::now())) {
            return error_response(
                404, "instance " + id.to_string() + " is not registered (its lease may have expired): register again");
        }
        return {200, lease_body(id)};
    }

    /// GET /v1/instances/{id}: kvbm's own view of one instance (registration, entries held,
    /// batches applied), e.g. for a worker to check that what it published has arrived.
    ApiResponse instance_info(std::string_view text) {
        InstanceId id;
        if (!parse_id_path(text, id)) {
            return error_response(400, "id: '" + std::string(text.substr(0, 64)) + "' is not a u128 decimal");
        }
        std::uint64_t applied = 0;
        {
            std::lock_guard lock(m_applied_mutex);
            const auto it = m_applied.find(id);
            applied = it == m_applied.end() ? 0 : it->second;
        }
        const auto registered = m_leases.ids();
        const bool is_registered = std::binary_search(registered.begin(), registered.end(), id);
        const std::size_t entries = m_index.entries_of(id);
        if (!is_registered && entries == 0 && applied == 0) {
            return error_response(404, "instance " + id.to_string() + " is unknown to this hub");
        }
        return {200, "{\"instance_id\":\"" + id.to_string() + "\",\"registered\":" +
                         (is_registered ? "true" : "false") + ",\"entries\":" + std::to_string(entries) +
                         ",\"batches_applied\":" + std::to_string(applied) + "}"};
    }

    ApiResponse unregister(std::string_view text) {
        InstanceId id;
        if (!parse_id_path(text, id)) {
            return error_response(400, "id: '" + std::string(text.substr(0, 64)) + "' is not a u128 decimal");
        }
        if (!m_leases.revoke(id)) {
            return error_response(404, "instance " + id.to_string() + " is not registered");
        }
        const std::size_t n = bury_and_sweep(id);
        m_unregistrations.fetch_add(1);
        leases_changed();
        m_swept_entries.fetch_add(n);
        return {200, "{\"instance_id\":\"" + id.to_string() + "\",\"removed_entries\":" + std::to_string(n) + "}"};
    }

    // Removes `id` from the index and drops its batches for tombstone_ttl(); returns the
    // holdings removed. Forgets its batch count (ids may be chosen by strangers: nothing
    // per instance outlives the instance, except the bounded-time tombstone).
    std::size_t bury_and_sweep(const InstanceId& id) {
        std::size_t n = 0;
        {
            std::lock_guard lock(m_apply_mutex);
            const auto now = Clock::now();
            std::erase_if(m_tombstones, [now](const auto& kv) { return kv.second <= now; });
            m_tombstones.insert_or_assign(id, now + tombstone_ttl());
            n = m_index.remove_instance(id);
        }
        std::lock_guard lock(m_applied_mutex);
        m_applied.erase(id);
        return n;
    }

    void leases_changed() {
        if (m_leases_changed) {
            m_leases_changed();
        }
    }

    // Under m_apply_mutex.
    [[nodiscard]] bool buried(const InstanceId& id, Clock::time_point now) const {
        if (m_tombstones.empty()) {
            return false;
        }
        const auto it = m_tombstones.find(id);
        return it != m_tombstones.end() && it->second > now;
    }

    kvbm::PositionalIndex<Hash>& m_index;
    LeaseTable& m_leases;
    ApiOptions m_options;
    MetricsRenderer m_render_metrics;
    std::function<void()> m_leases_changed;
    HttpCounters m_http;
    std::mutex m_grow_mutex;
    std::mutex m_applied_mutex;
    std::map<InstanceId, std::uint64_t> m_applied;  // batches applied per instance ever seen
    std::atomic<std::uint64_t> m_registrations{0};
    std::atomic<std::uint64_t> m_unregistrations{0};
    std::atomic<std::uint64_t> m_leases_expired{0};
    std::atomic<std::uint64_t> m_swept_entries{0};
    std::atomic<std::uint64_t> m_dropped_swept{0};
    std::atomic<std::uint64_t> m_dropped_unleased{0};
    std::mutex m_apply_mutex;                              // orders applies against sweeps
    std::map<InstanceId, Clock::time_point> m_tombstones;  // swept or unregistered: until when
};

}  // namespace kvbm_hub
