// The JSON parser accepts exactly what serde_json accepts: 167 edge cases (tests/data/
// json_cases.json, verdicts recorded from serde_json 1.0.87 for both types and flavours);
// the number writer agrees with the exact decimal conversion on edge and random values.
#include "codec_vectors.hpp"

#include <kvbm/json_text.hpp>

#include <catch2/catch.hpp>

#include <fstream>
#include <random>

using kvbm::JsonFlavor;
namespace kj = kvbm::json;

namespace {
const nlohmann::json& cases() {
    static const nlohmann::json doc = [] {
        std::ifstream in(std::string(KVBM_TEST_DATA_DIR) + "/json_cases.json");
        REQUIRE(in);
        return nlohmann::json::parse(in);
    }();
    return doc.at("cases");
}
}  // namespace

TEST_CASE("serde_json's verdict on every edge case, for both types and flavours") {
    std::size_t checked = 0;
    for (const auto& c : cases()) {
        const std::string text = c.at("json");
        for (const auto flavor : {JsonFlavor::kvbm_1_2, JsonFlavor::kvbm_1_3}) {
            const std::string f = flavor == JsonFlavor::kvbm_1_2 ? "kvbm_1_2" : "kvbm_1_3";
            const auto batch = kj::parse_batch(text, flavor);
            const auto event = kj::parse_event(text, flavor);
            INFO(text.substr(0, 200) << " [" << f << "] batch: " << (batch ? "accepted" : batch.error().message())
                                     << " / event: " << (event ? "accepted" : event.error().message()));
            CHECK(batch.has_value() == c.at("batch_" + f).get<bool>());
            CHECK(event.has_value() == c.at("event_" + f).get<bool>());
            if (batch && flavor == JsonFlavor::kvbm_1_2) {  // and the same value as serde
                CHECK(kj::to_string(*batch, flavor) == c.at("serde_kvbm_1_2").get<std::string>());
            }
            if (!batch) {
                CHECK(batch.error().offset <= text.size());
                CHECK(batch.error().reason.find(" at line ") != std::string::npos);
            }
            checked += 2;
        }
    }
    CHECK(checked == 4 * cases().size());
}

TEST_CASE("a 16-byte string is a 1.3 hash (serde's deserialize_bytes), escapes decoded") {
    const auto r =
        kj::parse_batch(R"({"events":{"Create":["\u0000AAAAAAAAAAAAA\/\\"]},"instance_id":1})", JsonFlavor::kvbm_1_3);
    REQUIRE(r);
    const auto bytes = r->events.hashes.at(0).raw().to_be_bytes();
    CHECK(bytes[0] == 0);
    CHECK(bytes[1] == 'A');
    CHECK(bytes[14] == '/');
    CHECK(bytes[15] == '\\');
    // A lone surrogate is kept as its 3-byte WTF-8 form, as serde_json does for bytes.
    const auto lone = kj::parse_event(R"({"Create":"\ud800AAAAAAAAAAAAA"})", JsonFlavor::kvbm_1_3);
    REQUIRE(lone);
    CHECK(lone->hash.raw().to_be_bytes()[0] == 0xed);
    CHECK(lone->hash.raw().to_be_bytes()[1] == 0xa0);
}

TEST_CASE("names must be valid UTF-8; skipped values only valid JSON (serde_json::from_slice)") {
    using namespace std::string_literals;
    CHECK(!kj::parse_batch("{\"events\":\"Shutdown\",\"instance_id\":1,\"\xff\":1}"s, JsonFlavor::kvbm_1_2));
    CHECK(!kj::parse_batch("{\"events\":\"Shut\xc3\"}"s, JsonFlavor::kvbm_1_2));
    CHECK(kj::parse_batch("{\"events\":\"Shutdown\",\"instance_id\":1,\"x\":\"\xff\"}"s, JsonFlavor::kvbm_1_2));
    CHECK(kj::parse_batch("{\"events\":\"Shutdown\",\"instance_id\":1,\"\xc3\xa9\":1}"s, JsonFlavor::kvbm_1_2));
    CHECK(kj::parse_batch("{\"events\":\"Shutdown\",\"instance_id\":1,\"\xf0\x9f\x98\x80\":1}"s, JsonFlavor::kvbm_1_2));
    for (const auto* bad : {"\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe0\x80\x80", "\xc3"}) {
        CHECK(!kj::parse_batch("{\"events\":\"Shutdown\",\"instance_id\":1,\""s + bad + "\":1}", JsonFlavor::kvbm_1_2));
    }
}

TEST_CASE("u128 text equals the exact decimal conversion") {
    std::vector<kvbm::Uint128> values;
    for (unsigned bit = 0; bit < 128; ++bit) {
        const auto p = kvbm::Uint128{1U} << bit;
        values.insert(values.end(), {p, p - kvbm::Uint128{1U}, p + kvbm::Uint128{1U}});
    }
    kvbm::Uint128 ten{1U};
    for (int i = 0; i <= 38; ++i) {
        values.insert(values.end(), {ten, ten - kvbm::Uint128{1U}, ten + kvbm::Uint128{1U}});
        (void)ten.checked_mul_add(10, 0, ten);
    }
    values.push_back(kvbm::Uint128::max());
    std::mt19937_64 rng(20240607);
    for (int i = 0; i < 200000; ++i) {
        const auto shift = static_cast<unsigned>(rng() % 128);
        values.push_back(kvbm::Uint128::from_parts(rng(), rng()) >> shift);
    }
    for (const auto& v : values) {
        const kvbm_test::Batch b{kvbm::KvCacheEvents<>::remove({kvbm::PositionalLineageHash::from_raw(v)}), v};
        const std::string text = kj::to_string(b, JsonFlavor::kvbm_1_2);
        const std::string d = v.to_string();
        REQUIRE(text == R"({"events":{"Remove":[)" + d + R"(]},"instance_id":)" + d + "}");
        const auto back = kj::parse_batch(text, JsonFlavor::kvbm_1_2);
        REQUIRE(back);
        REQUIRE(*back == b);
    }
}

TEST_CASE("the 1.4 layout and user hash types parse and print the same way") {
    using H14 = kvbm::PositionalLineageHashV14;
    const kvbm::KvbmCacheEvents<H14> b{kvbm::KvCacheEvents<H14>::create({H14(7, 3, 300), H14(1, std::nullopt, 0)}),
                                       kvbm::Uint128::max()};
    for (const auto flavor : {JsonFlavor::kvbm_1_2, JsonFlavor::kvbm_1_3}) {
        const auto back = kj::parse_batch<H14>(kj::to_string(b, flavor), flavor);
        REQUIRE(back);
        CHECK(*back == b);
    }
}
