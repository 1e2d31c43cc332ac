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
#include <kvbm/metrics.hpp>
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
    /// Batching rules (10 ms window, 1024 events by default). `batching.mode =
    /// BatchingMode::eager` also publishes the pending batch as soon as the subscription
    /// runs dry (at most once per `batching.eager_spacing`), instead of holding it until the
    /// window ends: lower latency when quiet, the same batches under load.
    BatchingConfig batching{};
    /// Resync source: returns every hash whose `Create` the stream announced and whose
    /// `Remove` it has not, *now* (the live registrations the policy allows). Called on the
    /// worker thread for each resync attempt. Empty function: nothing is resynced (lag and
    /// failures are only counted, the reference's behaviour) and the hub's view may stay
    /// wrong. The constructors taking a manager fill it in.
    std::function<std::vector<H>()> recovery_snapshot;
    /// How long `stop()` and the destructor wait for the worker to finish.
    std::chrono::milliseconds stop_timeout = std::chrono::seconds(5);
    /// Called on the worker thread with a description of each publish or flush failure
    /// (which are counted and never fatal). May be empty.
    std::function<void(std::string_view)> on_error;
    /// Backoff between resync attempts while they keep failing, and between resyncs asked
    /// for in quick succession (so recovery cannot storm): the first resync after a quiet
    /// period of `resync_backoff_max` starts at once, each later one waits twice as long as
    /// the one before, from `resync_backoff_min` up to `resync_backoff_max`.
    std::chrono::milliseconds resync_backoff_min{10};
    std::chrono::milliseconds resync_backoff_max{500};
};

/// Counters of an EventsPublisher, read with `metrics()` (or `for_each_metric`). After the
/// worker has finished, `events_in == events_published + events_dropped`.
struct EventsPublisherMetrics {
    std::uint64_t events_in = 0;           ///< events taken from the subscription
    std::uint64_t events_published = 0;    ///< of those, in batches that published successfully
    std::uint64_t events_dropped = 0;      ///< of those, in failed batches or superseded by a resync
    std::uint64_t events_reannounced = 0;  ///< hashes published by resyncs
    std::uint64_t batches_published = 0;   ///< successful `publish` calls (batches, resyncs, Shutdown)
    std::uint64_t bytes_published = 0;     ///< bytes in those
    std::uint64_t publish_errors = 0;      ///< failed `publish` calls
    std::uint64_t flush_errors = 0;        ///< failed `flush` calls
    std::uint64_t lag_events = 0;          ///< events the subscription reported missed
    std::uint64_t lag_reports = 0;         ///< lagged results the subscription returned
    std::uint64_t recoveries = 0;          ///< resyncs completed (Shutdown + every re-announce batch published)
    std::uint64_t resync_failures = 0;     ///< resync attempts that failed (publish or snapshot) and were retried
    std::uint64_t resyncs_for_lag = 0;     ///< resyncs asked for by a channel lag
    std::uint64_t resyncs_for_publish_failure = 0;  ///< ... by a failed stream batch publish
    std::uint64_t resyncs_for_hub_connect = 0;      ///< ... by the transport (a hub (re)connected)
    std::uint64_t resync_pending = 0;               ///< 1 while a resync waits for its (next) attempt
};

/// What `EventsPublisher::stop()` achieved. True (`ok()`) only when the worker finished,
/// the final Shutdown was accepted by the transport and the transport's flush succeeded
/// after it, i.e. (for a transport whose flush waits for its queue, as ZmqPublisher's does)
/// the Shutdown has left the process.
struct [[nodiscard]] StopResult {
    bool finished = false;       ///< the worker ended within `stop_timeout`
    bool shutdown_sent = false;  ///< the final Shutdown's publish succeeded
    bool flushed = false;        ///< and the flush after it succeeded
    [[nodiscard]] bool ok() const noexcept { return finished && shutdown_sent && flushed; }
    explicit operator bool() const noexcept { return ok(); }
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

/// Any transport handle behind one type, so that a class can keep an `EventsPublisher<>`
/// (whose default transport type this is) as a member without naming its transport:
///
///     kvbm::EventsPublisher<> m_events{manager, std::make_shared<kvbm::ZmqPublisher>(ep), id};
///
/// It holds the handle it was made from (one allocation, when made) and forwards `publish`,
/// `flush` and, when the transport has it (ResyncSignalling), `take_resync_request`
/// (otherwise that returns false). One indirect call per batch.
///
/// Lifetime rule: an AnyPublisher made from a value, `std::shared_ptr` or `std::unique_ptr`
/// owns (or shares) the transport, so it stays valid in a worker that outlives its
/// EventsPublisher (the destructor detaches a worker stuck in the transport). One made from
/// `T*` or `std::ref(t)` borrows: `t` must outlive the worker, i.e. it may be destroyed only
/// after `stop()` returned `finished` (or `finished()` is true). Never let a detached worker
/// outlive a borrowed transport; when in doubt, use a shared_ptr.
class AnyPublisher {
public:
    template <class P>
    requires(!std::same_as<std::remove_cvref_t<P>, AnyPublisher> && PublisherHandle<std::remove_cvref_t<P>>)
        AnyPublisher(P&& handle)  // NOLINT(google-explicit-constructor): any transport handle *is* one
        : m_state(std::make_shared<std::remove_cvref_t<P>>(std::forward<P>(handle))),
          m_vtable(&vtable_for<std::remove_cvref_t<P>>) {}

    PublishResult publish(std::string_view subject, std::span<const std::uint8_t> bytes) {
        return m_vtable->publish(m_state.get(), subject, bytes);
    }
    PublishResult flush() { return m_vtable->flush(m_state.get()); }
    /// The transport's resync request (false if it cannot signal one).
    bool take_resync_request() { return m_vtable->take_resync_request(m_state.get()); }

private:
    struct VTable {
        PublishResult (*publish)(void*, std::string_view, std::span<const std::uint8_t>);
        PublishResult (*flush)(void*);
        bool (*take_resync_request)(void*);
    };
    template <class P>
    static constexpr VTable vtable_for{
        [](void* p, std::string_view subject, std::span<const std::uint8_t> bytes) {
            return detail::publisher_target(*static_cast<P*>(p)).publish(subject, bytes);
        },
        [](void* p) { return detail::publisher_target(*static_cast<P*>(p)).flush(); },
        [](void* p) {
            auto& target = detail::publisher_target(*static_cast<P*>(p));
            if constexpr (ResyncSignalling<std::remove_reference_t<decltype(target)>>) {
                return target.take_resync_request();
            } else {
                (void)target;
                return false;
            }
        },
    };

    std::shared_ptr<void> m_state;
    const VTable* m_vtable;
};

namespace detail {

// Written by the worker thread only, read by anyone: single-writer counters, stored with
// release and loaded with acquire (plain moves on x86), so a reader that sees a count sees
// every earlier change, e.g. `resync_pending` set before the events it made the worker skip.
struct PublisherCounters {
    std::atomic<std::uint64_t> events_in{0}, events_published{0}, events_dropped{0}, events_reannounced{0},
        batches_published{0}, bytes_published{0}, publish_errors{0}, flush_errors{0}, lag_events{0}, lag_reports{0},
        recoveries{0}, resync_failures{0}, resyncs_for_lag{0}, resyncs_for_publish_failure{0},
        resyncs_for_hub_connect{0}, resync_pending{0};

    static void add(std::atomic<std::uint64_t>& c, std::uint64_t n) noexcept {
        c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_release);
    }
    [[nodiscard]] EventsPublisherMetrics read() const noexcept {
        const auto r = [](const std::atomic<std::uint64_t>& c) { return c.load(std::memory_order_acquire); };
        return {r(events_in),
                r(events_published),
                r(events_dropped),
                r(events_reannounced),
                r(batches_published),
                r(bytes_published),
                r(publish_errors),
                r(flush_errors),
                r(lag_events),
                r(lag_reports),
                r(recoveries),
                r(resync_failures),
                r(resyncs_for_lag),
                r(resyncs_for_publish_failure),
                r(resyncs_for_hub_connect),
                r(resync_pending)};
    }
};

enum class ResyncReason : std::uint8_t { lag, publish_failure, hub_connect };

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
    // The outcome so far (finished only once the worker is done).
    [[nodiscard]] StopResult result() {
        std::lock_guard lock(m_done_mutex);
        return StopResult{m_done, m_shutdown_sent, m_flushed};
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
        bool shutdown_sent = false;
        bool flushed = false;
        try {
            if (m_resync_pending) {
                PublisherCounters::add(m_counters.events_dropped, m_batcher.discard(clock::now()));
            } else {
                m_batcher.finish(sink());
            }
            // A pending resync is moot: the Shutdown makes the hub forget this instance.
            set_resync_pending(false);
            shutdown_sent = publish_final_shutdown();
            flushed = flush() && shutdown_sent;
        } catch (...) {
            report("events publisher: unexpected exception while stopping: " + describe(std::current_exception()));
        }
        {
            std::lock_guard lock(m_done_mutex);
            m_shutdown_sent = shutdown_sent;
            m_flushed = flushed;
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
    // Attempts at the final Shutdown while the transport refuses it (spaced by the backoff,
    // within the stop deadline).
    static constexpr int shutdown_attempts = 4;

    [[nodiscard]] bool stop_requested() const noexcept { return m_stop.load(std::memory_order_acquire); }

    auto sink() {
        return [this](KvCacheEvents<H>& batch) { publish_stream_batch(batch); };
    }

    // Runs until the input ends (returns true) or a stop is requested (returns false).
    bool consume() {
        while (!stop_requested()) {
            auto now = clock::now();
            poll_transport(now);
            if (m_resync_pending && now >= m_resync_due) {
                resync(now);
                continue;
            }
            m_batcher.expire(now, sink());
            settle(now);
            if (stop_requested()) {
                break;  // a publish may have taken long: drain_on_stop takes over
            }
            auto until = m_batcher.deadline();
            if (m_resync_pending) {
                until = std::min(until, m_resync_due);
            }
            const auto wait = std::clamp<clock::duration>(until - now, clock::duration::zero(), max_idle_wait);
            auto r = m_events.recv_for(wait);
            if (r.has_value()) {
                now = clock::now();
                on_event(*r, now);
                // Biased towards input, like the reference's `select! { biased; ... }`: take
                // what is ready before looking at the timer again, a chunk at a time, bounded
                // so a flood cannot starve the timer or the stop flag for long. A publish that
                // failed inside the chunk before asks for a resync due at once: the clock is
                // read afresh, so no event is taken (and skipped) ahead of that resync.
                for (int chunk = 0; chunk < max_chunks_per_wake && !resync_due(clock::now()) && !stop_requested();
                     ++chunk) {
                    const auto status = take_ready(now);
                    if (status == broadcast::RecvStatus::closed) {
                        return true;
                    }
                    if (status != broadcast::RecvStatus::ok) {
                        // Nothing more ready: BatchingMode::eager publishes now.
                        m_batcher.idle(now, sink());
                        break;
                    }
                }
            } else if (r.is_lagged()) {
                on_lag(r.lagged_count(), clock::now());
            } else if (r.is_closed()) {
                return true;
            }
        }
        return false;
    }

    // A resync is to be attempted now: take no more events before it (they would only be
    // skipped; after it they are published).
    [[nodiscard]] bool resync_due(clock::time_point now) const noexcept {
        return m_resync_pending && now >= m_resync_due;
    }

    // Takes one chunk of ready events. Returns ok when there may be more, empty when there
    // are none, closed at the end of input. A lag met on the way is handled from here.
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
                    on_lag(next.lagged_count(), now);
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
                    // count the loss, drop the moot pending batch, no resync.
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
        if (m_resync_pending) {
            // Sent before the resync's snapshot will be taken: the snapshot reflects it.
            PublisherCounters::add(m_counters.events_dropped, 1);
            return;
        }
        m_batcher.push(event, now, sink());
        settle(now);
    }

    void on_lag(std::uint64_t missed, clock::time_point now) {
        PublisherCounters::add(m_counters.lag_events, missed);
        PublisherCounters::add(m_counters.lag_reports, 1);
        PublisherCounters::add(m_counters.events_dropped, m_batcher.discard(now));
        request_resync(ResyncReason::lag, now);
        settle(now);
    }

    // A transport that sees hubs (re)connect asks for a resync: a new hub knows nothing.
    void poll_transport(clock::time_point now) {
        auto& target = publisher_target(m_publisher);
        if constexpr (ResyncSignalling<std::remove_reference_t<decltype(target)>>) {
            bool asked = false;
            try {
                asked = target.take_resync_request();
            } catch (...) {
                report("events publisher: take_resync_request failed: " + describe(std::current_exception()));
            }
            if (asked) {
                request_resync(ResyncReason::hub_connect, now);
                settle(now);
            }
        } else {
            (void)target;
            (void)now;
        }
    }

    // The hub may have missed something. Every cause leads here, and to one resync.
    void request_resync(ResyncReason reason, clock::time_point now) {
        switch (reason) {
            case ResyncReason::lag:
                PublisherCounters::add(m_counters.resyncs_for_lag, 1);
                break;
            case ResyncReason::publish_failure:
                PublisherCounters::add(m_counters.resyncs_for_publish_failure, 1);
                break;
            case ResyncReason::hub_connect:
                PublisherCounters::add(m_counters.resyncs_for_hub_connect, 1);
                break;
        }
        if (!m_settings.recovery_snapshot || m_resync_pending) {
            return;  // nothing to resync from (counted only), or one is coming already
        }
        // What the batcher holds is superseded by the resync (its events were sent before
        // the snapshot will be taken) and must not be published after it: a later event of
        // the same hash may be skipped while the resync is pending. settle() discards it.
        m_discard_batcher = true;
        if (m_resync_streak > 0 && now - m_last_resync >= m_settings.resync_backoff_max) {
            m_resync_streak = 0;  // quiet for long enough: no storm to damp
        }
        m_resync_due = now + backoff(m_resync_streak);
        set_resync_pending(true);
    }

    // Discards the batcher's events after a resync was asked for; called outside the
    // batcher's own calls (a failed publish asks from inside its sink).
    void settle(clock::time_point now) {
        if (m_discard_batcher) {
            m_discard_batcher = false;
            PublisherCounters::add(m_counters.events_dropped, m_batcher.discard(now));
        }
    }

    [[nodiscard]] clock::duration backoff(int streak) const {
        if (streak <= 0) {
            return clock::duration::zero();
        }
        auto d = std::chrono::duration_cast<clock::duration>(m_settings.resync_backoff_min);
        const auto cap = std::chrono::duration_cast<clock::duration>(m_settings.resync_backoff_max);
        for (int i = 1; i < streak && d < cap; ++i) {
            d *= 2;
        }
        return std::min(d, cap);
    }

    void set_resync_pending(bool pending) noexcept {
        m_resync_pending = pending;
        m_counters.resync_pending.store(pending ? 1 : 0, std::memory_order_release);
    }

    // One resync attempt: Shutdown for the instance, then the live set (taken now, from the
    // registry/manager, never from the channel) as Create batches sorted by position.
    //
    // Why the hub ends right: the events this worker took before the attempt were all sent
    // before the snapshot is taken, so the snapshot reflects them (the ones it skipped while
    // the resync was pending, and those a lag lost). Every event sent after the snapshot is
    // still ahead in the channel (a lag found later asks for another resync), and is
    // published after the snapshot. An event sent before the snapshot but taken after it is
    // replayed harmlessly: per hash, events reach the channel in the order of the live
    // set's changes (the registry sends a hash's Remove before the Create of its next
    // registration; `announce` sends under a per-shard lock), the hub's Create is a set
    // insert and Remove an erase, so the last event of a hash wins and equals the truth,
    // and a hash with no later event keeps the snapshot's state, which is still the truth.
    // Hence once the transport has delivered everything published up to the moment the
    // worker has taken every event sent up to some instant, the hub's set for this instance
    // equals the announced live registrations at that instant.
    //
    // Any failure (snapshot throws, Shutdown or a Create batch refused) leaves the resync
    // pending and retries after an exponentially growing backoff.
    void resync(clock::time_point now) {
        ++m_resync_streak;
        std::vector<H> live;
        try {
            live = m_settings.recovery_snapshot();
        } catch (...) {
            report("events publisher: resync snapshot failed: " + describe(std::current_exception()));
            resync_failed(now);
            return;
        }
        std::sort(live.begin(), live.end(), [](const H& a, const H& b) {
            return a.position() != b.position() ? a.position() < b.position() : a.raw() < b.raw();
        });
        live.erase(std::unique(live.begin(), live.end()), live.end());
        m_message.events.kind = BatchKind::shutdown;
        m_message.events.hashes.clear();
        if (!publish_message()) {
            resync_failed(clock::now());
            return;
        }
        const std::size_t step = m_settings.batching.max_batch_size;
        for (std::size_t i = 0; i < live.size(); i += step) {
            const auto first = live.begin() + static_cast<std::ptrdiff_t>(i);
            const auto last = live.begin() + static_cast<std::ptrdiff_t>(std::min(live.size(), i + step));
            m_message.events.kind = BatchKind::create;
            m_message.events.hashes.assign(first, last);
            if (!publish_message()) {
                resync_failed(clock::now());
                return;
            }
            PublisherCounters::add(m_counters.events_reannounced, static_cast<std::uint64_t>(last - first));
        }
        PublisherCounters::add(m_counters.recoveries, 1);
        m_last_resync = clock::now();
        set_resync_pending(false);
    }

    void resync_failed(clock::time_point now) {
        PublisherCounters::add(m_counters.resync_failures, 1);
        m_resync_due = now + backoff(m_resync_streak);
        m_last_resync = now;
    }

    void publish_stream_batch(KvCacheEvents<H>& batch) {
        const auto n = static_cast<std::uint64_t>(batch.hashes.size());
        // Swap rather than copy: the batcher gets our previous vector back and reuses it.
        std::swap(m_message.events, batch);
        if (publish_message()) {
            PublisherCounters::add(m_counters.events_published, n);
        } else {
            PublisherCounters::add(m_counters.events_dropped, n);
            // Called from inside the batcher: settle() discards what it still holds.
            request_resync(ResyncReason::publish_failure, clock::now());
        }
    }

    // The final Shutdown: retried a few times (spaced by the backoff, within the stop
    // deadline) while the transport refuses it.
    bool publish_final_shutdown() {
        const auto deadline = clock::now() + m_settings.stop_timeout / 2;
        auto pause = std::chrono::duration_cast<clock::duration>(m_settings.resync_backoff_min);
        for (int attempt = 0;; ++attempt) {
            m_message.events.kind = BatchKind::shutdown;
            m_message.events.hashes.clear();
            if (publish_message()) {
                return true;
            }
            if (attempt + 1 >= shutdown_attempts || clock::now() + pause >= deadline) {
                return false;
            }
            std::this_thread::sleep_for(pause);
            pause *= 2;
        }
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

    bool flush() {
        PublishResult result = PublishResult::success();
        try {
            result = publisher_target(m_publisher).flush();
        } catch (...) {
            result = PublishResult::failure(describe(std::current_exception()));
        }
        if (!result.ok()) {
            PublisherCounters::add(m_counters.flush_errors, 1);
            report("events publisher: flush failed: " + result.error());
            return false;
        }
        return true;
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

    // Resync state (worker thread only).
    bool m_resync_pending = false;
    clock::time_point m_resync_due{};
    clock::time_point m_last_resync{};
    int m_resync_streak = 0;  // resyncs (attempts) in quick succession: the backoff's exponent
    bool m_discard_batcher = false;

    std::atomic<bool> m_stop{false};
    std::mutex m_done_mutex;
    std::condition_variable m_done_cv;
    bool m_done = false;
    bool m_shutdown_sent = false;
    bool m_flushed = false;
};

}  // namespace detail

/// Publishes the event stream of one instance (worker) through a transport `P`.
///
/// A background thread takes events from the subscription, batches them with the
/// reference's rules, encodes each batch as MessagePack (byte-identical to
/// `rmp_serde::to_vec`) and calls `publish(subject, bytes)`. Publish and flush failures are
/// counted (`metrics()`, `for_each_metric`), reported to `settings.on_error`, and never stop
/// the thread.
///
/// **Resync** is the one answer to "the hub may have missed something": a failed publish (a
/// stream batch, or a batch of a resync itself), a lag of the subscription, and a hub
/// (re)connection that the transport reports (`take_resync_request()`, the optional
/// ResyncSignalling concept; ZmqPublisher sees a new or returning subscriber) all lead to
/// the same resync: `Shutdown` for the instance, then `settings.recovery_snapshot()` (the
/// live registrations, taken from the registry/manager at that moment, never from the
/// channel) as Create batches sorted by position. Until it is done, events taken from the
/// channel are skipped (the snapshot covers them), so a fast producer cannot make a resync
/// chase its tail. While the transport keeps failing, attempts are spaced by a bounded
/// exponential backoff (`resync_backoff_min` .. `resync_backoff_max`); resyncs asked for in
/// quick succession are spaced the same way, so recovery cannot storm.
///
/// **Guarantee.** Let t be any instant after which no resync is asked for. Once the worker
/// has taken every event sent up to t, and the transport has delivered everything the
/// worker published up to then, the hub's set for this instance equals the live
/// registrations (and announcements) the policy allows at t. In short: *once the transport
/// has delivered everything since the last resync, the hub's view of this instance equals
/// its live registrations.* Between a fault and that point the hub may hold stale entries or
/// miss live ones, never for longer. (Proof sketch at `detail::PublisherWorker::resync`.)
/// This needs `recovery_snapshot`; without one, faults are only counted.
///
/// Ends when the input ends (every sender gone) or on `stop()`; either way it publishes the
/// pending batch, then `Shutdown` for its instance (retried a few times while refused), then
/// calls `flush()`. On `stop()` it first takes the events already sent. The destructor
/// stops too (the reference sends no Shutdown when dropped).
///
/// `P` is a Publisher or a handle to one (PublisherHandle). The default, `AnyPublisher`,
/// takes any of them, so a member can be declared `kvbm::EventsPublisher<> m_events;`. The
/// transport is used only from the worker thread. Lifetime: the worker may outlive this
/// object (the destructor detaches a worker stuck in the transport), so a *borrowed*
/// transport (`T*`, `std::ref`) must live until `finished()`; owned and shared ones are safe.
/// Thread-safety: `metrics`, `for_each_metric`, `finished` and `wait_for` may be called from
/// any thread; `stop` and the destructor from one.
template <PublisherHandle P = AnyPublisher, WireSequenceHash H = PositionalLineageHash>
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
    /// already sent, the pending batch, Shutdown, and flush. Returns what it achieved: `ok()`
    /// only when the worker finished, the Shutdown was accepted and the flush after it
    /// succeeded (with ZmqPublisher: the Shutdown has left the process). Idempotent: later
    /// calls return the same outcome.
    /// Asks the worker to stop and returns at once (e.g. to stop many publishers in
    /// parallel before waiting on each with `stop()`).
    void request_stop() noexcept { m_worker->request_stop(); }

    StopResult stop() {
        m_worker->request_stop();
        const bool finished = m_worker->wait_done(m_worker->settings().stop_timeout);
        if (finished && m_thread.joinable()) {
            m_thread.join();
        }
        return m_worker->result();
    }

    /// Waits up to `timeout` for the worker to end on its own (the input ended).
    template <class Rep, class Period>
    [[nodiscard]] bool wait_for(std::chrono::duration<Rep, Period> timeout) {
        return m_worker->wait_done(timeout);
    }

    /// Whether the worker has published its Shutdown and flushed.
    [[nodiscard]] bool finished() const { return m_worker->done(); }

    [[nodiscard]] EventsPublisherMetrics metrics() const noexcept { return m_worker->counters().read(); }

    /// The counters as `kvbm_publisher_*` series (see <kvbm/metrics.hpp>).
    template <class Visitor>
    void for_each_metric(Visitor&& visit) const {
        using detail::visit_metric;
        const EventsPublisherMetrics m = metrics();
        const auto c = MetricKind::counter;
        const auto d = [](std::uint64_t v) { return static_cast<double>(v); };
        visit_metric(visit, "kvbm_publisher_events_total", "Events taken from the channel, by outcome", c,
                     {{"outcome", "published"}}, d(m.events_published));
        visit_metric(visit, "kvbm_publisher_events_total", "Events taken from the channel, by outcome", c,
                     {{"outcome", "dropped"}}, d(m.events_dropped));
        visit_metric(visit, "kvbm_publisher_events_in_total", "Events taken from the channel", c, d(m.events_in));
        visit_metric(visit, "kvbm_publisher_events_reannounced_total", "Hashes re-announced by resyncs", c,
                     d(m.events_reannounced));
        visit_metric(visit, "kvbm_publisher_batches_total", "Batches the transport accepted", c,
                     d(m.batches_published));
        visit_metric(visit, "kvbm_publisher_bytes_total", "Bytes in the batches the transport accepted", c,
                     d(m.bytes_published));
        visit_metric(visit, "kvbm_publisher_publish_failures_total", "Batches the transport refused", c,
                     d(m.publish_errors));
        visit_metric(visit, "kvbm_publisher_flush_failures_total", "Failed transport flushes", c, d(m.flush_errors));
        visit_metric(visit, "kvbm_publisher_lagged_events_total", "Events the subscription lost to lag", c,
                     d(m.lag_events));
        visit_metric(visit, "kvbm_publisher_lag_reports_total", "Lag reports from the subscription", c,
                     d(m.lag_reports));
        visit_metric(visit, "kvbm_publisher_resyncs_total", "Resyncs completed (Shutdown and the live set)", c,
                     d(m.recoveries));
        visit_metric(visit, "kvbm_publisher_resync_failures_total", "Resync attempts that failed and were retried", c,
                     d(m.resync_failures));
        constexpr std::string_view requests = "Resyncs asked for, by reason";
        visit_metric(visit, "kvbm_publisher_resync_requests_total", requests, c, {{"reason", "lag"}},
                     d(m.resyncs_for_lag));
        visit_metric(visit, "kvbm_publisher_resync_requests_total", requests, c, {{"reason", "publish_failure"}},
                     d(m.resyncs_for_publish_failure));
        visit_metric(visit, "kvbm_publisher_resync_requests_total", requests, c, {{"reason", "hub_connect"}},
                     d(m.resyncs_for_hub_connect));
        visit_metric(visit, "kvbm_publisher_resync_pending", "1 while a resync waits for its next attempt",
                     MetricKind::gauge, d(m.resync_pending));
    }
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
