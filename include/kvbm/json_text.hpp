/// @file kvbm/json_text.hpp
/// Exact JSON text for the event types, byte-identical to serde_json 1.0, in the core
/// target kvbm::kvbm (no third-party dependency; <kvbm/json.hpp> adds nlohmann DOM adapters).
///
/// Two flavours differ only in how a hash is written; the caller always names one:
///   JsonFlavor::kvbm_1_2  hash as a JSON integer      `{"Create":232186997092764252}`
///   JsonFlavor::kvbm_1_3  hash as its 16 BE bytes     `{"Create":[0,0,0,0,0,0,0,0,3,56,228,215,251,45,202,92]}`
/// A batch is `{"events":{"Create":[...]},"instance_id":12345}` or
/// `{"events":"Shutdown","instance_id":1}`; the instance id is a JSON integer in both.
///
/// **Exact text** (kvbm::json::to_string / append / parse_batch / parse_event): compact
/// output equal to serde_json::to_string byte for byte; parsing accepts exactly what
/// serde_json::from_slice accepts for these types and rejects what it rejects, with an error
/// naming the field and the problem (negative, fractional or exponent numbers, leading
/// zeros, numbers >= 2^128, strings for numbers, duplicate fields, unknown variants, trailing
/// characters are rejected; unknown fields with any value, whitespace, the struct as an array
/// `[events, id]`, `{"Shutdown":null}` and escaped names are accepted; in the 1.3 flavour a
/// hash may also be a string of exactly 16 bytes, as serde's `deserialize_bytes` allows).
/// Like from_slice, names (keys, variants) must be valid UTF-8; skipped values are checked for
/// JSON syntax only. These functions never throw for bad input (only std::bad_alloc).
///
/// All functions are reentrant; thread-safe on distinct outputs.
#pragma once

#include <kvbm/config.hpp>
#include <kvbm/decode_result.hpp>
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
#include <utility>
#include <vector>

KVBM_NAMESPACE_BEGIN

/// The JSON form of a hash: the one thing kvbm 1.2 and kvbm 1.3+ write differently.
enum class JsonFlavor : std::uint8_t {
    kvbm_1_2,  ///< hash as a JSON integer (a plain u128 newtype in kvbm-logical 1.2)
    kvbm_1_3,  ///< hash as an array of its 16 big-endian bytes (serde bytes, kvbm-logical 1.3+)
};

namespace detail::js {

// --- numbers to text (the u128 decimal codec is shared with to_chars and from_chars) -----

using decimal::digits_slack;
using decimal::digits_to_u128;
using decimal::max_u128_digits;
using decimal::parse_digits;
using decimal::write_u128;

/// "0," .. "255,": the 1.3 flavour's byte elements, copied 4 bytes at a time.
struct ByteText {
    std::array<char, 4> text;
    std::uint8_t size;  // digits + comma
};
[[nodiscard]] constexpr std::array<ByteText, 256> make_byte_texts() noexcept {
    std::array<ByteText, 256> t{};
    for (unsigned i = 0; i < 256; ++i) {
        unsigned n = 0;
        if (i >= 100) {
            t[i].text[n++] = static_cast<char>('0' + i / 100);
        }
        if (i >= 10) {
            t[i].text[n++] = static_cast<char>('0' + i / 10 % 10);
        }
        t[i].text[n++] = static_cast<char>('0' + i % 10);
        t[i].text[n++] = ',';
        t[i].size = static_cast<std::uint8_t>(n);
    }
    return t;
}
inline constexpr std::array<ByteText, 256> byte_texts = make_byte_texts();

/// `[b0,...,b15]` of the 16 big-endian bytes.
inline char* write_hash_bytes(char* p, const Uint128& v) noexcept {
    const auto bytes = v.to_be_bytes();
    *p++ = '[';
    for (const std::uint8_t b : bytes) {
        std::memcpy(p, byte_texts[b].text.data(), 4);
        p += byte_texts[b].size;
    }
    p[-1] = ']';
    return p;
}

inline constexpr std::size_t max_u128_text = max_u128_digits;
inline constexpr std::size_t max_bytes_text = 2 + 16 * 4 - 1;  // [255,...,255]
inline constexpr std::size_t slack = digits_slack;

template <JsonFlavor F>
inline char* write_hash(char* p, const Uint128& v) noexcept {
    if constexpr (F == JsonFlavor::kvbm_1_2) {
        return write_u128(p, v);
    } else {
        return write_hash_bytes(p, v);
    }
}

template <JsonFlavor F>
constexpr std::size_t max_hash_text = F == JsonFlavor::kvbm_1_2 ? max_u128_text : max_bytes_text;

inline char* put(char* p, std::string_view s) noexcept {
    std::memcpy(p, s.data(), s.size());
    return p + s.size();
}

/// Appends into `out` through a writer that needs at most `bound` bytes (slack included).
template <class Write>
void append_bounded(std::string& out, std::size_t bound, Write&& write) {
    const std::size_t old = out.size();
    out.resize(old + bound);
    char* const begin = out.data() + old;
    char* const end = write(begin);
    out.resize(old + static_cast<std::size_t>(end - begin));
}

template <JsonFlavor F, class H>
void append_batch(std::string& out, const KvbmCacheEvents<H>& b) {
    const std::size_t n = b.events.hashes.size();
    const std::size_t bound = 64 + n * (max_hash_text<F> + 1) + max_u128_text + slack;
    append_bounded(out, bound, [&](char* p) {
        if (b.events.kind == BatchKind::shutdown) {
            p = put(p, R"({"events":"Shutdown")");
        } else {
            p = put(p, b.events.kind == BatchKind::create ? R"({"events":{"Create":[)" : R"({"events":{"Remove":[)");
            for (const H& h : b.events.hashes) {
                p = write_hash<F>(p, h.raw());
                *p++ = ',';
            }
            if (n != 0) {
                --p;
            }
            p = put(p, "]}");
        }
        p = put(p, R"(,"instance_id":)");
        p = write_u128(p, b.instance_id);
        *p++ = '}';
        return p;
    });
}

template <JsonFlavor F, class H>
void append_event(std::string& out, const KvCacheEvent<H>& e) {
    append_bounded(out, 16 + max_hash_text<F> + slack, [&](char* p) {
        p = put(p, e.kind == EventKind::create ? R"({"Create":)" : R"({"Remove":)");
        p = write_hash<F>(p, e.hash.raw());
        *p++ = '}';
        return p;
    });
}

// --- text to values: a parser with serde_json's exact acceptance -----------------------

// Hand-written rather than a JSON library's: it must accept and reject exactly what
// serde_json::from_slice does for these types, report byte offsets, and read 128-bit
// integers straight into the values without a DOM (several times faster than any DOM).

/// Where an error is: a field name and up to two indices (`events.Create[3][15]`).
struct Path {
    const char* name;
    std::size_t index = npos;
    std::size_t sub = npos;
    static constexpr std::size_t npos = ~std::size_t{0};

    [[nodiscard]] std::string text() const {
        std::string s = name;
        if (index != npos) {
            s += '[' + std::to_string(index) + ']';
        }
        if (sub != npos) {
            s += '[' + std::to_string(sub) + ']';
        }
        return s;
    }
};

[[nodiscard]] constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

/// Length of a valid UTF-8 sequence starting at p (within n bytes), 0 if invalid
/// (overlong forms, surrogates and values above U+10FFFF are invalid, as in Rust's str).
[[nodiscard]] inline std::size_t utf8_sequence(const unsigned char* p, std::size_t n) noexcept {
    const unsigned c = p[0];
    std::size_t len = 0;
    unsigned lo = 0x80, hi = 0xbf;  // allowed range of the second byte
    if (c < 0x80) {
        return 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        lo = c == 0xe0 ? 0xa0 : 0x80;
        hi = c == 0xed ? 0x9f : 0xbf;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        lo = c == 0xf0 ? 0x90 : 0x80;
        hi = c == 0xf4 ? 0x8f : 0xbf;
    } else {
        return 0;
    }
    if (n < len || p[1] < lo || p[1] > hi) {
        return 0;
    }
    for (std::size_t i = 2; i < len; ++i) {
        if (p[i] < 0x80 || p[i] > 0xbf) {
            return 0;
        }
    }
    return len;
}

inline void push_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xc0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xe0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
        out += static_cast<char>(0xf0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    }
}

enum class Field : std::uint8_t { events, instance_id, ignored };
enum class Variant : std::uint8_t { create, remove, shutdown, unknown };

/// One pass over the text, failing at the first problem like serde_json::from_slice does
/// for KvbmCacheEvents<PlhV12> (kvbm 1.2) or KvbmCacheEvents<PlhBytes> (kvbm 1.3+).
template <class H, JsonFlavor F>
class Parser {
public:
    explicit Parser(std::string_view text) noexcept
        : m_begin(text.data()), m_p(text.data()), m_end(text.data() + text.size()) {}

    bool batch(KvbmCacheEvents<H>& out) {
        const int c = peek_ws();
        if (c == '[') {  // serde accepts a struct as a sequence of its fields
            ++m_p;
            int d = peek_ws();
            if (d == ']') {
                return fail("KvbmCacheEvents: invalid length 0, expected struct KvbmCacheEvents with 2 elements");
            }
            if (d < 0) {
                return fail("EOF while parsing a list");
            }
            if (!events(out.events)) {
                return false;
            }
            d = peek_ws();
            if (d == ']') {
                return fail("KvbmCacheEvents: invalid length 1, expected struct KvbmCacheEvents with 2 elements");
            }
            if (!next_element(d, false) || !u128(out.instance_id, {"instance_id"})) {
                return false;
            }
            return end_seq("KvbmCacheEvents");
        }
        if (c != '{') {
            return c < 0 ? fail("EOF while parsing a value")
                         : fail(
                               "KvbmCacheEvents: invalid type, expected a JSON object "
                               "{\"events\":..,\"instance_id\":..}");
        }
        ++m_p;
        bool have_events = false;
        bool have_id = false;
        for (bool first = true;; first = false) {
            Field f = Field::ignored;
            bool done = false;
            if (!next_key(first, done, "KvbmCacheEvents")) {
                return false;
            }
            if (done) {
                break;
            }
            const char* key_at = m_p - 1;
            if (!string(m_scratch)) {
                return false;
            }
            f = m_scratch == "events"        ? Field::events
                : m_scratch == "instance_id" ? Field::instance_id
                                             : Field::ignored;
            if ((f == Field::events && have_events) || (f == Field::instance_id && have_id)) {
                return fail_at(key_at, std::string("KvbmCacheEvents: duplicate field `") + m_scratch + '`');
            }
            if (!colon()) {
                return false;
            }
            if (f == Field::events) {
                if (!events(out.events)) {
                    return false;
                }
                have_events = true;
            } else if (f == Field::instance_id) {
                if (!u128(out.instance_id, {"instance_id"})) {
                    return false;
                }
                have_id = true;
            } else if (!ignore_value()) {
                return false;
            }
        }
        if (!have_events) {
            return fail("KvbmCacheEvents: missing field `events`");
        }
        if (!have_id) {
            return fail("KvbmCacheEvents: missing field `instance_id`");
        }
        ++m_p;  // '}'
        return true;
    }

    bool event(KvCacheEvent<H>& out) {
        const int c = peek_ws();
        if (c != '{' && c != '"') {
            return c < 0 ? fail("EOF while parsing a value")
                         : fail("KvCacheEvent: expected an object {\"Create\": hash}");
        }
        const char* name_at = m_p++;
        if (c == '"') {
            if (!string(m_scratch)) {
                return false;
            }
            const Variant v = variant_of(m_scratch, false);
            return v == Variant::unknown
                       ? unknown_variant(name_at, "KvCacheEvent", false)
                       : fail_at(name_at, "KvCacheEvent: invalid type: unit variant, expected newtype variant (`" +
                                              m_scratch + "` needs a hash)");
        }
        const int d = peek_ws();
        if (d != '"') {
            return d < 0 ? fail("EOF while parsing a value") : fail("KvCacheEvent: expected a variant name");
        }
        const char* variant_at = m_p++;
        if (!string(m_scratch)) {
            return false;
        }
        const Variant v = variant_of(m_scratch, false);
        if (v == Variant::unknown) {
            return unknown_variant(variant_at, "KvCacheEvent", false);
        }
        Uint128 raw;
        if (!colon() || !hash(raw, {v == Variant::create ? "Create" : "Remove"})) {
            return false;
        }
        out.kind = v == Variant::create ? EventKind::create : EventKind::remove;
        out.hash = H::from_raw(raw);
        return end_enum("KvCacheEvent");
    }

    /// Only whitespace may follow the value.
    bool finish() {
        if (peek_ws() >= 0) {
            return fail("trailing characters");
        }
        return true;
    }

    [[nodiscard]] DecodeError take_error() noexcept { return std::move(m_error); }

private:
    // --- errors ---
    bool fail(std::string reason) {
        const auto offset = static_cast<std::size_t>(m_p - m_begin);
        std::size_t line = 1;
        const char* line_start = m_begin;
        for (const char* q = m_begin; q != m_p; ++q) {
            if (*q == '\n') {
                ++line;
                line_start = q + 1;
            }
        }
        m_error.offset = offset;
        m_error.reason = std::move(reason) + " at line " + std::to_string(line) + " column " +
                         std::to_string(static_cast<std::size_t>(m_p - line_start) + 1);
        return false;
    }
    bool fail(const Path& at, const std::string& problem) { return fail(at.text() + ": " + problem); }
    /// Errors about a value point at its first byte.
    bool fail_at(const char* where, std::string reason) {
        m_p = where;
        return fail(std::move(reason));
    }

    // --- lexing ---
    int peek_ws() noexcept {
        while (m_p != m_end && (*m_p == ' ' || *m_p == '\n' || *m_p == '\t' || *m_p == '\r')) {
            ++m_p;
        }
        return m_p == m_end ? -1 : static_cast<unsigned char>(*m_p);
    }

    bool colon() {
        const int c = peek_ws();
        if (c == ':') {
            ++m_p;
            return true;
        }
        return c < 0 ? fail("EOF while parsing an object") : fail("expected `:`");
    }

    /// Before each key of an object: `done` when the object ends (at its '}').
    bool next_key(bool first, bool& done, const char* what) {
        int c = peek_ws();
        done = c == '}';
        if (done) {
            return true;
        }
        if (!first) {
            if (c != ',') {
                return c < 0 ? fail("EOF while parsing an object") : fail(std::string(what) + ": expected `,` or `}`");
            }
            ++m_p;
            c = peek_ws();
            if (c == '}') {
                return fail(std::string(what) + ": trailing comma");
            }
            if (c < 0) {
                return fail("EOF while parsing a value");
            }
        } else if (c < 0) {
            return fail("EOF while parsing an object");
        }
        if (c != '"') {
            return fail(std::string(what) + ": key must be a string");
        }
        ++m_p;
        return true;
    }

    /// Before an element after the first of a sequence whose next character is `c`.
    bool next_element(int c, bool first) {
        if (first) {
            return c >= 0 || fail("EOF while parsing a list");
        }
        if (c != ',') {
            return c < 0 ? fail("EOF while parsing a list") : fail("expected `,` or `]`");
        }
        ++m_p;
        c = peek_ws();
        if (c == ']') {
            return fail("trailing comma");
        }
        return c >= 0 || fail("EOF while parsing a value");
    }

    bool end_seq(const char* what) {
        const int c = peek_ws();
        if (c == ']') {
            ++m_p;
            return true;
        }
        if (c < 0) {
            return fail("EOF while parsing a list");
        }
        if (c == ',') {
            ++m_p;
            if (peek_ws() == ']') {
                return fail("trailing comma");
            }
        }
        return fail(std::string(what) + ": trailing characters (too many elements)");
    }

    bool end_enum(const char* what) {
        const int c = peek_ws();
        if (c == '}') {
            ++m_p;
            return true;
        }
        return c < 0 ? fail("EOF while parsing an object")
                     : fail(std::string(what) + ": expected value `}` (an enum object holds exactly one variant)");
    }

    /// A string whose opening quote has been consumed, unescaped and validated like
    /// serde_json's parse_str: no raw control characters, valid escapes and surrogate
    /// pairs, valid UTF-8.
    bool string(std::string& out) {
        out.clear();
        while (true) {
            const char* run = m_p;
            while (m_p != m_end && static_cast<unsigned char>(*m_p) >= 0x20 && *m_p != '"' && *m_p != '\\') {
                ++m_p;
            }
            for (const char* q = run; q != m_p;) {
                const std::size_t n =
                    utf8_sequence(reinterpret_cast<const unsigned char*>(q), static_cast<std::size_t>(m_p - q));
                if (n == 0) {
                    m_p = q;
                    return fail("invalid unicode code point");
                }
                q += n;
            }
            out.append(run, m_p);
            if (m_p == m_end) {
                return fail("EOF while parsing a string");
            }
            const char c = *m_p++;
            if (c == '"') {
                return true;
            }
            if (c != '\\') {
                --m_p;
                return fail("control character (\\u0000-\\u001F) found while parsing a string");
            }
            if (!escape(out, true)) {
                return false;
            }
        }
    }

    bool hex4(std::uint32_t& v) {
        v = 0;
        for (int i = 0; i < 4; ++i) {
            if (m_p == m_end) {
                return fail("EOF while parsing a string");
            }
            const char c = *m_p++;
            std::uint32_t d = 0;
            if (c >= '0' && c <= '9') {
                d = static_cast<std::uint32_t>(c - '0');
            } else if (c >= 'a' && c <= 'f') {
                d = static_cast<std::uint32_t>(c - 'a' + 10);
            } else if (c >= 'A' && c <= 'F') {
                d = static_cast<std::uint32_t>(c - 'A' + 10);
            } else {
                return fail("invalid escape");
            }
            v = (v << 4) | d;
        }
        return true;
    }

    /// One escape after its backslash, appended to `out`. `validate` as in serde_json:
    /// strings must pair surrogates; byte strings keep lone ones (WTF-8).
    bool escape(std::string& out, bool validate) {
        if (m_p == m_end) {
            return fail("EOF while parsing a string");
        }
        switch (*m_p++) {
            case '"':
                out += '"';
                return true;
            case '\\':
                out += '\\';
                return true;
            case '/':
                out += '/';
                return true;
            case 'b':
                out += '\b';
                return true;
            case 'f':
                out += '\f';
                return true;
            case 'n':
                out += '\n';
                return true;
            case 'r':
                out += '\r';
                return true;
            case 't':
                out += '\t';
                return true;
            case 'u':
                break;
            default:
                return fail("invalid escape");
        }
        std::uint32_t n1 = 0;
        if (!hex4(n1)) {
            return false;
        }
        if (n1 >= 0xdc00 && n1 <= 0xdfff) {
            if (validate) {
                return fail("lone leading surrogate in hex escape");
            }
            push_utf8(out, n1);
            return true;
        }
        if (n1 < 0xd800 || n1 > 0xdbff) {
            push_utf8(out, n1);
            return true;
        }
        if (m_p == m_end) {
            return fail("EOF while parsing a string");
        }
        if (*m_p != '\\') {
            if (validate) {
                ++m_p;
                return fail("unexpected end of hex escape");
            }
            push_utf8(out, n1);
            return true;
        }
        ++m_p;
        if (m_p == m_end) {
            return fail("EOF while parsing a string");
        }
        if (*m_p != 'u') {
            if (validate) {
                ++m_p;
                return fail("unexpected end of hex escape");
            }
            push_utf8(out, n1);
            return escape(out, validate);  // not \u: one of the simple escapes, no deep recursion
        }
        ++m_p;
        std::uint32_t n2 = 0;
        if (!hex4(n2)) {
            return false;
        }
        if (n2 < 0xdc00 || n2 > 0xdfff) {
            return fail("lone leading surrogate in hex escape");
        }
        push_utf8(out, (((n1 - 0xd800) << 10) | (n2 - 0xdc00)) + 0x10000);
        return true;
    }

    // --- values ---
    static Variant variant_of(std::string_view name, bool with_shutdown) noexcept {
        if (name == "Create") {
            return Variant::create;
        }
        if (name == "Remove") {
            return Variant::remove;
        }
        return with_shutdown && name == "Shutdown" ? Variant::shutdown : Variant::unknown;
    }

    bool unknown_variant(const char* at, const char* what, bool with_shutdown) {
        std::string shown;
        for (const char ch : m_scratch.substr(0, 64)) {
            shown += static_cast<unsigned char>(ch) < 0x20 ? '?' : ch;
        }
        return fail_at(at, std::string(what) + ": unknown variant `" + shown + "`, " +
                               (with_shutdown ? "expected one of `Create`, `Remove`, `Shutdown`"
                                              : "expected `Create` or `Remove`"));
    }

    bool events(KvCacheEvents<H>& out) {
        const int c = peek_ws();
        if (c == '"') {  // unit variant
            const char* name_at = m_p++;
            if (!string(m_scratch)) {
                return false;
            }
            const Variant v = variant_of(m_scratch, true);
            if (v == Variant::unknown) {
                return unknown_variant(name_at, "events", true);
            }
            if (v != Variant::shutdown) {
                return fail_at(name_at, "events: invalid type: unit variant, expected newtype variant (`" + m_scratch +
                                            "` needs a list of hashes)");
            }
            out.kind = BatchKind::shutdown;
            out.hashes.clear();
            return true;
        }
        if (c != '{') {
            return c < 0 ? fail("EOF while parsing a value")
                         : fail("events: expected a variant: \"Shutdown\" or an object {\"Create\": [...]}");
        }
        ++m_p;
        const int d = peek_ws();
        if (d != '"') {
            return d < 0 ? fail("EOF while parsing a value") : fail("events: expected a variant name");
        }
        const char* variant_at = m_p++;
        if (!string(m_scratch)) {
            return false;
        }
        const Variant v = variant_of(m_scratch, true);
        if (v == Variant::unknown) {
            return unknown_variant(variant_at, "events", true);
        }
        if (!colon()) {
            return false;
        }
        if (v == Variant::shutdown) {  // {"Shutdown": null}
            if (peek_ws() != 'n') {
                return fail("events.Shutdown: invalid type, expected null");
            }
            ++m_p;
            if (!ident("ull")) {
                return false;
            }
            out.kind = BatchKind::shutdown;
            out.hashes.clear();
        } else {
            out.kind = v == Variant::create ? BatchKind::create : BatchKind::remove;
            if (!hashes(out.hashes, v == Variant::create ? "events.Create" : "events.Remove")) {
                return false;
            }
        }
        return end_enum("events");
    }

    bool hashes(std::vector<H>& out, const char* what) {
        out.clear();
        int c = peek_ws();
        if (c != '[') {
            return c < 0 ? fail("EOF while parsing a value")
                         : fail(Path{what}, "invalid type, expected a list of hashes");
        }
        ++m_p;
        // A guess bounded by the input (a 1.2 hash is typically 38 digits and a comma).
        out.reserve(static_cast<std::size_t>(m_end - m_p) / (F == JsonFlavor::kvbm_1_2 ? 40 : 60));
        for (std::size_t i = 0;; ++i) {
            c = peek_ws();
            if (c == ']') {
                ++m_p;
                return true;
            }
            if (!next_element(c, i == 0)) {
                return false;
            }
            Uint128 raw;
            if (!hash(raw, {what, i})) {
                return false;
            }
            out.push_back(H::from_raw(raw));
        }
    }

    bool hash(Uint128& v, const Path& at) {
        if constexpr (F == JsonFlavor::kvbm_1_2) {
            return u128(v, at);
        } else {
            return hash_bytes(v, at);
        }
    }

    /// serde_json's deserialize_u128: an unsigned integer without sign, fraction, exponent
    /// or leading zero, below 2^128 (what follows it is the caller's business).
    bool u128(Uint128& v, const Path& at) {
        const int c = peek_ws();
        if (c < 0) {
            return fail("EOF while parsing a value");
        }
        if (c == '-') {
            return fail(at, "number out of range (negative)");
        }
        if (c == '0') {
            ++m_p;
            if (m_p != m_end && is_digit(*m_p)) {
                return fail(at, "invalid number (leading zero)");
            }
            v = Uint128{};
            return true;
        }
        if (c < '1' || c > '9') {
            return fail(at, c == '"' ? "invalid number (a string, expected an unsigned integer)"
                                     : "invalid number (expected an unsigned integer)");
        }
        const char* start = m_p;
        while (m_p != m_end && is_digit(*m_p)) {
            ++m_p;
        }
        if (!digits_to_u128(start, static_cast<std::size_t>(m_p - start), v)) {
            return fail_at(start, at.text() + ": number out of range (>= 2^128)");
        }
        return true;
    }

    /// serde_json's deserialize_bytes for the 1.3 hash: an array of 16 u8 or a string of 16 bytes.
    bool hash_bytes(Uint128& v, const Path& at) {
        std::array<std::uint8_t, 16> bytes{};
        int c = peek_ws();
        if (c == '"') {
            const char* string_at = m_p++;
            m_scratch.clear();
            if (!raw_string(m_scratch)) {
                return false;
            }
            if (m_scratch.size() != 16) {
                return fail_at(string_at, at.text() + ": invalid length " + std::to_string(m_scratch.size()) +
                                              ", expected 16 bytes");
            }
            std::memcpy(bytes.data(), m_scratch.data(), 16);
            v = Uint128::from_be_bytes(bytes);
            return true;
        }
        if (c != '[') {
            return c < 0 ? fail("EOF while parsing a value")
                         : fail(at, "invalid type, expected 16 bytes (an array of 16 integers 0..255)");
        }
        ++m_p;
        for (std::size_t i = 0; i < 16; ++i) {
            c = peek_ws();
            if (c == ']') {
                return fail(at, "invalid length " + std::to_string(i) + ", expected 16 elements");
            }
            if (!next_element(c, i == 0)) {
                return false;
            }
            if (!byte(bytes[i], Path{at.name, at.index, i})) {
                return false;
            }
        }
        if (!end_seq(at.text().c_str())) {
            return false;
        }
        v = Uint128::from_be_bytes(bytes);
        return true;
    }

    /// A u8 as serde_json reads one: a non-negative integer <= 255, no fraction or exponent.
    bool byte(std::uint8_t& b, const Path& at) {
        const int c = peek_ws();
        if (c == '-') {
            return fail(at, "invalid value: negative, expected u8");
        }
        if (c < '0' || c > '9') {
            return c < 0 ? fail("EOF while parsing a value") : fail(at, "invalid type, expected u8");
        }
        const char* start = m_p;
        while (m_p != m_end && is_digit(*m_p)) {
            ++m_p;
        }
        const auto n = static_cast<std::size_t>(m_p - start);
        if (*start == '0' && n > 1) {
            m_p = start + 1;
            return fail(at, "invalid number (leading zero)");
        }
        if (m_p != m_end && (*m_p == '.' || *m_p == 'e' || *m_p == 'E')) {
            return fail(at, "invalid type: floating point, expected u8");
        }
        if (n > 3 || parse_digits(start, n) > 255) {
            return fail_at(start, at.text() + ": invalid value: integer `" +
                                      std::string(start, std::min<std::size_t>(n, 40)) + "`, expected u8");
        }
        b = static_cast<std::uint8_t>(parse_digits(start, n));
        return true;
    }

    /// serde_json's parse_str_raw (for bytes): escapes decoded, lone surrogates kept,
    /// control characters and any byte values allowed.
    bool raw_string(std::string& out) {
        while (true) {
            const char* run = m_p;
            while (m_p != m_end && *m_p != '"' && *m_p != '\\') {
                ++m_p;
            }
            out.append(run, m_p);
            if (m_p == m_end) {
                return fail("EOF while parsing a string");
            }
            if (*m_p++ == '"') {
                return true;
            }
            if (!escape(out, false)) {
                return false;
            }
        }
    }

    bool ident(std::string_view rest) {
        for (const char expected : rest) {
            if (m_p == m_end) {
                return fail("EOF while parsing a value");
            }
            if (*m_p++ != expected) {
                return fail("expected ident");
            }
        }
        return true;
    }

    // --- skipping unknown fields: serde_json's ignore_value, iterative (no depth limit) ---
    bool ignore_str() {
        while (true) {
            while (m_p != m_end && static_cast<unsigned char>(*m_p) >= 0x20 && *m_p != '"' && *m_p != '\\') {
                ++m_p;
            }
            if (m_p == m_end) {
                return fail("EOF while parsing a string");
            }
            const char c = *m_p++;
            if (c == '"') {
                return true;
            }
            if (c != '\\') {
                --m_p;
                return fail("control character (\\u0000-\\u001F) found while parsing a string");
            }
            if (m_p == m_end) {
                return fail("EOF while parsing a string");
            }
            const char e = *m_p++;
            if (e == 'u') {
                std::uint32_t ignored = 0;
                if (!hex4(ignored)) {
                    return false;
                }
            } else if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos) {
                return fail("invalid escape");
            }
        }
    }

    bool ignore_number() {
        // ignore_integer
        const char first = m_p == m_end ? '\0' : *m_p++;
        if (first == '0') {
            if (m_p != m_end && is_digit(*m_p)) {
                return fail("invalid number");
            }
        } else if (first >= '1' && first <= '9') {
            while (m_p != m_end && is_digit(*m_p)) {
                ++m_p;
            }
        } else {
            return fail("invalid number");
        }
        if (m_p != m_end && *m_p == '.') {  // ignore_decimal
            ++m_p;
            const char* digits = m_p;
            while (m_p != m_end && is_digit(*m_p)) {
                ++m_p;
            }
            if (m_p == digits) {
                return fail("invalid number");
            }
        }
        if (m_p != m_end && (*m_p == 'e' || *m_p == 'E')) {  // ignore_exponent
            ++m_p;
            if (m_p != m_end && (*m_p == '+' || *m_p == '-')) {
                ++m_p;
            }
            if (m_p == m_end || !is_digit(*m_p)) {
                if (m_p != m_end) {
                    ++m_p;
                }
                return fail("invalid number");
            }
            while (m_p != m_end && is_digit(*m_p)) {
                ++m_p;
            }
        }
        return true;
    }

    bool ignore_value() {
        m_frames.clear();  // '[' / '{' of the enclosing containers: memory bounded by the input
        char enclosing = 0;
        while (true) {
            const int c = peek_ws();
            if (c < 0) {
                return fail("EOF while parsing a value");
            }
            char frame = 0;
            switch (c) {
                case 'n':
                    ++m_p;
                    if (!ident("ull")) {
                        return false;
                    }
                    break;
                case 't':
                    ++m_p;
                    if (!ident("rue")) {
                        return false;
                    }
                    break;
                case 'f':
                    ++m_p;
                    if (!ident("alse")) {
                        return false;
                    }
                    break;
                case '-':
                    ++m_p;
                    if (!ignore_number()) {
                        return false;
                    }
                    break;
                case '"':
                    ++m_p;
                    if (!ignore_str()) {
                        return false;
                    }
                    break;
                case '[':
                case '{':
                    if (enclosing != 0) {
                        m_frames += enclosing;
                        enclosing = 0;
                    }
                    ++m_p;
                    frame = static_cast<char>(c);
                    break;
                default:
                    if (c >= '0' && c <= '9') {
                        if (!ignore_number()) {
                            return false;
                        }
                        break;
                    }
                    return fail("expected value");
            }
            bool accept_comma = false;
            if (frame != 0) {
                accept_comma = false;
            } else if (enclosing != 0) {
                accept_comma = true;
                frame = enclosing;
                enclosing = 0;
            } else if (!m_frames.empty()) {
                accept_comma = true;
                frame = m_frames.back();
                m_frames.pop_back();
            } else {
                return true;
            }
            while (true) {
                const int d = peek_ws();
                if (d == ',' && accept_comma) {
                    ++m_p;
                    break;
                }
                if ((d == ']' && frame == '[') || (d == '}' && frame == '{')) {
                    ++m_p;
                    if (m_frames.empty()) {
                        return true;
                    }
                    frame = m_frames.back();
                    m_frames.pop_back();
                    accept_comma = true;
                    continue;
                }
                if (d < 0) {
                    return fail(frame == '[' ? "EOF while parsing a list" : "EOF while parsing an object");
                }
                if (accept_comma) {
                    return fail(frame == '[' ? "expected `,` or `]`" : "expected `,` or `}`");
                }
                break;
            }
            if (frame == '{') {
                const int k = peek_ws();
                if (k != '"') {
                    return k < 0 ? fail("EOF while parsing an object") : fail("key must be a string");
                }
                ++m_p;
                if (!ignore_str()) {
                    return false;
                }
                const int col = peek_ws();
                if (col != ':') {
                    return col < 0 ? fail("EOF while parsing an object") : fail("expected `:`");
                }
                ++m_p;
            }
            enclosing = frame;
        }
    }

    const char* m_begin;
    const char* m_p;
    const char* m_end;
    std::string m_scratch;
    std::string m_frames;
    DecodeError m_error;
};

template <class T, class H, JsonFlavor F>
DecodeResult<T> parse_with(std::string_view text) {
    Parser<H, F> p(text);
    T out;
    bool ok = false;
    if constexpr (std::is_same_v<T, KvbmCacheEvents<H>>) {
        ok = p.batch(out);
    } else {
        ok = p.event(out);
    }
    if (ok && p.finish()) {
        return out;
    }
    return p.take_error();
}
}  // namespace detail::js

namespace json {

using kvbm::DecodeError;
using kvbm::DecodeResult;
using kvbm::JsonFlavor;

// --- exact text ------------------------------------------------------------------------

/// Appends serde_json::to_string's text of `batch` in `flavor` to `out`.
template <WireSequenceHash H>
void append(std::string& out, const KvbmCacheEvents<H>& batch, JsonFlavor flavor) {
    if (flavor == JsonFlavor::kvbm_1_2) {
        detail::js::append_batch<JsonFlavor::kvbm_1_2>(out, batch);
    } else {
        detail::js::append_batch<JsonFlavor::kvbm_1_3>(out, batch);
    }
}

/// Appends serde_json::to_string's text of `event` in `flavor` to `out`.
template <WireSequenceHash H>
void append(std::string& out, const KvCacheEvent<H>& event, JsonFlavor flavor) {
    if (flavor == JsonFlavor::kvbm_1_2) {
        detail::js::append_event<JsonFlavor::kvbm_1_2>(out, event);
    } else {
        detail::js::append_event<JsonFlavor::kvbm_1_3>(out, event);
    }
}

/// serde_json::to_string's text of a KvbmCacheEvents or KvCacheEvent in `flavor`.
template <class T>
requires requires(std::string& s, const T& v) { kvbm::json::append(s, v, JsonFlavor::kvbm_1_2); }
[[nodiscard]] std::string to_string(const T& value, JsonFlavor flavor) {
    std::string out;
    append(out, value, flavor);
    return out;
}

/// Parses one KvbmCacheEvents exactly as serde_json::from_slice would in `flavor`
/// (only whitespace may follow it).
template <WireSequenceHash H = PositionalLineageHash>
[[nodiscard]] DecodeResult<KvbmCacheEvents<H>> parse_batch(std::string_view text, JsonFlavor flavor) {
    return flavor == JsonFlavor::kvbm_1_2 ? detail::js::parse_with<KvbmCacheEvents<H>, H, JsonFlavor::kvbm_1_2>(text)
                                          : detail::js::parse_with<KvbmCacheEvents<H>, H, JsonFlavor::kvbm_1_3>(text);
}

/// Parses one KvCacheEvent exactly as serde_json::from_slice would in `flavor`.
template <WireSequenceHash H = PositionalLineageHash>
[[nodiscard]] DecodeResult<KvCacheEvent<H>> parse_event(std::string_view text, JsonFlavor flavor) {
    return flavor == JsonFlavor::kvbm_1_2 ? detail::js::parse_with<KvCacheEvent<H>, H, JsonFlavor::kvbm_1_2>(text)
                                          : detail::js::parse_with<KvCacheEvent<H>, H, JsonFlavor::kvbm_1_3>(text);
}

}  // namespace json

KVBM_NAMESPACE_END
