// EventReleaseHandle: sends Remove(hash) exactly once, when destroyed or assigned over; a
// moved-from handle sends nothing; "no receivers" is ignored; the handle keeps the channel
// open so the Remove is not lost when the original sender goes first.
#include <kvbm/release.hpp>

#include <catch2/catch.hpp>

#include <type_traits>
#include <vector>

namespace bc = kvbm::broadcast;
using Hash = kvbm::PositionalLineageHash;
using Event = kvbm::KvCacheEvent<Hash>;
using Handle = kvbm::EventReleaseHandle<Hash>;

static_assert(!std::is_copy_constructible_v<Handle>);
static_assert(std::is_nothrow_move_constructible_v<Handle>);
static_assert(std::is_nothrow_destructible_v<Handle>);
static_assert(std::is_same_v<kvbm::EventReleaseHandle<>, Handle>);

namespace {
Hash h(std::uint64_t v) { return Hash::from_raw(kvbm::Uint128(v)); }
}  // namespace

TEST_CASE("destroying a handle sends Remove(hash) once", "[release]") {
    auto [tx, rx] = bc::channel<Event>(16);
    {
        Handle handle(h(5), tx);
        REQUIRE(handle.hash() == h(5));
        REQUIRE(rx.try_recv().is_empty());
    }
    auto r = rx.try_recv();
    REQUIRE(r.has_value());
    REQUIRE(*r == Event::remove(h(5)));
    REQUIRE(rx.try_recv().is_empty());
}

TEST_CASE("a moved-from handle sends nothing; the new owner sends once", "[release]") {
    auto [tx, rx] = bc::channel<Event>(16);
    {
        Handle a(h(1), tx);
        Handle b(std::move(a));
        REQUIRE(b.hash() == h(1));
        std::vector<Handle> owners;
        owners.push_back(std::move(b));
        owners.reserve(64);  // relocates: still no send
        REQUIRE(rx.try_recv().is_empty());
    }
    REQUIRE(*rx.try_recv() == Event::remove(h(1)));
    REQUIRE(rx.try_recv().is_empty());
}

TEST_CASE("assigning over a handle releases what it held", "[release]") {
    auto [tx, rx] = bc::channel<Event>(16);
    Handle a(h(1), tx);
    Handle b(h(2), tx);
    a = std::move(b);  // releases 1, now holds 2
    REQUIRE(*rx.try_recv() == Event::remove(h(1)));
    REQUIRE(rx.try_recv().is_empty());
    REQUIRE(a.hash() == h(2));
    { auto gone = std::move(a); }
    REQUIRE(*rx.try_recv() == Event::remove(h(2)));
}

TEST_CASE("no receivers is ignored", "[release]") {
    auto [tx, rx] = bc::channel<Event>(4);
    { auto gone = std::move(rx); }
    { Handle handle(h(3), tx); }  // must not throw or terminate
    SUCCEED();
}

TEST_CASE("a handle keeps the channel open after the original sender is gone", "[release]") {
    auto [tx, rx] = bc::channel<Event>(4);
    std::optional<Handle> handle;
    handle.emplace(h(9), tx);
    { auto gone = std::move(tx); }
    REQUIRE(rx.try_recv().is_empty());  // not closed: the handle still holds a sender
    handle.reset();
    REQUIRE(*rx.try_recv() == Event::remove(h(9)));
    REQUIRE(rx.try_recv().is_closed());
}
