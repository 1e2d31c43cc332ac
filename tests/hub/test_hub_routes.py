#!/usr/bin/python3
"""kvbm-hub's HTTP routes with curl: every route of SPEC section 10 (under both prefixes) and
kvbm's registration routes answer with the documented JSON; every error case answers 4xx
with {"error": ...} naming the field, is counted in /metrics, and leaves the index and the
registrations exactly as they were.

usage: test_hub_routes.py PATH/TO/kvbm-hub"""
import json

from hubtest import Hub, Publisher, batch, chain, check, curl, finish, binary_arg

PREFIXES = ["/v1/features/indexer", "/v1/features/kv-index"]
A = 12345
B = (1 << 127) + 99  # above 2^64: must survive as a string


def state(hub):
    """Everything a router or operator can see."""
    views = [hub.get(f"/v1/features/indexer/hashes/by_position/{p}")[1] for p in range(6)]
    return (hub.instances(), views, hub.get("/v1/features/indexer/config")[1])


def main():
    binary = binary_arg()
    with Hub(binary, "--block-size", "16", "--max-seq-len", "4096", "--lease-ttl", "30",
             "--max-body-bytes", "65536") as hub:
        url = hub.url
        # --- config under both prefixes ---------------------------------------------------
        for prefix in PREFIXES:
            code, body = curl(url + prefix + "/config")
            check(code == 200, f"{prefix}/config: {code}")
            cfg = json.loads(body)
            check(list(cfg) == ["max_seq_len", "block_size", "num_positions", "zmq_endpoint"],
                  f"config keys in serde order: {body}")
            check(cfg == {"max_seq_len": 4096, "block_size": 16, "num_positions": 256, "zmq_endpoint": hub.zmq},
                  f"config: {body}")
            check(body == json.dumps(cfg, separators=(",", ":")), f"compact JSON: {body}")

        # --- registration ---------------------------------------------------------------------
        code, body = curl(url + "/v1/instances", "-X", "POST", "-H", "Content-Type: application/json",
                          "-d", json.dumps({"instance_id": str(B), "block_size": 16}))
        check(code == 200 and json.loads(body) == {"instance_id": str(B), "lease_ttl_ms": 30000},
              f"register: {code} {body}")
        code, body = curl(url + "/v1/instances", "-X", "POST", "-d",
                          json.dumps({"instance_id": str(A), "block_size": 16, "max_seq_len": 2048}))
        check(code == 200, f"register with a smaller max_seq_len: {code} {body}")
        check(hub.get("/v1/features/indexer/config")[1]["max_seq_len"] == 4096, "max_seq_len never shrinks")
        for prefix in PREFIXES:
            code, body = curl(url + prefix + "/instances")
            check(code == 200 and json.loads(body) == {"instances": [str(A), str(B)]},
                  f"{prefix}/instances sorted as numbers, decimal strings: {body}")
        code, body = curl(url + f"/v1/instances/{A}/keepalive", "-X", "POST", "-d", "")
        check(code == 200 and json.loads(body) == {"instance_id": str(A), "lease_ttl_ms": 30000},
              f"keepalive: {code} {body}")

        # --- ingest two chains so queries have something to find ------------------------------
        a, b = chain(1, 5), chain(2, 3)
        pub = Publisher(hub.zmq)
        check(pub.wait_subscribed(), "hub subscribed")
        pub.send(batch("Create", a, A))
        pub.send(batch("Create", a[:2] + b, B))
        check(hub.wait_until(lambda: hub.get("/v1/features/indexer/hashes/by_position/4")[1]["entries"]),
              "batches reached the index")
        pub.close()

        # --- kvbm's per-instance view ------------------------------------------------------
        code, body = curl(url + f"/v1/instances/{A}")
        check(code == 200 and json.loads(body) == {"instance_id": str(A), "registered": True, "entries": 5,
                                                    "batches_applied": 1}, f"GET /v1/instances/A: {code} {body}")

        # --- by_position, query ---------------------------------------------------------------
        for prefix in PREFIXES:
            code, body = curl(url + prefix + "/hashes/by_position/1")
            got = json.loads(body)
            check(code == 200 and got["position"] == 1, f"by_position: {code} {body}")
            entries = {e["hash_u128"]: e for e in got["entries"]}
            check(set(entries) == {str(a[1]), str(b[1])}, f"by_position/1 entries: {body}")
            e = entries.get(str(a[1]), {})
            check(e.get("instances") == [str(A), str(B)], f"holders sorted, as strings: {e}")
            check(e.get("position") == 1 and isinstance(e.get("hash"), str) and e["hash"].startswith("1:")
                  and e["hash"].count(":") == 2, f"display form position:current:parent: {e}")
        code, body = curl(url + "/v1/features/indexer/hashes/by_position/0")
        check(all(e["hash"].count(":") == 1 for e in json.loads(body)["entries"]),
              f"position 0 shows no parent: {body}")
        code, body = curl(url + "/v1/features/indexer/hashes/by_position/4000")
        check(code == 200 and json.loads(body) == {"position": 4000, "entries": []}, f"beyond capacity: {body}")

        # hashes as JSON integers, 16-byte arrays and decimal strings, in any mix
        mixed = [a[0], list(a[1].to_bytes(16, "big")), str(a[2]), a[3]]
        for prefix in PREFIXES:
            code, body = curl(url + prefix + "/query", "-X", "POST", "-H", "Content-Type: application/json",
                              "-d", json.dumps({"hashes": mixed}))
            hit = json.loads(body)["hit"] if code == 200 else None
            check(hit is not None and hit["hash_u128"] == str(a[3]) and hit["position"] == 3
                  and hit["instances"] == [str(A)], f"{prefix}/query mixed forms: {code} {body}")
        code, body = curl(url + "/v1/features/indexer/query", "-X", "POST", "-d",
                          json.dumps({"hashes": [a[0], a[1], b[2]]}))
        check(json.loads(body)["hit"]["instances"] == [str(B)], f"deepest hit wins: {body}")
        code, body = curl(url + "/v1/features/indexer/query", "-X", "POST", "-d",
                          json.dumps({"hashes": [chain(9, 1)[0]], "extra": {"ignored": [1, 2]}}))
        check(code == 200 and body == '{"hit":null}', f"miss is hit null, unknown fields ignored: {body}")
        code, body = curl(url + "/v1/features/indexer/query", "-X", "POST", "-d", '{"hashes":[]}')
        check(code == 200 and body == '{"hit":null}', f"empty query: {body}")

        # --- health, metrics ------------------------------------------------------------------
        code, body = curl(url + "/health")
        check(code == 200, f"/health {code}")
        code, body = curl(url + "/metrics", "-D", "-")
        check(code == 200 and "text/plain; version=0.0.4" in body, "metrics content type 0.0.4")

        # --- errors: each answers 4xx naming the field, changes nothing, is counted -----------
        before = state(hub)
        q = "/v1/features/indexer/query"
        big = json.dumps({"hashes": [a[0]] * 8000})  # > 64 KiB
        errors = [
            # (method, path, body, expected code, text the error must contain, metric route)
            ("POST", q, "{not json", 400, "", q),
            ("POST", q, '{"hashes": 5}', 400, "hashes", q),
            ("POST", q, '{"hashez": []}', 400, "hashes", q),
            ("POST", q, '{"hashes": [1, -2]}', 400, "hashes[1]", q),
            ("POST", q, '{"hashes": [1.5]}', 400, "hashes[0]", q),
            ("POST", q, '{"hashes": [340282366920938463463374607431768211456]}', 400, "hashes[0]", q),
            ("POST", q, '{"hashes": [[1,2,3]]}', 400, "hashes[0]", q),
            ("POST", q, '{"hashes": [[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,256]]}', 400, "hashes[0][15]", q),
            ("POST", q, '{"hashes": ["12x"]}', 400, "hashes[0]", q),
            ("POST", q, '{"hashes": [1], "hashes": [2]}', 400, "duplicate", q),
            ("POST", q, '{"hashes": [1]} trailing', 400, "trailing", q),
            ("POST", q, big, 413, "limit", q),
            ("GET", q, None, 405, "POST", q),
            ("GET", "/v1/features/indexer/hashes/by_position/x", None, 400, "pos",
             "/v1/features/indexer/hashes/by_position/{pos}"),
            ("GET", "/v1/features/indexer/hashes/by_position/-1", None, 400, "pos",
             "/v1/features/indexer/hashes/by_position/{pos}"),
            ("GET", "/v1/features/indexer/hashes/by_position/99999999999999999999", None, 400, "pos",
             "/v1/features/indexer/hashes/by_position/{pos}"),
            ("GET", "/v1/features/indexer/nope", None, 404, "", "unmatched"),
            ("GET", "/nope", None, 404, "", "unmatched"),
            ("POST", "/v1/instances", '{"instance_id": "7"}', 400, "block_size", "/v1/instances"),
            ("POST", "/v1/instances", '{"instance_id": "7", "block_size": 32}', 400, "block_size",
             "/v1/instances"),
            ("POST", "/v1/instances", '{"instance_id": "7", "block_size": "16"}', 400, "block_size",
             "/v1/instances"),
            ("POST", "/v1/instances", '{"block_size": 16}', 400, "instance_id", "/v1/instances"),
            ("POST", "/v1/instances", '{"instance_id": "x7", "block_size": 16}', 400, "instance_id",
             "/v1/instances"),
            ("POST", "/v1/instances", '{"instance_id": "7", "block_size": 16, "max_seq_len": 100}', 400,
             "max_seq_len", "/v1/instances"),
            ("POST", "/v1/instances", '[1]', 400, "", "/v1/instances"),
            ("POST", "/v1/instances/777/keepalive", "", 404, "777", "/v1/instances/{id}/keepalive"),
            ("POST", "/v1/instances/abc/keepalive", "", 400, "id", "/v1/instances/{id}/keepalive"),
            ("DELETE", "/v1/instances/777", None, 404, "777", "/v1/instances/{id}"),
            ("GET", "/v1/instances/777", None, 404, "777", "/v1/instances/{id}"),
            ("DELETE", "/v1/instances/1x", None, 400, "id", "/v1/instances/{id}"),
            ("PUT", "/health", "", 405, "GET", "/health"),
        ]
        for method, path, body, want, needle, route in errors:
            counted_before = hub.metric("kvbm_hub_http_requests_total", route=route, code=str(want)) or 0
            args = ["-X", method]
            if body is not None:
                args += ["-H", "Content-Type: application/json", "--data-binary", body]
            code, text = curl(url + path, *args)
            what = f"{method} {path} {body[:60] if body else ''}"
            check(code == want, f"{what}: status {code}, want {want}: {text}")
            try:
                err = json.loads(text)
            except ValueError:
                err = None
            check(isinstance(err, dict) and list(err) == ["error"] and needle in err["error"],
                  f"{what}: error body names '{needle}': {text}")
            counted = hub.metric("kvbm_hub_http_requests_total", route=route, code=str(want)) or 0
            check(counted == counted_before + 1, f"{what}: counted under route={route} code={want}")
        check(state(hub) == before, "bad requests changed nothing")

        # --- DELETE sweeps at once ------------------------------------------------------------
        code, body = curl(url + f"/v1/instances/{A}", "-X", "DELETE")
        check(code == 200 and json.loads(body)["instance_id"] == str(A), f"delete: {code} {body}")
        check(hub.instances() == [str(B)], "A no longer registered")
        hit = hub.query(a)
        check(hit is not None and hit["instances"] == [str(B)] and hit["position"] == 1,
              f"A swept from every entry at once: {hit}")
        check(hub.metric("kvbm_hub_index_entries") == 5.0, "entries left: a[0], a[1], b[0], b[1], b[2]")
        rc = hub.stop()
        check(rc == 0, f"SIGTERM: exit {rc}")
    finish("test_hub_routes")


if __name__ == "__main__":
    main()
