// The two-worker scenario every transport's end-to-end test runs (ZeroMQ, NATS): worker A
// holds a user prompt that extends worker B's system prompt, then A releases its suffix and
// both shut down. The transport is given as two callables, so the same batches and the same
// checks run over each.
#pragma once

#include "index_helpers.hpp"

#include <kvbm/index.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

namespace kvbm_test {

struct TwoWorkersResult {
    std::uint64_t events = 0;  // events in the 5 batches sent
};

/// `send(worker, batch)` publishes `batch` from worker 0 (A) or 1 (B); `settle(n)` makes the
/// hub apply `n` batches in all (flushing as the transport needs). 5 batches are sent.
template <class Send, class Settle>
TwoWorkersResult run_two_workers(const kvbm::PositionalIndex<>& index, Send send, Settle settle) {
    const auto system = chain(1, 20);
    const auto user = chain(2, 50, 1, 20);
    const kvbm::InstanceId id_a = kvbm::Uint128::from_parts(0xabcdef0123456789ULL, 1);
    const kvbm::InstanceId id_b = 2U;
    send(0, creates(id_a, user));
    send(1, creates(id_b, system));
    settle(2);
    auto m = index.query(user);
    REQUIRE(m);
    CHECK(m->position == 49);
    CHECK(m->holders == std::vector<kvbm::InstanceId>{id_a});
    m = index.query(system);
    REQUIRE(m);
    CHECK(m->holders == std::vector<kvbm::InstanceId>{id_b, id_a});

    // A releases what it added beyond the system prompt; then both shut down.
    send(0, removes(id_a, {user.rbegin(), user.rend() - 20}));
    send(1, shutdown(id_b));
    send(0, shutdown(id_a));
    settle(5);
    CHECK(index.empty());
    return {50 + 20 + 30};
}

}  // namespace kvbm_test
