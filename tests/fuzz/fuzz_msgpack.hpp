// Shared checks of the MessagePack fuzz targets: whatever the input, decoding returns (no
// crash, no hang, memory bounded: ASan/UBSan and libFuzzer's limits watch), and whatever it
// accepts re-encodes to canonical bytes that decode to the same value.
#pragma once

#include <kvbm/msgpack.hpp>

#include <cstdlib>
#include <span>

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
}
