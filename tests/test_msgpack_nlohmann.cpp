// Cross-check with an independent MessagePack reader: nlohmann::json::from_msgpack reads
// our bytes as the structure the protocol defines (and, through kvbm/json.hpp's from_json,
// as the same values).
#include "codec_vectors.hpp"

#include <kvbm/json.hpp>
#include <kvbm/msgpack.hpp>

#include <catch2/catch.hpp>

namespace mp = kvbm::msgpack;
using nlohmann::json;

namespace {
void check_hash(const json& j, const kvbm::Uint128& want) {
    REQUIRE(j.is_binary());
    REQUIRE(j.get_binary().size() == 16);
    CHECK(!j.get_binary().has_subtype());
    const auto be = want.to_be_bytes();
    CHECK(std::equal(be.begin(), be.end(), j.get_binary().begin()));
}
}  // namespace

TEST_CASE("nlohmann's from_msgpack reads every encoded vector as [events, instance_id]") {
    for (const auto& vec : kvbm_test::events_vectors()) {
        INFO(vec.at("name").get<std::string>());
        if (vec.at("type") == "KvCacheEvent") {
            const auto e = kvbm_test::vector_event(vec);
            const json j = json::from_msgpack(mp::encode(e));
            REQUIRE(j.is_object());
            REQUIRE(j.size() == 1);
            check_hash(j.at(e.is_create() ? "Create" : "Remove"), e.hash.raw());
            continue;
        }
        const auto b = kvbm_test::vector_batch(vec);
        const json j = json::from_msgpack(mp::encode(b));
        REQUIRE(j.is_array());
        REQUIRE(j.size() == 2);
        check_hash(j[1], b.instance_id);
        if (b.events.kind == kvbm::BatchKind::shutdown) {
            CHECK(j[0] == "Shutdown");
        } else {
            const json& list = j[0].at(b.events.kind == kvbm::BatchKind::create ? "Create" : "Remove");
            REQUIRE(list.size() == b.events.hashes.size());
            for (std::size_t i = 0; i < list.size(); ++i) {
                check_hash(list[i], b.events.hashes[i].raw());
            }
        }
        // The DOM adapters read nlohmann's binary values as the wire's u128s.
        CHECK(j.get<kvbm_test::Batch>() == b);
        // And the named form is the map nlohmann expects.
        const json named = json::from_msgpack(mp::encode_named(b));
        CHECK(named.at("events") == j[0]);
        CHECK(named.at("instance_id") == j[1]);
    }
}

TEST_CASE("bytes nlohmann writes for the same structure decode to the same value") {
    const kvbm::Uint128 id = kvbm::Uint128::from_parts(0x0123456789abcdefULL, 0xfedcba9876543210ULL);
    const auto bin = [](const kvbm::Uint128& v) {
        const auto be = v.to_be_bytes();
        return json::binary({be.begin(), be.end()});
    };
    json list = json::array();
    kvbm_test::Batch want{kvbm::KvCacheEvents<>::create({}), id};
    for (std::uint64_t i = 0; i < 20; ++i) {
        const auto h = kvbm::PositionalLineageHash(i * 77, i, i);
        want.events.hashes.push_back(h);
        list.push_back(bin(h.raw()));
    }
    const json j = json::array({json{{"Create", list}}, bin(id)});
    const auto bytes = json::to_msgpack(j);
    CHECK(bytes == mp::encode(want));  // nlohmann picks the same smallest headers
    const auto back = mp::decode_batch(bytes);
    REQUIRE(back);
    CHECK(*back == want);
}
