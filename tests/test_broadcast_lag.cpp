// kvbm::broadcast: lagging receivers and 64-bit position wrap-around (tokio's lagging_rx,
// lagging_receiver_recovers_after_wrap_*, receiver_len_with_lagged, resubscribe_lagged;
// plus the lag set: within capacity a receiver never lags, and lagged{n} counts exactly the
// values it lost).
#include <kvbm/broadcast.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace bc = kvbm::broadcast;

namespace {

template <class T>
T make(int i) {
    if constexpr (std::is_same_v<T, std::string>) {
        return std::to_string(i);
    } else {
        return static_cast<T>(i);
    }
}

template <class T>
void require_value(bc::Receiver<T>& rx, int expected) {
    auto r = rx.try_recv();
    INFO("status " << r.status());
    REQUIRE(r.has_value());
    REQUIRE(*r == make<T>(expected));
}

template <class T>
void require_lagged(bc::Receiver<T>& rx, std::uint64_t n) {
    auto r = rx.try_recv();
    INFO("status " << r.status());
    REQUIRE(r.is_lagged());
    REQUIRE(r.lagged_count() == n);
}

}  // namespace

// Every case runs for a trivially copyable value (seqlock slots) and a std::string (locked
// slots with remaining-reader counts), and with positions starting at 0 and just below
// 2^64, so the ring wraps the 64-bit position space while the test runs.
#define LAG_TYPES int, std::string  // NOLINT(readability-identifier-naming): test-local

TEMPLATE_TEST_CASE("lagging receiver, as tokio's lagging_rx", "[broadcast][lag]", LAG_TYPES) {
    for (const std::uint64_t first : {std::uint64_t{0}, ~std::uint64_t{0} - 2}) {
        auto [tx, rx1] = kvbm::detail::broadcast_channel_at<TestType>(2, first);
        auto rx2 = tx.subscribe();
        REQUIRE(tx.send(make<TestType>(1)).ok());
        REQUIRE(tx.send(make<TestType>(2)).ok());
        require_value(rx1, 1);
        REQUIRE(tx.send(make<TestType>(3)).ok());

        require_lagged(rx2, 1);  // lagged too far
        require_value(rx2, 2);   // then the oldest retained value
        require_value(rx1, 2);
        require_value(rx1, 3);

        REQUIRE(tx.send(make<TestType>(4)).ok());
        REQUIRE(tx.send(make<TestType>(5)).ok());
        require_lagged(rx2, 1);
        REQUIRE(tx.send(make<TestType>(6)).ok());
        require_lagged(rx2, 1);
        require_value(rx2, 5);
        require_value(rx2, 6);
        REQUIRE(rx2.try_recv().is_empty());
    }
}

TEMPLATE_TEST_CASE("a lagging receiver recovers after the ring wraps", "[broadcast][lag]", LAG_TYPES) {
    for (const std::uint64_t first : {std::uint64_t{0}, ~std::uint64_t{0}}) {
        SECTION("closed, lagged 1") {
            auto [tx, rx] = kvbm::detail::broadcast_channel_at<TestType>(2, first);
            for (int i = 1; i <= 3; ++i) {
                REQUIRE(tx.send(make<TestType>(i)).ok());
            }
            { auto gone = std::move(tx); }
            require_lagged(rx, 1);
            require_value(rx, 2);
            require_value(rx, 3);
            REQUIRE(rx.try_recv().is_closed());
        }
        SECTION("closed, lagged 2") {
            auto [tx, rx] = kvbm::detail::broadcast_channel_at<TestType>(2, first);
            for (int i = 1; i <= 4; ++i) {
                REQUIRE(tx.send(make<TestType>(i)).ok());
            }
            { auto gone = std::move(tx); }
            require_lagged(rx, 2);
            require_value(rx, 3);
            require_value(rx, 4);
            REQUIRE(rx.try_recv().is_closed());
        }
        SECTION("open") {
            auto [tx, rx] = kvbm::detail::broadcast_channel_at<TestType>(2, first);
            for (int i = 1; i <= 3; ++i) {
                REQUIRE(tx.send(make<TestType>(i)).ok());
            }
            require_lagged(rx, 1);
            require_value(rx, 2);
            require_value(rx, 3);
            REQUIRE(rx.try_recv().is_empty());
        }
    }
}

TEMPLATE_TEST_CASE("receiver len counts what it missed", "[broadcast][lag]", LAG_TYPES) {
    for (const std::uint64_t first : {std::uint64_t{0}, ~std::uint64_t{0} - 3}) {
        auto [tx, rx] = kvbm::detail::broadcast_channel_at<TestType>(3, first);  // capacity 4
        for (int i = 1; i <= 4; ++i) {
            REQUIRE(tx.send(make<TestType>(10 * i)).ok());
        }
        REQUIRE(rx.len() == 4);
        require_value(rx, 10);
        REQUIRE(tx.send(make<TestType>(50)).ok());
        REQUIRE(tx.send(make<TestType>(60)).ok());
        REQUIRE(rx.len() == 5);
        REQUIRE(tx.len() == 4);
        require_lagged(rx, 1);
        require_value(rx, 30);
    }
}

TEMPLATE_TEST_CASE("resubscribe of a lagged receiver", "[broadcast][lag]", LAG_TYPES) {
    auto [tx, rx] = bc::channel<TestType>(1);
    REQUIRE(tx.send(make<TestType>(1)).ok());
    REQUIRE(tx.send(make<TestType>(2)).ok());
    auto resub = rx.resubscribe();
    require_lagged(rx, 1);
    REQUIRE(resub.try_recv().is_empty());
    require_value(rx, 2);
    REQUIRE(rx.try_recv().is_empty());
    REQUIRE(resub.try_recv().is_empty());
}

TEMPLATE_TEST_CASE("the lag set: never within capacity, exactly the overwritten count beyond", "[broadcast][lag]",
                   LAG_TYPES) {
    const std::uint64_t starts[] = {0, ~std::uint64_t{0} - 5, ~std::uint64_t{0} - 1000, std::uint64_t{1} << 63};
    for (const bool two_senders : {false, true}) {  // the sole-sender path, then the locked one
        for (const std::uint64_t first : starts) {
            for (const std::size_t cap : {1U, 2U, 4U, 8U, 32U}) {
                for (std::size_t sent = 0; sent <= 3 * cap + 1; ++sent) {
                    CAPTURE(two_senders, first, cap, sent);
                    auto [tx, rx] = kvbm::detail::broadcast_channel_at<TestType>(cap, first);
                    std::optional<bc::Sender<TestType>> second;
                    if (two_senders) {
                        second.emplace(tx);
                    }
                    for (std::size_t i = 0; i < sent; ++i) {
                        REQUIRE(tx.send(make<TestType>(static_cast<int>(i))).ok());
                    }
                    std::size_t next = 0;
                    if (sent > cap) {
                        require_lagged(rx, sent - cap);  // exactly the values overwritten
                        next = sent - cap;
                    }
                    for (; next < sent; ++next) {
                        require_value(rx, static_cast<int>(next));  // within capacity: no lag
                    }
                    REQUIRE(rx.try_recv().is_empty());
                }
            }
        }
    }
}

TEMPLATE_TEST_CASE("a receiver that keeps up never lags across many wraps", "[broadcast][lag]", LAG_TYPES) {
    auto [tx, rx] = kvbm::detail::broadcast_channel_at<TestType>(4, ~std::uint64_t{0} - 37);
    int expected = 0;
    for (int round = 0; round < 50; ++round) {
        for (int i = 0; i < 4; ++i) {
            REQUIRE(tx.send(make<TestType>(round * 4 + i)).ok());
        }
        std::vector<TestType> got;
        const auto d = rx.drain(got);
        REQUIRE(d.status == bc::RecvStatus::empty);
        REQUIRE(got.size() == 4);
        for (const auto& v : got) {
            REQUIRE(v == make<TestType>(expected++));
        }
    }
}
