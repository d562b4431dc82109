"""The learning kernel through :8000 (/kernels/learning/...), and the
healer asking it.

- A simulated fault where one playbook heals 90 % of the time and the
  other (first in the static order) 20 %: 150 decisions and rewards
  through the real routes, seeded (the kernel's [learning] seed and this
  test's generator), pick the 90 % playbook in most of the last 50, and
  the IPS estimate of "always the 90 % playbook" holds 0.9 in its 95 %
  interval (the pure module's test runs 20 x 1500 for the statistics).
- Rewards: provisional, final after the relapse window, 0 on a relapse;
  unknown decision 404, a second reward 409, bad values 400.
- The policy: switched to static (the healer's order, probability 1),
  rolled back, a version on every decision.
- The healer: a hung kernel's heal asks learning for the order of
  restart_component and reset_port and reports the outcome; with learning
  hung (SIGSTOP) or stopped, heals still work, on the static order, and
  /metrics counts the fallbacks.
"""

import os
import random
import signal
import unittest

from harness import GraceServer, GraceTestCase, spare_kernels
from healer_support import check_incident_shape, heal, proc_state, stop_process

L = "/kernels/learning"
GOOD, BAD = "good_fix", "weak_fix"
HEAL_P = {GOOD: 0.9, BAD: 0.2}
ROUNDS = 150
QUIET = {"watchdog_ms": 600000, "health_interval_ms": 600000, "health_timeout_ms": 500}
OTHER = spare_kernels(1, exclude=("learning",))[0]


def decide(g, kernel="sim", arms=(BAD, GOOD), **extra):
    body = {"issue": "process_hung", "kernel": kernel, "arms": list(arms),
            "features": {"restarts_last_hour": 0, "last_exit": "signal",
                         "since_last_heal_s": None}}
    body.update(extra)
    return g.http("POST", L + "/decide", body)


class LearningRoutes(GraceTestCase):
    def test_bandit_rewards_evaluation_policy(self):
        config = {"learning": {"seed": "7", "relapse_window_ms": "0"}}
        with GraceServer(kernels={"learning": {}}, config=config) as g:
            env = random.Random(3)
            picks = []
            for i in range(ROUNDS):
                st, _, d = decide(g)
                self.assertEqual(st, 200, d)
                self.assertEqual(sorted(d["order"]), sorted([BAD, GOOD]), d)
                self.assertEqual(d["chosen"], d["order"][0])
                self.assertEqual(d["policy"], "thompson")
                self.assertEqual(d["version"], 1)
                self.assertGreater(d["probability"], 0)
                self.assertLessEqual(d["probability"], 1)
                self.assertEqual(d["bucket"], "process_hung|sim|r0|signal|hnever")
                arm = d["chosen"]
                picks.append(arm)
                r = 1 if env.random() < HEAL_P[arm] else 0
                st, _, rr = g.http("POST", L + "/reward",
                                   {"decision_id": d["decision_id"], "arm": arm, "reward": r,
                                    "outcome": {"outcome": "healed" if r else "failed"}})
                self.assertEqual(st, 200, rr)
                self.assertEqual(rr["state"], "final", rr)
            good = picks[-50:].count(GOOD)
            self.assertGreaterEqual(good, 40, picks)

            # The log: every decision with its probability and reward.
            st, _, page = g.http("GET", L + "/decisions?limit=5")
            self.assertEqual(st, 200, page)
            self.assertEqual(len(page["decisions"]), 5)
            last = page["decisions"][0]
            self.assertEqual(last["decision_id"], d["decision_id"])
            self.assertEqual(last["reward"]["state"], "final")
            self.assertIn(last["reward"]["final_value"], (0.0, 1.0))

            # Offline evaluation of known policies on that log.
            st, _, ev = g.http("POST", L + "/evaluate",
                               {"policy": {"name": "arm", "arm": GOOD}})
            self.assertEqual(st, 200, ev)
            self.assertEqual(ev["n"], ROUNDS)
            lo, hi = ev["ips"]["ci95"]
            self.assertLessEqual(lo, 0.9, ev)
            self.assertGreaterEqual(hi, 0.9, ev)
            lo, hi = ev["snips"]["ci95"]
            self.assertTrue(lo <= 0.9 <= hi, ev)
            st, _, ev = g.http("POST", L + "/evaluate", {"policy": {"name": "uniform"}})
            self.assertEqual(st, 200, ev)
            self.assertTrue(ev["ips"]["ci95"][0] <= 0.55 <= ev["ips"]["ci95"][1], ev)
            for bad in ({"policy": {"name": "oracle"}}, {"policy": {"name": "arm"}},
                        {"policy": {"name": "table", "choices": {}}},
                        {"policy": {"name": "static", "epsilon": 0.1}},
                        {"policy": {"name": "static"}, "limit": 0}, {"policy": "static"},
                        {"policy": {"name": "static"}, "extra": 1}):
                st, _, err = g.http("POST", L + "/evaluate", bad)
                self.assertEqual(st, 400, (bad, err))
                self.assertIn("error", err)

            # Rewards: errors.
            st, _, err = g.http("POST", L + "/reward",
                                {"decision_id": 999999, "arm": GOOD, "reward": 1})
            self.assertEqual(st, 404, err)
            st, _, err = g.http("POST", L + "/reward",
                                {"decision_id": d["decision_id"], "arm": arm, "reward": 1})
            self.assertEqual(st, 409, err)  # rewarded already
            st, _, d2 = decide(g)
            other = BAD if d2["chosen"] == GOOD else GOOD
            st, _, err = g.http("POST", L + "/reward",
                                {"decision_id": d2["decision_id"], "arm": other, "reward": 1})
            self.assertEqual(st, 409, err)  # not the arm it put first
            for bad in ({"decision_id": d2["decision_id"], "arm": d2["chosen"], "reward": 1.5},
                        {"decision_id": d2["decision_id"], "arm": d2["chosen"], "reward": "1"},
                        {"decision_id": d2["decision_id"], "arm": d2["chosen"]},
                        {"decision_id": 0, "arm": d2["chosen"], "reward": 1},
                        {"decision_id": d2["decision_id"], "arm": "Bad Arm", "reward": 1},
                        {"decision_id": d2["decision_id"], "arm": d2["chosen"], "reward": 1,
                         "outcome": "healed"},
                        {"decision_id": d2["decision_id"], "arm": d2["chosen"], "reward": 1,
                         "extra": True}):
                st, _, err = g.http("POST", L + "/reward", bad)
                self.assertEqual(st, 400, (bad, err))
            st, _, err = g.http("POST", L + "/reward",
                                {"decision_id": d2["decision_id"], "arm": d2["chosen"],
                                 "reward": 1, "outcome": {"x": "y" * 5000}})
            self.assertEqual(st, 413, err)
            # Nothing bad was stored: the decision still takes its reward.
            st, _, rr = g.http("POST", L + "/reward",
                               {"decision_id": d2["decision_id"], "arm": d2["chosen"],
                                "reward": True})
            self.assertEqual(st, 200, rr)
            for bad in ({"kernel": "sim", "arms": [GOOD]},
                        {"issue": "x", "kernel": "sim", "arms": []},
                        {"issue": "x", "kernel": "sim", "arms": [GOOD, GOOD]},
                        {"issue": "x", "kernel": "sim", "arms": [GOOD], "features": {"cpu": 1}},
                        {"issue": "x", "kernel": "sim", "arms": [GOOD], "more": 1}):
                st, _, err = g.http("POST", L + "/decide", bad)
                self.assertEqual(st, 400, (bad, err))
            st, _, err = g.http("GET", L + "/decisions/abc")
            self.assertEqual(st, 400, err)
            st, _, err = g.http("GET", L + "/decisions/999999")
            self.assertEqual(st, 404, err)

            # The policy: a version on every decision; static is the
            # healer's order with probability 1; rollback.
            st, _, pol = g.http("GET", L + "/policy")
            self.assertEqual(st, 200, pol)
            self.assertEqual(pol["active"]["version"], 1)
            self.assertEqual(pol["active"]["policy"], "thompson")
            st, _, err = g.http("POST", L + "/policy/rollback")
            self.assertEqual(st, 409, err)
            st, _, pol = g.http("POST", L + "/policy", {"policy": "static", "reason": "test"})
            self.assertEqual(st, 201, pol)
            self.assertEqual(pol["active"]["version"], 2)
            st, _, d3 = decide(g)
            self.assertEqual((d3["policy"], d3["version"], d3["order"], d3["probability"]),
                             ("static", 2, [BAD, GOOD], 1.0), d3)
            st, _, pol = g.http("POST", L + "/policy/rollback")
            self.assertEqual(st, 201, pol)
            self.assertEqual((pol["active"]["version"], pol["active"]["policy"]),
                             (3, "thompson"), pol)
            self.assertEqual([h["version"] for h in pol["history"]], [3, 2, 1])
            st, _, d4 = decide(g)
            self.assertEqual((d4["policy"], d4["version"]), ("thompson", 3), d4)
            for bad in ({"policy": "greedy"}, {"policy": "static", "epsilon": 0.2},
                        {"policy": "thompson", "epsilon": 2}, {}):
                st, _, err = g.http("POST", L + "/policy", bad)
                self.assertEqual(st, 400, (bad, err))

            st, _, text = g.http("GET", L + "/metrics")
            self.assertEqual(st, 200)
            text = text if isinstance(text, str) else text.decode() if isinstance(
                text, bytes) else str(text)
            self.assertIn('grace_learning_decisions_total{kernel="learning",policy="thompson"} %d'
                          % (ROUNDS + 2), text)
            self.assertIn('grace_learning_rewards_total{kernel="learning"} %d' % (ROUNDS + 1),
                          text)

    def test_relapse_and_healer(self):
        config = {"learning": {"seed": "11", "relapse_window_ms": "60000"}}
        kernels = {"learning": dict(QUIET), OTHER: dict(QUIET)}
        with GraceServer(kernels=kernels, config=config) as g:
            # A success is provisional; a new incident of the kernel makes it 0.
            st, _, d = decide(g, kernel="k1")
            st, _, rr = g.http("POST", L + "/reward",
                               {"decision_id": d["decision_id"], "arm": d["chosen"], "reward": 1})
            self.assertEqual((st, rr["state"]), (200, "provisional"), rr)
            st, _, dd = g.http("GET", L + "/decisions/%d" % d["decision_id"])
            self.assertEqual(dd["reward"]["state"], "provisional", dd)
            self.assertIsNone(dd["reward"]["final_value"])
            # Offline evaluation reads final rewards unless told otherwise.
            st, _, err = g.http("POST", L + "/evaluate", {"policy": {"name": "static"}})
            self.assertEqual((st, err["error"]["code"]), (409, "no_data"), err)
            st, _, ev = g.http("POST", L + "/evaluate", {"policy": {"name": "uniform"},
                                                         "include_provisional": True})
            self.assertEqual((st, ev["n"]), (200, 1), ev)
            self.assertAlmostEqual(ev["snips"]["value"], 1.0)
            st, _, inc = g.http("POST", L + "/incidents", {"kernel": "k1", "issue": "process_dead"})
            self.assertEqual((st, inc["relapsed"]), (200, 1), inc)
            st, _, dd = g.http("GET", L + "/decisions/%d" % d["decision_id"])
            self.assertEqual((dd["reward"]["state"], dd["reward"]["final_value"],
                              dd["reward"]["relapsed"]), ("final", 0.0, True), dd)
            # A failure is final at once; a heal past heal_bound_ms earns 0.
            st, _, d = decide(g, kernel="k2")
            st, _, rr = g.http("POST", L + "/reward",
                               {"decision_id": d["decision_id"], "arm": d["chosen"], "reward": 1,
                                "outcome": {"outcome": "healed", "duration_ms": 999999}})
            self.assertEqual((st, rr["state"], rr["late"], rr["reward"]),
                             (200, "final", True, 0.0), rr)
            st, _, err = g.http("POST", L + "/incidents", {"issue": "x"})
            self.assertEqual(st, 400, err)

            # The healer asks learning when two playbooks fit a hung kernel.
            pid = g.kernel(OTHER)["pid"]
            stop_process(self, pid)
            g.wait_for(lambda: proc_state(pid) == "T", message="the kernel stopped")
            st, inc = heal(g, OTHER)
            self.assertEqual(st, 200, inc)
            check_incident_shape(self, inc, OTHER)
            self.assertEqual(inc["issue_type"], "process_hung", inc)
            self.assertEqual(inc["outcome"], "healed", inc)
            lr = inc["learning"]
            self.assertTrue(lr["asked"], lr)
            self.assertEqual(sorted(lr["order"]), ["reset_port", "restart_component"], lr)
            self.assertEqual(inc["playbook"], lr["order"][0], inc)
            self.assertEqual((lr["policy"], lr["version"]), ("thompson", 1), lr)
            did = lr["decision_id"]

            # Its outcome comes back as the reward (not waited for by the heal).
            def rewarded():
                st, _, dd = g.http("GET", L + "/decisions/%d" % did)
                return dd if st == 200 and dd["reward"]["state"] != "none" else None
            dd = g.wait_for(rewarded, message="the heal's reward")
            self.assertEqual(dd["kernel"], OTHER)
            self.assertEqual(dd["chosen"], inc["playbook"])
            self.assertEqual((dd["reward"]["state"], dd["reward"]["value"]), ("provisional", 1.0))
            self.assertEqual(dd["reward"]["outcome"]["incident_id"], inc["id"])
            self.assertEqual(dd["reward"]["outcome"]["outcome"], "healed")
            self.assertIsInstance(dd["features"]["restarts_last_hour"], int)
            self.assertIsNone(dd["features"]["since_last_heal_s"])

            # Learning hung: the call times out ([learning] decide_timeout_ms)
            # and the heal goes on with the static order.
            lpid = g.kernel("learning")["pid"]
            stop_process(self, lpid)
            pid = g.kernel(OTHER)["pid"]
            stop_process(self, pid)
            g.wait_for(lambda: proc_state(pid) == "T", message="the kernel stopped")
            st, inc = heal(g, OTHER)
            self.assertEqual((st, inc["outcome"], inc["playbook"]),
                             (200, "healed", "restart_component"), inc)
            self.assertEqual((inc["learning"]["asked"], inc["learning"]["fallback"]),
                             (True, "no_answer"), inc["learning"])

            # Learning stopped: not asked at all, the static order at once.
            os.kill(lpid, signal.SIGCONT)
            st, _, ans = g.http("POST", "/kernel-ports/learning/stop")
            self.assertEqual(st, 202, ans)
            g.wait_for(lambda: g.kernel("learning")["state"] == "stopped",
                       message="learning stopped")
            pid = g.kernel(OTHER)["pid"]
            stop_process(self, pid)
            g.wait_for(lambda: proc_state(pid) == "T", message="the kernel stopped")
            st, inc = heal(g, OTHER)
            self.assertEqual((st, inc["outcome"], inc["playbook"]),
                             (200, "healed", "restart_component"), inc)
            self.assertEqual((inc["learning"]["asked"], inc["learning"]["fallback"]),
                             (False, "not_ready"), inc["learning"])

            st, _, text = g.http("GET", "/metrics")
            text = text if isinstance(text, str) else text.decode() if isinstance(
                text, bytes) else str(text)
            self.assertIn('grace_healer_learning_fallbacks_total{reason="no_answer"} 1', text)
            self.assertIn('grace_healer_learning_fallbacks_total{reason="not_ready"} 1', text)
            self.assertIn("grace_healer_learning_answers_total 1", text)


if __name__ == "__main__":
    unittest.main()
