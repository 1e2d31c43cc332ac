// Helpers shared by the broadcast tests: a value that counts its live instances, and a
// bounded wait for conditions another thread makes true.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

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

/// A value whose move (and copy) constructors throw on demand: `arm(n)` makes the n-th
/// next move or copy (1 = the next) throw. Holds a heap string, so a use of garbage or a
/// double destruction shows under ASan; counts live instances.
struct ThrowingMove {
    static inline std::atomic<long> live{0};
    static inline std::atomic<int> countdown{0};  // 0: never throw
    static void arm(int n) { countdown = n; }
    static void tick() {
        if (countdown > 0 && --countdown == 0) {
            throw std::runtime_error("move of ThrowingMove");
        }
    }

    std::string text;  // the value in decimal, padded past the small-string buffer

    explicit ThrowingMove(int v) : text(std::to_string(v)) {
        text.append(32, '.');
        ++live;
    }
    ThrowingMove(const ThrowingMove& o) : text((tick(), o.text)) { ++live; }
    // Throws on purpose: the type the channel must survive.
    // NOLINTNEXTLINE(performance-noexcept-move-constructor)
    ThrowingMove(ThrowingMove&& o) : text((tick(), std::move(o.text))) { ++live; }
    ThrowingMove& operator=(const ThrowingMove&) = default;
    ThrowingMove& operator=(ThrowingMove&&) = default;
    ~ThrowingMove() { --live; }

    [[nodiscard]] int value() const { return std::stoi(text); }
};

/// Aborts the process with a message if not destroyed within `limit`: a test that would hang
/// (a lock never released, a receiver never woken) fails at once with a clear reason.
class Watchdog {
public:
    explicit Watchdog(const char* what, std::chrono::seconds limit = std::chrono::seconds(60))
        : m_thread([this, what, limit] {
              std::unique_lock<std::mutex> lock(m_mutex);
              if (!m_cv.wait_for(lock, limit, [this] { return m_done; })) {
                  std::fprintf(stderr, "watchdog: '%s' still running after %llds: hung\n", what,
                               static_cast<long long>(limit.count()));
                  std::abort();
              }
          }) {}
    Watchdog(const Watchdog&) = delete;
    Watchdog& operator=(const Watchdog&) = delete;
    ~Watchdog() {
        {
            std::lock_guard<std::mutex> lock(m_mutex);
            m_done = true;
        }
        m_cv.notify_all();
        m_thread.join();
    }

private:
    std::mutex m_mutex;
    std::condition_variable m_cv;
    bool m_done = false;
    std::thread m_thread;
};

/// The value of the series `name` a metrics source (e.g. a Sender) reports; -1 if absent.
template <class Source>
double metric(const Source& source, std::string_view name) {
    double value = -1;
    source.for_each_metric([&](const auto& m) {
        if (m.name == name) {
            value = m.value;
        }
    });
    return value;
}

/// Runs `f` when destroyed: declared after the threads it must unblock (close the channel,
/// request a stop), so that a failing REQUIRE unwinds into a close, not into a join on a
/// thread still blocked in recv().
template <class F>
class OnExit {
public:
    explicit OnExit(F f) : m_f(std::move(f)) {}
    OnExit(const OnExit&) = delete;
    OnExit& operator=(const OnExit&) = delete;
    ~OnExit() { m_f(); }

private:
    F m_f;
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
