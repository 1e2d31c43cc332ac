#!/usr/bin/env python3
"""kvbm-demo --transport nats: the workers publish through kvbm::NatsPublisher to a
nats-server the demo starts itself, and the in-process hub reads the events subject.
1. A short run must end like the ZeroMQ demo: mismatches 0, lost 0, an empty hub.
2. A short --faults run adds broker restarts (nats-server stopped and started on the same
   port): after each fault heals the hub equals the workers' registries again.
3. Hub and workers in separate processes sharing a broker (the workers hold leases with
   kvbm::HubLease): the same end, and every worker unregistered.
4. Usage errors: an unreachable --nats URL, or no nats-server to start, exit 2 with a
   message.
Usage: test_demo_nats.py KVBM_DEMO NATS_SERVER [RECONVERGE_LIMIT_MS]"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "nats"))
from natstest import NatsServer  # noqa: E402

demo = sys.argv[1]
env = dict(os.environ, KVBM_NATS_SERVER=sys.argv[2])
reconverge_limit_ms = float(sys.argv[3]) if len(sys.argv) > 3 else 20000.0  # generous: CI may be loaded/TSan
failures = []


def check(name, cond, detail=""):
    if not cond:
        failures.append(name)
        print(f"FAIL: {name} {detail}")


def run(args, timeout):
    r = subprocess.run([demo, *args], capture_output=True, text=True, timeout=timeout, env=env)
    print(r.stdout)
    print(r.stderr, file=sys.stderr)
    return r


# 1. The plain run.
r = run(["--transport", "nats", "--requests", "3000", "--check-every", "1000", "--workers", "3"], 300)
res = json.loads(r.stdout.strip().splitlines()[-1])
check("nats: exit 0", r.returncode == 0, r.stderr)
check("nats: transport", res.get("transport") == "nats", res)
for key in ("mismatches", "lost", "hub_entries_final", "unsettled_checks", "publish_errors", "zmq_dropped",
            "hub_rejected"):
    check(f"nats: {key} == 0", res[key] == 0, res)
check("nats: events flowed", res["events_created"] > 0 and res["events_removed"] > 0, res)
check("nats: every check ran", "3 quiescent checks" in r.stdout, r.stdout)

# 2. Faults, broker restarts included.
r = run(["--faults", "--transport", "nats", "--workers", "2", "--requests", "3000", "--fault-every", "150",
         "--fault-span", "40"], 900)
res = json.loads(r.stdout.strip().splitlines()[-1])
check("faults: exit 0", r.returncode == 0, r.stderr)
check("faults: transport", res.get("transport") == "nats", res)
for key in ("mismatches", "lost", "hub_entries_final", "unsettled_checks"):
    check(f"faults: {key} == 0", res[key] == 0, res)
check("faults: broker restarts >= 1", res["faults"].get("broker_restarts", 0) >= 1, res)
check("faults: hub restarts >= 1", res["faults"]["hub_restarts"] >= 1, res)
check("faults: publish-failure windows >= 1", res["faults"]["publish_failure_windows"] >= 1, res)
check("faults: a reconvergence after each broker restart",
      r.stdout.count("broker restarted") == res["faults"].get("broker_restarts", -1), r.stdout)
check(f"faults: reconverge_ms_max <= {reconverge_limit_ms}", res["reconverge_ms_max"] <= reconverge_limit_ms, res)

# 3. Hub and workers in separate processes sharing a broker: the hub reads NATS, each worker
# publishes to it and holds its lease with kvbm::HubLease over the hub's HTTP API.
with tempfile.TemporaryDirectory(prefix="kvbm-demo-nats-split-") as tmp:
    broker = NatsServer(sys.argv[2], tmp, jetstream=False)
    nats_url = broker.url
    try:
        hub = subprocess.Popen([demo, "hub", "--bind", "tcp://127.0.0.1:0", "--http", "127.0.0.1:0", "--transport",
                                "nats", "--nats", nats_url], stdout=subprocess.PIPE, text=True, env=env)
        try:
            first = hub.stdout.readline()
            m = re.match(r"kvbm-demo hub: http (\S+), events \S+ and NATS at (\S+)", first)
            check("split: the hub announces NATS", m is not None and m.group(2) == nats_url, first)
            w = run(["worker", "--hub-url", m.group(1), "--transport", "nats", "--nats", nats_url, "--requests", "2000",
                     "--check-every", "1000", "--workers", "3"], 300)
            check("split: worker exit 0", w.returncode == 0, w.stderr)
            wres = json.loads(w.stdout.strip().splitlines()[-1])
            check("split: transport", wres.get("transport") == "nats", wres)
            for key in ("mismatches", "lost", "hub_entries_final", "unsettled_checks", "publish_errors"):
                check(f"split: {key} == 0", wres[key] == 0, wres)
            status = json.loads(urllib.request.urlopen(m.group(1) + "/v1/features/indexer/instances", timeout=10).read())
            check("split: the workers unregistered on exit", status.get("instances") == [], status)
            metrics = urllib.request.urlopen(m.group(1) + "/metrics", timeout=10).read().decode()
            for name in ("kvbm_hub_registrations_total", "kvbm_hub_unregistrations_total"):
                line = re.search(rf"^{name} (\S+)$", metrics, re.M)
                check(f"split: {name} == 3 (each worker's lease)", line is not None and float(line.group(1)) == 3.0,
                      line.group(0) if line else metrics[:500])
        finally:
            hub.send_signal(signal.SIGTERM)
            out, _ = hub.communicate(timeout=30)
        hres = json.loads(out.strip().splitlines()[-1])
        check("split: hub exit 0", hub.returncode == 0)
        check("split: hub empty", hres["entries"] == 0 and hres["rejected"] == 0, hres)
        check("split: hub applied what the workers published", hres["batches_applied"] == wres["batches"], (hres, wres))
    finally:
        broker.stop()

# 4. Usage errors: clear message, exit 2.
bad = subprocess.run([demo, "--transport", "nats", "--nats", "nats://127.0.0.1:1", "--requests", "10"],
                     capture_output=True, text=True, timeout=60, env=env)
check("unreachable broker: exit 2", bad.returncode == 2 and bad.stderr.startswith("error: "), bad.stderr)
missing = subprocess.run([demo, "--transport", "nats", "--requests", "10"], capture_output=True, text=True,
                         timeout=60, env=dict(os.environ, KVBM_NATS_SERVER="/nonexistent/nats-server"))
check("no nats-server: exit 2", missing.returncode == 2 and "nats-server" in missing.stderr, missing.stderr)
usage = subprocess.run([demo, "--nats", "nats://127.0.0.1:4222"], capture_output=True, text=True, timeout=60)
check("--nats without --transport nats: exit 2", usage.returncode == 2 and "--transport nats" in usage.stderr,
      usage.stderr)
split_usage = subprocess.run([demo, "worker", "--hub-url", "http://127.0.0.1:1", "--transport", "nats"],
                             capture_output=True, text=True, timeout=60)
check("worker --transport nats without --nats: exit 2",
      split_usage.returncode == 2 and "needs --nats URL" in split_usage.stderr, split_usage.stderr)

print(f"{'FAILED' if failures else 'ok'}: {len(failures)} failures")
sys.exit(1 if failures else 0)
