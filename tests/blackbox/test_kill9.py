"""kill -9 of a kernel under a steady stream of new connections: the
supervisor keeps the listening socket, so no client is ever refused, and the
restarted kernel answers on the same port."""

import http.client
import json
import os
import signal
import sys
import threading
import time
import unittest

from harness import GraceServer, GraceTestCase, scaled, spare_kernels

OTHER = spare_kernels(1)[0]  # a bystander that must stay untouched

STREAM_S = 2.0
KILL_AT_S = 0.6


class Kill9(GraceTestCase):
    def test_kill9_under_new_connections(self):
        with GraceServer(kernels={"librarian": {}, OTHER: {}}) as g:
            port = g.kernel_port("librarian")
            before = g.kernel("librarian")
            old_pid = before["pid"]
            other_pid = g.kernel(OTHER)["pid"]
            self.assertEqual(before["restarts"], 0)

            counts = {"ok": 0, "refused": 0, "reset": 0, "other": 0, "bad_status": 0}
            answered_by = []
            errors = []
            stop = threading.Event()

            def client():
                while not stop.is_set():
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=scaled(10))
                    try:
                        conn.request("GET", "/health")
                        resp = conn.getresponse()
                        body = resp.read()
                        if resp.status == 200:
                            counts["ok"] += 1
                            answered_by.append((time.monotonic(), body))
                        else:
                            counts["bad_status"] += 1
                            errors.append((resp.status, body[:200]))
                    except ConnectionRefusedError as e:
                        counts["refused"] += 1
                        errors.append(repr(e))
                    except (ConnectionResetError, BrokenPipeError,
                            http.client.RemoteDisconnected) as e:
                        # Only a request in flight at the moment of the kill.
                        counts["reset"] += 1
                        errors.append(repr(e))
                    except OSError as e:
                        counts["other"] += 1
                        errors.append(repr(e))
                    finally:
                        conn.close()

            # Meanwhile, through the API's gateway on pooled keep-alive
            # connections: a GET the dying kernel had in hand is repeated on
            # the restarted one, so every one of these must succeed.
            gw = {"ok": 0, "failed": []}

            def gateway_client():
                while not stop.is_set():
                    try:
                        st, _, body = g.http("GET", "/librarian/health", timeout=scaled(10))
                    except OSError as e:
                        gw["failed"].append(repr(e))
                        continue
                    if st == 200:
                        gw["ok"] += 1
                    else:
                        gw["failed"].append((st, body))

            t = threading.Thread(target=client)
            t2 = threading.Thread(target=gateway_client)
            t0 = time.monotonic()
            t.start()
            t2.start()
            try:
                time.sleep(KILL_AT_S)
                os.kill(old_pid, signal.SIGKILL)
                killed_at = time.monotonic()
                time.sleep(max(0.0, STREAM_S - (time.monotonic() - t0)))
            finally:
                stop.set()
                t.join(scaled(20))
                t2.join(scaled(20))

            print("kill9 counts: direct %r, gateway ok %d, failed %d"
                  % (counts, gw["ok"], len(gw["failed"])), file=sys.stderr)
            self.assertEqual(counts["refused"], 0, "connections refused: %r" % errors)
            self.assertEqual(counts["other"], 0, errors)
            self.assertEqual(counts["bad_status"], 0, errors)
            self.assertLessEqual(counts["reset"], 2, errors)
            self.assertGreater(counts["ok"], 20, counts)
            self.assertEqual(gw["failed"], [])
            self.assertGreater(gw["ok"], 20)

            pids_before = {json.loads(b)["pid"] for ts, b in answered_by if ts < killed_at}
            self.assertEqual(pids_before, {old_pid})
            pids_after = {json.loads(b)["pid"] for ts, b in answered_by if ts > killed_at + 0.05}
            self.assertTrue(pids_after, "no answer after the kill: %r" % counts)
            self.assertNotIn(old_pid, pids_after)

            k = g.wait_kernel("librarian", lambda k: k["state"] == "ready" and k["pid"] != old_pid)
            self.assertEqual(k["port"], port)
            self.assertEqual(k["restarts"], 1)
            self.assertIn("signal 9", k["last_exit"])
            st, _, body = g.kernel_http("librarian", "GET", "/health")
            self.assertEqual(st, 200)
            self.assertEqual(body["pid"], k["pid"])
            self.assertEqual(body["kernel"], "librarian")
            self.assertEqual(pids_after, {k["pid"]})
            st, _, text = g.http("GET", "/metrics")
            self.assertIn('grace_kernel_restarts_total{kernel="librarian"} 1', text.decode())
            # Nothing else was touched.
            a = g.kernel(OTHER)
            self.assertEqual((a["pid"], a["restarts"], a["state"]), (other_pid, 0, "ready"))


if __name__ == "__main__":
    unittest.main()
