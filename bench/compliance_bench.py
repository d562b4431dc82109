#!/usr/bin/env python3
"""Compliance benchmark (issue 12): a full scan's duration, Grace's
compliance kernel against a bare Python walk of the same reads and calls,
in the same run.

    python3 bench/compliance_bench.py [--keys 50] [--entries 20000] [--rounds 5]

Starts `grace serve` with the compliance kernel and the kernels its default
profile asks (immutable_log, crypto, trust) plus the bus and alerts (the
harness, a temporary directory, a port offset of its own), makes --keys
crypto keys and --entries immutable-log entries (so /verify has work), then
times `POST /scans` of the default profile (every control: file modes,
settings, listeners, users, the log's /verify, every key's age, the trust
bundle; the waivers, the store, the bus, the alerts and the log append
included) over a keep-alive connection to the kernel. The peer does the
same reads in Python with no HTTP server of its own: glob and lstat of the
same files with SHA-256 of the evidence, /proc/net/tcp{,6}, the users table
read-only, and the same calls to the same kernels (GET /verify, /keys and
each /keys/NAME, /bundle, POST /entries). The ratio (Grace / peer) is what
the kernel adds over doing the checks by hand; each figure is the median of
--rounds. Everything started is stopped by pid.
"""

import argparse
import glob
import hashlib
import json
import os
import sqlite3
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "blackbox"))
from grace_bench import KeepAlive  # noqa: E402
from harness import GraceServer  # noqa: E402


def peer_scan(g, conns, profile):
    """The default profile's checks by hand; returns the results."""
    out = []
    for c in profile["controls"]:
        ch = c["check"]
        k = ch["kind"]
        if k == "file_mode":
            pat = g.data_dir if ch["path"] == "." else os.path.join(g.data_dir, ch["path"])
            lines = []
            for p in sorted(glob.glob(pat)):
                st = os.lstat(p)
                lines.append("%s mode=%04o uid=%d" % (p, st.st_mode & 0o7777, st.st_uid))
            out.append(hashlib.sha256("\n".join(lines).encode()).hexdigest())
        elif k == "listeners_loopback":
            data = b""
            for f in ("/proc/net/tcp", "/proc/net/tcp6"):
                with open(f, "rb") as fh:
                    data += fh.read()
            out.append(hashlib.sha256(data).hexdigest())
        elif k == "admin_users":
            db = sqlite3.connect("file:%s/grace.db?mode=ro" % g.data_dir, uri=True)
            names = [r[0] for r in db.execute("SELECT name FROM users WHERE role = 'admin'")]
            db.close()
            out.append(hashlib.sha256("\n".join(names).encode()).hexdigest())
        elif k == "log_verify":
            st, body = conns["immutable_log"].request("GET", "/verify")
            assert st == 200 and json.loads(body)["ok"], body
            out.append(hashlib.sha256(body).hexdigest())
        elif k == "key_age":
            st, body = conns["crypto"].request("GET", "/keys")
            for key in json.loads(body)["keys"]:
                st, one = conns["crypto"].request("GET", "/keys/" + key["name"])
                assert st == 200, one
            out.append(hashlib.sha256(body).hexdigest())
        elif k == "kernel_identity":
            st, body = conns["trust"].request("GET", "/bundle")
            out.append(hashlib.sha256(body).hexdigest())
        else:  # settings: read from the configuration already in memory
            out.append(k)
    rec = json.dumps({"data": {"results": out}}).encode()
    st, body = conns["immutable_log"].request("POST", "/entries", rec)
    assert st == 201, body
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=50)
    ap.add_argument("--entries", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    g = GraceServer(kernels={"compliance": {}, "immutable_log": {}, "crypto": {}, "trust": {},
                             "message_bus": {}, "alerts": {}},
                    config={"compliance": {"scan_interval_s": 0}})
    try:
        g.start()
        conns = {n: KeepAlive(g.kernel_port(n), headers=g.token_headers())
                 for n in ("compliance", "immutable_log", "crypto", "trust")}
        for i in range(a.keys):
            st, body = conns["crypto"].request(
                "POST", "/keys", json.dumps({"name": "bench-%d" % i, "type": "ed25519"}).encode())
            assert st == 201, body
        batch = [{"data": {"n": i}} for i in range(1000)]
        for _ in range(a.entries // 1000):
            st, body = conns["immutable_log"].request("POST", "/entries",
                                                      json.dumps(batch).encode())
            assert st == 201, body
        st, body = conns["compliance"].request("GET", "/profiles/default")
        profile = json.loads(body)
        grace, peer = [], []
        for _ in range(a.rounds):
            t = time.perf_counter()
            st, body = conns["compliance"].request("POST", "/scans", b"{}")
            grace.append(time.perf_counter() - t)
            assert st == 201, body
            scan = json.loads(body)
            assert isinstance(scan["log_index"], int), scan
            t = time.perf_counter()
            peer_scan(g, conns, profile)
            peer.append(time.perf_counter() - t)
        gm, pm = statistics.median(grace), statistics.median(peer)
        print("Compliance scan of the default profile (%d controls), %d keys, %d log entries, "
              "median of %d" % (len(profile["controls"]), a.keys, a.entries, a.rounds))
        print("  grace (POST /scans, stored, on the bus, in the log): %7.1f ms" % (gm * 1e3))
        print("  python peer (same reads and calls, by hand):       %7.1f ms" % (pm * 1e3))
        print("  grace/peer %.2f" % (gm / pm))
        print("  summary: %s" % json.dumps(scan["summary"], sort_keys=True))
    finally:
        g.close()


if __name__ == "__main__":
    main()
