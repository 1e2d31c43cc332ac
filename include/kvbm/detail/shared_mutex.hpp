/// @file kvbm/detail/shared_mutex.hpp
/// A writer-preferring reader-writer lock (SharedLockable and Lockable).
///
/// Why not std::shared_mutex: libstdc++ builds it on pthread_rwlock_t with default
/// attributes, which prefer readers, so a steady stream of overlapping queries can keep the
/// hub's single ingest thread out indefinitely. A starved ingest thread lets the ZeroMQ
/// queue overflow, and a dropped Remove leaves the index wrong for good. Here a writer that
/// arrives blocks new readers and waits only for the readers already inside.
#pragma once

#include <kvbm/config.hpp>

#include <atomic>
#include <cstdint>
#include <mutex>

KVBM_NAMESPACE_BEGIN
namespace detail {

class WriterPreferringSharedMutex {
public:
    WriterPreferringSharedMutex() = default;
    WriterPreferringSharedMutex(const WriterPreferringSharedMutex&) = delete;
    WriterPreferringSharedMutex& operator=(const WriterPreferringSharedMutex&) = delete;

    void lock_shared() noexcept {
        std::uint32_t s = m_state.load(std::memory_order_relaxed);
        for (;;) {
            if ((s & writer_bit) != 0) {
                m_state.wait(s, std::memory_order_relaxed);
                s = m_state.load(std::memory_order_relaxed);
            } else if (m_state.compare_exchange_weak(s, s + 1, std::memory_order_acquire, std::memory_order_relaxed)) {
                // acquire: pairs with the writer's release in unlock().
                return;
            }
        }
    }

    void unlock_shared() noexcept {
        // release: the writer that sees the count reach zero sees this reader's reads done.
        const std::uint32_t before = m_state.fetch_sub(1, std::memory_order_release);
        if (before == (writer_bit | 1U)) {
            m_state.notify_all();  // the last reader out wakes the waiting writer
        }
    }

    void lock() {
        m_writers.lock();  // writers queue here; the state word only ever has one writer
        std::uint32_t s = m_state.fetch_or(writer_bit, std::memory_order_acquire) | writer_bit;
        while (s != writer_bit) {
            m_state.wait(s, std::memory_order_acquire);
            s = m_state.load(std::memory_order_acquire);
        }
    }

    void unlock() noexcept {
        m_state.store(0, std::memory_order_release);  // no reader can enter while the bit is set
        m_state.notify_all();
        m_writers.unlock();
    }

private:
    static constexpr std::uint32_t writer_bit = 1U << 31;
    std::atomic<std::uint32_t> m_state{0};  // writer bit | number of readers inside
    std::mutex m_writers;
};

}  // namespace detail
KVBM_NAMESPACE_END
