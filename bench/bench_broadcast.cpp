// Broadcast fan-out: kvbm::broadcast against a mutex + condition variable + per-receiver
// deque channel (baseline_*), in the shapes of the Rust reference (oracle/src/bench.rs),
// event type KvCacheEvent<PositionalLineageHash>, capacity 1024:
//   *_st/rx=N  one thread sends 256 events, then each of N receivers drains them with
//              try_recv; ns per (receiver, event) delivery.
//   *_mt/rx=N  one sender thread, N receiver threads blocked in recv until closed; the
//              sender holds back while the slowest receiver is more than 512 behind
//              (lossless); deliveries per second and the fraction delivered.
//   broadcast_st_multi/rx=N, broadcast_mt_multi/rx=N  the same shapes on the path the
//              pipeline takes: other Sender copies are alive (the manager's, the release
//              handles'), so every send is a multi-sender send; in *_mt_multi two threads
//              send (half the events each, each holding back as above).
#include "baseline_broadcast.hpp"
#include "bench.hpp"

#include <kvbm/broadcast.hpp>
#include <kvbm/events.hpp>

#include <array>
#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

using Event = kvbm::KvCacheEvent<kvbm::PositionalLineageHash>;
constexpr std::size_t capacity = 1024;

Event make_event(std::uint64_t i) { return Event::create(kvbm::PositionalLineageHash::from_raw(kvbm::Uint128(i))); }

// Receivers use each value (the reference's `Ok(_)` need not): one field read, kept without
// a memory clobber, so the compiler can neither skip the copy out of the channel nor is it
// made to reload everything after each value.
inline void use(std::uint64_t v) { asm volatile("" : : "r"(v)); }

template <bool MultiSender>
struct KvbmFixtureOf {
    std::optional<kvbm::broadcast::Sender<Event>> tx;
    std::optional<kvbm::broadcast::Sender<Event>> other;  // MultiSender: a second copy, alive
    std::vector<kvbm::broadcast::Receiver<Event>> rxs;

    explicit KvbmFixtureOf(std::size_t receivers) {
        auto [sender, first] = kvbm::broadcast::channel<Event>(capacity);
        for (std::size_t i = 0; i < receivers; ++i) {
            rxs.push_back(sender.subscribe());
        }
        if constexpr (MultiSender) {
            other.emplace(sender);
        }
        tx.emplace(std::move(sender));
    }  // `first` is dropped, as the reference drops its rx0
    void send(std::uint64_t i) { (void)tx->send(make_event(i)); }
    // The second sending thread of *_mt_multi (MultiSender only).
    void send_other(std::uint64_t i) { (void)other->send(make_event(i)); }
    // As the reference: `for rx in rxs.iter_mut() { while let Ok(_) = rx.try_recv() { .. } }`
    std::size_t drain_with_try_recv(std::size_t k) {
        auto& rx = rxs[k];
        std::size_t got = 0;
        while (auto r = rx.try_recv()) {
            use(r->hash.raw().low());
            ++got;
        }
        return got;
    }
    void close() {
        tx.reset();
        other.reset();
    }
    std::uint64_t receive_all(std::size_t k, std::atomic<std::uint64_t>& progress) {
        auto& rx = rxs[k];
        std::uint64_t got = 0;
        for (;;) {
            auto r = rx.recv();
            if (r) {
                use(r->hash.raw().low());
                progress.store(++got, std::memory_order_relaxed);
            } else if (r.is_closed()) {
                return got;
            }
        }
    }
};

using KvbmFixture = KvbmFixtureOf<false>;
using KvbmMultiFixture = KvbmFixtureOf<true>;

struct BaselineFixture {
    kvbm_bench::MutexBroadcast<Event> chan{capacity};
    std::vector<std::shared_ptr<kvbm_bench::MutexBroadcast<Event>::Queue>> rxs;

    explicit BaselineFixture(std::size_t receivers) {
        for (std::size_t i = 0; i < receivers; ++i) {
            rxs.push_back(chan.subscribe());
        }
    }
    void send(std::uint64_t i) { (void)chan.send(make_event(i)); }
    std::size_t drain_with_try_recv(std::size_t k) {
        auto& rx = *rxs[k];
        std::size_t got = 0;
        while (auto r = chan.try_recv(rx)) {
            use(r->hash.raw().low());
            ++got;
        }
        return got;
    }
    void close() { chan.close(); }
    std::uint64_t receive_all(std::size_t k, std::atomic<std::uint64_t>& progress) {
        std::uint64_t got = 0;
        while (auto r = chan.recv(*rxs[k])) {
            use(r->hash.raw().low());
            progress.store(++got, std::memory_order_relaxed);
        }
        return got;
    }
};

template <class Fixture>
double single_thread(std::size_t receivers, std::size_t rounds) {
    Fixture f(receivers);
    const auto t0 = std::chrono::steady_clock::now();
    std::size_t got = 0;
    for (std::size_t r = 0; r < rounds; ++r) {
        for (std::uint64_t i = 0; i < 256; ++i) {
            f.send(i + r);
        }
        for (std::size_t k = 0; k < receivers; ++k) {
            got += f.drain_with_try_recv(k);
        }
    }
    const std::chrono::duration<double, std::nano> dt = std::chrono::steady_clock::now() - t0;
    if (got != rounds * 256 * receivers) {
        std::fprintf(stderr, "single_thread: lost deliveries\n");
        std::abort();
    }
    return dt.count() / static_cast<double>(got);
}

struct alignas(64) Padded {
    std::atomic<std::uint64_t> got{0};
};

// Holds back while the slowest receiver is more than 512 behind `sent` (so nothing is lost).
inline void hold_back(const std::vector<Padded>& progress, std::uint64_t sent) {
    for (;;) {
        std::uint64_t slowest = ~std::uint64_t{0};
        for (const auto& p : progress) {
            slowest = std::min(slowest, p.got.load(std::memory_order_relaxed));
        }
        if (slowest + 512 >= sent) {
            return;
        }
        std::this_thread::yield();
    }
}

// TwoSenders: this thread and a second one each send half the events (interleaved in
// whatever order they race to), each counting all values sent so far when holding back.
template <class Fixture, bool TwoSenders = false>
std::pair<double, double> multi_thread(std::size_t receivers, std::uint64_t events) {
    Fixture f(receivers);
    std::vector<Padded> progress(receivers);
    std::vector<std::uint64_t> delivered(receivers, 0);
    std::vector<std::thread> threads;
    for (std::size_t k = 0; k < receivers; ++k) {
        threads.emplace_back([&, k] { delivered[k] = f.receive_all(k, progress[k].got); });
    }
    const auto t0 = std::chrono::steady_clock::now();
    if constexpr (TwoSenders) {
        // Each thread publishes its count (every 32 sends, on its own line) and holds back
        // on the total of both: the ring never laps (512 + 2 x 64 in flight < capacity).
        std::array<Padded, 2> sent;
        auto sender_loop = [&](int me, std::uint64_t first, std::uint64_t last, auto&& send) {
            for (std::uint64_t i = first; i < last; ++i) {
                if ((i - first) % 32 == 0) {
                    sent[static_cast<std::size_t>(me)].got.store(i - first, std::memory_order_relaxed);
                    hold_back(progress, sent[0].got.load(std::memory_order_relaxed) +
                                            sent[1].got.load(std::memory_order_relaxed));
                }
                send(i);
            }
        };
        std::thread second([&] { sender_loop(1, 0, events / 2, [&](std::uint64_t i) { f.send_other(i); }); });
        sender_loop(0, events / 2, events, [&](std::uint64_t i) { f.send(i); });
        second.join();
    } else {
        for (std::uint64_t i = 0; i < events; ++i) {
            if (i % 64 == 0) {
                hold_back(progress, i);
            }
            f.send(i);
        }
    }
    f.close();
    std::uint64_t total = 0;
    for (std::size_t k = 0; k < receivers; ++k) {
        threads[k].join();
        total += delivered[k];
    }
    const std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
    return {static_cast<double>(total) / dt.count(),
            static_cast<double>(total) / (static_cast<double>(events) * static_cast<double>(receivers))};
}

template <class Fixture, bool TwoSenders = false>
void run_group(const kvbm_bench::settings& s, const std::string& prefix) {
    for (const std::size_t rx : {1U, 4U, 16U}) {
        const double v = kvbm_bench::best_of(s.runs, [&] { return single_thread<Fixture>(rx, s.quick ? 200 : 1000); });
        kvbm_bench::report(prefix + (TwoSenders ? "_st_multi/rx=" : "_st/rx=") + std::to_string(rx), v,
                           "ns_per_delivery", 2);
    }
    for (const std::size_t rx : {1U, 2U, 4U}) {
        const std::uint64_t events = s.quick ? 200'000 : 1'000'000;
        std::pair<double, double> best{0.0, 0.0};
        for (int i = 0; i < std::min(s.runs, 3); ++i) {
            const auto r = multi_thread<Fixture, TwoSenders>(rx, events);
            if (r.first > best.first) {
                best = r;
            }
        }
        const std::string name = prefix + (TwoSenders ? "_mt_multi/rx=" : "_mt/rx=") + std::to_string(rx);
        kvbm_bench::report(name, best.first, "deliveries_per_s", 0);
        kvbm_bench::report(name + "/delivered", best.second, "fraction", 4);
    }
}

}  // namespace

KVBM_BENCH("broadcast") {
    run_group<KvbmFixture>(s, "broadcast");
    run_group<KvbmMultiFixture, true>(s, "broadcast");
}
KVBM_BENCH("baseline") { run_group<BaselineFixture>(s, "baseline"); }
