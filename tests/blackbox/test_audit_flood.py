"""The audit trail under a flood (issue 8, finding 2; docs/audit.md).

An unauthenticated client used to turn every POST into a stored audit event:
a flood overflowed the outbox's one queue (10,000 events), pushing an
admin's events out of it, and grew the audit and log databases by
megabytes. Now:

- test_flood_during_admin_work: several processes flood `POST /x` and
  `POST /<2 KB path>` on keep-alive connections from 16 source addresses
  (127.0.0.10-25) while the admin creates a user, changes its password,
  stops and starts a kernel and deletes the user. Every one of the admin's
  requests is in the audit trail exactly once, with the kernel's state
  changes; the flood is there only as aggregates (actor anonymous, action
  request.refused), at most windows_max + 1 per window (the sources past
  windows_max folded into one "others" aggregate), with sample paths of at
  most 128 bytes; their counts add up to the flood's requests exactly (what
  is counted: every anonymous state-changing request the server answered
  with a refusal, i.e. every response the flooders read); and the audit and
  immutable log databases grew by at most 1 MiB of pages.
- test_audit_down_then_up, test_restart_while_audit_down: with the audit
  kernel stopped, security events (user changes, logins good and bad, kernel
  control, a heal) made during a flood are all delivered once it is back,
  and survive a restart of grace serve meanwhile (they wait in grace.db).
- test_full_journal_refuses_then_recovers: when the journal nears its bound
  (journal_max_events), state-changing requests get 503 before they act
  (and are not recorded), reads and anonymous refusals go on as before,
  Grace's own events fill the reserve and then fold into one overflow
  aggregate, and starting the audit kernel (allowed even then) drains it
  all, exactly once.

The flooders are this file run with --flood (stdlib sockets only)."""

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import TIME_FACTOR, GraceServer, GraceTestCase, scaled  # noqa: E402

AUDIT = "/kernels/audit"
PASSWORD = "a long flood password"
SOURCES = ["127.0.0.%d" % i for i in range(10, 26)]
LONG_PATH = "/" + "L" * 1999
WINDOWS_MAX = 8
DB_GROWTH_MAX = 1 << 20
# Enough requests for the old behaviour (an event each, 2 KB paths stored
# twice) to pass DB_GROWTH_MAX several times over; sanitizer builds serve
# fewer in the same time.
FLOOD_MIN = 2000 if TIME_FACTOR == 1 else 500


# --------------------------------------------------------------------------
# The flooder: run as `test_audit_flood.py --flood PORT SECONDS THREADS
# SOURCES PATHS`; prints {"sent", "answered": {status: n}, "errors"}.

def _read_response(sock, buf):
    """Reads one response; returns (status, close?, rest of buf)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the response")
        buf += chunk
    head, _, buf = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, close = 0, False
    for line in lines[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == "content-length":
            length = int(v.strip())
        elif k.strip().lower() == "connection" and v.strip().lower() == "close":
            close = True
    while len(buf) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed in the body")
        buf += chunk
    return status, close, buf[length:]


def flood_main(port, seconds, threads, sources, paths):
    deadline = time.monotonic() + seconds
    results = []

    def run(i):
        sent, errors, answered = 0, 0, {}
        k, sock, buf, on_conn = i, None, b"", 0
        while time.monotonic() < deadline:
            if sock is None:
                src = sources[k % len(sources)]
                k += threads
                try:
                    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    sock.settimeout(30)
                    sock.bind((src, 0))
                    sock.connect(("127.0.0.1", port))
                except OSError:
                    errors += 1
                    sock.close()
                    sock = None
                    time.sleep(0.01)
                    continue
                buf, on_conn = b"", 0
            path = paths[(sent + i) % len(paths)]
            req = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: 0\r\n\r\n"
                   % (path, port)).encode()
            try:
                sock.sendall(req)
                sent += 1
                status, close, buf = _read_response(sock, buf)
            except (OSError, ValueError, IndexError):
                errors += 1
                sock.close()
                sock = None
                continue
            answered[status] = answered.get(status, 0) + 1
            on_conn += 1
            # A new connection (and so, in turn, each source) now and then.
            if close or on_conn >= 200:
                sock.close()
                sock = None
        if sock is not None:
            sock.close()
        results.append((sent, errors, answered))

    ts = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    out = {"sent": 0, "errors": 0, "answered": {}}
    for sent, errors, answered in results:
        out["sent"] += sent
        out["errors"] += errors
        for st, n in answered.items():
            out["answered"][str(st)] = out["answered"].get(str(st), 0) + n
    print(json.dumps(out), flush=True)


class Flood:
    """Flooder processes started now, running for `seconds`."""

    def __init__(self, test, g, seconds, procs=3, threads=2, sources=None, paths=None):
        self.procs = []
        self.g = g
        sources = sources or ["127.0.0.1"]
        paths = paths or ["/x"]
        for i in range(procs):
            mine = sources[i::procs] or sources
            p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--flood",
                                  str(g.api_port), str(seconds), str(threads),
                                  ",".join(mine), json.dumps(paths)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            self.procs.append(p)
            test.addCleanup(self._kill, p)

    @staticmethod
    def _kill(p):
        if p.poll() is None:
            p.kill()
            p.wait()

    def wait(self, timeout):
        total = {"sent": 0, "errors": 0, "answered": {}}
        for p in self.procs:
            out, err = p.communicate(timeout=timeout)
            if p.returncode != 0:
                raise AssertionError("flooder failed (%s): %s" % (p.returncode, err.decode()))
            r = json.loads(out)
            total["sent"] += r["sent"]
            total["errors"] += r["errors"]
            for st, n in r["answered"].items():
                total["answered"][st] = total["answered"].get(st, 0) + n
        total["answered_all"] = sum(total["answered"].values())
        return total


# --------------------------------------------------------------------------


def now_ms():
    return int(time.time() * 1000)


class AuditFloodCase(GraceTestCase):
    def call(self, g, method, path, body=None, expect=None, rid=None, headers=None,
             auth=True):
        h = dict(headers or {})
        if rid:
            h["X-Request-Id"] = rid
        st, hdrs, out = g.http(method, path, body, headers=h, timeout=scaled(30), auth=auth)
        if expect is not None:
            self.assertEqual(st, expect, "%s %s -> %s %r" % (method, path, st, out))
        return st, hdrs, out

    def events(self, g, **q):
        out, cursor = [], None
        while True:
            qq = dict({"limit": 1000}, **q)
            if cursor is not None:
                qq["cursor"] = cursor
            _, _, page = self.call(g, "GET", AUDIT + "/events?" + urllib.parse.urlencode(qq),
                                   expect=200)
            out.extend(page["events"])
            cursor = page["next_cursor"]
            if cursor is None:
                return out

    def metrics(self, g):
        st, _, body = g.http("GET", "/metrics", auth=False, timeout=scaled(10))
        self.assertEqual(st, 200)
        out = {}
        for line in body.decode().splitlines():
            if line.startswith("grace_audit_") or line.startswith("grace_outbox_"):
                name, _, value = line.rpartition(" ")
                out[name] = int(value)
        return out

    def audit_queued(self, g):
        return self.metrics(g)['grace_outbox_queued{destination="audit"}']

    def kernel_action(self, g, name, action, state, expect=202):
        self.call(g, "POST", "/kernel-ports/%s/%s" % (name, action), expect=expect,
                  rid="%s-%s-%d" % (action, name, time.monotonic_ns()))
        return g.wait_kernel(name, lambda k: k["state"] == state)

    def wait_drained(self, g, timeout=None):
        g.wait_for(lambda: self.audit_queued(g) == 0, timeout or scaled(30),
                   interval=0.1, message=lambda: "the audit outbox drained: %r"
                   % self.metrics(g))

    def by_rid(self, evs):
        out = {}
        for e in evs:
            rid = (e["details"] or {}).get("request_id") if isinstance(e["details"], dict) else None
            if rid:
                out.setdefault(rid, []).append(e)
        return out


def db_pages_bytes(path):
    """The bytes of a database's pages as its readers see them (the WAL's
    slack, which is reused, not counted)."""
    c = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=30)
    try:
        return c.execute("PRAGMA page_count").fetchone()[0] * \
            c.execute("PRAGMA page_size").fetchone()[0]
    finally:
        c.close()


class FloodDuringAdminWork(AuditFloodCase):
    def test_flood_during_admin_work(self):
        cfg = {"audit": {"window_s": 1, "windows_max": WINDOWS_MAX}}
        kernels = {"message_bus": {}, "immutable_log": {}, "audit": {}, "trust": {}}
        with GraceServer(kernels=kernels, config=cfg) as g:
            admin = g.first_admin()[0]
            g.login()
            self.wait_drained(g)
            dbs = [os.path.join(g.data_dir, n + ".db") for n in ("audit", "immutable_log")]
            before = sum(db_pages_bytes(p) for p in dbs)
            m0 = self.metrics(g)
            t0 = now_ms() - 1
            flood = Flood(self, g, seconds=4, procs=3, threads=2, sources=SOURCES,
                          paths=["/x", LONG_PATH])
            time.sleep(0.5)  # the flood is on
            want = {}  # request id -> (action, outcome)
            self.call(g, "POST", "/auth/users", {"username": "flood_bob", "password": PASSWORD,
                                                 "role": "user"}, 201, rid="fl-create")
            want["fl-create"] = ("POST /auth/users", "201")
            self.call(g, "POST", "/auth/users/flood_bob/password",
                      {"password": PASSWORD + " 2"}, 200, rid="fl-password")
            want["fl-password"] = ("POST /auth/users/flood_bob/password", "200")
            self.call(g, "POST", "/kernel-ports/trust/stop", None, 202, rid="fl-stop")
            want["fl-stop"] = ("POST /kernel-ports/trust/stop", "202")
            g.wait_kernel("trust", lambda k: k["state"] == "stopped")
            self.call(g, "POST", "/kernel-ports/trust/start", None, 202, rid="fl-start")
            want["fl-start"] = ("POST /kernel-ports/trust/start", "202")
            trust = g.wait_kernel("trust", lambda k: k["state"] == "ready")
            self.call(g, "DELETE", "/auth/users/flood_bob", None, 200, rid="fl-delete")
            want["fl-delete"] = ("DELETE /auth/users/flood_bob", "200")
            res = flood.wait(scaled(60))
            answered = res["answered_all"]
            print("flood: %r" % res, file=sys.stderr)
            self.assertEqual(set(res["answered"]), {"401"}, res)
            self.assertGreaterEqual(answered, FLOOD_MIN,
                                    "too small a flood to show anything: %r" % res)

            # The admin's requests, each exactly once, and trust's state changes.
            def admin_events():
                got = self.by_rid(self.events(g, actor=admin, since=t0))
                return got if set(want) <= set(got) else None
            got = g.wait_for(admin_events, scaled(20), interval=0.2,
                             message="the admin's requests in the audit trail")
            for rid, (action, outcome) in want.items():
                self.assertEqual(len(got[rid]), 1, got[rid])
                e = got[rid][0]
                self.assertEqual((e["action"], e["outcome"], e["source_ip"]),
                                 (action, outcome, "127.0.0.1"), e)
            states = [e["details"] for e in self.events(g, action="kernel.state",
                                                        resource="kernel/trust", since=t0)]
            self.assertIn("stopped", [s["to"] for s in states], states)
            self.assertEqual(states[-1]["to"], "ready", states)
            self.assertEqual(states[-1]["pid"], trust["pid"], states)

            # The flood: aggregates only, adding up to what was answered.
            def flood_events():
                evs = self.events(g, actor="anonymous", since=t0)
                total = sum(e["details"]["count"] for e in evs
                            if e["action"] == "request.refused")
                return evs if total >= answered else None
            evs = g.wait_for(flood_events, scaled(30), interval=0.2,
                             message=lambda: "aggregates adding up to %d requests: %r"
                             % (answered, self.metrics(g)))
            self.wait_drained(g)
            evs = self.events(g, actor="anonymous", since=t0)
            self.assertEqual({e["action"] for e in evs}, {"request.refused"})
            counted = sum(e["details"]["count"] for e in evs)
            if res["errors"] == 0:
                self.assertEqual(counted, answered, res)
            else:  # a request cut short may or may not have been answered
                self.assertTrue(answered <= counted <= res["sent"], (counted, res))
            windows = {}
            for e in evs:
                d = e["details"]
                self.assertEqual(e["outcome"], "refused")
                self.assertEqual(d["window_ms"], 1000)
                self.assertLessEqual(len(d["sample_path"].encode()), 128, d)
                windows.setdefault(d["window_start_ms"], []).append(e)
                if d.get("other_sources"):
                    self.assertEqual((e["resource"], e["source_ip"], d["kind"]),
                                     ("source/others", None, "*"), e)
                else:
                    self.assertIn(e["source_ip"], SOURCES, e)
                    self.assertEqual(e["resource"], "source/" + e["source_ip"])
                    self.assertEqual(d["kind"], "POST 401", e)
            for start, es in windows.items():
                self.assertLessEqual(len(es), WINDOWS_MAX + 1, es)
                keys = [(e["source_ip"], e["details"]["kind"]) for e in es]
                self.assertEqual(len(keys), len(set(keys)), keys)
            self.assertTrue([e for e in evs if e["details"].get("other_sources")],
                            "16 sources and windows_max %d: some folded" % WINDOWS_MAX)
            self.assertTrue([e for e in evs if e["details"]["sample_path"].endswith(" bytes]")],
                            "a 2 KB sample path is clipped with its marker")
            self.assertLessEqual(len(evs), (WINDOWS_MAX + 1) * (len(windows)), evs)

            m1 = self.metrics(g)

            def delta(name):
                return m1.get(name, 0) - m0.get(name, 0)
            self.assertEqual(delta('grace_audit_events_total{class="noise",result="counted"}'),
                             counted)
            self.assertGreater(delta('grace_audit_events_total{class="noise",result="folded"}'),
                               0)
            self.assertEqual(delta('grace_audit_events_total{class="noise",result="dropped"}'),
                             0)
            self.assertEqual(delta('grace_outbox_events_total{destination="audit",'
                                   'result="dropped"}'), 0)

            # Everything is in the immutable log; the databases grew a little.
            g.wait_for(lambda: all(e["log_index"] is not None
                                   for e in self.events(g, since=t0)),
                       scaled(30), interval=0.2, message="every new event in the log")
            after = sum(db_pages_bytes(p) for p in dbs)
            print("databases: %d -> %d bytes of pages" % (before, after), file=sys.stderr)
            self.assertLessEqual(after - before, DB_GROWTH_MAX,
                                 "%d requests grew the audit and log databases by %d bytes"
                                 % (answered, after - before))


class AuditDown(AuditFloodCase):
    """Security events made while the audit kernel is down, during a flood."""

    def start_server(self):
        cfg = {"audit": {"window_s": 1}}
        kernels = {"message_bus": {}, "immutable_log": {}, "audit": {}, "trust": {}}
        g = GraceServer(kernels=kernels, config=cfg)
        self.addCleanup(g.close)
        g.start()
        g.login()
        return g

    def security_burst(self, g):
        """Stops the audit kernel, then makes security events of every kind
        during a flood; returns what must be in the trail."""
        t0 = now_ms() - 1
        self.kernel_action(g, "audit", "stop", "stopped")
        flood = Flood(self, g, seconds=3, procs=2, threads=2)
        want = {}
        self.call(g, "POST", "/auth/users", {"username": "down_bob", "password": PASSWORD,
                                             "role": "user"}, 201, rid="dn-create")
        want["dn-create"] = ("POST /auth/users", "201")
        g.login("down_bob", PASSWORD)
        for _ in range(3):
            st, _, _ = g.http("POST", "/auth/login", {"username": "down_bob",
                                                      "password": "wrong password"},
                              auth=False, timeout=scaled(30))
            self.assertEqual(st, 401)
        self.call(g, "POST", "/auth/users/down_bob/password", {"password": PASSWORD + " 2"},
                  200, rid="dn-password")
        want["dn-password"] = ("POST /auth/users/down_bob/password", "200")
        self.call(g, "POST", "/kernel-ports/trust/stop", None, 202, rid="dn-stop")
        want["dn-stop"] = ("POST /kernel-ports/trust/stop", "202")
        g.wait_kernel("trust", lambda k: k["state"] == "stopped")
        self.call(g, "POST", "/kernel-ports/trust/start", None, 202, rid="dn-start")
        want["dn-start"] = ("POST /kernel-ports/trust/start", "202")
        g.wait_kernel("trust", lambda k: k["state"] == "ready")
        _, _, inc = self.call(g, "POST", "/network-healer/heal",
                              {"component_name": "trust", "action": "restart_component"},
                              200, rid="dn-heal")
        want["dn-heal"] = ("POST /network-healer/heal", "200")
        self.call(g, "DELETE", "/auth/users/down_bob", None, 200, rid="dn-delete")
        want["dn-delete"] = ("DELETE /auth/users/down_bob", "200")
        res = flood.wait(scaled(60))
        self.assertGreater(res["answered_all"], 0, res)
        m = self.metrics(g)
        # All of it waits in the journal (events, and the open or closed
        # aggregate of the failed logins).
        self.assertGreaterEqual(m.get("grace_audit_journal_events", 0), len(want) + 5, m)
        return t0, want, inc

    def check_all_there(self, g, t0, want, inc):
        admin = g.first_admin()[0]

        def there():
            got = self.by_rid(self.events(g, actor=admin, since=t0))
            return got if set(want) <= set(got) else None
        got = g.wait_for(there, scaled(30), interval=0.2,
                         message=lambda: "the admin's requests in the audit trail: %r"
                         % self.metrics(g))
        for rid, (action, outcome) in want.items():
            self.assertEqual(len(got[rid]), 1, "%s recorded %d times" % (rid, len(got[rid])))
            self.assertEqual((got[rid][0]["action"], got[rid][0]["outcome"]),
                             (action, outcome))

        def logins():
            evs = self.events(g, actor="down_bob", action="auth.login", since=t0)
            failed = sum(e["details"]["count"] for e in evs if e["outcome"] == "failed")
            return evs if failed >= 3 and [e for e in evs if e["outcome"] == "ok"] else None
        evs = g.wait_for(logins, scaled(15), interval=0.2, message="down_bob's logins")
        self.assertEqual(sum(e["details"]["count"] for e in evs if e["outcome"] == "failed"), 3,
                         evs)
        self.assertEqual(len([e for e in evs if e["outcome"] == "ok"]), 1, evs)
        heals = [e for e in self.events(g, action="heal", resource="kernel/trust", since=t0)
                 if e["details"]["id"] == inc["id"]]
        self.assertEqual(len(heals), 1, heals)
        self.assertEqual(heals[0]["outcome"], inc["outcome"])
        trust = [e["details"]["to"] for e in self.events(g, action="kernel.state",
                                                         resource="kernel/trust", since=t0)]
        self.assertIn("stopped", trust)
        self.assertGreaterEqual(trust.count("ready"), 2, trust)  # the start and the heal
        own = [e["details"]["to"] for e in self.events(g, action="kernel.state",
                                                       resource="kernel/audit", since=t0)]
        self.assertIn("stopped", own)
        states = [(e["resource"], e["details"]["from"], e["details"]["to"], e["ts_ms"])
                  for e in self.events(g, action="kernel.state", since=t0)]
        self.assertEqual(len(states), len(set(states)), "a state change stored twice")
        self.wait_drained(g)
        m = self.metrics(g)
        for r in ("lost", "rejected"):
            self.assertEqual(m.get('grace_audit_events_total{class="security",result="%s"}' % r),
                             0, m)

    def test_audit_down_then_up(self):
        g = self.start_server()
        t0, want, inc = self.security_burst(g)
        self.kernel_action(g, "audit", "start", "ready")
        self.check_all_there(g, t0, want, inc)

    def test_restart_while_audit_down(self):
        g = self.start_server()
        t0, want, inc = self.security_burst(g)
        # They wait in grace.db, not in memory: a restart loses none.
        g.stop()
        g.start()
        g.login()
        self.check_all_there(g, t0, want, inc)


class FullJournal(AuditFloodCase):
    def test_full_journal_refuses_then_recovers(self):
        cfg = {"audit": {"window_s": 1, "journal_max_events": 200}}
        kernels = {"message_bus": {}, "immutable_log": {}, "audit": {},
                   "trust": {"restart_burst": 1000}}
        with GraceServer(kernels=kernels, config=cfg) as g:
            admin = g.first_admin()[0]
            g.login()
            self.wait_drained(g)
            t0 = now_ms() - 1
            self.kernel_action(g, "audit", "stop", "stopped")
            admitted, refused = [], []
            for i in range(400):
                rid = "full-%03d" % i
                st, hdrs, out = self.call(g, "POST", "/full-%03d" % i, rid=rid)
                if st == 503:
                    refused.append(rid)
                    self.assertEqual(out["error"]["code"], "audit_unavailable", out)
                    self.assertTrue(hdrs.get("Retry-After"), hdrs)
                    break
                self.assertEqual(st, 404, out)
                admitted.append(rid)
            self.assertTrue(refused, "no 503 after %d requests" % len(admitted))
            # 180 (200 less its reserve) less what was waiting already.
            self.assertGreaterEqual(len(admitted), 150)
            # Refused before acting: a user is not created.
            st, _, _ = self.call(g, "POST", "/auth/users",
                                 {"username": "full_carol", "password": PASSWORD},
                                 rid="full-create")
            self.assertEqual(st, 503)
            refused.append("full-create")
            self.call(g, "GET", "/auth/users", expect=200)
            st, _, users = self.call(g, "GET", "/auth/users", expect=200)
            self.assertNotIn("full_carol", [u["name"] for u in users["users"]])
            # Anonymous refusals are not held up by it; reads go on.
            self.call(g, "POST", "/x", expect=401, auth=False)
            self.call(g, "GET", "/kernel-ports", expect=200)
            # Grace's own events go on: into the reserve, then one overflow row.
            m0 = self.metrics(g)
            kills = 0
            while self.metrics(g)['grace_audit_events_total{class="security",'
                                  'result="overflowed"}'] == 0:
                self.assertLess(kills, 30, self.metrics(g))
                pid = g.kernel("trust")["pid"]
                os.kill(pid, signal.SIGKILL)
                kills += 1
                g.wait_kernel("trust", lambda k: k["state"] == "ready" and k["pid"] != pid)
            self.assertLessEqual(self.metrics(g)["grace_audit_journal_events"], 200 + 1)
            # Starting the audit kernel is let through, and drains it all.
            self.kernel_action(g, "audit", "start", "ready")
            self.wait_drained(g)
            m1 = self.metrics(g)
            overflowed = (m1['grace_audit_events_total{class="security",result="overflowed"}']
                          - m0['grace_audit_events_total{class="security",result="overflowed"}'])
            self.assertGreaterEqual(m1["grace_audit_requests_refused_total"], 2)
            got = self.by_rid(self.events(g, actor=admin, since=t0))
            for rid in admitted:
                self.assertEqual(len(got.get(rid, [])), 1, rid)
            for rid in refused:
                self.assertNotIn(rid, got)
            # One overflow row per action and resource (trust's, and the
            # audit kernel's own start), whose counts add up.
            over = [e for e in self.events(g, actor="grace", since=t0)
                    if e["outcome"] == "overflow"]
            keys = [(e["action"], e["resource"]) for e in over]
            self.assertEqual(len(keys), len(set(keys)), over)
            self.assertIn(("kernel.state", "kernel/trust"), keys)
            self.assertEqual(sum(e["details"]["count"] for e in over), overflowed, over)
            # And state changes are admitted again.
            self.call(g, "POST", "/full-after", expect=404)


class ResentEvents(AuditFloodCase):
    def test_resent_event_is_stored_once(self):
        """The outbox resends a batch it is not sure was stored (a timeout,
        a restart before it could delete it): the audit kernel stores an
        event whose uid it knows only once, and answers its first id."""
        with GraceServer(kernels={"immutable_log": {}, "audit": {}}) as g:
            def e(n, uid=None):
                ev = {"actor": "resend", "action": "a", "resource": "r/%d" % n, "outcome": "o"}
                if uid is not None:
                    ev["uid"] = uid
                return ev
            _, _, first = self.call(g, "POST", AUDIT + "/events", [e(1, "u-1"), e(2, "u-2")],
                                    expect=201)
            _, _, again = self.call(g, "POST", AUDIT + "/events",
                                    [e(2, "u-2"), e(3, "u-3"), e(3, "u-3"), e(4), e(4)],
                                    expect=201)
            self.assertEqual(again["ids"][0], first["ids"][1])
            self.assertEqual(again["ids"][1], again["ids"][2])
            self.assertNotEqual(again["ids"][3], again["ids"][4])
            got = self.events(g, actor="resend")
            self.assertEqual([x["resource"] for x in got], ["r/1", "r/2", "r/3", "r/4", "r/4"])
            self.assertNotIn("uid", got[0])
            for bad in ("", "u" * 65, 7):
                _, _, out = self.call(g, "POST", AUDIT + "/events", e(5, bad), expect=400)
                self.assertIn("uid", out["error"]["message"])


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--flood":
        flood_main(int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]),
                   sys.argv[5].split(","), json.loads(sys.argv[6]))
        sys.exit(0)
    unittest.main()
