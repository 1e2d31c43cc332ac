// The whole event pipeline into a transport that discards the bytes: the events manager,
// the broadcast channel, the batcher and the MessagePack encoder.
// Shape: one producer thread makes a run of 64 blocks live (positions 0..63, a request's
// prefix) and then releases them, child first, over and over: 64 Creates, 64 Removes.
// 2^18 blocks (2^16 quick), best of the runs. The clock starts before the first block and
// stops when stop() returns: every event published, Shutdown sent, flushed.
//
// pipeline/register_release: through a BlockRegistry (registration handles, the release
// handle attached to each registration).
// pipeline/announce_release: through the direct cache-manager API (EventsManager::announce,
// the AnnouncedBlock kept by the caller).
//
// The channel holds a whole run (2^19 events), so the figure is the pipeline's throughput,
// not the luck of the scheduler: with the default 1024 events a producer this fast outruns
// the publisher whenever the publisher's thread is descheduled for ~0.2 ms, which on two
// shared cores happens; then the lag recovery takes over (tests/test_lag_recovery.cpp).
// The `/capacity=1024` lines run the same with the default channel to show how often.
// `lost` sums, over all runs, events sent minus events in published batches: stop() must
// publish everything sent before it (a lag recovery drops the pending events and
// re-announces the live ones instead). `lagged` shows channel loss, expected 0.
#include "bench.hpp"
#include "register_release.hpp"

#include <kvbm/events_publisher.hpp>

#include <memory>
#include <string>
#include <vector>

namespace {

struct DiscardPublisher {
    std::uint64_t* bytes;
    kvbm::PublishResult publish(std::string_view /*subject*/, std::span<const std::uint8_t> data) {
        *bytes += data.size();
        return kvbm::PublishResult::success();
    }
    kvbm::PublishResult flush() { return kvbm::PublishResult::success(); }
};

struct RunResult {
    double events_per_s = 0;
    std::uint64_t lost = 0;
    std::uint64_t lag_events = 0;
};

enum class Path { registry, announce };

RunResult run_once(std::size_t blocks, Path path, std::size_t capacity) {
    const auto hashes = kvbm_bench::run_hashes(blocks);
    std::uint64_t bytes = 0;
    auto manager = std::make_shared<kvbm::EventsManager<>>(kvbm::EventsManagerSettings<>{{}, capacity});
    const kvbm::BlockRegistry<> registry(manager);
    kvbm::EventsPublisher publisher(*manager, registry, DiscardPublisher{&bytes}, kvbm::InstanceId{1U});

    const auto t0 = std::chrono::steady_clock::now();
    if (path == Path::registry) {
        kvbm_bench::register_and_release(registry, hashes);
    } else {
        kvbm_bench::announce_and_release(*manager, hashes);
    }
    (void)publisher.stop();
    const std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;

    const auto m = publisher.metrics();
    const std::uint64_t sent = 2 * static_cast<std::uint64_t>(blocks);
    kvbm_bench::keep(bytes);
    // Lost inside the publisher (events_in != published) or before it (never taken in).
    return {static_cast<double>(sent) / dt.count(), sent - m.events_published, m.lag_events};
}

// Best of `runs`; lost and lagged summed over them.
void report_path(const kvbm_bench::settings& s, const std::string& name, Path path, std::size_t capacity) {
    const std::size_t blocks = s.quick ? (1U << 16U) : (1U << 18U);
    RunResult best;
    std::uint64_t lost = 0;
    std::uint64_t lag = 0;
    for (int r = 0; r < s.runs; ++r) {
        const auto res = run_once(blocks, path, capacity == 0 ? 2 * blocks : capacity);
        if (res.events_per_s > best.events_per_s) {
            best = res;
        }
        lost += res.lost;
        lag += res.lag_events;
    }
    kvbm_bench::report(name, best.events_per_s, "events_per_s", 0);
    kvbm_bench::report(name + "/lost", static_cast<double>(lost), "events", 0);
    kvbm_bench::report(name + "/lagged", static_cast<double>(lag), "events", 0);
}

}  // namespace

KVBM_BENCH("pipeline") {
    report_path(s, "pipeline/register_release", Path::registry, 0);
    report_path(s, "pipeline/announce_release", Path::announce, 0);
    // With the default channel (1024 events): what a descheduled publisher costs.
    report_path(s, "pipeline/register_release/capacity=1024", Path::registry, 1024);
    report_path(s, "pipeline/announce_release/capacity=1024", Path::announce, 1024);
}
