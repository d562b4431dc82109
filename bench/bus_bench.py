#!/usr/bin/env python3
"""Message bus benchmark: Grace's bus against Redis Streams, same run, same client.

    python3 bench/bus_bench.py [--grace build/grace] [--messages 200000] ...

Measures, on loopback:
  * publish throughput, batched: POST /publish with arrays of --batch
    messages on --conns keep-alive connections, against pipelines of as many
    XADDs on as many Redis connections;
  * publish throughput, single: one message per request, --single-conns
    connections each with one request in flight, against one XADD per round
    trip;
  * publish-to-delivery latency: one message at a time, from just before the
    publish is written to the moment a waiting consumer has it: a bus SSE
    subscriber and a bus consumer-group long poll, against XREADGROUP BLOCK.

Redis runs twice: as shipped (no persistence: nothing is on disk when it
answers) and with appendonly yes / appendfsync always, which like the bus
answers a publish only once it is fsynced. The bus is always durable (its
commits are fsynced; concurrent publishes share a commit).

The client is one Python process on the same CPUs as the servers, so the
absolute numbers include its cost; the ratios compare servers under the
same client. When wrk and redis-benchmark are installed, the publish
throughput is measured again with them (C clients, cheaper per request).
Each measurement runs --rounds times with the servers' order rotated, and
the medians are reported beside an fsync probe of the data directory: on a
shared disk, fsync time moves the durable numbers more than anything else
(--dir /dev/shm takes the disk out).

Standard library only. Every process started here is stopped here, by pid.
Ports: grace on --port-offset (default: the first free of a few offsets
whose ports stay below 32768 and clear of 8000-8149, the test suite's and
grace_bench.py's), Redis on free loopback ports the kernel picks.
"""

import argparse
import http.client
import itertools
import json
import os
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from benchkit import HOST, TOKEN_HEADER, clean_env, port_free, wait_ready, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BUS_PORT = 8100
# The API on 8000+N and the bus on 8100+N stay below 32768 (where the
# ephemeral ports clients get start) and clear of the test suite's offsets
# (multiples of 200 up to 24000) and bench/grace_bench.py's (21000-23700).
OFFSETS = [24300, 24350, 24450, 24550, 24650]
PAYLOAD = {"event": "order.created", "id": 0, "note": "x" * 64}
RUN = itertools.count()  # fresh stream and group names for each latency run


def log(msg):
    print("[bus-bench %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------
# Servers

class Servers:
    """Every process started here, stopped by pid."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.procs = []

    def spawn(self, argv, logname, env=None):
        logf = open(os.path.join(self.tmp, logname), "ab")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                             cwd=self.tmp, env=env)
        logf.close()
        self.procs.append(p)
        return p

    def stop_all(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()


def start_grace(srv, grace, offset):
    data = os.path.join(srv.tmp, "grace-data")
    ini = os.path.join(srv.tmp, "grace.ini")
    with open(ini, "w") as f:
        f.write("[grace]\nlog_level = warn\n\n[policy]\nauthorizer = table\n\n"
                "[limits]\nmax_body_bytes = 8388608\n\n"
                "[kernel.message_bus]\nport = %d\ntier = core\nmax_body_bytes = 8388608\n"
                % BUS_PORT)
    p = srv.spawn([grace, "serve", "--config", ini, "--data-dir", data, "--port-offset",
                   str(offset)], "grace.log", clean_env())
    port = BUS_PORT + offset
    token = wait_ready(p, srv.tmp, data, port, "/stats", "the message bus kernel")
    return port, token


def start_redis(srv, name, durable):
    port = free_port()
    d = os.path.join(srv.tmp, name)
    os.makedirs(d)
    argv = ["redis-server", "--port", str(port), "--bind", HOST, "--dir", d, "--save", "",
            "--daemonize", "no", "--protected-mode", "yes", "--logfile", ""]
    argv += ["--appendonly", "yes", "--appendfsync", "always"] if durable else \
        ["--appendonly", "no"]
    srv.spawn(argv, name + ".log")

    def up():
        with socket.create_connection((HOST, port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    wait_until(up, 15, "redis-server on %d" % port)
    return port


# --------------------------------------------------------------------------
# Wire formats

def http_post(path, body, token):
    return ("POST %s HTTP/1.1\r\nHost: %s\r\n%s: %s\r\nContent-Type: application/json\r\n"
            "Content-Length: %d\r\n\r\n" % (path, HOST, TOKEN_HEADER, token, len(body))
            ).encode() + body


def http_get(path, token):
    return ("GET %s HTTP/1.1\r\nHost: %s\r\n%s: %s\r\n\r\n"
            % (path, HOST, TOKEN_HEADER, token)).encode()


def http_complete(buf):
    """(bytes used, status, body) of the first whole response in buf, or None.
    Byte searches only: the client's cost per answer must stay well below
    the server's, or the benchmark measures the client."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    i = buf.find(b"\r\nContent-Length:", 0, end)
    if i < 0:
        i = buf[:end].lower().find(b"\r\ncontent-length:")
    n = int(buf[i + 17:buf.find(b"\r\n", i + 2)]) if i >= 0 else 0
    if len(buf) < end + 4 + n:
        return None
    return end + 4 + n, int(buf[9:12]), buf[end + 4:end + 4 + n]


def resp_cmd(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def resp_complete(buf, i=0):
    """End index of one whole RESP reply starting at i, or -1."""
    nl = buf.find(b"\r\n", i)
    if nl < 0:
        return -1
    t, rest = buf[i:i + 1], buf[i + 1:nl]
    if t in (b"+", b"-", b":"):
        return nl + 2
    if t == b"$":
        n = int(rest)
        return nl + 2 if n < 0 else (nl + 2 + n + 2 if len(buf) >= nl + 2 + n + 2 else -1)
    if t == b"*":
        n = int(rest)
        j = nl + 2
        for _ in range(max(n, 0)):
            j = resp_complete(buf, j)
            if j < 0:
                return -1
        return j
    raise ValueError("bad RESP reply: %r" % buf[i:i + 40])


# --------------------------------------------------------------------------
# Closed-loop load: `conns` connections, each with one request in flight.

def closed_loop(port, conns, rounds, request, complete):
    """Sends `request` `rounds` times in all; complete(buf) returns the bytes
    of one whole answer at the start of buf (or 0) and raises on a bad one.
    Returns the elapsed seconds."""
    sel = selectors.DefaultSelector()
    socks = []
    for _ in range(conns):
        s = socket.create_connection((HOST, port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        socks.append(s)
    sent = done = 0
    bufs = {}
    t0 = time.perf_counter()
    for s in socks:
        if sent < rounds:
            s.sendall(request)  # small enough for an empty socket buffer
            sent += 1
            bufs[s] = b""
            sel.register(s, selectors.EVENT_READ)
    while done < rounds:
        for key, _ in sel.select(30):
            s = key.fileobj
            data = s.recv(65536)
            if not data:
                raise RuntimeError("server closed a connection")
            buf = bufs[s] + data
            while True:
                n = complete(buf)
                if not n:
                    break
                buf = buf[n:]
                done += 1
                if sent < rounds:
                    s.setblocking(True)
                    s.sendall(request)
                    s.setblocking(False)
                    sent += 1
            bufs[s] = buf
    dt = time.perf_counter() - t0
    for s in socks:
        sel.unregister(s)
        s.close()
    return dt


def bus_complete(buf):
    r = http_complete(buf)
    if r is None:
        return 0
    if r[1] != 200:
        raise RuntimeError("bus answered %d: %r" % (r[1], r[2][:200]))
    return r[0]


def redis_complete_n(n):
    def complete(buf):
        j = 0
        for _ in range(n):
            j = resp_complete(buf, j)
            if j < 0:
                return 0
        if buf[:1] == b"-":
            raise RuntimeError("redis: %r" % buf[:200])
        return j
    return complete


def bus_publish_rate(port, token, total, batch, conns):
    msgs = [{"subject": "bench.orders", "payload": dict(PAYLOAD, id=i)} for i in range(batch)]
    body = json.dumps(msgs if batch > 1 else msgs[0]).encode()
    rounds = total // batch
    dt = closed_loop(port, conns, rounds, http_post("/publish", body, token), bus_complete)
    return rounds * batch / dt


def redis_publish_rate(port, total, batch, conns):
    data = json.dumps(PAYLOAD).encode()
    one = resp_cmd("XADD", "bench:orders", "*", "payload", data)
    rounds = total // batch
    dt = closed_loop(port, conns, rounds, one * batch, redis_complete_n(batch))
    return rounds * batch / dt


# --------------------------------------------------------------------------
# The same publishes from C clients (wrk, redis-benchmark), when installed:
# the Python client spends more per HTTP request than per RESP command, so
# at one message per request it holds the bus back more than Redis.

def wrk_publish_rate(port, token, batch, conns, seconds, tmp):
    msgs = [{"subject": "bench.orders", "payload": dict(PAYLOAD, id=i)} for i in range(batch)]
    body = json.dumps(msgs if batch > 1 else msgs[0])
    script = os.path.join(tmp, "publish-%d.lua" % batch)
    with open(script, "w") as f:
        f.write('wrk.method = "POST"\nwrk.body = %s\n'
                'wrk.headers["Content-Type"] = "application/json"\n'
                'wrk.headers["%s"] = "%s"\n' % (json.dumps(body), TOKEN_HEADER, token))
    out = subprocess.run(["wrk", "-t1", "-c%d" % conns, "-d%ds" % seconds, "-s", script,
                          "http://%s:%d/publish" % (HOST, port)],
                         capture_output=True, text=True, timeout=seconds + 60).stdout
    if "Non-2xx" in out or "Requests/sec" not in out:
        raise RuntimeError("wrk: %s" % out)
    rps = float(out.split("Requests/sec:")[1].split()[0])
    return rps * batch


def redis_benchmark_rate(port, batch, conns, requests):
    out = subprocess.run(["redis-benchmark", "-h", HOST, "-p", str(port), "-c", str(conns),
                          "-n", str(requests), "-P", str(batch), "--csv",
                          "XADD", "bench:c", "*", "payload", json.dumps(PAYLOAD)],
                         capture_output=True, text=True, timeout=600).stdout
    row = [line for line in out.splitlines() if line.startswith('"XADD')]
    if not row:
        raise RuntimeError("redis-benchmark: %s" % out)
    # "test","rps","avg_latency_ms", then five more latency columns; the
    # test name (the command line) may itself hold commas.
    return float(row[-1].rsplit(",", 7)[1].strip('"'))


# --------------------------------------------------------------------------
# Latency: one message at a time, publish -> waiting consumer.

class Blocking:
    def __init__(self, port):
        self.s = socket.create_connection((HOST, port), timeout=30)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def until(self, complete):
        while True:
            n = complete(self.buf)
            if n:
                out, self.buf = self.buf[:n], self.buf[n:]
                return out
            data = self.s.recv(1 << 16)
            if not data:
                raise RuntimeError("connection closed")
            self.buf += data

    def close(self):
        self.s.close()


def sse_chunk_after(marker):
    """complete() for the first chunk of an SSE stream holding `marker`:
    the bus writes each batch of events as one chunk ending "\\n\\n\\r\\n"."""
    def complete(buf):
        i = buf.find(marker)
        j = buf.find(b"\n\n\r\n", i) if i >= 0 else -1
        return j + 4 if j >= 0 else 0
    return complete


def bus_latency_sse(port, token, samples):
    sub = Blocking(port)
    sub.s.sendall(http_get("/subscribe?subject=lat.sse", token))
    sub.until(sse_chunk_after(b": subscribed"))
    pub = Blocking(port)
    req = http_post("/publish", json.dumps({"subject": "lat.sse", "payload": PAYLOAD}).encode(),
                    token)
    out = []
    for _ in range(samples):
        t0 = time.perf_counter()
        pub.s.sendall(req)
        sub.until(sse_chunk_after(b"\ndata: "))
        out.append(time.perf_counter() - t0)
        pub.until(bus_complete)
    sub.close()
    pub.close()
    return out


def bus_latency_poll(port, token, samples):
    c = Blocking(port)
    group = "lat%d" % next(RUN)
    c.s.sendall(http_get("/groups/%s/poll?subject=lat.poll&from=latest" % group, token))
    c.until(bus_complete)
    pub = Blocking(port)
    req = http_post("/publish", json.dumps({"subject": "lat.poll", "payload": PAYLOAD}).encode(),
                    token)
    poll = http_get("/groups/%s/poll?max=1&wait_ms=10000" % group, token)
    out = []
    for _ in range(samples):
        c.s.sendall(poll)
        time.sleep(0.002)  # let the poll park
        t0 = time.perf_counter()
        pub.s.sendall(req)
        r = http_complete(c.until(bus_complete))
        out.append(time.perf_counter() - t0)
        receipt = json.loads(r[2])["messages"][0]["receipt"]
        c.s.sendall(http_post("/groups/%s/ack" % group,
                              json.dumps({"receipts": [receipt]}).encode(), token))
        c.until(bus_complete)
        pub.until(bus_complete)
    c.close()
    pub.close()
    return out


def redis_latency(port, samples):
    c = Blocking(port)
    one = redis_complete_n(1)
    stream = "lat%d" % next(RUN)
    c.s.sendall(resp_cmd("XGROUP", "CREATE", stream, "g", "$", "MKSTREAM"))
    c.until(one)
    pub = Blocking(port)
    add = resp_cmd("XADD", stream, "*", "payload", json.dumps(PAYLOAD))
    read = resp_cmd("XREADGROUP", "GROUP", "g", "c1", "COUNT", "1", "BLOCK", "0",
                    "STREAMS", stream, ">")
    out = []
    for _ in range(samples):
        c.s.sendall(read)
        time.sleep(0.002)
        t0 = time.perf_counter()
        pub.s.sendall(add)
        reply = c.until(one)
        out.append(time.perf_counter() - t0)
        # *1 *2 $N STREAM *1 *2 $N ID ...: the id is the first bulk after the stream.
        parts = reply.split(b"\r\n")
        msg_id = parts[parts.index(stream.encode()) + 4]
        c.s.sendall(resp_cmd("XACK", stream, "g", msg_id))
        c.until(one)
        pub.until(one)
    c.close()
    pub.close()
    return out


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def fsync_ms(directory, n=50):
    """Median time of one 4 KiB write + fsync in `directory`: the disk the
    durable servers wait for, measured beside them (it varies on shared VMs)."""
    path = os.path.join(directory, "fsync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    ts = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            os.write(fd, b"x" * 4096)
            os.fsync(fd)
            ts.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        os.unlink(path)
    return statistics.median(ts) * 1e3


def bus_stats(port, token):
    c = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        c.request("GET", "/stats", headers={TOKEN_HEADER: token})
        return json.loads(c.getresponse().read())
    finally:
        c.close()


SERVERS = ("bus", "redis", "redis-aof")
KINDS = ("batched", "single", "batched-c", "single-c")


def run_rounds(a, bus_port, token, redis_ports, tmp):
    """Every measurement `a.rounds` times, the servers' order rotated each
    round, so a slow patch of disk or CPU does not land on one server only."""
    thr = {(s, k): [] for s in SERVERS for k in KINDS}
    c_clients = a.c_clients and shutil.which("wrk") and shutil.which("redis-benchmark")
    lat = {s: [] for s in ("bus SSE", "bus group poll", "redis", "redis-aof")}
    fs = []
    per_round = max(1, a.samples // a.rounds)
    for r in range(a.rounds):
        order = SERVERS[r % 3:] + SERVERS[:r % 3]
        fs.append(fsync_ms(tmp))
        for srv in order:
            log("round %d/%d: %s" % (r + 1, a.rounds, srv))
            if srv == "bus":
                thr[srv, "batched"].append(bus_publish_rate(bus_port, token, a.messages,
                                                            a.batch, a.conns))
                thr[srv, "single"].append(bus_publish_rate(bus_port, token, a.singles, 1,
                                                           a.single_conns))
                if c_clients:
                    thr[srv, "batched-c"].append(wrk_publish_rate(
                        bus_port, token, a.batch, a.conns, a.c_seconds, tmp))
                    thr[srv, "single-c"].append(wrk_publish_rate(
                        bus_port, token, 1, a.single_conns, a.c_seconds, tmp))
                lat["bus SSE"] += bus_latency_sse(bus_port, token, per_round)
                lat["bus group poll"] += bus_latency_poll(bus_port, token, per_round)
            else:
                port = redis_ports[srv]
                thr[srv, "batched"].append(redis_publish_rate(port, a.messages, a.batch,
                                                              a.conns))
                thr[srv, "single"].append(redis_publish_rate(port, a.singles, 1,
                                                             a.single_conns))
                if c_clients:
                    thr[srv, "batched-c"].append(redis_benchmark_rate(
                        port, a.batch, a.conns, a.messages))
                    thr[srv, "single-c"].append(redis_benchmark_rate(
                        port, 1, a.single_conns, a.singles * 2))
                lat[srv] += redis_latency(port, per_round)
    return thr, lat, fs


def report(a, thr, lat, fs, stats):
    med = statistics.median
    version = subprocess.run(["redis-server", "--version"], capture_output=True,
                             text=True).stdout.split()[2].split("=")[1]
    out = ["Grace message bus vs Redis %s Streams: loopback, %d CPUs, one Python client,"
           % (version, os.cpu_count()),
           "medians of %d interleaved rounds; data in %s, where an fsync of 4 KiB takes "
           "%.2f ms (median; %.2f-%.2f over the rounds)"
           % (a.rounds, a.dir or tempfile.gettempdir(), med(fs), min(fs), max(fs)),
           "redis = no persistence; redis-aof = appendonly yes, appendfsync always "
           "(durable before the reply, like the bus)", ""]
    w = out.append
    w("publish throughput, msgs/s        %10s %10s %10s   %9s %13s"
      % ("bus", "redis", "redis-aof", "bus/redis", "bus/redis-aof"))
    for kind, what in (("batched", "batched: %d per request, %d conns" % (a.batch, a.conns)),
                       ("single", "single: %d conns" % a.single_conns),
                       ("batched-c", "batched, C clients (wrk, r-bench)"),
                       ("single-c", "single, C clients (wrk, r-bench)")):
        if not thr["bus", kind]:
            continue
        b, r, d = (med(thr[s, kind]) for s in SERVERS)
        w("  %-31s %10.0f %10.0f %10.0f   %9.2f %13.2f" % (what, b, r, d, b / r, b / d))
        w("  %-31s %10s %10s %10s" % ("  (min-max)", *("%.0f-%.0f" % (min(thr[s, kind]),
                                                                     max(thr[s, kind]))
                                                        for s in SERVERS)))
    w("")
    w("publish-to-delivery latency, ms   %8s %8s %8s   (%d samples each, one in flight)"
      % ("p50", "p99", "mean", len(lat["redis"])))
    for name, xs in lat.items():
        w("  %-31s %8.3f %8.3f %8.3f" % (name, pct(xs, 50) * 1e3, pct(xs, 99) * 1e3,
                                         statistics.mean(xs) * 1e3))
    p50 = {k: pct(v, 50) for k, v in lat.items()}
    w("  p50 ratios: bus SSE/redis %.2f, bus SSE/redis-aof %.2f, bus group poll/redis %.2f, "
      "bus group poll/redis-aof %.2f" % (p50["bus SSE"] / p50["redis"],
                                          p50["bus SSE"] / p50["redis-aof"],
                                          p50["bus group poll"] / p50["redis"],
                                          p50["bus group poll"] / p50["redis-aof"]))
    w("")
    w("bus group commit: %d messages in %d commits (largest %d)"
      % (stats["published"], stats["batches"], stats["batch_max"]))
    return "\n".join(out)


# --------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--grace", default=os.path.join(REPO, "build", "grace"))
    ap.add_argument("--messages", type=int, default=100000, help="batched publishes per round")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--singles", type=int, default=10000, help="single publishes per round")
    ap.add_argument("--single-conns", type=int, default=32)
    ap.add_argument("--samples", type=int, default=1500, help="latency samples in all")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-c-clients", dest="c_clients", action="store_false",
                    help="skip the wrk / redis-benchmark throughput rows")
    ap.add_argument("--c-seconds", type=int, default=3, help="length of each wrk run")
    ap.add_argument("--port-offset", type=int, default=None)
    ap.add_argument("--dir", default=None,
                    help="where the data lives (default: the system's temp dir; "
                         "/dev/shm takes the disk out of the comparison)")
    ap.add_argument("--keep-tmp", action="store_true")
    a = ap.parse_args()
    a.grace = os.path.abspath(a.grace)  # the servers run in the temp dir
    if not shutil.which("redis-server"):
        sys.exit("redis-server not found (Debian: apt-get install redis-server)")
    if not os.access(a.grace, os.X_OK):
        sys.exit("no grace binary at %s (ninja -C build)" % a.grace)
    offset = a.port_offset
    if offset is None:
        offset = next((o for o in OFFSETS if port_free(8000 + o) and port_free(BUS_PORT + o)),
                      None)
        if offset is None:
            sys.exit("no free port offset in %s" % OFFSETS)

    tmp = tempfile.mkdtemp(prefix="grace-bus-bench-", dir=a.dir)
    srv = Servers(tmp)
    ok = False

    def interrupted(*_):
        raise KeyboardInterrupt()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, interrupted)
    try:
        log("grace on offset %d, two redis-servers; in %s" % (offset, tmp))
        bus_port, token = start_grace(srv, a.grace, offset)
        redis_ports = {"redis": start_redis(srv, "redis", False),
                       "redis-aof": start_redis(srv, "redis-aof", True)}
        thr, lat, fs = run_rounds(a, bus_port, token, redis_ports, tmp)
        print(report(a, thr, lat, fs, bus_stats(bus_port, token)))
        ok = True
    except KeyboardInterrupt:
        log("interrupted")
    finally:
        srv.stop_all()
        if ok and not a.keep_tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log("kept " + tmp)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
