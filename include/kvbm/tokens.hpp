/// @file kvbm/tokens.hpp
/// Token-block hashing (target kvbm::tokens, needs xxHash's header from libxxhash-dev):
/// splits a token sequence into full blocks and computes, for each, the block hash, the
/// chained sequence hash and the positional lineage hash, exactly as dynamo-tokens'
/// `TokenBlockSequence::from_slice(tokens, block_size, salt)` does.
#pragma once

#include <kvbm/config.hpp>
#include <kvbm/detail/platform.hpp>
#include <kvbm/hash.hpp>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <stdexcept>
#include <vector>

// xxHash used header-only: XXH_INLINE_ALL makes every XXH symbol static inline and
// renamed, so this include coexists with a user's own (linked or inlined) xxhash.h.
#ifndef XXH_INLINE_ALL
#define XXH_INLINE_ALL
#define KVBM_DEFINED_XXH_INLINE_ALL
#endif
#include <xxhash.h>
#ifdef KVBM_DEFINED_XXH_INLINE_ALL
#undef XXH_INLINE_ALL
#undef KVBM_DEFINED_XXH_INLINE_ALL
#endif

KVBM_NAMESPACE_BEGIN

/// A token id (u32, hashed as 4 little-endian bytes).
using Token = std::uint32_t;

/// XXH3_64bits_withSeed: the hash every dynamo-tokens hash is built from.
[[nodiscard]] inline std::uint64_t xxh3_64(std::span<const std::uint8_t> bytes, std::uint64_t seed) noexcept {
    return XXH3_64bits_withSeed(bytes.data(), bytes.size(), seed);
}

/// The block hash of one block of tokens: XXH3 over their little-endian bytes, seeded with the salt.
[[nodiscard]] inline std::uint64_t compute_block_hash(std::span<const Token> tokens, std::uint64_t salt) noexcept {
    if constexpr (std::endian::native == std::endian::little) {
        return XXH3_64bits_withSeed(tokens.data(), tokens.size_bytes(), salt);
    } else {
        std::vector<std::uint8_t> le(tokens.size_bytes());
        for (std::size_t i = 0; i < tokens.size(); ++i) {
            for (std::size_t b = 0; b < 4; ++b) {
                le[4 * i + b] = static_cast<std::uint8_t>(tokens[i] >> (8 * b));
            }
        }
        return XXH3_64bits_withSeed(le.data(), le.size(), salt);
    }
}

/// One chain step: XXH3(le64(parent sequence hash) ++ le64(block hash), chain_seed).
[[nodiscard]] inline std::uint64_t compute_sequence_hash(std::uint64_t parent_sequence_hash, std::uint64_t block_hash,
                                                         std::uint64_t chain_seed) noexcept {
    // Two little-endian u64s. memcpy, not a byte loop: compilers do not always fuse the
    // loop, and this sits on the chain's critical path (it was a third of the cost).
    std::uint64_t words[2] = {parent_sequence_hash, block_hash};
    if constexpr (std::endian::native != std::endian::little) {
        for (auto& w : words) {
            w = detail::byteswap64(w);
        }
    }
    unsigned char buf[16];
    std::memcpy(buf, words, sizeof(buf));
    return XXH3_64bits_withSeed(buf, sizeof(buf), chain_seed);
}

/// The seed of the chain step: the salt in kvbm 1.2, the constant 1337 from kvbm 1.4 on.
[[nodiscard]] constexpr std::uint64_t chain_seed_for(PlhLayout layout, std::uint64_t salt) noexcept {
    return layout == PlhLayout::kvbm_1_2 ? salt : 1337;
}

/// The hashes of one full block.
template <PlhLayout Layout>
struct BasicTokenBlock {
    std::uint64_t block_hash = 0;
    std::uint64_t sequence_hash = 0;
    BasicPositionalLineageHash<Layout> plh;

    /// The block's index in its sequence (stored in the PLH).
    [[nodiscard]] constexpr std::uint64_t position() const noexcept { return plh.position(); }

    friend bool operator==(const BasicTokenBlock&, const BasicTokenBlock&) = default;
};

/// A growing token sequence cut into blocks of `block_size` tokens. Full blocks are hashed
/// as they complete; the trailing partial block is kept (its tokens) but not hashed.
/// Appending tokens one by one gives the same blocks as hashing them all at once.
/// Not thread-safe for concurrent mutation (a value type, like std::vector).
template <PlhLayout Layout = PlhLayout::kvbm_1_2>
class BasicTokenBlockSequence {
public:
    using hash_type = BasicPositionalLineageHash<Layout>;
    using block_type = BasicTokenBlock<Layout>;

    /// Throws std::invalid_argument when block_size is 0.
    explicit BasicTokenBlockSequence(std::size_t block_size, std::uint64_t salt = 0)
        : m_block_size(block_size), m_salt(salt) {
        if (block_size == 0) {
            throw std::invalid_argument("kvbm::TokenBlockSequence: block size must be positive");
        }
        m_partial.reserve(block_size);
    }

    /// Hashes `tokens` all at once (the fast path: no copy of the full blocks' tokens).
    [[nodiscard]] static BasicTokenBlockSequence from_slice(std::span<const Token> tokens, std::size_t block_size,
                                                            std::uint64_t salt = 0) {
        BasicTokenBlockSequence seq(block_size, salt);
        seq.extend(tokens);
        return seq;
    }

    /// Appends one token; hashes the block it completes, if any.
    void push_back(Token token) {
        m_partial.push_back(token);
        if (m_partial.size() == m_block_size) {
            hash_full_blocks(m_partial);
            m_partial.clear();
        }
    }

    /// Appends tokens; full blocks are hashed straight from `tokens` where possible.
    /// Throws std::out_of_range, having changed nothing, when a block would land beyond the
    /// largest PLH position (2^24 - 1).
    void extend(std::span<const Token> tokens) {
        const std::size_t total_blocks = (m_partial.size() + tokens.size()) / m_block_size;
        if (m_blocks.size() + total_blocks > hash_type::max_position + 1) {
            throw std::out_of_range("kvbm::TokenBlockSequence: more than 2^24 blocks");
        }
        // Top up the pending partial block first.
        while (!m_partial.empty() && !tokens.empty()) {
            push_back(tokens.front());
            tokens = tokens.subspan(1);
        }
        const std::size_t full = tokens.size() / m_block_size * m_block_size;
        hash_full_blocks(tokens.first(full));
        // Here the partial block is empty or the input is used up: append what is left.
        const auto rest = tokens.subspan(full);
        m_partial.insert(m_partial.end(), rest.begin(), rest.end());
    }

    /// The full blocks, in position order.
    [[nodiscard]] std::span<const block_type> blocks() const noexcept { return m_blocks; }
    /// The tokens of the trailing partial block (fewer than block_size).
    [[nodiscard]] std::span<const Token> partial_tokens() const noexcept { return m_partial; }
    /// All tokens seen: full blocks times block size plus the partial ones.
    [[nodiscard]] std::size_t total_tokens() const noexcept {
        return m_blocks.size() * m_block_size + m_partial.size();
    }
    [[nodiscard]] std::size_t block_size() const noexcept { return m_block_size; }
    [[nodiscard]] std::uint64_t salt() const noexcept { return m_salt; }
    /// The PLH of the last full block, if any.
    [[nodiscard]] std::optional<hash_type> last_hash() const noexcept {
        if (m_blocks.empty()) {
            return std::nullopt;
        }
        return m_blocks.back().plh;
    }

private:
    /// Hashes whole blocks (`tokens.size()` is a multiple of the block size). The parent
    /// sequence hash stays in a register across iterations: it is the loop's critical
    /// dependency, and a round trip through m_blocks' memory would lengthen every step.
    KVBM_FLATTEN void hash_full_blocks(std::span<const Token> tokens) {
        // Locals, not members, inside the loop: the u64 stores into m_blocks could alias
        // m_block_size and m_salt (same type), forcing a reload of both on every block.
        const std::size_t block_size = m_block_size;
        const std::uint64_t salt = m_salt;
        const std::size_t n = tokens.size() / block_size;
        if (n == 0) {
            return;
        }
        m_blocks.reserve(m_blocks.size() + n);  // extend() checked that positions stay < 2^24
        std::uint64_t position = m_blocks.size();
        const Token* block = tokens.data();
        const Token* const end = block + n * block_size;
        std::uint64_t parent = 0;
        if (position == 0) {
            parent = compute_block_hash({block, block_size}, salt);
            m_blocks.push_back({parent, parent, hash_type(parent, std::nullopt, 0)});
            ++position;
            block += block_size;
        } else {
            parent = m_blocks.back().sequence_hash;
        }
        const std::uint64_t chain_seed = chain_seed_for(Layout, salt);
        // One inner loop per run of positions with the same field widths (a handful per
        // sequence), so the per-block work has no width logic and no extra branch.
        while (block != end) {
            const auto run = detail::plh_run<Layout>::starting_at(position);
            const auto left = static_cast<std::size_t>(end - block) / block_size;
            const Token* const run_end = block + std::min<std::uint64_t>(left, run.end - position) * block_size;
            for (; block != run_end; block += block_size, ++position) {
                const std::uint64_t block_hash = compute_block_hash({block, block_size}, salt);
                const std::uint64_t seq = compute_sequence_hash(parent, block_hash, chain_seed);
                m_blocks.push_back({block_hash, seq, hash_type::from_raw(run.pack(seq, parent, position))});
                parent = seq;
            }
        }
    }

    std::size_t m_block_size;
    std::uint64_t m_salt;
    std::vector<block_type> m_blocks;
    std::vector<Token> m_partial;
};

/// kvbm 1.2 hashes (the default).
using TokenBlockSequence = BasicTokenBlockSequence<PlhLayout::kvbm_1_2>;
using TokenBlock = BasicTokenBlock<PlhLayout::kvbm_1_2>;
/// kvbm 1.4 hashes.
using TokenBlockSequenceV14 = BasicTokenBlockSequence<PlhLayout::kvbm_1_4>;

KVBM_NAMESPACE_END
