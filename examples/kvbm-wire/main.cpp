// kvbm-wire: hashes token blocks and (with kvbm::json) converts protocol messages between
// JSON and MessagePack, answering the same contract as the Rust reference's oracle.
//
//   kvbm-wire hash --block-size N [--salt S] [--layout kvbm-1.2|kvbm-1.4]   tokens on stdin
//   kvbm-wire encode [--type batch|event] [--to msgpack|msgpack-named|json-1.2|json-1.3]
//                                                 one value as JSON (either flavour) on stdin
//   kvbm-wire decode [--type batch|event] [--to json-1.2|json-1.3]   msgpack hex on stdin
//
// Output on stdout; invalid input: exit 1 with one `error: ...` line on stderr.
#include "cli.hpp"

#include <cstdio>
#include <exception>
#include <iostream>
#include <iterator>

namespace kvbm_wire {
std::string read_stdin() {
    std::string text{std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
    if (std::cin.bad()) {
        throw usage_error("cannot read standard input");
    }
    return text;
}
}  // namespace kvbm_wire

namespace {
constexpr const char* usage =
    "usage: kvbm-wire hash --block-size N [--salt S] [--layout kvbm-1.2|kvbm-1.4]   (tokens on stdin)\n"
#if KVBM_WIRE_HAVE_JSON
    "       kvbm-wire encode [--type batch|event] [--to msgpack|msgpack-named|json-1.2|json-1.3]   (JSON on stdin)\n"
    "       kvbm-wire decode [--type batch|event] [--to json-1.2|json-1.3]   (msgpack hex on stdin)\n"
#endif
    ;
}  // namespace

int main(int argc, char** argv) {
    std::ios::sync_with_stdio(false);
    const std::vector<std::string> all(argv + 1, argv + argc);
    if (all.empty() || all[0] == "--help" || all[0] == "-h") {
        std::fputs(usage, all.empty() ? stderr : stdout);
        return all.empty() ? 2 : 0;
    }
    const std::vector<std::string> rest(all.begin() + 1, all.end());
    try {
        if (all[0] == "hash") {
            return kvbm_wire::run_hash(rest);
        }
#if KVBM_WIRE_HAVE_JSON
        if (all[0] == "encode") {
            return kvbm_wire::run_encode(rest);
        }
        if (all[0] == "decode") {
            return kvbm_wire::run_decode(rest);
        }
        throw kvbm_wire::usage_error("unknown verb " + all[0] + " (expected hash, encode or decode)");
#else
        throw kvbm_wire::usage_error("unknown verb " + all[0] +
                                     " (expected hash; encode and decode need nlohmann_json)");
#endif
    } catch (const std::exception& e) {
        std::cout.flush();
        std::cerr << "error: " << e.what() << '\n';
        return 1;
    }
}
