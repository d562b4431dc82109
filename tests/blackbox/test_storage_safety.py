"""Data safety (issue 8, findings 10, 11, 13 and 14):

- a kernel whose database is damaged does not look healthy: its /health
  answers 503 "storage_failed" naming the file, its routes 503, the guardian
  shows storage_failed, the healer records one storage_failed incident that
  restarts nothing, nothing loops; a forced quarantine_store moves the file
  aside (kept) and brings the kernel back on an empty store;
- a database file (or its -wal) deleted while the kernel runs is noticed at
  once: no write is acknowledged into it, and it says so loudly;
- database files are 0600 even in a data directory that is 0755 already,
  after `grace serve` and after `grace user add`;
- a port offset that puts a Grace port in the ephemeral range is refused
  at load, naming the range and the port.
"""

import glob
import os
import re
import stat
import subprocess
import tempfile
import time
import unittest

from harness import GRACE_BIN, GraceServer, GraceTestCase, scaled
from healer_support import check_incident_shape, guardian_kernel, heal, incidents

# Probes every 100 ms: the guardian notices within a fraction of a second.
FAST = {"health_interval_ms": 100, "health_timeout_ms": 2000, "health_failures": 2}
PAGE = 4096


def kernel_health(g, name):
    st, _, body = g.kernel_http(name, "GET", "/health")
    return st, body


def stop_kernel(test, g, name):
    st, _, body = g.http("POST", "/kernel-ports/%s/stop" % name)
    test.assertEqual(st, 202, body)
    g.wait_kernel(name, lambda k: k["state"] == "stopped")


def start_kernel(test, g, name):
    st, _, body = g.http("POST", "/kernel-ports/%s/start" % name)
    test.assertEqual(st, 202, body)
    return g.wait_kernel(name, lambda k: k["state"] == "ready")


def damage(path):
    """Random bytes over every page but the first (the header stays, so the
    file still opens: the damage is found only by looking). Returns them."""
    size = os.path.getsize(path)
    if size <= PAGE:
        raise AssertionError("%s has %d bytes: nothing past its header to damage" % (path, size))
    junk = os.urandom(size - PAGE)
    with open(path, "r+b") as f:
        f.seek(PAGE)
        f.write(junk)
    return junk


class CorruptStore(GraceTestCase):
    def test_damaged_database_fails_loudly_reports_once_and_can_be_quarantined(self):
        with GraceServer(kernels={"crypto": dict(FAST)}) as g:
            for i in range(20):  # a few pages of keys
                st, _, body = g.kernel_http("crypto", "POST", "/keys",
                                            {"name": "k%d" % i, "type": "ed25519"})
                self.assertEqual(st, 201, body)
            stop_kernel(self, g, "crypto")
            db = os.path.join(g.data_dir, "crypto.db")
            # The kernel's standby, retired with the stop, closes its own
            # connection a moment after the kernel is reported stopped; the
            # last connection to close checkpoints and removes the WAL.
            deadline = time.monotonic() + scaled(5)
            while os.path.exists(db + "-wal") and time.monotonic() < deadline:
                time.sleep(0.02)
            self.assertFalse(os.path.exists(db + "-wal"), "a clean stop checkpoints the WAL")
            junk = damage(db)
            k = start_kernel(self, g, "crypto")
            pid = k["pid"]

            # The kernel says it, and refuses its routes.
            st, h = kernel_health(g, "crypto")
            self.assertEqual(st, 503, h)
            self.assertEqual(h["status"], "storage_failed")
            self.assertEqual((h["kernel"], h["pid"], h["complete"]), ("crypto", pid, True))
            self.assertFalse(h["storage"]["ok"])
            self.assertEqual(h["storage"]["file"], db)
            self.assertIn("quick_check", h["storage"]["error"])
            st, _, body = g.kernel_http("crypto", "GET", "/keys")
            self.assertEqual((st, body["error"]["code"]), (503, "storage_failed"), body)
            st, _, body = g.http("GET", "/kernels/crypto/keys")
            self.assertEqual(st, 503, body)
            g.wait_log(r'"kernel":"crypto".*storage failed: .*crypto\.db is damaged', regex=True)

            # The guardian sees a condition of its own, not "ready".
            gk = g.wait_for(lambda: (lambda k: k if k["state"] == "storage_failed" else None)(
                guardian_kernel(g, "crypto")), message="guardian state storage_failed")
            self.assertEqual(gk["process_state"], "ready")
            self.assertFalse(gk["storage"]["ok"])
            st, _, status = g.http("GET", "/guardian/status")
            self.assertEqual(status["status"], "degraded")

            # The healer reports it once: the file named, nothing restarted.
            def reported():
                got = [i for i in incidents(g, component="crypto") if i["outcome"] != "running"]
                return got or None
            inc = g.wait_for(reported, message="a storage_failed incident")[0]
            check_incident_shape(self, inc, "crypto")
            self.assertEqual((inc["trigger"], inc["issue_type"], inc["diagnosed_issue"],
                              inc["playbook"], inc["outcome"]),
                             ("guardian", "storage_failed", "storage_failed", "report_storage",
                              "needs_operator"), inc)
            self.assertEqual(inc["storage"]["file"], db)
            self.assertIn("damaged", inc["storage"]["error"])
            self.assertIn("restarting cannot repair", inc["storage"]["advice"])
            self.assertEqual([s["step"] for s in inc["steps"]], ["report_storage"])

            # No loop: many probes later, the same process, one incident.
            probes = guardian_kernel(g, "crypto")["probes"]
            g.wait_for(lambda: guardian_kernel(g, "crypto")["probes"] >= probes + 15,
                       timeout=scaled(20), message="15 more probes")
            k = g.kernel("crypto")
            self.assertEqual((k["pid"], k["state"]), (pid, "ready"))
            self.assertEqual(len(incidents(g, component="crypto")), 1)
            self.assertEqual(guardian_kernel(g, "crypto")["state"], "storage_failed")

            # A restart is not a cure, and is not called one.
            st, inc = heal(g, "crypto", action="restart_component")
            self.assertEqual(st, 200, inc)
            self.assertEqual(inc["outcome"], "failed", inc)
            self.assertEqual(inc["verification"]["status"], 503, inc)

            # The restarted kernel's store fails again, so the guardian asks
            # for a report of its own: let that incident end first (a heal
            # asked meanwhile would be refused as one already running).
            def reported_again():
                got = incidents(g, component="crypto")
                reports = [i for i in got if i.get("playbook") == "report_storage"]  # none while diagnosing
                return (len(reports) >= 2 and
                        all(i["outcome"] != "running" for i in got)) or None
            g.wait_for(reported_again, message="the guardian's second report, ended")
            # Quarantine needs force, and refuses before touching anything.
            pid = g.kernel("crypto")["pid"]
            st, inc = heal(g, "crypto", action="quarantine_store")
            self.assertEqual((st, inc["outcome"]), (200, "refused"), inc)
            self.assertEqual([s["step"] for s in inc["steps"]], ["confirm"])
            self.assertEqual(g.kernel("crypto")["pid"], pid)
            self.assertTrue(os.path.exists(db))

            st, inc = heal(g, "crypto", action="quarantine_store", force=True)
            self.assertEqual((st, inc["outcome"]), (200, "healed"), inc)
            self.assertEqual(inc["verification"]["status"], 200, inc)
            self.assertEqual([s["step"] for s in inc["steps"]],
                             ["confirm", "stop", "quarantine", "start", "verify"])
            kept = [m["to"] for m in inc["quarantined"] if m["from"] == db]
            self.assertEqual(len(kept), 1, inc)
            self.assertRegex(os.path.basename(kept[0]), r"^crypto\.corrupt-\d{8}T\d{6}\.\d{3}Z\.db$")
            with open(kept[0], "rb") as f:
                f.seek(PAGE)
                self.assertEqual(f.read(len(junk)), junk, "the damaged file is kept as it was")
            self.assertEqual(stat.S_IMODE(os.stat(db).st_mode), 0o600)

            # Back on an empty store.
            st, h = kernel_health(g, "crypto")
            self.assertEqual((st, h["status"], h["storage"]), (200, "ok", {"ok": True}), h)
            st, _, body = g.kernel_http("crypto", "GET", "/keys")
            self.assertEqual((st, body["keys"]), (200, []), body)
            st, _, body = g.kernel_http("crypto", "POST", "/keys", {"name": "new", "type": "ed25519"})
            self.assertEqual(st, 201, body)
            g.wait_for(lambda: guardian_kernel(g, "crypto")["state"] == "ready",
                       message="guardian state ready again")


    def test_damage_met_while_running_fails_the_store(self):
        with GraceServer(kernels={"immutable_log": {}, "audit": dict(FAST)}) as g:
            # More than SQLite's page cache (2 MB) holds, so that reads go to the file.
            for b in range(6):
                events = [{"actor": "a%d" % i, "action": "x" * 500, "resource": "r",
                           "outcome": "ok"} for i in range(1000)]
                st, _, body = g.kernel_http("audit", "POST", "/events", events)
                self.assertEqual(st, 201, body)
            # A new process, everything in the file.
            stop_kernel(self, g, "audit")
            start_kernel(self, g, "audit")
            damage(os.path.join(g.data_dir, "audit.db"))
            # The request that meets the damage, or the append timer first.
            st, _, body = g.kernel_http("audit", "GET", "/events?limit=1000")
            self.assertIn((st, body["error"]["code"]),
                          [(500, "storage_corrupt"), (503, "storage_failed")], body)
            st, h = kernel_health(g, "audit")
            self.assertEqual((st, h["status"]), (503, "storage_failed"), h)
            self.assertIn("SQLite found", h["storage"]["error"])
            st, _, body = g.kernel_http("audit", "GET", "/events")
            self.assertEqual((st, body["error"]["code"]), (503, "storage_failed"), body)
            g.wait_for(lambda: guardian_kernel(g, "audit")["state"] == "storage_failed",
                       message="guardian state storage_failed")

    def test_damaged_main_database_stops_grace_serve_with_the_reason(self):
        g = GraceServer(kernels={"alerts": {}}, autostart=False)
        with g:
            g.start()
            for _ in range(40):  # guardian events and sessions: a few pages
                g.http("GET", "/guardian/status")
            g.stop()
            damage(os.path.join(g.data_dir, "grace.db"))
            g.start(wait=False)
            rc = g.proc.wait(timeout=scaled(20))
            self.assertEqual(rc, 1)
            self.assertRegex(g.log(), r'"level":"error".*cannot open the main database: '
                                      r'.*grace\.db is damaged \(quick_check: ')


class DeletedWhileOpen(GraceTestCase):
    def test_deleted_database_is_noticed_and_no_write_is_acknowledged_into_it(self):
        with GraceServer(kernels={"message_bus": dict(FAST)}) as g:
            st, _, body = g.kernel_http("message_bus", "POST", "/publish",
                                        {"subject": "a.b", "payload": 1})
            self.assertEqual(st, 200, body)
            db = os.path.join(g.data_dir, "message_bus.db")
            os.unlink(db)
            # The very next write is refused: nothing goes into the lost file.
            for i in range(20):
                st, _, body = g.kernel_http("message_bus", "POST", "/publish",
                                            {"subject": "a.b", "payload": i})
                self.assertEqual((st, body["error"]["code"]), (503, "storage_failed"), body)
                self.assertIn("deleted", body["error"]["message"])
            st, h = kernel_health(g, "message_bus")
            self.assertEqual((st, h["status"]), (503, "storage_failed"), h)
            self.assertIn("deleted", h["storage"]["error"])
            g.wait_log(r'"level":"error","kernel":"message_bus".*storage failed: '
                       r'.*message_bus\.db was deleted', regex=True)
            g.wait_for(lambda: guardian_kernel(g, "message_bus")["state"] == "storage_failed",
                       message="guardian state storage_failed")

    def test_health_alone_notices_a_deleted_database(self):
        # /health reuses a verdict up to 100 ms old (kernel.c,
        # STORAGE_FRESH_MS); asked again and again with no write between,
        # it still turns 503 and stays so.
        with GraceServer(kernels={"message_bus": dict(FAST)}) as g:
            st, h = kernel_health(g, "message_bus")
            self.assertEqual((st, h["status"]), (200, "ok"), h)
            os.unlink(os.path.join(g.data_dir, "message_bus.db"))
            seen = []

            def failed():
                st, h = kernel_health(g, "message_bus")
                seen.append(st)
                return (st, h) if st == 503 else None
            st, h = g.wait_for(failed, timeout=scaled(3), interval=0.01,
                               message="/health saying storage_failed")
            self.assertEqual(h["status"], "storage_failed", h)
            self.assertIn("deleted", h["storage"]["error"])
            for _ in range(5):
                self.assertEqual(kernel_health(g, "message_bus")[0], 503)
            self.assertTrue(all(s in (200, 503) for s in seen), seen)

    def test_deleted_wal_is_noticed_without_a_request(self):
        with GraceServer(kernels={"immutable_log": {}, "audit": dict(FAST)}) as g:
            st, _, body = g.kernel_http("audit", "POST", "/events",
                                        {"actor": "a", "action": "x", "resource": "r",
                                         "outcome": "ok"})
            self.assertEqual(st, 201, body)
            wal = os.path.join(g.data_dir, "audit.db-wal")
            self.assertTrue(os.path.exists(wal))
            os.unlink(wal)
            # Found by the once-a-second check, with no request to trigger it.
            g.wait_for(lambda: re.search(r'"level":"error","kernel":"audit".*storage failed: '
                                         r'.*audit\.db-wal was deleted', g.log()),
                       timeout=scaled(10), message="the error line in the log")
            st, _, body = g.kernel_http("audit", "POST", "/events",
                                        {"actor": "a", "action": "y", "resource": "r",
                                         "outcome": "ok"})
            self.assertEqual((st, body["error"]["code"]), (503, "storage_failed"), body)


def data_files(d):
    return sorted(p for p in glob.glob(os.path.join(d, "*"))
                  if re.search(r"\.db(-wal|-shm)?$", p))


class FileModes(GraceTestCase):
    def test_databases_are_0600_in_a_0755_data_directory(self):
        g = GraceServer(kernels={"crypto": {}, "message_bus": {}}, autostart=False)
        with g:
            os.makedirs(g.data_dir, 0o755)
            os.chmod(g.data_dir, 0o755)
            g.start()
            st, _, body = g.kernel_http("crypto", "POST", "/keys",
                                        {"name": "k", "type": "ed25519"})
            self.assertEqual(st, 201, body)
            files = data_files(g.data_dir)
            for name in ("grace.db", "crypto.db", "crypto.db-wal", "message_bus.db"):
                self.assertIn(os.path.join(g.data_dir, name), files)
            for p in files:
                self.assertEqual(stat.S_IMODE(os.stat(p).st_mode), 0o600, p)

    def test_user_add_into_a_0755_directory(self):
        with tempfile.TemporaryDirectory(prefix="grace-bb-modes-") as tmp:
            data = os.path.join(tmp, "data")
            os.makedirs(data)
            os.chmod(data, 0o755)
            cfg = os.path.join(tmp, "grace.ini")
            with open(cfg, "w") as f:
                f.write("[auth]\nargon2_mem_kib = 19456\nargon2_ops = 2\n")
            env = {k: v for k, v in os.environ.items() if not k.startswith("GRACE_")}
            p = subprocess.run([GRACE_BIN, "user", "add", "alice", "--config", cfg,
                                "--data-dir", data], input=b"a long password here\n",
                               capture_output=True, env=env, timeout=scaled(30))
            self.assertEqual(p.returncode, 0, p.stderr)
            files = data_files(data)
            self.assertIn(os.path.join(data, "grace.db"), files)
            for f in files:
                self.assertEqual(stat.S_IMODE(os.stat(f).st_mode), 0o600, f)
            # A file an older version left world-readable is narrowed.
            os.chmod(os.path.join(data, "grace.db"), 0o644)
            p = subprocess.run([GRACE_BIN, "user", "add", "bob", "--config", cfg,
                                "--data-dir", data], input=b"another long password\n",
                               capture_output=True, env=env, timeout=scaled(30))
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(data, "grace.db")).st_mode), 0o600)


def ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
    except (OSError, ValueError) as e:
        raise AssertionError("this test needs /proc/sys/net/ipv4/ip_local_port_range: %s" % e)
    return lo, hi


class EphemeralOffset(GraceTestCase):
    def run_grace(self, args, cwd):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GRACE_", "NOTIFY_"))}
        return subprocess.run([GRACE_BIN] + args, capture_output=True, env=env, cwd=cwd,
                              timeout=scaled(10))

    def test_offset_into_the_ephemeral_range_is_refused_at_load(self):
        lo, hi = ephemeral_range()
        with open("/proc/sys/net/ipv4/ip_local_reserved_ports") as f:
            self.assertEqual(f.read().strip(), "",
                             "this test assumes no reserved ports (ip_local_reserved_ports)")
        # A kernel port just inside the range, the API port (8000) below it.
        offset = lo - 8149 + 5
        self.assertTrue(0 < offset <= 50000 and 8000 + offset < lo, (lo, hi))
        with tempfile.TemporaryDirectory(prefix="grace-bb-eph-") as tmp:
            data = os.path.join(tmp, "data")
            for cmd in (["serve"], ["kernel", "librarian"]):
                p = self.run_grace(cmd + ["--data-dir", data, "--port-offset", str(offset)],
                                   tmp)
                err = p.stderr.decode()
                self.assertEqual(p.returncode, 2, err)
                self.assertEqual(len(err.strip().splitlines()), 1, err)
                self.assertIn("%d-%d" % (lo, hi), err)
                self.assertIn("ephemeral", err)
                self.assertIn("port_offset %d" % offset, err)
                self.assertRegex(err, r"= (%s)\b" % "|".join(
                    str(x) for x in range(lo, min(hi, 8149 + offset) + 1)))
                self.assertFalse(os.path.exists(data), "refused before creating anything")
            # The API port itself inside the range.
            offset = lo - 8000 + 1
            p = self.run_grace(["serve", "--data-dir", data, "--port-offset", str(offset)], tmp)
            err = p.stderr.decode()
            self.assertEqual(p.returncode, 2, err)
            self.assertIn("the API port (api_port 8000) + %d = %d" % (offset, lo + 1), err)


if __name__ == "__main__":
    unittest.main()
