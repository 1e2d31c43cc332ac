// JSON text against the reference's golden vectors: both flavours equal serde_json's bytes
// and parse back to the same values; every `malformed_json` case gets serde_json's verdict
// in each flavour.
#include "codec_vectors.hpp"

#include <kvbm/json_text.hpp>
#if KVBM_TEST_HAVE_XXHASH
#include <kvbm/tokens.hpp>
#endif

#include <catch2/catch.hpp>

using kvbm::JsonFlavor;
namespace kj = kvbm::json;

namespace {
constexpr std::pair<JsonFlavor, const char*> flavours[] = {{JsonFlavor::kvbm_1_2, "json_kvbm_1_2"},
                                                           {JsonFlavor::kvbm_1_3, "json_kvbm_1_3"}};
}  // namespace

TEST_CASE("every events vector prints as serde_json's text in both flavours and parses back") {
    std::size_t checked = 0;
    for (const auto& vec : kvbm_test::events_vectors()) {
        const std::string name = vec.at("name");
        for (const auto& [flavor, key] : flavours) {
            INFO(name << ' ' << key);
            if (vec.at("type") == "KvCacheEvent") {
                const auto e = kvbm_test::vector_event(vec);
                const std::string want = vec.at(key);
                CHECK(kj::to_string(e, flavor) == want);
                const auto back = kj::parse_event(want, flavor);
                REQUIRE(back);
                CHECK(*back == e);
                ++checked;
                continue;
            }
            const auto b = kvbm_test::vector_batch(vec);
            const std::string text = kj::to_string(b, flavor);
            if (vec.contains(key)) {
                CHECK(text == vec.at(key).get<std::string>());
            } else {  // create_array32: 2.6 / 3.9 MB, compared by length and XXH3
                CHECK(text.size() == vec.at(std::string(key) + "_len").get<std::size_t>());
#if KVBM_TEST_HAVE_XXHASH
                CHECK(kvbm::xxh3_64({reinterpret_cast<const std::uint8_t*>(text.data()), text.size()}, 0) ==
                      kvbm_test::u64(vec.at(std::string(key) + "_xxh3_64")));
#endif
            }
            const auto back = kj::parse_batch(text, flavor);
            REQUIRE(back);
            CHECK(*back == b);
            // append() appends.
            std::string out = "x";
            kj::append(out, b, flavor);
            CHECK(out.size() == text.size() + 1);
            CHECK(out.compare(1, std::string::npos, text) == 0);
            ++checked;
        }
    }
    CHECK(checked == 36);
}

TEST_CASE("every malformed_json case gets serde_json's verdict in each flavour") {
    std::size_t cases = 0;
    for (const auto& c : kvbm_test::vectors().at("malformed_json")) {
        const std::string text = c.at("json");
        for (const auto& [flavor, key] : flavours) {
            const std::string suffix = std::string(key).substr(5);  // kvbm_1_2
            const bool want = c.at("reference").at("accepted_" + suffix);
            const auto r = kj::parse_batch(text, flavor);
            INFO(c.at("name").get<std::string>() << ' ' << suffix << ": " << (r ? "accepted" : r.error().message())
                                                 << " / reference: " << c.at("reference").at("error_" + suffix));
            CHECK(r.has_value() == want);
            ++cases;
        }
    }
    CHECK(cases == 44);
}

TEST_CASE("errors name the field and the problem, with serde's line and column") {
    const auto check = [](const std::string& text, JsonFlavor f, const std::string& needle, std::size_t offset) {
        const auto r = kj::parse_batch(text, f);
        REQUIRE(!r);
        INFO(r.error().message());
        CHECK(r.error().reason.find(needle) != std::string::npos);
        CHECK(r.error().offset == offset);
    };
    const auto v12 = JsonFlavor::kvbm_1_2;
    const auto v13 = JsonFlavor::kvbm_1_3;
    check(R"({"events":"Shutdown","instance_id":-1})", v12, "instance_id: number out of range", 35);
    check(R"({"events":"Shutdown","instance_id":1.5})", v12, "expected `,` or `}` at line 1 column 37", 36);
    check(R"({"events":"Shutdown","instance_id":"12345"})", v12, "instance_id: invalid number", 35);
    check(R"({"events":"Shutdown","instance_id":0123})", v12, "instance_id: invalid number (leading zero)", 36);
    check(R"({"events":"Shutdown","instance_id":340282366920938463463374607431768211456})", v12,
          "instance_id: number out of range (>= 2^128) at line 1 column 36", 35);
    check(R"({"events":{"Update":[]},"instance_id":1})", v12, "events: unknown variant `Update`", 11);
    check(R"({"events":{"Create":[[0,0,0,0,0,0,0,0,0,0,0,0,0,0,1]]},"instance_id":1})", v13,
          "events.Create[0]: invalid length 15, expected 16 elements", 51);
    check(R"({"events":{"Create":[[0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,256]]},"instance_id":1})", v13,
          "events.Create[0][15]: invalid value: integer `256`, expected u8", 52);
    check(R"({"events":{"Create":[258]},"instance_id":1})", v13, "events.Create[0]: invalid type", 21);
    check(R"({"events":"Shutdown","instance_id":1,"instance_id":2})", v12, "duplicate field `instance_id`", 37);
    check(R"({"events":"Shutdown"})", v12, "missing field `instance_id`", 20);
    check("{\"events\":\"Shutdown\",\"instance_id\":1} x", v12, "trailing characters at line 1 column 39", 38);
    check("{\"events\":\n\"Shutdown\",\n\"instance_id\":x}", v12,
          "instance_id: invalid number (expected an unsigned integer) at line 3 column 15", 37);
}
