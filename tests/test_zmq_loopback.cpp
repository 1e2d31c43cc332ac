// ZmqPublisher -> ZmqHub -> PositionalIndex end to end, over tcp loopback and ipc.
#include "two_workers.hpp"
#include "zmq_helpers.hpp"

#include <kvbm/zmq.hpp>

#include <catch2/catch.hpp>

using kvbm::InstanceId;
using kvbm::PositionalIndex;
using kvbm::ZmqHub;
using kvbm::ZmqPublisher;
using namespace kvbm_test;

TEST_CASE("batches published by workers are applied by the hub", "[zmq]") {
    const bool ipc = GENERATE(false, true);
    CAPTURE(ipc);
    PositionalIndex<> index(4096, 16);
    ZmqHub<> hub(index, {ipc ? ipc_endpoint() : "tcp://127.0.0.1:*"});
    CHECK(hub.endpoint().rfind(ipc ? "ipc://" : "tcp://127.0.0.1:", 0) == 0);
    CHECK(hub.endpoint().find('*') == std::string::npos);  // the port is resolved

    ZmqPublisher a(hub.endpoint());
    zmq::context_t shared_context;
    ZmqPublisher b(shared_context, hub.endpoint());
    REQUIRE(a.wait_connected(10s));
    REQUIRE(b.wait_connected(10s));
    CHECK(a.subscribed());

    const auto scenario = run_two_workers(
        index,
        [&](int worker, const Batch& batch) { CHECK((worker == 0 ? a : b).publish("kvbm.events", encoded(batch))); },
        [&](std::uint64_t batches) {
            if (batches == 5) {
                CHECK(a.flush());
                CHECK_FALSE(b.flush());  // on a shared context flush cannot confirm delivery (test_zmq_faults)
            }
            REQUIRE(hub.wait_for_batches(batches, 10s));
        });
    const auto s = hub.stats();
    CHECK(s.messages == 5);
    CHECK(s.batches_applied == 5);
    CHECK(s.events_applied == scenario.events);
    CHECK(s.bytes_applied == a.bytes() + b.bytes());
    CHECK(s.rejected() == 0);
    CHECK(s.untopiced == 0);
    CHECK(a.published() == 3);
    CHECK(b.published() == 2);
    CHECK(a.dropped() + b.dropped() == 0);
}

TEST_CASE("many batches in order from several publishers", "[zmq]") {
    PositionalIndex<> index(64 * 16, 16);
    ZmqHub<> hub(index);
    constexpr int workers = 3;
    constexpr int rounds = 300;
    std::vector<std::unique_ptr<ZmqPublisher>> pubs;
    kvbm::ZmqPublisherOptions lossless;
    lossless.send_timeout = std::chrono::milliseconds(-1);  // back-pressure, never drop
    for (int w = 0; w < workers; ++w) {
        pubs.push_back(std::make_unique<ZmqPublisher>(hub.endpoint(), lossless));
        REQUIRE(pubs.back()->wait_connected(10s));
    }
    // Per worker, create then remove its chain, many times: ordering per connection is what
    // keeps the index right (a Remove overtaking its Create would leave a stale entry).
    for (int r = 0; r < rounds; ++r) {
        for (int w = 0; w < workers; ++w) {
            const auto c = chain(static_cast<std::uint64_t>(w) * 1000 + static_cast<std::uint64_t>(r % 7), 64);
            REQUIRE(pubs[static_cast<std::size_t>(w)]->publish("s", encoded(creates(InstanceId{unsigned(w)}, c))));
            if (r + 1 < rounds) {
                REQUIRE(pubs[static_cast<std::size_t>(w)]->publish(
                    "s", encoded(removes(InstanceId{unsigned(w)}, {c.rbegin(), c.rend()}))));
            }
        }
    }
    const std::uint64_t total = workers * (2 * rounds - 1);
    REQUIRE(hub.wait_for_batches(total, 30s));
    CHECK(index.size() == workers * 64);
    CHECK(index.stats().removes_unmatched == 0);
    CHECK(hub.stats().rejected() == 0);
}
