// Shared checks of the MessagePack fuzz targets: whatever the input, decoding returns (no
// crash, no hang, memory bounded: ASan/UBSan and libFuzzer's limits watch), and whatever it
// accepts re-encodes to canonical bytes that decode to the same value.
#pragma once

#include <kvbm/msgpack.hpp>

#include <cstdlib>
#include <span>
#include <vector>

#define KVBM_FUZZ_CHECK(cond)                                                                        \
    do {                                                                                             \
        if (!(cond)) {                                                                               \
            __builtin_printf("kvbm fuzz invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
            std::abort();                                                                            \
        }                                                                                            \
    } while (0)

template <class Decode>
void fuzz_msgpack_round_trip(std::span<const std::uint8_t> input, Decode decode) {
    namespace mp = kvbm::msgpack;
    const auto lenient = decode(input, mp::DecodeOptions{});
    const auto strict = decode(input, mp::DecodeOptions{mp::TrailingBytes::reject});
    if (!lenient) {
        KVBM_FUZZ_CHECK(!strict);
        KVBM_FUZZ_CHECK(lenient.error().offset <= input.size());
        KVBM_FUZZ_CHECK(!lenient.error().reason.empty());
        return;
    }
    if (strict) {
        KVBM_FUZZ_CHECK(*strict == *lenient);
    }
    const auto bytes = mp::encode(*lenient);
    KVBM_FUZZ_CHECK(bytes.size() == mp::encoded_size(*lenient));
    const auto again = decode(bytes, mp::DecodeOptions{mp::TrailingBytes::reject});
    KVBM_FUZZ_CHECK(again);
    KVBM_FUZZ_CHECK(*again == *lenient);
    KVBM_FUZZ_CHECK(mp::encode(*again) == bytes);
    // Every hash loop this CPU runs (the encoder used the best one) writes the portable bytes.
    namespace d = kvbm::detail::mp;
    if constexpr (requires { lenient->events.hashes; }) {
        const auto& hashes = lenient->events.hashes;
        const auto* raw = reinterpret_cast<const unsigned char*>(hashes.data());
        std::vector<std::uint8_t> want(hashes.size() * mp::u128_size);
        d::put_u128s(d::HashLoop::portable, want.data(), raw, hashes.size());
        for (const auto loop : {d::HashLoop::ssse3, d::HashLoop::avx2, d::HashLoop::avx512vbmi}) {
            if (d::can_run(loop)) {
                std::vector<std::uint8_t> got(want.size());
                KVBM_FUZZ_CHECK(d::put_u128s(loop, got.data(), raw, hashes.size()) == got.data() + got.size());
                KVBM_FUZZ_CHECK(got == want);
            }
        }
    }
}
