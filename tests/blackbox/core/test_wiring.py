"""Wiring of the main process to the message bus and the audit trail
(src/outbox, src/serve.c, api_on_reply in src/api/server.c), through a real
`grace serve`:

- a kernel restart appears as audit events (actor grace, action
  kernel.state, resource kernel/NAME, one per transition) and as messages on
  grace.kernel.NAME.state with the same payloads;
- a heal appears as an audit event (action heal, the incident as details)
  and as a message on grace.healer.incident;
- a state-changing API request is recorded with the logged-in user's name,
  the method and path, the status, the caller's address and request id;
  reads are not recorded; a request refused before any authentication is
  counted in an aggregate per source, kind and window (docs/audit.md), and
  a failed login in one per source, user name and window;
- with the audit kernel stopped (or hung), kernel changes and heals go on,
  not slowed, the events wait in the outbox (grace_outbox_queued) and arrive,
  in order, once it is back; the same for the bus;
- /metrics shows grace_outbox_events_total and grace_outbox_queued.

Bus messages are read back with consumer-group polls through the gateway
(/kernels/message_bus/groups/G/poll), a fresh group for each read."""

import itertools
import math
import os
import re
import signal
import statistics
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
from harness import scaled  # noqa: E402
from audit_support import KERNELS, ServerCase, now_ms, qs  # noqa: E402

BUS = "/kernels/message_bus"
GROUPS = itertools.count(1)
PASSWORD = "a long wiring password"


def same(a, b):
    """Equal JSON values, non-integer numbers within 1e-8 relative: the
    kernels' JSON answers print them with 9 significant digits (see
    test_audit_known_bugs.py), the bus passes the sender's text on."""
    if isinstance(a, float) or isinstance(b, float):
        return (isinstance(a, (int, float)) and isinstance(b, (int, float))
                and math.isclose(a, b, rel_tol=1e-8))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


class Wiring(ServerCase):
    # -- helpers

    def wait_audit(self, pred, timeout=None, message="audit events", **q):
        """Polls the audit trail (filtered by q) until pred(events) is true."""
        def p():
            evs = self.events(**q)
            return evs if pred(evs) else None
        return self.g.wait_for(p, timeout or scaled(15), interval=0.05, message=message)

    def bus_messages(self, subject):
        """Every message on `subject` so far, read by a new consumer group."""
        group = "wiring-%d-%d" % (os.getpid(), next(GROUPS))
        msgs = []
        while True:
            out = self.call("GET", "%s/groups/%s/poll%s" % (
                BUS, group, qs(subject=subject, max=1000, wait_ms=0, **(
                    {"from": "earliest"} if not msgs else {}))))
            if not out["messages"]:
                break
            msgs.extend(out["messages"])
            self.call("POST", "%s/groups/%s/ack" % (BUS, group),
                      {"receipts": [m["receipt"] for m in out["messages"]]})
        self.call("DELETE", "%s/groups/%s" % (BUS, group), expect=None)
        for m in msgs:
            self.assertEqual(m["subject"], subject)
        return msgs

    def wait_bus(self, subject, pred, timeout=None, message=None):
        def p():
            msgs = self.bus_messages(subject)
            return msgs if pred(msgs) else None
        return self.g.wait_for(p, timeout or scaled(15), interval=0.05,
                               message=message or "messages on " + subject)

    def metrics(self):
        st, _, body = self.g.http("GET", "/metrics", auth=False, timeout=scaled(10))
        self.assertEqual(st, 200)
        text = body.decode() if isinstance(body, bytes) else body
        out = {}
        for line in text.splitlines():
            m = re.match(r'(grace_outbox_\w+)\{([^}]*)\} (\d+)$', line)
            if m:
                labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
                key = (m.group(1), labels.get("destination"), labels.get("result"))
                out[key] = int(m.group(3))
        return out, text

    def queued(self, dest):
        return self.metrics()[0][("grace_outbox_queued", dest, None)]

    def kernel_action(self, name, action, state):
        self.call("POST", "/kernel-ports/%s/%s" % (name, action), expect=202)
        return self.g.wait_kernel(name, lambda k: k["state"] == state)

    def restart(self, name):
        pid = self.g.kernel(name)["pid"]
        self.call("POST", "/kernel-ports/%s/restart" % name, expect=202)
        return self.g.wait_kernel(name, lambda k: k["state"] == "ready" and k["pid"] != pid)

    def heal(self, name, action="restart_component"):
        t = time.monotonic()
        inc = self.call("POST", "/network-healer/heal", {"component_name": name,
                                                         "action": action})
        return inc, time.monotonic() - t

    def check_chain(self, transitions, pid):
        """State changes of one restart: continuous, from ready back to ready
        with the new pid."""
        self.assertGreaterEqual(len(transitions), 2, transitions)
        self.assertEqual(transitions[0]["from"], "ready", transitions)
        self.assertEqual(transitions[-1]["to"], "ready", transitions)
        self.assertEqual(transitions[-1]["pid"], pid)
        for a, b in zip(transitions, transitions[1:]):
            self.assertEqual(a["to"], b["from"], transitions)

    @staticmethod
    def restarted(chain):
        return bool(chain) and chain[0]["from"] == "ready" and chain[-1]["to"] == "ready"

    # -- tests

    def test_01_metrics_are_exposed(self):
        m, text = self.metrics()
        self.assertIn("# TYPE grace_outbox_events_total counter", text)
        self.assertIn("# TYPE grace_outbox_queued gauge", text)
        for dest in ("bus", "audit"):
            for result in ("delivered", "dropped"):
                self.assertIn(("grace_outbox_events_total", dest, result), m, text)
            self.assertIn(("grace_outbox_queued", dest, None), m, text)
        # Every kernel's start was delivered to both.
        self.g.wait_for(lambda: self.metrics()[0][("grace_outbox_events_total", "bus",
                                                   "delivered")] >= 2 * len(KERNELS),
                        scaled(10), message="the start's state changes on the bus")
        self.assertEqual(m[("grace_outbox_events_total", "bus", "dropped")], 0)
        self.assertEqual(m[("grace_outbox_events_total", "audit", "dropped")], 0)

    def test_02_kernel_restart_is_published_and_audited(self):
        t0 = now_ms() - 1
        k = self.restart("trust")
        evs = self.wait_audit(lambda e: self.restarted([x["details"] for x in e]),
                              resource="kernel/trust", action="kernel.state", since=t0,
                              message="trust's restart in the audit trail")
        for e in evs:
            self.assertEqual((e["actor"], e["action"], e["resource"]),
                             ("grace", "kernel.state", "kernel/trust"))
            self.assertEqual(e["outcome"], e["details"]["to"])
            self.assertEqual(e["details"]["kernel"], "trust")
            self.assertEqual(e["details"]["port"], k["port"])
            self.assertIsNone(e["source_ip"])
        chain = [e["details"] for e in evs]
        self.check_chain(chain, k["pid"])

        msgs = self.wait_bus("grace.kernel.trust.state",
                             lambda m: self.restarted([x["payload"] for x in m
                                                       if x["payload"]["ts_ms"] >= t0]))
        payloads = [m["payload"] for m in msgs if m["payload"]["ts_ms"] >= t0]
        self.assertEqual(payloads, chain)
        offsets = [m["offset"] for m in msgs]
        self.assertEqual(offsets, sorted(offsets))
        subj = self.call("GET", BUS + "/subjects" + qs(subject="grace.kernel.trust.state"))
        self.assertEqual(subj["subjects"][0]["count"], len(msgs))

    def test_03_heal_is_published_and_audited(self):
        t0 = now_ms() - 1
        inc, _ = self.heal("trust")
        self.assertEqual(inc["component"], "trust")
        self.assertEqual(inc["outcome"], "healed", inc)
        evs = self.wait_audit(lambda e: any(x["details"]["id"] == inc["id"] for x in e),
                              action="heal", resource="kernel/trust", since=t0,
                              message="the heal in the audit trail")
        ev = [x for x in evs if x["details"]["id"] == inc["id"]]
        self.assertEqual(len(ev), 1, evs)
        ev = ev[0]
        self.assertEqual((ev["actor"], ev["outcome"]), ("grace", "healed"))
        for key in ("id", "component", "trigger", "playbook", "outcome", "started_ms",
                    "finished_ms"):
            self.assertEqual(ev["details"][key], inc[key], key)
        self.assertEqual(len(ev["details"]["steps"]), len(inc["steps"]))

        msgs = self.wait_bus("grace.healer.incident",
                             lambda m: any(x["payload"]["id"] == inc["id"] for x in m))
        mine = [m["payload"] for m in msgs if m["payload"]["id"] == inc["id"]]
        self.assertEqual(len(mine), 1)
        self.assertTrue(same(mine[0], ev["details"]), (mine[0], ev["details"]))
        # The heal restarted the kernel: its state changes went out too, and
        # the request that asked for it is on record as the admin's.
        self.wait_audit(lambda e: self.restarted([x["details"] for x in e]),
                        resource="kernel/trust", action="kernel.state", since=t0)
        self.wait_audit(lambda e: any(x["outcome"] == "200" for x in e),
                        actor=self.g.admin_user, action="POST /network-healer/heal", since=t0)

    def test_04_api_requests_are_recorded_with_actor_and_status(self):
        g = self.g
        t0 = now_ms() - 1
        g.create_user("wiring_alice", PASSWORD, role="user")
        token = g.login("wiring_alice", PASSWORD)
        me = {"Authorization": "Bearer " + token}

        def as_alice(method, path, body, expect, rid):
            return self.call(method, path, body, expect=expect,
                             headers=dict(me, **{"X-Request-Id": rid}))
        doc = as_alice("POST", "/librarian/documents",
                       {"title": "Wiring", "body": "who did what", "tags": ["w"]}, 201,
                       "wiring-created")
        as_alice("POST", "/librarian/documents", "not json", 400, "wiring-bad")
        as_alice("POST", "/kernel-ports/trust/restart", None, 403, "wiring-forbidden")
        as_alice("DELETE", "/librarian/documents/%d" % doc["id"], None, 200, "wiring-deleted")
        as_alice("GET", "/auth/me", None, 200, "wiring-read")
        self.call("POST", "/kernel-ports/trust/restart", expect=401, auth=False,
                  headers={"X-Request-Id": "wiring-anonymous"})
        st, _, _ = g.http("POST", "/auth/login", {"username": "wiring_alice",
                                                  "password": "not the password"},
                          timeout=scaled(30))
        self.assertEqual(st, 401)

        want = {
            "wiring-created": ("wiring_alice", "POST /librarian/documents",
                               "/librarian/documents", "201"),
            "wiring-bad": ("wiring_alice", "POST /librarian/documents",
                           "/librarian/documents", "400"),
            "wiring-forbidden": ("wiring_alice", "POST /kernel-ports/trust/restart",
                                 "/kernel-ports/trust/restart", "403"),
            "wiring-deleted": ("wiring_alice", "DELETE /librarian/documents/%d" % doc["id"],
                               "/librarian/documents/%d" % doc["id"], "200"),
        }

        def by_rid(evs):
            return {(e["details"] or {}).get("request_id"): e for e in evs
                    if isinstance(e["details"], dict)}
        evs = self.wait_audit(lambda e: set(want) <= set(by_rid(e)), since=t0,
                              message="the requests in the audit trail")
        got = by_rid(evs)
        for rid, (actor, action, resource, status) in want.items():
            e = got[rid]
            self.assertEqual((e["actor"], e["action"], e["resource"], e["outcome"]),
                             (actor, action, resource, status), e)
            self.assertEqual(e["source_ip"], "127.0.0.1")
        self.assertNotIn("wiring-read", got)
        # The anonymous request is noise: not an event of its own, but
        # counted in its source's aggregate for POST 401, which it opened.
        self.assertNotIn("wiring-anonymous", got)
        noise = self.wait_audit(
            lambda e: [x for x in e if x["details"]["sample_request_id"] == "wiring-anonymous"],
            actor="anonymous", action="request.refused", since=t0,
            message="the anonymous request's aggregate")
        agg = [x for x in noise if x["details"]["sample_request_id"] == "wiring-anonymous"]
        self.assertEqual(len(agg), 1, noise)
        agg = agg[0]
        self.assertEqual((agg["resource"], agg["outcome"], agg["source_ip"]),
                         ("source/127.0.0.1", "refused", "127.0.0.1"), agg)
        self.assertEqual(agg["details"]["kind"], "POST 401")
        self.assertEqual(agg["details"]["sample_path"], "/kernel-ports/trust/restart")
        self.assertEqual(agg["details"]["count"], 1, agg)
        self.assertFalse([e for e in evs if e["action"].startswith(("GET ", "HEAD "))])
        # The admin's user creation, and alice's logins, good and bad.
        self.assertTrue([e for e in evs if e["actor"] == g.admin_user and
                         e["action"] == "POST /auth/users" and e["outcome"] == "201"], evs)
        logins = self.wait_audit(lambda e: {"ok", "failed"} <= {x["outcome"] for x in e},
                                 actor="wiring_alice", action="auth.login", since=t0)
        self.assertEqual({e["resource"] for e in logins}, {"auth"})
        failed = [e for e in logins if e["outcome"] == "failed"]
        self.assertEqual([e["details"]["count"] for e in failed], [1], failed)
        self.assertEqual(failed[0]["source_ip"], "127.0.0.1")

    def test_05_audit_down_events_wait_and_heals_are_not_slowed(self):
        g = self.g
        base = [self.heal("trust")[1] for _ in range(3)]
        before, _ = self.metrics()
        t0 = now_ms() - 1
        self.kernel_action("audit", "stop", "stopped")
        try:
            # Kernel changes and heals go on while the audit kernel is down.
            k = self.restart("trust")
            heals = [self.heal("trust") for _ in range(3)]
            for inc, _ in heals:
                self.assertEqual(inc["outcome"], "healed", inc)
            down = [dt for _, dt in heals]
            # Kernel changes and heals go on to the bus meanwhile.
            ids = {inc["id"] for inc, _ in heals}
            self.wait_bus("grace.healer.incident",
                          lambda m: ids <= {x["payload"]["id"] for x in m})
            waiting = self.queued("audit")
            # 3 heals with their restarts, one more restart, these requests.
            self.assertGreaterEqual(waiting, 4 * 3 + 3, self.metrics()[1])
            self.assertEqual(self.queued("bus"), 0)
        finally:
            self.kernel_action("audit", "start", "ready")
        self.assertLess(statistics.median(down), 2 * statistics.median(base) + scaled(0.25),
                        "heals with the audit kernel down %r, up %r" % (down, base))
        self.assertLess(max(down), scaled(3), down)

        # Everything waiting arrives, in order, once the audit kernel is back.
        evs = self.wait_audit(lambda e: ids <= {x["details"]["id"] for x in e
                                                if x["action"] == "heal"},
                              actor="grace", since=t0,
                              message="the heals made while the audit kernel was down")
        g.wait_for(lambda: self.queued("audit") == 0, scaled(10),
                   message="the audit outbox empty")
        after, _ = self.metrics()
        self.assertEqual(after[("grace_outbox_events_total", "audit", "dropped")],
                         before[("grace_outbox_events_total", "audit", "dropped")])
        self.assertGreaterEqual(after[("grace_outbox_events_total", "audit", "delivered")]
                                - before[("grace_outbox_events_total", "audit", "delivered")],
                                waiting)
        evs = self.events(actor="grace", since=t0)
        own = [e["outcome"] for e in evs if e["resource"] == "kernel/audit"]
        self.assertEqual(own[:2], ["stopping", "stopped"], own)
        ts = [e["ts_ms"] for e in evs]
        self.assertEqual(ts, sorted(ts), "delivered in the order they happened")
        trust = [e["details"] for e in evs if e["resource"] == "kernel/trust"
                 and e["action"] == "kernel.state"]
        self.assertIn(k["pid"], [d["pid"] for d in trust])
        self.assertEqual(sum(1 for d in trust if d["to"] == "ready"), 1 + len(heals))

    def test_06_hung_audit_kernel_does_not_slow_heals(self):
        g = self.g
        base = [self.heal("trust")[1] for _ in range(2)]
        pid = g.kernel("audit")["pid"]
        t0 = now_ms() - 1
        os.kill(pid, signal.SIGSTOP)
        try:
            # Still "ready" to the supervisor: the outbox sends to it, and waits.
            heals = [self.heal("trust") for _ in range(2)]
        finally:
            os.kill(pid, signal.SIGCONT)
        down = [dt for _, dt in heals]
        self.assertLess(statistics.median(down), 2 * statistics.median(base) + scaled(0.25),
                        "heals with the audit kernel hung %r, not %r" % (down, base))
        ids = {inc["id"] for inc, _ in heals}
        self.wait_audit(lambda e: ids <= {x["details"]["id"] for x in e}, action="heal",
                        since=t0, timeout=scaled(20), message="the heals made while hung")

    def test_07_bus_down_messages_wait(self):
        t0 = now_ms() - 1
        self.kernel_action("message_bus", "stop", "stopped")
        try:
            k = self.restart("trust")
            self.g.wait_for(lambda: self.queued("bus") >= 3, scaled(10),
                            message="state changes waiting for the bus")
            # The audit trail does not wait for the bus.
            self.wait_audit(lambda e: self.restarted([x["details"] for x in e]),
                            resource="kernel/trust", action="kernel.state", since=t0)
        finally:
            self.kernel_action("message_bus", "start", "ready")
        msgs = self.wait_bus("grace.kernel.trust.state",
                             lambda m: self.restarted([x["payload"] for x in m
                                                       if x["payload"]["ts_ms"] >= t0]))
        self.check_chain([m["payload"] for m in msgs if m["payload"]["ts_ms"] >= t0],
                         k["pid"])
        own = [m["payload"]["to"] for m in self.bus_messages("grace.kernel.message_bus.state")
               if m["payload"]["ts_ms"] >= t0]
        self.assertEqual(own[:2], ["stopping", "stopped"], own)
        self.g.wait_for(lambda: self.queued("bus") == 0, scaled(10))
        self.assertEqual(self.metrics()[0][("grace_outbox_events_total", "bus", "dropped")], 0)


if __name__ == "__main__":
    unittest.main()
