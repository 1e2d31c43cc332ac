// The ZeroMQ transport under faults: flush waits for the send queue (and says when it could
// not), a hub that restarts on the same endpoint gets the publisher back with a resync
// request and new batches, a hub stopped from its own sink neither terminates nor handles
// what was still queued, and frames above the size limits never reach the index.
#include "zmq_helpers.hpp"

#include <kvbm/events_publisher.hpp>
#include <kvbm/manager.hpp>
#include <kvbm/zmq.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

using kvbm::InstanceId;
using kvbm::PositionalIndex;
using kvbm::ZmqHub;
using kvbm::ZmqHubOptions;
using kvbm::ZmqPublisher;
using kvbm::ZmqPublisherOptions;
using namespace kvbm_test;
using clock_type = std::chrono::steady_clock;

namespace {
/// A one-shot gate: wait() blocks until open().
class Gate {
public:
    void open() {
        {
            std::lock_guard lock(m_mutex);
            m_open = true;
        }
        m_cv.notify_all();
    }
    void wait() {
        std::unique_lock lock(m_mutex);
        m_cv.wait(lock, [&] { return m_open; });
    }

private:
    std::mutex m_mutex;
    std::condition_variable m_cv;
    bool m_open = false;
};

/// A batch whose payload is about `bytes` long (18 bytes a hash).
Batch big_batch(std::uint64_t id, std::size_t bytes) { return creates(id, chain(id, bytes / 18)); }
}  // namespace

TEST_CASE("flush returns once the queue has drained to a slow hub", "[zmq][flush]") {
    // The hub reads one message at a time through small buffers and takes 2 ms a batch, so
    // the publisher's queue drains only as fast as the hub works: when flush returns, the
    // hub must have nearly everything (what still sits in kernel buffers is a few batches).
    std::atomic<std::uint64_t> seen{0};
    ZmqHubOptions hub_opts;
    hub_opts.receive_hwm = 1;
    hub_opts.configure = [](zmq::socket_t& s) { s.set(zmq::sockopt::rcvbuf, 64 * 1024); };
    ZmqHub<> hub(
        [&](const Batch&) {
            std::this_thread::sleep_for(2ms);  // a slow consumer (the thing under test is the wait)
            seen.fetch_add(1);
        },
        hub_opts);
    ZmqPublisherOptions opts;
    opts.send_timeout = -1ms;  // back-pressure: queue everything
    opts.flush_timeout = 60s;
    opts.send_buffer_bytes = 64 * 1024;
    ZmqPublisher pub(hub.endpoint(), opts);
    REQUIRE(pub.wait_connected(10s));
    CHECK(pub.take_resync_request());  // the first subscription
    CHECK_FALSE(pub.take_resync_request());

    // 60 batches of 256 KiB: the kernel buffers (64 KiB a side, doubled by Linux) and the
    // hub's one-message pipe hold about 2 of them, so flush must wait for the other ~58.
    constexpr std::uint64_t n = 60;
    const auto payload = encoded(big_batch(1, 256 * 1024));
    for (std::uint64_t i = 0; i < n; ++i) {
        REQUIRE(pub.publish("s", payload));
    }
    const auto t0 = clock_type::now();
    const auto r = pub.flush();
    const auto waited = clock_type::now() - t0;
    CHECK(r.ok());
    CHECK(r.error().empty());
    const std::uint64_t at_return = seen.load();
    INFO("flush waited " << std::chrono::duration_cast<std::chrono::milliseconds>(waited).count() << " ms, hub had "
                         << at_return << " of " << n);
    CHECK(at_return + 8 >= n);  // at most what kernel buffers and the hub's pipe hold
    CHECK(pub.flushes() == 1);
    CHECK(pub.flush_failures() == 0);

    // The drained reconnection raised no resync (the hub lost nothing), and publishing
    // goes on on the fresh socket.
    CHECK_FALSE(pub.take_resync_request());
    REQUIRE(pub.publish("s", payload));  // waits for the fresh connection's subscription
    CHECK(pub.subscribed());
    CHECK_FALSE(pub.take_resync_request());
    REQUIRE(hub.wait_for_batches(n + 1, 30s));
    CHECK(hub.stats().rejected() == 0);
    CHECK(pub.flush());  // something to drain again, and the hub is reading
    CHECK(pub.flushes() == 2);
}

TEST_CASE("flush with nothing queued answers at once", "[zmq][flush]") {
    PositionalIndex<> index(1024, 16);
    ZmqHub<> hub(index);
    ZmqPublisher pub(hub.endpoint());
    REQUIRE(pub.wait_connected(10s));
    CHECK(pub.flush());
    CHECK(pub.flushes() == 0);  // nothing to drain: no reconnection
}

TEST_CASE("flush to a hub that stopped reading fails after the timeout and asks for a resync", "[zmq][flush]") {
    zmq::context_t ctx;
    zmq::socket_t stalled(ctx, zmq::socket_type::sub);
    stalled.set(zmq::sockopt::rcvhwm, 1);
    stalled.set(zmq::sockopt::rcvbuf, 4096);
    stalled.set(zmq::sockopt::subscribe, "");
    stalled.set(zmq::sockopt::linger, 0);
    stalled.bind("tcp://127.0.0.1:*");

    ZmqPublisherOptions opts;
    opts.send_hwm = 64;
    opts.flush_timeout = 300ms;
    opts.linger = 0ms;
    ZmqPublisher pub(stalled.get(zmq::sockopt::last_endpoint), opts);
    pub.socket().set(zmq::sockopt::sndbuf, 4096);
    bool connected = false;
    for (int i = 0; i < 1000 && !connected; ++i) {
        (void)stalled.get(zmq::sockopt::events);  // let the idle socket handle its commands
        connected = pub.wait_connected(10ms);
    }
    REQUIRE(connected);
    (void)pub.take_resync_request();

    const std::vector<std::uint8_t> big(64 * 1024, 0x5a);
    int queued = 0;
    while (queued < 10000 && pub.publish("s", big)) {
        ++queued;
    }
    REQUIRE(pub.dropped_queue_full() == 1);  // the queue is full: nothing more leaves

    const auto t0 = clock_type::now();
    const auto r = pub.flush();
    const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t0);
    CHECK_FALSE(r.ok());
    CHECK(r.error().find("not drained within 300 ms") != std::string::npos);
    CHECK(waited >= 250ms);  // it did wait (ZeroMQ's clock may round a little)
    CHECK(waited < 20s);     // and no longer than the bound (plus a loaded machine's slack)
    CHECK(pub.flush_failures() == 1);
    CHECK(pub.take_resync_request());  // the hub may have lost the tail
}

TEST_CASE("a flush on a shared context cannot confirm delivery and says so", "[zmq][flush]") {
    PositionalIndex<> index(1024, 16);
    ZmqHub<> hub(index);
    zmq::context_t shared;
    ZmqPublisher pub(shared, hub.endpoint());
    REQUIRE(pub.wait_connected(10s));
    CHECK(pub.flush());  // nothing queued
    REQUIRE(pub.publish("s", encoded(shutdown(1U))));
    const auto r = pub.flush();
    CHECK_FALSE(r.ok());
    CHECK(r.error().find("shared ZeroMQ context") != std::string::npos);
    REQUIRE(hub.wait_for_batches(1, 10s));  // delivery itself is unaffected
}

TEST_CASE("a hub restarted on the same endpoint gets the publisher back, with a resync request", "[zmq][reconnect]") {
    PositionalIndex<> first_index(1024, 16);
    auto hub = std::make_unique<ZmqHub<>>(first_index);
    const std::string endpoint = hub->endpoint();
    ZmqPublisher pub(endpoint);
    REQUIRE(pub.wait_connected(10s));
    CHECK(pub.take_resync_request());
    CHECK_FALSE(pub.take_resync_request());
    REQUIRE(pub.publish("s", encoded(creates(1U, chain(1, 4)))));
    REQUIRE(hub->wait_for_batches(1, 10s));

    hub.reset();  // the hub goes away (a connecting socket keeps its queue meanwhile)
    CHECK_FALSE(pub.take_resync_request());

    PositionalIndex<> second_index(1024, 16);
    ZmqHubOptions same;
    same.bind = endpoint;
    ZmqHub<> restarted(second_index, same);
    // ZeroMQ reconnects on its own; the restarted hub's subscription is the resync request.
    const auto deadline = clock_type::now() + 20s;
    bool resync = false;
    while (!(resync = pub.take_resync_request()) && clock_type::now() < deadline) {
        (void)pub.subscribed();  // reads the subscription messages
        std::this_thread::sleep_for(1ms);
    }
    CHECK(resync);
    CHECK(pub.subscriptions() == 2);
    REQUIRE(pub.publish("s", encoded(creates(1U, chain(3, 4)))));
    REQUIRE(restarted.wait_for_batches(1, 10s));
    CHECK(second_index.size() == 4);
    CHECK(second_index.holders(chain(3, 4)[3]) == std::vector<InstanceId>{1U});
    CHECK(second_index.holders(chain(1, 4)[3]).empty());  // what the old hub had is not here
    CHECK(restarted.stats().messages == 1);
}

TEST_CASE("stop() from the hub's own sink does not terminate; what was still queued is discarded", "[zmq][stop]") {
    Gate gate;
    std::atomic<int> calls{0};
    std::atomic<ZmqHub<>*> self{nullptr};
    auto hub = std::make_unique<ZmqHub<>>([&](const Batch&) {
        calls.fetch_add(1);
        gate.wait();
        self.load()->stop();  // from the hub's thread: must not join itself
        self.load()->stop();  // and stays idempotent
    });
    self.store(hub.get());
    ZmqPublisherOptions opts;
    opts.send_timeout = -1ms;
    ZmqPublisher pub(hub->endpoint(), opts);
    REQUIRE(pub.wait_connected(10s));
    constexpr int n = 50;
    for (int i = 0; i < n; ++i) {
        REQUIRE(pub.publish("s", encoded(shutdown(static_cast<std::uint64_t>(i)))));
    }
    REQUIRE(pub.flush());  // all 50 have left the publisher: queued at the hub
    gate.open();
    REQUIRE(hub->wait_for_messages(1, 10s));
    hub->stop();  // joins the thread, which ended after its first batch
    CHECK(calls.load() == 1);
    CHECK(hub->messages() == 1);  // the other 49 were discarded, never handed to the sink
    hub.reset();
    CHECK(calls.load() == 1);
}

TEST_CASE("frames above the limits never reach the index", "[zmq][oversized]") {
    SECTION("ZeroMQ's limit drops the connection; the publisher reconnects and resyncs") {
        PositionalIndex<> index(1024, 16);
        ZmqHubOptions opts;
        opts.max_message_bytes = 1024;
        ZmqHub<> hub(index, opts);
        ZmqPublisher pub(hub.endpoint());
        REQUIRE(pub.wait_connected(10s));
        REQUIRE(pub.take_resync_request());
        const auto huge = encoded(big_batch(7, 4096));
        REQUIRE(huge.size() > 1024);
        REQUIRE(pub.publish("s", huge));  // accepted locally: the hub drops the connection
        // The lost connection shows as an unsubscription, then a fresh subscription.
        const auto deadline = clock_type::now() + 20s;
        while (!pub.take_resync_request() && clock_type::now() < deadline) {
            (void)pub.subscribed();  // reads the subscription messages
            std::this_thread::sleep_for(1ms);
        }
        CHECK(pub.subscriptions() >= 2);
        REQUIRE(pub.wait_connected(10s));
        REQUIRE(pub.publish("s", encoded(creates(8U, chain(8, 3)))));
        REQUIRE(hub.wait_for_batches(1, 10s));
        CHECK(index.entries_of(7U) == 0);
        CHECK(index.entries_of(8U) == 3);
        CHECK(hub.stats().messages == 1);  // ZeroMQ never handed the oversized frame over
    }
    SECTION("the ingest's own limit counts the frame as oversized") {
        PositionalIndex<> index(1024, 16);
        ZmqHubOptions opts;
        opts.max_message_bytes = -1;
        opts.ingest.max_payload_bytes = 1024;
        ZmqHub<> hub(index, opts);
        ZmqPublisher pub(hub.endpoint());
        REQUIRE(pub.wait_connected(10s));
        REQUIRE(pub.publish("s", encoded(big_batch(7, 4096))));
        REQUIRE(pub.publish("s", encoded(creates(8U, chain(8, 3)))));
        REQUIRE(hub.wait_for_messages(2, 10s));
        CHECK(hub.stats().oversized == 1);
        CHECK(hub.stats().batches_applied == 1);
        CHECK(index.entries_of(7U) == 0);
        CHECK(hub.last_error().find("above the limit of 1024") != std::string::npos);
    }
}

TEST_CASE("an idle worker notices a restarted hub and republishes its live set without a new event",
          "[zmq][reconnect][resync]") {
    PositionalIndex<> first_index(1024, 16);
    auto hub = std::make_unique<ZmqHub<>>(first_index);
    const std::string endpoint = hub->endpoint();

    auto events = std::make_shared<kvbm::EventsManager<>>();
    auto transport = std::make_shared<ZmqPublisher>(endpoint);
    REQUIRE(transport->wait_connected(10s));
    kvbm::EventsPublisher<> publisher(*events, transport, InstanceId{7U});
    std::vector<kvbm::AnnouncedBlock<>> blocks;
    for (const auto& h : chain(5, 6)) {
        blocks.push_back(events->announce(h));
    }
    const auto holds_all = [&](const PositionalIndex<>& index) {
        return index.size() == 6 && index.holders(chain(5, 6)[5]) == std::vector<InstanceId>{7U};
    };
    const auto eventually = [](auto&& pred, std::chrono::seconds limit) {
        const auto deadline = clock_type::now() + limit;
        while (!pred()) {
            if (clock_type::now() > deadline) {
                return false;
            }
            std::this_thread::sleep_for(2ms);
        }
        return true;
    };
    REQUIRE(eventually([&] { return holds_all(first_index); }, 20s));
    // The first subscription's resync is done and nothing is pending: from here on the
    // worker is idle, and only reading the socket while idle can reveal the restart.
    REQUIRE(eventually(
        [&] {
            const auto m = publisher.metrics();
            return m.resync_pending == 0 && m.recoveries >= 1;
        },
        20s));
    // ... and the batcher's last stream batch is out too: nothing published for 300 ms
    // (30 batch windows).
    for (auto [last, quiet_since] = std::pair{publisher.metrics().batches_published, clock_type::now()};
         clock_type::now() - quiet_since < 300ms;) {
        std::this_thread::sleep_for(10ms);
        if (const auto now = publisher.metrics().batches_published; now != last) {
            last = now;
            quiet_since = clock_type::now();
        }
    }
    const auto connects_before = publisher.metrics().resyncs_for_hub_connect;

    // The hub restarts empty; the worker sends nothing new. Its publisher must still see the
    // new subscription (read while idle) and resync: Shutdown, then the six live blocks.
    hub.reset();
    PositionalIndex<> second_index(1024, 16);
    ZmqHubOptions same;
    same.bind = endpoint;
    ZmqHub<> restarted(second_index, same);
    CHECK(eventually([&] { return holds_all(second_index); }, 30s));
    CHECK(publisher.metrics().resyncs_for_hub_connect > connects_before);

    blocks.clear();  // every Remove reaches the restarted hub
    CHECK(eventually([&] { return second_index.empty(); }, 30s));
    CHECK(publisher.stop().ok());
}
