// Hostile input costs linear time: keys crafted to collide under an unkeyed hash (today's
// std::hash<Uint128> folds `high * K ^ low`, so every key with `low = high * K ^ C` hashes
// alike) apply about as fast as random keys, because the index's maps hash with a key drawn
// per process. Without the key, 50,000 such Creates are several hundred times slower than
// random ones (quadratic: every insert walks one probe run).
#include "index_helpers.hpp"

#include <kvbm/detail/dense_map.hpp>
#include <kvbm/index.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <functional>
#include <random>

using kvbm::InstanceId;
using kvbm::PositionalIndex;
using kvbm::Uint128;
using namespace kvbm_test;

namespace {
constexpr std::uint64_t fold_k = 0x9E3779B97F4A7C15ULL;  // the multiplier of std::hash<Uint128>
constexpr std::size_t n = 50'000;

/// `count` distinct PLHs at position 5 (kvbm 1.2: mode and position live in the high word's
/// top 10 bits, kept) whose std::hash is identical: the rest of the high word varies,
/// low = high * K ^ C.
std::vector<Plh> colliding(std::size_t count) {
    const std::uint64_t top = Plh(1, 2, 5).raw().high() & ~((std::uint64_t{1} << 54) - 1);
    std::vector<Plh> out;
    std::mt19937_64 rng(11);
    for (std::size_t i = 0; i < count; ++i) {
        const std::uint64_t high = top | (rng() & ((std::uint64_t{1} << 54) - 1));
        out.push_back(Plh::from_raw(Uint128::from_parts(high, (high * fold_k) ^ 0x5eed5eed5eed5eedULL)));
    }
    return out;
}

std::vector<Plh> random_keys(std::size_t count) {
    std::vector<Plh> out;
    std::mt19937_64 rng(12);
    for (std::size_t i = 0; i < count; ++i) {
        out.emplace_back(rng(), rng(), 5);
    }
    return out;
}

/// Seconds to apply `batch` to a fresh index (which must then hold `entries`).
double apply_seconds(const Batch& batch, std::size_t entries) {
    PositionalIndex<> index(64 * 16, 16);
    const auto t0 = std::chrono::steady_clock::now();
    index.apply(batch);
    const std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
    REQUIRE(index.size() == entries);
    return dt.count();
}

/// Best of `runs` of each, interleaved so a noisy moment hits both alike.
std::pair<double, double> best_times(const std::function<double()>& a, const std::function<double()>& b, int runs) {
    double best_a = 1e9;
    double best_b = 1e9;
    for (int i = 0; i < runs; ++i) {
        best_a = std::min(best_a, a());
        best_b = std::min(best_b, b());
    }
    return {best_a, best_b};
}
}  // namespace

TEST_CASE("the crafted keys do collide under std::hash (the attack is real)", "[index][hostile]") {
    const auto keys = colliding(1000);
    const std::hash<Plh> h;
    for (const auto& k : keys) {
        CHECK(k.position() == 5);
        CHECK(h(k) == h(keys[0]));
    }
    std::vector<Plh> sorted = keys;
    std::sort(sorted.begin(), sorted.end());
    CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end());  // distinct keys
}

TEST_CASE("colliding hashes apply within 3x the time of random ones", "[index][hostile]") {
    const Batch crafted = creates(1U, colliding(n));
    const Batch random = creates(1U, random_keys(n));
    const auto [t_random, t_crafted] =
        best_times([&] { return apply_seconds(random, n); }, [&] { return apply_seconds(crafted, n); }, 5);
    INFO("random " << t_random * 1e3 << " ms, crafted " << t_crafted * 1e3 << " ms");
    CHECK(t_crafted < 3 * t_random);
}

TEST_CASE("colliding instance ids intern within 3x the time of random ones", "[index][hostile]") {
    // One single-Create batch per instance: the instance map is keyed too.
    const auto crafted_ids = colliding(n / 5);
    const auto random_ids = random_keys(n / 5);
    const auto batches_for = [](const std::vector<Plh>& ids) {
        std::vector<Batch> out;
        for (std::size_t i = 0; i < ids.size(); ++i) {
            out.push_back(creates(ids[i].raw(), chain(i + 1, 1)));  // distinct blocks: short holder sets
        }
        return out;
    };
    const auto crafted = batches_for(crafted_ids);
    const auto random = batches_for(random_ids);
    const auto run = [&](const std::vector<Batch>& batches) {
        PositionalIndex<> index(64 * 16, 16);
        const auto t0 = std::chrono::steady_clock::now();
        for (const auto& b : batches) {
            index.apply(b);
        }
        const std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
        REQUIRE(index.stats().instances == batches.size());
        return dt.count();
    };
    const auto [t_random, t_crafted] = best_times([&] { return run(random); }, [&] { return run(crafted); }, 5);
    INFO("random " << t_random * 1e3 << " ms, crafted " << t_crafted * 1e3 << " ms");
    CHECK(t_crafted < 3 * t_random);
}

TEST_CASE("the map's key is drawn at random", "[index][hostile]") {
    const auto a = kvbm::detail::random_hash_key();
    const auto b = kvbm::detail::random_hash_key();
    CHECK((a.k0 != b.k0 || a.k1 != b.k1 || a.k2 != b.k2 || a.k3 != b.k3));
    const kvbm::detail::KeyedHash<Uint128> h;
    const Uint128 x = Uint128::from_parts(1, 2);
    CHECK(h(x) == h(x));
    CHECK(kvbm::detail::keyed_hash(1, 2, a) != kvbm::detail::keyed_hash(1, 2, b));
}
