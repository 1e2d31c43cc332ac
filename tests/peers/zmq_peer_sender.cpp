// zmq_peer_sender ENDPOINT: publishes four known batches to ENDPOINT with ZmqPublisher,
// for an independent subscriber (python_peer.py) to decode. Exits 0 when all were sent.
#include <kvbm/msgpack.hpp>
#include <kvbm/zmq.hpp>

#include <chrono>
#include <cstdio>
#include <exception>
#include <vector>

static int run_main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: zmq_peer_sender ENDPOINT\n");
        return 2;
    }
    using Plh = kvbm::PositionalLineageHash;
    using Batch = kvbm::KvbmCacheEvents<Plh>;
    using kvbm::Uint128;

    std::vector<Batch> batches;
    // SPEC section 5's example: the first two upstream hashes, instance 12345.
    batches.push_back({kvbm::KvCacheEvents<Plh>::create(
                           {Plh::from_raw(Uint128::from_parts(0, 0x0338e4d7fb2dca5cULL)),
                            Plh::from_raw(Uint128::from_parts(0x0059c726bfd96e52ULL, 0xe4a2b2379d6d3c3dULL))}),
                       12345U});
    // 20 hashes (a 16-bit array header) whose raw values the peer recomputes:
    // high = i * 0x0101010101010101, low = ~i; instance 2^127 + 5.
    std::vector<Plh> hs;
    for (std::uint64_t i = 0; i < 20; ++i) {
        hs.push_back(Plh::from_raw(Uint128::from_parts(i * 0x0101010101010101ULL, ~i)));
    }
    const kvbm::InstanceId big = Uint128::from_parts(std::uint64_t{1} << 63, 5);
    batches.push_back({kvbm::KvCacheEvents<Plh>::create(hs), big});
    batches.push_back({kvbm::KvCacheEvents<Plh>::remove({hs.rbegin(), hs.rend()}), big});
    batches.push_back({kvbm::KvCacheEvents<Plh>::shutdown(), big});

    kvbm::ZmqPublisher pub(argv[1]);
    if (!pub.wait_connected(std::chrono::seconds(10))) {
        std::fprintf(stderr, "zmq_peer_sender: no subscriber at %s\n", argv[1]);
        return 1;
    }
    for (const auto& b : batches) {
        const auto r = pub.publish("kvbm.events", kvbm::msgpack::encode(b));
        if (!r) {
            std::fprintf(stderr, "zmq_peer_sender: %s\n", r.error().c_str());
            return 1;
        }
    }
    const auto r = pub.flush();
    if (!r) {
        std::fprintf(stderr, "zmq_peer_sender: %s\n", r.error().c_str());
        return 1;
    }
    return 0;  // the destructor lingers until the queue reached the subscriber
}

// Whatever escapes the program's body is reported on one line, with a non-zero exit.
int main(int argc, char** argv) {
    try {
        return run_main(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "zmq_peer_sender: %s\n", e.what());
    } catch (...) {
        std::fprintf(stderr, "zmq_peer_sender: unknown error\n");
    }
    return 1;
}
