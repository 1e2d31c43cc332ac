// kvbm-demo's hub is kvbm-hub's own server (examples/kvbm-hub/hub_server.hpp): the
// in-process default runs the same code as the `kvbm-hub` service. The router and the
// checker talk to it only over kvbm-hub's HTTP API, as a Dynamo router or an operator
// script would:
//
//   POST /v1/features/indexer/query              the deepest cached prefix, and who holds it
//   GET  /v1/features/indexer/hashes/by_position  every entry, position by position (the checker)
//   GET  /v1/instances/{id}                       batches applied for one worker
//   GET  /metrics                                 entries, batches, events, rejected frames
#pragma once

#include "../kvbm-hub/hub_server.hpp"

#include <kvbm/detail/json_reader.hpp>

#include <httplib.h>

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace kvbm_demo {

using Hash = kvbm::PositionalLineageHash;

/// The hub's counters as the checker reads them (from /metrics).
struct HubStats {
    std::uint64_t entries = 0;
    std::uint64_t batches_applied = 0;
    std::uint64_t events_applied = 0;
    std::uint64_t rejected = 0;
    std::uint64_t instances = 0;  // registered
};

/// The router's and checker's HTTP client of a kvbm-hub. One thread at a time.
class HubHttp {
public:
    explicit HubHttp(const std::string& url) : m_http(url) {
        if (!m_http.is_valid()) {
            throw std::invalid_argument("not an http://HOST:PORT URL: " + url);
        }
        m_http.set_keep_alive(true);
        m_http.set_tcp_nodelay(true);  // headers and body are two writes: no Nagle + delayed-ACK stall
        m_http.set_read_timeout(10, 0);
        m_http.set_connection_timeout(10, 0);
    }

    struct Match {
        std::uint64_t position = 0;
        Hash hash;
        std::vector<kvbm::InstanceId> holders;
    };

    /// POST /v1/features/indexer/query with the hashes as JSON integers (kvbm 1.2's form).
    [[nodiscard]] std::optional<Match> query(std::span<const Hash> hashes) {
        std::string body = "{\"hashes\":[";
        for (std::size_t i = 0; i < hashes.size(); ++i) {
            if (i != 0) {
                body += ',';
            }
            body += hashes[i].raw().to_string();
        }
        body += "]}";
        const std::string text = call_post("/v1/features/indexer/query", body);
        kvbm::detail::JsonReader in(text);
        std::optional<Match> out;
        const bool ok = in.object([&](std::string_view key) {
            if (key != "hit") {
                return in.skip_value();
            }
            if (in.peek() == 'n') {
                return in.null();
            }
            Match m;
            if (!read_entry(in, m)) {
                return false;
            }
            out = std::move(m);
            return true;
        });
        if (!ok) {
            throw std::runtime_error("hub: unreadable query answer (" + in.error() + "): " + text.substr(0, 200));
        }
        return out;
    }

    /// The whole index by instance: every position's entries (GET .../hashes/by_position).
    [[nodiscard]] std::map<kvbm::InstanceId, std::set<Hash>> holdings() {
        const std::uint64_t positions = config_value("num_positions");
        std::map<kvbm::InstanceId, std::set<Hash>> out;
        for (std::uint64_t p = 0; p < positions; ++p) {
            const std::string text = call_get("/v1/features/indexer/hashes/by_position/" + std::to_string(p));
            kvbm::detail::JsonReader in(text);
            const bool ok = in.object([&](std::string_view key) {
                if (key != "entries") {
                    return in.skip_value();
                }
                return in.array([&](std::size_t) {
                    Match m;
                    if (!read_entry(in, m)) {
                        return false;
                    }
                    for (const auto& id : m.holders) {
                        out[id].insert(m.hash);
                    }
                    return true;
                });
            });
            if (!ok) {
                throw std::runtime_error("hub: unreadable by_position answer: " + in.error());
            }
        }
        return out;
    }

    /// Batches the hub applied for `id` (GET /v1/instances/{id}; 0 when it never heard of it).
    [[nodiscard]] std::uint64_t applied(const kvbm::InstanceId& id) {
        const auto r = m_http.Get(("/v1/instances/" + id.to_string()).c_str());
        if (r && r->status == 404) {
            return 0;
        }
        const std::string text = checked(r, "GET /v1/instances/{id}");
        kvbm::detail::JsonReader in(text);
        std::uint64_t n = 0;
        const bool ok = in.object(
            [&](std::string_view key) { return key == "batches_applied" ? in.u64(n, key) : in.skip_value(); });
        if (!ok) {
            throw std::runtime_error("hub: unreadable instance answer: " + in.error());
        }
        return n;
    }

    /// Counters from /metrics (Prometheus text: `name{labels} value` lines).
    [[nodiscard]] HubStats stats() {
        std::istringstream lines(call_get("/metrics"));
        HubStats s;
        std::string line;
        while (std::getline(lines, line)) {
            if (line.empty() || line[0] == '#') {
                continue;
            }
            const auto space = line.rfind(' ');
            const std::string name = line.substr(0, std::min(line.find('{'), space));
            const auto value = static_cast<std::uint64_t>(std::stod(line.substr(space + 1)));
            if (name == "kvbm_hub_index_entries") {
                s.entries = value;
            } else if (name == "kvbm_hub_batches_applied_total") {
                s.batches_applied = value;
            } else if (name == "kvbm_hub_events_applied_total") {
                s.events_applied = value;
            } else if (name == "kvbm_hub_frames_rejected_total") {
                s.rejected += value;
            } else if (name == "kvbm_hub_instances") {
                s.instances = value;
            }
        }
        return s;
    }

private:
    static bool read_entry(kvbm::detail::JsonReader& in, Match& m) {
        return in.object([&](std::string_view key) {
            std::string text;
            if (key == "hash_u128") {
                kvbm::Uint128 raw;
                if (!in.string(text) || !kvbm::detail::JsonReader::digits(text, raw)) {
                    return in.fail("hash_u128");
                }
                m.hash = Hash::from_raw(raw);
                return true;
            }
            if (key == "position") {
                return in.u64(m.position, key);
            }
            if (key == "instances") {
                return in.array([&](std::size_t) {
                    kvbm::InstanceId id;
                    if (!in.string(text) || !kvbm::detail::JsonReader::digits(text, id)) {
                        return in.fail("instances");
                    }
                    m.holders.push_back(id);
                    return true;
                });
            }
            return in.skip_value();
        });
    }

    std::uint64_t config_value(std::string_view field) {
        const std::string text = call_get("/v1/features/indexer/config");
        kvbm::detail::JsonReader in(text);
        std::uint64_t v = 0;
        const bool ok =
            in.object([&](std::string_view key) { return key == field ? in.u64(v, key) : in.skip_value(); });
        if (!ok) {
            throw std::runtime_error("hub: unreadable /config: " + in.error());
        }
        return v;
    }

    static std::string checked(const httplib::Result& r, std::string_view what) {
        if (!r) {
            throw std::runtime_error("hub: " + std::string(what) + ": " + httplib::to_string(r.error()));
        }
        if (r->status != 200) {
            throw std::runtime_error("hub: " + std::string(what) + " answered " + std::to_string(r->status) + ": " +
                                     r->body.substr(0, 200));
        }
        return r->body;
    }

    std::string call_get(const std::string& path) { return checked(m_http.Get(path.c_str()), "GET " + path); }
    std::string call_post(const std::string& path, const std::string& body) {
        return checked(m_http.Post(path.c_str(), body, "application/json"), "POST " + path);
    }

    httplib::Client m_http;
};

}  // namespace kvbm_demo
