"""Shared helpers of the kvbm-hub tests: start a hub on free ports and stop it, talk HTTP with
urllib or curl, build kvbm 1.2 PLHs and MessagePack batches the way Dynamo's Rust worker
does (SPEC section 5), publish them over ZeroMQ. Nothing here comes from kvbm's own code."""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import msgpack
import zmq

TOPIC = b"kvbm.kv_index"
FAILURES = []


def check(cond, what):
    """Records a failure (and prints it) instead of stopping: one run reports them all."""
    if not cond:
        FAILURES.append(what)
        print(f"FAIL: {what}", flush=True)
    return cond


def finish(name):
    if FAILURES:
        print(f"{name}: {len(FAILURES)} failure(s)")
        sys.exit(1)
    print(f"{name}: ok")


def plh(position, current, parent=0):
    """kvbm 1.2 positional lineage hash (mode 0, positions below 255 only)."""
    assert 0 <= position < 255
    mask = (1 << 59) - 1
    return (position << 118) | ((parent & mask) << 59) | (current & mask)


def chain(seed, n):
    """n PLHs of one sequence, positions 0..n-1."""
    out, parent = [], 0
    for pos in range(n):
        current = (seed * 1_000_003 + pos * 7919 + 1) & ((1 << 59) - 1)
        out.append(plh(pos, current, parent))
        parent = current
    return out


def be16(v):
    return v.to_bytes(16, "big")


def batch(kind, hashes, instance):
    """rmp_serde::to_vec of KvbmCacheEvents: [ {kind: [bin16...]} | "Shutdown", bin16 id ]."""
    events = "Shutdown" if kind == "Shutdown" else {kind: [be16(h) for h in hashes]}
    return msgpack.packb([events, be16(instance)], use_bin_type=True)


class Hub:
    """A kvbm-hub process on free ports; `with Hub(binary, ...) as hub:` stops it at the end."""

    def __init__(self, binary, *args):
        self.args = [binary, "--http", "127.0.0.1:0", "--zmq-bind", "tcp://127.0.0.1:0", *args]
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.ready_line = self.proc.stdout.readline()
        if not self.ready_line:
            err = self.proc.stderr.read()
            raise RuntimeError(f"kvbm-hub did not start: {self.proc.wait()} {err}")
        ready = json.loads(self.ready_line)
        self.url = ready["http"]
        self.zmq = ready["zmq"]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.stderr = self.proc.stderr.read()
        return rc

    # --- HTTP with urllib -------------------------------------------------------------
    def request(self, method, path, body=None, headers=None, raw=None):
        """(status, parsed JSON or text). `body` is sent as JSON, `raw` as given."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is None and method in ("POST", "PUT", "PATCH"):
            data = b""
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, text, ctype = resp.status, resp.read().decode(), resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            status, text, ctype = e.code, e.read().decode(), e.headers.get("Content-Type", "")
        if ctype.startswith("application/json"):
            return status, json.loads(text)
        return status, text

    def get(self, path):
        return self.request("GET", path)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body, **kw)

    def query(self, hashes, prefix="/v1/features/indexer"):
        status, body = self.post(prefix + "/query", {"hashes": hashes})
        assert status == 200, (status, body)
        return body["hit"]

    def instances(self):
        return self.get("/v1/features/indexer/instances")[1]["instances"]

    def metrics(self):
        status, text = self.get("/metrics")
        assert status == 200, status
        return text

    def metric(self, name, **labels):
        """One sample's value from /metrics, parsed by the Prometheus client's parser."""
        from prometheus_client.parser import text_string_to_metric_families
        for family in text_string_to_metric_families(self.metrics()):
            for s in family.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    return s.value
        return None

    def wait_until(self, cond, timeout=20.0, step=0.01):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return True
            time.sleep(step)
        return cond()


def curl(url, *args):
    """(status, body) with the curl binary, an HTTP client nobody here wrote."""
    out = subprocess.run(["curl", "-s", "-S", "-o", "-", "-w", "\n%{http_code}", *args, url],
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"curl failed: {out.stderr}")
    body, _, code = out.stdout.rpartition("\n")
    return int(code), body


class Publisher:
    """A worker's ZeroMQ side in Python: XPUB connected to the hub, waits for the hub's
    subscription before the first send (the slow-joiner gap)."""

    def __init__(self, endpoint, curve=None):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.XPUB)
        self.sock.setsockopt(zmq.LINGER, 2000)
        if curve is not None:
            public, secret, server_public = curve
            self.sock.curve_publickey = public
            self.sock.curve_secretkey = secret
            self.sock.curve_serverkey = server_public
        self.sock.connect(endpoint)

    def wait_subscribed(self, timeout_ms=20000):
        if self.sock.poll(timeout_ms) == 0:
            return False
        return self.sock.recv().startswith(b"\x01")

    def send(self, payload, topic=TOPIC):
        if topic is None:
            self.sock.send(payload)
        else:
            self.sock.send_multipart([topic, payload])

    def close(self):
        self.sock.close()
        self.ctx.term()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def binary_arg():
    if len(sys.argv) < 2 or not os.path.exists(sys.argv[1]):
        print("usage: test.py PATH/TO/kvbm-hub", file=sys.stderr)
        sys.exit(2)
    return sys.argv[1]
