// NatsHub with JetStream: a restarted hub restores its view from its snapshot plus the
// stream's later messages, with no worker resync; stream limits, worker resyncs inside the
// replay, and gaps.
#include "nats_helpers.hpp"
#include "nats_worker.hpp"

#include <kvbm/nats_hub.hpp>
#include <kvbm/nats_publisher.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using kvbm::InstanceId;
using kvbm::NatsHub;
using kvbm::NatsHubOptions;
using kvbm::NatsPublisher;
using kvbm::PositionalIndex;
using namespace kvbm_test;

namespace {

NatsHubOptions js_options(const NatsServer& server, std::string stream, bool snapshot = true,
                          std::int64_t max_messages = 0) {
    auto o = hub_options(server);
    kvbm::NatsJetStreamOptions js;
    js.stream = std::move(stream);
    js.max_messages = max_messages;
    if (snapshot) {
        js.snapshot_path = server.dir() / (js.stream + ".snap");
    }
    o.jetstream = js;
    return o;
}

// Publishes and confirms (flush: the server has it, so the stream has it).
void send(NatsPublisher& pub, const Batch& b) {
    REQUIRE(pub.publish("kvbm.events", encoded_batch(b)));
    REQUIRE(pub.flush());
}

}  // namespace

TEST_CASE("a restarted hub restores its view from snapshot + replay, with no worker resync", "[nats][jetstream]") {
    NatsServer server;
    NatsPublisher worker(publisher_options(server));
    REQUIRE(worker.wait_connected(10s));
    // A core-NATS hub that never stops is the reference view. (Created before the worker
    // publishes; its own start-up resync request is taken below.)
    PositionalIndex<> live_index(4096, 16);
    auto live_opts = hub_options(server);
    live_opts.request_resync = false;
    NatsHub<> live(live_index, live_opts);

    const auto a = chain(1, 30);
    const auto b = chain(2, 20, 1, 10);
    const auto c = chain(3, 15);
    std::uint64_t sent = 0;
    {
        PositionalIndex<> index(4096, 16);
        NatsHub<> hub(index, js_options(server, "KV"));
        CHECK(hub.jetstream());
        send(worker, creates(1U, a));
        send(worker, creates(2U, b));
        send(worker, creates(1U, c));
        sent = 3;
        REQUIRE(hub.wait_for_batches(3, 20s));
        CHECK(hub.nats_stats().resync_requests == 0);  // JetStream: nothing to ask at start
    }                                                  // stop: the snapshot is saved
    // While the hub is down: removes, a shutdown, new blocks.
    send(worker, removes(1U, {a.rbegin(), a.rbegin() + 12}));
    send(worker, shutdown(2U));
    send(worker, creates(3U, chain(4, 9)));
    send(worker, removes(1U, {c.rbegin(), c.rend()}));
    sent += 4;
    REQUIRE(live.wait_for_batches(sent, 20s));

    PositionalIndex<> index(4096, 16);
    NatsHub<> hub(index, js_options(server, "KV"));
    REQUIRE(hub.wait_for_batches(4, 20s));
    const auto s = hub.nats_stats();
    CHECK(s.snapshot_sequence == 3);
    CHECK(s.snapshot_loaded_holdings == 30 + 20 + 15);
    CHECK(s.replayed == 4);  // only what came after the snapshot
    CHECK(s.stream_sequence == 7);
    CHECK(s.gaps == 0);
    CHECK(s.resync_requests == 0);
    CHECK(index.snapshot() == live_index.snapshot());
    CHECK(index.stats().holdings == live_index.stats().holdings);
    CHECK(holdings_of(index, 2U).empty());
    CHECK(index.holders(a[29]).empty());  // removed while the hub was down: not resurrected
    // No worker was asked to resync.
    REQUIRE(worker.flush());
    CHECK(worker.resync_requests() == 0);
}

TEST_CASE("stream limits forget old events; the snapshot makes up for them, a hub without one sees a gap",
          "[nats][jetstream]") {
    NatsServer server;
    NatsPublisher worker(publisher_options(server));
    REQUIRE(worker.wait_connected(10s));
    std::set<Plh> model;
    {
        PositionalIndex<> index(4096, 16);
        NatsHub<> hub(index, js_options(server, "LIM", true, 4));
        for (std::uint64_t i = 0; i < 20; ++i) {
            auto c = chain(100 + i, 3);
            model.insert(c.begin(), c.end());
            send(worker, creates(1U, c));
            // One at a time: a hub slower than a limited stream loses messages (a gap).
            REQUIRE(hub.wait_for_batches(i + 1, 20s));
        }
        CHECK(hub.nats_stats().gaps == 0);
    }
    // Down: three more; the stream keeps only the last four messages.
    const auto gone = chain(100, 3);
    send(worker, removes(1U, gone));
    for (const auto& h : gone) {
        model.erase(h);
    }
    for (std::uint64_t i = 0; i < 2; ++i) {
        auto c = chain(200 + i, 2);
        model.insert(c.begin(), c.end());
        send(worker, creates(1U, c));
    }
    {
        PositionalIndex<> index(4096, 16);
        NatsHub<> hub(index, js_options(server, "LIM", true, 4));
        REQUIRE(hub.wait_for_batches(3, 20s));
        CHECK(hub.nats_stats().gaps == 0);
        CHECK(hub.nats_stats().replayed == 3);
        CHECK(holdings_of(index, 1U) == model);
    }
    // The same stream read by a hub without a snapshot: events 1..19 are gone. It cannot
    // rebuild the view from the stream, so it says so and asks the workers to resync.
    auto o = js_options(server, "LIM", false, 4);
    o.jetstream->durable = "other";
    PositionalIndex<> index(4096, 16);
    NatsHub<> hub(index, o);
    CHECK(hub.nats_stats().gaps == 1);
    CHECK(hub.nats_stats().resync_requests == 1);
    CHECK(hub.last_nats_error().find("gap") != std::string::npos);
    CHECK(eventually([&] { return worker.take_resync_request(); }, 20s));
}

TEST_CASE("a worker resync inside the replay neither double-counts nor resurrects", "[nats][jetstream]") {
    NatsServer server;
    NatsPublisher worker(publisher_options(server));
    REQUIRE(worker.wait_connected(10s));
    const auto a = chain(1, 40);
    const auto b = chain(2, 10, 1, 5);
    {
        PositionalIndex<> index(4096, 16);
        NatsHub<> hub(index, js_options(server, "RS"));
        send(worker, creates(7U, a));
        send(worker, creates(7U, b));
        send(worker, creates(8U, b));
        REQUIRE(hub.wait_for_batches(3, 20s));
    }
    // Down: worker 7 resyncs (Shutdown, then its live set, which lost a's tail and all of
    // b's own blocks), then keeps going; the snapshot still has the old holdings.
    send(worker, shutdown(7U));
    send(worker, creates(7U, std::vector<Plh>(a.begin(), a.begin() + 25)));
    send(worker, creates(7U, std::vector<Plh>(a.begin(), a.begin() + 5)));  // a duplicate create
    send(worker, removes(7U, {a[24]}));

    PositionalIndex<> index(4096, 16);
    NatsHub<> hub(index, js_options(server, "RS"));
    REQUIRE(hub.wait_for_batches(4, 20s));
    std::set<Plh> want(a.begin(), a.begin() + 24);
    CHECK(holdings_of(index, 7U) == want);
    CHECK(holdings_of(index, 8U) == std::set<Plh>(b.begin(), b.end()));
    CHECK(index.entries_of(7U) == 24);  // counted once each
    CHECK(index.holders(a[30]).empty());
    CHECK(index.holders(b[7]) == std::vector<InstanceId>{8U});  // 7 dropped it in the resync
    CHECK(index.stats().holdings == 24 + 10);
}

TEST_CASE("a snapshot of another incarnation of the stream is not loaded", "[nats][jetstream]") {
    NatsServer server;
    NatsPublisher worker(publisher_options(server));
    REQUIRE(worker.wait_connected(10s));
    const auto snap = server.dir() / "X.snap";
    {
        PositionalIndex<> index(4096, 16);
        NatsHub<> hub(index, js_options(server, "X"));
        send(worker, creates(1U, chain(1, 5)));
        REQUIRE(hub.wait_for_batches(1, 20s));
    }
    REQUIRE(std::filesystem::exists(snap));
    // The operator deletes and recreates the stream: sequences start again.
    {
        auto nc = RawClient(server);
        jsCtx* js = nullptr;
        REQUIRE(natsConnection_JetStream(&js, nc.nc.get(), nullptr) == NATS_OK);
        REQUIRE(js_DeleteStream(js, "X", nullptr, nullptr) == NATS_OK);
        jsCtx_Destroy(js);
    }
    PositionalIndex<> index(4096, 16);
    NatsHub<> hub(index, js_options(server, "X"));
    CHECK(index.empty());
    CHECK(hub.nats_stats().gaps == 1);
    CHECK(hub.nats_stats().resync_requests == 1);
    send(worker, creates(2U, chain(2, 3)));
    REQUIRE(hub.wait_for_batches(1, 20s));
    CHECK(index.instances() == std::vector<InstanceId>{2U});
}

TEST_CASE("an existing stream that does not capture the events subject is refused", "[nats][jetstream]") {
    NatsServer server;
    {
        auto nc = RawClient(server);
        jsCtx* js = nullptr;
        REQUIRE(natsConnection_JetStream(&js, nc.nc.get(), nullptr) == NATS_OK);
        jsStreamConfig cfg;
        jsStreamConfig_Init(&cfg);
        cfg.Name = "OTHER";
        const char* subjects[] = {"something.else"};
        cfg.Subjects = subjects;
        cfg.SubjectsLen = 1;
        jsStreamInfo* si = nullptr;
        REQUIRE(js_AddStream(&si, js, &cfg, nullptr, nullptr) == NATS_OK);
        jsStreamInfo_Destroy(si);
        jsCtx_Destroy(js);
    }
    PositionalIndex<> index(4096, 16);
    try {
        NatsHub<> hub(index, js_options(server, "OTHER"));
        FAIL("accepted a stream that does not capture kvbm.events");
    } catch (const kvbm::NatsError& e) {
        CHECK(std::string(e.what()).find("does not capture") != std::string::npos);
    }
}

TEST_CASE("JetStream keeps what workers publish across a broker restart", "[nats][jetstream]") {
    NatsServer server;
    PositionalIndex<> index(1 << 14, 16);
    NatsHub<> hub(index, js_options(server, "BR"));
    ModelWorker w(publisher_options(server), 5U, 9);
    w.start();
    REQUIRE(eventually([&] { return w.batches() > 50; }, 30s));
    server.stop();
    std::this_thread::sleep_for(100ms);  // the outage itself
    server.restart();
    const auto before = w.batches();
    REQUIRE(eventually([&] { return w.batches() > before + 100; }, 30s));
    w.stop();
    REQUIRE(eventually([&] { return w.marker_seen(index); }, 30s));
    const auto ns = hub.nats_stats();
    INFO("hub: reconnects " << ns.reconnects << " gaps " << ns.gaps << " resync requests " << ns.resync_requests
                            << " replayed " << ns.replayed << " seq " << ns.stream_sequence << "; worker resyncs "
                            << w.resyncs() << " reconnects " << w.publisher().reconnects() << " dropped "
                            << w.publisher().dropped() << "; " << hub.last_nats_error());
    CHECK(eventually([&] { return holdings_of(index, 5U) == w.live(); }, 30s));
    CHECK(hub.rejected() == 0);
}
