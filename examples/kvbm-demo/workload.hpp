// kvbm-demo's traffic: chat sessions whose prompts share prefixes the way real traffic
// does. A few popular system prompts (Zipf popularity) open every conversation; each
// request appends a user turn to the session's history, and the reply is appended after
// serving, so the next turn's prompt extends the previous one's cached blocks.
#pragma once

#include <kvbm/tokens.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace kvbm_demo {

/// splitmix64: small, fast, and reproducible across platforms (std::*_distribution is not).
class Rng {
public:
    explicit Rng(std::uint64_t seed) : m_state(seed) {}
    std::uint64_t next() {
        m_state += 0x9E3779B97F4A7C15ULL;
        std::uint64_t z = m_state;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
    }
    /// Uniform in [lo, hi].
    std::uint64_t between(std::uint64_t lo, std::uint64_t hi) { return lo + next() % (hi - lo + 1); }
    double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

private:
    std::uint64_t m_state;
};

/// Picks index i of n with probability proportional to 1 / (i + 1)^s.
class Zipf {
public:
    Zipf(std::size_t n, double s) {
        double total = 0;
        for (std::size_t i = 0; i < n; ++i) {
            total += 1.0 / std::pow(static_cast<double>(i + 1), s);
            m_cdf.push_back(total);
        }
        for (auto& c : m_cdf) {
            c /= total;
        }
    }
    std::size_t operator()(Rng& rng) const {
        const auto it = std::lower_bound(m_cdf.begin(), m_cdf.end(), rng.unit());
        return std::min(static_cast<std::size_t>(it - m_cdf.begin()), m_cdf.size() - 1);
    }

private:
    std::vector<double> m_cdf;
};

struct WorkloadConfig {
    std::size_t system_prompts = 6;
    std::size_t users = 96;
    std::size_t max_seq_len = 8192;  // tokens; a conversation that would pass it starts over
    std::uint64_t seed = 42;
};

/// One request: the session it belongs to and its prompt tokens.
struct Request {
    std::size_t user = 0;
    std::vector<kvbm::Token> prompt;
};

class Workload {
public:
    explicit Workload(const WorkloadConfig& cfg)
        : m_cfg(cfg), m_rng(cfg.seed), m_system_pick(cfg.system_prompts, 1.1), m_user_pick(cfg.users, 0.6) {
        for (std::size_t i = 0; i < cfg.system_prompts; ++i) {
            m_system.push_back(random_tokens(m_rng.between(384, 1536)));
        }
        for (std::size_t u = 0; u < cfg.users; ++u) {
            m_sessions.push_back(new_session());
        }
    }

    /// The next request: a user (popular ones more often) sends a new turn.
    Request next() {
        const std::size_t user = m_user_pick(m_rng);
        auto& history = m_sessions[user];
        const auto turn = random_tokens(m_rng.between(24, 192));
        // Room for this turn and a reply of up to 160 tokens, or start a new conversation.
        if (history.size() + turn.size() + 160 > m_cfg.max_seq_len) {
            history = new_session();
        }
        history.insert(history.end(), turn.begin(), turn.end());
        return {user, history};
    }

    /// After serving: the reply joins the session's history (and the worker's cache).
    std::vector<kvbm::Token> reply(std::size_t user) {
        auto answer = random_tokens(m_rng.between(16, 160));
        auto& history = m_sessions[user];
        history.insert(history.end(), answer.begin(), answer.end());
        return history;
    }

private:
    std::vector<kvbm::Token> random_tokens(std::uint64_t n) {
        std::vector<kvbm::Token> out(n);
        for (auto& t : out) {
            t = static_cast<kvbm::Token>(m_rng.next() % 50000);  // a vocabulary-sized id
        }
        return out;
    }
    std::vector<kvbm::Token> new_session() { return m_system[m_system_pick(m_rng)]; }

    WorkloadConfig m_cfg;
    Rng m_rng;
    Zipf m_system_pick;
    Zipf m_user_pick;
    std::vector<std::vector<kvbm::Token>> m_system;
    std::vector<std::vector<kvbm::Token>> m_sessions;
};

}  // namespace kvbm_demo
