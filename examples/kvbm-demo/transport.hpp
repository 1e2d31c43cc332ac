// kvbm-demo's worker transport: ZeroMQ to the hub, or NATS (a broker between workers and
// hub) when built with kvbm::nats. One type for the worker, whichever is used.
#pragma once

#include <kvbm/publisher.hpp>
#include <kvbm/zmq.hpp>
#ifdef KVBM_DEMO_HAVE_NATS
#include <kvbm/nats_publisher.hpp>
#endif

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace kvbm_demo {

/// Where workers send their batches.
struct TransportConfig {
    std::string zmq_endpoint;  ///< the hub's events endpoint (ZeroMQ)
#ifdef KVBM_DEMO_HAVE_NATS
    std::string nats_url;  ///< set: publish to this NATS server instead
#endif
};

/// A Publisher (and ResyncSignalling) over ZeroMQ or NATS.
class DemoTransport {
public:
    explicit DemoTransport(const TransportConfig& cfg) {
#ifdef KVBM_DEMO_HAVE_NATS
        if (!cfg.nats_url.empty()) {
            kvbm::NatsPublisherOptions o;
            o.connection.servers = {cfg.nats_url};
            o.connection.reconnect_wait = std::chrono::milliseconds(100);
            m_nats = std::make_unique<kvbm::NatsPublisher>(o);
            return;
        }
#endif
        m_zmq = std::make_unique<kvbm::ZmqPublisher>(cfg.zmq_endpoint);
    }

    kvbm::PublishResult publish(std::string_view subject, std::span<const std::uint8_t> bytes) {
#ifdef KVBM_DEMO_HAVE_NATS
        if (m_nats) {
            return m_nats->publish(subject, bytes);
        }
#endif
        return m_zmq->publish(subject, bytes);
    }
    kvbm::PublishResult flush() {
#ifdef KVBM_DEMO_HAVE_NATS
        if (m_nats) {
            return m_nats->flush();
        }
#endif
        return m_zmq->flush();
    }
    bool take_resync_request() {
#ifdef KVBM_DEMO_HAVE_NATS
        if (m_nats) {
            return m_nats->take_resync_request();
        }
#endif
        return m_zmq->take_resync_request();
    }
    /// ZeroMQ: until the hub is subscribed (the slow-joiner gap). NATS: until the server
    /// has this client's subscriptions (the hub is subscribed to the broker already).
    bool wait_connected(std::chrono::milliseconds timeout) {
#ifdef KVBM_DEMO_HAVE_NATS
        if (m_nats) {
            return m_nats->wait_connected(timeout);
        }
#endif
        return m_zmq->wait_connected(timeout);
    }
    [[nodiscard]] std::uint64_t dropped() const {
#ifdef KVBM_DEMO_HAVE_NATS
        if (m_nats) {
            return m_nats->dropped();
        }
#endif
        return m_zmq->dropped();
    }

private:
    std::unique_ptr<kvbm::ZmqPublisher> m_zmq;
#ifdef KVBM_DEMO_HAVE_NATS
    std::unique_ptr<kvbm::NatsPublisher> m_nats;
#endif
};

static_assert(kvbm::Publisher<DemoTransport> && kvbm::ResyncSignalling<DemoTransport>);

}  // namespace kvbm_demo
