/// @file kvbm/manager.hpp
/// EventsManager: turns new block registrations into `Create` events on a broadcast
/// channel, and attaches to each registration the `EventReleaseHandle` that sends its
/// `Remove` once the registration ends. Subscribers read the stream through an
/// `EventSubscription`, which also counts the lag they see.
#pragma once

#include <kvbm/broadcast.hpp>
#include <kvbm/config.hpp>
#include <kvbm/detail/announce_core.hpp>
#include <kvbm/events.hpp>
#include <kvbm/hash.hpp>
#include <kvbm/metrics.hpp>
#include <kvbm/policy.hpp>
#include <kvbm/registry.hpp>
#include <kvbm/release.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

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

/// What a cache manager that owns its block table keeps in each block (from
/// `EventsManager::announce`): while it lives, the hub may list the block; destroying it (or
/// `release()`, or assigning over it) tells the hub the block is gone. Move-only; a
/// default-constructed or moved-from one, or one the policy declined, is empty and sends
/// nothing. Two pointers and the hash; making, moving and destroying one never allocates.
///
/// Thread safety: one object is used by one thread at a time; different objects may be
/// created and destroyed concurrently from any threads. It keeps the manager's channel open
/// (subscribers see `closed` only once the manager and every live AnnouncedBlock are gone),
/// so it may outlive the manager.
template <SequenceHash H = PositionalLineageHash>
class AnnouncedBlock {
public:
    using hash_type = H;

    AnnouncedBlock() noexcept = default;
    AnnouncedBlock(AnnouncedBlock&& other) noexcept : m_core(std::move(other.m_core)), m_hash(other.m_hash) {}
    /// Releases the block this one held, then takes over `other`'s.
    AnnouncedBlock& operator=(AnnouncedBlock&& other) noexcept {
        if (this != &other) {
            release();
            m_core = std::move(other.m_core);
            m_hash = other.m_hash;
        }
        return *this;
    }
    AnnouncedBlock(const AnnouncedBlock&) = delete;
    AnnouncedBlock& operator=(const AnnouncedBlock&) = delete;
    ~AnnouncedBlock() { release(); }

    /// Whether this holds a live announcement (false when empty or released).
    [[nodiscard]] bool announced() const noexcept { return m_core != nullptr; }
    explicit operator bool() const noexcept { return announced(); }
    /// The announced hash (meaningless when empty).
    [[nodiscard]] const H& hash() const noexcept { return m_hash; }

    /// Ends the announcement now (the last live one of its hash sends `Remove`); then empty.
    void release() noexcept {
        if (m_core) {
            m_core->release(m_hash);
            m_core.reset();
        }
    }

private:
    template <SequenceHash>
    friend class EventsManager;
    AnnouncedBlock(std::shared_ptr<detail::AnnounceCore<H>> core, const H& hash) noexcept
        : m_core(std::move(core)), m_hash(hash) {}

    std::shared_ptr<detail::AnnounceCore<H>> m_core;
    H m_hash{};
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
/// Two ways in:
/// - **Cache managers that own their block table** (TensorRT-LLM style) call `announce(hash)`
///   when a block becomes reusable and keep the returned `AnnouncedBlock` in their block
///   object; destroying it sends the Remove. No registry, no allocation per block.
/// - **Through a registry**: `BlockRegistry<H>(manager_shared_ptr)` calls
///   `on_block_registered` for every new registration (or call it yourself), and the release
///   handle lives in the registration.
/// The two keep separate books: announcing a hash that is also registered through a registry
/// of this manager is the caller's business (the hub sees both streams interleaved; the first
/// Remove of either erases the hash there until the next resync).
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
          m_lag(std::make_shared<detail::LagCounters>()),
          m_announced(std::make_shared<detail::AnnounceCore<H>>(m_sender)) {}

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

    /// The direct call for cache managers that own their blocks: if the policy allows
    /// `hash`, makes it live and returns the handle to keep in the block (empty otherwise).
    ///
    /// The manager counts live announcements per hash: the first sends `Create(hash)`, and
    /// `Remove(hash)` is sent when the last one is released. So announcing a hash again
    /// while an earlier AnnouncedBlock of it lives sends nothing, and the hub lists the hash
    /// exactly while at least one of its announcements lives. Each hash's Create and Remove
    /// reach the channel in the order of those changes (they are sent under a per-shard
    /// lock), which is what makes a resync from `announced_snapshot()` exact.
    ///
    /// Cost: the policy call, one uncontended lock of one of 16 shards, an open-addressing
    /// map update and (on 0 -> 1) the channel send; no allocation once the map has grown.
    /// Thread-safe.
    [[nodiscard]] AnnouncedBlock<H> announce(const H& hash) const {
        if (!m_policy.should_emit(hash)) {
            return {};
        }
        m_announced->acquire(hash);
        return AnnouncedBlock<H>(m_announced, hash);
    }

    /// The hashes with a live announcement (`announce`), unordered; each of the 16 shards
    /// is read at one instant. Thread-safe.
    [[nodiscard]] std::vector<H> announced_snapshot() const { return m_announced->snapshot(); }
    /// How many distinct hashes have a live announcement (a hint under concurrency).
    [[nodiscard]] std::size_t announced_count() const { return m_announced->size(); }

    /// `announced_snapshot()` as a callable that does not keep the channel open: once the
    /// manager and every AnnouncedBlock are gone it returns an empty vector (the truth).
    [[nodiscard]] std::function<std::vector<H>()> announced_snapshot_function() const {
        return [weak = std::weak_ptr<detail::AnnounceCore<H>>(m_announced)] {
            if (auto core = weak.lock()) {
                return core->snapshot();
            }
            return std::vector<H>{};
        };
    }

    [[nodiscard]] const AnyEmissionPolicy<H>& policy() const noexcept { return m_policy; }
    [[nodiscard]] std::size_t channel_capacity() const noexcept { return m_sender.capacity(); }
    [[nodiscard]] std::size_t subscriber_count() const noexcept { return m_sender.receiver_count(); }

    /// Events that subscribers from `subscribe()` missed because they fell more than the
    /// channel's capacity behind, summed over subscribers.
    [[nodiscard]] std::uint64_t lagged_events() const noexcept { return m_lag->events.load(std::memory_order_relaxed); }
    /// How many times such a subscriber was told it lagged.
    [[nodiscard]] std::uint64_t lag_reports() const noexcept { return m_lag->reports.load(std::memory_order_relaxed); }

    /// The manager's and its channel's figures as `kvbm_manager_*` series (see
    /// <kvbm/metrics.hpp>). Thread-safe.
    template <class Visitor>
    void for_each_metric(Visitor&& visit) const {
        using detail::visit_metric;
        visit_metric(visit, "kvbm_manager_lagged_events_total",
                     "Events subscribers missed by falling a channel's capacity behind", MetricKind::counter,
                     static_cast<double>(lagged_events()));
        visit_metric(visit, "kvbm_manager_lag_reports_total", "Lag reports subscribers received", MetricKind::counter,
                     static_cast<double>(lag_reports()));
        visit_metric(visit, "kvbm_manager_subscribers", "Receivers subscribed to the event channel", MetricKind::gauge,
                     static_cast<double>(subscriber_count()));
        visit_metric(visit, "kvbm_manager_channel_capacity", "Capacity of the event channel (events)",
                     MetricKind::gauge, static_cast<double>(channel_capacity()));
        visit_metric(visit, "kvbm_manager_announced_blocks", "Distinct hashes with a live announce()",
                     MetricKind::gauge, static_cast<double>(announced_count()));
    }

private:
    AnyEmissionPolicy<H> m_policy;
    broadcast::Sender<event_type> m_sender;
    std::shared_ptr<detail::LagCounters> m_lag;
    std::shared_ptr<detail::AnnounceCore<H>> m_announced;
};

KVBM_NAMESPACE_END
