// kvbm-demo --faults: the demo's workers and an in-process hub, while a schedule injects
//   (a) hub restarts with an empty index (the hub and its index are destroyed, and a new one
//       binds the same endpoint: each worker's XPUB sees the new subscription -> resync),
//   (b) windows where every worker's transport refuses every publish, or drops every publish
//       silently (a transport that knows it lost messages asks for a resync once it heals),
//   (c) channel lag: every publisher is held inside publish while the workload goes on until
//       each worker has sent more events than its channel holds.
// After each fault heals the workload pauses until the hub is right again (every publisher
// has taken its events, no resync pending, and the hub's view equals the union of the live
// registries on two polls in a row); the time from healing to that point is the fault's
// reconverge time. The last line is the usual JSON plus "faults" and "reconverge_ms_max".
#pragma once

#include "workload.hpp"

#include <kvbm/events_publisher.hpp>
#include <kvbm/index.hpp>
#include <kvbm/manager.hpp>
#include <kvbm/registry.hpp>
#include <kvbm/tokens.hpp>
#include <kvbm/zmq_hub.hpp>
#include <kvbm/zmq_publisher.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <iostream>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace kvbm_demo {

using FaultHash = kvbm::PositionalLineageHash;

enum class FaultMode : int { none, refuse, drop, stall };

/// The switch every worker's FaultyTransport reads.
struct FaultSwitch {
    std::atomic<FaultMode> mode{FaultMode::none};
    std::mutex mutex;
    std::condition_variable healed;

    void set(FaultMode m) {
        {
            std::lock_guard lock(mutex);
            mode.store(m);
        }
        healed.notify_all();
    }
};

/// A transport between a worker's events publisher and its ZmqPublisher that fails on
/// command: refuses (publish fails), drops (publish "succeeds", the batch is discarded, and
/// once healed it asks for a resync, as a transport that knows it lost messages would), or
/// stalls (publish blocks until healed).
class FaultyTransport {
public:
    FaultyTransport(std::shared_ptr<kvbm::ZmqPublisher> inner, std::shared_ptr<FaultSwitch> sw)
        : m_inner(std::move(inner)), m_switch(std::move(sw)) {}

    kvbm::PublishResult publish(std::string_view subject, std::span<const std::uint8_t> bytes) {
        switch (m_switch->mode.load()) {
            case FaultMode::refuse:
                return kvbm::PublishResult::failure("injected fault: the transport refuses every publish");
            case FaultMode::drop:
                m_dropped = true;
                return kvbm::PublishResult::success();
            case FaultMode::stall: {
                std::unique_lock lock(m_switch->mutex);
                m_switch->healed.wait(lock, [&] { return m_switch->mode.load() != FaultMode::stall; });
                break;
            }
            case FaultMode::none:
                break;
        }
        return m_inner->publish(subject, bytes);
    }
    kvbm::PublishResult flush() { return m_inner->flush(); }
    bool take_resync_request() {
        // ZmqPublisher reads (re)subscriptions only inside its own calls; an idle worker
        // would not notice a restarted hub until its next publish. subscribed() reads them
        // (same thread as publish: the events publisher's worker).
        (void)m_inner->subscribed();
        const bool hub = m_inner->take_resync_request();
        const bool lost = m_switch->mode.load() != FaultMode::drop && std::exchange(m_dropped, false);
        return hub || lost;
    }

private:
    std::shared_ptr<kvbm::ZmqPublisher> m_inner;
    std::shared_ptr<FaultSwitch> m_switch;
    bool m_dropped = false;  // worker thread only
};

/// A worker for the faults run: the demo worker's LRU block cache (registry -> manager ->
/// events publisher), with its ZeroMQ transport behind a FaultyTransport.
class FaultWorker {
public:
    using Hash = FaultHash;

    FaultWorker(kvbm::InstanceId id, const std::string& hub_endpoint, std::size_t budget,
                const std::shared_ptr<FaultSwitch>& sw)
        : m_id(id),
          m_budget(budget),
          m_zmq(std::make_shared<kvbm::ZmqPublisher>(hub_endpoint)),
          m_manager(std::make_shared<kvbm::EventsManager<Hash>>()),
          m_registry(m_manager) {
        if (!m_zmq->wait_connected(std::chrono::seconds(10))) {
            throw std::runtime_error("faults: no hub subscribed at " + hub_endpoint);
        }
        // kvbm::EventsPublisher<> holds any transport (AnyPublisher): here the fault injector.
        m_publisher.emplace(*m_manager, m_registry, std::make_shared<FaultyTransport>(m_zmq, sw), id);
    }

    [[nodiscard]] const kvbm::InstanceId& id() const noexcept { return m_id; }
    [[nodiscard]] std::uint64_t creates() const noexcept { return m_creates; }
    [[nodiscard]] std::uint64_t removes() const noexcept { return m_removes; }
    [[nodiscard]] kvbm::EventsPublisherMetrics metrics() const { return m_publisher->metrics(); }
    [[nodiscard]] std::vector<Hash> registered_hashes() const { return m_registry.snapshot(); }

    /// Makes `blocks` resident and most recent (deepest first), evicting LRU blocks.
    void serve(const std::vector<Hash>& blocks) {
        for (std::size_t i = blocks.size(); i-- > 0;) {
            if (auto it = m_cache.find(blocks[i]); it != m_cache.end()) {
                m_lru.splice(m_lru.begin(), m_lru, it->second.lru);
                continue;
            }
            m_lru.push_front(blocks[i]);
            m_cache.emplace(blocks[i], Entry{m_registry.register_hash(blocks[i]), m_lru.begin()});  // Create
            ++m_creates;
        }
        while (m_cache.size() > m_budget) {
            m_cache.erase(m_lru.back());  // Remove
            m_lru.pop_back();
            ++m_removes;
        }
    }

    /// Whether the publisher has taken every event this worker caused and has no resync
    /// pending (checked once).
    [[nodiscard]] bool published() const {
        const auto m = m_publisher->metrics();
        return m.events_in + m.lag_events == m_creates + m_removes &&
               m.events_published + m.events_dropped == m.events_in && m.resync_pending == 0;
    }

    /// Stops the publisher: true when the final Shutdown left and was flushed.
    bool stop() { return m_publisher->stop().ok(); }

private:
    struct Entry {
        kvbm::BlockRegistrationHandle<Hash> handle;
        std::list<Hash>::iterator lru;
    };

    kvbm::InstanceId m_id;
    std::size_t m_budget;
    std::shared_ptr<kvbm::ZmqPublisher> m_zmq;
    std::shared_ptr<kvbm::EventsManager<Hash>> m_manager;
    kvbm::BlockRegistry<Hash> m_registry;
    std::optional<kvbm::EventsPublisher<>> m_publisher;
    std::list<Hash> m_lru;
    std::unordered_map<Hash, Entry> m_cache;  // after m_lru and the publisher: destroyed first
    std::uint64_t m_creates = 0;
    std::uint64_t m_removes = 0;
};

struct FaultOptions {
    std::size_t workers = 3;
    std::size_t requests = 4000;
    std::size_t fault_every = 250;  // requests between faults
    std::size_t fault_span = 60;    // requests served while a hub is down or a window is open
    std::size_t block_size = 16;
    std::size_t budget = 4096;
    std::size_t max_seq_len = 8192;
    std::size_t users = 96;
    std::size_t system_prompts = 6;
    std::uint64_t seed = 42;
};

/// The hub: index + ZeroMQ ingest, re-creatable on the same endpoint.
class RestartableHub {
public:
    RestartableHub(std::uint64_t max_seq_len, std::uint64_t block_size) : m_max(max_seq_len), m_block(block_size) {
        start("tcp://127.0.0.1:*");
        m_endpoint = m_hub->endpoint();
    }
    void kill() {
        m_hub.reset();
        m_index.reset();
    }
    void restart() {
        // The port was just released: ZeroMQ may take a moment to let it go.
        for (int attempt = 0;; ++attempt) {
            try {
                start(m_endpoint);
                return;
            } catch (const zmq::error_t&) {
                if (attempt > 200) {
                    throw;
                }
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
            }
        }
    }
    [[nodiscard]] const std::string& endpoint() const { return m_endpoint; }
    [[nodiscard]] bool up() const { return m_hub != nullptr; }
    [[nodiscard]] kvbm::PositionalIndex<FaultHash>& index() { return *m_index; }

    /// What the hub holds for each instance.
    [[nodiscard]] std::map<kvbm::Uint128, std::set<FaultHash>> holdings() const {
        std::map<kvbm::Uint128, std::set<FaultHash>> out;
        if (m_index) {
            for (const auto& e : m_index->snapshot()) {
                for (const auto& id : e.holders) {
                    out[id].insert(e.hash);
                }
            }
        }
        return out;
    }

private:
    void start(const std::string& bind) {
        auto index = std::make_unique<kvbm::PositionalIndex<FaultHash>>(m_max, m_block);
        kvbm::ZmqHubOptions options;
        options.bind = bind;
        m_hub = std::make_unique<kvbm::ZmqHub<FaultHash>>(*index, options);
        m_index = std::move(index);
    }

    std::uint64_t m_max, m_block;
    std::string m_endpoint;
    std::unique_ptr<kvbm::PositionalIndex<FaultHash>> m_index;
    std::unique_ptr<kvbm::ZmqHub<FaultHash>> m_hub;  // declared after the index: destroyed first
};

inline std::vector<FaultHash> block_hashes(const std::vector<kvbm::Token>& tokens, std::size_t block_size) {
    const auto seq = kvbm::TokenBlockSequence::from_slice(tokens, block_size);
    std::vector<FaultHash> out;
    for (const auto& b : seq.blocks()) {
        out.push_back(b.plh);
    }
    return out;
}

/// Differences between the hub's view and the workers' live registrations.
inline std::uint64_t hub_diff(const RestartableHub& hub, const std::vector<std::unique_ptr<FaultWorker>>& workers) {
    const auto held = hub.holdings();
    std::uint64_t diff = 0;
    std::set<kvbm::Uint128> ours;
    for (const auto& w : workers) {
        ours.insert(w->id());
        const auto local = w->registered_hashes();
        const std::set<FaultHash> want(local.begin(), local.end());
        const auto it = held.find(w->id());
        const std::set<FaultHash> have = it == held.end() ? std::set<FaultHash>{} : it->second;
        for (const auto& h : want) {
            diff += have.contains(h) ? 0U : 1U;
        }
        for (const auto& h : have) {
            diff += want.contains(h) ? 0U : 1U;
        }
    }
    for (const auto& [id, hashes] : held) {
        diff += ours.contains(id) ? 0U : hashes.size();  // nobody else publishes here
    }
    return diff;
}

inline int run_faults(const FaultOptions& o) {
    using clock = std::chrono::steady_clock;
    RestartableHub hub(o.max_seq_len, o.block_size);
    std::vector<std::shared_ptr<FaultSwitch>> switches;
    std::vector<std::unique_ptr<FaultWorker>> workers;
    std::random_device rd;
    for (std::size_t i = 0; i < o.workers; ++i) {
        auto sw = std::make_shared<FaultSwitch>();
        switches.push_back(sw);
        const kvbm::InstanceId id = kvbm::InstanceId::from_parts((std::uint64_t{rd()} << 32) | rd(), i + 1);
        workers.push_back(std::make_unique<FaultWorker>(id, hub.endpoint(), o.budget, sw));
    }
    const auto set_all = [&](FaultMode m) {
        for (auto& sw : switches) {
            sw->set(m);
        }
    };
    Workload workload(WorkloadConfig{o.system_prompts, o.users, o.max_seq_len, o.seed});

    std::uint64_t hub_restarts = 0, failure_windows = 0, lag_recoveries = 0, checks = 0, mismatches = 0, unsettled = 0;
    double reconverge_ms_max = 0;
    std::size_t served = 0;
    const auto serve_one = [&] {
        const Request req = workload.next();
        const auto prompt = block_hashes(req.prompt, o.block_size);
        std::size_t chosen = served % workers.size();
        if (hub.up()) {  // route by the hub's view when there is one
            if (const auto match = hub.index().query(prompt)) {
                for (std::size_t i = 0; i < workers.size(); ++i) {
                    if (std::find(match->holders.begin(), match->holders.end(), workers[i]->id()) !=
                        match->holders.end()) {
                        chosen = i;
                        break;
                    }
                }
            }
        }
        const auto full = block_hashes(workload.reply(req.user), o.block_size);
        workers[chosen]->serve(full);
        ++served;
    };
    // Waits until the hub is right again: publishers quiet, hub == registries twice in a row.
    const auto reconverge = [&](clock::time_point healed, const char* what) {
        ++checks;
        const auto deadline = healed + std::chrono::seconds(30);
        int equal_in_a_row = 0;
        std::uint64_t diff = 0;
        while (clock::now() < deadline) {
            bool quiet = true;
            for (auto& w : workers) {
                quiet = w->published() && quiet;
            }
            diff = hub_diff(hub, workers);
            equal_in_a_row = quiet && diff == 0 ? equal_in_a_row + 1 : 0;
            if (equal_in_a_row == 2) {
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(equal_in_a_row == 1 ? 20 : 2));
        }
        const double ms = std::chrono::duration<double, std::milli>(clock::now() - healed).count();
        if (equal_in_a_row < 2) {
            ++unsettled;
            mismatches += diff;
        }
        reconverge_ms_max = std::max(reconverge_ms_max, ms);
        std::printf("[%6zu/%zu] %-28s hub right again after %7.1f ms  (%llu differences)\n", served, o.requests, what,
                    ms, static_cast<unsigned long long>(equal_in_a_row < 2 ? diff : 0));
        std::fflush(stdout);
    };

    const auto t0 = clock::now();
    std::size_t next_fault = o.fault_every;
    int kind = 0;
    while (served < o.requests) {
        serve_one();
        if (served < next_fault || served + o.fault_span >= o.requests) {
            continue;
        }
        next_fault = served + o.fault_every;
        // The cycle: restart, refused window, stall, restart, dropped window, stall, ...
        const int step = kind++;
        const int k = step % 3 == 0 ? 0 : step % 3 == 2 ? 3 : (step / 3) % 2 == 0 ? 1 : 2;
        if (k == 0) {  // (a) hub restart with an empty index
            hub.kill();
            for (std::size_t i = 0; i < o.fault_span; ++i) {
                serve_one();
            }
            hub.restart();
            ++hub_restarts;
            reconverge(clock::now(), "hub restarted (empty index)");
        } else if (k == 1 || k == 2) {  // (b) every publish refused, or silently dropped
            set_all(k == 1 ? FaultMode::refuse : FaultMode::drop);
            for (std::size_t i = 0; i < o.fault_span; ++i) {
                serve_one();
            }
            // Let the publishers meet the window (their 10 ms timer) before it closes.
            std::this_thread::sleep_for(std::chrono::milliseconds(30));
            set_all(FaultMode::none);
            ++failure_windows;
            reconverge(clock::now(), k == 1 ? "publishes refused" : "publishes dropped");
        } else {  // (c) lag: publishers held in publish while the workload overruns the channels
            std::vector<std::uint64_t> lag_before, events_before;
            for (auto& w : workers) {
                lag_before.push_back(w->metrics().resyncs_for_lag);
                events_before.push_back(w->creates() + w->removes());
            }
            set_all(FaultMode::stall);
            const auto overran = [&] {
                for (std::size_t i = 0; i < workers.size(); ++i) {
                    // More than the channel holds (1024) while the publisher takes none: lag.
                    if (workers[i]->creates() + workers[i]->removes() - events_before[i] < 1536) {
                        return false;
                    }
                }
                return true;
            };
            for (std::size_t i = 0; i < 20 * o.fault_span && !overran(); ++i) {
                serve_one();
            }
            set_all(FaultMode::none);
            reconverge(clock::now(), "publishers stalled (lag)");
            for (std::size_t i = 0; i < workers.size(); ++i) {
                lag_recoveries += workers[i]->metrics().resyncs_for_lag > lag_before[i] ? 1U : 0U;
            }
        }
    }
    // The final word: every publisher's pending batch, Shutdown and flush; then the hub
    // must apply them all and end empty.
    std::uint64_t created = 0, removed = 0, batches = 0, bytes = 0, publish_errors = 0;
    bool stopped = true;
    std::vector<bool> stop_ok;
    for (auto& w : workers) {
        stop_ok.push_back(w->stop());
        stopped = stop_ok.back() && stopped;
        const auto m = w->metrics();
        created += w->creates();
        removed += w->removes();
        batches += m.batches_published;
        bytes += m.bytes_published;
        publish_errors += m.publish_errors;
    }
    std::uint64_t entries = 0;
    const auto deadline = clock::now() + std::chrono::seconds(10);
    do {
        entries = hub.index().size();
        if (entries != 0) {
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
    } while (entries != 0 && clock::now() < deadline);
    // Workers whose final Shutdown did not leave the process (StopResult not ok).
    std::uint64_t lost = 0;
    for (bool ok : stop_ok) {
        lost += ok ? 0U : 1U;
    }
    const double seconds = std::chrono::duration<double>(clock::now() - t0).count();
    std::printf("\nsummary (faults)\n");
    std::printf("  faults   %llu hub restarts, %llu publish-failure windows, %llu lag recoveries (worker x stall)\n",
                static_cast<unsigned long long>(hub_restarts), static_cast<unsigned long long>(failure_windows),
                static_cast<unsigned long long>(lag_recoveries));
    std::printf("  checks   %llu after healing, %llu differences left, %llu unsettled; slowest reconvergence %.1f ms\n",
                static_cast<unsigned long long>(checks), static_cast<unsigned long long>(mismatches),
                static_cast<unsigned long long>(unsettled), reconverge_ms_max);
    std::printf("  stop     %s; hub holds %llu entries after it; %llu publish errors (injected included)\n",
                stopped ? "graceful, every Shutdown delivered" : "a Shutdown was NOT delivered",
                static_cast<unsigned long long>(entries), static_cast<unsigned long long>(publish_errors));
    const nlohmann::json result = {
        {"workers", o.workers},
        {"requests", o.requests},
        {"events_created", created},
        {"events_removed", removed},
        {"batches", batches},
        {"bytes", bytes},
        {"hub_entries_final", entries},
        {"mismatches", mismatches},
        {"lost", lost},
        {"unsettled_checks", unsettled},
        {"publish_errors", publish_errors},
        {"seconds", std::round(seconds * 100) / 100},
        {"faults",
         {{"hub_restarts", hub_restarts},
          {"publish_failure_windows", failure_windows},
          {"lag_recoveries", lag_recoveries}}},
        {"reconverge_ms_max", std::round(reconverge_ms_max * 10) / 10},
    };
    std::cout << result.dump() << std::endl;
    const bool ok = stopped && lost == 0 && mismatches == 0 && unsettled == 0 && entries == 0;
    return ok ? 0 : 1;
}

}  // namespace kvbm_demo
