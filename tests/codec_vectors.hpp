// Test helpers for the codec tests: the `events` vectors as kvbm values, hex, splitmix64
// batches (vectors.json's "generate" description).
#pragma once

#include "vectors.hpp"

#include <kvbm/events.hpp>
#include <kvbm/hash.hpp>
#include <kvbm/uint128.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kvbm_test {

using Batch = kvbm::KvbmCacheEvents<kvbm::PositionalLineageHash>;
using Event = kvbm::KvCacheEvent<kvbm::PositionalLineageHash>;

inline std::vector<std::uint8_t> unhex(std::string_view hex) {
    std::vector<std::uint8_t> out;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
        out.push_back(static_cast<std::uint8_t>(std::stoul(std::string(hex.substr(i, 2)), nullptr, 16)));
    }
    return out;
}

inline std::string hex(const std::vector<std::uint8_t>& bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (const std::uint8_t b : bytes) {
        out += digits[b >> 4];
        out += digits[b & 0xfU];
    }
    return out;
}

inline std::vector<kvbm::PositionalLineageHash> vector_hashes(const nlohmann::json& hashes) {
    std::vector<kvbm::PositionalLineageHash> out;
    if (hashes.is_object()) {  // {"count": N, "generate": "splitmix64", "seed": S}
        SplitMix64 rng{hashes.at("seed").get<std::uint64_t>()};
        const auto n = hashes.at("count").get<std::size_t>();
        for (std::size_t i = 0; i < n; ++i) {
            out.push_back(kvbm::PositionalLineageHash::from_raw(rng.next_u128()));
        }
        return out;
    }
    for (const auto& h : hashes) {
        out.push_back(kvbm::PositionalLineageHash::from_raw(hex128(h)));
    }
    return out;
}

inline kvbm::BatchKind batch_kind(const std::string& kind) {
    return kind == "Create"   ? kvbm::BatchKind::create
           : kind == "Remove" ? kvbm::BatchKind::remove
                              : kvbm::BatchKind::shutdown;
}

/// The value of an `events` vector of type KvbmCacheEvents.
inline Batch vector_batch(const nlohmann::json& vec) {
    const auto& v = vec.at("value");
    Batch b;
    b.events.kind = batch_kind(v.at("kind").get<std::string>());
    b.events.hashes = vector_hashes(v.at("hashes"));
    b.instance_id = kvbm::Uint128::parse(v.at("instance_id").get<std::string>());
    return b;
}

/// The value of an `events` vector of type KvCacheEvent.
inline Event vector_event(const nlohmann::json& vec) {
    const auto& v = vec.at("value");
    const auto h = vector_hashes(v.at("hashes")).at(0);
    return v.at("kind") == "Create" ? Event::create(h) : Event::remove(h);
}

inline const nlohmann::json& events_vectors() { return vectors().at("events"); }

}  // namespace kvbm_test
