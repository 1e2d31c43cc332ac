// EventsPublisher over a transport it does not own: shared_ptr, unique_ptr, raw pointer or
// std::ref, so that a transport that cannot move (like ZmqPublisher) can be used and its
// own state read while the publisher runs.
#include <kvbm/events_publisher.hpp>

#include "pipeline_hashes.hpp"
#include "recording_publisher.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <type_traits>

using kvbm::BatchingConfig;
using kvbm::BlockRegistry;
using kvbm::EventsManager;
using kvbm::EventsPublisher;
using kvbm::EventsPublisherSettings;
using kvbm::KvCacheEvents;
using kvbm::PublisherHandle;
using kvbm_test::hash_at;
using kvbm_test::PublishLog;
using kvbm_test::RecordingPublisher;
using namespace std::chrono_literals;

namespace {
// A transport that can be neither copied nor moved.
class Pinned {
public:
    explicit Pinned(std::shared_ptr<PublishLog> log) : m_inner(std::move(log)) {}
    Pinned(const Pinned&) = delete;
    Pinned& operator=(const Pinned&) = delete;
    kvbm::PublishResult publish(std::string_view subject, std::span<const std::uint8_t> bytes) {
        ++published;
        return m_inner.publish(subject, bytes);
    }
    kvbm::PublishResult flush() { return m_inner.flush(); }
    int published = 0;  // read after the publisher stopped

private:
    RecordingPublisher m_inner;
};
}  // namespace

static_assert(PublisherHandle<RecordingPublisher>);
static_assert(PublisherHandle<std::shared_ptr<Pinned>>);
static_assert(PublisherHandle<std::unique_ptr<Pinned>>);
static_assert(PublisherHandle<Pinned*>);
static_assert(PublisherHandle<std::reference_wrapper<Pinned>>);
static_assert(!PublisherHandle<int>);
static_assert(!PublisherHandle<std::shared_ptr<int>>);
static_assert(!PublisherHandle<std::reference_wrapper<int>>);

namespace {
template <class Handle>
void run_through(Handle handle, const std::shared_ptr<PublishLog>& log) {
    auto manager = std::make_shared<EventsManager<>>();
    const BlockRegistry<> registry(manager);
    EventsPublisherSettings<> settings;
    settings.batching = BatchingConfig{60s, 1024};
    EventsPublisher publisher(*manager, registry, std::move(handle), kvbm::InstanceId{3U}, settings);
    {
        auto h = registry.register_hash(hash_at(4));
        CHECK(publisher.stop());
    }
    const auto calls = log->snapshot();
    REQUIRE(calls.size() == 3);
    CHECK(calls[0].message.events == KvCacheEvents<>::create({hash_at(4)}));
    CHECK(calls[1].message.events == KvCacheEvents<>::shutdown());
    CHECK(calls[2].is_flush);
}
}  // namespace

TEST_CASE("a shared transport, read by its owner after the publisher stopped", "[publisher]") {
    auto log = std::make_shared<PublishLog>();
    auto transport = std::make_shared<Pinned>(log);
    run_through(transport, log);
    CHECK(transport->published == 2);
}

TEST_CASE("a transport held by std::ref, a raw pointer or a unique_ptr", "[publisher]") {
    {
        auto log = std::make_shared<PublishLog>();
        Pinned transport(log);
        run_through(std::ref(transport), log);
        CHECK(transport.published == 2);
    }
    {
        auto log = std::make_shared<PublishLog>();
        Pinned transport(log);
        run_through(&transport, log);
        CHECK(transport.published == 2);
    }
    {
        auto log = std::make_shared<PublishLog>();
        run_through(std::make_unique<Pinned>(log), log);
    }
}

// AnyPublisher: a class keeps `EventsPublisher<>` as a member without naming its transport.

namespace {
struct Worker {
    std::shared_ptr<EventsManager<>> manager = std::make_shared<EventsManager<>>();
    kvbm::EventsPublisher<> events;  // = EventsPublisher<kvbm::AnyPublisher>
    Worker(kvbm::AnyPublisher transport, kvbm::InstanceId id) : events(*manager, std::move(transport), id) {}
};
}  // namespace

TEST_CASE("EventsPublisher<> holds any transport handle and forwards resync requests", "[publisher][any]") {
    static_assert(std::is_same_v<EventsPublisher<>::publisher_type, kvbm::AnyPublisher>);
    static_assert(kvbm::ResyncSignalling<kvbm::AnyPublisher>);
    auto log = std::make_shared<PublishLog>();
    auto transport = std::make_shared<kvbm_test::SignallingPublisher>(log);
    {
        Worker w(transport, kvbm::InstanceId{3U});  // shared: the worker may outlive `w`
        auto block = w.manager->announce(hash_at(2));
        REQUIRE(log->wait_until([&] { return !log->calls.empty(); }));
        {
            std::lock_guard lock(log->mutex);
            log->resync_request = true;
        }
        // The AnyPublisher forwarded take_resync_request: a resync (Shutdown, Create) follows.
        REQUIRE(log->wait_until([&] {
            return std::count_if(log->calls.begin(), log->calls.end(),
                                 [](const kvbm_test::Call& c) {
                                     return !c.is_flush && c.message.events.kind == kvbm::BatchKind::shutdown;
                                 }) == 1 &&
                   !log->calls.back().is_flush && log->calls.back().message.events.kind == kvbm::BatchKind::create;
        }));
        CHECK(w.events.stop());
        CHECK(w.events.metrics().resyncs_for_hub_connect == 1);
    }
    // A transport without the concept: AnyPublisher answers false.
    kvbm::AnyPublisher plain(RecordingPublisher{log});
    CHECK_FALSE(plain.take_resync_request());
    Pinned pinned(log);
    kvbm::AnyPublisher borrowed(std::ref(pinned));  // borrowed: `pinned` outlives every use
    CHECK(borrowed.publish("s", {}).ok());          // the call reaches Pinned
    CHECK(pinned.published == 1);
}

TEST_CASE("for_each_metric names every publisher and manager counter once, with its value", "[publisher][metrics]") {
    auto log = std::make_shared<PublishLog>();
    log->fail_next_publishes = 1;
    auto manager = std::make_shared<EventsManager<>>();
    EventsPublisherSettings<> settings;
    settings.batching = BatchingConfig{1ms, 16};
    EventsPublisher publisher(*manager, RecordingPublisher(log), kvbm::InstanceId{4U}, settings);
    auto a = manager->announce(hash_at(1));
    REQUIRE(log->wait_until([&] { return log->calls.size() >= 2; }));  // resync after the failure
    auto b = manager->announce(hash_at(2));
    CHECK(publisher.stop());
    std::map<std::string, double> series;
    std::map<std::string, kvbm::MetricKind> kinds;
    const auto collect = [&](const kvbm::Metric& m) {
        std::string key(m.name);
        for (const auto& l : m.labels) {
            key += "{" + std::string(l.name) + "=" + std::string(l.value) + "}";
        }
        CHECK(series.emplace(key, m.value).second);  // each series once
        CHECK_FALSE(m.help.empty());
        CHECK((m.kind == kvbm::MetricKind::counter) == (m.name.size() > 6 && m.name.ends_with("_total")));
        kinds[key] = m.kind;
    };
    publisher.for_each_metric(collect);
    static_assert(kvbm::MetricSource<EventsPublisher<RecordingPublisher>>);
    static_assert(kvbm::MetricSource<EventsManager<>>);
    const auto m = publisher.metrics();
    CHECK(series.at("kvbm_publisher_events_in_total") == static_cast<double>(m.events_in));
    CHECK(series.at("kvbm_publisher_events_total{outcome=published}") == static_cast<double>(m.events_published));
    CHECK(series.at("kvbm_publisher_events_total{outcome=dropped}") == static_cast<double>(m.events_dropped));
    CHECK(series.at("kvbm_publisher_publish_failures_total") == 1);
    CHECK(series.at("kvbm_publisher_resync_requests_total{reason=publish_failure}") == 1);
    CHECK(series.at("kvbm_publisher_resyncs_total") == static_cast<double>(m.recoveries));
    CHECK(series.at("kvbm_publisher_resync_pending") == 0);
    CHECK(series.at("kvbm_publisher_batches_total") == static_cast<double>(m.batches_published));
    for (const auto& [name, value] : series) {
        CHECK(name.rfind("kvbm_publisher_", 0) == 0);
    }
    series.clear();
    manager->for_each_metric(collect);
    CHECK(series.at("kvbm_manager_announced_blocks") == 2);
    CHECK(series.at("kvbm_manager_subscribers") == 1);  // the publisher's subscription
    CHECK(series.at("kvbm_manager_channel_capacity") == 1024);
    CHECK(series.at("kvbm_manager_lagged_events_total") == 0);
    CHECK(series.size() == 5);
}
