"""Regression tests for bugs in the guardian, network healer and gateway that
test_healer*.py, test_guardian*.py, test_gateway*.py and test_cli*.py found
(all fixed). Each test states what the spec (issue 3, README) wants; the
comment above each says where the bug was and how it showed."""

import collections
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from harness import GraceServer, GraceTestCase, scaled, spare_kernels
from healer_support import (check_incident_shape, diagnose, get_json, guardian_kernel, heal,
                            kill_popen, proc_state, step, stop_process, stub_kernel_command)

SLOT, OTHER = spare_kernels(2)

QUIET = {"health_interval_ms": 600000, "watchdog_ms": 600000}

# A foreign listener with a lot of memory: after SIGTERM it takes a while to
# tear its memory down, and only then are its descriptors (the socket) closed.
BIG_HOLDER = r"""
import socket, sys, time
ballast = b"x" * (int(sys.argv[2]) << 20)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(16)
sys.stdout.write("listening\n")
sys.stdout.flush()
while True:
    time.sleep(3600)
"""


class HealerKnownBugs(GraceTestCase):
    def test_diagnosis_of_a_port_nobody_listens_on(self):
        # BUG (src/healer/diagnose.c, diag_finish): `overflows` (a
        # json_integer from proc_listen_overflows) is only handed to
        # json_pack when f->listening; when the kernel's port is not
        # listening (kernel stopped, failed, or port_unavailable once the
        # holder left) it leaks, once per diagnosis and per heal.
        # Visible under ASan/LSan only: this test passes on a plain build and
        # fails under ASan, where grace serve's exit reports
        #   Direct leak of 24 byte(s) ... json_integer ... measure_connect
        #   diagnose.c:281 ... hl_diagnose diagnose.c:293
        # Repro: POST /kernel-ports/librarian/stop, then POST
        # /network-healer/diagnose {"component_name":"librarian"}, then stop
        # grace serve (ASan build).
        with GraceServer(kernels={"librarian": dict(QUIET)}) as g:
            st, _, _ = g.http("POST", "/kernel-ports/librarian/stop")
            self.assertEqual(st, 202)
            g.wait_kernel("librarian", lambda k: k["state"] == "stopped")
            st, d = diagnose(g, "librarian")
            self.assertEqual(st, 200, d)
            diag = d["diagnosis"]
            self.assertEqual(diag["issue_type"], "port_not_listening", diag)
            self.assertFalse(diag["listening"])
            self.assertIsNone(diag["port_holder"])
            self.assertIsNone(diag["connect_ms"])
            self.assertIsNone(diag["accept_queue"])
            self.assertEqual(diag["process"]["state"], "dead")
            self.assertIsNone(diag["process"]["pid"])

            st, inc = heal(g, "librarian")
            self.assertEqual(st, 200, inc)
            check_incident_shape(self, inc, "librarian")
            self.assertEqual((inc["playbook"], inc["outcome"]), ("restart_component", "healed"))
            self.assertIn("no process", step(inc, "stop")["detail"])
            k = g.kernel("librarian")
            self.assertEqual(k["state"], "ready")
            st, _, body = g.http("GET", "/librarian/health")
            self.assertEqual((st, body["pid"]), (200, k["pid"]))
            # (The leak is reported when the server stops, at the end of `with`.)

    def test_forced_clear_port_waits_for_the_port(self):
        # BUG (src/healer/healer.c, clear_holder_poll / holder_unchanged):
        # after SIGTERM the holder counts as gone as soon as its command line
        # cannot be read any more. But /proc/PID/cmdline goes empty when the
        # dying process releases its memory (exit_mm), *before* its files
        # (the listening socket) are closed (exit_files). The start step then
        # runs while the port is still held:
        #   clear_holder ok "ended foreign (forced) pid N (...) with SIGTERM"
        #   start failed "cannot start on port P: port P held by pid N (unknown)"
        # and the kernel is left port_unavailable. The window is as long as
        # the holder's memory takes to free: for a 1 GiB process it is hit
        # nearly every time; for small holders it was seen once under load.
        # Repro: a Python listener holding 1 GiB (BIG_HOLDER below) on a
        # kernel's port before grace serve starts, then POST
        # /network-healer/heal {"component_name":NAME,"action":"clear_port",
        # "force":true} -> outcome "failed".
        # A fix: after the holder is gone by cmdline/start time, wait until
        # the port is free (or the pid is a zombie or gone), not only until
        # the command line changes; or retry the bind in the start step.
        with GraceServer(kernels={"librarian": {}, SLOT: {}},
                         expect={SLOT: "port_unavailable"}, autostart=False) as g:
            holder = subprocess.Popen([sys.executable, "-c", BIG_HOLDER,
                                       str(g.kernel_port(SLOT)), "1024"],
                                      stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
            self.addCleanup(holder.stdout.close)
            self.addCleanup(kill_popen, holder)
            self.assertEqual(holder.stdout.readline().strip(), b"listening")
            g.start()
            st, inc = heal(g, SLOT, action="clear_port", force=True)
            self.assertEqual(st, 200, inc)
            self.assertTrue(inc.get("forced"), inc)
            self.assertEqual(step(inc, "clear_holder")["result"], "ok")
            self.assertEqual(inc["outcome"], "healed",
                             [(s["step"], s["result"], s["detail"][-90:]) for s in inc["steps"]])
            self.assertEqual(g.kernel(SLOT)["state"], "ready")

    def test_failed_verification_says_what_was_answered(self):
        # BUG (src/healer/healer.c, on_verify): when /health answers with a
        # status other than 200 the verify step's detail is "/health answered "
        # and nothing more: the format leaves out the status it got (it only
        # names 200-but-not-ok, or the error when there was no answer). `grace
        # heal` prints that detail, so an operator reads "verify failed
        # /health answered" without the 500.
        # Repro: a kernel whose /health answers 500 (stub_kernel_command(500)),
        # POST /network-healer/heal {"component_name":NAME} -> steps[-1].detail.
        kernels = {"librarian": {}, SLOT: dict(QUIET, command=stub_kernel_command(500))}
        with GraceServer(kernels=kernels) as g:
            st, inc = heal(g, SLOT, action="restart_component")
            self.assertEqual(st, 200, inc)
            self.assertEqual((inc["outcome"], inc["verification"]["status"]), ("failed", 500))
            self.assertIn("500", step(inc, "verify")["detail"])

    def test_heal_cut_short_by_shutdown_is_not_a_failure(self):
        # BUG (src/healer/healer.c, step_start and hl_on_sup_change): a heal
        # still running when grace serve is told to stop is recorded as
        # outcome "failed" of its playbook (and counted in /stats as a
        # failure of restart_component), with the misleading detail
        #   start failed "cannot start on port P: exit 0"
        # (sup_kernel_start returned -ESHUTDOWN; the detail prints the
        # kernel's last_exit instead). The healer has an outcome for exactly
        # this, "interrupted" (hl_free, and the incidents table's startup
        # UPDATE), but only uses it if the event loop ends before the
        # shutdown's own stop of the kernel reaches the heal's wait.
        # Repro: kill -STOP a kernel (watchdog and probes off), POST
        # /network-healer/heal for it, SIGTERM grace serve while the heal
        # diagnoses; after a restart GET /network-healer/incidents.
        with GraceServer(kernels={"librarian": dict(QUIET), OTHER: {}}) as g:
            pid = g.kernel("librarian")["pid"]
            stop_process(self, pid)
            g.wait_for(lambda: proc_state(pid) == "T")
            done = {}

            def run():
                try:
                    done["r"] = heal(g, "librarian", timeout=scaled(60))
                except OSError as e:
                    done["r"] = e
            t = threading.Thread(target=run)
            t.start()
            try:
                g.wait_for(lambda: guardian_kernel(g, "librarian")["healing"])
                g.stop()
            finally:
                t.join(scaled(30))
            g.start()
            inc = get_json(g, "/network-healer/incidents")["incidents"][0]
            self.assertEqual(inc["component"], "librarian")
            details = [(s["step"], s["result"], s["detail"]) for s in inc.get("steps", [])]
            self.assertEqual(inc["outcome"], "interrupted", details)
            stats = get_json(g, "/network-healer/stats")["playbooks"]
            self.assertEqual(sum(p["failed"] for p in stats.values()), 0, stats)

    def test_gets_survive_a_port_move(self):
        # BUG (src/gateway/gateway.c, on_upstream / send_attempt / pool_of,
        # with src/healer/healer.c step_pick_port): the issue says "Requests
        # through :8000 survive kernel crashes and port moves." Under steady
        # GETs to /librarian/health (3 keep-alive clients), every POST
        # /network-healer/heal {"component_name":"librarian",
        # "action":"rebind_port"} makes the GET each client has in flight
        # fail with
        #   504 {"code":"upstream_timeout","message":"librarian: the kernel
        #        did not answer in time"}
        # about 0.11 s after it was sent, while kill -9 and restart_component
        # under the same load fail none. From the debug log: the GETs sent
        # while the kernel drains for the move (the stop step) wait on the
        # old port, in the listening socket's backlog, and are lost when
        # pick_port closes that socket; they are not sent again to the new
        # port (a retry reuses f->pool, whose port only pool_of() updates,
        # for new requests, and only when none is pending).
        # A second bug shows in the same answers: a "timeout" 0.1 s into a
        # 10 s per-attempt timeout. send_attempt sets f->error = 0, which is
        # EVREQ_HTTP_TIMEOUT, so a request libevent ends without calling the
        # error callback is reported as a 504 timeout instead of a 502 that
        # says what happened (initialise it to a value meaning "unknown").
        with GraceServer(kernels={"librarian": {}, OTHER: {}}) as g:
            headers = dict(g.auth_headers())
            stop = threading.Event()
            lock = threading.Lock()
            counts = collections.Counter()
            failures = []

            def client():
                conn = http.client.HTTPConnection("127.0.0.1", g.api_port, timeout=scaled(30))
                while not stop.is_set():
                    t0 = time.monotonic()
                    try:
                        conn.request("GET", "/librarian/health", headers=headers)
                        resp = conn.getresponse()
                        body = resp.read()
                        st = resp.status
                    except (OSError, http.client.HTTPException) as e:
                        conn.close()
                        st, body = None, repr(e).encode()
                    with lock:
                        counts[st] += 1
                        if st != 200:
                            failures.append((st, round(time.monotonic() - t0, 2), body[:150]))
                conn.close()

            threads = [threading.Thread(target=client) for _ in range(3)]
            for t in threads:
                t.start()
            moves = []
            try:
                for _ in range(3):
                    g.wait_for(lambda: counts[200] > 20 * (len(moves) + 1), timeout=scaled(10))
                    st, inc = heal(g, "librarian", action="rebind_port")
                    self.assertEqual((st, inc["outcome"]), (200, "healed"), inc)
                    moves.append(inc["new_port"])
                time.sleep(0.3)
            finally:
                stop.set()
                for t in threads:
                    t.join(scaled(60))
            self.assertEqual(len(moves), 3)
            self.assertGreater(counts[200], 60)
            self.assertEqual(failures, [], "GETs failed across %d port moves (%r)"
                             % (len(moves), dict(counts)))

    def test_timed_out_get_is_not_sent_twice(self):
        # BUG (src/gateway/gateway.c, on_upstream): the issue allows one
        # retry of a GET "on a reset while the kernel restarts", and an
        # overall deadline (GW_DEADLINE_MS, 15 s). But on_upstream retries an
        # idempotent request after any failure, a per-attempt timeout
        # included: a GET the kernel is slow to answer is sent to it a second
        # time after 10 s, and the client gets its 504 after 20 s, past the
        # 15 s deadline (which only gates *starting* the retry).
        # Repro: a kernel that answers GET /sleep?ms=12000 after 12 s (the
        # stand-in of healer_support.py); GET :8000/kernels/NAME/sleep?ms=12000
        # -> 504 after 20.1 s, and the kernel's GET /seen says /sleep: 2.
        kernels = {"librarian": {}, SLOT: dict(QUIET, command=stub_kernel_command(200))}
        with GraceServer(kernels=kernels) as g:
            t0 = time.monotonic()
            st, _, body = g.http("GET", "/kernels/%s/sleep?ms=12000" % SLOT, timeout=scaled(60))
            elapsed = time.monotonic() - t0
            self.assertEqual(st, 504, body)
            seen = get_json(g, "/kernels/%s/seen" % SLOT)
            self.assertEqual(seen.get("/sleep"), 1, "the kernel got the GET %s times (answer "
                             "after %.1f s)" % (seen.get("/sleep"), elapsed))
            self.assertLess(elapsed, 15.5, "answered after %.1f s, past the 15 s deadline"
                            % elapsed)


    def test_get_retry_does_not_go_back_to_the_dying_kernel(self):
        # BUG (src/gateway/gateway.c, on_upstream -> send_attempt ->
        # pool_pick): a GET whose kernel dies with the request in hand is
        # retried once, on the first idle pooled keep-alive connection, and
        # that may be another connection to the same dying process, which
        # conn_dead() passes as long as the process has not closed it yet.
        # The dying process drops that one too, and the client gets
        #   502 {"code":"upstream_failed","message":"NAME: the kernel
        #        closed the connection before answering"}
        # In the chaos test (test_gateway_chaos.py: kill -9 of the librarian
        # under GETs and POSTs through :8000) this happened to one or two
        # GETs in roughly one run in five when test files ran in parallel:
        # both attempts failed within 15 ms, before grace serve had even
        # reaped the kernel. A killed process closes its descriptors one by
        # one, and the gateway's retry can be faster. Here a stand-in kernel
        # dies in slow motion, which makes it happen every time: one pooled
        # connection answers a short request and goes idle while the GET on
        # another is held 300 ms and then dropped (GET /die?ms=300); the
        # retry goes to the idle connection of the dying process.
        # A fix: retry on a fresh connection (it waits in the listening
        # socket's backlog, which grace serve keeps, for the restarted
        # kernel), and drop the pool's idle connections to a process that
        # has failed a request.
        d = tempfile.mkdtemp(prefix="grace-bb-die-")
        self.addCleanup(shutil.rmtree, d, True)
        flag = os.path.join(d, "die")
        kernels = {"librarian": {},
                   SLOT: dict(QUIET, command=stub_kernel_command(200, 0, flag))}
        with GraceServer(kernels=kernels) as g:
            pid = g.kernel(SLOT)["pid"]
            # Two pooled connections: the first busy for 100 ms while the
            # GET that dies goes out on the second.
            short = threading.Thread(target=g.http,
                                     args=("GET", "/kernels/%s/sleep?ms=100" % SLOT))
            short.start()
            time.sleep(0.03)
            open(flag, "w").close()
            st, _, body = g.http("GET", "/kernels/%s/die?ms=300" % SLOT, timeout=scaled(20))
            short.join(scaled(10))
            self.assertFalse(os.path.exists(flag), "the stand-in never got the request")
            self.assertEqual(st, 200, "a GET whose kernel died was not answered by the "
                             "restarted kernel: %s %r" % (st, body))
            self.assertNotEqual(body["pid"], pid)


if __name__ == "__main__":
    unittest.main()
