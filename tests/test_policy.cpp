// Emission policies: PowerOfTwoPolicy's range and validation, AllEventsPolicy, user
// policies through the EventEmissionPolicy concept and AnyEmissionPolicy.
#include <kvbm/policy.hpp>

#include "pipeline_hashes.hpp"

#include <catch2/catch.hpp>

#include <initializer_list>
#include <stdexcept>

using kvbm::AllEventsPolicy;
using kvbm::AnyEmissionPolicy;
using kvbm::PositionalLineageHash;
using kvbm::PowerOfTwoPolicy;
using kvbm_test::hash_at;

namespace {
struct EvenPositions {
    [[nodiscard]] bool should_emit(const PositionalLineageHash& h) const { return h.position() % 2 == 0; }
};
struct NotAPolicy {};
}  // namespace

static_assert(kvbm::EventEmissionPolicy<AllEventsPolicy>);
static_assert(kvbm::EventEmissionPolicy<PowerOfTwoPolicy>);
static_assert(kvbm::EventEmissionPolicy<EvenPositions>);
static_assert(!kvbm::EventEmissionPolicy<NotAPolicy>);
// A range fixed at compile time is checked at compile time.
static_assert(PowerOfTwoPolicy(32, 128).should_emit_position(64));

TEST_CASE("PowerOfTwoPolicy default range is [16, 65536], inclusive", "[policy]") {
    const PowerOfTwoPolicy p;
    CHECK(p.min_position() == 16);
    CHECK(p.max_position() == 65536);
    for (const std::uint64_t pos :
         std::initializer_list<std::uint64_t>{16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536}) {
        CHECK(p.should_emit(hash_at(pos)));
    }
    for (const std::uint64_t pos : std::initializer_list<std::uint64_t>{0, 1, 2, 4, 8, 15, 17, 31, 33, 63, 65, 100,
                                                                        1000, 10000, 65535, 65537, 131072}) {
        CHECK_FALSE(p.should_emit(hash_at(pos)));
    }
}

TEST_CASE("PowerOfTwoPolicy custom range", "[policy]") {
    const PowerOfTwoPolicy p(32, 128);
    CHECK(p.should_emit(hash_at(32)));
    CHECK(p.should_emit(hash_at(64)));
    CHECK(p.should_emit(hash_at(128)));
    CHECK_FALSE(p.should_emit(hash_at(16)));
    CHECK_FALSE(p.should_emit(hash_at(256)));
    CHECK_FALSE(p.should_emit(hash_at(96)));

    const PowerOfTwoPolicy one(1, 1);
    CHECK(one.should_emit(hash_at(1)));
    CHECK_FALSE(one.should_emit(hash_at(0)));
    CHECK_FALSE(one.should_emit(hash_at(2)));
}

TEST_CASE("PowerOfTwoPolicy rejects an empty range and bounds that are not powers of two", "[policy]") {
    CHECK_THROWS_AS(PowerOfTwoPolicy(128, 32), std::invalid_argument);
    CHECK_THROWS_WITH(PowerOfTwoPolicy(128, 32), Catch::Contains("empty range [128, 32]"));
    CHECK_THROWS_AS(PowerOfTwoPolicy(0, 16), std::invalid_argument);
    CHECK_THROWS_AS(PowerOfTwoPolicy(16, 100), std::invalid_argument);
    CHECK_THROWS_WITH(PowerOfTwoPolicy(10, 16), Catch::Contains("powers of two"));
}

TEST_CASE("AllEventsPolicy emits for every position", "[policy]") {
    const AllEventsPolicy p;
    for (const std::uint64_t pos : std::initializer_list<std::uint64_t>{0, 1, 3, 17, 65537, 1000000}) {
        CHECK(p.should_emit(hash_at(pos)));
    }
}

TEST_CASE("AnyEmissionPolicy wraps any policy, AllEventsPolicy by default", "[policy]") {
    const AnyEmissionPolicy<> all;
    CHECK(all.should_emit(hash_at(17)));

    const AnyEmissionPolicy<> pow2 = PowerOfTwoPolicy(16, 64);
    CHECK(pow2.should_emit(hash_at(32)));
    CHECK_FALSE(pow2.should_emit(hash_at(33)));
    CHECK_FALSE(pow2.should_emit(hash_at(128)));

    const AnyEmissionPolicy<> even = EvenPositions{};
    const AnyEmissionPolicy<> copy = even;  // NOLINT(performance-unnecessary-copy-initialization)
    CHECK(copy.should_emit(hash_at(2)));
    CHECK_FALSE(copy.should_emit(hash_at(3)));
}
