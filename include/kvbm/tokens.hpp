/// @file kvbm/tokens.hpp
/// Token-block hashing (target kvbm::tokens, needs xxHash's header from libxxhash-dev):
/// splits a token sequence into full blocks and computes, for each, the block hash, the
/// chained sequence hash and the positional lineage hash, exactly as dynamo-tokens'
/// `TokenBlockSequence::from_slice(tokens, block_size, salt)` does.
#pragma once

#include <kvbm/config.hpp>
#include <kvbm/hash.hpp>

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
    std::uint8_t buf[16];
    for (std::size_t b = 0; b < 8; ++b) {
        buf[b] = static_cast<std::uint8_t>(parent_sequence_hash >> (8 * b));
        buf[8 + b] = static_cast<std::uint8_t>(block_hash >> (8 * b));
    }
    return XXH3_64bits_withSeed(buf, sizeof(buf), chain_seed);
}

/// The seed of the chain step: the salt in kvbm 1.2, the constant 1337 from kvbm 1.4 on.
[[nodiscard]] constexpr std::uint64_t chain_seed_for(PlhLayout layout, std::uint64_t salt) noexcept {
    return layout == PlhLayout::kvbm_1_2 ? salt : 1337;
}

/// The hashes of one full block.
template <PlhLayout Layout>
struct BasicTokenBlock {
    std::uint64_t position = 0;
    std::uint64_t block_hash = 0;
    std::uint64_t sequence_hash = 0;
    BasicPositionalLineageHash<Layout> plh;

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
            commit_block(m_partial);
            m_partial.clear();
        }
    }

    /// Appends tokens; full blocks are hashed straight from `tokens` where possible.
    void extend(std::span<const Token> tokens) {
        // Top up the pending partial block first.
        while (!m_partial.empty() && !tokens.empty()) {
            push_back(tokens.front());
            tokens = tokens.subspan(1);
        }
        const std::size_t full = tokens.size() / m_block_size;
        m_blocks.reserve(m_blocks.size() + full);
        for (std::size_t i = 0; i < full; ++i) {
            commit_block(tokens.subspan(i * m_block_size, m_block_size));
        }
        // Here the partial block is empty or the input is used up: append what is left.
        const auto rest = tokens.subspan(full * m_block_size);
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
    void commit_block(std::span<const Token> tokens) {
        const std::uint64_t position = m_blocks.size();
        const std::uint64_t block_hash = compute_block_hash(tokens, m_salt);
        if (m_blocks.empty()) {
            m_blocks.push_back({position, block_hash, block_hash, hash_type(block_hash, std::nullopt, position)});
            return;
        }
        const std::uint64_t parent = m_blocks.back().sequence_hash;
        const std::uint64_t seq = compute_sequence_hash(parent, block_hash, chain_seed_for(Layout, m_salt));
        m_blocks.push_back({position, block_hash, seq, hash_type(seq, parent, position)});
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
