"""The standby (docs/supervisor.md): a `grace kernel NAME` started ahead of
need that waits, exec'ed and configured, with the kernel's SQLite file open
but idle and without any port, until the kernel dies; then it is handed the
port and serves, with the state written before the crash. No connection is refused on the
way; a new standby replaces it; stopping the kernel retires the standby;
what it costs in memory is reported; it follows the healer's port moves; a
store replaced while it waited is opened anew; `standby = 0` turns it off;
nothing is left behind."""

import http.client
import os
import signal
import threading
import unittest

from harness import GraceServer, GraceTestCase, pid_alive, scaled, spare_kernels
from healer_support import heal

OTHER = spare_kernels(1)[0]


def fd_targets(pid):
    """What each open descriptor of pid points at."""
    out = []
    d = "/proc/%d/fd" % pid
    for fd in os.listdir(d):
        try:
            out.append(os.readlink(os.path.join(d, fd)))
        except OSError:
            pass
    return out


def listen_inode(port):
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            p = line.split()
            if p[3] == "0A" and int(p[1].rsplit(":", 1)[1], 16) == port:
                return p[9]
    return None


def listen_inodes():
    """Every listening TCP socket on the host, IPv4 and IPv6."""
    out = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(path) as f:
            next(f)
            for line in f:
                p = line.split()
                if p[3] == "0A":
                    out.add(p[9])
    return out


def statm(pid):
    """(rss, resident minus shared) in bytes, as /proc/PID/statm has them."""
    with open("/proc/%d/statm" % pid) as f:
        _, res, shared = map(int, f.read().split()[:3])
    page = os.sysconf("SC_PAGE_SIZE")
    return res * page, (res - shared) * page


def ppid_of(pid):
    with open("/proc/%d/stat" % pid) as f:
        st = f.read()
    return int(st[st.rfind(")") + 2:].split()[1])


def cmdline(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return f.read().split(b"\0")


# The shipped default, said here: the harness turns standbys off for the
# sanitizer pass (harness.DEFAULT_SECTIONS), and this test is about them.
STANDBY = {"defaults": {"standby": 1}}

class Standby(GraceTestCase):
    def assert_idle_standby(self, g, name, pid):
        """Waiting: ours, `grace kernel NAME`, its store open (an idle SQLite
        connection, which keeps the WAL index alive), no port held."""
        # Its pid is known from the fork on: wait for it to reach the wait.
        db = os.path.join(g.data_dir, name + ".db")
        targets = g.wait_for(lambda: (lambda t: t if db in t else None)(fd_targets(pid)),
                             message="standby %d holding %s" % (pid, db))
        self.assertTrue(pid_alive(pid))
        self.assertEqual(ppid_of(pid), g.proc.pid)
        self.assertEqual(cmdline(pid)[1:3], [b"kernel", name.encode()])
        inode = listen_inode(g.kernel(name)["port"])
        self.assertIsNotNone(inode)
        self.assertNotIn("socket:[%s]" % inode, targets)
        # No listening socket at all: none of any kernel, nor the API's.
        held = [t for t in targets if t.startswith("socket:[")
                and t[len("socket:["):-1] in listen_inodes()]
        self.assertEqual(held, [], "standby %d holds listening sockets" % pid)

    def assert_memory_reported(self, g, name, pid):
        """Its cost is in /kernel-ports and /metrics, as /proc has it."""
        k = g.kernel(name)
        self.assertEqual(k["standby_pid"], pid)
        mem = k["standby_memory"]
        rss, own = statm(pid)
        # Read a moment apart: the same order of size, not the same bytes.
        self.assertGreater(mem["rss_bytes"], 0)
        self.assertGreater(mem["own_bytes"], 0)
        self.assertLess(mem["own_bytes"], mem["rss_bytes"])
        self.assertLess(abs(mem["rss_bytes"] - rss), rss // 2, (mem, rss))
        self.assertLess(abs(mem["own_bytes"] - own), max(own, 1 << 20), (mem, own))
        st, _, text = g.http("GET", "/metrics")
        self.assertEqual(st, 200)
        lines = dict(line.rsplit(" ", 1) for line in text.decode().splitlines()
                     if line.startswith("grace_kernel_standby_"))
        self.assertGreater(int(lines['grace_kernel_standby_rss_bytes{kernel="%s"}' % name]), 0)
        self.assertGreater(int(lines['grace_kernel_standby_own_bytes{kernel="%s"}' % name]), 0)
        return lines

    def test_kill9_taken_over_by_the_standby(self):
        with GraceServer(config=STANDBY, kernels={"librarian": {}, OTHER: {}}) as g:
            port = g.kernel_port("librarian")
            k = g.wait_kernel("librarian", lambda k: k["standby_pid"])
            old, standby = k["pid"], k["standby_pid"]
            g.track_pid(standby)
            self.assertNotEqual(old, standby)
            self.assert_idle_standby(g, "librarian", standby)
            self.assert_memory_reported(g, "librarian", standby)

            # Written after the standby started: the standby must not have
            # read anything yet, so the new process must find it.
            st, _, doc = g.http("POST", "/librarian/documents",
                                {"title": "after the standby", "body": "written late"})
            self.assertIn(st, (200, 201), doc)

            counts = {"ok": 0, "refused": 0, "other": []}
            stop = threading.Event()

            def client():
                while not stop.is_set():
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=scaled(10))
                    try:
                        conn.request("GET", "/health")
                        r = conn.getresponse()
                        r.read()
                        if r.status == 200:
                            counts["ok"] += 1
                        else:
                            counts["other"].append(r.status)
                    except ConnectionRefusedError:
                        counts["refused"] += 1
                    except (ConnectionResetError, BrokenPipeError,
                            http.client.RemoteDisconnected):
                        pass  # a request in flight at the kill
                    except OSError as e:
                        counts["other"].append(repr(e))
                    finally:
                        conn.close()

            t = threading.Thread(target=client)
            t.start()
            try:
                g.wait_for(lambda: counts["ok"] >= 5)
                os.kill(old, signal.SIGKILL)
                k = g.wait_kernel("librarian",
                                  lambda k: k["state"] == "ready" and k["pid"] != old)
                ok_at_ready = counts["ok"]
                g.wait_for(lambda: counts["ok"] >= ok_at_ready + 5)
            finally:
                stop.set()
                t.join(scaled(20))
            self.assertEqual(counts["refused"], 0, counts)
            self.assertEqual(counts["other"], [], counts)

            # The standby is the kernel now, and it has the document.
            self.assertEqual(k["pid"], standby)
            self.assertEqual(k["restarts"], 1)
            self.assertIn("signal 9", k["last_exit"])
            st, _, h = g.kernel_http("librarian", "GET", "/health")
            self.assertEqual((st, h["pid"]), (200, standby))
            st, _, got = g.http("GET", "/librarian/documents/%d" % doc["id"])
            self.assertEqual((st, got["title"]), (200, "after the standby"))

            # Replaced by a new standby, as idle as the first.
            k = g.wait_kernel("librarian",
                              lambda k: k["standby_pid"] not in (None, standby))
            g.track_pid(k["standby_pid"])
            self.assert_idle_standby(g, "librarian", k["standby_pid"])
            self.assertEqual(k["pid"], standby)
            # The bystander was not touched.
            o = g.kernel(OTHER)
            self.assertEqual((o["state"], o["restarts"]), ("ready", 0))

    def test_stop_retires_and_start_replans(self):
        with GraceServer(config=STANDBY, kernels={"librarian": {}}) as g:
            k = g.wait_kernel("librarian", lambda k: k["standby_pid"])
            standby = k["standby_pid"]
            g.track_pid(standby)
            st, _, _ = g.http("POST", "/kernel-ports/librarian/stop")
            self.assertEqual(st, 202)
            k = g.wait_kernel("librarian", lambda k: k["state"] == "stopped")
            self.assertIsNone(k["standby_pid"])
            g.wait_for(lambda: not pid_alive(standby), message="standby %d gone" % standby)
            st, _, _ = g.http("POST", "/kernel-ports/librarian/start")
            self.assertEqual(st, 202)
            k = g.wait_kernel("librarian", lambda k: k["state"] == "ready" and k["standby_pid"])
            g.track_pid(k["standby_pid"])
            self.assertNotEqual(k["standby_pid"], standby)
            # An operator restart uses the standby as well.
            new_standby = k["standby_pid"]
            st, _, _ = g.http("POST", "/kernel-ports/librarian/restart")
            self.assertEqual(st, 202)
            k = g.wait_kernel("librarian", lambda k: k["state"] == "ready"
                              and k["pid"] == new_standby)
            self.assertEqual(k["restarts"], 0)

    def test_follows_port_moves(self):
        """rebind_port and reset_port stop the kernel (its standby retired)
        and start a fresh process on the new port; the next standby is
        handed whatever port the kernel has when it dies."""
        with GraceServer(config=STANDBY, kernels={"librarian": {}}) as g:
            configured = g.kernel_port("librarian")
            first = g.wait_kernel("librarian", lambda k: k["standby_pid"])["standby_pid"]
            g.track_pid(first)
            st, inc = heal(g, "librarian", action="rebind_port")
            self.assertEqual((st, inc.get("outcome")), (200, "healed"), inc)
            moved = inc["new_port"]
            self.assertNotEqual(moved, configured)
            g.wait_for(lambda: not pid_alive(first), message="standby %d retired" % first)
            for port in (moved, configured):
                k = g.wait_kernel("librarian", lambda k: k["state"] == "ready"
                                  and k["port"] == port and k["standby_pid"])
                old, standby = k["pid"], k["standby_pid"]
                g.track_pid(standby)
                self.assertNotIn(standby, (first, old))
                self.assert_idle_standby(g, "librarian", standby)
                st, _, doc = g.http("POST", "/librarian/documents",
                                    {"title": "on %d" % port, "body": "moved"})
                self.assertEqual(st, 201, doc)
                os.kill(old, signal.SIGKILL)
                k = g.wait_kernel("librarian", lambda k: k["state"] == "ready"
                                  and k["pid"] == standby)
                self.assertEqual(k["port"], port)
                # Answering on the port it has now, directly and through :8000.
                st, _, h = g.http("GET", "/health", port=port)
                self.assertEqual((st, h["pid"]), (200, standby))
                st, _, got = g.http("GET", "/librarian/documents/%d" % doc["id"])
                self.assertEqual((st, got["title"]), (200, "on %d" % port))
                if port == moved:
                    first = standby
                    st, inc = heal(g, "librarian", action="reset_port")
                    self.assertEqual((st, inc.get("outcome")), (200, "healed"), inc)

    def test_store_replaced_while_waiting(self):
        """An operator removes the kernel's database while it runs (the
        kernel reports storage_failed) and restarts it: the standby, which
        opened the old file, takes over on the file the path names now."""
        with GraceServer(config=STANDBY, kernels={"librarian": {}}) as g:
            k = g.wait_kernel("librarian", lambda k: k["standby_pid"])
            old, standby = k["pid"], k["standby_pid"]
            g.track_pid(standby)
            self.assert_idle_standby(g, "librarian", standby)
            db = os.path.join(g.data_dir, "librarian.db")
            for suffix in ("", "-wal", "-shm"):
                try:
                    os.unlink(db + suffix)
                except FileNotFoundError:
                    pass
            # The running kernel finds its file gone (its /health says so).
            def failed():
                st, _, h = g.kernel_http("librarian", "GET", "/health")
                return st == 503 and h["status"] == "storage_failed"
            g.wait_for(failed, message="the kernel reports its store gone")
            st, _, _ = g.http("POST", "/kernel-ports/librarian/restart")
            self.assertEqual(st, 202)
            k = g.wait_kernel("librarian", lambda k: k["state"] == "ready"
                              and k["pid"] == standby)
            st, _, h = g.kernel_http("librarian", "GET", "/health")
            self.assertEqual((st, h["status"], h["pid"]), (200, "ok", standby), h)
            self.assertTrue(os.path.exists(db))
            st, _, doc = g.http("POST", "/librarian/documents",
                                {"title": "fresh", "body": "a new store"})
            self.assertEqual(st, 201, doc)
            g.wait_log("standby: ")
            self.assertFalse(pid_alive(old))

    def test_nice_reaches_the_kernel_its_threads_and_its_standby(self):
        def nice_of(pid):
            # Field 19 of /proc/PID/stat, for every thread of the process.
            out = set()
            for t in os.listdir("/proc/%d/task" % pid):
                with open("/proc/%d/task/%s/stat" % (pid, t)) as f:
                    out.add(int(f.read().rsplit(")", 1)[1].split()[16]))
            return out

        def niced(pid):
            # A process is reported from its fork; the niceness comes
            # just before its exec.
            g.wait_for(lambda: nice_of(pid) == {7}, message="pid %d at nice 7: %s"
                       % (pid, nice_of(pid)))
        with GraceServer(config=STANDBY, kernels={"librarian": {"nice": 7},
                                                  "crypto": {}}) as g:
            k = g.wait_kernel("librarian", lambda k: k["standby_pid"])
            g.track_pid(k["standby_pid"])
            niced(k["pid"])
            niced(k["standby_pid"])
            self.assertEqual(nice_of(g.kernel("crypto")["pid"]), nice_of(g.proc.pid))
            # The standby taking over keeps it, and so does its successor.
            standby = k["standby_pid"]
            os.kill(k["pid"], signal.SIGKILL)
            k = g.wait_kernel("librarian", lambda k: k["pid"] == standby and k["standby_pid"])
            g.track_pid(k["standby_pid"])
            niced(k["pid"])
            niced(k["standby_pid"])

    def test_standby_off(self):
        with GraceServer(config=STANDBY, kernels={"librarian": {"standby": 0}, OTHER: {}}) as g:
            lib = g.wait_kernel("librarian", lambda k: k["state"] == "ready")
            # A witness: OTHER restarted after the librarian was ready gets
            # its next standby stable_ms after that, so by then the
            # librarian would have had one too.
            first = g.wait_kernel(OTHER, lambda k: k["standby_pid"])["standby_pid"]
            g.track_pid(first)
            st, _, _ = g.http("POST", "/kernel-ports/%s/restart" % OTHER)
            self.assertEqual(st, 202)
            o = g.wait_kernel(OTHER, lambda k: k["state"] == "ready"
                              and k["standby_pid"] not in (None, first))
            g.track_pid(o["standby_pid"])
            self.assertEqual(o["pid"], first)
            lib = g.kernel("librarian")
            self.assertIsNone(lib["standby_pid"])
            self.assertIsNone(lib["standby_memory"])
            self.assert_idle_standby(g, OTHER, o["standby_pid"])  # settled: its memory too
            lines = self.assert_memory_reported(g, OTHER, o["standby_pid"])
            self.assertEqual(lines['grace_kernel_standby_rss_bytes{kernel="librarian"}'], "0")
            self.assertNotIn("kernel librarian: standby", g.log())
            # Every child of grace serve is accounted for.
            kids = [p for p in map(int, filter(str.isdigit, os.listdir("/proc")))
                    if _ppid_or_none(p) == g.proc.pid and pid_alive(p)]
            self.assertEqual(sorted(kids), sorted([lib["pid"], o["pid"], o["standby_pid"]]))
            # A crash without a standby: a fresh process, still none after.
            os.kill(lib["pid"], signal.SIGKILL)
            k = g.wait_kernel("librarian",
                              lambda k: k["state"] == "ready" and k["pid"] != lib["pid"])
            self.assertIsNone(k["standby_pid"])
            self.assertEqual(k["restarts"], 1)


def _ppid_or_none(pid):
    try:
        return ppid_of(pid)
    except OSError:
        return None


if __name__ == "__main__":
    unittest.main()
