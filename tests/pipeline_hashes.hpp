// Hashes for pipeline tests: distinct PositionalLineageHash values at chosen positions.
#pragma once

#include <kvbm/hash.hpp>

#include <cstdint>
#include <optional>

namespace kvbm_test {

/// A distinct hash at `position`; `variant` tells apart hashes at one position.
inline kvbm::PositionalLineageHash hash_at(std::uint64_t position, std::uint64_t variant = 0) {
    const std::uint64_t current = 0x9E3779B97F4A7C15ULL * (position + 1) + 0xD1B54A32D192ED03ULL * (variant + 1);
    return {current, position == 0 ? std::nullopt : std::optional<std::uint64_t>(current ^ 0x5555), position};
}

}  // namespace kvbm_test
