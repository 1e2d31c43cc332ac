#!/usr/bin/env python3
"""The NATS peer test: an independent client (nats.js + @msgpack/msgpack from the npm
registry) subscribes and decodes what kvbm's NatsPublisher sends, under a subject prefix and
without one, and must find exactly the batches the sender says it sent.

usage: nats_node_peer.py <nats-server> <nats_peer_sender> <peer dir (package.json, lock, peer.mjs)> <work dir>

Fails (never skips) when npm ci fails: the peer is part of the test.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(binary, tmp):
    for _ in range(5):
        port = free_port()
        log = os.path.join(tmp, "server.log")
        proc = subprocess.Popen([binary, "-a", "127.0.0.1", "-p", str(port), "-l", log])
        deadline = time.time() + 30
        while time.time() < deadline:
            if proc.poll() is not None:
                break
            if os.path.exists(log) and "Server is ready" in open(log).read():
                return proc, f"nats://127.0.0.1:{port}"
            time.sleep(0.02)
        proc.kill()
        proc.wait()
    sys.exit("nats-server did not start")


def main():
    server_bin, sender, peer_dir, work = sys.argv[1:5]
    os.makedirs(work, exist_ok=True)
    for f in ("package.json", "package-lock.json", "peer.mjs"):
        shutil.copy(os.path.join(peer_dir, f), work)
    npm = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=work, capture_output=True, text=True,
                         timeout=240)
    if npm.returncode != 0:
        sys.exit(f"npm ci failed ({npm.returncode}): the peer cannot run\n{npm.stdout}\n{npm.stderr}")

    with tempfile.TemporaryDirectory() as tmp:
        server, url = start_server(server_bin, tmp)
        try:
            for prefix in ("", "ns1"):
                subject = f"{prefix}.kvbm.events" if prefix else "kvbm.events"
                peer = subprocess.Popen(["node", "peer.mjs", url, ">", "5"], cwd=work, stdout=subprocess.PIPE,
                                        text=True)
                if peer.stdout.readline().strip() != "ready":
                    sys.exit("node peer did not get ready")
                sent = subprocess.run([sender, url, prefix], capture_output=True, text=True, timeout=60)
                if sent.returncode != 0:
                    sys.exit(f"sender failed: {sent.stderr}")
                out, _ = peer.communicate(timeout=90)
                if peer.returncode != 0:
                    sys.exit(f"node peer failed with {peer.returncode}")
                want = [json.loads(line) for line in sent.stdout.splitlines()]
                got = [json.loads(line) for line in out.splitlines()]
                if len(want) != 5 or got != want:
                    print("expected:", *want, sep="\n  ")
                    print("decoded by the node peer:", *got, sep="\n  ")
                    sys.exit(f"prefix '{prefix}': the node peer decoded something else")
                if any(m["subject"] != subject for m in got):
                    sys.exit(f"prefix '{prefix}': wrong subject")
                print(f"prefix '{prefix}': node peer decoded {len(got)} batches on {subject}")
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
