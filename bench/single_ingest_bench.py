#!/usr/bin/env python3
"""Single-document ingest: POST /librarian/documents one document at a
time through :8000, as users do, with a few clients at once.

    python3 bench/single_ingest_bench.py [--grace build/grace] [--docs 2000]
        [--clients 4]

Starts its own grace serve with only the librarian (through the black-box
test harness, on a port offset of its own, in a temporary directory) and
reports documents/s (wall clock), the librarian's CPU a document, and from
its /proc/PID/io the bytes and write calls a document. Run it against two
builds in turn (alternate them on a shared machine) and compare the ratios:
docs/librarian.md gives the figures of the pending table against the
flush per document. Standard library only.
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "blackbox"))


def proc_io(pid):
    with open("/proc/%d/io" % pid) as f:
        return {k: int(v) for k, v in (line.split(": ") for line in f.read().splitlines())}


def proc_cpu_s(pid):
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grace", default=os.path.join(os.path.dirname(HERE), "build", "grace"))
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=4)
    a = ap.parse_args()
    os.environ["GRACE_BIN"] = os.path.abspath(a.grace)
    from grace_bench import load_docs, make_docs  # noqa: E402
    from harness import GraceServer  # noqa: E402 (reads GRACE_BIN at import)

    _, docs, _ = make_docs(a.docs, 5000, 1)
    with GraceServer(kernels={"librarian": {}}) as g:
        auth = {"Authorization": "Bearer " + g.login()}
        lib = g.kernel("librarian")["pid"]
        io0, cpu0 = proc_io(lib), proc_cpu_s(lib)
        secs, errors = load_docs(g.api_port, docs, a.clients, auth)
        io1, cpu1 = proc_io(lib), proc_cpu_s(lib)
        if errors:
            raise SystemExit("POST /librarian/documents: %r" % errors[:3])
    n = len(docs)
    print("single-document ingest, %d documents, %d clients, through :8000" % (n, a.clients))
    print("  documents/s (wall)        %8.1f" % (n / secs))
    print("  librarian CPU a document  %8.3f ms" % ((cpu1 - cpu0) * 1e3 / n))
    print("  bytes written a document  %8.0f" % ((io1["write_bytes"] - io0["write_bytes"]) / n))
    print("  write calls a document    %8.1f" % ((io1["syscw"] - io0["syscw"]) / n))


if __name__ == "__main__":
    main()
