// libFuzzer target: kvbm::msgpack::decode_batch on arbitrary bytes.
#include "fuzz_msgpack.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz_msgpack_round_trip({data, size}, [](std::span<const std::uint8_t> in, kvbm::msgpack::DecodeOptions o) {
        return kvbm::msgpack::decode_batch(in, o);
    });
    if (const auto r = kvbm::msgpack::decode_batch({data, size})) {  // the named form round-trips too
        const auto named = kvbm::msgpack::encode_named(*r);
        const auto back = kvbm::msgpack::decode_batch(named, {kvbm::msgpack::TrailingBytes::reject});
        KVBM_FUZZ_CHECK(back && *back == *r);
    }
    return 0;
}
