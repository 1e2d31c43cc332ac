#!/usr/bin/python3
"""Ingest and metrics with independent clients: two Python workers (python3-zmq +
python3-msgpack) publish creates and removes while Python urllib queries the hub; at the end
the hub's view equals a model kept here, bad frames are counted by reason without changing
it, and /metrics parses with the Prometheus client's parser (every required family, right
type, values that add up). Also the ready line and SIGINT.

usage: test_hub_ingest.py PATH/TO/kvbm-hub"""
import random
import re
import signal
import threading

from prometheus_client.parser import text_string_to_metric_families

from hubtest import Hub, Publisher, batch, chain, check, finish, binary_arg

REQUIRED = {
    "kvbm_hub_batches_applied": "counter",
    "kvbm_hub_events_applied": "counter",
    "kvbm_hub_frames_rejected": "counter",
    "kvbm_hub_index_entries": "gauge",
    "kvbm_hub_instances": "gauge",
    "kvbm_hub_leases_expired": "counter",
    "kvbm_hub_http_requests": "counter",
}


def view(hub, positions):
    """{hash: sorted holder ids} from by_position, the operator's view."""
    out = {}
    for p in range(positions):
        for e in hub.get(f"/v1/features/indexer/hashes/by_position/{p}")[1]["entries"]:
            out[int(e["hash_u128"])] = sorted(int(i) for i in e["instances"])
    return out


def main():
    binary = binary_arg()
    with Hub(binary, "--block-size", "32", "--max-seq-len", "2048") as hub:
        check(re.fullmatch(r'\{"http":"http://127\.0\.0\.1:\d+","zmq":"tcp://127\.0\.0\.1:\d+"\}\n',
                           hub.ready_line) is not None, f"ready line: {hub.ready_line!r}")
        ids = [3, (1 << 120) + 7]
        rng = random.Random(1)
        model = {}  # hash -> set of ids
        sent = {"batches": 0, "events": 0}
        chains = {i: [chain(100 * n + k, 10) for k in range(20)] for n, i in enumerate(ids)}
        publishers = {i: Publisher(hub.zmq) for i in ids}
        for p in publishers.values():
            check(p.wait_subscribed(), "hub subscribed")

        stop = threading.Event()
        queries = {"n": 0, "bad": 0}

        def query_loop():
            while not stop.is_set():
                c = chains[ids[rng.randrange(2)]][rng.randrange(20)]
                hit = hub.query(c)
                queries["n"] += 1
                if hit is not None and (hit["position"] >= 10 or not hit["instances"]):
                    queries["bad"] += 1

        reader = threading.Thread(target=query_loop)
        reader.start()
        for step in range(400):
            i = ids[step % 2]
            c = chains[i][rng.randrange(20)]
            n = rng.randint(1, 10)
            if rng.random() < 0.6:
                publishers[i].send(batch("Create", c[:n], i))
                for h in c[:n]:
                    model.setdefault(h, set()).add(i)
            else:
                publishers[i].send(batch("Remove", list(reversed(c[:n])), i))
                for h in c[:n]:
                    model.get(h, set()).discard(i)
            sent["batches"] += 1
            sent["events"] += n
        # One-frame messages are index messages too (no topic frame).
        extra = chain(999, 3)
        publishers[ids[0]].send(batch("Create", extra, ids[0]), topic=None)
        for h in extra:
            model.setdefault(h, set()).add(ids[0])
        sent["batches"] += 1
        sent["events"] += 3
        check(hub.wait_until(lambda: hub.metric("kvbm_hub_batches_applied_total") == sent["batches"]),
              f"every batch applied: {hub.metric('kvbm_hub_batches_applied_total')} of {sent['batches']}")
        stop.set()
        reader.join()
        check(queries["n"] > 0 and queries["bad"] == 0, f"concurrent queries answered sanely: {queries}")
        want = {h: sorted(s) for h, s in model.items() if s}
        got = view(hub, 10)
        check(got == want, f"hub view equals the model ({len(got)} vs {len(want)} entries)")

        # Bad frames: counted by reason, nothing changes.
        p = publishers[ids[0]]
        p.sock.send_multipart([b"other.topic", batch("Create", chain(5, 2), 1)])
        p.sock.send_multipart([b"kvbm.kv_index", b""])
        p.sock.send_multipart([b"kvbm.kv_index", b"\x92\x81\xa6Create"])
        p.sock.send_multipart([b"kvbm.kv_index", b"a", b"b"])
        reasons = {"unknown_topic": 1, "empty": 1, "undecodable": 1, "malformed": 1}
        check(hub.wait_until(lambda: all(hub.metric("kvbm_hub_frames_rejected_total", reason=r) == n
                                         for r, n in reasons.items())),
              "bad frames counted by reason")
        check(view(hub, 10) == want, "bad frames changed nothing")

        # Metrics through the Prometheus client's parser.
        families = {f.name: f for f in text_string_to_metric_families(hub.metrics())}
        for name, kind in REQUIRED.items():
            check(name in families and families[name].type == kind,
                  f"{name} is a {kind}: {families.get(name) and families[name].type}")
        check(hub.metric("kvbm_hub_events_applied_total") == sent["events"], "events_applied adds up")
        check(hub.metric("kvbm_hub_index_entries") == len(want), "index_entries gauge")
        check(hub.metric("kvbm_hub_leases_expired_total") == 0, "no lease expired")
        q = hub.metric("kvbm_hub_http_requests_total", route="/v1/features/indexer/query", code="200")
        check(q is not None and q >= queries["n"], f"queries counted: {q} >= {queries['n']}")
        reason_labels = {s.labels["reason"] for s in families["kvbm_hub_frames_rejected"].samples}
        check({"unknown_topic", "empty", "undecodable", "malformed", "unauthorized"} <= reason_labels,
              f"every reason exported: {reason_labels}")
        for pub in publishers.values():
            pub.close()
        rc = hub.stop(signal.SIGINT)
        check(rc == 0, f"SIGINT: exit {rc}")
        check("stopping" in hub.stderr, f"logs go to stderr: {hub.stderr!r}")
    finish("test_hub_ingest")


if __name__ == "__main__":
    main()
