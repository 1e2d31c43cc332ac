// The index's reader-writer lock: exclusive writers, shared readers, and a writer is never
// starved by readers that keep overlapping (std::shared_mutex on glibc would starve it).
#include <kvbm/detail/shared_mutex.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <vector>

using kvbm::detail::WriterPreferringSharedMutex;

TEST_CASE("writers are exclusive, readers share", "[shared_mutex][threads]") {
    WriterPreferringSharedMutex m;
    long counter = 0;  // plain on purpose: TSan reports any unsynchronized access
    std::atomic<int> writers_inside{0};
    std::atomic<int> readers_inside{0};
    std::atomic<int> violations{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 2; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 5000; ++i) {
                std::unique_lock lock(m);
                if (writers_inside.fetch_add(1) != 0 || readers_inside.load() != 0) {
                    violations.fetch_add(1);
                }
                ++counter;
                writers_inside.fetch_sub(1);
            }
        });
    }
    for (int t = 0; t < 3; ++t) {
        threads.emplace_back([&] {
            long last = 0;
            for (int i = 0; i < 5000; ++i) {
                std::shared_lock lock(m);
                readers_inside.fetch_add(1);
                if (writers_inside.load() != 0 || counter < last) {
                    violations.fetch_add(1);
                }
                last = counter;
                readers_inside.fetch_sub(1);
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    CHECK(violations.load() == 0);
    CHECK(counter == 10000);
}

TEST_CASE("a writer gets in while readers keep overlapping", "[shared_mutex][threads]") {
    WriterPreferringSharedMutex m;
    std::atomic<bool> stop{false};
    std::atomic<int> readers_started{0};
    // Three readers each hold the lock ~2 ms and re-enter at once, staggered, so a reader
    // is always inside: a reader-preferring lock would never let the writer in.
    std::vector<std::thread> readers;
    for (int r = 0; r < 3; ++r) {
        readers.emplace_back([&, r] {
            std::this_thread::sleep_for(std::chrono::microseconds(700 * r));
            readers_started.fetch_add(1);
            while (!stop.load()) {
                std::shared_lock lock(m);
                std::this_thread::sleep_for(std::chrono::milliseconds(2));
            }
        });
    }
    while (readers_started.load() < 3) {
        std::this_thread::yield();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::atomic<int> writes{0};
    std::thread writer([&] {
        for (int i = 0; i < 20; ++i) {
            std::unique_lock lock(m);
            writes.fetch_add(1);
        }
    });
    // Liveness, not speed: 20 writes need about 20 reader hold times; 20 s is generous.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (writes.load() < 20 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    const int in_time = writes.load();  // before the readers stop and free the way
    stop = true;
    writer.join();
    for (auto& t : readers) {
        t.join();
    }
    CHECK(in_time == 20);
}
