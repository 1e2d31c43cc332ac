// PositionalIndex::query: the deepest held hash in any input order, with all its holders.
#include "index_helpers.hpp"

#include <kvbm/index.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <random>

using kvbm::InstanceId;
using kvbm::PositionalIndex;
using namespace kvbm_test;

TEST_CASE("query returns the deepest held hash whatever the input order", "[index]") {
    PositionalIndex<> index(8192, 16);
    const auto held = chain(1, 40);
    index.apply(creates(3U, held));
    // The prompt: 40 held blocks, then 24 new ones extending it.
    auto prompt = chain(2, 64, 1, 40);
    REQUIRE(std::equal(held.begin(), held.end(), prompt.begin()));

    std::mt19937 rng(7);
    for (int round = 0; round < 20; ++round) {
        const auto m = index.query(prompt);
        REQUIRE(m);
        CHECK(m->position == 39);
        CHECK(m->hash == held[39]);
        CHECK(m->holders == std::vector<InstanceId>{3U});
        std::shuffle(prompt.begin(), prompt.end(), rng);
    }
    // Held hashes in the middle of a non-prefix input still count.
    const std::vector<kvbm_test::Plh> scattered{chain(5, 64)[50], held[12], chain(9, 30)[29], held[3]};
    const auto m = index.query(scattered);
    REQUIRE(m);
    CHECK(m->hash == held[12]);
}

TEST_CASE("shared prefixes list every holder, sorted", "[index]") {
    PositionalIndex<> index(8192, 16);
    const auto system = chain(100, 32);           // a popular system prompt
    const auto user_a = chain(101, 48, 100, 32);  // two users extending it
    const auto user_b = chain(102, 40, 100, 32);
    index.apply(creates(30U, user_a));
    index.apply(creates(10U, user_b));
    index.apply(creates(20U, system));

    auto m = index.query(system);
    REQUIRE(m);
    CHECK(m->position == 31);
    CHECK(m->holders == std::vector<InstanceId>{10U, 20U, 30U});

    m = index.query(user_a);
    REQUIRE(m);
    CHECK(m->position == 47);
    CHECK(m->holders == std::vector<InstanceId>{30U});

    // A new user turn on the system prompt matches the prefix everyone holds.
    m = index.query(chain(103, 64, 100, 32));
    REQUIRE(m);
    CHECK(m->position == 31);
    CHECK(m->holders.size() == 3);

    // Dropping the deepest holder moves the answer back to the shared prefix.
    index.apply(removes(30U, std::vector<kvbm_test::Plh>(user_a.rbegin(), user_a.rend() - 32)));
    m = index.query(user_a);
    REQUIRE(m);
    CHECK(m->position == 31);
    CHECK(m->holders == std::vector<InstanceId>{10U, 20U, 30U});
}

TEST_CASE("query misses", "[index]") {
    PositionalIndex<> index(256, 16);  // positions 0..15
    CHECK_FALSE(index.query({}));
    CHECK_FALSE(index.query(chain(1, 8)));
    index.apply(creates(1U, chain(1, 8)));
    CHECK_FALSE(index.query(chain(2, 64)));                                   // other lineage
    CHECK_FALSE(index.query(std::vector<kvbm_test::Plh>{chain(1, 30)[20]}));  // beyond capacity
    CHECK(index.query(chain(1, 30))->position == 7);
}

TEST_CASE("two held hashes at the deepest position: the smaller hash wins", "[index]") {
    PositionalIndex<> index(1024, 16);
    const auto a = chain(1, 4);
    const auto b = chain(2, 4);
    index.apply(creates(1U, a));
    index.apply(creates(2U, b));
    const auto expected = std::min(a[3], b[3]);
    CHECK(index.query(std::vector{a[3], b[3]})->hash == expected);
    CHECK(index.query(std::vector{b[3], a[3]})->hash == expected);
}

namespace {
// A user's own hash type: only what SequenceHash asks for (no ordering, weak std::hash).
struct MyHash {
    std::uint64_t pos = 0;
    std::uint64_t id = 0;
    [[nodiscard]] std::uint64_t position() const { return pos; }
    friend bool operator==(const MyHash&, const MyHash&) = default;
};
}  // namespace
template <>
struct std::hash<MyHash> {
    std::size_t operator()(const MyHash& h) const noexcept { return h.id; }
};

TEST_CASE("any SequenceHash can key the index", "[index]") {
    PositionalIndex<MyHash> index(160, 16);
    std::vector<MyHash> hs;
    for (std::uint64_t i = 0; i < 10; ++i) {
        hs.push_back({i, i * 1000});  // identity std::hash: the index must mix it
    }
    index.apply({kvbm::KvCacheEvents<MyHash>::create(hs), 4U});
    index.apply({kvbm::KvCacheEvents<MyHash>::remove({hs[9]}), 4U});
    const auto m = index.query(hs);
    REQUIRE(m);
    CHECK(m->hash == hs[8]);
    CHECK(m->holders == std::vector<InstanceId>{4U});
}
