// kvbm-hub's authenticated ingest: ZeroMQ CURVE on the ingest socket, a ZAP handler that
// admits only listed client keys (naming each by its Z85 public key as the ZAP User-Id),
// and the binding of keys to the instance ids they may publish for.
#pragma once

#include <kvbm/events.hpp>
#include <kvbm/uint128.hpp>

#include <zmq.hpp>
#include <zmq_addon.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <fstream>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace kvbm_hub {

/// The hub's CURVE identity and the keys it admits. Immutable once loaded; thread-safe.
struct CurveConfig {
    std::string secret_key;  ///< Z85, 40 characters
    std::string public_key;  ///< Z85, derived from the secret key
    /// Z85 public key -> the instance ids that key may publish for.
    std::map<std::string, std::set<kvbm::InstanceId>, std::less<>> allowed;

    /// Whether `user_id` (a ZAP User-Id: a listed Z85 key) may publish for `id`.
    [[nodiscard]] bool may_publish(std::string_view user_id, const kvbm::InstanceId& id) const {
        const auto it = allowed.find(user_id);
        return it != allowed.end() && it->second.count(id) != 0;
    }
};

/// True when `text` is 40 characters of Z85 that decode to a 32-byte key.
[[nodiscard]] inline bool is_z85_key(const std::string& text) {
    std::array<std::uint8_t, 32> bytes{};
    return text.size() == 40 && zmq_z85_decode(bytes.data(), text.c_str()) != nullptr;
}

/// Loads --curve-secret-key (one line: the hub's Z85 secret key) and --curve-allow (lines
/// `PUBLIC_KEY INSTANCE_ID`; blank lines and `#` comments skipped). Throws
/// std::invalid_argument naming the flag, the file and the line.
[[nodiscard]] inline CurveConfig load_curve_config(const std::string& secret_file, const std::string& allow_file) {
    CurveConfig c;
    {
        std::ifstream in(secret_file);
        std::string line;
        if (!in || !std::getline(in, line)) {
            throw std::invalid_argument("--curve-secret-key: cannot read " + secret_file);
        }
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) {
            line.pop_back();
        }
        if (!is_z85_key(line)) {
            throw std::invalid_argument("--curve-secret-key: " + secret_file +
                                        " does not hold a Z85 CURVE secret key (40 characters, as zmq_curve_keypair "
                                        "makes it) on its first line");
        }
        c.secret_key = line;
        std::array<char, 41> pub{};
        if (zmq_curve_public(pub.data(), c.secret_key.c_str()) != 0) {
            throw std::invalid_argument("--curve-secret-key: this libzmq has no CURVE support");
        }
        c.public_key = pub.data();
    }
    std::ifstream in(allow_file);
    if (!in) {
        throw std::invalid_argument("--curve-allow: cannot read " + allow_file);
    }
    std::string line;
    for (int number = 1; std::getline(in, line); ++number) {
        const auto where = [&] { return "--curve-allow: " + allow_file + " line " + std::to_string(number) + ": "; };
        const auto first = line.find_first_not_of(" \t\r");
        if (first == std::string::npos || line[first] == '#') {
            continue;
        }
        std::vector<std::string> fields;
        std::size_t pos = first;
        while (pos < line.size()) {
            const auto end = line.find_first_of(" \t\r", pos);
            fields.push_back(line.substr(pos, end - pos));
            pos = end == std::string::npos ? line.size() : line.find_first_not_of(" \t\r", end);
            if (pos == std::string::npos) {
                break;
            }
        }
        if (fields.size() != 2) {
            throw std::invalid_argument(where() + "expected 'PUBLIC_KEY INSTANCE_ID'");
        }
        if (!is_z85_key(fields[0])) {
            throw std::invalid_argument(where() + "'" + fields[0] + "' is not a Z85 public key (40 characters)");
        }
        kvbm::InstanceId id;
        try {
            if (fields[1].find_first_not_of("0123456789") != std::string::npos) {
                throw std::invalid_argument("not decimal");
            }
            id = kvbm::Uint128::parse(fields[1]);
        } catch (const std::exception&) {
            throw std::invalid_argument(where() + "'" + fields[1] + "' is not an instance id (u128 decimal)");
        }
        c.allowed[fields[0]].insert(id);
    }
    if (c.allowed.empty()) {
        throw std::invalid_argument("--curve-allow: " + allow_file + " lists no key: nobody could publish");
    }
    return c;
}

/// A ZeroMQ ZAP handler (RFC 27) on `context`: admits CURVE clients whose key is listed,
/// with the Z85 key as User-Id, and refuses everything else (other mechanisms included).
/// Must be constructed before the ingest socket binds, on the same context; it ends when
/// that context is shut down or on stop().
class ZapHandler {
public:
    ZapHandler(zmq::context_t& context, const CurveConfig& config)
        : m_config(config), m_socket(context, zmq::socket_type::rep) {
        m_socket.set(zmq::sockopt::linger, 0);
        m_socket.bind("inproc://zeromq.zap.01");
        m_thread = std::thread([this] { run(); });
    }
    ZapHandler(const ZapHandler&) = delete;
    ZapHandler& operator=(const ZapHandler&) = delete;
    ~ZapHandler() { stop(); }

    void stop() noexcept {
        m_stop.store(true);
        if (m_thread.joinable()) {
            m_thread.join();
        }
    }

    [[nodiscard]] std::uint64_t admitted() const noexcept { return m_admitted.load(); }
    [[nodiscard]] std::uint64_t denied() const noexcept { return m_denied.load(); }

private:
    void run() noexcept {
        try {
            while (!m_stop.load()) {
                zmq::pollitem_t item{m_socket.handle(), 0, ZMQ_POLLIN, 0};
                if (zmq::poll(&item, 1, std::chrono::milliseconds(100)) == 0) {
                    continue;
                }
                std::vector<zmq::message_t> request;
                if (!zmq::recv_multipart(m_socket, std::back_inserter(request))) {
                    continue;
                }
                answer(request);
            }
        } catch (...) {  // NOLINT(bugprone-empty-catch): ETERM, the context is shutting down
        }
        m_socket.close();
    }

    void answer(const std::vector<zmq::message_t>& request) {
        // version, request id, domain, address, identity, mechanism, credentials...
        std::string user_id;
        const bool curve = request.size() >= 7 && request[5].to_string_view() == "CURVE" && request[6].size() == 32;
        if (curve) {
            std::array<char, 41> z85{};
            zmq_z85_encode(z85.data(), request[6].data<std::uint8_t>(), 32);
            if (m_config.allowed.count(std::string_view(z85.data())) != 0) {
                user_id = z85.data();
            }
        }
        const bool ok = !user_id.empty();
        (ok ? m_admitted : m_denied).fetch_add(1);
        std::vector<zmq::message_t> reply;
        reply.emplace_back(std::string_view("1.0"));
        reply.emplace_back(request.size() > 1 ? request[1].to_string_view() : std::string_view());
        reply.emplace_back(std::string_view(ok ? "200" : "400"));
        reply.emplace_back(std::string_view(ok ? "OK" : "key not allowed"));
        reply.emplace_back(std::string_view(user_id));
        reply.emplace_back();  // no metadata
        zmq::send_multipart(m_socket, reply);
    }

    const CurveConfig& m_config;
    zmq::socket_t m_socket;
    std::atomic<bool> m_stop{false};
    std::atomic<std::uint64_t> m_admitted{0};
    std::atomic<std::uint64_t> m_denied{0};
    std::thread m_thread;
};

}  // namespace kvbm_hub
