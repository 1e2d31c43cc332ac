// Test helper: the golden vectors made by the Rust reference (tests/data/vectors.json,
// copied from shared/reference so the project stands alone).
#pragma once

#include <kvbm/uint128.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace kvbm_test {

inline const nlohmann::json& vectors() {
    static const nlohmann::json doc = [] {
        std::ifstream in(std::string(KVBM_TEST_DATA_DIR) + "/vectors.json");
        if (!in) {
            throw std::runtime_error("cannot open " KVBM_TEST_DATA_DIR "/vectors.json");
        }
        return nlohmann::json::parse(in);
    }();
    return doc;
}

/// The tokens of a chain: {"list": [...]} or {"range": [first, last)}.
inline std::vector<std::uint32_t> chain_tokens(const nlohmann::json& desc) {
    std::vector<std::uint32_t> out;
    if (desc.contains("list")) {
        for (const auto& t : desc.at("list")) {
            out.push_back(t.get<std::uint32_t>());
        }
    } else {
        const auto first = desc.at("range").at(0).get<std::uint32_t>();
        const auto last = desc.at("range").at(1).get<std::uint32_t>();
        for (std::uint32_t t = first; t < last; ++t) {
            out.push_back(t);
        }
    }
    return out;
}

inline std::uint64_t u64(const nlohmann::json& decimal_text) { return std::stoull(decimal_text.get<std::string>()); }

inline kvbm::Uint128 hex128(const nlohmann::json& hex_text) {
    return kvbm::Uint128::parse(hex_text.get<std::string>(), 16);
}

/// splitmix64, as vectors.json's "about" defines it.
struct SplitMix64 {
    std::uint64_t state;
    std::uint64_t next() {
        state += 0x9E3779B97F4A7C15ULL;
        std::uint64_t z = state;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
    }
    kvbm::Uint128 next_u128() {
        const std::uint64_t hi = next();
        return kvbm::Uint128::from_parts(hi, next());
    }
};

}  // namespace kvbm_test
