// The producer side shared by pipeline/register_release and the e2e lines: runs of 64 blocks
// (positions 0..63, a request's prefix) registered, then released child first, as a cache
// evicts a sequence: 64 Creates, 64 Removes per run.
#pragma once

#include <kvbm/events_publisher.hpp>
#include <kvbm/index.hpp>
#include <kvbm/manager.hpp>
#include <kvbm/registry.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <vector>

namespace kvbm_bench {

inline constexpr std::size_t register_run = 64;

/// `blocks` PLHs in runs of `register_run` chained positions, from random sequence hashes.
inline std::vector<kvbm::PositionalLineageHash> run_hashes(std::size_t blocks) {
    std::vector<kvbm::PositionalLineageHash> hashes;
    hashes.reserve(blocks);
    std::mt19937_64 rng(11);
    std::uint64_t parent = 0;
    for (std::size_t i = 0; i < blocks; ++i) {
        const std::uint64_t current = rng();
        const auto position = i % register_run;
        hashes.emplace_back(current, position == 0 ? std::nullopt : std::optional<std::uint64_t>(parent), position);
        parent = current;
    }
    return hashes;
}

/// Registers each run of `hashes` in `registry`, then releases it child first.
inline void register_and_release(const kvbm::BlockRegistry<>& registry,
                                 const std::vector<kvbm::PositionalLineageHash>& hashes) {
    std::vector<kvbm::BlockRegistrationHandle<>> held;
    held.reserve(register_run);
    for (std::size_t i = 0; i < hashes.size(); i += register_run) {
        for (std::size_t j = i; j < i + register_run && j < hashes.size(); ++j) {
            held.push_back(registry.register_hash(hashes[j]));
        }
        while (!held.empty()) {
            held.pop_back();
        }
    }
}

/// The same runs through the direct cache-manager API: each block announced
/// (`EventsManager::announce`) and its AnnouncedBlock kept, then released child first.
inline void announce_and_release(const kvbm::EventsManager<>& manager,
                                 const std::vector<kvbm::PositionalLineageHash>& hashes) {
    std::vector<kvbm::AnnouncedBlock<>> held;
    held.reserve(register_run);
    for (std::size_t i = 0; i < hashes.size(); i += register_run) {
        for (std::size_t j = i; j < i + register_run && j < hashes.size(); ++j) {
            held.push_back(manager.announce(hashes[j]));
        }
        while (!held.empty()) {
            held.pop_back();
        }
    }
}

struct E2eResult {
    double seconds = 0;
    std::uint64_t problems = 0;  // events lagged, dropped or rejected, entries left over
};

/// One e2e run: `hashes` registered and released through a BlockRegistry whose
/// EventsPublisher sends over `transport` to `hub`, which applies to `index` (empty, and
/// sized for `register_run` positions). Timed from the first registration until the hub has
/// applied every published batch (Shutdown included). `problems` counts what must be 0:
/// a hub that did not catch up, lagged or transport-dropped events, rejected messages,
/// entries left in the index, events never published.
template <class Transport, class Hub>
E2eResult registration_to_hub(const std::shared_ptr<Transport>& transport, const Hub& hub,
                              const kvbm::PositionalIndex<>& index,
                              const std::vector<kvbm::PositionalLineageHash>& hashes) {
    const std::size_t events = 2 * hashes.size();
    auto manager = std::make_shared<kvbm::EventsManager<>>(kvbm::EventsManagerSettings<>{{}, events});
    const kvbm::BlockRegistry<> registry(manager);
    kvbm::EventsPublisher publisher(*manager, registry, transport, kvbm::InstanceId{7U});
    const auto t0 = std::chrono::steady_clock::now();
    register_and_release(registry, hashes);
    (void)publisher.stop();  // pending batch, Shutdown, flush
    const auto m = publisher.metrics();
    const bool applied = hub.wait_for_batches(m.batches_published, std::chrono::seconds(60));
    const std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
    const std::uint64_t problems = (applied ? 0U : 1U) + m.lag_events + transport->dropped() + hub.rejected() +
                                   index.size() + (events - m.events_published);
    return {dt.count(), problems};
}

}  // namespace kvbm_bench
