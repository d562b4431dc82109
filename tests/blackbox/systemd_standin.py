#!/usr/bin/env python3
"""A stand-in for `systemctl` and the service manager behind it, for tests
of kernels run by systemd ([kernel.NAME] manager = systemd) on machines
where systemd is not PID 1 (CI containers: `systemd --user` refuses to run
there). It is NOT systemd: it implements the part of systemctl's command
line and of a service's life that grace serve relies on, as systemd
documents them (systemctl(1), systemd.service(5)):

    systemctl show -p PROPS -- UNIT...   KEY=VALUE blocks, blank-line apart
    systemctl start|stop|restart UNIT... blocking until the job is done

Services are files ROOT/units/NAME with ExecStart=, Environment=,
LoadCredential=ID:PATH (copied, 0400, into a directory of the unit's own,
0700, named by $CREDENTIALS_DIRECTORY, as systemd.exec(5) does),
Restart= (no, always, on-failure), RestartSec=, TimeoutStopSec=,
TimeoutStartSec=; Type=notify is implied (active once the main process
sends READY=1 to $NOTIFY_SOCKET). A socket unit is a file NAME.socket whose
start and stop only change its state (no socket is bound: the kernel binds
its own port). Each started service has a runner process of its own (a new
session, not a child of whoever ran systemctl), which forks the main
process, reads its notifications, reaps it and restarts it by Restart=.
State is ROOT/state/NAME.json; every command is appended to ROOT/calls.log.

    systemd_standin.py --root ROOT COMMAND ARGS...
"""
import fcntl
import json
import os
import select
import shlex
import signal
import socket
import sys
import time

ROOT = None
PROPS = ("Id", "LoadState", "ActiveState", "SubState", "MainPID", "NRestarts", "ExecMainCode",
         "ExecMainStatus", "ExecMainStartTimestampMonotonic", "Result")


def path(*parts):
    return os.path.join(ROOT, *parts)


class Lock:
    def __enter__(self):
        self.f = open(path("lock"), "a")
        fcntl.flock(self.f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


def unit_file(name):
    p = path("units", name)
    if not os.path.exists(p):
        return None
    conf = {"Environment": [], "LoadCredential": []}
    with open(p) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith(("#", ";", "[")) or "=" not in line:
                continue
            k, v = line.split("=", 1)
            if k == "Environment":
                conf["Environment"].extend(shlex.split(v))
            elif k == "LoadCredential":
                conf["LoadCredential"].append(v)
            else:
                conf[k] = v
    return conf


def load(name):
    try:
        with open(path("state", name + ".json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {"ActiveState": "inactive", "SubState": "dead", "MainPID": 0, "NRestarts": 0,
                "ExecMainCode": 0, "ExecMainStatus": 0, "ExecMainStartTimestampMonotonic": 0,
                "Result": "success", "runner": 0}


def save(name, st):
    tmp = path("state", name + ".json.tmp")
    with open(tmp, "w") as f:
        json.dump(st, f)
    os.replace(tmp, path("state", name + ".json"))


def update(name, **kw):
    with Lock():
        st = load(name)
        st.update(kw)
        save(name, st)
        return st


def alive(pid):
    if pid <= 0:
        return False
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def mono_us():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


# ---- systemctl show


def show(units):
    out = []
    for name in units:
        conf = unit_file(name)
        st = load(name)
        block = {"Id": name, "LoadState": "loaded" if conf is not None else "not-found"}
        for k in PROPS[2:]:
            block[k] = st.get(k, 0)
        if conf is None:
            block.update(ActiveState="inactive", SubState="dead")
        # systemd prints properties in its own order, not the order asked.
        out.append("\n".join("%s=%s" % (k, block[k]) for k in sorted(block)))
    sys.stdout.write("\n\n".join(out) + "\n")
    return 0


# ---- the runner: one per started service


def runner(name):
    conf = unit_file(name)
    restart = conf.get("Restart", "no")
    restart_s = float(conf.get("RestartSec", "0.1").rstrip("s"))
    argv = shlex.split(conf["ExecStart"])
    env = dict(os.environ)
    for kv in conf["Environment"]:
        k, v = kv.split("=", 1)
        env[k] = v
    if conf["LoadCredential"]:
        creds = path("creds", name)
        os.makedirs(creds, mode=0o700, exist_ok=True)
        os.chmod(creds, 0o700)
        for spec in conf["LoadCredential"]:
            cid, src = spec.split(":", 1)
            with open(src, "rb") as f:
                data = f.read()
            dst = os.path.join(creds, cid)
            if os.path.exists(dst):
                os.chmod(dst, 0o600)
            fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.write(fd, data)
            os.close(fd)
            os.chmod(dst, 0o400)
        env["CREDENTIALS_DIRECTORY"] = creds
    sock_path = path("state", name + ".notify")
    try:
        os.unlink(sock_path)
    except OSError:
        pass
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(sock_path)
    env["NOTIFY_SOCKET"] = sock_path
    for k in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "WATCHDOG_USEC", "WATCHDOG_PID"):
        env.pop(k, None)
    while True:
        pid = os.fork()
        if pid == 0:
            os.setsid()
            null = os.open("/dev/null", os.O_RDONLY)
            os.dup2(null, 0)
            log = os.open(path("state", name + ".log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                          0o600)
            os.dup2(log, 1)
            os.dup2(log, 2)
            os.execvpe(argv[0], argv, env)
        update(name, ActiveState="activating", SubState="start", MainPID=pid,
               ExecMainCode=0, ExecMainStatus=0, ExecMainStartTimestampMonotonic=mono_us())
        status = None
        while status is None:
            r, _, _ = select.select([ns], [], [], 0.05)
            if r:
                msg = ns.recv(4096).decode("utf-8", "replace")
                if "READY=1" in msg.split("\n"):
                    update(name, ActiveState="active", SubState="running")
            got, st = os.waitpid(pid, os.WNOHANG)
            if got == pid:
                status = st
        code, val = ((1, os.WEXITSTATUS(status)) if os.WIFEXITED(status)
                     else (3 if os.WCOREDUMP(status) else 2, os.WTERMSIG(status)))
        cur = update(name, MainPID=0, ExecMainCode=code, ExecMainStatus=val)
        if cur.get("stopping"):
            update(name, ActiveState="inactive", SubState="dead", Result="success",
                   stopping=False, runner=0)
            return 0
        clean = code == 1 and val == 0
        if restart == "always" or (restart == "on-failure" and not clean):
            update(name, ActiveState="activating", SubState="auto-restart",
                   NRestarts=cur.get("NRestarts", 0) + 1)
            time.sleep(restart_s)
            if load(name).get("stopping"):
                update(name, ActiveState="inactive", SubState="dead", stopping=False, runner=0)
                return 0
            continue
        update(name, ActiveState="failed" if not clean else "inactive",
               SubState="failed" if not clean else "dead",
               Result="success" if clean else ("exit-code" if code == 1 else "signal"),
               runner=0)
        return 0


def spawn_runner(name):
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork():
            os._exit(0)
        null = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        try:
            update(name, runner=os.getpid(), stopping=False)
            os._exit(runner(name))
        except BaseException:
            os._exit(1)
    os.waitpid(pid, 0)


# ---- start, stop, restart


def start(units):
    rc = 0
    for name in units:
        conf = unit_file(name)
        if conf is None:
            sys.stderr.write("Failed to start %s: Unit %s not found.\n" % (name, name))
            return 5
        if name.endswith(".socket"):
            update(name, ActiveState="active", SubState="listening")
            continue
        st = load(name)
        if st.get("runner") and alive(st["runner"]):
            continue  # active or activating: nothing to do, as systemd does
        update(name, ActiveState="activating", SubState="start", NRestarts=0, runner=0,
               Result="success")
        spawn_runner(name)
        deadline = time.monotonic() + float(conf.get("TimeoutStartSec", "10").rstrip("s"))
        while time.monotonic() < deadline:
            st = load(name)
            if st["ActiveState"] == "active":
                break
            if st["ActiveState"] in ("failed", "inactive") and not st.get("runner"):
                sys.stderr.write("Job for %s failed because the control process exited with "
                                 "error code.\n" % name)
                rc = 1
                break
            time.sleep(0.02)
        else:
            sys.stderr.write("Job for %s failed because a timeout was exceeded.\n" % name)
            kill_main(name, signal.SIGKILL)
            rc = 1
    return rc


def kill_main(name, sig):
    pid = load(name).get("MainPID", 0)
    if pid > 0:
        try:
            os.killpg(pid, sig)
        except OSError:
            pass


def stop(units):
    for name in units:
        conf = unit_file(name)
        if conf is None:
            continue
        if name.endswith(".socket"):
            update(name, ActiveState="inactive", SubState="dead")
            continue
        st = load(name)
        if not (st.get("runner") and alive(st["runner"])):
            if st["ActiveState"] != "failed":
                update(name, ActiveState="inactive", SubState="dead", MainPID=0)
            continue
        update(name, ActiveState="deactivating", SubState="stop-sigterm", stopping=True)
        # systemd's KillMode=control-group, simplified: the main process's group.
        kill_main(name, signal.SIGTERM)
        kill_main(name, signal.SIGCONT)
        deadline = time.monotonic() + float(conf.get("TimeoutStopSec", "5").rstrip("s"))
        killed = False
        while alive(load(name).get("runner", 0)):
            if not killed and time.monotonic() > deadline:
                update(name, SubState="stop-sigkill")
                kill_main(name, signal.SIGKILL)
                killed = True
            time.sleep(0.02)
    return 0


def main():
    global ROOT
    args = sys.argv[1:]
    if len(args) < 3 or args[0] != "--root":
        sys.stderr.write(__doc__)
        return 2
    ROOT = args[1]
    cmd, rest = args[2], args[3:]
    os.makedirs(path("state"), exist_ok=True)
    if cmd != "run":
        with open(path("calls.log"), "a") as f:
            f.write(" ".join([cmd] + rest) + "\n")
    if cmd == "show":
        units = rest[rest.index("--") + 1:] if "--" in rest else [
            a for a in rest[2:] if not a.startswith("-")]
        return show(units)
    if cmd == "start":
        return start(rest)
    if cmd == "stop":
        return stop(rest)
    if cmd == "restart":
        stop(rest)
        return start(rest)
    sys.stderr.write("Unknown command verb %s.\n" % cmd)
    return 1


if __name__ == "__main__":
    sys.exit(main())
