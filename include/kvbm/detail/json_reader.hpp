/// @file kvbm/detail/json_reader.hpp
/// A small pull reader for the JSON bodies of kvbm-hub's HTTP API (requests on the hub,
/// answers in HubClient): objects, arrays, strings, null, and unsigned integers read
/// exactly up to 2^128 - 1 (ids and hashes; a double would lose digits). No DOM, no
/// allocation beyond the strings asked for. Errors are values (`error()`), never thrown.
#pragma once

#include <kvbm/config.hpp>
#include <kvbm/uint128.hpp>

#include <cstdint>
#include <string>
#include <string_view>

KVBM_NAMESPACE_BEGIN

namespace detail {

/// Reads one JSON text front to back. Each reading member returns false on failure and
/// records the first error; after a failure every member returns false. Reentrant.
class JsonReader {
public:
    explicit JsonReader(std::string_view text) noexcept : m_p(text.data()), m_end(text.data() + text.size()) {}

    [[nodiscard]] bool failed() const noexcept { return !m_error.empty(); }
    /// The first error, e.g. "expected ',' or '}' at offset 17"; empty when none.
    [[nodiscard]] const std::string& error() const noexcept { return m_error; }

    /// Records `message` (with the current offset) as the error unless one is recorded.
    bool fail(std::string_view message) {
        if (m_error.empty()) {
            m_error = std::string(message);
            if (m_begin_known) {
                m_error += " at offset " + std::to_string(m_p - m_start);
            }
        }
        return false;
    }

    void skip_ws() noexcept {
        while (m_p != m_end && (*m_p == ' ' || *m_p == '\t' || *m_p == '\n' || *m_p == '\r')) {
            ++m_p;
        }
    }

    /// The next non-space character, or '\0' at the end.
    [[nodiscard]] char peek() noexcept {
        skip_ws();
        return m_p == m_end ? '\0' : *m_p;
    }

    /// Consumes `c` (after spaces) if it is next.
    bool consume(char c) noexcept {
        if (peek() == c) {
            ++m_p;
            return true;
        }
        return false;
    }

    bool expect(char c) {
        if (failed()) {
            return false;
        }
        if (!consume(c)) {
            return fail(std::string("expected '") + c + "'" + found());
        }
        return true;
    }

    /// True when only spaces are left; otherwise records "trailing characters".
    bool at_end() {
        if (failed()) {
            return false;
        }
        if (peek() != '\0') {
            return fail("trailing characters after the JSON value");
        }
        return true;
    }

    bool null() {
        if (failed()) {
            return false;
        }
        skip_ws();
        if (m_end - m_p >= 4 && std::string_view(m_p, 4) == "null") {
            m_p += 4;
            return true;
        }
        return fail("expected null" + found());
    }

    /// A string, unescaped into `out` (UTF-8; \uXXXX surrogate pairs joined).
    bool string(std::string& out) {
        if (failed()) {
            return false;
        }
        out.clear();
        if (!consume('"')) {
            return fail("expected a string" + found());
        }
        while (m_p != m_end) {
            const char c = *m_p++;
            if (c == '"') {
                return true;
            }
            if (static_cast<unsigned char>(c) < 0x20) {
                return fail("control character in a string");
            }
            if (c != '\\') {
                out.push_back(c);
                continue;
            }
            if (m_p == m_end) {
                break;
            }
            switch (const char e = *m_p++) {
                case '"':
                case '\\':
                case '/':
                    out.push_back(e);
                    break;
                case 'b':
                    out.push_back('\b');
                    break;
                case 'f':
                    out.push_back('\f');
                    break;
                case 'n':
                    out.push_back('\n');
                    break;
                case 'r':
                    out.push_back('\r');
                    break;
                case 't':
                    out.push_back('\t');
                    break;
                case 'u': {
                    std::uint32_t cp = 0;
                    if (!hex4(cp)) {
                        return false;
                    }
                    if (cp >= 0xD800 && cp < 0xDC00) {
                        std::uint32_t low = 0;
                        if (m_end - m_p < 2 || m_p[0] != '\\' || m_p[1] != 'u') {
                            return fail("unpaired surrogate in a string");
                        }
                        m_p += 2;
                        if (!hex4(low) || low < 0xDC00 || low >= 0xE000) {
                            return fail("unpaired surrogate in a string");
                        }
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                    } else if (cp >= 0xDC00 && cp < 0xE000) {
                        return fail("unpaired surrogate in a string");
                    }
                    put_utf8(out, cp);
                    break;
                }
                default:
                    return fail("bad escape in a string");
            }
        }
        return fail("unterminated string");
    }

    /// A JSON integer without sign, fraction, exponent or leading zeros, below 2^128.
    /// `what` names the value in the error ("instance_id", "hashes[3]").
    bool u128(Uint128& out, std::string_view what) {
        if (failed()) {
            return false;
        }
        const char c = peek();
        if (c < '0' || c > '9') {
            return fail(std::string(what) + ": expected an unsigned integer" + found());
        }
        const char* const first = m_p;
        while (m_p != m_end && *m_p >= '0' && *m_p <= '9') {
            ++m_p;
        }
        if (m_p != m_end && (*m_p == '.' || *m_p == 'e' || *m_p == 'E')) {
            return fail(std::string(what) + ": expected an unsigned integer, not a fractional or exponent number");
        }
        if (*first == '0' && m_p - first > 1) {
            return fail(std::string(what) + ": leading zeros are not allowed");
        }
        if (!digits(std::string_view(first, static_cast<std::size_t>(m_p - first)), out)) {
            return fail(std::string(what) + ": number out of range (>= 2^128)");
        }
        return true;
    }

    /// A JSON integer that fits in 64 bits.
    bool u64(std::uint64_t& out, std::string_view what) {
        Uint128 v;
        if (!u128(v, what)) {
            return false;
        }
        if (v.high() != 0) {
            return fail(std::string(what) + ": number out of range (>= 2^64)");
        }
        out = v.low();
        return true;
    }

    /// Skips any one JSON value (syntax checked, nesting at most 64 deep).
    bool skip_value(int depth = 0) {
        if (failed()) {
            return false;
        }
        if (depth > 64) {
            return fail("nesting deeper than 64");
        }
        switch (peek()) {
            case '{':
                ++m_p;
                if (consume('}')) {
                    return true;
                }
                do {
                    std::string key;
                    if (!string(key) || !expect(':') || !skip_value(depth + 1)) {
                        return false;
                    }
                } while (consume(','));
                return expect('}');
            case '[':
                ++m_p;
                if (consume(']')) {
                    return true;
                }
                do {
                    if (!skip_value(depth + 1)) {
                        return false;
                    }
                } while (consume(','));
                return expect(']');
            case '"': {
                std::string s;
                return string(s);
            }
            case 't':
                return literal("true");
            case 'f':
                return literal("false");
            case 'n':
                return literal("null");
            default:
                return number();
        }
    }

    /// Reads an object, calling `field(key)` with the reader positioned at each value; the
    /// callback must consume the value (or skip_value) and return false to stop. Duplicate
    /// keys are the caller's to detect.
    template <class F>
    bool object(F&& field) {
        if (!expect('{')) {
            return false;
        }
        if (consume('}')) {
            return true;
        }
        std::string key;
        do {
            if (!string(key) || !expect(':')) {
                return false;
            }
            if (!field(std::string_view(key)) || failed()) {
                return fail("bad field '" + key + "'");
            }
        } while (consume(','));
        return expect('}');
    }

    /// Reads an array, calling `item(index)` at each element (which it must consume).
    template <class F>
    bool array(F&& item) {
        if (!expect('[')) {
            return false;
        }
        if (consume(']')) {
            return true;
        }
        std::size_t i = 0;
        do {
            if (!item(i++) || failed()) {
                return fail("bad array item");
            }
        } while (consume(','));
        return expect(']');
    }

    /// Decimal digits (no sign) to a u128; false when empty, not digits or >= 2^128.
    [[nodiscard]] static bool digits(std::string_view text, Uint128& out) noexcept {
        if (text.empty()) {
            return false;
        }
        Uint128 v;
        for (const char c : text) {
            if (c < '0' || c > '9' || !v.checked_mul_add(10, static_cast<std::uint64_t>(c - '0'), v)) {
                return false;
            }
        }
        out = v;
        return true;
    }

    /// Starts reporting byte offsets in errors (off by default: the hub's messages name
    /// fields, offsets only help for syntax errors).
    void report_offsets() noexcept {
        m_start = m_p;
        m_begin_known = true;
    }

private:
    [[nodiscard]] std::string found() {
        skip_ws();
        if (m_p == m_end) {
            return ", found the end of the input";
        }
        const char c = *m_p;
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7F) {
            return "";
        }
        return std::string(", found '") + c + "'";
    }

    bool literal(std::string_view word) {
        if (m_end - m_p >= static_cast<std::ptrdiff_t>(word.size()) && std::string_view(m_p, word.size()) == word) {
            m_p += word.size();
            return true;
        }
        return fail("invalid literal");
    }

    bool number() {
        const char* p = m_p;
        if (p != m_end && *p == '-') {
            ++p;
        }
        const char* const int_start = p;
        while (p != m_end && *p >= '0' && *p <= '9') {
            ++p;
        }
        if (p == int_start || (*int_start == '0' && p - int_start > 1)) {
            return fail("invalid number" + found());
        }
        if (p != m_end && *p == '.') {
            const char* const f = ++p;
            while (p != m_end && *p >= '0' && *p <= '9') {
                ++p;
            }
            if (p == f) {
                return fail("invalid number");
            }
        }
        if (p != m_end && (*p == 'e' || *p == 'E')) {
            ++p;
            if (p != m_end && (*p == '+' || *p == '-')) {
                ++p;
            }
            const char* const e = p;
            while (p != m_end && *p >= '0' && *p <= '9') {
                ++p;
            }
            if (p == e) {
                return fail("invalid number");
            }
        }
        m_p = p;
        return true;
    }

    bool hex4(std::uint32_t& out) {
        if (m_end - m_p < 4) {
            return fail("bad \\u escape in a string");
        }
        out = 0;
        for (int i = 0; i < 4; ++i) {
            const char c = *m_p++;
            std::uint32_t d = 0;
            if (c >= '0' && c <= '9') {
                d = static_cast<std::uint32_t>(c - '0');
            } else if (c >= 'a' && c <= 'f') {
                d = static_cast<std::uint32_t>(c - 'a' + 10);
            } else if (c >= 'A' && c <= 'F') {
                d = static_cast<std::uint32_t>(c - 'A' + 10);
            } else {
                return fail("bad \\u escape in a string");
            }
            out = out * 16 + d;
        }
        return true;
    }

    static void put_utf8(std::string& out, std::uint32_t cp) {
        if (cp < 0x80) {
            out.push_back(static_cast<char>(cp));
        } else if (cp < 0x800) {
            out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        } else if (cp < 0x10000) {
            out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
            out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        } else {
            out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
            out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
            out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        }
    }

    const char* m_p;
    const char* m_end;
    const char* m_start = nullptr;
    bool m_begin_known = false;
    std::string m_error;
};

/// Appends `s` as a JSON string (quotes, escapes for `"`, `\` and control characters).
inline void append_json_string(std::string& out, std::string_view s) {
    out.push_back('"');
    for (const char c : s) {
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    static constexpr char hex[] = "0123456789abcdef";
                    out += "\\u00";
                    out.push_back(hex[(static_cast<unsigned char>(c) >> 4) & 0xF]);
                    out.push_back(hex[static_cast<unsigned char>(c) & 0xF]);
                } else {
                    out.push_back(c);
                }
        }
    }
    out.push_back('"');
}

}  // namespace detail

KVBM_NAMESPACE_END
