/// @file kvbm/detail/schedule_point.hpp
/// KVBM_SCHEDULE_POINT(): a place where a test-only build may switch threads. Empty unless
/// KVBM_SCHEDULE_POINTS is defined (tests/test_broadcast_explore.cpp defines it); then each
/// point, driven by a seeded PRNG per thread, does nothing, yields, or spins a little, so
/// that running the same concurrent test over thousands of seeds explores many interleavings
/// of the channel's atomic operations and locks (the closest C++ relative of tokio's loom
/// runs; it samples schedules rather than enumerating them). KVBM_SCHEDULE_POINT_NAMED(name)
/// is such a point that also calls SchedulePoints::hook, for tests that must act at one exact
/// place (a regression test for a schedule the explorer found).
#pragma once

#if defined(KVBM_SCHEDULE_POINTS)

#include <kvbm/config.hpp>

#include <atomic>
#include <cstdint>
#include <thread>

KVBM_NAMESPACE_BEGIN

namespace detail {

struct SchedulePoints {
    /// The current seed; 0 disables every point (the default).
    static inline std::atomic<std::uint64_t> seed{0};
    /// Points reached since the last reset (to report how much was explored).
    static inline std::atomic<std::uint64_t> hits{0};
    /// Threads that started under the current seed (each gets its own stream).
    static inline std::atomic<std::uint64_t> threads{0};
    /// Called at every named point (KVBM_SCHEDULE_POINT_NAMED) with its name, seed or not:
    /// lets a test run code at one exact place of another thread's operation.
    static inline std::atomic<void (*)(const char*)> hook{nullptr};
};

struct SchedulePointState {
    std::uint64_t seed = 0;
    std::uint64_t state = 0;
};

inline thread_local SchedulePointState schedule_point_state;

inline void schedule_point(const char* name = nullptr) noexcept {
    if (name != nullptr) {
        if (auto* hook = SchedulePoints::hook.load(std::memory_order_acquire)) {
            hook(name);
        }
    }
    const std::uint64_t seed = SchedulePoints::seed.load(std::memory_order_relaxed);
    if (seed == 0) {
        return;
    }
    SchedulePoints::hits.fetch_add(1, std::memory_order_relaxed);
    SchedulePointState& s = schedule_point_state;
    if (s.seed != seed) {
        s.seed = seed;
        const std::uint64_t index = SchedulePoints::threads.fetch_add(1, std::memory_order_relaxed);
        s.state = (seed * 0x9E3779B97F4A7C15ULL) ^ ((index + 1) * 0xBF58476D1CE4E5B9ULL);
    }
    // xorshift64*
    s.state ^= s.state >> 12;
    s.state ^= s.state << 25;
    s.state ^= s.state >> 27;
    const std::uint64_t r = s.state * 0x2545F4914F6CDD1DULL;
    // 1 in 32: yield (a real switch, but costly when the machine is busy: it may give the
    // core away for a whole time slice); 3 in 32: dawdle a little; otherwise run on.
    const std::uint64_t pick = r >> 59;
    if (pick == 0) {
        std::this_thread::yield();
    } else if (pick <= 3) {
        for (std::uint64_t i = (r >> 8) & 511; i > 0; --i) {
            std::atomic_signal_fence(std::memory_order_seq_cst);
        }
    }
}

}  // namespace detail

KVBM_NAMESPACE_END

#define KVBM_SCHEDULE_POINT() ::kvbm::detail::schedule_point()
#define KVBM_SCHEDULE_POINT_NAMED(name) ::kvbm::detail::schedule_point(name)

#else

#define KVBM_SCHEDULE_POINT() static_cast<void>(0)
#define KVBM_SCHEDULE_POINT_NAMED(name) static_cast<void>(0)

#endif
