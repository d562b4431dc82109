"""Packaging (issue 19): `make install`'s layout (scripts/install.sh with
PREFIX and DESTDIR), the systemd units clean under `systemd-analyze verify`
at their installed paths and rated 2.0 or lower by `systemd-analyze
security`, the socket template's port taken from its instance and a
socket-activated kernel's credentials as the unit hands them, and the
Debian package: built with debhelper, clean under lintian, installed into a
throw-away root and purged again.

Not exercised here, because it needs systemd as PID 1: starting the units,
the grace user's processes under the hardening, the prerm stopping running
kernels. The throw-away root is installed by dpkg --root with chrootless
maintainer scripts (DPKG_ROOT), as mmdebstrap does."""

import glob
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import unittest

from harness import (GRACE_BIN, GraceTestCase, PortReservation, http_request, scaled,
                     wait_for)

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.dirname(GRACE_BIN)
SECURITY_MAX = 2.0


def executor_port():
    out = subprocess.run([GRACE_BIN, "kernels-list", "--json"], capture_output=True, text=True,
                         check=True).stdout
    return next(k["port"] for k in json.loads(out)["kernels"] if k["name"] == "executor")


EXECUTOR = "grace-kernel@%d.service" % executor_port()


def need(tool, package):
    path = shutil.which(tool)
    if not path:
        raise AssertionError("%s is missing (Debian package %s): scripts/bootstrap.sh --test "
                             "installs it" % (tool, package))
    return path


def run(argv, **kw):
    kw.setdefault("timeout", scaled(180))
    return subprocess.run(argv, capture_output=True, text=True, **kw)


class Packaging(GraceTestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="grace-bb-pkg-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def stage(self, prefix):
        dest = os.path.join(self.tmp, "stage" + prefix.replace("/", "-"))
        r = run([os.path.join(SRC, "scripts", "install.sh"), BUILD, prefix, dest])
        self.assertEqual(r.returncode, 0, r.stderr)
        return dest

    def test_install_layout(self):
        for prefix, etc, units in (("/usr", "/etc", "/lib/systemd/system"),
                                   ("/opt/grace", "/opt/grace/etc",
                                    "/opt/grace/lib/systemd/system")):
            dest = self.stage(prefix)
            for path in ("%s/bin/grace" % prefix, "%s/grace/grace.ini" % etc,
                         "%s/grace.service" % units, "%s/grace-kernel@.service" % units,
                         "%s/grace-kernel@.socket" % units,
                         "%s/%s.d/sandbox.conf" % (units, EXECUTOR),
                         "%s/share/man/man1/grace.1.gz" % prefix,
                         "%s/share/man/man5/grace.ini.5.gz" % prefix,
                         "%s/share/bash-completion/completions/grace" % prefix,
                         "%s/share/zsh/vendor-completions/_grace" % prefix,
                         "%s/share/fish/vendor_completions.d/grace.fish" % prefix):
                self.assertTrue(os.path.isfile(dest + path), path)
            with open(dest + units + "/grace.service") as f:
                unit = f.read()
            self.assertIn("ExecStart=%s/bin/grace serve --config %s/grace/grace.ini" %
                          (prefix, etc), unit)
            self.assertIsNone(re.search(r"@[a-z]+@", unit))
            # grace.ini(5) holds every key of the configuration file.
            r = run(["man", "--warnings", "-l", dest + prefix + "/share/man/man5/grace.ini.5.gz"],
                    env=dict(os.environ, MANPAGER="cat", MANWIDTH="100"))
            self.assertEqual((r.returncode, r.stderr), (0, ""))
            with open(os.path.join(SRC, "etc", "grace.ini")) as f:
                keys = re.findall(r"^([a-z_]+) *=", f.read(), re.M)
            self.assertGreater(len(keys), 30)
            for key in keys:
                # A tag: alone on its line, or, narrower than the indent,
                # with its text beside it ("keep   default 7: ...").
                self.assertRegex(r.stdout, r"\n {7}%s(\n| +\S)" % re.escape(key), key)
        # An existing configuration is kept.
        conf = os.path.join(self.tmp, "stage-usr", "etc", "grace", "grace.ini")
        with open(conf, "w") as f:
            f.write("; mine\n")
        self.stage("/usr")
        with open(conf) as f:
            self.assertEqual(f.read(), "; mine\n")

    def units_root(self):
        """The units at their installed paths, beside the system's own (the
        targets they name): the root systemd-analyze reads them from."""
        dest = self.stage("/usr")
        root = os.path.join(self.tmp, "root")
        shutil.copytree(dest, root, symlinks=True)
        system = os.path.join(root, "lib", "systemd", "system")
        for path in glob.glob("/lib/systemd/system/*.target"):
            if not os.path.exists(os.path.join(system, os.path.basename(path))):
                shutil.copy(path, system, follow_symlinks=True)
        # ExecReload's /bin/kill: the system's, as the targets are.
        os.makedirs(os.path.join(root, "bin"), exist_ok=True)
        shutil.copy(need("kill", "procps"), os.path.join(root, "bin", "kill"))
        return root

    def test_units_verify_and_security(self):
        analyze = need("systemd-analyze", "systemd")
        root = self.units_root()
        units = ["grace.service", "grace-kernel@8130.service", "grace-kernel@8130.socket",
                 EXECUTOR]
        r = run([analyze, "verify", "--man=no", "--root=" + root] + units)
        self.assertEqual((r.returncode, r.stderr, r.stdout), (0, "", ""))
        # The check bites: without the binary at its installed path it fails.
        os.rename(root + "/usr/bin/grace", root + "/grace")
        r = run([analyze, "verify", "--man=no", "--root=" + root, "grace.service"])
        self.assertIn("/usr/bin/grace is not executable", r.stderr)
        os.rename(root + "/grace", root + "/usr/bin/grace")

        scores = {}
        for unit in ("grace.service", "grace-kernel@8130.service", EXECUTOR):
            r = run([analyze, "security", "--offline=true", "--root=" + root, "--no-pager", unit])
            self.assertEqual(r.returncode, 0, r.stderr)
            m = re.search(r"Overall exposure level for %s: (\d+\.\d)" % re.escape(unit), r.stdout)
            self.assertTrue(m, r.stdout[-500:])
            scores[unit] = float(m.group(1))
        print("systemd-analyze security: %s" % scores, file=sys.stderr)
        self.assertLessEqual(scores["grace.service"], SECURITY_MAX)
        self.assertLessEqual(scores["grace-kernel@8130.service"], SECURITY_MAX)
        # The executor's drop-in relaxes only what it names.
        self.assertGreater(scores[EXECUTOR],
                           scores["grace-kernel@8130.service"])
        with open(root + "/lib/systemd/system/grace-kernel@.socket") as f:
            self.assertIn("\nListenStream=127.0.0.1:%i\n", f.read())
        with open(root + "/lib/systemd/system/grace-kernel@.service") as f:
            unit = f.read()
        self.assertIn("\nExecStart=/usr/bin/grace kernel %i ", unit)
        self.assertIn("\nLoadCredential=internal.token:/etc/grace/internal.token\n", unit)
        self.assertIn("\nEnvironment=GRACE_INTERNAL_TOKEN_FILE=%d/internal.token\n", unit)

    def test_socket_activated_kernel_by_port_with_credentials(self):
        """What grace-kernel@PORT.service runs: `grace kernel PORT` on the
        socket systemd hands it, the internal token read from the
        credentials directory GRACE_INTERNAL_TOKEN_FILE names."""
        res = PortReservation()
        self.addCleanup(res.release)
        port = res.port(8130)
        creds = os.path.join(self.tmp, "credentials")
        os.mkdir(creds, 0o700)
        token = secrets.token_hex(32)
        fd = os.open(os.path.join(creds, "internal.token"), os.O_WRONLY | os.O_CREAT, 0o400)
        os.write(fd, token.encode())
        os.close(fd)
        sock = socket.socket()
        self.addCleanup(sock.close)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(16)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("GRACE_", "NOTIFY_", "LISTEN_", "WATCHDOG_"))}
        env["GRACE_INTERNAL_TOKEN_FILE"] = os.path.join(creds, "internal.token")
        env["CREDENTIALS_DIRECTORY"] = creds
        cfg = os.path.join(self.tmp, "grace.ini")
        with open(cfg, "w") as f:
            f.write("[grace]\nlibrary_root = %s\n" % self.tmp)
        log = open(os.path.join(self.tmp, "kernel.log"), "w+b")
        self.addCleanup(log.close)
        activate = ("import os, sys\nfd = int(sys.argv[1])\nos.dup2(fd, 3)\n"
                    "os.environ['LISTEN_FDS'] = '1'\nos.environ['LISTEN_PID'] = str(os.getpid())\n"
                    "os.execv(sys.argv[2], sys.argv[2:])\n")
        p = subprocess.Popen([sys.executable, "-c", activate, str(sock.fileno()), GRACE_BIN,
                              "kernel", str(port), "--config", cfg, "--data-dir",
                              os.path.join(self.tmp, "data"), "--port-offset", str(res.offset)],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                             pass_fds=(sock.fileno(),), cwd=self.tmp)
        def end():
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=scaled(15))
        self.addCleanup(end)
        def health():
            try:
                return http_request(port, "GET", "/health", timeout=scaled(2))
            except OSError:
                return None
        st, _, body = wait_for(health, scaled(20),
                               message="the kernel answers on its handed socket")
        self.assertEqual((st, body["kernel"], body["pid"]), (200, "librarian", p.pid))
        st, _, _ = http_request(port, "POST", "/documents", {"title": "t", "body": "b"})
        self.assertEqual(st, 401)
        st, _, body = http_request(port, "POST", "/documents", {"title": "t", "body": "b"},
                                   headers={"X-Grace-Internal-Token": token})
        self.assertEqual(st, 201, body)
        end()
        self.assertEqual(p.returncode, 0)

    def test_debian_package(self):
        for tool, pkg in (("dh_installsystemd", "debhelper"), ("dpkg-deb", "dpkg"),
                          ("lintian", "lintian"), ("systemd-sysusers", "systemd")):
            need(tool, pkg)
        out = os.path.join(self.tmp, "deb")
        r = run([os.path.join(SRC, "scripts", "deb.sh"), BUILD, out])
        self.assertEqual(r.returncode, 0, r.stderr)
        deb = r.stdout.strip()
        self.assertTrue(deb.endswith("_amd64.deb") or deb.endswith(".deb"), deb)

        listing = run(["dpkg-deb", "-c", deb]).stdout
        entries = {}
        for line in listing.splitlines():
            f = line.split()
            entries[f[-1].lstrip(".")] = (f[0], f[1])
        for path, mode in (("/usr/bin/grace", "-rwxr-xr-x"),
                           ("/lib/systemd/system/grace.service", "-rw-r--r--"),
                           ("/lib/systemd/system/grace-kernel@.service", "-rw-r--r--"),
                           ("/lib/systemd/system/grace-kernel@.socket", "-rw-r--r--"),
                           ("/etc/grace/grace.ini", "-rw-r--r--"),
                           ("/usr/lib/sysusers.d/grace.conf", "-rw-r--r--"),
                           ("/usr/lib/tmpfiles.d/grace.conf", "-rw-r--r--"),
                           ("/usr/share/man/man1/grace.1.gz", "-rw-r--r--"),
                           ("/usr/share/man/man5/grace.ini.5.gz", "-rw-r--r--"),
                           ("/usr/share/bash-completion/completions/grace", "-rw-r--r--"),
                           ("/usr/share/doc/grace/copyright", "-rw-r--r--")):
            self.assertIn(path, entries, listing)
            self.assertEqual(entries[path], (mode, "root/root"), path)
        info = run(["dpkg-deb", "-f", deb, "Package", "Depends"]).stdout
        self.assertIn("Package: grace", info)
        for dep in ("libevent", "libjansson", "libsqlite3", "libsodium", "systemd"):
            self.assertIn(dep, info)
        conffiles = run(["dpkg-deb", "-I", deb, "conffiles"]).stdout
        self.assertEqual(conffiles.split(), ["/etc/grace/grace.ini"])

        r = run(["lintian", "--tag-display-limit", "0", deb])
        problems = [ln for ln in r.stdout.splitlines() if re.match(r"^[EW]: ", ln)]
        self.assertEqual(problems, [], r.stdout)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

        # A throw-away root: installed, removed, purged.
        root = os.path.join(self.tmp, "target")
        for d in ("var/lib/dpkg/info", "var/lib/dpkg/updates", "etc"):
            os.makedirs(os.path.join(root, d))
        open(os.path.join(root, "var/lib/dpkg/status"), "w").close()
        dpkg = ["dpkg", "--root=" + root, "--force-script-chrootless", "--force-depends",
                "--log=/dev/null"]
        r = run(dpkg + ["-i", deb])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(os.path.join(root, "etc/passwd")) as f:
            user = [ln for ln in f.read().splitlines() if ln.startswith("grace:")]
        self.assertEqual(len(user), 1)
        uid = int(user[0].split(":")[2])
        self.assertLess(uid, 1000)  # a system user
        self.assertTrue(user[0].endswith(":/var/lib/grace:/usr/sbin/nologin"), user)
        st = os.stat(os.path.join(root, "var/lib/grace"))
        self.assertEqual((oct(st.st_mode & 0o7777), st.st_uid), (oct(0o700), uid))
        st = os.stat(os.path.join(root, "etc/grace/internal.token"))
        self.assertEqual((oct(st.st_mode & 0o7777), st.st_uid), (oct(0o600), 0))
        self.assertTrue(os.path.islink(os.path.join(
            root, "etc/systemd/system/multi-user.target.wants/grace.service")))
        with open(os.path.join(root, "var/lib/grace/grace.db"), "w") as f:
            f.write("data")
        r = run(dpkg + ["--remove", "grace"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertFalse(os.path.exists(os.path.join(root, "usr/bin/grace")))
        self.assertTrue(os.path.exists(os.path.join(root, "var/lib/grace/grace.db")))
        self.assertTrue(os.path.exists(os.path.join(root, "etc/grace/grace.ini")))
        r = run(dpkg + ["--purge", "grace"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        for gone in ("var/lib/grace", "etc/grace", "lib/systemd/system/grace.service",
                     "etc/systemd/system/multi-user.target.wants/grace.service"):
            self.assertFalse(os.path.exists(os.path.join(root, gone)), gone)


if __name__ == "__main__":
    unittest.main()
