// End to end over ZeroMQ, two figures.
//
// e2e/zmq: from registration to the hub's index. One producer registers runs of 64 blocks
// (positions 0..63) in a BlockRegistry and releases them child first; the EventsManager,
// the channel, the EventsPublisher (batching, MessagePack) and a ZmqPublisher carry the
// events over tcp loopback to a ZmqHub applying them to a PositionalIndex. Timed from the
// first registration until the hub has applied every published batch (Shutdown included);
// the index must end empty and nothing may be lagged, dropped or rejected. As in
// pipeline/register_release the channel holds a whole run, and the publisher waits for
// room instead of dropping (send_timeout -1): the figure is lossless throughput.
//
// e2e/zmq_batches: batches of 1024 events encoded with MessagePack, sent by a
// ZmqPublisher over tcp loopback to a ZmqHub that decodes them and applies them to a
// PositionalIndex. Timed from the first encode to the last batch applied at the hub.
// The first half of the batches creates distinct blocks (the index grows to ~2M entries,
// quick: ~512K), the second half removes them all again, so the hub works on an index of
// realistic size and must end empty. The publisher waits for room instead of dropping
// (send_timeout -1), so the figure is lossless throughput.
#include "bench.hpp"
#include "register_release.hpp"

#include <kvbm/events_publisher.hpp>
#include <kvbm/index.hpp>
#include <kvbm/msgpack.hpp>
#include <kvbm/zmq.hpp>

#include <random>

KVBM_BENCH("e2e") {
    using Plh = kvbm::PositionalLineageHash;
    using Batch = kvbm::KvbmCacheEvents<Plh>;
    constexpr std::size_t batch_size = 1024;
    const std::size_t batches = s.quick ? 1000 : 4000;
    const std::size_t distinct = batches / 2;  // create batches, each 16 prompts of 64 blocks

    std::mt19937_64 rng(3);
    std::vector<Batch> creates;
    std::vector<Batch> removes;
    for (std::size_t b = 0; b < distinct; ++b) {
        std::vector<Plh> hs;
        for (std::size_t p = 0; p < batch_size / 64; ++p) {
            std::optional<std::uint64_t> parent;
            for (std::uint64_t pos = 0; pos < 64; ++pos) {
                const std::uint64_t current = rng();
                hs.emplace_back(current, parent, pos);
                parent = current;
            }
        }
        std::stable_sort(hs.begin(), hs.end(), [](const Plh& x, const Plh& y) { return x.position() < y.position(); });
        const kvbm::InstanceId id = kvbm::Uint128::from_parts(rng(), rng());
        creates.push_back({kvbm::KvCacheEvents<Plh>::create(hs), id});
        std::reverse(hs.begin(), hs.end());
        removes.push_back({kvbm::KvCacheEvents<Plh>::remove(std::move(hs)), id});
    }

    const double seconds = kvbm_bench::best_of(s.runs, [&] {
        kvbm::PositionalIndex<> index(64 * 16, 16);
        kvbm::ZmqHub<> hub(index);
        kvbm::ZmqPublisherOptions opts;
        opts.send_timeout = std::chrono::milliseconds(-1);
        kvbm::ZmqPublisher pub(hub.endpoint(), opts);
        if (!pub.wait_connected(std::chrono::seconds(10))) {
            std::fprintf(stderr, "e2e/zmq: hub not reachable\n");
            return std::numeric_limits<double>::infinity();
        }
        std::vector<std::uint8_t> buf;
        const auto t0 = std::chrono::steady_clock::now();
        for (std::size_t i = 0; i < batches; ++i) {
            const auto& b = i < distinct ? creates[i] : removes[i - distinct];
            buf.clear();
            kvbm::msgpack::encode(b, buf);
            if (!pub.publish("kvbm.events", buf)) {
                std::fprintf(stderr, "e2e/zmq: publish failed\n");
            }
        }
        if (!hub.wait_for_batches(batches, std::chrono::seconds(60))) {
            std::fprintf(stderr, "e2e/zmq: only %llu of %zu batches applied\n",
                         static_cast<unsigned long long>(hub.batches_applied()), batches);
        }
        const std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
        if (!index.empty() || hub.stats().rejected() != 0) {
            std::fprintf(stderr, "e2e/zmq: index not empty or messages rejected\n");
        }
        return dt.count();
    });
    kvbm_bench::report("e2e/zmq_batches", static_cast<double>(batches * batch_size) / seconds, "events_per_s", 0);
}

namespace {

kvbm_bench::E2eResult zmq_registration_to_hub(std::size_t blocks) {
    const auto hashes = kvbm_bench::run_hashes(blocks);
    kvbm::PositionalIndex<> index(kvbm_bench::register_run * 16, 16);
    const kvbm::ZmqHub<> hub(index);
    kvbm::ZmqPublisherOptions opts;
    opts.send_timeout = std::chrono::milliseconds(-1);
    auto transport = std::make_shared<kvbm::ZmqPublisher>(hub.endpoint(), opts);
    if (!transport->wait_connected(std::chrono::seconds(10))) {
        std::fprintf(stderr, "e2e/zmq: hub not reachable\n");
        return {std::numeric_limits<double>::infinity(), 1};
    }
    return kvbm_bench::registration_to_hub(transport, hub, index, hashes);
}

}  // namespace

KVBM_BENCH("e2e") {
    const std::size_t blocks = s.quick ? (1U << 16U) : (1U << 18U);
    double best = std::numeric_limits<double>::infinity();
    std::uint64_t problems = 0;
    for (int r = 0; r < s.runs; ++r) {
        const auto res = zmq_registration_to_hub(blocks);
        best = std::min(best, res.seconds);
        problems += res.problems;
    }
    kvbm_bench::report("e2e/zmq", static_cast<double>(2 * blocks) / best, "events_per_s", 0);
    kvbm_bench::report("e2e/zmq/problems", static_cast<double>(problems), "events", 0);
}
