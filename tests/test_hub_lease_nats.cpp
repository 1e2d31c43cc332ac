// A worker that publishes over NATS holds a lease at kvbm-hub (HubLease + NatsPublisher,
// tied by LeasedPublisher), against a real nats-server and an in-process HubServer reading
// NATS: its blocks reach the hub; a lease that runs out sweeps them, the next keepalive
// registers again and the resync it raises brings them back over NATS; stop sweeps them.
#include "../examples/kvbm-hub/hub_server.hpp"
#include "index_helpers.hpp"
#include "nats_worker.hpp"

#include <kvbm/events_publisher.hpp>
#include <kvbm/hub_lease.hpp>
#include <kvbm/nats_publisher.hpp>
#include <kvbm/registry.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <vector>

using namespace std::chrono_literals;
using kvbm::HubLease;
using kvbm::LeasedPublisher;
using kvbm::NatsPublisher;
using kvbm_hub::HubServer;
using namespace kvbm_test;

static_assert(kvbm::Publisher<LeasedPublisher<NatsPublisher>>);
static_assert(kvbm::ResyncSignalling<LeasedPublisher<NatsPublisher>>);

namespace {

kvbm_hub::HubOptions nats_hub(const NatsServer& server, std::chrono::milliseconds ttl) {
    kvbm_hub::HubOptions o;
    o.http_port = 0;
    o.zmq_bind = "tcp://127.0.0.1:0";
    o.max_seq_len = 4096;
    o.lease_ttl = ttl;
    o.http_threads = 4;
    o.nats = hub_options(server);
    return o;
}

kvbm::HubLeaseOptions lease_options(std::uint64_t id, std::uint64_t block_size,
                                    std::chrono::milliseconds keepalive = {}) {
    kvbm::HubLeaseOptions o;
    o.instance_id = kvbm::InstanceId{id};
    o.block_size = block_size;
    o.keepalive_interval = keepalive;
    return o;
}

}  // namespace

TEST_CASE("a NATS worker's lease: swept when it runs out, restored by the resync it raises, swept on stop",
          "[nats][hub]") {
    NatsServer server(false);
    // The Create must reach the hub within the TTL (1 s, plenty on a loaded machine); the
    // first keepalive, at 3 s, finds the lease gone.
    HubServer hub(nats_hub(server, 1000ms));
    const kvbm::InstanceId id{9};
    HubLease lease(hub.http_url(), lease_options(9, 16, 3000ms));
    CHECK(lease.lease_ttl() == 1000ms);
    CHECK(hub.api().registrations() == 1);
    NatsPublisher nats(publisher_options(server));
    REQUIRE(nats.wait_connected(20s));
    LeasedPublisher transport(lease, nats);
    (void)transport.take_resync_request();  // a hub's request at start, if any: nothing to send yet

    auto manager = std::make_shared<kvbm::EventsManager<>>();
    const kvbm::BlockRegistry<> registry(manager);
    kvbm::EventsPublisher publisher(*manager, registry, &transport, id);
    const auto prompt = chain(5, 4);
    std::vector<kvbm::BlockRegistrationHandle<>> held;
    for (const auto& h : prompt) {
        held.push_back(registry.register_hash(h));
    }
    REQUIRE(eventually([&] { return hub.index().size() == 4; }, 20s));

    // No keepalive within the TTL: the hub sweeps the worker...
    REQUIRE(eventually([&] { return hub.api().leases_expired() >= 1; }, 20s));
    CHECK(hub.api().swept_entries() == 4);  // (the index may already be refilled by the resync below)
    // ...until the next keepalive (404) registers again and the resync republishes the live set.
    REQUIRE(eventually([&] { return lease.reregistrations() >= 1; }, 20s));
    REQUIRE(eventually([&] { return hub.index().size() == 4; }, 20s));
    const auto m = hub.index().query(prompt);
    REQUIRE(m);
    CHECK(m->position == 3);
    CHECK(m->holders == std::vector<kvbm::InstanceId>{id});
    CHECK(publisher.metrics().recoveries >= 1);

    CHECK(publisher.stop());  // the Shutdown goes out over NATS
    CHECK(lease.stop());      // DELETE: swept at once
    CHECK(hub.index().empty());
    CHECK(hub.api().unregistrations() == 1);
    CHECK(lease.stop());  // idempotent
}

TEST_CASE("HubLease refuses a hub of another block size, and a config its check rejects, before registering",
          "[nats][hub]") {
    NatsServer server(false);
    HubServer hub(nats_hub(server, 10s));
    CHECK_THROWS_WITH(HubLease(hub.http_url(), lease_options(1, 32)), Catch::Contains("block size mismatch"));
    CHECK_THROWS_WITH(HubLease(hub.http_url(), lease_options(1, 16),
                               [](const kvbm::HubConfig& c) {
                                   if (c.num_positions < 1U << 20U) {
                                       throw kvbm::HubClientError("too few positions");
                                   }
                               }),
                      Catch::Contains("too few positions"));
    CHECK(hub.api().registrations() == 0);
}
