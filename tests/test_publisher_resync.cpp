// Resync, driven by construction (a transport held at a gate, failures injected on exactly
// the calls meant, a transport that reports hub (re)connections, a snapshot that throws):
// every cause leads to Shutdown + the sorted live set; failed attempts are retried with a
// growing backoff; stop drains what was sent before it, does not resync while stopping, and
// reports a Shutdown it could not deliver.
#include <kvbm/events_publisher.hpp>

#include "pipeline_hashes.hpp"
#include "recording_publisher.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <vector>

using kvbm::BatchingConfig;
using kvbm::BatchKind;
using kvbm::BlockRegistrationHandle;
using kvbm::BlockRegistry;
using kvbm::EventsManager;
using kvbm::EventsManagerSettings;
using kvbm::EventsPublisher;
using kvbm::EventsPublisherSettings;
using kvbm::KvCacheEvents;
using kvbm::PositionalLineageHash;
using kvbm_test::Call;
using kvbm_test::hash_at;
using kvbm_test::ModelHub;
using kvbm_test::PublishLog;
using kvbm_test::raw_set;
using kvbm_test::RecordingPublisher;
using kvbm_test::SignallingPublisher;
using namespace std::chrono_literals;

namespace {
const kvbm::InstanceId instance{11U};

bool is_shutdown(const Call& c) { return !c.is_flush && c.message.events.kind == BatchKind::shutdown; }
std::size_t shutdowns(const std::vector<Call>& calls) {
    return static_cast<std::size_t>(std::count_if(calls.begin(), calls.end(), is_shutdown));
}
ModelHub hub_of(const std::vector<Call>& calls) {
    ModelHub hub{instance, {}};
    for (const auto& c : calls) {
        if (!c.is_flush) {
            hub.apply(c.message);
        }
    }
    return hub;
}
EventsPublisherSettings<> settings_with(BatchingConfig batching, std::chrono::milliseconds backoff_min = 5ms,
                                        std::chrono::milliseconds backoff_max = 80ms) {
    EventsPublisherSettings<> s;
    s.batching = batching;
    s.resync_backoff_min = backoff_min;
    s.resync_backoff_max = backoff_max;
    return s;
}
void ask_resync(PublishLog& log) {
    {
        std::lock_guard lock(log.mutex);
        log.resync_request = true;
    }
    log.changed.notify_all();
}
// The Creates that follow the last Shutdown in `calls`, concatenated.
std::vector<PositionalLineageHash> after_last_shutdown(const std::vector<Call>& calls) {
    const auto last = std::find_if(calls.rbegin(), calls.rend(), is_shutdown);
    std::vector<PositionalLineageHash> out;
    for (auto it = last.base(); it != calls.end(); ++it) {
        if (!it->is_flush) {
            out.insert(out.end(), it->message.events.hashes.begin(), it->message.events.hashes.end());
        }
    }
    return out;
}
}  // namespace

TEST_CASE("a hub (re)connection reported by the transport is answered with Shutdown and the sorted live set",
          "[resync]") {
    auto log = std::make_shared<PublishLog>();
    auto manager = std::make_shared<EventsManager<>>();
    const BlockRegistry<> registry(manager);
    EventsPublisher publisher(*manager, registry, SignallingPublisher(log), instance,
                              settings_with(BatchingConfig{1ms, 4}));
    std::vector<BlockRegistrationHandle<>> live;
    for (std::uint64_t pos : {5U, 1U, 9U, 3U, 7U, 2U}) {
        live.push_back(registry.register_hash(hash_at(pos)));
    }
    REQUIRE(log->wait_until([&] { return hub_of(log->calls).held.size() == 6; }));
    ask_resync(*log);
    REQUIRE(log->wait_until([&] { return shutdowns(log->calls) == 1 && after_last_shutdown(log->calls).size() == 6; }));
    const auto calls = log->snapshot();
    const auto reannounced = after_last_shutdown(calls);
    CHECK(std::is_sorted(reannounced.begin(), reannounced.end(),
                         [](const auto& a, const auto& b) { return a.position() < b.position(); }));
    CHECK(raw_set(reannounced) == raw_set(registry.snapshot()));
    REQUIRE(publisher.stop());  // joined: the counters are final
    const auto m = publisher.metrics();
    CHECK(m.resyncs_for_hub_connect == 1);
    CHECK(m.recoveries == 1);
    CHECK(m.events_reannounced == 6);
}

TEST_CASE("a re-announce batch that fails is answered by a whole new resync", "[resync]") {
    auto log = std::make_shared<PublishLog>();
    auto manager = std::make_shared<EventsManager<>>();
    const BlockRegistry<> registry(manager);
    // Fail exactly the first Create published after the first Shutdown (a re-announce).
    bool after_shutdown = false;
    bool failed_once = false;
    log->fail_if = [&](const kvbm::KvbmCacheEvents<>& m) {
        if (m.events.kind == BatchKind::shutdown) {
            after_shutdown = true;
        } else if (after_shutdown && !failed_once && m.events.kind == BatchKind::create) {
            failed_once = true;
            return true;
        }
        return false;
    };
    EventsPublisher publisher(*manager, registry, SignallingPublisher(log), instance,
                              settings_with(BatchingConfig{1ms, 2}));
    std::vector<BlockRegistrationHandle<>> live;
    for (std::uint64_t pos = 0; pos < 5; ++pos) {
        live.push_back(registry.register_hash(hash_at(pos)));
    }
    REQUIRE(log->wait_until([&] { return hub_of(log->calls).held.size() == 5; }));
    ask_resync(*log);
    REQUIRE(log->wait_until([&] { return shutdowns(log->calls) == 2 && after_last_shutdown(log->calls).size() == 5; }));
    const auto calls = log->snapshot();
    CHECK(hub_of(calls).held == raw_set(registry.snapshot()));
    REQUIRE(publisher.stop());
    const auto m = publisher.metrics();
    CHECK(m.resync_failures == 1);
    CHECK(m.recoveries == 1);
    CHECK(m.publish_errors == 1);
}

TEST_CASE("a resync snapshot that throws is retried and publishes nothing until it works", "[resync]") {
    auto log = std::make_shared<PublishLog>();
    auto manager = std::make_shared<EventsManager<>>();
    const BlockRegistry<> registry(manager);
    auto settings = settings_with(BatchingConfig{1ms, 16});
    std::atomic<int> snapshots{0};
    settings.recovery_snapshot = [&] {
        if (snapshots.fetch_add(1) < 2) {
            throw std::runtime_error("registry unavailable");
        }
        return registry.snapshot();
    };
    settings.on_error = log->on_error();
    EventsPublisher publisher(*manager, registry, SignallingPublisher(log), instance, settings);
    auto a = registry.register_hash(hash_at(1));
    auto b = registry.register_hash(hash_at(2));
    REQUIRE(log->wait_until([&] { return hub_of(log->calls).held.size() == 2; }));
    ask_resync(*log);
    REQUIRE(log->wait_until([&] { return shutdowns(log->calls) == 1 && after_last_shutdown(log->calls).size() == 2; }));
    REQUIRE(publisher.stop());
    CHECK(snapshots.load() == 3);
    const auto m = publisher.metrics();
    CHECK(m.resync_failures == 2);
    CHECK(m.recoveries == 1);
    CHECK(m.publish_errors == 0);  // no Shutdown went out for the failed attempts
    CHECK(log->snapshot().size() >= 2);
}

TEST_CASE("while the transport keeps failing, resync attempts back off exponentially up to the bound", "[resync]") {
    auto log = std::make_shared<PublishLog>();
    auto manager = std::make_shared<EventsManager<>>();
    const BlockRegistry<> registry(manager);
    std::vector<std::chrono::steady_clock::time_point> attempts;  // Shutdowns tried (under log.mutex)
    bool failing = true;
    log->fail_if = [&](const kvbm::KvbmCacheEvents<>& m) {
        if (m.events.kind == BatchKind::shutdown && failing) {
            attempts.push_back(std::chrono::steady_clock::now());
        }
        return failing;
    };
    EventsPublisher publisher(*manager, registry, SignallingPublisher(log), instance,
                              settings_with(BatchingConfig{1ms, 16}, 8ms, 64ms));
    auto a = registry.register_hash(hash_at(1));
    REQUIRE(log->wait_until([&] { return attempts.size() >= 7; }));  // the failed batch asked for it
    {
        std::lock_guard lock(log->mutex);
        failing = false;
    }
    REQUIRE(log->wait_until([&] { return hub_of(log->calls).held == raw_set({hash_at(1)}); }));
    std::vector<std::chrono::steady_clock::time_point> at;
    {
        std::lock_guard lock(log->mutex);
        at = attempts;
    }
    // Gaps are at least 8, 16, 32, 64, 64 ms (lower bounds hold however loaded the machine).
    const std::chrono::milliseconds want[] = {8ms, 16ms, 32ms, 64ms, 64ms};
    for (std::size_t i = 0; i < 5; ++i) {
        CAPTURE(i);
        CHECK(at[i + 2] - at[i + 1] >= want[i]);
    }
    REQUIRE(publisher.stop());
    const auto m = publisher.metrics();
    CHECK(m.resyncs_for_publish_failure == 1);
    CHECK(m.resync_failures >= 7);
    CHECK(m.recoveries == 1);
}

TEST_CASE("stop takes the events sent before it (drain_on_stop), then Shutdown, then flush", "[stop]") {
    auto log = std::make_shared<PublishLog>();
    auto manager = std::make_shared<EventsManager<>>();
    const BlockRegistry<> registry(manager);
    EventsPublisher publisher(*manager, registry, RecordingPublisher(log), instance,
                              settings_with(BatchingConfig{1ms, 64}));
    log->set_gate(false);
    auto a = registry.register_hash(hash_at(1));
    // Held inside the timer's publish of (a): back in the loop it finds the stop flag set,
    // so b and c can only be taken by drain_on_stop.
    REQUIRE(log->wait_until([&] { return log->waiting_at_gate == 1; }));
    auto b = registry.register_hash(hash_at(2));
    auto c = registry.register_hash(hash_at(3));
    publisher.request_stop();
    log->set_gate(true);
    const auto r = publisher.stop();
    CHECK(r.ok());
    const auto calls = log->snapshot();
    REQUIRE(calls.size() == 4);
    CHECK(calls[0].message.events == KvCacheEvents<>::create({hash_at(1)}));
    CHECK(calls[1].message.events == KvCacheEvents<>::create({hash_at(2), hash_at(3)}));
    CHECK(is_shutdown(calls[2]));
    CHECK(calls[3].is_flush);
}

TEST_CASE("the input's end finishes the worker (consume) without stop", "[stop]") {
    auto log = std::make_shared<PublishLog>();
    std::optional<EventsPublisher<RecordingPublisher>> publisher;
    {
        const EventsManager<> manager;
        publisher.emplace(manager, RecordingPublisher(log), instance, settings_with(BatchingConfig{60s, 16}));
        auto block = manager.announce(hash_at(4));
    }  // the manager and its one block are gone: the channel closes
    REQUIRE(publisher->wait_for(30s));
    CHECK(publisher->finished());
    const auto calls = log->snapshot();
    REQUIRE(calls.size() == 4);
    CHECK(calls[0].message.events == KvCacheEvents<>::create({hash_at(4)}));
    CHECK(calls[1].message.events == KvCacheEvents<>::remove({hash_at(4)}));
    CHECK(is_shutdown(calls[2]));
    CHECK(calls[3].is_flush);
    CHECK(publisher->stop().ok());
}

TEST_CASE("a lag while stopping is counted, not resynced: the final Shutdown covers it", "[stop][lag]") {
    auto log = std::make_shared<PublishLog>();
    auto manager = std::make_shared<EventsManager<>>(EventsManagerSettings<>{{}, 4});
    const BlockRegistry<> registry(manager);
    EventsPublisher publisher(*manager, registry, RecordingPublisher(log), instance,
                              settings_with(BatchingConfig{1ms, 64}));
    log->set_gate(false);
    std::vector<BlockRegistrationHandle<>> live;
    live.push_back(registry.register_hash(hash_at(0)));
    // Held inside the timer's publish of (0); back in the loop it finds the stop flag set.
    REQUIRE(log->wait_until([&] { return log->waiting_at_gate == 1; }));
    for (std::uint64_t pos = 1; pos < 20; ++pos) {  // 19 events into a 4-event channel: lag by construction
        live.push_back(registry.register_hash(hash_at(pos)));
    }
    publisher.request_stop();
    log->set_gate(true);
    CHECK(publisher.stop().ok());
    const auto calls = log->snapshot();
    CHECK(shutdowns(calls) == 1);  // the final one only
    REQUIRE(calls.size() >= 2);
    CHECK(is_shutdown(calls[calls.size() - 2]));
    CHECK(calls.back().is_flush);
    const auto m = publisher.metrics();
    CHECK(m.lag_events == 15);
    CHECK(m.recoveries == 0);
    CHECK(m.resyncs_for_lag == 0);
    CHECK(m.events_in == m.events_published + m.events_dropped);
    CHECK(hub_of(calls).held.empty());
}

TEST_CASE("stop reports a final Shutdown the transport refused", "[stop]") {
    auto log = std::make_shared<PublishLog>();
    log->fail_if = [](const kvbm::KvbmCacheEvents<>& m) { return m.events.kind == BatchKind::shutdown; };
    auto manager = std::make_shared<EventsManager<>>();
    EventsPublisher publisher(*manager, RecordingPublisher(log), instance, settings_with(BatchingConfig{60s, 16}));
    const auto r = publisher.stop();
    CHECK(r.finished);
    CHECK_FALSE(r.shutdown_sent);
    CHECK_FALSE(r.flushed);
    CHECK_FALSE(r);
    const auto again = publisher.stop();  // idempotent: the same outcome
    CHECK(again.finished);
    CHECK_FALSE(again.shutdown_sent);
    std::lock_guard lock(log->mutex);
    CHECK(log->failed_publishes == 4);  // a bounded number of attempts
}
