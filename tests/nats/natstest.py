"""A nats-server child process for the Python tests: started on a free loopback port,
logging (and, with JetStream, storing) in a directory the caller owns, ready once its log
says so."""
import os
import socket
import subprocess
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NatsServer:
    def __init__(self, binary, tmp, jetstream=True):
        self.binary, self.tmp, self.jetstream = binary, tmp, jetstream
        self.port = free_port()
        self.start()

    def start(self):
        log = os.path.join(self.tmp, "server.log")
        if os.path.exists(log):
            os.remove(log)
        js = ["-js", "-sd", os.path.join(self.tmp, "js")] if self.jetstream else []
        self.proc = subprocess.Popen([self.binary, "-a", "127.0.0.1", "-p", str(self.port), *js, "-l", log])
        deadline = time.time() + 30
        while time.time() < deadline:
            if os.path.exists(log) and "Server is ready" in open(log).read():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError("nats-server did not start")

    @property
    def url(self):
        return f"nats://127.0.0.1:{self.port}"

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
