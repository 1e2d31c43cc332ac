/// @file kvbm/nats_connection.hpp
/// What the NATS publisher and hub share (target kvbm::nats, needs nats.c, Debian's
/// libnats-dev): connection options a deployment needs (several servers, credentials,
/// TLS, reconnect behaviour), subject naming as in the reference (`"{prefix}.{subject}"`),
/// the error type, and owning handles for nats.c's objects.
#pragma once

#include <kvbm/config.hpp>
#include <kvbm/topics.hpp>

#include <nats/nats.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

KVBM_NAMESPACE_BEGIN

/// The events subject of the reference's events publisher (before any prefix).
inline constexpr std::string_view nats_events_subject = kv_events_subject;
/// Where a hub asks workers to resync (before any prefix): a kvbm extension, see
/// NatsPublisher. Workers of the Rust reference do not listen to it.
inline constexpr std::string_view nats_resync_subject = "kvbm.resync";

/// The wire subject of `subject` under `prefix`, as the reference's `NatsConfig` forms it:
/// `"{prefix}.{subject}"` when a prefix is set, `subject` otherwise.
[[nodiscard]] inline std::string nats_subject(std::string_view prefix, std::string_view subject) {
    std::string out;
    out.reserve(prefix.size() + 1 + subject.size());
    if (!prefix.empty()) {
        out.append(prefix);
        out.push_back('.');
    }
    out.append(subject);
    return out;
}

/// TLS settings (nats.c is built with OpenSSL on Debian). Files are PEM.
struct NatsTlsOptions {
    /// Require TLS (also implied by a `tls://` URL).
    bool enabled = false;
    /// CA certificates to trust; empty: the system's defaults.
    std::string ca_file;
    /// Client certificate chain and key, for servers that verify clients.
    std::string cert_file;
    std::string key_file;
    /// Host name expected in the server's certificate; empty: the URL's host.
    std::string expected_hostname;
    /// Accept any server certificate (tests only: it defeats TLS's purpose).
    bool skip_server_verification = false;
};

/// How to reach the NATS servers. Defaults follow nats.c (and the reference's async-nats):
/// reconnect forever, 2 s between attempts to the same server, an 8 MiB buffer for what is
/// published while reconnecting.
struct NatsConnectionOptions {
    /// Server URLs ("nats://127.0.0.1:4222", "tls://host:4443", "nats://user:pw@host:4222");
    /// the client tries them in order (no shuffling) and fails over between them.
    std::vector<std::string> servers{"nats://127.0.0.1:4222"};
    /// Credentials: user and password, or a token (not both).
    std::string user;
    std::string password;
    std::string token;
    NatsTlsOptions tls;
    /// Connection name shown by the server's monitoring.
    std::string name;
    /// Timeout of each connection attempt.
    std::chrono::milliseconds connect_timeout{2000};
    /// Wait between reconnect attempts to the same server.
    std::chrono::milliseconds reconnect_wait{2000};
    /// Reconnect attempts per server before giving up and closing; -1: forever.
    int max_reconnect = -1;
    /// Bytes the client keeps for messages published while reconnecting; once full,
    /// publishes fail (and are counted) until the connection is back.
    int reconnect_buffer_bytes = 8 * 1024 * 1024;
    /// When the first connection fails: true keeps trying in the background (publishes are
    /// buffered as while reconnecting), false makes the constructor throw.
    bool retry_on_failed_connect = false;
};

/// A nats.c call failed: the status, its text and the library's last error detail.
class NatsError : public std::runtime_error {
public:
    NatsError(natsStatus status, const std::string& what) : std::runtime_error(what), m_status(status) {}
    [[nodiscard]] natsStatus status() const noexcept { return m_status; }

private:
    natsStatus m_status;
};

namespace detail {

/// "what: status text (detail)" for a failed nats.c call; reads the calling thread's last
/// error, so call it right after the failure.
[[nodiscard]] inline std::string nats_describe(std::string_view what, natsStatus status) {
    std::string out(what);
    out += ": ";
    out += natsStatus_GetText(status);
    natsStatus last = NATS_OK;
    const char* detail = nats_GetLastError(&last);
    if (detail != nullptr && *detail != '\0' && std::string_view(detail) != natsStatus_GetText(status)) {
        out += " (";
        out += detail;
        out += ')';
    }
    return out;
}

inline void nats_check(natsStatus status, std::string_view what) {
    if (status != NATS_OK) {
        throw NatsError(status, nats_describe(what, status));
    }
}

struct NatsOptionsDeleter {
    void operator()(natsOptions* p) const noexcept { natsOptions_Destroy(p); }
};
struct NatsConnectionDeleter {
    void operator()(natsConnection* p) const noexcept {
        natsConnection_Close(p);
        natsConnection_Destroy(p);
    }
};
struct NatsSubscriptionDeleter {
    void operator()(natsSubscription* p) const noexcept { natsSubscription_Destroy(p); }
};
struct NatsMsgDeleter {
    void operator()(natsMsg* p) const noexcept { natsMsg_Destroy(p); }
};
struct NatsStatisticsDeleter {
    void operator()(natsStatistics* p) const noexcept { natsStatistics_Destroy(p); }
};

using nats_options_ptr = std::unique_ptr<natsOptions, NatsOptionsDeleter>;
using nats_connection_ptr = std::unique_ptr<natsConnection, NatsConnectionDeleter>;
using nats_subscription_ptr = std::unique_ptr<natsSubscription, NatsSubscriptionDeleter>;
using nats_msg_ptr = std::unique_ptr<natsMsg, NatsMsgDeleter>;
using nats_statistics_ptr = std::unique_ptr<natsStatistics, NatsStatisticsDeleter>;

/// nats.c's options for `o`. Throws NatsError (e.g. a malformed URL, TLS unsupported).
[[nodiscard]] inline nats_options_ptr make_nats_options(const NatsConnectionOptions& o) {
    if (o.servers.empty()) {
        throw std::invalid_argument("kvbm: NatsConnectionOptions::servers is empty");
    }
    if (!o.token.empty() && !o.user.empty()) {
        throw std::invalid_argument("kvbm: NatsConnectionOptions: set user/password or token, not both");
    }
    natsOptions* raw = nullptr;
    nats_check(natsOptions_Create(&raw), "kvbm: natsOptions_Create");
    nats_options_ptr opts(raw);
    std::vector<const char*> urls;
    urls.reserve(o.servers.size());
    for (const auto& s : o.servers) {
        urls.push_back(s.c_str());
    }
    nats_check(natsOptions_SetServers(opts.get(), urls.data(), static_cast<int>(urls.size())), "kvbm: NATS servers");
    nats_check(natsOptions_SetNoRandomize(opts.get(), true), "kvbm: NATS no-randomize");
    if (!o.user.empty() || !o.password.empty()) {
        nats_check(natsOptions_SetUserInfo(opts.get(), o.user.c_str(), o.password.c_str()), "kvbm: NATS user");
    }
    if (!o.token.empty()) {
        nats_check(natsOptions_SetToken(opts.get(), o.token.c_str()), "kvbm: NATS token");
    }
    if (!o.name.empty()) {
        nats_check(natsOptions_SetName(opts.get(), o.name.c_str()), "kvbm: NATS name");
    }
    if (o.tls.enabled) {
        nats_check(natsOptions_SetSecure(opts.get(), true), "kvbm: NATS TLS");
    }
    if (!o.tls.ca_file.empty()) {
        nats_check(natsOptions_LoadCATrustedCertificates(opts.get(), o.tls.ca_file.c_str()), "kvbm: NATS TLS CA file");
    }
    if (!o.tls.cert_file.empty() || !o.tls.key_file.empty()) {
        nats_check(natsOptions_LoadCertificatesChain(opts.get(), o.tls.cert_file.c_str(), o.tls.key_file.c_str()),
                   "kvbm: NATS TLS certificate chain");
    }
    if (!o.tls.expected_hostname.empty()) {
        nats_check(natsOptions_SetExpectedHostname(opts.get(), o.tls.expected_hostname.c_str()),
                   "kvbm: NATS TLS host name");
    }
    if (o.tls.skip_server_verification) {
        nats_check(natsOptions_SkipServerVerification(opts.get(), true), "kvbm: NATS TLS verification");
    }
    nats_check(natsOptions_SetTimeout(opts.get(), static_cast<int64_t>(o.connect_timeout.count())),
               "kvbm: NATS connect timeout");
    nats_check(natsOptions_SetAllowReconnect(opts.get(), true), "kvbm: NATS reconnect");
    nats_check(natsOptions_SetMaxReconnect(opts.get(), o.max_reconnect), "kvbm: NATS max reconnect");
    nats_check(natsOptions_SetReconnectWait(opts.get(), static_cast<int64_t>(o.reconnect_wait.count())),
               "kvbm: NATS reconnect wait");
    nats_check(natsOptions_SetReconnectBufSize(opts.get(), o.reconnect_buffer_bytes), "kvbm: NATS reconnect buffer");
    if (o.retry_on_failed_connect) {
        nats_check(natsOptions_SetRetryOnFailedConnect(opts.get(), true, nullptr, nullptr),
                   "kvbm: NATS retry on failed connect");
    }
    return opts;
}

/// Connects with `o`. Throws NatsError when no server answers (unless
/// `o.retry_on_failed_connect`).
[[nodiscard]] inline nats_connection_ptr nats_connect(const NatsConnectionOptions& o) {
    const auto opts = make_nats_options(o);
    natsConnection* raw = nullptr;
    const natsStatus s = natsConnection_Connect(&raw, opts.get());
    // With retry_on_failed_connect, NATS_NOT_YET_CONNECTED is a usable connection.
    if (s != NATS_OK && !(s == NATS_NOT_YET_CONNECTED && o.retry_on_failed_connect)) {
        std::string servers;
        for (const auto& url : o.servers) {
            servers += servers.empty() ? url : ", " + url;
        }
        throw NatsError(s, nats_describe("kvbm: cannot connect to NATS at " + servers, s));
    }
    return nats_connection_ptr(raw);
}

/// The client's reconnection count (0 if it cannot be read). Any thread.
[[nodiscard]] inline std::uint64_t nats_reconnects(natsConnection* nc) noexcept {
    natsStatistics* raw = nullptr;
    if (natsStatistics_Create(&raw) != NATS_OK) {
        return 0;
    }
    const nats_statistics_ptr stats(raw);
    std::uint64_t n = 0;
    if (natsConnection_GetStats(nc, stats.get()) == NATS_OK) {
        (void)natsStatistics_GetCounts(stats.get(), nullptr, nullptr, nullptr, nullptr, &n);
    }
    return n;
}

/// Counts the connection's reconnections, without callbacks (whose closures nats.c may call
/// after the connection is closed): reads the client's statistics on the caller's thread.
class NatsReconnectWatch {
public:
    NatsReconnectWatch() {
        natsStatistics* raw = nullptr;
        nats_check(natsStatistics_Create(&raw), "kvbm: natsStatistics_Create");
        m_stats.reset(raw);
    }

    /// True once per reconnection since the last call. One thread at a time.
    [[nodiscard]] bool reconnected_since_last(natsConnection* nc) noexcept {
        std::uint64_t n = m_seen;
        if (natsConnection_GetStats(nc, m_stats.get()) == NATS_OK) {
            (void)natsStatistics_GetCounts(m_stats.get(), nullptr, nullptr, nullptr, nullptr, &n);
        }
        const bool changed = n != m_seen;
        m_seen = n;
        return changed;
    }

private:
    nats_statistics_ptr m_stats;
    std::uint64_t m_seen = 0;
};

}  // namespace detail

KVBM_NAMESPACE_END
