// EventsManager: Create on a new registration, Remove when it ends, policy filtering,
// several subscribers, re-registration, channel lifetime, lag counters.
#include <kvbm/manager.hpp>

#include "pipeline_hashes.hpp"

#include <catch2/catch.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <vector>

using kvbm::BlockRegistrationHandle;
using kvbm::BlockRegistry;
using kvbm::EventsManager;
using kvbm::EventsManagerSettings;
using kvbm::EventSubscription;
using kvbm::KvCacheEvent;
using kvbm::PositionalLineageHash;
using kvbm_test::hash_at;

namespace {

// Everything ready in the subscription, then the status that ended it (empty or closed).
struct Drained {
    std::vector<KvCacheEvent<>> events;
    kvbm::broadcast::RecvStatus end;
};
Drained drain(EventSubscription<>& sub) {
    Drained d;
    for (;;) {
        auto r = sub.try_recv();
        if (!r.has_value()) {
            d.end = r.status();
            return d;
        }
        d.events.push_back(*r);
    }
}
using Events = std::vector<KvCacheEvent<>>;
KvCacheEvent<> create(const PositionalLineageHash& h) { return KvCacheEvent<>::create(h); }
KvCacheEvent<> remove(const PositionalLineageHash& h) { return KvCacheEvent<>::remove(h); }

}  // namespace

TEST_CASE("settings default to AllEventsPolicy and a 1024-event channel", "[manager]") {
    const EventsManager<> manager;
    CHECK(manager.channel_capacity() == 1024);
    CHECK(manager.policy().should_emit(hash_at(17)));
    CHECK(manager.subscriber_count() == 0);
    CHECK_THROWS_AS(EventsManager<>(EventsManagerSettings<>{{}, 0}), std::invalid_argument);
}

TEST_CASE("a new registration emits Create, its end emits Remove after the hash left the registry", "[manager]") {
    auto manager = std::make_shared<EventsManager<>>();
    auto sub = manager->subscribe();
    CHECK(manager->subscriber_count() == 1);
    const BlockRegistry<> registry(manager);
    const auto h = hash_at(42);
    {
        auto handle = registry.register_hash(h);
        CHECK(handle.has_unique<kvbm::EventReleaseHandle<>>());
        auto d = drain(sub);
        CHECK(d.events == Events{create(h)});
        CHECK(d.end == kvbm::broadcast::RecvStatus::empty);
    }
    CHECK_FALSE(registry.contains(h));
    CHECK(drain(sub).events == Events{remove(h)});
}

TEST_CASE("two subscribers both see Create and Remove", "[manager]") {
    auto manager = std::make_shared<EventsManager<>>();
    auto a = manager->subscribe();
    auto b = manager->subscribe();
    const BlockRegistry<> registry(manager);
    const auto h = hash_at(42);
    { auto handle = registry.register_hash(h); }
    CHECK(drain(a).events == Events{create(h), remove(h)});
    CHECK(drain(b).events == Events{create(h), remove(h)});
}

TEST_CASE("a subscriber sees only what is sent after it subscribed", "[manager]") {
    auto manager = std::make_shared<EventsManager<>>();
    const BlockRegistry<> registry(manager);
    auto early = registry.register_hash(hash_at(1));
    auto sub = manager->subscribe();
    auto late = registry.register_hash(hash_at(2));
    CHECK(drain(sub).events == Events{create(hash_at(2))});
}

TEST_CASE("PowerOfTwoPolicy filters: no Create, no release handle, no Remove", "[manager]") {
    auto manager = std::make_shared<EventsManager<>>(EventsManagerSettings<>{kvbm::PowerOfTwoPolicy{}, 1024});
    auto sub = manager->subscribe();
    const BlockRegistry<> registry(manager);
    {
        auto skipped = registry.register_hash(hash_at(17));
        CHECK_FALSE(skipped.has_unique<kvbm::EventReleaseHandle<>>());
        auto emitted = registry.register_hash(hash_at(16));
        CHECK(emitted.has_unique<kvbm::EventReleaseHandle<>>());
    }
    CHECK(drain(sub).events == Events{create(hash_at(16)), remove(hash_at(16))});
}

TEST_CASE("re-registration: one Create per registration, one Remove when its last handle goes", "[manager]") {
    auto manager = std::make_shared<EventsManager<>>();
    auto sub = manager->subscribe();
    const BlockRegistry<> registry(manager);
    const auto h = hash_at(8);

    std::optional<BlockRegistrationHandle<>> first = registry.register_hash(h);
    std::optional<BlockRegistrationHandle<>> second = registry.register_hash(h);
    CHECK(*first == *second);
    CHECK(drain(sub).events == Events{create(h)});
    first.reset();
    CHECK(drain(sub).events.empty());  // a handle is left: no Remove
    second.reset();
    CHECK(drain(sub).events == Events{remove(h)});

    auto again = registry.register_hash(h);  // a new registration: a new Create
    CHECK(drain(sub).events == Events{create(h)});
}

TEST_CASE("on_block_registered by hand, for a registry that has no observer", "[manager]") {
    const EventsManager<> manager;
    auto sub = manager.subscribe();
    const BlockRegistry<> registry;
    {
        auto handle = registry.register_hash(hash_at(3));
        CHECK(drain(sub).events.empty());
        CHECK(manager.on_block_registered(handle));
        CHECK(drain(sub).events == Events{create(hash_at(3))});
        // Telling it twice re-attaches: the replaced release handle sends its Remove at once
        // (the reference's behaviour; the registry never does this).
        CHECK(manager.on_block_registered(handle));
        CHECK(drain(sub).events == Events{create(hash_at(3)), remove(hash_at(3))});
    }
    CHECK(drain(sub).events == Events{remove(hash_at(3))});
}

TEST_CASE("the channel closes only when the manager and every release handle are gone", "[manager]") {
    auto manager = std::make_shared<EventsManager<>>();
    auto sub = manager->subscribe();
    std::optional<BlockRegistrationHandle<>> handle;
    {
        const BlockRegistry<> registry(manager);
        handle = registry.register_hash(hash_at(5));
    }
    manager.reset();  // the registry held it too; now only the release handle's sender is left
    auto d = drain(sub);
    CHECK(d.events == Events{create(hash_at(5))});
    CHECK(d.end == kvbm::broadcast::RecvStatus::empty);
    handle.reset();
    d = drain(sub);
    CHECK(d.events == Events{remove(hash_at(5))});
    CHECK(d.end == kvbm::broadcast::RecvStatus::closed);
}

TEST_CASE("lag seen by subscribers is counted by the manager", "[manager]") {
    auto manager = std::make_shared<EventsManager<>>(EventsManagerSettings<>{{}, 2});
    auto sub = manager->subscribe();
    const BlockRegistry<> registry(manager);
    std::vector<BlockRegistrationHandle<>> handles;
    for (std::uint64_t pos = 0; pos < 5; ++pos) {
        handles.push_back(registry.register_hash(hash_at(pos)));
    }
    CHECK(manager->lagged_events() == 0);
    auto r = sub.try_recv();
    REQUIRE(r.is_lagged());
    CHECK(r.lagged_count() == 3);
    CHECK(manager->lagged_events() == 3);
    CHECK(manager->lag_reports() == 1);
    CHECK(drain(sub).events == Events{create(hash_at(3)), create(hash_at(4))});
}

// The direct API for cache managers that own their blocks (EventsManager::announce).

TEST_CASE("announce sends Create, the AnnouncedBlock's end sends Remove, the policy can decline",
          "[manager][announce]") {
    const EventsManager<> manager(EventsManagerSettings<>{kvbm::PowerOfTwoPolicy(1, 64), 16});
    auto sub = manager.subscribe();
    const auto h = hash_at(8);
    {
        auto block = manager.announce(h);
        CHECK(block.announced());
        CHECK(block.hash() == h);
        CHECK(manager.announced_count() == 1);
        CHECK(manager.announced_snapshot() == std::vector<PositionalLineageHash>{h});
        auto declined = manager.announce(hash_at(7));  // not a power of two
        CHECK_FALSE(declined);
        CHECK(manager.announced_count() == 1);
        CHECK(drain(sub).events == Events{create(h)});
    }
    CHECK(drain(sub).events == Events{remove(h)});
    CHECK(manager.announced_count() == 0);
    CHECK(manager.announced_snapshot().empty());
}

TEST_CASE("announcing a live hash again sends nothing; the last release sends the one Remove", "[manager][announce]") {
    const EventsManager<> manager;
    auto sub = manager.subscribe();
    const auto h = hash_at(3);
    auto first = manager.announce(h);
    auto second = manager.announce(h);
    CHECK(drain(sub).events == Events{create(h)});
    first.release();
    CHECK_FALSE(first.announced());
    CHECK(drain(sub).events.empty());  // the hub still lists h: `second` lives
    CHECK(manager.announced_snapshot() == std::vector<PositionalLineageHash>{h});
    kvbm::AnnouncedBlock<> moved = std::move(second);
    CHECK_FALSE(second.announced());       // NOLINT(bugprone-use-after-move): moved-from is empty by contract
    moved = manager.announce(hash_at(4));  // the new one is made first, then assigning releases the old
    CHECK(drain(sub).events == Events{create(hash_at(4)), remove(h)});
}

TEST_CASE("announced blocks keep the channel open after the manager is gone", "[manager][announce]") {
    std::optional<EventSubscription<>> sub;
    kvbm::AnnouncedBlock<> block;
    std::function<std::vector<PositionalLineageHash>()> snapshot;
    {
        const EventsManager<> manager;
        sub.emplace(manager.subscribe());
        block = manager.announce(hash_at(5));
        snapshot = manager.announced_snapshot_function();
    }
    CHECK(snapshot() == std::vector<PositionalLineageHash>{hash_at(5)});
    const auto before = drain(*sub);
    CHECK(before.events == Events{create(hash_at(5))});
    CHECK(before.end == kvbm::broadcast::RecvStatus::empty);  // not closed
    block = {};
    const auto d = drain(*sub);
    CHECK(d.events == Events{remove(hash_at(5))});
    CHECK(d.end == kvbm::broadcast::RecvStatus::closed);
    CHECK(snapshot().empty());
}

TEST_CASE("the announced set survives growth and backward-shift deletion in any order", "[manager][announce]") {
    const EventsManager<> manager(EventsManagerSettings<>{{}, 1 << 16});
    std::vector<kvbm::AnnouncedBlock<>> blocks;
    std::set<kvbm::Uint128> live;
    std::mt19937_64 rng(7);
    for (int round = 0; round < 20000; ++round) {
        if (blocks.empty() || rng() % 3 != 0) {
            const auto h = hash_at(rng() % 512, rng() % 64);
            blocks.push_back(manager.announce(h));
        } else {
            const auto i = static_cast<std::size_t>(rng() % blocks.size());
            std::swap(blocks[i], blocks.back());
            blocks.pop_back();
        }
    }
    for (const auto& b : blocks) {
        live.insert(b.hash().raw());
    }
    std::set<kvbm::Uint128> announced;
    for (const auto& h : manager.announced_snapshot()) {
        CHECK(announced.insert(h.raw()).second);  // each hash once
    }
    CHECK(announced == live);
    blocks.clear();
    CHECK(manager.announced_count() == 0);
}
