// kvbm-wire decode [--type batch|event] [--to json-1.2|json-1.3]
// Reads MessagePack as hex on stdin and prints it as serde_json's text. Bytes after the
// message are ignored, as the reference's decoder ignores them.
#include "cli.hpp"
#include "codec.hpp"

#include <kvbm/json_text.hpp>
#include <kvbm/msgpack.hpp>

#include <cstdio>

namespace kvbm_wire {

int run_decode(const codec_options& opts) {
    const std::string& type = opts.type;
    const std::string& to = opts.to;
    check_type(type);
    if (to.rfind("msgpack", 0) == 0) {
        throw usage_error("decode prints JSON: --to json-1.2|json-1.3");
    }
    const kvbm::JsonFlavor flavor = json_flavor(to);
    const std::vector<std::uint8_t> bytes = from_hex(read_stdin());
    std::string out;
    if (type == "batch") {
        const auto r = kvbm::msgpack::decode_batch(bytes);
        if (!r) {
            throw usage_error(r.error().message());
        }
        out = kvbm::json::to_string(*r, flavor);
    } else {
        const auto r = kvbm::msgpack::decode_event(bytes);
        if (!r) {
            throw usage_error(r.error().message());
        }
        out = kvbm::json::to_string(*r, flavor);
    }
    out += '\n';
    std::fwrite(out.data(), 1, out.size(), stdout);
    return 0;
}

}  // namespace kvbm_wire
