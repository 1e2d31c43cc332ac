// kv-cache-manager: a small, complete KV cache block manager (a fixed pool, prefix reuse,
// LRU eviction of free blocks) that tells Dynamo's router which blocks it holds through
// kvbm. The manager owns its block table; each cached block keeps the kvbm::AnnouncedBlock
// that `EventsManager::announce` returned, so evicting the block (or destroying the pool)
// sends its Remove. Events go out over ZeroMQ; here an in-process ZmqHub receives them and
// the program checks that the hub's index ends equal to the blocks the pool holds.
#include <kvbm/events_publisher.hpp>
#include <kvbm/manager.hpp>
#include <kvbm/tokens.hpp>
#include <kvbm/zmq.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <list>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <thread>
#include <unordered_map>
#include <vector>

using Hash = kvbm::PositionalLineageHash;
using BlockId = std::size_t;

class BlockPool {
public:
    BlockPool(std::size_t num_blocks, std::size_t block_size, std::shared_ptr<const kvbm::EventsManager<>> events)
        : m_blocks(num_blocks), m_block_size(block_size), m_events(std::move(events)) {
        for (BlockId id = 0; id < num_blocks; ++id) {
            m_blocks[id].lru = m_free.insert(m_free.end(), id);
        }
    }

    /// The blocks for a request's full token blocks, reusing cached ones (a prefix hit) and
    /// filling others from the free list; nullopt when the pool is exhausted.
    std::optional<std::vector<BlockId>> allocate(std::span<const kvbm::Token> tokens) {
        const auto seq = kvbm::TokenBlockSequence::from_slice(tokens, m_block_size);
        std::vector<BlockId> ids;
        for (const auto& tb : seq.blocks()) {
            if (auto it = m_by_hash.find(tb.plh); it != m_by_hash.end()) {
                ids.push_back(acquire(it->second));
                ++m_hits;
                continue;
            }
            if (m_free.empty()) {
                free(ids);
                return std::nullopt;
            }
            const BlockId id = acquire(m_free.front());  // least recently used
            Block& b = m_blocks[id];
            if (b.announced) {
                m_by_hash.erase(b.announced.hash());  // evicted: assigning below sends its Remove
            }
            b.announced = m_events->announce(tb.plh);  // Create(plh), unless the policy declines
            m_by_hash.emplace(tb.plh, id);
            ids.push_back(id);
        }
        return ids;
    }

    /// The request is done with its blocks: they stay cached (and announced) until evicted.
    void free(std::span<const BlockId> ids) {
        for (const BlockId id : ids) {
            if (--m_blocks[id].refs == 0) {
                m_blocks[id].lru = m_free.insert(m_free.end(), id);  // most recently used last
            }
        }
    }

    [[nodiscard]] std::set<kvbm::Uint128> cached() const {
        std::set<kvbm::Uint128> out;
        for (const auto& [hash, id] : m_by_hash) {
            out.insert(hash.raw());
        }
        return out;
    }
    [[nodiscard]] std::size_t hits() const noexcept { return m_hits; }

private:
    struct Block {
        int refs = 0;
        std::list<BlockId>::iterator lru;  // valid while refs == 0
        kvbm::AnnouncedBlock<> announced;  // the block's kvbm announcement: its end sends Remove
    };

    BlockId acquire(BlockId id) {
        if (m_blocks[id].refs++ == 0) {
            m_free.erase(m_blocks[id].lru);
        }
        return id;
    }

    std::vector<Block> m_blocks;
    std::size_t m_block_size;
    std::shared_ptr<const kvbm::EventsManager<>> m_events;
    std::list<BlockId> m_free;  // blocks no request uses, least recently used first
    std::unordered_map<Hash, BlockId> m_by_hash;
    std::size_t m_hits = 0;
};

// The hashes the hub's index lists for `instance`.
std::set<kvbm::Uint128> hub_view(const kvbm::PositionalIndex<>& index, kvbm::InstanceId instance) {
    std::set<kvbm::Uint128> out;
    for (const auto& entry : index.snapshot()) {
        if (std::find(entry.holders.begin(), entry.holders.end(), instance) != entry.holders.end()) {
            out.insert(entry.hash.raw());
        }
    }
    return out;
}

static int run_main() {
    using namespace std::chrono_literals;
    // The router side, in process for this check: a hub applying events to an index.
    kvbm::PositionalIndex<> index(/*max_seq_len=*/1 << 16, /*block_size=*/16);
    kvbm::ZmqHub<> hub(index, {"tcp://127.0.0.1:*"});

    // The worker side: the events manager, and a publisher thread that batches its events
    // and sends them over ZeroMQ to the hub.
    const kvbm::InstanceId instance{0x1234U};
    auto events = std::make_shared<kvbm::EventsManager<>>();
    auto transport = std::make_shared<kvbm::ZmqPublisher>(hub.endpoint());
    if (!transport->wait_connected(10s)) {
        std::fprintf(stderr, "kv-cache-manager: the hub did not subscribe\n");
        return 1;
    }
    kvbm::EventsPublisher publisher(*events, transport, instance);

    std::optional<BlockPool> pool(std::in_place, /*num_blocks=*/256, /*block_size=*/16, events);
    std::mt19937 rng(42);
    std::vector<std::vector<kvbm::Token>> prompts(8);  // shared system prompts
    for (auto& p : prompts) {
        p.resize(64 + rng() % 192);
        for (auto& t : p) {
            t = static_cast<kvbm::Token>(rng() % 32000);
        }
    }
    for (int request = 0; request < 2000; ++request) {
        auto tokens = prompts[rng() % prompts.size()];
        tokens.resize(tokens.size() + rng() % 128, static_cast<kvbm::Token>(request));  // the user's part
        if (auto ids = pool->allocate(tokens)) {
            pool->free(*ids);
        }
    }

    // Wait (bounded) for the hub to see everything, then compare.
    const auto want = pool->cached();
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (hub_view(index, instance) != want && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(5ms);
    }
    const bool agree = hub_view(index, instance) == want;
    std::printf("kv-cache-manager: %zu blocks cached, %zu prefix hits, hub lists %zu: %s\n", want.size(), pool->hits(),
                hub_view(index, instance).size(), agree ? "agree" : "DIFFER");

    // Stopping publishes Shutdown: the hub forgets this worker.
    pool.reset();
    const bool stopped = publisher.stop().ok();  // Shutdown delivered to the transport and flushed
    const auto gone = std::chrono::steady_clock::now() + 10s;
    while (!index.empty() && std::chrono::steady_clock::now() < gone) {
        std::this_thread::sleep_for(5ms);
    }
    std::printf("kv-cache-manager: stopped %s, hub entries after stop: %zu\n", stopped ? "cleanly" : "LATE",
                index.snapshot().size());
    return agree && stopped && index.empty() && !want.empty() ? 0 : 1;
}

// Whatever escapes the program's body is reported on one line, with a non-zero exit.
int main() {
    try {
        return run_main();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "kv-cache-manager: %s\n", e.what());
    } catch (...) {
        std::fprintf(stderr, "kv-cache-manager: unknown error\n");
    }
    return 1;
}
