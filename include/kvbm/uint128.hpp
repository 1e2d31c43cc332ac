/// @file kvbm/uint128.hpp
/// A portable unsigned 128-bit integer for hashes and instance ids.
///
/// The public API never requires `unsigned __int128`; where the compiler has it, explicit
/// conversions in both directions are provided. Text conversion follows `<charconv>`:
/// `kvbm::from_chars` reports `std::errc::invalid_argument` or `std::errc::result_out_of_range`
/// and never wraps, `kvbm::to_chars` writes decimal or hex without allocating.
#pragma once

#include <kvbm/config.hpp>

#include <array>
#include <bit>
#include <charconv>
#include <compare>
#include <cstddef>
#include <cstdint>
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

namespace detail {
/// The two 64-bit halves of a 128-bit product.
struct U128Parts {
    std::uint64_t hi;
    std::uint64_t lo;
};

/// The full 128-bit product of two 64-bit values.
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
}  // namespace detail

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
        for (int i = 0; i < 8; ++i) {
            out[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(m_hi >> (56 - 8 * i));
            out[static_cast<std::size_t>(8 + i)] = static_cast<std::uint8_t>(m_lo >> (56 - 8 * i));
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

/// Writes `value` as text in base 10 or 16 (lowercase, no prefix, no padding) into
/// [first, last). Like std::to_chars: on success `ec == std::errc{}` and `ptr` is one past
/// the last character; when the buffer is too small, `ec == std::errc::value_too_large`.
/// 39 characters hold every decimal value, 32 every hex value.
inline std::to_chars_result to_chars(char* first, char* last, Uint128 value, int base = 10) noexcept {
    char buf[40];
    char* end = buf + sizeof(buf);
    char* p = end;
    if (base == 16) {
        do {
            *--p = "0123456789abcdef"[value.low() & 0xfU];
            value >>= 4;
        } while (value);
    } else {
        // Three chunks of at most 19 digits: one 128/64 division per chunk, not per digit.
        constexpr std::uint64_t ten19 = 10'000'000'000'000'000'000ULL;
        do {
            std::uint64_t chunk = 0;
            value = value.divmod(ten19, chunk);
            const bool more = static_cast<bool>(value);
            for (int i = 0; i < 19 && (more || chunk != 0); ++i) {
                *--p = static_cast<char>('0' + chunk % 10);
                chunk /= 10;
            }
        } while (value);
        if (p == end) {
            *--p = '0';
        }
    }
    const auto n = end - p;
    if (last - first < n) {
        return {last, std::errc::value_too_large};
    }
    for (char* q = p; q != end; ++q) {
        *first++ = *q;
    }
    return {first, std::errc{}};
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
