// kvbm-demo: the whole path from "block registered" to "router knows which worker holds
// it", checked as it runs.
//
//   kvbm-demo [all] [options]   hub and W workers in one process, over loopback
//   kvbm-demo hub [--http 127.0.0.1:1337] [--bind tcp://*:5557] [--duration S] [--transport nats --nats URL]
//   kvbm-demo worker --hub-url http://HOST:1337 [--transport nats --nats URL] [options]
//
// The hub is kvbm-hub's server (the same code as the kvbm-hub service). Workers are KV cache
// managers (block budget, LRU eviction) serving chat traffic whose prompts share prefixes;
// each joins the hub with kvbm::HubClient (registration, lease, ZeroMQ) and publishes its
// block events through kvbm's pipeline. A router asks the hub over HTTP (POST
// /v1/features/indexer/query, the Rust hub's API), for each request, which worker holds the
// deepest prefix and routes there. At quiescent points the hub's view is compared with the union of the
// workers' registries; after a graceful stop the hub must be empty and every published
// batch applied. The last line printed is one JSON object; the exit code is 1 when a check
// failed.
//
// --transport nats: the workers publish through kvbm::NatsPublisher, holding their leases
// with kvbm::HubLease, and the hub reads the events subject (HubOptions::nats). In mode all
// with no --nats URL the demo starts a local nats-server on a free loopback port (and, with
// --faults, restarts it on the schedule); modes hub and worker take the broker they share.
#include "faults.hpp"
#include "hub_service.hpp"
#include "nats_broker.hpp"
#include "worker.hpp"
#include "workload.hpp"

#include <kvbm/tokens.hpp>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace kvbm_demo {
namespace {

struct Options {
    std::string mode = "all";
    std::size_t workers = 4;
    std::size_t requests = 20000;
    std::size_t block_size = 16;
    std::size_t budget = 4096;
    std::size_t users = 96;
    std::size_t system_prompts = 6;
    std::size_t max_seq_len = 8192;
    std::size_t check_every = 5000;
    std::uint64_t seed = 42;
    std::string bind = "tcp://*:5557";
    std::string http = "127.0.0.1:1337";  // hub mode: the HTTP listener
    std::string hub_url;                  // worker mode: the hub's HTTP API
    double duration = 0;                  // hub mode: seconds (0: until SIGINT/SIGTERM)
    bool faults = false;                  // mode all: inject faults on a schedule (faults.hpp)
    std::size_t fault_every = 250;
    std::size_t fault_span = 60;
    std::string transport = "zmq";  // mode all: zmq or nats
    std::string nats_url;           // --transport nats: the broker (empty: start a local nats-server)
};

/// Unsigned decimal integers only: CLI11's own conversion also reads 0x.. and octal.
const CLI::Validator decimal(
    [](std::string& v) -> std::string {
        std::uint64_t n = 0;
        const auto r = std::from_chars(v.data(), v.data() + v.size(), n);
        return !v.empty() && r.ec == std::errc{} && r.ptr == v.data() + v.size() ? "" : "needs a number, got " + v;
    },
    "");

/// The command line. Adding a flag is one line: a field in Options and an add_option here.
Options parse(int argc, char** argv) {
    Options o;
    CLI::App app(
        "kvbm-demo: KV cache workers publish block events through kvbm to a hub; a router asks the hub "
        "where each prompt's prefix is cached. Checked as it runs.",
        "kvbm-demo");
    app.option_defaults()->always_capture_default()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    app.allow_extras();  // reported below, before the mode is checked: "--bogus 3" names --bogus
    app.add_option("mode", o.mode, "all (hub and workers in one process), hub or worker");

    const std::string workload = "Workload (modes all and worker)";
    app.add_option("--workers", o.workers, "Simulated workers")->check(decimal)->group(workload);
    app.add_option("--requests", o.requests, "Requests to route")->check(decimal)->group(workload);
    app.add_option("--block-size", o.block_size, "Tokens per block")->check(decimal)->group(workload);
    app.add_option("--budget", o.budget, "Blocks each worker can cache")->check(decimal)->group(workload);
    app.add_option("--users", o.users, "Users (conversations)")->check(decimal)->group(workload);
    app.add_option("--system-prompts", o.system_prompts, "Shared system prompts")->check(decimal)->group(workload);
    app.add_option("--max-seq-len", o.max_seq_len, "Tokens per sequence at most")->check(decimal)->group(workload);
    app.add_option("--check-every", o.check_every, "Requests between checks")->check(decimal)->group(workload);
    app.add_option("--seed", o.seed, "Workload seed")->check(decimal)->group(workload);

    const std::string faults = "Fault injection (mode all)";
    app.add_flag("--faults", o.faults,
                 "Inject hub restarts, publish-failure windows and channel lag on a schedule; check the hub "
                 "reconverges after each")
        ->group(faults);
    app.add_option("--fault-every", o.fault_every, "Requests between faults")->check(decimal)->group(faults);
    app.add_option("--fault-span", o.fault_span, "Requests served while a fault lasts")->check(decimal)->group(faults);

    const std::string transport = "Transport (all modes)";
    app.add_option("--transport", o.transport, "Events transport: zmq, or nats (a NATS broker between workers and hub)")
        ->group(transport);
    app.add_option("--nats", o.nats_url,
                   "With --transport nats: the broker's URL, nats://HOST:PORT (mode all: by default start a local "
                   "nats-server on a free loopback port; modes hub and worker: required, the broker they share)")
        ->group(transport);

    const std::string hub = "Hub (mode hub)";
    app.add_option("--bind", o.bind, "Events (ZeroMQ) endpoint to bind")->group(hub);
    app.add_option("--http", o.http, "HTTP listener, HOST:PORT (port 0 picks one)")->group(hub);
    app.add_option("--duration", o.duration, "Seconds to run (0: until SIGINT/SIGTERM)")->group(hub);

    const std::string worker = "Worker (mode worker)";
    app.add_option("--hub-url", o.hub_url, "The hub's HTTP API, http://HOST:PORT (required)")->group(worker);

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
        std::fputs(app.help().c_str(), stdout);
        std::exit(0);
    }
    if (!app.remaining().empty()) {
        throw std::invalid_argument("unknown option " + app.remaining().front());
    }
    if (o.mode != "all" && o.mode != "hub" && o.mode != "worker") {
        throw std::invalid_argument("unknown mode " + o.mode + " (expected all, hub or worker)");
    }
    if (o.workers == 0 || o.block_size == 0 || o.users == 0 || o.system_prompts == 0 || o.check_every == 0) {
        throw std::invalid_argument(
            "--workers, --block-size, --users, --system-prompts and --check-every must be positive");
    }
    if (o.max_seq_len % o.block_size != 0) {
        throw std::invalid_argument("--max-seq-len must be a multiple of --block-size");
    }
    if (o.budget < o.max_seq_len / o.block_size) {
        throw std::invalid_argument("--budget must hold at least one full sequence (max-seq-len / block-size blocks)");
    }
    if (o.transport != "zmq" && o.transport != "nats") {
        throw std::invalid_argument("unknown transport " + o.transport + " (expected zmq or nats)");
    }
    if (o.transport == "nats" && o.mode != "all" && o.nats_url.empty()) {
        throw std::invalid_argument("--transport nats in mode " + o.mode +
                                    " needs --nats URL (the broker the hub and the workers share)");
    }
    if (!o.nats_url.empty() && o.transport != "nats") {
        throw std::invalid_argument("--nats needs --transport nats");
    }
    if (o.mode == "worker" && o.hub_url.empty()) {
        throw std::invalid_argument("worker mode needs --hub-url http://HOST:PORT");
    }
    return o;
}

std::atomic<bool> g_interrupted{false};
extern "C" void on_signal(int) { g_interrupted.store(true); }

/// A random 128-bit id, like the UUIDs Dynamo gives instances.
kvbm::InstanceId random_instance_id() {
    std::random_device rd;
    const std::uint64_t hi = (std::uint64_t{rd()} << 32) | rd();
    const std::uint64_t lo = (std::uint64_t{rd()} << 32) | rd();
    return kvbm::InstanceId::from_parts(hi, lo);
}

#ifdef KVBM_DEMO_HAVE_NATS
/// The demo's NATS client settings: one local broker, quick reconnection (a broker restart
/// in --faults is healed within ~100 ms of the broker being back).
kvbm::NatsConnectionOptions nats_connection(const std::string& url, std::string name) {
    kvbm::NatsConnectionOptions c;
    c.servers = {url};
    c.name = std::move(name);
    c.reconnect_wait = std::chrono::milliseconds(100);
    return c;
}
#endif

std::vector<Hash> plhs(const std::vector<kvbm::Token>& tokens, std::size_t block_size) {
    const auto seq = kvbm::TokenBlockSequence::from_slice(tokens, block_size);
    std::vector<Hash> out;
    out.reserve(seq.blocks().size());
    for (const auto& b : seq.blocks()) {
        out.push_back(b.plh);
    }
    return out;
}

struct Totals {
    std::uint64_t prompt_blocks = 0;
    std::uint64_t predicted_hits = 0;  // blocks the hub said the chosen worker holds
    std::uint64_t actual_hits = 0;     // blocks the chosen worker really had cached
    std::uint64_t checks = 0;
    std::uint64_t mismatches = 0;
    std::uint64_t unsettled = 0;  // checks where the pipeline did not drain in time
};

/// Waits until every worker's events are published and applied by the hub, then compares
/// the hub's view with each worker's registry. Returns the number of differences.
std::uint64_t check(std::vector<std::unique_ptr<SimWorker>>& workers, HubHttp& hub, Totals& totals) {
    ++totals.checks;
    bool settled = true;
    for (auto& w : workers) {
        settled = w->wait_published(std::chrono::seconds(10)) && settled;
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (true) {
        bool applied = true;
        for (auto& w : workers) {
            applied = applied && hub.applied(w->id()) >= w->metrics().batches_published;
        }
        if (applied) {
            break;
        }
        if (std::chrono::steady_clock::now() > deadline) {
            settled = false;
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    totals.unsettled += settled ? 0 : 1;
    std::uint64_t diff = 0;
    const auto at_hub = hub.holdings();
    for (auto& w : workers) {
        const auto local = w->registered_hashes();
        const auto held = at_hub.find(w->id());
        const std::set<Hash> a = held == at_hub.end() ? std::set<Hash>{} : held->second;
        const std::set<Hash> b(local.begin(), local.end());
        for (const auto& h : a) {
            diff += b.contains(h) ? 0U : 1U;
        }
        for (const auto& h : b) {
            diff += a.contains(h) ? 0U : 1U;
        }
    }
    totals.mismatches += diff;
    return diff;
}

/// Workers and router against the hub at `hub_url`; with `nats_url`, the workers publish to
/// that NATS broker instead of the hub's ZeroMQ endpoint. Returns the exit code.
int run_workers(const Options& o, const std::string& hub_url, bool own_hub, const std::string& nats_url = {}) {
    HubHttp hub(hub_url);
    std::vector<std::unique_ptr<SimWorker>> workers;
    std::map<kvbm::InstanceId, std::size_t> by_id;
    for (std::size_t i = 0; i < o.workers; ++i) {
        const auto id = random_instance_id();
        if (nats_url.empty()) {
            workers.push_back(
                std::make_unique<SimWorker>(i, id, hub_url, o.block_size, o.max_seq_len, WorkerConfig{o.budget}));
        } else {
#ifdef KVBM_DEMO_HAVE_NATS
            kvbm::NatsPublisherOptions po;
            po.connection = nats_connection(nats_url, "kvbm-demo worker " + std::to_string(i));
            auto nats = std::make_shared<kvbm::NatsPublisher>(po);
            if (!nats->wait_connected(std::chrono::seconds(10))) {
                throw std::runtime_error("worker: NATS broker " + nats_url + " did not answer");
            }
            workers.push_back(std::make_unique<SimWorker>(i, id, hub_url, o.block_size, o.max_seq_len, std::move(nats),
                                                          WorkerConfig{o.budget}));
#else
            throw std::invalid_argument("--transport nats: this kvbm-demo was built without NATS (libnats-dev)");
#endif
        }
        by_id[workers.back()->id()] = i;
    }
    std::printf("kvbm-demo: %zu workers (budget %zu blocks each), %zu requests, %zu-token blocks, hub %s%s%s\n",
                o.workers, o.budget, o.requests, o.block_size, hub_url.c_str(), nats_url.empty() ? "" : ", via NATS ",
                nats_url.c_str());
    Workload workload({o.system_prompts, o.users, o.max_seq_len, o.seed});
    Totals totals;
    const auto t0 = std::chrono::steady_clock::now();
    double busy_seconds = 0;  // the request loop, without the pauses for checks
    auto loop_start = t0;
    for (std::size_t r = 0; r < o.requests; ++r) {
        const Request req = workload.next();
        const auto prompt = plhs(req.prompt, o.block_size);
        const auto match = hub.query(prompt);
        // Deepest prefix first, load second: among our workers holding the deepest match,
        // the least busy; none, or all of them far busier than the idlest: the idlest.
        std::size_t idlest = 0;
        for (std::size_t i = 1; i < workers.size(); ++i) {
            idlest = workers[i]->served() < workers[idlest]->served() ? i : idlest;
        }
        std::size_t chosen = idlest;
        std::uint64_t predicted = 0;
        if (match) {
            std::optional<std::size_t> best;
            for (const auto& id : match->holders) {
                if (auto it = by_id.find(id); it != by_id.end()) {
                    if (!best || workers[it->second]->served() < workers[*best]->served()) {
                        best = it->second;
                    }
                }
            }
            const std::uint64_t slack = 16 + workers[idlest]->served() / 4;
            if (best && workers[*best]->served() <= workers[idlest]->served() + slack) {
                chosen = *best;
                predicted = match->position + 1;
            }
        }
        const auto full = plhs(workload.reply(req.user), o.block_size);
        const auto served = workers[chosen]->serve(full, prompt.size());
        totals.prompt_blocks += prompt.size();
        totals.predicted_hits += predicted;
        totals.actual_hits += served.cached_prefix;
        if ((r + 1) % o.check_every == 0 || r + 1 == o.requests) {
            busy_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - loop_start).count();
            const auto diff = check(workers, hub, totals);
            const auto stats = hub.stats();
            std::uint64_t events = 0;
            for (auto& w : workers) {
                events += w->creates() + w->removes();
            }
            std::printf(
                "[%6zu/%zu] %8.0f req/s  events %8llu  hub entries %6llu  router hit %5.1f%%  "
                "check: %llu mismatches\n",
                r + 1, o.requests, static_cast<double>(r + 1) / busy_seconds, static_cast<unsigned long long>(events),
                static_cast<unsigned long long>(stats.entries),
                100.0 * static_cast<double>(totals.predicted_hits) / static_cast<double>(totals.prompt_blocks),
                static_cast<unsigned long long>(diff));
            std::fflush(stdout);
            loop_start = std::chrono::steady_clock::now();
        }
    }

    // Graceful stop: each publisher sends its pending batch, then Shutdown, then flushes.
    std::uint64_t created = 0, removed = 0, batches = 0, bytes = 0, publish_errors = 0, lag = 0, dropped = 0,
                  recoveries = 0;
    bool stopped = true;
    for (auto& w : workers) {
        stopped = w->stop() && stopped;
    }
    for (auto& w : workers) {
        const auto m = w->metrics();
        created += w->creates();
        removed += w->removes();
        batches += m.batches_published;
        bytes += m.bytes_published;
        publish_errors += m.publish_errors;
        lag += m.lag_events;
        recoveries += m.recoveries;
        dropped += w->transport_dropped();
    }
    // Every published batch (Shutdown included) must reach the hub: wait, bounded, then count.
    std::uint64_t lost = 0;
    HubStats final_stats;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (true) {
        lost = 0;
        for (auto& w : workers) {
            const std::uint64_t applied = hub.applied(w->id());
            const std::uint64_t published = w->metrics().batches_published;
            lost += published > applied ? published - applied : 0;
        }
        final_stats = hub.stats();  // after the applied counts: it includes the last Shutdowns
        if (lost == 0 || std::chrono::steady_clock::now() > deadline) {
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double events_per_s = static_cast<double>(created + removed) / busy_seconds;
    const double hit = static_cast<double>(totals.predicted_hits) /
                       static_cast<double>(std::max<std::uint64_t>(1, totals.prompt_blocks));
    const double actual =
        static_cast<double>(totals.actual_hits) / static_cast<double>(std::max<std::uint64_t>(1, totals.prompt_blocks));

    std::printf("\nsummary\n");
    std::printf("  events   %llu created, %llu removed, in %llu batches (%.1f MB of MessagePack), %.0f events/s\n",
                static_cast<unsigned long long>(created), static_cast<unsigned long long>(removed),
                static_cast<unsigned long long>(batches), static_cast<double>(bytes) / 1e6, events_per_s);
    std::printf("  router   the hub predicted %.1f%% of prompt blocks cached at the chosen worker; %.1f%% were\n",
                100 * hit, 100 * actual);
    std::printf("  checks   %llu quiescent checks, %llu hub/registry mismatches, %llu unsettled\n",
                static_cast<unsigned long long>(totals.checks), static_cast<unsigned long long>(totals.mismatches),
                static_cast<unsigned long long>(totals.unsettled));
    std::printf(
        "  stop     %s; hub holds %llu entries after it; %llu published batches not applied; "
        "%llu publish errors, %llu dropped by %s\n",
        stopped ? "graceful" : "TIMED OUT", static_cast<unsigned long long>(final_stats.entries),
        static_cast<unsigned long long>(lost), static_cast<unsigned long long>(publish_errors),
        static_cast<unsigned long long>(dropped), nats_url.empty() ? "ZeroMQ" : "the NATS client");
    if (recoveries == 0) {
        std::printf("  lag      none: every publisher kept up with its channel\n");
    } else {
        std::printf(
            "  lag      publishers fell behind their channel %llu times, missing %llu events; each time\n"
            "           they re-announced the live registrations (Shutdown, then Creates), so the hub\n"
            "           stayed right\n",
            static_cast<unsigned long long>(recoveries), static_cast<unsigned long long>(lag));
    }
    if (!own_hub) {
        std::printf("  note     hub_entries_final counts the whole hub, other worker processes included\n");
    }
    const nlohmann::json result = {
        {"transport", nats_url.empty() ? "zmq" : "nats"},
        {"workers", o.workers},
        {"requests", o.requests},
        {"events_created", created},
        {"events_removed", removed},
        {"batches", batches},
        {"bytes", bytes},
        {"events_per_s", std::round(events_per_s)},
        {"router_hit_rate", std::round(hit * 10000) / 10000},
        {"cache_hit_rate", std::round(actual * 10000) / 10000},
        {"hub_entries_final", final_stats.entries},
        {"mismatches", totals.mismatches},
        {"lost", lost},
        {"unsettled_checks", totals.unsettled},
        {"publish_errors", publish_errors},
        {"zmq_dropped", dropped},  // the transport's drops (the NATS client's with --transport nats)
        {"lag_events", lag},
        {"lag_recoveries", recoveries},
        {"hub_rejected", final_stats.rejected},
        {"seconds", std::round(seconds * 100) / 100},
    };
    std::cout << result.dump() << std::endl;
    const bool ok = stopped && totals.mismatches == 0 && lost == 0 && totals.unsettled == 0 && publish_errors == 0 &&
                    dropped == 0 && final_stats.rejected == 0 && (!own_hub || final_stats.entries == 0);
    return ok ? 0 : 1;
}

/// --transport nats in mode all: the broker's URL, after starting a local nats-server when
/// --nats was not given (`local` then owns it).
std::string nats_broker(const Options& o, std::unique_ptr<LocalNatsServer>& local) {
#ifndef KVBM_DEMO_HAVE_NATS
    (void)local;
    throw std::invalid_argument("--transport nats: this kvbm-demo was built without NATS (libnats-dev)");
#else
    if (!o.nats_url.empty()) {
        return o.nats_url;
    }
    const auto binary = find_nats_server();
    if (!binary) {
        throw std::invalid_argument(
            "--transport nats without --nats URL needs nats-server (Debian: nats-server; or set KVBM_NATS_SERVER), "
            "and none was found on PATH, /usr/sbin or /usr/local/sbin");
    }
    local = std::make_unique<LocalNatsServer>(*binary);
    std::printf("kvbm-demo: started %s at %s\n", binary->c_str(), local->url().c_str());
    return local->url();
#endif
}

kvbm_hub::HubOptions hub_options(const Options& o, const std::string& http, const std::string& bind) {
    kvbm_hub::HubOptions h;
    const auto colon = http.rfind(':');
    if (colon == std::string::npos) {
        throw std::invalid_argument("--http: expected HOST:PORT, got " + http);
    }
    h.http_host = http.substr(0, colon);
    h.http_port = std::stoi(http.substr(colon + 1));
    h.zmq_bind = bind;
    h.block_size = o.block_size;
    h.max_seq_len = o.max_seq_len;
    // Each worker's HubClient keeps an HTTP connection (lease keep-alive), and httplib gives
    // every open connection a thread: room for all of them, the router and the checker.
    h.http_threads = o.workers + 4;
    return h;
}

/// The hub's options with NATS ingest from the broker at `nats_url`, when one is given.
kvbm_hub::HubOptions with_nats(kvbm_hub::HubOptions h, [[maybe_unused]] const std::string& nats_url) {
    if (nats_url.empty()) {
        return h;
    }
#ifdef KVBM_DEMO_HAVE_NATS
    h.nats.emplace();
    h.nats->connection = nats_connection(nats_url, "kvbm-demo hub");
    return h;
#else
    throw std::invalid_argument("--transport nats: this kvbm-demo was built without NATS (libnats-dev)");
#endif
}

int run_hub(const Options& o) {
    kvbm_hub::HubServer hub(with_nats(hub_options(o, o.http, o.bind), o.transport == "nats" ? o.nats_url : ""));
    HubHttp client(hub.http_url());
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    std::printf("kvbm-demo hub: http %s, events %s%s%s\n", hub.http_url().c_str(), hub.zmq_endpoint().c_str(),
                o.transport == "nats" ? " and NATS at " : "", o.transport == "nats" ? o.nats_url.c_str() : "");
    std::fflush(stdout);
    const auto t0 = std::chrono::steady_clock::now();
    auto last_print = t0;
    const auto json = [](const HubStats& s) {
        return nlohmann::json{{"entries", s.entries},
                              {"batches_applied", s.batches_applied},
                              {"events_applied", s.events_applied},
                              {"rejected", s.rejected},
                              {"instances", s.instances}};
    };
    while (!g_interrupted.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        const auto now = std::chrono::steady_clock::now();
        if (o.duration > 0 && std::chrono::duration<double>(now - t0).count() >= o.duration) {
            break;
        }
        if (now - last_print >= std::chrono::seconds(1)) {
            last_print = now;
            const auto s = client.stats();
            std::printf(
                "hub: %llu batches, %llu events applied, %llu entries, %llu rejected, %llu instances registered\n",
                static_cast<unsigned long long>(s.batches_applied), static_cast<unsigned long long>(s.events_applied),
                static_cast<unsigned long long>(s.entries), static_cast<unsigned long long>(s.rejected),
                static_cast<unsigned long long>(s.instances));
            std::fflush(stdout);
        }
    }
    std::cout << json(client.stats()).dump() << std::endl;
    return 0;
}

}  // namespace
}  // namespace kvbm_demo

int main(int argc, char** argv) {
    using namespace kvbm_demo;
    try {
        const Options o = parse(argc, argv);
        if (o.mode == "hub") {
            return run_hub(o);
        }
        if (o.mode == "worker") {
            return run_workers(o, o.hub_url, false, o.transport == "nats" ? o.nats_url : std::string{});
        }
        std::unique_ptr<LocalNatsServer> broker;  // --transport nats without --nats
        const std::string nats_url = o.transport == "nats" ? nats_broker(o, broker) : std::string{};
        if (o.faults) {
            FaultOptions f;
            f.workers = o.workers;
            f.requests = o.requests;
            f.fault_every = std::max<std::size_t>(1, o.fault_every);
            f.fault_span = o.fault_span;
            f.block_size = o.block_size;
            f.budget = o.budget;
            f.max_seq_len = o.max_seq_len;
            f.users = o.users;
            f.system_prompts = o.system_prompts;
            f.seed = o.seed;
#ifdef KVBM_DEMO_HAVE_NATS
            if (!nats_url.empty()) {
                f.nats = nats_connection(nats_url, "kvbm-demo");
                if (broker) {  // broker restarts join the schedule
                    f.restart_broker = [&broker](const std::function<void()>& while_down) {
                        broker->stop();
                        while_down();
                        broker->restart();
                    };
                }
            }
#endif
            return run_faults(f);
        }
        kvbm_hub::HubServer hub(with_nats(hub_options(o, "127.0.0.1:0", "tcp://127.0.0.1:0"), nats_url));
        return run_workers(o, hub.http_url(), true, nats_url);
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << '\n';
        return 2;
    }
}
