/// @file kvbm/detail/platform.hpp
/// The one copy of kvbm's few machine-dependent helpers: byte swap, the 64x64->128
/// multiply, prefetch, the spin-wait hint, and the SIMD switches with run-time CPU checks.
/// Private (namespace kvbm::detail); every function has a portable fallback.
///
/// SIMD switches: define KVBM_NO_SIMD to use the portable code everywhere. Otherwise, on x86
/// with GCC or Clang, KVBM_X86_SIMD is 1 and the codecs compile their vector paths with
/// per-function `target` attributes, choosing one at run time (cpu_has_*), so a binary built
/// for baseline x86-64 still uses AVX2 where the CPU has it. KVBM_SSE2 is 1 where the target
/// guarantees SSE2 (every x86-64), which needs no run-time check.
#pragma once

#include <kvbm/config.hpp>

#include <atomic>
#include <bit>
#include <cstdint>
#include <cstring>

#if !defined(KVBM_NO_SIMD) && (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define KVBM_X86_SIMD 1
#include <immintrin.h>
#else
#define KVBM_X86_SIMD 0
#endif

#if KVBM_X86_SIMD && defined(__SSE2__)
#define KVBM_SSE2 1
#else
#define KVBM_SSE2 0
#endif

KVBM_NAMESPACE_BEGIN
namespace detail {

// --- integers ---------------------------------------------------------------------------

/// The bytes of v in reverse order.
[[nodiscard]] constexpr std::uint64_t byteswap64(std::uint64_t v) noexcept {
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_bswap64(v);
#else
    std::uint64_t out = 0;
    for (int i = 0; i < 8; ++i) {
        out = (out << 8) | ((v >> (8 * i)) & 0xffU);
    }
    return out;
#endif
}

/// v in big-endian byte order (a no-op on big-endian hosts).
[[nodiscard]] constexpr std::uint64_t to_big_endian64(std::uint64_t v) noexcept {
    if constexpr (std::endian::native == std::endian::little) {
        return byteswap64(v);
    } else {
        return v;
    }
}

/// The 8 big-endian bytes at p as a value.
[[nodiscard]] inline std::uint64_t load_be64(const void* p) noexcept {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    return to_big_endian64(v);
}

/// The two 64-bit halves of a 128-bit product.
struct U128Parts {
    std::uint64_t hi;
    std::uint64_t lo;
};

/// The full 128-bit product of two 64-bit values (one `mul` where the compiler has a
/// 128-bit type).
[[nodiscard]] constexpr U128Parts mul_64x64(std::uint64_t a, std::uint64_t b) noexcept {
#if defined(__SIZEOF_INT128__)
    __extension__ using u128 = unsigned __int128;
    const u128 p = static_cast<u128>(a) * b;
    return {static_cast<std::uint64_t>(p >> 64), static_cast<std::uint64_t>(p)};
#else
    const std::uint64_t a_lo = a & 0xffffffffU, a_hi = a >> 32, b_lo = b & 0xffffffffU, b_hi = b >> 32;
    const std::uint64_t ll = a_lo * b_lo, lh = a_lo * b_hi, hl = a_hi * b_lo, hh = a_hi * b_hi;
    const std::uint64_t mid = (ll >> 32) + (lh & 0xffffffffU) + (hl & 0xffffffffU);
    return {hh + (lh >> 32) + (hl >> 32) + (mid >> 32), (mid << 32) | (ll & 0xffffffffU)};
#endif
}

// --- memory and waiting -------------------------------------------------------------------

/// Prefetch hint for a read about to happen (no effect where unsupported).
inline void prefetch(const void* p) noexcept {
#if defined(__GNUC__) || defined(__clang__)
    __builtin_prefetch(p);
#else
    (void)p;
#endif
}

/// Spin-wait hint (x86 `pause`, Arm `yield`): lets the sibling hyperthread run and saves power
/// while a loop polls a value another thread will change. A template only so that it can
/// coexist with the copy still in <kvbm/broadcast.hpp> (a plain function is preferred by
/// overload resolution); make it a plain function when that copy is gone.
template <class = void>
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
    asm volatile("yield" ::: "memory");
#else
    std::atomic_signal_fence(std::memory_order_seq_cst);
#endif
}

// --- run-time CPU features (x86 with GCC or Clang) ----------------------------------------

#if KVBM_X86_SIMD
/// True when the CPU running us has SSSE3 (pshufb).
[[nodiscard]] inline bool cpu_has_ssse3() noexcept {
#if defined(__SSSE3__)
    return true;
#else
    static const bool yes = [] {
        __builtin_cpu_init();
        return __builtin_cpu_supports("ssse3") != 0;
    }();
    return yes;
#endif
}

/// True when the CPU running us has AVX2 (and the OS saves its registers: GCC's and Clang's
/// checks include that).
[[nodiscard]] inline bool cpu_has_avx2() noexcept {
#if defined(__AVX2__)
    return true;
#else
    static const bool yes = [] {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") != 0;
    }();
    return yes;
#endif
}

/// True when the CPU running us has AVX-512 F, BW and VBMI (byte permutes across 64 bytes:
/// Ice Lake and Zen 4 onwards).
[[nodiscard]] inline bool cpu_has_avx512vbmi() noexcept {
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VBMI__)
    return true;
#else
    static const bool yes = [] {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") != 0 && __builtin_cpu_supports("avx512bw") != 0 &&
               __builtin_cpu_supports("avx512vbmi") != 0;
    }();
    return yes;
#endif
}
#endif

}  // namespace detail
KVBM_NAMESPACE_END
