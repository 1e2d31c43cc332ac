// Lag recovery: with a tiny channel and a stalled or slow transport the subscription loses
// events; the publisher publishes Shutdown and re-announces the live registrations, and a
// model hub fed by the published bytes ends equal to the registry's truth. Without
// recovery (the reference's behaviour) the same run leaves the hub wrong.
#include <kvbm/events_publisher.hpp>

#include "pipeline_hashes.hpp"
#include "recording_publisher.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <vector>

using kvbm::BatchingConfig;
using kvbm::BlockRegistrationHandle;
using kvbm::BlockRegistry;
using kvbm::EventsManager;
using kvbm::EventsManagerSettings;
using kvbm::EventsPublisher;
using kvbm::EventsPublisherSettings;
using kvbm::PositionalLineageHash;
using kvbm_test::hash_at;
using kvbm_test::ModelHub;
using kvbm_test::PublishLog;
using kvbm_test::raw_set;
using kvbm_test::RecordingPublisher;
using namespace std::chrono_literals;

namespace {

const kvbm::InstanceId instance{0xABCDEFU};

// The hub's view after every message published so far.
ModelHub hub_from(PublishLog& log) {
    ModelHub hub{instance, {}};
    for (const auto& call : log.snapshot()) {
        if (!call.is_flush) {
            hub.apply(call.message);
        }
    }
    return hub;
}

bool published_remove_of(PublishLog& log, const PositionalLineageHash& h) {  // call under log.mutex
    return std::any_of(log.calls.begin(), log.calls.end(), [&](const kvbm_test::Call& c) {
        return !c.is_flush && c.message.events.kind == kvbm::BatchKind::remove &&
               std::find(c.message.events.hashes.begin(), c.message.events.hashes.end(), h) !=
                   c.message.events.hashes.end();
    });
}

// Registers and releases a hash nobody else uses, then waits until its Remove is
// published. Remove comes only from the stream (a resync only creates), and it is the last
// event sent, so afterwards the worker has taken every event sent before. A resync that is
// pending (spaced by its backoff) skips the events it will cover, the sentinel's too: then
// another sentinel is tried (the producers are quiet, so one goes through once the resync
// is done). With a long window the Remove batch is pushed out by a kind switch: a second
// fresh hash is registered and returned (keep it alive, and leave it out of the comparison:
// its Create may still be pending, or may have been published by a resync that ran after
// it was registered).
std::optional<BlockRegistrationHandle<>> sync_through(const BlockRegistry<>& registry, PublishLog& log,
                                                      std::uint64_t variant, bool kind_switch = false) {
    for (std::uint64_t attempt = 0; attempt < 60; ++attempt) {
        const auto sentinel = hash_at(16, 1000 + variant * 100 + attempt);  // position 16: every policy emits it
        { auto s = registry.register_hash(sentinel); }
        std::optional<BlockRegistrationHandle<>> pusher;
        if (kind_switch) {
            pusher = registry.register_hash(hash_at(16, 20000 + variant * 100 + attempt));
        }
        if (log.wait_until([&] { return published_remove_of(log, sentinel); }, 2s)) {
            return pusher;
        }
    }
    FAIL("no sentinel's Remove was published");
    return std::nullopt;
}

std::set<kvbm::Uint128> truth(const BlockRegistry<>& registry, const kvbm::AnyEmissionPolicy<>& policy) {
    auto live = registry.snapshot();
    std::erase_if(live, [&](const PositionalLineageHash& h) { return !policy.should_emit(h); });
    return raw_set(live);
}

std::set<kvbm::Uint128> without(std::set<kvbm::Uint128> set, const std::optional<BlockRegistrationHandle<>>& h) {
    if (h) {
        set.erase(h->hash().raw());
    }
    return set;
}

// While the transport is stuck in its first publish, a fixed churn overruns the 4-event
// channel: 32 blocks registered early and kept, then 2000 random registrations/releases.
// The stuck publish is of a batch flushed by the 10 ms timer, so the worker notices the
// lag waiting for the next event; or (full_batch) of a batch of 16 flushed for reaching
// the max size while the worker was taking ready events, so it notices the lag there.
struct StalledRun {
    std::shared_ptr<PublishLog> log = std::make_shared<PublishLog>();
    std::shared_ptr<EventsManager<>> manager;
    BlockRegistry<> registry;
    std::optional<EventsPublisher<RecordingPublisher>> publisher;
    std::vector<BlockRegistrationHandle<>> kept;
    std::vector<std::optional<BlockRegistrationHandle<>>> churn =
        std::vector<std::optional<BlockRegistrationHandle<>>>(64);

    StalledRun(kvbm::AnyEmissionPolicy<> policy, bool recover, bool full_batch = false)
        : manager(std::make_shared<EventsManager<>>(EventsManagerSettings<>{std::move(policy), 4})), registry(manager) {
        EventsPublisherSettings<> settings;
        settings.batching = BatchingConfig{full_batch ? 60s : 10ms, 16};
        if (recover) {
            publisher.emplace(*manager, registry, RecordingPublisher(log), instance, settings);
        } else {
            publisher.emplace(manager->subscribe(), RecordingPublisher(log), instance, settings);
        }
        log->set_gate(false);
        for (std::uint64_t i = 0; i < (full_batch ? 16U : 1U); ++i) {
            kept.push_back(registry.register_hash(hash_at(1 + i, 99)));
        }
        REQUIRE(log->wait_until([&] { return log->waiting_at_gate == 1; }));  // stuck in publish
        for (std::uint64_t i = 0; i < 32; ++i) {
            kept.push_back(registry.register_hash(hash_at(i, 1)));
        }
        std::mt19937_64 rng(42);
        for (int i = 0; i < 2000; ++i) {
            const auto slot = rng() % churn.size();
            if (churn[slot]) {
                churn[slot].reset();
            } else {
                churn[slot] = registry.register_hash(hash_at(slot % 40, 2 + slot / 40));
            }
        }
        log->set_gate(true);
    }
};

}  // namespace

TEST_CASE("after forced lag the hub converges to the registry's truth", "[lag]") {
    StalledRun run(kvbm::AllEventsPolicy{}, true);
    sync_through(run.registry, *run.log, 0);
    const auto m = run.publisher->metrics();
    CHECK(m.recoveries >= 1);
    CHECK(m.lag_reports == m.recoveries);
    CHECK(m.lag_events > 0);
    CHECK(m.events_reannounced >= run.kept.size());
    CHECK(run.manager->lagged_events() == m.lag_events);
    const auto expected = truth(run.registry, run.manager->policy());
    CHECK(expected.size() >= run.kept.size());
    CHECK(hub_from(*run.log).held == expected);

    // The recovery is Shutdown then Creates sorted by position, right after the lag.
    const auto calls = run.log->snapshot();
    const auto shutdown = std::find_if(calls.begin(), calls.end(), [](const kvbm_test::Call& c) {
        return !c.is_flush && c.message.events.kind == kvbm::BatchKind::shutdown;
    });
    REQUIRE(shutdown != calls.end());
    REQUIRE(shutdown + 1 != calls.end());
    const auto& first_reannounce = (shutdown + 1)->message.events;
    CHECK(first_reannounce.kind == kvbm::BatchKind::create);
    CHECK(first_reannounce.hashes.size() == 16);  // max batch size
    CHECK(std::is_sorted(first_reannounce.hashes.begin(), first_reannounce.hashes.end(),
                         [](const auto& a, const auto& b) { return a.position() < b.position(); }));

    // And it stays right as the stream goes on.
    run.kept.erase(run.kept.begin() + 10, run.kept.end());
    run.churn.clear();
    sync_through(run.registry, *run.log, 1);
    CHECK(hub_from(*run.log).held == truth(run.registry, run.manager->policy()));
    CHECK(run.publisher->stop());
    CHECK(run.log->snapshot().back().is_flush);
}

TEST_CASE("a lag noticed while taking ready events is recovered from too", "[lag]") {
    StalledRun run(kvbm::AllEventsPolicy{}, true, true);
    const auto pusher = sync_through(run.registry, *run.log, 0, true);
    const auto m = run.publisher->metrics();
    CHECK(m.recoveries >= 1);
    CHECK(m.lag_events > 0);
    CHECK(without(hub_from(*run.log).held, pusher) == without(truth(run.registry, run.manager->policy()), pusher));
}

TEST_CASE("lag recovery re-announces only what the policy allows", "[lag]") {
    StalledRun run(kvbm::PowerOfTwoPolicy(1, 32), true);
    sync_through(run.registry, *run.log, 0);
    CHECK(run.publisher->metrics().recoveries >= 1);
    const auto expected = truth(run.registry, run.manager->policy());
    CHECK(expected.size() < run.registry.snapshot().size());
    CHECK_FALSE(expected.empty());
    CHECK(hub_from(*run.log).held == expected);
}

TEST_CASE("without recovery (the reference's behaviour) the same lag leaves the hub wrong", "[lag]") {
    StalledRun run(kvbm::AllEventsPolicy{}, false);
    sync_through(run.registry, *run.log, 0);
    CHECK(run.publisher->metrics().lag_reports >= 1);  // lag seen and counted
    CHECK(run.publisher->metrics().recoveries == 0);
    CHECK(run.publisher->metrics().events_reannounced == 0);
    CHECK(hub_from(*run.log).held != truth(run.registry, run.manager->policy()));
}

TEST_CASE("concurrent churn through a tiny channel and a slow transport converges", "[lag][concurrency]") {
    auto log = std::make_shared<PublishLog>();
    log->publish_delay = 200us;
    auto manager = std::make_shared<EventsManager<>>(EventsManagerSettings<>{{}, 8});
    const BlockRegistry<> registry(manager);
    EventsPublisherSettings<> settings;
    settings.batching = BatchingConfig{1ms, 8};
    EventsPublisher publisher(*manager, registry, RecordingPublisher(log), instance, settings);

    // The transport is held shut for the first half of thread 0's churn, so the channel of 8
    // overflows by construction (not by luck of scheduling); after that the threads race it.
    log->set_gate(false);
    constexpr int threads = 3;
    std::vector<std::vector<BlockRegistrationHandle<>>> held(threads);
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&registry, &log, &mine = held[static_cast<std::size_t>(t)], t] {
            std::mt19937_64 rng(static_cast<std::uint64_t>(t) + 7);
            for (int i = 0; i < 3000; ++i) {
                if (t == 0 && i == 1500) {
                    log->set_gate(true);
                }
                // A shared pool of hashes: threads re-register each other's blocks.
                mine.push_back(registry.register_hash(hash_at(rng() % 24, rng() % 4)));
                if (mine.size() > 20 || rng() % 3 != 0) {
                    mine.erase(mine.begin() + static_cast<std::ptrdiff_t>(rng() % mine.size()));
                }
            }
        });
    }
    for (auto& w : workers) {
        w.join();
    }
    sync_through(registry, *log, 0);
    CHECK(publisher.metrics().lag_events > 0);
    CHECK(hub_from(*log).held == truth(registry, manager->policy()));

    held.clear();
    sync_through(registry, *log, 1);
    CHECK(registry.snapshot().empty());
    CHECK(hub_from(*log).held.empty());
    CHECK(publisher.stop());
    const auto m = publisher.metrics();
    CHECK(m.events_in == m.events_published + m.events_dropped);
}
