/// @file kvbm/detail/broadcast_lock_word.hpp
/// Part of kvbm/broadcast.hpp: the part of a channel that does not depend on T. The lock
/// word (lock, parked mark, wake epoch), parking, the writer lease and its per-thread
/// records, the receivers' cursors, and the channel's counters.
#pragma once

#include <kvbm/config.hpp>
#include <kvbm/detail/broadcast_fence.hpp>
#include <kvbm/detail/schedule_point.hpp>
#include <kvbm/metrics.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <utility>
#include <version>

#if defined(__cpp_lib_jthread)
#include <stop_token>
#endif

KVBM_NAMESPACE_BEGIN

namespace broadcast {
template <class T>
class Sender;
template <class T>
class Receiver;
}  // namespace broadcast

namespace detail {

template <class T>
class BroadcastChannel;

/// A sending thread's record for the writer lease (see BroadcastCore): `busy` is 1 while the
/// thread writes a slot under a lease. Records are never freed (a channel may still name one
/// as its lease holder after the thread exited): a thread takes one from a pool on its first
/// multi-sender send and returns it at exit; the next thread to take it inherits its leases,
/// which is sound because the pool's mutex orders the old thread's writes before the new
/// thread's.
struct alignas(broadcast_cache_line) BroadcastWriter {
    std::atomic<std::uint32_t> busy{0};
    BroadcastWriter* next_free = nullptr;  // guarded by the pool's mutex
};

struct BroadcastWriterPool {
    std::mutex mutex;
    BroadcastWriter* free = nullptr;

    /// The process's pool, deliberately never destroyed (records outlive threads).
    static BroadcastWriterPool& instance() {
        static auto* pool = new BroadcastWriterPool;
        return *pool;
    }
    BroadcastWriter* take() {
        std::lock_guard<std::mutex> guard(mutex);
        if (free == nullptr) {
            return new BroadcastWriter;
        }
        return std::exchange(free, free->next_free);
    }
    void give_back(BroadcastWriter* w) noexcept {
        std::lock_guard<std::mutex> guard(mutex);
        w->next_free = std::exchange(free, w);
    }
};

// The calling thread's record: a constant-initialised pointer (read without a TLS wrapper
// call on the hot path) and, set up on first use, a holder that returns it at thread exit.
inline thread_local BroadcastWriter* broadcast_this_writer = nullptr;
// Set when the thread's record went back to the pool: sends made later by this thread (from
// thread_local destructors) take the lock and never hold a lease.
inline thread_local bool broadcast_writer_returned = false;

struct BroadcastWriterHolder {
    BroadcastWriter* writer = BroadcastWriterPool::instance().take();
    BroadcastWriterHolder() noexcept = default;
    BroadcastWriterHolder(const BroadcastWriterHolder&) = delete;
    BroadcastWriterHolder& operator=(const BroadcastWriterHolder&) = delete;
    ~BroadcastWriterHolder() {
        broadcast_this_writer = nullptr;
        broadcast_writer_returned = true;
        BroadcastWriterPool::instance().give_back(writer);
    }
};

/// The calling thread's record, made on first use; nullptr once the thread is exiting.
KVBM_BROADCAST_NOINLINE inline BroadcastWriter* broadcast_make_this_writer() {
    if (broadcast_writer_returned) {
        return nullptr;
    }
    static thread_local BroadcastWriterHolder holder;
    broadcast_this_writer = holder.writer;
    return holder.writer;
}

/// Locked sends in a row by one thread before it is granted the writer lease (doubled on each
/// revocation). A variable only so that tests can make leases come and go quickly.
inline std::atomic<std::uint32_t> broadcast_first_lease_after{64};

/// A receiver's position and its links in the channel's list of receivers (guarded by the
/// channel lock; a moved receiver re-links). `next` is written only by its receiver and read
/// by Sender::len().
struct BroadcastCursor {
    std::atomic<std::uint64_t> next{0};
    BroadcastCursor* prev = nullptr;
    BroadcastCursor* after = nullptr;

    /// With the lock held: puts this cursor in the list at the head.
    void link(BroadcastCursor*& head) noexcept {
        prev = nullptr;
        after = head;
        if (head != nullptr) {
            head->prev = this;
        }
        head = this;
    }
    /// With the lock held: takes this cursor out of the list.
    void unlink(BroadcastCursor*& head) noexcept {
        (prev != nullptr ? prev->after : head) = after;
        if (after != nullptr) {
            after->prev = prev;
        }
        prev = after = nullptr;
    }
    /// With the lock held: this cursor takes `old`'s place in the list (and its position).
    void replace(BroadcastCursor& old, BroadcastCursor*& head) noexcept {
        next.store(old.next.load(std::memory_order_relaxed), std::memory_order_relaxed);
        prev = std::exchange(old.prev, nullptr);
        after = std::exchange(old.after, nullptr);
        (prev != nullptr ? prev->after : head) = this;
        if (after != nullptr) {
            after->prev = this;
        }
    }
};

/// The part of a channel that does not depend on T: the lock word, positions, counts and
/// parking. Members are grouped by who writes them so the hot lines are not shared.
class BroadcastCore {
public:
    static constexpr std::uint32_t locked = 1;     // a sender (or subscribe/drop) holds the lock
    static constexpr std::uint32_t parked = 2;     // a receiver may be asleep: wake on unlock
    static constexpr std::uint32_t epoch_one = 4;  // bumped on every wake, so sleepers see a change

    BroadcastCore(std::uint64_t capacity, std::uint64_t first_position) noexcept
        : m_capacity(capacity), m_mask(capacity - 1), m_tail(first_position) {}

    BroadcastCore(const BroadcastCore&) = delete;
    BroadcastCore& operator=(const BroadcastCore&) = delete;

    /// Takes the lock; returns the word as locked, to be handed to unlock().
    [[nodiscard]] std::uint32_t lock() noexcept {
        KVBM_SCHEDULE_POINT();
        std::uint32_t w = m_word.load(std::memory_order_relaxed);
        while ((w & locked) == 0) {
            if (m_word.compare_exchange_weak(w, w | locked, std::memory_order_acquire, std::memory_order_relaxed)) {
                return w | locked;
            }
        }
        return lock_contended();
    }

    /// Releases the lock with a plain store. While it is held nobody else may change the word
    /// (receivers only set `parked` on an unlocked word), so `held` tells whether to wake.
    void unlock(std::uint32_t held) noexcept {
        KVBM_SCHEDULE_POINT();
        if (KVBM_LIKELY((held & parked) == 0)) {
            m_word.store(held & ~locked, std::memory_order_release);
            return;
        }
        m_word.store((held & ~(locked | parked)) + epoch_one, std::memory_order_release);
        wake_all();
    }

    /// After a send made without the lock: wake sleepers if any receiver marked the word.
    /// Their mark (a CAS) and our version store form a store-load pair: either we see the
    /// mark or they see the value. The pairing costs us only a compiler barrier when the
    /// receivers' side runs a process-wide barrier before sleeping (membarrier on Linux).
    void wake_after_unlocked_send() noexcept {
        if (KVBM_LIKELY(m_asymmetric.load(std::memory_order_relaxed))) {
            std::atomic_signal_fence(std::memory_order_seq_cst);
        } else {
            std::atomic_thread_fence(std::memory_order_seq_cst);
        }
        KVBM_SCHEDULE_POINT();
        if (KVBM_UNLIKELY((m_word.load(std::memory_order_relaxed) & parked) != 0)) {
            wake_parked();
        }
    }

    /// Unlocking a word marked parked bumps the epoch and wakes the sleepers.
    KVBM_BROADCAST_NOINLINE void wake_parked() noexcept { unlock(lock()); }

    // The writer lease. The pipeline always has several Senders alive (the manager's, one per
    // release handle) but usually one thread sending; a locked send costs an atomic
    // read-modify-write (about 5 ns here, more than the rest of the send). So a thread that
    // made `m_lease_after` locked sends in a row is granted the lease: while it holds it, its
    // sends (through any of its Sender copies) write as the sole sender does, with no
    // read-modify-write: it announces itself in its record's `busy`, checks it still holds the
    // lease, writes, and clears `busy`. Another sender revokes the lease under the lock: it
    // clears the holder, runs the heavy barrier, and waits until the holder's `busy` is 0. The
    // holder's announce-then-check and the revoker's clear-then-wait form a store-load pair
    // (asymmetric Dekker: the holder pays a compiler barrier, the revoker a membarrier), so
    // either the holder sees the lease gone or the revoker sees it busy and waits. Each
    // revocation doubles `m_lease_after` (threads taking turns stop being granted leases);
    // without membarrier no lease is ever granted.

    /// With the lock held, before writing: takes the lease away from any other thread (`me`
    /// may be nullptr: a thread without a record).
    void revoke_lease(const BroadcastWriter* me) noexcept {
        BroadcastWriter* holder = m_lease.load(std::memory_order_relaxed);
        if (KVBM_LIKELY(holder == nullptr || holder == me)) {
            return;
        }
        m_lease.store(nullptr, std::memory_order_relaxed);
        KVBM_SCHEDULE_POINT();
        m_lease_after = std::min<std::uint32_t>(m_lease_after * 2, max_lease_after);
        m_revocations.fetch_add(1, std::memory_order_relaxed);
        if (KVBM_UNLIKELY(!broadcast_heavy_barrier())) {
            // Cannot happen once membarrier registered; if it does: fences from now on, and
            // a grace period far longer than any store buffer holds a store.
            m_asymmetric.store(false, std::memory_order_seq_cst);
            m_degraded.store(true, std::memory_order_seq_cst);
            std::atomic_thread_fence(std::memory_order_seq_cst);
            std::this_thread::sleep_for(degraded_sleep);
        }
        for (unsigned spins = 0; holder->busy.load(std::memory_order_acquire) != 0; ++spins) {
            KVBM_SCHEDULE_POINT();
            if (spins < 64) {
                cpu_relax();
            } else {
                std::this_thread::yield();  // the holder was preempted mid-write
            }
        }
    }

    /// With the lock held, after a locked send by `me`: counts its run and grants the lease
    /// once the run is long enough.
    void note_locked_send(BroadcastWriter* me) noexcept {
        if (m_last_writer != me) {
            m_last_writer = me;
            m_run = 0;
            return;
        }
        if (++m_run >= m_lease_after && m_asymmetric.load(std::memory_order_relaxed) &&
            m_lease.load(std::memory_order_relaxed) == nullptr) {
            m_lease.store(me, std::memory_order_relaxed);
            m_leases.fetch_add(1, std::memory_order_relaxed);
        }
    }

    /// The holder's announce-then-check; true if `me` holds the lease and may write.
    [[nodiscard]] bool enter_lease(BroadcastWriter* me) noexcept {
        me->busy.store(1, std::memory_order_relaxed);
        KVBM_SCHEDULE_POINT();
        if (KVBM_LIKELY(m_asymmetric.load(std::memory_order_relaxed))) {
            std::atomic_signal_fence(std::memory_order_seq_cst);
        } else {
            std::atomic_thread_fence(std::memory_order_seq_cst);
        }
        if (KVBM_LIKELY(m_lease.load(std::memory_order_relaxed) == me)) {
            return true;
        }
        me->busy.store(0, std::memory_order_release);
        return false;
    }
    /// The holder's write is complete: a revoker waiting on `busy` may go on.
    static void leave_lease(BroadcastWriter* me) noexcept { me->busy.store(0, std::memory_order_release); }

    [[nodiscard]] bool leased_to(const BroadcastWriter* me) const noexcept {
        return m_lease.load(std::memory_order_relaxed) == me;
    }

    static constexpr std::uint32_t max_lease_after = std::uint32_t{1} << 20;

    /// A receiver that marked the word parked (as `marked`) calls this before its last look:
    /// the other half of the pairing in wake_after_unlocked_send().
    ///
    /// One heavy barrier per parked period, not per sleep: while the word still equals a
    /// `marked` some receiver already ran the barrier for, every send since then has seen the
    /// mark (and will change the word), so an idle receiver that times out and parks again
    /// (a batcher's idle window) costs no process-wide barrier.
    ///
    /// If membarrier fails, the channel switches for good to seq_cst fences on both sides
    /// and to sleeps of at most `degraded_sleep` (a send that still paired with the old
    /// scheme is then seen within that time instead of missed).
    void barrier_before_sleep(std::uint32_t marked) noexcept {
        if (!m_asymmetric.load(std::memory_order_relaxed)) {
            std::atomic_thread_fence(std::memory_order_seq_cst);
            return;
        }
        if (m_barrier_word.load(std::memory_order_acquire) == marked) {
            return;
        }
        if (KVBM_LIKELY(broadcast_heavy_barrier())) {
            m_heavy_barriers.fetch_add(1, std::memory_order_relaxed);
            m_barrier_word.store(marked, std::memory_order_release);
            return;
        }
        m_degraded.store(true, std::memory_order_seq_cst);
        m_asymmetric.store(false, std::memory_order_seq_cst);
        std::atomic_thread_fence(std::memory_order_seq_cst);
    }

    /// Wakes every parked receiver. Taking the park mutex after the word changed closes the
    /// window between a sleeper's check of the word and its wait.
    void wake_all() noexcept {
        m_wakes.fetch_add(1, std::memory_order_relaxed);
        { std::lock_guard<std::mutex> guard(m_park_mutex); }
        m_park_cv.notify_all();
    }

    /// Sleeps until the word differs from `seen` (a word this thread marked parked).
    void park(std::uint32_t seen) {
        m_parks.fetch_add(1, std::memory_order_relaxed);
        std::unique_lock<std::mutex> guard(m_park_mutex);
        if (KVBM_UNLIKELY(m_degraded.load(std::memory_order_relaxed))) {
            (void)m_park_cv.wait_for(guard, degraded_sleep,
                                     [&] { return m_word.load(std::memory_order_acquire) != seen; });
            return;
        }
        m_park_cv.wait(guard, [&] { return m_word.load(std::memory_order_acquire) != seen; });
    }
    /// As park(); returns false if `deadline` passed first.
    template <class Clock, class Duration>
    [[nodiscard]] bool park_until(std::uint32_t seen, const std::chrono::time_point<Clock, Duration>& deadline) {
        m_parks.fetch_add(1, std::memory_order_relaxed);
        std::unique_lock<std::mutex> guard(m_park_mutex);
        if (KVBM_UNLIKELY(m_degraded.load(std::memory_order_relaxed))) {
            const auto soon = std::chrono::steady_clock::now() + degraded_sleep;
            (void)m_park_cv.wait_until(guard, soon, [&] { return m_word.load(std::memory_order_acquire) != seen; });
            return Clock::now() < deadline;
        }
        return m_park_cv.wait_until(guard, deadline, [&] { return m_word.load(std::memory_order_acquire) != seen; });
    }
#if defined(__cpp_lib_jthread)
    /// As park(); returns false if a stop was requested first.
    [[nodiscard]] bool park(std::uint32_t seen, const std::stop_token& stop) {
        m_parks.fetch_add(1, std::memory_order_relaxed);
        std::stop_callback on_stop(stop, [this] { wake_all(); });
        std::unique_lock<std::mutex> guard(m_park_mutex);
        const bool degraded = m_degraded.load(std::memory_order_relaxed);
        while (m_word.load(std::memory_order_acquire) == seen) {
            if (stop.stop_requested()) {
                return false;
            }
            if (KVBM_UNLIKELY(degraded)) {
                (void)m_park_cv.wait_for(guard, degraded_sleep);
                return !stop.stop_requested();
            }
            m_park_cv.wait(guard);
        }
        return true;
    }
#endif

    /// The channel's counters in the one metrics shape (see kvbm/metrics.hpp).
    template <class Visitor>
    void for_each_metric(Visitor&& visit) const {
        detail::visit_metric(visit, "kvbm_broadcast_parks_total", "Times a receiver went to sleep waiting for a value",
                             MetricKind::counter, static_cast<double>(m_parks.load(std::memory_order_relaxed)));
        detail::visit_metric(visit, "kvbm_broadcast_wakes_total", "Times sleeping receivers were woken",
                             MetricKind::counter, static_cast<double>(m_wakes.load(std::memory_order_relaxed)));
        detail::visit_metric(visit, "kvbm_broadcast_heavy_barriers_total",
                             "Process-wide barriers (membarrier) run by receivers before sleeping", MetricKind::counter,
                             static_cast<double>(m_heavy_barriers.load(std::memory_order_relaxed)));
        detail::visit_metric(visit, "kvbm_broadcast_writer_leases_total",
                             "Times a sending thread was granted the writer lease (lock-free multi-sender sends)",
                             MetricKind::counter, static_cast<double>(m_leases.load(std::memory_order_relaxed)));
        detail::visit_metric(visit, "kvbm_broadcast_writer_lease_revocations_total",
                             "Times another sender took the writer lease away", MetricKind::counter,
                             static_cast<double>(m_revocations.load(std::memory_order_relaxed)));
        detail::visit_metric(visit, "kvbm_broadcast_degraded",
                             "1 if membarrier failed and the channel fell back to fences and bounded sleeps",
                             MetricKind::gauge, m_degraded.load(std::memory_order_relaxed) ? 1.0 : 0.0);
    }

    static constexpr std::chrono::milliseconds degraded_sleep{1};

private:
    // The channel's state: its halves read and write it directly (hot paths), nobody else.
    template <class>
    friend class BroadcastChannel;
    template <class>
    friend class broadcast::Sender;
    template <class>
    friend class broadcast::Receiver;

    // Read-mostly line: what receivers need on every read.
    alignas(broadcast_cache_line) const std::uint64_t m_capacity;
    const std::uint64_t m_mask;
    // Whether the store-load pairing is asymmetric (membarrier works); cleared for good if a
    // membarrier ever fails.
    std::atomic<bool> m_asymmetric{broadcast_heavy_barrier_available()};
    std::atomic<bool> m_closed{false};  // set once, under the lock, by the last sender

    // Sender line: written on every send.
    alignas(broadcast_cache_line) std::atomic<std::uint32_t> m_word{0};
    std::atomic<std::uint64_t> m_tail;       // next position to write; stored under the lock
    std::atomic<std::size_t> m_rx_count{0};  // changed under the lock
    BroadcastCursor* m_cursors = nullptr;    // guarded by the lock

    // Handle counts. m_refs counts receivers plus one for all senders together.
    alignas(broadcast_cache_line) std::atomic<std::size_t> m_tx_count{1};
    std::atomic<std::size_t> m_refs{1};

    // The writer lease: read on every multi-sender send, written rarely.
    alignas(broadcast_cache_line) std::atomic<BroadcastWriter*> m_lease{nullptr};  // set, cleared under the lock
    BroadcastWriter* m_last_writer = nullptr;                                      // guarded by the lock
    std::uint32_t m_run = 0;                                                       // guarded by the lock
    std::uint32_t m_lease_after = broadcast_first_lease_after.load(std::memory_order_relaxed);  // guarded by the lock

    // Cold: contention and sleeping.
    std::atomic<std::uint32_t> m_barrier_word{0};  // the parked word a heavy barrier last ran for
    std::atomic<bool> m_degraded{false};           // a membarrier failed: sleeps are bounded
    std::atomic<std::uint64_t> m_parks{0};
    std::atomic<std::uint64_t> m_wakes{0};
    std::atomic<std::uint64_t> m_heavy_barriers{0};
    std::atomic<std::uint64_t> m_leases{0};
    std::atomic<std::uint64_t> m_revocations{0};
    std::mutex m_contended;  // lockers that found the word locked queue here: at most one spins
    std::mutex m_park_mutex;
    std::condition_variable m_park_cv;

    std::uint32_t lock_contended() noexcept {
        std::lock_guard<std::mutex> queue(m_contended);
        for (unsigned spins = 0;; ++spins) {
            std::uint32_t w = m_word.load(std::memory_order_relaxed);
            if ((w & locked) == 0 &&
                m_word.compare_exchange_weak(w, w | locked, std::memory_order_acquire, std::memory_order_relaxed)) {
                return w | locked;
            }
            // The holder runs a few dozen instructions; it only takes long when preempted,
            // and then yielding lets it finish.
            if (spins < 64) {
                cpu_relax();
            } else {
                std::this_thread::yield();
            }
        }
    }
};

/// RAII for BroadcastCore's lock.
class BroadcastLock {
public:
    explicit BroadcastLock(BroadcastCore& core) noexcept : m_core(&core), m_held(core.lock()) {}
    ~BroadcastLock() { unlock(); }
    BroadcastLock(const BroadcastLock&) = delete;
    BroadcastLock& operator=(const BroadcastLock&) = delete;

    /// Releases the lock early (once; the destructor then does nothing).
    void unlock() noexcept {
        if (BroadcastCore* core = std::exchange(m_core, nullptr)) {
            core->unlock(m_held);
        }
    }

private:
    BroadcastCore* m_core;
    std::uint32_t m_held;
};

}  // namespace detail

KVBM_NAMESPACE_END
