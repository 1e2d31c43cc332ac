#!/usr/bin/env python3
"""kvbm-demo --transport nats: workers publish through a nats-server the demo starts, the hub
subscribes there; the run must end with its checks clean (mismatches 0, lost 0, no publish
error, nothing rejected, exit code 0).

usage: test_demo_nats.py PATH/TO/kvbm-demo
"""
import json
import subprocess
import sys


def main():
    demo = sys.argv[1]
    run = subprocess.run([demo, "--transport", "nats", "--workers", "3", "--requests", "4000", "--check-every",
                          "1000"], capture_output=True, text=True, timeout=600)
    print(run.stdout[-2000:])
    if run.returncode != 0:
        print(run.stderr[-2000:], file=sys.stderr)
        sys.exit(f"kvbm-demo --transport nats exited with {run.returncode}")
    if "started nats-server at nats://127.0.0.1:" not in run.stdout:
        sys.exit("the demo did not start its own nats-server")
    result = json.loads(run.stdout.strip().splitlines()[-1])
    failures = [k for k in ("mismatches", "lost", "publish_errors", "hub_rejected", "unsettled_checks")
                if result.get(k) != 0]
    if result.get("events_created", 0) == 0 or result.get("checks", 1) == 0:
        failures.append("no events")
    if failures:
        sys.exit(f"checks failed: {failures} in {result}")
    bad = subprocess.run([demo, "--transport", "carrier-pigeon"], capture_output=True, text=True, timeout=60)
    if bad.returncode == 0 or "--transport" not in bad.stderr:
        sys.exit(f"a bad --transport was accepted: {bad.returncode} {bad.stderr}")
    print("test_demo_nats: ok")


if __name__ == "__main__":
    main()
