// Token-block hashing: the kvbm 1.2 chain against plain XXH3 over the same bytes.
// Shape (the reference's): 131,072 tokens 0..131071 in blocks of 16, salt 1337.
#include "bench.hpp"

#include <kvbm/tokens.hpp>

#include <numeric>

KVBM_BENCH("hash") {
    std::vector<kvbm::Token> tokens(131072);
    std::iota(tokens.begin(), tokens.end(), 0U);
    constexpr std::size_t block = 16;
    const auto blocks = static_cast<double>(tokens.size() / block);

    const double chain = kvbm_bench::best_of(s.runs, [&] {
        const auto t0 = std::chrono::steady_clock::now();
        const auto seq = kvbm::TokenBlockSequence::from_slice(tokens, block, 1337);
        kvbm_bench::keep(seq.blocks().data());
        const std::chrono::duration<double, std::nano> dt = std::chrono::steady_clock::now() - t0;
        return dt.count() / blocks;
    });
    kvbm_bench::report("plh_chain/131072x16", chain, "ns_per_block");

    // The floor: the two XXH3 calls per block (block bytes, then the 16-byte chain input),
    // with nothing stored and no PLH packed.
    const double raw = kvbm_bench::best_of(s.runs, [&] {
        const auto t0 = std::chrono::steady_clock::now();
        std::uint64_t parent = 0;
        for (std::size_t i = 0; i < tokens.size(); i += block) {
            const std::uint64_t bh = kvbm::compute_block_hash(std::span(tokens).subspan(i, block), 1337);
            parent = i == 0 ? bh : kvbm::compute_sequence_hash(parent, bh, 1337);
        }
        kvbm_bench::keep(parent);
        const std::chrono::duration<double, std::nano> dt = std::chrono::steady_clock::now() - t0;
        return dt.count() / blocks;
    });
    kvbm_bench::report("xxh3_raw/131072x16", raw, "ns_per_block");
    kvbm_bench::report("plh_chain/vs_xxh3_raw", chain / raw, "ratio", 2);
}
