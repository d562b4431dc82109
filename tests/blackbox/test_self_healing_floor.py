"""The healer with and without the self_healing kernel
(docs/self_healing.md):

- The healer without self_healing: hung (SIGSTOP), killed, stopped: heals
  still work, as before (asking learning itself); with it, self_healing
  asked learning for the order and rewarded it.
- approve_destructive: the ladder's stop is held (approval_required), a
  person paged and a governance change request opened by the kernel, which
  governance runs once a person approves it.
"""

import os
import re
import signal
import unittest

from harness import GraceServer, GraceTestCase
from healer_support import heal, proc_state, stop_process
from test_self_healing import OTHER, QUIET, SH, get


class SelfHealingFloor(GraceTestCase):
    def test_healer_heals_without_self_healing(self):
        kernels = {"self_healing": dict(QUIET), "learning": dict(QUIET), OTHER: dict(QUIET)}
        with GraceServer(kernels=kernels, config={"learning": {"seed": "5"}}) as g:
            def hang_and_heal():
                pid = g.kernel(OTHER)["pid"]
                stop_process(self, pid)
                g.wait_for(lambda: proc_state(pid) == "T", message="the kernel stopped")
                st, inc = heal(g, OTHER)
                self.assertEqual((st, inc["outcome"]), (200, "healed"), inc)
                return inc
            # Up: asked, and its advice followed; two playbooks fit a hung
            # kernel, so self_healing asked learning for the order, and the
            # outcome went back to learning as the reward.
            pid = g.kernel(OTHER)["pid"]
            stop_process(self, pid)
            g.wait_for(lambda: proc_state(pid) == "T", message="the kernel stopped")
            st, inc = heal(g, OTHER)
            self.assertEqual((st, inc["outcome"]), (200, "healed"), inc)
            sh = inc["self_healing"]
            self.assertEqual((sh["asked"], sh["decision"], sh["step"]), (True, "heal", 0), inc)
            lr = sh["learning"]
            self.assertEqual(sorted(lr["order"]), ["reset_port", "restart_component"], lr)
            self.assertEqual(inc["playbook"], lr["order"][0], inc)
            self.assertEqual(inc["learning"]["decision_id"], lr["decision_id"])

            def rewarded():
                st, _, dd = g.http("GET", "/kernels/learning/decisions/%d" % lr["decision_id"])
                return dd if st == 200 and dd["reward"]["state"] != "none" else None
            dd = g.wait_for(rewarded, message="the reward through self_healing")
            self.assertEqual((dd["reward"]["value"], dd["reward"]["outcome"]["incident_id"]),
                             (1.0, inc["id"]), dd)
            self.assertEqual(dd["kernel"], OTHER)
            # Hung: the call times out, the heal goes on as before.
            spid = g.kernel("self_healing")["pid"]
            stop_process(self, spid)
            inc = hang_and_heal()
            self.assertEqual(inc["self_healing"]["fallback"], "no_answer", inc)
            # Then the healer asks learning itself, as before (learn.c).
            self.assertTrue(inc["learning"]["asked"], inc)
            self.assertIn("decision_id", inc["learning"])
            # Killed and back: it kept its ladder (its store), so the next
            # heal of the same kernel is not the bottom step again: it climbs,
            # or is held for the next step's cooldown.
            os.kill(spid, signal.SIGCONT)
            os.kill(spid, signal.SIGKILL)
            g.wait_kernel("self_healing", lambda k: k["state"] == "ready" and k["pid"] != spid,
                          message="self_healing back")
            pid = g.kernel(OTHER)["pid"]
            stop_process(self, pid)
            g.wait_for(lambda: proc_state(pid) == "T", message="the kernel stopped")
            st, inc = heal(g, OTHER)
            sh = inc["self_healing"]
            self.assertTrue(sh["asked"], inc)
            if inc["outcome"] == "held":
                self.assertEqual(sh["reason"], "cooldown", inc)
                os.kill(pid, signal.SIGCONT)
            else:
                self.assertEqual(inc["outcome"], "healed", inc)
                self.assertGreaterEqual(sh["step"], 1, inc)
            # Stopped: not asked at all.
            st, _, ans = g.http("POST", "/kernel-ports/self_healing/stop")
            self.assertEqual(st, 202, ans)
            g.wait_kernel("self_healing", lambda k: k["state"] == "stopped", message="stopped")
            inc = hang_and_heal()
            self.assertEqual((inc["self_healing"]["asked"], inc["self_healing"]["fallback"]),
                             (False, "not_ready"), inc)
            self.assertTrue(inc["learning"]["asked"], inc)
            st, _, text = g.http("GET", "/metrics")
            text = text.decode() if isinstance(text, bytes) else str(text)
            # Hung: no answer; stopped (and, without a standby, while it
            # restarted after the kill): not ready.
            def count(reason):
                m = re.search(r'grace_healer_advice_fallbacks_total\{reason="%s"\} (\d+)'
                              % reason, text)
                return int(m.group(1)) if m else 0
            self.assertEqual(count("no_answer"), 1, text)
            self.assertGreaterEqual(count("not_ready"), 1, text)

    def test_stop_needs_a_person(self):
        # approve_destructive: the ladder's stop is held, a person paged, and
        # a governance change request opened for it, which governance runs
        # once a person approves.
        config = {"self_healing": {"ladder": "stop:0", "approve_destructive": 1}}
        kernels = {"self_healing": dict(QUIET), "governance": {}, OTHER: dict(QUIET)}
        with GraceServer(kernels=kernels, config=config) as g:
            st, inc = heal(g, OTHER, issue_type="process_dead")
            self.assertEqual((st, inc["outcome"], inc["self_healing"]["decision"],
                              inc["self_healing"]["reason"]),
                             (200, "held", "hold", "approval_required"), inc)
            self.assertEqual(g.kernel(OTHER)["state"], "ready")

            def opened():
                st, _, out = g.http("GET", "/governance/requests?state=open")
                self.assertEqual(st, 200, out)
                mine = [r for r in out["requests"] if r["action"] == "kernel.stop"
                        and r["params"].get("kernel") == OTHER]
                return mine[0] if mine else None
            cr = g.wait_for(opened, message="the change request for the stop")
            self.assertEqual((cr["requester"], cr["requester_role"]),
                             ("kernel:self_healing", "kernel"), cr)
            self.assertIn("incident %d" % inc["self_healing"]["incident_id"], cr["reason"])
            st, inc = heal(g, OTHER, issue_type="process_dead")
            self.assertEqual((inc["outcome"], inc["self_healing"]["reason"]), ("held", "stopped"))
            self.assertTrue(get(g, "/ladder")["approve_destructive"])
            st, _, ktext = g.http("GET", SH + "/metrics")
            ktext = ktext.decode() if isinstance(ktext, bytes) else str(ktext)
            self.assertIn('grace_self_healing_pages_total{kernel="self_healing"} 1', ktext)
            self.assertIn('grace_self_healing_stop_requests_total{kernel="self_healing"} 1',
                          ktext)
            # The kernel itself cannot approve its request; a person does,
            # and governance stops the kernel, once.
            st, _, out = g.http("POST", "/governance/requests/%d/approve" % cr["id"], {})
            self.assertEqual(st, 200, out)
            g.wait_kernel(OTHER, lambda k: k["state"] == "stopped",
                          message="the approved stop run by governance")
            done = g.wait_for(lambda: (lambda r: r if r["state"] == "done" else None)(
                g.http("GET", "/governance/requests/%d" % cr["id"])[2]),
                message="the request done")
            self.assertEqual(done["state"], "done", done)

    def test_held_heal_is_tried_again(self):
        # A heal held for the ladder's cooldown is not the end of it: the
        # guardian heals the kernel again once the advice says it could act,
        # so a kernel is never left hung because a heal was held.
        config = {"self_healing": {"ladder": "restart_component:0,reset_port:5000,stop:600000",
                                   "stable_ms": 600000}}
        # A hang is seen in about two seconds; a shorter /health timeout
        # than that fails a sanitized kernel's first answer on a loaded
        # machine, and a heal whose verification times out is failed.
        fast = {"health_interval_ms": 100, "health_timeout_ms": 1000, "health_failures": 2,
                "watchdog_ms": 600000}
        kernels = {"self_healing": dict(QUIET), OTHER: fast}
        with GraceServer(kernels=kernels, config=config) as g:
            def incidents():
                st, _, out = g.http("GET", "/network-healer/incidents?component=%s&limit=10"
                                    % OTHER)
                self.assertEqual(st, 200, out)
                return [(i["outcome"], (i.get("self_healing") or {}).get("reason"),
                         i.get("playbook")) for i in reversed(out["incidents"])]
            first = g.kernel(OTHER)["pid"]
            stop_process(self, first)
            second = g.wait_kernel(OTHER, lambda k: k["state"] == "ready"
                                   and k["pid"] not in (None, first),
                                   message="the first heal")["pid"]
            # Its heal ends once the new process answers /health: hung
            # before that, the first heal would fail, not be held.
            g.wait_for(lambda: ("healed", None, "restart_component") in incidents(),
                       message="the first heal done")
            stop_process(self, second)  # hung again at once: the next step waits
            g.wait_kernel(OTHER, lambda k: k["state"] == "ready"
                          and k["pid"] not in (None, first, second),
                          message="healed again after the hold, with nobody asking")

            def held_then_healed():
                seen = incidents()
                held = [n for n, x in enumerate(seen) if x[:2] == ("held", "cooldown")]
                return held and ("healed", None, "reset_port") in seen[held[0] + 1:]
            # The kernel answers before its heal is recorded as done.
            g.wait_for(held_then_healed, message="held, then healed by the next step")
            g.wait_log("healing it again")


if __name__ == "__main__":
    unittest.main()
