// kvbm::HubClient against kvbm-hub's server (in process): probe, refusals with clear
// errors, registration, keepalive, publishing through the advertised endpoint, unregister
// on stop (which sweeps), and re-registration with a resync request after a lost lease.
#include "../examples/kvbm-hub/hub_server.hpp"

#include <kvbm/hub_client.hpp>
#include <kvbm/msgpack.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using kvbm::HubClient;
using kvbm::HubClientError;
using kvbm::HubClientOptions;
using kvbm_hub::Hash;
using kvbm_hub::HubOptions;
using kvbm_hub::HubServer;

namespace {

HubOptions hub_options(std::chrono::milliseconds ttl = 10s) {
    HubOptions o;
    o.http_port = 0;
    o.zmq_bind = "tcp://127.0.0.1:0";
    o.max_seq_len = 4096;
    o.lease_ttl = ttl;
    o.http_threads = 4;
    return o;
}

HubClientOptions client_options(std::uint64_t id, std::uint64_t block_size = 16) {
    HubClientOptions o;
    o.instance_id = kvbm::InstanceId{id};
    o.block_size = block_size;
    return o;
}

std::vector<Hash> blocks(std::uint64_t seed, std::uint64_t n) {
    std::vector<Hash> out;
    std::uint64_t parent = 0;
    for (std::uint64_t i = 0; i < n; ++i) {
        const std::uint64_t current = seed * 1000003 + i * 7919 + 1;
        out.push_back(Hash::from_raw(kvbm::Uint128{i} << 118 | kvbm::Uint128{parent} << 59 | kvbm::Uint128{current}));
        parent = current;
    }
    return out;
}

void publish_create(HubClient& client, const std::vector<Hash>& hashes) {
    kvbm::KvbmCacheEvents<Hash> batch{kvbm::KvCacheEvents<Hash>::create(hashes), client.instance_id()};
    const auto bytes = kvbm::msgpack::encode(batch);
    REQUIRE(client.publish("kvbm.events", bytes).ok());
}

template <class F>
bool eventually(F&& cond, std::chrono::milliseconds timeout = 20s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (cond()) {
            return true;
        }
        std::this_thread::sleep_for(5ms);
    }
    return cond();
}

}  // namespace

TEST_CASE("HubClient joins, publishes, keeps its lease and unregisters on stop") {
    HubServer hub(hub_options(1500ms));
    auto options = client_options(42);
    options.max_seq_len = 8192;
    HubClient client(hub.http_url(), options);
    CHECK(client.config().block_size == 16);
    CHECK(client.config().zmq_endpoint == hub.zmq_endpoint());
    CHECK(client.lease_ttl() == 1500ms);
    CHECK(client.keepalive_interval() == 500ms);
    CHECK(hub.index().max_seq_len() == 8192);  // registration grew the index

    const auto chain = blocks(1, 5);
    publish_create(client, chain);
    REQUIRE(eventually([&] { return hub.index().query(chain).has_value(); }));
    CHECK(hub.index().query(chain)->holders == std::vector<kvbm::InstanceId>{kvbm::InstanceId{42}});

    // Several TTLs pass: the keepalives hold the lease, nothing is swept. (A TTL of 1.5 s
    // leaves a keepalive 1 s of slack on a loaded machine.)
    std::this_thread::sleep_for(4000ms);
    CHECK(client.keepalives() >= 3);
    CHECK(client.reregistrations() == 0);
    CHECK(hub.api().leases_expired() == 0);
    CHECK(hub.index().size() == 5);

    CHECK(client.stop());
    CHECK(hub.index().empty());  // DELETE swept at once
    CHECK(hub.api().unregistrations() == 1);
    CHECK(client.stop());  // idempotent
}

TEST_CASE("HubClient refuses a hub with another block size, naming both") {
    HubServer hub(hub_options());
    try {
        HubClient client(hub.http_url(), client_options(1, 32));
        FAIL("joined a hub of another block size");
    } catch (const HubClientError& e) {
        const std::string what = e.what();
        CHECK(what.find("block size mismatch") != std::string::npos);
        CHECK(what.find("32") != std::string::npos);
        CHECK(what.find("16") != std::string::npos);
    }
    CHECK(hub.api().registrations() == 0);  // refused before registering
}

TEST_CASE("HubClient refuses a hub that advertises no endpoint, or none at all") {
    httplib::Server fake;
    fake.Get("/v1/features/kv-index/config", [](const httplib::Request&, httplib::Response& res) {
        res.set_content(R"({"max_seq_len":4096,"block_size":16,"num_positions":256,"zmq_endpoint":""})",
                        "application/json");
    });
    const int port = fake.bind_to_any_port("127.0.0.1");
    std::thread serving([&] { fake.listen_after_bind(); });
    REQUIRE(eventually([&] { return fake.is_running(); }));
    const std::string url = "http://127.0.0.1:" + std::to_string(port);
    CHECK_THROWS_WITH(HubClient(url, client_options(1)), Catch::Contains("advertises no ZeroMQ endpoint"));
    fake.stop();
    serving.join();
    // Nobody listens there any more.
    CHECK_THROWS_WITH(HubClient(url, client_options(1)), Catch::Contains("cannot reach the hub"));
}

TEST_CASE("HubClient surfaces a refused registration with the hub's message") {
    auto o = hub_options();
    o.control_token = "s3cret";
    HubServer hub(o);
    CHECK_THROWS_WITH(HubClient(hub.http_url(), client_options(5)), Catch::Contains("401"));
    auto with_token = client_options(5);
    with_token.control_token = "s3cret";
    HubClient client(hub.http_url(), with_token);
    CHECK(hub.api().registrations() == 1);
}

TEST_CASE("HubClient registers again after its lease expired, and asks for a resync") {
    // The Create must reach the hub within the TTL (afterwards the instance is swept and its
    // late batches dropped): 1 s, plenty on a loaded machine; the first keepalive, at 3 s,
    // finds the lease gone.
    HubServer hub(hub_options(1000ms));
    auto options = client_options(9);
    options.keepalive_interval = 3000ms;  // slower than the TTL: the lease runs out
    HubClient client(hub.http_url(), options);
    (void)client.take_resync_request();  // the first subscription's request
    const auto chain = blocks(3, 4);
    publish_create(client, chain);
    REQUIRE(eventually([&] { return hub.index().size() == 4; }));
    REQUIRE(eventually([&] { return hub.api().leases_expired() >= 1; }));
    CHECK(hub.api().swept_entries() == 4);  // swept (the resync below may refill the index already)
    REQUIRE(eventually([&] { return client.reregistrations() >= 1; }));
    CHECK(client.take_resync_request());
    CHECK_FALSE(client.take_resync_request());  // once
}

TEST_CASE("HubClient with CURVE keys: a listed key publishes, an unlisted one never connects") {
    std::array<char, 41> server_public{}, server_secret{}, listed_public{}, listed_secret{}, other_public{},
        other_secret{};
    REQUIRE(zmq_curve_keypair(server_public.data(), server_secret.data()) == 0);
    REQUIRE(zmq_curve_keypair(listed_public.data(), listed_secret.data()) == 0);
    REQUIRE(zmq_curve_keypair(other_public.data(), other_secret.data()) == 0);
    auto o = hub_options();
    kvbm_hub::CurveConfig curve;
    curve.secret_key = server_secret.data();
    curve.public_key = server_public.data();
    curve.allowed[listed_public.data()].insert(kvbm::InstanceId{7});
    o.curve = curve;
    HubServer hub(o);

    auto listed = client_options(7);
    listed.publisher.curve_public_key = listed_public.data();
    listed.publisher.curve_secret_key = listed_secret.data();  // the server key comes from /config
    HubClient client(hub.http_url(), listed);
    CHECK(client.config().zmq_curve_server_key == server_public.data());
    const auto chain = blocks(4, 3);
    publish_create(client, chain);
    REQUIRE(eventually([&] { return hub.index().size() == 3; }));

    auto other = client_options(8);
    other.publisher.curve_public_key = other_public.data();
    other.publisher.curve_secret_key = other_secret.data();
    other.connect_timeout = 700ms;
    CHECK_THROWS_WITH(HubClient(hub.http_url(), other), Catch::Contains("did not subscribe"));
    CHECK(hub.api().registered() == 1);  // the failed join withdrew its registration
}
