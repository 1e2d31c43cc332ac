/// @file kvbm/detail/announce_core.hpp
/// The state behind `EventsManager::announce`: per hash, how many announcements are live,
/// in shards that each own a mutex, an open-addressing count map (no allocation per block
/// once grown) and a Sender. A hash's Create is sent when its count goes 0 -> 1 and its
/// Remove when it goes 1 -> 0, both under the shard's lock, so the channel sees each hash's
/// events in the order of its count's changes and a snapshot of the counts agrees with them.
#pragma once

#include <kvbm/broadcast.hpp>
#include <kvbm/config.hpp>
#include <kvbm/events.hpp>
#include <kvbm/hash.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

KVBM_NAMESPACE_BEGIN

namespace detail {

/// 64-bit finaliser (MurmurHash3's fmix64): every input bit reaches every output bit, so
/// the shard (top bits) and the slot (low bits) are both well spread.
[[nodiscard]] constexpr std::uint64_t mix64(std::uint64_t x) noexcept {
    x ^= x >> 33U;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33U;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33U;
    return x;
}

/// Hash -> positive count, linear probing, deletion by backward shift (no tombstones), so
/// a map that has grown to its working size never allocates again. A slot with count 0 is
/// empty. Not thread-safe (the shard's mutex guards it).
template <SequenceHash H>
class LiveCountMap {
public:
    /// Adds one to `key`'s count; returns the new count.
    std::uint64_t increment(const H& key, std::uint64_t mixed) {
        if ((m_size + 1) * 2 > m_slots.size()) {
            grow();
        }
        const std::size_t mask = m_slots.size() - 1;
        for (std::size_t i = static_cast<std::size_t>(mixed) & mask;; i = (i + 1) & mask) {
            Slot& s = m_slots[i];
            if (s.count == 0) {
                s.key = key;
                s.count = 1;
                ++m_size;
                return 1;
            }
            if (s.key == key) {
                return ++s.count;
            }
        }
    }

    /// Takes one from `key`'s count (which must be positive); returns the new count.
    std::uint64_t decrement(const H& key, std::uint64_t mixed) noexcept {
        const std::size_t mask = m_slots.size() - 1;
        std::size_t i = static_cast<std::size_t>(mixed) & mask;
        while (!(m_slots[i].count != 0 && m_slots[i].key == key)) {
            i = (i + 1) & mask;
        }
        if (--m_slots[i].count != 0) {
            return m_slots[i].count;
        }
        // Backward-shift deletion: pull later members of the probe run into the hole when
        // their home slot is not between the hole and themselves.
        --m_size;
        std::size_t hole = i;
        for (std::size_t j = (i + 1) & mask; m_slots[j].count != 0; j = (j + 1) & mask) {
            const std::size_t home = static_cast<std::size_t>(mix64(std::hash<H>{}(m_slots[j].key))) & mask;
            if (((j - home) & mask) >= ((j - hole) & mask)) {
                m_slots[hole] = m_slots[j];
                m_slots[j].count = 0;
                hole = j;
            }
        }
        m_slots[hole].count = 0;
        return 0;
    }

    template <class F>
    void for_each(F&& f) const {
        for (const Slot& s : m_slots) {
            if (s.count != 0) {
                f(s.key, s.count);
            }
        }
    }

    [[nodiscard]] std::size_t size() const noexcept { return m_size; }

private:
    struct Slot {
        H key{};
        std::uint64_t count = 0;
    };

    void grow() {
        std::vector<Slot> old(m_slots.empty() ? 16 : m_slots.size() * 2);
        old.swap(m_slots);
        const std::size_t mask = m_slots.size() - 1;
        for (const Slot& s : old) {
            if (s.count != 0) {
                std::size_t i = static_cast<std::size_t>(mix64(std::hash<H>{}(s.key))) & mask;
                while (m_slots[i].count != 0) {
                    i = (i + 1) & mask;
                }
                m_slots[i] = s;
            }
        }
    }

    std::vector<Slot> m_slots;
    std::size_t m_size = 0;
};

/// Shared by an EventsManager and every AnnouncedBlock it returned; the channel stays open
/// while it lives (each shard holds a Sender).
template <SequenceHash H>
class AnnounceCore {
public:
    using event_type = KvCacheEvent<H>;
    static constexpr std::size_t shard_count = 16;

    explicit AnnounceCore(const broadcast::Sender<event_type>& sender) {
        for (auto& shard : m_shards) {
            shard.sender.emplace(sender);
        }
    }

    /// One more live announcement of `hash`; sends Create if it is the first.
    void acquire(const H& hash) {
        const std::uint64_t mixed = mix64(std::hash<H>{}(hash));
        Shard& shard = shard_of(mixed);
        std::lock_guard lock(shard.mutex);
        if (shard.live.increment(hash, mixed) == 1) {
            (void)shard.sender->send(event_type::create(hash));  // refused only with no receiver
        }
    }

    /// One fewer; sends Remove when it was the last.
    void release(const H& hash) noexcept {
        const std::uint64_t mixed = mix64(std::hash<H>{}(hash));
        Shard& shard = shard_of(mixed);
        std::lock_guard lock(shard.mutex);
        if (shard.live.decrement(hash, mixed) == 0) {
            (void)shard.sender->send(event_type::remove(hash));
        }
    }

    /// The hashes with a live announcement; each shard is read at one instant.
    [[nodiscard]] std::vector<H> snapshot() const {
        std::vector<H> out;
        for (const Shard& shard : m_shards) {
            std::lock_guard lock(shard.mutex);
            shard.live.for_each([&](const H& h, std::uint64_t /*count*/) { out.push_back(h); });
        }
        return out;
    }

    /// How many distinct hashes have a live announcement (a hint under concurrency).
    [[nodiscard]] std::size_t size() const {
        std::size_t n = 0;
        for (const Shard& shard : m_shards) {
            std::lock_guard lock(shard.mutex);
            n += shard.live.size();
        }
        return n;
    }

private:
    struct alignas(64) Shard {
        mutable std::mutex mutex;
        LiveCountMap<H> live;
        // Used under `mutex` only: one thread at a time sends through it, as a Sender wants.
        std::optional<broadcast::Sender<event_type>> sender;
    };

    Shard& shard_of(std::uint64_t mixed) noexcept { return m_shards[static_cast<std::size_t>(mixed >> 60U)]; }
    static_assert(shard_count == 16, "shard_of takes the top 4 bits");

    std::array<Shard, shard_count> m_shards;
};

}  // namespace detail

KVBM_NAMESPACE_END
