"""rebind_port: a kernel whose port a foreign program took before the start
is port_unavailable; the healer moves it to a free port of its tier range,
the gateway follows at once, the move survives a restart of the kernel and
of grace serve, and reset-port brings it back once the port is free."""

import os
import unittest

from harness import (BUILTIN_KERNELS, KERNEL_PORT_MAX, KERNEL_PORT_MIN, GraceServer,
                     GraceTestCase, port_bindable, spare_kernels)
from healer_support import check_incident_shape, get_json, heal, incidents, listen_here, step

# A bystander outside the librarian's tier range (8130-8139), which one
# test fills with foreign listeners.
OTHER = [k for k in spare_kernels(8) if not 8130 <= BUILTIN_KERNELS[k][0] <= 8139][0]


class HealerRebind(GraceTestCase):
    def test_rebind_keep_and_reset(self):
        with GraceServer(kernels={"librarian": {}, OTHER: {}},
                         expect={"librarian": "port_unavailable"}, autostart=False) as g:
            configured = g.kernel_port("librarian")
            blocker = listen_here(configured)
            self.addCleanup(blocker.close)
            g.start()

            k = g.kernel("librarian")
            self.assertEqual(k["state"], "port_unavailable")
            self.assertEqual(k["port"], configured)
            self.assertEqual(k["port_holder"]["pid"], os.getpid())
            st, hdrs, body = g.http("GET", "/librarian/health")
            self.assertEqual(st, 503, body)
            self.assertIn("port_unavailable", body["error"]["message"])

            # Heal by the NAME_kernel spelling, as the example does.
            st, inc = heal(g, "librarian_kernel", action="rebind_port")
            self.assertEqual(st, 200, inc)
            check_incident_shape(self, inc, "librarian")
            self.assertEqual(inc["outcome"], "healed", inc)
            self.assertEqual(inc["playbook"], "rebind_port")
            self.assertEqual(inc["requested_action"], "rebind_port")
            self.assertEqual(inc["trigger"], "api")
            self.assertEqual(inc["diagnosed_issue"], "port_held_by_foreign_process")
            holder = inc["diagnosis"]["port_holder"]
            self.assertEqual((holder["kind"], holder["pid"], holder["ours"]),
                             ("foreign", os.getpid(), False))
            self.assertEqual([s["step"] for s in inc["steps"]],
                             ["stop", "pick_port", "start", "verify"])
            new_port = inc["new_port"]
            self.assertEqual(inc["port"], new_port)
            self.assertNotEqual(new_port, configured)
            # The librarian's tier range (8130-8139), shifted by the offset.
            tier_lo = 8130 + g.offset
            self.assertTrue(tier_lo <= new_port <= tier_lo + 9, new_port)
            self.assertTrue(KERNEL_PORT_MIN + g.offset <= new_port <= KERNEL_PORT_MAX + g.offset)
            self.assertNotEqual(new_port, g.kernel_port(OTHER))
            self.assertIn(str(new_port), step(inc, "pick_port")["detail"])

            k = g.kernel("librarian")
            self.assertEqual((k["state"], k["port"]), ("ready", new_port))
            self.assertNotIn("port_holder", k)
            self.assertEqual(inc["verification"]["answer"]["pid"], k["pid"])
            self.assertEqual(inc["verification"]["answer"]["kernel"], "librarian")
            # Our listener still holds the configured port: nothing touched it.
            self.assertFalse(port_bindable(configured))

            # The gateway routes there at once, by both routes.
            st, _, body = g.http("GET", "/librarian/health")
            self.assertEqual((st, body["pid"]), (200, k["pid"]), body)
            st, _, body = g.http("GET", "/kernels/librarian/health")
            self.assertEqual((st, body["pid"]), (200, k["pid"]), body)
            st, _, doc = g.http("POST", "/librarian/documents",
                                {"title": "Moved", "body": "rebind_port keeps the data"})
            self.assertEqual(st, 201, doc)
            st, _, body = g.http("GET", "/librarian/documents/%d" % doc["id"])
            self.assertEqual((st, body["title"]), (200, "Moved"))
            st, _, body = g.http("GET", "/health")
            self.assertEqual(body["status"], "ok")
            self.assertEqual(body["kernels"]["librarian"]["port"], new_port)
            ports = get_json(g, "/kernel-ports")
            row = [x for x in ports["kernels"] if x["name"] == "librarian"][0]
            self.assertEqual((row["port"], row["configured_port"]), (new_port, 8130))

            # An operator restart keeps the new port.
            old_pid = k["pid"]
            st, _, body = g.http("POST", "/kernel-ports/librarian/restart")
            self.assertEqual(st, 202, body)
            k = g.wait_kernel("librarian", lambda x: x["state"] == "ready"
                              and x["pid"] not in (None, old_pid))
            self.assertEqual(k["port"], new_port)
            st, _, body = g.http("GET", "/librarian/health")
            self.assertEqual((st, body["pid"]), (200, k["pid"]))

            # So does a restart of grace serve on the same data directory
            # (the foreign listener still holds the configured port).
            g.stop()
            self.assertTrue(port_bindable(new_port))
            g.expect = {}
            g.start()
            k = g.kernel("librarian")
            self.assertEqual((k["state"], k["port"]), ("ready", new_port))
            st, _, body = g.http("GET", "/librarian/documents/%d" % doc["id"])
            self.assertEqual((st, body["title"]), (200, "Moved"), body)
            st, _, body = g.http("GET", "/kernels/librarian/health")
            self.assertEqual((st, body["pid"]), (200, k["pid"]))

            # Freed: reset-port brings it back to the configured port.
            blocker.close()
            st, _, inc = g.http("POST", "/kernel-ports/librarian/reset-port", timeout=30)
            self.assertEqual(st, 200, inc)
            check_incident_shape(self, inc, "librarian")
            self.assertEqual(inc["playbook"], "reset_port")
            self.assertEqual(inc["trigger"], "reset-port")
            self.assertEqual(inc["outcome"], "healed", inc)
            self.assertEqual(inc["new_port"], configured)
            self.assertEqual([s["step"] for s in inc["steps"]],
                             ["stop", "configured_port", "start", "verify"])
            k = g.kernel("librarian")
            self.assertEqual((k["state"], k["port"]), ("ready", configured))
            st, _, body = g.http("GET", "/librarian/documents/%d" % doc["id"])
            self.assertEqual(st, 200, body)
            st, _, body = g.http("GET", "/librarian/health")
            self.assertEqual((st, body["pid"]), (200, k["pid"]))
            self.assertTrue(port_bindable(new_port))

            # And it stays there across a restart of grace serve.
            g.stop()
            g.start()
            k = g.kernel("librarian")
            self.assertEqual((k["state"], k["port"]), ("ready", configured))

            # reset-port while the configured port is taken again: it cannot
            # heal, and says so. (Moved away first, so the port can be taken.)
            st, inc = heal(g, "librarian", action="rebind_port")
            self.assertEqual((st, inc["outcome"]), (200, "healed"), inc)
            blocker = listen_here(configured)
            self.addCleanup(blocker.close)
            st, _, inc = g.http("POST", "/kernel-ports/librarian/reset-port", timeout=30)
            self.assertEqual(st, 200, inc)
            check_incident_shape(self, inc, "librarian")
            self.assertEqual(inc["outcome"], "failed", inc)
            self.assertEqual(step(inc, "start")["result"], "failed")
            self.assertIsNone(inc["verification"])
            k = g.kernel("librarian")
            self.assertEqual((k["state"], k["port"]), ("port_unavailable", configured))
            self.assertEqual(k["port_holder"]["pid"], os.getpid())
            blocker.close()
            st, _, body = g.http("POST", "/kernel-ports/librarian/start")
            self.assertEqual(st, 202, body)
            g.wait_kernel("librarian", lambda x: x["state"] == "ready" and x["port"] == configured)

            # All of it is on record, newest first.
            got = incidents(g, component="librarian")
            self.assertEqual([(i["playbook"], i["outcome"]) for i in got],
                             [("reset_port", "failed"), ("rebind_port", "healed"),
                              ("reset_port", "healed"), ("rebind_port", "healed")])

    def test_rebind_of_a_running_kernel(self):
        """rebind_port on a healthy kernel: stopped, moved, started, verified;
        the bystander is untouched and the old port is released."""
        with GraceServer(kernels={"librarian": {}, OTHER: {}}) as g:
            other = g.kernel(OTHER)
            old = g.kernel(OTHER)["port"]
            st, inc = heal(g, OTHER, action="rebind_port")
            self.assertEqual(st, 200, inc)
            check_incident_shape(self, inc, OTHER)
            self.assertEqual(inc["outcome"], "healed", inc)
            self.assertEqual(inc["diagnosed_issue"], "healthy")
            self.assertNotEqual(inc["new_port"], old)
            k = g.kernel(OTHER)
            self.assertEqual((k["state"], k["port"]), ("ready", inc["new_port"]))
            self.assertNotEqual(k["pid"], other["pid"])
            self.assertTrue(port_bindable(old), "the old port is still held")
            st, _, body = g.http("GET", "/kernels/%s/health" % OTHER)
            self.assertEqual((st, body["pid"]), (200, k["pid"]))
            lib = g.kernel("librarian")
            self.assertEqual((lib["state"], lib["restarts"]), ("ready", 0))

    def test_rebind_outside_a_full_tier_range(self):
        """Every port of the librarian's tier range (8130-8139) taken: the
        healer falls back to 8100-8149, skipping every kernel's ports."""
        with GraceServer(kernels={"librarian": {}, OTHER: {}},
                         expect={"librarian": "port_unavailable"}, autostart=False) as g:
            blockers = []
            for p in range(8130 + g.offset, 8140 + g.offset):
                blockers.append(listen_here(p))
                self.addCleanup(blockers[-1].close)
            g.start()
            st, inc = heal(g, "librarian", action="rebind_port")
            self.assertEqual(st, 200, inc)
            self.assertEqual(inc["outcome"], "healed", inc)
            new_port = inc["new_port"]
            self.assertTrue(KERNEL_PORT_MIN + g.offset <= new_port <= KERNEL_PORT_MAX + g.offset,
                            new_port)
            self.assertFalse(8130 + g.offset <= new_port <= 8139 + g.offset, new_port)
            self.assertNotEqual(new_port, g.kernel_port(OTHER))
            st, _, body = g.http("GET", "/librarian/health")
            self.assertEqual((st, body["pid"]), (200, g.kernel("librarian")["pid"]))


if __name__ == "__main__":
    unittest.main()
