#!/usr/bin/env python3
"""Bulk ingest: the librarian kernel alone, POST /documents/_bulk.

Posts N documents of the search bench's corpus (grace_bench.make_docs,
same seed) in NDJSON requests of at most --request-bytes (1 MiB, the
default max_body_bytes) to `grace kernel librarian`, started alone on a
fresh data directory, one client, and reports:

  wall clock   documents/s, and the kernel's CPU-seconds per document
               (utime + stime of the process, /proc/PID/stat), with
               Xapian's indexing rate of the same documents in the same
               run as the peer when python3-xapian is installed (as
               grace_bench.py indexes it: one document at a time, in
               process, one commit at the end)
  --callgrind  instructions per document under valgrind's callgrind:
               a run with the load minus a run without it (start-up and
               shutdown cancel out), divided by N. Instructions do not
               depend on the machine's load, so two builds compare on a
               busy machine where their wall clocks do not.
  --search-callgrind
               instructions per search, by class of word (common: ranks
               1-20, medium 200-1000, rare 3000-5000, as grace_bench.py's
               classes), under callgrind: the N documents are loaded
               first (without valgrind), then per class a run of a
               warm-up (10 words of each class), the counters zeroed
               (callgrind_control -z), --queries one-word top-10
               searches (GET /search, HTTP and JSON included, one
               client) and a dump (callgrind_control -d): its total
               divided by --queries.

  --through-api
               the wall clock through grace serve instead: the same
               requests to POST :8000/librarian/documents/_bulk as the
               first admin, the librarian the only kernel, from
               --clients connections; the bulk route takes 16 MiB as
               shipped, and both body limits (the API's [limits] and the
               kernel's) are raised only for requests past that;
               reports documents/s and the CPU a document of the
               librarian and of grace serve
  --request-docs
               requests of N documents rather than of at most
               --request-bytes: OpenSearch Benchmark's way (its tracks'
               bulk_size, 5,000 by default, from 8 clients)

Usage: bench/ingest_bench.py [--build build] [--docs 20000] [--callgrind]
       [--search-callgrind] [--queries 200] [--port-offset 24200]
       [--request-bytes 1048576 | --request-docs 5000] [--clients 1]
       [--through-api] [--config grace.ini]
Starts and stops everything it uses, by pid; leaves nothing behind.
"""
import argparse
import json
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from grace_bench import (HOST, INTERNAL_TOKEN_HEADER, KeepAlive, make_docs,  # noqa: E402
                         ndjson_batches, ndjson_requests)

LIB_PORT = 8130  # the librarian's port before the offset


def wait_http(url, proc, secs=900):
    end = time.time() + secs
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"the kernel exited ({proc.returncode}) before answering {url}")
        try:
            urllib.request.urlopen(url, timeout=5).read()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} never answered")


def cpu_secs(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def io_counts(pid):
    """The process's bytes read and written by system call (rchar, wchar) and
    the calls (syscr, syscw), /proc/PID/io: what SQLite asked the kernel for,
    which callgrind does not count and the machine's load does not move."""
    with open(f"/proc/{pid}/io") as f:
        return {k: int(v) for k, v in (line.split(": ") for line in f)}


# --owner: the headers the gateway sends for a user's request, so that the
# documents have an owner (and the quota's usage counters run).
OWNER_HEADERS = {}


def post_all(port, token, batches):
    c = KeepAlive(port, timeout=600, headers={INTERNAL_TOKEN_HEADER: token, **OWNER_HEADERS})
    created = 0
    try:
        for body in batches:
            st, data = c.request("POST", "/documents/_bulk", body, ctype=b"application/x-ndjson")
            j = json.loads(data) if st == 200 else {}
            if st != 200 or j.get("failed"):
                raise RuntimeError(f"bulk: {st} {data[:300]!r}")
            created += j["created"]
    finally:
        c.close()
    return created


def start_kernel(a, tmp, tag, prefix, data=None):
    if data is None:
        data = os.path.join(tmp, tag)
        os.makedirs(data)
        token = secrets.token_hex(32)
        path = os.path.join(data, "internal.token")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(token)
    else:
        with open(os.path.join(data, "internal.token")) as f:
            token = f.read().strip()
    grace = os.path.abspath(os.path.join(a.build, "grace"))
    err = open(os.path.join(tmp, tag + ".log"), "w")
    p = subprocess.Popen(prefix + [grace, "kernel", "librarian", "--port-offset",
                                   str(a.port_offset), "--data-dir", data]
                         + (["--config", os.path.abspath(a.config)] if a.config else []),
                         stdout=subprocess.DEVNULL, stderr=err, cwd=tmp)
    port = LIB_PORT + a.port_offset
    wait_http(f"http://{HOST}:{port}/health", p)
    return p, port, token


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=300)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def collected(log):
    with open(log) as f:
        m = re.search(r"Collected : (\d+)", f.read())
    if not m:
        raise RuntimeError(f"no callgrind total in {log}")
    return int(m.group(1))


def run_callgrind(a, tmp, batches, n):
    totals = []
    apart = ["--separate-threads=yes"] if a.threads else []
    for tag, load in (("empty", []), ("loaded", batches)):
        out = os.path.join(tmp, tag + ".cg")
        p, port, token = start_kernel(a, tmp, tag, ["valgrind", "--tool=callgrind",
                                                    f"--callgrind-out-file={out}"] + apart)
        try:
            if load:
                post_all(port, token, load)
        finally:
            stop(p)
        totals.append(collected(os.path.join(tmp, tag + ".log")))
    per = (totals[1] - totals[0]) / n
    print(f"Instructions per document (callgrind, kernel alone, {n} documents in {len(batches)}"
          f" requests of <= {a.request_bytes} bytes): {per:,.0f}")
    if a.threads:
        # One file a thread: the writer is the pool thread that ran the most;
        # the threads a request starts (collecting, preparing lines) are
        # summed. The empty run's threads are not subtracted (its loop and
        # writer ran start-up only).
        import glob
        per_thread = sorted(((callgrind_total(f), f) for f in glob.glob(
            os.path.join(tmp, "loaded.cg*")) if not f.endswith(".cg")), reverse=True)
        print("Instructions per document by thread: writer (the busiest) "
              f"{per_thread[0][0] / n:,.0f}; the other threads together "
              f"{sum(t for t, _ in per_thread[1:]) / n:,.0f}")
        if a.keep_cg:
            # The writer's own file: with --separate-threads loaded.cg is empty.
            shutil.copy(per_thread[0][1], a.keep_cg)
            return
    if a.keep_cg:
        shutil.copy(os.path.join(tmp, "loaded.cg"), a.keep_cg)


SEARCH_CLASSES = (("common", 1, 20), ("medium", 200, 1000), ("rare", 3000, 5000))


def search_words(vocab, seed, n):
    """n words of each class, drawn as grace_bench.py draws its queries."""
    rng = random.Random(seed + 1)
    return {cls: [vocab[rng.randint(lo, min(hi, len(vocab))) - 1] for _ in range(n)]
            for cls, lo, hi in SEARCH_CLASSES}


def search_all(port, token, words):
    c = KeepAlive(port, timeout=600, headers={INTERNAL_TOKEN_HEADER: token})
    try:
        for w in words:
            st, data = c.request("GET", f"/search?query={w}&limit=10")
            if st != 200 or json.loads(data)["plan"] != "index":
                raise RuntimeError(f"search {w}: {st} {data[:300]!r}")
    finally:
        c.close()


def callgrind_total(path):
    """The instructions a callgrind dump counted (its "summary:" line)."""
    with open(path) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise RuntimeError(f"no callgrind summary in {path}")


def run_search_callgrind(a, tmp, vocab, batches):
    p, port, token = start_kernel(a, tmp, "corpus", [])
    try:
        post_all(port, token, batches)
    finally:
        stop(p)
    data = os.path.join(tmp, "corpus")
    words = search_words(vocab, a.seed, a.queries)
    # The warm-up opens both workers' connections and fills their caches;
    # the counters are zeroed after it (callgrind_control), so neither the
    # start-up nor its quick_check, whose length is a time budget and so
    # varies from run to run under valgrind, is counted.
    warm = [w for cls in words for w in words[cls][:10]]
    totals = {}
    for tag in words:
        out = os.path.join(tmp, tag + ".cg")
        p, port, token = start_kernel(a, tmp, tag, ["valgrind", "--tool=callgrind",
                                                    f"--callgrind-out-file={out}"], data)
        try:
            search_all(port, token, warm)
            # The start-up's merge of what was left pending runs once the
            # kernel has been idle LIB_IX_MERGE_IDLE_MS (1 s): past it,
            # so that it is not counted as searching.
            time.sleep(5)
            subprocess.run(["callgrind_control", "-z", str(p.pid)], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            search_all(port, token, words[tag])
            subprocess.run(["callgrind_control", "-d", str(p.pid)], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        finally:
            stop(p)
        dumps = sorted(f for f in os.listdir(tmp) if f.startswith(tag + ".cg."))
        if not dumps:
            raise RuntimeError(f"no callgrind dump for {tag} in {tmp}")
        dump = os.path.join(tmp, dumps[0])
        totals[tag] = callgrind_total(dump)
        if a.keep_cg:
            shutil.copy(dump, f"{a.keep_cg}.{tag}")
    print(f"Instructions per search (callgrind, kernel alone, {a.docs} documents, one-word"
          f" top 10, {a.queries} searches a class after a warm-up, HTTP and JSON included):")
    for cls in words:
        print(f"  {cls:<6} {totals[cls] / a.queries:>12,.0f}")


def xapian_rate(tmp, bodies):
    try:
        import xapian  # noqa: F401
    except ImportError:
        return None
    from grace_bench import xapian_index
    return len(bodies) / xapian_index(os.path.join(tmp, "xapian"), bodies)


def run_wall(a, tmp, bodies, batches, n):
    p, port, token = start_kernel(a, tmp, "wall", [])
    try:
        c0, io0, t0 = cpu_secs(p.pid), io_counts(p.pid), time.perf_counter()
        post_all(port, token, batches)
        dt, cpu = time.perf_counter() - t0, cpu_secs(p.pid) - c0
        io1 = io_counts(p.pid)
    finally:
        stop(p)
    x = xapian_rate(tmp, bodies)
    print(f"Bulk ingest, kernel alone, 1 client: {n} documents in {len(batches)} requests of"
          f" <= {a.request_bytes} bytes: {dt:.2f} s = {n / dt:,.0f} docs/s;"
          f" kernel CPU {cpu:.2f} s = {cpu / n * 1e3:.3f} ms a document"
          f" ({n / cpu:,.0f} docs per CPU-second)")
    d = {k: io1[k] - io0[k] for k in ("rchar", "wchar", "syscr", "syscw")}
    print(f"System calls a document: {d['syscr'] / n:.2f} reads of {d['rchar'] / n:,.0f} bytes,"
          f" {d['syscw'] / n:.2f} writes of {d['wchar'] / n:,.0f} bytes"
          f" (the HTTP requests' included)")
    if x:
        print(f"Xapian (in process, one writer, same documents, same run): {x:,.0f} docs/s;"
              f" ratio librarian / Xapian {n / dt / x:.2f}")
    else:
        print("Xapian: python3-xapian is not installed, no peer")


def run_through_api(a, batches, n):
    os.environ["GRACE_BIN"] = os.path.abspath(os.path.join(a.build, "grace"))
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                    "tests", "blackbox"))
    from harness import GraceServer  # noqa: E402 (reads GRACE_BIN at import)
    # The bulk route takes 16 MiB from an authenticated user as shipped;
    # only larger requests need the limits raised.
    big = a.request_bytes + 4096 if a.request_bytes > 16 << 20 else None
    config = {"limits": {"max_body_bytes": big}} if big else {}
    with GraceServer(config=config,
                     kernels={"librarian": {"max_body_bytes": big} if big else {}}) as g:
        lib = g.kernel("librarian")["pid"]
        todo, errors = list(reversed(batches)), []

        def client():
            # Each client takes the next request when its last is answered,
            # as a loader with a.clients connections would.
            c = KeepAlive(g.api_port, timeout=600, headers=g.auth_headers())
            try:
                while not errors:
                    try:
                        body = todo.pop()
                    except IndexError:
                        return
                    st, data = c.request("POST", "/librarian/documents/_bulk", body,
                                         ctype=b"application/x-ndjson")
                    if st != 200 or json.loads(data).get("failed"):
                        errors.append(f"bulk: {st} {data[:300]!r}")
            finally:
                c.close()
        c0, s0, t0 = cpu_secs(lib), cpu_secs(g.proc.pid), time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(a.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise RuntimeError(errors[0])
        dt = time.perf_counter() - t0
        lib_cpu, serve_cpu = cpu_secs(lib) - c0, cpu_secs(g.proc.pid) - s0
        # What the librarian does once the load is answered: FTS5's merges
        # and the WAL's checkpoints, left to its idle moments (docs/
        # librarian.md), which begin a second after the last write. Until
        # its CPU stays still for two seconds.
        c1, t1 = cpu_secs(lib), time.perf_counter()
        last, changed = c1, t1
        while time.perf_counter() - changed < 2.0:
            time.sleep(0.1)
            now = cpu_secs(lib)
            if now != last:
                last, changed = now, time.perf_counter()
        after_at, after_cpu = changed - t1, last - c1
    print(f"Bulk ingest through :8000, {a.clients} client(s): {n} documents in"
          f" {len(batches)} requests of"
          f" <= {a.request_bytes} bytes (body limits {big or 'as shipped'}): {dt:.2f} s ="
          f" {n / dt:,.0f} docs/s; librarian CPU {lib_cpu / n * 1e6:.0f} us a document,"
          f" grace serve {serve_cpu / n * 1e6:.0f} us. After the last answer: {after_cpu:.2f}"
          f" CPU-s more (merges, checkpoints), the last of it {after_at:.1f} s after; had"
          f" that CPU been spent on the load's path, {n / (dt + after_cpu):,.0f} docs/s")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--docs", type=int, default=20000)
    ap.add_argument("--vocab", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--request-bytes", type=int, default=1 << 20)
    ap.add_argument("--request-docs", type=int, help="requests of this many documents"
                    " instead of --request-bytes (OpenSearch Benchmark's bulk_size: its"
                    " tracks send 5,000 from 8 clients)")
    ap.add_argument("--config", help="the kernel's configuration file (e.g. a [kernel.librarian]"
                    " max_body_bytes for --request-bytes past the bulk route's 16 MiB)")
    # Every port below 32768 (the usual ephemeral range), clear of 8000-8149.
    ap.add_argument("--port-offset", type=int, default=24200)
    ap.add_argument("--callgrind", action="store_true")
    ap.add_argument("--threads", action="store_true", help="with --callgrind: the writer's"
                    " thread apart from the others (--separate-threads)")
    ap.add_argument("--owner", help="load as this user (X-Grace-User, role user), as the"
                    " gateway forwards a user's request; default: no owner")
    ap.add_argument("--search-callgrind", action="store_true")
    ap.add_argument("--through-api", action="store_true")
    ap.add_argument("--clients", type=int, default=1, help="with --through-api: connections"
                    " loading at once, each sending its next request when its last is answered")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--keep-cg", help="copy the loaded run's callgrind file here"
                    " (with --threads: the writer's; with --search-callgrind: to PATH.CLASS)")
    a = ap.parse_args()
    if a.owner:
        OWNER_HEADERS.update({"X-Grace-User": a.owner, "X-Grace-Role": "user"})
    vocab, bodies, _ = make_docs(a.docs, a.vocab, a.seed)
    if a.request_docs:
        # Cut by documents, as OpenSearch Benchmark's bulk_size; the bytes
        # limit reported (and the body limits raised past 16 MiB) is then
        # the largest request's.
        batches = ndjson_requests(bodies, a.request_docs)
        a.request_bytes = max(len(b) for b in batches)
    else:
        batches = ndjson_batches(bodies, a.request_bytes)
    with tempfile.TemporaryDirectory(prefix="grace-ingest-") as tmp:
        if a.through_api:
            run_through_api(a, batches, len(bodies))
        elif a.search_callgrind:
            run_search_callgrind(a, tmp, vocab, batches)
        elif a.callgrind:
            run_callgrind(a, tmp, batches, len(bodies))
        else:
            run_wall(a, tmp, bodies, batches, len(bodies))


if __name__ == "__main__":
    main()
