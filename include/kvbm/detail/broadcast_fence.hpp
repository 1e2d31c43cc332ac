/// @file kvbm/detail/broadcast_fence.hpp
/// Part of kvbm/broadcast.hpp: the platform pieces of the channel. The asymmetric fence's
/// expensive half (membarrier) and its failure hook, the inlining macros (cpu_relax is in
/// detail/platform.hpp).
#pragma once

#include <kvbm/config.hpp>
#include <kvbm/detail/platform.hpp>  // cpu_relax

#include <atomic>
#include <cstddef>

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#if defined(__GNUC__) || defined(__clang__)
#define KVBM_BROADCAST_NOINLINE [[gnu::noinline]]
// The sole-sender send is a handful of instructions; inlined, the compiler builds the value
// in registers instead of passing it through memory (where reading back a 24-byte value
// just stored field by field stalls on store forwarding).
#define KVBM_BROADCAST_INLINE [[gnu::always_inline]] inline
#else
#define KVBM_BROADCAST_NOINLINE
#define KVBM_BROADCAST_INLINE inline
#endif

// See detail::broadcast_words_of.
#if defined(__GNUC__) && !defined(__clang__) && defined(__has_builtin)
#if __has_builtin(__builtin_clear_padding)
#define KVBM_BROADCAST_CLEAR_PADDING 1
#endif
#endif

KVBM_NAMESPACE_BEGIN

namespace detail {

inline constexpr std::size_t broadcast_cache_line = 64;

/// The expensive half of an asymmetric fence (as in folly and liburcu): makes every running
/// thread of the process pass a full barrier, so the cheap half can be a compiler barrier.
/// Linux membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED); elsewhere unavailable, and both halves
/// are seq_cst fences.
inline bool broadcast_heavy_barrier_available() noexcept {
#if defined(__linux__) && defined(SYS_membarrier)
    static const bool registered = ::syscall(SYS_membarrier, 1 << 4 /* REGISTER_PRIVATE_EXPEDITED */, 0, 0) == 0;
    return registered;
#else
    return false;
#endif
}

/// Test hook: the next this-many heavy barriers fail as if membarrier had returned an error.
inline std::atomic<int> broadcast_heavy_barrier_failures_to_inject{0};

/// Runs the heavy barrier; false if it failed (membarrier returned an error), in which case
/// the caller must not rely on it.
[[nodiscard]] inline bool broadcast_heavy_barrier() noexcept {
    if (KVBM_UNLIKELY(broadcast_heavy_barrier_failures_to_inject.load(std::memory_order_relaxed) > 0) &&
        broadcast_heavy_barrier_failures_to_inject.fetch_sub(1, std::memory_order_relaxed) > 0) {
        return false;
    }
#if defined(__linux__) && defined(SYS_membarrier)
    return ::syscall(SYS_membarrier, 1 << 3 /* PRIVATE_EXPEDITED */, 0, 0) == 0;
#else
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return true;
#endif
}

}  // namespace detail

KVBM_NAMESPACE_END
