#!/usr/bin/env python3
"""Telemetry benchmark (issue 16), run by hand:

    python3 bench/telemetry_bench.py [--spans 40000] [--batch 500] [--wrk-secs 5]

  * ingest: spans stored per second by the telemetry kernel, OTLP/HTTP
    protobuf and OTLP/JSON, batches of --batch spans built before the clock
    starts, one connection, straight to the kernel's port (each request is
    answered once its spans are committed); against the raw write rate of
    the store: the same rows inserted by Python's sqlite3 into the same
    schema, same pragmas, one transaction per batch. No OpenTelemetry
    Collector package runs here (no Debian or npm package of it), so the
    store's raw rate is the peer.
  * the cost of tracing on the gateway: GET /bus/subjects through :8000 by
    wrk, Grace with [telemetry] self_trace = 1 (every trace recorded, then
    sample_percent = 10) against self_trace = 0, same run, rounds
    interleaved.
  * the cost of tracing work on a kernel's worker pool: the librarian's
    search (its SQLite statements run on the pool) through :8000 by wrk,
    one Grace, requests with a sampled traceparent (every hop recorded,
    the pool's statements too) against an unsampled one (propagated,
    nothing recorded), rounds interleaved. `--search-only` runs just this.
  * `--callgrind`: instructions per span of the OTLP ingest, the telemetry
    kernel alone (`grace kernel telemetry`, fresh data directory, its
    internal token) under valgrind's callgrind, once idle and once loaded
    with --cg-spans spans in requests shaped as src/sdk/tracer.c exports
    them (--cg-batch spans a request, one resourceSpans with service.name,
    one scope, 4 attributes a span, "status":{}), JSON then protobuf; the
    loaded run's total minus the idle run's, divided by the spans (start-up
    and shutdown cancel out). Load-independent: two builds compare on a
    busy machine. --keep-cg DIR keeps the loaded runs' callgrind files for
    `callgrind_annotate --inclusive=yes`. Runs only this.
  * `--io`: what storing a span costs the machine, not in instructions:
    the telemetry kernel alone (as --callgrind, no valgrind) sent --io-spans
    tracer-shaped spans in requests of --cg-batch, JSON (or with
    --io-protobuf protobuf); from
    /proc/PID/io and /proc/PID/stat before and after, per span: bytes
    written (write_bytes: what reaches the disk, the WAL and the
    checkpoints), write calls (syscw) and CPU (user and system). Runs only
    this.

The report goes to stdout; progress to stderr."""

import argparse
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "blackbox"))


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def ld(num, payload):
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def fixed64(num, v):
    return varint(num << 3 | 1) + v.to_bytes(8, "little")


def kv_str(k, v):
    return ld(1, k.encode()) + ld(2, ld(1, v.encode()))  # KeyValue{key, AnyValue{string_value}}


def spans_of(batch_no, n, t0):
    out = []
    for i in range(n):
        tid = "%016x%016x" % (batch_no + 1, i // 10 + 1)
        sid = "%016x" % (batch_no * n + i + 1)
        parent = "%016x" % (batch_no * n + i) if i % 10 else None
        start = t0 + i * 1000
        out.append({"traceId": tid, "spanId": sid, "parentSpanId": parent, "name": "op %d" % (i % 20),
                    "kind": 2, "start": start, "end": start + 500 + i,
                    "attrs": {"http.route": "/items/%d" % (i % 50), "tenant": "t%d" % (i % 7)}})
    return out


def json_body(spans):
    def one(s):
        o = {"traceId": s["traceId"], "spanId": s["spanId"], "name": s["name"], "kind": s["kind"],
             "startTimeUnixNano": str(s["start"]), "endTimeUnixNano": str(s["end"]),
             "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in s["attrs"].items()],
             "status": {}}
        if s["parentSpanId"]:
            o["parentSpanId"] = s["parentSpanId"]
        return o
    return json.dumps({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "bench"}}]},
        "scopeSpans": [{"scope": {"name": "bench"}, "spans": [one(s) for s in spans]}]}]}).encode()


def span_pb_head(s):
    """A Span message's ids, name, kind and times (fields 1-8)."""
    b = ld(1, bytes.fromhex(s["traceId"])) + ld(2, bytes.fromhex(s["spanId"]))
    if s["parentSpanId"]:
        b += ld(4, bytes.fromhex(s["parentSpanId"]))
    b += ld(5, s["name"].encode()) + varint(6 << 3) + varint(s["kind"])
    return b + fixed64(7, s["start"]) + fixed64(8, s["end"])


def pb_body(spans):
    def one(s):
        b = span_pb_head(s)
        for k, v in s["attrs"].items():
            b += ld(9, kv_str(k, v))
        return ld(2, b)
    scope = ld(1, ld(1, b"bench")) + b"".join(one(s) for s in spans)
    resource = ld(1, ld(1, kv_str("service.name", "bench")))
    return ld(1, resource + ld(2, scope))


def post_all(g, port, bodies, ctype):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    hdrs = dict(g.token_headers(), **{"Content-Type": ctype})
    t = time.monotonic()
    for b in bodies:
        conn.request("POST", "/v1/traces", body=b, headers=hdrs)
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            raise SystemExit("ingest answered %d" % r.status)
    dt = time.monotonic() - t
    conn.close()
    return dt


def raw_store(schema_db, batches):
    """The same rows into the same schema by Python's sqlite3."""
    d = tempfile.mkdtemp(prefix="telbench-raw-")
    path = os.path.join(d, "raw.db")
    src = sqlite3.connect(schema_db)
    ddl = [r[0] for r in src.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL")]
    src.close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    for s in ddl:
        db.execute(s)
    rows = []
    for spans in batches:
        rows.append([(s["traceId"], s["spanId"], s["parentSpanId"] or "", "bench", s["name"],
                      s["kind"], s["start"], s["end"], s["end"] - s["start"], 0,
                      int(time.time() * 1000), json.dumps(s), list(s["attrs"].items()))
                     for s in spans])
    t = time.monotonic()
    for batch in rows:
        db.execute("BEGIN IMMEDIATE")
        for r in batch:
            cur = db.execute("INSERT INTO spans(trace_id, span_id, parent_id, service, name, kind,"
                             " start_ns, end_ns, duration_ns, status, received_ms, body)"
                             " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", r[:12])
            sid = cur.lastrowid
            db.executemany("INSERT INTO span_attrs(span, key, value) VALUES (?,?,?)",
                           [(sid, k, v) for k, v in r[12] + [("service.name", "bench")]])
        db.execute("COMMIT")
    dt = time.monotonic() - t
    db.close()
    return dt


def wrk(port, token, secs):
    hdr = ["-H", "Authorization: Bearer " + token]
    out = subprocess.run(["wrk", "-t2", "-c16", "-d%ds" % secs] + hdr +
                         ["http://127.0.0.1:%d/bus/subjects" % port],
                         capture_output=True, text=True, timeout=secs + 30).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errs = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if not m or errs:
        raise SystemExit("wrk: %s" % out)
    return float(m.group(1))


WORDS = ("zeppelin hangar envelope airship crew gas cell ballast rudder engine mooring mast "
         "weather pilot route altitude winch cable fabric frame girder valve").split()


def search_cost(args, GraceServer, report):
    """Librarian search through :8000, traced against untraced, one Grace."""
    import random
    rnd = random.Random(16)
    with GraceServer(kernels={"telemetry": {}, "librarian": {}},
                     config={"telemetry": {"sample_percent": 0}}) as g:
        token = g.login()
        for i in range(args.docs):
            body = " ".join(rnd.choice(WORDS) for _ in range(60))
            st, _, b = g.http("POST", "/librarian/documents",
                              {"title": "log %d %s" % (i, rnd.choice(WORDS)), "body": body})
            if st != 201:
                raise SystemExit("ingest: %s %s" % (st, b))
        path = "/librarian/search?query=zeppelin+hangar&limit=10"
        deadline = time.monotonic() + 60
        while (g.http("GET", path)[2] or {}).get("total", 0) < args.docs // 10:
            if time.monotonic() > deadline:
                raise SystemExit("the documents never became searchable")
            time.sleep(0.2)
        # How many statements one search runs on the pool (their spans).
        tid = "%032x" % rnd.getrandbits(128)
        g.http("GET", path, headers={"traceparent": "00-%s-%s-01" % (tid, "1" * 16)})
        stmts = None
        deadline = time.monotonic() + 30
        while stmts is None and time.monotonic() < deadline:
            st, _, tr = g.http("GET", "/telemetry/traces/" + tid)
            if st == 200:
                def walk(n):
                    if n["name"] == "GET /search":
                        # Those past 64 are counted on the job's last span.
                        return sum(1 + int(next((a["value"]["intValue"] for a in c["attributes"]
                                                 if a["key"] == "grace.db.statements_dropped"),
                                                0))
                                   for c in n["children"] if c["name"].startswith("sqlite "))
                    return next((x for x in map(walk, n["children"]) if x is not None), None)
                stmts = next((x for x in map(walk, tr["roots"]) if x is not None), None)
            time.sleep(0.2)
        kinds = (("traced", "01"), ("untraced", "00"))
        rates = {k: [] for k, _ in kinds}
        for r in range(args.rounds):
            for name, flag in kinds:
                tp = "traceparent: 00-%032x-%016x-%s" % (rnd.getrandbits(128),
                                                          rnd.getrandbits(64) | 1, flag)
                out = subprocess.run(["wrk", "-t2", "-c8", "-d%ds" % args.wrk_secs,
                                      "-H", "Authorization: Bearer " + token, "-H", tp,
                                      "http://127.0.0.1:%d%s" % (g.api_port, path)],
                                     capture_output=True, text=True,
                                     timeout=args.wrk_secs + 30).stdout
                m = re.search(r"Requests/sec:\s+([\d.]+)", out)
                if not m or re.search(r"Non-2xx or 3xx responses", out):
                    raise SystemExit("wrk: %s" % out)
                rates[name].append(float(m.group(1)))
                log("round %d search %s: %s req/s" % (r + 1, name, m.group(1)))
        m = g.http("GET", "/kernels/librarian/metrics")[2]
        m = m.decode() if isinstance(m, bytes) else str(m)
        sent = re.search(r'grace_trace_spans_sent_total\{kernel="librarian"\} (\d+)', m)
        dropped = re.search(r'grace_trace_spans_dropped_total\{kernel="librarian"\} (\d+)', m)
    best = {k: max(v) for k, v in rates.items()}
    report.append("librarian GET /search through :8000, %d documents, wrk -t2 -c8, best of %d x %ds"
                  " (%s SQLite statements a search on the pool, 64 of them spans):"
                  % (args.docs, args.rounds, args.wrk_secs, stmts))
    report.append("  sampled traceparent (recorded)   %9.0f req/s (ratio %.2f to unsampled; the"
                  " librarian sent %s spans, dropped %s: those past 64 a job, and what the"
                  " telemetry kernel could not take)"
                  % (best["traced"], best["traced"] / best["untraced"],
                     sent.group(1) if sent else "?", dropped.group(1) if dropped else "?"))
    report.append("  unsampled traceparent            %9.0f req/s" % best["untraced"])
    report.append("  all rounds: traced %s, untraced %s"
                  % (" ".join("%.0f" % x for x in rates["traced"]),
                     " ".join("%.0f" % x for x in rates["untraced"])))


TEL_PORT = 8140  # the telemetry kernel's port before the offset


def tracer_spans(batch_no, n):
    """n spans as src/sdk/tracer.c records a proxied request's: random trace
    and span ids (seeded), most with a parent, 4 attributes."""
    import random
    rnd = random.Random(batch_no)
    t0 = 1_760_000_000_000_000_000 + batch_no * 10_000_000
    out = []
    for i in range(n):
        start = t0 + i * 12_345
        out.append({"traceId": "%032x" % rnd.getrandbits(128), "spanId": "%016x" % rnd.getrandbits(64),
                    "parentSpanId": "%016x" % rnd.getrandbits(64) if i % 5 else None,
                    "name": "GET /bus/subjects", "kind": 2 if i % 2 else 3,
                    "start": start, "end": start + 250_000 + i * 7,
                    "method": "GET", "path": "/bus/subjects?limit=%d" % (i % 10),
                    "status": 200 if i % 17 else 503,
                    # as sdk_request_id_new makes them: a prefix of the
                    # process, then a counter (sequential in the index)
                    "request_id": "%016x%016x" % (batch_no % 2, batch_no * n + i + 1)})
    return out


def tracer_json(service, spans):
    """The export body, byte for byte as src/sdk/tracer.c's flush writes it."""
    def kv(k, v):
        return '{"key":%s,"value":{"stringValue":%s}}' % (json.dumps(k), json.dumps(v))

    def one(s):
        attrs = [kv("http.request.method", s["method"]), kv("url.path", s["path"]),
                 '{"key":"http.response.status_code","value":{"intValue":"%d"}}' % s["status"],
                 kv("grace.request_id", s["request_id"])]
        o = ('{"traceId":"%s","spanId":"%s","name":%s,"kind":%d,"startTimeUnixNano":"%d",'
             '"endTimeUnixNano":"%d","attributes":[%s],"flags":1'
             % (s["traceId"], s["spanId"], json.dumps(s["name"]), s["kind"], s["start"], s["end"],
                ",".join(attrs)))
        if s["parentSpanId"]:
            o += ',"parentSpanId":"%s"' % s["parentSpanId"]
        err = s["kind"] == 2 and s["status"] >= 500
        return o + (',"status":{"code":2}}' if err else ',"status":{}}')
    return ('{"resourceSpans":[{"resource":{"attributes":[%s]},"scopeSpans":[{"scope":'
            '{"name":"grace","version":"0.1.0"},"spans":[%s]}]}]}'
            % (kv("service.name", service), ",".join(one(s) for s in spans))).encode()


def tracer_pb(service, spans):
    """The same spans as an OTLP protobuf ExportTraceServiceRequest."""
    def kv_int(k, v):
        return ld(1, k.encode()) + ld(2, varint(3 << 3) + varint(v))

    def one(s):
        b = span_pb_head(s)
        b += ld(9, kv_str("http.request.method", s["method"])) + ld(9, kv_str("url.path", s["path"]))
        b += ld(9, kv_int("http.response.status_code", s["status"]))
        b += ld(9, kv_str("grace.request_id", s["request_id"]))
        if s["kind"] == 2 and s["status"] >= 500:
            b += ld(15, varint(3 << 3) + varint(2))
        b += varint(16 << 3 | 5) + (1).to_bytes(4, "little")  # flags, fixed32
        return ld(2, b)
    scope = ld(1, ld(1, b"grace") + ld(2, b"0.1.0")) + b"".join(one(s) for s in spans)
    resource = ld(1, ld(1, kv_str("service.name", service)))
    return ld(1, resource + ld(2, scope))


def cg_start(args, tmp, tag, prefix):
    import secrets
    from ingest_bench import wait_http
    data = os.path.join(tmp, tag)
    os.makedirs(data)
    token = secrets.token_hex(32)
    with open(os.open(os.path.join(data, "internal.token"), os.O_WRONLY | os.O_CREAT, 0o600),
              "w") as f:
        f.write(token)
    err = open(os.path.join(tmp, tag + ".log"), "w")
    p = subprocess.Popen(prefix + [os.path.abspath(args.grace), "kernel", "telemetry",
                                   "--port-offset", str(args.port_offset), "--data-dir", data],
                         stdout=subprocess.DEVNULL, stderr=err, cwd=tmp)
    port = TEL_PORT + args.port_offset
    wait_http("http://127.0.0.1:%d/health" % port, p)
    return p, port, token


def cg_post(port, token, bodies, ctype):
    from grace_bench import INTERNAL_TOKEN_HEADER, KeepAlive
    c = KeepAlive(port, timeout=600, headers={INTERNAL_TOKEN_HEADER: token})
    try:
        for b in bodies:
            st, data = c.request("POST", "/v1/traces", b, ctype=ctype)
            if st != 200 or json.loads(data or b"{}").get("partialSuccess"):
                raise SystemExit("ingest answered %d: %r" % (st, data[:300]))
    finally:
        c.close()


def callgrind(args):
    import shutil
    from ingest_bench import collected, stop
    sys.path.insert(0, HERE)
    nb = max(1, args.cg_spans // args.cg_batch)
    n = nb * args.cg_batch
    services = ("serve", "gateway", "message_bus", "librarian")
    batches = [tracer_spans(b, args.cg_batch) for b in range(nb)]
    encodings = (("json", b"application/json", tracer_json),
                 ("protobuf", b"application/x-protobuf", tracer_pb))
    tmp = tempfile.mkdtemp(prefix="telbench-cg-")
    try:
        for enc, ctype, make in encodings:
            bodies = [make(services[b % len(services)], s) for b, s in enumerate(batches)]
            totals = []
            for tag, load in (("idle", []), ("loaded", bodies)):
                name = "%s-%s" % (enc, tag)
                out = os.path.join(tmp, name + ".cg")
                p, port, token = cg_start(args, tmp, name, ["valgrind", "--tool=callgrind",
                                                            "--callgrind-out-file=" + out])
                try:
                    if load:
                        cg_post(port, token, load, ctype)
                finally:
                    stop(p)
                totals.append(collected(os.path.join(tmp, name + ".log")))
                if load and args.keep_cg:
                    os.makedirs(args.keep_cg, exist_ok=True)
                    shutil.copy(out, os.path.join(args.keep_cg, "telemetry-%s.cg" % enc))
            print("OTLP/%s: %s instructions per span (callgrind, kernel alone, %d spans in %d"
                  " requests of %d)" % ("JSON" if enc == "json" else "protobuf",
                                        format(round((totals[1] - totals[0]) / n), ","), n, nb,
                                        args.cg_batch), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def proc_io(pid):
    io = dict(l.split(": ") for l in open("/proc/%d/io" % pid).read().splitlines())
    st = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(io["write_bytes"]), int(io["syscw"]), int(st[11]) / tick, int(st[12]) / tick)


def io_cost(args):
    import shutil
    from ingest_bench import stop
    nb = max(1, args.io_spans // args.cg_batch)
    services = ("serve", "librarian")
    make, ctype, enc = ((tracer_pb, b"application/x-protobuf", "protobuf") if args.io_protobuf
                        else (tracer_json, b"application/json", "JSON"))
    bodies = [make(services[b % 2], tracer_spans(b, args.cg_batch)) for b in range(nb)]
    tmp = tempfile.mkdtemp(prefix="telbench-io-")
    try:
        p, port, token = cg_start(args, tmp, "io", [])
        try:
            # the first tenth unmeasured: tables and indexes past their first pages
            warm = nb // 10
            cg_post(port, token, bodies[:warm], ctype)
            a = proc_io(p.pid)
            t0 = time.monotonic()
            cg_post(port, token, bodies[warm:], ctype)
            dt = time.monotonic() - t0
            b = proc_io(p.pid)
        finally:
            stop(p)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    m = (nb - warm) * args.cg_batch
    print("OTLP/%s, %d spans in requests of %d (after %d unmeasured), the kernel alone:"
          % (enc, m, args.cg_batch, warm * args.cg_batch))
    print("  %.1f kB written a span, %.1f write calls a span, CPU %.1f us a span"
          " (user %.1f, system %.1f), %.0f spans/s"
          % ((b[0] - a[0]) / m / 1e3, (b[1] - a[1]) / m, (b[2] + b[3] - a[2] - a[3]) / m * 1e6,
             (b[2] - a[2]) / m * 1e6, (b[3] - a[3]) / m * 1e6, m / dt))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--grace", default=os.path.join(HERE, "..", "build", "grace"))
    ap.add_argument("--spans", type=int, default=40000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--wrk-secs", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--docs", type=int, default=300, help="librarian documents searched")
    ap.add_argument("--search-only", action="store_true",
                    help="only the librarian search, traced against untraced")
    ap.add_argument("--callgrind", action="store_true",
                    help="only instructions per span of the ingest, under callgrind")
    ap.add_argument("--cg-spans", type=int, default=4000)
    ap.add_argument("--cg-batch", type=int, default=80)
    ap.add_argument("--port-offset", type=int, default=17400,
                    help="ports 8000+offset up; the kernel listens on 8140+offset")
    ap.add_argument("--keep-cg", metavar="DIR",
                    help="copy the loaded runs' callgrind files into DIR")
    ap.add_argument("--io", action="store_true",
                    help="only bytes written, write calls and CPU per span, the kernel alone")
    ap.add_argument("--io-spans", type=int, default=48000)
    ap.add_argument("--io-protobuf", action="store_true",
                    help="--io with the same spans as OTLP/protobuf instead of JSON")
    args = ap.parse_args()
    if args.io:
        io_cost(args)
        return
    if args.callgrind:
        callgrind(args)
        return
    os.environ["GRACE_BIN"] = os.path.abspath(args.grace)
    from harness import GraceServer  # noqa: E402

    report = []
    search_cost(args, GraceServer, report)
    if args.search_only:
        print("\n".join(report))
        return

    nb = args.spans // args.batch
    t0 = time.time_ns()
    batches = [spans_of(b, args.batch, t0) for b in range(nb)]
    with GraceServer(kernels={"telemetry": {}}, config={"telemetry": {"self_trace": 0}}) as g:
        port = g.kernel_port("telemetry")
        log("building %d batches of %d spans" % (nb, args.batch))
        pb = [pb_body(s) for s in batches]
        # JSON: other ids, so both runs store the same number of new rows.
        batches_j = [spans_of(b + nb, args.batch, t0) for b in range(nb)]
        js = [json_body(s) for s in batches_j]
        log("ingest: protobuf")
        dt_pb = post_all(g, port, pb, "application/x-protobuf")
        log("ingest: JSON")
        dt_js = post_all(g, port, js, "application/json")
        schema_db = os.path.join(g.data_dir, "telemetry.db")
        log("raw store")
        dt_raw = raw_store(schema_db, batches)
    n = nb * args.batch
    report.append("telemetry ingest, %d spans in batches of %d, one connection:" % (n, args.batch))
    report.append("  OTLP protobuf  %9.0f spans/s" % (n / dt_pb))
    report.append("  OTLP JSON      %9.0f spans/s" % (n / dt_js))
    report.append("  raw store      %9.0f spans/s (Python sqlite3, same schema and pragmas)"
                  % (n / dt_raw))
    report.append("  ratio to raw store: protobuf %.2f, JSON %.2f" % (dt_raw / dt_pb, dt_raw / dt_js))

    kinds = (("traced", 1, 100), ("sampled 10%", 1, 10), ("untraced", 0, 100))
    rates = {k[0]: [] for k in kinds}
    servers = {}
    try:
        for name, on, pct in kinds:
            g = GraceServer(kernels={"telemetry": {}, "message_bus": {}},
                            config={"telemetry": {"self_trace": on, "sample_percent": pct}})
            g.start()
            servers[name] = (g, g.login())
        for r in range(args.rounds):
            for name, _, _ in kinds:
                g, token = servers[name]
                rate = wrk(g.api_port, token, args.wrk_secs)
                rates[name].append(rate)
                log("round %d %s: %.0f req/s" % (r + 1, name, rate))
        g, _ = servers["traced"]
        m = g.http("GET", "/kernels/message_bus/metrics")[2]
        m = m.decode() if isinstance(m, bytes) else str(m)
        dropped = re.search(r'grace_trace_spans_dropped_total\{kernel="message_bus"\} (\d+)', m)
        sent = re.search(r'grace_trace_spans_sent_total\{kernel="message_bus"\} (\d+)', m)
    finally:
        for g, _ in servers.values():
            g.close()
    best = {k: max(v) for k, v in rates.items()}
    report.append("gateway GET /bus/subjects, wrk -t2 -c16, best of %d x %ds:"
                  % (args.rounds, args.wrk_secs))
    report.append("  self_trace = 1, all recorded   %9.0f req/s (%.1f%% below untraced; the"
                  " message bus sent %s spans, dropped %s)"
                  % (best["traced"], 100 * (1 - best["traced"] / best["untraced"]),
                     sent.group(1) if sent else "?", dropped.group(1) if dropped else "?"))
    report.append("  self_trace = 1, 10%% sampled    %9.0f req/s (%.1f%% below untraced)"
                  % (best["sampled 10%"], 100 * (1 - best["sampled 10%"] / best["untraced"])))
    report.append("  self_trace = 0                 %9.0f req/s" % best["untraced"])
    print("\n".join(report))


if __name__ == "__main__":
    main()
