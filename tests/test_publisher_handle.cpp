// EventsPublisher over a transport it does not own: shared_ptr, unique_ptr, raw pointer or
// std::ref, so that a transport that cannot move (like ZmqPublisher) can be used and its
// own state read while the publisher runs.
#include <kvbm/events_publisher.hpp>

#include "pipeline_hashes.hpp"
#include "recording_publisher.hpp"

#include <catch2/catch.hpp>

#include <functional>
#include <memory>

using kvbm::BatchingConfig;
using kvbm::BlockRegistry;
using kvbm::EventsManager;
using kvbm::EventsPublisher;
using kvbm::EventsPublisherSettings;
using kvbm::KvCacheEvents;
using kvbm::PublisherHandle;
using kvbm_test::hash_at;
using kvbm_test::PublishLog;
using kvbm_test::RecordingPublisher;
using namespace std::chrono_literals;

namespace {
// A transport that can be neither copied nor moved.
class Pinned {
public:
    explicit Pinned(std::shared_ptr<PublishLog> log) : m_inner(std::move(log)) {}
    Pinned(const Pinned&) = delete;
    Pinned& operator=(const Pinned&) = delete;
    kvbm::PublishResult publish(std::string_view subject, std::span<const std::uint8_t> bytes) {
        ++published;
        return m_inner.publish(subject, bytes);
    }
    kvbm::PublishResult flush() { return m_inner.flush(); }
    int published = 0;  // read after the publisher stopped

private:
    RecordingPublisher m_inner;
};
}  // namespace

static_assert(PublisherHandle<RecordingPublisher>);
static_assert(PublisherHandle<std::shared_ptr<Pinned>>);
static_assert(PublisherHandle<std::unique_ptr<Pinned>>);
static_assert(PublisherHandle<Pinned*>);
static_assert(PublisherHandle<std::reference_wrapper<Pinned>>);
static_assert(!PublisherHandle<int>);
static_assert(!PublisherHandle<std::shared_ptr<int>>);
static_assert(!PublisherHandle<std::reference_wrapper<int>>);

namespace {
template <class Handle>
void run_through(Handle handle, const std::shared_ptr<PublishLog>& log) {
    auto manager = std::make_shared<EventsManager<>>();
    const BlockRegistry<> registry(manager);
    EventsPublisherSettings<> settings;
    settings.batching = BatchingConfig{60s, 1024};
    EventsPublisher publisher(*manager, registry, std::move(handle), kvbm::InstanceId{3U}, settings);
    {
        auto h = registry.register_hash(hash_at(4));
        CHECK(publisher.stop());
    }
    const auto calls = log->snapshot();
    REQUIRE(calls.size() == 3);
    CHECK(calls[0].message.events == KvCacheEvents<>::create({hash_at(4)}));
    CHECK(calls[1].message.events == KvCacheEvents<>::shutdown());
    CHECK(calls[2].is_flush);
}
}  // namespace

TEST_CASE("a shared transport, read by its owner after the publisher stopped", "[publisher]") {
    auto log = std::make_shared<PublishLog>();
    auto transport = std::make_shared<Pinned>(log);
    run_through(transport, log);
    CHECK(transport->published == 2);
}

TEST_CASE("a transport held by std::ref, a raw pointer or a unique_ptr", "[publisher]") {
    {
        auto log = std::make_shared<PublishLog>();
        Pinned transport(log);
        run_through(std::ref(transport), log);
        CHECK(transport.published == 2);
    }
    {
        auto log = std::make_shared<PublishLog>();
        Pinned transport(log);
        run_through(&transport, log);
        CHECK(transport.published == 2);
    }
    {
        auto log = std::make_shared<PublishLog>();
        run_through(std::make_unique<Pinned>(log), log);
    }
}
