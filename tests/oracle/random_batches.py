#!/usr/bin/env python3
"""Random batches through kvbm-wire and the Rust reference, both ways.

    tests/oracle/random_batches.py KVBM_WIRE ORACLE_RUN [COUNT] [SEED] [MAX_SIZE]

For COUNT random KvbmCacheEvents (sizes 0..70,000 with the header boundaries 15/16 and
65,535/65,536 always included; random kinds, hashes of random magnitude or next to a digit-count or chunk edge of the decimal writer
(10^k, 2^64, 10^19 multiples, 2^128 - 1), random ids):
  1. kvbm-wire encode (JSON 1.2 -> msgpack) and `oracle/run decode msgpack -` must give back
     the same value (the reference decodes our bytes);
  2. our bytes must equal `oracle/run encode`'s (rmp_serde::to_vec);
  3. kvbm-wire decode of the reference's bytes must print the reference's JSON, in both flavours.
Not part of ctest: the reference oracle lives outside this repository (it needs cargo)."""
import json
import random
import subprocess
import sys

wire, oracle = sys.argv[1], sys.argv[2]
count = int(sys.argv[3]) if len(sys.argv) > 3 else 40
rng = random.Random(int(sys.argv[4]) if len(sys.argv) > 4 else 1234)
max_size = int(sys.argv[5]) if len(sys.argv) > 5 else 70000
edges = sorted({e + d for e in [10**k for k in range(39)] + [2**64, 2**83, 2**128 - 1, 2**64 * 10**19,
                                                              3 * 10**19, 10**38, 2 * 10**38, 3 * 10**38]
                for d in range(-3, 4) if 0 <= e + d < 2**128})


def run(cmd, stdin):
    r = subprocess.run(cmd, input=stdin, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{cmd} failed: {r.stderr.strip()}")
    return r.stdout.strip()


def u128():
    if rng.random() < 0.2:
        return rng.choice(edges)
    bits = rng.choice([0, 1, 8, 63, 64, 65, 100, 126, 127, 128])
    return rng.getrandbits(bits) if bits else 0


sizes = [n for n in (0, 1, 15, 16, 65535, 65536, 70000) if n <= max_size]
sizes += [rng.randint(0, max_size) for _ in range(max(0, count - len(sizes)))]
total_hashes = 0
for i, n in enumerate(sizes[:count]):
    kind = rng.choice(["Create", "Remove", "Shutdown"]) if n == 0 else rng.choice(["Create", "Remove"])
    hashes = [u128() for _ in range(n)]
    ident = u128()
    events = "Shutdown" if kind == "Shutdown" else {kind: hashes}
    text = json.dumps({"events": events, "instance_id": ident}, separators=(",", ":"))
    ours = run([wire, "encode"], text)
    theirs = run([oracle, "encode"], text)
    if ours != theirs:
        raise SystemExit(f"batch {i} (n={n}): our bytes differ from rmp_serde's")
    decoded = run([oracle, "decode", "msgpack", "-"], ours)
    if decoded != text:
        raise SystemExit(f"batch {i} (n={n}): the reference decoded our bytes to a different value")
    for form in ("json-1.2", "json-1.3"):
        if run([wire, "decode", "--to", form], theirs) != run([oracle, "decode", "--to", form], theirs):
            raise SystemExit(f"batch {i} (n={n}): our decode of the reference's bytes differs ({form})")
    total_hashes += n
    print(f"batch {i}: {kind} n={n} bytes={len(ours) // 2} ok", flush=True)
print(f"{min(count, len(sizes))} random batches, {total_hashes} hashes: identical bytes, same values both ways")
