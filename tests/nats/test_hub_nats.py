#!/usr/bin/env python3
"""kvbm-hub --nats: batches published over NATS reach the hub's index (POST /query), under
a subject prefix; garbage is counted; and with --jetstream, a hub restarted after blocks
were registered while it was down answers for them from its snapshot + the stream, without
asking any worker to resync. Beside the snapshot the hub keeps who was registered: after a
restart, a worker that keeps its lease alive stays, and one that died while the hub was down
is swept one lease TTL later (its blocks came back with the snapshot), while an instance
that never registered stays as on the Rust hub.

The publisher is a raw NATS protocol client written here (a TCP socket speaking CONNECT,
PUB, SUB, PING), with Debian's python3-msgpack: nothing from kvbm or nats.c.

usage: test_hub_nats.py PATH/TO/kvbm-hub PATH/TO/nats-server
"""
import os
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "hub"))
import hubtest  # noqa: E402
from hubtest import Hub, batch, chain, check, finish  # noqa: E402
from natstest import NatsServer  # noqa: E402


class RawNats:
    """The NATS client protocol by hand: enough to publish, subscribe and round-trip."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.buf = b""
        info = self._line()
        assert info.startswith(b"INFO "), info
        self.sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"name":"raw-test"}\r\n')
        self.msgs = []
        self.ping()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError("connection closed")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _read(self, n):
        while len(self.buf) < n + 2:
            self.buf += self.sock.recv(65536)
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def pub(self, subject, payload):
        self.sock.sendall(b"PUB %s %d\r\n%s\r\n" % (subject.encode(), len(payload), payload))

    def sub(self, subject, sid):
        self.sock.sendall(b"SUB %s %d\r\n" % (subject.encode(), sid))

    def ping(self):
        """Round trip: everything sent before has been processed by the server; messages
        received meanwhile are kept in self.msgs."""
        self.sock.sendall(b"PING\r\n")
        while True:
            line = self._line()
            if line == b"PONG":
                return
            if line.startswith(b"MSG "):
                parts = line.split()
                self.msgs.append((parts[1].decode(), self._read(int(parts[-1]))))
            elif line.startswith(b"-ERR"):
                raise RuntimeError(line)

    def close(self):
        self.sock.close()


def main():
    hub_bin, server_bin = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        server = NatsServer(server_bin, tmp)
        try:
            core(hub_bin, server)
            jetstream(hub_bin, server, tmp)
            leases_across_restart(hub_bin, server, tmp)
        finally:
            server.stop()
    finish("test_hub_nats")


def core(hub_bin, server):
    a = chain(1, 6)
    with Hub(hub_bin, "--nats", server.url, "--subject-prefix", "ns1") as hub:
        check('"nats":"ns1.kvbm.events"' in hub.ready_line, f"ready line names the subject: {hub.ready_line}")
        pub = RawNats(server.port)
        pub.pub("ns1.kvbm.events", batch("Create", a, 11))
        pub.pub("kvbm.events", batch("Create", chain(2, 3), 12))  # no prefix: not this hub's
        pub.pub("ns1.kvbm.events", b"\x93garbage")
        pub.ping()
        check(hub.wait_until(lambda: hub.metric("kvbm_hub_messages_total") == 2.0), "two messages on ns1")
        hit = hub.query(a)
        check(hit is not None and hit["position"] == 5 and hit["instances"] == ["11"], f"query hit: {hit}")
        check(hub.query(chain(2, 3)) is None, "the unprefixed subject is not read")
        check(hub.metric("kvbm_hub_frames_rejected_total", reason="undecodable") == 1.0, "garbage counted")
        check(hub.metric("kvbm_nats_hub_resync_requests_total") == 1.0, "a core-NATS hub asks for a resync")
        pub.close()


def jetstream(hub_bin, server, tmp):
    snap = os.path.join(tmp, "kv.snap")
    args = ["--nats", server.url, "--jetstream", "KV", "--snapshot", snap, "--stream-max-msgs", "3"]
    a, b, c = chain(10, 8), chain(20, 5), chain(30, 7)
    pub = RawNats(server.port)
    watcher = RawNats(server.port)  # sees any resync request a hub sends
    watcher.sub("kvbm.resync", 1)
    watcher.ping()
    with Hub(hub_bin, *args) as hub:
        pub.pub("kvbm.events", batch("Create", a, 1))
        pub.pub("kvbm.events", batch("Create", b, 2))
        pub.ping()
        check(hub.wait_until(lambda: hub.query(b) is not None), "the JetStream hub applied the batches")
    check(os.path.exists(snap), "a stopped JetStream hub leaves its snapshot")
    # Down: a's tail released, worker 2 shut down, worker 3 registers c. The stream keeps only
    # the last 3 messages: a's Create is gone from it, only the snapshot remembers it.
    pub.pub("kvbm.events", batch("Remove", list(reversed(a[5:])), 1))
    pub.pub("kvbm.events", batch("Shutdown", [], 2))
    pub.pub("kvbm.events", batch("Create", c, 3))
    pub.ping()
    with Hub(hub_bin, *args) as hub:
        check(hub.wait_until(lambda: hub.query(c) is not None), "blocks registered while the hub was down are found")
        hit = hub.query(c)
        check(hit is not None and hit["position"] == 6 and hit["instances"] == ["3"], f"c: {hit}")
        hit = hub.query(a)
        check(hit is not None and hit["position"] == 4 and hit["instances"] == ["1"], f"a, tail removed: {hit}")
        check(hub.query(b) is None, "worker 2's Shutdown, published while down, applied")
        check(hub.metric("kvbm_nats_hub_replayed_total") == 3.0, "only what came after the snapshot replayed")
        check(hub.metric("kvbm_nats_hub_gaps_total") == 0.0, "no gap")
        check(hub.metric("kvbm_nats_hub_resync_requests_total") == 0.0, "no resync asked")
    watcher.ping()
    check(watcher.msgs == [], f"no worker was asked to resync: {watcher.msgs}")
    pub.close()
    watcher.close()


def leases_across_restart(hub_bin, server, tmp):
    snap = os.path.join(tmp, "leases.snap")
    ttl = 2.0  # the live worker must renew within a TTL of the restarted hub granting its lease
    # Its own subject (a second stream may not capture the first one's subject).
    args = ["--nats", server.url, "--subject-prefix", "lz", "--jetstream", "KVL", "--snapshot", snap,
            "--lease-ttl", str(ttl)]
    live, dead, stranger = 41, (1 << 90) + 42, 43
    chains = {live: chain(41, 4), dead: chain(42, 5), stranger: chain(43, 3)}
    pub = RawNats(server.port)
    with Hub(hub_bin, *args) as hub:
        for worker in (live, dead):
            status, body = hub.post("/v1/instances", {"instance_id": str(worker), "block_size": 16})
            check(status == 200, f"worker {worker} registered: {status} {body}")
        for worker, hashes in chains.items():
            pub.pub("lz.kvbm.events", batch("Create", hashes, worker))
        pub.ping()
        check(hub.wait_until(lambda: all(hub.query(h) is not None for h in chains.values())), "all three indexed")
    check(os.path.exists(snap + ".leases"), "the hub keeps its leases beside the snapshot")
    # `dead` dies while the hub is down; `live` renews as soon as the hub is back.
    with Hub(hub_bin, *args) as hub:
        check(hub.instances() == sorted([str(live), str(dead)], key=int), f"leases restored: {hub.instances()}")
        check(all(hub.query(h) is not None for h in chains.values()), "the snapshot brought every block back")
        restarted = time.monotonic()

        def renew_live():
            status, body = hub.post(f"/v1/instances/{live}/keepalive")
            check(status == 200, f"the live worker's restored lease renews (no 404, no resync): {status} {body}")
            return hub.query(chains[dead]) is None

        swept = hub.wait_until(renew_live, timeout=30, step=0.2)
        elapsed = time.monotonic() - restarted
        print(f"worker dead across the restart swept {elapsed:.3f} s after it (lease TTL {ttl} s)", flush=True)
        check(swept, "the worker that died while the hub was down is swept")
        check(elapsed <= 5 * ttl, f"within 5 TTLs (a loaded machine): {elapsed:.3f} s")
        check(hub.query(chains[live]) is not None, "the live worker's blocks stay")
        check(hub.query(chains[stranger]) is not None, "an instance that never registered stays")
        check(hub.instances() == [str(live)], f"only the live worker registered: {hub.instances()}")
        check(hub.metric("kvbm_hub_leases_expired_total") == 1.0, "one lease expired")
    pub.close()


if __name__ == "__main__":
    main()
