// MessagePack decoding rules beyond the golden vectors: every form rmp-serde 1.1 accepts for
// these types is accepted, what it rejects is rejected (verdicts checked against the Rust
// reference with `oracle/run decode msgpack HEX`), and the trailing-bytes policy.
#include "codec_vectors.hpp"

#include <kvbm/msgpack.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <string_view>

namespace mp = kvbm::msgpack;
using kvbm::BatchKind;
using kvbm::PositionalLineageHash;
using kvbm_test::unhex;

namespace {

std::string byte_hex(std::size_t b) {
    static constexpr char digits[] = "0123456789abcdef";
    return {digits[(b >> 4) & 0xfU], digits[b & 0xfU]};
}
std::string ascii_hex(std::string_view s) {
    std::string out;
    for (const char c : s) {
        out += byte_hex(static_cast<unsigned char>(c));
    }
    return out;
}
/// fixstr of `s`
std::string str(std::string_view s) { return byte_hex(0xa0 | s.size()) + ascii_hex(s); }
/// bin8 of `s`
std::string bin(std::string_view s) { return "c4" + byte_hex(s.size()) + ascii_hex(s); }

const std::string h9 = "c410" + std::string(30, '0') + "09";   // hash 9
const std::string id3 = "c410" + std::string(30, '0') + "03";  // instance 3
const std::string shutdown = str("Shutdown");
const std::string create9 = "81" + str("Create") + "91" + h9;  // {"Create": [9]}

kvbm_test::Batch accepted(const std::string& hex_bytes) {
    const auto r = mp::decode_batch(unhex(hex_bytes));
    INFO(hex_bytes << " -> " << (r ? "ok" : r.error().message()));
    REQUIRE(r);
    return *r;
}

void rejected(const std::string& hex_bytes, const std::string& needle = "") {
    const auto r = mp::decode_batch(unhex(hex_bytes));
    INFO(hex_bytes);
    REQUIRE(!r);
    INFO(r.error().message());
    CHECK(r.error().reason.find(needle) != std::string::npos);
}

const kvbm_test::Batch shutdown3{kvbm::KvCacheEvents<>::shutdown(), 3U};
const kvbm_test::Batch create9_3{kvbm::KvCacheEvents<>::create({PositionalLineageHash::from_raw(9U)}), 3U};

}  // namespace

TEST_CASE("structs as maps: field names as str or bin, indices, any order") {
    CHECK(accepted("82" + str("events") + shutdown + str("instance_id") + id3) == shutdown3);
    CHECK(accepted("82" + str("instance_id") + id3 + str("events") + create9) == create9_3);
    CHECK(accepted("82" + bin("events") + shutdown + bin("instance_id") + id3) == shutdown3);
    CHECK(accepted("82"
                   "00" +
                   shutdown + "01" + id3) == shutdown3);  // field indices
    CHECK(accepted("82"
                   "cc00" +
                   shutdown + "cd0001" + id3) == shutdown3);                                       // wider uints
    CHECK(accepted("de0002" + str("events") + shutdown + str("instance_id") + id3) == shutdown3);  // map16
    CHECK(accepted("df00000002"
                   "00" +
                   create9 + "01" + id3) == create9_3);      // map32
    CHECK(accepted("dc0002" + create9 + id3) == create9_3);  // array16 struct
}

TEST_CASE("unknown fields are skipped whatever their value") {
    const std::string prefix = "83" + str("events") + shutdown + str("instance_id") + id3;
    for (const std::string& key : {str("cluster"), bin("x"), std::string("02"), std::string("cf00000000000000ff"),
                                   std::string("a2ff00")}) {  // names, indices >= 2, a non-UTF-8 str
        for (const std::string& value :
             {std::string("c0"), std::string("c3"), std::string("e0"), std::string("d3ffffffffffffffff"),
              std::string("cb3ff0000000000000"), std::string("ca3f800000"), str("text"), std::string("a2ff00"),
              bin("\x01\x02"), std::string("c50003010203"), std::string("d401ff"), std::string("c70201aabb"),
              std::string("9392c0c081a1610090"), std::string("dc0000"), std::string("80"),
              std::string("c4") + byte_hex(16) + std::string(32, '0')}) {
            INFO("key " << key << " value " << value);
            CHECK(accepted(prefix + key + value) == shutdown3);
        }
    }
}

TEST_CASE("variants by name (str or bin) or index, Shutdown also as a map to nil") {
    CHECK(accepted("92"
                   "81" +
                   bin("Create") + "91" + h9 + id3) == create9_3);
    CHECK(accepted("92"
                   "81"
                   "00"
                   "91" +
                   h9 + id3) == create9_3);
    CHECK(accepted("92"
                   "81"
                   "cc00"
                   "91" +
                   h9 + id3) == create9_3);
    CHECK(accepted("92"
                   "81"
                   "01"
                   "90" +
                   id3)
              .events == kvbm::KvCacheEvents<>::remove({}));
    CHECK(accepted("92"
                   "02" +
                   id3) == shutdown3);
    CHECK(accepted("92"
                   "cd0002" +
                   id3) == shutdown3);
    CHECK(accepted("92" + bin("Shutdown") + id3) == shutdown3);
    CHECK(accepted("92"
                   "81" +
                   shutdown + "c0" + id3) == shutdown3);
    CHECK(accepted("92"
                   "81"
                   "02"
                   "c0" +
                   id3) == shutdown3);
    CHECK(accepted("92"
                   "de0001" +
                   str("Create") + "dc0001" + h9 + id3) == create9_3);
    CHECK(accepted("92"
                   "81" +
                   str("Create") + "dd00000001" + h9 + id3) == create9_3);
}

TEST_CASE("what the reference rejects is rejected") {
    rejected(
        "92"
        "81" +
            shutdown + "00" + id3,
        "events.Shutdown: expected nil");
    rejected("92" + str("Create") + id3, "needs hashes");
    rejected(
        "92"
        "00" +
            id3,
        "needs hashes");
    rejected(
        "92"
        "03" +
            id3,
        "variant index 3 out of range");
    rejected(
        "92"
        "81"
        "03"
        "90" +
            id3,
        "variant index 3");
    rejected(
        "92"
        "81"
        "ff"
        "90" +
            id3,
        "expected a variant name or index, found negative fixint");
    rejected(
        "92"
        "81"
        "d000"
        "90" +
            id3,
        "found int8");  // a signed zero is no index
    rejected(
        "92"
        "80" +
            id3,
        "enum map of 0 entries");
    rejected(
        "92"
        "81" +
            str("Create") + "80" + id3,
        "expected an array of hashes");
    rejected(
        "92"
        "81" +
            str("Create") + "c0" + id3,
        "expected an array of hashes");
    rejected(
        "92"
        "81" +
            str("Create") +
            "91"
            "c5001000000000000000000000000000000009" +
            id3,
        "found bin16");
    rejected(
        "92"
        "81" +
            str("Create") +
            "91"
            "cf0000000000000009" +
            id3,
        "found uint64");
    rejected("92" + shutdown + "c6000000100000000000000000000000000000003", "instance_id");
    rejected("92" + shutdown + "dc0010" + std::string(32, '0'), "instance_id");
    rejected("82" + str("events") + shutdown + str("events") + shutdown, "duplicate field `events`");
    rejected("82" + str("instance_id") + id3 + str("instance_id") + id3, "duplicate field `instance_id`");
    rejected("81" + str("instance_id") + id3, "missing field `events`");
    rejected(
        "82"
        "c0" +
            shutdown + str("instance_id") + id3,
        "map key must be a field name or index, found nil");
    rejected(
        "82"
        "ff" +
            shutdown + str("instance_id") + id3,
        "found negative fixint");
    rejected(
        "82"
        "cb0000000000000000" +
            shutdown + str("instance_id") + id3,
        "found float64");
    rejected("90", "array of 0 fields");
    rejected("c3", "found true");
    rejected(str("text"), "found fixstr");
    rejected("92" + shutdown + id3.substr(0, 20), "instance_id: unexpected end of input");
    rejected("83" + str("events") + shutdown + str("instance_id") + id3 + str("x") + "c1", "0xc1");
    rejected("83" + str("events") + shutdown + str("instance_id") + id3 + str("x") + "c70501aa", "end of input");
}

TEST_CASE("skipped values nest at most as deep as rmp-serde allows") {
    const std::string prefix = "83" + str("events") + shutdown + str("instance_id") + id3 + str("x");
    const auto nested = [](std::size_t depth, const std::string& innermost) {  // [[[...innermost]]]
        std::string s;
        for (std::size_t i = 0; i < depth; ++i) {
            s += "91";
        }
        return s + innermost;
    };
    // rmp-serde's counter starts at 1024 and the struct's map takes one level: 1022 more fit.
    CHECK(accepted(prefix + nested(1021, "90")) == shutdown3);
    rejected(prefix + nested(1022, "90"), "nested deeper");
    CHECK(accepted(prefix + nested(1021, "d401ff")) == shutdown3);  // an ext is a level too
    rejected(prefix + nested(1022, "d401ff"), "nested deeper");
    CHECK(accepted(prefix + nested(1021, "80")) == shutdown3);
}

TEST_CASE("trailing bytes: ignored by default like the reference, or rejected on request") {
    const auto bytes = unhex("92" + shutdown + id3 + "c0c0");
    const auto lenient = mp::decode_batch(bytes);
    REQUIRE(lenient);
    CHECK(*lenient == shutdown3);
    const auto strict = mp::decode_batch(bytes, {mp::TrailingBytes::reject});
    REQUIRE(!strict);
    CHECK(strict.error().offset == bytes.size() - 2);
    CHECK(strict.error().reason == "2 trailing bytes after the message");
    CHECK(mp::decode_batch(unhex("92" + shutdown + id3), {mp::TrailingBytes::reject}));
    CHECK(!mp::decode_event(unhex("81" + str("Create") + h9 + "00"), {mp::TrailingBytes::reject}));
}

TEST_CASE("single events: map of one variant to one hash") {
    const auto e9 = kvbm_test::Event::create(PositionalLineageHash::from_raw(9U));
    for (const std::string& key : {str("Create"), bin("Create"), std::string("00"), std::string("cc00")}) {
        const auto r = mp::decode_event(unhex("81" + key + h9));
        REQUIRE(r);
        CHECK(*r == e9);
    }
    const auto remove =
        mp::decode_event(unhex("81"
                               "01" +
                               h9));
    REQUIRE(remove);
    CHECK(remove->is_remove());
    for (const auto& [hex_bytes, needle] : std::vector<std::pair<std::string, std::string>>{
             {"81" + shutdown + h9, "unknown variant `Shutdown`, expected `Create` or `Remove`"},
             {"81"
              "02" +
                  h9,
              "variant index 2 out of range"},
             {str("Create"), "needs a hash"},
             {"00", "needs a hash"},
             {"82" + str("Create") + h9 + str("Remove") + h9, "enum map of 2 entries"},
             {"81" + str("Create") + "91" + h9, "Create: expected bin8 of 16 bytes (c4 10), found fixarray"},
             {"81" + str("create") + h9, "unknown variant `create`"},
             {"", "unexpected end of input"}}) {
        const auto r = mp::decode_event(unhex(hex_bytes));
        INFO(hex_bytes);
        REQUIRE(!r);
        INFO(r.error().message());
        CHECK(r.error().reason.find(needle) != std::string::npos);
    }
}

TEST_CASE("encoders: sizes, headers at the fix/16/32 boundaries, appending, too-small spans") {
    for (const std::size_t n : {0U, 1U, 15U, 16U, 65535U, 65536U}) {
        kvbm_test::Batch b{kvbm::KvCacheEvents<>::remove(std::vector<PositionalLineageHash>(n)), kvbm::Uint128::max()};
        const auto bytes = mp::encode(b);
        INFO(n);
        CHECK(bytes.size() == mp::encoded_size(b));
        const std::size_t header = n <= 15 ? 1 : n <= 65535 ? 3 : 5;
        CHECK(bytes.size() == 1 + 1 + 7 + header + 18 * n + 18);
        CHECK(bytes[9] == (n <= 15 ? 0x90 + n : n <= 65535 ? 0xdc : 0xdd));
        const auto back = mp::decode_batch(bytes);
        REQUIRE(back);
        CHECK(*back == b);
    }
    std::vector<std::uint8_t> out{0xee};
    mp::encode(shutdown3, out);
    mp::encode(create9_3, out);
    CHECK(kvbm_test::hex(out) == "ee92" + shutdown + id3 + "92" + create9 + id3);

    std::vector<std::uint8_t> buf(mp::encoded_size(create9_3), 0xaa);
    CHECK(mp::encode_to(create9_3, std::span(buf).first(buf.size() - 1)) == 0);
    CHECK(std::all_of(buf.begin(), buf.end(), [](std::uint8_t b) { return b == 0xaa; }));
    CHECK(mp::encode_to(create9_3, buf) == buf.size());
    CHECK(kvbm_test::hex(buf) == "92" + create9 + id3);

    const auto e = kvbm_test::Event::remove(PositionalLineageHash::from_raw(9U));
    std::array<std::uint8_t, 26> ebuf{};
    CHECK(mp::encode_to(e, std::span(ebuf).first(25)) == 0);
    CHECK(mp::encode_to(e, ebuf) == 26);
    CHECK(kvbm_test::hex({ebuf.begin(), ebuf.end()}) == "81" + str("Remove") + h9);
}

TEST_CASE("the 1.4 layout and a user's hash type travel the same way") {
    using H14 = kvbm::PositionalLineageHashV14;
    const kvbm::KvbmCacheEvents<H14> b{kvbm::KvCacheEvents<H14>::create({H14(7, 3, 300)}), 42U};
    const auto bytes = mp::encode(b);
    const auto back = mp::decode_batch<H14>(bytes);
    REQUIRE(back);
    CHECK(*back == b);
    CHECK(mp::decode_batch<PositionalLineageHash>(bytes)->events.hashes[0].raw() == b.events.hashes[0].raw());
}

TEST_CASE("DecodeResult: value() throws on error, errors compare") {
    const auto r = mp::decode_batch(unhex("c0"));
    CHECK_THROWS_AS(r.value(), kvbm::BadDecodeResultAccess);
    try {
        (void)r.value();
    } catch (const kvbm::BadDecodeResultAccess& e) {
        CHECK(e.error() == r.error());
        CHECK(std::string(e.what()).find("offset 0") != std::string::npos);
    }
    const auto ok = mp::decode_batch(unhex("92" + shutdown + id3));
    CHECK(ok.value().instance_id == kvbm::Uint128{3U});
    CHECK(ok->events.kind == BatchKind::shutdown);
}
