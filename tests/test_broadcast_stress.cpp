// kvbm::broadcast under concurrency: several senders (each with its own Sender copy, some
// coming and going so the channel switches between its locked and sole-sender paths) and
// several receivers using every receive call. Checks, per receiver: values received plus
// values reported lagged equals values sent; each sender's values arrive in its program
// order; and all receivers saw one total order. Bounded to about a second under TSan.
#include <kvbm/broadcast.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <random>
#include <stop_token>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace bc = kvbm::broadcast;
using namespace std::chrono_literals;

namespace {

struct Msg {
    std::uint32_t sender = 0;
    std::uint32_t seq = 0;
    [[nodiscard]] std::uint64_t key() const { return (std::uint64_t{sender} << 32) | seq; }
};

// A non-trivially-copyable message, for the locked slots with remaining-reader counts.
struct BoxedMsg {
    std::string text;  // heap-allocated: "sender:seq" padded past the small-string buffer
    BoxedMsg() = default;
    BoxedMsg(std::uint32_t sender, std::uint32_t seq)
        : text(std::to_string(sender) + ":" + std::to_string(seq) + std::string(24, '.')) {}
    [[nodiscard]] std::uint64_t key() const {
        const auto colon = text.find(':');
        return (std::stoull(text.substr(0, colon)) << 32) | std::stoull(text.substr(colon + 1));
    }
};

template <class T>
T make(std::uint32_t sender, std::uint32_t seq) {
    if constexpr (std::is_same_v<T, Msg>) {
        return Msg{sender, seq};
    } else {
        return T(sender, seq);
    }
}

struct Log {
    std::vector<std::uint64_t> keys;
    std::uint64_t lagged = 0;
    int errors = 0;
};

template <class T>
void run(std::size_t capacity, int senders, int receivers, std::uint32_t per_sender, std::uint64_t seed) {
    auto [tx, first] = bc::channel<T>(capacity);
    std::vector<bc::Receiver<T>> rxs;
    rxs.push_back(std::move(first));
    for (int i = 1; i < receivers; ++i) {
        rxs.push_back(tx.subscribe());
    }
    std::vector<Log> logs(static_cast<std::size_t>(receivers));
    std::vector<std::thread> threads;
    for (int i = 0; i < receivers; ++i) {
        threads.emplace_back([&, i] {
            auto& rx = rxs[static_cast<std::size_t>(i)];
            auto& log = logs[static_cast<std::size_t>(i)];
            std::mt19937_64 rng(seed + 1000 + static_cast<std::uint64_t>(i));
            std::vector<T> batch;
            std::stop_source never;
            for (;;) {
                bc::RecvResult<T> r = [&] {
                    switch (rng() % 5) {
                        case 0:
                            return rx.try_recv();
                        case 1:
                            return rx.recv_for(std::chrono::microseconds(rng() % 200));
                        case 2:
                            return rx.recv(never.get_token());
                        default:
                            return rx.recv();
                    }
                }();
                if (r) {
                    log.keys.push_back(r->key());
                } else if (r.is_lagged()) {
                    if (r.lagged_count() == 0) {
                        ++log.errors;
                    }
                    log.lagged += r.lagged_count();
                } else if (r.is_closed()) {
                    if (!rx.try_recv().is_closed()) {  // closed is final
                        ++log.errors;
                    }
                    return;
                } else if (!r.is_empty() && !r.is_timeout()) {
                    ++log.errors;
                }
                if (rng() % 7 == 0) {
                    batch.clear();
                    // Stops before a lag; the next receive above reports and counts it.
                    const auto d = rx.drain(batch, rng() % 16);
                    if (d.count != batch.size()) {
                        ++log.errors;
                    }
                    for (const auto& v : batch) {
                        log.keys.push_back(v.key());
                    }
                }
                if (rng() % 64 == 0) {
                    std::this_thread::yield();  // fall behind now and then
                }
            }
        });
    }
    std::vector<std::thread> producers;
    std::atomic<int> refused{0};
    for (int s = 0; s < senders; ++s) {
        producers.emplace_back([&, s, mine = tx] {
            std::mt19937_64 rng(seed + static_cast<std::uint64_t>(s));
            // Senders come and go: a temporary extra copy now and then moves the channel
            // between the sole-sender and the locked path when only one thread sends.
            bc::Sender<T> sender = mine;
            for (std::uint32_t seq = 0; seq < per_sender; ++seq) {
                if (rng() % 50 == 0) {
                    bc::Sender<T> extra = sender;
                    if (!extra.send(make<T>(static_cast<std::uint32_t>(s), seq)).ok()) {
                        ++refused;
                    }
                    continue;
                }
                if (!sender.send(make<T>(static_cast<std::uint32_t>(s), seq)).ok()) {
                    ++refused;
                }
                if (rng() % 32 == 0) {
                    std::this_thread::yield();
                }
            }
        });
    }
    { auto gone = std::move(tx); }  // each producer holds its own copy
    for (auto& p : producers) {
        p.join();
    }
    for (auto& t : threads) {
        t.join();
    }
    REQUIRE(refused == 0);

    const std::uint64_t sent = std::uint64_t{per_sender} * static_cast<std::uint64_t>(senders);
    std::unordered_map<std::uint64_t, std::size_t> order;  // key -> index in receiver 0's log
    for (std::size_t i = 0; i < logs.size(); ++i) {
        const Log& log = logs[i];
        CAPTURE(i, log.keys.size(), log.lagged);
        REQUIRE(log.errors == 0);
        REQUIRE(log.keys.size() + log.lagged == sent);
        // Per sender: strictly increasing sequence numbers.
        std::vector<std::int64_t> last(static_cast<std::size_t>(senders), -1);
        for (const std::uint64_t k : log.keys) {
            const auto s = static_cast<std::size_t>(k >> 32);
            const auto seq = static_cast<std::int64_t>(k & 0xffffffffU);
            REQUIRE(s < last.size());
            REQUIRE(seq > last[s]);
            last[s] = seq;
        }
        // One total order: values that two receivers both saw come in the same order.
        if (i == 0) {
            for (std::size_t j = 0; j < log.keys.size(); ++j) {
                order.emplace(log.keys[j], j);
            }
        } else {
            std::int64_t prev = -1;
            for (const std::uint64_t k : log.keys) {
                const auto it = order.find(k);
                if (it != order.end()) {
                    REQUIRE(static_cast<std::int64_t>(it->second) > prev);
                    prev = static_cast<std::int64_t>(it->second);
                }
            }
        }
    }
}

}  // namespace

TEST_CASE("stress: trivially copyable values", "[broadcast][stress]") {
    for (std::uint64_t seed = 1; seed <= 3; ++seed) {
        run<Msg>(8, 3, 3, 10000, seed);        // small ring: lots of lag
        run<Msg>(256, 3, 3, 10000, seed);      // some lag
        run<Msg>(1 << 15, 2, 2, 10000, seed);  // no lag
    }
}

TEST_CASE("stress: one sender (no lock)", "[broadcast][stress]") {
    run<Msg>(4, 1, 3, 50000, 7);
    run<Msg>(1 << 16, 1, 3, 50000, 8);
}

TEST_CASE("stress: non-trivially-copyable values", "[broadcast][stress]") {
    run<BoxedMsg>(8, 3, 3, 2000, 11);
    run<BoxedMsg>(2, 2, 4, 2000, 12);
    run<BoxedMsg>(1 << 13, 2, 3, 2000, 13);
}
