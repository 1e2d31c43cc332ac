// The broadcast channel a user would write first, as the baseline kvbm-bench compares
// kvbm::broadcast with: one std::mutex, one std::condition_variable and a std::deque per
// receiver. send copies the value into every receiver's deque (dropping the oldest when a
// deque is full, counted as lag) and notifies all; recv waits on the condition variable.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

namespace kvbm_bench {

template <class T>
class MutexBroadcast {
public:
    struct Queue {
        std::deque<T> values;
        std::uint64_t lagged = 0;
    };

    explicit MutexBroadcast(std::size_t capacity) : m_capacity(capacity) {}

    std::shared_ptr<Queue> subscribe() {
        auto q = std::make_shared<Queue>();
        std::lock_guard<std::mutex> lock(m_mutex);
        m_queues.push_back(q);
        return q;
    }

    /// Returns how many receivers got the value.
    std::size_t send(const T& value) {
        std::size_t n = 0;
        {
            std::lock_guard<std::mutex> lock(m_mutex);
            for (const auto& q : m_queues) {
                if (q->values.size() == m_capacity) {
                    q->values.pop_front();
                    ++q->lagged;
                }
                q->values.push_back(value);
            }
            n = m_queues.size();
        }
        m_cv.notify_all();
        return n;
    }

    void close() {
        {
            std::lock_guard<std::mutex> lock(m_mutex);
            m_closed = true;
        }
        m_cv.notify_all();
    }

    std::optional<T> try_recv(Queue& q) {
        std::lock_guard<std::mutex> lock(m_mutex);
        return pop(q);
    }

    /// Waits for a value; nullopt once closed and drained.
    std::optional<T> recv(Queue& q) {
        std::unique_lock<std::mutex> lock(m_mutex);
        m_cv.wait(lock, [&] { return !q.values.empty() || m_closed; });
        return pop(q);
    }

private:
    static std::optional<T> pop(Queue& q) {
        if (q.values.empty()) {
            return std::nullopt;
        }
        std::optional<T> v(std::move(q.values.front()));
        q.values.pop_front();
        return v;
    }

    std::size_t m_capacity;
    std::mutex m_mutex;
    std::condition_variable m_cv;
    std::vector<std::shared_ptr<Queue>> m_queues;
    bool m_closed = false;
};

}  // namespace kvbm_bench
