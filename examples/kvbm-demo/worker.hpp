// kvbm-demo's worker: a KV cache manager with a block budget and LRU eviction, wired to
// kvbm's pipeline exactly as an inference engine would be: BlockRegistry -> EventsManager
// (Create on registration, Remove when the last handle goes) -> EventsPublisher (batches,
// MessagePack) -> HubClient (registered with the hub, its lease kept alive, ZeroMQ to the
// endpoint the hub advertises), or, with --transport nats, kvbm::NatsPublisher (a NATS
// subject the hub subscribes to; a reconnection, or a hub's request, triggers a resync).
#pragma once

#include "hub_service.hpp"

#include <kvbm/events_publisher.hpp>
#include <kvbm/hub_client.hpp>
#include <kvbm/hub_lease.hpp>
#include <kvbm/manager.hpp>
#include <kvbm/registry.hpp>
#include <kvbm/zmq_publisher.hpp>
#ifdef KVBM_DEMO_HAVE_NATS
#include <kvbm/nats_publisher.hpp>
#endif

#include <algorithm>
#include <chrono>
#include <list>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace kvbm_demo {

struct WorkerConfig {
    std::size_t block_budget = 4096;  // blocks the worker's KV cache holds
};

/// What serving one request found and did.
struct ServeResult {
    std::size_t cached_prefix = 0;  // leading prompt blocks already in this worker's cache
    std::size_t registered = 0;     // blocks newly registered (each emits Create)
    std::size_t evicted = 0;        // blocks evicted (each emits Remove)
};

class SimWorker {
public:
    using Handle = kvbm::BlockRegistrationHandle<Hash>;

    /// Joins the hub at `hub_url` (kvbm::HubClient: probes /config, registers, connects and
    /// waits until the hub is subscribed, so nothing published is lost to ZeroMQ's
    /// slow-joiner gap).
    SimWorker(std::size_t index, kvbm::InstanceId id, const std::string& hub_url, std::uint64_t block_size,
              std::uint64_t max_seq_len, WorkerConfig cfg)
        : m_index(index),
          m_id(id),
          m_cfg(cfg),
          m_transport(std::make_shared<kvbm::HubClient>(hub_url, client_options(id, block_size, max_seq_len))),
          m_manager(std::make_shared<kvbm::EventsManager<Hash>>()),
          m_registry(m_manager) {
        m_publisher = std::make_unique<kvbm::EventsPublisher<>>(*m_manager, m_registry, m_transport, id);
    }

#ifdef KVBM_DEMO_HAVE_NATS
    /// Publishes through NATS and holds a lease at the hub at `hub_url` (kvbm::HubLease:
    /// probes /config, registers, keeps the lease alive), so the hub sweeps it if it dies and
    /// it resyncs if its lease was lost. `nats` is connected and its resync subscription
    /// registered (wait_connected), so a hub's resync request reaches it.
    SimWorker(std::size_t index, kvbm::InstanceId id, const std::string& hub_url, std::uint64_t block_size,
              std::uint64_t max_seq_len, std::shared_ptr<kvbm::NatsPublisher> nats, WorkerConfig cfg)
        : m_index(index),
          m_id(id),
          m_cfg(cfg),
          m_nats(std::move(nats)),
          m_lease(std::make_unique<kvbm::HubLease>(hub_url, lease_options(id, block_size, max_seq_len))),
          m_leased(std::make_shared<kvbm::LeasedPublisher<kvbm::NatsPublisher>>(*m_lease, *m_nats)),
          m_manager(std::make_shared<kvbm::EventsManager<Hash>>()),
          m_registry(m_manager) {
        m_publisher = std::make_unique<kvbm::EventsPublisher<>>(*m_manager, m_registry, m_leased, id);
    }
#endif

    SimWorker(const SimWorker&) = delete;
    SimWorker& operator=(const SimWorker&) = delete;

    ~SimWorker() {
        stop();
        m_lru.clear();
        m_cache.clear();
    }

    [[nodiscard]] const kvbm::InstanceId& id() const noexcept { return m_id; }
    [[nodiscard]] std::size_t index() const noexcept { return m_index; }
    [[nodiscard]] std::size_t cached_blocks() const noexcept { return m_cache.size(); }
    [[nodiscard]] std::uint64_t served() const noexcept { return m_served; }
    [[nodiscard]] std::uint64_t creates() const noexcept { return m_creates; }
    [[nodiscard]] std::uint64_t removes() const noexcept { return m_removes; }
    [[nodiscard]] kvbm::EventsPublisherMetrics metrics() const { return m_publisher->metrics(); }
    /// Batches the transport dropped (ZeroMQ: no peer or queue full; NATS: refused by the client).
    [[nodiscard]] std::uint64_t transport_dropped() const noexcept {
#ifdef KVBM_DEMO_HAVE_NATS
        if (m_nats) {
            return m_nats->dropped();
        }
#endif
        return m_transport->publisher().dropped();
    }

    /// Serves a request: counts the prompt's cached prefix, then makes every block of the
    /// sequence after the reply (`blocks`, prompt blocks first) resident, most recent, and
    /// evicts least-recently-used blocks down to the budget.
    ServeResult serve(std::span<const Hash> blocks, std::size_t prompt_blocks) {
        ServeResult r;
        ++m_served;
        while (r.cached_prefix < prompt_blocks && m_cache.contains(blocks[r.cached_prefix])) {
            ++r.cached_prefix;
        }
        // Deepest first, so the root ends up most recent: eviction then takes leaves before
        // the prefixes they extend, as a radix-tree KV cache does.
        for (std::size_t i = blocks.size(); i-- > 0;) {
            const Hash& h = blocks[i];
            if (auto it = m_cache.find(h); it != m_cache.end()) {
                m_lru.splice(m_lru.begin(), m_lru, it->second.lru);
                continue;
            }
            m_lru.push_front(h);
            m_cache.emplace(h, Entry{m_registry.register_hash(h), m_lru.begin()});  // Create
            ++r.registered;
            ++m_creates;
        }
        while (m_cache.size() > m_cfg.block_budget) {
            m_cache.erase(m_lru.back());  // the last handle goes: Remove
            m_lru.pop_back();
            ++r.evicted;
            ++m_removes;
        }
        return r;
    }

    /// The live registrations: what the hub should believe this worker holds.
    [[nodiscard]] std::vector<Hash> registered_hashes() const { return m_registry.snapshot(); }

    /// Waits (bounded) until the publisher has taken every event this worker caused (or
    /// been told it missed them: lag, which it recovers from by re-announcing) and has
    /// nothing pending.
    [[nodiscard]] bool wait_published(std::chrono::milliseconds timeout) const {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (true) {
            const auto m = m_publisher->metrics();
            if (m.events_in + m.lag_events == m_creates + m_removes &&
                m.events_published + m.events_dropped == m.events_in && m.resync_pending == 0) {
                return true;
            }
            if (std::chrono::steady_clock::now() > deadline) {
                return false;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
    }

    /// Graceful stop: the pending batch, then Shutdown, then flush. Idempotent.
    bool stop() {
        if (m_stopped) {
            return true;
        }
        m_stopped = true;
        return m_publisher->stop().ok();
    }

private:
    struct Entry {
        Handle handle;
        std::list<Hash>::iterator lru;
    };

    std::size_t m_index;
    kvbm::InstanceId m_id;
    WorkerConfig m_cfg;
    static kvbm::HubLeaseOptions lease_options(kvbm::InstanceId id, std::uint64_t block_size,
                                               std::uint64_t max_seq_len) {
        kvbm::HubLeaseOptions o;
        o.instance_id = id;
        o.block_size = block_size;
        o.max_seq_len = max_seq_len;
        return o;
    }
    static kvbm::HubClientOptions client_options(kvbm::InstanceId id, std::uint64_t block_size,
                                                 std::uint64_t max_seq_len) {
        kvbm::HubClientOptions o;
        static_cast<kvbm::HubLeaseOptions&>(o) = lease_options(id, block_size, max_seq_len);
        return o;
    }

    std::shared_ptr<kvbm::HubClient> m_transport;  // ZeroMQ (null with NATS)
#ifdef KVBM_DEMO_HAVE_NATS
    std::shared_ptr<kvbm::NatsPublisher> m_nats;  // NATS (null with ZeroMQ)
    std::unique_ptr<kvbm::HubLease> m_lease;      // NATS; before m_publisher: unregisters after its Shutdown
    std::shared_ptr<kvbm::LeasedPublisher<kvbm::NatsPublisher>> m_leased;
#endif
    std::shared_ptr<kvbm::EventsManager<Hash>> m_manager;
    kvbm::BlockRegistry<Hash> m_registry;
    std::unique_ptr<kvbm::EventsPublisher<>> m_publisher;
    std::list<Hash> m_lru;                    // most recent first
    std::unordered_map<Hash, Entry> m_cache;  // after m_lru: destroyed first
    std::uint64_t m_served = 0;
    std::uint64_t m_creates = 0;
    std::uint64_t m_removes = 0;
    bool m_stopped = false;
};

}  // namespace kvbm_demo
