#!/usr/bin/env python3
"""Writes libFuzzer seed corpora from the golden vectors: seed_corpus.py DATA_DIR OUT_DIR
creates OUT_DIR/{msgpack_batch,msgpack_event,json_1_2,json_1_3}/ with one file per case."""
import hashlib
import json
import os
import sys

data, out = sys.argv[1], sys.argv[2]
vectors = json.load(open(os.path.join(data, "vectors.json")))
cases = json.load(open(os.path.join(data, "json_cases.json")))["cases"]
seeds = {"msgpack_batch": [], "msgpack_event": [], "json_1_2": [], "json_1_3": []}
for v in vectors["events"]:
    kind = "msgpack_event" if v["type"] == "KvCacheEvent" else "msgpack_batch"
    for key in ("msgpack", "msgpack_named"):
        if key in v and len(v[key]) < 8192:
            seeds[kind].append(bytes.fromhex(v[key]))
    for key in ("json_kvbm_1_2", "json_kvbm_1_3"):
        if key in v and len(v[key]) < 4096:
            for t in ("json_1_2", "json_1_3"):
                seeds[t].append(v[key].encode())
for c in vectors["malformed_msgpack"]:
    seeds["msgpack_batch"].append(bytes.fromhex(c["msgpack"]))
    seeds["msgpack_event"].append(bytes.fromhex(c["msgpack"]))
for c in vectors["malformed_json"] + cases:
    if len(c["json"]) < 4096:
        for t in ("json_1_2", "json_1_3"):
            seeds[t].append(c["json"].encode())
for target, items in seeds.items():
    os.makedirs(os.path.join(out, target), exist_ok=True)
    for item in items:
        name = hashlib.sha1(item).hexdigest()
        with open(os.path.join(out, target, name), "wb") as f:
            f.write(item)
print("seeds:", ", ".join(f"{t} {len(set(i))}" for t, i in seeds.items()))
