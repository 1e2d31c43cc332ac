// The reference's pipeline scenarios, end to end: registry -> manager -> channel ->
// batcher -> encoder -> transport, checked on the bytes the transport received.
#include <kvbm/events_publisher.hpp>

#include "pipeline_hashes.hpp"
#include "recording_publisher.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <vector>

using kvbm::BatchingConfig;
using kvbm::BlockRegistrationHandle;
using kvbm::BlockRegistry;
using kvbm::EventsManager;
using kvbm::EventsPublisher;
using kvbm::EventsPublisherSettings;
using kvbm::KvbmCacheEvents;
using kvbm::KvCacheEvents;
using kvbm::PositionalLineageHash;
using kvbm_test::Call;
using kvbm_test::hash_at;
using kvbm_test::PublishLog;
using kvbm_test::RecordingPublisher;
using namespace std::chrono_literals;

namespace {

const kvbm::InstanceId instance{12345U};

KvbmCacheEvents<> msg(KvCacheEvents<> events) { return {std::move(events), instance}; }
std::vector<PositionalLineageHash> at(std::initializer_list<std::uint64_t> positions) {
    std::vector<PositionalLineageHash> out;
    for (auto p : positions) {
        out.push_back(hash_at(p));
    }
    return out;
}
// The messages of the recorded calls; a flush shows as nullopt.
std::vector<std::optional<KvbmCacheEvents<>>> messages(const std::vector<Call>& calls) {
    std::vector<std::optional<KvbmCacheEvents<>>> out;
    for (const auto& c : calls) {
        out.push_back(c.is_flush ? std::nullopt : std::optional<KvbmCacheEvents<>>(c.message));
    }
    return out;
}
using Expected = std::vector<std::optional<KvbmCacheEvents<>>>;
const KvbmCacheEvents<> shutdown = msg(KvCacheEvents<>::shutdown());

struct Pipeline {
    std::shared_ptr<PublishLog> log = std::make_shared<PublishLog>();
    std::shared_ptr<EventsManager<>> manager = std::make_shared<EventsManager<>>();
    BlockRegistry<> registry{manager};
    EventsPublisher<RecordingPublisher> publisher;

    explicit Pipeline(BatchingConfig batching)
        : publisher(*manager, registry, RecordingPublisher(log), instance,
                    EventsPublisherSettings<>{"kvbm.events", batching, {}, 5s, {}}) {}
};

}  // namespace

TEST_CASE("register 5 then release: one Create batch ascending, one Remove batch descending", "[pipeline]") {
    Pipeline p(BatchingConfig{60s, 1024});  // a long window: flushes come from the rules under test
    {
        std::vector<BlockRegistrationHandle<>> handles;
        for (const std::uint64_t pos : std::initializer_list<std::uint64_t>{3, 0, 4, 1, 2}) {
            handles.push_back(p.registry.register_hash(hash_at(pos)));
        }
        // Released in registration order; the Remove batch is sorted anyway.
    }
    CHECK(p.publisher.stop());
    const auto calls = p.log->snapshot();
    CHECK(messages(calls) == Expected{msg(KvCacheEvents<>::create(at({0, 1, 2, 3, 4}))),
                                      msg(KvCacheEvents<>::remove(at({4, 3, 2, 1, 0}))), shutdown, std::nullopt});
    for (const auto& c : calls) {
        if (!c.is_flush) {
            CHECK(c.subject == "kvbm.events");
            // The bytes are exactly the reference encoding of the decoded batch.
            CHECK(c.bytes == kvbm::msgpack::encode(c.message));
        }
    }
    CHECK(p.log->decode_errors.empty());
    const auto m = p.publisher.metrics();
    CHECK(m.events_in == 10);
    CHECK(m.events_published == 10);
    CHECK(m.batches_published == 3);
    std::uint64_t bytes = 0;
    for (const auto& c : calls) {
        bytes += c.bytes.size();
    }
    CHECK(m.bytes_published == bytes);
}

TEST_CASE("a kind switch flushes the pending batch", "[pipeline]") {
    Pipeline p(BatchingConfig{60s, 1024});
    { auto h1 = p.registry.register_hash(hash_at(10)); }
    auto h2 = p.registry.register_hash(hash_at(20));
    // Create(10) and Remove(10) were flushed by the switches; Create(20) is pending.
    REQUIRE(p.log->wait_until([&] { return p.log->calls.size() >= 2; }));
    CHECK(p.publisher.stop());
    CHECK(messages(p.log->snapshot()) == Expected{msg(KvCacheEvents<>::create(at({10}))),
                                                  msg(KvCacheEvents<>::remove(at({10}))),
                                                  msg(KvCacheEvents<>::create(at({20}))), shutdown, std::nullopt});
}

TEST_CASE("a batch reaching max size is published without waiting for the window", "[pipeline]") {
    Pipeline p(BatchingConfig{60s, 3});
    std::vector<BlockRegistrationHandle<>> handles;
    for (std::uint64_t pos = 0; pos < 5; ++pos) {
        handles.push_back(p.registry.register_hash(hash_at(pos)));
    }
    REQUIRE(p.log->wait_until([&] { return !p.log->calls.empty(); }));
    CHECK(p.log->snapshot().front().message == msg(KvCacheEvents<>::create(at({0, 1, 2}))));
    CHECK(p.publisher.stop());
    CHECK(messages(p.log->snapshot()) == Expected{msg(KvCacheEvents<>::create(at({0, 1, 2}))),
                                                  msg(KvCacheEvents<>::create(at({3, 4}))), shutdown, std::nullopt});
}

TEST_CASE("the window timer publishes a lone event", "[pipeline]") {
    Pipeline p(BatchingConfig{});  // the default 10 ms window
    auto handle = p.registry.register_hash(hash_at(7));
    REQUIRE(p.log->wait_until([&] { return !p.log->calls.empty(); }));
    CHECK(p.log->snapshot().front().message == msg(KvCacheEvents<>::create(at({7}))));
}

TEST_CASE("when the input ends the publisher publishes the rest, Shutdown, and flushes", "[pipeline]") {
    auto log = std::make_shared<PublishLog>();
    auto manager = std::make_shared<EventsManager<>>();
    std::optional<BlockRegistry<>> registry(manager);
    EventsPublisher publisher(manager->subscribe(), RecordingPublisher(log), instance,
                              EventsPublisherSettings<>{"custom.subject", BatchingConfig{60s, 1024}, {}, 5s, {}});
    std::optional<BlockRegistrationHandle<>> handle = registry->register_hash(hash_at(1));
    registry.reset();
    manager.reset();
    // The registration's release handle still holds a sender: the input has not ended.
    CHECK_FALSE(publisher.wait_for(30ms));
    CHECK_FALSE(publisher.finished());
    handle.reset();
    REQUIRE(publisher.wait_for(30s));
    const auto calls = log->snapshot();
    CHECK(messages(calls) == Expected{msg(KvCacheEvents<>::create(at({1}))), msg(KvCacheEvents<>::remove(at({1}))),
                                      shutdown, std::nullopt});
    CHECK(calls.front().subject == "custom.subject");
    CHECK(publisher.subject() == "custom.subject");
    CHECK(publisher.instance_id() == instance);
}
