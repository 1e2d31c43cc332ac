// PositionalIndex against a plain reference model (std::map of std::set) under random
// batches: creates, removes, duplicates, unknown removes, shutdowns, growth. Exercises the
// hash map's growth, erase and backward-shift paths with many keys per position.
#include "index_helpers.hpp"

#include <kvbm/index.hpp>

#include <catch2/catch.hpp>

#include <map>
#include <random>
#include <set>

using kvbm::InstanceId;
using kvbm::PositionalIndex;
using namespace kvbm_test;

namespace {
struct Model {
    std::uint64_t capacity;
    std::map<std::pair<std::uint64_t, Plh>, std::set<InstanceId>> entries;

    void apply(const Batch& b) {
        switch (b.events.kind) {
            case kvbm::BatchKind::create:
                for (const auto& h : b.events.hashes) {
                    if (h.position() < capacity) {
                        entries[{h.position(), h}].insert(b.instance_id);
                    }
                }
                break;
            case kvbm::BatchKind::remove:
                for (const auto& h : b.events.hashes) {
                    const auto it = entries.find({h.position(), h});
                    if (it != entries.end() && it->second.erase(b.instance_id) == 1 && it->second.empty()) {
                        entries.erase(it);
                    }
                }
                break;
            case kvbm::BatchKind::shutdown:
                for (auto it = entries.begin(); it != entries.end();) {
                    it->second.erase(b.instance_id);
                    it = it->second.empty() ? entries.erase(it) : std::next(it);
                }
                break;
        }
    }
    [[nodiscard]] std::optional<kvbm::IndexMatch<Plh>> query(const std::vector<Plh>& hs) const {
        std::optional<kvbm::IndexMatch<Plh>> best;
        for (const auto& h : hs) {
            const auto it = entries.find({h.position(), h});
            if (it == entries.end()) {
                continue;
            }
            if (!best || h.position() > best->position || (h.position() == best->position && h < best->hash)) {
                best = kvbm::IndexMatch<Plh>{h, h.position(), {it->second.begin(), it->second.end()}};
            }
        }
        return best;
    }
};
}  // namespace

TEST_CASE("random batches agree with a reference model", "[index]") {
    const auto seed = GENERATE(1U, 2U, 3U);
    std::mt19937_64 rng(seed);
    PositionalIndex<> index(40 * 16, 16);
    Model model{40, {}};

    // A small universe of chains, so creates collide and shared prefixes are common.
    std::vector<std::vector<Plh>> universe;
    for (std::uint64_t i = 0; i < 300; ++i) {
        universe.push_back(chain(i, 48, i % 7, static_cast<std::size_t>(i % 30)));
    }
    const std::vector<InstanceId> instances{1U, 2U, 3U, kvbm::Uint128::from_parts(~0ULL, 5), 9U};
    const auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };

    for (int step = 0; step < 4000; ++step) {
        const InstanceId id = instances[pick(instances.size())];
        const auto& c = universe[pick(universe.size())];
        const std::size_t from = pick(c.size());
        const std::size_t to = from + 1 + pick(c.size() - from);
        std::vector<Plh> hs(c.begin() + static_cast<std::ptrdiff_t>(from), c.begin() + static_cast<std::ptrdiff_t>(to));
        const auto r = rng() % 100;
        Batch b;
        if (r < 55) {
            b = creates(id, hs);
        } else if (r < 97) {
            std::reverse(hs.begin(), hs.end());
            b = removes(id, hs);
        } else {
            b = shutdown(id);
        }
        index.apply(b);
        model.apply(b);
        if (step == 2000) {  // growth in the middle keeps everything
            index.grow(48 * 16);
            model.capacity = 48;
        }
        if (step % 97 == 0) {
            const auto snap = index.snapshot();
            REQUIRE(snap.size() == model.entries.size());
            auto it = model.entries.begin();
            for (const auto& e : snap) {
                CHECK(e.position == it->first.first);
                CHECK(e.hash == it->first.second);
                CHECK(e.holders == std::vector<InstanceId>(it->second.begin(), it->second.end()));
                ++it;
            }
        }
        const auto& q = universe[pick(universe.size())];
        CHECK(index.query(q) == model.query(q));
    }
    std::size_t holdings = 0;
    for (const auto& [key, holders] : model.entries) {
        holdings += holders.size();
    }
    const auto s = index.stats();
    CHECK(s.entries == model.entries.size());
    CHECK(s.holdings == holdings);
    for (const auto& id : instances) {
        index.apply(shutdown(id));
    }
    CHECK(index.empty());
    CHECK(index.stats().holdings == 0);
}

TEST_CASE("one position with many keys: growth, erase in every order", "[index]") {
    PositionalIndex<> index(16, 16);  // a single position: all keys in one map
    std::vector<Plh> hs;
    for (std::uint64_t i = 0; i < 20000; ++i) {
        hs.emplace_back(i * 0x9E3779B97F4A7C15ULL, std::nullopt, 0);
    }
    index.apply(creates(1U, hs));
    REQUIRE(index.size() == hs.size());
    std::mt19937_64 rng(11);
    std::shuffle(hs.begin(), hs.end(), rng);
    for (std::size_t i = 0; i < hs.size(); i += 2) {
        index.apply(removes(1U, {hs[i]}));
    }
    REQUIRE(index.size() == hs.size() / 2);
    for (std::size_t i = 0; i < hs.size(); ++i) {
        CHECK(index.holders(hs[i]).empty() == (i % 2 == 0));
    }
    index.apply(shutdown(1U));
    CHECK(index.empty());
}
