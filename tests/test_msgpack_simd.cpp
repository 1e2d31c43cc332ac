// The MessagePack encoder's hash loops (portable, SSSE3, AVX2, AVX-512 VBMI; one is chosen at
// run time) each forced in turn in one binary: every loop this CPU can run writes exactly the
// bytes of a byte-by-byte reference, for every count around the block sizes (16, 32) and every
// output alignment, and nothing outside its output.
#include <kvbm/msgpack.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace mp = kvbm::detail::mp;
using kvbm::PositionalLineageHash;
using kvbm::Uint128;

namespace {

constexpr std::array loops{mp::HashLoop::portable, mp::HashLoop::ssse3, mp::HashLoop::avx2, mp::HashLoop::avx512vbmi};

std::string name(mp::HashLoop loop) {
    switch (loop) {
        case mp::HashLoop::portable:
            return "portable";
        case mp::HashLoop::ssse3:
            return "ssse3";
        case mp::HashLoop::avx2:
            return "avx2";
        case mp::HashLoop::avx512vbmi:
            return "avx512vbmi";
    }
    return "?";
}

/// `c4 10` + the 16 big-endian bytes of each value, written one byte at a time.
std::vector<std::uint8_t> reference(const std::vector<PositionalLineageHash>& hashes) {
    std::vector<std::uint8_t> out;
    for (const auto& h : hashes) {
        out.push_back(0xc4);
        out.push_back(0x10);
        for (const std::uint8_t b : h.raw().to_be_bytes()) {
            out.push_back(b);
        }
    }
    return out;
}

}  // namespace

TEST_CASE("every hash loop this CPU runs writes the reference bytes, and only them") {
    std::mt19937_64 rng(20261202);
    std::vector<std::size_t> counts;
    for (std::size_t n = 0; n <= 100; ++n) {
        counts.push_back(n);
    }
    counts.insert(counts.end(), {127, 128, 129, 1023, 1024, 1025});
    unsigned ran = 0;
    for (const mp::HashLoop loop : loops) {
        if (!mp::can_run(loop)) {
            WARN("this CPU cannot run the " << name(loop) << " loop: not tested here");
            continue;
        }
        ++ran;
        for (const std::size_t n : counts) {
            std::vector<PositionalLineageHash> hashes;
            for (std::size_t i = 0; i < n; ++i) {
                hashes.push_back(PositionalLineageHash::from_raw(Uint128::from_parts(rng(), rng())));
            }
            const auto want = reference(hashes);
            const std::size_t shift = n % 64;  // every output alignment over the counts
            std::vector<std::uint8_t> buffer(shift + want.size() + 64, 0xa5);
            std::uint8_t* const end =
                mp::put_u128s(loop, buffer.data() + shift, reinterpret_cast<const unsigned char*>(hashes.data()), n);
            INFO(name(loop) << ", " << n << " hashes, output at +" << shift);
            REQUIRE(end == buffer.data() + shift + want.size());
            REQUIRE(std::vector<std::uint8_t>(buffer.data() + shift, end) == want);
            for (std::size_t i = 0; i < shift; ++i) {
                REQUIRE(buffer[i] == 0xa5);
            }
            for (auto* p = end; p != buffer.data() + buffer.size(); ++p) {
                REQUIRE(*p == 0xa5);
            }
        }
    }
    CHECK(ran >= 1);
    CHECK(mp::can_run(mp::HashLoop::portable));
}

TEST_CASE("the encoder uses the best loop and matches the portable loop on a whole batch") {
    std::mt19937_64 rng(7);
    std::vector<PositionalLineageHash> hashes;
    for (std::size_t i = 0; i < 1000; ++i) {
        hashes.push_back(PositionalLineageHash::from_raw(Uint128::from_parts(rng(), rng())));
    }
    const kvbm::KvbmCacheEvents<> batch{kvbm::KvCacheEvents<>::create(hashes), Uint128::from_parts(rng(), rng())};
    const auto bytes = kvbm::msgpack::encode(batch);
    const auto want = reference(hashes);
    // 92 81 a6 "Create" dc 03 e8 <hashes> <instance id>
    REQUIRE(bytes.size() == 1 + 1 + 7 + 3 + want.size() + 18);
    CHECK(std::vector<std::uint8_t>(bytes.begin() + 12, bytes.end() - 18) == want);
    const auto back = kvbm::msgpack::decode_batch(bytes);
    REQUIRE(back);
    CHECK(*back == batch);
    INFO("best loop here: " << name(mp::best_hash_loop()));
    CHECK(mp::can_run(mp::best_hash_loop()));
}
