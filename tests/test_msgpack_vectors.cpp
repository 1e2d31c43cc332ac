// MessagePack against the reference's golden vectors: every `events` vector encodes to the
// reference's bytes and decodes (also from rmp_serde::to_vec_named's bytes) to the same
// value; every `malformed_msgpack` case gets the reference's verdict.
#include "codec_vectors.hpp"

#include <kvbm/msgpack.hpp>
#if KVBM_TEST_HAVE_XXHASH
#include <kvbm/tokens.hpp>
#endif

#include <catch2/catch.hpp>

namespace mp = kvbm::msgpack;
using kvbm_test::hex;
using kvbm_test::unhex;

TEST_CASE("every events vector encodes to the reference's bytes and decodes back") {
    std::size_t checked = 0;
    for (const auto& vec : kvbm_test::events_vectors()) {
        const std::string name = vec.at("name");
        INFO(name);
        if (vec.at("type") == "KvCacheEvent") {
            const auto event = kvbm_test::vector_event(vec);
            const std::string want = vec.at("msgpack");
            CHECK(hex(mp::encode(event)) == want);
            CHECK(mp::encoded_size(event) == want.size() / 2);
            const auto back = mp::decode_event(unhex(want));
            REQUIRE(back);
            CHECK(*back == event);
            ++checked;
            continue;
        }
        const auto batch = kvbm_test::vector_batch(vec);
        const auto bytes = mp::encode(batch);
        CHECK(bytes.size() == mp::encoded_size(batch));
        if (vec.contains("msgpack")) {
            CHECK(hex(bytes) == vec.at("msgpack").get<std::string>());
            const auto back = mp::decode_batch(unhex(vec.at("msgpack").get<std::string>()));
            REQUIRE(back);
            CHECK(*back == batch);
        } else {  // create_array32: 1.2 MB, compared by length, prefix and XXH3
            CHECK(bytes.size() == vec.at("msgpack_len").get<std::size_t>());
            const std::string prefix = vec.at("msgpack_prefix");
            CHECK(hex(std::vector<std::uint8_t>(bytes.begin(), bytes.begin() + static_cast<long>(prefix.size() / 2))) ==
                  prefix);
#if KVBM_TEST_HAVE_XXHASH
            CHECK(kvbm::xxh3_64(bytes, 0) == kvbm_test::u64(vec.at("msgpack_xxh3_64")));
#endif
            const auto back = mp::decode_batch(bytes);
            REQUIRE(back);
            CHECK(*back == batch);
        }
        const auto named = mp::encode_named(batch);
        CHECK(named.size() == mp::encoded_size_named(batch));
        if (vec.contains("msgpack_named")) {
            CHECK(hex(named) == vec.at("msgpack_named").get<std::string>());
            const auto back = mp::decode_batch(unhex(vec.at("msgpack_named").get<std::string>()));
            REQUIRE(back);
            CHECK(*back == batch);
        } else {
            const auto back = mp::decode_batch(named);
            REQUIRE(back);
            CHECK(*back == batch);
        }
        ++checked;
    }
    CHECK(checked == 18);
}

TEST_CASE("every malformed_msgpack case gets the reference's verdict") {
    std::size_t accepted = 0;
    std::size_t rejected = 0;
    for (const auto& c : kvbm_test::vectors().at("malformed_msgpack")) {
        const std::string name = c.at("name");
        const auto bytes = unhex(c.at("msgpack").get<std::string>());
        const auto r = mp::decode_batch(bytes);
        INFO(name << ": " << (r ? "accepted" : r.error().message()));
        const bool want = c.at("reference").at("accepted");
        REQUIRE(r.has_value() == want);
        if (want) {
            // The reference printed what it decoded; the two that carry hashes are pinned here.
            ++accepted;
            if (name == "trailing_nil_byte") {
                CHECK(r->events.hashes.size() == 3);
                CHECK(r->instance_id == kvbm::Uint128{12345U});
            } else if (name == "variant_as_index_rmp_1_0") {
                CHECK(r->events == kvbm::KvCacheEvents<>::create({kvbm::PositionalLineageHash::from_raw(9U)}));
                CHECK(r->instance_id == kvbm::Uint128{3U});
            } else {
                CHECK(r->events.kind == kvbm::BatchKind::shutdown);
            }
        } else {
            ++rejected;
            CHECK(!r.error().reason.empty());
            CHECK(r.error().offset <= bytes.size());
        }
    }
    CHECK(accepted == 6);
    CHECK(rejected == 19);
}

TEST_CASE("the error says where and what") {
    const auto check = [](const std::string& hex_bytes, std::size_t offset, const std::string& needle) {
        const auto r = mp::decode_batch(unhex(hex_bytes));
        REQUIRE(!r);
        INFO(r.error().message());
        CHECK(r.error().offset == offset);
        CHECK(r.error().reason.find(needle) != std::string::npos);
        CHECK(r.error().message().rfind("offset " + std::to_string(offset) + ": ", 0) == 0);
    };
    check("", 0, "unexpected end of input");
    check("9281a643726561746591c40f070707070707070707070707070707c41000000000000000000000000000000001", 10,
          "events.Create[0]: expected bin8 of 16 bytes, found bin8 of 15 bytes");
    check("9281a643726561746591c41000000000000000000000000000000005cd3039", 28,
          "instance_id: expected bin8 of 16 bytes (c4 10), found uint16 (0xcd)");
    check("9281a655706461746590c41000000000000000000000000000000001", 2, "unknown variant `Update`");
    check("9281a6437265617465ddffffffffc41000000000000000000000000000000005", 32,
          "events.Create[1]: unexpected end of input");
    check("9381a643726561746590c41000000000000000000000000000000001c0", 0, "array of 3 fields, expected 2");
    check("81a66576656e7473a853687574646f776e", 17, "missing field `instance_id`");
}
