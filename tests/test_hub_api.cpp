// kvbm-hub's API core without sockets: lease expiry and sweeping, and many threads
// registering, renewing, unregistering and querying while ingest applies batches and the
// sweeper expires leases (run under TSan).
#include "../examples/kvbm-hub/hub_api.hpp"

#include <kvbm/prometheus.hpp>

#include <catch2/catch.hpp>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using kvbm_hub::ApiOptions;
using kvbm_hub::Clock;
using kvbm_hub::Hash;
using kvbm_hub::HubApi;
using kvbm_hub::LeaseTable;

namespace {

kvbm::KvbmCacheEvents<Hash> creates(std::uint64_t instance, std::uint64_t seed, std::uint64_t n) {
    std::vector<Hash> hashes;
    for (std::uint64_t i = 0; i < n; ++i) {
        hashes.push_back(Hash::from_raw(kvbm::Uint128{i} << 118 | kvbm::Uint128{seed * 131 + i + 1}));
    }
    return {kvbm::KvCacheEvents<Hash>::create(std::move(hashes)), kvbm::InstanceId{instance}};
}

std::string register_body(std::uint64_t id) {
    return R"({"instance_id":")" + std::to_string(id) + R"(","block_size":16})";
}

}  // namespace

TEST_CASE("LeaseTable: grant, renew, revoke, expire in order") {
    LeaseTable leases(100ms);
    const auto t0 = Clock::now();
    CHECK(leases.grant(kvbm::InstanceId{1}, t0));
    CHECK_FALSE(leases.grant(kvbm::InstanceId{1}, t0));  // a renewal, not new
    CHECK(leases.grant(kvbm::InstanceId{2}, t0));
    CHECK_FALSE(leases.renew(kvbm::InstanceId{3}, t0));
    CHECK(leases.revoke(kvbm::InstanceId{2}));
    CHECK_FALSE(leases.revoke(kvbm::InstanceId{2}));
    CHECK(leases.ids() == std::vector<kvbm::InstanceId>{kvbm::InstanceId{1}});
    std::atomic<bool> stop{false};
    const auto expired = leases.wait_expired(stop);
    CHECK(expired == std::vector<kvbm::InstanceId>{kvbm::InstanceId{1}});
    CHECK(Clock::now() - t0 >= 100ms);
    CHECK(leases.size() == 0);

    std::thread stopper([&] {
        std::this_thread::sleep_for(20ms);
        stop.store(true);
        leases.wake();
    });
    CHECK(leases.wait_expired(stop).empty());  // woken by stop, nothing registered
    stopper.join();
}

TEST_CASE("HubApi: a lease that runs out is swept from the index; others stay") {
    kvbm::PositionalIndex<Hash> index(4096, 16);
    LeaseTable leases(50ms);
    HubApi api(index, leases, ApiOptions{});
    REQUIRE(api.handle("POST", "/v1/instances", std::nullopt, register_body(1)).status == 200);
    index.apply(creates(1, 1, 8));
    index.apply(creates(2, 2, 8));  // published without registering: never swept by a lease
    std::atomic<bool> stop{false};
    api.sweep_expired(leases.wait_expired(stop));
    CHECK(index.entries_of(kvbm::InstanceId{1}) == 0);
    CHECK(index.entries_of(kvbm::InstanceId{2}) == 8);
    CHECK(api.leases_expired() == 1);
    CHECK(api.handle("POST", "/v1/instances/1/keepalive", std::nullopt, "").status == 404);
}

TEST_CASE("HubApi: late batches of a swept or unregistered instance are dropped until it registers again") {
    kvbm::PositionalIndex<Hash> index(4096, 16);
    LeaseTable leases(50ms);
    HubApi api(index, leases, ApiOptions{});
    const kvbm::InstanceId dead{7};
    const kvbm::InstanceId left{8};
    const kvbm::InstanceId stranger{9};
    REQUIRE(api.handle("POST", "/v1/instances", std::nullopt, register_body(7)).status == 200);
    REQUIRE(api.handle("POST", "/v1/instances", std::nullopt, register_body(8)).status == 200);
    CHECK(api.apply(creates(7, 1, 8)));
    CHECK(api.apply(creates(8, 2, 8)));

    // 7 dies without a word: its lease runs out and it is swept; 8 unregisters.
    std::atomic<bool> stop{false};
    api.sweep_expired({dead});
    REQUIRE(leases.revoke(dead));
    REQUIRE(api.handle("DELETE", "/v1/instances/8", std::nullopt, "").status == 200);
    REQUIRE(index.entries_of(dead) == 0);
    REQUIRE(index.entries_of(left) == 0);

    // Their batches still in flight arrive: dropped, counted, the view stays right.
    CHECK_FALSE(api.apply(creates(7, 3, 8)));
    CHECK_FALSE(api.apply(creates(8, 4, 8)));
    CHECK(index.entries_of(dead) == 0);
    CHECK(index.entries_of(left) == 0);
    CHECK(api.batches_dropped_swept() == 2);
    CHECK(api.handle("GET", "/metrics", std::nullopt, "").status == 200);

    // One that never registered is indexed (and never swept), as on the Rust hub.
    CHECK(api.apply(creates(9, 5, 8)));
    CHECK(index.entries_of(stranger) == 8);

    // 7 was alive after all: its keepalive says 404, it registers again, and its batches (the
    // resync) count again.
    CHECK(api.handle("POST", "/v1/instances/7/keepalive", std::nullopt, "").status == 404);
    REQUIRE(api.handle("POST", "/v1/instances", std::nullopt, register_body(7)).status == 200);
    CHECK(api.apply(creates(7, 6, 8)));
    CHECK(index.entries_of(dead) == 8);
    CHECK(api.tombstone_ttl() >= std::chrono::minutes(1));
    stop.store(true);
}

TEST_CASE("HubApi with require_lease: only leased instances are indexed, so every one can be swept") {
    kvbm::PositionalIndex<Hash> index(4096, 16);
    LeaseTable leases(10s);
    ApiOptions options;
    options.require_lease = true;
    HubApi api(index, leases, options);
    const kvbm::InstanceId worker{7};
    const kvbm::InstanceId stranger{9};

    // A stranger (or a Rust worker, which does not register) is dropped, counted, not indexed.
    CHECK_FALSE(api.apply(creates(9, 1, 8)));
    CHECK(index.entries_of(stranger) == 0);
    CHECK(api.batches_dropped_unleased() == 1);
    CHECK(api.batches_dropped_swept() == 0);

    // A registered worker is indexed; once its lease is gone (expired or deleted), its late
    // batches are dropped (as swept ones), and a stranger's still are.
    REQUIRE(api.handle("POST", "/v1/instances", std::nullopt, register_body(7)).status == 200);
    CHECK(api.apply(creates(7, 2, 8)));
    CHECK(index.entries_of(worker) == 8);
    REQUIRE(api.handle("DELETE", "/v1/instances/7", std::nullopt, "").status == 200);
    CHECK(index.entries_of(worker) == 0);
    CHECK_FALSE(api.apply(creates(7, 3, 8)));
    CHECK(index.entries_of(worker) == 0);
    CHECK(api.batches_dropped_swept() == 1);
    CHECK_FALSE(api.apply(creates(9, 4, 8)));
    CHECK(api.batches_dropped_unleased() == 2);
    CHECK(index.stats().entries == 0);

    // The counter is exported.
    CHECK(kvbm::prometheus::render(api).find("\nkvbm_hub_batches_dropped_unleased_total 2\n") != std::string::npos);
}

TEST_CASE("HubApi: concurrent registrations, keepalives, deletes, queries, ingest and sweeping") {
    kvbm::PositionalIndex<Hash> index(4096, 16);
    LeaseTable leases(5ms);  // short: the sweeper races everything else
    HubApi api(index, leases, ApiOptions{});
    std::atomic<bool> stop{false};
    std::thread sweeper([&] {
        while (!stop.load()) {
            api.sweep_expired(leases.wait_expired(stop));
        }
    });
    std::vector<std::thread> threads;
    std::atomic<int> bad{0};
    for (std::uint64_t t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            for (std::uint64_t i = 0; i < 300; ++i) {
                const std::uint64_t id = t * 1000 + i % 7;
                const auto id_path = "/v1/instances/" + std::to_string(id);
                const int reg = api.handle("POST", "/v1/instances", std::nullopt, register_body(id)).status;
                (void)api.apply(creates(id, i, 6));  // dropped if the sweeper got there first
                const int ka = api.handle("POST", id_path + "/keepalive", std::nullopt, "").status;
                const auto q = api.handle("POST", "/v1/features/indexer/query", std::nullopt,
                                          R"({"hashes":[1,2,3,"4",[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,5]]})");
                const int del = i % 3 == 0 ? api.handle("DELETE", id_path, std::nullopt, "").status : 200;
                (void)api.handle("GET", "/v1/features/indexer/instances", std::nullopt, "");
                if (reg != 200 || (ka != 200 && ka != 404) || q.status != 200 || (del != 200 && del != 404)) {
                    ++bad;
                }
            }
        });
    }
    for (auto& th : threads) {
        th.join();
    }
    // Let every lease run out: the sweeper ends them all.
    REQUIRE(leases.size() <= 28);
    const auto deadline = Clock::now() + 10s;
    while (leases.size() != 0 && Clock::now() < deadline) {
        std::this_thread::sleep_for(1ms);
    }
    stop.store(true);
    leases.wake();
    sweeper.join();
    CHECK(bad.load() == 0);
    CHECK(leases.size() == 0);
    CHECK(api.leases_expired() + api.unregistrations() >= 28);
    // Every batch came from a registered instance, and every one of them was swept since:
    // nothing may be left (a sweep never falls between a batch's check and its apply).
    CHECK(index.stats().entries == 0);
    CHECK(api.http_counters().get(kvbm_hub::Route::register_instance, 200) == 1200);
}

TEST_CASE("LeaseFile: round trip, no file, and a file it did not write") {
    const std::string path =
        (std::filesystem::temp_directory_path() / ("kvbm-leases-" + std::to_string(::getpid()) + ".leases")).string();
    kvbm_hub::LeaseFile file(path);
    std::filesystem::remove(path);
    CHECK(file.load().empty());  // no file: nothing restored
    const std::vector<kvbm::InstanceId> ids{kvbm::InstanceId{1}, kvbm::Uint128::from_parts(7, 3), kvbm::Uint128::max()};
    REQUIRE(file.save(ids));
    CHECK(file.load() == ids);
    REQUIRE(file.save({}));
    CHECK(file.load().empty());

    const auto write = [&](const std::string& text) {
        std::ofstream out(path, std::ios::trunc);
        out << text;
    };
    write("not a lease file\n1\n");
    CHECK_THROWS_WITH(file.load(), Catch::Contains("line 1"));
    write(std::string(kvbm_hub::LeaseFile::header) + "\n12\n12x\n");
    CHECK_THROWS_WITH(file.load(), Catch::Contains("line 3"));
    write(std::string(kvbm_hub::LeaseFile::header) + "\n340282366920938463463374607431768211456\n");  // 2^128
    CHECK_THROWS_WITH(file.load(), Catch::Contains("line 2"));
    std::filesystem::remove(path);
}
