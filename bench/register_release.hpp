// The producer side shared by pipeline/register_release and e2e/zmq: runs of 64 blocks
// (positions 0..63, a request's prefix) registered, then released child first, as a cache
// evicts a sequence: 64 Creates, 64 Removes per run.
#pragma once

#include <kvbm/manager.hpp>
#include <kvbm/registry.hpp>

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

}  // namespace kvbm_bench
