#!/usr/bin/python3
"""kvbm-hub's command line: --help lists every flag, bad flags and an HTTP port in use fail
with a message on stderr and a non-zero exit (nothing on stdout: scripts waiting for the ready
line see EOF), defaults answer in /config, SIGTERM exits 0.

usage: test_hub_cli.py PATH/TO/kvbm-hub"""
import subprocess

from hubtest import Hub, check, finish, binary_arg

FLAGS = ["--http", "--zmq-bind", "--advertise-host", "--block-size", "--max-seq-len", "--lease-ttl",
         "--curve-secret-key", "--curve-allow", "--control-token", "--require-lease"]


def run(binary, *args):
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)


def main():
    binary = binary_arg()
    h = run(binary, "--help")
    check(h.returncode == 0 and all(f in h.stdout for f in FLAGS), f"--help lists every flag: {h.stdout}")
    for args, needle in [(["--block-size", "0"], "--block-size"),
                         (["--max-seq-len", "100", "--block-size", "16"], "--max-seq-len"),
                         (["--http", "nohostport"], "--http"),
                         (["--lease-ttl", "-1"], "--lease-ttl"),
                         (["--bogus"], "--bogus"),
                         (["--zmq-bind", "nonsense"], "nonsense"),
                         (["--curve-allow", "/etc/hostname"], "--curve")]:
        r = run(binary, "--http", "127.0.0.1:0", *args)
        check(r.returncode != 0 and r.stdout == "" and needle in r.stderr,
              f"{args}: exit {r.returncode}, stderr names {needle}: {r.stderr!r}")
    with Hub(binary, "--advertise-host", "10.1.2.3") as hub:
        port = hub.url.rsplit(":", 1)[1]
        status, cfg = hub.get("/v1/features/kv-index/config")
        check(cfg["block_size"] == 16 and cfg["max_seq_len"] == 65536 and cfg["num_positions"] == 4096,
              f"defaults: {cfg}")
        check(cfg["zmq_endpoint"].startswith("tcp://10.1.2.3:") and hub.zmq == cfg["zmq_endpoint"],
              f"advertised host in /config and the ready line: {cfg} {hub.zmq}")
        r = run(binary, "--http", f"127.0.0.1:{port}")
        check(r.returncode != 0 and "cannot listen" in r.stderr and r.stdout == "",
              f"port in use: {r.returncode} {r.stderr!r}")
        check(hub.stop() == 0, "SIGTERM exits 0")
    finish("test_hub_cli")


if __name__ == "__main__":
    main()
