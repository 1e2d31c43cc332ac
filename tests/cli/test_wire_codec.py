#!/usr/bin/env python3
"""kvbm-wire encode / decode: every events vector converts to the reference's bytes and texts
in every direction, the malformed_* cases get the reference's verdict, and bad input or usage
exits 1 with exactly one `error: ...` line on stderr and nothing on stdout."""
import json
import re
import subprocess
import sys

wire, data_dir = sys.argv[1], sys.argv[2]
vectors = json.load(open(f"{data_dir}/vectors.json"))
failures = 0
checks = 0


def run(verb, args, stdin):
    data = stdin if isinstance(stdin, bytes) else stdin.encode()
    r = subprocess.run([wire, verb, *args], input=data, capture_output=True)
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


def expect(what, got, want):
    global failures, checks
    checks += 1
    if got != want:
        failures += 1
        print(f"FAIL: {what}: got {got!r:.300} want {want!r:.300}")


def expect_ok(what, verb, args, stdin, want_stdout):
    rc, out, err = run(verb, args, stdin)
    expect(what, (rc, out, err), (0, want_stdout + "\n", ""))


def expect_error(what, verb, args, stdin, needle=""):
    rc, out, err = run(verb, args, stdin)
    lines = err.splitlines()
    ok = rc == 1 and out == "" and len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]
    expect(what, ok or (rc, out, err), True)


for vec in vectors["events"]:
    name = vec["name"]
    if "msgpack" not in vec:  # create_array32: only lengths and checksums are stored (C++ tests cover it)
        continue
    t = ["--type", "event"] if vec["type"] == "KvCacheEvent" else []
    for src in ("json_kvbm_1_2", "json_kvbm_1_3"):
        expect_ok(f"{name}: encode {src} -> msgpack", "encode", t, vec[src], vec["msgpack"])
        expect_ok(f"{name}: encode {src} (default --to)", "encode", t + ["--to", "msgpack"], vec[src], vec["msgpack"])
        if "msgpack_named" in vec:
            expect_ok(f"{name}: encode {src} -> msgpack-named", "encode", t + ["--to", "msgpack-named"], vec[src],
                      vec["msgpack_named"])
        for dst, form in (("json_kvbm_1_2", "json-1.2"), ("json_kvbm_1_3", "json-1.3")):
            expect_ok(f"{name}: encode {src} -> {form}", "encode", t + ["--to", form], vec[src], vec[dst])
    for src in ("msgpack", "msgpack_named"):
        if src not in vec:
            continue
        expect_ok(f"{name}: decode {src} (default json-1.2)", "decode", t, vec[src], vec["json_kvbm_1_2"])
        for dst, form in (("json_kvbm_1_2", "json-1.2"), ("json_kvbm_1_3", "json-1.3")):
            expect_ok(f"{name}: decode {src} -> {form}", "decode", t + ["--to", form], vec[src] + "\n", vec[dst])
        expect_ok(f"{name}: decode {src} uppercase, spaced", "decode", t, "  " + vec[src].upper() + "\r\n",
                  vec["json_kvbm_1_2"])

def json_1_2_from_debug(debug):
    """The reference's Rust Debug text of an accepted batch, as serde_json prints it in the
    kvbm 1.2 flavour: `KvbmCacheEvents { events: Create([PlhV12(9)]), instance_id: 3 }` ->
    `{"events":{"Create":[9]},"instance_id":3}`."""
    m = re.fullmatch(r"KvbmCacheEvents \{ events: (Shutdown|(Create|Remove)\(\[(.*)\]\)), instance_id: (\d+) \}",
                     debug)
    if m is None:
        raise ValueError(f"unexpected Debug text {debug!r}")
    if m.group(1) == "Shutdown":
        events = '"Shutdown"'
    else:
        hashes = re.findall(r"PlhV12\((\d+)\)", m.group(3))
        events = '{"%s":[%s]}' % (m.group(2), ",".join(hashes))
    return '{"events":%s,"instance_id":%s}' % (events, m.group(4))


for case in vectors["malformed_msgpack"]:
    rc, out, err = run("decode", [], case["msgpack"])
    expect(f"malformed_msgpack {case['name']}: verdict", rc == 0, case["reference"]["accepted"])
    if rc != 0:
        expect(f"malformed_msgpack {case['name']}: one error line", (out, len(err.splitlines()), err[:7]),
               ("", 1, "error: "))
    else:  # accepted: what the reference decoded, nothing on stderr
        expect(f"malformed_msgpack {case['name']}: output", (out, err),
               (json_1_2_from_debug(case["reference"]["decoded"]) + "\n", ""))

# MessagePack (hex) of the accepted malformed_json cases, as the Rust reference's oracle
# encodes them (`oracle/run encode`); a new accepted case must be added here.
accepted_json_msgpack = {
    "shutdown_ok": "92a853687574646f776ec41000000000000000000000000000000001",
    "instance_id_u128_max": "92a853687574646f776ec410ffffffffffffffffffffffffffffffff",
    "hash_16_bytes": "9281a643726561746591c41000000000000000000000000000000102c41000000000000000000000000000000001",
    "hash_integer": "9281a643726561746591c41000000000000000000000000000000102c41000000000000000000000000000000001",
    "unknown_field": "92a853687574646f776ec41000000000000000000000000000000001",
    "whitespace_around": "92a853687574646f776ec41000000000000000000000000000000007",
}
for case in vectors["malformed_json"]:
    ref = case["reference"]
    accepted = ref["accepted_kvbm_1_2"] or ref["accepted_kvbm_1_3"]  # encode reads either flavour
    rc, out, err = run("encode", [], case["json"])
    expect(f"malformed_json {case['name']}: verdict", rc == 0, accepted)
    if rc != 0:
        expect(f"malformed_json {case['name']}: one error line", (out, len(err.splitlines()), err[:7]),
               ("", 1, "error: "))
    else:  # accepted: the reference's bytes, nothing on stderr
        expect(f"malformed_json {case['name']}: output", (out, err),
               (accepted_json_msgpack.get(case["name"], "<no expected output listed>") + "\n", ""))

shutdown = '{"events":"Shutdown","instance_id":1}'
shutdown_hex = "92a853687574646f776ec41000000000000000000000000000000001"
event = '{"Create":5}'
bad = [
    ("encode", ["--type", "bogus"], shutdown, "unknown type bogus"),
    ("encode", ["--to", "cbor"], shutdown, "unknown output form cbor"),
    ("encode", ["--type", "event", "--to", "msgpack-named"], event, "a single event has no named form"),
    ("encode", ["--type", "event"], shutdown, "unknown variant"),
    ("encode", [], event, "missing field"),
    ("encode", [], "", "EOF while parsing a value"),
    ("encode", [], shutdown + " x", "trailing characters"),
    ("encode", [], b'{"events":"Shutdown","instance_id":1,"x":"\xff"}', "UTF-8"),
    ("encode", ["--to"], shutdown, "--to"),
    ("encode", ["--bogus", "1"], shutdown, "unknown argument"),
    ("decode", ["--to", "msgpack"], shutdown_hex, "decode prints JSON"),
    ("decode", ["--to", "msgpack-named"], shutdown_hex, "decode prints JSON"),
    ("decode", ["--to", "json-1.4"], shutdown_hex, "unknown output form json-1.4"),
    ("decode", ["--type", "bogus"], shutdown_hex, "unknown type"),
    ("decode", [], shutdown_hex[:-1], "odd number of digits"),
    ("decode", [], "zz" + shutdown_hex, "bad hex"),
    ("decode", [], shutdown_hex[:-2], "instance_id: unexpected end of input"),
    ("decode", [], "", "offset 0: KvbmCacheEvents: unexpected end of input"),
    ("decode", ["--type", "event"], shutdown_hex, "KvCacheEvent"),
    ("decode", ["--type", "event"], "81a853687574646f776ec0", "unknown variant `Shutdown`"),
]
for verb, args, stdin, needle in bad:
    expect_error(f"{verb} {args} {stdin!r:.60}", verb, args, stdin, needle)

# Trailing bytes after a message are ignored, as the reference ignores them.
expect_ok("decode ignores trailing bytes", "decode", [], shutdown_hex + "c0c0", shutdown)
# A pair may be `+` and one digit (Rust's u8::from_str_radix, which the reference uses).
expect_ok("decode accepts +X pairs", "decode", [], shutdown_hex[:-2] + "+1", shutdown)
# The 1.3 flavour's other form for a hash, a string of 16 bytes, is read too.
expect_ok("encode a 16-byte string hash", "encode", ["--type", "event", "--to", "json-1.3"],
          '{"Remove":"AAAAAAAAAAAAAAAA"}', '{"Remove":[' + ",".join(["65"] * 16) + "]}")

print(f"{checks - failures} passed, {failures} failed")
sys.exit(1 if failures else 0)
