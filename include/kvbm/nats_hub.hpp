/// @file kvbm/nats_hub.hpp
/// The hub's side of the NATS transport (target kvbm::nats): `NatsHub`, a loop that hands
/// every message of `"[prefix.]kvbm.events"` to a HubIngest (<kvbm/hub_ingest.hpp>), which
/// decodes, classifies, counts and applies it. NATS-specific here: the subscription, slow
/// consumer drops, asking workers to resync, and JetStream with index snapshots.
///
/// Core NATS keeps nothing for a subscriber that is not there. The hub therefore asks the
/// workers to resync (an empty message on `"[prefix.]kvbm.resync"`, see NatsPublisher)
/// when it starts, after each of its reconnections and when the client dropped messages
/// for it (slow consumer). A worker answers with Shutdown for its instance and its live
/// set, which replaces whatever the hub knew of it.
///
/// JetStream (`NatsHubOptions::jetstream`): the hub reads stream STREAM (created if
/// missing, capturing the events subject, with the operator's limits) through a durable
/// pull consumer, and saves a snapshot of the index with the stream sequence it covers
/// (<kvbm/index_snapshot.hpp>). At start it loads the snapshot and replays only the
/// messages after its sequence, so a restarted hub is whole again without any worker
/// resync. Why this never double-counts or resurrects a removed block:
/// - The stream is the one ordered log of every worker's batches, resyncs included (a
///   resync is ordinary messages: Shutdown, then Creates). The snapshot is the effect of
///   exactly the messages up to its sequence S (taken on the ingest thread between two
///   messages), and the replay applies exactly the messages after S, once each, in stream
///   order. The index ends as if the hub had never stopped.
/// - A worker's resync in the middle of that log is harmless: its Shutdown removes every
///   holding of its instance (the snapshot's included), its Creates re-add the live set.
///   Applying it on top of the snapshot gives what applying it live gave.
/// - Even a message applied twice could not double-count: Create is idempotent per (hash,
///   instance) and a second Remove is unmatched. But a message applied *out of order*
///   could resurrect (an old Create after its Remove): the replay never does that, since it
///   starts strictly after S and the consumer delivers in stream order.
/// - A broker restart can lose what was in flight, or what a worker published before the
///   server had restored the stream. Workers resync after their own reconnection, and the
///   hub, once the stream answers again after its reconnection, asks them all to resync:
///   the resync then lands in the stream, after whatever was lost.
/// - What replay cannot fix is a gap: the stream's limits dropped messages after S before
///   the hub read them (or the snapshot belongs to an older incarnation of the stream). The
///   hub detects it (first available sequence > S + 1, or a jump in sequences while
///   reading), counts it (`gaps`) and asks the workers to resync, which rebuilds every live
///   worker's holdings. Holdings of a worker that died without Shutdown during the gap
///   stay until that instance is removed. Keep the snapshot interval well below the
///   stream's retention.
#pragma once

#include <kvbm/config.hpp>
#include <kvbm/hub_ingest.hpp>
#include <kvbm/index.hpp>
#include <kvbm/index_snapshot.hpp>
#include <kvbm/metrics.hpp>
#include <kvbm/nats_connection.hpp>

#include <nats/nats.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

KVBM_NAMESPACE_BEGIN

/// JetStream settings of a NatsHub.
struct NatsJetStreamOptions {
    /// The stream. Created when missing, capturing the events subject with the limits
    /// below; an existing stream is used as it is (it must capture the events subject).
    std::string stream = "KVBM_EVENTS";
    /// The durable pull consumer's name. Its position at start is set from the snapshot
    /// (the consumer is recreated there): the index lives in memory, so what the snapshot
    /// covers, not what a previous run acknowledged, says where to resume.
    std::string durable = "kvbm-hub";
    /// Limits of a stream the hub creates (0: unlimited). Operators set them; a stream
    /// with limits forgets old events, which the snapshot makes up for.
    std::int64_t max_messages = 0;
    std::int64_t max_bytes = 0;
    std::chrono::seconds max_age{0};
    /// File storage (survives a broker restart) or memory.
    bool file_storage = true;
    /// Where the index snapshot is kept; empty: no snapshot (a restarted hub replays the
    /// whole stream, which is exact only while the stream has dropped nothing).
    std::filesystem::path snapshot_path;
    /// How often the snapshot is saved while messages arrive (also at stop()).
    std::chrono::milliseconds snapshot_interval{10000};
    /// Messages per fetch.
    int fetch_batch = 512;
};

/// Settings of a NatsHub.
struct NatsHubOptions {
    NatsConnectionOptions connection;
    /// The subjects are `"{prefix}.kvbm.events"` and `"{prefix}.kvbm.resync"` when set.
    std::string subject_prefix;
    /// For the ingest the hub owns (the constructors taking an index or a sink).
    HubIngestOptions ingest = {};
    /// Ask the workers to resync at start (core NATS), after a reconnection and after
    /// drops (see the file brief). JetStream mode asks after a gap, and after a reconnection
    /// once the stream answers again (a broker restart may have lost what was in flight);
    /// never at start when the snapshot and the stream join up.
    bool request_resync = true;
    /// Messages and bytes the client may buffer for the hub before it drops (a slow
    /// consumer; counted, and followed by a resync request).
    int pending_messages_limit = 1 << 20;
    int pending_bytes_limit = 1 << 30;
    /// Read through JetStream instead of a plain subscription.
    std::optional<NatsJetStreamOptions> jetstream;
};

/// NATS-specific counters of a NatsHub (the ingest counts the messages themselves).
struct NatsHubStats {
    std::uint64_t reconnects = 0;                ///< reconnections of the hub's client
    std::uint64_t dropped = 0;                   ///< messages the client dropped (slow consumer)
    std::uint64_t resync_requests = 0;           ///< resync requests sent to the workers
    std::uint64_t gaps = 0;                      ///< JetStream: stretches of the stream lost before being read
    std::uint64_t replayed = 0;                  ///< JetStream: messages read from the stream
    std::uint64_t snapshots = 0;                 ///< snapshots saved
    std::uint64_t snapshot_failures = 0;         ///< snapshots that could not be saved
    std::uint64_t stream_sequence = 0;           ///< JetStream: the last stream sequence applied
    std::uint64_t snapshot_sequence = 0;         ///< JetStream: the sequence the loaded/last snapshot covers
    std::uint64_t snapshot_loaded_holdings = 0;  ///< holdings restored from the snapshot at start
};

/// The hub's NATS ingest loop. Subscribes on construction (so what is published after the
/// constructor returns is received), then reads on a background thread and hands each
/// payload to the ingest with the ingest's topic: on NATS the subject is the topic.
///
/// Thread-safety: every member may be called from any thread. The index or sink runs on the
/// hub's thread only. Destruction stops the loop (bounded: at most one fetch wait, ~0.2 s)
/// and, with JetStream and a snapshot path, saves a last snapshot.
template <WireSequenceHash H = PositionalLineageHash>
class NatsHub : public HubTransportBase<H> {
    using base = HubTransportBase<H>;

public:
    using typename base::ingest_type;
    using typename base::sink_type;

    /// Applies every batch to `index`, which must outlive the hub (and, with a JetStream
    /// snapshot, be empty: the snapshot is loaded into it). Throws NatsError when the server
    /// cannot be reached or JetStream refuses the stream or consumer, IndexSnapshotError for
    /// a bad snapshot file.
    explicit NatsHub(PositionalIndex<H>& index, NatsHubOptions options = {})
        : base(index, options.ingest), m_index(&index) {
        start(std::move(options));
    }

    /// Hands every decoded batch to `sink` (on the hub's thread). No snapshot possible.
    explicit NatsHub(sink_type sink, NatsHubOptions options = {}) : base(std::move(sink), options.ingest) {
        start(std::move(options));
    }

    /// Feeds `ingest`, shared with other transports (it must outlive the hub). With a
    /// JetStream snapshot, `snapshot_of` is the index that ingest applies to.
    NatsHub(ingest_type& ingest, NatsHubOptions options, PositionalIndex<H>* snapshot_of = nullptr)
        : base(ingest), m_index(snapshot_of) {
        start(std::move(options));
    }

    NatsHub(const NatsHub&) = delete;
    NatsHub& operator=(const NatsHub&) = delete;

    ~NatsHub() { stop(); }

    /// Stops reading and joins the hub's thread (a last snapshot is saved in JetStream mode);
    /// idempotent. Must not be called from the sink.
    void stop() noexcept {
        m_stop.store(true, std::memory_order_release);
        std::lock_guard lock(m_join_mutex);
        if (m_thread.joinable()) {
            m_thread.join();
        }
    }

    /// The subject the hub reads.
    [[nodiscard]] const std::string& events_subject() const noexcept { return m_events_subject; }
    /// Whether the hub reads through JetStream.
    [[nodiscard]] bool jetstream() const noexcept { return m_options.jetstream.has_value(); }

    /// The NATS-specific counters.
    [[nodiscard]] NatsHubStats nats_stats() const noexcept {
        NatsHubStats s;
        s.reconnects = load(m_reconnects);
        s.dropped = load(m_dropped);
        s.resync_requests = load(m_resync_requests);
        s.gaps = load(m_gaps);
        s.replayed = load(m_replayed);
        s.snapshots = load(m_snapshots);
        s.snapshot_failures = load(m_snapshot_failures);
        s.stream_sequence = load(m_stream_sequence);
        s.snapshot_sequence = load(m_snapshot_sequence);
        s.snapshot_loaded_holdings = load(m_snapshot_loaded_holdings);
        return s;
    }

    /// Why the last snapshot failed, or a gap was found (empty if never).
    [[nodiscard]] std::string last_nats_error() const {
        std::lock_guard lock(m_error_mutex);
        return m_last_error;
    }

    /// Sends a resync request to the workers now.
    bool request_resync() noexcept { return send_resync_request(); }

    /// Metrics: the owned ingest's (see HubIngest), then `kvbm_nats_hub_*`.
    template <class Visitor>
    void for_each_metric(Visitor&& visit) const {
        this->for_each_owned_ingest_metric(visit);
        using detail::visit_metric;
        const NatsHubStats s = nats_stats();
        const auto v = [](std::uint64_t x) { return static_cast<double>(x); };
        visit_metric(visit, "kvbm_nats_hub_reconnects_total", "Reconnections of the hub's NATS client.",
                     MetricKind::counter, v(s.reconnects));
        visit_metric(visit, "kvbm_nats_hub_dropped_total", "Messages the NATS client dropped (slow consumer).",
                     MetricKind::counter, v(s.dropped));
        visit_metric(visit, "kvbm_nats_hub_resync_requests_total", "Resync requests the hub sent to the workers.",
                     MetricKind::counter, v(s.resync_requests));
        visit_metric(visit, "kvbm_nats_hub_gaps_total", "Stretches of the JetStream stream lost before being read.",
                     MetricKind::counter, v(s.gaps));
        visit_metric(visit, "kvbm_nats_hub_replayed_total", "Messages read from the JetStream stream.",
                     MetricKind::counter, v(s.replayed));
        visit_metric(visit, "kvbm_nats_hub_snapshots_total", "Index snapshots saved.", MetricKind::counter,
                     v(s.snapshots));
        visit_metric(visit, "kvbm_nats_hub_snapshot_failures_total", "Index snapshots that could not be saved.",
                     MetricKind::counter, v(s.snapshot_failures));
        visit_metric(visit, "kvbm_nats_hub_stream_sequence", "The last JetStream stream sequence applied.",
                     MetricKind::gauge, v(s.stream_sequence));
    }

private:
    struct JsCtxDeleter {
        void operator()(jsCtx* p) const noexcept { jsCtx_Destroy(p); }
    };
    struct StreamInfoDeleter {
        void operator()(jsStreamInfo* p) const noexcept { jsStreamInfo_Destroy(p); }
    };
    using js_ptr = std::unique_ptr<jsCtx, JsCtxDeleter>;
    using stream_info_ptr = std::unique_ptr<jsStreamInfo, StreamInfoDeleter>;

    static std::uint64_t load(const std::atomic<std::uint64_t>& a) noexcept {
        return a.load(std::memory_order_relaxed);
    }
    static void bump(std::atomic<std::uint64_t>& a, std::uint64_t n = 1) noexcept {
        a.fetch_add(n, std::memory_order_relaxed);
    }
    void note(std::string text) noexcept {
        try {
            std::lock_guard lock(m_error_mutex);
            m_last_error = std::move(text);
        } catch (...) {  // NOLINT(bugprone-empty-catch): the count stands
        }
    }

    void start(NatsHubOptions options) {
        m_options = std::move(options);
        m_events_subject = nats_subject(m_options.subject_prefix, nats_events_subject);
        m_resync_subject = nats_subject(m_options.subject_prefix, nats_resync_subject);
        if (m_options.jetstream && !m_options.jetstream->snapshot_path.empty() && m_index == nullptr) {
            throw std::invalid_argument("kvbm::NatsHub: a JetStream snapshot needs the index (construct from it)");
        }
        m_connection = detail::nats_connect(m_options.connection);
        if (m_options.jetstream) {
            start_jetstream();
        } else {
            natsSubscription* raw = nullptr;
            detail::nats_check(natsConnection_SubscribeSync(&raw, m_connection.get(), m_events_subject.c_str()),
                               "kvbm::NatsHub: subscribe to " + m_events_subject);
            m_sub.reset(raw);
            detail::nats_check(natsSubscription_SetPendingLimits(m_sub.get(), m_options.pending_messages_limit,
                                                                 m_options.pending_bytes_limit),
                               "kvbm::NatsHub: pending limits");
            // The subscription is registered with the server once a flush returns: from then
            // on what workers publish reaches this hub, so the request comes after it.
            detail::nats_check(natsConnection_FlushTimeout(m_connection.get(), 10000), "kvbm::NatsHub: flush");
            if (m_options.request_resync) {
                (void)send_resync_request();
            }
        }
        m_thread = std::thread([this] { run(); });
    }

    bool send_resync_request() noexcept {
        if (natsConnection_Publish(m_connection.get(), m_resync_subject.c_str(), nullptr, 0) != NATS_OK) {
            return false;
        }
        (void)natsConnection_FlushTimeout(m_connection.get(), 1000);
        bump(m_resync_requests);
        return true;
    }

    // --- JetStream -------------------------------------------------------------------------

    void js_check(natsStatus s, jsErrCode code, const std::string& what) const {
        if (s != NATS_OK) {
            std::string text = detail::nats_describe("kvbm::NatsHub: " + what, s);
            if (code != 0) {
                text += " [JetStream error " + std::to_string(static_cast<int>(code)) + "]";
            }
            throw NatsError(s, text);
        }
    }

    void start_jetstream() {
        const NatsJetStreamOptions& o = *m_options.jetstream;
        jsCtx* raw_js = nullptr;
        detail::nats_check(natsConnection_JetStream(&raw_js, m_connection.get(), nullptr),
                           "kvbm::NatsHub: JetStream context");
        m_js.reset(raw_js);

        // The stream: found, or created with the operator's limits.
        jsStreamInfo* raw_si = nullptr;
        jsErrCode code{};
        natsStatus s = js_GetStreamInfo(&raw_si, m_js.get(), o.stream.c_str(), nullptr, &code);
        if (s == NATS_NOT_FOUND || code == JSStreamNotFoundErr) {
            jsStreamConfig cfg;
            jsStreamConfig_Init(&cfg);
            cfg.Name = o.stream.c_str();
            const char* subjects[] = {m_events_subject.c_str()};
            cfg.Subjects = subjects;
            cfg.SubjectsLen = 1;
            cfg.Storage = o.file_storage ? js_FileStorage : js_MemoryStorage;
            cfg.MaxMsgs = o.max_messages > 0 ? o.max_messages : -1;
            cfg.MaxBytes = o.max_bytes > 0 ? o.max_bytes : -1;
            cfg.MaxAge = std::chrono::duration_cast<std::chrono::nanoseconds>(o.max_age).count();
            raw_si = nullptr;
            code = {};
            s = js_AddStream(&raw_si, m_js.get(), &cfg, nullptr, &code);
            js_check(s, code, "create stream " + o.stream);
        } else {
            js_check(s, code, "stream " + o.stream);
        }
        const stream_info_ptr si(raw_si);
        bool captures = false;
        // Sequences of a stream that captures only the events subject are consecutive for
        // the hub: a jump is a gap. In a shared stream, other subjects' messages jump too.
        m_exclusive_stream =
            si->Config != nullptr && si->Config->SubjectsLen == 1 && m_events_subject == si->Config->Subjects[0];
        for (int i = 0; si->Config != nullptr && i < si->Config->SubjectsLen; ++i) {
            const std::string_view subj = si->Config->Subjects[i];
            captures = captures || subj == m_events_subject || subj == ">" ||
                       (subj.ends_with(".>") && m_events_subject.starts_with(subj.substr(0, subj.size() - 1)));
        }
        if (!captures) {
            throw NatsError(NATS_INVALID_ARG,
                            "kvbm::NatsHub: stream " + o.stream + " does not capture subject " + m_events_subject);
        }
        m_origin = o.stream + "@" + std::to_string(si->Created);
        const std::uint64_t first_seq = si->State.FirstSeq;

        // The snapshot: loaded when it belongs to this stream.
        std::uint64_t covered = 0;
        if (!o.snapshot_path.empty() && std::filesystem::exists(o.snapshot_path)) {
            std::ifstream in(o.snapshot_path, std::ios::binary);
            const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
            const IndexSnapshotInfo head = peek_index_snapshot(bytes);
            if (head.origin == m_origin) {
                const IndexSnapshotInfo info = decode_index_snapshot(bytes, *m_index);
                covered = info.sequence;
                m_snapshot_loaded_holdings.store(info.holdings, std::memory_order_relaxed);
            } else {
                // Another incarnation of the stream: what happened between is unknown.
                found_gap("snapshot " + o.snapshot_path.string() + " is of '" + head.origin + "', the stream is '" +
                          m_origin + "': ignored");
            }
        }
        m_snapshot_sequence.store(covered, std::memory_order_relaxed);
        m_stream_sequence.store(covered, std::memory_order_relaxed);
        m_next_sequence = covered + 1;
        // Messages covered+1 .. first_seq-1 are gone: a gap (see the file brief), unless
        // one was already found (a snapshot of another stream).
        if (first_seq > m_next_sequence && load(m_gaps) == 0) {
            found_gap("stream " + o.stream + " starts at sequence " + std::to_string(first_seq) +
                      ", the index covers up to " + std::to_string(covered));
        }

        // The durable consumer, recreated to start right after the snapshot.
        jsErrCode dcode{};
        const natsStatus ds = js_DeleteConsumer(m_js.get(), o.stream.c_str(), o.durable.c_str(), nullptr, &dcode);
        if (ds != NATS_OK && ds != NATS_NOT_FOUND && dcode != JSConsumerNotFoundErr) {
            js_check(ds, dcode, "delete consumer " + o.durable);
        }
        jsSubOptions so;
        jsSubOptions_Init(&so);
        so.Stream = o.stream.c_str();
        so.Config.Durable = o.durable.c_str();
        so.Config.AckPolicy = js_AckAll;
        so.Config.MaxAckPending = -1;
        so.Config.DeliverPolicy = js_DeliverByStartSequence;
        so.Config.OptStartSeq = std::max<std::uint64_t>(m_next_sequence, 1);
        natsSubscription* raw_sub = nullptr;
        code = {};
        s = js_PullSubscribe(&raw_sub, m_js.get(), m_events_subject.c_str(), o.durable.c_str(), nullptr, &so, &code);
        js_check(s, code, "pull consumer " + o.durable + " on " + o.stream);
        m_sub.reset(raw_sub);
        m_last_snapshot = std::chrono::steady_clock::now();
    }

    void found_gap(std::string why) noexcept {
        bump(m_gaps);
        note("gap: " + std::move(why));
        if (m_options.request_resync) {
            (void)send_resync_request();
        }
    }

    void save_snapshot() noexcept {
        const auto& o = *m_options.jetstream;
        if (o.snapshot_path.empty() || m_index == nullptr) {
            return;
        }
        const std::uint64_t seq = m_next_sequence - 1;
        try {
            save_index_snapshot(*m_index, o.snapshot_path, seq, m_origin);
            bump(m_snapshots);
            m_snapshot_sequence.store(seq, std::memory_order_relaxed);
        } catch (const std::exception& e) {
            bump(m_snapshot_failures);
            note(std::string("snapshot failed: ") + e.what());
        }
        m_last_snapshot = std::chrono::steady_clock::now();
        m_applied_since_snapshot = false;
    }

    void run_jetstream() {
        const auto& o = *m_options.jetstream;
        const std::string_view topic = this->ingest().options().topic;
        while (!m_stop.load(std::memory_order_acquire)) {
            watch_connection(false);
            natsMsgList list{};
            jsErrCode code{};
            const natsStatus s = natsSubscription_Fetch(&list, m_sub.get(), o.fetch_batch, 200, &code);
            if (s == NATS_OK) {
                for (int i = 0; i < list.Count; ++i) {
                    handle_stream_message(list.Msgs[i], topic);
                }
                if (list.Count > 0) {
                    (void)natsMsg_Ack(list.Msgs[list.Count - 1], nullptr);  // AckAll: everything before too
                }
                natsMsgList_Destroy(&list);
            } else if (s != NATS_TIMEOUT) {
                // Disconnected, reconnecting: the client recovers; do not spin.
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
            }
            if (m_applied_since_snapshot && std::chrono::steady_clock::now() - m_last_snapshot >= o.snapshot_interval) {
                save_snapshot();
            }
        }
        if (m_applied_since_snapshot) {
            save_snapshot();
        }
    }

    void handle_stream_message(natsMsg* msg, std::string_view topic) noexcept {
        jsMsgMetaData* meta = nullptr;
        if (natsMsg_GetMetaData(&meta, msg) != NATS_OK || meta == nullptr) {
            this->ingest().reject(IngestOutcome::malformed, "JetStream message without metadata");
            return;
        }
        const std::uint64_t seq = meta->Sequence.Stream;
        jsMsgMetaData_Destroy(meta);
        if (seq < m_next_sequence) {
            return;  // already applied (a redelivery): never apply twice
        }
        if (seq > m_next_sequence && m_exclusive_stream) {
            try {
                found_gap("stream sequence jumped from " + std::to_string(m_next_sequence - 1) + " to " +
                          std::to_string(seq));
            } catch (...) {  // NOLINT(bugprone-empty-catch): counted inside when possible
            }
        }
        // Counted before the ingest counts the message: whoever waits on the ingest's
        // counters sees these too.
        bump(m_replayed);
        m_stream_sequence.store(seq, std::memory_order_relaxed);
        m_next_sequence = seq + 1;
        m_applied_since_snapshot = true;
        const auto* data = reinterpret_cast<const std::uint8_t*>(natsMsg_GetData(msg));
        (void)this->ingest().ingest(
            topic,
            std::span<const std::uint8_t>(data, static_cast<std::size_t>(std::max(0, natsMsg_GetDataLength(msg)))));
    }

    // --- core NATS -------------------------------------------------------------------------

    void run_core() {
        const std::string_view topic = this->ingest().options().topic;
        while (!m_stop.load(std::memory_order_acquire)) {
            natsMsg* raw = nullptr;
            const natsStatus s = natsSubscription_NextMsg(&raw, m_sub.get(), 100);
            if (s == NATS_OK && raw != nullptr) {
                const detail::nats_msg_ptr msg(raw);
                const auto* data = reinterpret_cast<const std::uint8_t*>(natsMsg_GetData(raw));
                (void)this->ingest().ingest(
                    topic, std::span<const std::uint8_t>(
                               data, static_cast<std::size_t>(std::max(0, natsMsg_GetDataLength(raw)))));
                if (++m_since_watch < 256) {
                    continue;  // look at the connection every 256 messages, or when idle
                }
            } else if (s == NATS_SLOW_CONSUMER) {
                // Reported once by NextMsg after drops; counted below.
            } else if (s != NATS_TIMEOUT) {
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
            }
            m_since_watch = 0;
            watch_connection(true);
        }
    }

    // Reconnections and drops: each one may have lost messages; ask for a resync.
    void watch_connection(bool core) noexcept {
        if (m_reconnect_watch.reconnected_since_last(m_connection.get())) {
            bump(m_reconnects);
            if (core && m_options.request_resync) {
                (void)send_resync_request();
            }
            // JetStream: what workers published while the broker restarted may not be in the
            // stream (in flight, or published before the server had restored the stream).
            // Once the stream answers again, ask for a resync: it then lands in the stream.
            m_stream_check_pending = !core && m_options.request_resync;
        }
        if (!core) {
            if (m_stream_check_pending) {
                jsStreamInfo* raw = nullptr;
                jsErrCode code{};
                if (js_GetStreamInfo(&raw, m_js.get(), m_options.jetstream->stream.c_str(), nullptr, &code) ==
                    NATS_OK) {
                    jsStreamInfo_Destroy(raw);
                    m_stream_check_pending = !send_resync_request();
                }
            }
            return;
        }
        int64_t dropped = 0;
        if (natsSubscription_GetDropped(m_sub.get(), &dropped) == NATS_OK &&
            static_cast<std::uint64_t>(dropped) > m_dropped_seen) {
            bump(m_dropped, static_cast<std::uint64_t>(dropped) - m_dropped_seen);
            m_dropped_seen = static_cast<std::uint64_t>(dropped);
            if (m_options.request_resync) {
                (void)send_resync_request();
            }
        }
    }

    void run() noexcept {
        try {
            if (m_options.jetstream) {
                run_jetstream();
            } else {
                run_core();
            }
        } catch (...) {
            note("kvbm::NatsHub: the loop ended on an exception");
        }
    }

    PositionalIndex<H>* m_index = nullptr;
    NatsHubOptions m_options;
    std::string m_events_subject;
    std::string m_resync_subject;
    std::string m_origin;
    detail::nats_connection_ptr m_connection;
    js_ptr m_js;
    detail::nats_subscription_ptr m_sub;
    detail::NatsReconnectWatch m_reconnect_watch;  // the hub's thread only
    std::uint64_t m_dropped_seen = 0;              // the hub's thread only
    unsigned m_since_watch = 0;                    // the hub's thread only
    std::uint64_t m_next_sequence = 1;             // the hub's thread only (after start)
    bool m_applied_since_snapshot = false;         // the hub's thread only
    bool m_exclusive_stream = true;
    bool m_stream_check_pending = false;  // the hub's thread only
    std::chrono::steady_clock::time_point m_last_snapshot{};
    std::atomic<bool> m_stop{false};
    std::thread m_thread;
    std::mutex m_join_mutex;
    mutable std::mutex m_error_mutex;
    std::string m_last_error;
    std::atomic<std::uint64_t> m_reconnects{0}, m_dropped{0}, m_resync_requests{0}, m_gaps{0}, m_replayed{0},
        m_snapshots{0}, m_snapshot_failures{0}, m_stream_sequence{0}, m_snapshot_sequence{0},
        m_snapshot_loaded_holdings{0};
};

KVBM_NAMESPACE_END
