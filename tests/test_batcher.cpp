// EventBatcher rules, driven with made-up time points (no sleeps): kind switch, max size,
// the periodic window timer (reset after every flush and expiry, not started by the first
// event), end of input, and the stable sort (creates ascending, removes descending).
#include <kvbm/batcher.hpp>
#include <kvbm/events_publisher.hpp>

#include "pipeline_hashes.hpp"
#include "recording_publisher.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

using kvbm::BatchingConfig;
using kvbm::BatchingMode;
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

// --- BatchingMode::eager: a batch also leaves when the input runs dry -----------------

TEST_CASE("the default mode is the reference's window; idle does nothing in it", "[batcher][eager]") {
    CHECK(BatchingConfig{}.mode == BatchingMode::window);
    CHECK(std::string(kvbm::to_string(BatchingMode::window)) == "window");
    CHECK(std::string(kvbm::to_string(BatchingMode::eager)) == "eager");

    std::vector<KvCacheEvents<>> out;
    EventBatcher<> b(BatchingConfig{10ms, 1024}, t0);
    b.push(create(1), t0 + 1ms, Collect{&out});
    CHECK_FALSE(b.idle(t0 + 1ms, Collect{&out}));
    CHECK(out.empty());
    CHECK(b.size() == 1);
    CHECK(b.deadline() == t0 + 10ms);  // untouched
    CHECK(b.expire(t0 + 10ms, Collect{&out}));
    CHECK(out.size() == 1);
}

TEST_CASE("eager: idle flushes the pending batch sorted and resets the timer", "[batcher][eager]") {
    std::vector<KvCacheEvents<>> out;
    EventBatcher<> b(BatchingConfig{10ms, 1024, BatchingMode::eager}, t0);
    CHECK_FALSE(b.idle(t0 + 1ms, Collect{&out}));  // nothing pending: no batch, timer untouched
    CHECK(b.deadline() == t0 + 10ms);
    CHECK(out.empty());

    for (const std::uint64_t pos : std::initializer_list<std::uint64_t>{3, 1, 2}) {
        b.push(create(pos), t0 + 2ms, Collect{&out});
    }
    CHECK(out.empty());  // a push alone never flushes below max size
    CHECK(b.idle(t0 + 2ms, Collect{&out}));
    REQUIRE(out.size() == 1);
    CHECK(out[0].kind == BatchKind::create);
    CHECK(positions(out[0]) == std::vector<std::uint64_t>{1, 2, 3});
    CHECK(b.empty());
    CHECK(b.deadline() == t0 + 12ms);

    for (const std::uint64_t pos : std::initializer_list<std::uint64_t>{1, 3, 2}) {
        b.push(remove(pos), t0 + 3ms, Collect{&out});
    }
    CHECK(b.idle(t0 + 3ms, Collect{&out}));
    REQUIRE(out.size() == 2);
    CHECK(out[1].kind == BatchKind::remove);
    CHECK(positions(out[1]) == std::vector<std::uint64_t>{3, 2, 1});
}

TEST_CASE("eager: under load the reference's rules still cut the batches", "[batcher][eager]") {
    std::vector<KvCacheEvents<>> out;
    EventBatcher<> b(BatchingConfig{10ms, 4, BatchingMode::eager}, t0);
    // One burst taken before the input runs dry: 6 creates, 3 removes, 1 create.
    for (std::uint64_t pos = 0; pos < 6; ++pos) {
        b.push(create(pos), t0, Collect{&out});
    }
    for (std::uint64_t pos = 0; pos < 3; ++pos) {
        b.push(remove(pos), t0, Collect{&out});
    }
    b.push(create(9), t0, Collect{&out});
    // The last flush was just now: the dry batch waits for the spacing (50 us by default).
    CHECK_FALSE(b.idle(t0, Collect{&out}));
    CHECK(b.deadline() == t0 + 50us);
    CHECK_FALSE(b.expire(t0 + 49us, Collect{&out}));
    CHECK(out.size() == 3);
    CHECK(b.expire(t0 + 50us, Collect{&out}));
    CHECK(out == std::vector<KvCacheEvents<>>{
                     KvCacheEvents<>::create({hash_at(0), hash_at(1), hash_at(2), hash_at(3)}),  // max size
                     KvCacheEvents<>::create({hash_at(4), hash_at(5)}),                          // kind switch
                     KvCacheEvents<>::remove({hash_at(2), hash_at(1), hash_at(0)}),              // kind switch
                     KvCacheEvents<>::create({hash_at(9)}),                                      // ran dry
                 });
    CHECK(b.deadline() == t0 + 50us + 10ms);  // a flush like any other: the window restarts

    // The timer still flushes a batch of an input that never runs dry.
    out.clear();
    b.push(create(1), t0 + 5ms, Collect{&out});
    CHECK_FALSE(b.expire(t0 + 10ms, Collect{&out}));
    CHECK(b.expire(t0 + 50us + 10ms, Collect{&out}));
    CHECK(out == std::vector<KvCacheEvents<>>{KvCacheEvents<>::create({hash_at(1)})});
}

TEST_CASE("eager: a negative spacing is refused; a kind switch or full batch clears a due dry flush",
          "[batcher][eager]") {
    CHECK_THROWS_AS((EventBatcher<>(BatchingConfig{10ms, 4, BatchingMode::eager, -1us}, t0)), std::invalid_argument);

    std::vector<KvCacheEvents<>> out;
    EventBatcher<> b(BatchingConfig{10ms, 2, BatchingMode::eager, 100us}, t0);
    b.push(create(1), t0, Collect{&out});
    CHECK(b.idle(t0, Collect{&out}));  // nothing sent yet: at once
    b.push(create(2), t0 + 10us, Collect{&out});
    CHECK_FALSE(b.idle(t0 + 10us, Collect{&out}));
    CHECK(b.deadline() == t0 + 100us);
    b.push(create(3), t0 + 20us, Collect{&out});  // full: flushed now, nothing left due
    REQUIRE(out.size() == 2);
    CHECK(b.deadline() == t0 + 20us + 10ms);
    CHECK_FALSE(b.expire(t0 + 100us, Collect{&out}));
    CHECK(out.size() == 2);
    b.push(create(4), t0 + 30us, Collect{&out});
    CHECK_FALSE(b.idle(t0 + 30us, Collect{&out}));  // spacing counts from the last flush (20 us)
    CHECK(b.deadline() == t0 + 120us);
    b.finish(Collect{&out});
    CHECK(out.size() == 3);
    CHECK(b.deadline() == t0 + 20us + 10ms);  // nothing due any more
}

namespace {

// The publisher's loop in miniature on a made-up clock: events arrive at given times in
// bursts; at each arrival time the loop takes the whole burst, then sees the input dry
// (idle), then looks at the timer on its next wake-up. Returns, per event, when its batch
// left.
std::vector<Clock::duration> leave_times(BatchingConfig config,
                                         const std::vector<std::pair<Clock::duration, int>>& bursts) {
    std::vector<Clock::duration> left;
    std::size_t pending = 0;
    Clock::time_point now = t0;
    const auto sink = [&](KvCacheEvents<>& batch) {
        for (std::size_t i = 0; i < batch.hashes.size(); ++i) {
            left.push_back(now - t0);
        }
        pending -= batch.hashes.size();
    };
    EventBatcher<> b(config, t0);
    std::uint64_t pos = 0;
    for (const auto& [at, count] : bursts) {
        while (b.deadline() <= t0 + at) {  // timer wake-ups before this arrival
            now = b.deadline();
            b.expire(now, sink);
        }
        now = t0 + at;
        for (int i = 0; i < count; ++i) {
            b.push(create(pos++), now, sink);
            ++pending;
        }
        b.idle(now, sink);
    }
    while (pending > 0) {
        now = b.deadline();
        b.expire(now, sink);
    }
    return left;
}

}  // namespace

TEST_CASE("eager: a quiet input's events leave at once; window mode holds them to the deadline", "[batcher][eager]") {
    const std::vector<std::pair<Clock::duration, int>> quiet{{1ms, 1}, {3ms, 2}, {14ms, 1}};
    CHECK(leave_times(BatchingConfig{10ms, 1024, BatchingMode::eager}, quiet) ==
          std::vector<Clock::duration>{1ms, 3ms, 3ms, 14ms});
    // The reference: the periodic timer (10 ms, 20 ms) decides.
    CHECK(leave_times(BatchingConfig{10ms, 1024, BatchingMode::window}, quiet) ==
          std::vector<Clock::duration>{10ms, 10ms, 10ms, 20ms});
}

TEST_CASE("EventsPublisher in eager mode publishes a lone event without waiting for the window",
          "[batcher][eager][publisher]") {
    auto log = std::make_shared<kvbm_test::PublishLog>();
    auto manager = std::make_shared<kvbm::EventsManager<>>();
    const kvbm::BlockRegistry<> registry(manager);
    kvbm::EventsPublisherSettings<> settings;
    settings.batching = BatchingConfig{std::chrono::hours(1), 1024, BatchingMode::eager};  // the window never ends
    const kvbm::InstanceId instance{5U};
    kvbm::EventsPublisher publisher(*manager, registry, kvbm_test::RecordingPublisher(log), instance,
                                    std::move(settings));
    const auto published = [&](std::size_t n) {
        return log->wait_until([&] { return log->calls.size() >= n; }, std::chrono::seconds(20));
    };
    {
        const auto handle = registry.register_hash(hash_at(0));
        REQUIRE(published(1));
        CHECK(log->snapshot()[0].message == kvbm::KvbmCacheEvents<>{KvCacheEvents<>::create({hash_at(0)}), instance});
    }
    REQUIRE(published(2));
    CHECK(log->snapshot()[1].message == kvbm::KvbmCacheEvents<>{KvCacheEvents<>::remove({hash_at(0)}), instance});
    CHECK(publisher.stop());
    CHECK(publisher.metrics().events_published == 2);
}

TEST_CASE("eager: under a steady trickle the spacing lets batches form", "[batcher][eager]") {
    // One event every 10 us for 200 us: a consumer faster than that finds the input dry
    // after every event.
    std::vector<std::pair<Clock::duration, int>> trickle;
    for (int i = 0; i < 20; ++i) {
        trickle.emplace_back(std::chrono::microseconds(10 * i), 1);
    }
    // Spacing 0: a batch per event, each leaving on arrival.
    std::vector<Clock::duration> at_once;
    for (const auto& [at, count] : trickle) {
        at_once.push_back(at);
    }
    CHECK(leave_times(BatchingConfig{10ms, 1024, BatchingMode::eager, 0us}, trickle) == at_once);
    // Spacing 50 us: the first leaves at once, then a batch every 50 us (1 + 4 + 5 + 5 + 5).
    std::vector<Clock::duration> spaced{0us};
    for (const auto leave : {50us, 100us, 150us, 200us}) {
        for (int i = 0; i < (leave == 50us ? 4 : 5); ++i) {
            spaced.emplace_back(leave);
        }
    }
    CHECK(leave_times(BatchingConfig{10ms, 1024, BatchingMode::eager, 50us}, trickle) == spaced);
}
