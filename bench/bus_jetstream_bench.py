#!/usr/bin/env python3
"""The message bus on its embedded store against the bus on a three-node
NATS JetStream cluster (replicas 3), same run, same client.

    GRACE_BIN=build/grace python3 bench/bus_jetstream_bench.py [--messages 5000]
        [--conns 8] [--batch 100] [--samples 300] [--rounds 3]

Measures, on loopback, through the bus kernel's own port:
  * publish throughput, single: one message per POST /publish, --conns
    keep-alive connections each with one request in flight;
  * publish throughput, batched: arrays of --batch messages, same
    connections;
  * publish-to-delivery latency: one message at a time, from just before
    the publish is written to the moment an SSE subscriber has it.
Both engines acknowledge a publish only once it is durable: the embedded
one after its fsync, the JetStream one after JetStream's ack (a majority
of the three nodes has it). Each measurement runs --rounds times,
alternating the engines; medians are reported, and JetStream's as a ratio
of the embedded engine's.

It reuses the test harness (tests/blackbox/harness.py: GraceServer and its
port offsets; tests/blackbox/core/nats_cluster.py: the nats-server nodes);
every process started here is stopped here, by pid. Standard library and
nats-server only (Debian: nats-server, libnats3.4).
"""

import argparse
import http.client
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "blackbox"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "blackbox", "core"))
from harness import GraceServer, PortReservation  # noqa: E402
from nats_cluster import NatsCluster  # noqa: E402

TOKEN_HEADER = "X-Grace-Internal-Token"


class Client:
    def __init__(self, g):
        self.port = g.kernel_port("message_bus")
        self.headers = {TOKEN_HEADER: g.token(), "Content-Type": "application/json"}

    def conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def publish(self, conn, body):
        conn.request("POST", "/publish", json.dumps(body), self.headers)
        r = conn.getresponse()
        data = r.read()
        if r.status != 200:
            raise RuntimeError("publish: %d %s" % (r.status, data[:200]))


def throughput(client, messages, conns, batch, subject):
    per = messages // conns
    errors = []

    def worker(w):
        c = client.conn()
        try:
            sent = 0
            while sent < per:
                n = min(batch, per - sent)
                body = ([{"subject": subject, "payload": {"w": w, "i": sent + j}}
                         for j in range(n)] if batch > 1 else
                        {"subject": subject, "payload": {"w": w, "i": sent}})
                client.publish(c, body)
                sent += n
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)
        finally:
            c.close()

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(conns)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return per * conns / elapsed


def latency(client, samples, subject):
    """Median and p99 (ms) from publish to SSE delivery, one at a time."""
    sse = client.conn()
    sse.request("GET", "/subscribe?subject=%s&from=latest" % subject,
                headers={TOKEN_HEADER: client.headers[TOKEN_HEADER]})
    resp = sse.getresponse()
    assert resp.status == 200, resp.status
    pub = client.conn()
    out = []
    # The first comment says the subscription is live (JetStream: once
    # its consumer exists).
    while not resp.readline().startswith(b": subscribed"):
        pass
    for i in range(samples):
        t0 = time.perf_counter()
        client.publish(pub, {"subject": subject, "payload": i})
        while True:
            line = resp.readline()
            if not line:
                raise RuntimeError("stream ended")
            if line.startswith(b"data:") and json.loads(line[5:])["payload"] == i:
                out.append((time.perf_counter() - t0) * 1000)
                break
    sse.close()
    pub.close()
    out.sort()
    return statistics.median(out), out[int(len(out) * 0.99) - 1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="grace-bus-js-bench-")
    res = PortReservation()
    cluster = NatsCluster(res.offset, tmp)
    servers = {}
    try:
        cluster.start()
        servers["jetstream"] = GraceServer(
            kernels={"message_bus": {}}, reservation=res,
            config={"message_bus": {"engine": "jetstream", "replicas": 3,
                                    "nats_urls": ",".join(cluster.urls())}})
        servers["embedded"] = GraceServer(kernels={"message_bus": {}})
        for g in servers.values():
            g.__enter__()
        clients = {n: Client(g) for n, g in servers.items()}
        results = {n: {"single": [], "batched": [], "p50": [], "p99": []} for n in servers}
        for r in range(a.rounds):
            order = ["embedded", "jetstream"] if r % 2 == 0 else ["jetstream", "embedded"]
            for n in order:
                c = clients[n]
                print("round %d: %s" % (r + 1, n), file=sys.stderr)
                results[n]["single"].append(
                    throughput(c, a.messages // 5, a.conns, 1, "bench.single"))
                results[n]["batched"].append(
                    throughput(c, a.messages, a.conns, a.batch, "bench.batched"))
                p50, p99 = latency(c, a.samples, "bench.latency.r%d" % r)
                results[n]["p50"].append(p50)
                results[n]["p99"].append(p99)
        med = {n: {k: statistics.median(v) for k, v in d.items()} for n, d in results.items()}
        e, j = med["embedded"], med["jetstream"]
        print("message bus: embedded store against a 3-node NATS JetStream cluster "
              "(replicas 3), medians of %d rounds" % a.rounds)
        print("  %-34s %14s %14s %8s" % ("", "embedded", "jetstream", "js/emb"))
        print("  %-34s %14.0f %14.0f %8.2f" % ("publish, 1 msg/request (msg/s)",
                                              e["single"], j["single"], j["single"] / e["single"]))
        print("  %-34s %14.0f %14.0f %8.2f" % ("publish, %d msgs/request (msg/s)" % a.batch,
                                              e["batched"], j["batched"],
                                              j["batched"] / e["batched"]))
        print("  %-34s %14.2f %14.2f %8.2f" % ("publish to SSE delivery, p50 (ms)",
                                              e["p50"], j["p50"], j["p50"] / e["p50"]))
        print("  %-34s %14.2f %14.2f %8.2f" % ("publish to SSE delivery, p99 (ms)",
                                              e["p99"], j["p99"], j["p99"] / e["p99"]))
        print("  (%d connections; --messages %d; the client is one Python process on the "
              "same CPUs)" % (a.conns, a.messages))
    finally:
        for g in servers.values():
            g.__exit__(None, None, None)
        cluster.close()
        res.release()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
