"""The built-in table of 20 kernels (their definitions, as `grace
kernels-list --json` gives them): each on its own port, all healthy, listed
by the API, probed by the health check, with Prometheus metrics."""

import sys
import subprocess
import threading
import time
import unittest

import harness
from harness import (BUILTIN_KERNELS, CpuContention, GraceServer, GraceTestCase, http_request,
                     scaled)

# Every kernel answers on its own port: a kernel that never does fails
# the probe's deadline. How fast they come up is bench/grace_bench.py's
# cold start (figures in bench/README.md), measured against a peer in the
# same run, not asserted here: on a CI machine shared with other tests the
# time says more about the neighbours than about Grace. The time is printed.


class AllKernels(GraceTestCase):
    @classmethod
    def setUpClass(cls):
        # Only [grace]/[limits]/[defaults]: the built-in table of 20 is used.
        cls.g = GraceServer(autostart=False)
        cls.first = {}  # name -> (seconds after spawn of grace serve, status, body)
        cls.errors = {}

        def probe(name, port):
            deadline = time.monotonic() + scaled(15)
            while time.monotonic() < deadline:
                try:
                    st, _, body = http_request(port, "GET", "/health", timeout=scaled(10))
                except (ConnectionRefusedError, ConnectionResetError):
                    time.sleep(0.005)
                    continue
                except OSError as e:
                    cls.errors[name] = repr(e)
                    return
                cls.first[name] = (time.monotonic() - cls.g.started_at, st, body)
                return
            cls.errors[name] = "no answer"

        threads = [threading.Thread(target=probe, args=(n, cls.g.kernel_port(n)))
                   for n in BUILTIN_KERNELS]
        try:
            root = lambda: cls.g.proc.pid if cls.g.proc else None
            with CpuContention(root) as cls.contention:
                cls.g.start(wait=False)
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
            cls.health = cls.g.wait_states()
        except BaseException:
            cls.g.dump_log()
            cls.g.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.g.close()

    def test_every_kernel_answers_on_its_own_port(self):
        self.assertEqual(self.errors, {})
        self.assertEqual(set(self.first), set(BUILTIN_KERNELS))
        for name, (dt, st, body) in self.first.items():
            self.assertEqual(st, 200, name)
            self.assertEqual(body["status"], "ok", name)
            self.assertEqual(body["kernel"], name, "port %d answered as another kernel"
                             % self.g.kernel_port(name))
            self.assertIsInstance(body["pid"], int)
            self.assertEqual(body["complete"], harness.kernels_list()[name], name)
            self.assertIn("version", body)
        print("first answers: slowest %.3f s after grace serve was spawned (CPU contention "
              "%.2f)" % (max(dt for dt, _, _ in self.first.values()),
                         self.contention.factor()), file=sys.stderr)
        # Each kernel is its own process.
        pids = {body["pid"] for _, _, body in self.first.values()}
        self.assertEqual(len(pids), 20)

    def test_api_health(self):
        st, hdrs, h = self.g.http("GET", "/health")
        self.assertEqual(st, 200)
        self.assertIn("application/json", hdrs["Content-Type"])
        self.assertEqual(h["status"], "ok")
        self.assertEqual(h["kernels_ready"], 20)
        self.assertEqual(h["kernels_total"], 20)
        self.assertEqual(h["pid"], self.g.proc.pid)
        self.assertEqual(set(h["kernels"]), set(BUILTIN_KERNELS))
        for name, k in h["kernels"].items():
            port, tier = BUILTIN_KERNELS[name]
            self.assertEqual(k["name"], name)
            self.assertEqual(k["state"], "ready", name)
            self.assertEqual(k["port"], port + self.g.offset, name)
            self.assertEqual(k["configured_port"], port, name)
            self.assertEqual(k["tier"], tier, name)
            self.assertIsInstance(k["pid"], int)
            self.assertGreaterEqual(k["uptime_s"], 0)
            self.assertEqual(k["restarts"], 0, name)
            self.assertEqual(k["last_exit"], "", name)
            self.assertEqual(k["complete"], harness.kernels_list()[name], name)
            # The pid the API reports is the one answering on the port.
            self.assertEqual(k["pid"], self.first[name][2]["pid"], name)

    def test_kernel_ports_list(self):
        st, _, body = self.g.http("GET", "/kernel-ports")
        self.assertEqual(st, 200)
        self.assertEqual(body["api_port"], self.g.api_port)
        self.assertEqual(body["port_offset"], self.g.offset)
        names = [k["name"] for k in body["kernels"]]
        self.assertEqual(names, list(BUILTIN_KERNELS))
        for k in body["kernels"]:
            self.assertEqual(k["port"], BUILTIN_KERNELS[k["name"]][0] + self.g.offset)
            self.assertEqual(k["state"], "ready")

    def test_kernel_ports_one(self):
        for path in ("/kernel-ports/librarian_kernel", "/kernel-ports/librarian"):
            st, _, k = self.g.http("GET", path)
            self.assertEqual(st, 200, path)
            self.assertEqual(k["name"], "librarian")
            self.assertEqual(k["port"], 8130 + self.g.offset)
            self.assertEqual(k["state"], "ready")
            self.assertTrue(k["complete"])
        st, _, body = self.g.http("GET", "/kernel-ports/no_such_kernel")
        self.assertEqual(st, 404)
        self.assertEqual(body["error"]["code"], "unknown_kernel")
        self.assertIsInstance(body["error"]["request_id"], str)
        # "_kernel" alone is not a kernel.
        st, _, _ = self.g.http("GET", "/kernel-ports/_kernel")
        self.assertEqual(st, 404)

    def test_health_check(self):
        st, _, body = self.g.http("GET", "/kernel-ports/health-check", timeout=scaled(10))
        self.assertEqual(st, 200)
        self.assertEqual(body["status"], "ok")
        self.assertEqual(body["healthy"], 20)
        self.assertEqual(body["total"], 20)
        self.assertEqual(set(body["kernels"]), set(BUILTIN_KERNELS))
        for name, r in body["kernels"].items():
            self.assertTrue(r["ok"], name)
            self.assertEqual(r["status"], 200, name)
            self.assertEqual(r["state"], "ready", name)
            self.assertIsInstance(r["latency_ms"], (int, float))
            self.assertEqual(r["answer"]["kernel"], name)
            self.assertEqual(r["answer"]["pid"], self.first[name][2]["pid"])

    def test_gateway_to_any_kernel(self):
        for name in ("audit", "message_bus", "librarian"):
            st, _, body = self.g.http("GET", "/kernels/%s/health" % name)
            self.assertEqual(st, 200, name)
            self.assertEqual(body["kernel"], name)
        st, _, body = self.g.http("GET", "/kernels/audit_kernel/health")
        self.assertEqual(st, 200)
        self.assertEqual(body["kernel"], "audit")
        st, _, body = self.g.http("GET", "/kernels/nope/health")
        self.assertEqual(st, 404)
        self.assertEqual(body["error"]["code"], "unknown_kernel")
        # A route a kernel does not have is the kernel's own 404 (a
        # placeholder has only the standard routes).
        spare = harness.spare_kernels(1)[0]
        st, _, body = self.g.http("GET", "/kernels/%s/no-such-route" % spare)
        self.assertEqual(st, 404)
        self.assertEqual(body["error"]["code"], "not_found")

    def test_api_wants_a_session(self):
        # /health and /metrics are for anyone; the rest needs a session.
        for path in ("/health", "/metrics"):
            st, _, _ = self.g.http("GET", path, auth=False)
            self.assertEqual(st, 200, path)
        for path in ("/kernel-ports", "/kernel-ports/librarian", "/librarian/search?query=x",
                     "/kernels/librarian/health"):
            st, hdrs, body = self.g.http("GET", path, auth=False)
            self.assertEqual(st, 401, path)
            self.assertEqual(body["error"]["code"], "unauthorized")
            self.assertIn("Bearer", hdrs["WWW-Authenticate"])
            st, _, body = self.g.http("GET", path, auth=False,
                                      headers={"Authorization": "Bearer not-a-real-token"})
            self.assertEqual(st, 401, path)
        # Another Host: refused whatever the route (against DNS rebinding).
        st, _, body = self.g.http("GET", "/health", headers={"Host": "evil.example"})
        self.assertEqual(st, 421)
        self.assertEqual(body["error"]["code"], "host_not_allowed")

    def metrics_text(self, port):
        self.g.http("GET", "/health", port=port)  # at least one request counted
        st, hdrs, body = self.g.http("GET", "/metrics", port=port)
        self.assertEqual(st, 200)
        self.assertIn("text/plain", hdrs["Content-Type"])
        self.assertIsInstance(body, bytes)
        return body.decode()

    def check_common_metrics(self, text, component):
        self.assertIn("# TYPE grace_http_requests_total counter", text)
        self.assertIn('grace_http_requests_total{kernel="%s",route="/health",method="GET",'
                      'status="200"}' % component, text)
        # One label names the process in every series (issue 15); CPU
        # time and the build are there too.
        self.assertNotIn("component=", text)
        self.assertIn('process_cpu_seconds_total{kernel="%s"}' % component, text)
        self.assertIn('grace_build_info{kernel="%s",version="' % component, text)
        self.assertIn("# TYPE process_resident_memory_bytes gauge", text)
        for line in text.splitlines():
            if line.startswith("process_resident_memory_bytes{"):
                self.assertGreater(int(line.split()[-1]), 0)
                break
        else:
            self.fail("no process_resident_memory_bytes sample")

    def promtool(self, text):
        promtool = harness.need_tool("promtool", "prometheus")
        p = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, "promtool check metrics:\n%s%s"
                         % (p.stdout.decode(), p.stderr.decode()))

    def test_kernel_metrics(self):
        text = self.metrics_text(self.g.kernel_port("librarian"))
        self.check_common_metrics(text, "librarian")
        self.promtool(text)
        text = self.metrics_text(self.g.kernel_port("alerts"))
        self.check_common_metrics(text, "alerts")
        self.promtool(text)

    def test_api_metrics(self):
        text = self.metrics_text(self.g.api_port)
        self.check_common_metrics(text, "grace")
        up = [l for l in text.splitlines() if l.startswith("grace_kernel_up{")]
        self.assertEqual(len(up), 20)
        for l in up:
            self.assertTrue(l.endswith(" 1"), l)
            # The state is not a label of up: a series of its own.
            self.assertNotIn("state=", l)
        self.assertIn('grace_kernel_state{kernel="librarian",state="ready"} 1', text)
        self.assertIn('grace_kernel_state{kernel="librarian",state="failed"} 0', text)
        self.assertIn('grace_data_dir_free_bytes{kernel="grace"}', text)
        self.promtool(text)


if __name__ == "__main__":
    unittest.main()
