// nlohmann DOM adapters: ADL to_json / from_json for every type, any basic_json (json,
// ordered_json), both flavours chosen explicitly, lossless for values >= 2^64.
#include "codec_vectors.hpp"

#include <kvbm/json.hpp>
#include <kvbm/msgpack.hpp>

#include <catch2/catch.hpp>

using kvbm::JsonFlavor;
using kvbm::PositionalLineageHash;
using kvbm::Uint128;
using nlohmann::json;
using nlohmann::ordered_json;
namespace kj = kvbm::json;

namespace {
const Uint128 big = Uint128::from_parts(0x0123456789abcdefULL, 0x1122334455667788ULL);  // > 2^64
const kvbm_test::Batch batch{
    kvbm::KvCacheEvents<>::create({PositionalLineageHash::from_raw(9U), PositionalLineageHash::from_raw(big)}), big};
}  // namespace

TEST_CASE("Uint128: a number below 2^64, a decimal string above, never a rounded double") {
    json small = Uint128{12345U};
    CHECK(small.is_number_unsigned());
    CHECK(small.get<Uint128>() == Uint128{12345U});
    json j = big;
    CHECK(j.is_string());
    CHECK(j.get<std::string>() == big.to_string());
    CHECK(j.get<Uint128>() == big);
    json max = Uint128::max();
    CHECK(max == "340282366920938463463374607431768211455");
    CHECK(max.get<Uint128>() == Uint128::max());
    CHECK(json(std::uint64_t{18446744073709551615ULL}).get<Uint128>() == Uint128{~std::uint64_t{0}});
    CHECK(json(7).get<Uint128>() == Uint128{7U});  // number_integer >= 0
    CHECK_THROWS_AS(json(-1).get<Uint128>(), json::out_of_range);
    CHECK_THROWS_AS(json(1.0).get<Uint128>(), json::type_error);                          // floats lost digits
    CHECK_THROWS_AS(json::parse(j.get<std::string>()).get<Uint128>(), json::type_error);  // nlohmann's parse rounds
    CHECK_THROWS_AS(json("12345").get<Uint128>(), json::type_error);  // small values are numbers, as serde has them
    CHECK_THROWS_AS(json("0340282366920938463463374607431768211455").get<Uint128>(), json::type_error);
    CHECK_THROWS_AS(json("340282366920938463463374607431768211456").get<Uint128>(), json::out_of_range);
    CHECK_THROWS_AS(json("x").get<Uint128>(), json::type_error);
    try {
        (void)json(1.5).get<Uint128>();
    } catch (const json::type_error& e) {
        CHECK(std::string(e.what()).find("kvbm::json::parse_dom") != std::string::npos);
    }
}

TEST_CASE("plain ADL uses the hash type's natural flavour; flavored<F> chooses") {
    json j = batch;
    CHECK(j.at("events").at("Create").at(0) == 9);
    CHECK(j.at("instance_id") == big.to_string());
    CHECK(j.get<kvbm_test::Batch>() == batch);

    json j13 = kj::flavored<JsonFlavor::kvbm_1_3>(batch);
    CHECK(j13.at("events").at("Create").at(0).size() == 16);
    CHECK(j13.at("events").at("Create").at(0).at(15) == 9);
    CHECK(j13.at("instance_id") == big.to_string());  // ids are integers in both flavours
    CHECK((j13.get<kj::Flavored<kvbm_test::Batch, JsonFlavor::kvbm_1_3>>().value) == batch);
    CHECK_THROWS_AS((j13.get<kj::Flavored<kvbm_test::Batch, JsonFlavor::kvbm_1_2>>()), json::type_error);
    CHECK_THROWS_AS(j13.get<kvbm_test::Batch>(), json::type_error);

    using H14 = kvbm::PositionalLineageHashV14;
    const H14 h(5, 4, 3);
    json jh = h;  // the 1.4 layout exists only in releases that write bytes
    CHECK(jh.is_array());
    CHECK(jh.get<H14>() == h);
    json e = kvbm::KvCacheEvent<H14>::remove(h);
    CHECK(e.at("Remove").size() == 16);
    CHECK(e.get<kvbm::KvCacheEvent<H14>>() == kvbm::KvCacheEvent<H14>::remove(h));
    CHECK(kj::default_flavor_v<PositionalLineageHash> == JsonFlavor::kvbm_1_2);
    CHECK(kj::default_flavor_v<H14> == JsonFlavor::kvbm_1_3);
}

TEST_CASE("every type round-trips through json and ordered_json; ordered_json keeps serde's order") {
    const auto e = kvbm_test::Event::remove(PositionalLineageHash::from_raw(big));
    const auto events = kvbm::KvCacheEvents<>::remove({PositionalLineageHash::from_raw(1U)});
    for (const auto flavor_12 : {true, false}) {
        INFO(flavor_12);
        ordered_json ob = flavor_12 ? ordered_json(batch) : ordered_json(kj::flavored<JsonFlavor::kvbm_1_3>(batch));
        CHECK(ob.begin().key() == "events");
        CHECK((!flavor_12 || ob.get<kvbm_test::Batch>() == batch));
        ordered_json oe = e;
        CHECK(oe.get<kvbm_test::Event>() == e);
        json je = events;
        CHECK(je.get<kvbm::KvCacheEvents<>>() == events);
    }
    json s = kvbm::KvCacheEvents<>::shutdown();
    CHECK(s == "Shutdown");
    // With values below 2^64, dump() is serde's text exactly.
    const kvbm_test::Batch small{kvbm::KvCacheEvents<>::create({PositionalLineageHash::from_raw(9U)}), 12345U};
    CHECK(json(small).dump() == kj::to_string(small, JsonFlavor::kvbm_1_2));
    CHECK(ordered_json(kj::flavored<JsonFlavor::kvbm_1_3>(small)).dump() == kj::to_string(small, JsonFlavor::kvbm_1_3));
}

TEST_CASE("from_json accepts serde's other forms and rejects what serde rejects") {
    CHECK(json::parse(R"({"events":{"Shutdown":null},"instance_id":1,"x":[1]})").get<kvbm_test::Batch>() ==
          kvbm_test::Batch{kvbm::KvCacheEvents<>::shutdown(), 1U});
    CHECK(json::parse(R"([{"Create":[9]},3])").get<kvbm_test::Batch>().instance_id == Uint128{3U});
    CHECK((json::parse(R"({"Create":"AAAAAAAAAAAAAAAA"})")
               .get<kj::Flavored<kvbm_test::Event, JsonFlavor::kvbm_1_3>>()
               .value.hash.raw()
               .low()) == 0x4141414141414141ULL);
    for (const char* bad :
         {R"({"events":"Create","instance_id":1})", R"({"events":{"Update":[]},"instance_id":1})",
          R"({"events":{"Create":[],"Remove":[]},"instance_id":1})", R"({"events":"Shutdown"})", R"({"instance_id":1})",
          R"({"events":{"Shutdown":0},"instance_id":1})", R"({"events":{"Create":[-1]},"instance_id":1})",
          R"({"events":{"Create":{}},"instance_id":1})", R"([{"Create":[9]},3,4])", R"("Shutdown")",
          R"({"events":"Shutdown","instance_id":1.5})"}) {
        INFO(bad);
        CHECK_THROWS_AS(json::parse(bad).get<kvbm_test::Batch>(), json::exception);
    }
    for (const char* bad : {R"({"Create":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,256]})", R"({"Create":[0,1]})",
                            R"({"Create":1})", R"({"Create":"short"})", R"({"Shutdown":null})"}) {
        INFO(bad);
        CHECK_THROWS_AS((json::parse(bad).get<kj::Flavored<kvbm_test::Event, JsonFlavor::kvbm_1_3>>()),
                        json::exception);
    }
}

TEST_CASE("parse_dom reads serde's text into a DOM without rounding") {
    const std::string text = kj::to_string(batch, JsonFlavor::kvbm_1_2);
    const json rounded = json::parse(text);
    CHECK(rounded.at("instance_id").is_number_float());
    const json exact = kj::parse_dom(text);
    CHECK(exact.at("instance_id") == big.to_string());
    CHECK(exact.get<kvbm_test::Batch>() == batch);
    const auto ordered = kj::parse_dom<ordered_json>(R"({"z":1,"a":[1.5,-2,true,null,"s",{}],"b":1e300})");
    CHECK(ordered.begin().key() == "z");
    CHECK(ordered.at("a").at(0) == 1.5);
    CHECK(ordered.at("a").at(1) == -2);
    CHECK_THROWS_AS(kj::parse_dom("{\"a\":"), json::parse_error);
}

TEST_CASE("a DOM from nlohmann's from_msgpack reads as the message (binary u128s)") {
    const json j = json::from_msgpack(kvbm::msgpack::encode(batch));
    CHECK(j.get<kvbm_test::Batch>() == batch);
    CHECK((j.get<kj::Flavored<kvbm_test::Batch, JsonFlavor::kvbm_1_3>>().value) == batch);
}
