#!/usr/bin/python3
"""Authenticated ingest: with --curve-secret-key and --curve-allow, only listed CURVE keys
connect (the ZAP handler refuses the rest, and plain-text peers), and a listed key can only
publish for the instance ids bound to it; every refused batch is counted and the index stays
as it was. Keys come from python3-zmq's zmq.curve_keypair(). Also --control-token: the
registration routes answer 401 without the bearer token.

usage: test_hub_curve.py PATH/TO/kvbm-hub"""
import os
import tempfile
import time

import zmq

from hubtest import Hub, Publisher, batch, chain, check, curl, finish, binary_arg


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def main():
    binary = binary_arg()
    server_public, server_secret = zmq.curve_keypair()
    a_public, a_secret = zmq.curve_keypair()  # listed for ids 1 and 2
    c_public, c_secret = zmq.curve_keypair()  # listed for id 3
    b_public, b_secret = zmq.curve_keypair()  # not listed
    with tempfile.TemporaryDirectory() as tmp:
        secret_file = write(os.path.join(tmp, "hub.key"), server_secret.decode() + "\n")
        allow_file = write(os.path.join(tmp, "allow"),
                           f"# key id\n{a_public.decode()} 1\n{a_public.decode()} 2\n\n{c_public.decode()} 3\n")
        token_file = write(os.path.join(tmp, "token"), "t0ken-value\n")

        # Bad key files are refused at start, naming the flag.
        bad = write(os.path.join(tmp, "bad.key"), "not-a-key\n")
        try:
            Hub(binary, "--curve-secret-key", bad, "--curve-allow", allow_file)
            check(False, "a malformed secret key must stop the hub")
        except RuntimeError as e:
            check("--curve-secret-key" in str(e), f"error names the flag: {e}")
        bad_allow = write(os.path.join(tmp, "bad.allow"), f"{a_public.decode()} notanid\n")
        try:
            Hub(binary, "--curve-secret-key", secret_file, "--curve-allow", bad_allow)
            check(False, "a malformed allow file must stop the hub")
        except RuntimeError as e:
            check("--curve-allow" in str(e) and "line 1" in str(e), f"error names the flag and line: {e}")

        with Hub(binary, "--curve-secret-key", secret_file, "--curve-allow", allow_file,
                 "--control-token", token_file) as hub:
            status, cfg = hub.get("/v1/features/indexer/config")
            check(cfg.get("zmq_curve_server_key") == server_public.decode(),
                  f"config advertises the hub's public key: {cfg}")

            # --- listed key, own ids: indexed --------------------------------------------------
            own1, own2 = chain(1, 4), chain(2, 3)
            pa = Publisher(hub.zmq, (a_public, a_secret, server_public))
            check(pa.wait_subscribed(), "listed key completes the CURVE handshake")
            pa.send(batch("Create", own1, 1))
            pa.send(batch("Create", own2, 2))
            check(hub.wait_until(lambda: hub.query(own1) is not None and hub.query(own2) is not None),
                  "listed key publishes for its bound ids")

            # --- listed key, another key's id: rejected, counted, index unchanged -----------
            before = hub.metric("kvbm_hub_frames_rejected_total", reason="unauthorized")
            check(before == 0, f"no unauthorized batch yet: {before}")
            stolen = chain(3, 5)
            pa.send(batch("Create", stolen, 3))   # id 3 belongs to key C
            pa.send(batch("Remove", own1, 99))    # id 99 belongs to nobody
            pa.send(batch("Shutdown", [], 3))
            check(hub.wait_until(lambda: hub.metric("kvbm_hub_frames_rejected_total", reason="unauthorized") == 3),
                  "three batches for foreign ids rejected and counted")
            check(hub.query(stolen) is None, "a listed key cannot publish for another key's id")
            check(hub.query(own1)["instances"] == ["1"], "foreign-id batches changed nothing")

            # key C may publish for id 3
            pc = Publisher(hub.zmq, (c_public, c_secret, server_public))
            check(pc.wait_subscribed(), "second listed key connects")
            pc.send(batch("Create", stolen[:2], 3))
            check(hub.wait_until(lambda: hub.query(stolen) is not None), "key C publishes for id 3")

            # --- unlisted key and plain-text peer: never connect, never change the index ----
            pb = Publisher(hub.zmq, (b_public, b_secret, server_public))
            check(not pb.wait_subscribed(1500), "unlisted key: the hub never subscribes (ZAP refused it)")
            intruder = chain(4, 6)
            pb.send(batch("Create", intruder, 1))  # even claiming a listed id
            plain = Publisher(hub.zmq)
            check(not plain.wait_subscribed(1500), "plain-text peer: no handshake")
            plain.send(batch("Create", intruder, 1))
            # A marker from a listed key after the intruders' sends; then a grace period.
            marker = chain(5, 2)
            pa.send(batch("Create", marker, 2))
            check(hub.wait_until(lambda: hub.query(marker) is not None), "marker arrives")
            time.sleep(0.5)
            check(hub.query(intruder) is None, "unlisted and plain-text peers changed nothing")
            denied = hub.metric("kvbm_hub_zap_denied_total")
            check(denied is not None and denied >= 1, f"refused handshakes are counted: {denied}")
            for p in (pa, pb, pc, plain):
                p.close()

            # --- control token ------------------------------------------------------------
            reg = '{"instance_id": "5", "block_size": 16}'
            code, body = curl(hub.url + "/v1/instances", "-X", "POST", "--data-binary", reg)
            check(code == 401 and "Bearer" in body, f"no token: {code} {body}")
            code, body = curl(hub.url + "/v1/instances", "-X", "POST", "--data-binary", reg,
                              "-H", "Authorization: Bearer wrong")
            check(code == 401, f"wrong token: {code}")
            code, body = curl(hub.url + "/v1/instances/5", "-X", "DELETE")
            check(code == 401, f"DELETE without token: {code}")
            check(hub.instances() == [], "refused registrations registered nothing")
            code, body = curl(hub.url + "/v1/instances", "-X", "POST", "--data-binary", reg,
                              "-H", "Authorization: Bearer t0ken-value")
            check(code == 200, f"right token: {code} {body}")
            code, body = curl(hub.url + "/v1/features/indexer/instances")
            check(code == 200 and '"5"' in body, "discovery routes need no token")
            check(hub.metric("kvbm_hub_http_requests_total", route="/v1/instances", code="401") == 2,
                  "401s counted")
    finish("test_hub_curve")


if __name__ == "__main__":
    main()
