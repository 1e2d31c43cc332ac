// kvbm-demo's hub: a PositionalIndex fed by a kvbm::ZmqHub, plus a small query service
// (ZeroMQ REQ/REP) through which the router asks for the deepest cached prefix and the
// checker reads the hub's view. The query protocol is the demo's own, not Dynamo's:
//
//   request  [ "query",    N x 16-byte big-endian hashes ]
//   reply    [ "match",    8-byte big-endian position + 16-byte hash, K x 16-byte holder ids ]
//         or [ "none" ]
//   request  [ "holdings", 16-byte instance id ]   reply [ "holdings", M x 16-byte hashes ]
//   request  [ "stats" ]                           reply [ "stats", JSON text ]
//   any error                                      reply [ "error", text ]
#pragma once

#include <kvbm/index.hpp>
#include <kvbm/zmq.hpp>
#ifdef KVBM_DEMO_HAVE_NATS
#include <kvbm/nats_hub.hpp>
#endif

#include <nlohmann/json.hpp>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace kvbm_demo {

using Hash = kvbm::PositionalLineageHash;

inline void put_u128(std::vector<std::uint8_t>& out, const kvbm::Uint128& v) {
    const auto b = v.to_be_bytes();
    out.insert(out.end(), b.begin(), b.end());
}

inline kvbm::Uint128 get_u128(const std::uint8_t* p) {
    return kvbm::Uint128::from_be_bytes(std::span<const std::uint8_t, 16>(p, 16));
}

/// The hub's view as the checker reads it.
struct HubStats {
    std::uint64_t entries = 0;
    std::uint64_t holdings = 0;
    std::uint64_t batches_applied = 0;
    std::uint64_t events_applied = 0;
    std::uint64_t rejected = 0;
    std::uint64_t creates_beyond_capacity = 0;
    std::map<kvbm::Uint128, std::uint64_t> applied_by_instance;  // batches per instance

    /// Batches the hub applied for `id` (0 if it never heard of it).
    [[nodiscard]] std::uint64_t applied(const kvbm::InstanceId& id) const {
        const auto it = applied_by_instance.find(id);
        return it == applied_by_instance.end() ? 0 : it->second;
    }
};

/// The hub: ingest over ZeroMQ into an index, and the query service. Both run on their own
/// threads until destruction.
class DemoHub {
public:
    DemoHub(std::uint64_t max_seq_len, std::uint64_t block_size, const std::string& bind_events,
            const std::string& bind_queries)
        : m_index(max_seq_len, block_size),
          m_ingest([this](const kvbm::KvbmCacheEvents<Hash>& batch) { apply(batch); }, ingest_options(bind_events)),
          m_query_socket(m_context, zmq::socket_type::rep) {
        m_query_socket.set(zmq::sockopt::linger, 0);
        m_query_socket.bind(bind_queries);
        m_query_endpoint = m_query_socket.get(zmq::sockopt::last_endpoint);
        m_query_thread = std::thread([this] { serve_queries(); });
    }

    DemoHub(const DemoHub&) = delete;
    DemoHub& operator=(const DemoHub&) = delete;

    ~DemoHub() {
        m_stop.store(true);
        m_query_thread.join();
#ifdef KVBM_DEMO_HAVE_NATS
        m_nats.reset();
#endif
        m_ingest.stop();
    }

    [[nodiscard]] const std::string& events_endpoint() const { return m_ingest.endpoint(); }

#ifdef KVBM_DEMO_HAVE_NATS
    /// Also reads batches from the NATS server at `url` (into the same index and counts).
    void add_nats(const std::string& url) {
        kvbm::NatsHubOptions o;
        o.connection.servers = {url};
        o.connection.reconnect_wait = std::chrono::milliseconds(100);
        m_nats = std::make_unique<kvbm::NatsHub<Hash>>(
            [this](const kvbm::KvbmCacheEvents<Hash>& batch) { apply(batch); }, o);
    }
#endif
    [[nodiscard]] const std::string& query_endpoint() const { return m_query_endpoint; }

    [[nodiscard]] HubStats stats() const {
        HubStats s;
        const auto idx = m_index.stats();
        const auto ingest = m_ingest.stats();
        s.entries = idx.entries;
        s.holdings = idx.holdings;
        s.creates_beyond_capacity = idx.creates_beyond_capacity;
        s.batches_applied = ingest.batches_applied;
        s.events_applied = ingest.events_applied;
        s.rejected = ingest.rejected();
#ifdef KVBM_DEMO_HAVE_NATS
        if (m_nats) {
            const auto n = m_nats->stats();
            s.batches_applied += n.batches_applied;
            s.events_applied += n.events_applied;
            s.rejected += n.rejected();
        }
#endif
        std::lock_guard lock(m_mutex);
        s.applied_by_instance = m_applied;
        return s;
    }

    [[nodiscard]] static nlohmann::json to_json(const HubStats& s) {
        nlohmann::json by_instance = nlohmann::json::object();
        for (const auto& [id, n] : s.applied_by_instance) {
            by_instance[id.to_string()] = n;
        }
        return {{"entries", s.entries},
                {"holdings", s.holdings},
                {"batches_applied", s.batches_applied},
                {"events_applied", s.events_applied},
                {"rejected", s.rejected},
                {"creates_beyond_capacity", s.creates_beyond_capacity},
                {"applied_by_instance", by_instance}};
    }

private:
    static kvbm::ZmqHubOptions ingest_options(const std::string& bind) {
        kvbm::ZmqHubOptions o;
        o.bind = bind;
        return o;
    }

    void apply(const kvbm::KvbmCacheEvents<Hash>& batch) {
        m_index.apply(batch);
        std::lock_guard lock(m_mutex);
        ++m_applied[batch.instance_id];
    }

    void serve_queries() {
        zmq::pollitem_t item{m_query_socket.handle(), 0, ZMQ_POLLIN, 0};
        while (!m_stop.load()) {
            if (zmq::poll(&item, 1, std::chrono::milliseconds(50)) == 0) {
                continue;
            }
            std::vector<zmq::message_t> request;
            if (!zmq::recv_multipart(m_query_socket, std::back_inserter(request))) {
                continue;
            }
            std::vector<zmq::message_t> reply;
            try {
                reply = answer(request);
            } catch (const std::exception& e) {
                reply.clear();
                reply.emplace_back(std::string_view("error"));
                reply.emplace_back(std::string_view(e.what()));
            }
            zmq::send_multipart(m_query_socket, reply);
        }
    }

    std::vector<zmq::message_t> answer(const std::vector<zmq::message_t>& request) {
        std::vector<zmq::message_t> reply;
        const std::string command = request.empty() ? "" : request[0].to_string();
        const auto payload = [&]() -> std::span<const std::uint8_t> {
            if (request.size() < 2) {
                return {};
            }
            return {request[1].data<std::uint8_t>(), request[1].size()};
        }();
        if (command == "query") {
            if (payload.size() % 16 != 0) {
                throw std::invalid_argument("query payload is not a whole number of 16-byte hashes");
            }
            std::vector<Hash> hashes;
            for (std::size_t i = 0; i < payload.size(); i += 16) {
                hashes.push_back(Hash::from_raw(get_u128(payload.data() + i)));
            }
            const auto match = m_index.query(hashes);
            if (!match) {
                reply.emplace_back(std::string_view("none"));
                return reply;
            }
            std::vector<std::uint8_t> head;
            for (int shift = 56; shift >= 0; shift -= 8) {
                head.push_back(static_cast<std::uint8_t>(match->position >> shift));
            }
            put_u128(head, match->hash.raw());
            std::vector<std::uint8_t> holders;
            for (const auto& id : match->holders) {
                put_u128(holders, id);
            }
            reply.emplace_back(std::string_view("match"));
            reply.emplace_back(head.data(), head.size());
            reply.emplace_back(holders.data(), holders.size());
        } else if (command == "holdings") {
            if (payload.size() != 16) {
                throw std::invalid_argument("holdings payload is not one 16-byte instance id");
            }
            const auto id = get_u128(payload.data());
            std::vector<std::uint8_t> out;
            for (const auto& entry : m_index.snapshot()) {
                if (std::binary_search(entry.holders.begin(), entry.holders.end(), id)) {
                    put_u128(out, entry.hash.raw());
                }
            }
            reply.emplace_back(std::string_view("holdings"));
            reply.emplace_back(out.data(), out.size());
        } else if (command == "stats") {
            const auto text = to_json(stats()).dump();
            reply.emplace_back(std::string_view("stats"));
            reply.emplace_back(text.data(), text.size());
        } else {
            throw std::invalid_argument("unknown command '" + command + "'");
        }
        return reply;
    }

    kvbm::PositionalIndex<Hash> m_index;
    mutable std::mutex m_mutex;
    std::map<kvbm::Uint128, std::uint64_t> m_applied;
    kvbm::ZmqHub<Hash> m_ingest;  // after the index and m_applied: its thread uses them
#ifdef KVBM_DEMO_HAVE_NATS
    std::unique_ptr<kvbm::NatsHub<Hash>> m_nats;  // the same
#endif
    zmq::context_t m_context;
    zmq::socket_t m_query_socket;
    std::string m_query_endpoint;
    std::atomic<bool> m_stop{false};
    std::thread m_query_thread;
};

/// The router's and checker's side of the query service. One thread at a time.
class HubClient {
public:
    explicit HubClient(const std::string& endpoint) : m_socket(m_context, zmq::socket_type::req) {
        m_socket.set(zmq::sockopt::linger, 0);
        m_socket.set(zmq::sockopt::rcvtimeo, 10000);  // a hub gone quiet is an error, not a hang
        m_socket.connect(endpoint);
    }

    struct Match {
        std::uint64_t position = 0;
        Hash hash;
        std::vector<kvbm::InstanceId> holders;
    };

    [[nodiscard]] std::optional<Match> query(std::span<const Hash> hashes) {
        std::vector<std::uint8_t> payload;
        payload.reserve(hashes.size() * 16);
        for (const auto& h : hashes) {
            put_u128(payload, h.raw());
        }
        const auto reply = call("query", payload);
        if (reply[0].to_string_view() == "none") {
            return std::nullopt;
        }
        if (reply.size() != 3 || reply[1].size() != 24 || reply[2].size() % 16 != 0) {
            throw std::runtime_error("hub: malformed query reply");
        }
        Match m;
        const auto* head = reply[1].data<std::uint8_t>();
        for (int i = 0; i < 8; ++i) {
            m.position = (m.position << 8) | head[i];
        }
        m.hash = Hash::from_raw(get_u128(head + 8));
        for (std::size_t i = 0; i < reply[2].size(); i += 16) {
            m.holders.push_back(get_u128(reply[2].data<std::uint8_t>() + i));
        }
        return m;
    }

    [[nodiscard]] std::vector<Hash> holdings(const kvbm::InstanceId& id) {
        std::vector<std::uint8_t> payload;
        put_u128(payload, id);
        const auto reply = call("holdings", payload);
        std::vector<Hash> out;
        for (std::size_t i = 0; reply.size() == 2 && i + 16 <= reply[1].size(); i += 16) {
            out.push_back(Hash::from_raw(get_u128(reply[1].data<std::uint8_t>() + i)));
        }
        return out;
    }

    [[nodiscard]] HubStats stats() {
        const auto reply = call("stats", {});
        const auto j = nlohmann::json::parse(reply.at(1).to_string_view());
        HubStats s;
        s.entries = j.at("entries");
        s.holdings = j.at("holdings");
        s.batches_applied = j.at("batches_applied");
        s.events_applied = j.at("events_applied");
        s.rejected = j.at("rejected");
        s.creates_beyond_capacity = j.at("creates_beyond_capacity");
        for (const auto& [id, n] : j.at("applied_by_instance").items()) {
            s.applied_by_instance[kvbm::Uint128::parse(id)] = n.get<std::uint64_t>();
        }
        return s;
    }

private:
    std::vector<zmq::message_t> call(std::string_view command, const std::vector<std::uint8_t>& payload) {
        std::vector<zmq::message_t> request;
        request.emplace_back(command);
        request.emplace_back(payload.data(), payload.size());
        zmq::send_multipart(m_socket, request);
        std::vector<zmq::message_t> reply;
        if (!zmq::recv_multipart(m_socket, std::back_inserter(reply)) || reply.empty()) {
            throw std::runtime_error("hub: no answer to '" + std::string(command) + "' within 10 s");
        }
        if (reply[0].to_string_view() == "error") {
            throw std::runtime_error("hub: " + (reply.size() > 1 ? reply[1].to_string() : std::string("error")));
        }
        return reply;
    }

    zmq::context_t m_context;
    zmq::socket_t m_socket;
};

}  // namespace kvbm_demo
