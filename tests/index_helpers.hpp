// Test helper: prompt-like chains of positional lineage hashes for the index tests.
#pragma once

#include <kvbm/events.hpp>
#include <kvbm/hash.hpp>

#include <cstdint>
#include <optional>
#include <random>
#include <vector>

namespace kvbm_test {

using Plh = kvbm::PositionalLineageHash;
using Batch = kvbm::KvbmCacheEvents<Plh>;

/// A chain of `length` blocks at positions 0..length-1 drawn from `seed`, except that the
/// first `shared` blocks are those of `chain(prefix_seed, ...)`: such chains share their
/// first `shared` hashes exactly (as prompts sharing a system prompt do).
inline std::vector<Plh> chain(std::uint64_t seed, std::size_t length, std::uint64_t prefix_seed = 0,
                              std::size_t shared = 0) {
    std::vector<Plh> out;
    std::optional<std::uint64_t> parent;
    std::mt19937_64 prefix_rng(prefix_seed * 0xD1B54A32D192ED03ULL + 7);
    std::mt19937_64 rng(seed * 0xD1B54A32D192ED03ULL + 7);
    for (std::size_t i = 0; i < length; ++i) {
        const std::uint64_t current = i < shared ? prefix_rng() : rng();
        out.emplace_back(current, parent, i);
        parent = current;
    }
    return out;
}

inline Batch creates(kvbm::InstanceId id, std::vector<Plh> hs) {
    return {kvbm::KvCacheEvents<Plh>::create(std::move(hs)), id};
}
inline Batch removes(kvbm::InstanceId id, std::vector<Plh> hs) {
    return {kvbm::KvCacheEvents<Plh>::remove(std::move(hs)), id};
}
inline Batch shutdown(kvbm::InstanceId id) { return {kvbm::KvCacheEvents<Plh>::shutdown(), id}; }

}  // namespace kvbm_test
