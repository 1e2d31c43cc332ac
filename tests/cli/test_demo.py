#!/usr/bin/env python3
"""kvbm-demo end to end: all in one process, then the hub and the workers in separate
processes over tcp loopback. Each run must end with mismatches 0, lost 0 and an empty hub."""
import json
import re
import signal
import subprocess
import sys

demo = sys.argv[1]
failures = 0
passed = 0


def check(name, cond, detail=""):
    global failures, passed
    if cond:
        passed += 1
    else:
        failures += 1
        print(f"FAIL: {name} {detail}")


def last_json(text):
    return json.loads(text.strip().splitlines()[-1])


small = ["--requests", "3000", "--check-every", "1000", "--workers", "3"]

# 1. Everything in one process.
r = subprocess.run([demo, *small], capture_output=True, text=True, timeout=300)
print(r.stdout)
check("all: exit 0", r.returncode == 0, r.stderr)
res = last_json(r.stdout)
for key in ("mismatches", "lost", "hub_entries_final", "publish_errors", "zmq_dropped", "hub_rejected"):
    check(f"all: {key} == 0", res[key] == 0, res)
check("all: events flowed", res["events_created"] > 0 and res["events_removed"] > 0, res)
check("all: router found prefixes", res["router_hit_rate"] > 0.2, res)
check("all: progress lines", len(re.findall(r"^\[\s*\d+/3000\]", r.stdout, re.M)) == 3, r.stdout)

# 1b. More workers than the hub's base HTTP threads: each HubClient holds a connection, and
# the router's queries must still be served (the default --workers 4 once starved them).
r = subprocess.run([demo, "--requests", "600", "--check-every", "300", "--workers", "6"], capture_output=True,
                   text=True, timeout=300)
check("6 workers: exit 0", r.returncode == 0, r.stderr)
if r.returncode == 0:
    res6 = last_json(r.stdout)
    check("6 workers: mismatches == 0", res6["mismatches"] == 0 and res6["lost"] == 0, res6)

# 2. Hub and workers in separate processes.
hub = subprocess.Popen([demo, "hub", "--bind", "tcp://127.0.0.1:0", "--http", "127.0.0.1:0"],
                       stdout=subprocess.PIPE, text=True)
try:
    first = hub.stdout.readline()
    m = re.match(r"kvbm-demo hub: http (\S+), events (\S+)", first)
    check("hub: announces endpoints", m is not None, first)
    # The worker joins through the hub's HTTP API (kvbm::HubClient) and routes with POST /query.
    w = subprocess.run([demo, "worker", "--hub-url", m.group(1), *small],
                       capture_output=True, text=True, timeout=300)
    print(w.stdout)
    check("worker: exit 0", w.returncode == 0, w.stderr)
    wres = last_json(w.stdout)
    for key in ("mismatches", "lost", "hub_entries_final", "publish_errors", "zmq_dropped"):
        check(f"worker: {key} == 0", wres[key] == 0, wres)
finally:
    hub.send_signal(signal.SIGTERM)
    out, _ = hub.communicate(timeout=30)
hres = last_json(out)
check("hub: exit 0", hub.returncode == 0)
check("hub: empty at the end", hres["entries"] == 0, hres)
check("hub: applied what the worker published", hres["batches_applied"] == wres["batches"], (hres, wres))
check("hub: nothing rejected", hres["rejected"] == 0, hres)

# 3. Bad usage is an error, not a crash.
bad = subprocess.run([demo, "--workers", "0"], capture_output=True, text=True)
check("usage error", bad.returncode == 2 and bad.stderr.startswith("error: "), bad.stderr)

print(f"{passed} passed, {failures} failed")
sys.exit(1 if failures else 0)
