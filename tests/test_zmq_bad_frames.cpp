// The hub counts and skips bad messages (garbage, empty, unknown topic, extra frames) while
// good ones keep flowing; a one-frame message is handled as the index topic.
#include "zmq_helpers.hpp"

#include <kvbm/zmq.hpp>

#include <catch2/catch.hpp>

using kvbm::InstanceId;
using kvbm::PositionalIndex;
using kvbm::ZmqHub;
using kvbm::ZmqPublisher;
using namespace kvbm_test;

namespace {
// Sends raw frames through the publisher's socket (after wait_connected, so none is lost).
void send_frames(ZmqPublisher& pub, const std::vector<std::vector<std::uint8_t>>& frames) {
    for (std::size_t i = 0; i < frames.size(); ++i) {
        const auto flags = i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none;
        REQUIRE(pub.socket().send(zmq::const_buffer(frames[i].data(), frames[i].size()), flags));
    }
}
std::vector<std::uint8_t> bytes(std::string_view s) { return {s.begin(), s.end()}; }
}  // namespace

TEST_CASE("bad messages are counted and skipped, good ones applied", "[zmq]") {
    PositionalIndex<> index(4096, 16);
    ZmqHub<> hub(index);
    ZmqPublisher pub(hub.endpoint());
    REQUIRE(pub.wait_connected(10s));

    const auto c = chain(5, 8);
    const auto topic = bytes("kvbm.kv_index");
    const auto good = encoded(creates(7U, {c[0], c[1]}));
    auto truncated = good;
    truncated.pop_back();

    send_frames(pub, {topic, bytes("\xc1 garbage")});       // undecodable
    CHECK(pub.publish("s", encoded(creates(7U, {c[2]}))));  // good
    send_frames(pub, {bytes("kvbm.other"), good});          // unknown topic
    send_frames(pub, {topic, {}});                          // empty payload
    send_frames(pub, {topic, truncated});                   // undecodable (truncated)
    send_frames(pub, {good});                               // untopiced, applied
    send_frames(pub, {topic, good, good});                  // three frames: malformed
    send_frames(pub, {{}});                                 // untopiced and empty
    send_frames(pub, {bytes("not msgpack at all")});        // untopiced, undecodable
    CHECK(pub.publish("s", encoded(creates(8U, {c[3]}))));  // good
    REQUIRE(hub.wait_for_messages(10, 10s));

    const auto s = hub.stats();
    CHECK(s.messages == 10);
    CHECK(s.batches_applied == 3);
    CHECK(s.events_applied == 4);
    CHECK(s.undecodable == 3);
    CHECK(s.unknown_topic == 1);
    CHECK(s.empty == 2);
    CHECK(s.malformed == 1);
    CHECK(s.untopiced == 3);
    CHECK(s.apply_failed == 0);
    CHECK(s.rejected() == 7);
    CHECK(s.batches_applied + s.rejected() == s.messages);
    CHECK(hub.last_error().find("undecodable") != std::string::npos);

    CHECK(index.size() == 4);
    CHECK(index.holders(c[1]) == std::vector<InstanceId>{7U});
    CHECK(index.holders(c[3]) == std::vector<InstanceId>{8U});
}

TEST_CASE("a sink that throws is counted and the hub goes on", "[zmq]") {
    int calls = 0;
    ZmqHub<> hub([&](const Batch& b) {
        ++calls;
        if (b.instance_id == InstanceId{13U}) {
            throw std::runtime_error("unlucky");
        }
    });
    ZmqPublisher pub(hub.endpoint());
    REQUIRE(pub.wait_connected(10s));
    CHECK(pub.publish("s", encoded(shutdown(13U))));
    CHECK(pub.publish("s", encoded(shutdown(14U))));
    REQUIRE(hub.wait_for_messages(2, 10s));
    const auto s = hub.stats();
    CHECK(s.apply_failed == 1);
    CHECK(s.batches_applied == 1);
    CHECK(hub.last_error() == "sink failed: unlucky");
    hub.stop();
    CHECK(calls == 2);
}
