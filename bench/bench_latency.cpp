// Event latency over ZeroMQ: how stale is the router's view?
//
// e2e/zmq_latency_p50_us and e2e/zmq_latency_p99_us, per offered load and batcher mode
// (`.../rate=10k/mode=window`, `.../rate=1M/mode=eager`, ...): the time from a block's
// registration call (its Create) or its last handle's release (its Remove) until the hub's
// index shows the change. One producer registers runs of 64 blocks (positions 0..63) in a
// BlockRegistry and releases them child first, paced to the offered rate (it sleeps until
// the next event is due and then sends every event due by then, so at 1M events/s it sends
// in bursts of a few dozen); the EventsManager, the channel, the EventsPublisher (batching,
// MessagePack) and a ZmqPublisher carry the events over tcp loopback to a ZmqHub whose sink
// applies each batch to a PositionalIndex and then stamps every event in it. Events reach
// the hub in send order (creates ascending and removes descending is the order this
// producer sends them in), so the n-th event the hub applies is the n-th one sent; any
// mismatch, lag or drop is counted in `.../problems`.
//
// `mode=window` is the reference's batcher (a batch waits for the 10 ms timer unless it
// fills up); `mode=eager` is BatchingMode::eager (a batch also leaves when the channel runs
// dry). `.../delivered` is the rate the hub applied them at (offered events over the time
// from the first send to the last apply) and `.../batch_events` the mean batch size: at
// 1M events/s eager batches still form and the rate is the offered one.
//
// e2e/zmq_max/mode=window|eager: lossless throughput of the same path flat out (as
// e2e/zmq), with each mode, so the two are compared in one run.
//
// The channel holds every event of a measurement (no lag on a descheduled publisher: the
// figure is the path's latency, not the scheduler's luck). The machine the figures come from
// has two shared cores for the producer, the publisher, two ZeroMQ I/O threads and the hub:
// the tail is mostly scheduling.
#include "bench.hpp"
#include "register_release.hpp"

#include <kvbm/events_publisher.hpp>
#include <kvbm/index.hpp>
#include <kvbm/zmq.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using Plh = kvbm::PositionalLineageHash;

struct LatencyResult {
    double p50_us = 0;
    double p99_us = 0;
    double delivered_per_s = 0;
    double batch_events = 0;
    std::uint64_t problems = 0;
};

std::size_t channel_capacity_for(std::size_t events) {
    std::size_t c = 1024;
    while (c < events) {
        c *= 2;
    }
    return c;
}

double percentile_us(std::vector<std::int64_t> ns, double q) {
    if (ns.empty()) {
        return 0;
    }
    const auto k = static_cast<std::size_t>(q * static_cast<double>(ns.size() - 1));
    std::nth_element(ns.begin(), ns.begin() + static_cast<std::ptrdiff_t>(k), ns.end());
    return static_cast<double>(ns[k]) / 1000.0;
}

// `blocks` blocks (2 * blocks events) offered at `rate` events/s.
LatencyResult measure(std::size_t blocks, double rate, kvbm::BatchingMode mode) {
    const auto hashes = kvbm_bench::run_hashes(blocks);
    const std::size_t events = 2 * blocks;
    // The n-th event sent: runs of creates ascending, then removes child first.
    std::vector<Plh> expected;
    expected.reserve(events);
    for (std::size_t i = 0; i < blocks; i += kvbm_bench::register_run) {
        const std::size_t end = std::min(blocks, i + kvbm_bench::register_run);
        expected.insert(expected.end(), hashes.begin() + static_cast<std::ptrdiff_t>(i),
                        hashes.begin() + static_cast<std::ptrdiff_t>(end));
        expected.insert(expected.end(), std::make_reverse_iterator(hashes.begin() + static_cast<std::ptrdiff_t>(end)),
                        std::make_reverse_iterator(hashes.begin() + static_cast<std::ptrdiff_t>(i)));
    }
    // Written before the event is sent, read by the hub's thread after it arrived (the
    // channel and ZeroMQ order the two).
    std::vector<Clock::time_point> sent_at(events);
    std::vector<std::int64_t> latency_ns(events, 0);
    std::atomic<std::size_t> seen{0};
    std::atomic<std::uint64_t> mismatched{0};
    Clock::time_point last_applied{};

    kvbm::PositionalIndex<> index(kvbm_bench::register_run * 16, 16);
    kvbm::ZmqHub<> hub([&](const kvbm::KvbmCacheEvents<Plh>& batch) {
        index.apply(batch);
        if (batch.events.kind == kvbm::BatchKind::shutdown) {
            return;
        }
        const auto now = Clock::now();
        std::size_t n = seen.load(std::memory_order_relaxed);
        for (const auto& h : batch.events.hashes) {
            if (n < events && expected[n] == h) {
                latency_ns[n] = std::chrono::duration_cast<std::chrono::nanoseconds>(now - sent_at[n]).count();
            } else {
                mismatched.fetch_add(1, std::memory_order_relaxed);
            }
            ++n;
        }
        last_applied = now;
        seen.store(n, std::memory_order_release);
    });
    kvbm::ZmqPublisherOptions opts;
    opts.send_timeout = std::chrono::milliseconds(-1);
    auto transport = std::make_shared<kvbm::ZmqPublisher>(hub.endpoint(), opts);
    if (!transport->wait_connected(std::chrono::seconds(10))) {
        std::fprintf(stderr, "e2e/zmq_latency: hub not reachable\n");
        return {0, 0, 0, 0, 1};
    }
    // The hub's first subscription raises a resync request; nothing was published yet, so
    // there is nothing to resync (a resync would re-announce live blocks out of order).
    (void)transport->take_resync_request();
    auto manager =
        std::make_shared<kvbm::EventsManager<>>(kvbm::EventsManagerSettings<>{{}, channel_capacity_for(events)});
    const kvbm::BlockRegistry<> registry(manager);
    kvbm::EventsPublisherSettings<> settings;
    settings.batching.mode = mode;
    kvbm::EventsPublisher publisher(*manager, registry, transport, kvbm::InstanceId{9U}, std::move(settings));

    std::vector<kvbm::BlockRegistrationHandle<>> held;
    held.reserve(kvbm_bench::register_run);
    const auto period = std::chrono::duration<double>(1.0 / rate);
    const auto t0 = Clock::now();
    std::size_t k = 0;  // events sent
    const auto due = [&](std::size_t i) {
        return t0 + std::chrono::duration_cast<Clock::duration>(period * static_cast<double>(i));
    };
    for (std::size_t i = 0; i < blocks; i += kvbm_bench::register_run) {
        const std::size_t end = std::min(blocks, i + kvbm_bench::register_run);
        for (std::size_t j = i; j < end + (end - i); ++j) {
            if (Clock::now() < due(k)) {
                std::this_thread::sleep_until(due(k));
            }
            sent_at[k] = Clock::now();
            if (j < end) {
                held.push_back(registry.register_hash(hashes[j]));
            } else {
                held.pop_back();
            }
            ++k;
        }
    }
    const auto give_up = Clock::now() + std::chrono::seconds(60);
    while (seen.load(std::memory_order_acquire) < events && Clock::now() < give_up) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    const std::size_t got = seen.load(std::memory_order_acquire);
    (void)publisher.stop();
    const auto m = publisher.metrics();
    (void)hub.wait_for_batches(m.batches_published, std::chrono::seconds(10));

    LatencyResult r;
    r.problems = (events - std::min(events, got)) + mismatched.load() + m.lag_events + transport->dropped() +
                 hub.stats().rejected() + index.size();
    if (got >= events) {
        r.p50_us = percentile_us(latency_ns, 0.50);
        r.p99_us = percentile_us(latency_ns, 0.99);
        r.delivered_per_s = static_cast<double>(events) / std::chrono::duration<double>(last_applied - t0).count();
    }
    const std::uint64_t stream_batches = m.batches_published > 0 ? m.batches_published - 1 : 0;  // not Shutdown
    r.batch_events =
        stream_batches > 0 ? static_cast<double>(m.events_published) / static_cast<double>(stream_batches) : 0;
    return r;
}

// Flat out, lossless: seconds from the first registration until the hub applied everything.
double flat_out(std::size_t blocks, kvbm::BatchingMode mode, std::uint64_t& problems) {
    const auto hashes = kvbm_bench::run_hashes(blocks);
    kvbm::PositionalIndex<> index(kvbm_bench::register_run * 16, 16);
    kvbm::ZmqHub<> hub(index);
    kvbm::ZmqPublisherOptions opts;
    opts.send_timeout = std::chrono::milliseconds(-1);
    auto transport = std::make_shared<kvbm::ZmqPublisher>(hub.endpoint(), opts);
    if (!transport->wait_connected(std::chrono::seconds(10))) {
        ++problems;
        return std::numeric_limits<double>::infinity();
    }
    (void)transport->take_resync_request();  // the first subscription: nothing to resync yet
    auto manager = std::make_shared<kvbm::EventsManager<>>(kvbm::EventsManagerSettings<>{{}, 2 * blocks});
    const kvbm::BlockRegistry<> registry(manager);
    kvbm::EventsPublisherSettings<> settings;
    settings.batching.mode = mode;
    kvbm::EventsPublisher publisher(*manager, registry, transport, kvbm::InstanceId{7U}, std::move(settings));
    const auto t0 = Clock::now();
    kvbm_bench::register_and_release(registry, hashes);
    (void)publisher.stop();
    const auto m = publisher.metrics();
    const bool applied = hub.wait_for_batches(m.batches_published, std::chrono::seconds(60));
    const std::chrono::duration<double> dt = Clock::now() - t0;
    problems += (applied ? 0U : 1U) + m.lag_events + transport->dropped() + hub.stats().rejected() + index.size() +
                (2 * blocks - m.events_published);
    return dt.count();
}

}  // namespace

KVBM_BENCH("e2e_latency") {
    struct Load {
        const char* name;
        double rate;
        std::size_t blocks;  // 2 * blocks events
    };
    // About two seconds per light measurement (one second quick), one per heavy.
    const Load loads[] = {
        {"10k", 1e4, s.quick ? 5'120U : 10'240U},
        {"1M", 1e6, s.quick ? 262'144U : 524'288U},
    };
    for (const auto& load : loads) {
        for (const auto mode : {kvbm::BatchingMode::window, kvbm::BatchingMode::eager}) {
            const auto r = measure(load.blocks, load.rate, mode);
            const std::string suffix = std::string("/rate=") + load.name + "/mode=" + kvbm::to_string(mode);
            kvbm_bench::report("e2e/zmq_latency_p50_us" + suffix, r.p50_us, "us", 1);
            kvbm_bench::report("e2e/zmq_latency_p99_us" + suffix, r.p99_us, "us", 1);
            kvbm_bench::report("e2e/zmq_latency_delivered" + suffix, r.delivered_per_s, "events_per_s", 0);
            kvbm_bench::report("e2e/zmq_latency_batch_events" + suffix, r.batch_events, "events", 1);
            kvbm_bench::report("e2e/zmq_latency_problems" + suffix, static_cast<double>(r.problems), "events", 0);
        }
    }
}

KVBM_BENCH("e2e_max") {
    const std::size_t blocks = s.quick ? (1U << 16U) : (1U << 18U);
    for (const auto mode : {kvbm::BatchingMode::window, kvbm::BatchingMode::eager}) {
        std::uint64_t problems = 0;
        const double best = kvbm_bench::best_of(std::min(s.runs, 3), [&] { return flat_out(blocks, mode, problems); });
        const std::string suffix = std::string("/mode=") + kvbm::to_string(mode);
        kvbm_bench::report("e2e/zmq_max" + suffix, static_cast<double>(2 * blocks) / best, "events_per_s", 0);
        kvbm_bench::report("e2e/zmq_max/problems" + suffix, static_cast<double>(problems), "events", 0);
    }
}
