/// @file kvbm/msgpack.hpp
/// MessagePack for the event types, byte-identical to what the Rust reference sends
/// (`rmp_serde::to_vec`, rmp-serde 1.1) and accepting exactly what its decoder accepts
/// (`rmp_serde::from_slice`), without a DOM and without a dependency.
///
/// Wire form (SPEC section 5):
/// ```
///   KvbmCacheEvents  92 <events> <instance_id>          (a struct is an array of its fields)
///   Create / Remove  81 a6 "Create" <array of hashes>    (newtype variant: map of 1 entry)
///   Shutdown         a8 "Shutdown"                       (unit variant: its name)
///   hash, id         c4 10 <16 bytes big-endian>         (u128 as bin8 of 16 bytes)
/// ```
/// Arrays use the smallest header: 9N (N <= 15), dc + u16, dd + u32.
///
/// Decoding accepts every form rmp-serde 1.1 accepts for these types: the struct as an array
/// of exactly 2 fields or as a map keyed by field names (str or bin) or indices in any order,
/// unknown map keys skipped with any value (nesting up to rmp-serde's limit); variants by name
/// (str or bin) or index (0 Create, 1 Remove, 2 Shutdown); `{"Shutdown": nil}`. It rejects
/// what rmp-serde rejects: a hash or id other than exactly `c4 10` + 16 bytes, unknown or
/// lowercase variants, enum maps of 0 or 2+ entries, arrays of the wrong length, duplicate or
/// missing fields, truncated input. Length headers are never trusted: reservations are bounded
/// by the bytes actually present, so a header claiming 4 billion elements fails at the end of
/// the input without allocating for them; memory stays proportional to the input size.
///
/// Hashes follow the kvbm 1.2 decoder (a u128 newtype: exactly `c4 10` + 16 bytes) whatever H
/// is; a kvbm 1.3+ Rust decoder (serde bytes) would also take bin16/bin32 or an array of 16
/// integers there, which no encoder sends: this decoder is stricter on purpose.
///
/// Trailing bytes: like the reference, the decoders ignore bytes after the message by default
/// (DecodeOptions::trailing_bytes); TrailingBytes::reject makes that an error.
///
/// All functions are reentrant and thread-safe on distinct outputs. Decoders never throw for
/// bad input (only std::bad_alloc can escape); encoders into a span never throw.
#pragma once

#include <kvbm/config.hpp>
#include <kvbm/decode_result.hpp>
#include <kvbm/detail/platform.hpp>
#include <kvbm/events.hpp>
#include <kvbm/hash.hpp>
#include <kvbm/uint128.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

KVBM_NAMESPACE_BEGIN

namespace msgpack {

using kvbm::DecodeError;
using kvbm::DecodeResult;

/// What a decoder does with bytes after a complete message.
enum class TrailingBytes : std::uint8_t {
    ignore,  ///< like rmp_serde::from_slice (the default)
    reject,  ///< an error: "N trailing bytes after the message"
};

/// How strictly a decoder reads its input.
struct DecodeOptions {
    TrailingBytes trailing_bytes = TrailingBytes::ignore;
};

/// The largest number of hashes one array header can announce (u32 length).
inline constexpr std::size_t max_array_length = 0xffff'ffffU;
/// Encoded size of one hash or instance id: `c4 10` + 16 bytes.
inline constexpr std::size_t u128_size = 18;

}  // namespace msgpack

namespace detail::mp {

inline std::uint8_t* put_u128(std::uint8_t* p, const Uint128& v) noexcept {
    const std::uint64_t hi = to_big_endian64(v.high());
    const std::uint64_t lo = to_big_endian64(v.low());
    p[0] = 0xc4;
    p[1] = 0x10;
    std::memcpy(p + 2, &hi, 8);
    std::memcpy(p + 10, &lo, 8);
    return p + msgpack::u128_size;
}

[[nodiscard]] constexpr std::size_t array_header_size(std::size_t n) noexcept {
    return n <= 15 ? 1 : n <= 0xffff ? 3 : 5;
}

inline std::uint8_t* put_array_header(std::uint8_t* p, std::size_t n) noexcept {
    if (n <= 15) {
        *p++ = static_cast<std::uint8_t>(0x90U | n);
    } else if (n <= 0xffff) {
        *p++ = 0xdc;
        *p++ = static_cast<std::uint8_t>(n >> 8);
        *p++ = static_cast<std::uint8_t>(n);
    } else {
        *p++ = 0xdd;
        *p++ = static_cast<std::uint8_t>(n >> 24);
        *p++ = static_cast<std::uint8_t>(n >> 16);
        *p++ = static_cast<std::uint8_t>(n >> 8);
        *p++ = static_cast<std::uint8_t>(n);
    }
    return p;
}

inline std::uint8_t* put_str(std::uint8_t* p, std::string_view s) noexcept {  // fixstr only (< 32 bytes)
    *p++ = static_cast<std::uint8_t>(0xa0U | s.size());
    std::memcpy(p, s.data(), s.size());
    return p + s.size();
}

/// Size of a KvCacheEvents value, 0 when it cannot be encoded (more than 2^32-1 hashes).
template <class H>
[[nodiscard]] constexpr std::size_t events_size(const KvCacheEvents<H>& e) noexcept {
    if (e.kind == BatchKind::shutdown) {
        return 9;  // a8 "Shutdown"
    }
    const std::size_t n = e.hashes.size();
    if (n > msgpack::max_array_length) {
        return 0;
    }
    return 1 + 7 + array_header_size(n) + n * msgpack::u128_size;  // 81 a6 "Create" header hashes
}

/// True for hash types that are exactly a Uint128 in memory (the PLH types), whose arrays the
/// vectorized loop may read as raw bytes.
template <class H>
inline constexpr bool is_raw_u128_v = false;
template <PlhLayout L>
inline constexpr bool is_raw_u128_v<BasicPositionalLineageHash<L>> =
    sizeof(BasicPositionalLineageHash<L>) == 16 &&
    std::is_trivially_copyable_v<BasicPositionalLineageHash<L>>&& std::bit_cast<std::array<std::uint64_t, 2>>(
        BasicPositionalLineageHash<L>::from_raw(Uint128::from_parts(
            1, 2))) == std::array<std::uint64_t, 2>{1, 2};  // high word first, as Uint128 declares them

/// `c4 10` + 16 big-endian bytes for each of `n` raw u128s (high word first, each word in
/// host order): the portable loop, unrolled by 4 so that the stores use constant offsets.
inline std::uint8_t* put_u128s_portable(std::uint8_t* p, const unsigned char* raw, std::size_t n) noexcept {
    const auto one = [](std::uint8_t* out, const unsigned char* in) {
        Uint128 v;
        std::memcpy(&v, in, 16);
        put_u128(out, v);
    };
    std::size_t i = 0;
    for (; i + 4 <= n; i += 4, p += 4 * msgpack::u128_size, raw += 64) {
        one(p, raw);
        one(p + 18, raw + 16);
        one(p + 36, raw + 32);
        one(p + 54, raw + 48);
    }
    for (; i < n; ++i, p += msgpack::u128_size, raw += 16) {
        one(p, raw);
    }
    return p;
}

#if KVBM_X86_SIMD
// The vector paths below write the same bytes as put_u128s_portable, for little-endian raw
// u128s. Each builds whole output registers from the input with byte shuffles whose index
// tables are computed at compile time from the layout: output byte o belongs to hash o / 18,
// at offset o % 18 (0 and 1 are the `c4 10` header, 2..17 the value's big-endian bytes).

__attribute__((target("ssse3"), always_inline)) inline void put_u128_ssse3(std::uint8_t* out, const unsigned char* in,
                                                                           __m128i swap) noexcept {
    constexpr std::uint16_t header = 0x10c4;  // c4 10, little-endian
    const __m128i be = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in)), swap);
    std::memcpy(out, &header, 2);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 2), be);
}

/// SSSE3: one pshufb per hash and two stores (header, value), unrolled by 4.
__attribute__((target("ssse3"))) inline std::uint8_t* put_u128s_ssse3(std::uint8_t* p, const unsigned char* raw,
                                                                      std::size_t n) noexcept {
    const __m128i swap = _mm_setr_epi8(7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8);
    std::size_t i = 0;
    for (; i + 4 <= n; i += 4, p += 4 * msgpack::u128_size, raw += 64) {
        put_u128_ssse3(p, raw, swap);
        put_u128_ssse3(p + 18, raw + 16, swap);
        put_u128_ssse3(p + 36, raw + 32, swap);
        put_u128_ssse3(p + 54, raw + 48, swap);
    }
    for (; i < n; ++i, p += msgpack::u128_size, raw += 16) {
        put_u128_ssse3(p, raw, swap);
    }
    return p;
}

/// Index of big-endian byte d (0..15) of a raw little-endian u128 (high word first).
[[nodiscard]] constexpr std::uint8_t raw_byte_of_be(unsigned d) noexcept {
    return static_cast<std::uint8_t>(d < 8 ? 7 - d : 23 - d);
}

/// AVX2 tables: 16 hashes make 288 bytes = 18 lanes of 16 bytes. Lane c reads hashes `base`
/// and `base + 1` (base = min(16c / 18, 14): the lane's first hash, kept inside the block),
/// each selected by its own pshufb (index 0x80 writes a zero), then ORs in the header bytes.
struct Avx2Tables {
    alignas(32) std::uint8_t first[18][16];
    alignas(32) std::uint8_t second[18][16];
    alignas(32) std::uint8_t header[18][16];
};
[[nodiscard]] constexpr Avx2Tables make_avx2_tables() noexcept {
    Avx2Tables t{};
    for (unsigned c = 0; c < 18; ++c) {
        const unsigned base = std::min(16 * c / 18, 14U);
        for (unsigned k = 0; k < 16; ++k) {
            const unsigned o = 16 * c + k;
            const unsigned j = o / 18;
            const unsigned r = o % 18;
            t.first[c][k] = 0x80;
            t.second[c][k] = 0x80;
            if (r < 2) {
                t.header[c][k] = r == 0 ? 0xc4 : 0x10;
            } else if (j == base) {
                t.first[c][k] = raw_byte_of_be(r - 2);
            } else {
                t.second[c][k] = raw_byte_of_be(r - 2);  // j == base + 1
            }
        }
    }
    return t;
}
inline constexpr Avx2Tables avx2_tables = make_avx2_tables();

/// Output register M (lanes 2M, 2M+1) of a 16-hash block, from sources whose low/high lanes
/// hold each lane's first and second hash.
template <unsigned M>
__attribute__((target("avx2"), always_inline)) inline void put_ymm_avx2(std::uint8_t* out, __m256i first,
                                                                        __m256i second) noexcept {
    const __m256i first_index = _mm256_load_si256(reinterpret_cast<const __m256i*>(avx2_tables.first[2 * M]));
    const __m256i second_index = _mm256_load_si256(reinterpret_cast<const __m256i*>(avx2_tables.second[2 * M]));
    const __m256i header = _mm256_load_si256(reinterpret_cast<const __m256i*>(avx2_tables.header[2 * M]));
    const __m256i v = _mm256_or_si256(
        _mm256_or_si256(_mm256_shuffle_epi8(first, first_index), _mm256_shuffle_epi8(second, second_index)), header);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 32 * M), v);
}

/// Hashes i and i+1 in the low and high lanes.
__attribute__((target("avx2"), always_inline)) inline __m256i load_pair_avx2(const unsigned char* at) noexcept {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(at));
}

/// Hash i in both lanes.
__attribute__((target("avx2"), always_inline)) inline __m256i load_twice_avx2(const unsigned char* at) noexcept {
    return _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(at)));
}

/// AVX2: 16 hashes in 9 full 32-byte stores (18 shuffles) instead of 32 stores; the rest by
/// the SSSE3 loop.
__attribute__((target("avx2"))) inline std::uint8_t* put_u128s_avx2(std::uint8_t* p, const unsigned char* raw,
                                                                    std::size_t n) noexcept {
    std::size_t i = 0;
    for (; i + 16 <= n; i += 16, p += 16 * msgpack::u128_size, raw += 256) {
        // Lanes 0, 1 both start at hash 0, lanes 16, 17 both at hash 14; lanes 2M, 2M+1 of
        // the registers between start at consecutive hashes.
        put_ymm_avx2<0>(p, load_twice_avx2(raw), load_twice_avx2(raw + 16));
        put_ymm_avx2<1>(p, load_pair_avx2(raw + 16 * 1), load_pair_avx2(raw + 16 * 2));
        put_ymm_avx2<2>(p, load_pair_avx2(raw + 16 * 3), load_pair_avx2(raw + 16 * 4));
        put_ymm_avx2<3>(p, load_pair_avx2(raw + 16 * 5), load_pair_avx2(raw + 16 * 6));
        put_ymm_avx2<4>(p, load_pair_avx2(raw + 16 * 7), load_pair_avx2(raw + 16 * 8));
        put_ymm_avx2<5>(p, load_pair_avx2(raw + 16 * 8), load_pair_avx2(raw + 16 * 9));
        put_ymm_avx2<6>(p, load_pair_avx2(raw + 16 * 10), load_pair_avx2(raw + 16 * 11));
        put_ymm_avx2<7>(p, load_pair_avx2(raw + 16 * 12), load_pair_avx2(raw + 16 * 13));
        put_ymm_avx2<8>(p, load_twice_avx2(raw + 16 * 14), load_twice_avx2(raw + 16 * 15));
    }
    return put_u128s_ssse3(p, raw, n - i);
}

/// AVX-512 VBMI tables: 32 hashes make 576 bytes = 9 registers of 64 bytes. Register M reads
/// the 8 hashes from `base` (min(64M / 18, 24): its first hash, kept inside the block) with
/// one two-source byte permute (vpermt2b), then blends in the header bytes, which always sit
/// at even offsets (18 hashes and 64 bytes are both even), so one constant `c4 10 c4 10 ...`.
struct VbmiTables {
    alignas(64) std::uint8_t index[9][64];
    std::uint64_t header_mask[9];
    unsigned base[9];
};
[[nodiscard]] constexpr VbmiTables make_vbmi_tables() noexcept {
    VbmiTables t{};
    for (unsigned m = 0; m < 9; ++m) {
        const unsigned base = std::min(64 * m / 18, 24U);
        t.base[m] = base;
        for (unsigned k = 0; k < 64; ++k) {
            const unsigned o = 64 * m + k;
            const unsigned r = o % 18;
            if (r < 2) {
                t.header_mask[m] |= std::uint64_t{1} << k;
            } else {
                t.index[m][k] = static_cast<std::uint8_t>((o / 18 - base) * 16 + raw_byte_of_be(r - 2));  // < 128
            }
        }
    }
    return t;
}
inline constexpr VbmiTables vbmi_tables = make_vbmi_tables();

template <unsigned M>
__attribute__((target("avx512f,avx512bw,avx512vbmi"), always_inline)) inline void put_zmm_vbmi(
    std::uint8_t* out, const unsigned char* raw, __m512i headers) noexcept {
    const unsigned char* from = raw + 16 * vbmi_tables.base[M];
    const __m512i v = _mm512_permutex2var_epi8(_mm512_loadu_si512(from), _mm512_load_si512(vbmi_tables.index[M]),
                                               _mm512_loadu_si512(from + 64));
    _mm512_storeu_si512(out + 64 * M, _mm512_mask_blend_epi8(vbmi_tables.header_mask[M], v, headers));
}

/// AVX-512 VBMI: 32 hashes in 9 full 64-byte stores and 9 permutes; the rest by the AVX2 loop.
__attribute__((target("avx512f,avx512bw,avx512vbmi,avx2"))) inline std::uint8_t* put_u128s_vbmi(
    std::uint8_t* p, const unsigned char* raw, std::size_t n) noexcept {
    const __m512i headers = _mm512_set1_epi16(0x10c4);  // c4 10, little-endian
    std::size_t i = 0;
    for (; i + 32 <= n; i += 32, p += 32 * msgpack::u128_size, raw += 512) {
        put_zmm_vbmi<0>(p, raw, headers);
        put_zmm_vbmi<1>(p, raw, headers);
        put_zmm_vbmi<2>(p, raw, headers);
        put_zmm_vbmi<3>(p, raw, headers);
        put_zmm_vbmi<4>(p, raw, headers);
        put_zmm_vbmi<5>(p, raw, headers);
        put_zmm_vbmi<6>(p, raw, headers);
        put_zmm_vbmi<7>(p, raw, headers);
        put_zmm_vbmi<8>(p, raw, headers);
    }
    return put_u128s_avx2(p, raw, n - i);
}
#endif

/// The hash loops, in the order the dispatcher prefers them (the best the CPU has).
enum class HashLoop : std::uint8_t { portable, ssse3, avx2, avx512vbmi };

/// The best loop this CPU runs (checked once).
[[nodiscard]] inline HashLoop best_hash_loop() noexcept {
#if KVBM_X86_SIMD
    static const HashLoop best = cpu_has_avx512vbmi() ? HashLoop::avx512vbmi
                                 : cpu_has_avx2()     ? HashLoop::avx2
                                 : cpu_has_ssse3()    ? HashLoop::ssse3
                                                      : HashLoop::portable;
    return best;
#else
    return HashLoop::portable;
#endif
}

/// True when `loop` can run here (the portable loop always can).
[[nodiscard]] inline bool can_run(HashLoop loop) noexcept {
    return static_cast<std::uint8_t>(loop) <= static_cast<std::uint8_t>(best_hash_loop());
}

/// Writes `n` raw u128s with `loop`, which must be able to run here (see can_run).
inline std::uint8_t* put_u128s(HashLoop loop, std::uint8_t* p, const unsigned char* raw, std::size_t n) noexcept {
#if KVBM_X86_SIMD
    if constexpr (std::endian::native == std::endian::little) {
        switch (loop) {
            case HashLoop::avx512vbmi:
                return put_u128s_vbmi(p, raw, n);
            case HashLoop::avx2:
                return put_u128s_avx2(p, raw, n);
            case HashLoop::ssse3:
                return put_u128s_ssse3(p, raw, n);
            case HashLoop::portable:
                break;
        }
    }
#else
    (void)loop;
#endif
    return put_u128s_portable(p, raw, n);
}

template <class H>
std::uint8_t* put_hashes(std::uint8_t* p, const std::vector<H>& hashes) noexcept {
    if constexpr (is_raw_u128_v<H>) {
        return put_u128s(best_hash_loop(), p, reinterpret_cast<const unsigned char*>(hashes.data()), hashes.size());
    } else {
        const H* h = hashes.data();
        const std::size_t n = hashes.size();
        std::size_t i = 0;
        for (; i + 4 <= n; i += 4, p += 4 * msgpack::u128_size) {  // constant offsets: fewer instructions
            put_u128(p, h[i].raw());
            put_u128(p + 18, h[i + 1].raw());
            put_u128(p + 36, h[i + 2].raw());
            put_u128(p + 54, h[i + 3].raw());
        }
        for (; i < n; ++i) {
            p = put_u128(p, h[i].raw());
        }
        return p;
    }
}

template <class H>
std::uint8_t* put_events(std::uint8_t* p, const KvCacheEvents<H>& e) noexcept {
    if (e.kind == BatchKind::shutdown) {
        return put_str(p, "Shutdown");
    }
    *p++ = 0x81;
    p = put_str(p, e.kind == BatchKind::create ? "Create" : "Remove");
    p = put_array_header(p, e.hashes.size());
    return put_hashes(p, e.hashes);
}

template <class H>
std::uint8_t* put_batch(std::uint8_t* p, const KvbmCacheEvents<H>& b) noexcept {
    *p++ = 0x92;
    p = put_events(p, b.events);
    return put_u128(p, b.instance_id);
}

template <class H>
std::uint8_t* put_batch_named(std::uint8_t* p, const KvbmCacheEvents<H>& b) noexcept {
    *p++ = 0x82;
    p = put_str(p, "events");
    p = put_events(p, b.events);
    p = put_str(p, "instance_id");
    return put_u128(p, b.instance_id);
}

template <class H>
std::uint8_t* put_event(std::uint8_t* p, const KvCacheEvent<H>& e) noexcept {
    *p++ = 0x81;
    p = put_str(p, e.kind == EventKind::create ? "Create" : "Remove");
    return put_u128(p, e.hash.raw());
}

/// Appends `size` bytes written by `write(uint8_t*)` to `out`; throws std::length_error for size 0
/// (the value cannot be encoded).
template <class Write>
void append(std::vector<std::uint8_t>& out, std::size_t size, Write&& write) {
    if (size == 0) {
        throw std::length_error("kvbm::msgpack: more than 2^32-1 hashes in one batch cannot be encoded");
    }
    const std::size_t old = out.size();
    out.resize(old + size);
    write(out.data() + old);
}

/// "uint16 (0xcd)": how error messages name what was found.
[[nodiscard]] inline std::string describe_marker(std::uint8_t m) {
    static constexpr const char* names[] = {"bin8",    "bin16", "bin32",   "ext8",    "ext16",   "ext32",   "float32",
                                            "float64", "uint8", "uint16",  "uint32",  "uint64",  "int8",    "int16",
                                            "int32",   "int64", "fixext1", "fixext2", "fixext4", "fixext8", "fixext16",
                                            "str8",    "str16", "str32",   "array16", "array32", "map16",   "map32"};
    std::string name;
    if (m <= 0x7f) {
        name = "positive fixint " + std::to_string(m);
    } else if (m <= 0x8f) {
        name = "fixmap of " + std::to_string(m & 0x0fU);
    } else if (m <= 0x9f) {
        name = "fixarray of " + std::to_string(m & 0x0fU);
    } else if (m <= 0xbf) {
        name = "fixstr of " + std::to_string(m & 0x1fU) + " bytes";
    } else if (m == 0xc0) {
        name = "nil";
    } else if (m == 0xc1) {
        name = "the never-used byte";
    } else if (m <= 0xc3) {
        name = m == 0xc3 ? "true" : "false";
    } else if (m <= 0xdf) {
        name = names[m - 0xc4];
    } else {
        name = "negative fixint";
    }
    static constexpr char hex[] = "0123456789abcdef";
    name += " (0x";
    name += hex[m >> 4];
    name += hex[m & 0xfU];
    name += ')';
    return name;
}

/// Printable form of a name read from the input (for "unknown variant" errors).
[[nodiscard]] inline std::string printable(const std::uint8_t* p, std::size_t n) {
    std::string out;
    for (std::size_t i = 0; i < n && i < 64; ++i) {
        const auto c = static_cast<char>(p[i]);
        if (p[i] >= 0x20 && p[i] < 0x7f) {
            out += c;
        } else {
            static constexpr char hex[] = "0123456789abcdef";
            out += "\\x";
            out += hex[p[i] >> 4];
            out += hex[p[i] & 0xfU];
        }
    }
    if (n > 64) {
        out += "...";
    }
    return out;
}

enum class Variant : std::uint8_t { create, remove, shutdown };
enum class Field : std::uint8_t { events, instance_id, ignored };

/// rmp-serde's nesting limit: its depth counter starts at 1024 and fails when a container
/// brings it to 0, so at most 1023 nested arrays/maps/exts.
inline constexpr unsigned rmp_depth_limit = 1024;

/// A strict single-pass reader of one message. Every method returns false after recording
/// the first error; nothing allocates except the output vector, whose reservation is
/// bounded by the remaining input.
template <class H>
class Decoder {
public:
    explicit Decoder(std::span<const std::uint8_t> in) noexcept
        : m_begin(in.data()), m_p(in.data()), m_end(in.data() + in.size()) {}

    bool batch(KvbmCacheEvents<H>& out) {
        const std::uint8_t* at = m_p;
        std::uint8_t m = 0;
        if (!marker(m, "KvbmCacheEvents")) {
            return false;
        }
        std::uint32_t len = 0;
        if (is_array(m)) {
            if (!length(m, len, "KvbmCacheEvents")) {
                return false;
            }
            if (len == 0) {
                return fail(at, "KvbmCacheEvents: array of 0 fields, expected 2 (events, instance_id)");
            }
            if (!events(out.events)) {
                return false;
            }
            if (len == 1) {
                return fail(at, "KvbmCacheEvents: array of 1 field, expected 2 (events, instance_id)");
            }
            if (!u128(out.instance_id, "instance_id")) {
                return false;
            }
            if (len != 2) {
                return fail(at, "KvbmCacheEvents: array of " + std::to_string(len) +
                                    " fields, expected 2 (events, instance_id)");
            }
            return true;
        }
        if (is_map(m)) {
            if (!length(m, len, "KvbmCacheEvents")) {
                return false;
            }
            bool have_events = false;
            bool have_id = false;
            for (std::uint32_t i = 0; i < len; ++i) {  // each entry consumes input: bounded
                const std::uint8_t* key_at = m_p;
                Field f = Field::ignored;
                if (!field_key(f)) {
                    return false;
                }
                if (f == Field::events) {
                    if (have_events) {
                        return fail(key_at, "KvbmCacheEvents: duplicate field `events`");
                    }
                    if (!events(out.events)) {
                        return false;
                    }
                    have_events = true;
                } else if (f == Field::instance_id) {
                    if (have_id) {
                        return fail(key_at, "KvbmCacheEvents: duplicate field `instance_id`");
                    }
                    if (!u128(out.instance_id, "instance_id")) {
                        return false;
                    }
                    have_id = true;
                } else if (!skip(rmp_depth_limit - 1)) {  // the struct's map holds one level
                    return false;
                }
            }
            if (!have_events) {
                return fail(m_p, "KvbmCacheEvents: missing field `events`");
            }
            if (!have_id) {
                return fail(m_p, "KvbmCacheEvents: missing field `instance_id`");
            }
            return true;
        }
        return fail(at,
                    "KvbmCacheEvents: expected an array of 2 fields or a map of fields, found " + describe_marker(m));
    }

    bool event(KvCacheEvent<H>& out) {
        const std::uint8_t* at = m_p;
        std::uint8_t m = 0;
        if (!marker(m, "KvCacheEvent")) {
            return false;
        }
        Variant v = Variant::create;
        if (is_map(m)) {
            std::uint32_t len = 0;
            if (!length(m, len, "KvCacheEvent")) {
                return false;
            }
            if (len != 1) {
                return fail(at, "KvCacheEvent: enum map of " + std::to_string(len) + " entries, expected 1");
            }
            const std::uint8_t* key_at = m_p;
            std::uint8_t k = 0;
            if (!marker(k, "KvCacheEvent variant") || !variant(v, k, key_at, false, "KvCacheEvent")) {
                return false;
            }
            out.kind = v == Variant::create ? EventKind::create : EventKind::remove;
            Uint128 raw;
            if (!u128(raw, v == Variant::create ? "Create" : "Remove")) {
                return false;
            }
            out.hash = H::from_raw(raw);
            return true;
        }
        if (!variant(v, m, at, false, "KvCacheEvent")) {
            return false;
        }
        return fail(at, std::string("KvCacheEvent: variant `") + (v == Variant::create ? "Create" : "Remove") +
                            "` needs a hash: expected a map of 1 entry, found a bare variant");
    }

    /// Applies the trailing-bytes policy once a message has been read.
    bool finish(msgpack::DecodeOptions options) {
        if (options.trailing_bytes == msgpack::TrailingBytes::reject && m_p != m_end) {
            return fail(m_p, std::to_string(remaining()) + " trailing bytes after the message");
        }
        return true;
    }

    [[nodiscard]] std::size_t consumed() const noexcept { return static_cast<std::size_t>(m_p - m_begin); }
    [[nodiscard]] DecodeError take_error() noexcept { return std::move(m_error); }

private:
    static constexpr bool is_array(std::uint8_t m) noexcept {
        return (m >= 0x90 && m <= 0x9f) || m == 0xdc || m == 0xdd;
    }
    static constexpr bool is_map(std::uint8_t m) noexcept { return (m >= 0x80 && m <= 0x8f) || m == 0xde || m == 0xdf; }

    [[nodiscard]] std::size_t remaining() const noexcept { return static_cast<std::size_t>(m_end - m_p); }

    bool fail(const std::uint8_t* at, std::string reason) {
        m_error.offset = static_cast<std::size_t>(at - m_begin);
        m_error.reason = std::move(reason);
        return false;
    }
    bool truncated(const char* what) { return fail(m_end, std::string(what) + ": unexpected end of input"); }

    bool marker(std::uint8_t& m, const char* what) {
        if (m_p == m_end) {
            return truncated(what);
        }
        m = *m_p++;
        return true;
    }

    /// Big-endian unsigned of `n` bytes (1, 2, 4 or 8).
    bool uint(std::size_t n, std::uint64_t& v, const char* what) {
        if (remaining() < n) {
            return truncated(what);
        }
        v = 0;
        for (std::size_t i = 0; i < n; ++i) {
            v = (v << 8) | m_p[i];
        }
        m_p += n;
        return true;
    }

    /// The element count of an array or map marker (fix, 16 or 32).
    bool length(std::uint8_t m, std::uint32_t& len, const char* what) {
        if (m <= 0x9f) {
            len = m & 0x0fU;
            return true;
        }
        std::uint64_t v = 0;
        if (!uint(m == 0xdc || m == 0xde ? 2 : 4, v, what)) {
            return false;
        }
        len = static_cast<std::uint32_t>(v);
        return true;
    }

    /// A str or bin marker's payload; false (without error) when `m` is neither.
    bool bytes_payload(std::uint8_t m, const std::uint8_t*& data, std::size_t& n, bool& is_bytes, const char* what) {
        std::size_t header = 0;
        if (m >= 0xa0 && m <= 0xbf) {
            n = m & 0x1fU;
        } else if (m == 0xd9 || m == 0xc4) {
            header = 1;
        } else if (m == 0xda || m == 0xc5) {
            header = 2;
        } else if (m == 0xdb || m == 0xc6) {
            header = 4;
        } else {
            is_bytes = false;
            return true;
        }
        is_bytes = true;
        if (header != 0) {
            std::uint64_t v = 0;
            if (!uint(header, v, what)) {
                return false;
            }
            n = static_cast<std::size_t>(v);
        }
        if (remaining() < n) {
            return truncated(what);
        }
        data = m_p;
        m_p += n;
        return true;
    }

    /// An unsigned integer marker's value; false (without error) when `m` is not one.
    bool uint_value(std::uint8_t m, std::uint64_t& v, bool& is_uint, const char* what) {
        is_uint = true;
        if (m <= 0x7f) {
            v = m;
            return true;
        }
        if (m >= 0xcc && m <= 0xcf) {
            return uint(std::size_t{1} << (m - 0xcc), v, what);
        }
        is_uint = false;
        return true;
    }

    static bool equals(const std::uint8_t* p, std::size_t n, std::string_view s) noexcept {
        return n == s.size() && std::memcmp(p, s.data(), n) == 0;
    }

    /// A struct field identifier: name (str or bin), or index (0 events, 1 instance_id);
    /// anything else a str/bin/uint can hold is an unknown field, skipped.
    bool field_key(Field& f) {
        const std::uint8_t* at = m_p;
        std::uint8_t m = 0;
        if (!marker(m, "KvbmCacheEvents field name")) {
            return false;
        }
        std::uint64_t index = 0;
        bool is_uint = false;
        if (!uint_value(m, index, is_uint, "KvbmCacheEvents field index")) {
            return false;
        }
        if (is_uint) {
            f = index == 0 ? Field::events : index == 1 ? Field::instance_id : Field::ignored;
            return true;
        }
        const std::uint8_t* data = nullptr;
        std::size_t n = 0;
        bool is_bytes = false;
        if (!bytes_payload(m, data, n, is_bytes, "KvbmCacheEvents field name")) {
            return false;
        }
        if (!is_bytes) {
            return fail(at, "KvbmCacheEvents: map key must be a field name or index, found " + describe_marker(m));
        }
        f = equals(data, n, "events")        ? Field::events
            : equals(data, n, "instance_id") ? Field::instance_id
                                             : Field::ignored;
        return true;
    }

    /// A variant identifier whose marker `m` (at `at`) has been read: name (str or bin) or index.
    bool variant(Variant& v, std::uint8_t m, const std::uint8_t* at, bool with_shutdown, const char* what) {
        const char* expected =
            with_shutdown ? "expected one of `Create`, `Remove`, `Shutdown`" : "expected `Create` or `Remove`";
        std::uint64_t index = 0;
        bool is_uint = false;
        if (!uint_value(m, index, is_uint, what)) {
            return false;
        }
        if (is_uint) {
            if (index > (with_shutdown ? 2U : 1U)) {
                return fail(
                    at, std::string(what) + ": variant index " + std::to_string(index) + " out of range, " + expected);
            }
            v = static_cast<Variant>(index);
            return true;
        }
        const std::uint8_t* data = nullptr;
        std::size_t n = 0;
        bool is_bytes = false;
        if (!bytes_payload(m, data, n, is_bytes, what)) {
            return false;
        }
        if (!is_bytes) {
            return fail(at, std::string(what) + ": expected a variant name or index, found " + describe_marker(m));
        }
        if (equals(data, n, "Create")) {
            v = Variant::create;
        } else if (equals(data, n, "Remove")) {
            v = Variant::remove;
        } else if (with_shutdown && equals(data, n, "Shutdown")) {
            v = Variant::shutdown;
        } else {
            return fail(at, std::string(what) + ": unknown variant `" + printable(data, n) + "`, " + expected);
        }
        return true;
    }

    bool events(KvCacheEvents<H>& out) {
        const std::uint8_t* at = m_p;
        std::uint8_t m = 0;
        if (!marker(m, "events")) {
            return false;
        }
        Variant v = Variant::shutdown;
        if (is_map(m)) {
            std::uint32_t len = 0;
            if (!length(m, len, "events")) {
                return false;
            }
            if (len != 1) {
                return fail(at, "events: enum map of " + std::to_string(len) + " entries, expected 1");
            }
            const std::uint8_t* key_at = m_p;
            std::uint8_t k = 0;
            if (!marker(k, "events variant") || !variant(v, k, key_at, true, "events")) {
                return false;
            }
            if (v == Variant::shutdown) {  // {"Shutdown": nil}
                const std::uint8_t* nil_at = m_p;
                std::uint8_t n = 0;
                if (!marker(n, "events.Shutdown")) {
                    return false;
                }
                if (n != 0xc0) {
                    return fail(nil_at, "events.Shutdown: expected nil, found " + describe_marker(n));
                }
            } else {
                out.kind = v == Variant::create ? BatchKind::create : BatchKind::remove;
                return hashes(out.hashes, v == Variant::create ? "events.Create" : "events.Remove");
            }
        } else {
            if (!variant(v, m, at, true, "events")) {
                return false;
            }
            if (v != Variant::shutdown) {
                return fail(at, std::string("events: variant `") + (v == Variant::create ? "Create" : "Remove") +
                                    "` needs hashes: expected a map of 1 entry, found a bare variant");
            }
        }
        out.kind = BatchKind::shutdown;
        out.hashes.clear();
        return true;
    }

    bool hashes(std::vector<H>& out, const char* what) {
        const std::uint8_t* at = m_p;
        std::uint8_t m = 0;
        if (!marker(m, what)) {
            return false;
        }
        if (!is_array(m)) {
            return fail(at, std::string(what) + ": expected an array of hashes, found " + describe_marker(m));
        }
        std::uint32_t len = 0;
        if (!length(m, len, what)) {
            return false;
        }
        out.clear();
        // Never trust the header: at most as many hashes as the remaining bytes can hold.
        const std::size_t fit = std::min<std::size_t>(len, remaining() / msgpack::u128_size);
        out.reserve(fit);
        const std::uint8_t* p = m_p;
        for (std::size_t i = 0; i < fit; ++i, p += msgpack::u128_size) {
            if (KVBM_UNLIKELY(p[0] != 0xc4 || p[1] != 0x10)) {
                m_p = p;
                return bad_u128(std::string(what) + '[' + std::to_string(i) + ']');
            }
            out.push_back(H::from_raw(Uint128::from_parts(load_be64(p + 2), load_be64(p + 10))));
        }
        m_p = p;
        if (fit < len) {  // the next hash cannot be complete: report exactly what is wrong with it
            return bad_u128(std::string(what) + '[' + std::to_string(fit) + ']');
        }
        return true;
    }

    bool u128(Uint128& v, const char* what) {
        if (KVBM_LIKELY(remaining() >= msgpack::u128_size && m_p[0] == 0xc4 && m_p[1] == 0x10)) {
            v = Uint128::from_parts(load_be64(m_p + 2), load_be64(m_p + 10));
            m_p += msgpack::u128_size;
            return true;
        }
        return bad_u128(what);
    }

    /// The precise error for a u128 at m_p that is not `c4 10` + 16 bytes.
    bool bad_u128(const std::string& what) {
        const std::uint8_t* at = m_p;
        std::uint8_t m = 0;
        if (!marker(m, what.c_str())) {
            return false;
        }
        if (m != 0xc4) {
            return fail(at, what + ": expected bin8 of 16 bytes (c4 10), found " + describe_marker(m));
        }
        std::uint64_t n = 0;
        if (!uint(1, n, what.c_str())) {
            return false;
        }
        if (n != 16) {
            return fail(at, what + ": expected bin8 of 16 bytes, found bin8 of " + std::to_string(n) + " bytes");
        }
        return truncated(what.c_str());  // 16 bytes announced, fewer present
    }

    /// Skips one value of any type (an unknown field's value), iteratively, failing like
    /// rmp-serde when containers nest so deep that `depth` reaches 0.
    bool skip(unsigned depth) {
        static constexpr const char* what = "unknown field value";
        std::array<std::uint64_t, rmp_depth_limit> outer{};  // pending counts of enclosing containers
        std::size_t open = 0;
        std::uint64_t todo = 1;  // values left at the current level
        while (true) {
            if (todo == 0) {
                if (open == 0) {
                    return true;
                }
                todo = outer[--open];
                ++depth;
                continue;
            }
            --todo;
            const std::uint8_t* at = m_p;
            std::uint8_t m = 0;
            if (!marker(m, what)) {
                return false;
            }
            std::size_t payload = 0;  // fixed-size payload bytes to skip
            if (m <= 0x7f || m >= 0xe0 || m == 0xc0 || m == 0xc2 || m == 0xc3) {
                continue;
            }
            if ((m >= 0xa0 && m <= 0xbf) || m == 0xd9 || m == 0xda || m == 0xdb || (m >= 0xc4 && m <= 0xc6)) {
                const std::uint8_t* data = nullptr;
                bool is_bytes = false;
                if (!bytes_payload(m, data, payload, is_bytes, what)) {
                    return false;
                }
                continue;
            }
            if (is_array(m) || is_map(m)) {
                std::uint32_t len = 0;
                if (!length(m, len, what)) {
                    return false;
                }
                if (--depth == 0) {
                    return fail(at, "unknown field value: containers nested deeper than rmp-serde's limit");
                }
                outer[open++] = todo;
                todo = is_map(m) ? 2 * std::uint64_t{len} : len;
                continue;
            }
            if (m == 0xc1) {
                return fail(at, "unknown field value: the never-used byte 0xc1");
            }
            if ((m >= 0xc7 && m <= 0xc9) || (m >= 0xd4 && m <= 0xd8)) {  // ext: a depth level, tag, data
                std::uint64_t n = 0;
                if (m >= 0xd4) {
                    n = std::uint64_t{1} << (m - 0xd4);
                } else if (!uint(std::size_t{1} << (m - 0xc7), n, what)) {
                    return false;
                }
                if (depth == 1) {
                    return fail(at, "unknown field value: containers nested deeper than rmp-serde's limit");
                }
                payload = static_cast<std::size_t>(n) + 1;
            } else if (m >= 0xca && m <= 0xd3) {  // float32/64, uint8..64, int8..64
                static constexpr std::uint8_t sizes[] = {4, 8, 1, 2, 4, 8, 1, 2, 4, 8};
                payload = sizes[m - 0xca];
            }
            if (remaining() < payload) {
                return truncated(what);
            }
            m_p += payload;
        }
    }

    const std::uint8_t* m_begin;
    const std::uint8_t* m_p;
    const std::uint8_t* m_end;
    DecodeError m_error;
};

}  // namespace detail::mp

namespace msgpack {

// --- KvbmCacheEvents: the wire message -------------------------------------------------

/// Bytes `encode` writes for `batch`; 0 when it cannot be encoded (more than 2^32-1 hashes).
template <WireSequenceHash H>
[[nodiscard]] constexpr std::size_t encoded_size(const KvbmCacheEvents<H>& batch) noexcept {
    const std::size_t events = detail::mp::events_size(batch.events);
    return events == 0 ? 0 : 1 + events + u128_size;
}

/// Writes `batch` into `out` (rmp_serde::to_vec's bytes). Returns the number of bytes
/// written, or 0 (writing nothing) when `out` is smaller than encoded_size(batch) or the
/// batch cannot be encoded.
template <WireSequenceHash H>
[[nodiscard]] std::size_t encode_to(const KvbmCacheEvents<H>& batch, std::span<std::uint8_t> out) noexcept {
    const std::size_t size = encoded_size(batch);
    if (size == 0 || out.size() < size) {
        return 0;
    }
    detail::mp::put_batch(out.data(), batch);
    return size;
}

/// APPENDS the encoding of `batch` to `out` (so a publisher can reuse one buffer).
/// Throws std::length_error for more than 2^32-1 hashes, std::bad_alloc.
template <WireSequenceHash H>
void encode(const KvbmCacheEvents<H>& batch, std::vector<std::uint8_t>& out) {
    detail::mp::append(out, encoded_size(batch), [&](std::uint8_t* p) { detail::mp::put_batch(p, batch); });
}

/// The encoding of `batch` in a new vector.
template <WireSequenceHash H>
[[nodiscard]] std::vector<std::uint8_t> encode(const KvbmCacheEvents<H>& batch) {
    std::vector<std::uint8_t> out;
    encode(batch, out);
    return out;
}

// --- KvCacheEvent: one event (81 a6 "Create" c4 10 ...) --------------------------------

template <WireSequenceHash H>
[[nodiscard]] constexpr std::size_t encoded_size(const KvCacheEvent<H>&) noexcept {
    return 1 + 7 + u128_size;
}

template <WireSequenceHash H>
[[nodiscard]] std::size_t encode_to(const KvCacheEvent<H>& event, std::span<std::uint8_t> out) noexcept {
    const std::size_t size = encoded_size(event);
    if (out.size() < size) {
        return 0;
    }
    detail::mp::put_event(out.data(), event);
    return size;
}

template <WireSequenceHash H>
void encode(const KvCacheEvent<H>& event, std::vector<std::uint8_t>& out) {
    detail::mp::append(out, encoded_size(event), [&](std::uint8_t* p) { detail::mp::put_event(p, event); });
}

template <WireSequenceHash H>
[[nodiscard]] std::vector<std::uint8_t> encode(const KvCacheEvent<H>& event) {
    std::vector<std::uint8_t> out;
    encode(event, out);
    return out;
}

// --- named form: rmp_serde::to_vec_named (struct as a map of field names) --------------

/// Bytes `encode_named` writes; 0 when the batch cannot be encoded.
template <WireSequenceHash H>
[[nodiscard]] constexpr std::size_t encoded_size_named(const KvbmCacheEvents<H>& batch) noexcept {
    const std::size_t events = detail::mp::events_size(batch.events);
    return events == 0 ? 0 : 1 + 7 + events + 12 + u128_size;  // 82 a6"events" .. ab"instance_id" ..
}

/// Like encode_to, in rmp_serde::to_vec_named's form: `82 a6 "events" <events> ab "instance_id" <id>`.
/// The decoders accept it; the reference publisher does not send it.
template <WireSequenceHash H>
[[nodiscard]] std::size_t encode_named_to(const KvbmCacheEvents<H>& batch, std::span<std::uint8_t> out) noexcept {
    const std::size_t size = encoded_size_named(batch);
    if (size == 0 || out.size() < size) {
        return 0;
    }
    detail::mp::put_batch_named(out.data(), batch);
    return size;
}

/// Appends the named form of `batch` to `out`.
template <WireSequenceHash H>
void encode_named(const KvbmCacheEvents<H>& batch, std::vector<std::uint8_t>& out) {
    detail::mp::append(out, encoded_size_named(batch), [&](std::uint8_t* p) { detail::mp::put_batch_named(p, batch); });
}

template <WireSequenceHash H>
[[nodiscard]] std::vector<std::uint8_t> encode_named(const KvbmCacheEvents<H>& batch) {
    std::vector<std::uint8_t> out;
    encode_named(batch, out);
    return out;
}

// --- decoding --------------------------------------------------------------------------

/// Decodes one KvbmCacheEvents message (see the file comment for what is accepted).
/// Never throws for bad input; the error names the offset, the field and the problem.
template <WireSequenceHash H = PositionalLineageHash>
[[nodiscard]] DecodeResult<KvbmCacheEvents<H>> decode_batch(std::span<const std::uint8_t> bytes,
                                                            DecodeOptions options = {}) {
    detail::mp::Decoder<H> d(bytes);
    KvbmCacheEvents<H> out;
    if (d.batch(out) && d.finish(options)) {
        return out;
    }
    return d.take_error();
}

/// Decodes one KvCacheEvent (`81 a6 "Create" c4 10 ...`).
template <WireSequenceHash H = PositionalLineageHash>
[[nodiscard]] DecodeResult<KvCacheEvent<H>> decode_event(std::span<const std::uint8_t> bytes,
                                                         DecodeOptions options = {}) {
    detail::mp::Decoder<H> d(bytes);
    KvCacheEvent<H> out;
    if (d.event(out) && d.finish(options)) {
        return out;
    }
    return d.take_error();
}

}  // namespace msgpack

KVBM_NAMESPACE_END
