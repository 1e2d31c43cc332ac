// kvbm::broadcast under concurrency: senders and several receivers using every receive
// call, on each send path by construction: the sole sender (one Sender object in the whole
// program: no lock, no lease), several sending threads (the lock, leases revoked), one thread
// sending through two copies (the writer lease), temporary extra copies (switching paths),
// and senders leaving mid-stream (2 senders -> 1: the survivor goes lock-free while receivers
// still race). Checks, per receiver: values received plus values reported lagged equals values
// sent, lagged == 0 where the ring holds everything; every value seen was sent, exactly once;
// each sender's values arrive in its program order; all receivers saw one total order.
// Bounded to about a second under TSan.
#include "broadcast_support.hpp"

#include <kvbm/broadcast.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>
#include <version>

#if defined(__cpp_lib_jthread)
#include <stop_token>
#endif

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

struct Options {
    bool extra_copies = true;  // now and then send through a temporary extra Sender copy
    bool two_copies = false;   // each producer alternates between two copies of its own
    bool leave_early = false;  // producers other than the first stop (and drop) halfway
};

double metric(const bc::Sender<Msg>& tx, std::string_view name) { return kvbm_test::metric(tx, name); }
template <class T>
double metric(const bc::Sender<T>&, std::string_view) {
    return 0;
}

template <class T>
void run(std::size_t capacity, int senders, int receivers, std::uint32_t per_sender, std::uint64_t seed,
         Options opt = {}, double* leases = nullptr) {
    auto chan = bc::channel<T>(capacity);  // (no structured bindings: clang 14 cannot capture them)
    auto& tx = chan.first;
    auto& first = chan.second;
    std::vector<bc::Receiver<T>> rxs;
    rxs.push_back(std::move(first));
    for (int i = 1; i < receivers; ++i) {
        rxs.push_back(tx.subscribe());
    }
    // One Sender per producer, moved into its thread: with one producer there is exactly one
    // Sender object in the program, so every send takes the sole-sender path.
    std::vector<bc::Sender<T>> handles;
    for (int s = 1; s < senders; ++s) {
        handles.push_back(tx);
    }
    handles.insert(handles.begin(), std::move(tx));
    std::vector<std::uint32_t> sent_by(static_cast<std::size_t>(senders), 0);
    std::vector<Log> logs(static_cast<std::size_t>(receivers));
    std::vector<std::thread> threads;
    for (int i = 0; i < receivers; ++i) {
        threads.emplace_back([&, i] {
            auto& rx = rxs[static_cast<std::size_t>(i)];
            auto& log = logs[static_cast<std::size_t>(i)];
            std::mt19937_64 rng(seed + 1000 + static_cast<std::uint64_t>(i));
            std::vector<T> batch;
#if defined(__cpp_lib_jthread)
            std::stop_source never;
#endif
            for (;;) {
                bc::RecvResult<T> r = [&] {
                    switch (rng() % 5) {
                        case 0:
                            return rx.try_recv();
                        case 1:
                            return rx.recv_for(std::chrono::microseconds(rng() % 200));
#if defined(__cpp_lib_jthread)
                        case 2:
                            return rx.recv(never.get_token());
#endif
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
    std::atomic<int> leased{0};
    for (int s = 0; s < senders; ++s) {
        producers.emplace_back([&, s, sender = std::move(handles[static_cast<std::size_t>(s)])]() mutable {
            std::mt19937_64 rng(seed + static_cast<std::uint64_t>(s));
            std::optional<bc::Sender<T>> second;
            if (opt.two_copies) {
                second.emplace(sender);
            }
            const std::uint32_t mine = opt.leave_early && s > 0 ? per_sender / 2 : per_sender;
            for (std::uint32_t seq = 0; seq < mine; ++seq) {
                const T value = make<T>(static_cast<std::uint32_t>(s), seq);
                bool ok = true;
                if (opt.extra_copies && rng() % 50 == 0) {
                    bc::Sender<T> extra = sender;  // a temporary copy: the path switches
                    ok = extra.send(value).ok();
                } else if (second && seq % 2 == 1) {
                    ok = second->send(value).ok();
                } else {
                    ok = sender.send(value).ok();
                }
                if (!ok) {
                    ++refused;
                }
                if (rng() % 32 == 0) {
                    std::this_thread::yield();
                }
            }
            sent_by[static_cast<std::size_t>(s)] = mine;
            if (s == 0 && metric(sender, "kvbm_broadcast_writer_leases_total") > 0) {
                leased = 1;
            }
        });
    }
    for (auto& p : producers) {
        p.join();
    }
    for (auto& t : threads) {
        t.join();
    }
    if (leases != nullptr) {
        *leases = leased;
    }
    REQUIRE(refused == 0);

    std::uint64_t sent = 0;
    for (const std::uint32_t n : sent_by) {
        sent += n;
    }
    std::unordered_map<std::uint64_t, std::size_t> order;  // key -> index in receiver 0's log
    for (std::size_t i = 0; i < logs.size(); ++i) {
        const Log& log = logs[i];
        CAPTURE(i, log.keys.size(), log.lagged, sent, capacity);
        REQUIRE(log.errors == 0);
        REQUIRE(log.keys.size() + log.lagged == sent);
        if (capacity >= sent) {
            REQUIRE(log.lagged == 0);  // the ring held everything: nothing may be reported lost
        }
        // Per sender: strictly increasing sequence numbers (so no value twice), each one sent.
        std::vector<std::int64_t> last(static_cast<std::size_t>(senders), -1);
        for (const std::uint64_t k : log.keys) {
            const auto s = static_cast<std::size_t>(k >> 32);
            const auto seq = static_cast<std::int64_t>(k & 0xffffffffU);
            REQUIRE(s < last.size());
            REQUIRE(seq < static_cast<std::int64_t>(sent_by[s]));
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

TEST_CASE("stress: the sole sender (no lock), receivers racing the overwrite", "[broadcast][stress]") {
    const Options sole{false, false, false};  // one Sender object in the program, never copied
    run<Msg>(4, 1, 3, 50000, 7, sole);        // capacity far below the values sent: lag
    run<Msg>(2, 1, 4, 30000, 9, sole);
    run<Msg>(1 << 16, 1, 3, 50000, 8, sole);  // no lag possible: asserted
}

TEST_CASE("stress: two senders, one leaves mid-stream (the survivor turns lock-free)", "[broadcast][stress]") {
    const Options leave{false, false, true};
    run<Msg>(4, 2, 3, 40000, 21, leave);
    run<Msg>(1 << 16, 2, 3, 40000, 22, leave);
    run<BoxedMsg>(4, 2, 3, 2000, 23, leave);
}

TEST_CASE("stress: one thread, two Sender copies (the writer lease), another thread taking it", "[broadcast][stress]") {
    // Alone, a thread sending through two copies is granted the lease...
    double leases = 0;
    run<Msg>(4, 1, 3, 20000, 31, Options{false, true, false}, &leases);
    REQUIRE(leases == 1);
    run<Msg>(1 << 16, 1, 2, 20000, 32, Options{false, true, false}, &leases);
    REQUIRE(leases == 1);
    // ...and with two such threads (and extra copies) the lease is revoked and regranted.
    run<Msg>(8, 2, 3, 20000, 33, Options{true, true, false});
    run<Msg>(1 << 16, 2, 2, 20000, 34, Options{true, true, true});
}

TEST_CASE("stress: non-trivially-copyable values", "[broadcast][stress]") {
    run<BoxedMsg>(8, 3, 3, 2000, 11);
    run<BoxedMsg>(2, 2, 4, 2000, 12);
    run<BoxedMsg>(1 << 13, 2, 3, 2000, 13);
}
