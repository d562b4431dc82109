#!/usr/bin/env python3
"""Memory tables benchmark: insert and query rates on 100,000 rows.

Starts its own `grace serve` (one light kernel, a port offset of its own,
a temporary data directory), creates an admin with `grace user add`, logs
in, and then, through the API port (8000 + offset) with keep-alive
connections:

  1. inserts ROWS rows into a table with declared columns (3 indexed:
     n, cat, score; unindexed: a boolean and a number declared
     index=false; 2 full-text columns) in batches of 1000
     (arrays, one POST each), and the same rows into a table without
     declared columns (no indexes, no full-text), for comparison;
  2. measures query rates on the first table for
       - equality on an indexed column     where={"cat":"c42"}          limit=100
       - equality on an unindexed column   where={"u":123}              limit=100
       - range on an indexed column, ordered, limited
                                           where={"score":{"gte":x,"lt":x+5}} order=-score limit=20
       - full-text q, best first           q=WORD                        limit=20
       - full-text q, newest first         q=WORD order=-_id             limit=20
       - a cursor walk of 10 pages of 100 by -score
     each on one connection, sequentially (latency and rate), and the
     indexed equality also on 4 connections at once.

Usage: python3 bench/memory_bench.py [--grace build/grace] [--rows 100000]
Standard library only. Prints a report to stdout, progress to stderr."""

import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "blackbox"))

PASSWORD = "bench-password-123"
BATCH = 1000


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Client:
    """One keep-alive connection with the bearer token."""

    def __init__(self, port, token):
        self.port = port
        self.token = token
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, method, path, body=None):
        headers = {"Authorization": "Bearer " + self.token}
        data = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        for attempt in (0, 1):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                resp = self.conn.getresponse()
                raw = resp.read()
                break
            except (http.client.HTTPException, ConnectionError):
                if attempt:
                    raise
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        if resp.status >= 300:
            raise RuntimeError("%s %s: %s %s" % (method, path, resp.status, raw[:300]))
        return json.loads(raw)


def q(obj):
    return urllib.parse.quote(obj if isinstance(obj, str) else json.dumps(obj), safe="")


def make_vocab(rng, n):
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = set()
    while len(words) < n:
        words.add("".join(rng.choice(letters) for _ in range(rng.randint(3, 9))))
    return sorted(words)


def make_rows(rng, vocab, n):
    # Word frequencies roughly Zipfian, as in text.
    weights = [1.0 / (i + 1) for i in range(len(vocab))]
    rows = []
    for i in range(n):
        title = " ".join(rng.choices(vocab, weights, k=rng.randint(3, 6)))
        body = " ".join(rng.choices(vocab, weights, k=rng.randint(20, 40)))
        rows.append({"n": i, "cat": "c%d" % rng.randrange(100),
                     "score": round(rng.uniform(0, 1000), 3), "flag": rng.random() < 0.5,
                     "u": rng.randrange(1000), "title": title, "body": body})
    return rows


def timed(fn, n=None, seconds=None):
    """Runs fn() n times (or for `seconds`); returns (rate/s, p50 ms, p99 ms, count)."""
    lat = []
    t0 = time.perf_counter()
    while True:
        t = time.perf_counter()
        fn()
        lat.append(time.perf_counter() - t)
        if n is not None and len(lat) >= n:
            break
        if seconds is not None and time.perf_counter() - t0 >= seconds:
            break
    total = time.perf_counter() - t0
    lat.sort()
    return (len(lat) / total, statistics.median(lat) * 1e3,
            lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3, len(lat))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--grace", default=os.environ.get("GRACE_BIN", "build/grace"))
    ap.add_argument("--rows", type=int, default=100000)
    ap.add_argument("--seconds", type=float, default=5.0, help="per query kind")
    ap.add_argument("--seed", type=int, default=42)
    a = ap.parse_args()
    os.environ["GRACE_BIN"] = os.path.abspath(a.grace)
    import harness  # after GRACE_BIN is set

    rng = random.Random(a.seed)
    log("generating %d rows" % a.rows)
    vocab = make_vocab(rng, 5000)
    rows = make_rows(rng, vocab, a.rows)
    avg = sum(len(json.dumps(r, separators=(",", ":"))) for r in rows[:1000]) / 1000

    g = harness.GraceServer(kernels={"learning": {}}, autostart=False,
                            config={"grace": {"log_level": "warn"},
                                    "auth": {"argon2_mem_kib": 19456}})
    report = []
    try:
        p = subprocess.run([harness.GRACE_BIN, "user", "add", "bench", "--admin", "--config",
                            g.config_path, "--data-dir", g.data_dir],
                           input=(PASSWORD + "\n").encode(), capture_output=True)
        if p.returncode:
            raise RuntimeError("grace user add: %r" % p.stderr)
        g.start()
        st, _, out = harness.http_request(g.api_port, "POST", "/auth/login",
                                          {"username": "bench", "password": PASSWORD})
        token = out["token"]
        c = Client(g.api_port, token)
        c.call("POST", "/memory/tables", {"name": "bench", "columns": [
            {"name": "n", "type": "number"}, {"name": "cat", "type": "string"},
            {"name": "score", "type": "number"}, {"name": "flag", "type": "boolean"},
            {"name": "u", "type": "number", "index": False},
            {"name": "title", "type": "text"}, {"name": "body", "type": "text"}]})
        c.call("POST", "/memory/tables", {"name": "plain"})

        rates = {}
        for table in ("bench", "plain"):
            log("inserting %d rows into %s in batches of %d" % (a.rows, table, BATCH))
            batches = [rows[i:i + BATCH] for i in range(0, a.rows, BATCH)]
            bodies = [json.dumps(b, separators=(",", ":")).encode() for b in batches]
            t0 = time.perf_counter()
            for body in bodies:
                c.conn.request("POST", "/memory/tables/%s/rows" % table, body=body,
                               headers={"Authorization": "Bearer " + token,
                                        "Content-Type": "application/json"})
                resp = c.conn.getresponse()
                raw = resp.read()
                if resp.status != 201:
                    raise RuntimeError("insert: %s %s" % (resp.status, raw[:200]))
            rates[table] = a.rows / (time.perf_counter() - t0)
        info = c.call("GET", "/memory/tables/bench")
        assert info["rows"] == a.rows, info
        db = os.path.join(g.data_dir, "memory.db")
        size = sum(os.path.getsize(f) for f in (db, db + "-wal") if os.path.exists(f))

        report.append("memory tables benchmark: %d rows (%.0f bytes of JSON each), API on "
                      "127.0.0.1:%d (8000 + offset %d), keep-alive, %s CPUs"
                      % (a.rows, avg, g.api_port, g.offset, os.cpu_count()))
        report.append("")
        report.append("insert, batches of %d (one POST each, one connection)" % BATCH)
        report.append("  %-58s %9.0f rows/s" % ("declared: 3 indexed columns + full-text on 2 text columns",
                                               rates["bench"]))
        report.append("  %-58s %9.0f rows/s" % ("no declared columns (no index, no full-text)",
                                               rates["plain"]))
        report.append("  memory.db after both: %.1f MB" % (size / 1e6))
        report.append("")

        # Query words of middling frequency (ranked 50..500): common enough
        # to match thousands of rows, as real searches often do; and rare ones.
        # make_rows weighted vocab[i] by 1/(i+1).
        mid = vocab[50:500]
        rare = vocab[2000:5000]

        def eq_indexed():
            c.call("GET", "/memory/tables/bench/rows?limit=100&where=" +
                   q({"cat": "c%d" % rng.randrange(100)}))

        def eq_unindexed():
            c.call("GET", "/memory/tables/bench/rows?limit=100&where=" + q({"u": rng.randrange(1000)}))

        def range_order():
            x = rng.uniform(0, 995)
            out = c.call("GET", "/memory/tables/bench/rows?limit=20&order=-score&where=" +
                         q({"score": {"gte": x, "lt": x + 5}}))
            assert out["count"] > 0

        def fts_rank_mid():
            c.call("GET", "/memory/tables/bench/rows?limit=20&q=" + q(rng.choice(mid)))

        def fts_rank_rare():
            c.call("GET", "/memory/tables/bench/rows?limit=20&q=" + q(rng.choice(rare)))

        def fts_id_mid():
            c.call("GET", "/memory/tables/bench/rows?limit=20&order=-_id&q=" + q(rng.choice(mid)))

        def walk():
            cur = None
            for _ in range(10):
                path = "/memory/tables/bench/rows?limit=100&order=-score"
                if cur:
                    path += "&cursor=" + q(cur)
                cur = c.call("GET", path)["next_cursor"]

        # How many rows the typical queries match.
        n_eq = len(rows) / 100
        sample = mid[::45] + rare[::300]
        hits = {w: 0 for w in sample}
        for r in rows:
            words = set((r["title"] + " " + r["body"]).split())
            for w in sample:
                hits[w] += w in words
        n_mid = statistics.median(hits[w] for w in mid[::45])
        n_rare = statistics.median(hits[w] for w in rare[::300])
        kinds = [
            ("equality, indexed column (~%d matches), limit 100" % n_eq, eq_indexed),
            ("equality, unindexed column (~%d matches), limit 100" % (len(rows) / 1000),
             eq_unindexed),
            ("range on indexed column + order=-score, limit 20", range_order),
            ("full-text q, mid-frequency word, by rank, limit 20", fts_rank_mid),
            ("full-text q, mid-frequency word, order=-_id, limit 20", fts_id_mid),
            ("full-text q, rare word, by rank, limit 20", fts_rank_rare),
            ("cursor walk: 10 pages of 100 by -score (per walk)", walk),
        ]
        report.append("queries, one connection, sequential (%.0f s each)" % a.seconds)
        report.append("  %-58s %9s %8s %8s" % ("", "req/s", "p50 ms", "p99 ms"))
        for name, fn in kinds:
            log("query: " + name)
            fn()  # warm
            rate, p50, p99, _ = timed(fn, seconds=a.seconds)
            report.append("  %-58s %9.0f %8.2f %8.2f" % (name, rate, p50, p99))
        report.append("  (a mid-frequency word is in ~%d rows, a rare one in ~%d)" % (n_mid, n_rare))

        log("query: indexed equality, 4 connections")
        results = []

        def worker():
            cc = Client(g.api_port, token)
            r = random.Random()
            t_end = time.perf_counter() + a.seconds
            n = 0
            while time.perf_counter() < t_end:
                cc.call("GET", "/memory/tables/bench/rows?limit=100&where=" +
                        q({"cat": "c%d" % r.randrange(100)}))
                n += 1
            results.append(n)

        ths = [threading.Thread(target=worker) for _ in range(4)]
        t0 = time.perf_counter()
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        report.append("")
        report.append("  %-58s %9.0f req/s" % ("equality, indexed, limit 100, 4 connections at once",
                                              sum(results) / (time.perf_counter() - t0)))
    finally:
        g.close()
    print("\n".join(report))


if __name__ == "__main__":
    main()
