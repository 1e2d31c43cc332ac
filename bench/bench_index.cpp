// The hub's positional index: apply throughput, query latency, instance removal.
// Shape: 16,384 prompts of 64 blocks (1,048,576 entries; quick: 4,096 prompts), each held
// by its owner among 8 instances and by each other instance with probability 1/8. Queries
// are 64-block prompts that follow a held prompt for a random depth 0..64 and then diverge,
// so hits land at every depth and 1 in 65 queries misses entirely.
#include "bench.hpp"

#include <kvbm/index.hpp>

#include <memory>
#include <random>
#include <shared_mutex>
#include <unordered_map>

namespace {

using Plh = kvbm::PositionalLineageHash;
using Batch = kvbm::KvbmCacheEvents<Plh>;

constexpr std::size_t blocks_per_prompt = 64;

std::vector<Plh> prompt(std::mt19937_64& rng, const std::vector<Plh>* follow = nullptr, std::size_t depth = 0) {
    std::vector<Plh> out;
    out.reserve(blocks_per_prompt);
    std::optional<std::uint64_t> parent;
    for (std::size_t i = 0; i < blocks_per_prompt; ++i) {
        if (follow != nullptr && i < depth) {
            out.push_back((*follow)[i]);
            parent = (*follow)[i].current_hash_fragment();
            continue;
        }
        const std::uint64_t current = rng();
        out.emplace_back(current, parent, i);
        parent = current;
    }
    return out;
}

struct Corpus {
    std::vector<std::vector<Plh>> prompts;
    std::vector<Batch> create_batches;  // 1024 creates each, one instance per batch
    std::vector<Batch> remove_batches;  // the same, as removes in descending position order
};

Corpus make_corpus(std::size_t prompts) {
    Corpus c;
    std::mt19937_64 rng(42);
    for (std::size_t i = 0; i < prompts; ++i) {
        c.prompts.push_back(prompt(rng));
    }
    // Per instance, the prompts it holds, cut into batches of 1024 (16 prompts).
    for (kvbm::InstanceId id = 1U; id <= kvbm::InstanceId{8U}; id += kvbm::InstanceId{1U}) {
        std::vector<Plh> held;
        for (std::size_t i = 0; i < prompts; ++i) {
            // Instance (i % 8) + 1 always holds prompt i; each other instance with p = 1/8.
            const bool owner = kvbm::InstanceId{i % 8 + 1} == id;
            if (owner || (rng() % 8) == 0) {
                held.insert(held.end(), c.prompts[i].begin(), c.prompts[i].end());
            }
        }
        for (std::size_t at = 0; at < held.size(); at += 1024) {
            const auto end = held.begin() + static_cast<std::ptrdiff_t>(std::min(held.size(), at + 1024));
            std::vector<Plh> hs(held.begin() + static_cast<std::ptrdiff_t>(at), end);
            std::stable_sort(hs.begin(), hs.end(),
                             [](const Plh& a, const Plh& b) { return a.position() < b.position(); });
            c.create_batches.push_back({kvbm::KvCacheEvents<Plh>::create(hs), id});
            std::reverse(hs.begin(), hs.end());
            c.remove_batches.push_back({kvbm::KvCacheEvents<Plh>::remove(std::move(hs)), id});
        }
    }
    return c;
}

// The baseline: the straightforward design (std::unordered_map per position, holders in a
// std::vector, std::shared_mutex, every hash looked up), same semantics, to show what
// PositionalIndex's layout and lookup order buy.
class NaiveIndex {
public:
    explicit NaiveIndex(std::size_t positions) : m_positions(positions) {}
    void apply(const Batch& b) {
        std::unique_lock lock(m_mutex);
        for (const auto& h : b.events.hashes) {
            if (h.position() >= m_positions.size()) {
                continue;
            }
            auto& map = m_positions[h.position()];
            if (b.events.kind == kvbm::BatchKind::create) {
                auto& holders = map[h];
                if (std::find(holders.begin(), holders.end(), b.instance_id) == holders.end()) {
                    holders.push_back(b.instance_id);
                }
            } else if (const auto it = map.find(h); it != map.end()) {
                std::erase(it->second, b.instance_id);
                if (it->second.empty()) {
                    map.erase(it);
                }
            }
        }
    }
    [[nodiscard]] std::optional<kvbm::IndexMatch<Plh>> query(std::span<const Plh> hashes) const {
        std::shared_lock lock(m_mutex);
        std::optional<kvbm::IndexMatch<Plh>> best;
        for (const auto& h : hashes) {
            if (h.position() >= m_positions.size() || (best && h.position() <= best->position)) {
                continue;
            }
            const auto& map = m_positions[h.position()];
            if (const auto it = map.find(h); it != map.end()) {
                best = kvbm::IndexMatch<Plh>{h, h.position(), it->second};
            }
        }
        if (best) {
            std::sort(best->holders.begin(), best->holders.end());
        }
        return best;
    }

private:
    mutable std::shared_mutex m_mutex;
    std::vector<std::unordered_map<Plh, std::vector<kvbm::InstanceId>>> m_positions;
};

std::size_t events_in(const std::vector<Batch>& batches) {
    std::size_t n = 0;
    for (const auto& b : batches) {
        n += b.events.hashes.size();
    }
    return n;
}

}  // namespace

KVBM_BENCH("index") {
    const std::size_t prompts = s.quick ? 4096 : 16384;
    const Corpus corpus = make_corpus(prompts);
    const double events = static_cast<double>(events_in(corpus.create_batches) + events_in(corpus.remove_batches));

    // apply: fill an empty index, then empty it again, batch by batch.
    const auto apply_rate = [&](auto make) {
        const double seconds = kvbm_bench::best_of(s.runs, [&] {
            auto index = make();
            const auto t0 = std::chrono::steady_clock::now();
            for (const auto& b : corpus.create_batches) {
                index->apply(b);
            }
            for (const auto& b : corpus.remove_batches) {
                index->apply(b);
            }
            const std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
            return dt.count();
        });
        return events / seconds;
    };
    kvbm_bench::report("index/apply",
                       apply_rate([] { return std::make_unique<kvbm::PositionalIndex<>>(8192 * 16, 16); }),
                       "events_per_s", 0);
    kvbm_bench::report("index_baseline/apply", apply_rate([] { return std::make_unique<NaiveIndex>(8192); }),
                       "events_per_s", 0);

    kvbm::PositionalIndex<> index(8192 * 16, 16);
    for (const auto& b : corpus.create_batches) {
        index.apply(b);
    }
    if (!s.quick && index.size() != prompts * blocks_per_prompt) {
        std::fprintf(stderr, "index: expected %zu entries, got %zu\n", prompts * blocks_per_prompt, index.size());
    }

    // query: 4096 prompts of 64 hashes, each following a held prompt to a random depth.
    std::mt19937_64 rng(7);
    std::vector<std::vector<Plh>> queries;
    std::vector<std::uint64_t> expected;
    for (int q = 0; q < 4096; ++q) {
        const auto& base = corpus.prompts[rng() % corpus.prompts.size()];
        const std::size_t depth = rng() % (blocks_per_prompt + 1);
        queries.push_back(prompt(rng, &base, depth));
        expected.push_back(depth);
    }
    for (std::size_t q = 0; q < queries.size(); ++q) {  // the figure is only worth a correct answer
        const auto m = index.query(queries[q]);
        if ((m ? m->position + 1 : 0) != expected[q]) {
            std::fprintf(stderr, "index/query: wrong answer for query %zu\n", q);
        }
    }
    const auto ns_per_query = [&](const auto& idx) {
        std::size_t next = 0;
        return kvbm_bench::ns_per_call(s.runs, static_cast<long>(queries.size()) * (s.quick ? 4 : 16), [&] {
            const auto m = idx.query(queries[next]);
            kvbm_bench::keep(m);
            next = next + 1 == queries.size() ? 0 : next + 1;
        });
    };
    kvbm_bench::report("index/query", ns_per_query(index), "ns_per_query");
    {
        NaiveIndex naive(8192);
        for (const auto& b : corpus.create_batches) {
            naive.apply(b);
        }
        kvbm_bench::report("index_baseline/query", ns_per_query(naive), "ns_per_query");
    }

    // remove_instance: one of 8 instances leaves an index of ~1M entries (Shutdown's cost).
    const double ms = kvbm_bench::best_of(s.quick ? 1 : 3, [&] {
        kvbm::PositionalIndex<> fresh(8192 * 16, 16);
        for (const auto& b : corpus.create_batches) {
            fresh.apply(b);
        }
        const auto t0 = std::chrono::steady_clock::now();
        const std::size_t removed = fresh.remove_instance(kvbm::InstanceId{8U});
        const std::chrono::duration<double, std::milli> dt = std::chrono::steady_clock::now() - t0;
        kvbm_bench::keep(removed);
        return dt.count();
    });
    kvbm_bench::report("index/remove_instance", ms, "ms", 2);
}
