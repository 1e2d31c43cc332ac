// kvbm-bench plumbing: each bench_*.cpp registers its figures; main runs them and prints
// one `name value unit` line per figure, the format the Rust reference's `bench` prints,
// so the two outputs can be set side by side.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace kvbm_bench {

struct settings {
    bool quick = false;
    int runs = 7;  // best of this many runs, as the reference does
};

using bench_fn = std::function<void(const settings&)>;

struct registry {
    static std::vector<std::pair<std::string, bench_fn>>& all() {
        static std::vector<std::pair<std::string, bench_fn>> benches;
        return benches;
    }
};

/// Registers a group of figures under `name` (selected on the command line by prefix).
struct registrar {
    registrar(std::string name, bench_fn fn) { registry::all().emplace_back(std::move(name), std::move(fn)); }
};

/// Prints one figure.
inline void report(const std::string& name, double value, const char* unit, int precision = 1) {
    std::printf("%s %.*f %s\n", name.c_str(), precision, value, unit);
    std::fflush(stdout);
}

/// Best (lowest) of `runs` calls of `f`, each returning a measurement.
template <class F>
double best_of(int runs, F&& f) {
    double best = std::numeric_limits<double>::infinity();
    for (int i = 0; i < runs; ++i) {
        best = std::min(best, static_cast<double>(f()));
    }
    return best;
}

/// Nanoseconds per call of `f`, averaged over `iters` calls, best of `runs`.
template <class F>
double ns_per_call(int runs, long iters, F&& f) {
    return best_of(runs, [&] {
        const auto t0 = std::chrono::steady_clock::now();
        for (long i = 0; i < iters; ++i) {
            f();
        }
        const std::chrono::duration<double, std::nano> dt = std::chrono::steady_clock::now() - t0;
        return dt.count() / static_cast<double>(iters);
    });
}

/// Keeps a value alive in the optimizer's eyes (like std::hint::black_box).
template <class T>
inline void keep(T const& value) {
    asm volatile("" : : "r,m"(value) : "memory");
}

}  // namespace kvbm_bench

#define KVBM_BENCH_CAT2(a, b) a##b
#define KVBM_BENCH_CAT(a, b) KVBM_BENCH_CAT2(a, b)
/// KVBM_BENCH("group") { ...body using `s` (settings)... }
#define KVBM_BENCH(name)                                                                   \
    static void KVBM_BENCH_CAT(kvbm_bench_fn_, __LINE__)(const ::kvbm_bench::settings& s); \
    static const ::kvbm_bench::registrar KVBM_BENCH_CAT(kvbm_bench_reg_, __LINE__){        \
        name, KVBM_BENCH_CAT(kvbm_bench_fn_, __LINE__)};                                   \
    static void KVBM_BENCH_CAT(kvbm_bench_fn_, __LINE__)([[maybe_unused]] const ::kvbm_bench::settings& s)
