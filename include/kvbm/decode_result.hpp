/// @file kvbm/decode_result.hpp
/// The result of decoding untrusted bytes or text: a value, or where and why the input
/// was rejected. Shared by the MessagePack (<kvbm/msgpack.hpp>) and JSON (<kvbm/json.hpp>)
/// decoders, which never throw for bad input.
#pragma once

#include <kvbm/config.hpp>

#include <cassert>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

KVBM_NAMESPACE_BEGIN

/// Why and where a decoder rejected its input.
struct DecodeError {
    /// Byte offset into the input where the problem was found (for truncated input: its length).
    std::size_t offset = 0;
    /// What is wrong, naming the field when there is one, e.g.
    /// `events.Create[3]: expected bin8 of 16 bytes (c4 10), found uint16 (0xcd)`.
    std::string reason;

    /// `"offset N: reason"`.
    [[nodiscard]] std::string message() const { return "offset " + std::to_string(offset) + ": " + reason; }

    friend bool operator==(const DecodeError&, const DecodeError&) = default;
};

/// Thrown by DecodeResult::value() when there is no value (as std::expected does).
class BadDecodeResultAccess : public std::runtime_error {
public:
    explicit BadDecodeResultAccess(DecodeError error)
        : std::runtime_error("kvbm: decode failed: " + error.message()), m_error(std::move(error)) {}
    [[nodiscard]] const DecodeError& error() const noexcept { return m_error; }

private:
    DecodeError m_error;
};

/// A decoded value or a DecodeError, in the manner of C++23 std::expected<T, DecodeError>.
/// `if (auto r = decode(...)) use(*r); else log(r.error().message());`
/// operator* and operator-> require a value (checked by assert only); value() throws
/// BadDecodeResultAccess instead. Not thread-safe to mutate concurrently, like any value.
template <class T>
class [[nodiscard]] DecodeResult {
    static_assert(!std::is_reference_v<T> && !std::is_same_v<std::remove_cv_t<T>, DecodeError>);

public:
    using value_type = T;

    DecodeResult(T value) noexcept(std::is_nothrow_move_constructible_v<T>)  // NOLINT(google-explicit-constructor)
        : m_state(std::in_place_index<0>, std::move(value)) {}
    DecodeResult(DecodeError error) noexcept  // NOLINT(google-explicit-constructor)
        : m_state(std::in_place_index<1>, std::move(error)) {}

    [[nodiscard]] bool has_value() const noexcept { return m_state.index() == 0; }
    explicit operator bool() const noexcept { return has_value(); }

    [[nodiscard]] T& value() & {
        check();
        return *std::get_if<0>(&m_state);
    }
    [[nodiscard]] const T& value() const& {
        check();
        return *std::get_if<0>(&m_state);
    }
    [[nodiscard]] T&& value() && {
        check();
        return std::move(*std::get_if<0>(&m_state));
    }

    [[nodiscard]] T& operator*() & noexcept {
        assert(has_value());
        return *std::get_if<0>(&m_state);
    }
    [[nodiscard]] const T& operator*() const& noexcept {
        assert(has_value());
        return *std::get_if<0>(&m_state);
    }
    [[nodiscard]] T&& operator*() && noexcept {
        assert(has_value());
        return std::move(*std::get_if<0>(&m_state));
    }
    [[nodiscard]] T* operator->() noexcept {
        assert(has_value());
        return std::get_if<0>(&m_state);
    }
    [[nodiscard]] const T* operator->() const noexcept {
        assert(has_value());
        return std::get_if<0>(&m_state);
    }

    /// The error; requires !has_value() (checked by assert only).
    [[nodiscard]] const DecodeError& error() const noexcept {
        assert(!has_value());
        return *std::get_if<1>(&m_state);
    }

private:
    void check() const {
        if (!has_value()) {
            throw BadDecodeResultAccess(*std::get_if<1>(&m_state));
        }
    }

    std::variant<T, DecodeError> m_state;
};

KVBM_NAMESPACE_END
