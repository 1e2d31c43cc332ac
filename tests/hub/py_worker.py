#!/usr/bin/python3
"""A worker written with nothing from kvbm: registers with a kvbm-hub over urllib, keeps its
lease alive from a thread, publishes one chain of blocks over ZeroMQ (python3-zmq +
python3-msgpack), prints "published" and runs until killed.

usage: py_worker.py HUB_URL INSTANCE_ID SEED BLOCKS"""
import json
import sys
import threading
import time
import urllib.request

from hubtest import Publisher, batch, chain


def call(url, method, body=None):
    data = json.dumps(body).encode() if body is not None else b""
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def main():
    hub, instance, seed, blocks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    with urllib.request.urlopen(hub + "/v1/features/kv-index/config", timeout=10) as resp:
        config = json.loads(resp.read())
    lease = call(hub + "/v1/instances", "POST", {"instance_id": str(instance), "block_size": config["block_size"]})
    period = lease["lease_ttl_ms"] / 3000.0

    def keepalive():
        while True:
            time.sleep(period)
            call(f"{hub}/v1/instances/{instance}/keepalive", "POST")

    threading.Thread(target=keepalive, daemon=True).start()
    pub = Publisher(config["zmq_endpoint"])
    if not pub.wait_subscribed():
        sys.exit("hub never subscribed")
    pub.send(batch("Create", chain(seed, blocks), instance))
    print("published", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
