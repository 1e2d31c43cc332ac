// Index snapshots: a round trip reproduces the index exactly; a bad file is refused and
// changes nothing.
#include "index_helpers.hpp"

#include <kvbm/index_snapshot.hpp>

#include <catch2/catch.hpp>

#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

using kvbm::IndexSnapshotError;
using kvbm::InstanceId;
using kvbm::PositionalIndex;
using namespace kvbm_test;

namespace {

// An index after a random mix of creates, removes and shutdowns from 4 instances.
void fill(PositionalIndex<>& index, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    for (int round = 0; round < 200; ++round) {
        const InstanceId id = kvbm::Uint128::from_parts(rng() % 3, 1 + rng() % 4);
        const auto c = chain(rng() % 20, 1 + rng() % 40, rng() % 3, rng() % 10);
        switch (rng() % 10) {
            case 0:
                index.apply(shutdown(id));
                break;
            case 1:
            case 2:
            case 3:
                index.apply(removes(id, {c.begin() + static_cast<std::ptrdiff_t>(c.size() / 2), c.end()}));
                break;
            default:
                index.apply(creates(id, c));
        }
    }
}

}  // namespace

TEST_CASE("a snapshot round trip reproduces the index and its sequence", "[snapshot]") {
    const std::uint64_t seed = GENERATE(1U, 2U, 3U);
    PositionalIndex<> a(4096, 16);
    fill(a, seed);
    REQUIRE(a.size() > 0);
    const std::string bytes = kvbm::encode_index_snapshot(a, 12345, "stream KV @1");
    PositionalIndex<> b(4096, 16);
    const auto info = kvbm::decode_index_snapshot(bytes, b);
    CHECK(info.sequence == 12345);
    CHECK(info.origin == "stream KV @1");
    CHECK(info.instances == a.instances().size());
    CHECK(info.holdings == a.stats().holdings);
    CHECK(b.snapshot() == a.snapshot());
    CHECK(b.stats().holdings == a.stats().holdings);
    // A smaller index grows to the snapshot's capacity.
    PositionalIndex<> small(16, 16);
    (void)kvbm::decode_index_snapshot(bytes, small);
    CHECK(small.max_seq_len() == 4096);
    CHECK(small.snapshot() == a.snapshot());
}

TEST_CASE("an empty index round-trips", "[snapshot]") {
    PositionalIndex<> a(64, 16);
    PositionalIndex<> b(64, 16);
    const auto info = kvbm::decode_index_snapshot(kvbm::encode_index_snapshot(a, 0, ""), b);
    CHECK(info.sequence == 0);
    CHECK(b.empty());
}

TEST_CASE("every truncation and every flipped byte is refused, leaving the index unchanged", "[snapshot]") {
    PositionalIndex<> a(256, 16);
    a.apply(creates(1U, chain(1, 5)));
    a.apply(creates(2U, chain(2, 3, 1, 2)));
    const std::string bytes = kvbm::encode_index_snapshot(a, 7, "s");
    for (std::size_t n = 0; n < bytes.size(); ++n) {
        PositionalIndex<> b(256, 16);
        CHECK_THROWS_AS(kvbm::decode_index_snapshot(std::string_view(bytes).substr(0, n), b), IndexSnapshotError);
        CHECK(b.empty());
    }
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        std::string bad = bytes;
        bad[i] = static_cast<char>(bad[i] ^ 0x20);
        PositionalIndex<> b(256, 16);
        CHECK_THROWS_AS(kvbm::decode_index_snapshot(bad, b), IndexSnapshotError);
        CHECK(b.empty());
    }
}

TEST_CASE("a snapshot of another block size, or into a non-empty index, is refused", "[snapshot]") {
    PositionalIndex<> a(256, 16);
    a.apply(creates(1U, chain(1, 5)));
    const std::string bytes = kvbm::encode_index_snapshot(a, 7, "s");
    PositionalIndex<> other(256, 32);
    CHECK_THROWS_AS(kvbm::decode_index_snapshot(bytes, other), IndexSnapshotError);
    CHECK(other.empty());
    PositionalIndex<> busy(256, 16);
    busy.apply(creates(3U, chain(3, 2)));
    CHECK_THROWS_AS(kvbm::decode_index_snapshot(bytes, busy), IndexSnapshotError);
    CHECK(busy.size() == 2);
}

TEST_CASE("save and load a file: missing is nullopt, saving again replaces", "[snapshot]") {
    const auto dir = std::filesystem::temp_directory_path() / ("kvbm-snap-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const auto path = dir / "index.snap";
    PositionalIndex<> a(256, 16);
    CHECK_FALSE(kvbm::load_index_snapshot(a, path).has_value());
    a.apply(creates(1U, chain(1, 5)));
    kvbm::save_index_snapshot(a, path, 10, "o");
    a.apply(removes(1U, {chain(1, 5)[4]}));
    kvbm::save_index_snapshot(a, path, 11, "o");
    CHECK_FALSE(std::filesystem::exists(path.string() + ".tmp"));
    PositionalIndex<> b(256, 16);
    const auto info = kvbm::load_index_snapshot(b, path);
    REQUIRE(info);
    CHECK(info->sequence == 11);
    CHECK(b.snapshot() == a.snapshot());
    CHECK(b.size() == 4);
    std::filesystem::remove_all(dir);
}
