// kvbm-wire: hashes token blocks and (with kvbm::json) converts protocol messages between
// JSON and MessagePack, answering the same contract as the Rust reference's oracle.
//
//   kvbm-wire hash --block-size N [--salt S] [--layout kvbm-1.2|kvbm-1.4]   tokens on stdin
//   kvbm-wire encode [--type batch|event] [--to msgpack|msgpack-named|json-1.2|json-1.3]
//                                                 one value as JSON (either flavour) on stdin
//   kvbm-wire decode [--type batch|event] [--to json-1.2|json-1.3]   msgpack hex on stdin
//
// Output on stdout; invalid input or usage: exit 1 with one `error: ...` line on stderr.
#include "cli.hpp"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <functional>
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

int run_cli(int argc, char** argv) {
    using namespace kvbm_wire;

    CLI::App app("kvbm-wire: Dynamo KV Block Manager hashes and wire messages, as the Rust reference computes them",
                 "kvbm-wire");
    // Values are checked by the verbs (the reference's acceptance set and messages); a
    // repeated option takes its last value.
    app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast)->always_capture_default();
    app.require_subcommand(1);
    std::function<int()> run;

    hash_options hash;
    auto* h = app.add_subcommand("hash", "Hash the token blocks of the u32 tokens on stdin");
    h->allow_extras();
    h->footer("Prints one line per full block: POSITION BLOCK_HASH SEQUENCE_HASH PLH_HEX DISPLAY");
    h->add_option("--block-size", hash.block_size, "Tokens per block (positive)")->required()->type_name("N");
    h->add_option("--salt", hash.salt, "Salt hash of the sequence (u64)")->type_name("S");
    h->add_option("--layout", hash.layout, "Positional lineage hash layout: kvbm-1.2 or kvbm-1.4")->type_name("LAYOUT");
    h->callback([&] { run = [&] { return run_hash(hash); }; });

#if KVBM_WIRE_HAVE_JSON
    codec_options encode{"batch", "msgpack"};
    auto* e = app.add_subcommand("encode", "Convert one value given as JSON (either flavour) on stdin");
    e->allow_extras();
    e->footer("MessagePack is printed as lowercase hex, JSON as serde_json's text.");
    e->add_option("--type", encode.type, "batch (KvbmCacheEvents) or event (KvCacheEvent)")->type_name("TYPE");
    e->add_option("--to", encode.to, "msgpack, msgpack-named (batch only), json-1.2 or json-1.3")->type_name("FORM");
    e->callback([&] { run = [&] { return run_encode(encode); }; });

    codec_options decode{"batch", "json-1.2"};
    auto* d = app.add_subcommand("decode", "Print MessagePack given as hex on stdin as JSON");
    d->allow_extras();
    d->footer("Bytes after the message are ignored, as the reference ignores them.");
    d->add_option("--type", decode.type, "batch (KvbmCacheEvents) or event (KvCacheEvent)")->type_name("TYPE");
    d->add_option("--to", decode.to, "json-1.2 or json-1.3")->type_name("FORM");
    d->callback([&] { run = [&] { return run_decode(decode); }; });
#else
    app.footer("encode and decode need nlohmann_json at build time.");
#endif

    if (argc < 2) {
        std::fputs(app.help().c_str(), stderr);
        return 2;
    }
    try {
        const std::string first = argv[1];
        const auto is_verb = [&] {
            const auto verbs = app.get_subcommands([&](const CLI::App* v) { return v->get_name() == first; });
            return !verbs.empty();
        };
        if (!first.empty() && first[0] != '-' && !is_verb()) {
#if KVBM_WIRE_HAVE_JSON
            throw usage_error("unknown verb " + first + " (expected hash, encode or decode)");
#else
            throw usage_error("unknown verb " + first + " (expected hash; encode and decode need nlohmann_json)");
#endif
        }
        app.parse(argc, argv);
        for (const auto* verb : app.get_subcommands()) {
            if (!verb->remaining().empty()) {  // extras are allowed so that they come out in order
                throw usage_error("unknown argument " + verb->remaining().front());
            }
        }
        return run();
    } catch (const CLI::CallForHelp&) {
        std::cout << app.help();
        return 0;
    } catch (const CLI::CallForAllHelp&) {
        std::cout << app.help("", CLI::AppFormatMode::All);
        return 0;
    } catch (const std::exception& err) {  // CLI::ParseError included
        std::cout.flush();
        std::cerr << "error: " << err.what() << '\n';
        return 1;
    }
}

}  // namespace

int main(int argc, char** argv) {
    std::ios::sync_with_stdio(false);
    try {
        return run_cli(argc, argv);
    } catch (const std::exception& err) {  // building the command line failed (out of memory)
        std::cerr << "error: " << err.what() << '\n';
        return 1;
    }
}
