// kvbm-wire encode [--type batch|event] [--to msgpack|msgpack-named|json-1.2|json-1.3]
// Reads one value as JSON in either flavour on stdin (kvbm 1.2 tried first, like the
// reference) and prints it: MessagePack as lowercase hex, JSON as serde_json's text.
#include "cli.hpp"
#include "codec.hpp"

#include <kvbm/json_text.hpp>
#include <kvbm/msgpack.hpp>

#include <cstdio>

namespace kvbm_wire {
namespace {

/// The value in whichever flavour parses, or the kvbm 1.2 error (what the reference reports).
template <class T, class Parse>
T parse_either(const std::string& text, Parse parse) {
    auto v12 = parse(text, kvbm::JsonFlavor::kvbm_1_2);
    if (v12) {
        return std::move(*v12);
    }
    auto v13 = parse(text, kvbm::JsonFlavor::kvbm_1_3);
    if (v13) {
        return std::move(*v13);
    }
    throw usage_error(v12.error().reason);
}

template <class T>
void emit(const T& value, const std::string& to) {
    std::string out;
    if (to == "msgpack") {
        out = to_hex(kvbm::msgpack::encode(value));
    } else if (to == "msgpack-named") {
        if constexpr (requires { kvbm::msgpack::encode_named(value); }) {
            out = to_hex(kvbm::msgpack::encode_named(value));
        }
    } else {
        out = kvbm::json::to_string(value, json_flavor(to));
    }
    out += '\n';
    std::fwrite(out.data(), 1, out.size(), stdout);
}

}  // namespace

int run_encode(const codec_options& opts) {
    const std::string& type = opts.type;
    const std::string& to = opts.to;
    check_type(type);
    if (to != "msgpack" && (to != "msgpack-named" || type == "event") && to != "json-1.2" && to != "json-1.3") {
        throw usage_error("unknown output form " + to + " (expected msgpack" +
                          (type == "event" ? "" : ", msgpack-named") + ", json-1.2 or json-1.3" +
                          (to == "msgpack-named" ? "; a single event has no named form)" : ")"));
    }
    const std::string text = read_stdin();
    check_utf8(text);
    if (type == "batch") {
        emit(parse_either<kvbm::KvbmCacheEvents<>>(
                 text, [](const std::string& t, kvbm::JsonFlavor f) { return kvbm::json::parse_batch(t, f); }),
             to);
    } else {
        emit(parse_either<kvbm::KvCacheEvent<>>(
                 text, [](const std::string& t, kvbm::JsonFlavor f) { return kvbm::json::parse_event(t, f); }),
             to);
    }
    return 0;
}

}  // namespace kvbm_wire
