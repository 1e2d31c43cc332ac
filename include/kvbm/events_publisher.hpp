/// @file kvbm/events_publisher.hpp
/// EventsPublisher: the background thread that takes events from a subscription, batches
/// them (EventBatcher), encodes each batch exactly as `rmp_serde::to_vec` does and hands
/// the bytes to a `Publisher` (a transport). Stops gracefully, and recovers from lag by
/// re-announcing the live registrations, which the reference does not.
#pragma once

#include <kvbm/batcher.hpp>
#include <kvbm/config.hpp>
#include <kvbm/events.hpp>
#include <kvbm/hash.hpp>
#include <kvbm/manager.hpp>
#include <kvbm/msgpack.hpp>
#include <kvbm/publisher.hpp>
#include <kvbm/registry.hpp>
#include <kvbm/uint128.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

KVBM_NAMESPACE_BEGIN

/// Settings of an EventsPublisher.
template <SequenceHash H = PositionalLineageHash>
struct EventsPublisherSettings {
    /// Subject handed to `publish`. Default "kvbm.events" (the reference's).
    std::string subject = "kvbm.events";
    /// Batching rules (10 ms window, 1024 events by default).
    BatchingConfig batching{};
    /// Lag recovery: returns every hash whose `Create` the stream announced and whose
    /// `Remove` it has not, *now* (the live registrations the policy allows). Called on the
    /// worker thread after a lag is noticed. Empty function: lag is only counted (the
    /// reference's behaviour), and the hub's view may stay wrong. The constructor taking a
    /// manager and a registry fills it in.
    std::function<std::vector<H>()> recovery_snapshot;
    /// How long `stop()` and the destructor wait for the worker to finish.
    std::chrono::milliseconds stop_timeout = std::chrono::seconds(5);
    /// Called on the worker thread with a description of each publish or flush failure
    /// (which are counted and never fatal). May be empty.
    std::function<void(std::string_view)> on_error;
};

/// Counters of an EventsPublisher, read with `metrics()`. After the worker has finished,
/// `events_in == events_published + events_dropped`.
struct EventsPublisherMetrics {
    std::uint64_t events_in = 0;           ///< events taken from the subscription
    std::uint64_t events_published = 0;    ///< of those, in batches that published successfully
    std::uint64_t events_dropped = 0;      ///< of those, in failed batches or discarded by a lag recovery
    std::uint64_t events_reannounced = 0;  ///< hashes published by lag recoveries
    std::uint64_t batches_published = 0;   ///< successful `publish` calls (batches, recoveries, Shutdown)
    std::uint64_t bytes_published = 0;     ///< bytes in those
    std::uint64_t publish_errors = 0;      ///< failed `publish` calls
    std::uint64_t flush_errors = 0;        ///< failed `flush` calls
    std::uint64_t lag_events = 0;          ///< events the subscription reported missed
    std::uint64_t lag_reports = 0;         ///< lagged results the subscription returned
    std::uint64_t recoveries = 0;          ///< lag recoveries done (Shutdown + re-announcement)
};

namespace detail {

template <class T>
struct is_reference_wrapper : std::false_type {};
template <class T>
struct is_reference_wrapper<std::reference_wrapper<T>> : std::true_type {};

// The transport behind a PublisherHandle.
template <class P>
decltype(auto) publisher_target(P& p) {
    if constexpr (Publisher<P>) {
        return (p);
    } else if constexpr (is_reference_wrapper<P>::value) {
        return p.get();
    } else {
        return *p;
    }
}

}  // namespace detail

/// What an EventsPublisher can hold: a Publisher by value, or a handle to one that the
/// publisher does not own alone: `std::shared_ptr<T>`, `std::unique_ptr<T>`, `T*` (never
/// null) or `std::reference_wrapper<T>` (`std::ref(t)`; `t` must outlive the publisher's
/// worker). Handles let a transport that cannot move (ZmqPublisher) be used, and let the
/// caller read the transport's own counters while it runs.
template <class P>
concept PublisherHandle = Publisher<P> ||(detail::is_reference_wrapper<P>::value&& Publisher<typename P::type>) ||
                          (!detail::is_reference_wrapper<P>::value &&
                           requires(P & p) { requires Publisher<std::remove_reference_t<decltype(*p)>>; });

namespace detail {

// Written by the worker thread only, read by anyone: relaxed single-writer counters.
struct PublisherCounters {
    std::atomic<std::uint64_t> events_in{0}, events_published{0}, events_dropped{0}, events_reannounced{0},
        batches_published{0}, bytes_published{0}, publish_errors{0}, flush_errors{0}, lag_events{0}, lag_reports{0},
        recoveries{0};

    static void add(std::atomic<std::uint64_t>& c, std::uint64_t n) noexcept {
        c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    [[nodiscard]] EventsPublisherMetrics read() const noexcept {
        const auto r = [](const std::atomic<std::uint64_t>& c) { return c.load(std::memory_order_relaxed); };
        return {r(events_in),         r(events_published), r(events_dropped), r(events_reannounced),
                r(batches_published), r(bytes_published),  r(publish_errors), r(flush_errors),
                r(lag_events),        r(lag_reports),      r(recoveries)};
    }
};

// Everything the worker thread touches lives here, owned by a shared_ptr the thread holds
// too: if the destructor's bounded wait runs out (a transport stuck in publish), the
// thread is detached and finishes later on its own state.
template <class P, class H>
class PublisherWorker {
public:
    using clock = std::chrono::steady_clock;

    PublisherWorker(EventSubscription<H> events, P publisher, InstanceId instance_id,
                    EventsPublisherSettings<H> settings)
        : m_events(std::move(events)),
          m_publisher(std::move(publisher)),
          m_settings(std::move(settings)),
          m_batcher(m_settings.batching, clock::now()) {
        m_message.instance_id = instance_id;
    }

    void request_stop() noexcept { m_stop.store(true, std::memory_order_release); }

    template <class Rep, class Period>
    bool wait_done(std::chrono::duration<Rep, Period> timeout) {
        std::unique_lock lock(m_done_mutex);
        return m_done_cv.wait_for(lock, timeout, [&] { return m_done; });
    }
    [[nodiscard]] bool done() {
        std::lock_guard lock(m_done_mutex);
        return m_done;
    }

    [[nodiscard]] const PublisherCounters& counters() const noexcept { return m_counters; }
    [[nodiscard]] const EventsPublisherSettings<H>& settings() const noexcept { return m_settings; }
    [[nodiscard]] InstanceId instance_id() const noexcept { return m_message.instance_id; }

    void run() noexcept {
        try {
            const bool closed = consume();
            if (!closed) {
                drain_on_stop();
            }
        } catch (...) {
            report("events publisher: unexpected exception while consuming: " + describe(std::current_exception()));
        }
        try {
            m_batcher.finish(sink());
            publish_shutdown();
            flush();
        } catch (...) {
            report("events publisher: unexpected exception while stopping: " + describe(std::current_exception()));
        }
        {
            std::lock_guard lock(m_done_mutex);
            m_done = true;
        }
        m_done_cv.notify_all();
    }

private:
    // The longest the worker sleeps without looking at the stop flag: it bounds how long
    // stop() takes to be noticed when the window is long.
    static constexpr std::chrono::milliseconds max_idle_wait{10};
    // Events taken from the channel per drain, and chunks taken per wake-up.
    static constexpr std::size_t chunk_size = 256;
    static constexpr int max_chunks_per_wake = 64;

    [[nodiscard]] bool stop_requested() const noexcept { return m_stop.load(std::memory_order_acquire); }

    auto sink() {
        return [this](KvCacheEvents<H>& batch) { publish_stream_batch(batch); };
    }

    // Runs until the input ends (returns true) or a stop is requested (returns false).
    bool consume() {
        while (!stop_requested()) {
            auto now = clock::now();
            m_batcher.expire(now, sink());
            const auto wait =
                std::clamp<clock::duration>(m_batcher.deadline() - now, clock::duration::zero(), max_idle_wait);
            auto r = m_events.recv_for(wait);
            if (r.has_value()) {
                now = clock::now();
                on_event(*r, now);
                // Biased towards input, like the reference's `select! { biased; ... }`: take
                // what is ready before looking at the timer again, a chunk at a time, bounded
                // so a flood cannot starve the timer or the stop flag for long.
                for (int chunk = 0; chunk < max_chunks_per_wake; ++chunk) {
                    const auto status = take_ready(now);
                    if (status == broadcast::RecvStatus::closed) {
                        return true;
                    }
                    if (status != broadcast::RecvStatus::ok) {
                        break;  // nothing more ready
                    }
                }
            } else if (r.is_lagged()) {
                recover(r.lagged_count(), clock::now());
            } else if (r.is_closed()) {
                return true;
            }
        }
        return false;
    }

    // Takes one chunk of ready events. Returns ok when there may be more, empty when there
    // are none, closed at the end of input. A lag met on the way is recovered from here.
    broadcast::RecvStatus take_ready(clock::time_point now) {
        m_chunk.clear();
        const broadcast::DrainResult r = m_events.drain(m_chunk, chunk_size);
        for (const auto& event : m_chunk) {
            on_event(event, now);
        }
        switch (r.status) {
            case broadcast::RecvStatus::lagged:
                // drain stopped before the lag: the next receive reports (and passes) it.
                if (auto next = m_events.try_recv(); next.is_lagged()) {
                    recover(next.lagged_count(), now);
                } else if (next.has_value()) {
                    on_event(*next, now);
                }
                return broadcast::RecvStatus::ok;  // go on after the lag
            case broadcast::RecvStatus::ok:
            case broadcast::RecvStatus::closed:
                return r.status;
            default:
                return broadcast::RecvStatus::empty;
        }
    }

    // After stop(): take what was sent before (bounded by half the stop timeout, in case
    // producers keep going), so a stopped publisher loses nothing that was sent before.
    void drain_on_stop() {
        const auto give_up = clock::now() + m_settings.stop_timeout / 2;
        while (clock::now() < give_up) {
            m_chunk.clear();
            const broadcast::DrainResult r = m_events.drain(m_chunk, chunk_size);
            for (const auto& event : m_chunk) {
                on_event(event, clock::time_point{});  // no timer any more: its reset is moot
            }
            if (r.status == broadcast::RecvStatus::lagged) {
                auto next = m_events.try_recv();  // reports the lag drain stopped before
                if (next.is_lagged()) {
                    // The Shutdown that follows makes the hub forget this instance anyway:
                    // count the loss, drop the moot pending batch, no re-announcement.
                    PublisherCounters::add(m_counters.lag_events, next.lagged_count());
                    PublisherCounters::add(m_counters.lag_reports, 1);
                    PublisherCounters::add(m_counters.events_dropped, m_batcher.discard(clock::time_point{}));
                } else if (next.has_value()) {
                    on_event(*next, clock::time_point{});
                }
            } else if (r.status != broadcast::RecvStatus::ok) {
                return;  // empty or closed
            }
        }
    }

    void on_event(const KvCacheEvent<H>& event, clock::time_point now) {
        PublisherCounters::add(m_counters.events_in, 1);
        m_batcher.push(event, now, sink());
    }

    // The subscription lost `missed` events, so the hub's view of this instance may be
    // wrong for good (a lost Remove is never repaired by later events). Recovery:
    //   1. drop the pending batch (it is superseded by what follows),
    //   2. snapshot the truth (taken *after* the lag was noticed),
    //   3. publish Shutdown (the hub forgets this instance), then the snapshot as Create
    //      batches sorted by position ascending,
    //   4. go on with the events still in the channel.
    // Why the result is right: the channel drops only its oldest events, so every event
    // after the resume point is delivered in send order. An event sent before the snapshot
    // is already reflected in it and replaying it is harmless (the hub's Create is a set
    // insert, Remove an erase); for each hash the last event sent wins, and the registry
    // sends a hash's Remove before the Create of its next registration. A hash with no
    // event after the resume point has the snapshot's state, which is the truth because its
    // registration changed no more. So once the worker has taken every event sent up to
    // some instant, the hub's set for this instance equals the announced live
    // registrations at that instant.
    void recover(std::uint64_t missed, clock::time_point now) {
        PublisherCounters::add(m_counters.lag_events, missed);
        PublisherCounters::add(m_counters.lag_reports, 1);
        PublisherCounters::add(m_counters.events_dropped, m_batcher.discard(now));
        if (!m_settings.recovery_snapshot) {
            return;
        }
        std::vector<H> live;
        try {
            live = m_settings.recovery_snapshot();
        } catch (...) {
            // Without the truth, a Shutdown would only make things worse: keep going.
            report("events publisher: recovery snapshot failed: " + describe(std::current_exception()));
            return;
        }
        std::stable_sort(live.begin(), live.end(), [](const H& a, const H& b) { return a.position() < b.position(); });
        PublisherCounters::add(m_counters.recoveries, 1);
        publish_shutdown();
        const std::size_t step = m_settings.batching.max_batch_size;
        for (std::size_t i = 0; i < live.size(); i += step) {
            const auto end = live.begin() + static_cast<std::ptrdiff_t>(std::min(live.size(), i + step));
            m_message.events.kind = BatchKind::create;
            m_message.events.hashes.assign(live.begin() + static_cast<std::ptrdiff_t>(i), end);
            if (publish_message()) {
                PublisherCounters::add(
                    m_counters.events_reannounced,
                    static_cast<std::uint64_t>(end - (live.begin() + static_cast<std::ptrdiff_t>(i))));
            }
        }
    }

    void publish_stream_batch(KvCacheEvents<H>& batch) {
        const auto n = static_cast<std::uint64_t>(batch.hashes.size());
        // Swap rather than copy: the batcher gets our previous vector back and reuses it.
        std::swap(m_message.events, batch);
        if (publish_message()) {
            PublisherCounters::add(m_counters.events_published, n);
        } else {
            PublisherCounters::add(m_counters.events_dropped, n);
        }
    }

    void publish_shutdown() {
        m_message.events.kind = BatchKind::shutdown;
        m_message.events.hashes.clear();
        (void)publish_message();
    }

    bool publish_message() {
        PublishResult result = PublishResult::success();
        try {
            m_buffer.clear();
            msgpack::encode(m_message, m_buffer);
            result = publisher_target(m_publisher).publish(m_settings.subject, std::span<const std::uint8_t>(m_buffer));
        } catch (...) {
            result = PublishResult::failure(describe(std::current_exception()));
        }
        if (result.ok()) {
            PublisherCounters::add(m_counters.batches_published, 1);
            PublisherCounters::add(m_counters.bytes_published, m_buffer.size());
            return true;
        }
        PublisherCounters::add(m_counters.publish_errors, 1);
        report("events publisher: publish of " + std::string(to_string(m_message.events.kind)) + " batch to '" +
               m_settings.subject + "' failed: " + result.error());
        return false;
    }

    void flush() {
        PublishResult result = PublishResult::success();
        try {
            result = publisher_target(m_publisher).flush();
        } catch (...) {
            result = PublishResult::failure(describe(std::current_exception()));
        }
        if (!result.ok()) {
            PublisherCounters::add(m_counters.flush_errors, 1);
            report("events publisher: flush failed: " + result.error());
        }
    }

    void report(const std::string& what) noexcept {
        if (m_settings.on_error) {
            try {
                m_settings.on_error(what);
            } catch (...) {  // a failing error callback must not take the worker down
            }
        }
    }

    static std::string describe(const std::exception_ptr& e) {
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& ex) {
            return ex.what();
        } catch (...) {
            return "unknown exception";
        }
    }

    EventSubscription<H> m_events;
    P m_publisher;
    const EventsPublisherSettings<H> m_settings;
    EventBatcher<H, clock> m_batcher;
    KvbmCacheEvents<H> m_message;          // the message being published; its vector ping-pongs with the batcher's
    std::vector<std::uint8_t> m_buffer;    // encoded bytes, reused
    std::vector<KvCacheEvent<H>> m_chunk;  // events taken from the channel at once, reused
    PublisherCounters m_counters;

    std::atomic<bool> m_stop{false};
    std::mutex m_done_mutex;
    std::condition_variable m_done_cv;
    bool m_done = false;
};

}  // namespace detail

/// Publishes the event stream of one instance (worker) through a transport `P`.
///
/// A background thread takes events from the subscription, batches them with the
/// reference's rules, encodes each batch as MessagePack (byte-identical to
/// `rmp_serde::to_vec`) and calls `publish(subject, bytes)`. Publish and flush failures are
/// counted (`metrics()`), reported to `settings.on_error`, and never stop the thread.
///
/// Ends when the input ends (every sender gone) or on `stop()`; either way it publishes
/// the pending batch, then `Shutdown` for its instance, then calls `flush()`. On `stop()`
/// it first takes the events already sent. The destructor stops too (the reference sends
/// no Shutdown when dropped).
///
/// Lag recovery: when the subscription reports lost events, it publishes `Shutdown`, then
/// re-announces `settings.recovery_snapshot()` as Create batches sorted by position, then
/// goes on. Guarantee: once the thread has taken every event sent up to an instant, the
/// published stream describes the announced live registrations at that instant (see
/// `detail::PublisherWorker::recover`). Between the lag and that instant the hub may hold
/// stale entries, never for longer.
///
/// `P` is a Publisher or a handle to one (PublisherHandle); the transport is used only
/// from the worker thread. Thread-safety: `metrics`, `finished` and `wait_for` may be
/// called from any thread; `stop` and the destructor from one.
template <PublisherHandle P, WireSequenceHash H = PositionalLineageHash>
class EventsPublisher {
public:
    using hash_type = H;
    using publisher_type = P;

    /// Starts the worker on `events`.
    EventsPublisher(EventSubscription<H> events, P publisher, InstanceId instance_id,
                    EventsPublisherSettings<H> settings = {})
        : m_worker(std::make_shared<detail::PublisherWorker<P, H>>(std::move(events), std::move(publisher), instance_id,
                                                                   std::move(settings))) {
        m_thread = std::thread([worker = m_worker] { worker->run(); });
    }

    /// Subscribes to `manager` and, unless `settings.recovery_snapshot` is set, recovers
    /// from lag with the live registrations of `registry` that the manager's policy allows.
    /// The publisher does not keep the registry alive.
    EventsPublisher(const EventsManager<H>& manager, const BlockRegistry<H>& registry, P publisher,
                    InstanceId instance_id, EventsPublisherSettings<H> settings = {})
        : EventsPublisher(manager.subscribe(), std::move(publisher), instance_id,
                          with_recovery(std::move(settings), manager, registry)) {}

    /// Subscribes to `manager` for a cache manager that announces its blocks directly
    /// (`EventsManager::announce`): unless `settings.recovery_snapshot` is set, resyncs from
    /// `manager.announced_snapshot()`. The publisher does not keep the channel open.
    EventsPublisher(const EventsManager<H>& manager, P publisher, InstanceId instance_id,
                    EventsPublisherSettings<H> settings = {})
        : EventsPublisher(manager.subscribe(), std::move(publisher), instance_id,
                          with_recovery(std::move(settings), manager)) {}

    EventsPublisher(const EventsPublisher&) = delete;
    EventsPublisher& operator=(const EventsPublisher&) = delete;

    /// Stops (bounded by `stop_timeout`); if the worker is stuck in the transport, it is
    /// left to finish on its own state.
    ~EventsPublisher() {
        (void)stop();
        if (m_thread.joinable()) {
            m_thread.detach();
        }
    }

    /// Asks the worker to stop and waits up to `stop_timeout` for it to publish the events
    /// already sent, the pending batch, Shutdown, and flush. Returns whether it finished.
    /// Idempotent.
    bool stop() {
        m_worker->request_stop();
        const bool finished = m_worker->wait_done(m_worker->settings().stop_timeout);
        if (finished && m_thread.joinable()) {
            m_thread.join();
        }
        return finished;
    }

    /// Waits up to `timeout` for the worker to end on its own (the input ended).
    template <class Rep, class Period>
    [[nodiscard]] bool wait_for(std::chrono::duration<Rep, Period> timeout) {
        return m_worker->wait_done(timeout);
    }

    /// Whether the worker has published its Shutdown and flushed.
    [[nodiscard]] bool finished() const { return m_worker->done(); }

    [[nodiscard]] EventsPublisherMetrics metrics() const noexcept { return m_worker->counters().read(); }
    [[nodiscard]] InstanceId instance_id() const noexcept { return m_worker->instance_id(); }
    [[nodiscard]] const std::string& subject() const noexcept { return m_worker->settings().subject; }

private:
    static EventsPublisherSettings<H> with_recovery(EventsPublisherSettings<H> settings,
                                                    const EventsManager<H>& manager, const BlockRegistry<H>& registry) {
        if (!settings.recovery_snapshot) {
            settings.recovery_snapshot = [snapshot = registry.snapshot_function(), policy = manager.policy(),
                                          announced = manager.announced_snapshot_function()] {
                auto live = snapshot();
                std::erase_if(live, [&](const H& h) { return !policy.should_emit(h); });
                auto direct = announced();
                live.insert(live.end(), direct.begin(), direct.end());
                return live;
            };
        }
        return settings;
    }
    static EventsPublisherSettings<H> with_recovery(EventsPublisherSettings<H> settings,
                                                    const EventsManager<H>& manager) {
        if (!settings.recovery_snapshot) {
            settings.recovery_snapshot = manager.announced_snapshot_function();
        }
        return settings;
    }

    std::shared_ptr<detail::PublisherWorker<P, H>> m_worker;
    std::thread m_thread;
};

KVBM_NAMESPACE_END
