"""The healer's record and its routes: playbooks, incidents (kept in SQLite,
there after a restart of grace serve, filtered and paged), stats (runs,
success rate, median duration), input checks, and who may call what."""

import statistics
import threading
import unittest

from harness import GraceServer, GraceTestCase, scaled, spare_kernels
from healer_support import (PLAYBOOKS, diagnose, get_json, guardian_kernel,
                            heal, incidents, near, proc_state, stop_process)

OTHER = spare_kernels(1)[0]

QUIET = {"health_interval_ms": 600000, "watchdog_ms": 600000}


class HealerApi(GraceTestCase):
    def test_playbooks(self):
        with GraceServer(kernels={"librarian": {}}) as g:
            pbs = get_json(g, "/network-healer/playbooks")["playbooks"]
            by_name = {p["name"]: p for p in pbs}
            self.assertEqual(set(by_name), PLAYBOOKS)
            self.assertEqual(len(pbs), 7)
            for p in pbs:
                self.assertTrue(p["description"], p)
                self.assertTrue(p["steps"], p)
            self.assertEqual(by_name["restart_component"]["steps"], ["stop", "start", "verify"])
            self.assertEqual(by_name["clear_port"]["steps"], ["clear_holder", "start", "verify"])
            self.assertEqual(by_name["diagnose_network"]["steps"], ["diagnose"])
            self.assertEqual(by_name["rebind_port"]["steps"],
                             ["stop", "pick_port", "start", "verify"])
            self.assertEqual(set(by_name["restart_component"]["chosen_for"]),
                             {"port_not_listening", "process_dead", "process_hung"})
            self.assertEqual(by_name["clear_port"]["chosen_for"], ["port_held_by_stale_kernel"])
            self.assertEqual(by_name["rebind_port"]["chosen_for"],
                             ["port_held_by_foreign_process"])
            self.assertEqual(set(by_name["diagnose_network"]["chosen_for"]),
                             {"healthy", "slow_response"})
            self.assertEqual(by_name["report_storage"]["chosen_for"], ["storage_failed"])
            self.assertEqual(by_name["report_storage"]["steps"], ["report_storage"])
            self.assertEqual(by_name["quarantine_store"]["chosen_for"], [])
            self.assertEqual(by_name["quarantine_store"]["steps"],
                             ["confirm", "stop", "quarantine", "start", "verify"])
            # Every issue has exactly one playbook.
            chosen = [i for p in pbs for i in p["chosen_for"]]
            self.assertEqual(len(chosen), len(set(chosen)))
            self.assertEqual(len(chosen), 8)

    def test_bad_requests(self):
        with GraceServer(kernels={"librarian": {}}) as g:
            pid = g.kernel("librarian")["pid"]
            cases = [
                ({}, 400), ({"component_name": 5}, 400), ({"component_name": "nope"}, 404),
                ({"component_name": "librarian", "action": "explode"}, 400),
                ({"component_name": "librarian", "action": 3}, 400),
                ({"component_name": "librarian", "issue_type": "gremlins"}, 400),
                ({"component_name": "librarian", "force": "yes"}, 400),
            ]
            for body, want in cases:
                st, _, ans = g.http("POST", "/network-healer/heal", body)
                self.assertEqual(st, want, (body, ans))
                self.assertIn("error", ans)
            for path in ("/network-healer/heal", "/network-healer/diagnose"):
                st, _, ans = g.http("POST", path, "not json",
                                    headers={"Content-Type": "application/json"})
                self.assertEqual(st, 400, ans)
                st, _, ans = g.http("GET", path)
                self.assertEqual(st, 405, ans)
            st, _, ans = g.http("POST", "/network-healer/diagnose", {"component_name": "nope"})
            self.assertEqual(st, 404, ans)
            st, _, ans = g.http("GET", "/network-healer/incidents/abc")
            self.assertEqual(st, 400, ans)
            st, _, ans = g.http("GET", "/network-healer/incidents/0")
            self.assertEqual(st, 400, ans)
            st, _, ans = g.http("GET", "/network-healer/incidents/999999")
            self.assertEqual(st, 404, ans)
            st, _, ans = g.http("GET", "/network-healer/incidents?component=nope")
            self.assertEqual(st, 404, ans)
            st, _, ans = g.http("GET", "/network-healer/incidents?limit=0")
            self.assertEqual(st, 400, ans)
            st, _, ans = g.http("POST", "/kernel-ports/nope/reset-port")
            self.assertEqual(st, 404, ans)
            # None of it touched the kernel or left an incident.
            self.assertEqual(g.kernel("librarian")["pid"], pid)
            self.assertEqual(incidents(g), [])

            # issue_type overrides the diagnosis when choosing the playbook.
            st, inc = heal(g, "librarian", issue_type="process_hung")
            self.assertEqual(st, 200, inc)
            self.assertEqual((inc["diagnosed_issue"], inc["issue_type"], inc["playbook"]),
                             ("healthy", "process_hung", "restart_component"))
            self.assertEqual(inc["outcome"], "healed")
            self.assertNotEqual(g.kernel("librarian")["pid"], pid)
            # And a healthy kernel healed without one is only diagnosed.
            pid = g.kernel("librarian")["pid"]
            st, inc = heal(g, "librarian")
            self.assertEqual((inc["diagnosed_issue"], inc["playbook"], inc["outcome"]),
                             ("healthy", "diagnose_network", "diagnosed"))
            self.assertIsNone(inc["verification"])
            self.assertEqual(g.kernel("librarian")["pid"], pid)

    def test_incidents_survive_restart_and_stats(self):
        with GraceServer(kernels={"librarian": dict(QUIET), OTHER: dict(QUIET)}) as g:
            made = []
            for _ in range(3):
                st, inc = heal(g, "librarian", action="restart_component")
                self.assertEqual((st, inc["outcome"]), (200, "healed"), inc)
                made.append(inc)
            st, inc = diagnose(g, "librarian")
            made.append(inc)
            st, inc = heal(g, OTHER, action="rebind_port")
            self.assertEqual((st, inc["outcome"]), (200, "healed"), inc)
            made.append(inc)
            ids = [i["id"] for i in made]
            self.assertEqual(ids, sorted(ids))
            self.assertEqual(len(set(ids)), len(ids))
            for inc in made:
                stored = get_json(g, "/network-healer/incidents/%d" % inc["id"])
                self.assertEqual(near(stored, inc), inc)

            # An incident running when grace serve stops is not left "running".
            pid = g.kernel("librarian")["pid"]
            g.http("POST", "/kernel-ports/librarian/stop")  # no guardian interference
            g.wait_kernel("librarian", lambda k: k["state"] == "stopped")
            st, _, body = g.http("POST", "/kernel-ports/librarian/start")
            k = g.wait_kernel("librarian", lambda k: k["state"] == "ready")
            pid = k["pid"]
            stop_process(self, pid)
            g.wait_for(lambda: proc_state(pid) == "T")
            interrupted = {}

            def slow_heal():
                try:
                    interrupted["r"] = heal(g, "librarian", timeout=scaled(60))
                except OSError as e:
                    interrupted["r"] = e
            t = threading.Thread(target=slow_heal)
            t.start()
            try:
                g.wait_for(lambda: guardian_kernel(g, "librarian")["healing"])
                g.stop()
            finally:
                t.join(scaled(30))

            g.start()
            after = incidents(g)
            self.assertEqual([i["id"] for i in after[1:]], ids[::-1])
            self.assertEqual(near(after[1:], made[::-1]), made[::-1])
            last = after[0]
            self.assertEqual(last["component"], "librarian")
            # Cut short by the shutdown: finished one way or another, never
            # left "running" (which outcome: see test_healer_known_bugs.py).
            self.assertIn(last["outcome"], ("interrupted", "failed"), last)
            self.assertIn("duration_ms", last)
            for inc in made:
                self.assertEqual(near(get_json(g, "/network-healer/incidents/%d" % inc["id"]), inc),
                                 inc)

            # Filters and paging.
            lib = incidents(g, component="librarian")
            self.assertEqual([i["id"] for i in lib], [last["id"]] + ids[3::-1])
            self.assertEqual([i["id"] for i in incidents(g, component="librarian_kernel")],
                             [i["id"] for i in lib])
            self.assertEqual([i["id"] for i in incidents(g, component=OTHER)], [ids[4]])
            healed = incidents(g, outcome="healed")
            self.assertEqual({i["id"] for i in healed}, {ids[0], ids[1], ids[2], ids[4]})
            self.assertEqual([i["id"] for i in incidents(g, limit=2)], [last["id"], ids[4]])
            self.assertEqual([i["id"] for i in incidents(g, limit=2, before=ids[4])],
                             [ids[3], ids[2]])
            self.assertEqual(incidents(g, component=OTHER, outcome="failed"), [])

            # Stats, from the same record.
            stats = get_json(g, "/network-healer/stats")["playbooks"]
            rc = stats["restart_component"]
            durations = [i["duration_ms"] for i in made[:3]]
            if last.get("playbook") == "restart_component":
                durations.append(last["duration_ms"])
            self.assertEqual((rc["runs"], rc["healed"], rc["refused"]), (len(durations), 3, 0))
            self.assertEqual(rc["failed"], int(last["outcome"] == "failed"))
            self.assertAlmostEqual(rc["success_rate"], 3 / (3 + rc["failed"]))
            self.assertAlmostEqual(rc["median_ms"], statistics.median(durations), places=3)
            dn = stats["diagnose_network"]
            self.assertEqual((dn["runs"], dn["healed"], dn["failed"]), (1, 0, 0))
            self.assertIsNone(dn["success_rate"])  # nothing to succeed at
            self.assertEqual(stats["rebind_port"]["runs"], 1)
            self.assertAlmostEqual(stats["rebind_port"]["median_ms"], made[4]["duration_ms"],
                                   places=3)
            # The heal cut short by the shutdown is counted too, not healed.
            self.assertEqual(sum(p["runs"] for p in stats.values()),
                             5 + bool(last.get("playbook")))
            self.assertEqual(sum(p["healed"] for p in stats.values()), 4)

    def test_who_may_call_what(self):
        with GraceServer(kernels={"librarian": {}}) as g:
            g.create_user("plain", "a long enough password")
            user_token = g.login("plain", "a long enough password")
            user = {"Authorization": "Bearer " + user_token}
            pid = g.kernel("librarian")["pid"]
            admin_only = [
                ("POST", "/network-healer/heal", {"component_name": "librarian"}),
                ("POST", "/network-healer/diagnose", {"component_name": "librarian"}),
                ("POST", "/kernel-ports/librarian/restart", None),
                ("POST", "/kernel-ports/librarian/stop", None),
                ("POST", "/kernel-ports/librarian/start", None),
                ("POST", "/kernel-ports/librarian/reset-port", None),
                ("GET", "/kernels/librarian/health", None),
            ]
            readable = [
                ("GET", "/network-healer/playbooks", None),
                ("GET", "/network-healer/incidents", None),
                ("GET", "/network-healer/stats", None),
                ("GET", "/guardian/status", None),
                ("GET", "/guardian/events", None),
                ("GET", "/guardian/config", None),
                ("GET", "/kernel-ports", None),
                ("GET", "/librarian/health", None),
            ]
            for method, path, body in admin_only + readable:
                st, hdrs, ans = g.http(method, path, body, auth=False)
                self.assertEqual(st, 401, (method, path, ans))
                self.assertEqual(ans["error"]["code"], "unauthorized")
                self.assertIn("Bearer", hdrs["WWW-Authenticate"])
                st, _, ans = g.http(method, path, body, headers={"Authorization": "Bearer nope"})
                self.assertEqual(st, 401, (method, path, ans))
            for method, path, body in admin_only:
                st, _, ans = g.http(method, path, body, headers=user)
                self.assertEqual(st, 403, (method, path, ans))
                self.assertEqual(ans["error"]["code"], "forbidden")
            for method, path, body in readable:
                st, _, ans = g.http(method, path, body, headers=user)
                self.assertEqual(st, 200, (method, path, ans))
            # Nothing was done on anyone's behalf.
            k = g.kernel("librarian")
            self.assertEqual((k["pid"], k["state"]), (pid, "ready"))
            self.assertEqual(incidents(g), [])
            # The admin may.
            st, inc = diagnose(g, "librarian")
            self.assertEqual(st, 200, inc)
            st, _, _ = g.http("GET", "/kernels/librarian/health")
            self.assertEqual(st, 200)


if __name__ == "__main__":
    unittest.main()
