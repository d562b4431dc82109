"""The message bus on NATS JetStream ([message_bus] engine = jetstream)
against the embedded bus, with the same client script.

A three-node JetStream cluster of nats-server runs on loopback ports of
this test's own (nats_cluster.py), each node with its store in the test's
temporary directory. Two Grace servers run: one with the embedded bus, one
with the bus on the cluster (three replicas). The same script runs against
each: several publishers publish under load while an SSE subscriber
(resuming with Last-Event-ID whenever its stream breaks) and a consumer
group (poll, ack by receipt) read; against JetStream, one NATS node is
killed half-way. Both runs must show the same thing: every acknowledged
message delivered, through SSE in offset order with each publisher's
messages in the order they were acknowledged, and through the group;
nothing delivered that was not published. A second scenario compares the
groups' redelivery and dead letters message for message. A third backs
the JetStream Grace's stream up and restores it (docs/backup.md
"JetStream").

Under GRACE_SANITIZED=1 the load is smaller (never skipped)."""

import http.client
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, os.path.dirname(__file__))
from harness import GraceServer, GraceTestCase, PortReservation, scaled  # noqa: E402
from nats_cluster import NatsCluster  # noqa: E402
from test_bus import SSE, Bus  # noqa: E402

SANITIZED = os.environ.get("GRACE_SANITIZED") == "1"
PUBLISHERS = 4
PER_PUBLISHER = 40 if SANITIZED else 150


def load_script(g, subject_root, midway=None):
    """Publishes under load while an SSE subscriber and a consumer group
    read; returns what each side saw. `midway` runs once, half-way."""
    bus = Bus(g)
    stop = threading.Event()
    lock = threading.Lock()
    sse = []       # (offset, payload) in arrival order
    group = {}     # payload key -> offset, from the group
    acked = {}     # payload key -> offset the publish was answered with
    attempted = set()
    failed = []
    sse_reconnects = [0]
    pattern = subject_root + ".>"

    def key(p):
        return (p["p"], p["n"])

    current = [None]  # the open stream, shut down from outside to stop the reader

    def sse_reader():
        last = None
        while not stop.is_set():
            try:
                q = "subject=%s&from=earliest&heartbeat_ms=300" % pattern
                s = SSE(bus, q, last_event_id=last, timeout=5)
                current[0] = s
                if stop.is_set():
                    break
                if s.status != 200:
                    s.close()
                    time.sleep(0.1)
                    continue
                try:
                    while not stop.is_set():
                        ev = s.event()
                        last = ev["id"]
                        with lock:
                            sse.append((int(ev["id"]), ev["data"]["payload"]))
                finally:
                    s.close()
            except (OSError, EOFError, http.client.HTTPException, ValueError):
                pass
            sse_reconnects[0] += 1
            time.sleep(0.05)

    def consumer():
        while not stop.is_set():
            try:
                st, _, out = bus.req("GET", "/groups/load/poll?subject=%s&max=200&wait_ms=300"
                                     "&visibility_ms=4000" % pattern, timeout=10)
            except OSError:
                continue
            if st != 200:
                time.sleep(0.05)
                continue
            with lock:
                for m in out["messages"]:
                    group.setdefault(key(m["payload"]), m["offset"])
            receipts = [m["receipt"] for m in out["messages"]]
            for _ in range(20):
                if not receipts:
                    break
                try:
                    st, _, _ = bus.req("POST", "/groups/load/ack", {"receipts": receipts})
                except OSError:
                    st = None
                if st == 200:
                    break
                time.sleep(0.1)

    progress = [0]
    total = PUBLISHERS * PER_PUBLISHER

    def publisher(p):
        i = 0
        while i < PER_PUBLISHER:
            # Every fourth request carries three messages.
            n = 3 if i % 4 == 3 and i + 3 <= PER_PUBLISHER else 1
            msgs = [{"subject": "%s.p%d" % (subject_root, p), "payload": {"p": p, "n": i + j}}
                    for j in range(n)]
            with lock:
                attempted.update(key(m["payload"]) for m in msgs)
            try:
                st, _, out = bus.req("POST", "/publish", msgs, timeout=20)
            except OSError as e:
                st, out = None, repr(e)
            with lock:
                if st == 200:
                    for m, a in zip(msgs, out):
                        acked[key(m["payload"])] = a["offset"]
                else:
                    failed.append((st, out))
                progress[0] += n
                fire = midway is not None and progress[0] >= total // 2 and not fired[0]
                if fire:
                    fired[0] = True
            if fire:
                midway()
            i += n

    fired = [False]
    readers = [threading.Thread(target=sse_reader), threading.Thread(target=consumer)]
    for t in readers:
        t.start()
    pubs = [threading.Thread(target=publisher, args=(p,)) for p in range(PUBLISHERS)]
    t0 = time.monotonic()
    timing = {}
    try:
        for t in pubs:
            t.start()
        for t in pubs:
            t.join()
        timing["publish_s"] = round(time.monotonic() - t0, 2)

        def all_seen():
            with lock:
                seen = {key(p) for _, p in sse}
                return set(acked) <= seen and set(acked) <= set(group)
        deadline = time.monotonic() + scaled(25)
        while not all_seen() and time.monotonic() < deadline:
            time.sleep(0.05)
        timing["delivered_s"] = round(time.monotonic() - t0, 2)
    finally:
        stop.set()
        s = current[0]
        if s is not None:
            try:
                s.conn.sock.shutdown(socket.SHUT_RDWR)
            except (OSError, AttributeError):
                pass
        for t in readers:
            t.join(scaled(15))
    return {"timing": timing, "acked": acked, "attempted": attempted, "failed": failed, "sse": sse,
            "group": group, "sse_reconnects": sse_reconnects[0]}


def ok_or_retry(bus, method, path, body=None):
    """As a client does: a 503 (JetStream electing a leader after a node
    went away) is tried again; anything else but 200 fails."""
    deadline = time.monotonic() + scaled(15)
    while True:
        st, _, out = bus.req(method, path, body)
        if st == 200:
            return out
        if st != 503 or time.monotonic() > deadline:
            raise AssertionError("%s %s: %s %r" % (method, path, st, out))
        time.sleep(0.2)


def dead_letter_script(g):
    """A group with visibility 300 ms and one delivery: the message comes
    once, is not acked, and is dead-lettered when it comes due again."""
    bus = Bus(g)
    off = ok_or_retry(bus, "POST", "/publish", {"subject": "dl.jobs", "payload": {"job": 1},
                                                "key": "k", "headers": {"h": "v"}})["offset"]
    first = []
    deadline = time.monotonic() + scaled(15)
    while not first and time.monotonic() < deadline:
        # A long poll may end empty while JetStream elects a consumer leader.
        first = ok_or_retry(bus, "GET", "/groups/dl/poll?subject=dl.jobs&max=5&wait_ms=1000"
                            "&visibility_ms=300&max_deliveries=1")["messages"]
    dead = []
    while not dead and time.monotonic() < deadline:
        out = ok_or_retry(bus, "GET", "/groups/dl/poll?max=5&wait_ms=500")
        assert out["messages"] == [], out
        dead = ok_or_retry(bus, "GET", "/groups/dlq/poll?subject=$dlq.dl.>&max=5"
                           "&wait_ms=200")["messages"]
    info = ok_or_retry(bus, "GET", "/groups/dl")
    return {
        "first": [(m["payload"], m["deliveries"], m["receipt"] == "%d-1" % off) for m in first],
        "dead": [(m["subject"], m["payload"], m["key"],
                  {k: v for k, v in m["headers"].items() if k != "x-dlq-offset"},
                  m["headers"].get("x-dlq-offset") == str(off)) for m in dead],
        "group": (info["subject"], info["visibility_ms"], info["max_deliveries"],
                  info["in_flight"]),
    }


def basics_script(g):
    """The API's shapes, the same on both engines: publish with key and
    headers, SSE with a pattern and a Last-Event-ID resume, a group's
    poll, ack by offset and by receipt, its settings, a conflicting
    pattern, an unknown group. Offsets are given relative to the first."""
    bus = Bus(g)
    out = ok_or_retry(bus, "POST", "/publish", [
        {"subject": "b.x", "payload": {"i": i}, "key": "k%d" % i, "headers": {"n": str(i)}}
        if i % 2 else {"subject": "b.y.z" if i == 4 else "b.y", "payload": i}
        for i in range(6)])
    base = out[0]["offset"]
    rel = [(m["subject"], m["offset"] - base) for m in out]
    s = SSE(bus, "subject=b.*&from=%d" % base)
    first = s.take(4)
    s.close()

    def shape(e):
        d = e["data"]
        return (int(e["id"]) - base, e["event"], d["offset"] - base, d["subject"], d["key"],
                d["headers"], d["payload"])
    s = SSE(bus, "subject=b.*", last_event_id=first[1]["id"])
    resumed = s.take(2)
    s.close()
    polled = ok_or_retry(bus, "GET", "/groups/bg/poll?subject=b.>&max=4&wait_ms=2000"
                         "&visibility_ms=60000&max_deliveries=3")["messages"]
    acks = ok_or_retry(bus, "POST", "/groups/bg/ack", {
        "offsets": [polled[0]["offset"]], "receipts": [polled[1]["receipt"],
                                                      "%d-2" % polled[2]["offset"]]})
    info = ok_or_retry(bus, "GET", "/groups/bg")
    listed = [x["name"] for x in ok_or_retry(bus, "GET", "/groups")["groups"]]
    conflict = bus.req("GET", "/groups/bg/poll?subject=other.>")[0]
    unknown = bus.req("GET", "/groups/nosuch/poll")[0]
    bad = bus.req("GET", "/subscribe?subject=a.b*")[0]
    deleted = ok_or_retry(bus, "DELETE", "/groups/bg")
    gone = bus.req("GET", "/groups/bg")[0]
    return {
        "published": rel,
        "sse": [shape(e) for e in first],
        "resumed": [shape(e) for e in resumed],
        "polled": [(m["offset"] - base, m["payload"], m["deliveries"],
                    m["receipt"] == "%d-1" % m["offset"]) for m in polled],
        "acks": (acks["acked"], acks["not_found"], len(acks["stale"])),
        "group": (info["name"], info["subject"], info["visibility_ms"],
                  info["max_deliveries"], info["in_flight"]),
        "listed": "bg" in listed,
        "statuses": (conflict, unknown, bad, deleted, gone),
    }


class BusJetStream(GraceTestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="grace-nats-")
        cls.res = PortReservation()
        cls.cluster = NatsCluster(cls.res.offset, cls.tmp)
        cls.embedded = cls.js = None
        try:
            cls.cluster.start(timeout=scaled(20))
            cls.js = GraceServer(kernels={"message_bus": {}}, reservation=cls.res, config={
                "message_bus": {"engine": "jetstream", "nats_urls": ",".join(cls.cluster.urls()),
                                "stream_prefix": "T", "replicas": 3,
                                "publish_timeout_ms": 8000}})
            cls.js.__enter__()
            cls.embedded = GraceServer(kernels={"message_bus": {}})
            cls.embedded.__enter__()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        # The NATS nodes go whatever a server's close reports (a sanitizer
        # finding raises there): they are this test's processes.
        try:
            try:
                if cls.js is not None:
                    cls.js.__exit__(None, None, None)
            finally:
                if cls.embedded is not None:
                    cls.embedded.__exit__(None, None, None)
        finally:
            cls.cluster.close()
            cls.res.release()
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def check_load(self, name, r):
        acked, sse, group = r["acked"], r["sse"], r["group"]
        self.assertGreater(len(acked), PUBLISHERS * PER_PUBLISHER // 2, (name, r["failed"][:5]))
        seen = {(p["p"], p["n"]) for _, p in sse}
        self.assertEqual(set(acked) - seen, set(), "%s: acknowledged, never streamed" % name)
        self.assertEqual(set(acked) - set(group), set(), "%s: acknowledged, never polled" % name)
        self.assertEqual(seen - r["attempted"], set(), "%s: streamed, never published" % name)
        self.assertEqual(set(group) - r["attempted"], set(), name)
        offsets = [o for o, _ in sse]
        self.assertEqual(offsets, sorted(set(offsets)), "%s: SSE out of order or twice" % name)
        for k, off in acked.items():  # the offset the publish was answered with
            self.assertIn((off, {"p": k[0], "n": k[1]}), sse, name)
            self.assertEqual(group[k], off, name)
        for p in range(PUBLISHERS):
            mine = [pl["n"] for _, pl in sse if pl["p"] == p and (p, pl["n"]) in acked]
            self.assertEqual(mine, sorted(mine), "%s: publisher %d out of order" % (name, p))
        return {"delivered": set(acked) & seen & set(group)}

    # Runs last (unittest's order is by name): the others need not wait
    # for the elections that follow the kill.
    def test_load_with_a_nats_node_killed(self):
        emb = load_script(self.embedded, "load")
        js = load_script(self.js, "load", midway=lambda: self.cluster.kill(1))
        self.assertIsNotNone(self.cluster.procs[1].poll(), "the node was killed")
        e, j = self.check_load("embedded", emb), self.check_load("jetstream", js)
        # The embedded bus acknowledges everything; JetStream may refuse a
        # few while it elects a new leader, and says so (503): each side
        # delivers exactly what it acknowledged.
        self.assertEqual(emb["failed"], [])
        self.assertEqual(e["delivered"], set(emb["acked"]))
        self.assertEqual(j["delivered"], set(js["acked"]))
        for st, _ in js["failed"]:
            self.assertIn(st, (503, None))
        st, _, stats = Bus(self.js).req("GET", "/stats")
        self.assertEqual(st, 200)
        self.assertEqual(stats["engine"], "jetstream")
        self.assertGreaterEqual(stats["published"], len(js["acked"]))

    def test_api_shapes_match(self):
        emb = basics_script(self.embedded)
        js = basics_script(self.js)
        self.assertEqual(len(emb["sse"]), 4)
        self.assertEqual(emb["resumed"], emb["sse"][2:4])
        self.assertEqual(emb["acks"], (2, [], 1))
        self.assertEqual(emb["statuses"], (409, 404, 400, {"group": "bg", "deleted": True}, 404))
        self.assertEqual(js, emb)

    def test_backup_and_restore_of_the_stream(self):
        """docs/backup.md "JetStream": a backup holds the stream (messages
        and the groups' positions); a restore puts it back in the cluster,
        refusing an existing stream without --force; a Grace started on
        the restored data directory finds every acknowledged message and
        the group where it stood."""
        import json
        import subprocess
        import tarfile
        from harness import GRACE_BIN
        from healer_support import run_cli
        cfg = {"message_bus": {"engine": "jetstream", "nats_urls": ",".join(self.cluster.urls()),
                               "stream_prefix": "BK", "replicas": 3,
                               "publish_timeout_ms": 8000}}
        scheduled = os.path.join(self.tmp, "scheduled")
        g = GraceServer(kernels={"message_bus": {}}, autostart=False, config=dict(
            cfg, backup={"schedule": "@every 1h", "dir": scheduled, "keep": 2, "no_secrets": 1}))
        self.addCleanup(g.close)
        g.start()
        bus = Bus(g)
        acked = [ok_or_retry(bus, "POST", "/publish", {"subject": "bk.x", "payload": {"n": i}})
                 ["offset"] for i in range(12)]
        # The group takes and acknowledges the first five.
        got = []
        deadline = time.monotonic() + scaled(15)
        while len(got) < 5 and time.monotonic() < deadline:
            got += ok_or_retry(bus, "GET", "/groups/bkg/poll?subject=bk.>&max=%d&wait_ms=1000"
                               "&visibility_ms=60000" % (5 - len(got)))["messages"]
        self.assertEqual([m["offset"] for m in got], acked[:5])
        out = ok_or_retry(bus, "POST", "/groups/bkg/ack",
                          {"receipts": [m["receipt"] for m in got]})
        self.assertEqual(out["acked"], 5, out)

        # The snapshot is grace serve's to take: not the token's holder
        # calling the kernel without naming itself, not an admin through
        # the API (/bus does not forward it; /kernels/NAME does, for the
        # admin, whom the kernel refuses).
        self.assertEqual(bus.req("GET", "/snapshot")[0], 403)
        self.assertEqual(g.http("GET", "/bus/snapshot")[0], 404)
        st, _, out = g.http("GET", "/kernels/message_bus/snapshot")
        self.assertEqual((st, out["error"]["code"]), (403, "forbidden"), out)

        path = os.path.join(g.tmp, "bus.backup")
        # An SSE subscriber reads during the backup: its ephemeral consumer,
        # when JetStream's snapshot holds it, is no group to list or check.
        sse = SSE(bus, "subject=bk.>&from=earliest")
        self.assertEqual(len(sse.take(3)), 3)
        r = run_cli(g, "backup", path, "--no-secrets")
        sse.close()
        self.assertEqual(r.returncode, 0, r.stderr)
        with tarfile.open(path) as tar:
            manifest = json.loads(tar.extractfile("manifest.json").read())
            names = tar.getnames()
        self.assertIn("jetstream/BK_BUS.tar.s2", names)
        files = {f["name"]: f for f in manifest["files"]}
        self.assertEqual(files["jetstream/BK_BUS.tar.s2"]["kind"], "jetstream")
        self.assertNotIn("jetstream stream BK_BUS", [s["name"] for s in manifest["skipped"]])
        js = manifest["jetstream"]
        self.assertEqual((js["stream"], js["file"]), ("BK_BUS", "jetstream/BK_BUS.tar.s2"))
        # Grace's own events (grace.*) share the stream with ours.
        st = js["state"]
        self.assertGreaterEqual(st["messages"], 12, st)
        self.assertLessEqual(st["first_seq"], acked[0], st)
        self.assertGreaterEqual(st["last_seq"], acked[-1], st)
        groups = {c["name"]: c for c in js["consumers"]}
        self.assertEqual(list(groups), ["bkg"], js["consumers"])
        self.assertEqual(groups["bkg"]["ack_floor"], acked[4], js["consumers"])

        # The kernel's side, as grace serve calls it: a snapshot is taken
        # and held, read in pieces (several here: at most 1000 bytes each),
        # and dropped.
        grace = {"X-Grace-Caller": "grace"}
        code, _, snap = bus.req("GET", "/snapshot", headers=grace, timeout=60)
        self.assertEqual(code, 200, snap)
        self.assertGreater(snap["bytes"], 2000, snap)
        got = b""
        while True:
            code, _, piece = bus.req("GET", "/snapshot/%s?offset=%d&max=1000"
                                     % (snap["id"], len(got)), headers=grace)
            self.assertEqual(code, 200, piece)
            if not piece:
                break
            self.assertLessEqual(len(piece), 1000)
            got += piece
        self.assertEqual(len(got), snap["bytes"])
        self.assertEqual(bus.req("GET", "/snapshot/%s?offset=%d" % (snap["id"], len(got) + 1),
                                 headers=grace)[0], 400)
        self.assertEqual(bus.req("GET", "/snapshot/%s" % snap["id"])[0], 403)
        # Held with another taken after it (two backups may run together).
        code, _, other = bus.req("GET", "/snapshot", headers=grace, timeout=60)
        self.assertEqual(code, 200, other)
        for x in (snap, other):
            self.assertEqual(bus.req("GET", "/snapshot/%s?max=10" % x["id"], headers=grace)[0],
                             200)
            self.assertEqual(bus.req("DELETE", "/snapshot/%s" % x["id"], headers=grace)[0],
                             200)
        self.assertEqual(bus.req("GET", "/snapshot/%s?offset=0" % snap["id"],
                                 headers=grace)[0], 404)

        # A scheduled backup takes the stream too, and its proof (a restore
        # into a scratch directory) leaves the live cluster alone.
        code, _, body = g.http("POST", "/backup/schedule/run")
        self.assertEqual(code, 202, body)

        def idle():
            code, _, body = g.http("GET", "/backup/schedule")
            return body if code == 200 and not body["running"] and body["runs"] else None
        run = g.wait_for(idle, scaled(90), interval=0.2, message="the scheduled backup")["runs"][0]
        self.assertEqual((run["outcome"], run["verified"]), ("ok", True), run)
        with open(os.path.join(scheduled, run["archive"] + ".json")) as f:
            proof = json.load(f)["restore"]
        self.assertIs(proof["jetstream"]["restored"], False, proof)
        self.assertIn("--no-jetstream", {c["check"]: c for c in proof["checks"]}
                      ["jetstream stream BK_BUS"]["detail"])
        with tarfile.open(os.path.join(scheduled, run["archive"])) as tar:
            self.assertIn("jetstream/BK_BUS.tar.s2", tar.getnames())

        # After the backup: more messages, the rest acknowledged. The
        # restore must bring back the stream as it was, not as it is.
        ok_or_retry(bus, "POST", "/publish", [{"subject": "bk.after", "payload": i}
                                              for i in range(3)])
        rest = ok_or_retry(bus, "GET", "/groups/bkg/poll?max=20&wait_ms=1000")["messages"]
        self.assertTrue(rest)
        ok_or_retry(bus, "POST", "/groups/bkg/ack", {"receipts": [m["receipt"] for m in rest]})
        g.stop()

        g2 = GraceServer(kernels={"message_bus": {}}, config=cfg, autostart=False)
        self.addCleanup(g2.close)

        def restore(*extra):
            return subprocess.run([GRACE_BIN, "restore", path, "--data-dir", g2.data_dir,
                                   "--config", g2.config_path] + list(extra),
                                  capture_output=True, text=True, timeout=scaled(120))
        # A configuration without JetStream: refused before anything is
        # written; --no-jetstream restores the files only.
        g3 = GraceServer(kernels={"message_bus": {}}, autostart=False)
        self.addCleanup(g3.close)
        r = subprocess.run([GRACE_BIN, "restore", path, "--data-dir", g3.data_dir, "--config",
                            g3.config_path], capture_output=True, text=True, timeout=scaled(60))
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn("names no JetStream", r.stderr)
        self.assertFalse(os.path.exists(g3.data_dir) and os.listdir(g3.data_dir))
        r = subprocess.run([GRACE_BIN, "restore", path, "--data-dir", g3.data_dir,
                            "--no-jetstream", "--json"],
                           capture_output=True, text=True, timeout=scaled(60))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(json.loads(r.stdout)["jetstream"]["restored"], False, r.stdout)

        # The stream exists in the cluster: refused, nothing written.
        r = restore()
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn("BK_BUS", r.stderr)
        self.assertIn("--force", r.stderr)
        self.assertFalse(os.path.exists(g2.data_dir) and os.listdir(g2.data_dir))
        r = restore("--force", "--json")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        report = json.loads(r.stdout)
        self.assertIs(report["jetstream"]["restored"], True, report["jetstream"])
        self.assertEqual((report["jetstream"]["stream"], report["jetstream"]["messages"],
                          report["jetstream"]["first_seq"], report["jetstream"]["last_seq"]),
                         ("BK_BUS", st["messages"], st["first_seq"], st["last_seq"]),
                         report["jetstream"])
        checks = {c["check"]: c for c in report["checks"]}
        self.assertTrue(checks["jetstream stream BK_BUS"]["ok"], report["checks"])

        g2.start()
        bus2 = Bus(g2)
        subjects = ok_or_retry(bus2, "GET", "/subjects?subject=bk.>")["subjects"]
        self.assertEqual([(x["subject"], x["count"]) for x in subjects], [("bk.x", 12)])
        s = SSE(bus2, "subject=bk.>&from=earliest")
        events = s.take(12)
        s.close()
        self.assertEqual([(int(e["id"]), e["data"]["payload"]) for e in events],
                         [(off, {"n": i}) for i, off in enumerate(acked)])
        # The group stands where it stood: the five it acknowledged are not
        # delivered again, the seven after them are.
        info = ok_or_retry(bus2, "GET", "/groups/bkg")
        self.assertEqual(info["cursor"], acked[4] + 1, info)
        again = []
        deadline = time.monotonic() + scaled(15)
        while len(again) < 7 and time.monotonic() < deadline:
            again += ok_or_retry(bus2, "GET", "/groups/bkg/poll?max=20&wait_ms=1000")["messages"]
        self.assertEqual([m["offset"] for m in again], acked[5:])

    def test_dead_letters_match(self):
        emb = dead_letter_script(self.embedded)
        js = dead_letter_script(self.js)
        self.assertEqual(emb["first"], [({"job": 1}, 1, True)])
        self.assertEqual(len(emb["dead"]), 1, emb)
        self.assertEqual(js, emb)


if __name__ == "__main__":
    unittest.main(verbosity=2)
