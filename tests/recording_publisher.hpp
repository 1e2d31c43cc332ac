// Test transports for the events publisher: a Publisher that records every call (with the
// decoded message), can hold calls at a gate and can fail on demand; and a model of the
// hub's per-instance state fed by the recorded bytes.
#pragma once

#include <kvbm/events.hpp>
#include <kvbm/msgpack.hpp>
#include <kvbm/publisher.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace kvbm_test {

struct Call {
    bool is_flush = false;
    std::string subject;
    std::vector<std::uint8_t> bytes;
    kvbm::KvbmCacheEvents<> message;  // decoded from bytes (publish calls only)
};

struct PublishLog {
    std::mutex mutex;
    std::condition_variable changed;
    std::vector<Call> calls;  // successful and failed alike, in call order
    std::vector<std::string> decode_errors;
    bool gate_open = true;
    int waiting_at_gate = 0;
    int fail_next_publishes = 0;  // > 0: that many publish calls fail
    bool throw_on_publish = false;
    bool fail_flush = false;
    int errors_reported = 0;                     // see on_error()
    std::chrono::microseconds publish_delay{0};  // a slow transport: sleeps this long per publish
    // Called (under the lock) with each publish's message: true fails that publish. Lets a
    // test fail exactly the calls it means to (e.g. the first re-announce after a Shutdown).
    std::function<bool(const kvbm::KvbmCacheEvents<>&)> fail_if;
    int failed_publishes = 0;     // publish calls that failed (any cause)
    bool resync_request = false;  // SignallingPublisher: take_resync_request() returns it once
    int resync_polls = 0;         // SignallingPublisher: take_resync_request() calls

    /// An `on_error` callback for EventsPublisherSettings that counts into this log.
    std::function<void(std::string_view)> on_error() {
        return [this](std::string_view) {
            {
                std::lock_guard lock(mutex);
                ++errors_reported;
            }
            changed.notify_all();
        };
    }

    std::vector<Call> snapshot() {
        std::lock_guard lock(mutex);
        return calls;
    }
    void set_gate(bool open) {
        {
            std::lock_guard lock(mutex);
            gate_open = open;
        }
        changed.notify_all();
    }
    /// Waits until `pred()` (called under the lock) holds; false on timeout.
    template <class Pred>
    bool wait_until(Pred pred, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
        std::unique_lock lock(mutex);
        return changed.wait_for(lock, timeout, pred);
    }
};

class RecordingPublisher {
public:
    explicit RecordingPublisher(std::shared_ptr<PublishLog> log) : m_log(std::move(log)) {}

    kvbm::PublishResult publish(std::string_view subject, std::span<const std::uint8_t> bytes) {
        std::unique_lock lock(m_log->mutex);
        if (const auto delay = m_log->publish_delay; delay.count() > 0) {
            lock.unlock();
            std::this_thread::sleep_for(delay);
            lock.lock();
        }
        ++m_log->waiting_at_gate;
        m_log->changed.notify_all();
        m_log->changed.wait(lock, [&] { return m_log->gate_open; });
        --m_log->waiting_at_gate;
        Call call;
        call.subject = std::string(subject);
        call.bytes.assign(bytes.begin(), bytes.end());
        auto decoded = kvbm::msgpack::decode_batch<kvbm::PositionalLineageHash>(bytes);
        if (decoded) {
            call.message = *decoded;
        } else {
            m_log->decode_errors.push_back(decoded.error().message());
        }
        bool fail = m_log->fail_next_publishes > 0;
        if (fail) {
            --m_log->fail_next_publishes;
        }
        if (!fail && decoded && m_log->fail_if && m_log->fail_if(call.message)) {
            fail = true;
        }
        if (fail || m_log->throw_on_publish) {
            ++m_log->failed_publishes;
        }
        const bool do_throw = m_log->throw_on_publish;
        if (!fail && !do_throw) {
            m_log->calls.push_back(std::move(call));
        }
        m_log->changed.notify_all();
        if (do_throw) {
            throw std::runtime_error("transport exploded");
        }
        return fail ? kvbm::PublishResult::failure("injected failure") : kvbm::PublishResult::success();
    }

    kvbm::PublishResult flush() {
        std::lock_guard lock(m_log->mutex);
        Call call;
        call.is_flush = true;
        m_log->calls.push_back(std::move(call));
        m_log->changed.notify_all();
        return m_log->fail_flush ? kvbm::PublishResult::failure("injected flush failure")
                                 : kvbm::PublishResult::success();
    }

private:
    std::shared_ptr<PublishLog> m_log;
};
static_assert(kvbm::Publisher<RecordingPublisher>);

/// A RecordingPublisher that can see "hub (re)connections": `take_resync_request()` returns
/// `log.resync_request` once (the ResyncSignalling concept).
class SignallingPublisher : public RecordingPublisher {
public:
    explicit SignallingPublisher(std::shared_ptr<PublishLog> log) : RecordingPublisher(log), m_log(std::move(log)) {}
    bool take_resync_request() {
        {
            std::lock_guard lock(m_log->mutex);
            ++m_log->resync_polls;
            if (!std::exchange(m_log->resync_request, false)) {
                return false;
            }
        }
        m_log->changed.notify_all();
        return true;
    }

private:
    std::shared_ptr<PublishLog> m_log;
};
static_assert(kvbm::ResyncSignalling<SignallingPublisher>);

/// The hub's view of one instance: Create inserts, Remove erases, Shutdown clears.
struct ModelHub {
    kvbm::InstanceId instance{};
    std::set<kvbm::Uint128> held;

    void apply(const kvbm::KvbmCacheEvents<>& m) {
        if (m.instance_id != instance) {
            throw std::logic_error("message from another instance");
        }
        switch (m.events.kind) {
            case kvbm::BatchKind::create:
                for (const auto& h : m.events.hashes) {
                    held.insert(h.raw());
                }
                break;
            case kvbm::BatchKind::remove:
                for (const auto& h : m.events.hashes) {
                    held.erase(h.raw());
                }
                break;
            case kvbm::BatchKind::shutdown:
                held.clear();
                break;
        }
    }
};

inline std::set<kvbm::Uint128> raw_set(const std::vector<kvbm::PositionalLineageHash>& hashes) {
    std::set<kvbm::Uint128> out;
    for (const auto& h : hashes) {
        out.insert(h.raw());
    }
    return out;
}

}  // namespace kvbm_test
