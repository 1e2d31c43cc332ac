// Helpers shared by the broadcast tests: a value that counts its live instances, and a
// bounded wait for conditions another thread makes true.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <thread>

namespace kvbm_test {

/// Counts live instances (per test: reset `live` first). Copyable and movable; a moved-from
/// value keeps existing (it is destroyed later and counted then).
struct Counted {
    static inline std::atomic<long> live{0};
    static inline std::atomic<long> copies{0};

    int value = 0;

    explicit Counted(int v) : value(v) { ++live; }
    Counted(const Counted& o) : value(o.value) {
        ++live;
        ++copies;
    }
    Counted(Counted&& o) noexcept : value(o.value) { ++live; }
    Counted& operator=(const Counted&) = default;
    Counted& operator=(Counted&&) noexcept = default;
    ~Counted() { --live; }
};

/// Throws when copied while `value == 0` (tokio's panic_in_clone).
struct ThrowOnCopy {
    int value = 0;
    explicit ThrowOnCopy(int v) : value(v) {}
    ThrowOnCopy(const ThrowOnCopy& o) : value(o.value) {
        if (value == 0) {
            throw std::runtime_error("copy of 0");
        }
    }
    ThrowOnCopy(ThrowOnCopy&&) noexcept = default;
    ThrowOnCopy& operator=(const ThrowOnCopy&) = default;
    ThrowOnCopy& operator=(ThrowOnCopy&&) noexcept = default;
};

/// Polls `pred` for up to `limit`; true once it holds.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = std::chrono::milliseconds(5000)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > deadline) {
            return false;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
}

}  // namespace kvbm_test
