/// @file kvbm/batcher.hpp
/// EventBatcher: turns the stream of single events into batches of one kind, with the
/// reference's rules. Written as a pure state machine: the caller feeds events and time
/// points and receives batches through a sink, so the rules are tested with a made-up
/// clock and the publisher drives it with the real one.
#pragma once

#include <kvbm/config.hpp>
#include <kvbm/events.hpp>
#include <kvbm/hash.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

KVBM_NAMESPACE_BEGIN

/// When a batch that is neither full nor ended by a kind switch is flushed.
enum class BatchingMode : std::uint8_t {
    /// The reference's: on the window timer only, so an event may wait up to a whole
    /// window even when nothing else is coming.
    window,
    /// Opt-in: also as soon as the input runs dry (`EventBatcher::idle`), but at most once
    /// per `BatchingConfig::eager_spacing`: when it is quiet an event leaves at once instead
    /// of waiting for the timer, and under load (where a fast consumer would otherwise find
    /// the input dry after every few events and send tiny batches) batches still form.
    /// Batches keep the reference's rules (one kind, sorted, at most `max_batch_size`) and
    /// wire bytes; there are only more of them when it is quiet.
    eager,
};

/// Batching configuration (Rust: `BatchingConfig`, plus the opt-in `mode`).
struct BatchingConfig {
    /// Period of the flush timer. Default 10 ms.
    std::chrono::nanoseconds window = std::chrono::milliseconds(10);
    /// A batch is flushed as soon as it holds this many events. Default 1024.
    std::size_t max_batch_size = 1024;
    /// Whether a batch also leaves when the input runs dry. Default: the reference's
    /// window-only behaviour.
    BatchingMode mode = BatchingMode::window;
    /// `BatchingMode::eager` only: the least time from one batch to the next batch sent
    /// because the input ran dry; a batch that finds the input dry sooner leaves at that
    /// time (or earlier, if full, ended by a kind switch or the window). Default 50 us:
    /// under load at most 20,000 such batches a second, when quiet a delay of at most 50 us.
    std::chrono::nanoseconds eager_spacing = std::chrono::microseconds(50);
};

/// "window" or "eager".
[[nodiscard]] constexpr const char* to_string(BatchingMode mode) noexcept {
    return mode == BatchingMode::eager ? "eager" : "window";
}

/// Sorts a batch the way the hub's radix tree wants it: creates by position ascending,
/// removes by position descending. Stable, so equal positions keep their arrival order.
template <SequenceHash H>
void sort_batch(BatchKind kind, std::vector<H>& hashes) {
    if (kind == BatchKind::shutdown || hashes.size() < 2) {
        return;
    }
    const bool ascending = kind == BatchKind::create;
    // Blocks are usually registered parent first and released child first, so most
    // batches arrive sorted already: check (decoding each position once) before paying for
    // a stable sort's buffer.
    std::uint64_t previous = hashes.front().position();
    for (std::size_t i = 1; i < hashes.size(); ++i) {
        const std::uint64_t p = hashes[i].position();
        if (ascending ? p < previous : p > previous) {
            if (ascending) {
                std::stable_sort(hashes.begin(), hashes.end(),
                                 [](const H& a, const H& b) { return a.position() < b.position(); });
            } else {
                std::stable_sort(hashes.begin(), hashes.end(),
                                 [](const H& a, const H& b) { return a.position() > b.position(); });
            }
            return;
        }
        previous = p;
    }
}

/// Groups consecutive events of one kind into batches. A batch is flushed
///  (a) before an event of the other kind is added,
///  (b) when it reaches `max_batch_size`,
///  (c) when the window timer expires: the timer is periodic, its first deadline is
///      `start + window` (the first event does not start it), and it is reset to
///      `now + window` after every flush and every expiry, empty or not,
///  (d) at end of input (`finish`),
///  (e) in `BatchingMode::eager` only, when the input runs dry (`idle`) and at least
///      `eager_spacing` has passed since the last flush; sooner, the batch is due at that
///      point instead (`deadline()` says when, `expire` flushes it). The timer is reset as
///      after every flush.
/// Each flushed batch is sorted with `sort_batch`.
///
/// Batches are handed to a sink as `KvCacheEvents<H>&`, valid during the call only; the
/// sink may move from it or swap with it (the batcher clears it afterwards and reuses its
/// capacity, so a sink that swaps in its previous batch makes the steady state
/// allocation-free).
///
/// Not thread-safe: one owner drives it. `Clock` only supplies the time_point type.
template <SequenceHash H = PositionalLineageHash, class Clock = std::chrono::steady_clock>
class EventBatcher {
public:
    using hash_type = H;
    using clock = Clock;
    using time_point = typename Clock::time_point;

    /// Throws std::invalid_argument if `config.window` is not positive,
    /// `config.max_batch_size` is 0 or `config.eager_spacing` is negative.
    EventBatcher(BatchingConfig config, time_point start)
        : m_config(config), m_deadline(start + window()), m_next_dry_flush(start) {
        if (config.window <= std::chrono::nanoseconds::zero()) {
            throw std::invalid_argument("kvbm::EventBatcher: window must be positive");
        }
        if (config.max_batch_size == 0) {
            throw std::invalid_argument("kvbm::EventBatcher: max_batch_size must be at least 1");
        }
        if (config.eager_spacing < std::chrono::nanoseconds::zero()) {
            throw std::invalid_argument("kvbm::EventBatcher: eager_spacing must not be negative");
        }
        m_batch.hashes.reserve(std::min<std::size_t>(config.max_batch_size, 1024));
    }

    [[nodiscard]] const BatchingConfig& config() const noexcept { return m_config; }
    /// When `expire` should next be called: the window timer's deadline, or sooner the time
    /// a batch that found the input dry too early is due (eager mode).
    [[nodiscard]] time_point deadline() const noexcept {
        return m_dry_pending ? std::min(m_deadline, m_next_dry_flush) : m_deadline;
    }
    /// Events waiting in the current batch.
    [[nodiscard]] std::size_t size() const noexcept { return m_batch.hashes.size(); }
    [[nodiscard]] bool empty() const noexcept { return m_batch.hashes.empty(); }
    /// The kind of the current batch, if it holds anything.
    [[nodiscard]] std::optional<EventKind> pending_kind() const noexcept {
        if (empty()) {
            return std::nullopt;
        }
        return m_batch.kind == BatchKind::create ? EventKind::create : EventKind::remove;
    }

    /// Adds one event received at `now`, flushing before it on a kind switch and after it
    /// when the batch is full. Calls `sink` zero, one or two times.
    template <class Sink>
    void push(const KvCacheEvent<H>& event, time_point now, Sink&& sink) {
        const BatchKind kind = event.kind == EventKind::create ? BatchKind::create : BatchKind::remove;
        if (!empty() && kind != m_batch.kind) {
            flush(now, sink);
        }
        m_batch.kind = kind;
        m_batch.hashes.push_back(event.hash);
        if (m_batch.hashes.size() >= m_config.max_batch_size) {
            flush(now, sink);
        }
    }

    /// The timer: if `now` has reached the deadline, flushes what is pending (if anything)
    /// and resets the deadline to `now + window`. Returns whether the timer expired. In
    /// eager mode, also flushes a batch that found the input dry once its spacing is over
    /// (and returns true).
    template <class Sink>
    bool expire(time_point now, Sink&& sink) {
        if (m_dry_pending && now >= m_next_dry_flush) {
            flush(now, sink);
            return true;
        }
        if (now < m_deadline) {
            return false;
        }
        flush(now, sink);
        return true;
    }

    /// The input ran dry at `now` (the caller took everything that was ready). In
    /// `BatchingMode::eager`, flushes what is pending and resets the timer, as `flush`
    /// does, if `eager_spacing` has passed since the last flush; otherwise the batch is
    /// due when it has (see `deadline`). In `BatchingMode::window`, does nothing (the
    /// timer decides). Returns whether a batch was emitted.
    template <class Sink>
    bool idle(time_point now, Sink&& sink) {
        if (m_config.mode != BatchingMode::eager || empty()) {
            return false;
        }
        if (now < m_next_dry_flush) {
            m_dry_pending = true;
            return false;
        }
        flush(now, sink);
        return true;
    }

    /// End of input: flushes what is pending. The timer is left alone.
    template <class Sink>
    void finish(Sink&& sink) {
        if (!empty()) {
            emit(sink);
        }
        m_dry_pending = false;
    }

    /// Flushes what is pending now (if anything) and resets the timer.
    template <class Sink>
    void flush(time_point now, Sink&& sink) {
        if (!empty()) {
            emit(sink);
            m_next_dry_flush = now + spacing();
        }
        m_dry_pending = false;
        m_deadline = now + window();
    }

    /// Drops the pending events without emitting them and resets the timer; returns how
    /// many were dropped. (The publisher does this when a lag makes them moot.)
    std::size_t discard(time_point now) noexcept {
        const std::size_t n = m_batch.hashes.size();
        m_batch.hashes.clear();
        m_dry_pending = false;
        m_deadline = now + window();
        return n;
    }

private:
    [[nodiscard]] typename Clock::duration window() const {
        return std::chrono::duration_cast<typename Clock::duration>(m_config.window);
    }
    [[nodiscard]] typename Clock::duration spacing() const {
        return std::chrono::duration_cast<typename Clock::duration>(m_config.eager_spacing);
    }

    template <class Sink>
    void emit(Sink& sink) {
        sort_batch(m_batch.kind, m_batch.hashes);
        sink(m_batch);
        m_batch.hashes.clear();
    }

    BatchingConfig m_config;
    time_point m_deadline;
    time_point m_next_dry_flush;  // eager: the earliest a dry input may flush (last flush + spacing)
    bool m_dry_pending = false;   // eager: the batch found the input dry before m_next_dry_flush
    KvCacheEvents<H> m_batch;
};

KVBM_NAMESPACE_END
