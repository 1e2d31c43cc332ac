// kvbm::broadcast: blocking receives. Parked receivers are woken by a send (from a sole
// sender, which takes no lock, and from one of several senders) and by the last sender
// going away (tokio's send_recv_bounded, send_two_recv_bounded, dropping_tx_notifies_rx);
// recv_for times out; recv(stop_token) returns stopped. The channel's park and wake counters
// prove the receivers really slept and were woken (not merely found the value while
// watching). Threads blocked in recv are unblocked (channel closed, stop requested) before
// any join, so a failing assertion fails instead of hanging.
#include "broadcast_support.hpp"

#include <kvbm/broadcast.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <thread>
#include <version>

#if defined(__cpp_lib_jthread)
#include <stop_token>
#endif
#include <vector>

namespace bc = kvbm::broadcast;
using namespace std::chrono_literals;

namespace {

// Runs recv() on a thread; `result` is set when it returns.
template <class T, class Recv>
struct Waiter {
    std::atomic<bool> done{false};
    bc::RecvStatus status = bc::RecvStatus::empty;
    T value{};
    std::thread thread;

    Waiter(bc::Receiver<T>& rx, Recv recv) {
        thread = std::thread([this, &rx, recv] {
            auto r = recv(rx);
            status = r.status();
            if (r) {
                value = *r;
            }
            done.store(true);
        });
    }
    ~Waiter() {
        if (thread.joinable()) {
            thread.join();
        }
    }
};

template <class T, class Recv>
Waiter(bc::Receiver<T>&, Recv) -> Waiter<T, Recv>;

}  // namespace

double parks(const bc::Sender<int>& tx) { return kvbm_test::metric(tx, "kvbm_broadcast_parks_total"); }
double wakes(const bc::Sender<int>& tx) { return kvbm_test::metric(tx, "kvbm_broadcast_wakes_total"); }

TEST_CASE("a parked receiver is woken by a send", "[broadcast][blocking]") {
    for (const bool several_senders : {false, true}) {
        CAPTURE(several_senders);
        auto chan = bc::channel<int>(16);  // (no structured bindings: clang 14 cannot capture them)
        auto& tx = chan.first;
        auto& rx1 = chan.second;
        std::optional<bc::Sender<int>> second;
        if (several_senders) {
            second.emplace(tx);  // two senders: the multi-sender path
        }
        auto rx2 = tx.subscribe();
        auto recv = [](bc::Receiver<int>& rx) { return rx.recv(); };
        Waiter w1(rx1, recv);
        Waiter w2(rx2, recv);
        std::optional<bc::Sender<int>> closer(tx);
        kvbm_test::OnExit unblock([&] {  // on failure: close, so the waiters return
            { auto gone = std::move(tx); }
            second.reset();
            closer.reset();
        });
        // Both went to sleep (counted as they park), then one send wakes them.
        REQUIRE(kvbm_test::eventually([&] { return parks(*closer) >= 2; }));
        REQUIRE_FALSE(w1.done.load());
        REQUIRE(wakes(*closer) == 0);
        REQUIRE(tx.send(42).ok());
        REQUIRE(kvbm_test::eventually([&] { return w1.done.load() && w2.done.load(); }));
        w1.thread.join();
        w2.thread.join();
        REQUIRE(w1.status == bc::RecvStatus::ok);
        REQUIRE(w1.value == 42);
        REQUIRE(w2.value == 42);
        REQUIRE(wakes(*closer) >= 1);
    }
}

TEST_CASE("a failed membarrier falls back to fences and bounded sleeps", "[broadcast][blocking]") {
    auto chan = bc::channel<int>(16);  // (no structured bindings: clang 14 cannot capture them)
    auto& tx = chan.first;
    auto& rx = chan.second;
    auto recv = [](bc::Receiver<int>& r) { return r.recv(); };
    std::optional<bc::Sender<int>> probe(tx);
    { auto gone = std::move(probe); }  // tx is the sole sender again: the lock-free path
    const bool asymmetric = kvbm::detail::broadcast_heavy_barrier_available();
    kvbm::detail::broadcast_heavy_barrier_failures_to_inject = 1;
    Waiter w(rx, recv);
    kvbm_test::OnExit unblock([&] { auto gone = std::move(tx); });
    REQUIRE(kvbm_test::eventually([&] { return parks(tx) >= 1; }));
    REQUIRE(tx.send(7).ok());
    REQUIRE(kvbm_test::eventually([&] { return w.done.load(); }));
    w.thread.join();
    REQUIRE(w.value == 7);
    // Where membarrier is in use, the injected failure switched the channel to fences.
    REQUIRE(kvbm_test::metric(tx, "kvbm_broadcast_degraded") == (asymmetric ? 1.0 : 0.0));
    kvbm::detail::broadcast_heavy_barrier_failures_to_inject = 0;
}

TEST_CASE("an idle receiver does not run a process-wide barrier per timed wait", "[broadcast][blocking]") {
    auto chan = bc::channel<int>(16);  // (no structured bindings: clang 14 cannot capture them)
    auto& tx = chan.first;
    auto& rx = chan.second;
    for (int i = 0; i < 20; ++i) {
        REQUIRE(rx.recv_for(2ms).is_timeout());  // a batcher's idle windows
    }
    REQUIRE(parks(tx) >= 1);
    // One barrier when it first marked the word parked; none for the later sleeps.
    REQUIRE(kvbm_test::metric(tx, "kvbm_broadcast_heavy_barriers_total") <= 1);
    REQUIRE(tx.send(1).ok());  // the send sees the mark and wakes (nobody sleeps now)
    REQUIRE(*rx.recv_for(0ms) == 1);
    REQUIRE(rx.recv_for(2ms).is_timeout());  // parked again after a wake: a new barrier
    REQUIRE(kvbm_test::metric(tx, "kvbm_broadcast_heavy_barriers_total") <=
            (kvbm::detail::broadcast_heavy_barrier_available() ? 2 : 0));
}

TEST_CASE("recv returns ready values without waiting, lagged included", "[broadcast][blocking]") {
    auto chan = bc::channel<int>(2);  // (no structured bindings: clang 14 cannot capture them)
    auto& tx = chan.first;
    auto& rx = chan.second;
    for (int i = 0; i < 3; ++i) {
        REQUIRE(tx.send(i).ok());
    }
    auto r = rx.recv();
    REQUIRE(r.is_lagged());
    REQUIRE(r.lagged_count() == 1);
    REQUIRE(*rx.recv() == 1);
    REQUIRE(*rx.recv() == 2);
}

TEST_CASE("the last sender going away wakes parked receivers with closed", "[broadcast][blocking]") {
    auto chan = bc::channel<int>(16);  // (no structured bindings: clang 14 cannot capture them)
    auto& tx = chan.first;
    auto& rx1 = chan.second;
    auto rx2 = tx.subscribe();
    std::optional<bc::Sender<int>> tx2(tx);
    std::optional<bc::Sender<int>> observer(tx);  // the metrics after the others are gone
    auto recv = [](bc::Receiver<int>& rx) { return rx.recv(); };
    Waiter w1(rx1, recv);
    Waiter w2(rx2, recv);
    kvbm_test::OnExit unblock([&] {
        { auto gone = std::move(tx); }
        tx2.reset();
        observer.reset();
    });
    REQUIRE(kvbm_test::eventually([&] { return parks(*observer) >= 2; }));
    { auto gone = std::move(tx); }
    std::this_thread::sleep_for(20ms);  // (only to give a wrong wake-up a chance to show)
    REQUIRE_FALSE(w1.done.load());      // two senders are still there
    REQUIRE_FALSE(w2.done.load());
    tx2.reset();
    REQUIRE_FALSE(w1.done.load());
    observer.reset();  // the last one: closes
    REQUIRE(kvbm_test::eventually([&] { return w1.done.load() && w2.done.load(); }));
    w1.thread.join();
    w2.thread.join();
    REQUIRE(w1.status == bc::RecvStatus::closed);
    REQUIRE(w2.status == bc::RecvStatus::closed);
}

TEST_CASE("recv_for times out when nothing comes, and returns what comes in time", "[broadcast][blocking]") {
    auto chan = bc::channel<int>(4);  // (no structured bindings: clang 14 cannot capture them)
    auto& tx = chan.first;
    auto& rx = chan.second;
    const auto t0 = std::chrono::steady_clock::now();
    auto r = rx.recv_for(30ms);
    REQUIRE(r.is_timeout());
    REQUIRE(std::chrono::steady_clock::now() - t0 >= 30ms);
    REQUIRE(rx.recv_for(0ms).is_timeout());
    REQUIRE(rx.recv_for(-5ms).is_timeout());

    REQUIRE(tx.send(3).ok());
    REQUIRE(*rx.recv_for(0ms) == 3);  // ready values come first, even with no time left

    auto& sender = tx;  // (clang 14 cannot capture structured bindings)
    std::thread later([&] {
        std::this_thread::sleep_for(20ms);
        (void)sender.send(4);
    });
    auto in_time = rx.recv_for(std::chrono::seconds(10));
    later.join();
    REQUIRE(*in_time == 4);
    REQUIRE(rx.recv_until(std::chrono::steady_clock::now() + 5ms).is_timeout());

    // A huge timeout does not overflow the clock: it waits until the value comes.
    std::thread last([&] {
        std::this_thread::sleep_for(10ms);
        (void)sender.send(5);
    });
    auto forever = rx.recv_for(std::chrono::hours::max());
    last.join();
    REQUIRE(*forever == 5);
}

#if defined(__cpp_lib_jthread)
TEST_CASE("recv with a stop token returns stopped on request", "[broadcast][blocking]") {
    auto chan = bc::channel<int>(4);  // (no structured bindings: clang 14 cannot capture them)
    auto& tx = chan.first;
    auto& rx = chan.second;
    std::stop_source stop;
    auto recv = [&](bc::Receiver<int>& r) { return r.recv(stop.get_token()); };
    Waiter w(rx, recv);
    kvbm_test::OnExit unblock([&] { stop.request_stop(); });
    REQUIRE(kvbm_test::eventually([&] { return parks(tx) >= 1; }));
    REQUIRE_FALSE(w.done.load());
    stop.request_stop();
    REQUIRE(kvbm_test::eventually([&] { return w.done.load(); }));
    w.thread.join();
    REQUIRE(w.status == bc::RecvStatus::stopped);

    // A value already there is returned even when stop was requested; then stopped.
    REQUIRE(tx.send(9).ok());
    REQUIRE(*rx.recv(stop.get_token()) == 9);
    REQUIRE(rx.recv(stop.get_token()).is_stopped());
    // A token that can never stop behaves as plain recv.
    REQUIRE(tx.send(10).ok());
    REQUIRE(*rx.recv(std::stop_token{}) == 10);
}
#endif

TEST_CASE("many parked receivers, many wake-ups", "[broadcast][blocking]") {
    constexpr int receivers = 4;
    constexpr int values = 2000;
    auto chan = bc::channel<int>(4096);  // lossless: capacity above the count
    auto& tx = chan.first;               // (chan.second, the first receiver, stays unused)
    std::vector<bc::Receiver<int>> rxs;
    for (int i = 0; i < receivers; ++i) {
        rxs.push_back(tx.subscribe());
    }
    std::vector<long> sums(receivers, 0);
    std::atomic<int> unexpected{0};  // Catch2 assertions are not thread-safe: count here
    std::vector<std::thread> threads;
    for (int i = 0; i < receivers; ++i) {
        threads.emplace_back([&, i] {
            for (;;) {
                auto r = rxs[static_cast<std::size_t>(i)].recv();
                if (r.is_closed()) {
                    return;
                }
                if (!r) {
                    ++unexpected;
                    continue;
                }
                sums[static_cast<std::size_t>(i)] += *r;
            }
        });
    }
    std::optional<bc::Sender<int>> observer(tx);
    kvbm_test::OnExit unblock([&] {  // close, then join: also when an assertion fails
        { auto gone = std::move(tx); }
        observer.reset();
        for (auto& t : threads) {
            if (t.joinable()) {
                t.join();
            }
        }
    });
    int idle_points = 0;
    for (int v = 1; v <= values; ++v) {
        REQUIRE(tx.send(v).ok());
        if (v % 400 == 0) {
            // Every receiver drains and goes to sleep (each parks at least once per idle
            // point), then the next send must wake them.
            ++idle_points;
            REQUIRE(kvbm_test::eventually([&] { return parks(*observer) >= receivers * idle_points; }));
            REQUIRE(wakes(*observer) >= idle_points - 1);
        }
    }
    { auto gone = std::move(tx); }
    observer.reset();
    for (auto& t : threads) {
        t.join();
    }
    REQUIRE(unexpected == 0);
    for (const long s : sums) {
        REQUIRE(s == static_cast<long>(values) * (values + 1) / 2);
    }
}

TEST_CASE("an expired deadline or a requested stop returns without waiting", "[broadcast][blocking]") {
    auto chan = bc::channel<int>(4);  // (no structured bindings: clang 14 cannot capture them)
    auto& tx = chan.first;
    auto& rx = chan.second;
    // Both give up before watching the slot or sleeping.
    for (int i = 0; i < 1000; ++i) {
        REQUIRE(rx.recv_for(0ms).is_timeout());
    }
#if defined(__cpp_lib_jthread)
    std::stop_source stop;
    stop.request_stop();
    for (int i = 0; i < 1000; ++i) {
        REQUIRE(rx.recv(stop.get_token()).is_stopped());
    }
#endif
    REQUIRE(parks(tx) == 0);
    REQUIRE(tx.send(1).ok());
    REQUIRE(*rx.recv_for(0ms) == 1);
}
