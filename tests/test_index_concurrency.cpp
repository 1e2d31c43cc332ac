// PositionalIndex under one ingest thread and several query threads (run under TSan by
// scripts/test.sh): every batch is atomic for queries, and queries never see a torn state.
#include "index_helpers.hpp"

#include <kvbm/index.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

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
