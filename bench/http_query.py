#!/usr/bin/python3
"""kvbm-hub under HTTP load: POST /v1/features/indexer/query with 64 hashes per query
against an index of 1M entries, driven by Debian's wrk (a Lua script supplies the bodies).

usage: http_query.py PATH/TO/kvbm-hub [--entries N] [--duration S] [--connections C]
                     [--wrk-threads T] [--http-threads H]

Prints `hub/http_query_per_s N` and `hub/http_query_p99_us N` (kvbm-bench's line format),
then wrk's own report on stderr. The index: chains of 64 positions, each chain held by one
of 8 instances (ids above 2^64), published over ZeroMQ as Dynamo's workers do (MessagePack
batches of 1024 hashes). Each query is a chain of 64 hashes whose first k (random, 0..64)
are indexed: the router's question "how deep is this prompt's cached prefix", hits and
misses mixed, every position walked."""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

import zmq

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "hub"))
from hubtest import Hub, Publisher, batch  # noqa: E402

CHAIN = 64
MASK59 = (1 << 59) - 1


def chain_hashes(seed):
    out, parent = [], 0
    for pos in range(CHAIN):
        current = (seed * 0x9E3779B97F4A7C15 + pos * 0xBF58476D1CE4E5B9 + 1) & MASK59
        out.append((pos << 118) | (parent << 59) | current)
        parent = current
    return out


LUA = r"""
local bodies = {}
local n = 0
init = function(args)
  for line in io.lines(args[1]) do
    n = n + 1
    bodies[n] = line
  end
end
local i = 0
request = function()
  i = i % n + 1
  return wrk.format("POST", "/v1/features/indexer/query", {["Content-Type"] = "application/json"}, bodies[i])
end
done = function(summary, latency, requests)
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout
  io.write(string.format("hub/http_query_per_s %d\n", summary.requests / (summary.duration / 1e6)))
  io.write(string.format("hub/http_query_p99_us %d\n", latency:percentile(99)))
  io.write(string.format("wrk_errors %d\n", errors))
end
"""


def cpu_seconds(pid):
    """User + system CPU seconds a process has used (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("hub")
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--wrk-threads", type=int, default=1)
    ap.add_argument("--http-threads", type=int, default=16)
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("http_query: wrk is not installed (Debian: apt-get install wrk)")

    chains = args.entries // CHAIN
    rng = random.Random(7)
    with Hub(args.hub, "--http-threads", str(args.http_threads)) as hub, tempfile.TemporaryDirectory() as tmp:
        t0 = time.monotonic()
        pub = Publisher(hub.zmq)
        if not pub.wait_subscribed():
            sys.exit("http_query: the hub never subscribed")
        pub.sock.setsockopt(zmq.XPUB_NODROP, 1)  # a full queue blocks the send instead of dropping
        pending = []
        instances = [(1 << 64) + 1000 * k for k in range(8)]
        for c in range(chains):
            pending.extend(chain_hashes(c))
            if len(pending) >= 1024 or c == chains - 1:
                pub.send(batch("Create", pending, instances[c % len(instances)]))
                pending = []
        want = chains * CHAIN
        if not hub.wait_until(lambda: hub.metric("kvbm_hub_index_entries") == want, timeout=300, step=0.2):
            sys.exit(f"http_query: index holds {hub.metric('kvbm_hub_index_entries')} entries, not {want}")
        pub.close()
        print(f"# index filled: {want} entries in {time.monotonic() - t0:.1f} s", file=sys.stderr)

        bodies = os.path.join(tmp, "bodies.txt")
        hits = 0
        with open(bodies, "w") as f:
            for _ in range(4096):
                known = chain_hashes(rng.randrange(chains))
                k = rng.randint(0, CHAIN)
                miss = chain_hashes(chains + rng.randrange(1 << 30))
                hashes = known[:k] + miss[k:]
                hits += k > 0
                f.write(json.dumps({"hashes": hashes}, separators=(",", ":")) + "\n")
        # One body by urllib first: the answer is right before we measure its speed.
        with open(bodies) as f:
            first = json.loads(f.readline())
        status, answer = hub.post("/v1/features/indexer/query", first)
        if status != 200 or "hit" not in answer:
            sys.exit(f"http_query: bad answer {status} {answer}")
        script = os.path.join(tmp, "query.lua")
        with open(script, "w") as f:
            f.write(LUA)
        with open("/proc/loadavg") as f:
            load = f.read().split()[:3]
        print(f"# load average before: {' '.join(load)} on {os.cpu_count()} cores; "
              f"{hits / 4096:.0%} of queries hit", file=sys.stderr)
        hub_cpu0 = cpu_seconds(hub.proc.pid)
        wrk_cpu0 = os.times()
        out = subprocess.run(["wrk", "-t", str(args.wrk_threads), "-c", str(args.connections), "-d",
                              f"{args.duration}s", "--latency", "-s", script, hub.url + "/", bodies],
                             capture_output=True, text=True, timeout=args.duration + 120)
        hub_cpu = cpu_seconds(hub.proc.pid) - hub_cpu0
        t = os.times()
        wrk_cpu = (t.children_user - wrk_cpu0.children_user) + (t.children_system - wrk_cpu0.children_system)
        print(out.stderr, file=sys.stderr, end="")
        lines = out.stdout.splitlines()
        for line in lines:
            if line.startswith("hub/"):
                print(line)
            else:
                print("# " + line, file=sys.stderr)
        rate = [int(l.split()[1]) for l in lines if l.startswith("hub/http_query_per_s")]
        if rate and rate[0] > 0:
            n = rate[0] * args.duration
            print(f"# CPU per query: kvbm-hub {1e6 * hub_cpu / n:.1f} us, wrk {1e6 * wrk_cpu / n:.1f} us "
                  f"(2 idle cores would allow ~{2 * n / (hub_cpu + wrk_cpu):.0f} queries/s)", file=sys.stderr)
        errors = [int(l.split()[1]) for l in lines if l.startswith("wrk_errors")]
        if out.returncode != 0 or not errors or errors[0] != 0:
            sys.exit(f"http_query: wrk failed or saw errors ({errors})")


if __name__ == "__main__":
    main()
