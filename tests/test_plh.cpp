// PositionalLineageHash in both layouts: packing, accessors, display, errors, ordering.
#include "vectors.hpp"

#include <kvbm/hash.hpp>

#include <catch2/catch.hpp>

#include <map>
#include <set>
#include <unordered_set>

using kvbm::PositionalLineageHash;
using kvbm::PositionalLineageHashV14;
using kvbm::Uint128;

namespace {
// Every row whose predecessor is also listed can be rebuilt from (current, parent, position).
template <class H>
void check_layout(const char* key) {
    for (const auto& chain : kvbm_test::vectors().at("hash_chains").at(key).at("chains")) {
        const auto& blocks = chain.at("blocks");
        for (std::size_t i = 0; i < blocks.size(); ++i) {
            const auto& b = blocks[i];
            const auto pos = b.at("position").get<std::uint64_t>();
            CAPTURE(chain.at("name").get<std::string>(), pos);
            const auto expected = kvbm_test::hex128(b.at("plh_hex"));
            const H from_raw = H::from_raw(expected);
            CHECK(from_raw.position() == pos);
            CHECK(from_raw.to_string() == b.at("display").get<std::string>());
            CHECK(from_raw.raw().to_string() == b.at("plh_dec").get<std::string>());
            std::optional<std::uint64_t> parent;
            if (pos == 0) {
                parent = std::nullopt;
            } else if (i > 0 && blocks[i - 1].at("position").get<std::uint64_t>() == pos - 1) {
                parent = kvbm_test::u64(blocks[i - 1].at("sequence_hash"));
            } else {
                continue;
            }
            const H made(kvbm_test::u64(b.at("sequence_hash")), parent, pos);
            CHECK(made.raw().to_hex32() == b.at("plh_hex").get<std::string>());
            CHECK(made == from_raw);
        }
    }
}
}  // namespace

TEST_CASE("kvbm 1.2 layout matches every vector", "[plh]") { check_layout<PositionalLineageHash>("kvbm_1_2"); }
TEST_CASE("kvbm 1.4 layout matches every vector", "[plh]") { check_layout<PositionalLineageHashV14>("kvbm_1_4"); }

TEST_CASE("kvbm 1.2 fragments and truncation at mode boundaries", "[plh]") {
    const std::uint64_t all = ~std::uint64_t{0};
    const PositionalLineageHash p0(all, std::nullopt, 0);
    CHECK(p0.mode() == 0);
    CHECK(p0.current_hash_fragment() == (std::uint64_t{1} << 59) - 1);
    CHECK(p0.parent_hash_fragment() == 0);
    // At 255 the current fragment is cut to 55 bits, the width position 256 stores parents with.
    const PositionalLineageHash p255(all, all, 255);
    CHECK(p255.mode() == 0);
    CHECK(p255.position() == 255);
    CHECK(p255.current_hash_fragment() == (std::uint64_t{1} << 55) - 1);
    CHECK(p255.parent_hash_fragment() == (std::uint64_t{1} << 59) - 1);
    const PositionalLineageHash p256(all, all, 256);
    CHECK(p256.mode() == 1);
    CHECK(p256.position() == 256);
    CHECK(p256.parent_hash_fragment() == (std::uint64_t{1} << 55) - 1);
    const PositionalLineageHash p65535(all, all, 65535);
    CHECK(p65535.current_hash_fragment() == (std::uint64_t{1} << 51) - 1);
    const PositionalLineageHash top(all, all, PositionalLineageHash::max_position);
    CHECK(top.mode() == 2);
    CHECK(top.position() == (1U << 24) - 1);
}

TEST_CASE("kvbm 1.4 keeps the full current hash", "[plh]") {
    const std::uint64_t current = 0xfedcba9876543210ULL;
    for (const std::uint64_t pos : {std::uint64_t{1}, std::uint64_t{300}, std::uint64_t{70000}}) {
        const PositionalLineageHashV14 h(current, 0x123456789abcdefULL, pos);
        CHECK(h.position() == pos);
        CHECK(h.current_hash_fragment() == current);
    }
}

TEST_CASE("a position beyond 24 bits is an error", "[plh]") {
    CHECK_THROWS_AS(PositionalLineageHash(1, 2, std::uint64_t{1} << 24), std::out_of_range);
    CHECK_THROWS_AS(PositionalLineageHashV14(1, 2, ~std::uint64_t{0}), std::out_of_range);
    CHECK_NOTHROW(PositionalLineageHash(1, 2, (std::uint64_t{1} << 24) - 1));
}

TEST_CASE("ordering sorts by position; hashing and equality are on the raw value", "[plh]") {
    std::set<PositionalLineageHash> sorted{PositionalLineageHash(5, 1, 300), PositionalLineageHash(9, 1, 2),
                                           PositionalLineageHash(1, 1, 70000),
                                           PositionalLineageHash(3, std::nullopt, 0)};
    std::vector<std::uint64_t> positions;
    for (const auto& h : sorted) {
        positions.push_back(h.position());
    }
    CHECK(positions == std::vector<std::uint64_t>{0, 2, 300, 70000});
    std::unordered_set<PositionalLineageHashV14> set{
        PositionalLineageHashV14(1, 2, 3), PositionalLineageHashV14(1, 2, 3), PositionalLineageHashV14(1, 2, 4)};
    CHECK(set.size() == 2);
    CHECK(PositionalLineageHash{} == PositionalLineageHash::from_raw(Uint128{}));
}

TEST_CASE("base58 matches the Bitcoin alphabet", "[plh]") {
    CHECK(kvbm::base58_u64(0) == "11111111");
    CHECK(kvbm::base58_u64(57) == "1111111z");
    CHECK(kvbm::base58_u64(58) == "111111121");
    const std::uint8_t hello[] = {'h', 'e', 'l', 'l', 'o'};
    CHECK(kvbm::base58(hello) == "Cn8eVZg");
    CHECK(kvbm::base58({}) == "");
}
