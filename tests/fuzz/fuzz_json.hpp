// Shared body of the JSON fuzz targets (one per flavour, KVBM_FUZZ_FLAVOR): whatever the
// text, parsing returns; whatever it accepts prints as text that parses back to the same
// value in both flavours, and the printed text is stable.
#pragma once

#include "fuzz_msgpack.hpp"

#include <kvbm/json_text.hpp>

#include <string_view>

template <class Parse>
void fuzz_json_round_trip(std::string_view text, kvbm::JsonFlavor flavor, Parse parse) {
    const auto r = parse(text, flavor);
    if (!r) {
        KVBM_FUZZ_CHECK(r.error().offset <= text.size());
        KVBM_FUZZ_CHECK(r.error().reason.find(" at line ") != std::string::npos);
        return;
    }
    for (const auto f : {kvbm::JsonFlavor::kvbm_1_2, kvbm::JsonFlavor::kvbm_1_3}) {
        const std::string printed = kvbm::json::to_string(*r, f);
        const auto back = parse(printed, f);
        KVBM_FUZZ_CHECK(back);
        KVBM_FUZZ_CHECK(*back == *r);
        KVBM_FUZZ_CHECK(kvbm::json::to_string(*back, f) == printed);
    }
}

inline void fuzz_json(const std::uint8_t* data, std::size_t size, kvbm::JsonFlavor flavor) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    fuzz_json_round_trip(text, flavor,
                         [](std::string_view t, kvbm::JsonFlavor f) { return kvbm::json::parse_batch(t, f); });
    fuzz_json_round_trip(text, flavor,
                         [](std::string_view t, kvbm::JsonFlavor f) { return kvbm::json::parse_event(t, f); });
}
