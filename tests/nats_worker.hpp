// Test helpers for NATS hub tests: option presets, a raw client, and ModelWorker, a worker
// that publishes a random register/release workload through a NatsPublisher, keeps the
// model of what it holds, and answers resync requests with Shutdown + its live set (what
// EventsPublisher does when its transport signals a resync).
#pragma once

#include "nats_helpers.hpp"

#include <kvbm/index.hpp>
#include <kvbm/nats_hub.hpp>
#include <kvbm/nats_publisher.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace kvbm_test {

using namespace std::chrono_literals;

inline kvbm::NatsPublisherOptions publisher_options(const NatsServer& server, std::string prefix = {}) {
    kvbm::NatsPublisherOptions o;
    o.connection.servers = {server.url()};
    o.connection.reconnect_wait = 50ms;
    o.subject_prefix = std::move(prefix);
    return o;
}

inline kvbm::NatsHubOptions hub_options(const NatsServer& server, std::string prefix = {}) {
    kvbm::NatsHubOptions o;
    o.connection.servers = {server.url()};
    o.connection.reconnect_wait = 50ms;
    o.subject_prefix = std::move(prefix);
    return o;
}

/// Polls `pred` every 5 ms until it holds or `timeout` passes.
template <class Pred>
bool eventually(Pred&& pred, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > deadline) {
            return false;
        }
        std::this_thread::sleep_for(5ms);
    }
    return true;
}

/// A plain nats.c client publishing raw payloads.
struct RawClient {
    kvbm::detail::nats_connection_ptr nc;

    explicit RawClient(const NatsServer& server) {
        kvbm::NatsConnectionOptions o;
        o.servers = {server.url()};
        nc = kvbm::detail::nats_connect(o);
    }
    void publish(const std::string& subject, std::string_view payload) {
        kvbm::detail::nats_check(
            natsConnection_Publish(nc.get(), subject.c_str(), payload.data(), static_cast<int>(payload.size())),
            "publish");
        kvbm::detail::nats_check(natsConnection_FlushTimeout(nc.get(), 10000), "flush");
    }
    void publish(const std::string& subject, const std::vector<std::uint8_t>& payload) {
        publish(subject, std::string_view(reinterpret_cast<const char*>(payload.data()), payload.size()));
    }
};

/// The hashes `id` holds in `index`.
inline std::set<Plh> holdings_of(const kvbm::PositionalIndex<>& index, kvbm::InstanceId id) {
    std::set<Plh> out;
    for (const auto& e : index.snapshot()) {
        for (const auto& h : e.holders) {
            if (h == id) {
                out.insert(e.hash);
            }
        }
    }
    return out;
}

class ModelWorker {
public:
    ModelWorker(kvbm::NatsPublisherOptions options, kvbm::InstanceId id, std::uint64_t seed)
        : m_pub(std::move(options)), m_id(id), m_rng(seed), m_marker(0xfeedULL + seed, std::nullopt, 0) {}
    ModelWorker(const ModelWorker&) = delete;
    ModelWorker& operator=(const ModelWorker&) = delete;
    ~ModelWorker() {
        m_stop.store(true);
        if (m_thread.joinable()) {
            m_thread.join();
        }
    }

    void start() {
        m_thread = std::thread([this] { run(); });
    }

    /// Ends the workload: the worker publishes a marker (a Create at position 0 only it
    /// sends) after its last step, and from then on only answers resync requests (until
    /// destroyed). Returns once the marker is published.
    void stop() {
        m_paused.store(true);
        while (!m_marker_sent.load()) {
            std::this_thread::sleep_for(1ms);  // the worker's thread publishes it
        }
    }

    /// Publishes attempted (successful or not).
    [[nodiscard]] std::uint64_t batches() const { return m_batches.load(); }
    [[nodiscard]] std::uint64_t resyncs() const { return m_resyncs.load(); }
    [[nodiscard]] std::set<Plh> live() const {
        std::lock_guard lock(m_mutex);
        return m_live;
    }
    [[nodiscard]] bool marker_seen(const kvbm::PositionalIndex<>& index) const {
        const auto holders = index.holders(m_marker);
        return std::find(holders.begin(), holders.end(), m_id) != holders.end();
    }
    [[nodiscard]] kvbm::NatsPublisher& publisher() { return m_pub; }

    /// Shutdown, then the live set (in chunks of 1024, by position).
    void resync() {
        std::lock_guard lock(m_mutex);
        (void)m_pub.publish("kvbm.events", encoded_batch(shutdown(m_id)));
        std::vector<Plh> all(m_live.begin(), m_live.end());
        std::sort(all.begin(), all.end(), [](const Plh& a, const Plh& b) { return a.position() < b.position(); });
        for (std::size_t i = 0; i < all.size(); i += 1024) {
            const auto end = all.begin() + static_cast<std::ptrdiff_t>(std::min(all.size(), i + 1024));
            (void)m_pub.publish("kvbm.events",
                                encoded_batch(creates(m_id, {all.begin() + static_cast<std::ptrdiff_t>(i), end})));
        }
        ++m_resyncs;
    }

    /// One random step: a new chain of blocks registered, or some live blocks released.
    void step() {
        std::lock_guard lock(m_mutex);
        if (m_live.size() < 400 && (m_rng() % 3 != 0 || m_live.empty())) {
            auto c = chain(m_rng(), 1 + m_rng() % 12);
            m_live.insert(c.begin(), c.end());
            (void)m_pub.publish("kvbm.events", encoded_batch(creates(m_id, std::move(c))));
        } else {
            std::vector<Plh> gone;
            for (auto it = m_live.begin(); it != m_live.end() && gone.size() < 8;) {
                if (m_rng() % 4 == 0 && !(*it == m_marker)) {
                    gone.push_back(*it);
                    it = m_live.erase(it);
                } else {
                    ++it;
                }
            }
            (void)m_pub.publish("kvbm.events", encoded_batch(removes(m_id, std::move(gone))));
        }
        ++m_batches;
    }

private:
    void run() {
        while (!m_stop.load()) {
            if (m_pub.take_resync_request()) {
                resync();
            }
            if (!m_paused.load()) {
                step();
            } else if (!m_marker_sent.load()) {
                {
                    std::lock_guard lock(m_mutex);
                    m_live.insert(m_marker);
                    (void)m_pub.publish("kvbm.events", encoded_batch(creates(m_id, {m_marker})));
                }
                (void)m_pub.flush();
                m_marker_sent.store(true);
            }
            std::this_thread::sleep_for(1ms);  // pacing (a workload rate), not synchronisation
        }
    }

    kvbm::NatsPublisher m_pub;
    kvbm::InstanceId m_id;
    std::mt19937_64 m_rng;
    Plh m_marker;
    mutable std::mutex m_mutex;
    std::set<Plh> m_live;
    std::atomic<bool> m_stop{false};
    std::atomic<bool> m_paused{false};
    std::atomic<bool> m_marker_sent{false};
    std::atomic<std::uint64_t> m_batches{0};
    std::atomic<std::uint64_t> m_resyncs{0};
    std::thread m_thread;
};

}  // namespace kvbm_test
