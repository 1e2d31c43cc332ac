/// @file kvbm/hash.hpp
/// Positional lineage hashes (PLH): the 128-bit identity of a full block of tokens,
/// packing the block's position, its parent's sequence hash and its own.
#pragma once

#include <kvbm/config.hpp>
#include <kvbm/uint128.hpp>

#include <array>
#include <compare>
#include <cstdint>
#include <functional>
#include <optional>
#include <ostream>
#include <span>
#include <stdexcept>
#include <string>

KVBM_NAMESPACE_BEGIN

/// Which release's bit layout a PLH uses.
enum class PlhLayout : std::uint8_t {
    /// kvbm-logical 1.2: `[mode 2][position P][parent fragment F][current fragment F]`,
    /// F = 59/55/51 bits for modes 0/1/2; the current fragment is cut to the width the
    /// next position stores it with. The chain step is seeded with the salt.
    kvbm_1_2,
    /// kvbm-logical 1.4: `[mode 2][position P][current sequence hash 64][parent fragment R]`,
    /// R = 54/46/38 bits; nothing truncated. The chain step is seeded with 1337.
    kvbm_1_4,
};

/// Bitcoin-alphabet base58 of bytes; each leading zero byte becomes `1`.
[[nodiscard]] inline std::string base58(std::span<const std::uint8_t> input) {
    static constexpr char alphabet[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    std::size_t zeros = 0;
    while (zeros < input.size() && input[zeros] == 0) {
        ++zeros;
    }
    // Little-endian base-58 digits; log(256)/log(58) < 1.37, so 2 digits per byte is plenty.
    std::array<std::uint8_t, 64> digits{};
    std::string big_digits;
    std::uint8_t* d = digits.data();
    if (input.size() > 32) {
        big_digits.assign(input.size() * 2, '\0');
        d = reinterpret_cast<std::uint8_t*>(big_digits.data());
    }
    std::size_t n = 0;
    for (const std::uint8_t byte : input) {
        std::uint32_t carry = byte;
        for (std::size_t i = 0; i < n; ++i) {
            carry += static_cast<std::uint32_t>(d[i]) << 8;
            d[i] = static_cast<std::uint8_t>(carry % 58);
            carry /= 58;
        }
        while (carry > 0) {
            d[n++] = static_cast<std::uint8_t>(carry % 58);
            carry /= 58;
        }
    }
    std::string out(zeros, '1');
    out.reserve(zeros + n);
    for (std::size_t i = n; i-- > 0;) {
        out.push_back(alphabet[d[i]]);
    }
    return out;
}

/// base58 of the 8 big-endian bytes of a 64-bit value (how PLH fragments are shown).
[[nodiscard]] inline std::string base58_u64(std::uint64_t v) {
    std::array<std::uint8_t, 8> be{};
    for (std::size_t i = 0; i < 8; ++i) {
        be[i] = static_cast<std::uint8_t>(v >> (56 - 8 * i));
    }
    return base58(be);
}

namespace detail {
struct plh_mode_widths {
    unsigned position_bits;
    unsigned fragment_bits;  // 1.2: parent and current fragment; 1.4: parent fragment
};
[[nodiscard]] constexpr unsigned plh_mode(std::uint64_t position) noexcept {
    // Branch-free: the chain computes this for every block.
    return static_cast<unsigned>(position >= (1U << 8)) + static_cast<unsigned>(position >= (1U << 16));
}
template <PlhLayout Layout>
[[nodiscard]] constexpr plh_mode_widths plh_widths(unsigned mode) noexcept {
    // A raw value with mode bits 3 (no encoder makes one) reads as mode 2, as in the reference.
    constexpr plh_mode_widths w12[] = {{8, 59}, {16, 55}, {24, 51}};
    constexpr plh_mode_widths w14[] = {{8, 54}, {16, 46}, {24, 38}};
    const unsigned m = mode > 2 ? 2 : mode;
    return Layout == PlhLayout::kvbm_1_2 ? w12[m] : w14[m];
}
[[noreturn]] inline void throw_position_out_of_range(std::uint64_t position) {
    throw std::out_of_range("kvbm::PositionalLineageHash: position " + std::to_string(position) +
                            " does not fit in 24 bits (max 16777215)");
}
[[nodiscard]] constexpr std::uint64_t low_bits(std::uint64_t v, unsigned bits) noexcept {
    return bits >= 64 ? v : v & ((std::uint64_t{1} << bits) - 1);
}

/// Packs PLHs for a run of consecutive positions that share every field width, with the
/// widths hoisted out of the loop: the token-block chain packs one PLH per block, and
/// recomputing modes per block cost as much as a third of the chain's hashing.
/// kvbm 1.2 runs: [0,255) [255] [256,65535) [65535] [65536,2^24) (the last position of a
/// mode cuts the current fragment to the next mode's width); kvbm 1.4: one run per mode.
template <PlhLayout Layout>
struct plh_run {
    std::uint64_t end = 0;  // first position not covered
    std::uint64_t mode_bits = 0;
    std::uint64_t parent_mask = 0;
    std::uint64_t current_mask = 0;
    unsigned fragment_bits = 0;  // 1.2: F (parent fragment's offset); 1.4: R

    [[nodiscard]] static constexpr plh_run starting_at(std::uint64_t position) noexcept {
        constexpr std::uint64_t mode_end[] = {1U << 8, 1U << 16, 1U << 24};
        const unsigned m = plh_mode(position);
        plh_run r;
        r.mode_bits = std::uint64_t{m} << 62;
        r.end = mode_end[m];
        r.fragment_bits = plh_widths<Layout>(m).fragment_bits;  // 1.2: 59/55/51; 1.4: 54/46/38
        r.parent_mask = (std::uint64_t{1} << r.fragment_bits) - 1;
        if constexpr (Layout == PlhLayout::kvbm_1_2) {
            r.current_mask = r.parent_mask;
            if (m < 2) {
                if (position == r.end - 1) {
                    // Cut to the width the next position stores its parent with, so a
                    // child can match it exactly.
                    r.current_mask = (std::uint64_t{1} << plh_widths<Layout>(m + 1).fragment_bits) - 1;
                } else {
                    r.end -= 1;
                }
            }
        } else {
            r.current_mask = ~std::uint64_t{0};
        }
        return r;
    }

    /// The raw value for `position`, which must lie in this run (and below 2^24).
    [[nodiscard]] constexpr Uint128 pack(std::uint64_t current, std::uint64_t parent,
                                         std::uint64_t position) const noexcept {
        const unsigned f = fragment_bits;
        if constexpr (Layout == PlhLayout::kvbm_1_2) {
            // [mode][position at bit 2F >= 102][parent fragment at bit F, straddling bit 64][current]
            const std::uint64_t pf = parent & parent_mask;
            return Uint128::from_parts(mode_bits | (position << (2 * f - 64)) | (pf >> (64 - f)),
                                       (pf << f) | (current & current_mask));
        } else {
            // [mode][position at bit 64 + R][current u64 at bit R, straddling bit 64][parent fragment]
            return Uint128::from_parts(mode_bits | (position << f) | (current >> (64 - f)),
                                       (current << f) | (parent & parent_mask));
        }
    }
};
}  // namespace detail

/// A positional lineage hash in the given layout: a 128-bit value type with equality,
/// ordering (by raw value, which orders by position first in both layouts since the mode
/// grows with the position) and std::hash. Thread-safe as any value is; trivially copyable.
template <PlhLayout Layout>
class BasicPositionalLineageHash {
public:
    static constexpr PlhLayout layout = Layout;
    /// Positions are 24-bit: the largest one a PLH can hold.
    static constexpr std::uint64_t max_position = (std::uint64_t{1} << 24) - 1;

    /// The all-zero value (position 0, no fragments).
    constexpr BasicPositionalLineageHash() noexcept = default;

    /// Packs a block's sequence hash `current`, its parent's sequence hash (none for the
    /// first block) and its `position`. Throws std::out_of_range when position > max_position
    /// (the reference panics).
    constexpr BasicPositionalLineageHash(std::uint64_t current, std::optional<std::uint64_t> parent,
                                         std::uint64_t position)
        : m_value(pack(current, parent.value_or(0), position)) {}

    /// Reinterprets a raw 128-bit value (as read from the wire); never fails.
    [[nodiscard]] static constexpr BasicPositionalLineageHash from_raw(Uint128 raw) noexcept {
        BasicPositionalLineageHash h;
        h.m_value = raw;
        return h;
    }

    /// The raw 128-bit value: what equality, hashing and the wire use.
    [[nodiscard]] constexpr Uint128 raw() const noexcept { return m_value; }
    /// 0, 1 or 2 for positions below 2^8, 2^16, 2^24 (3 only for foreign raw values).
    [[nodiscard]] constexpr unsigned mode() const noexcept { return static_cast<unsigned>(m_value.high() >> 62); }

    [[nodiscard]] constexpr std::uint64_t position() const noexcept {
        const auto w = detail::plh_widths<Layout>(mode());
        const unsigned shift = Layout == PlhLayout::kvbm_1_2 ? 2 * w.fragment_bits : 64 + w.fragment_bits;
        return detail::low_bits((m_value >> shift).low(), w.position_bits);
    }

    /// kvbm 1.2: the low F bits (the current block's sequence-hash fragment).
    /// kvbm 1.4: the full 64-bit sequence hash of the current block.
    [[nodiscard]] constexpr std::uint64_t current_hash_fragment() const noexcept {
        const auto w = detail::plh_widths<Layout>(mode());
        if constexpr (Layout == PlhLayout::kvbm_1_2) {
            return detail::low_bits(m_value.low(), w.fragment_bits);
        } else {
            return (m_value >> w.fragment_bits).low();
        }
    }

    /// The parent's sequence-hash fragment (0 at position 0).
    [[nodiscard]] constexpr std::uint64_t parent_hash_fragment() const noexcept {
        const auto w = detail::plh_widths<Layout>(mode());
        if constexpr (Layout == PlhLayout::kvbm_1_2) {
            return detail::low_bits((m_value >> w.fragment_bits).low(), w.fragment_bits);
        } else {
            return detail::low_bits(m_value.low(), w.fragment_bits);
        }
    }

    /// `"{pos}:{b58(current)}"` at position 0, otherwise `"{pos}:{b58(current)}:{b58(parent)}"`.
    [[nodiscard]] std::string to_string() const {
        std::string out = std::to_string(position());
        out += ':';
        out += base58_u64(current_hash_fragment());
        if (position() != 0) {
            out += ':';
            out += base58_u64(parent_hash_fragment());
        }
        return out;
    }

    friend constexpr bool operator==(const BasicPositionalLineageHash&,
                                     const BasicPositionalLineageHash&) noexcept = default;
    friend constexpr std::strong_ordering operator<=>(const BasicPositionalLineageHash& a,
                                                      const BasicPositionalLineageHash& b) noexcept {
        return a.m_value <=> b.m_value;
    }
    friend std::ostream& operator<<(std::ostream& os, const BasicPositionalLineageHash& h) {
        return os << h.to_string();
    }

private:
    static constexpr Uint128 pack(std::uint64_t current, std::uint64_t parent, std::uint64_t position) {
        if (KVBM_UNLIKELY(position > max_position)) {
            detail::throw_position_out_of_range(position);  // cold and out of line: keeps pack inlinable
        }
        return detail::plh_run<Layout>::starting_at(position).pack(current, parent, position);
    }

    Uint128 m_value;
};

/// The default hash: kvbm-logical 1.2's layout.
using PositionalLineageHash = BasicPositionalLineageHash<PlhLayout::kvbm_1_2>;
/// kvbm-logical 1.4's layout.
using PositionalLineageHashV14 = BasicPositionalLineageHash<PlhLayout::kvbm_1_4>;

KVBM_NAMESPACE_END

/// Hashes a positional lineage hash by its 128 bits, for unordered containers.
template <kvbm::PlhLayout Layout>
struct std::hash<kvbm::BasicPositionalLineageHash<Layout>> {
    std::size_t operator()(const kvbm::BasicPositionalLineageHash<Layout>& h) const noexcept {
        return std::hash<kvbm::Uint128>{}(h.raw());
    }
};
