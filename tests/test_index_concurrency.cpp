// PositionalIndex under one ingest thread and several query threads (run under TSan by
// scripts/test.sh): every batch is atomic for queries, and queries never see a torn state.
#include "index_helpers.hpp"

#include <kvbm/index.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

using kvbm::InstanceId;
using kvbm::PositionalIndex;
using namespace kvbm_test;

TEST_CASE("concurrent queries during apply see whole batches", "[index][threads]") {
    PositionalIndex<> index(64 * 16, 16);
    const auto prompt = chain(1, 64);
    const std::vector<Plh> prefix(prompt.begin(), prompt.begin() + 11);
    index.apply(creates(2U, prefix));  // instance 2 holds positions 0..10 throughout

    std::atomic<bool> stop{false};
    std::atomic<long> deep{0};
    std::atomic<long> shallow{0};
    std::atomic<long> wrong{0};
    std::vector<std::thread> readers;
    for (int r = 0; r < 3; ++r) {
        readers.emplace_back([&] {
            while (!stop.load(std::memory_order_relaxed)) {
                const auto m = index.query(prompt);
                if (m && m->position == 63 && m->holders == std::vector<InstanceId>{1U}) {
                    deep.fetch_add(1, std::memory_order_relaxed);
                } else if (m && m->position == 10 && m->holders == std::vector<InstanceId>{2U}) {
                    shallow.fetch_add(1, std::memory_order_relaxed);
                } else {
                    wrong.fetch_add(1, std::memory_order_relaxed);
                }
                const auto s = index.stats();
                if (s.entries != 11 && s.entries != 64) {
                    wrong.fetch_add(1, std::memory_order_relaxed);
                }
            }
        });
    }
    // Instance 1 takes the suffix 11..63 and gives it back, by Remove or by Shutdown.
    const std::vector<Plh> suffix(prompt.begin() + 11, prompt.end());
    const std::vector<Plh> suffix_desc(suffix.rbegin(), suffix.rend());
    while (deep.load() + shallow.load() + wrong.load() == 0) {  // start once a reader runs: they overlap
        std::this_thread::yield();
    }
    for (int i = 0; i < 2000; ++i) {
        index.apply(creates(1U, suffix));
        if (i % 2 == 0) {
            index.apply(removes(1U, suffix_desc));
        } else {
            index.apply(shutdown(1U));
        }
        if (i % 100 == 0) {
            std::this_thread::yield();  // let readers in between pairs too
        }
    }
    stop = true;
    for (auto& t : readers) {
        t.join();
    }
    CHECK(wrong.load() == 0);
    CHECK(deep.load() + shallow.load() > 0);
    CHECK(index.size() == 11);
    CHECK(index.stats().batches == 1 + 2 * 2000);
}

TEST_CASE("two writers, grow, remove_instance and every reader at once", "[index][threads]") {
    // Writers 1 and 2 each create their 64-block chain in one batch and take it back in one
    // batch (Remove, or Shutdown); a third thread sweeps instance 1 with remove_instance and
    // grows the index; readers use query, holders, by_position, snapshot, stats, metrics.
    // Every batch and every sweep is atomic for readers, so each chain is seen whole or not
    // at all, with exactly its own holder.
    PositionalIndex<> index(64 * 16, 16);
    const auto a = chain(21, 64);
    const auto b = chain(22, 64);
    const std::vector<Plh> a_desc(a.rbegin(), a.rend());
    constexpr int rounds = 1500;

    std::atomic<bool> stop{false};
    std::atomic<long> wrong{0};
    std::atomic<long> seen_whole{0};
    const auto fail = [&] { wrong.fetch_add(1, std::memory_order_relaxed); };
    const auto count_in = [](const std::vector<kvbm::IndexMatch<Plh>>& entries, const std::vector<Plh>& c,
                             InstanceId holder, bool& bad) {
        std::size_t n = 0;
        for (const auto& e : entries) {
            if (std::find(c.begin(), c.end(), e.hash) != c.end()) {
                ++n;
                bad = bad || e.holders != std::vector<InstanceId>{holder};
            }
        }
        return n;
    };

    std::thread writer1([&] {
        for (int i = 0; i < rounds; ++i) {
            index.apply(creates(1U, a));
            index.apply(i % 2 == 0 ? removes(1U, a_desc) : shutdown(1U));
        }
    });
    std::thread writer2([&] {
        for (int i = 0; i < rounds; ++i) {
            index.apply(creates(2U, b));
            index.apply(shutdown(2U));
        }
    });
    std::thread sweeper([&] {  // and grower
        std::uint64_t max_seq_len = 64 * 16;
        while (!stop.load(std::memory_order_relaxed) || max_seq_len < 256 * 16) {
            const std::size_t swept = index.remove_instance(1U);
            if (swept != 0 && swept != 64) {
                fail();
            }
            if (max_seq_len < 256 * 16) {
                max_seq_len += 16;
                index.grow(max_seq_len);
            }
            std::this_thread::yield();
        }
    });
    std::vector<std::thread> readers;
    readers.emplace_back([&] {  // query and holders
        while (!stop.load(std::memory_order_relaxed)) {
            for (const auto* c : {&a, &b}) {
                const InstanceId holder = c == &a ? InstanceId{1U} : InstanceId{2U};
                const auto m = index.query(*c);
                if (m && (m->position != 63 || m->holders != std::vector<InstanceId>{holder})) {
                    fail();
                }
                const auto h = index.holders((*c)[40]);
                if (!h.empty() && h != std::vector<InstanceId>{holder}) {
                    fail();
                }
            }
        }
    });
    readers.emplace_back([&] {  // snapshot and by_position
        while (!stop.load(std::memory_order_relaxed)) {
            bool bad = false;
            const auto snap = index.snapshot();
            const std::size_t na = count_in(snap, a, 1U, bad);
            const std::size_t nb = count_in(snap, b, 2U, bad);
            if (bad || (na != 0 && na != 64) || (nb != 0 && nb != 64) || snap.size() != na + nb) {
                fail();
            }
            seen_whole.fetch_add(na == 64 ? 1 : 0, std::memory_order_relaxed);
            for (std::size_t i = 1; i < snap.size(); ++i) {
                if (snap[i - 1].position > snap[i].position) {
                    fail();
                }
            }
            const auto at = index.by_position(17);
            if (at.size() > 2 || std::any_of(at.begin(), at.end(), [](const auto& e) { return e.position != 17; })) {
                fail();
            }
        }
    });
    readers.emplace_back([&] {  // stats, capacity and metrics
        std::uint64_t last_capacity = 0;
        while (!stop.load(std::memory_order_relaxed)) {
            const auto s = index.stats();
            if (s.entries % 64 != 0 || s.holdings != s.entries || s.instances > 2) {
                fail();
            }
            const std::uint64_t cap = index.capacity();
            if (cap < last_capacity || cap < 64) {
                fail();
            }
            last_capacity = cap;
            double entries = -1;
            index.for_each_metric([&](const kvbm::Metric& m) {
                if (m.name == "kvbm_hub_index_entries") {
                    entries = m.value;
                }
            });
            if (entries < 0 || static_cast<std::uint64_t>(entries) % 64 != 0) {
                fail();
            }
        }
    });
    writer1.join();
    writer2.join();
    stop = true;
    sweeper.join();
    for (auto& t : readers) {
        t.join();
    }
    CHECK(wrong.load() == 0);
    CHECK(index.empty());
    CHECK(index.capacity() == 256);
    const auto s = index.stats();
    CHECK(s.batches == 4 * rounds);
    CHECK(s.creates == s.removes + s.removed_by_shutdown);
    CHECK(s.holdings == 0);
    INFO("snapshots that saw chain a whole: " << seen_whole.load());
}
