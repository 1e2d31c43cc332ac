/// @file kvbm/manager.hpp
/// EventsManager: turns new block registrations into `Create` events on a broadcast
/// channel, and attaches to each registration the `EventReleaseHandle` that sends its
/// `Remove` once the registration ends. Subscribers read the stream through an
/// `EventSubscription`, which also counts the lag they see.
#pragma once

#include <kvbm/broadcast.hpp>
#include <kvbm/config.hpp>
#include <kvbm/events.hpp>
#include <kvbm/hash.hpp>
#include <kvbm/policy.hpp>
#include <kvbm/registry.hpp>
#include <kvbm/release.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <utility>

KVBM_NAMESPACE_BEGIN

template <SequenceHash H>
class EventsManager;

namespace detail {
struct LagCounters {
    std::atomic<std::uint64_t> events{0};   // values missed, summed over subscribers
    std::atomic<std::uint64_t> reports{0};  // lagged results seen
};
}  // namespace detail

/// One subscriber's view of the event stream: a broadcast receiver that reports every
/// `lagged{n}` it returns to the manager's lag counters. Move-only, single owner (like the
/// receiver). The results are the receiver's, unchanged.
template <SequenceHash H = PositionalLineageHash>
class EventSubscription {
public:
    using event_type = KvCacheEvent<H>;
    using receiver_type = broadcast::Receiver<event_type>;
    using result_type = broadcast::RecvResult<event_type>;

    /// A subscription whose lag nobody counts.
    explicit EventSubscription(receiver_type receiver)
        : m_receiver(std::move(receiver)), m_lag(std::make_shared<detail::LagCounters>()) {}

    /// Waits for the next event (or lag, or the channel's end).
    [[nodiscard]] result_type recv() { return count(m_receiver.recv()); }
    /// Waits at most `timeout`; `timeout` status when nothing came.
    template <class Rep, class Period>
    [[nodiscard]] result_type recv_for(std::chrono::duration<Rep, Period> timeout) {
        return count(m_receiver.recv_for(timeout));
    }
    /// Never waits; `empty` status when nothing is ready.
    [[nodiscard]] result_type try_recv() { return count(m_receiver.try_recv()); }
    /// Appends up to `max` ready events to `out` without waiting; stops at the first empty,
    /// closed or lagged outcome. It stops *before* a lag: the next try_recv/recv reports
    /// (and this subscription counts) it.
    template <class Container>
    broadcast::DrainResult drain(Container& out, std::size_t max = std::numeric_limits<std::size_t>::max()) {
        return m_receiver.drain(out, max);
    }

    /// The underlying receiver (lag seen through it directly is not counted).
    [[nodiscard]] receiver_type& receiver() noexcept { return m_receiver; }

private:
    template <SequenceHash>
    friend class EventsManager;
    EventSubscription(receiver_type receiver, std::shared_ptr<detail::LagCounters> lag)
        : m_receiver(std::move(receiver)), m_lag(std::move(lag)) {}

    result_type count(result_type r) {
        if (r.is_lagged()) {
            count_lag(r.lagged_count());
        }
        return r;
    }
    void count_lag(std::uint64_t missed) noexcept {
        m_lag->events.fetch_add(missed, std::memory_order_relaxed);
        m_lag->reports.fetch_add(1, std::memory_order_relaxed);
    }

    receiver_type m_receiver;
    std::shared_ptr<detail::LagCounters> m_lag;
};

/// Settings of an EventsManager (Rust: `EventsManagerSettings`).
template <SequenceHash H = PositionalLineageHash>
struct EventsManagerSettings {
    /// Which registrations emit events. Default: AllEventsPolicy.
    AnyEmissionPolicy<H> policy{};
    /// Capacity of the broadcast channel (rounded up to a power of two by the channel).
    /// A subscriber more than this many events behind loses the oldest ones. Default 1024.
    std::size_t channel_capacity = 1024;
};

/// Emits `Create(hash)` for each new registration the policy allows and attaches an
/// `EventReleaseHandle`, so that `Remove(hash)` is sent once the registration's last
/// handle is gone (after the hash has left the registry). The channel closes only when the
/// manager and every outstanding release handle are gone.
///
/// Connect it to a registry with `BlockRegistry<H>(manager_shared_ptr)` (the registry
/// then calls `on_block_registered` for every new registration), or call
/// `on_block_registered` yourself for each new registration.
///
/// Thread-safe: every member may be called concurrently. Not copyable or movable (the
/// registry keeps it by shared_ptr).
template <SequenceHash H = PositionalLineageHash>
class EventsManager {
public:
    using hash_type = H;
    using event_type = KvCacheEvent<H>;

    /// Throws std::invalid_argument if `settings.channel_capacity` is 0.
    explicit EventsManager(EventsManagerSettings<H> settings = {})
        : m_policy(std::move(settings.policy)),
          m_sender(broadcast::channel<event_type>(settings.channel_capacity).first),
          m_lag(std::make_shared<detail::LagCounters>()) {}

    EventsManager(const EventsManager&) = delete;
    EventsManager& operator=(const EventsManager&) = delete;

    /// A subscription to every event sent from now on.
    [[nodiscard]] EventSubscription<H> subscribe() const { return EventSubscription<H>(m_sender.subscribe(), m_lag); }

    /// Tells the manager about a *new* registration. If the policy allows, sends
    /// `Create(hash)` and attaches a release handle (replacing, and so releasing, any
    /// previous release handle of that registration). Returns whether it emitted.
    /// Sending with no subscriber is not an error: the event is simply not seen.
    bool on_block_registered(const BlockRegistrationHandle<H>& handle) const {
        const H& hash = handle.hash();
        if (!m_policy.should_emit(hash)) {
            return false;
        }
        // A sender copy per registration: it sends the Create here and then lives in the
        // release handle, so each thread sends through its own Sender object.
        auto sender = m_sender;
        (void)sender.send(event_type::create(hash));
        handle.attach_unique(EventReleaseHandle<H>(hash, std::move(sender)));
        return true;
    }

    [[nodiscard]] const AnyEmissionPolicy<H>& policy() const noexcept { return m_policy; }
    [[nodiscard]] std::size_t channel_capacity() const noexcept { return m_sender.capacity(); }
    [[nodiscard]] std::size_t subscriber_count() const noexcept { return m_sender.receiver_count(); }

    /// Events that subscribers from `subscribe()` missed because they fell more than the
    /// channel's capacity behind, summed over subscribers.
    [[nodiscard]] std::uint64_t lagged_events() const noexcept { return m_lag->events.load(std::memory_order_relaxed); }
    /// How many times such a subscriber was told it lagged.
    [[nodiscard]] std::uint64_t lag_reports() const noexcept { return m_lag->reports.load(std::memory_order_relaxed); }

private:
    AnyEmissionPolicy<H> m_policy;
    broadcast::Sender<event_type> m_sender;
    std::shared_ptr<detail::LagCounters> m_lag;
};

KVBM_NAMESPACE_END
