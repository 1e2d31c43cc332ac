#!/usr/bin/env python3
"""kvbm-demo --faults, a short schedule: hub restarts with an empty index, windows where
every publish is refused or dropped, and channel lag from stalled publishers. After each
fault heals the hub must be right again; the run must end with no mismatches, nothing lost,
an empty hub, and each kind of fault injected."""
import json
import subprocess
import sys

demo = sys.argv[1]
reconverge_limit_ms = float(sys.argv[2]) if len(sys.argv) > 2 else 20000.0  # generous: CI may be loaded/TSan
args = [demo, "--faults", "--workers", "2", "--requests", "3000", "--fault-every", "150", "--fault-span", "40"]
r = subprocess.run(args, capture_output=True, text=True, timeout=900)
print(r.stdout)
print(r.stderr, file=sys.stderr)
res = json.loads(r.stdout.strip().splitlines()[-1])
failures = []


def check(name, cond):
    if not cond:
        failures.append(name)
        print(f"FAIL: {name} {res}")


check("exit 0", r.returncode == 0)
for key in ("mismatches", "lost", "hub_entries_final", "unsettled_checks"):
    check(f"{key} == 0", res[key] == 0)
check("hub restarts >= 3", res["faults"]["hub_restarts"] >= 3)
check("publish-failure windows >= 3", res["faults"]["publish_failure_windows"] >= 3)
check("lag recoveries >= 1", res["faults"]["lag_recoveries"] >= 1)
check(f"reconverge_ms_max <= {reconverge_limit_ms}", res["reconverge_ms_max"] <= reconverge_limit_ms)
print(f"{'FAILED' if failures else 'ok'}: {len(failures)} failures")
sys.exit(1 if failures else 0)
