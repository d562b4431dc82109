"""The self_healing kernel through :8000 (/kernels/self_healing/...), and
the healer asking it (docs/self_healing.md).

- A kernel killed (SIGKILL, a process this test's grace serve started)
  three times: one incident, flapping, with the signal as a root-cause
  hint.
- Heals of it climb the ladder (restart_component, then reset_port, then
  stop with a page), each step only after its cooldown (a heal asked
  sooner is held, with the time left); the global budget (3 an hour here)
  holds the next heal of another kernel.
- The immutable log killed, then the audit kernel (which depends on it):
  one incident, the log its cause, audit folded in; it resolves once both
  have been up for stable_ms.
- The postmortem of the first incident, in JSON and in Markdown, with the
  audit trail's events and the verified heals.

- A slow store (its database write-locked by this test) does not stop
  the kernel's loop: /health and the ladder answer while an advice and a
  crash wait for their writes; once the lock is released, the advice is
  answered and every event is in the store.

- A metrics condition watched for a kernel ([self_healing] watch.KERNEL)
  is an event of that kernel; one that does not hold is nothing.

(test_self_healing_floor.py: the healer without self_healing, learning
through it, approve_destructive.)
"""

import os
import signal
import sqlite3
import threading
import time
import unittest

from harness import GraceServer, GraceTestCase, spare_kernels
from harness import scaled as harness_scaled
from healer_support import heal

SH = "/kernels/self_healing"
QUIET = {"watchdog_ms": 600000, "health_interval_ms": 600000, "health_timeout_ms": 500,
         "restart_burst": 100}
OTHER = spare_kernels(1, exclude=("self_healing", "message_bus", "immutable_log", "audit",
                                  "learning", "alerts"))[0]
CONFIG = {"self_healing": {"ladder": "restart_component:0,reset_port:2000,stop:2000",
                           "dependencies": "audit:immutable_log",
                           "stable_ms": 6000, "flap_window_ms": 60000, "flap_threshold": 3,
                           "budget_per_hour": 3}}


def get(g, path):
    st, _, body = g.http("GET", SH + path)
    if st != 200:
        raise AssertionError("GET %s: %s %r" % (path, st, body))
    return body


def kill9(g, name):
    """SIGKILL the kernel's process (ours: the harness's grace serve started
    it) and wait until a new one is ready."""
    old = g.kernel(name)["pid"]
    os.kill(old, signal.SIGKILL)
    return g.wait_kernel(name, lambda k: k["state"] == "ready" and k["pid"] not in (None, old),
                         message="%s back after SIGKILL" % name)


def incidents_of(g, kernel, **q):
    q = "".join("&%s=%s" % kv for kv in q.items())
    return get(g, "/incidents?kernel=%s%s" % (kernel, q))["incidents"]


class SelfHealing(GraceTestCase):
    def test_incidents_ladder_budget_postmortem(self):
        kernels = {n: dict(QUIET) for n in ("message_bus", "self_healing", "immutable_log",
                                            "audit", OTHER)}
        with GraceServer(kernels=kernels, config=CONFIG) as g:
            # Three crashes: one incident, flapping, the signal as a hint.
            for _ in range(3):
                kill9(g, OTHER)
            inc = g.wait_for(lambda: next((i for i in incidents_of(g, OTHER)
                                           if i["crashes"] >= 3), None),
                             message="the crashes correlated")
            self.assertEqual(len(incidents_of(g, OTHER)), 1)
            self.assertEqual((inc["kernel"], inc["state"], inc["family"]),
                             (OTHER, "open", "availability"), inc)
            self.assertTrue(inc["flapping"], inc)
            self.assertEqual(inc["kernels"], [OTHER])
            self.assertIsNone(inc["resolved_at"])
            sig = [h for h in inc["cause"]["hints"] if h["kind"] == "signal"]
            self.assertEqual((sig[0]["signal"], sig[0]["name"]), (9, "SIGKILL"), inc["cause"])

            # The ladder: restart, then (too soon) held, then reset_port.
            st, h1 = heal(g, OTHER, issue_type="process_dead")
            self.assertEqual((st, h1["outcome"]), (200, "healed"), h1)
            self.assertEqual((h1["self_healing"]["decision"], h1["self_healing"]["step"],
                              h1["playbook"]), ("heal", 0, "restart_component"), h1)
            self.assertEqual(h1["self_healing"]["incident_id"], inc["id"])
            st, h2 = heal(g, OTHER, issue_type="process_dead")
            self.assertEqual((st, h2["outcome"]), (200, "held"), h2)
            self.assertEqual(h2["self_healing"]["reason"], "cooldown", h2)
            wait = h2["self_healing"]["retry_after_ms"]
            self.assertTrue(0 < wait <= 2000, h2)
            time.sleep(wait / 1000.0 + 0.05)  # the cooldown to pass, not an assertion
            # The cooldown counts from the end of the last action, which the
            # self_healing kernel learns from the healer's outcome, sent as
            # the heal is answered: when h2 came before that outcome, its
            # retry_after_ms counted from the action's start and is short by
            # the heal's length. So a hold that is still "cooldown" is asked
            # again, a few times at most; then it must be the next step.
            def after_cooldown():
                st, h = heal(g, OTHER, issue_type="process_dead")
                if h.get("outcome") == "held" and h["self_healing"].get("reason") == "cooldown":
                    return None
                return h
            h3 = g.wait_for(after_cooldown, timeout=5, interval=0.1, message="the cooldown")
            self.assertEqual((h3["self_healing"]["step"], h3["playbook"], h3["outcome"]),
                             (1, "reset_port", "healed"), h3)
            # The last step: stop, and a person is paged.
            g.wait_for(lambda: heal(g, OTHER, issue_type="process_dead")[1]["outcome"] != "held"
                       or None, timeout=10, interval=0.25, message="the stop step")
            h4 = g.http("GET", "/network-healer/incidents?component=%s&limit=1" % OTHER)[2][
                "incidents"][0]
            self.assertEqual((h4["outcome"], h4["playbook"], h4["self_healing"]["decision"]),
                             ("stopped", "stop_component", "stop"), h4)
            g.wait_kernel(OTHER, lambda k: k["state"] == "stopped", message="stopped")
            st, h5 = heal(g, OTHER, issue_type="process_dead")
            self.assertEqual((h5["outcome"], h5["self_healing"]["reason"]), ("held", "stopped"))
            lad = get(g, "/ladder")
            self.assertEqual([s["playbook"] for s in lad["steps"]],
                             ["restart_component", "reset_port", "stop"])
            mine = [k for k in lad["kernels"] if k["kernel"] == OTHER][0]
            self.assertEqual((mine["step"], mine["stopped"], mine["actions"]), (2, True, 3), mine)
            # The budget (3 an hour) is spent: another kernel's heal is held.
            b = get(g, "/budget")
            self.assertEqual((b["per_hour"], b["spent"]), (3, 3), b)
            self.assertLess(b["tokens"], 1)
            st, h6 = heal(g, "immutable_log", issue_type="process_dead")
            self.assertEqual((h6["outcome"], h6["self_healing"]["reason"]), ("held", "budget"))
            self.assertGreater(h6["self_healing"]["retry_after_ms"], 0)
            self.assertEqual(get(g, "/budget")["refused"], 1)

            # The outcomes came back, verified (the kernel answered /health).
            def verified():
                acts = get(g, "/incidents/%d" % inc["id"])["actions"]
                done = [a for a in acts if a["verdict"] == "act" and a["outcome"]]
                return acts if len(done) >= 2 else None
            acts = g.wait_for(verified, message="the outcomes reported")
            self.assertEqual([(a["playbook"], a["outcome"], a["verified"]) for a in acts
                              if a["verdict"] == "act"][:2],
                             [("restart_component", "healed", True),
                              ("reset_port", "healed", True)], acts)
            self.assertIn("cooldown", [a["verdict"] for a in acts])

            # Dependencies: the log crashes, then audit: one incident, the log's.
            kill9(g, "immutable_log")
            g.wait_for(lambda: incidents_of(g, "immutable_log", state="open") or None,
                       message="the log's incident")
            kill9(g, "audit")
            dep = g.wait_for(lambda: next((i for i in incidents_of(g, "audit")
                                           if "audit" in i["kernels"]), None),
                             message="audit's crash correlated")
            self.assertEqual((dep["kernel"], dep["kernels"]), ("immutable_log",
                                                               ["immutable_log", "audit"]), dep)
            self.assertEqual([i["id"] for i in incidents_of(g, "audit")], [dep["id"]])
            self.assertEqual(
                [i for i in get(g, "/incidents")["incidents"] if i["kernel"] == "audit"], [])
            # Both up and quiet for stable_ms (6 s): resolved.
            res = g.wait_for(lambda: next((i for i in incidents_of(g, "audit", state="resolved")
                                           if i["id"] == dep["id"]), None),
                             timeout=30, interval=0.2, message="resolved")
            self.assertGreaterEqual(res["resolved_at"] - dep["updated_at"], 6000 - 1000)

            # The postmortem, JSON and Markdown.
            pm = get(g, "/incidents/%d/postmortem" % inc["id"])
            self.assertEqual(pm["incident"]["id"], inc["id"])
            self.assertEqual(pm["verified_heals"], 2, pm["actions"])
            self.assertTrue(pm["audit"]["available"], pm["audit"])
            sources = {e["source"] for e in pm["timeline"]}
            self.assertEqual(sources, {"self_healing", "audit"}, pm["timeline"])
            ts = [e["ts_ms"] for e in pm["timeline"]]
            self.assertEqual(ts, sorted(ts))
            self.assertTrue(any(h["kind"] == "signal" for h in pm["evidence"]["hints"]))
            # Audit events in the immutable log come with their inclusion proof.
            proved = [e["proof"] for e in pm["timeline"] if "inclusion" in e.get("proof", {})]
            self.assertTrue(proved, pm["timeline"])
            self.assertIn("tree_size", proved[0]["sth"])
            st, hdrs, md = g.http("GET", SH + "/incidents/%d/postmortem?format=markdown"
                                  % inc["id"])
            self.assertEqual(st, 200)
            ctype = {k.lower(): v for k, v in hdrs.items()}["content-type"]
            self.assertTrue(ctype.startswith("text/markdown"), ctype)
            md = md.decode() if isinstance(md, bytes) else md
            self.assertTrue(md.startswith("# Postmortem: incident %d" % inc["id"]), md[:200])
            for part in ("## Evidence", "## Actions", "## Timeline", "restart_component",
                         "SIGKILL"):
                self.assertIn(part, md)
            st, _, err = g.http("GET", SH + "/incidents/%d/postmortem?format=pdf" % inc["id"])
            self.assertEqual((st, err["error"]["code"]), (400, "invalid"))
            st, _, err = g.http("GET", SH + "/incidents/999999")
            self.assertEqual(st, 404, err)
            st, _, err = g.http("POST", SH + "/advice", {"kernel": "nope", "issue": "x",
                                                         "playbooks": ["restart_component"]})
            self.assertEqual((st, err["error"]["code"]), (400, "invalid"))

            st, _, text = g.http("GET", "/metrics")
            st, _, ktext = g.http("GET", SH + "/metrics")
            ktext = ktext.decode() if isinstance(ktext, bytes) else str(ktext)
            self.assertIn('grace_self_healing_pages_total{kernel="self_healing"} 1', ktext)
            self.assertIn('grace_self_healing_folded_total{kernel="self_healing"} 1', ktext)
            self.assertIn('verdict="hold_budget"} 1', ktext)

            # Killed and back, the kernel keeps its ladder and its budget: a
            # crash of self_healing never buys a heal loop new tokens.
            kill9(g, "self_healing")
            mine = [k for k in get(g, "/ladder")["kernels"] if k["kernel"] == OTHER][0]
            self.assertEqual((mine["step"], mine["stopped"], mine["actions"]), (2, True, 3), mine)
            b = get(g, "/budget")
            self.assertEqual((b["spent"], b["refused"]), (3, 1), b)
            self.assertLess(b["tokens"], 1)
            st, h7 = heal(g, "immutable_log", issue_type="process_dead")
            self.assertEqual((h7["outcome"], h7["self_healing"]["reason"]), ("held", "budget"))

            # Late: audit crashes first (an incident of its own), then the log
            # it depends on: the log's incident takes audit's in, and audit's
            # closes as merged into it. (Once the log is quiet: the heal asked
            # for it above keeps an incident of its open for stable_ms.)
            g.wait_for(lambda: not incidents_of(g, "immutable_log", state="open"), timeout=30,
                       interval=0.2, message="the log quiet")
            kill9(g, "audit")
            own = g.wait_for(lambda: next((i for i in incidents_of(g, "audit", state="open")
                                           if i["kernel"] == "audit"), None),
                             message="audit's own incident")
            kill9(g, "immutable_log")
            late = g.wait_for(lambda: next((i for i in incidents_of(g, "immutable_log",
                                                                     state="open")
                                            if i["id"] != dep["id"]), None),
                              message="the log's new incident")
            self.assertEqual((late["kernel"], late["kernels"]),
                             ("immutable_log", ["immutable_log", "audit"]), late)
            self.assertLessEqual(late["opened_at"], own["opened_at"])
            merged = get(g, "/incidents/%d" % own["id"])
            self.assertEqual(merged["state"], "resolved", merged)
            self.assertEqual(merged["cause"]["merged_into"], late["id"], merged)
            self.assertEqual([i["id"] for i in incidents_of(g, "audit", state="open")],
                             [late["id"]])
            events = get(g, "/incidents/%d" % late["id"])["event_list"]
            self.assertIn("audit", {e["kernel"] for e in events}, events)


class SlowStore(GraceTestCase):
    def test_the_loop_answers_while_the_store_is_locked(self):
        # The store is written by a worker thread of the kernel (docs/
        # self_healing.md "The store"): with its database write-locked
        # (BEGIN IMMEDIATE here, as a very slow disk would hold it), the
        # loop still answers; the writes wait, in order, and land once the
        # lock goes.
        kernels = {n: dict(QUIET) for n in ("message_bus", "self_healing", OTHER)}
        with GraceServer(kernels=kernels, config=CONFIG) as g:
            db = sqlite3.connect(os.path.join(g.data_dir, "self_healing.db"), timeout=30,
                                 isolation_level=None)
            answer = {}
            try:
                db.execute("BEGIN IMMEDIATE")
                kill9(g, OTHER)  # a crash from the bus: its batch waits for the lock

                def ask():
                    answer["reply"] = g.http("POST", SH + "/advice",
                                             {"kernel": OTHER, "issue": "process_dead",
                                              "playbooks": ["restart_component"]},
                                             timeout=harness_scaled(60))
                asker = threading.Thread(target=ask)
                asker.start()
                # The ladder decided in memory, on the loop, at once.
                g.wait_for(lambda: any(k["kernel"] == OTHER and k["actions"] == 1
                                       for k in get(g, "/ladder")["kernels"]),
                           message="the ladder's decision while the store is locked")
                st, _, body = g.http("GET", "/health", port=g.kernel_port("self_healing"))
                self.assertEqual(st, 200, body)
                # The answer carries the action's id: it waits for the write.
                self.assertTrue(asker.is_alive(), answer)
            finally:
                db.execute("ROLLBACK") if db.in_transaction else None
                db.close()
            asker.join(harness_scaled(60))
            self.assertFalse(asker.is_alive())
            st, _, adv = answer["reply"]
            self.assertEqual(st, 200, adv)
            self.assertEqual(adv["decision"], "heal", adv)
            self.assertGreater(adv["advice_id"], 0, adv)
            # The crash comes through the bus, on its own time: its batch
            # may have waited for the lock or come after it went (the
            # whole test can take 70 ms); either way it lands.
            inc = g.wait_for(lambda: (lambda i: i if "crash" in
                                      [e["kind"] for e in i["event_list"]] else None)(
                                 get(g, "/incidents/%d" % adv["incident_id"])),
                             message="the crash in the incident")
            kinds = [e["kind"] for e in inc["event_list"]]
            self.assertIn("heal_asked", kinds, inc)
            self.assertEqual([a["id"] for a in inc["actions"]], [adv["advice_id"]], inc)
            mine = [k for k in get(g, "/ladder")["kernels"] if k["kernel"] == OTHER][0]
            self.assertEqual((mine["step"], mine["actions"]), (0, 1), mine)


class MetricWatches(GraceTestCase):
    def test_a_watched_condition_is_an_event_of_its_kernel(self):
        # watch.KERNEL = PROMQL: asked of the metrics kernel; a condition
        # that holds (a non-empty answer) is a "metric" event of KERNEL, one
        # that does not (empty) is nothing.
        kernels = {n: dict(QUIET) for n in ("message_bus", "self_healing", "metrics", OTHER)}
        config = {"self_healing": {"watch_interval_ms": 1000, "stable_ms": 6000,
                                   "watch." + OTHER: "vector(1)",
                                   "watch.message_bus": "vector(1) == 2"}}
        with GraceServer(kernels=kernels, config=config) as g:
            inc = g.wait_for(lambda: next((i for i in incidents_of(g, OTHER)
                                           if i["family"] == "alert"), None),
                             timeout=20, interval=0.2, message="the watch's incident")
            self.assertEqual(inc["kernel"], OTHER, inc)
            events = get(g, "/incidents/%d" % inc["id"])["event_list"]
            metric = [e for e in events if e["kind"] == "metric"]
            self.assertTrue(metric, events)
            self.assertEqual(metric[0]["detail"]["expr"], "vector(1)", metric[0])
            self.assertEqual(incidents_of(g, "message_bus"), [])
            st, _, text = g.http("GET", SH + "/metrics")
            text = text.decode() if isinstance(text, bytes) else str(text)
            self.assertRegex(text, r'grace_self_healing_watch_queries_total\{[^}]*\} [1-9]')
            self.assertIn('grace_self_healing_watch_failures_total{kernel="self_healing"} 0',
                          text)


if __name__ == "__main__":
    unittest.main()
