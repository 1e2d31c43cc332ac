/// @file kvbm/uint128.hpp
/// A portable unsigned 128-bit integer for hashes and instance ids.
///
/// The public API never requires `unsigned __int128`; where the compiler has it, explicit
/// conversions in both directions are provided. Text conversion follows `<charconv>`:
/// `kvbm::from_chars` reports `std::errc::invalid_argument` or `std::errc::result_out_of_range`
/// and never wraps, `kvbm::to_chars` writes decimal or hex without allocating.
#pragma once

#include <kvbm/config.hpp>
#include <kvbm/detail/platform.hpp>

#include <array>
#include <bit>
#include <charconv>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <iosfwd>
#include <ostream>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>

KVBM_NAMESPACE_BEGIN

/// Unsigned 128-bit integer: a regular value type (trivially copyable, 16 bytes).
/// Arithmetic wraps modulo 2^128 like the built-in unsigned types; text parsing never wraps.
class Uint128 {
public:
    constexpr Uint128() noexcept = default;

    /// Implicit from any unsigned integer up to 64 bits (`Uint128 id = 12345u;`).
    template <class U>
    requires(std::is_unsigned_v<U> && !std::is_same_v<U, bool> &&
             sizeof(U) <= 8) constexpr Uint128(U value) noexcept  // NOLINT(google-explicit-constructor)
        : m_lo(value) {}

    /// From the high and low 64-bit halves: `value = hi * 2^64 + lo`.
    [[nodiscard]] static constexpr Uint128 from_parts(std::uint64_t hi, std::uint64_t lo) noexcept {
        Uint128 v;
        v.m_hi = hi;
        v.m_lo = lo;
        return v;
    }

    /// The largest value, 2^128 - 1.
    [[nodiscard]] static constexpr Uint128 max() noexcept { return from_parts(~std::uint64_t{0}, ~std::uint64_t{0}); }

#if defined(__SIZEOF_INT128__)
    __extension__ typedef unsigned __int128 native_type;  // NOLINT(modernize-use-using)
    /// Interop with the compiler's 128-bit type, where it has one.
    constexpr explicit Uint128(native_type value) noexcept
        : m_hi(static_cast<std::uint64_t>(value >> 64)), m_lo(static_cast<std::uint64_t>(value)) {}
    constexpr explicit operator native_type() const noexcept { return (static_cast<native_type>(m_hi) << 64) | m_lo; }
#endif

    [[nodiscard]] constexpr std::uint64_t high() const noexcept { return m_hi; }
    [[nodiscard]] constexpr std::uint64_t low() const noexcept { return m_lo; }

    /// True when the value fits in 64 bits.
    [[nodiscard]] constexpr bool fits_u64() const noexcept { return m_hi == 0; }

    /// The 16 big-endian bytes (the order serde's `u128::to_be_bytes` and the wire use).
    [[nodiscard]] constexpr std::array<std::uint8_t, 16> to_be_bytes() const noexcept {
        std::array<std::uint8_t, 16> out{};
        for (std::size_t i = 0; i < 8; ++i) {
            out[i] = static_cast<std::uint8_t>(m_hi >> (56 - 8 * i));
            out[8 + i] = static_cast<std::uint8_t>(m_lo >> (56 - 8 * i));
        }
        return out;
    }

    /// From 16 big-endian bytes.
    [[nodiscard]] static constexpr Uint128 from_be_bytes(std::span<const std::uint8_t, 16> bytes) noexcept {
        std::uint64_t hi = 0;
        std::uint64_t lo = 0;
        for (std::size_t i = 0; i < 8; ++i) {
            hi = (hi << 8) | bytes[i];
            lo = (lo << 8) | bytes[8 + i];
        }
        return from_parts(hi, lo);
    }

    friend constexpr bool operator==(const Uint128&, const Uint128&) noexcept = default;
    friend constexpr std::strong_ordering operator<=>(const Uint128& a, const Uint128& b) noexcept {
        if (auto c = a.m_hi <=> b.m_hi; c != 0) {
            return c;
        }
        return a.m_lo <=> b.m_lo;
    }

    constexpr explicit operator bool() const noexcept { return (m_hi | m_lo) != 0; }

    friend constexpr Uint128 operator~(const Uint128& a) noexcept { return from_parts(~a.m_hi, ~a.m_lo); }
    friend constexpr Uint128 operator&(const Uint128& a, const Uint128& b) noexcept {
        return from_parts(a.m_hi & b.m_hi, a.m_lo & b.m_lo);
    }
    friend constexpr Uint128 operator|(const Uint128& a, const Uint128& b) noexcept {
        return from_parts(a.m_hi | b.m_hi, a.m_lo | b.m_lo);
    }
    friend constexpr Uint128 operator^(const Uint128& a, const Uint128& b) noexcept {
        return from_parts(a.m_hi ^ b.m_hi, a.m_lo ^ b.m_lo);
    }
    /// Shifts by 128 or more give 0, unlike the built-in types (where it is undefined).
    friend constexpr Uint128 operator<<(const Uint128& a, unsigned n) noexcept {
        if (n >= 128) {
            return {};
        }
        if (n >= 64) {
            return from_parts(a.m_lo << (n - 64), 0);
        }
        if (n == 0) {
            return a;
        }
        return from_parts((a.m_hi << n) | (a.m_lo >> (64 - n)), a.m_lo << n);
    }
    friend constexpr Uint128 operator>>(const Uint128& a, unsigned n) noexcept {
        if (n >= 128) {
            return {};
        }
        if (n >= 64) {
            return from_parts(0, a.m_hi >> (n - 64));
        }
        if (n == 0) {
            return a;
        }
        return from_parts(a.m_hi >> n, (a.m_lo >> n) | (a.m_hi << (64 - n)));
    }
    friend constexpr Uint128 operator+(const Uint128& a, const Uint128& b) noexcept {
        const std::uint64_t lo = a.m_lo + b.m_lo;
        return from_parts(a.m_hi + b.m_hi + (lo < a.m_lo ? 1U : 0U), lo);
    }
    friend constexpr Uint128 operator-(const Uint128& a, const Uint128& b) noexcept {
        const std::uint64_t lo = a.m_lo - b.m_lo;
        return from_parts(a.m_hi - b.m_hi - (a.m_lo < b.m_lo ? 1U : 0U), lo);
    }
    constexpr Uint128& operator&=(const Uint128& b) noexcept { return *this = *this & b; }
    constexpr Uint128& operator|=(const Uint128& b) noexcept { return *this = *this | b; }
    constexpr Uint128& operator^=(const Uint128& b) noexcept { return *this = *this ^ b; }
    constexpr Uint128& operator<<=(unsigned n) noexcept { return *this = *this << n; }
    constexpr Uint128& operator>>=(unsigned n) noexcept { return *this = *this >> n; }
    constexpr Uint128& operator+=(const Uint128& b) noexcept { return *this = *this + b; }
    constexpr Uint128& operator-=(const Uint128& b) noexcept { return *this = *this - b; }

    /// Divides by a 64-bit divisor (> 0): returns the quotient, stores the remainder.
    [[nodiscard]] constexpr Uint128 divmod(std::uint64_t divisor, std::uint64_t& remainder) const noexcept {
        const std::uint64_t q_hi = m_hi / divisor;
        std::uint64_t r = m_hi % divisor;
        const std::uint64_t q_lo = div_128_by_64(r, m_lo, divisor, r);
        remainder = r;
        return from_parts(q_hi, q_lo);
    }

    /// Multiplies by a 64-bit factor, reporting overflow instead of wrapping.
    [[nodiscard]] constexpr bool checked_mul_add(std::uint64_t factor, std::uint64_t addend,
                                                 Uint128& out) const noexcept {
        // (hi*2^64 + lo) * f + a, with every partial product checked.
        const auto [lo_hi, lo_lo] = detail::mul_64x64(m_lo, factor);
        const auto [hi_hi, hi_lo] = detail::mul_64x64(m_hi, factor);
        if (hi_hi != 0) {
            return false;
        }
        std::uint64_t hi = hi_lo + lo_hi;
        if (hi < hi_lo) {
            return false;
        }
        const std::uint64_t lo = lo_lo + addend;
        if (lo < lo_lo) {
            if (++hi == 0) {
                return false;
            }
        }
        out = from_parts(hi, lo);
        return true;
    }

    /// Decimal text (exact for every value).
    [[nodiscard]] std::string to_string() const;
    /// Hex text: 32 lowercase digits, zero padded (the reference's `{:032x}`).
    [[nodiscard]] std::string to_hex32() const;

    /// Parses decimal (base 10) or hex (base 16) text, the whole string; throws
    /// std::invalid_argument (empty, bad digit) or std::out_of_range (>= 2^128).
    [[nodiscard]] static Uint128 parse(std::string_view text, int base = 10);

private:
    /// (hi:lo) / d for hi < d; the quotient fits in 64 bits.
    static constexpr std::uint64_t div_128_by_64(std::uint64_t hi, std::uint64_t lo, std::uint64_t d,
                                                 std::uint64_t& rem) noexcept {
#if defined(__SIZEOF_INT128__)
        __extension__ using u128 = unsigned __int128;
        const u128 n = (static_cast<u128>(hi) << 64) | lo;
        rem = static_cast<std::uint64_t>(n % d);
        return static_cast<std::uint64_t>(n / d);
#else
        // Restoring long division, one bit at a time (portable fallback).
        std::uint64_t q = 0;
        for (int i = 63; i >= 0; --i) {
            const bool carry = (hi >> 63) != 0;
            hi = (hi << 1) | ((lo >> i) & 1U);
            if (carry || hi >= d) {
                hi -= d;
                q |= std::uint64_t{1} << i;
            }
        }
        rem = hi;
        return q;
#endif
    }

    std::uint64_t m_hi = 0;
    std::uint64_t m_lo = 0;
};

static_assert(sizeof(Uint128) == 16 && std::is_trivially_copyable_v<Uint128>);

// --- decimal text: the one u128 codec of to_chars, from_chars and kvbm::json --------------

namespace detail::decimal {

/// The most decimal digits of a u128 (2^128 - 1 has 39), and how far past its end the digit
/// writers below may store (they write whole 4-, 8- or 16-byte words).
inline constexpr std::size_t max_u128_digits = 39;
inline constexpr std::size_t digits_slack = 8;

/// The high 128 bits of the 256-bit product x * y.
[[nodiscard]] inline Uint128 mul_high_128(const Uint128& x, const Uint128& y) noexcept {
    const U128Parts ll = mul_64x64(x.low(), y.low());
    const U128Parts lh = mul_64x64(x.low(), y.high());
    const U128Parts hl = mul_64x64(x.high(), y.low());
    const U128Parts hh = mul_64x64(x.high(), y.high());
    const Uint128 m = Uint128::from_parts(lh.hi, lh.lo) + Uint128{ll.hi};  // no overflow: < 2^128
    const Uint128 high1{m.high()};
    const Uint128 high2 = (Uint128::from_parts(hl.hi, hl.lo) + Uint128{m.low()}) >> 64;
    return Uint128::from_parts(hh.hi, hh.lo) + high1 + high2;
}

inline constexpr std::uint64_t ten19 = 10'000'000'000'000'000'000ULL;

/// n = quotient * 10^19 + remainder, by multiplication with a reciprocal rather than a
/// 128-bit division (the method of the itoa crate that serde_json uses).
[[nodiscard]] inline std::uint64_t divmod_1e19(Uint128& n) noexcept {
    Uint128 q;
    if (n < (Uint128{1U} << 83)) {
        q = Uint128{(n >> 19).low() / (ten19 >> 19)};  // 10^19 = 2^19 * 5^19
    } else {
        // ceil(2^190 / 10^19)
        q = mul_high_128(n, Uint128::from_parts(0x760f253edb4ab0d2ULL, 0x9598f4f1e8361973ULL)) >> 62;
    }
    // The remainder is below 10^19, so only the low 64 bits of n - q * 10^19 matter.
    const std::uint64_t r = n.low() - q.low() * ten19;
    n = q;
    return r;
}

inline constexpr bool little_endian = std::endian::native == std::endian::little;

/// The 8 ASCII digits of x < 10^8, first digit in the lowest byte (little-endian hosts):
/// all digits at once with a few multiplications instead of 8 dependent divisions.
[[nodiscard]] inline std::uint64_t digits8(std::uint32_t x) noexcept {
    const std::uint64_t merged = (x / 10000) | (std::uint64_t{x % 10000} << 32);  // 4 + 4 digits
    const std::uint64_t hundreds = ((merged * 10486) >> 20) & 0x0000'007F'0000'007FULL;
    const std::uint64_t pairs = ((merged - 100 * hundreds) << 16) | hundreds;  // 2+2+2+2 digits
    const std::uint64_t tens = ((pairs * 103) >> 10) & 0x000F'000F'000F'000FULL;
    return (((pairs - 10 * tens) << 8) | tens) + 0x3030'3030'3030'3030ULL;
}

inline void store8(char* p, std::uint64_t v) noexcept { std::memcpy(p, &v, 8); }

/// "00" .. "99".
[[nodiscard]] constexpr std::array<char, 200> make_two_digits() noexcept {
    std::array<char, 200> t{};
    for (unsigned i = 0; i < 100; ++i) {
        t[2 * i] = static_cast<char>('0' + i / 10);
        t[2 * i + 1] = static_cast<char>('0' + i % 10);
    }
    return t;
}
inline constexpr std::array<char, 200> two_digits = make_two_digits();

/// Number of decimal digits of x < 10^8 (1 for 0). Comparisons rather than the converted
/// digits, so that where the next number starts does not wait for this one's conversion:
/// the writer stays throughput-bound instead of latency-bound.
[[nodiscard]] constexpr unsigned count_digits_below_1e8(std::uint32_t x) noexcept {
    return 1U + (x >= 10U) + (x >= 100U) + (x >= 1000U) + (x >= 10000U) + (x >= 100000U) + (x >= 1000000U) +
           (x >= 10000000U);
}

/// Writes x < 10^8 without leading zeros; may write up to 8 bytes from p.
inline char* write_below_1e8(char* p, std::uint32_t x) noexcept {
    const unsigned n = count_digits_below_1e8(x);
    if constexpr (little_endian) {
        store8(p, digits8(x) >> (8 * (8 - n)));
    } else {
        for (unsigned i = n; i-- > 0;) {
            p[i] = static_cast<char>('0' + x % 10);
            x /= 10;
        }
    }
    return p + n;
}

/// Writes exactly 8 digits of x < 10^8.
inline char* write_8(char* p, std::uint32_t x) noexcept {
    if constexpr (little_endian) {
        store8(p, digits8(x));
    } else {
        for (int i = 7; i >= 0; --i) {
            p[i] = static_cast<char>('0' + x % 10);
            x /= 10;
        }
    }
    return p + 8;
}

#if KVBM_SSE2
/// The 8 decimal digits of x < 10^8 as eight 16-bit lanes, most significant first: x / 10^4
/// and x % 10^4 by a multiply-shift, then each half divided by 10^3..10^0 at once with
/// multiply-high by fixed-point reciprocals (exact for every x < 10^8, checked exhaustively).
[[nodiscard]] inline __m128i digit_lanes_8(std::uint32_t x) noexcept {
    const __m128i v = _mm_cvtsi32_si128(static_cast<int>(x));
    const __m128i abcd = _mm_srli_epi64(_mm_mul_epu32(v, _mm_set1_epi32(static_cast<int>(0xd1b71759U))), 45);
    const __m128i efgh = _mm_sub_epi32(v, _mm_mul_epu32(abcd, _mm_set1_epi32(10000)));
    const __m128i halves = _mm_slli_epi64(_mm_unpacklo_epi16(abcd, efgh), 2);  // [4*abcd, 4*efgh]
    const __m128i spread = _mm_unpacklo_epi32(_mm_unpacklo_epi16(halves, halves), _mm_unpacklo_epi16(halves, halves));
    const __m128i q1 = _mm_mulhi_epu16(spread, _mm_setr_epi16(8389, 5243, 13108, -32768, 8389, 5243, 13108, -32768));
    const __m128i prefixes = _mm_mulhi_epu16(q1, _mm_setr_epi16(1 << 7, 1 << 11, 1 << 13, -32768, 1 << 7, 1 << 11,
                                                                1 << 13, -32768));  // a, ab, abc, abcd, e, ...
    const __m128i tens = _mm_slli_epi64(_mm_mullo_epi16(prefixes, _mm_set1_epi16(10)), 16);
    return _mm_sub_epi16(prefixes, tens);  // a, b, c, d, e, f, g, h
}
#endif

/// Writes exactly 16 digits of x < 10^16.
inline char* write_16(char* p, std::uint64_t x) noexcept {
    const auto hi = static_cast<std::uint32_t>(x / 100'000'000);
    const auto lo = static_cast<std::uint32_t>(x % 100'000'000);
#if KVBM_SSE2
    const __m128i digits = _mm_packus_epi16(digit_lanes_8(hi), digit_lanes_8(lo));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm_add_epi8(digits, _mm_set1_epi8('0')));
    return p + 16;
#else
    return write_8(write_8(p, hi), lo);
#endif
}

/// Writes x < 10^4 without leading zeros; may write up to 4 bytes from p.
inline char* write_below_1e4(char* p, std::uint32_t x) noexcept {
    const unsigned n = 1U + (x >= 10U) + (x >= 100U) + (x >= 1000U);
    char buf[4];
    std::memcpy(buf, &two_digits[2 * (x / 100)], 2);
    std::memcpy(buf + 2, &two_digits[2 * (x % 100)], 2);
    if constexpr (little_endian) {  // one 4-byte store, the leading zeros shifted out
        std::uint32_t word;
        std::memcpy(&word, buf, 4);
        word >>= 8 * (4 - n);
        std::memcpy(p, &word, 4);
    } else {
        std::memcpy(p, buf + 4 - n, n);
    }
    return p + n;
}

/// Writes exactly 19 digits of x < 10^19.
inline char* write_19(char* p, std::uint64_t x) noexcept {
    const auto top = static_cast<std::uint32_t>(x / 10'000'000'000'000'000ULL);  // 3 digits
    p[0] = static_cast<char>('0' + top / 100);
    std::memcpy(p + 1, &two_digits[2 * (top % 100)], 2);
    return write_16(p + 3, x % 10'000'000'000'000'000ULL);
}

/// Writes x without leading zeros; may write up to 8 bytes past the returned end.
inline char* write_u64(char* p, std::uint64_t x) noexcept {
    if (x < 100'000'000) {
        return write_below_1e8(p, static_cast<std::uint32_t>(x));
    }
    if (x < 10'000'000'000'000'000ULL) {
        p = write_below_1e8(p, static_cast<std::uint32_t>(x / 100'000'000));
        return write_8(p, static_cast<std::uint32_t>(x % 100'000'000));
    }
    p = write_below_1e4(p, static_cast<std::uint32_t>(x / 10'000'000'000'000'000ULL));  // <= 1844
    return write_16(p, x % 10'000'000'000'000'000ULL);
}

/// Decimal text of a u128 (what serde_json writes); may write up to 8 bytes past the end.
/// 39 digits + 8 bytes of slack always suffice.
inline char* write_u128(char* p, Uint128 v) noexcept {
    if (v.fits_u64()) {
        return write_u64(p, v.low());
    }
    const std::uint64_t low19 = divmod_1e19(v);  // v >= 2^64 > 10^19, so v is now >= 1
    if (v.fits_u64()) {
        p = write_u64(p, v.low());
    } else {  // 1+19+19 digits: 2^64 <= v < 2^128 / 10^19 < 4 * 10^19
        // v / 10^19 = (v / 2^19) / 5^19, and v / 2^19 fits in 64 bits: a multiply, no loop.
        const std::uint64_t first = (v >> 19).low() / (ten19 >> 19);
        *p++ = static_cast<char>('0' + first);
        p = write_19(p, v.low() - first * ten19);  // the remainder is < 10^19 < 2^64
    }
    return write_19(p, low19);
}

/// Value of 8 ASCII digits (first digit in the lowest byte): three multiplications.
[[nodiscard]] inline std::uint64_t parse_8_digits(const char* p) noexcept {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    v = ((v & 0x0F0F0F0F0F0F0F0FULL) * 2561) >> 8;
    v = ((v & 0x00FF00FF00FF00FFULL) * 6553601) >> 16;
    return ((v & 0x0000FFFF0000FFFFULL) * 42949672960001ULL) >> 32;
}

/// Value of k <= 19 ASCII digits.
[[nodiscard]] inline std::uint64_t parse_digits(const char* p, std::size_t k) noexcept {
    std::uint64_t v = 0;
    if constexpr (little_endian) {
        for (; k >= 8; k -= 8, p += 8) {
            v = v * 100'000'000 + parse_8_digits(p);
        }
    }
    for (; k > 0; --k) {
        v = v * 10 + static_cast<std::uint64_t>(*p++ - '0');
    }
    return v;
}

/// Decimal digits [p, p+n) (n >= 1, no leading zero) as a u128; false when >= 2^128.
[[nodiscard]] inline bool digits_to_u128(const char* p, std::size_t n, Uint128& out) noexcept {
    if (n <= 19) {
        out = Uint128{parse_digits(p, n)};
        return true;
    }
    if (n > 39) {
        return false;
    }
    const std::uint64_t low = parse_digits(p + n - 19, 19);
    Uint128 high{parse_digits(p + (n > 38 ? 1 : 0), n - 19 - (n > 38 ? 1 : 0))};
    if (n > 38 && !Uint128{static_cast<std::uint64_t>(*p - '0')}.checked_mul_add(ten19, high.low(), high)) {
        return false;
    }
    return high.checked_mul_add(ten19, low, out);
}

}  // namespace detail::decimal

/// Writes `value` as text in base 10 or 16 (lowercase, no prefix, no padding) into
/// [first, last). Like std::to_chars: on success `ec == std::errc{}` and `ptr` is one past
/// the last character; when the buffer is too small, `ec == std::errc::value_too_large`.
/// 39 characters hold every decimal value, 32 every hex value.
inline std::to_chars_result to_chars(char* first, char* last, Uint128 value, int base = 10) noexcept {
    char buf[detail::decimal::max_u128_digits + detail::decimal::digits_slack];
    char* begin = buf;
    char* end = nullptr;
    if (base == 16) {
        end = buf + sizeof(buf);
        begin = end;
        do {
            *--begin = "0123456789abcdef"[value.low() & 0xfU];
            value >>= 4;
        } while (value);
    } else {
        end = detail::decimal::write_u128(buf, value);
    }
    const auto n = end - begin;
    if (last - first < n) {
        return {last, std::errc::value_too_large};
    }
    std::memcpy(first, begin, static_cast<std::size_t>(n));
    return {first + n, std::errc{}};
}

/// Parses base-10 or base-16 digits (no sign, no prefix, no whitespace) from [first, last)
/// like std::from_chars: stops at the first non-digit; `std::errc::invalid_argument` when
/// there is no digit, `std::errc::result_out_of_range` when the value is >= 2^128 (then
/// `value` is left unchanged and `ptr` points past all the digits).
inline std::from_chars_result from_chars(const char* first, const char* last, Uint128& value, int base = 10) noexcept {
    const auto digit = [base](char c) -> int {
        if (c >= '0' && c <= '9') {
            return c - '0';
        }
        if (base == 16) {
            if (c >= 'a' && c <= 'f') {
                return c - 'a' + 10;
            }
            if (c >= 'A' && c <= 'F') {
                return c - 'A' + 10;
            }
        }
        return -1;
    };
    if (base != 10 && base != 16) {
        return {first, std::errc::invalid_argument};
    }
    if (base == 10) {  // kvbm::json's digit reader, after the leading zeros it does not allow
        const char* end = first;
        while (end != last && *end >= '0' && *end <= '9') {
            ++end;
        }
        if (end == first) {
            return {first, std::errc::invalid_argument};
        }
        const char* significant = first;
        while (end - significant > 1 && *significant == '0') {
            ++significant;
        }
        Uint128 v;
        if (!detail::decimal::digits_to_u128(significant, static_cast<std::size_t>(end - significant), v)) {
            return {end, std::errc::result_out_of_range};
        }
        value = v;
        return {end, std::errc{}};
    }
    Uint128 acc;
    bool overflow = false;
    const char* p = first;
    for (; p != last; ++p) {
        const int d = digit(*p);
        if (d < 0) {
            break;
        }
        if (!overflow && !acc.checked_mul_add(static_cast<std::uint64_t>(base), static_cast<std::uint64_t>(d), acc)) {
            overflow = true;
        }
    }
    if (p == first) {
        return {first, std::errc::invalid_argument};
    }
    if (overflow) {
        return {p, std::errc::result_out_of_range};
    }
    value = acc;
    return {p, std::errc{}};
}

inline std::string Uint128::to_string() const {
    char buf[40];
    const auto r = kvbm::to_chars(buf, buf + sizeof(buf), *this, 10);
    return {buf, r.ptr};
}

inline std::string Uint128::to_hex32() const {
    std::string out(32, '0');
    for (std::size_t i = 0; i < 16; ++i) {
        out[31 - i] = "0123456789abcdef"[(m_lo >> (4 * i)) & 0xfU];
        out[15 - i] = "0123456789abcdef"[(m_hi >> (4 * i)) & 0xfU];
    }
    return out;
}

inline Uint128 Uint128::parse(std::string_view text, int base) {
    Uint128 v;
    const auto r = kvbm::from_chars(text.data(), text.data() + text.size(), v, base);
    if (r.ec == std::errc::result_out_of_range) {
        throw std::out_of_range("kvbm::Uint128::parse: value does not fit in 128 bits: " + std::string(text));
    }
    if (r.ec != std::errc{} || r.ptr != text.data() + text.size()) {
        throw std::invalid_argument("kvbm::Uint128::parse: not a base-" + std::to_string(base) +
                                    " unsigned integer: '" + std::string(text) + "'");
    }
    return v;
}

inline std::ostream& operator<<(std::ostream& os, const Uint128& v) { return os << v.to_string(); }

/// An instance (worker) id: a 128-bit integer, usually a random UUID, on the wire.
using InstanceId = Uint128;

namespace literals {
/// `340282366920938463463374607431768211455_u128`: exact 128-bit decimal literals,
/// checked at compile time.
template <char... Digits>
consteval Uint128 operator""_u128() {
    constexpr char text[] = {Digits...};
    Uint128 v;
    for (char c : text) {
        if (c == '\'') {
            continue;
        }
        if (c < '0' || c > '9' || !v.checked_mul_add(10, static_cast<std::uint64_t>(c - '0'), v)) {
            throw std::out_of_range("_u128 literal is not a decimal value below 2^128");
        }
    }
    return v;
}
}  // namespace literals

KVBM_NAMESPACE_END

/// Hashes a Uint128 by its 128 bits, for unordered containers.
template <>
struct std::hash<kvbm::Uint128> {
    std::size_t operator()(const kvbm::Uint128& v) const noexcept {
        // Murmur-style 64-bit finalizer of both halves: cheap, and every input bit spreads.
        std::uint64_t x = v.high() * 0x9E3779B97F4A7C15ULL ^ v.low();
        x ^= x >> 33;
        x *= 0xff51afd7ed558ccdULL;
        x ^= x >> 33;
        x *= 0xc4ceb9fe1a85ec53ULL;
        x ^= x >> 33;
        return static_cast<std::size_t>(x);
    }
};
