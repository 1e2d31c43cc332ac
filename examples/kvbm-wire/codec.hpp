// Shared plumbing of kvbm-wire's encode and decode verbs: hex, flavours, input checks.
#pragma once

#include "cli.hpp"

#include <kvbm/json_text.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace kvbm_wire {

inline void check_type(const std::string& type) {
    if (type != "batch" && type != "event") {
        throw usage_error("unknown type " + type + " (expected batch or event)");
    }
}

inline kvbm::JsonFlavor json_flavor(const std::string& to) {
    if (to == "json-1.2") {
        return kvbm::JsonFlavor::kvbm_1_2;
    }
    if (to == "json-1.3") {
        return kvbm::JsonFlavor::kvbm_1_3;
    }
    throw usage_error("unknown output form " + to + " (expected json-1.2 or json-1.3)");
}

inline std::string to_hex(const std::vector<std::uint8_t>& bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out(2 * bytes.size(), '0');
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 0xfU];
    }
    return out;
}

/// Hex digits (either case) surrounded by optional whitespace. As the reference parses
/// each pair with Rust's u8::from_str_radix, a pair may also be `+` and one digit.
inline std::vector<std::uint8_t> from_hex(const std::string& text) {
    const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; };
    std::size_t first = 0;
    std::size_t last = text.size();
    while (first < last && space(text[first])) {
        ++first;
    }
    while (last > first && space(text[last - 1])) {
        --last;
    }
    if ((last - first) % 2 != 0) {
        throw usage_error("hex input has an odd number of digits");
    }
    const auto digit = [](char c) -> int {
        if (c >= '0' && c <= '9') {
            return c - '0';
        }
        if (c >= 'a' && c <= 'f') {
            return c - 'a' + 10;
        }
        if (c >= 'A' && c <= 'F') {
            return c - 'A' + 10;
        }
        return -1;
    };
    std::vector<std::uint8_t> out;
    out.reserve((last - first) / 2);
    for (std::size_t i = first; i < last; i += 2) {
        const int hi = text[i] == '+' ? 0 : digit(text[i]);
        const int lo = digit(text[i + 1]);
        if (hi < 0 || lo < 0) {
            throw usage_error("bad hex: '" + text.substr(i, 2) + "' at offset " + std::to_string(i));
        }
        out.push_back(static_cast<std::uint8_t>(hi * 16 + lo));
    }
    return out;
}

/// Standard input must be UTF-8, as the reference reads it into a Rust String.
inline void check_utf8(const std::string& text) {
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    for (std::size_t i = 0; i < text.size();) {
        const std::size_t n = kvbm::detail::js::utf8_sequence(p + i, text.size() - i);
        if (n == 0) {
            throw usage_error("stream did not contain valid UTF-8 (byte offset " + std::to_string(i) + ")");
        }
        i += n;
    }
}

}  // namespace kvbm_wire
