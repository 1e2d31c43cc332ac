/// @file kvbm/detail/broadcast_slot.hpp
/// Part of kvbm/broadcast.hpp: a slot of the ring. For a trivially copyable T a seqlock (a
/// version word and the value as relaxed atomic words); otherwise a per-slot mutex, the
/// value and the count of receivers still to read it. The version encoding is here too.
#pragma once

#include <kvbm/config.hpp>
#include <kvbm/detail/broadcast_fence.hpp>
#include <kvbm/detail/schedule_point.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <type_traits>

KVBM_NAMESPACE_BEGIN

namespace detail {

// A slot's version word holds the position it was last written for, shifted left by one;
// the low bit is set while a sender is writing it. Receivers compare the version with their
// own position (`next << 1`): equal means "your value", below or "being written for you"
// means "not sent yet", anything above means "overwritten: you lagged". Positions are 64-bit
// and wrap; differences are taken modulo 2^64 and read as signed, which is exact as long as
// no receiver is 2^62 values behind (centuries at any realistic rate).
[[nodiscard]] constexpr std::uint64_t broadcast_published(std::uint64_t pos) noexcept { return pos << 1; }
[[nodiscard]] constexpr std::uint64_t broadcast_writing(std::uint64_t pos) noexcept { return (pos << 1) | 1U; }
[[nodiscard]] constexpr std::int64_t broadcast_distance(std::uint64_t version, std::uint64_t next) noexcept {
    return static_cast<std::int64_t>(version - broadcast_published(next));
}

/// Trivially copyable values are read without any lock: the slot is a seqlock.
template <class T>
inline constexpr bool broadcast_seqlock = std::is_trivially_copyable_v<T>;

template <class T>
inline constexpr std::size_t broadcast_words = (sizeof(T) + 7) / 8;

// Two 32-byte slots per line rather than 40-byte slots straddling lines.
template <class T>
inline constexpr std::size_t broadcast_slot_align = std::min<std::size_t>(broadcast_cache_line,
                                                                          std::bit_ceil(8 * (1 + broadcast_words<T>)));

/// A trivially copyable value as 64-bit words (the padding bytes' values do not matter).
///
/// Why this is not one memcpy: a value usually arrives freshly built field by field (e.g. a
/// KvCacheEvent: a 1-byte kind, 7 bytes of padding, a 16-byte hash). A word load spanning
/// the kind's 1-byte store and the never-written padding cannot be forwarded from the store
/// buffer and stalls until the store retires (measured: 3x the cost of a whole send).
/// Clang sees through a word-wise memcpy and builds the words in registers. GCC (12) does
/// not, but does once the padding is defined: copy into zeroed storage and clear the copy's
/// padding, then it folds the words.
template <class T>
[[nodiscard]] std::array<std::uint64_t, broadcast_words<T>> broadcast_words_of(const T& value) noexcept {
    std::array<std::uint64_t, broadcast_words<T>> raw{};
#if defined(KVBM_BROADCAST_CLEAR_PADDING)
    alignas(T) std::array<std::uint64_t, broadcast_words<T>> staging{};
    __builtin_clear_padding(::new (static_cast<void*>(staging.data())) T(value));
    for (std::size_t i = 0; i < raw.size(); ++i) {
        raw[i] = staging[i];
    }
#else
    const auto* bytes = reinterpret_cast<const unsigned char*>(std::addressof(value));
    for (std::size_t i = 0; i < raw.size(); ++i) {
        std::memcpy(&raw[i], bytes + 8 * i, std::min<std::size_t>(8, sizeof(T) - 8 * i));
    }
#endif
    return raw;
}

template <class T, bool Seqlock = broadcast_seqlock<T>>
struct BroadcastSlot;

template <class T>
struct alignas(broadcast_slot_align<T>) BroadcastSlot<T, true> {
    std::atomic<std::uint64_t> version;
    // The value as 64-bit words, stored and loaded with relaxed atomics: a reader racing a
    // writer reads torn words (and then discards them), which is not a data race.
    std::array<std::atomic<std::uint64_t>, broadcast_words<T>> words;

    /// Called by the one sender allowed to write (lock holder or sole sender).
    void write(std::uint64_t pos, const std::array<std::uint64_t, broadcast_words<T>>& raw) noexcept {
        // Release: a receiver that sees "being written for pos" also sees tail >= pos.
        KVBM_SCHEDULE_POINT();
        version.store(broadcast_writing(pos), std::memory_order_release);
        KVBM_SCHEDULE_POINT();
        // Orders the mark before the word stores: a reader that loads any new word and then
        // fences (acquire) sees the mark when it re-reads the version.
        std::atomic_thread_fence(std::memory_order_release);
        for (std::size_t i = 0; i < raw.size(); ++i) {
            words[i].store(raw[i], std::memory_order_relaxed);
            KVBM_SCHEDULE_POINT();
        }
        version.store(broadcast_published(pos), std::memory_order_release);
        KVBM_SCHEDULE_POINT();
    }

    /// The value's words; may be torn: the caller validates with the version afterwards.
    [[nodiscard]] std::array<std::uint64_t, broadcast_words<T>> read() const noexcept {
        std::array<std::uint64_t, broadcast_words<T>> raw;
        for (std::size_t i = 0; i < raw.size(); ++i) {
            KVBM_SCHEDULE_POINT();
            raw[i] = words[i].load(std::memory_order_relaxed);
        }
        return raw;
    }
};

template <class T>
struct BroadcastSlot<T, false> {
    std::atomic<std::uint64_t> version;  // changed under `mutex`; read without it only as a hint
    std::mutex mutex;
    std::uint64_t rem = 0;  // receivers that still have to read `value`
    std::optional<T> value;
};

}  // namespace detail

KVBM_NAMESPACE_END
