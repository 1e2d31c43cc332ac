// libFuzzer target: kvbm::json::parse_batch / parse_event, kvbm 1.2 flavour (hash as integer).
#include "fuzz_json.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz_json(data, size, kvbm::JsonFlavor::kvbm_1_2);
    return 0;
}
