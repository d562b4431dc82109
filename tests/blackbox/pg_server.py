"""A throw-away PostgreSQL 15 for the black-box tests ([store] engine =
postgresql; docs/operations.md "Shared state in PostgreSQL").

    with PgServer(offset) as pg:           # initdb + pg_ctl start
        url, password_file = pg.store_url(pg.create_database())

- initdb and pg_ctl from /usr/lib/postgresql/15/bin (Debian's
  postgresql-15: scripts/bootstrap.sh --test installs it);
- initdb refuses root: as root (here and in CI) every PostgreSQL command
  runs as the system user grace-pg-test (made by scripts/bootstrap.sh)
  through `runuser -u`; as anyone else, as that user;
- in a temporary directory of its own, listening on 127.0.0.1 only (and a
  Unix socket in that directory), on port 8150 + the test's port offset:
  inside the offset's reserved block (8000..8199 + N) but past the kernels'
  8100..8149 + N, so below 32768 and never 8000..8149 (8160..8169 + N are
  test_supervisor_shell's, 8170..8199 + N the NATS cluster's);
- password authentication (scram-sha-256) with a random password kept in a
  file, as Grace reads it ([store] password_file);
- stopped with `pg_ctl stop -m immediate`, then killed by its PID (from
  postmaster.pid) if it is still there; the directory is removed.

A missing tool or user fails with the package or command that provides it,
never a skip.
"""

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time

PG_BIN = "/usr/lib/postgresql/15/bin"
PG_USER = "grace-pg-test"
PG_ROLE = "grace"  # the database superuser initdb makes
PORT_BASE = 8150


def _need():
    for tool in ("initdb", "pg_ctl", "postgres", "psql"):
        path = os.path.join(PG_BIN, tool)
        if not os.access(path, os.X_OK):
            raise AssertionError("%s is missing: install postgresql-15 "
                                 "(scripts/bootstrap.sh --test)" % path)
    if os.geteuid() == 0:
        try:
            import pwd
            pwd.getpwnam(PG_USER)
        except KeyError:
            raise AssertionError("the system user %s is missing (initdb refuses root): "
                                 "run scripts/bootstrap.sh --test" % PG_USER)


def pg_port(offset):
    return PORT_BASE + offset


class PgServer:
    def __init__(self, offset, timeout=60.0):
        _need()
        self.port = pg_port(offset)
        self.timeout = timeout
        self.tmp = tempfile.mkdtemp(prefix="grace-pg-")
        self.data = os.path.join(self.tmp, "data")
        self.sock = os.path.join(self.tmp, "sock")
        self.log_path = os.path.join(self.tmp, "postgres.log")
        self.password = secrets.token_urlsafe(24)
        # Grace reads it (root, in the tests); PostgreSQL's user never does.
        self.password_file = os.path.join(self.tmp, "store.password")
        with open(self.password_file, "w") as f:
            f.write(self.password + "\n")
        os.chmod(self.password_file, 0o600)
        self.pid = None
        self._n = 0
        self.root = os.geteuid() == 0
        if self.root:
            import pwd
            pw = pwd.getpwnam(PG_USER)
            os.chmod(self.tmp, 0o711)  # the user reaches its own dirs only
            for d in (self.data, self.sock):
                os.mkdir(d, 0o700)
                os.chown(d, pw.pw_uid, pw.pw_gid)
            log = open(self.log_path, "w")
            log.close()
            os.chown(self.log_path, pw.pw_uid, pw.pw_gid)
        else:
            os.mkdir(self.data, 0o700)
            os.mkdir(self.sock, 0o700)

    # -- as the PostgreSQL user

    def _as_user(self, argv):
        return (["runuser", "-u", PG_USER, "--"] + argv) if self.root else argv

    def _run(self, argv, input=None, env=None, timeout=None):
        p = subprocess.run(self._as_user(argv), input=input, capture_output=True, text=True,
                           env=env, timeout=timeout or self.timeout, cwd=self.tmp)
        if p.returncode != 0:
            raise AssertionError("%s failed (%d): %s%s" % (" ".join(argv[:2]), p.returncode,
                                                           p.stdout[-2000:], p.stderr[-2000:]))
        return p.stdout

    # -- life

    def start(self):
        # The password reaches initdb in a file only its user reads (never
        # argv), removed once it is done.
        pwfile = os.path.join(self.sock, "initdb.pw")
        with open(pwfile, "w") as f:
            f.write(self.password + "\n")
        os.chmod(pwfile, 0o600)
        if self.root:
            import pwd
            pw = pwd.getpwnam(PG_USER)
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        try:
            self._run([os.path.join(PG_BIN, "initdb"), "-D", self.data, "-U", PG_ROLE,
                       "--pwfile=" + pwfile, "--auth=scram-sha-256", "--no-sync", "-E",
                       "UTF8", "--locale=C", "--no-instructions"])
        finally:
            os.unlink(pwfile)
        self.resume()
        return self

    def resume(self):
        """Starts the server on the cluster initdb made (again after pause())."""
        opts = ("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200 "
                "-c shared_buffers=16MB" % (self.port, self.sock))
        self._run([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-l", self.log_path,
                   "-o", opts, "-w", "-t", str(int(self.timeout)), "start"])
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            self.pid = int(f.readline().strip())

    def pause(self):
        """Stops the server (fast: connections are cut), keeping its data."""
        self._run([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-m", "fast", "-w",
                   "-t", "30", "stop"], timeout=40)
        deadline = time.monotonic() + 10
        while _alive(self.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(self.pid):
            raise AssertionError("postgres %d still running after pg_ctl stop" % self.pid)
        self.pid = None

    def stop(self):
        if self.pid is not None:
            try:
                self._run([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-m",
                           "immediate", "-w", "-t", "20", "stop"], timeout=30)
            except (AssertionError, subprocess.TimeoutExpired):
                pass
            deadline = time.monotonic() + 10
            while _alive(self.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(self.pid):
                os.kill(self.pid, signal.SIGKILL)  # ours: its pid from postmaster.pid
            self.pid = None
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.dump_log()
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()
        return False

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except OSError:
            return ""

    def dump_log(self):
        import sys
        sys.stderr.write("\n===== postgres log (%s) =====\n%s\n===== end =====\n"
                         % (self.tmp, self.log()[-6000:]))

    # -- databases

    def psql(self, sql, db="postgres"):
        """Runs SQL as the superuser over TCP: its output, unaligned, tuples only."""
        env = dict(os.environ, PGPASSFILE=self._passfile())
        p = subprocess.run([os.path.join(PG_BIN, "psql"), "-X", "-q", "-A", "-t",
                            "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.port),
                            "-U", PG_ROLE, "-d", db, "-c", sql],
                           capture_output=True, text=True, env=env, timeout=self.timeout)
        if p.returncode != 0:
            raise AssertionError("psql %r: %s" % (sql, p.stderr))
        return p.stdout

    def _passfile(self):
        path = os.path.join(self.tmp, "pgpass")
        if not os.path.exists(path):
            with open(path, "w") as f:
                f.write("127.0.0.1:%d:*:%s:%s\n" % (self.port, PG_ROLE, self.password))
            os.chmod(path, 0o600)
        return path

    def create_database(self, prefix="grace"):
        """A new, empty database: its name."""
        self._n += 1
        name = "%s_%d_%s" % (prefix, self._n, secrets.token_hex(4))
        self.psql('CREATE DATABASE "%s"' % name)
        return name

    def store_section(self, db):
        """[store] for grace.ini: this server's database `db`."""
        return {"engine": "postgresql",
                "postgresql_url": "host=127.0.0.1 port=%d dbname=%s user=%s"
                                  % (self.port, db, PG_ROLE),
                "password_file": self.password_file,
                "statement_timeout_ms": 5000}


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is gone for our purposes.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False
