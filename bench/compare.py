#!/usr/bin/env python3
"""Runs kvbm-bench and the Rust reference's bench alternately, N rounds, in one session,
and prints each figure with its ratio to the reference and to kvbm's own baselines
(median and spread over the rounds). These hosts are shared and noisy: only ratios taken
in the same moment mean anything.

  bench/compare.py --bench build/bench/kvbm-bench --oracle ../shared/reference/oracle/run [--rounds 3] [--quick]

The reference is optional (without it only kvbm's own ratios are printed); nothing in the
build or the tests depends on it."""
import argparse
import statistics
import subprocess
import sys

# figure -> (reference figure, kvbm baseline figure); "higher" marks rates (bigger is better)
PAIRS = {
    "plh_chain/131072x16": ("plh_chain/131072x16", "xxh3_raw/131072x16"),
    "broadcast_st/rx=1": ("broadcast_st/rx=1", "baseline_st/rx=1"),
    "broadcast_st/rx=4": ("broadcast_st/rx=4", "baseline_st/rx=4"),
    "broadcast_st/rx=16": ("broadcast_st/rx=16", "baseline_st/rx=16"),
    "broadcast_mt/rx=1": ("broadcast_mt/rx=1", "baseline_mt/rx=1"),
    "broadcast_mt/rx=2": ("broadcast_mt/rx=2", "baseline_mt/rx=2"),
    "broadcast_mt/rx=4": ("broadcast_mt/rx=4", "baseline_mt/rx=4"),
    # the multi-sender path (other Sender copies alive): against tokio (whose sender is always
    # that path) and, in the baseline column, against kvbm's own single-sender figure
    "broadcast_st_multi/rx=1": ("broadcast_st/rx=1", "broadcast_st/rx=1"),
    "broadcast_st_multi/rx=4": ("broadcast_st/rx=4", "broadcast_st/rx=4"),
    "broadcast_st_multi/rx=16": ("broadcast_st/rx=16", "broadcast_st/rx=16"),
    "broadcast_mt_multi/rx=1": ("broadcast_mt/rx=1", "broadcast_mt/rx=1"),
    "broadcast_mt_multi/rx=2": ("broadcast_mt/rx=2", "broadcast_mt/rx=2"),
    "broadcast_mt_multi/rx=4": ("broadcast_mt/rx=4", "broadcast_mt/rx=4"),
    "msgpack_encode/1024": ("msgpack_encode/1024", "memcpy/18462"),
    "msgpack_encode_to/1024": ("msgpack_encode/1024", "memcpy/18462"),
    "msgpack_decode/1024": ("msgpack_decode/1024", None),
    "json_encode/1024": ("json_encode/1024", None),
    "json_decode/1024": ("json_decode/1024", None),
    "index/apply": (None, "index_baseline/apply"),
    "index/query": (None, "index_baseline/query"),
    # The direct cache-manager API against the registry path.
    "pipeline/announce_release": (None, "pipeline/register_release"),
    # The opt-in eager batcher against the reference's window batcher, same load.
    "e2e/zmq_latency_p50_us/rate=10k/mode=eager": (None, "e2e/zmq_latency_p50_us/rate=10k/mode=window"),
    "e2e/zmq_latency_p99_us/rate=10k/mode=eager": (None, "e2e/zmq_latency_p99_us/rate=10k/mode=window"),
    "e2e/zmq_latency_p50_us/rate=1M/mode=eager": (None, "e2e/zmq_latency_p50_us/rate=1M/mode=window"),
    "e2e/zmq_latency_p99_us/rate=1M/mode=eager": (None, "e2e/zmq_latency_p99_us/rate=1M/mode=window"),
    "e2e/zmq_latency_delivered/rate=1M/mode=eager": (None, "e2e/zmq_latency_delivered/rate=1M/mode=window"),
    "e2e/zmq_max/mode=eager": (None, "e2e/zmq_max/mode=window"),
}

# This round's goals (issue 13): (what, figure, other figure or None, "kvbm" or "reference"
# for where the other figure comes from, test on the median value: the speedup against the
# other figure, or the figure itself when there is none).
GOALS = [
    ("broadcast_st_multi within 1.5x of broadcast_st", "broadcast_st_multi/rx=1", "broadcast_st/rx=1", "kvbm",
     lambda x: x >= 1 / 1.5),
    ("", "broadcast_st_multi/rx=4", "broadcast_st/rx=4", "kvbm", lambda x: x >= 1 / 1.5),
    ("", "broadcast_st_multi/rx=16", "broadcast_st/rx=16", "kvbm", lambda x: x >= 1 / 1.5),
    ("broadcast_st_multi >= 5x tokio broadcast_st", "broadcast_st_multi/rx=1", "broadcast_st/rx=1", "reference",
     lambda x: x >= 5),
    ("", "broadcast_st_multi/rx=4", "broadcast_st/rx=4", "reference", lambda x: x >= 5),
    ("", "broadcast_st_multi/rx=16", "broadcast_st/rx=16", "reference", lambda x: x >= 5),
    ("register_release >= 10M events/s", "pipeline/register_release", None, "", lambda v: v >= 10e6),
    ("announce_release >= 20M events/s", "pipeline/announce_release", None, "", lambda v: v >= 20e6),
    ("msgpack_encode_to/1024 <= 2x memcpy/18462", "msgpack_encode_to/1024", "memcpy/18462", "kvbm",
     lambda x: x >= 0.5),
    ("json_encode/1024 >= 2x serde_json", "json_encode/1024", "json_encode/1024", "reference", lambda x: x >= 2),
    ("eager p99 at 10k events/s < 1 ms", "e2e/zmq_latency_p99_us/rate=10k/mode=eager", None, "",
     lambda v: v < 1000),
    ("eager delivers 1M events/s as window does", "e2e/zmq_latency_delivered/rate=1M/mode=eager",
     "e2e/zmq_latency_delivered/rate=1M/mode=window", "kvbm", lambda x: x >= 0.95),
]


def parse(text):
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3:
            try:
                out[parts[0]] = (float(parts[1]), parts[2])
            except ValueError:
                pass
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", required=True)
    ap.add_argument("--oracle")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("groups", nargs="*")
    a = ap.parse_args()
    ours, ref = [], []
    for r in range(a.rounds):
        args = [a.bench] + (["quick"] if a.quick else []) + a.groups
        ours.append(parse(subprocess.run(args, check=True, capture_output=True, text=True).stdout))
        if a.oracle:
            oargs = [a.oracle, "bench"] + (["quick"] if a.quick else [])
            ref.append(parse(subprocess.run(oargs, check=True, capture_output=True, text=True).stdout))
        print(f"round {r + 1}/{a.rounds} done", file=sys.stderr)

    def speedup(mine, other, unit):
        # >1 means kvbm is faster, whatever the unit
        return other / mine if not unit.endswith("_per_s") else mine / other

    names = sorted({k for o in ours for k in o})
    w = max([28] + [len(n) for n in names])
    print(f"{'figure':{w}} {'kvbm (median)':>16} {'unit':18} {'reference (median)':>18} {'x reference':>22} "
          f"{'x baseline':>22}")
    for name in names:
        vals = [o[name][0] for o in ours if name in o]
        unit = ours[0][name][1] if name in ours[0] else ""
        ref_name, base_name = PAIRS.get(name, (None, None))
        cols = []
        for other_rounds, other in ((ref, ref_name), (ours, base_name)):
            if not other or not other_rounds:
                cols.append("")
                continue
            ratios = [speedup(o[name][0], oo[other][0], unit)
                      for o, oo in zip(ours, other_rounds) if name in o and other in oo]
            cols.append(f"{statistics.median(ratios):.2f} [{min(ratios):.2f}-{max(ratios):.2f}]" if ratios else "")
        ref_vals = [o[ref_name][0] for o in ref if ref_name and ref_name in o]
        ref_col = f"{statistics.median(ref_vals):18.1f}" if ref_vals else f"{'':18}"
        print(f"{name:{w}} {statistics.median(vals):16.1f} {unit:18} {ref_col} {cols[0]:>22} {cols[1]:>22}")

    # The goals of this round, on medians of ratios taken in the same round.
    rows = []
    for what, name, other, source, test in GOALS:
        vals = [o[name][0] for o in ours if name in o]
        if not vals:
            continue
        unit = next(o[name][1] for o in ours if name in o)
        if other is None:
            shown, ok = f"{statistics.median(vals):.1f} {unit}", test(statistics.median(vals))
        else:
            other_rounds = ours if source == "kvbm" else ref
            ratios = [speedup(o[name][0], oo[other][0], unit)
                      for o, oo in zip(ours, other_rounds) if name in o and other in oo]
            if not ratios:
                continue
            shown = f"{statistics.median(ratios):.2f}x {source} {other}"
            ok = test(statistics.median(ratios))
        rows.append(f"{what:46} {name:46} {shown:52} {'met' if ok else 'MISSED'}")
    if rows:
        print()
        print(f"{'goal (issue 13)':46} {'figure':46} {'median (x = speedup, >1 kvbm faster)':52} status")
        print("\n".join(rows))


if __name__ == "__main__":
    main()
