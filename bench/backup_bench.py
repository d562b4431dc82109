#!/usr/bin/env python3
"""Backup benchmark (issue 21): `grace backup` of a loaded data directory
while Grace serves, against `tar` of the same directory with Grace stopped,
in the same run: duration (median of --rounds) and archive size.

    python3 bench/backup_bench.py [--grace build/grace] [--docs 100000]
        [--entries 1000000] [--rows 100000] [--rounds 3]

Loads, through the API: --docs librarian documents (grace_bench.py's
Zipf corpus, through the NDJSON bulk route), --entries immutable-log entries (batches of 1000), --rows
memory rows (batches of 500). Then times `grace backup FILE --key-file F`
(the SQLite online copies, quick_check, SHA-256, sealing, the tar and its
transfer; what a scheduled backup does), once more with a passphrase
(which adds Argon2id's 64 MiB derivation), stops Grace, and times `tar cf`
of the data directory. The ratio is what a consistent, verified, sealed snapshot
costs over copying the files of a stopped Grace (which is not consistent
if Grace is running). Standard library only; everything it starts is
stopped by pid; the temporary directory is removed.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from grace_bench import KeepAlive, load_bulk, make_docs  # noqa: E402

HOST = "127.0.0.1"
OFFSET = int(os.environ.get("BENCH_PORT_OFFSET", "23720"))
PASSWORD = "bench admin password"
PASSPHRASE = "bench backup passphrase"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def post_all(port, headers, path, bodies, threads=4):
    errors = []

    def worker(chunk):
        c = KeepAlive(port, headers=headers)
        try:
            for b in chunk:
                st, data = c.request("POST", path, b)
                if st not in (200, 201):
                    errors.append((st, data[:200]))
                    return
        finally:
            c.close()
    ts = [threading.Thread(target=worker, args=(bodies[i::threads],)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise SystemExit(f"{path}: {errors[:3]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grace", default=os.path.join(os.path.dirname(HERE), "build", "grace"))
    ap.add_argument("--docs", type=int, default=int(os.environ.get("BENCH_DOCS", "100000")))
    ap.add_argument("--entries", type=int, default=1000000)
    ap.add_argument("--rows", type=int, default=100000)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    grace = os.path.abspath(a.grace)
    tmp = tempfile.mkdtemp(prefix="grace-backup-bench-")
    proc = None
    try:
        data = os.path.join(tmp, "data")
        ini = os.path.join(tmp, "grace.ini")
        with open(ini, "w") as f:
            f.write(f"[grace]\nport_offset = {OFFSET}\ndata_dir = {data}\n"
                    f"library_root = {tmp}\n[auth]\nargon2_mem_kib = 19456\n"
                    "[policy]\nauthorizer = table\n"
                    "[kernel.crypto]\n[kernel.immutable_log]\n[kernel.audit]\n"
                    "[kernel.librarian]\n[kernel.message_bus]\n")
        subprocess.run([grace, "user", "add", "admin", "--admin", "--config", ini],
                       input=PASSWORD + "\n", text=True, check=True, capture_output=True)
        port = 8000 + OFFSET
        proc = subprocess.Popen([grace, "serve", "--config", ini], stdout=subprocess.DEVNULL,
                                stderr=open(os.path.join(tmp, "serve.log"), "w"))
        c = KeepAlive(port)
        for _ in range(300):
            try:
                st, body = c.request("POST", "/auth/login", json.dumps(
                    {"username": "admin", "password": PASSWORD}).encode())
                if st == 200:
                    break
            except OSError:
                c.close()
            time.sleep(0.1)
        token = json.loads(body)["token"]
        c.close()
        auth = {"Authorization": "Bearer " + token}
        t0 = time.monotonic()
        log(f"loading {a.docs} documents")
        _, docs, _ = make_docs(a.docs, 5000, 1)
        # In NDJSON batches (POST /librarian/documents/_bulk): one document
        # a request is a commit each, which would take most of an hour.
        secs, errors, _ = load_bulk(port, docs, 1, auth)
        if errors:
            raise SystemExit(f"documents: {errors[:3]}")
        log(f"loading {a.entries} log entries")
        batches = [json.dumps([{"data": {"n": i + k, "what": "bench entry"}} for k in range(1000)]).encode()
                   for i in range(0, a.entries, 1000)]
        post_all(port, auth, "/kernels/immutable_log/entries", batches)
        log(f"loading {a.rows} memory rows")
        c = KeepAlive(port, headers=auth)
        c.request("POST", "/memory/tables", json.dumps(
            {"name": "bench", "columns": [{"name": "title", "type": "text"},
                                          {"name": "n", "type": "number"}]}).encode())
        c.close()
        rows = [json.dumps([{"title": f"row {i + k} of the benchmark", "n": i + k}
                            for k in range(500)]).encode() for i in range(0, a.rows, 500)]
        post_all(port, auth, "/memory/tables/bench/rows", rows)
        log(f"loaded in {time.monotonic() - t0:.0f} s")
        pass_file = os.path.join(tmp, "pass")
        with open(pass_file, "w") as f:
            f.write(PASSPHRASE + "\n")
        key_file = os.path.join(tmp, "key")
        with open(key_file, "w") as f:
            f.write(os.urandom(32).hex() + "\n")
        env = dict(os.environ, GRACE_TOKEN=token)
        backup_s, backup_bytes = [], 0
        for i in range(a.rounds):
            out = os.path.join(tmp, f"b{i}.tar")
            t = time.monotonic()
            subprocess.run([grace, "backup", out, "--key-file", key_file, "--config", ini],
                           env=env, check=True, capture_output=True)
            backup_s.append(time.monotonic() - t)
            backup_bytes = os.path.getsize(out)
            os.unlink(out)
        out = os.path.join(tmp, "p.tar")
        t = time.monotonic()
        subprocess.run([grace, "backup", out, "--passphrase-file", pass_file, "--config", ini],
                       env=env, check=True, capture_output=True)
        pass_s = time.monotonic() - t
        os.unlink(out)
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        proc = None
        tar_s, tar_bytes = [], 0
        for i in range(a.rounds):
            out = os.path.join(tmp, f"t{i}.tar")
            t = time.monotonic()
            subprocess.run(["tar", "cf", out, "-C", data, "."], check=True)
            tar_s.append(time.monotonic() - t)
            tar_bytes = os.path.getsize(out)
            os.unlink(out)
        b, t = statistics.median(backup_s), statistics.median(tar_s)
        print(f"Backup of {a.docs} documents, {a.entries} log entries, {a.rows} memory rows "
              f"(median of {a.rounds}):")
        print(f"  grace backup (serving)  {b:7.2f} s  {backup_bytes / 2**20:8.1f} MiB  "
              f"(key file; with a passphrase {pass_s:.2f} s)")
        print(f"  tar cf (Grace stopped)  {t:7.2f} s  {tar_bytes / 2**20:8.1f} MiB")
        print(f"  ratio grace / tar: time {b / t:.2f}, size {backup_bytes / tar_bytes:.2f}")
    finally:
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
