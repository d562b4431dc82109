"""What the small benches share (executor_bench.py, coding_agent_bench.py,
bus_bench.py, log_bench.py): a free-port check, a wait, and one `grace
serve` started in a temporary directory with a configuration of the
bench's own, waited for until one kernel answers, and stopped by pid.
grace_bench.py takes the free-port check and the clean environment from
here and keeps its own, larger set besides (cold starts, perf, several
supervisors)."""
import http.client
import os
import signal
import socket
import subprocess
import time

HOST = "127.0.0.1"
TOKEN_HEADER = "X-Grace-Internal-Token"


def port_free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
            return True
        except OSError:
            return False


def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("timed out waiting for " + what)


def clean_env():
    """The environment without what would make grace serve someone else's."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("GRACE_", "LISTEN_", "NOTIFY_", "WATCHDOG_"))}


def stop(p):
    """SIGTERM to the pid, SIGKILL after 15 s."""
    if p.poll() is None:
        os.kill(p.pid, signal.SIGTERM)
    try:
        p.wait(15)
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()


def wait_ready(p, tmp, data, port, probe_path, what):
    """The internal token once `grace serve` (process p, data in `data`,
    log in TMP/grace.log) has written it and GET probe_path on `port`
    answers 200 with it; RuntimeError if p exits first or 30 s pass."""
    tokfile = os.path.join(data, "internal.token")

    def alive():
        if p.poll() is not None:
            raise RuntimeError("grace serve exited; see %s/grace.log" % tmp)

    def token_written():
        alive()
        return os.path.exists(tokfile) and os.path.getsize(tokfile) > 0
    wait_until(token_written, 30, "grace's internal token")
    with open(tokfile) as f:
        token = f.read().strip()

    def up():
        alive()
        c = http.client.HTTPConnection(HOST, port, timeout=2)
        try:
            c.request("GET", probe_path, headers={TOKEN_HEADER: token})
            return c.getresponse().status == 200
        finally:
            c.close()
    wait_until(up, 30, what)
    return token


def start_grace(tmp, grace, offset, ini_text, port, probe_path, what):
    """`grace serve` with `ini_text` as its configuration, its data in
    TMP/data and its log in TMP/grace.log; returns (process, port, token)
    once GET probe_path on `port` (offset applied by the caller) answers
    200 with the internal token. Stopped here if it never does."""
    data = os.path.join(tmp, "data")
    ini = os.path.join(tmp, "grace.ini")
    with open(ini, "w") as f:
        f.write(ini_text)
    logf = open(os.path.join(tmp, "grace.log"), "ab")
    p = subprocess.Popen([grace, "serve", "--config", ini, "--data-dir", data,
                          "--port-offset", str(offset)], stdin=subprocess.DEVNULL,
                         stdout=logf, stderr=logf, cwd=tmp, env=clean_env())
    logf.close()
    try:
        token = wait_ready(p, tmp, data, port, probe_path, what)
    except BaseException:
        stop(p)
        raise
    return p, port, token
