"""A full disk, for real (issue 8, finding 12): grace serve runs in a mount
namespace of its own with its data directory on a small tmpfs; the test
fills that tmpfs to the last byte. Then every writing kernel and the API
answer 507 "storage_full" (the same status and code everywhere, through the
gateway too), their /health stays 200 (a full disk is not a damaged
store), nothing acknowledged before is lost (the chat's questions too), and once space is freed the
writes go through again, and everything survives a restart of each kernel.

Needs unshare(1) and the right to mount a tmpfs in a new mount namespace
(root, or unprivileged user namespaces): without them it fails, saying so.
"""

import errno
import os
import shutil
import subprocess
import time
import unittest

from harness import GRACE_BIN, GraceServer, GraceTestCase, scaled

TMPFS_MB = 48
QUIET = {"health_interval_ms": 600000}
# Large enough that the write cannot fit in what its -wal already holds.
BIG = "x" * (256 << 10)


def unshare_prefix():
    """The command that runs the rest of its argv in a private mount
    namespace; fails the test with the reason when that is not allowed."""
    tool = shutil.which("unshare")
    if not tool:
        raise AssertionError("test_disk_full needs unshare(1) (util-linux)")
    prefix = [tool, "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        prefix.insert(1, "--map-root-user")
    p = subprocess.run(prefix + ["sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"],
                       capture_output=True, timeout=scaled(10))
    if p.returncode != 0:
        raise AssertionError("test_disk_full needs to mount a tmpfs in a private mount "
                             "namespace, which is not allowed here: %s" % p.stderr.decode())
    return prefix


class TmpfsGrace(GraceServer):
    """grace serve with DATA_DIR on a tmpfs of its own (gone with it)."""

    def start(self, wait=True):
        assert not self.running, "already running"
        self.api_headers.pop("Authorization", None)
        self.returncode = None
        self.stopped_at = None
        os.makedirs(self.data_dir, exist_ok=True)
        script = ('mount -t tmpfs -o size=%dm,mode=0700 tmpfs "$1" && shift && exec "$@"'
                  % TMPFS_MB)
        argv = (unshare_prefix() + ["sh", "-c", script, "sh", self.data_dir, GRACE_BIN, "serve",
                                    "--config", self.config_path, "--data-dir", self.data_dir,
                                    "--port-offset", str(self.offset)])
        log = open(self.log_path, "ab")
        try:
            self.started_at = time.monotonic()
            self.started_wall = time.time()
            # unshare and sh exec: the pid is grace serve's.
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         cwd=self.tmp, env=self.env())
        finally:
            log.close()
        if wait:
            self.wait_states()
        return self

    def data_path(self, name):
        """A path in the tmpfs as grace sees it (through its mount namespace)."""
        return "/proc/%d/root%s/%s" % (self.proc.pid, self.data_dir, name)


class DiskFull(GraceTestCase):
    def fill(self, g):
        """Writes a file until the tmpfs has no byte left."""
        path = g.data_path("filler")
        block = b"\0" * (1 << 20)
        with open(path, "wb", buffering=0) as f:
            while True:
                try:
                    n = f.write(block)
                except OSError as e:
                    self.assertEqual(e.errno, errno.ENOSPC, e)
                    break
                if n < len(block):
                    block = block[n:] or b"\0"
        return path

    def writes(self, g, tag):
        """One write to each writing kernel and the API: {name: (status, body)}."""
        out = {}
        out["message_bus"] = g.http("POST", "/kernels/message_bus/publish",
                                    {"subject": "s." + tag, "payload": BIG})
        out["immutable_log"] = g.http("POST", "/kernels/immutable_log/entries",
                                      {"data": {"tag": tag, "big": BIG}})
        out["audit"] = g.http("POST", "/kernels/audit/events",
                              {"actor": "t", "action": tag, "resource": "r", "outcome": "ok",
                               "details": {"big": BIG[:60000]}})
        out["crypto"] = g.http("POST", "/kernels/crypto/keys",
                               {"name": "key-" + tag, "type": "symmetric"})
        out["api"] = g.http("POST", "/auth/users",
                            {"username": "user-" + tag, "password": "a long password",
                             "role": "user"}, timeout=scaled(30))
        return {k: (st, body) for k, (st, _, body) in out.items()}

    def read_back(self, g):
        """What each kernel holds now, as comparable values."""
        got = {}
        st, _, body = g.http("GET", "/kernels/message_bus/subjects")
        self.assertEqual(st, 200, body)
        got["message_bus"] = {s["subject"]: s["count"] for s in body["subjects"]
                              if s["subject"].startswith("s.")}
        st, _, body = g.http("GET", "/kernels/immutable_log/entries?start=0&end=1000")
        self.assertEqual(st, 200, body)
        got["immutable_log"] = [e["data"]["tag"] for e in body["entries"]
                                if isinstance(e.get("data"), dict) and "tag" in e["data"]]
        st, _, body = g.http("GET", "/kernels/audit/events?resource=r&limit=1000")
        self.assertEqual(st, 200, body)
        got["audit"] = [e["action"] for e in body["events"]]
        st, _, body = g.http("GET", "/kernels/crypto/keys")
        self.assertEqual(st, 200, body)
        got["crypto"] = sorted(k["name"] for k in body["keys"])
        st, _, body = g.http("GET", "/auth/users")
        self.assertEqual(st, 200, body)
        got["api"] = sorted(u["name"] for u in body["users"]
                            if u["name"].startswith("user-"))
        return got

    def chat_until_full(self, g, sid):
        """Questions of the largest size into a chat session until one is
        refused (a few fit in what chat.db's -wal holds already): that one
        is 507 storage_full. Returns the questions answered 200."""
        answered = []
        for i in range(8):
            q = ("q%d " % i) + "y" * (16384 - 8)
            st, _, body = g.http("POST", "/chat/sessions/%d/messages" % sid, {"content": q},
                                 timeout=scaled(30))
            if st != 200:
                self.assertEqual((st, body["error"]["code"]), (507, "storage_full"), body)
                return answered
            answered.append(q)
        self.fail("8 questions of 16 KiB stored on a full disk")

    def chat_questions(self, g, sid):
        st, _, body = g.http("GET", "/chat/sessions/%d" % sid)
        self.assertEqual(st, 200, body)
        return [m["content"] for m in body["messages"] if m["role"] == "user"]

    def test_full_disk_is_507_everywhere_and_loses_nothing(self):
        unshare_prefix()  # fails clearly before anything starts
        kernels = {n: dict(QUIET) for n in ("message_bus", "immutable_log", "crypto", "audit")}
        with TmpfsGrace(kernels=kernels) as g:
            g.auth_headers()  # a session, while there is room for one
            before = self.writes(g, "before")
            for name, (st, body) in before.items():
                self.assertIn(st, (200, 201), (name, body))
            acknowledged = self.read_back(g)
            st, _, chat = g.http("POST", "/chat/sessions", {"title": "full disk"})
            self.assertEqual(st, 201, chat)

            filler = self.fill(g)
            asked = self.chat_until_full(g, chat["id"])
            full = self.writes(g, "full")
            for name, (st, body) in full.items():
                self.assertEqual((st, body["error"]["code"]), (507, "storage_full"),
                                 (name, body))
            # Full is not failed: every kernel still answers /health 200.
            for name in kernels:
                st, _, h = g.kernel_http(name, "GET", "/health")
                self.assertEqual((st, h["status"]), (200, "ok"), (name, h))
            self.assertEqual(self.read_back(g), acknowledged)
            self.assertEqual(self.chat_questions(g, chat["id"])[:len(asked)], asked)

            os.unlink(filler)
            after = self.writes(g, "after")
            for name, (st, body) in after.items():
                self.assertIn(st, (200, 201), (name, body))
            # Everything acknowledged survives each kernel's restart; what
            # was refused never appears.
            for name in kernels:
                st, _, body = g.http("POST", "/kernel-ports/%s/restart" % name)
                self.assertEqual(st, 202, body)
            g.wait_states()
            got = self.read_back(g)
            self.assertEqual(got["message_bus"], {"s.before": 1, "s.after": 1})
            self.assertEqual(got["immutable_log"], ["before", "after"])
            self.assertEqual(got["audit"], ["before", "after"])
            self.assertEqual(got["crypto"], ["key-after", "key-before"])
            self.assertEqual(got["api"], ["user-after", "user-before"])
            self.assertEqual(self.chat_questions(g, chat["id"])[:len(asked)], asked)


if __name__ == "__main__":
    unittest.main()
