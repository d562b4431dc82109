"""Kernels run by systemd ([kernel.NAME] manager = systemd): grace serve
starts, reads, stops and heals them through systemctl, never by forking or
signalling them itself.

systemd cannot run on this machine (it is not PID 1, and `systemd --user`
refuses to start without it), so `[systemd] systemctl` points at
systemd_standin.py: a stand-in for systemctl and the manager behind it,
implementing the commands and the service life grace serve relies on
(Type=notify, Restart=, the stop sequence). What this does NOT exercise:
real systemd, socket units that hold the port (the stand-in's kernels bind
their own), credentials through LoadCredential=, the D-Bus permissions of
a non-root grace serve. The parsing of real `systemctl show` output is
unit-tested (tests/unit/test_supervisor_unit.c)."""

import hashlib
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import unittest

from harness import GRACE_BIN, GraceServer, GraceTestCase, pid_alive, proc_start_ticks, scaled
from healer_support import check_incident_shape, heal, incidents, run_cli, step

STANDIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "systemd_standin.py")
KERNEL = "message_bus"


class Units:
    """The stand-in's directory, its unit files and its record of calls."""

    def __init__(self, test):
        self.root = tempfile.mkdtemp(prefix="grace-bb-systemd-")
        os.makedirs(os.path.join(self.root, "units"))
        self.test = test
        test.addCleanup(self.cleanup)

    def command(self):
        return "%s %s --root %s" % (sys.executable, STANDIN, self.root)

    def write_service(self, name, exec_start, **keys):
        lines = ["[Service]", "Type=notify", "ExecStart=" + exec_start]
        lines += ["%s=%s" % kv for kv in keys.items()]
        with open(os.path.join(self.root, "units", name), "w") as f:
            f.write("\n".join(lines) + "\n")

    def state(self, name):
        try:
            with open(os.path.join(self.root, "state", name + ".json")) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def calls(self):
        try:
            with open(os.path.join(self.root, "calls.log")) as f:
                return [line.split() for line in f.read().splitlines()]
        except OSError:
            return []

    def actions(self):
        return [c for c in self.calls() if c and c[0] != "show"]

    def systemctl(self, *args):
        import subprocess
        return subprocess.run([sys.executable, STANDIN, "--root", self.root] + list(args),
                              capture_output=True, text=True, timeout=60)

    def cleanup(self):
        # The units outlive grace serve, as under systemd: stopped here, and
        # any process of theirs still alive killed by pid.
        names = [n for n in os.listdir(os.path.join(self.root, "units"))]
        self.systemctl("stop", *names)
        for n in names:
            st = self.state(n)
            for pid in (st.get("MainPID", 0), st.get("runner", 0)):
                if pid and pid_alive(pid):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
        shutil.rmtree(self.root, ignore_errors=True)


class SystemdUnits(GraceTestCase):
    def serve(self, units, **kernel_keys):
        keys = {"manager": "systemd", "socket_unit": "", "health_interval_ms": 200,
                "health_timeout_ms": 500, "health_failures": 2}
        keys.update(kernel_keys)
        g = GraceServer(kernels={KERNEL: keys}, autostart=False,
                        config={"systemd": {"systemctl": units.command(), "poll_ms": 200}})
        self.port = g.kernel_port(KERNEL)
        self.unit = "grace-kernel@%d.service" % self.port
        units.write_service(self.unit, "%s kernel %s --config %s --data-dir %s --port-offset %d"
                            % (GRACE_BIN, KERNEL, g.config_path, g.data_dir, g.offset),
                            Restart="always", RestartSec="0.2", TimeoutStopSec="5")
        return g

    def wait_unit_pid(self, g, not_pid=None):
        def ready():
            k = g.kernel(KERNEL)
            return k if (k["state"] == "ready" and k["pid"] and k["pid"] != not_pid) else None
        return g.wait_for(ready, timeout=scaled(20), message="the unit's kernel ready")

    def test_started_restarted_and_healed_through_systemctl(self):
        units = Units(self)
        g = self.serve(units)
        with g:
            try:
                g.start()
                self.check_life(g, units)
            finally:
                units.systemctl("stop", self.unit)

    def check_life(self, g, units):
        # Started through systemctl, and seen as systemd reports it.
        k = self.wait_unit_pid(g)
        self.assertEqual(k["manager"], "systemd", k)
        self.assertEqual(k["unit"], self.unit, k)
        self.assertNotIn("socket_unit", k)
        self.assertEqual(k["port"], self.port)
        self.assertIn(["start", self.unit], units.actions())
        pid = k["pid"]
        self.assertEqual(units.state(self.unit)["MainPID"], pid)
        # Not grace serve's child: systemd's (here, the stand-in runner's).
        with open("/proc/%d/stat" % pid) as f:
            ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        self.assertNotEqual(ppid, g.proc.pid)
        self.assertEqual(ppid, units.state(self.unit)["runner"])
        # `grace status` names the unit, as systemctl status would.
        p = run_cli(g, "status", KERNEL)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("Unit: %s (run by systemd)" % self.unit, p.stdout)
        self.assertIn("PID: %d" % pid, p.stdout)
        # It serves through the gateway (the data directory's token, the
        # supervisor's port for it).
        st, _, body = g.http("POST", "/bus/publish", {"subject": "units.a", "payload": "x"})
        self.assertIn(st, (200, 201, 202), body)

        # kill -9: systemd restarts it (Restart=always); grace serve sees a
        # restart, the new pid and how the old one ended, and does nothing.
        before = len(units.actions())
        os.kill(pid, signal.SIGKILL)
        k = self.wait_unit_pid(g, not_pid=pid)
        self.assertGreaterEqual(k["restarts"], 1, k)
        self.assertEqual(units.state(self.unit)["NRestarts"], 1)
        # How it ended, if a reading fell between the death and the restart;
        # else that systemd restarted it, and where to look.
        self.assertRegex(k["last_exit"], r"signal 9|restarted by systemd \(NRestarts=1\)")
        self.assertEqual(units.actions()[before:], [], "grace serve acted on a restart "
                                                       "systemd made")

        # Hung (SIGSTOP): the guardian's probes fail, the healer diagnoses
        # process_hung and restarts it with systemctl stop and start.
        hung = k["pid"]
        ticks = proc_start_ticks(hung)[1]
        self.addCleanup(lambda: pid_alive(hung, ticks) and os.kill(hung, signal.SIGKILL))
        os.kill(hung, signal.SIGSTOP)

        def healed():
            got = [i for i in incidents(g, component=KERNEL) if i["outcome"] == "healed"]
            return got[0] if got else None
        inc = g.wait_for(healed, timeout=scaled(30), message="a healed incident")
        check_incident_shape(self, inc, KERNEL)
        self.assertEqual(inc["issue_type"], "process_hung", inc)
        self.assertEqual(inc["playbook"], "restart_component")
        self.assertEqual([s["step"] for s in inc["steps"]], ["stop", "start", "verify"])
        self.assertIn("ready as pid", step(inc, "start")["detail"])
        acts = units.actions()
        self.assertIn(["stop", self.unit], acts)
        self.assertGreater(acts.index(["start", self.unit], acts.index(["stop", self.unit])),
                           acts.index(["stop", self.unit]))
        self.assertFalse(pid_alive(hung, ticks), "the hung process outlived the heal")
        k = self.wait_unit_pid(g, not_pid=hung)
        self.assertEqual(units.state(self.unit)["MainPID"], k["pid"])
        st, _, body = g.http("GET", "/kernels/%s/health" % KERNEL)
        self.assertEqual(st, 200, body)

        # The operator's stop and start go through systemctl too.
        st, _, body = g.http("POST", "/kernel-ports/%s/stop" % KERNEL)
        self.assertIn(st, (200, 202), body)
        g.wait_kernel(KERNEL, lambda k: k["state"] == "stopped", timeout=scaled(15))
        self.assertEqual(units.state(self.unit)["ActiveState"], "inactive")
        self.assertIn(["stop", self.unit], units.actions()[-2:])
        st, _, body = g.http("POST", "/kernel-ports/%s/start" % KERNEL)
        self.assertIn(st, (200, 202), body)
        self.wait_unit_pid(g)

        # A unit's port is systemd's to give: rebinding it is refused
        # before anything is stopped, and says why.
        pid = self.wait_unit_pid(g)["pid"]
        n = len(units.actions())
        st, inc = heal(g, KERNEL, action="rebind_port")
        self.assertEqual(st, 200, inc)
        self.assertEqual(inc["outcome"], "refused", inc)
        self.assertEqual(len(inc["steps"]), 1, inc)
        self.assertIn("run by systemd", inc["steps"][0]["detail"])
        self.assertEqual(units.actions()[n:], [])
        k = g.kernel(KERNEL)
        self.assertEqual((k["state"], k["pid"], k["port"]), ("ready", pid, self.port))

    def test_a_unit_that_cannot_start(self):
        units = Units(self)
        g = self.serve(units)
        # The service's program does not exist: systemctl start fails, and
        # the kernel is failed with systemctl's words.
        units.write_service(self.unit, "/nonexistent/grace kernel x", Restart="no",
                            TimeoutStartSec="3")
        g.expect = {KERNEL: "failed"}
        with g:
            g.start()
            k = g.wait_kernel(KERNEL, lambda k: k["state"] == "failed" and k["last_exit"],
                              timeout=scaled(20))
            self.assertEqual(k["manager"], "systemd")
            self.assertIn("exit", k["last_exit"], k)
            self.assertIsNone(k["pid"])

    def test_unknown_manager_is_a_configuration_error(self):
        g = GraceServer(kernels={KERNEL: {"manager": "upstart"}}, autostart=False)
        with g:
            import subprocess
            p = subprocess.run([GRACE_BIN, "serve", "--config", g.config_path, "--data-dir",
                                g.data_dir, "--port-offset", str(g.offset)],
                               capture_output=True, text=True, timeout=30, env=g.env())
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("manager: grace or systemd, got 'upstart'", p.stderr)


class EnrolledUnits(GraceTestCase):
    """The trust kernel and a kernel both run as units, and grace serve,
    which spawned neither, holds a credential of its own through
    LoadCredential= (the stand-in copies it into $CREDENTIALS_DIRECTORY as
    systemd does). Once an admin enrolls both credentials, the main process
    attests with its own and the unit kernel with its own: the trust kernel
    then wants the main process's proof where it took the internal token's
    word before, and the unit kernel (require_svid on by default where it
    holds an enrolled credential) refuses a call that carries the token
    only, while the gateway's forwards, carrying the main process's SVID,
    go through (docs/trust.md, "Under systemd")."""

    def credential(self, units, name):
        cred = secrets.token_hex(32)
        path = os.path.join(units.root, "join-" + name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, (cred + "\n").encode())
        os.close(fd)
        return path, hashlib.sha256(cred.encode()).hexdigest()

    def test_main_and_kernel_attest_with_enrolled_credentials(self):
        units = Units(self)
        main_cred, main_digest = self.credential(units, "grace")
        bus_cred, bus_digest = self.credential(units, KERNEL)
        # grace serve's own credentials directory, as systemd makes it.
        creds = os.path.join(units.root, "main-credentials")
        os.mkdir(creds, 0o700)
        shutil.copy(main_cred, os.path.join(creds, "join"))
        keys = {"manager": "systemd", "socket_unit": "", "health_interval_ms": 200}
        g = GraceServer(kernels={"trust": dict(keys), KERNEL: dict(keys)}, autostart=False,
                        config={"systemd": {"systemctl": units.command(), "poll_ms": 200}},
                        env={"CREDENTIALS_DIRECTORY": creds})
        for name, extra in (("trust", {}), (KERNEL, {"LoadCredential": "join:" + bus_cred})):
            unit = "grace-kernel@%d.service" % g.kernel_port(name)
            units.write_service(unit, "%s kernel %s --config %s --data-dir %s --port-offset %d"
                                % (GRACE_BIN, name, g.config_path, g.data_dir, g.offset),
                                Restart="always", RestartSec="0.2", TimeoutStopSec="5", **extra)
        with g:
            try:
                g.start()
                self.check_enrolled(g, units, main_digest, bus_digest)
            finally:
                units.systemctl("stop", *["grace-kernel@%d.service" % g.kernel_port(n)
                                          for n in ("trust", KERNEL)])

    def check_enrolled(self, g, units, main_digest, bus_digest):
        g.wait_for(lambda: all(g.kernel(n)["state"] == "ready" for n in ("trust", KERNEL)),
                   scaled(20), message="both units ready")
        admin = {"X-Grace-Caller": "gateway", "X-Grace-User": "root",
                 "X-Grace-Role": "admin"}
        # Before any main process attested, this trust kernel takes the
        # internal token's word for an admin (it was given no hash).
        probe = {"kernel": "crypto", "credential_sha256": "ab" * 32}
        st, _, out = g.kernel_http("trust", "POST", "/attest/enroll", probe, admin)
        self.assertEqual(st, 201, out)
        for name, digest in (("grace", main_digest), (KERNEL, bus_digest)):
            st, _, out = g.http("POST", "/kernels/trust/attest/enroll",
                                {"kernel": name, "credential_sha256": digest})
            self.assertEqual(st, 201, out)

        def attested():
            st, _, out = g.http("GET", "/kernels/trust/workloads")
            got = {w["name"]: w for w in out.get("workloads", [])} if st == 200 else {}
            ok = (got.get("grace", {}).get("pid") == g.proc.pid and
                  got.get(KERNEL, {}).get("pid") == g.kernel(KERNEL)["pid"])
            return got if ok else None
        got = g.wait_for(attested, scaled(20), interval=0.2,
                         message="the main process and the unit kernel attested")
        self.assertTrue(got["grace"]["exe"].endswith("grace"), got)
        # The same admin's word on the token alone is refused now...
        st, _, out = g.kernel_http("trust", "POST", "/attest/enroll", probe, admin)
        self.assertEqual((st, out["error"]["code"]), (403, "forbidden"), out)
        # ...and taken through the API, where the main process proves it.
        st, _, out = g.http("POST", "/kernels/trust/attest/enroll", probe)
        self.assertEqual(st, 201, out)
        # The unit kernel wants an SVID: the token alone is refused.
        st, _, out = g.kernel_http(KERNEL, "GET", "/stats", svid=False)
        self.assertEqual((st, out["error"]["code"]), (401, "svid_required"), out)

        def forwarded():
            st, _, out = g.http("GET", "/kernels/%s/stats" % KERNEL)
            return out if st == 200 else None
        g.wait_for(forwarded, scaled(15), interval=0.2,
                   message="the gateway's forward carries the main process's SVID")
        # A restart of the trust kernel keeps the main process's proof.
        units.systemctl("restart", "grace-kernel@%d.service" % g.kernel_port("trust"))
        g.wait_for(lambda: g.kernel("trust")["state"] == "ready", scaled(20))
        st, _, out = g.kernel_http("trust", "POST", "/attest/enroll", probe, admin)
        self.assertEqual((st, out["error"]["code"]), (403, "forbidden"), out)


if __name__ == "__main__":
    unittest.main()
