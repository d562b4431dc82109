"""Streaming through :8000 (issue 10, item 1): Server-Sent Events and long
polls pass through the gateway as they arrive, on a user's own session.

- a real SSE client (npm `eventsource`) gets every message, and after a
  bus restart resumes with Last-Event-ID: nothing lost, nothing twice;
- the upstream subscription is gone within a second of the client leaving;
- a client that never reads, subscribed to a busy subject, does not grow
  the main process (each stream's buffer is bounded; the kernel's read is
  paused instead);
- a group long poll may wait longer than the gateway's usual 10 s for an
  answer to start (the bus's own maximum plus a margin);
- users may not publish under grace. (Grace's own events).
"""

import json
import os
import queue
import socket
import subprocess
import threading
import time
import unittest

from harness import GraceServer, ServerClassCase, scaled

HERE = os.path.dirname(os.path.abspath(__file__))
SSE_CLIENT = os.path.join(HERE, "js", "sse_client.mjs")
FAST = {"auth": {"argon2_mem_kib": 19456}}


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


class SseClient:
    """node js/sse_client.mjs, its events read into a queue."""

    def __init__(self, url, token):
        self.proc = subprocess.Popen(["node", SSE_CLIENT, url, token], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.events = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.events.put(json.loads(line))

    def next(self, kind, timeout):
        """The next event of `kind` (others before it are returned too)."""
        seen = []
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError("no %s event in %.1f s; saw %r" % (kind, timeout, seen))
            try:
                ev = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if ev["type"] == kind:
                return ev, seen
            seen.append(ev)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)
        self.proc.stdout.close()
        self.proc.stderr.close()


class Streaming(ServerClassCase):
    @classmethod
    def make_server(cls):
        env = {}
        if os.environ.get("ASAN_OPTIONS"):
            # AddressSanitizer keeps freed memory in quarantine (256 MB by
            # default), which would count as growth in the memory test below;
            # with none kept, RSS measures what the gateway holds again.
            env["ASAN_OPTIONS"] = os.environ["ASAN_OPTIONS"] + ":quarantine_size_mb=0"
        return GraceServer(config=FAST, kernels={"message_bus": {}}, env=env)

    @classmethod
    def prepare(cls):
        cls.g.create_user("ursula", "ursula's long password")
        cls.user = cls.g.login("ursula", "ursula's long password")

    def as_user(self, method, path, body=None, timeout=10.0):
        return self.g.http(method, path, body, timeout=timeout, auth=False,
                           headers={"Authorization": "Bearer " + self.user})

    def publish(self, subject, payloads):
        st, _, out = self.as_user("POST", "/bus/publish",
                                  [{"subject": subject, "payload": p} for p in payloads])
        self.assertEqual(st, 200, out)
        return out

    def subscribers(self):
        st, _, out = self.g.http("GET", "/kernels/message_bus/stats")
        self.assertEqual(st, 200, out)
        return out["subscribers"]

    def sse(self, subject):
        url = "http://127.0.0.1:%d/bus/subscribe?subject=%s" % (self.g.api_port, subject)
        c = SseClient(url, self.user)
        self.addCleanup(c.close)
        c.next("open", scaled(10))
        return c

    def messages(self, c, n, timeout):
        got = []
        for _ in range(n):
            ev, _ = c.next("message", timeout)
            got.append((int(ev["id"]), json.loads(ev["data"])["payload"]))
        return got

    def test_delivery_and_resume_across_a_bus_restart(self):
        c = self.sse("t.resume")
        self.publish("t.resume", [1, 2, 3])
        first = self.messages(c, 3, scaled(10))
        self.assertEqual([p for _, p in first], [1, 2, 3])
        # The bus restarts: the stream ends, the client reconnects (after
        # its retry delay) with Last-Event-ID.
        bus = self.g.kernel("message_bus")
        st, _, out = self.g.http("POST", "/kernel-ports/message_bus/restart")
        self.assertEqual(st, 202, out)
        self.g.wait_kernel("message_bus", lambda k: k["state"] == "ready"
                           and k["pid"] not in (None, bus["pid"]))
        # Published while the client is away: a fresh subscription from
        # "latest" would never see it; a resumed one must.
        self.publish("t.resume", [4])
        c.next("error", scaled(10))
        c.next("open", scaled(15))
        self.publish("t.resume", [5])
        rest = self.messages(c, 2, scaled(10))
        self.assertEqual([p for _, p in rest], [4, 5])
        ids = [i for i, _ in first + rest]
        self.assertEqual(ids, sorted(set(ids)), ids)

    def test_the_upstream_subscription_ends_with_its_client(self):
        self.g.wait_for(lambda: self.subscribers() == 0, scaled(5))
        c = self.sse("t.leave")
        self.assertEqual(self.subscribers(), 1)
        c.proc.kill()
        t0 = time.monotonic()
        self.g.wait_for(lambda: self.subscribers() == 0, scaled(1.0), interval=0.01,
                        message="the bus still has the subscription of a client that left")
        print("subscription gone %.0f ms after the client" % ((time.monotonic() - t0) * 1e3))

    def test_a_client_that_never_reads_costs_bounded_memory(self):
        s = socket.socket()
        self.addCleanup(s.close)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", self.g.api_port))
        s.sendall(("GET /bus/subscribe?subject=t.busy HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   "Authorization: Bearer %s\r\n\r\n" % self.user).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(1)
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
        pid = self.g.proc.pid
        self.as_user("GET", "/health")
        before = rss_kib(pid)
        payload = "x" * 1000
        for _ in range(50):
            self.publish("t.busy", [payload] * 100)  # 5,000 messages of 1 KB
        time.sleep(0.5)
        grown = rss_kib(pid) - before
        print("main process RSS grew by %d KiB with a stalled subscriber of 5 MB" % grown)
        self.assertLess(grown, 3 * 1024)
        # The server is fine, and the messages are all there.
        st, _, out = self.as_user("GET", "/bus/subjects?subject=t.busy")
        self.assertEqual(st, 200, out)
        self.assertEqual(out["subjects"][0]["count"], 5000)

    def test_a_long_poll_may_wait_longer_than_ten_seconds(self):
        t0 = time.monotonic()
        st, _, out = self.as_user("GET", "/bus/groups/lp/poll?subject=t.poll&wait_ms=12000",
                                  timeout=30)
        took = time.monotonic() - t0
        self.assertEqual(st, 200, out)
        self.assertEqual(out["messages"], [])
        self.assertGreaterEqual(took, 11.5)

    def test_users_may_not_publish_grace_events(self):
        st, _, out = self.as_user("POST", "/bus/publish",
                                  {"subject": "grace.kernel.trust.state", "payload": {}})
        self.assertEqual(st, 403, out)
        self.assertEqual(out["error"]["code"], "reserved_subject")
        st, _, out = self.g.http("POST", "/bus/publish",
                                 {"subject": "grace.test.admin", "payload": {}})
        self.assertEqual(st, 200, out)


if __name__ == "__main__":
    unittest.main()
