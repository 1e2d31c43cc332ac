/// @file kvbm/events.hpp
/// The event vocabulary of the kvbm protocol, templated on the hash type:
/// KvCacheEvent (one event, in-process), KvCacheEvents (a batch of one kind) and
/// KvbmCacheEvents (the wire message: a batch plus the sending instance's id).
#pragma once

#include <kvbm/config.hpp>
#include <kvbm/hash.hpp>
#include <kvbm/uint128.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <ostream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

KVBM_NAMESPACE_BEGIN

/// What a block identity must provide to travel in events: a regular value type with
/// std::hash and a position (batches are ordered by it).
template <class H>
concept SequenceHash = std::regular<H> && requires(const H& h) {
    { std::hash<H>{}(h) } -> std::convertible_to<std::size_t>;
    { h.position() } -> std::convertible_to<std::uint64_t>;
};

/// A SequenceHash that can be put on the wire: it converts to and from 128 raw bits.
template <class H>
concept WireSequenceHash = SequenceHash<H> && requires(const H& h, Uint128 raw) {
    { h.raw() } -> std::convertible_to<Uint128>;
    { H::from_raw(raw) } -> std::same_as<H>;
};

/// The kind of a single event.
enum class EventKind : std::uint8_t { create, remove };
/// The kind of a batch.
enum class BatchKind : std::uint8_t { create, remove, shutdown };

[[nodiscard]] constexpr const char* to_string(EventKind k) noexcept {
    return k == EventKind::create ? "Create" : "Remove";
}
[[nodiscard]] constexpr const char* to_string(BatchKind k) noexcept {
    switch (k) {
        case BatchKind::create:
            return "Create";
        case BatchKind::remove:
            return "Remove";
        case BatchKind::shutdown:
            return "Shutdown";
    }
    return "?";
}

/// One event of the in-process stream: a block was registered (`create`) or its last
/// registration ended (`remove`). Rust: `enum KvCacheEvent { Create(H), Remove(H) }`.
/// Trivially copyable when H is, so channels can move it without allocation.
template <SequenceHash H = PositionalLineageHash>
struct KvCacheEvent {
    using hash_type = H;

    EventKind kind = EventKind::create;
    H hash{};

    [[nodiscard]] static constexpr KvCacheEvent create(const H& h) noexcept { return {EventKind::create, h}; }
    [[nodiscard]] static constexpr KvCacheEvent remove(const H& h) noexcept { return {EventKind::remove, h}; }

    [[nodiscard]] constexpr bool is_create() const noexcept { return kind == EventKind::create; }
    [[nodiscard]] constexpr bool is_remove() const noexcept { return kind == EventKind::remove; }

    friend constexpr bool operator==(const KvCacheEvent&, const KvCacheEvent&) = default;
};

/// A batch of events of one kind, or the instance's shutdown notice.
/// Rust: `enum KvCacheEvents { Create(Vec<H>), Remove(Vec<H>), Shutdown }`.
/// By protocol convention creates are sorted by position ascending and removes
/// descending (the batcher does this); this type does not enforce it.
template <SequenceHash H = PositionalLineageHash>
struct KvCacheEvents {
    using hash_type = H;

    BatchKind kind = BatchKind::shutdown;
    /// Empty for shutdown.
    std::vector<H> hashes;

    [[nodiscard]] static KvCacheEvents create(std::vector<H> hs) { return {BatchKind::create, std::move(hs)}; }
    [[nodiscard]] static KvCacheEvents remove(std::vector<H> hs) { return {BatchKind::remove, std::move(hs)}; }
    [[nodiscard]] static KvCacheEvents shutdown() { return {BatchKind::shutdown, {}}; }

    friend bool operator==(const KvCacheEvents&, const KvCacheEvents&) = default;
};

/// The wire message: a batch and the id of the instance (worker) that sent it.
/// Field order matters on the wire (MessagePack array of 2: events, instance_id).
template <SequenceHash H = PositionalLineageHash>
struct KvbmCacheEvents {
    using hash_type = H;

    KvCacheEvents<H> events;
    InstanceId instance_id;

    friend bool operator==(const KvbmCacheEvents&, const KvbmCacheEvents&) = default;
};

namespace detail {
template <class H>
void print_hash(std::ostream& os, const H& h) {
    if constexpr (requires { os << h; }) {
        os << h;
    } else {
        os << '@' << h.position();
    }
}
}  // namespace detail

/// `Create(3:5Hn...:2Ab...)`
template <class H>
std::ostream& operator<<(std::ostream& os, const KvCacheEvent<H>& e) {
    os << to_string(e.kind) << '(';
    detail::print_hash(os, e.hash);
    return os << ')';
}

/// `Create[0:..., 1:...:...]` or `Shutdown`
template <class H>
std::ostream& operator<<(std::ostream& os, const KvCacheEvents<H>& e) {
    os << to_string(e.kind);
    if (e.kind == BatchKind::shutdown) {
        return os;
    }
    os << '[';
    for (std::size_t i = 0; i < e.hashes.size(); ++i) {
        if (i != 0) {
            os << ", ";
        }
        detail::print_hash(os, e.hashes[i]);
    }
    return os << ']';
}

/// `KvbmCacheEvents{instance_id=12345, events=Create[...]}`
template <class H>
std::ostream& operator<<(std::ostream& os, const KvbmCacheEvents<H>& e) {
    return os << "KvbmCacheEvents{instance_id=" << e.instance_id << ", events=" << e.events << '}';
}

/// Readable text of any event type (the same as operator<<).
template <class T>
requires requires(std::ostream& os, const T& t) { os << t; }
[[nodiscard]] std::string to_display_string(const T& value) {
    std::ostringstream os;
    os << value;
    return os.str();
}

KVBM_NAMESPACE_END
