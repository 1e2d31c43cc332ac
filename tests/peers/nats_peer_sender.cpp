// Sender for the NATS peer test: publishes a fixed set of batches through kvbm's
// NatsPublisher and prints, one JSON line per batch, what an independent decoder must find:
//   {"subject": "...", "kind": "Create", "hashes": ["<32 hex>", ...], "instance": "<32 hex>"}
// usage: nats_peer_sender <nats-url> <subject-prefix or "">
#include "../index_helpers.hpp"

#include <kvbm/msgpack.hpp>
#include <kvbm/nats_publisher.hpp>

#include <cinttypes>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

namespace {

std::string hex(const kvbm::Uint128& v) {
    char buf[33];
    std::snprintf(buf, sizeof buf, "%016" PRIx64 "%016" PRIx64, v.high(), v.low());
    return buf;
}

std::string expected_line(const std::string& subject, const kvbm_test::Batch& b) {
    std::string out =
        R"({"subject":")" + subject + R"(","kind":")" + kvbm::to_string(b.events.kind) + R"(","hashes":[)";
    for (std::size_t i = 0; i < b.events.hashes.size(); ++i) {
        out += (i == 0 ? "\"" : ",\"") + hex(b.events.hashes[i].raw()) + "\"";
    }
    return out + R"(],"instance":")" + hex(b.instance_id) + "\"}";
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: nats_peer_sender <nats-url> <subject-prefix or \"\">\n");
        return 2;
    }
    try {
        using namespace kvbm_test;
        kvbm::NatsPublisherOptions o;
        o.connection.servers = {argv[1]};
        o.subject_prefix = argv[2];
        kvbm::NatsPublisher pub(o);
        const auto c = chain(7, 100);
        const std::vector<Batch> batches = {
            creates(12345U, {Plh::from_raw(kvbm::Uint128::from_parts(0, 0x0338e4d7fb2dca5cULL)),
                             Plh::from_raw(kvbm::Uint128::from_parts(0x0059c726bfd96e52ULL, 0xe4a2b2379d6d3c3dULL))}),
            creates(kvbm::Uint128::from_parts(0xfedcba9876543210ULL, 0x0123456789abcdefULL), c),
            removes(kvbm::Uint128::from_parts(0xfedcba9876543210ULL, 0x0123456789abcdefULL), {c[99], c[98], c[97]}),
            creates(1U, {}),
            shutdown(kvbm::Uint128::max()),
        };
        for (const auto& b : batches) {
            const auto bytes = kvbm::msgpack::encode(b);
            if (const auto r = pub.publish("kvbm.events", bytes); !r) {
                std::fprintf(stderr, "publish failed: %s\n", r.error().c_str());
                return 1;
            }
            std::printf("%s\n", expected_line(pub.events_subject(), b).c_str());
        }
        if (const auto r = pub.flush(); !r) {
            std::fprintf(stderr, "flush failed: %s\n", r.error().c_str());
            return 1;
        }
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "nats_peer_sender: %s\n", e.what());
        return 1;
    }
}
