"""The guardian: /health probes every health_interval_ms, a kernel whose
probes fail is degraded, then unhealthy after health_failures in a row, and
is healed through the healer (an incident with trigger "guardian"). Every
state change is kept in /guardian/events. Probes are asynchronous: a hung
kernel delays neither the API nor the other kernels' probes."""

import threading
import time
import unittest

from harness import CpuContention, GraceServer, GraceTestCase, pid_alive, scaled, spare_kernels
from healer_support import (check_incident_shape, get_json, guardian_kernel, incidents,
                            proc_state, stop_process)

OTHER = spare_kernels(1)[0]

FAST = {"health_interval_ms": 100, "health_timeout_ms": 200, "health_failures": 2,
        "watchdog_ms": 600000}  # the watchdog must not act first


class Guardian(GraceTestCase):
    def test_config_and_status(self):
        with GraceServer(kernels={"librarian": dict(FAST),
                                  OTHER: {"health_interval_ms": 60000}}) as g:
            cfg = get_json(g, "/guardian/config")
            by_name = {k["name"]: k for k in cfg["kernels"]}
            self.assertEqual(set(by_name), {"librarian", OTHER})
            lib = by_name["librarian"]
            self.assertEqual((lib["health_interval_ms"], lib["health_timeout_ms"],
                              lib["health_failures"], lib["watchdog_ms"]), (100, 200, 2, 600000))
            self.assertEqual(lib["restart"]["backoff_initial_ms"], 50)  # the harness's default
            other = by_name[OTHER]
            self.assertEqual(other["health_interval_ms"], 60000)
            # Built-in defaults for what neither section sets.
            self.assertEqual((other["health_timeout_ms"], other["health_failures"]), (2000, 3))
            self.assertGreater(cfg["events_kept"], 0)

            # Probes run on their own every 100 ms, and succeed.
            gk = g.wait_for(lambda: (lambda k: k if k["probes"] >= 5 else None)(
                guardian_kernel(g, "librarian")), timeout=scaled(10))
            self.assertEqual(gk["state"], "ready")
            self.assertEqual(gk["consecutive_failures"], 0)
            self.assertEqual(gk["last_probe"]["status"], 200)
            self.assertIsInstance(gk["last_probe"]["latency_ms"], (int, float))
            self.assertLess(gk["last_probe"]["latency_ms"], 200)
            self.assertGreater(gk["last_probe"]["at_ms"], 0)
            self.assertEqual(gk["pid"], g.kernel("librarian")["pid"])
            self.assertEqual(gk["port"], g.kernel_port("librarian"))
            for key in ("since_ms", "restarts", "last_exit", "process_state"):
                self.assertIn(key, gk)
            # 60 s between probes: none yet for the other one.
            og = guardian_kernel(g, OTHER)
            self.assertEqual((og["state"], og["probes"], og["last_probe"]), ("ready", 0, None))
            status = get_json(g, "/guardian/status")
            self.assertEqual((status["status"], status["healthy"], status["total"]), ("ok", 2, 2))

            st, _, body = g.http("GET", "/guardian/events?kernel=nope")
            self.assertEqual(st, 404, body)
            st, _, body = g.http("GET", "/guardian/events?limit=0")
            self.assertEqual(st, 400, body)
            # Ready at start: stopped -> starting -> ready, for each kernel.
            ev = get_json(g, "/guardian/events?kernel=librarian")["events"]
            self.assertEqual([(e["from"], e["to"]) for e in ev],
                             [("stopped", "starting"), ("starting", "ready")])
            self.assertTrue(all(e["kernel"] == "librarian" for e in ev))

    def test_hang_degraded_unhealthy_healed(self):
        with GraceServer(kernels={"librarian": dict(FAST),
                                  OTHER: {"health_interval_ms": 100, "health_timeout_ms": 1000}}
                         ) as g:
            pid = g.kernel("librarian")["pid"]
            g.wait_for(lambda: guardian_kernel(g, OTHER)["probes"] >= 2)
            other_pid = g.kernel(OTHER)["pid"]

            # Watch /guardian/status closely from a thread of its own.
            seen, api_ms = [], []
            stop = threading.Event()

            def watch():
                # One last sample after stop is set: the main thread stops
                # the watch once it has seen "ready", which the watch must
                # see too, however its last sleep fell.
                while True:
                    last = stop.is_set()
                    t0 = time.monotonic()
                    st, _, body = g.http("GET", "/guardian/status", timeout=scaled(5))
                    api_ms.append((time.monotonic() - t0) * 1000)
                    if st == 200:
                        k = [x for x in body["kernels"] if x["name"] == "librarian"][0]
                        if not seen or seen[-1] != k["state"]:
                            seen.append(k["state"])
                    if last:
                        break
                    time.sleep(0.01)

            other_before = guardian_kernel(g, OTHER)
            started_ms = int(time.time() * 1000)
            watcher = threading.Thread(target=watch)
            watcher.start()
            try:
                with CpuContention(g.proc.pid) as busy:
                    stop_process(self, pid)
                    t_stop = time.monotonic()
                    g.wait_for(lambda: proc_state(pid) == "T", interval=0.002)
                    # Meanwhile the API answers at once.
                    health_ms = []
                    while proc_state(pid) == "T" and time.monotonic() - t_stop < scaled(10):
                        t0 = time.monotonic()
                        st, _, _ = g.http("GET", "/health", timeout=scaled(5))
                        health_ms.append((time.monotonic() - t0) * 1000)
                        self.assertEqual(st, 200)
                        time.sleep(0.02)
                    k = g.wait_kernel("librarian", lambda x: x["state"] == "ready"
                                      and x["pid"] not in (None, pid), timeout=scaled(15))
                    healed_after = time.monotonic() - t_stop
                    g.wait_for(lambda: guardian_kernel(g, "librarian")["state"] == "ready")
            finally:
                stop.set()
                watcher.join(scaled(10))

            # Two failed probes of 200 ms, a diagnosis of 200 ms, a restart:
            # well within a few seconds on an idle machine.
            self.assertLess(healed_after, scaled(4.0) * busy.factor(), seen)
            self.assertFalse(pid_alive(pid))

            # The status went degraded, then unhealthy, then back to ready.
            self.assertIn("degraded", seen)
            self.assertIn("unhealthy", seen)
            self.assertLess(seen.index("degraded"), seen.index("unhealthy"), seen)
            self.assertEqual(seen[-1], "ready", seen)
            self.assertLess(seen.index("unhealthy"), len(seen) - 1)

            # The events, in order.
            ev = get_json(g, "/guardian/events?kernel=librarian&since=%d" % started_ms)["events"]
            pairs = [(e["from"], e["to"]) for e in ev]
            self.assertEqual(pairs[:2], [("ready", "degraded"), ("degraded", "unhealthy")], pairs)
            self.assertEqual(pairs[-1][1], "ready", pairs)
            self.assertIn(("unhealthy", "restarting"), pairs)
            for a, b in zip(pairs, pairs[1:]):
                self.assertEqual(a[1], b[0], pairs)  # each starts where the last ended
            ids = [e["id"] for e in ev]
            self.assertEqual(ids, sorted(ids))
            ts = [e["ts_ms"] for e in ev]
            self.assertEqual(ts, sorted(ts))
            self.assertGreaterEqual(ts[0], started_ms)
            self.assertIn("probe failed (1 in a row)", ev[0]["reason"])
            self.assertIn("probe failed (2 in a row)", ev[1]["reason"])
            # since= filters: nothing before the hang is in that list.
            all_ev = get_json(g, "/guardian/events?kernel=librarian")["events"]
            self.assertGreater(len(all_ev), len(ev))
            self.assertTrue(all(e["ts_ms"] < started_ms for e in all_ev[:len(all_ev) - len(ev)]))
            limited = get_json(g, "/guardian/events?kernel=librarian&limit=2")["events"]
            self.assertEqual(limited, all_ev[:2])

            # The incident the guardian opened, and it healed the kernel.
            got = incidents(g, component="librarian")
            self.assertEqual(len(got), 1, got)
            inc = got[0]
            check_incident_shape(self, inc, "librarian")
            self.assertEqual(inc["trigger"], "guardian")
            self.assertEqual(inc["diagnosed_issue"], "process_hung")
            self.assertEqual(inc["diagnosis"]["process"]["state"], "stopped")
            self.assertEqual((inc["playbook"], inc["outcome"]), ("restart_component", "healed"))
            self.assertEqual(inc["verification"]["answer"]["pid"], k["pid"])
            gk = guardian_kernel(g, "librarian")
            self.assertEqual((gk["state"], gk["healing"], gk["consecutive_failures"]),
                             ("ready", False, 0))
            self.assertGreaterEqual(gk["probe_failures"], 2)
            st, _, text = g.http("GET", "/metrics")
            self.assertIn('grace_kernel_watchdog_kills_total{kernel="librarian"} 0',
                          text.decode())

            # Neither the API nor the other kernel's probes waited on the hung one.
            self.assertTrue(health_ms, "the kernel was never seen stopped")
            self.assertLess(max(health_ms), scaled(150) * busy.factor(), health_ms)
            self.assertLess(max(api_ms), scaled(300) * busy.factor())
            og = guardian_kernel(g, OTHER)
            self.assertEqual((og["state"], og["consecutive_failures"], og["pid"]),
                             ("ready", 0, other_pid))
            self.assertEqual(og["probe_failures"], 0)
            # At 100 ms a probe, several ran during the hang and the heal.
            self.assertGreaterEqual(og["probes"] - other_before["probes"],
                                    max(2, int(healed_after / 0.1 / (3 * busy.factor()))))
            self.assertLess(og["last_probe"]["latency_ms"], 200)
            self.assertEqual(incidents(g, component=OTHER), [])


if __name__ == "__main__":
    unittest.main()
