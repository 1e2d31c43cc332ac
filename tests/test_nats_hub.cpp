// NatsHub against a real nats-server: publish -> hub index, subject prefixes, garbage
// counted, resync requests, a broker restart while publishing (resync restores the view).
#include "nats_helpers.hpp"
#include "nats_worker.hpp"
#include "two_workers.hpp"

#include <kvbm/nats_hub.hpp>
#include <kvbm/nats_publisher.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using kvbm::InstanceId;
using kvbm::NatsHub;
using kvbm::NatsHubOptions;
using kvbm::NatsPublisher;
using kvbm::NatsPublisherOptions;
using kvbm::PositionalIndex;
using namespace kvbm_test;

TEST_CASE("batches published by workers reach the hub's index", "[nats]") {
    NatsServer server(false);
    PositionalIndex<> index(4096, 16);
    NatsHub<> hub(index, hub_options(server));
    CHECK(hub.events_subject() == "kvbm.events");
    NatsPublisher a(publisher_options(server));
    NatsPublisher b(publisher_options(server));

    const auto scenario = run_two_workers(
        index,
        [&](int worker, const Batch& batch) {
            REQUIRE((worker == 0 ? a : b).publish("kvbm.events", encoded_batch(batch)));
        },
        [&](std::uint64_t batches) {
            REQUIRE(a.flush());
            REQUIRE(b.flush());
            REQUIRE(hub.wait_for_batches(batches, 20s));
        });
    const auto s = hub.stats();
    CHECK(s.messages == 5);
    CHECK(s.events_applied == scenario.events);
    CHECK(s.bytes_applied == a.bytes() + b.bytes());
    CHECK(s.rejected() == 0);
}

TEST_CASE("a hub reads only its prefix's subject", "[nats]") {
    NatsServer server(false);
    PositionalIndex<> plain_index(1024, 16);
    PositionalIndex<> ns1_index(1024, 16);
    NatsHub<> plain(plain_index, hub_options(server));
    NatsHub<> ns1(ns1_index, hub_options(server, "ns1"));
    CHECK(ns1.events_subject() == "ns1.kvbm.events");
    NatsPublisher p_plain(publisher_options(server));
    NatsPublisher p_ns1(publisher_options(server, "ns1"));
    NatsPublisher p_ns2(publisher_options(server, "ns2"));
    REQUIRE(p_ns2.publish("kvbm.events", encoded_batch(creates(3U, chain(3, 3)))));
    REQUIRE(p_ns1.publish("kvbm.events", encoded_batch(creates(1U, chain(1, 4)))));
    REQUIRE(p_plain.publish("kvbm.events", encoded_batch(creates(2U, chain(2, 5)))));
    for (auto* p : {&p_plain, &p_ns1, &p_ns2}) {
        REQUIRE(p->flush());
    }
    REQUIRE(ns1.wait_for_batches(1, 20s));
    REQUIRE(plain.wait_for_batches(1, 20s));
    // A marker after everything else, so "nothing more arrived" is not a guess.
    REQUIRE(p_ns1.publish("kvbm.events", encoded_batch(shutdown(99U))));
    REQUIRE(p_plain.publish("kvbm.events", encoded_batch(shutdown(99U))));
    REQUIRE(p_ns1.flush());
    REQUIRE(p_plain.flush());
    REQUIRE(ns1.wait_for_batches(2, 20s));
    REQUIRE(plain.wait_for_batches(2, 20s));
    CHECK(ns1.messages() == 2);
    CHECK(plain.messages() == 2);
    CHECK(ns1_index.instances() == std::vector<InstanceId>{1U});
    CHECK(ns1_index.size() == 4);
    CHECK(plain_index.instances() == std::vector<InstanceId>{2U});
    CHECK(plain_index.size() == 5);
}

TEST_CASE("garbage payloads are counted by reason and change nothing", "[nats]") {
    NatsServer server(false);
    PositionalIndex<> index(1024, 16);
    NatsHub<> hub(index, hub_options(server));
    RawClient peer(server);
    peer.publish("kvbm.events", "not msgpack at all");
    peer.publish("kvbm.events", "");
    const auto good = encoded_batch(creates(5U, chain(5, 6)));
    peer.publish("kvbm.events", {good.begin(), good.end() - 1});  // truncated
    peer.publish("kvbm.events", {good.begin(), good.end()});
    REQUIRE(hub.wait_for_messages(4, 20s));
    const auto s = hub.stats();
    CHECK(s.undecodable == 2);
    CHECK(s.empty == 1);
    CHECK(s.batches_applied == 1);
    CHECK(s.rejected() == 3);
    CHECK_FALSE(hub.last_error().empty());
    CHECK(index.size() == 6);
    CHECK(index.instances() == std::vector<InstanceId>{5U});
}

TEST_CASE("a starting hub asks the workers of its prefix to resync", "[nats]") {
    NatsServer server(false);
    NatsPublisher worker(publisher_options(server, "ns1"));
    NatsPublisher elsewhere(publisher_options(server, "ns2"));
    REQUIRE(worker.wait_connected(10s));
    REQUIRE(elsewhere.wait_connected(10s));
    CHECK_FALSE(worker.take_resync_request());
    PositionalIndex<> index(1024, 16);
    NatsHub<> hub(index, hub_options(server, "ns1"));
    CHECK(hub.nats_stats().resync_requests == 1);
    CHECK(eventually([&] { return worker.take_resync_request(); }, 20s));
    REQUIRE(elsewhere.flush());
    CHECK_FALSE(elsewhere.take_resync_request());

    auto quiet = hub_options(server, "ns2");
    quiet.request_resync = false;
    NatsHub<> silent(index, quiet);
    CHECK(silent.nats_stats().resync_requests == 0);
}

TEST_CASE("a broker restart while workers publish: resyncs restore the hub's view", "[nats]") {
    NatsServer server(false);
    PositionalIndex<> index(1 << 14, 16);
    NatsHub<> hub(index, hub_options(server));
    // Two workers run a random register/release workload and answer resync requests (what
    // EventsPublisher does with take_resync_request); the broker restarts twice meanwhile.
    ModelWorker w1(publisher_options(server), 11U, 1);
    ModelWorker w2(publisher_options(server), 22U, 2);
    w1.start();
    w2.start();
    REQUIRE(eventually([&] { return w1.batches() > 50 && w2.batches() > 50; }, 30s));
    for (std::uint64_t restart = 1; restart <= 2; ++restart) {
        server.stop();
        std::this_thread::sleep_for(100ms);  // the outage itself (workers keep publishing into it)
        server.restart();
        // The hub asks for a resync once it is back (whoever reconnects last, a resync
        // follows); then the workload goes on for a while.
        REQUIRE(eventually([&] { return hub.nats_stats().resync_requests >= 1 + restart; }, 30s));
        const auto before = w1.batches() + w2.batches();
        REQUIRE(eventually([&] { return w1.batches() + w2.batches() > before + 100; }, 30s));
    }
    w1.stop();
    w2.stop();
    CHECK(w1.resyncs() >= 1);
    CHECK(w2.resyncs() >= 1);
    CHECK(hub.nats_stats().reconnects >= 2);
    // Once both stopped (their last step a marker) and the last resyncs have landed, the
    // hub's view equals the workers'. (A resync asked for late may come after the marker.)
    REQUIRE(eventually([&] { return w1.marker_seen(index) && w2.marker_seen(index); }, 30s));
    CHECK(
        eventually([&] { return holdings_of(index, 11U) == w1.live() && holdings_of(index, 22U) == w2.live(); }, 30s));
    CHECK(holdings_of(index, 11U) == w1.live());
    CHECK(holdings_of(index, 22U) == w2.live());
    CHECK(hub.rejected() == 0);
}
