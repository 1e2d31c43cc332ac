// libFuzzer target: kvbm::msgpack::decode_event on arbitrary bytes.
#include "fuzz_msgpack.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz_msgpack_round_trip({data, size}, [](std::span<const std::uint8_t> in, kvbm::msgpack::DecodeOptions o) {
        return kvbm::msgpack::decode_event(in, o);
    });
    return 0;
}
