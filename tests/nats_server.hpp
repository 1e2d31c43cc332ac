// A real nats-server for tests: started on a free loopback port with JetStream in a
// temporary directory, stopped (or killed) and restarted on the same port and storage. The
// process handling is the demo's (examples/kvbm-demo/nats_broker.hpp); this adds the tests'
// defaults: the binary CMake found, JetStream on.
#pragma once

#include "../examples/kvbm-demo/nats_broker.hpp"

#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

namespace kvbm_test {

/// The nats-server binary: $KVBM_NATS_SERVER, else the path CMake found.
inline std::string nats_server_path() {
    if (const char* env = std::getenv("KVBM_NATS_SERVER"); env != nullptr && *env != '\0') {
        return env;
    }
#ifdef KVBM_NATS_SERVER
    return KVBM_NATS_SERVER;
#else
    return "nats-server";
#endif
}

/// A loopback TCP port nobody listens on right now.
inline int free_tcp_port() { return kvbm_demo::free_loopback_port(); }

class NatsServer : public kvbm_demo::LocalNatsServer {
public:
    /// Starts a server (JetStream on by default, storage in a fresh temporary directory);
    /// `extra` are more command-line arguments (e.g. {"--user", "u", "--pass", "p"}).
    explicit NatsServer(bool jetstream = true, std::vector<std::string> extra = {})
        : LocalNatsServer(nats_server_path(), jetstream, std::move(extra)) {}
};

}  // namespace kvbm_test
