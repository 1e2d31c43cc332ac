// kvbm::broadcast: sending and receiving, counts, errors and results (tokio's
// tests/sync_broadcast.rs: send_try_recv_bounded, send_two_recv, send_no_rx, zero_capacity,
// capacity_too_big, single_capacity_recvs*, dropping_sender_does_not_overwrite,
// resubscribe_points_to_tail, resubscribe_to_closed_channel).
#include <kvbm/broadcast.hpp>

#include <catch2/catch.hpp>

#include <deque>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace bc = kvbm::broadcast;

static_assert(std::is_copy_constructible_v<bc::Sender<int>>);
static_assert(!std::is_copy_constructible_v<bc::Receiver<int>>);
static_assert(std::is_nothrow_move_constructible_v<bc::Receiver<int>>);
static_assert(std::is_trivially_copyable_v<bc::RecvResult<int>>, "returned in registers/in place");
static_assert(noexcept(std::declval<bc::Sender<int>&>().send(1)));

TEMPLATE_TEST_CASE("send then try_recv, then empty", "[broadcast]", int, std::string) {
    auto [tx, rx] = bc::channel<TestType>(16);
    REQUIRE(rx.try_recv().is_empty());

    const TestType v = TestType{} == TestType{1} ? TestType{2} : TestType{1};
    auto sent = tx.send(v);
    REQUIRE(sent.ok());
    REQUIRE(sent.receiver_count() == 1);

    auto r = rx.try_recv();
    REQUIRE(r.has_value());
    REQUIRE(r.status() == bc::RecvStatus::ok);
    REQUIRE(*r == v);
    REQUIRE(r.value() == v);
    REQUIRE(r.lagged_count() == 0);
    REQUIRE(rx.try_recv().is_empty());
}

TEST_CASE("every receiver gets every value, in order", "[broadcast]") {
    auto [tx, rx1] = bc::channel<std::string>(16);
    auto rx2 = tx.subscribe();
    REQUIRE(tx.receiver_count() == 2);
    REQUIRE(tx.send("hello").receiver_count() == 2);
    REQUIRE(tx.send("world").receiver_count() == 2);
    for (auto* rx : {&rx1, &rx2}) {
        REQUIRE(*rx->try_recv() == "hello");
        REQUIRE(*rx->try_recv() == "world");
        REQUIRE(rx->try_recv().is_empty());
    }
}

TEST_CASE("send with no receiver hands the value back", "[broadcast]") {
    auto [tx, rx] = bc::channel<std::string>(16);
    { auto gone = std::move(rx); }
    REQUIRE(tx.receiver_count() == 0);
    auto refused = tx.send("hello");
    REQUIRE_FALSE(refused.ok());
    REQUIRE_FALSE(static_cast<bool>(refused));
    REQUIRE(refused.receiver_count() == 0);
    REQUIRE(refused.value() == "hello");
    REQUIRE(std::move(refused).value() == "hello");  // NOLINT(bugprone-use-after-move): the rvalue overload

    auto rx2 = tx.subscribe();
    REQUIRE(tx.send("world").ok());
    REQUIRE(*rx2.try_recv() == "world");

    // A trivially copyable value comes back bit for bit too (it travels as words).
    auto [itx, irx] = bc::channel<long>(4);
    { auto gone = std::move(irx); }
    auto back = itx.send(-42);
    REQUIRE_FALSE(back.ok());
    REQUIRE(back.value() == -42);
}

TEST_CASE("value() of a failed result throws, accessors agree", "[broadcast]") {
    auto [tx, rx] = bc::channel<int>(2);
    auto r = rx.try_recv();
    REQUIRE_FALSE(r);
    REQUIRE(r.is_empty());
    REQUIRE_FALSE(r.is_closed());
    REQUIRE_FALSE(r.is_lagged());
    REQUIRE_FALSE(r.is_timeout());
    REQUIRE_FALSE(r.is_stopped());
    REQUIRE_THROWS_AS(r.value(), std::logic_error);
    auto ok = tx.send(1);
    REQUIRE_THROWS_AS(ok.value(), std::logic_error);
}

TEST_CASE("capacity: zero is rejected, others round up to a power of two", "[broadcast]") {
    REQUIRE_THROWS_AS(bc::channel<int>(0), std::invalid_argument);
    REQUIRE_THROWS_AS(bc::channel<int>(std::numeric_limits<std::size_t>::max()), std::length_error);
    for (const auto& [asked, got] : std::vector<std::pair<std::size_t, std::size_t>>{
             {1, 1}, {2, 2}, {3, 4}, {5, 8}, {16, 16}, {1000, 1024}, {1025, 2048}}) {
        auto [tx, rx] = bc::channel<int>(asked);
        REQUIRE(tx.capacity() == got);
        REQUIRE(rx.capacity() == got);
    }
}

TEST_CASE("capacity 1", "[broadcast]") {
    SECTION("one value, then empty") {
        auto [tx, rx] = bc::channel<int>(1);
        REQUIRE(tx.send(1).ok());
        REQUIRE(*rx.try_recv() == 1);
        REQUIRE(rx.try_recv().is_empty());
    }
    SECTION("after the sender is gone: the value, then closed") {
        auto [tx, rx] = bc::channel<int>(1);
        REQUIRE(tx.send(1).ok());
        { auto gone = std::move(tx); }
        REQUIRE(*rx.try_recv() == 1);
        REQUIRE(rx.try_recv().is_closed());
    }
    SECTION("an overwrite: lagged 1, the newest value, then closed") {
        auto [tx, rx] = bc::channel<int>(1);
        REQUIRE(tx.send(1).ok());
        REQUIRE(tx.send(2).ok());
        { auto gone = std::move(tx); }
        auto r = rx.try_recv();
        REQUIRE(r.is_lagged());
        REQUIRE(r.lagged_count() == 1);
        REQUIRE(*rx.try_recv() == 2);
        REQUIRE(rx.try_recv().is_closed());
    }
}

TEST_CASE("dropping the sender does not overwrite: drain, then closed", "[broadcast]") {
    auto [tx, rx] = bc::channel<std::string>(2);
    REQUIRE(tx.send("1").ok());
    REQUIRE(tx.send("2").ok());
    { auto gone = std::move(tx); }
    REQUIRE(*rx.try_recv() == "1");
    REQUIRE(*rx.try_recv() == "2");
    REQUIRE(rx.try_recv().is_closed());
    REQUIRE(rx.try_recv().is_closed());  // and stays closed
}

TEST_CASE("copies of the sender keep the channel open", "[broadcast]") {
    auto [tx, rx] = bc::channel<int>(4);
    auto tx2 = tx;
    bc::Sender<int> tx3 = tx2;
    tx3 = tx;  // assignment keeps the count right
    { auto gone = std::move(tx); }
    REQUIRE(rx.try_recv().is_empty());
    REQUIRE(tx2.send(7).ok());
    { auto gone = std::move(tx2); }
    REQUIRE(*rx.try_recv() == 7);
    REQUIRE(rx.try_recv().is_empty());
    { auto gone = std::move(tx3); }
    REQUIRE(rx.try_recv().is_closed());
}

TEST_CASE("resubscribe starts at the tail", "[broadcast]") {
    auto [tx, rx] = bc::channel<int>(3);
    REQUIRE(tx.send(1).ok());
    auto resub = rx.resubscribe();
    REQUIRE(resub.try_recv().is_empty());
    REQUIRE(*rx.try_recv() == 1);

    REQUIRE(tx.send(2).ok());
    REQUIRE(*resub.try_recv() == 2);
    REQUIRE(tx.send(3).ok());
    REQUIRE(*rx.try_recv() == 2);
    REQUIRE(*rx.try_recv() == 3);
    REQUIRE(rx.try_recv().is_empty());
    REQUIRE(*resub.try_recv() == 3);
    REQUIRE(resub.try_recv().is_empty());
}

TEST_CASE("subscribe sees only what is sent after it", "[broadcast]") {
    auto [tx, rx] = bc::channel<int>(8);
    REQUIRE(tx.send(10).ok());
    auto late = tx.subscribe();
    REQUIRE(tx.send(20).ok());
    REQUIRE(*late.try_recv() == 20);
    REQUIRE(late.try_recv().is_empty());
    REQUIRE(*rx.try_recv() == 10);
}

TEST_CASE("resubscribe to a closed channel is closed", "[broadcast]") {
    auto [tx, rx] = bc::channel<unsigned>(2);
    { auto gone = std::move(tx); }
    auto resub = rx.resubscribe();
    REQUIRE(resub.try_recv().is_closed());
}

TEST_CASE("len and is_empty", "[broadcast]") {
    auto [tx, rx1] = bc::channel<int>(4);
    REQUIRE(tx.len() == 0);
    REQUIRE(tx.is_empty());
    REQUIRE(rx1.is_empty());
    REQUIRE(tx.send(10).ok());
    REQUIRE(tx.send(20).ok());
    auto rx2 = tx.subscribe();  // sees none of them: they stay queued for rx1 only
    REQUIRE(rx1.len() == 2);
    REQUIRE(rx2.len() == 0);
    REQUIRE(tx.len() == 2);
    REQUIRE(*rx1.try_recv() == 10);
    REQUIRE(rx1.len() == 1);
    REQUIRE(tx.len() == 1);
    REQUIRE(*rx1.try_recv() == 20);
    REQUIRE(tx.len() == 0);
    REQUIRE(tx.is_empty());
    REQUIRE(tx.send(30).ok());
    REQUIRE(tx.len() == 1);  // both receivers still have to read it
    REQUIRE(*rx1.try_recv() == 30);
    REQUIRE(tx.len() == 1);  // rx2 has not
    REQUIRE(*rx2.try_recv() == 30);
    REQUIRE(tx.len() == 0);
    for (int i = 0; i < 10; ++i) {
        REQUIRE(tx.send(i).ok());
    }
    REQUIRE(tx.len() == 4);    // at most the capacity is retained
    REQUIRE(rx1.len() == 10);  // above capacity: rx1 has lagged
}

TEST_CASE("drain appends ready values and says why it stopped", "[broadcast]") {
    auto [tx, rx] = bc::channel<int>(8);
    for (int i = 0; i < 5; ++i) {
        REQUIRE(tx.send(i).ok());
    }
    std::vector<int> out;
    auto d = rx.drain(out, 3);
    REQUIRE(d.count == 3);
    REQUIRE(d.status == bc::RecvStatus::ok);
    d = rx.drain(out);
    REQUIRE(d.count == 2);
    REQUIRE(d.status == bc::RecvStatus::empty);
    REQUIRE(out == std::vector<int>{0, 1, 2, 3, 4});

    for (int i = 0; i < 12; ++i) {
        REQUIRE(tx.send(100 + i).ok());
    }
    std::deque<int> more;
    d = rx.drain(more);  // stops before the lag, leaving it to be reported
    REQUIRE(d.count == 0);
    REQUIRE(d.status == bc::RecvStatus::lagged);
    d = rx.drain(more);  // still there
    REQUIRE(d.status == bc::RecvStatus::lagged);
    auto lag = rx.try_recv();
    REQUIRE(lag.is_lagged());
    REQUIRE(lag.lagged_count() == 4);
    d = rx.drain(more);
    REQUIRE(d.count == 8);
    REQUIRE(d.status == bc::RecvStatus::empty);
    REQUIRE(more.front() == 104);
    REQUIRE(more.back() == 111);
    { auto gone = std::move(tx); }
    d = rx.drain(more);
    REQUIRE(d.count == 0);
    REQUIRE(d.status == bc::RecvStatus::closed);
    const auto [count, status] = rx.drain(more);  // binds as {count, status}
    REQUIRE(count == 0);
    REQUIRE(status == bc::RecvStatus::closed);
}

TEST_CASE("moved-from receivers and assignment", "[broadcast]") {
    auto [tx, rx] = bc::channel<int>(4);
    bc::Receiver<int> other = tx.subscribe();
    REQUIRE(tx.receiver_count() == 2);
    other = std::move(rx);  // the receiver `other` held is unsubscribed
    REQUIRE(tx.receiver_count() == 1);
    REQUIRE(tx.send(5).ok());
    REQUIRE(*other.try_recv() == 5);
}

TEST_CASE("RecvStatus prints", "[broadcast]") {
    std::ostringstream os;
    os << bc::RecvStatus::lagged << ' ' << bc::RecvStatus::closed << ' ' << bc::RecvStatus::stopped;
    REQUIRE(os.str() == "lagged closed stopped");
    REQUIRE(std::string(bc::to_string(bc::RecvStatus::timeout)) == "timeout");
}

TEST_CASE("moved receivers keep their place (len follows them)", "[broadcast]") {
    auto [tx, rx] = bc::channel<int>(64);
    std::vector<bc::Receiver<int>> rxs;
    rxs.push_back(std::move(rx));
    for (int i = 0; i < 20; ++i) {
        REQUIRE(tx.send(i).ok());
        rxs.push_back(tx.subscribe());  // reallocations move the earlier receivers
    }
    REQUIRE(tx.receiver_count() == 21);
    REQUIRE(tx.len() == 20);  // rxs[0] has read nothing
    REQUIRE(*rxs[0].try_recv() == 0);
    REQUIRE(tx.len() == 19);
    rxs.erase(rxs.begin());  // moves every other receiver down one place
    REQUIRE(tx.receiver_count() == 20);
    REQUIRE(tx.len() == 19);  // the slowest now subscribed after value 0
    for (std::size_t k = 0; k < rxs.size(); ++k) {
        std::vector<int> got;
        (void)rxs[k].drain(got);
        REQUIRE(got.size() == 19 - k);
    }
    REQUIRE(tx.len() == 0);
    while (!rxs.empty()) {
        rxs.erase(rxs.begin() + static_cast<std::ptrdiff_t>(rxs.size() / 2));
    }
    REQUIRE(tx.receiver_count() == 0);
    REQUIRE_FALSE(tx.send(1).ok());
}
