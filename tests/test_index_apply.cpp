// PositionalIndex::apply: Create adds holders, Remove takes them out and prunes, Shutdown
// and remove_instance drop an instance everywhere; every case is counted.
#include "index_helpers.hpp"

#include <kvbm/index.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <tuple>

using kvbm::InstanceId;
using kvbm::PositionalIndex;
using kvbm::Uint128;
using namespace kvbm_test;

namespace {
// Dynamo instance ids are random UUIDs: exercise values above 2^64.
const InstanceId big_a = Uint128::from_parts(0xfedcba9876543210ULL, 1);
const InstanceId big_b = Uint128::from_parts(0x0123456789abcdefULL, 2);
}  // namespace

TEST_CASE("create adds the instance to bucket[position][hash]", "[index]") {
    PositionalIndex<> index(1024, 16);
    const auto c = chain(1, 5);
    index.apply(creates(big_a, c));
    CHECK(index.size() == 5);
    for (std::uint64_t p = 0; p < 5; ++p) {
        const auto at = index.by_position(p);
        REQUIRE(at.size() == 1);
        CHECK(at[0].hash == c[p]);
        CHECK(at[0].position == p);
        CHECK(at[0].holders == std::vector<InstanceId>{big_a});
    }
    CHECK(index.by_position(5).empty());
    CHECK(index.by_position(1000).empty());

    index.apply(creates(big_b, {c[0], c[1]}));
    CHECK(index.size() == 5);
    CHECK(index.holders(c[1]) == std::vector<InstanceId>{big_b, big_a});  // sorted
    CHECK(index.holders(c[2]) == std::vector<InstanceId>{big_a});

    // A second Create of a held hash changes nothing but a counter.
    index.apply(creates(big_a, {c[0]}));
    auto s = index.stats();
    CHECK(s.creates == 7);
    CHECK(s.creates_duplicate == 1);
    CHECK(s.entries == 5);
    CHECK(s.holdings == 7);
    CHECK(s.instances == 2);
    CHECK(s.batches == 3);
}

TEST_CASE("remove takes the instance out and prunes empty entries", "[index]") {
    PositionalIndex<> index(1024, 16);
    const auto c = chain(3, 4);
    index.apply(creates(1U, c));
    index.apply(creates(2U, {c[0], c[1]}));

    index.apply(removes(1U, {c[3], c[1]}));
    CHECK(index.size() == 3);  // c[3] pruned, c[1] still held by 2
    CHECK(index.holders(c[3]).empty());
    CHECK(index.by_position(3).empty());
    CHECK(index.holders(c[1]) == std::vector<InstanceId>{2U});

    // Removes of what the instance does not hold, or from an unknown instance, are counted.
    index.apply(removes(2U, {c[2]}));
    index.apply(removes(99U, {c[0]}));
    index.apply(removes(1U, {c[3]}));
    auto s = index.stats();
    CHECK(s.removes == 2);
    CHECK(s.removes_unmatched == 3);
    CHECK(index.holders(c[2]) == std::vector<InstanceId>{1U});

    index.apply(removes(1U, {c[2], c[0]}));
    index.apply(removes(2U, {c[1], c[0]}));
    CHECK(index.empty());
    CHECK(index.instances().empty());
    CHECK(index.snapshot().empty());
    s = index.stats();
    CHECK(s.holdings == 0);
    CHECK(s.instances == 0);
}

TEST_CASE("shutdown and remove_instance remove the instance everywhere", "[index]") {
    PositionalIndex<> index(4096, 16);
    const auto shared = chain(10, 200);
    const auto own = chain(11, 120, 10, 40);  // shares 40 blocks with `shared`
    index.apply(creates(1U, shared));
    index.apply(creates(2U, own));
    index.apply(creates(3U, {shared[0]}));
    REQUIRE(index.size() == 200 + 80);
    CHECK(index.entries_of(1U) == 200);
    CHECK(index.entries_of(2U) == 120);

    SECTION("Shutdown") {
        index.apply(shutdown(1U));
        CHECK(index.stats().shutdowns == 1);
        CHECK(index.stats().removed_by_shutdown == 200);
    }
    SECTION("remove_instance") {
        CHECK(index.remove_instance(1U) == 200);
        CHECK(index.remove_instance(1U) == 0);   // already gone
        CHECK(index.remove_instance(42U) == 0);  // never seen
    }
    CHECK(index.entries_of(1U) == 0);
    CHECK(index.size() == 120);  // what 2 holds; 3's block is one of them
    CHECK(index.instances() == std::vector<InstanceId>{2U, 3U});
    for (const auto& e : index.snapshot()) {
        CHECK(std::find(e.holders.begin(), e.holders.end(), InstanceId{1U}) == e.holders.end());
    }
    CHECK(index.holders(shared[0]) == std::vector<InstanceId>{2U, 3U});
    CHECK(index.holders(shared[150]).empty());

    index.apply(shutdown(2U));
    index.apply(shutdown(3U));
    CHECK(index.empty());
    CHECK(index.stats().holdings == 0);

    // A returning instance starts afresh (its slot was recycled).
    index.apply(creates(1U, {shared[5]}));
    CHECK(index.holders(shared[5]) == std::vector<InstanceId>{1U});
    CHECK(index.stats().instances == 1);
}

TEST_CASE("snapshot lists every entry by position then hash", "[index]") {
    PositionalIndex<> index(1024, 16);
    index.apply(creates(5U, chain(1, 3)));
    index.apply(creates(6U, chain(2, 3)));
    const auto snap = index.snapshot();
    REQUIRE(snap.size() == 6);
    for (std::size_t i = 1; i < snap.size(); ++i) {
        CHECK(std::tie(snap[i - 1].position, snap[i - 1].hash) < std::tie(snap[i].position, snap[i].hash));
    }
}
