// kvbm::broadcast: when values are destroyed (tokio's drop_rx_while_values_remain,
// unconsumed_messages_are_dropped, panic_in_clone), and that no destructor runs under the
// channel's lock (a destructor that sends on the same channel would deadlock).
#include "broadcast_support.hpp"

#include <kvbm/broadcast.hpp>

#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <vector>

namespace bc = kvbm::broadcast;
using kvbm_test::Counted;

TEST_CASE("a value lives until every receiver present at send time has read it", "[broadcast][lifetime]") {
    Counted::live = 0;
    {
        auto [tx, rx1] = bc::channel<Counted>(8);
        auto rx2 = tx.subscribe();
        REQUIRE(tx.send(Counted(1)).ok());
        REQUIRE(Counted::live == 1);  // one copy, in the channel
        auto late = tx.subscribe();   // not present at send time: does not keep it alive

        {
            auto r = rx1.try_recv();
            REQUIRE(r->value == 1);
            REQUIRE(Counted::live == 2);  // rx1's copy and the channel's
        }
        REQUIRE(Counted::live == 1);
        Counted::copies = 0;
        {
            auto r = rx2.try_recv();  // the last reader takes the value itself
            REQUIRE(r->value == 1);
            REQUIRE(Counted::copies == 0);
        }
        REQUIRE(Counted::live == 0);
        REQUIRE(late.try_recv().is_empty());
    }
    REQUIRE(Counted::live == 0);
}

TEST_CASE("an overwritten value is destroyed", "[broadcast][lifetime]") {
    Counted::live = 0;
    auto [tx, rx] = bc::channel<Counted>(2);
    for (int i = 0; i < 5; ++i) {
        REQUIRE(tx.send(Counted(i)).ok());
        REQUIRE(Counted::live == std::min(i + 1, 2));  // never more than the ring holds
    }
    auto r = rx.try_recv();
    REQUIRE(r.is_lagged());
    REQUIRE(r.lagged_count() == 3);
    REQUIRE(rx.try_recv()->value == 3);
    REQUIRE(Counted::live == 1);
    REQUIRE(rx.try_recv()->value == 4);
    REQUIRE(Counted::live == 0);
}

TEST_CASE("dropping a receiver destroys the values only it still had to read", "[broadcast][lifetime]") {
    Counted::live = 0;
    auto [tx, rx1] = bc::channel<Counted>(16);
    auto rx2 = tx.subscribe();
    REQUIRE(tx.send(Counted(1)).ok());
    REQUIRE(tx.send(Counted(2)).ok());
    { auto r = rx1.try_recv(); }
    { auto r = rx2.try_recv(); }
    REQUIRE(Counted::live == 1);  // value 2, unread by both
    { auto gone = std::move(rx2); }
    REQUIRE(Counted::live == 1);  // rx1 still has to read it
    { auto gone = std::move(rx1); }
    REQUIRE(Counted::live == 0);
}

TEST_CASE("unconsumed values are dropped with the last receiver", "[broadcast][lifetime]") {
    auto [tx, rx] = bc::channel<std::shared_ptr<int>>(16);
    auto msg = std::make_shared<int>(7);
    REQUIRE(tx.send(msg).ok());
    REQUIRE(msg.use_count() == 2);
    { auto gone = std::move(rx); }
    REQUIRE(msg.use_count() == 1);
}

TEST_CASE("destroying the channel destroys what is left", "[broadcast][lifetime]") {
    Counted::live = 0;
    {
        auto [tx, rx] = bc::channel<Counted>(4);
        auto keep = tx.subscribe();
        for (int i = 0; i < 3; ++i) {
            REQUIRE(tx.send(Counted(i)).ok());
        }
        { auto r = rx.try_recv(); }
        REQUIRE(Counted::live == 3);
    }
    REQUIRE(Counted::live == 0);
}

TEST_CASE("a copy that throws: the value counts as read, the next one is delivered", "[broadcast][lifetime]") {
    using kvbm_test::ThrowOnCopy;
    auto [tx, rx] = bc::channel<ThrowOnCopy>(16);
    auto other = tx.subscribe();  // two readers, so the first read copies
    REQUIRE(tx.send(ThrowOnCopy(0)).ok());
    REQUIRE(tx.send(ThrowOnCopy(1)).ok());
    REQUIRE_THROWS_AS(rx.try_recv(), std::runtime_error);
    REQUIRE(rx.try_recv()->value == 1);
    REQUIRE(rx.try_recv().is_empty());
    REQUIRE(other.try_recv()->value == 0);  // the last reader moves: no copy, no throw
    REQUIRE(other.try_recv()->value == 1);
}

namespace {

// A value whose destructor sends on the channel it travelled in. If any destructor ran
// under the channel's lock, this would deadlock.
struct Reentrant {
    static inline bc::Sender<Reentrant>* sender = nullptr;
    static inline int resent = 0;
    bool resend = false;

    explicit Reentrant(bool r) : resend(r) {}
    Reentrant(const Reentrant&) = default;
    Reentrant(Reentrant&& o) noexcept : resend(std::exchange(o.resend, false)) {}
    Reentrant& operator=(const Reentrant&) = default;
    Reentrant& operator=(Reentrant&&) noexcept = default;
    ~Reentrant() {
        if (resend && sender != nullptr) {
            ++resent;
            (void)sender->send(Reentrant(false));
        }
    }
};

}  // namespace

TEST_CASE("destructors run outside the channel's lock", "[broadcast][lifetime]") {
    auto [tx, rx] = bc::channel<Reentrant>(1);
    Reentrant::sender = &tx;
    Reentrant::resent = 0;
    REQUIRE(tx.send(Reentrant(true)).ok());
    REQUIRE(tx.send(Reentrant(false)).ok());  // overwrites the first: its destructor sends
    REQUIRE(Reentrant::resent == 1);

    REQUIRE(tx.send(Reentrant(true)).ok());
    { auto gone = std::move(rx); }  // the last receiver drops the unread value: it sends again
    REQUIRE(Reentrant::resent == 2);
    Reentrant::sender = nullptr;
}
