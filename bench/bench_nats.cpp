// End to end over NATS.
//
// e2e/nats: from registration to the hub's index, through a real nats-server on loopback.
// One producer registers runs of 64 blocks in a BlockRegistry and releases them child first
// (the producer of e2e/zmq); the EventsManager, the channel, the EventsPublisher (batching,
// MessagePack) and a NatsPublisher carry the events to the broker, and a NatsHub (core
// NATS subscription) applies them to a PositionalIndex. Timed from the first registration
// until the hub has applied every published batch (Shutdown included); the index must end
// empty and nothing may be lagged, dropped or rejected (`e2e/nats/problems`).
//
// The bench starts its own nats-server (KVBM_NATS_SERVER, found at configure time, or the
// environment's $KVBM_NATS_SERVER); without one it prints a note on stderr and no line.
#include "../tests/nats_server.hpp"
#include "bench.hpp"
#include "register_release.hpp"

#include <kvbm/nats_hub.hpp>
#include <kvbm/nats_publisher.hpp>

#include <unistd.h>

#include <memory>

namespace {

kvbm_bench::E2eResult nats_registration_to_hub(const kvbm_test::NatsServer& server, std::size_t blocks) {
    const auto hashes = kvbm_bench::run_hashes(blocks);
    kvbm::PositionalIndex<> index(kvbm_bench::register_run * 16, 16);
    kvbm::NatsHubOptions hub_opts;
    hub_opts.connection.servers = {server.url()};
    hub_opts.request_resync = false;
    const kvbm::NatsHub<> hub(index, hub_opts);
    kvbm::NatsPublisherOptions pub_opts;
    pub_opts.connection.servers = {server.url()};
    auto res = kvbm_bench::registration_to_hub(std::make_shared<kvbm::NatsPublisher>(pub_opts), hub, index, hashes);
    res.problems += hub.nats_stats().dropped;
    return res;
}

}  // namespace

KVBM_BENCH("e2e") {
    const std::string server_bin = kvbm_test::nats_server_path();
    if (server_bin.find('/') != std::string::npos ? ::access(server_bin.c_str(), X_OK) != 0 : false) {
        std::fprintf(stderr, "e2e/nats: skipped, no nats-server at %s (set KVBM_NATS_SERVER)\n", server_bin.c_str());
        return;
    }
    std::unique_ptr<kvbm_test::NatsServer> server;
    try {
        server = std::make_unique<kvbm_test::NatsServer>(false);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "e2e/nats: skipped, nats-server did not start: %s\n", e.what());
        return;
    }
    const std::size_t blocks = s.quick ? (1U << 16U) : (1U << 18U);
    double best = std::numeric_limits<double>::infinity();
    std::uint64_t problems = 0;
    for (int r = 0; r < s.runs; ++r) {
        const auto res = nats_registration_to_hub(*server, blocks);
        best = std::min(best, res.seconds);
        problems += res.problems;
    }
    kvbm_bench::report("e2e/nats", static_cast<double>(2 * blocks) / best, "events_per_s", 0);
    kvbm_bench::report("e2e/nats/problems", static_cast<double>(problems), "events", 0);
}
