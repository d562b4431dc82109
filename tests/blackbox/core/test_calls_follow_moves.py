"""Calls between kernels, and from the main process to kernels, follow the
callee wherever it moves (issue 9, item 1): every kernel another one calls
is moved with rebind_port (and back with reset_port) while the callers keep
running, and the calls keep working without a restart of any caller.

- audit -> immutable_log: every audit event made after the log moved gets
  its log index, and the log's tree grows by as many entries;
- main process -> audit (the outbox) and -> message_bus: state-changing
  requests keep reaching the audit trail and kernel state changes the bus;
- main process -> librarian (chat): answers keep citing the library;
- DATA_DIR/ports.json says where each kernel is now.

Every other kernel that another kernel calls is moved in
test_calls_follow_every_move.py (all twenty kernels), each with a real call
from a caller kernel that keeps running; its docstring lists the pairs.
"""

import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
from harness import scaled  # noqa: E402
from audit_support import ILOG, ServerCase, now_ms  # noqa: E402
from healer_support import heal  # noqa: E402


class CallsFollowMoves(ServerCase):
    def ports_file(self):
        with open(os.path.join(self.g.data_dir, "ports.json")) as f:
            return json.load(f)["kernels"]

    def move(self, name, action="rebind_port"):
        before = self.g.kernel(name)
        st, inc = heal(self.g, name, action=action)
        self.assertEqual(st, 200, inc)
        self.assertEqual(inc["outcome"], "healed", inc)
        after = self.g.wait_kernel(name, lambda k: k["state"] == "ready")
        if action == "rebind_port":
            self.assertNotEqual(after["port"], before["port"])
        # The table the kernels read says so.
        self.g.wait_for(lambda: self.ports_file()[name]["port"] == after["port"],
                        scaled(5), message="ports.json names %s's new port" % name)
        self.assertTrue(self.ports_file()[name]["running"])
        return after

    def tree_size(self):
        return self.call("GET", ILOG + "/sth")["tree_size"]

    def logged_events_since(self, t0, n):
        """Waits until the audit trail holds >= n events since t0, every one
        with its log index; returns them."""
        def ready():
            evs = self.events(since=t0)
            if len(evs) < n or any(e.get("log_index") is None for e in evs):
                return None
            return evs
        return self.g.wait_for(ready, scaled(20), interval=0.1,
                               message="%d audit events since %d, all with a log index" % (n, t0))

    def make_events(self, n, tag):
        for i in range(n):
            self.call("POST", "/auth/users", {"username": "%s%d" % (tag, i),
                                              "password": "a long password %d" % i,
                                              "role": "user"}, expect=201)

    def test_audit_follows_the_log(self):
        audit_pid = self.g.kernel("audit")["pid"]
        for action in ("rebind_port", "reset_port", "rebind_port"):
            size0 = self.tree_size()
            self.move("immutable_log", action)
            t0 = now_ms()
            self.make_events(5, "l%s%d" % (action[:2], size0))
            evs = self.logged_events_since(t0, 5)
            self.assertTrue(all(isinstance(e["log_index"], int) for e in evs), evs)
            self.assertGreaterEqual(self.tree_size(), size0 + len(evs))
        # The caller was never restarted.
        self.assertEqual(self.g.kernel("audit")["pid"], audit_pid)

    def test_main_process_follows_audit_bus_and_librarian(self):
        st, _, doc = self.g.http("POST", "/librarian/documents",
                                 {"title": "Moving kernels", "body": "the zebra crossing moved"})
        self.assertEqual(st, 201, doc)
        for name in ("audit", "message_bus", "librarian"):
            self.move(name)
        # The outbox reaches the audit trail where it is now.
        t0 = now_ms()
        self.make_events(3, "m")
        self.logged_events_since(t0, 3)
        # Kernel state changes reach the bus where it is now.
        group = "follow-%d" % os.getpid()
        self.call("POST", "/kernel-ports/trust/restart", expect=202)
        self.g.wait_kernel("trust", lambda k: k["state"] == "ready")

        def published():
            out = self.call("GET", "/kernels/message_bus/groups/%s/poll?subject=%s&max=100"
                            "&wait_ms=0&from=earliest" % (group, "grace.kernel.trust.state"))
            return out["messages"] or None
        self.g.wait_for(published, scaled(10), interval=0.1, message="trust's state on the bus")
        # Chat asks the librarian where it is now.
        st, _, s = self.g.http("POST", "/chat/sessions", {"title": "after the move"})
        self.assertEqual(st, 201, s)
        st, _, m = self.g.http("POST", "/chat/sessions/%s/messages" % s["id"],
                               {"content": "what about the zebra crossing?"},
                               timeout=scaled(20))
        self.assertEqual(st, 200, m)
        self.assertIn("Moving kernels", [c["title"] for c in m["citations"]])


if __name__ == "__main__":
    unittest.main()
