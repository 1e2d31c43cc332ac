// EventBatcher rules, driven with made-up time points (no sleeps): kind switch, max size,
// the periodic window timer (reset after every flush and expiry, not started by the first
// event), end of input, and the stable sort (creates ascending, removes descending).
#include <kvbm/batcher.hpp>

#include "pipeline_hashes.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <initializer_list>
#include <stdexcept>
#include <vector>

using kvbm::BatchingConfig;
using kvbm::BatchKind;
using kvbm::EventBatcher;
using kvbm::KvCacheEvent;
using kvbm::KvCacheEvents;
using kvbm::PositionalLineageHash;
using kvbm_test::hash_at;
using namespace std::chrono_literals;

namespace {

using Clock = std::chrono::steady_clock;
const Clock::time_point t0{};  // the epoch of the made-up clock

struct Collect {
    std::vector<KvCacheEvents<>>* out;
    void operator()(KvCacheEvents<>& batch) const { out->push_back(batch); }
};

KvCacheEvent<> create(std::uint64_t pos, std::uint64_t variant = 0) {
    return KvCacheEvent<>::create(hash_at(pos, variant));
}
KvCacheEvent<> remove(std::uint64_t pos, std::uint64_t variant = 0) {
    return KvCacheEvent<>::remove(hash_at(pos, variant));
}
std::vector<std::uint64_t> positions(const KvCacheEvents<>& batch) {
    std::vector<std::uint64_t> out;
    for (const auto& h : batch.hashes) {
        out.push_back(h.position());
    }
    return out;
}

}  // namespace

TEST_CASE("defaults are the reference's: 10 ms window, 1024 events", "[batcher]") {
    const BatchingConfig config;
    CHECK(config.window == 10ms);
    CHECK(config.max_batch_size == 1024);
    CHECK_THROWS_AS((EventBatcher<>(BatchingConfig{0ms, 4}, t0)), std::invalid_argument);
    CHECK_THROWS_AS((EventBatcher<>(BatchingConfig{10ms, 0}, t0)), std::invalid_argument);
}

TEST_CASE("creates are flushed sorted ascending, removes descending", "[batcher]") {
    std::vector<KvCacheEvents<>> out;
    EventBatcher<> b(BatchingConfig{}, t0);
    for (const std::uint64_t pos : std::initializer_list<std::uint64_t>{10, 5, 15, 0, 7}) {
        b.push(create(pos), t0 + 1ms, Collect{&out});
    }
    CHECK(out.empty());
    CHECK(b.size() == 5);
    CHECK(b.pending_kind() == kvbm::EventKind::create);
    b.finish(Collect{&out});
    REQUIRE(out.size() == 1);
    CHECK(out[0].kind == BatchKind::create);
    CHECK(positions(out[0]) == std::vector<std::uint64_t>{0, 5, 7, 10, 15});

    out.clear();
    for (const std::uint64_t pos : std::initializer_list<std::uint64_t>{10, 5, 15}) {
        b.push(remove(pos), t0 + 2ms, Collect{&out});
    }
    b.finish(Collect{&out});
    REQUIRE(out.size() == 1);
    CHECK(out[0].kind == BatchKind::remove);
    CHECK(positions(out[0]) == std::vector<std::uint64_t>{15, 10, 5});
}

TEST_CASE("the sort is stable: equal positions keep their arrival order", "[batcher]") {
    std::vector<KvCacheEvents<>> out;
    EventBatcher<> b(BatchingConfig{}, t0);
    b.push(create(4, 1), t0, Collect{&out});
    b.push(create(2, 1), t0, Collect{&out});
    b.push(create(4, 2), t0, Collect{&out});
    b.push(create(2, 2), t0, Collect{&out});
    b.finish(Collect{&out});
    REQUIRE(out.size() == 1);
    CHECK(out[0].hashes ==
          std::vector<PositionalLineageHash>{hash_at(2, 1), hash_at(2, 2), hash_at(4, 1), hash_at(4, 2)});

    out.clear();
    b.push(remove(2, 1), t0, Collect{&out});
    b.push(remove(4, 1), t0, Collect{&out});
    b.push(remove(2, 2), t0, Collect{&out});
    b.push(remove(4, 2), t0, Collect{&out});
    b.finish(Collect{&out});
    REQUIRE(out.size() == 1);
    CHECK(out[0].hashes ==
          std::vector<PositionalLineageHash>{hash_at(4, 1), hash_at(4, 2), hash_at(2, 1), hash_at(2, 2)});
}

TEST_CASE("a kind switch flushes the pending batch first", "[batcher]") {
    std::vector<KvCacheEvents<>> out;
    EventBatcher<> b(BatchingConfig{60s, 1024}, t0);
    b.push(create(10), t0, Collect{&out});
    b.push(create(11), t0, Collect{&out});
    b.push(remove(5), t0, Collect{&out});
    REQUIRE(out.size() == 1);
    CHECK(out[0] == KvCacheEvents<>::create({hash_at(10), hash_at(11)}));
    b.push(create(12), t0, Collect{&out});
    REQUIRE(out.size() == 2);
    CHECK(out[1] == KvCacheEvents<>::remove({hash_at(5)}));
    b.finish(Collect{&out});
    REQUIRE(out.size() == 3);
    CHECK(out[2] == KvCacheEvents<>::create({hash_at(12)}));
}

TEST_CASE("a batch reaching max size is flushed at once", "[batcher]") {
    std::vector<KvCacheEvents<>> out;
    EventBatcher<> b(BatchingConfig{60s, 3}, t0);
    for (std::uint64_t pos = 1; pos <= 5; ++pos) {
        b.push(create(pos), t0, Collect{&out});
    }
    REQUIRE(out.size() == 1);
    CHECK(positions(out[0]) == std::vector<std::uint64_t>{1, 2, 3});
    b.finish(Collect{&out});
    REQUIRE(out.size() == 2);
    CHECK(positions(out[1]) == std::vector<std::uint64_t>{4, 5});

    // max size 1: every event is its own batch
    out.clear();
    EventBatcher<> single(BatchingConfig{60s, 1}, t0);
    single.push(create(1), t0, Collect{&out});
    single.push(remove(1), t0, Collect{&out});
    CHECK(out ==
          std::vector<KvCacheEvents<>>{KvCacheEvents<>::create({hash_at(1)}), KvCacheEvents<>::remove({hash_at(1)})});
}

TEST_CASE("the window timer is periodic from construction, not started by the first event", "[batcher]") {
    std::vector<KvCacheEvents<>> out;
    EventBatcher<> b(BatchingConfig{10ms, 1024}, t0);
    CHECK(b.deadline() == t0 + 10ms);

    // An event at 9 ms is flushed at 10 ms, not at 19 ms.
    b.push(create(1), t0 + 9ms, Collect{&out});
    CHECK_FALSE(b.expire(t0 + 9ms + 999us, Collect{&out}));
    CHECK(out.empty());
    CHECK(b.expire(t0 + 10ms, Collect{&out}));
    REQUIRE(out.size() == 1);
    // Reset after the expiry: next deadline is now + window.
    CHECK(b.deadline() == t0 + 20ms);
}

TEST_CASE("an expiry with nothing pending still resets the timer", "[batcher]") {
    std::vector<KvCacheEvents<>> out;
    EventBatcher<> b(BatchingConfig{10ms, 1024}, t0);
    CHECK(b.expire(t0 + 13ms, Collect{&out}));  // late expiry: reset from when it was seen
    CHECK(out.empty());
    CHECK(b.deadline() == t0 + 23ms);
    b.push(create(1), t0 + 14ms, Collect{&out});
    CHECK_FALSE(b.expire(t0 + 22ms, Collect{&out}));
    CHECK(b.expire(t0 + 23ms, Collect{&out}));
    CHECK(out.size() == 1);
}

TEST_CASE("every flush resets the timer: kind switch and max size too", "[batcher]") {
    std::vector<KvCacheEvents<>> out;
    EventBatcher<> b(BatchingConfig{10ms, 2}, t0);
    b.push(create(1), t0 + 1ms, Collect{&out});
    b.push(remove(1), t0 + 8ms, Collect{&out});  // kind switch flush at 8 ms
    REQUIRE(out.size() == 1);
    CHECK(b.deadline() == t0 + 18ms);
    CHECK_FALSE(b.expire(t0 + 10ms, Collect{&out}));  // the old deadline is gone
    b.push(remove(2), t0 + 12ms, Collect{&out});      // reaches max: flush at 12 ms
    REQUIRE(out.size() == 2);
    CHECK(out[1] == KvCacheEvents<>::remove({hash_at(2), hash_at(1)}));
    CHECK(b.deadline() == t0 + 22ms);

    b.push(create(3), t0 + 13ms, Collect{&out});
    b.flush(t0 + 15ms, Collect{&out});  // explicit flush
    CHECK(out.size() == 3);
    CHECK(b.deadline() == t0 + 25ms);
}

TEST_CASE("end of input flushes what is pending, and nothing when empty", "[batcher]") {
    std::vector<KvCacheEvents<>> out;
    EventBatcher<> b(BatchingConfig{}, t0);
    b.finish(Collect{&out});
    CHECK(out.empty());
    b.push(remove(3), t0, Collect{&out});
    b.finish(Collect{&out});
    CHECK(out == std::vector<KvCacheEvents<>>{KvCacheEvents<>::remove({hash_at(3)})});
    CHECK(b.empty());
}

TEST_CASE("discard drops the pending events and resets the timer", "[batcher]") {
    std::vector<KvCacheEvents<>> out;
    EventBatcher<> b(BatchingConfig{10ms, 1024}, t0);
    b.push(create(1), t0, Collect{&out});
    b.push(create(2), t0, Collect{&out});
    CHECK(b.discard(t0 + 4ms) == 2);
    CHECK(b.empty());
    CHECK(b.deadline() == t0 + 14ms);
    b.finish(Collect{&out});
    CHECK(out.empty());
}

TEST_CASE("a sink may swap its previous batch in; the batcher clears and reuses it", "[batcher]") {
    KvCacheEvents<> held = KvCacheEvents<>::remove({hash_at(99), hash_at(98)});
    std::vector<KvCacheEvents<>> seen;
    auto swapping = [&](KvCacheEvents<>& batch) {
        std::swap(held, batch);
        seen.push_back(held);
    };
    EventBatcher<> b(BatchingConfig{60s, 2}, t0);
    b.push(create(1), t0, swapping);
    b.push(create(2), t0, swapping);
    b.push(create(3), t0, swapping);
    b.finish(swapping);
    REQUIRE(seen.size() == 2);
    CHECK(seen[0] == KvCacheEvents<>::create({hash_at(1), hash_at(2)}));
    CHECK(seen[1] == KvCacheEvents<>::create({hash_at(3)}));
}
