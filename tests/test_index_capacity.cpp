// PositionalIndex capacity: validation, growth only upward, creates beyond capacity counted.
#include "index_helpers.hpp"

#include <kvbm/index.hpp>

#include <catch2/catch.hpp>

#include <stdexcept>

using kvbm::PositionalIndex;
using namespace kvbm_test;

TEST_CASE("capacity is max_seq_len / block_size, validated", "[index]") {
    const PositionalIndex<> index(4096, 16);
    CHECK(index.capacity() == 256);
    CHECK(index.block_size() == 16);
    CHECK(index.max_seq_len() == 4096);
    CHECK(index.empty());
    CHECK_THROWS_AS(PositionalIndex<>(4096, 0), std::invalid_argument);
    CHECK_THROWS_AS(PositionalIndex<>(4095, 16), std::invalid_argument);
    CHECK_THROWS_AS(PositionalIndex<>(0, 16), std::invalid_argument);
    CHECK(PositionalIndex<>(16, 16).capacity() == 1);
}

TEST_CASE("creates beyond capacity are dropped and counted; removes there are unmatched", "[index]") {
    PositionalIndex<> index(64, 16);  // positions 0..3
    const auto c = chain(1, 6);
    index.apply(creates(7U, c));
    CHECK(index.size() == 4);
    CHECK(index.creates_beyond_capacity() == 2);
    CHECK(index.entries_of(7U) == 4);
    CHECK(index.holders(c[5]).empty());
    CHECK(index.by_position(5).empty());
    const auto m = index.query(c);
    REQUIRE(m);
    CHECK(m->position == 3);
    CHECK(m->hash == c[3]);

    index.apply(removes(7U, {c[5], c[4]}));
    const auto s = index.stats();
    CHECK(s.removes_unmatched == 2);
    CHECK(s.removes == 0);
    CHECK(s.creates == 4);

    SECTION("a batch entirely beyond capacity leaves no trace of the instance") {
        index.apply(creates(8U, {c[4], c[5]}));
        CHECK(index.creates_beyond_capacity() == 4);
        CHECK(index.instances() == std::vector<kvbm::InstanceId>{7U});
    }
}

TEST_CASE("capacity only grows; growth admits deeper creates from then on", "[index]") {
    PositionalIndex<> index(64, 16);
    const auto c = chain(2, 8);
    index.apply(creates(1U, c));
    CHECK(index.size() == 4);

    CHECK_THROWS_AS(index.grow(48), std::invalid_argument);   // smaller
    CHECK_THROWS_AS(index.grow(100), std::invalid_argument);  // not a multiple of 16
    CHECK(index.capacity() == 4);
    index.grow(64);  // equal: no-op
    CHECK(index.capacity() == 4);

    index.grow(128);
    CHECK(index.capacity() == 8);
    CHECK(index.max_seq_len() == 128);
    CHECK(index.size() == 4);  // entries kept, dropped creates stay dropped
    CHECK(index.holders(c[7]).empty());
    index.apply(creates(1U, {c[4], c[5], c[6], c[7]}));
    CHECK(index.size() == 8);
    const auto m = index.query(c);
    REQUIRE(m);
    CHECK(m->position == 7);
    CHECK(index.creates_beyond_capacity() == 4);
}
