/// @file kvbm/detail/dense_map.hpp
/// A small robin-hood hash map with dense value storage, for the hub index. Private:
/// only what PositionalIndex needs (find, try_emplace, erase, iteration over values).
///
/// Layout (the design of martinus/unordered_dense, written afresh): a bucket array of 8-byte
/// {distance+fingerprint, value index} pairs and a separate dense vector of (key, value).
/// Why: a lookup that misses (most lookups of a query) reads one bucket cache line and
/// almost never the values (the 8-bit fingerprint filters 255 of 256 foreign keys); values
/// are contiguous, so scans (remove_instance, snapshots) are sequential; erase is
/// swap-with-last plus backward shift, so no tombstones slow later lookups.
#pragma once

#include <kvbm/config.hpp>
#include <kvbm/detail/platform.hpp>
#include <kvbm/uint128.hpp>

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <random>
#include <type_traits>
#include <utility>
#include <vector>

KVBM_NAMESPACE_BEGIN
namespace detail {

/// The 64x64->128 multiply folded to 64 bits (high ^ low): the mixing step of wyhash and
/// unordered_dense.
[[nodiscard]] inline std::uint64_t fold_mul(std::uint64_t a, std::uint64_t b) noexcept {
    const U128Parts p = mul_64x64(a, b);
    return p.hi ^ p.lo;
}

/// Folds a 64-bit value through a 64x64->128 multiply: every input bit reaches the high
/// bits the bucket index is taken from, even for weak user hashes (identity on integers).
[[nodiscard]] inline std::uint64_t mix_hash(std::uint64_t h) noexcept { return fold_mul(h, 0x9E3779B97F4A7C15ULL); }

/// The secret key of the index's hash maps: random per process (std::random_device), so
/// that a peer cannot precompute keys that collide. Why keyed: the hub hashes keys its
/// peers choose (hashes and instance ids arrive from the network), and an unkeyed hash of
/// a 128-bit value is easy to invert (std::hash<Uint128> folds `high * K ^ low`, so keys
/// with `low = high * K ^ C` all hash alike): one message of such Creates would make every
/// insert walk one ever-longer probe run, quadratic time under the index's exclusive lock.
struct HashKey {
    std::uint64_t k0, k1, k2, k3;
};

[[nodiscard]] inline HashKey random_hash_key() noexcept {
    HashKey key{0x2d358dccaa6c78a5ULL, 0x8bb84b93962eacc9ULL, 0x4b33a62ed433d4a3ULL, 0x4d5a2da51de1aa47ULL};
    std::uint64_t words[4] = {};
    try {
        std::random_device rd;
        for (std::uint64_t& w : words) {
            w = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
        }
    } catch (...) {
        // No entropy source: fall back to what differs between runs (time, ASLR).
        const auto now = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
        const auto here = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(&key));
        words[0] = now;
        words[1] = here;
        words[2] = now ^ (here << 17);
        words[3] = fold_mul(now ^ key.k0, here ^ key.k1);
    }
    key.k0 ^= words[0];
    key.k1 ^= words[1];
    key.k2 ^= words[2];
    key.k3 ^= words[3];
    return key;
}

/// The process's key, drawn once on first use (thread-safe static initialisation).
[[nodiscard]] inline const HashKey& process_hash_key() noexcept {
    static const HashKey key = random_hash_key();
    return key;
}

/// A keyed 64-bit hash of 128 bits (wyhash's 16-byte step): one multiply of the key-masked
/// halves, then one more to spread. Without the key, which inputs collide is unknown.
[[nodiscard]] inline std::uint64_t keyed_hash(std::uint64_t high, std::uint64_t low, const HashKey& key) noexcept {
    const U128Parts p = mul_64x64(low ^ key.k0, high ^ key.k1);
    return fold_mul(p.lo ^ key.k2, p.hi ^ key.k3);
}

/// The index maps' hash: keyed (see HashKey) on the 128 raw bits of a key that has them
/// (Uint128, positional lineage hashes, any WireSequenceHash); other keys go through their
/// std::hash first, so they are only as collision-proof as that is. Avalanching: the map
/// uses it as is.
template <class Key>
struct KeyedHash {
    using is_avalanching = void;
    [[nodiscard]] std::uint64_t operator()(const Key& k) const noexcept {
        if constexpr (std::is_same_v<Key, Uint128>) {
            return keyed_hash(k.high(), k.low(), process_hash_key());
        } else if constexpr (requires {
                                 { k.raw() } -> std::convertible_to<Uint128>;
                             }) {
            const Uint128 raw = k.raw();
            return keyed_hash(raw.high(), raw.low(), process_hash_key());
        } else {
            return keyed_hash(0, static_cast<std::uint64_t>(std::hash<Key>{}(k)), process_hash_key());
        }
    }
};

/// Hashes marked `using is_avalanching = void;` are used as they are, others are mixed.
template <class Hash>
concept AvalanchingHash = requires {
    typename Hash::is_avalanching;
};

template <class Key, class Value, class Hash = KeyedHash<Key>>
class DenseMap {
public:
    using value_type = std::pair<Key, Value>;

    /// Allocates nothing until the first insert (the index holds one map per position,
    /// most of them empty).
    DenseMap() = default;

    [[nodiscard]] std::size_t size() const noexcept { return m_values.size(); }
    [[nodiscard]] bool empty() const noexcept { return m_values.empty(); }
    /// The dense values, in no particular order; index i stays valid until the next erase.
    [[nodiscard]] std::vector<value_type>& values() noexcept { return m_values; }
    [[nodiscard]] const std::vector<value_type>& values() const noexcept { return m_values; }

    /// The mixed hash of `key`, to pass to `prefetch_bucket` and `find` when the caller
    /// wants to overlap the memory latency of several lookups.
    [[nodiscard]] std::uint64_t hash_of(const Key& key) const noexcept {
        if constexpr (AvalanchingHash<Hash>) {
            return static_cast<std::uint64_t>(Hash{}(key));
        } else {
            return mix_hash(static_cast<std::uint64_t>(Hash{}(key)));
        }
    }
    void prefetch_bucket(std::uint64_t h) const noexcept {
        if (!m_values.empty()) {
            prefetch(&m_buckets[bucket_of(h)]);
        }
    }

    /// Index of `key` in values(), or npos.
    [[nodiscard]] std::size_t find(const Key& key) const noexcept { return find(key, hash_of(key)); }
    [[nodiscard]] std::size_t find(const Key& key, std::uint64_t h) const noexcept {
        if (m_values.empty()) {
            return npos;  // also covers "no buckets allocated yet"
        }
        std::uint32_t df = dist_fp_of(h);
        std::size_t b = bucket_of(h);
        for (;;) {
            const Bucket& bucket = m_buckets[b];
            if (bucket.dist_fp == df) {
                if (m_values[bucket.index].first == key) {
                    return bucket.index;
                }
            } else if (bucket.dist_fp < df) {
                // Robin-hood invariant: the key would have taken this bucket.
                return npos;
            }
            df += dist_inc;
            b = next(b);
        }
    }

    /// Inserts (key, Value{}) unless present; returns the value index and whether it was new.
    /// Strong guarantee: when it throws (std::bad_alloc), the map is unchanged.
    std::pair<std::size_t, bool> try_emplace(const Key& key) {
        if (m_buckets.empty()) {
            rehash(initial_shift);
        }
        const std::uint64_t h = hash_of(key);
        for (;;) {
            std::uint32_t df = dist_fp_of(h);
            std::size_t b = bucket_of(h);
            while (df <= m_buckets[b].dist_fp) {
                if (df == m_buckets[b].dist_fp && m_values[m_buckets[b].index].first == key) {
                    return {m_buckets[b].index, false};
                }
                df += dist_inc;
                b = next(b);
            }
            if (m_values.size() < m_max_size) {
                const auto index = static_cast<std::uint32_t>(m_values.size());
                m_values.emplace_back(key, Value{});
                place(Bucket{df, index}, b);
                return {index, true};
            }
            rehash(m_shift - 1);  // then probe again in the doubled table
        }
    }

    /// Erases the value at `index` (as returned by find); the last value moves into its place.
    void erase_at(std::size_t index) noexcept {
        remove_bucket(find_bucket_of_index(index));
        const std::size_t last = m_values.size() - 1;
        if (index != last) {
            // Repoint the moved value's bucket before moving it.
            m_buckets[find_bucket_of_index(last)].index = static_cast<std::uint32_t>(index);
            m_values[index] = std::move(m_values[last]);
        }
        m_values.pop_back();
    }

    /// Empties the map and releases its memory.
    void clear() noexcept {
        m_values = {};
        m_buckets = {};
        m_max_size = 0;
        m_shift = initial_shift;
    }

    static constexpr std::size_t npos = static_cast<std::size_t>(-1);

private:
    struct Bucket {
        std::uint32_t dist_fp = 0;  // (distance + 1) << 8 | fingerprint; 0 marks an empty bucket
        std::uint32_t index = 0;    // into m_values
    };
    static constexpr std::uint32_t dist_inc = 1U << 8;
    static constexpr unsigned initial_shift = 64 - 3;  // 8 buckets
    // Load factor 0.8: probes stay short with robin hood, and the bucket array is 8 bytes
    // per slot, so the spare 20% costs little next to the values.
    static constexpr double max_load = 0.8;

    [[nodiscard]] std::size_t bucket_of(std::uint64_t h) const noexcept {
        return static_cast<std::size_t>(h >> m_shift);
    }
    [[nodiscard]] static std::uint32_t dist_fp_of(std::uint64_t h) noexcept {
        return dist_inc | static_cast<std::uint32_t>(h & 0xffU);
    }
    [[nodiscard]] std::size_t next(std::size_t b) const noexcept { return (b + 1) & (m_buckets.size() - 1); }

    /// Puts `bucket` at `b`, shifting the run after it one place up (robin hood displacement).
    void place(Bucket bucket, std::size_t b) noexcept {
        while (m_buckets[b].dist_fp != 0) {
            std::swap(bucket, m_buckets[b]);
            bucket.dist_fp += dist_inc;
            b = next(b);
        }
        m_buckets[b] = bucket;
    }

    [[nodiscard]] std::size_t find_bucket_of_index(std::size_t index) const noexcept {
        const std::uint64_t h = hash_of(m_values[index].first);
        std::size_t b = bucket_of(h);
        while (m_buckets[b].index != index || m_buckets[b].dist_fp == 0) {
            b = next(b);
        }
        return b;
    }

    /// Backward-shift deletion: pull the following run down one place until a bucket that
    /// is empty or already at its home.
    void remove_bucket(std::size_t b) noexcept {
        std::size_t n = next(b);
        while (m_buckets[n].dist_fp >= 2 * dist_inc) {
            m_buckets[b] = Bucket{m_buckets[n].dist_fp - dist_inc, m_buckets[n].index};
            b = n;
            n = next(n);
        }
        m_buckets[b] = Bucket{};
    }

    void rehash(unsigned shift) {
        const std::size_t count = std::size_t{1} << (64 - shift);
        std::vector<Bucket> fresh(count);  // may throw: nothing changed yet
        m_buckets.swap(fresh);
        m_shift = shift;
        m_max_size = static_cast<std::size_t>(static_cast<double>(count) * max_load);
        for (std::size_t i = 0; i < m_values.size(); ++i) {
            const std::uint64_t h = hash_of(m_values[i].first);
            std::uint32_t df = dist_fp_of(h);
            std::size_t b = bucket_of(h);
            while (df <= m_buckets[b].dist_fp) {
                df += dist_inc;
                b = next(b);
            }
            place(Bucket{df, static_cast<std::uint32_t>(i)}, b);
        }
    }

    std::vector<Bucket> m_buckets;
    std::vector<value_type> m_values;
    std::size_t m_max_size = 0;
    unsigned m_shift = initial_shift;
};

}  // namespace detail
KVBM_NAMESPACE_END
