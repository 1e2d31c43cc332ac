#!/usr/bin/env python3
"""kvbm-wire hash: reproduces every vector chain from the command line, and bad input
exits 1 with exactly one `error: ...` line on stderr."""
import json
import subprocess
import sys

wire, data_dir = sys.argv[1], sys.argv[2]
vectors = json.load(open(f"{data_dir}/vectors.json"))
failures = 0


def run(args, stdin):
    return subprocess.run([wire, "hash", *args], input=stdin, capture_output=True, text=True)


def fail(msg):
    global failures
    failures += 1
    print("FAIL:", msg)


checked = 0
for key, layout in (("kvbm_1_2", "kvbm-1.2"), ("kvbm_1_4", "kvbm-1.4")):
    for chain in vectors["hash_chains"][key]["chains"]:
        desc = chain["tokens"]
        tokens = desc["list"] if "list" in desc else range(*desc["range"])
        r = run(["--block-size", str(chain["block_size"]), "--salt", chain["salt"], "--layout", layout],
                " ".join(map(str, tokens)))
        if r.returncode != 0 or r.stderr:
            fail(f"{key}/{chain['name']}: exit {r.returncode} {r.stderr}")
            continue
        lines = r.stdout.splitlines()
        if len(lines) != chain["total_full_blocks"]:
            fail(f"{key}/{chain['name']}: {len(lines)} lines, want {chain['total_full_blocks']}")
            continue
        for b in chain["blocks"]:
            want = f"{b['position']} {b['block_hash']} {b['sequence_hash']} {b['plh_hex']} {b['display']}"
            if lines[b["position"]] != want:
                fail(f"{key}/{chain['name']}@{b['position']}: {lines[b['position']]!r} != {want!r}")
            checked += 1

# Default layout is kvbm-1.2, default salt 0: a salt-0 kvbm 1.2 chain without --salt and
# --layout prints the reference's lines, every one of them.
defaults = 0
for chain in vectors["hash_chains"]["kvbm_1_2"]["chains"]:
    desc = chain["tokens"]
    if chain["salt"] != "0" or len(chain["blocks"]) != chain["total_full_blocks"] or not chain["blocks"]:
        continue
    tokens = desc["list"] if "list" in desc else range(*desc["range"])
    r = run(["--block-size", str(chain["block_size"])], " ".join(map(str, tokens)))
    want = "".join(f"{b['position']} {b['block_hash']} {b['sequence_hash']} {b['plh_hex']} {b['display']}\n"
                   for b in chain["blocks"])
    if (r.returncode, r.stdout, r.stderr) != (0, want, ""):
        fail(f"defaults on {chain['name']}: exit {r.returncode}, stdout {r.stdout[:200]!r}, stderr {r.stderr!r}")
    defaults += 1
if defaults == 0:
    fail("no salt-0 kvbm 1.2 chain with every block listed in vectors.json to check the defaults with")

# Tokens may be split by any whitespace: the same lines as single spaces give.
r = run(["--block-size", "2"], "1\t2\n3  4\r\n5")
plain = run(["--block-size", "2", "--salt", "0", "--layout", "kvbm-1.2"], "1 2 3 4 5")
if r.returncode != 0 or r.stderr or len(r.stdout.splitlines()) != 2 or r.stdout != plain.stdout:
    fail(f"whitespace: {r} vs {plain}")

bad = [
    (["--block-size", "0"], "1 2", "block size"),
    (["--block-size", "x"], "1 2", "--block-size"),
    (["--block-size", "-4"], "1 2", "--block-size"),
    ([], "1 2", "--block-size"),
    (["--block-size"], "1 2", "--block-size"),
    (["--block-size", "2", "--salt", "18446744073709551616"], "1 2", "--salt"),
    (["--block-size", "2", "--layout", "kvbm-1.3"], "1 2", "layout"),
    (["--block-size", "2", "--bogus", "1"], "1 2", "unknown argument"),
    (["--block-size", "2"], "1 two", "not a u32 token: two"),
    (["--block-size", "2"], "1 4294967296", "not a u32 token: 4294967296"),
    (["--block-size", "2"], "1 -1", "not a u32 token: -1"),
    (["--block-size", "2"], "1 2.5", "not a u32 token: 2.5"),
]
for args, stdin, needle in bad:
    r = run(args, stdin)
    err = r.stderr.splitlines()
    if r.returncode != 1 or len(err) != 1 or not err[0].startswith("error: ") or needle not in err[0] or r.stdout:
        fail(f"{args} {stdin!r}: exit {r.returncode}, stdout {r.stdout!r}, stderr {r.stderr!r}")

print(f"{checked} vector rows checked, {len(bad)} error cases")
print(f"{(checked + len(bad) + defaults + 1) - failures} passed, {failures} failed")
sys.exit(1 if failures else 0)
