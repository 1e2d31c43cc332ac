/// @file kvbm/hub_ingest.hpp
/// The hub's transport-neutral ingest: `HubIngest` takes what a transport received (a topic
/// and a payload, or a payload without topic), decodes it, classifies it (applied or one of
/// the rejection reasons), counts it and applies it to a PositionalIndex (or a sink). A
/// transport (ZeroMQ's `ZmqHub`, a NATS subscription, an HTTP POST) is only the loop that
/// receives messages and hands each one to `ingest`; everything else lives here once.
#pragma once

#include <kvbm/config.hpp>
#include <kvbm/events.hpp>
#include <kvbm/index.hpp>
#include <kvbm/metrics.hpp>
#include <kvbm/msgpack.hpp>
#include <kvbm/topics.hpp>

#include <array>
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
#include <utility>

KVBM_NAMESPACE_BEGIN

/// What became of one received message: applied, or the reason it was rejected.
enum class IngestOutcome : std::uint8_t {
    applied,        ///< decoded and applied to the index (or handed to the sink)
    untopiced,      ///< no topic, and the ingest was told not to accept that
    unknown_topic,  ///< a topic other than the index topic: skipped
    empty,          ///< an empty payload
    oversized,      ///< a payload above `HubIngestOptions::max_payload_bytes` (or a transport's limit)
    malformed,      ///< a message of the wrong shape, as the transport saw it (e.g. three frames)
    undecodable,    ///< a payload that is not a MessagePack KvbmCacheEvents
    unauthorized,   ///< the batch's instance_id is not one the sender may publish for
    apply_failed,   ///< the index or sink threw (e.g. std::bad_alloc)
};

/// Every rejection reason, in declaration order (what `frames_rejected_total` is labelled by).
inline constexpr std::array<IngestOutcome, 8> ingest_rejection_reasons = {
    IngestOutcome::untopiced, IngestOutcome::unknown_topic, IngestOutcome::empty,        IngestOutcome::oversized,
    IngestOutcome::malformed, IngestOutcome::undecodable,   IngestOutcome::unauthorized, IngestOutcome::apply_failed};

/// The snake_case name of an outcome, as used in metric labels.
[[nodiscard]] constexpr std::string_view to_string(IngestOutcome o) noexcept {
    switch (o) {
        case IngestOutcome::applied:
            return "applied";
        case IngestOutcome::untopiced:
            return "untopiced";
        case IngestOutcome::unknown_topic:
            return "unknown_topic";
        case IngestOutcome::empty:
            return "empty";
        case IngestOutcome::oversized:
            return "oversized";
        case IngestOutcome::malformed:
            return "malformed";
        case IngestOutcome::undecodable:
            return "undecodable";
        case IngestOutcome::unauthorized:
            return "unauthorized";
        case IngestOutcome::apply_failed:
            return "apply_failed";
    }
    return "unknown";
}

/// Settings of a HubIngest.
struct HubIngestOptions {
    /// The topic index messages carry (Dynamo's `kvbm.kv_index`); others are unknown_topic.
    std::string topic{kv_index_topic};
    /// Payloads above this many bytes are rejected as oversized before decoding, whatever
    /// the transport (64 MiB: a batch of one million hashes is ~18 MiB).
    std::size_t max_payload_bytes = std::size_t{64} << 20;
    /// A message without a topic is handled as an index message (Dynamo's hub does the
    /// same); false rejects it as untopiced.
    bool accept_untopiced = true;
};

/// A consistent-enough snapshot of a HubIngest's counters (each read atomically; taken
/// while messages arrive, the fields may be from slightly different moments). Every
/// message counts once in `messages` and once in exactly one of batches_applied and the
/// rejection counters; `untopiced` counts messages without a topic again, whatever became
/// of them.
struct HubIngestStats {
    std::uint64_t messages = 0;            ///< messages received, of any outcome
    std::uint64_t batches_applied = 0;     ///< decoded and applied
    std::uint64_t events_applied = 0;      ///< hashes in those batches
    std::uint64_t bytes_applied = 0;       ///< payload bytes of those batches
    std::uint64_t untopiced = 0;           ///< messages without a topic (applied or not)
    std::uint64_t untopiced_rejected = 0;  ///< ... rejected because accept_untopiced is false
    std::uint64_t unknown_topic = 0;
    std::uint64_t empty = 0;
    std::uint64_t oversized = 0;
    std::uint64_t malformed = 0;
    std::uint64_t undecodable = 0;
    std::uint64_t unauthorized = 0;
    std::uint64_t apply_failed = 0;

    /// Messages rejected for `reason` (0 for `applied`).
    [[nodiscard]] std::uint64_t rejected(IngestOutcome reason) const noexcept {
        switch (reason) {
            case IngestOutcome::applied:
                return 0;
            case IngestOutcome::untopiced:
                return untopiced_rejected;
            case IngestOutcome::unknown_topic:
                return unknown_topic;
            case IngestOutcome::empty:
                return empty;
            case IngestOutcome::oversized:
                return oversized;
            case IngestOutcome::malformed:
                return malformed;
            case IngestOutcome::undecodable:
                return undecodable;
            case IngestOutcome::unauthorized:
                return unauthorized;
            case IngestOutcome::apply_failed:
                return apply_failed;
        }
        return 0;
    }
    /// Messages not applied, for whatever reason.
    [[nodiscard]] std::uint64_t rejected() const noexcept {
        return untopiced_rejected + unknown_topic + empty + oversized + malformed + undecodable + unauthorized +
               apply_failed;
    }
    friend bool operator==(const HubIngestStats&, const HubIngestStats&) = default;
};

/// The default authorisation of `HubIngest::ingest`: every instance id is allowed.
struct AllowAnyInstance {
    constexpr bool operator()(const InstanceId&) const noexcept { return true; }
};

/// Decode, classify, count, apply: everything a hub does with a received message that does
/// not depend on the transport. See the file comment.
///
/// Order of checks: topic (unknown_topic, untopiced), size (empty, oversized), decoding
/// (undecodable), authorisation (unauthorized: the optional callable passed to `ingest`
/// said no to the batch's instance_id), then apply (apply_failed if the index or sink
/// throws). A rejected message changes nothing; `last_error` says why the last one was.
///
/// Thread-safety: every member may be called from any number of threads at once (several
/// transports may feed one ingest); counters are atomics, readable at any time. The index
/// locks for itself; a sink passed instead must be thread-safe if several threads ingest.
/// Lifetime: the index (or what the sink refers to) must outlive the ingest.
template <WireSequenceHash H = PositionalLineageHash>
class HubIngest {
public:
    using hash_type = H;
    using batch_type = KvbmCacheEvents<H>;
    using sink_type = std::function<void(const batch_type&)>;

    /// Applies every accepted batch to `index`.
    explicit HubIngest(PositionalIndex<H>& index, HubIngestOptions options = {})
        : m_options(std::move(options)), m_index(&index) {}

    /// Hands every accepted batch to `sink` (on the ingesting thread). A sink that throws
    /// makes the message apply_failed.
    explicit HubIngest(sink_type sink, HubIngestOptions options = {})
        : m_options(std::move(options)), m_sink(std::move(sink)) {}

    HubIngest(const HubIngest&) = delete;
    HubIngest& operator=(const HubIngest&) = delete;

    [[nodiscard]] const HubIngestOptions& options() const noexcept { return m_options; }

    /// One message with a topic. `authorize(instance_id)` (optional) is asked once the batch
    /// is decoded; false rejects it as unauthorized. Returns the outcome (also counted).
    /// Never throws: an exception from `authorize`, the index or the sink counts as
    /// apply_failed.
    template <class Authorize = AllowAnyInstance>
    IngestOutcome ingest(std::string_view topic, std::span<const std::uint8_t> payload,
                         Authorize&& authorize = Authorize{}) noexcept {
        if (topic != m_options.topic) {
            return finish(IngestOutcome::unknown_topic, 0, 0, false, [&] {
                return "unknown topic '" + std::string(topic.substr(0, 64)) + (topic.size() > 64 ? "...'" : "'");
            });
        }
        return decode_and_apply(payload, false, authorize);
    }

    /// One message without a topic (a one-frame ZeroMQ message): an index message unless
    /// `accept_untopiced` is false.
    template <class Authorize = AllowAnyInstance>
    IngestOutcome ingest_untopiced(std::span<const std::uint8_t> payload,
                                   Authorize&& authorize = Authorize{}) noexcept {
        if (!m_options.accept_untopiced) {
            return finish(IngestOutcome::untopiced, 0, 0, true,
                          [] { return std::string("message without a topic (not accepted)"); });
        }
        return decode_and_apply(payload, true, authorize);
    }

    /// Counts a message the transport itself rejected for `reason` (e.g. malformed: three
    /// frames; oversized: a limit the transport enforces), with `detail` for last_error.
    /// `applied` is not a rejection and is ignored.
    void reject(IngestOutcome reason, std::string_view detail) noexcept {
        if (reason == IngestOutcome::applied) {
            return;
        }
        (void)finish(reason, 0, 0, false, [&] { return std::string(detail); });
    }

    /// The counters (see HubIngestStats).
    [[nodiscard]] HubIngestStats stats() const noexcept {
        HubIngestStats s;
        s.messages = load(m_messages);
        s.batches_applied = load(m_batches_applied);
        s.events_applied = load(m_events_applied);
        s.bytes_applied = load(m_bytes_applied);
        s.untopiced = load(m_untopiced);
        s.untopiced_rejected = rejected_count(IngestOutcome::untopiced);
        s.unknown_topic = rejected_count(IngestOutcome::unknown_topic);
        s.empty = rejected_count(IngestOutcome::empty);
        s.oversized = rejected_count(IngestOutcome::oversized);
        s.malformed = rejected_count(IngestOutcome::malformed);
        s.undecodable = rejected_count(IngestOutcome::undecodable);
        s.unauthorized = rejected_count(IngestOutcome::unauthorized);
        s.apply_failed = rejected_count(IngestOutcome::apply_failed);
        return s;
    }
    [[nodiscard]] std::uint64_t messages() const noexcept { return load(m_messages); }
    [[nodiscard]] std::uint64_t batches_applied() const noexcept { return load(m_batches_applied); }
    [[nodiscard]] std::uint64_t events_applied() const noexcept { return load(m_events_applied); }
    [[nodiscard]] std::uint64_t rejected() const noexcept { return stats().rejected(); }

    /// Why the last rejected message was rejected (empty if none was).
    [[nodiscard]] std::string last_error() const {
        std::lock_guard lock(m_error_mutex);
        return m_last_error;
    }

    /// Waits until at least `n` messages (of any outcome) have been handled; false on timeout.
    [[nodiscard]] bool wait_for_messages(std::uint64_t n, std::chrono::milliseconds timeout) const {
        return wait_until_at_least(m_messages, n, timeout);
    }
    /// Waits until at least `n` batches have been applied; false on timeout.
    [[nodiscard]] bool wait_for_batches(std::uint64_t n, std::chrono::milliseconds timeout) const {
        return wait_until_at_least(m_batches_applied, n, timeout);
    }

    /// The metrics (see <kvbm/metrics.hpp>): `kvbm_hub_messages_total`,
    /// `kvbm_hub_batches_applied_total`, `kvbm_hub_events_applied_total`,
    /// `kvbm_hub_bytes_applied_total`, `kvbm_hub_frames_untopiced_total` and
    /// `kvbm_hub_frames_rejected_total{reason="..."}` for every reason (zeros included).
    template <class Visitor>
    void for_each_metric(Visitor&& visit) const {
        using detail::visit_metric;
        visit_metric(visit, "kvbm_hub_messages_total", "Messages the hub received, of any outcome.",
                     MetricKind::counter, as_value(load(m_messages)));
        visit_metric(visit, "kvbm_hub_batches_applied_total", "Batches decoded and applied to the index.",
                     MetricKind::counter, as_value(load(m_batches_applied)));
        visit_metric(visit, "kvbm_hub_events_applied_total", "Events (hashes) in the applied batches.",
                     MetricKind::counter, as_value(load(m_events_applied)));
        visit_metric(visit, "kvbm_hub_bytes_applied_total", "Payload bytes of the applied batches.",
                     MetricKind::counter, as_value(load(m_bytes_applied)));
        visit_metric(visit, "kvbm_hub_frames_untopiced_total",
                     "Messages received without a topic frame (applied or not).", MetricKind::counter,
                     as_value(load(m_untopiced)));
        for (const IngestOutcome reason : ingest_rejection_reasons) {
            visit_metric(visit, "kvbm_hub_frames_rejected_total", "Messages the hub rejected, by reason.",
                         MetricKind::counter, {{"reason", to_string(reason)}}, as_value(rejected_count(reason)));
        }
    }

private:
    static std::uint64_t load(const std::atomic<std::uint64_t>& a) noexcept {
        return a.load(std::memory_order_relaxed);
    }
    static double as_value(std::uint64_t v) noexcept { return static_cast<double>(v); }
    [[nodiscard]] std::uint64_t rejected_count(IngestOutcome reason) const noexcept {
        return load(m_rejected[static_cast<std::size_t>(reason)]);
    }

    template <class Authorize>
    IngestOutcome decode_and_apply(std::span<const std::uint8_t> payload, bool untopiced,
                                   Authorize& authorize) noexcept {
        if (payload.empty()) {
            return finish(IngestOutcome::empty, 0, 0, untopiced, [] { return std::string("empty payload"); });
        }
        if (payload.size() > m_options.max_payload_bytes) {
            return finish(IngestOutcome::oversized, 0, 0, untopiced, [&] {
                return "payload of " + std::to_string(payload.size()) + " bytes is above the limit of " +
                       std::to_string(m_options.max_payload_bytes);
            });
        }
        std::string error;
        IngestOutcome outcome = IngestOutcome::applied;
        std::size_t events = 0;
        try {
            auto decoded = msgpack::decode_batch<H>(payload);
            if (!decoded) {
                outcome = IngestOutcome::undecodable;
                error = "undecodable payload: " + decoded.error().message();
            } else if (!static_cast<bool>(authorize(decoded.value().instance_id))) {
                outcome = IngestOutcome::unauthorized;
                error = "instance " + decoded.value().instance_id.to_string() + " is not allowed for this sender";
            } else {
                events = decoded.value().events.hashes.size();
                if (m_index != nullptr) {
                    m_index->apply(decoded.value());
                } else {
                    m_sink(decoded.value());
                }
            }
        } catch (const std::exception& e) {
            outcome = IngestOutcome::apply_failed;
            try {
                error = std::string("sink failed: ") + e.what();
            } catch (...) {  // NOLINT(bugprone-empty-catch): out of memory, no message then
            }
        } catch (...) {
            outcome = IngestOutcome::apply_failed;
            try {
                error = "sink failed";
            } catch (...) {  // NOLINT(bugprone-empty-catch): out of memory, no message then
            }
        }
        return finish(outcome, events, payload.size(), untopiced, [&] { return std::move(error); });
    }

    /// Counts one message and wakes waiters; `describe()` builds last_error for a rejection.
    template <class Describe>
    IngestOutcome finish(IngestOutcome outcome, std::size_t events, std::size_t bytes, bool untopiced,
                         Describe&& describe) noexcept {
        if (outcome == IngestOutcome::applied) {
            m_events_applied.fetch_add(events, std::memory_order_relaxed);
            m_bytes_applied.fetch_add(bytes, std::memory_order_relaxed);
            m_batches_applied.fetch_add(1, std::memory_order_seq_cst);
        } else {
            m_rejected[static_cast<std::size_t>(outcome)].fetch_add(1, std::memory_order_relaxed);
            try {
                std::string text = describe();
                std::lock_guard lock(m_error_mutex);
                m_last_error = std::move(text);
            } catch (...) {  // NOLINT(bugprone-empty-catch): out of memory; the count stands
            }
        }
        if (untopiced) {
            m_untopiced.fetch_add(1, std::memory_order_relaxed);
        }
        // seq_cst increment, then a seq_cst read of m_waiters (a waiter does the mirror
        // image): either this thread sees the waiter and notifies under the mutex, or the
        // waiter sees the new count before it sleeps. No lock on the common path.
        m_messages.fetch_add(1, std::memory_order_seq_cst);
        if (m_waiters.load(std::memory_order_seq_cst) != 0) {
            { std::lock_guard lock(m_progress_mutex); }
            m_progress.notify_all();
        }
        return outcome;
    }

    [[nodiscard]] bool wait_until_at_least(const std::atomic<std::uint64_t>& counter, std::uint64_t n,
                                           std::chrono::milliseconds timeout) const {
        m_waiters.fetch_add(1, std::memory_order_seq_cst);
        std::unique_lock lock(m_progress_mutex);
        const bool ok =
            m_progress.wait_for(lock, timeout, [&] { return counter.load(std::memory_order_seq_cst) >= n; });
        lock.unlock();
        m_waiters.fetch_sub(1, std::memory_order_relaxed);
        return ok;
    }

    HubIngestOptions m_options;
    PositionalIndex<H>* m_index = nullptr;  // either this...
    sink_type m_sink;                       // ...or this
    std::atomic<std::uint64_t> m_messages{0};
    std::atomic<std::uint64_t> m_batches_applied{0};
    std::atomic<std::uint64_t> m_events_applied{0};
    std::atomic<std::uint64_t> m_bytes_applied{0};
    std::atomic<std::uint64_t> m_untopiced{0};
    std::array<std::atomic<std::uint64_t>, 9> m_rejected{};  // by IngestOutcome; [applied] unused
    mutable std::mutex m_error_mutex;
    std::string m_last_error;
    mutable std::atomic<int> m_waiters{0};
    mutable std::mutex m_progress_mutex;
    mutable std::condition_variable m_progress;
};

/// What every hub transport (ZmqHub, NatsHub) shares: the HubIngest it feeds (its own, built
/// from an index or a sink, or one shared with other transports) and the ingest's read side,
/// so that `hub.stats()`, `hub.wait_for_batches(...)` and the rest read the same on each.
/// The ingest outlives the derived transport's thread: a base is destroyed after its
/// derived class has stopped.
template <WireSequenceHash H>
class HubTransportBase {
public:
    using ingest_type = HubIngest<H>;
    using sink_type = typename ingest_type::sink_type;

    HubTransportBase(const HubTransportBase&) = delete;
    HubTransportBase& operator=(const HubTransportBase&) = delete;

    /// The ingest this hub feeds.
    [[nodiscard]] ingest_type& ingest() noexcept { return m_ingest; }
    [[nodiscard]] const ingest_type& ingest() const noexcept { return m_ingest; }

    /// The ingest's counters (see HubIngest).
    [[nodiscard]] HubIngestStats stats() const noexcept { return m_ingest.stats(); }
    [[nodiscard]] std::uint64_t messages() const noexcept { return m_ingest.messages(); }
    [[nodiscard]] std::uint64_t batches_applied() const noexcept { return m_ingest.batches_applied(); }
    [[nodiscard]] std::uint64_t events_applied() const noexcept { return m_ingest.events_applied(); }
    [[nodiscard]] std::uint64_t rejected() const noexcept { return m_ingest.rejected(); }
    /// Why the last rejected message was rejected (empty if none was).
    [[nodiscard]] std::string last_error() const { return m_ingest.last_error(); }

    /// Waits until at least `n` messages (of any outcome) have been handled; false on timeout.
    [[nodiscard]] bool wait_for_messages(std::uint64_t n, std::chrono::milliseconds timeout) const {
        return m_ingest.wait_for_messages(n, timeout);
    }
    /// Waits until at least `n` batches have been applied; false on timeout.
    [[nodiscard]] bool wait_for_batches(std::uint64_t n, std::chrono::milliseconds timeout) const {
        return m_ingest.wait_for_batches(n, timeout);
    }

protected:
    HubTransportBase(PositionalIndex<H>& index, const HubIngestOptions& options)
        : m_own_ingest(std::make_unique<ingest_type>(index, options)), m_ingest(*m_own_ingest) {}
    HubTransportBase(sink_type sink, const HubIngestOptions& options)
        : m_own_ingest(std::make_unique<ingest_type>(std::move(sink), options)), m_ingest(*m_own_ingest) {}
    explicit HubTransportBase(ingest_type& shared) : m_ingest(shared) {}
    ~HubTransportBase() = default;

    /// The ingest's metrics when the hub owns it; a shared ingest is exported by its owner.
    template <class Visitor>
    void for_each_owned_ingest_metric(Visitor& visit) const {
        if (m_own_ingest) {
            m_own_ingest->for_each_metric(visit);
        }
    }

private:
    std::unique_ptr<ingest_type> m_own_ingest;  // null when feeding a shared ingest
    ingest_type& m_ingest;
};

KVBM_NAMESPACE_END
