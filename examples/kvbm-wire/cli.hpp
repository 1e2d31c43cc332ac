// Shared plumbing of kvbm-wire's verbs: option lookup and the one-line error contract.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace kvbm_wire {

/// Thrown for any bad input or usage; main prints `error: <what>` and exits 1.
struct usage_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// Options of the form `--name value`; unknown options and stray words are errors.
class options {
public:
    options(std::vector<std::string> args, std::vector<std::string_view> known) : m_args(std::move(args)) {
        for (std::size_t i = 0; i < m_args.size(); i += 2) {
            bool ok = false;
            for (const auto k : known) {
                ok = ok || m_args[i] == k;
            }
            if (!ok) {
                throw usage_error("unknown argument " + m_args[i]);
            }
            if (i + 1 >= m_args.size()) {
                throw usage_error(m_args[i] + " needs a value");
            }
        }
    }
    [[nodiscard]] std::string get(std::string_view name, std::string fallback) const {
        for (std::size_t i = 0; i + 1 < m_args.size(); i += 2) {
            if (m_args[i] == name) {
                fallback = m_args[i + 1];  // the last occurrence wins
            }
        }
        return fallback;
    }
    [[nodiscard]] bool has(std::string_view name) const {
        for (std::size_t i = 0; i + 1 < m_args.size(); i += 2) {
            if (m_args[i] == name) {
                return true;
            }
        }
        return false;
    }

private:
    std::vector<std::string> m_args;
};

/// All of standard input.
std::string read_stdin();

int run_hash(const std::vector<std::string>& args);
int run_encode(const std::vector<std::string>& args);
int run_decode(const std::vector<std::string>& args);

}  // namespace kvbm_wire
