"""A throw-away NATS JetStream cluster on loopback, for the bus's tests and
bench/bus_jetstream_bench.py: `nats-server` (Debian's, 2.9) nodes, each with
its own store directory, killed by the pid they were started with.

Ports: a Grace test's port offset N holds 8000+N..8149+N; the 50 ports
after (8150+N..8199+N) belong to no other offset, so the cluster takes
8170+N.. (client), 8180+N.. (routes) and 8190+N.. (monitoring): below
32768, never 8000-8149."""

import os
import shutil
import signal
import subprocess
import time
import urllib.request

NATS_BASE = 8170


def nats_server_bin():
    path = shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not os.access(path, os.X_OK):
        raise AssertionError("nats-server is missing: scripts/bootstrap.sh --test "
                             "installs it (Debian: nats-server)")
    return path


class NatsCluster:
    def __init__(self, offset, tmp, nodes=3):
        self.bin = nats_server_bin()
        self.tmp = tmp
        self.n = nodes
        self.client = [NATS_BASE + offset + i for i in range(nodes)]
        self.route = [NATS_BASE + 10 + offset + i for i in range(nodes)]
        self.monitor = [NATS_BASE + 20 + offset + i for i in range(nodes)]
        self.procs = [None] * nodes

    def urls(self):
        return ["nats://127.0.0.1:%d" % p for p in self.client]

    def start_node(self, i):
        store = os.path.join(self.tmp, "nats%d" % i)
        os.makedirs(store, exist_ok=True)
        routes = ",".join("nats://127.0.0.1:%d" % p for j, p in enumerate(self.route) if j != i)
        args = [self.bin, "-n", "n%d" % i, "-a", "127.0.0.1", "-p", str(self.client[i]),
                "-m", str(self.monitor[i]), "-js", "-sd", store,
                "--cluster_name", "grace-test", "--cluster",
                "nats://127.0.0.1:%d" % self.route[i], "--routes", routes]
        log = open(os.path.join(self.tmp, "nats%d.log" % i), "ab")
        try:
            self.procs[i] = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=log)
        finally:
            log.close()

    def healthy(self, i):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % self.monitor[i],
                                        timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def start(self, timeout=20.0):
        for i in range(self.n):
            self.start_node(i)
        deadline = time.monotonic() + timeout
        while not all(self.healthy(i) for i in range(self.n)):
            for i, p in enumerate(self.procs):
                if p.poll() is not None:
                    raise AssertionError("nats-server n%d exited: %s" % (i, self.log(i)))
            if time.monotonic() > deadline:
                raise AssertionError("the NATS cluster did not become healthy: %s"
                                     % self.log(0))
            time.sleep(0.1)
        return self

    def log(self, i):
        try:
            with open(os.path.join(self.tmp, "nats%d.log" % i), errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def kill(self, i):
        p = self.procs[i]
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait()

    def close(self):
        for i in range(self.n):
            self.kill(i)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
