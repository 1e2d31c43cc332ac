// NatsPublisher against a real nats-server: subjects and payloads on the wire, flush's
// honest result, reconnects and hub requests signalling a resync.
#include "nats_helpers.hpp"

#include <kvbm/msgpack.hpp>
#include <kvbm/nats_publisher.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

using namespace std::chrono_literals;
using kvbm::NatsPublisher;
using kvbm::NatsPublisherOptions;
using namespace kvbm_test;

namespace {

NatsPublisherOptions options_for(const NatsServer& server, std::string prefix = {}) {
    NatsPublisherOptions o;
    o.connection.servers = {server.url()};
    o.connection.reconnect_wait = 50ms;
    o.subject_prefix = std::move(prefix);
    return o;
}

// A plain nats.c subscriber: what a third party sees on the wire.
struct RawSubscriber {
    kvbm::detail::nats_connection_ptr nc;
    kvbm::detail::nats_subscription_ptr sub;

    RawSubscriber(const NatsServer& server, const std::string& subject) {
        kvbm::NatsConnectionOptions o;
        o.servers = {server.url()};
        nc = kvbm::detail::nats_connect(o);
        natsSubscription* raw = nullptr;
        kvbm::detail::nats_check(natsConnection_SubscribeSync(&raw, nc.get(), subject.c_str()), "subscribe");
        sub.reset(raw);
        kvbm::detail::nats_check(natsConnection_FlushTimeout(nc.get(), 10000), "flush");
    }

    // The next message's subject and payload; throws on timeout.
    std::pair<std::string, std::vector<std::uint8_t>> next() {
        natsMsg* raw = nullptr;
        kvbm::detail::nats_check(natsSubscription_NextMsg(&raw, sub.get(), 10000), "next message");
        const kvbm::detail::nats_msg_ptr msg(raw);
        const auto* data = reinterpret_cast<const std::uint8_t*>(natsMsg_GetData(raw));
        return {natsMsg_GetSubject(raw), std::vector<std::uint8_t>(data, data + natsMsg_GetDataLength(raw))};
    }

    void publish(const std::string& subject, std::string_view payload) {
        kvbm::detail::nats_check(
            natsConnection_Publish(nc.get(), subject.c_str(), payload.data(), static_cast<int>(payload.size())),
            "publish");
        kvbm::detail::nats_check(natsConnection_FlushTimeout(nc.get(), 10000), "flush");
    }
};

}  // namespace

TEST_CASE("the subject is {prefix}.{subject} and the payload the MessagePack bytes", "[nats]") {
    NatsServer server(false);
    const std::string prefix = GENERATE(std::string{}, std::string{"ns1"}, std::string{"a.b"});
    CAPTURE(prefix);
    const std::string wire = prefix.empty() ? "kvbm.events" : prefix + ".kvbm.events";
    RawSubscriber peer(server, ">");  // everything, to see the exact subject

    NatsPublisher pub(options_for(server, prefix));
    CHECK(pub.events_subject() == wire);
    const auto batch = encoded_batch(creates(7U, chain(1, 12)));
    REQUIRE(pub.publish("kvbm.events", batch));
    REQUIRE(pub.flush());
    auto [subject, payload] = peer.next();
    CHECK(subject == wire);
    CHECK(payload == batch);
    auto decoded = kvbm::msgpack::decode_batch<Plh>(payload);
    REQUIRE(decoded);
    CHECK(decoded.value() == creates(7U, chain(1, 12)));

    // Another subject goes under the same prefix.
    REQUIRE(pub.publish("other.topic", batch));
    REQUIRE(pub.flush());
    std::tie(subject, payload) = peer.next();
    CHECK(subject == (prefix.empty() ? std::string("other.topic") : prefix + ".other.topic"));
    CHECK(pub.published() == 2);
    CHECK(pub.bytes() == 2 * batch.size());
    CHECK(pub.dropped() == 0);
    CHECK_FALSE(pub.take_resync_request());
}

TEST_CASE("flush reports failure, within its timeout, while the server is down", "[nats]") {
    NatsServer server(false);
    auto o = options_for(server);
    o.flush_timeout = 300ms;
    NatsPublisher pub(o);
    REQUIRE(pub.flush());
    server.stop();
    const auto t0 = std::chrono::steady_clock::now();
    const auto r = pub.flush();
    const auto took = std::chrono::steady_clock::now() - t0;
    CHECK_FALSE(r.ok());
    CHECK_FALSE(r.error().empty());
    CHECK(took < 5s);  // bounded (the target is 300 ms; generous for a loaded machine)
    CHECK(pub.flush_failures() == 1);
}

TEST_CASE("a reconnect signals one resync; what was buffered meanwhile is delivered", "[nats]") {
    NatsServer server(false);
    NatsPublisher pub(options_for(server));
    REQUIRE(pub.flush());
    CHECK_FALSE(pub.take_resync_request());

    server.stop();
    // Published while the client reconnects: buffered, sent once it is back.
    const auto batch = encoded_batch(creates(3U, chain(2, 4)));
    CHECK(pub.publish("kvbm.events", batch));
    server.restart();
    RawSubscriber peer(server, "kvbm.events");
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (pub.reconnects() == 0 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(10ms);  // polling the client's state, not a sleep-as-sync
    }
    REQUIRE(pub.reconnects() == 1);
    CHECK(pub.take_resync_request());
    CHECK_FALSE(pub.take_resync_request());  // once per reconnect
    CHECK(pub.resyncs_signalled() == 1);
    REQUIRE(pub.publish("kvbm.events", batch));
    REQUIRE(pub.flush());
    CHECK(peer.next().second == batch);
}

TEST_CASE("a hub's request on {prefix}.kvbm.resync signals one resync", "[nats]") {
    NatsServer server(false);
    NatsPublisher pub(options_for(server, "ns1"));
    NatsPublisher other(options_for(server, "ns2"));
    REQUIRE(pub.wait_connected(10s));
    REQUIRE(other.wait_connected(10s));
    RawSubscriber hub(server, "unused");
    hub.publish("ns1.kvbm.resync", "");
    hub.publish("ns1.kvbm.resync", "again");
    // The requests travel asynchronously: poll until seen (bounded).
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    bool seen = false;
    while (!seen && std::chrono::steady_clock::now() < deadline) {
        seen = pub.take_resync_request();
        if (!seen) {
            std::this_thread::sleep_for(5ms);
        }
    }
    REQUIRE(seen);
    // Both requests are answered by one resync, or at most one more if the second arrived
    // after the first was taken.
    CHECK(pub.resync_requests() >= 1);
    REQUIRE(other.flush());
    CHECK_FALSE(other.take_resync_request());  // another prefix: not asked
    CHECK(other.resync_requests() == 0);

    NatsPublisherOptions deaf = options_for(server, "ns1");
    deaf.listen_for_resync_requests = false;
    NatsPublisher quiet(deaf);
    REQUIRE(quiet.wait_connected(10s));
    hub.publish("ns1.kvbm.resync", "");
    REQUIRE(quiet.flush());
    CHECK_FALSE(quiet.take_resync_request());
}

TEST_CASE("no server: the constructor throws a NatsError naming the servers", "[nats]") {
    NatsPublisherOptions o;
    o.connection.servers = {"nats://127.0.0.1:" + std::to_string(free_tcp_port())};
    o.connection.connect_timeout = 500ms;
    try {
        NatsPublisher pub(o);
        FAIL("connected to nothing");
    } catch (const kvbm::NatsError& e) {
        CHECK(std::string(e.what()).find(o.connection.servers[0]) != std::string::npos);
    }
    o.connection.token = "t";
    o.connection.user = "u";
    CHECK_THROWS_AS(NatsPublisher(o), std::invalid_argument);
}

TEST_CASE("several servers: the publisher fails over to the next one", "[nats]") {
    NatsServer a(false);
    NatsServer b(false);
    NatsPublisherOptions o;
    o.connection.servers = {a.url(), b.url()};
    o.connection.reconnect_wait = 50ms;
    NatsPublisher pub(o);
    REQUIRE(pub.flush());
    a.stop();
    RawSubscriber peer(b, "kvbm.events");
    const auto batch = encoded_batch(shutdown(9U));
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (pub.reconnects() == 0 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(10ms);
    }
    REQUIRE(pub.reconnects() == 1);
    REQUIRE(pub.publish("kvbm.events", batch));
    REQUIRE(pub.flush());
    CHECK(peer.next().second == batch);
    CHECK(pub.take_resync_request());
}

TEST_CASE("credentials: user/password and token reach the server", "[nats]") {
    SECTION("user and password") {
        NatsServer server(false, {"--user", "kvbm", "--pass", "s3cret"});
        auto o = options_for(server);
        o.connection.connect_timeout = 2s;
        o.connection.user = "kvbm";
        o.connection.password = "wrong";
        CHECK_THROWS_AS(NatsPublisher(o), kvbm::NatsError);
        o.connection.password = "s3cret";
        NatsPublisher pub(o);
        CHECK(pub.flush());
    }
    SECTION("token") {
        NatsServer server(false, {"--auth", "tok123"});
        auto o = options_for(server);
        o.connection.token = "nope";
        CHECK_THROWS_AS(NatsPublisher(o), kvbm::NatsError);
        o.connection.token = "tok123";
        NatsPublisher pub(o);
        CHECK(pub.flush());
    }
}
