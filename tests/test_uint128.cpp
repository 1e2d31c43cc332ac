// Uint128: text and byte round trips at the edges, parse errors, ordering, hashing.
#include <kvbm/uint128.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <unordered_set>

using kvbm::Uint128;
using namespace kvbm::literals;

namespace {
const Uint128 two64 = Uint128::from_parts(1, 0);
const Uint128 u64max = Uint128{~std::uint64_t{0}};
}  // namespace

TEST_CASE("decimal text round-trips at the edges", "[uint128]") {
    const std::pair<Uint128, const char*> cases[] = {
        {Uint128{}, "0"},
        {Uint128{1U}, "1"},
        {u64max, "18446744073709551615"},
        {two64, "18446744073709551616"},
        {Uint128::from_parts(0, 10'000'000'000'000'000'000ULL), "10000000000000000000"},
        {Uint128::from_parts(5, 0x6bc75e2d63100000ULL), "100000000000000000000"},  // 10^20
        {Uint128::max(), "340282366920938463463374607431768211455"},
    };
    for (const auto& [value, text] : cases) {
        CAPTURE(text);
        CHECK(value.to_string() == text);
        CHECK(Uint128::parse(text) == value);
    }
    // 10^38 has 19 zeros inside one chunk: the chunks must be zero padded.
    CHECK((100000000000000000000000000000000000000_u128).to_string() == "100000000000000000000000000000000000000");
    CHECK((100000000000000000010000000000000000001_u128).to_string() == "100000000000000000010000000000000000001");
}

TEST_CASE("hex text round-trips", "[uint128]") {
    CHECK(Uint128{}.to_hex32() == "00000000000000000000000000000000");
    CHECK(two64.to_hex32() == "00000000000000010000000000000000");
    CHECK(Uint128::max().to_hex32() == "ffffffffffffffffffffffffffffffff");
    CHECK(Uint128::parse("ffffffffffffffffffffffffffffffff", 16) == Uint128::max());
    CHECK(Uint128::parse("0000000000000000000000000000000000001", 16) == Uint128{1U});  // leading zeros are fine
    CHECK(Uint128::parse("DeadBeef", 16) == Uint128{0xdeadbeefU});
    char buf[40];
    const auto r = kvbm::to_chars(buf, buf + sizeof(buf), two64, 16);
    REQUIRE(r.ec == std::errc{});
    CHECK(std::string(buf, r.ptr) == "10000000000000000");
}

TEST_CASE("parse errors are reported, never wrapped", "[uint128]") {
    CHECK_THROWS_AS(Uint128::parse(""), std::invalid_argument);
    CHECK_THROWS_AS(Uint128::parse("-1"), std::invalid_argument);
    CHECK_THROWS_AS(Uint128::parse("12a"), std::invalid_argument);
    CHECK_THROWS_AS(Uint128::parse(" 1"), std::invalid_argument);
    CHECK_THROWS_AS(Uint128::parse("340282366920938463463374607431768211456"), std::out_of_range);
    CHECK_THROWS_AS(Uint128::parse("999999999999999999999999999999999999999999"), std::out_of_range);
    CHECK_THROWS_AS(Uint128::parse("100000000000000000000000000000000", 16), std::out_of_range);
    CHECK_THROWS_AS(Uint128::parse("1g", 16), std::invalid_argument);

    Uint128 v{7U};
    const std::string big = "340282366920938463463374607431768211456";
    const auto r = kvbm::from_chars(big.data(), big.data() + big.size(), v);
    CHECK(r.ec == std::errc::result_out_of_range);
    CHECK(r.ptr == big.data() + big.size());
    CHECK(v == Uint128{7U});  // untouched on error

    const std::string partial = "123,";
    const auto p = kvbm::from_chars(partial.data(), partial.data() + partial.size(), v);
    CHECK(p.ec == std::errc{});
    CHECK(*p.ptr == ',');
    CHECK(v == Uint128{123U});
}

TEST_CASE("to_chars reports a short buffer", "[uint128]") {
    char buf[5];
    CHECK(kvbm::to_chars(buf, buf + sizeof(buf), Uint128{123456U}).ec == std::errc::value_too_large);
    CHECK(kvbm::to_chars(buf, buf + sizeof(buf), Uint128{12345U}).ec == std::errc{});
}

TEST_CASE("big-endian bytes round-trip", "[uint128]") {
    for (const Uint128 v :
         {Uint128{}, u64max, two64, Uint128::max(), Uint128::from_parts(0x0102030405060708, 0x090a0b0c0d0e0f10)}) {
        CHECK(Uint128::from_be_bytes(v.to_be_bytes()) == v);
    }
    const auto b = Uint128::from_parts(0x0102030405060708, 0x090a0b0c0d0e0f10).to_be_bytes();
    for (std::size_t i = 0; i < 16; ++i) {
        CHECK(b[i] == i + 1);
    }
}

TEST_CASE("arithmetic, ordering and hashing", "[uint128]") {
    CHECK(u64max + Uint128{1U} == two64);
    CHECK(two64 - Uint128{1U} == u64max);
    CHECK(Uint128{} - Uint128{1U} == Uint128::max());
    CHECK(((Uint128{1U} << 127) >> 127) == Uint128{1U});
    CHECK((Uint128{1U} << 128) == Uint128{});
    CHECK((Uint128{1U} << 64) == two64);
    CHECK(u64max < two64);
    CHECK(two64 > Uint128{5U});
    CHECK(Uint128::max() > two64);
    CHECK_FALSE(static_cast<bool>(Uint128{}));
    std::unordered_set<Uint128> set{Uint128{1U}, two64, Uint128::max(), two64};
    CHECK(set.size() == 3);
    CHECK(std::hash<Uint128>{}(two64) != std::hash<Uint128>{}(Uint128{1U}));
}

#if defined(__SIZEOF_INT128__)
TEST_CASE("interop with the compiler's 128-bit type", "[uint128]") {
    __extension__ using native = unsigned __int128;
    const native n = (static_cast<native>(0x1234) << 64) | 0x5678;
    const Uint128 v{n};
    CHECK(v == Uint128::from_parts(0x1234, 0x5678));
    CHECK(static_cast<native>(v) == n);
}
#endif
