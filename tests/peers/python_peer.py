#!/usr/bin/python3
"""An independent peer: pyzmq + msgpack-python decode what kvbm's ZmqPublisher sends.

usage: python_peer.py ZMQ_PEER_SENDER
Binds a SUB socket (tcp loopback, then ipc), runs the sender against it and checks every
frame: two frames per message, the topic, SPEC section 5's example byte for byte, and the
decoded values of the other batches against values computed here.
"""
import os
import subprocess
import sys
import tempfile

import msgpack
import zmq

SPEC_EXAMPLE = bytes.fromhex(
    "92" "81" "a6437265617465" "92"
    "c410" "00000000000000000338e4d7fb2dca5c"
    "c410" "0059c726bfd96e52e4a2b2379d6d3c3d"
    "c410" "00000000000000000000000000003039")


def be16(value):
    return value.to_bytes(16, "big")


def expected_hashes():
    return [be16(((i * 0x0101010101010101) << 64) | (~i & 0xFFFFFFFFFFFFFFFF)) for i in range(20)]


def check(condition, what):
    if not condition:
        raise AssertionError(what)


def run(sender, bind):
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.setsockopt(zmq.RCVTIMEO, 20000)
    sub.setsockopt(zmq.LINGER, 0)
    sub.bind(bind)
    endpoint = sub.getsockopt(zmq.LAST_ENDPOINT).decode()
    proc = subprocess.Popen([sender, endpoint])
    try:
        messages = [sub.recv_multipart() for _ in range(4)]
    finally:
        rc = proc.wait(timeout=30)
        sub.close()
        ctx.term()
    check(rc == 0, f"sender exited with {rc}")

    for frames in messages:
        check(len(frames) == 2, f"expected 2 frames, got {len(frames)}")
        check(frames[0] == b"kvbm.kv_index", f"topic {frames[0]!r}")
    payloads = [frames[1] for frames in messages]

    check(payloads[0] == SPEC_EXAMPLE, f"SPEC example differs: {payloads[0].hex()}")
    check(msgpack.unpackb(payloads[0], raw=False) ==
          [{"Create": [be16(0x0338e4d7fb2dca5c), be16(0x0059c726bfd96e52e4a2b2379d6d3c3d)]}, be16(12345)],
          "SPEC example decodes wrong")

    big = be16((1 << 127) + 5)
    hashes = expected_hashes()
    check(payloads[1][9:12] == b"\xdc\x00\x14", "20 hashes need a 16-bit array header")
    check(msgpack.unpackb(payloads[1], raw=False) == [{"Create": hashes}, big], "create batch")
    check(msgpack.unpackb(payloads[2], raw=False) == [{"Remove": hashes[::-1]}, big], "remove batch")
    check(msgpack.unpackb(payloads[3], raw=False) == ["Shutdown", big], "shutdown batch")
    print(f"ok: {bind} -> {endpoint}: 4 messages decoded")


def main():
    sender = sys.argv[1]
    run(sender, "tcp://127.0.0.1:*")
    with tempfile.TemporaryDirectory() as tmp:
        run(sender, "ipc://" + os.path.join(tmp, "peer.sock"))


if __name__ == "__main__":
    main()
