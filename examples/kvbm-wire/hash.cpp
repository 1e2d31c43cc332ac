// kvbm-wire hash: one line per full block, `POSITION BLOCK_HASH SEQUENCE_HASH PLH_HEX DISPLAY`.
#include "cli.hpp"

#include <kvbm/tokens.hpp>

#include <charconv>
#include <cstdio>
#include <string>
#include <vector>

namespace kvbm_wire {
namespace {

std::uint64_t parse_u64(const std::string& text, const char* what) {
    std::uint64_t v = 0;
    const auto r = std::from_chars(text.data(), text.data() + text.size(), v);
    if (r.ec != std::errc{} || r.ptr != text.data() + text.size()) {
        throw usage_error(std::string(what) + " needs an unsigned 64-bit integer, got '" + text + "'");
    }
    return v;
}

template <kvbm::PlhLayout Layout>
void print_blocks(const std::vector<kvbm::Token>& tokens, std::size_t block_size, std::uint64_t salt) {
    const auto seq = kvbm::BasicTokenBlockSequence<Layout>::from_slice(tokens, block_size, salt);
    std::string out;
    for (const auto& b : seq.blocks()) {
        out += std::to_string(b.position());
        out += ' ';
        out += std::to_string(b.block_hash);
        out += ' ';
        out += std::to_string(b.sequence_hash);
        out += ' ';
        out += b.plh.raw().to_hex32();
        out += ' ';
        out += b.plh.to_string();
        out += '\n';
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
}

}  // namespace

int run_hash(const hash_options& opts) {
    const std::uint64_t block_size = parse_u64(opts.block_size, "--block-size");
    if (block_size == 0) {
        throw usage_error("block size must be positive");
    }
    const std::uint64_t salt = parse_u64(opts.salt, "--salt");
    const std::string& layout = opts.layout;
    if (layout != "kvbm-1.2" && layout != "kvbm-1.4") {
        throw usage_error("unknown layout " + layout + " (expected kvbm-1.2 or kvbm-1.4)");
    }

    const std::string text = read_stdin();
    std::vector<kvbm::Token> tokens;
    const char* p = text.data();
    const char* end = p + text.size();
    const auto is_space = [](char c) {
        return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
    };
    while (true) {
        while (p != end && is_space(*p)) {
            ++p;
        }
        if (p == end) {
            break;
        }
        const char* word = p;
        while (p != end && !is_space(*p)) {
            ++p;
        }
        kvbm::Token t = 0;
        const auto r = std::from_chars(word, p, t);
        if (r.ec != std::errc{} || r.ptr != p) {
            throw usage_error("not a u32 token: " + std::string(word, p));
        }
        tokens.push_back(t);
    }
    if (layout == "kvbm-1.2") {
        print_blocks<kvbm::PlhLayout::kvbm_1_2>(tokens, block_size, salt);
    } else {
        print_blocks<kvbm::PlhLayout::kvbm_1_4>(tokens, block_size, salt);
    }
    return 0;
}

}  // namespace kvbm_wire
