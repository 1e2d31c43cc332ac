/// @file kvbm/json.hpp
/// nlohmann DOM adapters for the event types (target kvbm::json, needs nlohmann_json).
/// Includes <kvbm/json_text.hpp>, the exact serde_json text codec (kvbm::json::to_string,
/// append, parse_batch, parse_event), which needs no third-party header.
///
/// **DOM** (ADL `to_json` / `from_json`, for nlohmann::json, ordered_json or any basic_json):
/// a nlohmann number holds at most 64 bits, and the protocol's 128-bit values usually exceed
/// that. So that nothing is ever rounded, a value >= 2^64 is stored in the DOM as a *string*
/// of its decimal digits, and from_json accepts such strings (only for values >= 2^64) as
/// well as numbers. A DOM therefore does not dump() as serde's text when it holds big values:
/// use the exact text functions for the wire, or kvbm::json::parse_dom to read serde text into
/// a DOM losslessly. from_json rejects floating-point numbers (nlohmann::json::parse turns
/// integers above 2^64 into doubles, which have lost digits) with a type_error that says so.
/// Plain `j = value` / `j.get<T>()` use the flavour natural to the hash type
/// (kvbm::json::default_flavor_v: integer for the kvbm 1.2 layout, bytes for the 1.4 layout);
/// `kvbm::json::flavored<F>(value)` and `Flavored<T, F>` choose one explicitly. from_json also
/// reads a 16-byte binary value (what nlohmann::json::from_msgpack yields for the wire's
/// `c4 10` + 16 bytes) as a big-endian u128 in either flavour. DOM errors throw nlohmann's
/// type_error (302) or out_of_range (406), as nlohmann's own adapters do.
///
/// All functions are reentrant; thread-safe on distinct outputs.
#pragma once

#include <kvbm/config.hpp>
#include <kvbm/decode_result.hpp>
#include <kvbm/events.hpp>
#include <kvbm/hash.hpp>
#include <kvbm/json_text.hpp>
#include <kvbm/uint128.hpp>

#include <nlohmann/json.hpp>

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

namespace detail::js {

// --- DOM -------------------------------------------------------------------------------

/// A nlohmann::basic_json specialization (without naming nlohmann's detail namespace).
template <class J>
concept BasicJson = requires(const J& j) {
    typename J::object_t;
    typename J::array_t;
    typename J::string_t;
    typename J::number_unsigned_t;
    typename J::type_error;
    typename J::out_of_range;
    { j.is_number_unsigned() } -> std::convertible_to<bool>;
};

template <class J>
[[noreturn]] void throw_type_error(const J& j, const std::string& what) {
#if NLOHMANN_JSON_VERSION_MAJOR > 3 || (NLOHMANN_JSON_VERSION_MAJOR == 3 && NLOHMANN_JSON_VERSION_MINOR >= 11)
    throw J::type_error::create(302, "kvbm: " + what, &j);
#else
    throw J::type_error::create(302, "kvbm: " + what, j);
#endif
}

template <class J>
[[noreturn]] void throw_out_of_range(const J& j, const std::string& what) {
#if NLOHMANN_JSON_VERSION_MAJOR > 3 || (NLOHMANN_JSON_VERSION_MAJOR == 3 && NLOHMANN_JSON_VERSION_MINOR >= 11)
    throw J::out_of_range::create(406, "kvbm: " + what, &j);
#else
    throw J::out_of_range::create(406, "kvbm: " + what, j);
#endif
}

template <BasicJson J>
void put_u128(J& j, const Uint128& v) {
    if (v.fits_u64()) {
        j = static_cast<typename J::number_unsigned_t>(v.low());
    } else {
        j = typename J::string_t(v.to_string());  // lossless: a DOM number holds 64 bits
    }
}

template <BasicJson J>
bool get_binary16(const J& j, Uint128& v) {
    if (!j.is_binary() || j.get_binary().size() != 16) {
        return false;
    }
    std::array<std::uint8_t, 16> bytes{};
    std::copy_n(j.get_binary().begin(), 16, bytes.begin());
    v = Uint128::from_be_bytes(bytes);
    return true;
}

template <BasicJson J>
Uint128 get_u128(const J& j, const char* what) {
    Uint128 v;
    if (j.is_number_unsigned()) {
        return Uint128{static_cast<std::uint64_t>(j.template get<typename J::number_unsigned_t>())};
    }
    if (j.is_number_integer()) {
        const auto i = j.template get<typename J::number_integer_t>();
        if (i < 0) {
            throw_out_of_range(j, std::string(what) + ": negative number, expected an unsigned 128-bit integer");
        }
        return Uint128{static_cast<std::uint64_t>(i)};
    }
    if (j.is_string()) {
        const auto& s = j.template get_ref<const typename J::string_t&>();
        const auto r = kvbm::from_chars(s.data(), s.data() + s.size(), v, 10);
        if (r.ec == std::errc::result_out_of_range) {
            throw_out_of_range(j, std::string(what) + ": number out of range (>= 2^128)");
        }
        if (r.ec != std::errc{} || r.ptr != s.data() + s.size() || s[0] == '0' || v.fits_u64()) {
            throw_type_error(j, std::string(what) +
                                    ": a string must hold the decimal digits of a value >= 2^64 "
                                    "(smaller values are JSON numbers)");
        }
        return v;
    }
    if (get_binary16(j, v)) {
        return v;
    }
    if (j.is_number_float()) {
        throw_type_error(j, std::string(what) +
                                ": a floating-point number cannot hold a 128-bit integer exactly (a DOM from "
                                "nlohmann::json::parse has rounded integers above 2^64: use kvbm::json::parse_dom "
                                "or kvbm::json::parse_batch)");
    }
    throw_type_error(j, std::string(what) + ": type must be an unsigned integer, but is " + j.type_name());
}

template <JsonFlavor F, BasicJson J>
void put_hash(J& j, const Uint128& v) {
    if constexpr (F == JsonFlavor::kvbm_1_2) {
        put_u128(j, v);
    } else {
        j = J::array();
        for (const std::uint8_t b : v.to_be_bytes()) {
            j.push_back(static_cast<typename J::number_unsigned_t>(b));
        }
    }
}

template <JsonFlavor F, BasicJson J>
Uint128 get_hash(const J& j, const char* what) {
    if constexpr (F == JsonFlavor::kvbm_1_2) {
        return get_u128(j, what);
    } else {
        Uint128 v;
        if (get_binary16(j, v)) {
            return v;
        }
        std::array<std::uint8_t, 16> bytes{};
        if (j.is_string()) {  // serde's deserialize_bytes takes a string's bytes
            const auto& s = j.template get_ref<const typename J::string_t&>();
            if (s.size() != 16) {
                throw_type_error(
                    j, std::string(what) + ": invalid length " + std::to_string(s.size()) + ", expected 16 bytes");
            }
            std::memcpy(bytes.data(), s.data(), 16);
            return Uint128::from_be_bytes(bytes);
        }
        if (!j.is_array()) {
            throw_type_error(j, std::string(what) + ": type must be an array of 16 bytes, but is " + j.type_name());
        }
        if (j.size() != 16) {
            throw_type_error(
                j, std::string(what) + ": invalid length " + std::to_string(j.size()) + ", expected 16 bytes");
        }
        for (std::size_t i = 0; i < 16; ++i) {
            const J& e = j[i];
            const bool ok_u = e.is_number_unsigned() && e.template get<typename J::number_unsigned_t>() <= 255;
            const bool ok_i = e.is_number_integer() && e.template get<typename J::number_integer_t>() >= 0 &&
                              e.template get<typename J::number_integer_t>() <= 255;
            if (!ok_u && !ok_i) {
                throw_out_of_range(e, std::string(what) + "[" + std::to_string(i) + "]: expected an integer 0..255");
            }
            bytes[i] = static_cast<std::uint8_t>(e.template get<std::uint64_t>());
        }
        return Uint128::from_be_bytes(bytes);
    }
}

template <JsonFlavor F, BasicJson J, class H>
void put_event(J& j, const KvCacheEvent<H>& e) {
    J hash;
    put_hash<F>(hash, e.hash.raw());
    j = J::object();
    j[e.kind == EventKind::create ? "Create" : "Remove"] = std::move(hash);
}

template <JsonFlavor F, BasicJson J, class H>
void put_events(J& j, const KvCacheEvents<H>& e) {
    if (e.kind == BatchKind::shutdown) {
        j = "Shutdown";
        return;
    }
    J list = J::array();
    for (const H& h : e.hashes) {
        J x;
        put_hash<F>(x, h.raw());
        list.push_back(std::move(x));
    }
    j = J::object();
    j[e.kind == BatchKind::create ? "Create" : "Remove"] = std::move(list);
}

template <JsonFlavor F, BasicJson J, class H>
void put_batch(J& j, const KvbmCacheEvents<H>& b) {
    J events;
    put_events<F>(events, b.events);
    J id;
    put_u128(id, b.instance_id);
    j = J::object();
    j["events"] = std::move(events);
    j["instance_id"] = std::move(id);
}

/// The one entry of an enum object, or throws.
template <BasicJson J>
std::pair<std::string, const J*> enum_entry(const J& j, const char* what) {
    if (!j.is_object() || j.size() != 1) {
        throw_type_error(j, std::string(what) + ": expected an object with exactly one variant, but is " +
                                (j.is_object() ? "an object of " + std::to_string(j.size()) + " entries"
                                               : std::string(j.type_name())));
    }
    const auto it = j.begin();
    return {std::string(it.key()), &it.value()};
}

template <JsonFlavor F, BasicJson J, class H>
void get_event(const J& j, KvCacheEvent<H>& e) {
    const auto [name, value] = enum_entry(j, "KvCacheEvent");
    if (name != "Create" && name != "Remove") {
        throw_type_error(j, "KvCacheEvent: unknown variant `" + name + "`, expected `Create` or `Remove`");
    }
    e.kind = name == "Create" ? EventKind::create : EventKind::remove;
    e.hash = H::from_raw(get_hash<F>(*value, name.c_str()));
}

template <JsonFlavor F, BasicJson J, class H>
void get_events(const J& j, KvCacheEvents<H>& e) {
    if (j.is_string()) {
        const auto& s = j.template get_ref<const typename J::string_t&>();
        if (s == "Shutdown") {
            e.kind = BatchKind::shutdown;
            e.hashes.clear();
            return;
        }
        throw_type_error(j, s == "Create" || s == "Remove" ? "events: `" + std::string(s) + "` needs a list of hashes"
                                                           : "events: unknown variant `" + std::string(s) +
                                                                 "`, expected one of `Create`, `Remove`, `Shutdown`");
    }
    const auto [name, value] = enum_entry(j, "events");
    if (name == "Shutdown") {
        if (!value->is_null()) {
            throw_type_error(*value, "events.Shutdown: expected null");
        }
        e.kind = BatchKind::shutdown;
        e.hashes.clear();
        return;
    }
    if (name != "Create" && name != "Remove") {
        throw_type_error(j, "events: unknown variant `" + name + "`, expected one of `Create`, `Remove`, `Shutdown`");
    }
    if (!value->is_array()) {
        throw_type_error(*value, "events." + name + ": type must be an array of hashes, but is " + value->type_name());
    }
    e.kind = name == "Create" ? BatchKind::create : BatchKind::remove;
    e.hashes.clear();
    e.hashes.reserve(value->size());
    const std::string what = "events." + name;
    for (const J& h : *value) {
        e.hashes.push_back(H::from_raw(get_hash<F>(h, what.c_str())));
    }
}

template <JsonFlavor F, BasicJson J, class H>
void get_batch(const J& j, KvbmCacheEvents<H>& b) {
    if (j.is_array()) {  // serde accepts a struct as the sequence of its fields
        if (j.size() != 2) {
            throw_type_error(j, "KvbmCacheEvents: invalid length " + std::to_string(j.size()) + ", expected 2");
        }
        get_events<F>(j[0], b.events);
        b.instance_id = get_u128(j[1], "instance_id");
        return;
    }
    if (!j.is_object()) {
        throw_type_error(j, std::string("KvbmCacheEvents: type must be an object, but is ") + j.type_name());
    }
    const auto events = j.find("events");
    const auto id = j.find("instance_id");
    if (events == j.end()) {
        throw_type_error(j, "KvbmCacheEvents: missing field `events`");
    }
    if (id == j.end()) {
        throw_type_error(j, "KvbmCacheEvents: missing field `instance_id`");
    }
    get_events<F>(*events, b.events);
    b.instance_id = get_u128(*id, "instance_id");
}

/// nlohmann SAX handler building a DOM in which integers that do not fit in 64 bits become
/// decimal strings (the DOM convention above) instead of doubles.
template <BasicJson J>
class LosslessDomBuilder {
public:
    using number_integer_t = typename J::number_integer_t;
    using number_unsigned_t = typename J::number_unsigned_t;
    using number_float_t = typename J::number_float_t;
    using string_t = typename J::string_t;
    using binary_t = typename J::binary_t;

    explicit LosslessDomBuilder(J& root) : m_root(root) {}

    bool null() { return put(J(nullptr)); }
    bool boolean(bool v) { return put(J(v)); }
    bool number_integer(number_integer_t v) { return put(J(v)); }
    bool number_unsigned(number_unsigned_t v) { return put(J(v)); }
    bool number_float(number_float_t v, const string_t& text) {
        const bool integer = !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return is_digit(c); });
        return integer ? put(J(text)) : put(J(v));
    }
    bool string(string_t& v) { return put(J(std::move(v))); }
    bool binary(binary_t& v) { return put(J(v)); }
    bool start_object(std::size_t) { return open(J::object()); }
    bool key(string_t& k) {
        m_key = std::move(k);
        return true;
    }
    bool end_object() { return close(); }
    bool start_array(std::size_t) { return open(J::array()); }
    bool end_array() { return close(); }
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) {
        m_error = e.what();
        return false;
    }
    [[nodiscard]] const std::string& error() const noexcept { return m_error; }

private:
    J* place(J&& v) {
        if (m_stack.empty()) {
            m_root = std::move(v);
            return &m_root;
        }
        J& parent = *m_stack.back();
        if (parent.is_array()) {
            parent.push_back(std::move(v));
            return &parent.back();
        }
        J& slot = parent[m_key];
        slot = std::move(v);
        return &slot;
    }
    bool put(J&& v) {
        place(std::move(v));
        return true;
    }
    bool open(J&& v) {
        m_stack.push_back(place(std::move(v)));
        return true;
    }
    bool close() {
        m_stack.pop_back();
        return true;
    }

    J& m_root;
    std::vector<J*> m_stack;
    string_t m_key;
    std::string m_error;
};

/// Dispatch of kvbm::json::Flavored's ADL functions on the wrapped type.
template <JsonFlavor F, class J, class T>
void put_any(J& j, const T& v) {
    if constexpr (std::is_same_v<T, Uint128>) {
        put_u128(j, v);
    } else if constexpr (WireSequenceHash<T>) {
        put_hash<F>(j, v.raw());
    } else if constexpr (requires {
                             v.hash.raw();
                             v.kind;
                         }) {
        put_event<F>(j, v);
    } else if constexpr (requires { v.hashes; }) {
        put_events<F>(j, v);
    } else {
        put_batch<F>(j, v);
    }
}
template <JsonFlavor F, class J, class T>
void get_any(const J& j, T& v) {
    if constexpr (std::is_same_v<T, Uint128>) {
        v = get_u128(j, "value");
    } else if constexpr (WireSequenceHash<T>) {
        v = T::from_raw(get_hash<F>(j, "hash"));
    } else if constexpr (requires {
                             v.hash.raw();
                             v.kind;
                         }) {
        get_event<F>(j, v);
    } else if constexpr (requires { v.hashes; }) {
        get_events<F>(j, v);
    } else {
        get_batch<F>(j, v);
    }
}
}  // namespace detail::js

namespace json {

/// Parses any JSON text into a DOM like J::parse, except that integers beyond 64 bits
/// become decimal strings (read back exactly by from_json) instead of rounded doubles.
/// Throws what J::parse throws (J::parse_error) for invalid JSON.
template <detail::js::BasicJson J = nlohmann::json>
[[nodiscard]] J parse_dom(std::string_view text) {
    J root;
    detail::js::LosslessDomBuilder<J> builder(root);
    if (!J::sax_parse(text.begin(), text.end(), &builder)) {
        [[maybe_unused]] const J reparsed = J::parse(text.begin(), text.end());  // throws J::parse_error
        throw std::invalid_argument("kvbm::json::parse_dom: " + builder.error());
    }
    return root;
}

// --- DOM: flavour ----------------------------------------------------------------------

/// The flavour plain `to_json` / `from_json` use for events of hash type H: the kvbm 1.4
/// layout only exists in releases that write hashes as bytes; everything else (the default
/// kvbm 1.2 layout, user hash types) as integers. Specialize for your own hash type.
template <class H>
inline constexpr JsonFlavor default_flavor_v = JsonFlavor::kvbm_1_2;
template <>
inline constexpr JsonFlavor default_flavor_v<PositionalLineageHashV14> = JsonFlavor::kvbm_1_3;

/// A value with an explicit flavour for nlohmann's ADL: `j = kvbm::json::flavored<F>(batch)`,
/// `j.get<kvbm::json::Flavored<KvbmCacheEvents<>, F>>().value`. T may be a const reference
/// (for to_json only).
template <class T, JsonFlavor F>
struct Flavored {
    T value;
};

template <JsonFlavor F, class T>
[[nodiscard]] Flavored<const T&, F> flavored(const T& value) noexcept {
    return {value};
}

template <detail::js::BasicJson J, class T, JsonFlavor F>
void to_json(J& j, const Flavored<T, F>& f) {
    detail::js::put_any<F>(j, static_cast<const std::remove_cvref_t<T>&>(f.value));
}

template <detail::js::BasicJson J, class T, JsonFlavor F>
requires(!std::is_reference_v<T>) void from_json(const J& j, Flavored<T, F>& f) { detail::js::get_any<F>(j, f.value); }

}  // namespace json

// --- DOM: ADL for the plain types (found by nlohmann through kvbm's namespace) ----------

/// Uint128 / InstanceId: a JSON number when < 2^64, else a string of decimal digits.
template <detail::js::BasicJson J>
void to_json(J& j, const Uint128& v) {
    detail::js::put_u128(j, v);
}
template <detail::js::BasicJson J>
void from_json(const J& j, Uint128& v) {
    v = detail::js::get_u128(j, "u128");
}

/// A PLH in the flavour of its layout (integer for kvbm 1.2, 16 bytes for kvbm 1.4).
template <detail::js::BasicJson J, PlhLayout L>
void to_json(J& j, const BasicPositionalLineageHash<L>& h) {
    detail::js::put_hash<json::default_flavor_v<BasicPositionalLineageHash<L>>>(j, h.raw());
}
template <detail::js::BasicJson J, PlhLayout L>
void from_json(const J& j, BasicPositionalLineageHash<L>& h) {
    h = BasicPositionalLineageHash<L>::from_raw(
        detail::js::get_hash<json::default_flavor_v<BasicPositionalLineageHash<L>>>(j, "hash"));
}

template <detail::js::BasicJson J, WireSequenceHash H>
void to_json(J& j, const KvCacheEvent<H>& e) {
    detail::js::put_event<json::default_flavor_v<H>>(j, e);
}
template <detail::js::BasicJson J, WireSequenceHash H>
void from_json(const J& j, KvCacheEvent<H>& e) {
    detail::js::get_event<json::default_flavor_v<H>>(j, e);
}

template <detail::js::BasicJson J, WireSequenceHash H>
void to_json(J& j, const KvCacheEvents<H>& e) {
    detail::js::put_events<json::default_flavor_v<H>>(j, e);
}
template <detail::js::BasicJson J, WireSequenceHash H>
void from_json(const J& j, KvCacheEvents<H>& e) {
    detail::js::get_events<json::default_flavor_v<H>>(j, e);
}

template <detail::js::BasicJson J, WireSequenceHash H>
void to_json(J& j, const KvbmCacheEvents<H>& b) {
    detail::js::put_batch<json::default_flavor_v<H>>(j, b);
}
template <detail::js::BasicJson J, WireSequenceHash H>
void from_json(const J& j, KvbmCacheEvents<H>& b) {
    detail::js::get_batch<json::default_flavor_v<H>>(j, b);
}

KVBM_NAMESPACE_END
