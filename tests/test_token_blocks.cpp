// Token-block hashing: every vector chain, field by field, both layouts; incremental
// appends equal one-shot hashing.
#include "vectors.hpp"

#include <kvbm/tokens.hpp>

#include <catch2/catch.hpp>

namespace {
template <kvbm::PlhLayout Layout>
void check_chains(const char* key) {
    for (const auto& chain : kvbm_test::vectors().at("hash_chains").at(key).at("chains")) {
        const auto name = chain.at("name").get<std::string>();
        CAPTURE(name);
        const auto tokens = kvbm_test::chain_tokens(chain.at("tokens"));
        const auto block_size = chain.at("block_size").get<std::size_t>();
        const auto salt = kvbm_test::u64(chain.at("salt"));
        const auto seq = kvbm::BasicTokenBlockSequence<Layout>::from_slice(tokens, block_size, salt);
        REQUIRE(seq.blocks().size() == chain.at("total_full_blocks").get<std::size_t>());
        CHECK(seq.partial_tokens().size() == tokens.size() % block_size);
        CHECK(seq.total_tokens() == tokens.size());
        for (const auto& row : chain.at("blocks")) {
            const auto pos = row.at("position").get<std::size_t>();
            CAPTURE(pos);
            const auto& b = seq.blocks()[pos];
            CHECK(b.position() == pos);
            CHECK(b.block_hash == kvbm_test::u64(row.at("block_hash")));
            CHECK(b.sequence_hash == kvbm_test::u64(row.at("sequence_hash")));
            CHECK(b.plh.raw().to_hex32() == row.at("plh_hex").get<std::string>());
            CHECK(b.plh.to_string() == row.at("display").get<std::string>());
        }
    }
}
}  // namespace

TEST_CASE("kvbm 1.2 chains match the reference", "[tokens]") { check_chains<kvbm::PlhLayout::kvbm_1_2>("kvbm_1_2"); }
TEST_CASE("kvbm 1.4 chains match the reference", "[tokens]") { check_chains<kvbm::PlhLayout::kvbm_1_4>("kvbm_1_4"); }

TEST_CASE("upstream constants", "[tokens]") {
    const std::vector<std::uint32_t> tokens{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    const auto seq = kvbm::TokenBlockSequence::from_slice(tokens, 4, 1337);
    REQUIRE(seq.blocks().size() == 3);
    CHECK(seq.blocks()[0].block_hash == 14643705804678351452ULL);
    CHECK(seq.blocks()[1].block_hash == 16777012769546811212ULL);
    CHECK(seq.blocks()[2].block_hash == 483935686894639516ULL);
    CHECK(seq.blocks()[1].sequence_hash == 4945711292740353085ULL);
    CHECK(seq.blocks()[2].sequence_hash == 12583592247330656132ULL);
    // With salt 1337 both chains agree; only the packing differs.
    const auto v14 = kvbm::TokenBlockSequenceV14::from_slice(tokens, 4, 1337);
    CHECK(v14.blocks()[2].sequence_hash == 12583592247330656132ULL);
    CHECK(v14.blocks()[2].plh.raw() != seq.blocks()[2].plh.raw());
}

TEST_CASE("appending incrementally equals hashing at once", "[tokens]") {
    std::vector<std::uint32_t> tokens(1000);
    kvbm_test::SplitMix64 mix{3};
    for (auto& t : tokens) {
        t = static_cast<std::uint32_t>(mix.next());
    }
    const auto whole = kvbm::TokenBlockSequence::from_slice(tokens, 16, 99);
    kvbm::TokenBlockSequence one_by_one(16, 99);
    for (const auto t : tokens) {
        one_by_one.push_back(t);
    }
    kvbm::TokenBlockSequence chunked(16, 99);
    std::size_t at = 0;
    for (std::size_t step = 1; at < tokens.size(); step = step * 3 % 37 + 1) {
        const std::size_t n = std::min(step, tokens.size() - at);
        chunked.extend(std::span(tokens).subspan(at, n));
        at += n;
    }
    REQUIRE(whole.blocks().size() == 62);
    CHECK(std::equal(whole.blocks().begin(), whole.blocks().end(), one_by_one.blocks().begin(),
                     one_by_one.blocks().end()));
    CHECK(std::equal(whole.blocks().begin(), whole.blocks().end(), chunked.blocks().begin(), chunked.blocks().end()));
    CHECK(std::equal(whole.partial_tokens().begin(), whole.partial_tokens().end(), chunked.partial_tokens().begin(),
                     chunked.partial_tokens().end()));
    CHECK(chunked.partial_tokens().size() == 1000 % 16);
    CHECK(chunked.last_hash() == whole.blocks().back().plh);
}

TEST_CASE("block size 0 is an error; no tokens gives no blocks", "[tokens]") {
    CHECK_THROWS_AS(kvbm::TokenBlockSequence(0), std::invalid_argument);
    const kvbm::TokenBlockSequence empty(4);
    CHECK(empty.blocks().empty());
    CHECK_FALSE(empty.last_hash().has_value());
}
