// Shared plumbing of kvbm-wire's verbs: their options and the one-line error contract.
#pragma once

#include <stdexcept>
#include <string>

namespace kvbm_wire {

/// Thrown for any bad input or usage; main prints `error: <what>` and exits 1.
struct usage_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// `kvbm-wire hash` options, as given (main.cpp parses the command line with CLI11; the
/// verb checks values itself, so its messages and acceptance match the reference's).
struct hash_options {
    std::string block_size;
    std::string salt = "0";
    std::string layout = "kvbm-1.2";
};

/// `kvbm-wire encode` and `kvbm-wire decode` options.
struct codec_options {
    std::string type = "batch";
    std::string to;  // the default is the verb's: msgpack for encode, json-1.2 for decode
};

/// All of standard input.
std::string read_stdin();

int run_hash(const hash_options& opts);
int run_encode(const codec_options& opts);
int run_decode(const codec_options& opts);

}  // namespace kvbm_wire
