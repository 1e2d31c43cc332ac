/// @file kvbm/hub_client.hpp
/// A worker joining a kvbm-hub over ZeroMQ (target kvbm::hub, needs cpp-httplib and cppzmq),
/// the way Dynamo's Rust connector joins its hub: a HubLease (<kvbm/hub_lease.hpp>: probe
/// `/config`, refuse another block size, register, keep the lease alive, unregister on stop)
/// plus a ZmqPublisher connected to the endpoint the hub advertises. A hub that advertises
/// none is refused before registering.
///
///     kvbm::HubClientOptions options;  // the lease's (HubLeaseOptions), then ZeroMQ's
///     options.instance_id = id;
///     options.block_size = 16;
///     kvbm::HubClient hub("http://127.0.0.1:1337", options);
///     kvbm::EventsPublisher publisher(manager, registry, &hub, id);  // HubClient is a Publisher
///     ...
///     publisher.stop();  // Shutdown reaches the hub
///     hub.stop();        // unregisters
///
/// A lease the hub let expire (the worker was unreachable longer than the TTL, and the hub
/// swept its entries) is noticed by the next keepalive (404): the client registers again
/// and raises a resync request (`take_resync_request`), so an EventsPublisher republishes
/// the live set and the hub's view is whole again. So does a hub that (re)subscribes.
#pragma once

#include <kvbm/config.hpp>
#include <kvbm/hub_lease.hpp>
#include <kvbm/publisher.hpp>
#include <kvbm/zmq_publisher.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>

KVBM_NAMESPACE_BEGIN

/// Settings of a HubClient: the lease's, and the ZeroMQ publisher's.
struct HubClientOptions : HubLeaseOptions {
    /// The ZeroMQ publisher's settings. For a hub with CURVE ingest, set this worker's key
    /// pair there; the hub's public key is taken from its /config unless given.
    ZmqPublisherOptions publisher = {};
    /// How long the constructor waits for the hub's subscription before failing, so that
    /// the first batches are not lost to ZeroMQ's slow-joiner gap. 0: do not wait.
    std::chrono::milliseconds connect_timeout{10000};
};

/// A registered worker's connection to a kvbm-hub: lease, keepalive, ZeroMQ publisher. See
/// the file comment. Satisfies Publisher and ResyncSignalling, so an EventsPublisher can
/// hold it by pointer or `std::ref`.
///
/// Thread-safety: publish and flush from one thread at a time (the events publisher's
/// worker, which also calls take_resync_request); the counters and config from any thread;
/// stop from one. Destruction stops (unregistering) and never throws.
class HubClient {
public:
    /// Joins the hub at `hub_url` ("http://HOST:PORT"). Throws HubClientError when the
    /// hub cannot be reached, refuses the registration, indexes another block size,
    /// advertises no endpoint, or does not subscribe within `connect_timeout` (a
    /// registration made before the failure is withdrawn).
    HubClient(const std::string& hub_url, const HubClientOptions& options)
        : m_lease(hub_url, options, [&](const HubConfig& config) {
              if (config.zmq_endpoint.empty()) {
                  throw HubClientError("kvbm::HubClient: the hub at " + hub_url +
                                       " advertises no ZeroMQ endpoint (zmq_endpoint is empty)");
              }
          }) {
        try {
            ZmqPublisherOptions publisher = options.publisher;
            if (publisher.curve_server_key.empty() && !publisher.curve_secret_key.empty()) {
                publisher.curve_server_key = m_lease.config().zmq_curve_server_key;  // the hub's own, from /config
            }
            m_publisher = std::make_unique<ZmqPublisher>(m_lease.config().zmq_endpoint, std::move(publisher));
            if (options.connect_timeout.count() > 0 && !m_publisher->wait_connected(options.connect_timeout)) {
                throw HubClientError("kvbm::HubClient: the hub did not subscribe at " + m_lease.config().zmq_endpoint +
                                     " within " + std::to_string(options.connect_timeout.count()) + " ms");
            }
        } catch (...) {
            m_publisher.reset();
            (void)m_lease.stop();  // withdraw the registration
            throw;
        }
    }

    HubClient(const HubClient&) = delete;
    HubClient& operator=(const HubClient&) = delete;

    ~HubClient() = default;  // the publisher closes, then the lease stops (unregistering)

    /// Stops the keepalive and unregisters (the hub sweeps this instance from its index).
    /// Stop the events publisher first, so its Shutdown is sent before. Returns false when
    /// the hub could not be told (the lease then runs out on its own). Idempotent.
    bool stop() noexcept { return m_lease.stop(); }

    // --- Publisher -------------------------------------------------------------------------
    PublishResult publish(std::string_view subject, std::span<const std::uint8_t> bytes) noexcept {
        return m_publisher->publish(subject, bytes);
    }
    PublishResult flush() noexcept { return m_publisher->flush(); }

    /// True once after the client registered again (its lease had expired and the hub swept
    /// it) or the publisher saw a hub (re)subscribe: the live set must be published again.
    [[nodiscard]] bool take_resync_request() noexcept {
        const bool lease = m_lease.take_resync_request();
        return m_publisher->take_resync_request() || lease;
    }

    // --- state -------------------------------------------------------------------------------
    [[nodiscard]] const HubConfig& config() const noexcept { return m_lease.config(); }
    [[nodiscard]] const InstanceId& instance_id() const noexcept { return m_lease.instance_id(); }
    [[nodiscard]] std::chrono::milliseconds lease_ttl() const noexcept { return m_lease.lease_ttl(); }
    [[nodiscard]] std::chrono::milliseconds keepalive_interval() const noexcept { return m_lease.keepalive_interval(); }
    /// The lease (its counters; stop through this client).
    [[nodiscard]] HubLease& lease() noexcept { return m_lease; }
    /// The publisher (its counters; publish only through this client).
    [[nodiscard]] ZmqPublisher& publisher() noexcept { return *m_publisher; }
    /// Keepalives the hub acknowledged.
    [[nodiscard]] std::uint64_t keepalives() const noexcept { return m_lease.keepalives(); }
    /// Keepalives that failed (hub unreachable or erroring).
    [[nodiscard]] std::uint64_t keepalive_failures() const noexcept { return m_lease.keepalive_failures(); }
    /// Registrations after a lost lease.
    [[nodiscard]] std::uint64_t reregistrations() const noexcept { return m_lease.reregistrations(); }
    /// Why the last keepalive or registration failed (empty if none did).
    [[nodiscard]] std::string last_error() const { return m_lease.last_error(); }

private:
    HubLease m_lease;  // first: registered before, unregistered after, the publisher
    std::unique_ptr<ZmqPublisher> m_publisher;
};

static_assert(Publisher<HubClient>);
static_assert(ResyncSignalling<HubClient>);
static_assert(Publisher<LeasedPublisher<ZmqPublisher>>);
static_assert(ResyncSignalling<LeasedPublisher<ZmqPublisher>>);

KVBM_NAMESPACE_END
