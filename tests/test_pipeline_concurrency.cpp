// Concurrency of the pipeline's parts, for TSan: registry lookups and snapshots against
// registrations, releases and attachment changes on handle copies; subscribe() and
// announce() during sends; a publisher's stop() racing resyncs and the input's end.
#include <kvbm/events_publisher.hpp>

#include "pipeline_hashes.hpp"
#include "recording_publisher.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <map>
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
using namespace std::chrono_literals;

namespace {
std::atomic<long> g_tags_alive{0};
struct Tag {  // an attachment that counts its lives
    int value = 0;
    explicit Tag(int v) : value(v) { g_tags_alive.fetch_add(1); }
    Tag(Tag&& o) noexcept : value(o.value) { g_tags_alive.fetch_add(1); }
    Tag(const Tag&) = delete;
    Tag& operator=(const Tag&) = delete;
    Tag& operator=(Tag&&) = delete;
    ~Tag() { g_tags_alive.fetch_sub(1); }
};
}  // namespace

TEST_CASE("registry find/contains/snapshot race registrations and attach/detach on copies", "[concurrency]") {
    const BlockRegistry<> registry;
    constexpr int writers = 2;
    std::atomic<bool> done{false};
    std::atomic<long> lookups{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < writers; ++t) {
        threads.emplace_back([&, t] {
            while (lookups.load() == 0) {  // start once the reader runs: the two overlap
                std::this_thread::yield();
            }
            std::mt19937_64 rng(static_cast<std::uint64_t>(t) + 1);
            std::vector<BlockRegistrationHandle<>> mine;
            for (int i = 0; i < 4000; ++i) {
                auto h = registry.register_hash(hash_at(rng() % 32));
                auto copy = h;  // attach through one copy, detach through another
                copy.attach_unique(Tag(i));
                if (rng() % 2 == 0) {
                    (void)h.detach_unique<Tag>();
                }
                mine.push_back(std::move(h));
                if (mine.size() > 8) {
                    mine.erase(mine.begin() + static_cast<std::ptrdiff_t>(rng() % mine.size()));
                }
            }
        });
    }
    threads.emplace_back([&] {
        std::mt19937_64 rng(99);
        while (!done.load()) {
            const auto h = hash_at(rng() % 32);
            if (auto found = registry.find(h)) {
                CHECK(found->hash() == h);
                found->with_unique<Tag>([](Tag& tag) { (void)tag.value; });
            }
            (void)registry.contains(h);
            const auto snap = registry.snapshot();
            CHECK(std::set<kvbm::Uint128>(kvbm_test::raw_set(snap)).size() == snap.size());  // each once
            lookups.fetch_add(1);
        }
    });
    for (int t = 0; t < writers; ++t) {
        threads[static_cast<std::size_t>(t)].join();
    }
    done.store(true);
    threads.back().join();
    CHECK(lookups.load() > 0);
    CHECK(registry.snapshot().empty());
    CHECK(g_tags_alive.load() == 0);  // every attachment destroyed exactly once
}

TEST_CASE("subscribe() and announce() during sends: each subscription sees a consistent per-hash stream",
          "[concurrency]") {
    const EventsManager<> manager(EventsManagerSettings<>{{}, 1 << 16});
    std::atomic<bool> done{false};
    std::atomic<int> subscriptions{0};
    std::thread producer([&] {
        std::mt19937_64 rng(5);
        std::vector<kvbm::AnnouncedBlock<>> live;
        // Keep sending until the subscriber has come round several times: on a loaded machine the
        // producer could otherwise finish before the first subscribe() and the race is never run.
        for (int i = 0; i < 20000 || subscriptions.load() < 20; ++i) {
            live.push_back(manager.announce(hash_at(rng() % 64)));
            if (live.size() > 16) {
                live.erase(live.begin() + static_cast<std::ptrdiff_t>(rng() % live.size()));
            }
        }
        live.clear();
        done.store(true);
    });
    while (!done.load()) {
        auto sub = manager.subscribe();
        subscriptions.fetch_add(1);
        std::map<kvbm::Uint128, kvbm::EventKind> last;  // per hash: kinds must alternate
        for (int i = 0; i < 200; ++i) {
            auto r = sub.try_recv();
            if (!r.has_value()) {
                break;
            }
            const auto raw = r->hash.raw();
            if (auto it = last.find(raw); it != last.end()) {
                CHECK(it->second != r->kind);
            }
            last[raw] = r->kind;
        }
    }
    producer.join();
    CHECK(subscriptions.load() >= 20);
    CHECK(manager.subscriber_count() == 0);
    CHECK(manager.announced_count() == 0);
}

TEST_CASE("stop() races resyncs and the input's end", "[concurrency]") {
    for (int round = 0; round < 20; ++round) {
        auto log = std::make_shared<kvbm_test::PublishLog>();
        std::optional<EventsManager<>> manager(std::in_place, EventsManagerSettings<>{{}, 8});
        EventsPublisherSettings<> settings;
        settings.batching = BatchingConfig{1ms, 4};
        settings.resync_backoff_min = 1ms;
        settings.resync_backoff_max = 4ms;
        EventsPublisher publisher(*manager, kvbm_test::SignallingPublisher(log), kvbm::InstanceId{1U}, settings);
        std::thread producer([&] {
            std::vector<kvbm::AnnouncedBlock<>> live;
            for (int i = 0; i < 500; ++i) {
                live.push_back(manager->announce(hash_at(static_cast<std::uint64_t>(i % 40))));
                if (live.size() > 10) {
                    live.erase(live.begin());
                }
                if (i % 50 == 0) {
                    std::lock_guard lock(log->mutex);
                    log->resync_request = true;  // a "hub reconnect" mid-stream
                }
            }
            live.clear();
            manager.reset();  // the input ends
        });
        std::thread stopper([&] { CHECK(publisher.stop().finished); });
        producer.join();
        stopper.join();
        CHECK(publisher.finished());
        const auto calls = log->snapshot();
        REQUIRE(calls.size() >= 2);
        CHECK(calls.back().is_flush);
        CHECK(calls[calls.size() - 2].message.events.kind == kvbm::BatchKind::shutdown);
        const auto m = publisher.metrics();
        CHECK(m.events_in == m.events_published + m.events_dropped);
    }
}
