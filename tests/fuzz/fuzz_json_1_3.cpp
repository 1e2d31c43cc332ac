// libFuzzer target: kvbm::json::parse_batch / parse_event, kvbm 1.3+ flavour (hash as 16 bytes).
#include "fuzz_json.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz_json(data, size, kvbm::JsonFlavor::kvbm_1_3);
    return 0;
}
