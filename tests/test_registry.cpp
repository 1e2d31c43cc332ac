// Block registry: shared registrations, re-registration of a live hash, typed attachments
// (unique ones replace and release), release order (hash leaves first, attachments after,
// outside the lock), snapshots, and per-hash event order under concurrent churn.
#include <kvbm/registry.hpp>

#include "pipeline_hashes.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

using kvbm::BlockRegistrationHandle;
using kvbm::BlockRegistry;
using kvbm::PositionalLineageHash;
using kvbm_test::hash_at;

namespace {

using Log = std::vector<std::string>;

// Records its own destruction (a moved-from tracker records nothing).
struct Tracker {
    Tracker(std::shared_ptr<Log> l, std::string n) : log(std::move(l)), name(std::move(n)) {}
    Tracker(Tracker&& o) noexcept : log(std::move(o.log)), name(std::move(o.name)) {}
    Tracker& operator=(Tracker&&) = delete;
    ~Tracker() {
        if (log) {
            log->push_back("~" + name);
        }
    }
    std::shared_ptr<Log> log;
    std::string name;
};

struct CountingObserver {
    std::atomic<int> calls{0};
    void on_block_registered(const BlockRegistrationHandle<>& /*handle*/) { ++calls; }
};

}  // namespace

TEST_CASE("registering a live hash returns the same registration, without a second notice", "[registry]") {
    auto observer = std::make_shared<CountingObserver>();
    const BlockRegistry<> registry(observer);
    const auto h = hash_at(3);

    auto a = registry.register_hash(h);
    CHECK(observer->calls == 1);
    auto b = registry.register_hash(h);
    CHECK(observer->calls == 1);
    CHECK(a == b);
    CHECK(a.use_count() == 2);
    CHECK(a.hash() == h);
    CHECK(registry.contains(h));
    REQUIRE(registry.find(h).has_value());
    CHECK(*registry.find(h) == a);
    CHECK(registry.snapshot() == std::vector<PositionalLineageHash>{h});

    a.attach_unique(7);
    b = BlockRegistrationHandle<>(a);  // copies share too
    CHECK(b.has_unique<int>());

    // The registration lives while any handle does.
    a = registry.register_hash(hash_at(4));
    CHECK(observer->calls == 2);
    CHECK(registry.contains(h));
    b = a;
    CHECK_FALSE(registry.contains(h));
    CHECK_FALSE(registry.find(h).has_value());

    // A new registration of the same hash is a new one: fresh attachments, a new notice.
    auto c = registry.register_hash(h);
    CHECK(observer->calls == 3);
    CHECK_FALSE(c.has_unique<int>());
}

TEST_CASE("a registry without an observer registers all the same", "[registry]") {
    const BlockRegistry<> registry;
    auto a = registry.register_hash(hash_at(1));
    CHECK(registry.contains(hash_at(1)));
    CHECK_FALSE(registry.contains(hash_at(2)));
}

TEST_CASE("a unique attachment replaces, and so releases, the previous one", "[registry]") {
    auto log = std::make_shared<Log>();
    const BlockRegistry<> registry;
    auto handle = registry.register_hash(hash_at(5));

    handle.attach_unique(Tracker(log, "a"));
    CHECK(log->empty());
    handle.attach_unique(Tracker(log, "b"));
    CHECK(*log == Log{"~a"});
    std::string seen;
    CHECK(handle.with_unique<Tracker>([&](Tracker& t) { seen = t.name; }));
    CHECK(seen == "b");
    CHECK_FALSE(handle.with_unique<int>([](int&) {}));

    CHECK(handle.detach_unique<Tracker>());
    CHECK(*log == Log{"~a", "~b"});
    CHECK_FALSE(handle.detach_unique<Tracker>());
    CHECK_FALSE(handle.has_unique<Tracker>());
}

TEST_CASE("multiple attachments of a type accumulate, apart from the unique one", "[registry]") {
    auto log = std::make_shared<Log>();
    const BlockRegistry<> registry;
    {
        auto handle = registry.register_hash(hash_at(6));
        handle.attach(Tracker(log, "m1"));
        handle.attach(Tracker(log, "m2"));
        handle.attach_unique(Tracker(log, "u"));
        std::vector<std::string> names;
        CHECK(handle.for_each<Tracker>([&](Tracker& t) { names.push_back(t.name); }) == 2);
        CHECK(names == std::vector<std::string>{"m1", "m2"});
        std::string unique;
        CHECK(handle.with_unique<Tracker>([&](const Tracker& t) { unique = t.name; }));
        CHECK(unique == "u");
        auto other = handle;
        handle = registry.register_hash(hash_at(7));
        CHECK(log->empty());  // `other` still holds the registration
    }
    std::sort(log->begin(), log->end());
    CHECK(*log == Log{"~m1", "~m2", "~u"});
}

namespace {
// An attachment that, while being released, looks the hash up in the registry. If the
// registry lock were held here, these calls would deadlock.
struct Witness {
    Witness(BlockRegistry<> r, PositionalLineageHash h, std::shared_ptr<Log> l)
        : registry(std::move(r)), hash(h), log(std::move(l)) {}
    // Copies the registry handle: the moved-from witness's destructor still looks it up.
    Witness(Witness&& o) noexcept
        : registry(o.registry),  // NOLINT(performance-move-constructor-init)
          hash(o.hash),
          log(std::move(o.log)) {}
    Witness& operator=(Witness&&) = delete;
    ~Witness() {
        if (log) {
            log->push_back(registry.contains(hash) ? "contained" : "gone");
            log->push_back(registry.find(hash) ? "found" : "not found");
            log->push_back(registry.snapshot().empty() ? "snapshot empty" : "snapshot has it");
        }
    }
    BlockRegistry<> registry;
    PositionalLineageHash hash;
    std::shared_ptr<Log> log;
};
}  // namespace

TEST_CASE("when the last handle goes, the hash leaves the registry before attachments are released", "[registry]") {
    auto log = std::make_shared<Log>();
    const BlockRegistry<> registry;
    const auto h = hash_at(9);
    {
        auto handle = registry.register_hash(h);
        handle.attach_unique(Witness(registry, h, log));
        CHECK(registry.contains(h));
    }
    CHECK(*log == Log{"gone", "not found", "snapshot empty"});
    CHECK_FALSE(registry.contains(h));
}

TEST_CASE("snapshot_function does not keep the registry alive", "[registry]") {
    std::function<std::vector<PositionalLineageHash>()> snap;
    std::optional<BlockRegistrationHandle<>> handle;
    {
        const BlockRegistry<> registry;
        snap = registry.snapshot_function();
        handle = registry.register_hash(hash_at(2));
        { auto dropped = registry.register_hash(hash_at(3)); }
        CHECK(snap() == std::vector<PositionalLineageHash>{hash_at(2)});
    }
    // The registry object is gone but a registration lives: the snapshot still sees it.
    CHECK(snap() == std::vector<PositionalLineageHash>{hash_at(2)});
    handle.reset();
    CHECK(snap().empty());
}

namespace {
// Logs Create when told of a new registration and Remove when that registration's
// attachment is released: the order a channel would see.
struct OrderObserver {
    std::mutex mutex;
    std::map<std::uint64_t, std::string> per_hash;  // position -> "CRCR..."

    void record(std::uint64_t position, char what) {
        std::lock_guard lock(mutex);
        per_hash[position].push_back(what);
    }
    struct RemoveOnRelease {
        OrderObserver* owner;
        std::uint64_t position;
        explicit RemoveOnRelease(OrderObserver* o, std::uint64_t p) : owner(o), position(p) {}
        RemoveOnRelease(RemoveOnRelease&& o) noexcept : owner(std::exchange(o.owner, nullptr)), position(o.position) {}
        RemoveOnRelease& operator=(RemoveOnRelease&&) = delete;
        ~RemoveOnRelease() {
            if (owner != nullptr) {
                owner->record(position, 'R');
            }
        }
    };
    void on_block_registered(const BlockRegistrationHandle<>& handle) {
        record(handle.hash().position(), 'C');
        handle.attach_unique(RemoveOnRelease(this, handle.hash().position()));
    }
};
}  // namespace

TEST_CASE("under concurrent churn each hash's Create and Remove alternate", "[registry][concurrency]") {
    auto observer = std::make_shared<OrderObserver>();
    std::vector<std::string> histories;
    {
        const BlockRegistry<> registry(observer);
        constexpr int threads = 4;
        constexpr int iterations = 4000;
        std::vector<std::thread> workers;
        for (int t = 0; t < threads; ++t) {
            workers.emplace_back([&registry, t] {
                std::mt19937 rng(static_cast<unsigned>(t) + 1);
                std::vector<BlockRegistrationHandle<>> held;
                for (int i = 0; i < iterations; ++i) {
                    const auto pos = rng() % 8;
                    held.push_back(registry.register_hash(hash_at(pos)));
                    if (held.size() > 3 || rng() % 2 == 0) {
                        held.erase(held.begin() + static_cast<long>(rng() % held.size()));
                    }
                }
            });
        }
        for (auto& w : workers) {
            w.join();
        }
        CHECK(registry.snapshot().empty());
    }
    std::lock_guard lock(observer->mutex);
    REQUIRE(observer->per_hash.size() == 8);
    for (const auto& [pos, history] : observer->per_hash) {
        INFO("position " << pos);
        REQUIRE(history.size() % 2 == 0);
        bool alternates = true;
        for (std::size_t i = 0; i < history.size(); ++i) {
            alternates = alternates && history[i] == (i % 2 == 0 ? 'C' : 'R');
        }
        CHECK(alternates);
    }
}
