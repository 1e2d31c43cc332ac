// kvbm-hub: the hub as a service. Ingests workers' KV events over ZeroMQ into a positional
// index and answers routers over HTTP with the Rust hub's discovery API (SPEC section 10),
// plus kvbm's registration with leases, /health and /metrics.
//
//   kvbm-hub [--http HOST:PORT] [--zmq-bind ENDPOINT] [--advertise-host HOST]
//            [--block-size N] [--max-seq-len N] [--lease-ttl SECONDS]
//            [--curve-secret-key FILE --curve-allow FILE] [--control-token FILE] [--require-lease]
//            [--nats URL[,URL...] [--subject-prefix P] [--jetstream STREAM --snapshot FILE
//             [--stream-max-msgs N] [--stream-max-bytes N] [--stream-max-age SECONDS]]]
//
// When ready it prints one line on stdout, {"http":"http://HOST:PORT","zmq":"tcp://HOST:PORT"}
// (plus "nats":"SUBJECT" with --nats);
// logs go to stderr; SIGINT/SIGTERM stop it (exit 0).
#include "hub_server.hpp"

#include <CLI/CLI.hpp>

#include <pthread.h>

#include <cmath>
#include <csignal>
#include <cstdio>
#include <exception>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

namespace {

/// "HOST:PORT" -> (host, port); the port is required (0 picks one).
std::pair<std::string, int> split_host_port(const std::string& text) {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) {
        throw std::invalid_argument("--http: expected HOST:PORT, got '" + text + "'");
    }
    const std::string port_text = text.substr(colon + 1);
    std::size_t used = 0;
    const int port = std::stoi(port_text, &used);
    if (used != port_text.size() || port < 0 || port > 65535) {
        throw std::invalid_argument("--http: bad port '" + port_text + "'");
    }
    return {text.substr(0, colon), port};
}

/// The first line of a file, without surrounding spaces.
std::string read_secret_line(const std::string& path, const char* flag) {
    std::ifstream in(path);
    if (!in) {
        throw std::invalid_argument(std::string(flag) + ": cannot read " + path);
    }
    std::string line;
    std::getline(in, line);
    const auto first = line.find_first_not_of(" \t\r");
    const auto last = line.find_last_not_of(" \t\r");
    if (first == std::string::npos) {
        throw std::invalid_argument(std::string(flag) + ": " + path + " is empty");
    }
    return line.substr(first, last - first + 1);
}

}  // namespace

static int run_main(int argc, char** argv) {
    CLI::App app{"kvbm-hub: the KV block index as a service (ZeroMQ ingest, HTTP discovery API)"};
    std::string http = "127.0.0.1:1337";
    kvbm_hub::HubOptions options;
    double lease_ttl_s = 10.0;
    std::string control_token_file;
    std::string curve_secret_file;
    std::string curve_allow_file;
    app.add_option("--http", http, "HTTP listener, HOST:PORT (port 0 picks one)")->capture_default_str();
    app.add_option("--zmq-bind", options.zmq_bind, "ZeroMQ ingest endpoint to bind (port 0 picks one)")
        ->capture_default_str();
    app.add_option("--advertise-host", options.advertise_host, "host workers reach the ingest socket at")
        ->capture_default_str();
    app.add_option("--block-size", options.block_size, "tokens per block (workers must match)")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--max-seq-len", options.max_seq_len, "longest sequence indexed, in tokens")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--lease-ttl", lease_ttl_s, "seconds a registration lives without a keepalive")
        ->capture_default_str()
        ->check(CLI::Range(0.001, 86400.0));
    app.add_option("--http-threads", options.http_threads, "HTTP connections served at once")
        ->capture_default_str()
        ->check(CLI::Range(1, 4096));
    app.add_option("--max-body-bytes", options.max_body_bytes, "larger request bodies are refused with 413")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--control-token", control_token_file,
                   "file whose first line is the bearer token the /v1/instances routes require")
        ->check(CLI::ExistingFile);
    app.add_flag("--require-lease", options.require_lease,
                 "drop batches of instances without a live lease (POST /v1/instances first), so every dead "
                 "worker leaves the view; Rust workers, which do not register, are then ignored");
    app.add_option("--curve-secret-key", curve_secret_file,
                   "file with the hub's CURVE secret key (Z85, 40 characters): ingest needs CURVE")
        ->check(CLI::ExistingFile);
    app.add_option("--curve-allow", curve_allow_file,
                   "file of 'PUBLIC_KEY INSTANCE_ID' lines: the keys allowed to publish, and for which ids")
        ->check(CLI::ExistingFile);
#ifdef KVBM_HUB_HAVE_NATS
    std::string nats_urls;
    std::string subject_prefix;
    kvbm::NatsJetStreamOptions jetstream;
    std::string stream;
    std::string snapshot_file;
    std::int64_t max_age_s = 0;
    auto* nats_group = "NATS ingest (beside ZeroMQ)";
    app.add_option("--nats", nats_urls, "read batches from NATS too: server URL(s), comma-separated")
        ->group(nats_group);
    app.add_option("--subject-prefix", subject_prefix, "subjects are PREFIX.kvbm.events / PREFIX.kvbm.resync")
        ->group(nats_group);
    app.add_option("--jetstream", stream,
                   "read through JetStream stream STREAM (created if missing) and a durable consumer")
        ->group(nats_group);
    app.add_option("--snapshot", snapshot_file,
                   "with --jetstream: the index snapshot file (restarts replay only what came after it); "
                   "FILE.leases beside it keeps who was registered")
        ->group(nats_group);
    app.add_option("--stream-max-msgs", jetstream.max_messages, "limit of a stream the hub creates (0: none)")
        ->group(nats_group)
        ->check(CLI::NonNegativeNumber);
    app.add_option("--stream-max-bytes", jetstream.max_bytes, "limit of a stream the hub creates (0: none)")
        ->group(nats_group)
        ->check(CLI::NonNegativeNumber);
    app.add_option("--stream-max-age", max_age_s, "limit of a stream the hub creates, seconds (0: none)")
        ->group(nats_group)
        ->check(CLI::NonNegativeNumber);
    std::int64_t snapshot_interval_ms = 10000;
    app.add_option("--snapshot-interval", snapshot_interval_ms, "milliseconds between snapshots")
        ->capture_default_str()
        ->group(nats_group)
        ->check(CLI::PositiveNumber);
#endif
    CLI11_PARSE(app, argc, argv);

    try {
        std::tie(options.http_host, options.http_port) = split_host_port(http);
        options.lease_ttl = std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(lease_ttl_s * 1000)));
        if (options.max_seq_len % options.block_size != 0) {
            throw std::invalid_argument("--max-seq-len " + std::to_string(options.max_seq_len) +
                                        " is not a multiple of --block-size " + std::to_string(options.block_size));
        }
        if (!control_token_file.empty()) {
            options.control_token = read_secret_line(control_token_file, "--control-token");
        }
#ifdef KVBM_HUB_HAVE_NATS
        if (!nats_urls.empty()) {
            kvbm::NatsHubOptions n;
            n.connection.servers.clear();
            std::stringstream urls(nats_urls);
            for (std::string url; std::getline(urls, url, ',');) {
                if (!url.empty()) {
                    n.connection.servers.push_back(url);
                }
            }
            n.connection.name = "kvbm-hub";
            n.subject_prefix = subject_prefix;
            if (!stream.empty()) {
                jetstream.stream = stream;
                jetstream.snapshot_path = snapshot_file;
                if (!snapshot_file.empty()) {  // who was registered, beside what was indexed
                    options.leases_path = snapshot_file + ".leases";
                }
                jetstream.max_age = std::chrono::seconds(max_age_s);
                jetstream.snapshot_interval = std::chrono::milliseconds(snapshot_interval_ms);
                n.jetstream = jetstream;
                if (snapshot_file.empty()) {
                    std::cerr << "kvbm-hub: --jetstream without --snapshot: a restart replays the whole stream, "
                                 "which is exact only while the stream has dropped nothing\n";
                }
            }
            options.nats = std::move(n);
        } else if (!stream.empty() || !subject_prefix.empty() || !snapshot_file.empty()) {
            throw std::invalid_argument("--jetstream, --subject-prefix and --snapshot need --nats");
        }
#endif
        if (curve_secret_file.empty() != curve_allow_file.empty()) {
            throw std::invalid_argument("--curve-secret-key and --curve-allow go together");
        }
        if (!curve_secret_file.empty()) {
            options.curve = kvbm_hub::load_curve_config(curve_secret_file, curve_allow_file);
        }
    } catch (const std::exception& e) {
        std::cerr << "kvbm-hub: " << e.what() << "\n";
        return 2;
    }

    // Every thread the server starts inherits this mask, so the signals reach sigwait below.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

    try {
        kvbm_hub::HubServer server(options);
        std::cout << server.ready_line() << std::endl;  // flushed: scripts wait for it
        std::cerr << "kvbm-hub: serving HTTP on " << server.http_url() << ", ingest on " << server.zmq_endpoint()
#ifdef KVBM_HUB_HAVE_NATS
                  << (options.nats ? " and NATS" : "")
#endif
                  << " (block size " << options.block_size << ", max_seq_len " << options.max_seq_len << ", lease "
                  << options.lease_ttl.count() << " ms)\n";
        int sig = 0;
        sigwait(&stop_signals, &sig);
        std::cerr << "kvbm-hub: " << (sig == SIGINT ? "SIGINT" : "SIGTERM") << ", stopping\n";
        server.stop();
    } catch (const zmq::error_t& e) {
        std::cerr << "kvbm-hub: cannot bind the ingest socket to --zmq-bind " << options.zmq_bind << ": " << e.what()
                  << "\n";
        return 1;
    } catch (const std::exception& e) {
        std::cerr << "kvbm-hub: " << e.what() << "\n";
        return 1;
    }
    return 0;
}

// Whatever escapes the program's body is reported on one line, with a non-zero exit.
int main(int argc, char** argv) {
    try {
        return run_main(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "kvbm-hub: %s\n", e.what());
    } catch (...) {
        std::fprintf(stderr, "kvbm-hub: unknown error\n");
    }
    return 1;
}
