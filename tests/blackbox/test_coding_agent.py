"""The coding_agent kernel (issue 17, docs/coding_agent.md): a task applies
a patch in a fresh git worktree of a repository under the workspace root
and runs its tests as executor jobs before and after. Without a model: a
patch (search/replace blocks, or a unified diff) makes a failing test pass
(graded as SWE-bench grades: fail_to_pass and pass_to_pass); a patch that
does not apply is reported by block with nothing written; a repository
path escaping the root is refused; the original checkout is untouched;
every git command, job and edit is an audit event; a deleted task's
worktree and branch are gone. With a model (model_server.py): a two-turn
fix (the first edit wrong, the second right), and a failing model
degrading to the task's patch with a notice, counted in /metrics. The
executor's "dir" is for kernels only, under [executor] dir_root."""

import hashlib
import os
import time
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import GraceServer, ServerClassCase, scaled  # noqa: E402
from test_chat import ModelServer  # noqa: E402

GIT = "/usr/bin/git"
PY = "/usr/bin/python3"

CALC = "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n"
TESTS = '''import sys
from calc import add, mul


def test_add():
    assert add(2, 3) == 5, add(2, 3)


def test_mul():
    assert mul(2, 3) == 6, mul(2, 3)


TESTS = {"test_add": test_add, "test_mul": test_mul}
failed = 0
for name in sys.argv[1:] or sorted(TESTS):
    try:
        TESTS[name]()
        print("PASS", name)
    except Exception as e:
        failed += 1
        print("FAIL", name, repr(e))
sys.exit(1 if failed else 0)
'''
FIX = ("calc.py\n```python\n<<<<<<< SEARCH\ndef add(a, b):\n    return a - b\n=======\n"
       "def add(a, b):\n    return a + b\n>>>>>>> REPLACE\n```\n")
TEST_COMMAND = [PY, "test_calc.py"]

# A test command that builds (writes build/out.txt where it runs) and then
# attacks: a .git of its own pointing at a git directory it made (a filter,
# a textconv, an fsmonitor and hooks that would each touch MARK), a
# .gitattributes naming them, and a link to the kernel's worktree (which
# the copy's removal must not follow). WORKTREE lines also try the kernel's
# own worktree beside the copy: run only where jobs run as another user
# than the kernel (grace serve as root), since a job of the kernel's own
# user may write anything the kernel may.
BUILD_AND_ATTACK = """set -u
mkdir -p build && echo "built by $(id -u)" > build/out.txt || exit 3
cat build/out.txt
evil="$PWD/evil.git"
mkdir -p "$evil/objects" "$evil/refs/heads" "$evil/hooks"
echo 'ref: refs/heads/main' > "$evil/HEAD"
cat > "$evil/config" <<CONF
[core]
\trepositoryformatversion = 0
\tfsmonitor = touch MARK
\thooksPath = $evil/hooks
[filter "evil"]
\tclean = touch MARK
\tsmudge = touch MARK
[diff "evil"]
\ttextconv = touch MARK
CONF
for h in pre-commit post-checkout post-index-change reference-transaction pre-auto-gc; do
  printf '#!/bin/sh\ntouch MARK\n' > "$evil/hooks/$h"; chmod +x "$evil/hooks/$h"
done
echo "gitdir: $evil" > .git
printf '* filter=evil diff=evil\n' > .gitattributes
wt="$(dirname "$(dirname "$PWD")")/$(basename "$PWD")"
ln -s "$wt" wt-link
WORKTREE (echo "gitdir: $evil" > "$wt/.git") 2>/dev/null && echo WROTE-THE-WORKTREE
WORKTREE (printf '* filter=evil diff=evil\n' > "$wt/.gitattributes") 2>/dev/null && echo WROTE-THE-WORKTREE
WORKTREE (mkdir -p "$wt/build" && echo x > "$wt/build/x") 2>/dev/null && echo WROTE-THE-WORKTREE
exit 0
"""


def git(repo, *args):
    return subprocess.run([GIT, "-C", repo] + list(args), check=True, capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin", "HOME": repo,
                                          "GIT_CONFIG_NOSYSTEM": "1"}).stdout


def make_workspace():
    """A workspace root holding the repository calc (a bug and its test)."""
    ws = os.path.realpath(tempfile.mkdtemp(prefix="grace-ca-"))
    os.chmod(ws, 0o755)  # the executor's jobs user walks into the worktrees
    repo = os.path.join(ws, "calc")
    os.mkdir(repo)
    with open(os.path.join(repo, "calc.py"), "w") as f:
        f.write(CALC)
    with open(os.path.join(repo, "test_calc.py"), "w") as f:
        f.write(TESTS)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@localhost", "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qm", "calc")
    # A hook of the repository's own: git run by the kernel must not run it.
    hook = os.path.join(repo, ".git", "hooks", "post-checkout")
    with open(hook, "w") as f:
        f.write("#!/bin/sh\ntouch %s\n" % os.path.join(ws, "hook-ran"))
    os.chmod(hook, 0o755)
    return ws, repo


def snapshot(repo):
    """The original checkout: every file outside .git by content, its index,
    HEAD and the branch it is on."""
    files = {}
    for root, dirs, names in os.walk(repo):
        dirs[:] = [d for d in dirs if d != ".git"]
        for n in names:
            p = os.path.join(root, n)
            with open(p, "rb") as f:
                files[os.path.relpath(p, repo)] = hashlib.sha256(f.read()).hexdigest()
    with open(os.path.join(repo, ".git", "index"), "rb") as f:
        index = hashlib.sha256(f.read()).hexdigest()
    with open(os.path.join(repo, ".git", "HEAD")) as f:
        head = f.read()
    return files, index, head, git(repo, "rev-parse", "main")


def server(ws, config=None):
    cfg = {"coding_agent": {"workspace_root": ws},
           "executor": {"dir_root": ws, "cgroups": 0}}
    for k, v in (config or {}).items():
        cfg.setdefault(k, {}).update(v)
    return GraceServer(kernels={"coding_agent": {}, "executor": {}, "audit": {}, "immutable_log": {}}, config=cfg)


class Base(ServerClassCase):
    ws = repo = None

    @classmethod
    def setUpClass(cls):
        cls.ws, cls.repo = make_workspace()
        cls.before = snapshot(cls.repo)
        try:
            super().setUpClass()
        except BaseException:
            shutil.rmtree(cls.ws, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.ws, ignore_errors=True)

    def submit(self, body, want=202):
        st, _, t = self.g.http("POST", "/coding-agent/tasks", body)
        self.assertEqual(st, want, t)
        return t

    def wait_end(self, tid):
        def ended():
            st, _, t = self.g.http("GET", "/coding-agent/tasks/%s?wait_ms=5000" % tid, timeout=20)
            self.assertEqual(st, 200, t)
            return t if t["state"] in ("done", "failed") else None
        return self.g.wait_for(ended, timeout=scaled(60), message="task %s to end" % tid)

    def run_task(self, body):
        t = self.submit(body)
        self.assertIn(t["state"], ("queued", "preparing"), t)
        return self.wait_end(t["id"])

    def assert_untouched(self):
        self.assertEqual(snapshot(self.repo), self.before,
                         "the original checkout changed")


class WithoutModel(Base):
    @classmethod
    def make_server(cls):
        return server(cls.ws)

    def test_cancel_while_the_tests_run(self):
        # The tests would take 60 s: cancelled while they run, the task ends
        # "cancelled" at once and its executor job is asked to end.
        t = self.submit({"repo": "calc", "test_command": ["/bin/sleep", "60"], "patch": FIX})
        tid = t["id"]

        def testing():
            # The phase copies the worktree first (on the pool), then its
            # job runs: cancelled once the job is there.
            st, _, t = self.g.http("GET", "/coding-agent/tasks/%s" % tid)
            if t["state"] != "testing_before":
                return None
            st, _, jobs = self.g.http("GET", "/kernels/executor/jobs?limit=50")
            return t if any(tid in (j.get("name") or "") for j in jobs.get("jobs", [])) \
                else None
        self.g.wait_for(testing, timeout=scaled(30), message="the tests running")
        t0 = time.monotonic()
        st, _, body = self.g.http("POST", "/coding-agent/tasks/%s/cancel" % tid, {})
        self.assertIn(st, (200, 202), body)

        def ended():
            st, _, t = self.g.http("GET", "/coding-agent/tasks/%s?wait_ms=5000" % tid, timeout=20)
            return t if t["state"] not in ("queued", "preparing", "testing_before",
                                           "editing", "testing_after") else None
        t = self.g.wait_for(ended, timeout=scaled(20), message="the task cancelled")
        self.assertEqual(t["state"], "cancelled", t)
        self.assertLess(time.monotonic() - t0, 15, "the cancel waited for the tests")
        self.assertTrue(t["error"].startswith("cancelled by "), t)
        st, _, jobs = self.g.http("GET", "/kernels/executor/jobs?limit=50")
        mine = [j for j in jobs["jobs"] if tid in (j.get("name") or "")]
        self.assertTrue(mine, jobs)
        self.assertTrue(all(j["state"] not in ("queued", "running") for j in mine), mine)
        # An ended task has nothing to cancel; an unknown one is not found.
        st, _, err = self.g.http("POST", "/coding-agent/tasks/%s/cancel" % tid, {})
        self.assertEqual((st, err["error"]["code"]), (409, "conflict"), err)
        st, _, err = self.g.http("POST", "/coding-agent/tasks/t_0000000000000000/cancel", {})
        self.assertEqual(st, 404, err)
        self.assert_untouched()

    def test_patch_fixes_the_bug(self):
        t = self.run_task({"repo": "calc", "test_command": TEST_COMMAND, "patch": FIX,
                           "fail_to_pass": ["test_add"], "pass_to_pass": ["test_mul"]})
        self.assertEqual(t["state"], "done", t)
        self.assertEqual(t["mode"], "patch")
        # Before: the bug fails its test; after: it passes, the other still does.
        self.assertFalse(t["tests_before"]["passed"], t["tests_before"])
        self.assertEqual(t["tests_before"]["exit_code"], 1)
        self.assertIn("FAIL test_add", t["tests_before"]["runs"][0]["stdout_tail"])
        self.assertEqual(t["tests_before"]["tests"], {"test_add": False, "test_mul": True})
        self.assertTrue(t["tests_after"]["passed"], t["tests_after"])
        self.assertEqual(t["tests_after"]["tests"], {"test_add": True, "test_mul": True})
        self.assertTrue(t["resolved"])
        self.assertEqual(t["grading"]["fail_to_pass"]["test_add"], {"before": False, "after": True})
        self.assertEqual(t["grading"]["pass_to_pass"]["test_mul"], {"before": True, "after": True})
        self.assertIn("+    return a + b", t["diff"])
        self.assertIn("-    return a - b", t["diff"])
        # Worked on a branch of its own, in a worktree of its own.
        self.assertEqual(t["branch"], "grace/task-" + t["id"])
        self.assertIn(t["branch"], git(self.repo, "branch", "--list", "grace/*"))
        self.assertTrue(t["worktree"].startswith(self.ws + "/.grace-worktrees/"))
        with open(os.path.join(t["worktree"], "calc.py")) as f:
            self.assertIn("return a + b", f.read())
        self.assertEqual(git(self.repo, "rev-parse", "--abbrev-ref", "HEAD").strip(), "main")
        self.assertFalse(os.path.exists(os.path.join(self.ws, "hook-ran")))
        self.assert_untouched()
        # Every command: git's and the executor's jobs (1 + 2 test ids, twice).
        kinds = [c["kind"] for c in t["commands"]]
        self.assertEqual(kinds.count("executor_job"), 6, kinds)
        # The tests ran in a copy of the worktree, made afresh per phase.
        self.assertEqual(kinds.count("copy"), 2, kinds)
        argvs = [" ".join(c["argv"]) for c in t["commands"] if c["kind"] == "git"]
        self.assertTrue(any(" worktree add " in a for a in argvs), argvs)
        job_argvs = [c["argv"] for c in t["commands"] if c["kind"] == "executor_job"]
        self.assertIn(TEST_COMMAND + ["test_add"], job_argvs)
        # Each of them an audit event, with the task.
        def events():
            st, _, ev = self.g.http("GET", "/kernels/audit/events?resource=task/%s&limit=1000"
                                    % t["id"])
            self.assertEqual(st, 200, ev)
            acts = [e["action"] for e in ev["events"]]
            n = len(t["commands"])
            return acts if acts.count("coding_agent.git") + acts.count("coding_agent.job") \
                + acts.count("coding_agent.copy") >= n \
                and "coding_agent.edit" in acts and "coding_agent.task" in acts else None
        acts = self.g.wait_for(events, timeout=scaled(10), message="the audit events")
        self.assertEqual(acts.count("coding_agent.job"), 6, acts)
        self.assertEqual(acts.count("coding_agent.copy"), 2, acts)
        # Listed; then deleted with its worktree and branch.
        st, _, lst = self.g.http("GET", "/coding-agent/tasks")
        self.assertEqual(st, 200, lst)
        self.assertIn(t["id"], [x["id"] for x in lst["tasks"]])
        st, _, d = self.g.http("DELETE", "/coding-agent/tasks/" + t["id"], timeout=30)
        self.assertEqual(st, 200, d)
        self.assertTrue(d["deleted"])
        self.assertFalse(os.path.exists(t["worktree"]))
        self.assertNotIn(t["branch"], git(self.repo, "branch", "--list", "grace/*"))
        st, _, _ = self.g.http("GET", "/coding-agent/tasks/" + t["id"])
        self.assertEqual(st, 404)
        self.assertFalse(os.path.exists(os.path.join(self.ws, ".grace-worktrees", ".runs",
                                                     t["id"])))
        self.assert_untouched()

    def test_the_tests_write_their_copy_and_nothing_else(self):
        # The test command builds where it runs (a copy of the worktree that
        # the jobs user owns) and what it did is in the results; then it
        # plants a .git, hooks, filters and a link: the kernel runs none of
        # them, its diff is the patch's alone, and its worktree is as the
        # edits left it.
        mark = os.path.join(self.ws, "pwned")
        root = os.geteuid() == 0
        script = BUILD_AND_ATTACK.replace("MARK", mark).replace("WORKTREE ", "" if root else ": ")
        t = self.run_task({"repo": "calc", "test_command": ["/bin/sh", "-c", script],
                           "patch": FIX})
        self.assertEqual(t["state"], "done", t)
        copies = [c for c in t["commands"] if c["kind"] == "copy"]
        self.assertEqual(len(copies), 2, t["commands"])
        runs_dir = os.path.join(self.ws, ".grace-worktrees", ".runs", t["id"])
        self.assertEqual(copies[0]["argv"], ["copy", t["worktree"], runs_dir])
        uid = os.geteuid()
        if root:
            # Jobs run as the executor's jobs user: the copy is handed to it.
            self.assertIsNotNone(copies[0]["owner"], copies[0])
            uid = copies[0]["owner"]["uid"]
            self.assertNotEqual(uid, 0)
            self.assertEqual(os.stat(runs_dir).st_uid, uid)
        else:
            self.assertIsNone(copies[0]["owner"], copies[0])
        for phase in ("tests_before", "tests_after"):
            out = t[phase]["runs"][0]["stdout_tail"]
            self.assertEqual(t[phase]["exit_code"], 0, t[phase])
            self.assertIn("built by %d" % uid, out)
            self.assertNotIn("WROTE-THE-WORKTREE", out)
        # The build's output is in the copy (the last phase's, kept until
        # DELETE), never in the worktree.
        with open(os.path.join(runs_dir, "build", "out.txt")) as f:
            self.assertEqual(f.read(), "built by %d\n" % uid)
        with open(os.path.join(runs_dir, ".git")) as f:  # the attack was made, there
            self.assertIn("evil.git", f.read())
        self.assertTrue(os.path.islink(os.path.join(runs_dir, "wt-link")))
        wt = t["worktree"]
        for planted in ("build", ".gitattributes", "evil.git", "wt-link"):
            self.assertFalse(os.path.lexists(os.path.join(wt, planted)), planted)
        with open(os.path.join(wt, ".git")) as f:
            self.assertTrue(f.read().startswith("gitdir: " + os.path.join(self.repo, ".git")))
        with open(os.path.join(wt, "calc.py")) as f:  # not removed through the link
            self.assertIn("return a + b", f.read())
        # The diff is the patch's, made by the kernel: calc.py only.
        files = [line.split(" b/")[-1] for line in t["diff"].splitlines()
                 if line.startswith("diff --git ")]
        self.assertEqual(files, ["calc.py"], t["diff"])
        self.assertFalse(os.path.exists(mark), "a program the job planted ran")
        self.assertFalse(os.path.exists(os.path.join(self.ws, "hook-ran")))
        self.assert_untouched()
        st, _, d = self.g.http("DELETE", "/coding-agent/tasks/" + t["id"], timeout=30)
        self.assertEqual(st, 200, d)
        self.assertFalse(os.path.lexists(runs_dir))
        self.assertFalse(os.path.exists(wt))

    def test_unified_diff(self):
        diff = ("--- a/calc.py\n+++ b/calc.py\n@@ -1,4 +1,4 @@\n def add(a, b):\n"
                "-    return a - b\n+    return a + b\n \n \n")
        t = self.run_task({"repo": os.path.join(self.ws, "calc"), "base": "main",
                           "test_command": TEST_COMMAND, "patch": diff})
        self.assertEqual(t["state"], "done", t)
        self.assertEqual(t["edits"][0]["format"], "unified_diff")
        self.assertFalse(t["tests_before"]["passed"])
        self.assertTrue(t["tests_after"]["passed"])
        self.assertTrue(t["resolved"])
        argvs = [" ".join(c["argv"]) for c in t["commands"] if c["kind"] == "git"]
        self.assertTrue(any(" apply --check " in a for a in argvs), argvs)
        # No hook or fsmonitor of the repository runs with git.
        self.assertTrue(all(" -c core.hooksPath=/dev/null " in a for a in argvs), argvs)
        self.assert_untouched()

    def test_patch_that_does_not_apply(self):
        bad = FIX + ("\ncalc.py\n<<<<<<< SEARCH\ndef div(a, b):\n=======\ndef div(a, b):\n"
                     "    return a / b\n>>>>>>> REPLACE\n")
        t = self.run_task({"repo": "calc", "test_command": TEST_COMMAND, "patch": bad})
        self.assertEqual(t["state"], "failed", t)
        self.assertIn("nothing was written", t["error"])
        ed = t["edits"][0]
        self.assertFalse(ed["applied_all"])
        self.assertEqual(len(ed["failed"]), 1, ed)
        f = ed["failed"][0]
        self.assertEqual(f["block"], 2)
        self.assertEqual(f["file"], "calc.py")
        self.assertEqual(f["why"], "not_found")
        self.assertEqual(f["lines"], [13, 18])
        # Block 1 applies alone, but nothing of the turn was written.
        with open(os.path.join(t["worktree"], "calc.py")) as f:
            self.assertEqual(f.read(), CALC)
        self.assertNotIn("tests_after", t)
        self.assertFalse(t["resolved"])
        # A unified diff that does not apply: git apply --check names the file.
        diff = ("--- a/calc.py\n+++ b/calc.py\n@@ -1,4 +1,4 @@\n def add(a, b):\n"
                "-    return a * b\n+    return a + b\n \n \n")
        t = self.run_task({"repo": "calc", "test_command": TEST_COMMAND, "patch": diff})
        self.assertEqual(t["state"], "failed", t)
        fl = t["edits"][0]["failed"]
        self.assertTrue(fl and fl[0].get("file") == "calc.py" and fl[0].get("file_line") == 1, fl)
        with open(os.path.join(t["worktree"], "calc.py")) as f:
            self.assertEqual(f.read(), CALC)
        self.assert_untouched()

    def test_paths_escaping_the_root(self):
        outside = tempfile.mkdtemp(prefix="grace-ca-out-")
        try:
            git(outside, "init", "-q")
            os.symlink(outside, os.path.join(self.ws, "link-out"))
            st, _, before = self.g.http("GET", "/coding-agent/tasks")
            for repo in ("../" + os.path.basename(outside), outside, "link-out", "calc/../..",
                         "/etc"):
                st, _, b = self.g.http("POST", "/coding-agent/tasks",
                                       {"repo": repo, "test_command": TEST_COMMAND, "patch": FIX})
                self.assertEqual(st, 403, (repo, b))
                self.assertEqual(b["error"]["code"], "forbidden")
            st, _, after = self.g.http("GET", "/coding-agent/tasks")
            self.assertEqual(len(after["tasks"]), len(before["tasks"]))
        finally:
            os.unlink(os.path.join(self.ws, "link-out"))
            shutil.rmtree(outside, ignore_errors=True)

    def test_bad_input(self):
        cases = [
            ({"repo": "calc", "test_command": TEST_COMMAND}, 400, "patch"),  # no model
            ({"repo": "calc", "test_command": ["python3", "x"], "patch": FIX}, 400, "absolute"),
            ({"repo": "calc", "test_command": TEST_COMMAND, "patch": FIX, "nope": 1}, 400,
             "nope"),
            ({"repo": "calc", "test_command": TEST_COMMAND, "patch": FIX, "max_turns": 0}, 400,
             "max_turns"),
            ({"repo": "nothere", "test_command": TEST_COMMAND, "patch": FIX}, 404, "nothere"),
            ({"test_command": TEST_COMMAND, "patch": FIX}, 400, "repo"),
        ]
        for body, want, word in cases:
            st, _, b = self.g.http("POST", "/coding-agent/tasks", body)
            self.assertEqual(st, want, (body, b))
            self.assertIn(word, b["error"]["message"], b)
        t = self.run_task({"repo": "calc", "base": "no-such-ref", "test_command": TEST_COMMAND,
                           "patch": FIX})
        self.assertEqual(t["state"], "failed")
        self.assertIn("base", t["error"])

    def test_executor_dir_is_for_kernels_under_its_root(self):
        # An admin through :8000 may not name a directory.
        st, _, b = self.g.http("POST", "/executor/jobs", {"argv": ["/bin/pwd"], "dir": self.repo})
        self.assertEqual(st, 403, b)
        self.assertEqual(b["error"]["field"], "dir")
        # A kernel may, under dir_root only.
        kern = {"X-Grace-Caller": "coding_agent"}
        st, _, b = self.g.kernel_http("executor", "POST", "/jobs",
                                      {"argv": ["/bin/pwd"], "dir": "/etc"}, headers=kern)
        self.assertEqual(st, 403, b)
        self.assertIn("dir_root", b["error"]["message"])
        st, _, j = self.g.kernel_http("executor", "POST", "/jobs",
                                      {"argv": ["/bin/pwd"], "dir": self.repo + "/."},
                                      headers=kern)
        self.assertEqual(st, 201, j)
        st, _, j = self.g.kernel_http("executor", "GET", "/jobs/%s?wait_ms=10000" % j["id"],
                                      headers=kern, timeout=20)
        self.assertEqual(j["state"], "succeeded", j)
        st, _, out = self.g.kernel_http("executor", "GET",
                                        "/jobs/%s/output?format=raw&stream=stdout" % j["id"],
                                        headers=kern)
        out = out if isinstance(out, str) else out.decode() if isinstance(out, bytes) else str(out)
        self.assertEqual(out.strip(), self.repo)
        # In bubblewrap's namespaces the directory is bound at the same path.
        st, _, j = self.g.kernel_http("executor", "POST", "/jobs",
                                      {"argv": ["/bin/cat", "calc.py"], "dir": self.repo,
                                       "sandbox": True}, headers=kern)
        self.assertEqual(st, 201, j)
        st, _, j = self.g.kernel_http("executor", "GET", "/jobs/%s?wait_ms=10000" % j["id"],
                                      headers=kern, timeout=20)
        self.assertEqual(j["state"], "succeeded", j)
        st, _, out = self.g.kernel_http("executor", "GET",
                                        "/jobs/%s/output?format=raw&stream=stdout" % j["id"],
                                        headers=kern)
        out = out.decode() if isinstance(out, bytes) else out
        self.assertEqual(out, CALC)
        self.assertTrue(os.path.isdir(self.repo))  # never removed by the executor
        self.assert_untouched()


class WithModel(Base):
    model = None

    @classmethod
    def setUpClass(cls):
        cls.model = ModelServer()
        try:
            super().setUpClass()
        except BaseException:
            cls.model.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.model.stop()

    @classmethod
    def make_server(cls):
        return server(cls.ws, {"model": {"base_url": cls.model.url, "timeout_ms": 10000}})

    def setUp(self):
        self.model.control(mode="ok", script=[])
        self.model.http("POST", "/_reset")

    def test_two_turns(self):
        wrong = FIX.replace("return a + b\n>>>", "return a * b\n>>>")
        right = ("calc.py\n<<<<<<< SEARCH\ndef add(a, b):\n    return a * b\n=======\n"
                 "def add(a, b):\n    return a + b\n>>>>>>> REPLACE\n")
        self.model.control(script=["I will fix it.\n\n" + wrong, right])
        t = self.run_task({"repo": "calc", "test_command": TEST_COMMAND, "max_turns": 3,
                           "instructions": "add() must add its arguments",
                           "fail_to_pass": ["test_add"], "pass_to_pass": ["test_mul"]})
        self.assertEqual(t["state"], "done", t)
        self.assertEqual(t["mode"], "model")
        self.assertEqual(t["turns"], 2, t)
        self.assertTrue(t["resolved"], t)
        self.assertEqual(len(t["edits"]), 2)
        self.assertTrue(all(e["source"] == "model" and e["applied_all"] for e in t["edits"]))
        self.assertFalse(t["turns_log"][0]["tests"]["test_add"])
        self.assertTrue(t["turns_log"][1]["tests"]["test_add"])
        self.assertIn("+    return a + b", t["diff"])
        reqs = self.model.requests()
        self.assertEqual(len(reqs), 2)
        first = reqs[0]["body"]["messages"]
        self.assertIn("SEARCH", first[0]["content"])  # the system prompt says the format
        self.assertIn("return a - b", first[1]["content"])  # the files
        self.assertIn("FAIL test_add", first[1]["content"])  # the tests before
        second = reqs[1]["body"]["messages"]
        self.assertEqual([m["role"] for m in second], ["system", "user", "assistant", "user"])
        self.assertIn("FAIL test_add", second[3]["content"])  # the failure fed back
        self.assert_untouched()

    def test_an_answer_without_blocks_is_told_and_retried(self):
        self.model.control(script=["I think the bug is in add().", FIX])
        t = self.run_task({"repo": "calc", "test_command": TEST_COMMAND,
                           "instructions": "fix add"})
        self.assertEqual(t["state"], "done", t)
        self.assertEqual(t["turns"], 2)
        self.assertTrue(t["resolved"])
        self.assertFalse(t["edits"][0]["applied_all"])
        self.assertIn("no search/replace block", t["edits"][0]["error"])
        second = self.model.requests()[1]["body"]["messages"]
        self.assertIn("no search/replace block", second[-1]["content"])

    def test_failing_model_degrades_to_the_patch(self):
        self.model.control(mode="fail")
        t = self.run_task({"repo": "calc", "test_command": TEST_COMMAND,
                           "instructions": "fix add", "patch": FIX})
        self.assertEqual(t["state"], "done", t)
        self.assertTrue(t["model_degraded"])
        self.assertTrue(any("the model failed" in n for n in t["notices"]), t["notices"])
        self.assertEqual(t["edits"][0]["source"], "patch")
        self.assertTrue(t["resolved"])
        st, _, text = self.g.http("GET", "/metrics", port=self.g.kernel_port("coding_agent"))
        self.assertEqual(st, 200)
        text = text.decode() if isinstance(text, bytes) else text
        line = [l for l in text.splitlines()
                if l.startswith("grace_coding_agent_model_failures_total")]
        self.assertTrue(line and int(line[0].split()[-1]) >= 1, line)
        # Without a patch, the task says why it cannot go on.
        t = self.run_task({"repo": "calc", "test_command": TEST_COMMAND, "instructions": "fix"})
        self.assertEqual(t["state"], "failed")
        self.assertIn("no patch", t["error"])


if __name__ == "__main__":
    unittest.main()
