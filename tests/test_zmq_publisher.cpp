// ZmqPublisher never loses silently: no subscriber and a full queue are counted drops and
// failed publishes; both sides shut down without hanging.
#include "zmq_helpers.hpp"

#include <kvbm/zmq.hpp>

#include <catch2/catch.hpp>

using kvbm::PositionalIndex;
using kvbm::ZmqHub;
using kvbm::ZmqPublisher;
using kvbm::ZmqPublisherOptions;
using namespace kvbm_test;

namespace {
// A socket handles its commands (such as "a peer connected: send it the subscriptions")
// only when its owner calls into it; a subscriber that never reads must still be poked.
bool connect_stalled(ZmqPublisher& pub, zmq::socket_t& stalled) {
    for (int i = 0; i < 1000; ++i) {
        (void)stalled.get(zmq::sockopt::events);
        if (pub.wait_connected(10ms)) {
            return true;
        }
    }
    return false;
}
}  // namespace

TEST_CASE("without a subscribed hub, publishes fail and are counted", "[zmq]") {
    ZmqPublisherOptions opts;
    opts.linger = 0ms;
    ZmqPublisher pub(ipc_endpoint(), opts);  // nobody listens there
    CHECK_FALSE(pub.wait_connected(50ms));
    CHECK_FALSE(pub.subscribed());
    const auto r = pub.publish("s", encoded(shutdown(1U)));
    CHECK_FALSE(r.ok());
    CHECK(r.error().find("no hub subscribed") != std::string::npos);
    CHECK_FALSE(pub.flush());
    CHECK(pub.dropped_no_subscriber() == 1);
    CHECK(pub.dropped() == 1);
    CHECK(pub.published() == 0);
}

TEST_CASE("a full send queue drops, counts and reports", "[zmq]") {
    // A subscriber that never reads: TCP back-pressure fills the publisher's queue.
    zmq::context_t ctx;
    zmq::socket_t stalled(ctx, zmq::socket_type::sub);
    stalled.set(zmq::sockopt::rcvhwm, 1);
    stalled.set(zmq::sockopt::rcvbuf, 4096);
    stalled.set(zmq::sockopt::subscribe, "");
    stalled.set(zmq::sockopt::linger, 0);
    stalled.bind("tcp://127.0.0.1:*");

    ZmqPublisherOptions opts;
    opts.send_hwm = 4;
    opts.linger = 0ms;
    ZmqPublisher pub(stalled.get(zmq::sockopt::last_endpoint), opts);
    pub.socket().set(zmq::sockopt::sndbuf, 4096);
    REQUIRE(connect_stalled(pub, stalled));

    const std::vector<std::uint8_t> big(256 * 1024, 0x5a);
    int attempts = 0;
    int failures = 0;
    while (failures == 0 && attempts < 10000) {
        ++attempts;
        const auto r = pub.publish("s", big);
        if (!r) {
            ++failures;
            CHECK(r.error().find("send queue full") != std::string::npos);
        }
    }
    CHECK(failures == 1);
    CHECK(pub.dropped_queue_full() == 1);
    CHECK(pub.published() + pub.dropped() == static_cast<std::uint64_t>(attempts));

    SECTION("with a send timeout, publish waits that long before dropping") {
        opts.send_timeout = 200ms;
        ZmqPublisher patient(stalled.get(zmq::sockopt::last_endpoint), opts);
        // Its own connection has its own queue: fill it, then one more fails after waiting.
        REQUIRE(connect_stalled(patient, stalled));
        int sent = 0;
        auto t0 = std::chrono::steady_clock::now();
        bool ok = true;
        while (ok && sent < 10000) {
            t0 = std::chrono::steady_clock::now();
            ok = patient.publish("s", big).ok();
            sent += ok ? 1 : 0;
        }
        const auto waited = std::chrono::steady_clock::now() - t0;  // of the failing publish
        CHECK(patient.dropped_queue_full() == 1);
        CHECK(waited >= 150ms);  // it waited (ZeroMQ's timer may round down a little)
        CHECK(waited < 20s);     // and gave up (a loaded machine's slack above 200 ms)
    }
}

TEST_CASE("destruction never hangs", "[zmq]") {
    SECTION("hub with a connected publisher") {
        PositionalIndex<> index(1024, 16);
        auto hub = std::make_unique<ZmqHub<>>(index);
        ZmqPublisherOptions opts;
        opts.linger = 100ms;
        ZmqPublisher pub(hub->endpoint(), opts);
        REQUIRE(pub.wait_connected(10s));
        REQUIRE(pub.publish("s", encoded(creates(1U, chain(1, 4)))));
        REQUIRE(hub->wait_for_batches(1, 10s));
        hub->stop();
        hub->stop();  // idempotent
        CHECK(hub->batches_applied() == 1);
        hub.reset();
        // The publisher outlives the hub; what it queues now goes nowhere, and its
        // destructor gives up after the linger time.
        for (int i = 0; i < 10; ++i) {
            (void)pub.publish("s", encoded(shutdown(1U)));
        }
    }
    SECTION("idle hub") {
        PositionalIndex<> index(1024, 16);
        const ZmqHub<> hub(index, {ipc_endpoint()});
    }
}
