// kvbm::broadcast with a value type whose move (or copy) throws: every path releases the
// channel lock, a failed send leaves no empty or half-written slot behind (receivers,
// lagging ones included, never see garbage and never block), RecvResult never claims a
// value it does not hold, and every value is destroyed exactly once. Meant for ASan/UBSan.
#include "broadcast_support.hpp"

#include <kvbm/broadcast.hpp>

#include <catch2/catch.hpp>

#include <stdexcept>
#include <thread>
#include <vector>

namespace bc = kvbm::broadcast;
using kvbm_test::ThrowingMove;
using namespace std::chrono_literals;

namespace {

// Drains `rx` with try_recv: the values, plus the lag it reported.
struct Seen {
    std::vector<int> values;
    std::uint64_t lagged = 0;
};

Seen drain(bc::Receiver<ThrowingMove>& rx) {
    Seen seen;
    for (;;) {
        auto r = rx.try_recv();
        if (r) {
            seen.values.push_back(r->value());
        } else if (r.is_lagged()) {
            seen.lagged += r.lagged_count();
        } else {
            REQUIRE(r.is_empty());
            return seen;
        }
    }
}

}  // namespace

TEST_CASE("a send whose move throws releases the lock and leaves no empty slot", "[broadcast][exceptions]") {
    kvbm_test::Watchdog watchdog("throwing send", 30s);
    ThrowingMove::live = 0;
    {
        auto chan = bc::channel<ThrowingMove>(4);  // (no structured bindings: clang 14 cannot capture them)
        auto& tx = chan.first;
        auto& rx = chan.second;
        auto other = tx.subscribe();
        REQUIRE(tx.send(ThrowingMove(1)).ok());
        ThrowingMove::arm(1);  // the move into the slot
        REQUIRE_THROWS_AS(tx.send(ThrowingMove(2)), std::runtime_error);
        // The lock is free: send, subscribe, len all work (they would spin forever).
        REQUIRE(tx.send(ThrowingMove(3)).ok());
        auto late = tx.subscribe();
        REQUIRE(tx.len() == 2);
        REQUIRE(tx.send(ThrowingMove(4)).ok());
        // Receivers see 1, 3, 4: the failed value never shows, nothing is empty or garbage.
        for (auto* r : {&rx, &other}) {
            const Seen seen = drain(*r);
            REQUIRE(seen.values == std::vector<int>{1, 3, 4});
            REQUIRE(seen.lagged == 0);
        }
        REQUIRE(drain(late).values == std::vector<int>{4});
    }
    REQUIRE(ThrowingMove::live == 0);  // each value destroyed exactly once (ASan: no double free)
}

TEST_CASE("a send that throws while evicting the overwritten value: lagging readers skip the slot",
          "[broadcast][exceptions]") {
    kvbm_test::Watchdog watchdog("throwing eviction", 30s);
    for (const int which : {1, 2}) {  // 1: moving the old value out throws; 2: moving the new one in
        CAPTURE(which);
        ThrowingMove::live = 0;
        {
            auto chan = bc::channel<ThrowingMove>(4);  // (no structured bindings: clang 14 cannot capture them)
            auto& tx = chan.first;
            auto& lagging = chan.second;
            auto keeping_up = tx.subscribe();
            for (int i = 0; i < 4; ++i) {
                REQUIRE(tx.send(ThrowingMove(i)).ok());  // fills the ring
            }
            REQUIRE(drain(keeping_up).values == std::vector<int>{0, 1, 2, 3});
            ThrowingMove::arm(which);
            REQUIRE_THROWS_AS(tx.send(ThrowingMove(4)), std::runtime_error);
            // The lagging receiver is at 0, whose slot the failed send retired: it lags past
            // it (1 value lost, as an overwrite) and reads the rest; then nothing, not garbage.
            Seen seen = drain(lagging);
            REQUIRE(seen.lagged == 1);
            REQUIRE(seen.values == std::vector<int>{1, 2, 3});
            REQUIRE(drain(keeping_up).values.empty());  // nothing was sent for position 4
            // The next send fills the retired slot; both see it.
            REQUIRE(tx.send(ThrowingMove(5)).ok());
            REQUIRE(drain(lagging).values == std::vector<int>{5});
            REQUIRE(drain(keeping_up).values == std::vector<int>{5});
            // Another lap: the retired slot works as any other.
            for (int i = 6; i < 12; ++i) {
                REQUIRE(tx.send(ThrowingMove(i)).ok());
            }
            seen = drain(lagging);
            REQUIRE(seen.lagged == 2);
            REQUIRE(seen.values == std::vector<int>{8, 9, 10, 11});
        }
        REQUIRE(ThrowingMove::live == 0);
    }
}

TEST_CASE("a blocked receiver is not stranded by a failed send", "[broadcast][exceptions]") {
    kvbm_test::Watchdog watchdog("blocked receiver", 30s);
    ThrowingMove::live = 0;
    {
        auto chan = bc::channel<ThrowingMove>(2);  // (no structured bindings: clang 14 cannot capture them)
        auto& tx = chan.first;
        auto& rx = chan.second;
        int got = -1;
        std::thread waiter([&rx = rx, &got] {
            auto r = rx.recv();
            got = r ? r->value() : -2;
        });
        ThrowingMove::arm(1);
        CHECK_THROWS_AS(tx.send(ThrowingMove(1)), std::runtime_error);
        CHECK(tx.send(ThrowingMove(2)).ok());  // not a deadlock; wakes the waiter
        waiter.join();
        REQUIRE(got == 2);
    }
    REQUIRE(ThrowingMove::live == 0);
}

TEST_CASE("a receive whose move or copy throws: the value counts as read", "[broadcast][exceptions]") {
    ThrowingMove::live = 0;
    {
        auto chan = bc::channel<ThrowingMove>(4);  // (no structured bindings: clang 14 cannot capture them)
        auto& tx = chan.first;
        auto& rx = chan.second;
        auto other = tx.subscribe();
        REQUIRE(tx.send(ThrowingMove(1)).ok());
        REQUIRE(tx.send(ThrowingMove(2)).ok());
        ThrowingMove::arm(1);  // rx's copy of 1
        REQUIRE_THROWS_AS(rx.try_recv(), std::runtime_error);
        ThrowingMove::arm(1);  // other's move of 1 (the last reader moves)
        REQUIRE_THROWS_AS(other.try_recv(), std::runtime_error);
        REQUIRE(rx.try_recv()->value() == 2);
        REQUIRE(other.try_recv()->value() == 2);
        REQUIRE(rx.try_recv().is_empty());
    }
    REQUIRE(ThrowingMove::live == 0);
}

TEST_CASE("RecvResult's move-assignment that throws leaves it holding nothing", "[broadcast][exceptions]") {
    ThrowingMove::live = 0;
    {
        auto chan = bc::channel<ThrowingMove>(4);  // (no structured bindings: clang 14 cannot capture them)
        auto& tx = chan.first;
        auto& rx = chan.second;
        REQUIRE(tx.send(ThrowingMove(1)).ok());
        REQUIRE(tx.send(ThrowingMove(2)).ok());
        auto a = rx.try_recv();
        auto b = rx.try_recv();
        REQUIRE(a);
        REQUIRE(b);
        ThrowingMove::arm(1);
        REQUIRE_THROWS_AS(a = std::move(b), std::runtime_error);
        REQUIRE_FALSE(a.has_value());  // claims nothing: its destructor destroys nothing
        REQUIRE_THROWS_AS(a.value(), std::logic_error);
        REQUIRE(b->value() == 2);  // NOLINT(bugprone-use-after-move): the failed move left it intact
        a = std::move(b);
        REQUIRE(a->value() == 2);
        REQUIRE(ThrowingMove::live == 2);  // a's value and b's moved-from shell
    }
    REQUIRE(ThrowingMove::live == 0);
}

TEST_CASE("dropping the last reader of unread values whose move throws", "[broadcast][exceptions]") {
    kvbm_test::Watchdog watchdog("receiver drop", 30s);
    ThrowingMove::live = 0;
    {
        auto chan = bc::channel<ThrowingMove>(4);  // (no structured bindings: clang 14 cannot capture them)
        auto& tx = chan.first;
        auto& rx = chan.second;
        REQUIRE(tx.send(ThrowingMove(1)).ok());
        REQUIRE(tx.send(ThrowingMove(2)).ok());
        ThrowingMove::arm(1);
        { auto gone = std::move(rx); }  // noexcept: must neither terminate nor leak
        ThrowingMove::arm(0);
        REQUIRE(ThrowingMove::live == 0);
        auto again = tx.subscribe();  // the lock is free
        REQUIRE(tx.send(ThrowingMove(3)).ok());
        REQUIRE(again.try_recv()->value() == 3);
    }
    REQUIRE(ThrowingMove::live == 0);
}
