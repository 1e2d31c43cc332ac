// HubIngest, the transport-neutral hub: every outcome is classified and counted once, a
// rejected message changes nothing, authorisation by instance id, and counters that stay
// exact with several ingesting threads.
#include "index_helpers.hpp"

#include <kvbm/hub_ingest.hpp>
#include <kvbm/msgpack.hpp>

#include <catch2/catch.hpp>

#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

using kvbm::HubIngest;
using kvbm::HubIngestOptions;
using kvbm::IngestOutcome;
using kvbm::InstanceId;
using kvbm::PositionalIndex;
using namespace kvbm_test;
using namespace std::chrono_literals;

namespace {
std::vector<std::uint8_t> encoded(const Batch& b) { return kvbm::msgpack::encode(b); }
std::vector<std::uint8_t> bytes(std::string_view s) { return {s.begin(), s.end()}; }
constexpr std::string_view topic = kvbm::kv_index_topic;

std::map<std::string, double> metrics_of(const HubIngest<>& ingest) {
    std::map<std::string, double> out;
    ingest.for_each_metric([&](const kvbm::Metric& m) {
        std::string key(m.name);
        for (const auto& l : m.labels) {
            key.append(",").append(l.name).append("=").append(l.value);
        }
        CHECK(out.count(key) == 0);  // every series once
        out[key] = m.value;
    });
    return out;
}
}  // namespace

TEST_CASE("every outcome is classified, counted once, and only applied batches change the index", "[ingest]") {
    PositionalIndex<> index(4096, 16);
    HubIngestOptions opts;
    opts.max_payload_bytes = 4096;
    HubIngest<> ingest(index, opts);

    const auto c = chain(5, 8);
    const auto good = encoded(creates(7U, {c[0], c[1]}));
    auto truncated = good;
    truncated.pop_back();
    std::vector<std::uint8_t> huge = encoded(creates(9U, chain(6, 250)));  // 250 * 18 bytes > 4096
    REQUIRE(huge.size() > opts.max_payload_bytes);

    CHECK(ingest.ingest(topic, bytes("\xc1 garbage")) == IngestOutcome::undecodable);
    CHECK(ingest.ingest(topic, encoded(creates(7U, {c[2]}))) == IngestOutcome::applied);
    CHECK(ingest.ingest("kvbm.other", good) == IngestOutcome::unknown_topic);
    CHECK(ingest.ingest(topic, {}) == IngestOutcome::empty);
    CHECK(ingest.ingest(topic, truncated) == IngestOutcome::undecodable);
    CHECK(ingest.ingest_untopiced(good) == IngestOutcome::applied);
    ingest.reject(IngestOutcome::malformed, "3 frames");
    CHECK(ingest.ingest_untopiced({}) == IngestOutcome::empty);
    CHECK(ingest.ingest_untopiced(bytes("not msgpack at all")) == IngestOutcome::undecodable);
    CHECK(ingest.ingest(topic, huge) == IngestOutcome::oversized);
    CHECK(ingest.last_error().find("above the limit of 4096") != std::string::npos);
    CHECK(ingest.ingest(topic, encoded(creates(8U, {c[3]}))) == IngestOutcome::applied);
    ingest.reject(IngestOutcome::applied, "ignored: not a rejection");

    const auto s = ingest.stats();
    CHECK(s.messages == 11);
    CHECK(s.batches_applied == 3);
    CHECK(s.events_applied == 4);
    CHECK(s.bytes_applied == 2 * encoded(creates(7U, {c[2]})).size() + good.size());
    CHECK(s.undecodable == 3);
    CHECK(s.unknown_topic == 1);
    CHECK(s.empty == 2);
    CHECK(s.malformed == 1);
    CHECK(s.oversized == 1);
    CHECK(s.untopiced == 3);
    CHECK(s.untopiced_rejected == 0);
    CHECK(s.unauthorized == 0);
    CHECK(s.apply_failed == 0);
    CHECK(s.rejected() == 8);
    CHECK(s.batches_applied + s.rejected() == s.messages);
    for (const auto reason : kvbm::ingest_rejection_reasons) {
        const std::string key = "kvbm_hub_frames_rejected_total,reason=" + std::string(kvbm::to_string(reason));
        CHECK(static_cast<double>(s.rejected(reason)) == metrics_of(ingest)[key]);
    }

    CHECK(index.size() == 4);
    CHECK(index.holders(c[1]) == std::vector<InstanceId>{7U});
    CHECK(index.holders(c[3]) == std::vector<InstanceId>{8U});
    CHECK(index.entries_of(9U) == 0);  // the oversized batch changed nothing
}

TEST_CASE("untopiced messages can be refused", "[ingest]") {
    PositionalIndex<> index(4096, 16);
    HubIngestOptions opts;
    opts.accept_untopiced = false;
    HubIngest<> ingest(index, opts);
    CHECK(ingest.ingest_untopiced(encoded(creates(7U, chain(1, 2)))) == IngestOutcome::untopiced);
    CHECK(ingest.stats().untopiced_rejected == 1);
    CHECK(ingest.stats().untopiced == 1);
    CHECK(index.empty());
}

TEST_CASE("a batch for an instance the sender may not publish for is unauthorized and changes nothing", "[ingest]") {
    PositionalIndex<> index(4096, 16);
    HubIngest<> ingest(index);
    const std::set<InstanceId> allowed{InstanceId{7U}};
    const auto only_allowed = [&](const InstanceId& id) { return allowed.count(id) != 0; };

    CHECK(ingest.ingest(topic, encoded(creates(7U, chain(1, 3))), only_allowed) == IngestOutcome::applied);
    CHECK(ingest.ingest(topic, encoded(creates(8U, chain(2, 3))), only_allowed) == IngestOutcome::unauthorized);
    CHECK(ingest.last_error().find("instance 8 ") != std::string::npos);
    CHECK(ingest.ingest(topic, encoded(shutdown(7U)), [](const InstanceId&) { return false; }) ==
          IngestOutcome::unauthorized);
    CHECK(ingest.ingest_untopiced(encoded(shutdown(7U)), only_allowed) == IngestOutcome::applied);

    const auto s = ingest.stats();
    CHECK(s.unauthorized == 2);
    CHECK(s.batches_applied == 2);
    CHECK(index.entries_of(8U) == 0);
    CHECK(index.empty());  // 7's creates, then 7's authorised shutdown
    CHECK(metrics_of(ingest)["kvbm_hub_frames_rejected_total,reason=unauthorized"] == 2);
}

TEST_CASE("a sink that throws is apply_failed; the ingest goes on", "[ingest]") {
    int calls = 0;
    HubIngest<> ingest([&](const Batch& b) {
        ++calls;
        if (b.instance_id == InstanceId{13U}) {
            throw std::runtime_error("unlucky");
        }
    });
    CHECK(ingest.ingest(topic, encoded(shutdown(13U))) == IngestOutcome::apply_failed);
    CHECK(ingest.ingest(topic, encoded(shutdown(14U))) == IngestOutcome::applied);
    CHECK(ingest.last_error() == "sink failed: unlucky");
    CHECK(ingest.stats().apply_failed == 1);
    CHECK(calls == 2);
}

TEST_CASE("metrics name every family and reason", "[ingest]") {
    PositionalIndex<> index(4096, 16);
    HubIngest<> ingest(index);
    (void)ingest.ingest(topic, encoded(creates(1U, chain(1, 5))));
    const auto m = metrics_of(ingest);
    CHECK(m.at("kvbm_hub_messages_total") == 1);
    CHECK(m.at("kvbm_hub_batches_applied_total") == 1);
    CHECK(m.at("kvbm_hub_events_applied_total") == 5);
    CHECK(m.at("kvbm_hub_frames_untopiced_total") == 0);
    for (const auto reason : kvbm::ingest_rejection_reasons) {
        CHECK(m.at("kvbm_hub_frames_rejected_total,reason=" + std::string(kvbm::to_string(reason))) == 0);
    }
    CHECK(m.size() == 5 + kvbm::ingest_rejection_reasons.size());
}

TEST_CASE("several threads ingest at once: counts are exact, waiters wake", "[ingest][concurrency]") {
    PositionalIndex<> index(64 * 16, 16);
    HubIngest<> ingest(index);
    constexpr std::size_t threads = 4;
    constexpr std::size_t per_thread = 300;
    std::vector<std::vector<std::vector<std::uint8_t>>> payloads(threads);
    for (std::size_t t = 0; t < threads; ++t) {
        for (std::size_t i = 0; i < per_thread; ++i) {
            const auto id = InstanceId{static_cast<std::uint64_t>(t + 1)};
            payloads[t].push_back(
                i % 3 == 2 ? bytes("junk") : encoded(creates(id, chain(static_cast<std::uint64_t>(t * 1000 + i), 4))));
        }
    }
    std::thread waiter([&] { CHECK(ingest.wait_for_messages(threads * per_thread, 60s)); });
    std::vector<std::thread> workers;
    for (std::size_t t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            for (const auto& p : payloads[t]) {
                (void)ingest.ingest(topic, p);
            }
        });
    }
    for (auto& w : workers) {
        w.join();
    }
    waiter.join();
    CHECK(ingest.wait_for_batches(threads * per_thread * 2 / 3, 1s));
    const auto s = ingest.stats();
    CHECK(s.messages == threads * per_thread);
    CHECK(s.batches_applied == threads * per_thread * 2 / 3);
    CHECK(s.undecodable == threads * per_thread / 3);
    CHECK(s.events_applied == s.batches_applied * 4);
    CHECK(index.stats().batches == s.batches_applied);
    CHECK_FALSE(ingest.wait_for_messages(threads * per_thread + 1, 10ms));
}
