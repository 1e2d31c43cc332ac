/// @file kvbm/policy.hpp
/// Event emission policies: which block registrations produce a `Create` (and later a
/// `Remove`). `AllEventsPolicy` (the default) emits for every block; `PowerOfTwoPolicy`
/// only for blocks at power-of-two positions in a range, a sparse sampling of the sequence
/// space that still lets the hub narrow a search. Users plug in their own type with a
/// `should_emit(const H&) const` member (the `EventEmissionPolicy` concept).
#pragma once

#include <kvbm/config.hpp>
#include <kvbm/events.hpp>
#include <kvbm/hash.hpp>

#include <bit>
#include <concepts>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

KVBM_NAMESPACE_BEGIN

/// A policy deciding whether the registration of a block with hash `h` emits events.
/// `should_emit` must be a pure function of the hash, callable concurrently from any
/// thread: the manager asks at registration time and lag recovery asks again later, and
/// both must get the same answer for the published stream to stay consistent.
template <class P, class H = PositionalLineageHash>
concept EventEmissionPolicy = SequenceHash<H> && std::copy_constructible<P> && requires(const P& p, const H& h) {
    { p.should_emit(h) } -> std::convertible_to<bool>;
};

/// Emits events for every block. The default policy (as in the reference).
struct AllEventsPolicy {
    template <SequenceHash H>
    [[nodiscard]] constexpr bool should_emit(const H& /*hash*/) const noexcept {
        return true;
    }
};

/// Emits events only for blocks whose position is a power of two within
/// `[min_position, max_position]`, both inclusive; the default range is [16, 65536]
/// (2^4 to 2^16), the reference's.
///
/// Unlike the reference, which accepts any range and then silently emits nothing, a range
/// that is empty (`min > max`) or whose bounds are not powers of two is rejected with
/// `std::invalid_argument` (a compile error when the policy is built in a constant
/// expression).
class PowerOfTwoPolicy {
public:
    static constexpr std::uint64_t default_min_position = 16;
    static constexpr std::uint64_t default_max_position = 65536;

    constexpr PowerOfTwoPolicy() noexcept = default;

    /// Throws std::invalid_argument unless both bounds are powers of two and min <= max.
    constexpr PowerOfTwoPolicy(std::uint64_t min_position, std::uint64_t max_position)
        : m_min(min_position), m_max(max_position) {
        if (!std::has_single_bit(min_position) || !std::has_single_bit(max_position)) {
            throw std::invalid_argument("kvbm::PowerOfTwoPolicy: bounds must be powers of two, got [" +
                                        std::to_string(min_position) + ", " + std::to_string(max_position) + "]");
        }
        if (min_position > max_position) {
            throw std::invalid_argument("kvbm::PowerOfTwoPolicy: empty range [" + std::to_string(min_position) + ", " +
                                        std::to_string(max_position) + "] (min > max)");
        }
    }

    [[nodiscard]] constexpr std::uint64_t min_position() const noexcept { return m_min; }
    [[nodiscard]] constexpr std::uint64_t max_position() const noexcept { return m_max; }

    /// True iff `min <= position <= max` and `position` is a power of two.
    [[nodiscard]] constexpr bool should_emit_position(std::uint64_t position) const noexcept {
        return position >= m_min && position <= m_max && std::has_single_bit(position);
    }

    template <SequenceHash H>
    [[nodiscard]] constexpr bool should_emit(const H& hash) const noexcept {
        return should_emit_position(static_cast<std::uint64_t>(hash.position()));
    }

    friend constexpr bool operator==(const PowerOfTwoPolicy&, const PowerOfTwoPolicy&) noexcept = default;

private:
    std::uint64_t m_min = default_min_position;
    std::uint64_t m_max = default_max_position;
};

/// Any EventEmissionPolicy behind one type, so the manager and the publisher need not be
/// templated on the policy. Copies share the wrapped policy (it is immutable); calls are as
/// thread-safe as the wrapped `should_emit` is const-correct. Default: AllEventsPolicy.
template <SequenceHash H = PositionalLineageHash>
class AnyEmissionPolicy {
public:
    AnyEmissionPolicy() noexcept : m_call(&call_all) {}

    template <class P>
    requires(!std::same_as<std::remove_cvref_t<P>, AnyEmissionPolicy> && EventEmissionPolicy<std::remove_cvref_t<P>, H>)
        AnyEmissionPolicy(P&& policy)  // NOLINT(google-explicit-constructor): a policy *is* an emission policy
    {
        using Stored = std::remove_cvref_t<P>;
        if constexpr (std::is_same_v<Stored, AllEventsPolicy>) {
            m_call = &call_all;  // no allocation, no indirection for the default
        } else {
            m_policy = std::make_shared<const Stored>(std::forward<P>(policy));
            m_call = &call<Stored>;
        }
    }

    [[nodiscard]] bool should_emit(const H& hash) const { return m_call(m_policy.get(), hash); }

private:
    using call_fn = bool (*)(const void*, const H&);

    static bool call_all(const void* /*policy*/, const H& /*hash*/) noexcept { return true; }
    template <class P>
    static bool call(const void* policy, const H& hash) {
        return static_cast<bool>(static_cast<const P*>(policy)->should_emit(hash));
    }

    std::shared_ptr<const void> m_policy;
    call_fn m_call;
};

KVBM_NAMESPACE_END
