// Uint128: text and byte round trips at the edges, parse errors, ordering, hashing.
#include <kvbm/uint128.hpp>

#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <unordered_set>
#include <vector>

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

namespace {
/// Decimal digits one at a time by Uint128::divmod: a reference independent of the digit
/// writer and reader that to_chars, from_chars and kvbm::json share.
std::string slow_decimal(Uint128 v) {
    std::string s;
    do {
        std::uint64_t digit = 0;
        v = v.divmod(10, digit);
        s.insert(s.begin(), static_cast<char>('0' + digit));
    } while (v);
    return s;
}
}  // namespace

TEST_CASE("decimal text of every digit count, chunk boundary and random value", "[uint128]") {
    std::vector<Uint128> values{Uint128::max(), Uint128::max() - Uint128{1U}};
    Uint128 power{1U};
    for (int k = 0; k <= 38; ++k, (void)power.checked_mul_add(10, 0, power)) {  // 10^k - 1, 10^k, 10^k + 1
        values.insert(values.end(), {power - Uint128{1U}, power, power + Uint128{1U}});
    }
    for (unsigned k = 0; k < 128; ++k) {  // 2^k - 1, 2^k, 2^k + 1
        const Uint128 p = Uint128{1U} << k;
        values.insert(values.end(), {p - Uint128{1U}, p, p + Uint128{1U}});
    }
    std::mt19937_64 rng(128);
    for (int i = 0; i < 20000; ++i) {
        const auto bits = static_cast<unsigned>(rng() % 129);  // every magnitude
        values.push_back((Uint128::from_parts(rng(), rng())) >> (128 - bits));
    }
    for (const Uint128& v : values) {
        const std::string want = slow_decimal(v);
        CAPTURE(want);
        char buf[39];
        const auto w = kvbm::to_chars(buf, buf + sizeof(buf), v);
        REQUIRE(w.ec == std::errc{});
        REQUIRE(std::string(buf, w.ptr) == want);
        CHECK(kvbm::to_chars(buf, buf + want.size() - 1, v).ec == std::errc::value_too_large);
        Uint128 back;
        const std::string zeros = "000" + want;  // from_chars, unlike JSON, allows leading zeros
        const auto r = kvbm::from_chars(zeros.data(), zeros.data() + zeros.size(), back);
        REQUIRE(r.ec == std::errc{});
        CHECK(r.ptr == zeros.data() + zeros.size());
        CHECK(back == v);
    }
    // One past the largest value, and 40 significant digits, are out of range; zeros alone are 0.
    for (const std::string text :
         {"340282366920938463463374607431768211456", "1000000000000000000000000000000000000000",
          "999999999999999999999999999999999999999"}) {
        Uint128 v{7U};
        const auto r = kvbm::from_chars(text.data(), text.data() + text.size(), v);
        CHECK(r.ec == std::errc::result_out_of_range);
        CHECK(r.ptr == text.data() + text.size());
        CHECK(v == Uint128{7U});
    }
    const std::string zeros(60, '0');
    Uint128 z{7U};
    CHECK(kvbm::from_chars(zeros.data(), zeros.data() + zeros.size(), z).ec == std::errc{});
    CHECK(z == Uint128{});
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
