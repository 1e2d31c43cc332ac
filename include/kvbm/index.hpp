/// @file kvbm/index.hpp
/// The hub's positional index: which instances (workers) hold which block, by position,
/// fed by KvbmCacheEvents batches and queried by a router for the deepest cached prefix.
#pragma once

#include <kvbm/config.hpp>
#include <kvbm/detail/dense_map.hpp>
#include <kvbm/detail/shared_mutex.hpp>
#include <kvbm/events.hpp>
#include <kvbm/hash.hpp>
#include <kvbm/metrics.hpp>
#include <kvbm/uint128.hpp>

#include <algorithm>
#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

KVBM_NAMESPACE_BEGIN

/// One index entry: a hash, its position and the instances holding it (sorted ascending,
/// never empty). What `query` answers and what `by_position`/`snapshot` list.
template <SequenceHash H = PositionalLineageHash>
struct IndexMatch {
    H hash{};
    std::uint64_t position = 0;
    std::vector<InstanceId> holders;

    friend bool operator==(const IndexMatch&, const IndexMatch&) = default;
};

/// Cumulative counters and current sizes of a PositionalIndex (a consistent snapshot).
struct IndexStats {
    std::uint64_t batches = 0;                  ///< batches applied (any kind)
    std::uint64_t creates = 0;                  ///< Create events that added a holder
    std::uint64_t creates_duplicate = 0;        ///< Create of a hash the instance already held (no change)
    std::uint64_t creates_beyond_capacity = 0;  ///< Create at a position >= capacity(): dropped
    std::uint64_t removes = 0;                  ///< Remove events that took a holder out
    std::uint64_t removes_unmatched = 0;        ///< Remove of a hash the instance did not hold (no change)
    std::uint64_t shutdowns = 0;                ///< Shutdown batches applied
    std::uint64_t removed_by_shutdown = 0;      ///< holdings dropped by Shutdown or remove_instance
    std::size_t entries = 0;                    ///< (position, hash) entries with at least one holder
    std::size_t holdings = 0;                   ///< (entry, instance) pairs
    std::size_t instances = 0;                  ///< instances holding at least one entry

    friend bool operator==(const IndexStats&, const IndexStats&) = default;
};

namespace detail {

/// The holders of one entry: small instance numbers (see PositionalIndex's interning), two
/// inline before it allocates, because most blocks are held by one or two workers.
/// Unordered; 16 bytes.
class HolderSet {
public:
    HolderSet() noexcept : m_inline{} {}
    HolderSet(const HolderSet&) = delete;
    HolderSet& operator=(const HolderSet&) = delete;
    HolderSet(HolderSet&& other) noexcept : m_size(other.m_size), m_capacity(other.m_capacity), m_inline{} {
        steal(other);
    }
    HolderSet& operator=(HolderSet&& other) noexcept {
        if (this != &other) {
            release();
            m_size = other.m_size;
            m_capacity = other.m_capacity;
            steal(other);
        }
        return *this;
    }
    ~HolderSet() { release(); }

    [[nodiscard]] std::uint32_t size() const noexcept { return m_size; }
    [[nodiscard]] bool empty() const noexcept { return m_size == 0; }
    [[nodiscard]] const std::uint32_t* data() const noexcept { return on_heap() ? m_heap : m_inline; }
    [[nodiscard]] std::span<const std::uint32_t> items() const noexcept { return {data(), m_size}; }

    [[nodiscard]] bool contains(std::uint32_t v) const noexcept {
        const std::uint32_t* d = data();
        return std::find(d, d + m_size, v) != d + m_size;
    }

    /// Adds `v`; false when already present.
    bool insert(std::uint32_t v) {
        if (contains(v)) {
            return false;
        }
        if (m_size == m_capacity) {
            const std::uint32_t cap = m_capacity * 2;
            auto* heap = new std::uint32_t[cap];
            std::memcpy(heap, data(), m_size * sizeof(std::uint32_t));
            release();
            m_heap = heap;
            m_capacity = cap;
        }
        (on_heap() ? m_heap : m_inline)[m_size++] = v;
        return true;
    }

    /// Removes `v` (the last item takes its place); false when absent.
    bool erase(std::uint32_t v) noexcept {
        std::uint32_t* d = on_heap() ? m_heap : m_inline;
        for (std::uint32_t i = 0; i < m_size; ++i) {
            if (d[i] == v) {
                d[i] = d[--m_size];
                return true;
            }
        }
        return false;
    }

private:
    static constexpr std::uint32_t inline_capacity = 2;
    [[nodiscard]] bool on_heap() const noexcept { return m_capacity > inline_capacity; }
    void release() noexcept {
        if (on_heap()) {
            delete[] m_heap;
        }
    }
    void steal(HolderSet& other) noexcept {
        if (other.on_heap()) {
            m_heap = other.m_heap;
        } else {
            std::memcpy(m_inline, other.m_inline, sizeof(m_inline));
        }
        other.m_size = 0;
        other.m_capacity = inline_capacity;
    }

    std::uint32_t m_size = 0;
    std::uint32_t m_capacity = inline_capacity;
    union {
        std::uint32_t m_inline[inline_capacity];
        std::uint32_t* m_heap;
    };
};

}  // namespace detail

/// The hub's index: for each position `0 <= p < capacity()`, a map from the hash of the
/// block at that position to the instances holding it.
///
/// Fed by `apply`: Create adds the sending instance to `bucket[position][hash]` (a Create
/// at a position >= capacity() is dropped and counted), Remove takes it out and prunes the
/// entry once no one holds it, Shutdown removes the instance everywhere. `query` answers the
/// router's question: of these hashes, which is the deepest one some instance holds, and who.
///
/// Thread-safety: every member may be called from any number of threads at once. Queries
/// and other const members share a lock; `apply`, `grow` and `remove_instance` take it
/// exclusively (one batch at a time, each batch atomic for queries). The lock prefers
/// writers (see detail/shared_mutex.hpp): a waiting ingest thread is never starved by a
/// stream of queries; a query waits at most for the batch being applied.
///
/// Cost: `query` of n hashes does at most n hash-map lookups (fewer when hashes arrive in
/// ascending position order: shallower ones after a hit need none) with their memory
/// accesses overlapped by prefetching; `apply` is one lookup per event. Memory: 32 bytes
/// per entry plus its bucket (8 bytes at 40-80% load) and vector slack, 64 bytes per
/// position. Instance ids are interned: holders are 32-bit numbers, two held inline, so a
/// block held by several workers costs little. Up to 2^32 entries per position.
template <SequenceHash H = PositionalLineageHash>
class PositionalIndex {
public:
    using hash_type = H;
    using match_type = IndexMatch<H>;

    /// An index of `max_seq_len / block_size` positions. Throws std::invalid_argument unless
    /// `block_size > 0`, `max_seq_len > 0` and `max_seq_len % block_size == 0`.
    PositionalIndex(std::uint64_t max_seq_len, std::uint64_t block_size)
        : m_block_size(block_size), m_max_seq_len(max_seq_len) {
        validate(max_seq_len, block_size);
        m_positions.resize(capacity_for(max_seq_len));
    }

    PositionalIndex(const PositionalIndex&) = delete;
    PositionalIndex& operator=(const PositionalIndex&) = delete;

    /// Number of positions: Creates at positions >= capacity() are dropped.
    [[nodiscard]] std::uint64_t capacity() const {
        std::shared_lock lock(m_mutex);
        return m_positions.size();
    }
    [[nodiscard]] std::uint64_t block_size() const noexcept { return m_block_size; }
    [[nodiscard]] std::uint64_t max_seq_len() const {
        std::shared_lock lock(m_mutex);
        return m_max_seq_len;
    }

    /// Raises max_seq_len (and so the capacity); capacity never shrinks. Equal is a no-op.
    /// Creates dropped before growing stay dropped. Throws std::invalid_argument when
    /// `max_seq_len` is smaller than the current one or not a multiple of block_size().
    void grow(std::uint64_t max_seq_len) {
        validate(max_seq_len, m_block_size);
        std::unique_lock lock(m_mutex);
        if (max_seq_len < m_max_seq_len) {
            throw std::invalid_argument("kvbm::PositionalIndex::grow: max_seq_len " + std::to_string(max_seq_len) +
                                        " is below the current " + std::to_string(m_max_seq_len) +
                                        " (capacity only grows)");
        }
        m_positions.resize(capacity_for(max_seq_len));
        m_max_seq_len = max_seq_len;
    }

    /// Applies one batch from `batch.instance_id` (see the class brief). Never fails on
    /// content: unknown removes, duplicates and out-of-range creates are counted in stats().
    /// Throws only std::bad_alloc, leaving the events before the failing one applied.
    void apply(const KvbmCacheEvents<H>& batch) {
        std::unique_lock lock(m_mutex);
        ++m_stats.batches;
        const auto& hashes = batch.events.hashes;
        switch (batch.events.kind) {
            case BatchKind::create: {
                if (hashes.empty()) {
                    break;
                }
                const std::uint32_t slot = intern(batch.instance_id);
                for (const H& h : hashes) {
                    add_locked(slot, h);
                }
                release_if_unused(slot);  // e.g. every create was beyond capacity
                break;
            }
            case BatchKind::remove: {
                const std::size_t idx = m_slot_of.find(batch.instance_id);
                if (idx == m_slot_of.npos) {
                    m_stats.removes_unmatched += hashes.size();
                    break;
                }
                const std::uint32_t slot = m_slot_of.values()[idx].second;
                for (const H& h : hashes) {
                    remove_locked(slot, h);
                }
                release_if_unused(slot);
                break;
            }
            case BatchKind::shutdown:
                ++m_stats.shutdowns;
                remove_instance_locked(batch.instance_id);
                break;
        }
    }

    /// Removes `id` from every entry (what Shutdown does); returns how many entries it held.
    /// Cost: a sequential scan of the entries, stopping as soon as the instance's last
    /// holding is found. Why a scan rather than a per-instance reverse map: a reverse map
    /// would tax every Create and Remove with a second hash-map update and ~50% more memory,
    /// to speed up an event that happens once per worker lifetime; with the few workers a hub
    /// serves, each holds a large share of the entries, so the scan visits little more than
    /// the reverse map would (bench: `index/remove_instance`).
    std::size_t remove_instance(const InstanceId& id) {
        std::unique_lock lock(m_mutex);
        return remove_instance_locked(id);
    }

    /// The deepest (greatest position) of `hashes` that at least one instance holds, with
    /// its holders sorted; nullopt when none is held. Input order does not matter. Hashes at
    /// positions >= capacity() are never held. When two held hashes share the deepest
    /// position, the smaller hash wins if H is totally ordered (PLHs are), else the one
    /// earlier in the input.
    [[nodiscard]] std::optional<match_type> query(std::span<const H> hashes) const {
        std::shared_lock lock(m_mutex);
        const std::uint64_t cap = m_positions.size();
        // Walk from the back: routers pass a prompt's blocks in ascending position order, so
        // the first hit from the back is the answer and shallower hashes need no lookup.
        // The lookups that do happen are independent, so their bucket lines are prefetched
        // `lookahead` hashes ahead to overlap the cache misses.
        constexpr std::size_t lookahead = 16;
        std::array<std::uint64_t, lookahead> mixed{};
        const std::size_t n = hashes.size();
        const auto prepare = [&](std::size_t j) {
            const std::uint64_t p = hashes[j].position();
            if (p < cap) {
                const auto& map = m_positions[static_cast<std::size_t>(p)];
                mixed[j % lookahead] = map.hash_of(hashes[j]);
                map.prefetch_bucket(mixed[j % lookahead]);
            }
        };
        for (std::size_t j = n; j-- > n - std::min(n, lookahead);) {
            prepare(j);
        }
        bool found = false;
        std::uint64_t best_pos = 0;
        std::size_t best_index = 0;
        const H* best_hash = nullptr;
        for (std::size_t i = n; i-- > 0;) {
            const std::uint64_t p = hashes[i].position();
            std::size_t idx = PositionMap::npos;
            if (p < cap && (!found || p >= best_pos)) {
                idx = m_positions[static_cast<std::size_t>(p)].find(hashes[i], mixed[i % lookahead]);
            }
            // Only now: hash i - lookahead shares hash i's slot in `mixed`.
            if (i >= lookahead && (!found || hashes[i - lookahead].position() >= best_pos)) {
                prepare(i - lookahead);
            }
            if (idx == PositionMap::npos || (found && p == best_pos && !prefer(hashes[i], *best_hash))) {
                continue;
            }
            found = true;
            best_pos = p;
            best_index = idx;
            best_hash = &hashes[i];
        }
        if (!found) {
            return std::nullopt;
        }
        const auto& entry = m_positions[static_cast<std::size_t>(best_pos)].values()[best_index];
        return match_type{entry.first, best_pos, holders_of(entry.second)};
    }

    /// The holders of `hash`, sorted; empty when no instance holds it.
    [[nodiscard]] std::vector<InstanceId> holders(const H& hash) const {
        std::shared_lock lock(m_mutex);
        const std::uint64_t p = hash.position();
        if (p >= m_positions.size()) {
            return {};
        }
        const auto& map = m_positions[static_cast<std::size_t>(p)];
        const std::size_t idx = map.find(hash);
        return idx == map.npos ? std::vector<InstanceId>{} : holders_of(map.values()[idx].second);
    }

    /// Every entry at `position` (empty beyond capacity), sorted by hash when H is totally
    /// ordered.
    [[nodiscard]] std::vector<match_type> by_position(std::uint64_t position) const {
        std::vector<match_type> out;
        std::shared_lock lock(m_mutex);
        if (position < m_positions.size()) {
            append_position(position, out);
        }
        return out;
    }

    /// Every entry, by position then hash: the hub's whole view (for checks and debugging;
    /// it copies everything under the shared lock).
    [[nodiscard]] std::vector<match_type> snapshot() const {
        std::vector<match_type> out;
        std::shared_lock lock(m_mutex);
        out.reserve(m_entries);
        for (std::uint64_t p = 0; p < m_positions.size(); ++p) {
            append_position(p, out);
        }
        return out;
    }

    /// Number of entries `id` holds (0 for an unknown instance).
    [[nodiscard]] std::size_t entries_of(const InstanceId& id) const {
        std::shared_lock lock(m_mutex);
        const std::size_t idx = m_slot_of.find(id);
        return idx == m_slot_of.npos ? 0 : m_slots[m_slot_of.values()[idx].second].entries;
    }

    /// The instances holding at least one entry, sorted.
    [[nodiscard]] std::vector<InstanceId> instances() const {
        std::vector<InstanceId> out;
        std::shared_lock lock(m_mutex);
        out.reserve(m_slot_of.size());
        for (const auto& kv : m_slot_of.values()) {
            out.push_back(kv.first);
        }
        lock.unlock();
        std::sort(out.begin(), out.end());
        return out;
    }

    /// Number of (position, hash) entries with at least one holder.
    [[nodiscard]] std::size_t size() const {
        std::shared_lock lock(m_mutex);
        return m_entries;
    }
    [[nodiscard]] bool empty() const { return size() == 0; }

    /// Creates dropped because their position was >= capacity() at the time.
    [[nodiscard]] std::uint64_t creates_beyond_capacity() const {
        std::shared_lock lock(m_mutex);
        return m_stats.creates_beyond_capacity;
    }

    [[nodiscard]] IndexStats stats() const {
        std::shared_lock lock(m_mutex);
        IndexStats s = m_stats;
        s.entries = m_entries;
        s.holdings = m_holdings;
        s.instances = m_slot_of.size();
        return s;
    }

    /// The metrics (see <kvbm/metrics.hpp>), from one stats() snapshot: gauges
    /// `kvbm_hub_index_entries`, `kvbm_hub_index_holdings`, `kvbm_hub_index_instances`,
    /// `kvbm_hub_index_positions`; counters `kvbm_hub_index_batches_total`,
    /// `kvbm_hub_index_events_total{kind,result}` (create added/duplicate/beyond_capacity,
    /// remove removed/unmatched), `kvbm_hub_index_shutdowns_total` and
    /// `kvbm_hub_index_removed_by_shutdown_total`. Takes the shared lock briefly.
    template <class Visitor>
    void for_each_metric(Visitor&& visit) const {
        using detail::visit_metric;
        const IndexStats s = stats();
        const std::uint64_t positions = capacity();
        const auto v = [](std::uint64_t x) { return static_cast<double>(x); };
        visit_metric(visit, "kvbm_hub_index_entries", "(position, hash) entries held by at least one instance.",
                     MetricKind::gauge, v(s.entries));
        visit_metric(visit, "kvbm_hub_index_holdings", "(entry, instance) pairs in the index.", MetricKind::gauge,
                     v(s.holdings));
        visit_metric(visit, "kvbm_hub_index_instances", "Instances holding at least one entry.", MetricKind::gauge,
                     v(s.instances));
        visit_metric(visit, "kvbm_hub_index_positions", "Positions the index holds (max_seq_len / block_size).",
                     MetricKind::gauge, v(positions));
        visit_metric(visit, "kvbm_hub_index_batches_total", "Batches applied to the index (any kind).",
                     MetricKind::counter, v(s.batches));
        constexpr std::string_view events_help = "Create and Remove events applied, by kind and result.";
        visit_metric(visit, "kvbm_hub_index_events_total", events_help, MetricKind::counter,
                     {{"kind", "create"}, {"result", "added"}}, v(s.creates));
        visit_metric(visit, "kvbm_hub_index_events_total", events_help, MetricKind::counter,
                     {{"kind", "create"}, {"result", "duplicate"}}, v(s.creates_duplicate));
        visit_metric(visit, "kvbm_hub_index_events_total", events_help, MetricKind::counter,
                     {{"kind", "create"}, {"result", "beyond_capacity"}}, v(s.creates_beyond_capacity));
        visit_metric(visit, "kvbm_hub_index_events_total", events_help, MetricKind::counter,
                     {{"kind", "remove"}, {"result", "removed"}}, v(s.removes));
        visit_metric(visit, "kvbm_hub_index_events_total", events_help, MetricKind::counter,
                     {{"kind", "remove"}, {"result", "unmatched"}}, v(s.removes_unmatched));
        visit_metric(visit, "kvbm_hub_index_shutdowns_total", "Shutdown batches applied.", MetricKind::counter,
                     v(s.shutdowns));
        visit_metric(visit, "kvbm_hub_index_removed_by_shutdown_total",
                     "Holdings dropped by Shutdown or remove_instance.", MetricKind::counter, v(s.removed_by_shutdown));
    }

private:
    using PositionMap = detail::DenseMap<H, detail::HolderSet>;
    struct InstanceSlot {
        InstanceId id;
        std::size_t entries = 0;
    };

    static void validate(std::uint64_t max_seq_len, std::uint64_t block_size) {
        if (block_size == 0) {
            throw std::invalid_argument("kvbm::PositionalIndex: block_size must be > 0");
        }
        if (max_seq_len == 0 || max_seq_len % block_size != 0) {
            throw std::invalid_argument("kvbm::PositionalIndex: max_seq_len " + std::to_string(max_seq_len) +
                                        " must be a positive multiple of block_size " + std::to_string(block_size));
        }
    }
    [[nodiscard]] std::size_t capacity_for(std::uint64_t max_seq_len) const {
        return static_cast<std::size_t>(max_seq_len / m_block_size);
    }

    /// Tie-break between two held hashes at the same position (see query).
    [[nodiscard]] static bool prefer(const H& candidate, const H& current) {
        if constexpr (std::totally_ordered<H>) {
            return candidate < current;
        } else {
            return true;
        }
    }

    [[nodiscard]] std::vector<InstanceId> holders_of(const detail::HolderSet& set) const {
        std::vector<InstanceId> out;
        out.reserve(set.size());
        for (const std::uint32_t slot : set.items()) {
            out.push_back(m_slots[slot].id);
        }
        std::sort(out.begin(), out.end());
        return out;
    }

    void append_position(std::uint64_t position, std::vector<match_type>& out) const {
        const std::size_t first = out.size();
        for (const auto& [hash, set] : m_positions[static_cast<std::size_t>(position)].values()) {
            out.push_back(match_type{hash, position, holders_of(set)});
        }
        if constexpr (std::totally_ordered<H>) {
            std::sort(out.begin() + static_cast<std::ptrdiff_t>(first), out.end(),
                      [](const match_type& a, const match_type& b) { return a.hash < b.hash; });
        }
    }

    /// The slot number of `id`, allocating one (reusing a freed one) for a new instance.
    /// Strong guarantee: every allocation happens before anything changes.
    std::uint32_t intern(const InstanceId& id) {
        if (const std::size_t idx = m_slot_of.find(id); idx != m_slot_of.npos) {
            return m_slot_of.values()[idx].second;
        }
        if (m_free_slots.empty() && m_slots.size() == m_slots.capacity()) {
            // Geometric growth (reserve(size + 1) would copy every slot per new instance:
            // quadratic for a peer that sends many instance ids).
            const std::size_t cap = std::max<std::size_t>(8, 2 * m_slots.size());
            m_slots.reserve(cap);
            m_free_slots.reserve(cap);  // so release_if_unused never allocates
        }
        const std::size_t idx = m_slot_of.try_emplace(id).first;
        std::uint32_t slot = 0;
        if (!m_free_slots.empty()) {
            slot = m_free_slots.back();
            m_free_slots.pop_back();
            m_slots[slot] = InstanceSlot{id, 0};
        } else {
            slot = static_cast<std::uint32_t>(m_slots.size());
            m_slots.push_back(InstanceSlot{id, 0});
        }
        m_slot_of.values()[idx].second = slot;
        return slot;
    }

    /// Forgets an instance that holds nothing any more, so its slot can be reused.
    void release_if_unused(std::uint32_t slot) noexcept {
        if (m_slots[slot].entries != 0) {
            return;
        }
        m_slot_of.erase_at(m_slot_of.find(m_slots[slot].id));
        m_free_slots.push_back(slot);
    }

    void add_locked(std::uint32_t slot, const H& h) {
        const std::uint64_t p = h.position();
        if (p >= m_positions.size()) {
            ++m_stats.creates_beyond_capacity;
            return;
        }
        auto& map = m_positions[static_cast<std::size_t>(p)];
        const auto [idx, fresh] = map.try_emplace(h);
        if (!map.values()[idx].second.insert(slot)) {
            ++m_stats.creates_duplicate;
            return;
        }
        m_entries += fresh ? 1 : 0;
        ++m_holdings;
        ++m_slots[slot].entries;
        ++m_stats.creates;
    }

    void remove_locked(std::uint32_t slot, const H& h) {
        const std::uint64_t p = h.position();
        if (p >= m_positions.size()) {
            ++m_stats.removes_unmatched;
            return;
        }
        auto& map = m_positions[static_cast<std::size_t>(p)];
        const std::size_t idx = map.find(h);
        if (idx == map.npos || !map.values()[idx].second.erase(slot)) {
            ++m_stats.removes_unmatched;
            return;
        }
        if (map.values()[idx].second.empty()) {
            map.erase_at(idx);  // prune: an entry nobody holds must not answer queries
            --m_entries;
        }
        --m_holdings;
        --m_slots[slot].entries;
        ++m_stats.removes;
    }

    std::size_t remove_instance_locked(const InstanceId& id) {
        const std::size_t sidx = m_slot_of.find(id);
        if (sidx == m_slot_of.npos) {
            return 0;
        }
        const std::uint32_t slot = m_slot_of.values()[sidx].second;
        const std::size_t held = m_slots[slot].entries;
        std::size_t left = held;
        for (std::size_t p = 0; p < m_positions.size() && left != 0; ++p) {
            auto& map = m_positions[p];
            auto& values = map.values();
            for (std::size_t i = 0; i < values.size() && left != 0;) {
                if (!values[i].second.erase(slot)) {
                    ++i;
                    continue;
                }
                --left;
                if (values[i].second.empty()) {
                    map.erase_at(i);  // the last entry moved to i: look at i again
                    --m_entries;
                } else {
                    ++i;
                }
            }
        }
        m_holdings -= held;
        m_stats.removed_by_shutdown += held;
        m_slots[slot].entries = 0;
        release_if_unused(slot);
        return held;
    }

    mutable detail::WriterPreferringSharedMutex m_mutex;
    std::vector<PositionMap> m_positions;
    std::uint64_t m_block_size;
    std::uint64_t m_max_seq_len;
    // Instance interning: holders store slot numbers, m_slots maps them back.
    detail::DenseMap<InstanceId, std::uint32_t> m_slot_of;
    std::vector<InstanceSlot> m_slots;
    std::vector<std::uint32_t> m_free_slots;
    std::size_t m_entries = 0;
    std::size_t m_holdings = 0;
    IndexStats m_stats;
};

KVBM_NAMESPACE_END
