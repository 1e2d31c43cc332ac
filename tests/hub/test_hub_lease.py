#!/usr/bin/python3
"""Leases: a worker process (py_worker.py, no kvbm code) registered and publishing is killed
with SIGKILL, so no Shutdown and no DELETE ever reach the hub; the hub must sweep it from
the index within lease TTL + 1 s, while a worker that keeps its lease stays. Prints the
measured time. Then a batch of the dead worker that was still in flight arrives (sent here
with pyzmq + msgpack): it must be dropped, not bring the dead worker's blocks back. Last,
with --require-lease, a stranger's batches are dropped and a registered worker's indexed.

usage: test_hub_lease.py PATH/TO/kvbm-hub"""
import os
import signal
import subprocess
import sys
import time

from hubtest import Hub, Publisher, batch, chain, check, finish, binary_arg

TTL_S = 2.0  # keepalives every TTL/3: 1.3 s of slack for a worker on a loaded machine
HERE = os.path.dirname(os.path.abspath(__file__))


def expect_dropped(hub, pub, hashes, instance, metric, what):
    """Sends a Create of `hashes` for `instance`: the hub must drop it, counted once in `metric`."""
    pub.send(batch("Create", hashes, instance))
    check(hub.wait_until(lambda: hub.metric(metric) == 1), f"{what} is dropped (counted in {metric})")
    check(hub.query(hashes) is None, f"{what}: its blocks are not indexed")


def start_worker(hub, instance, seed, blocks):
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "py_worker.py"), hub.url, str(instance), str(seed),
                             str(blocks)], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    check(line == "published", f"worker {instance} started: {line!r}")
    return proc


def main():
    binary = binary_arg()
    with Hub(binary, "--lease-ttl", str(TTL_S)) as hub:
        doomed, survivor = (1 << 100) + 1, 77
        a, b = chain(10, 8), chain(11, 4)
        w1 = start_worker(hub, doomed, 10, 8)
        w2 = start_worker(hub, survivor, 11, 4)
        try:
            check(hub.wait_until(lambda: hub.query(a) is not None and hub.query(b) is not None),
                  "both workers' blocks are indexed")
            check(hub.instances() == sorted([str(doomed), str(survivor)], key=int), f"registered: {hub.instances()}")
            # Outlive several TTLs with keepalives: nothing may be swept.
            time.sleep(3 * TTL_S)
            check(hub.query(a) is not None and hub.query(b) is not None, "keepalives hold the leases")
            check(hub.metric("kvbm_hub_leases_expired_total") == 0, "no lease expired while kept alive")

            w1.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            w1.wait()
            gone = hub.wait_until(lambda: hub.query(a) is None and str(doomed) not in hub.instances(),
                                  timeout=30, step=0.005)
            elapsed = time.monotonic() - killed
            print(f"SIGKILLed worker swept after {elapsed:.3f} s (lease TTL {TTL_S} s)", flush=True)
            check(gone, "SIGKILLed worker swept at all")
            check(elapsed <= TTL_S + 1.0, f"swept within TTL + 1 s: {elapsed:.3f} s")
            hit = hub.query(b)
            check(hit is not None and hit["instances"] == [str(survivor)] and hit["position"] == 3,
                  f"the live worker is untouched: {hit}")
            check(hub.instances() == [str(survivor)], f"only the survivor registered: {hub.instances()}")
            check(hub.metric("kvbm_hub_leases_expired_total") == 1, "one lease expired (counted)")
            check(hub.metric("kvbm_hub_instances") == 1, "kvbm_hub_instances gauge")

            # A late batch of the dead worker (queued somewhere when it died) arrives now.
            with Publisher(hub.zmq) as late:
                check(late.wait_subscribed(), "late publisher subscribed")
                expect_dropped(hub, late, a, doomed, "kvbm_hub_batches_dropped_swept_total",
                               "the late batch of the swept worker")
        finally:
            for w in (w1, w2):
                if w.poll() is None:
                    w.kill()
                w.wait()
    require_lease(binary)
    finish("test_hub_lease")


def require_lease(binary):
    """--require-lease: a stranger's batches (an instance that never registered) are dropped
    and counted, so everything indexed belongs to a lease and can be swept."""
    with Hub(binary, "--require-lease") as hub:
        stranger, worker = 4242, 77
        a, b = chain(20, 3), chain(21, 5)
        with Publisher(hub.zmq) as pub:
            check(pub.wait_subscribed(), "publisher subscribed")
            expect_dropped(hub, pub, a, stranger, "kvbm_hub_batches_dropped_unleased_total", "the stranger's batch")
            status, body = hub.post("/v1/instances", {"instance_id": str(worker), "block_size": 16})
            check(status == 200, f"worker registered: {status} {body}")
            pub.send(batch("Create", b, worker))
            check(hub.wait_until(lambda: hub.query(b) is not None), "the leased worker's blocks are indexed")
            status, _ = hub.request("DELETE", f"/v1/instances/{worker}")
            check(status == 200 and hub.query(b) is None, "and swept when it leaves")
            check(hub.metric("kvbm_hub_batches_dropped_unleased_total") == 1, "nothing else dropped")


if __name__ == "__main__":
    main()
