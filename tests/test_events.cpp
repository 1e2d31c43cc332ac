// Event types: construction, equality, printing, and the SequenceHash concept.
#include <kvbm/events.hpp>

#include <catch2/catch.hpp>

#include <type_traits>

using kvbm::BatchKind;
using kvbm::KvbmCacheEvents;
using kvbm::KvCacheEvent;
using kvbm::KvCacheEvents;
using kvbm::PositionalLineageHash;

static_assert(kvbm::SequenceHash<PositionalLineageHash>);
static_assert(kvbm::WireSequenceHash<kvbm::PositionalLineageHashV14>);
static_assert(!kvbm::SequenceHash<int>);
static_assert(std::is_trivially_copyable_v<KvCacheEvent<>>);

namespace user_code {
// A user's own hash type: only what the concept asks for.
struct MyHash {
    std::uint64_t pos = 0;
    std::uint64_t id = 0;
    [[nodiscard]] std::uint64_t position() const { return pos; }
    friend bool operator==(const MyHash&, const MyHash&) = default;
};
}  // namespace user_code
using user_code::MyHash;
template <>
struct std::hash<MyHash> {
    std::size_t operator()(const MyHash& h) const noexcept { return h.id; }
};
static_assert(kvbm::SequenceHash<MyHash>);
static_assert(!kvbm::WireSequenceHash<MyHash>);

TEST_CASE("single events", "[events]") {
    const PositionalLineageHash h(42, std::nullopt, 0);
    const auto c = KvCacheEvent<>::create(h);
    const auto r = KvCacheEvent<>::remove(h);
    CHECK(c.is_create());
    CHECK(r.is_remove());
    CHECK(c != r);
    CHECK(c == KvCacheEvent<>::create(h));
    CHECK(kvbm::to_display_string(c) == "Create(" + h.to_string() + ")");
}

TEST_CASE("batches and wire messages", "[events]") {
    const PositionalLineageHash a(1, std::nullopt, 0);
    const PositionalLineageHash b(2, 1, 1);
    const KvbmCacheEvents<> msg{KvCacheEvents<>::create({a, b}), kvbm::InstanceId{12345U}};
    CHECK(msg == KvbmCacheEvents<>{KvCacheEvents<>::create({a, b}), kvbm::InstanceId{12345U}});
    CHECK(msg != KvbmCacheEvents<>{KvCacheEvents<>::remove({a, b}), kvbm::InstanceId{12345U}});
    CHECK(msg != KvbmCacheEvents<>{KvCacheEvents<>::create({b, a}), kvbm::InstanceId{12345U}});
    CHECK(msg != KvbmCacheEvents<>{KvCacheEvents<>::create({a, b}), kvbm::InstanceId{1U}});
    CHECK(kvbm::to_display_string(msg) ==
          "KvbmCacheEvents{instance_id=12345, events=Create[" + a.to_string() + ", " + b.to_string() + "]}");
    const KvbmCacheEvents<> bye{KvCacheEvents<>::shutdown(), kvbm::InstanceId::max()};
    CHECK(bye.events.kind == BatchKind::shutdown);
    CHECK(kvbm::to_display_string(bye) ==
          "KvbmCacheEvents{instance_id=340282366920938463463374607431768211455, events=Shutdown}");
}

TEST_CASE("events over a user-defined hash type", "[events]") {
    const KvCacheEvents<MyHash> batch = KvCacheEvents<MyHash>::remove({{3, 7}, {2, 8}});
    CHECK(batch.hashes.size() == 2);
    CHECK(kvbm::to_display_string(batch) == "Remove[@3, @2]");
}
