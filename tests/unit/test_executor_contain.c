/* Unit tests of the executor's containment pieces (src/kernels/executor/):
 * reading the cgroup mounts of other kinds of machines, choosing the
 * mechanisms for every kind of host (exe_plan_select), the job spec, the
 * UTF-8 cutting of output, bubblewrap's command line, the seccomp filter,
 * and the shim itself: a real process tree killed on timeout and when
 * its executor goes away, and an exec failure reported. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kernels/executor/cgroup.h"
#include "kernels/executor/contain.h"
#include "kernels/executor/sandbox.h"
#include "kernels/executor/shim.h"
#include "kernels/executor/spec.h"
#include "kernels/executor/utf8.h"

/* ---- cgroup mounts */

static const char hybrid_mounts[] =
	"30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
	"31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
	"34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
	"38 30 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
	"39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
	"40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
static const char hybrid_self[] = "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/dfd0\n"
				  "1:cpu:/\n0::/\n";

static const char v2_mounts[] =
	"22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
	"29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 "
	"rw,nsdelegate,memory_recursiveprot\n";
static const char v2_self[] = "0::/system.slice/grace.service\n";

static const char v1_ns_mounts[] =
	"700 650 0:40 /docker/abc /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory\n"
	"701 650 0:41 /docker/abc /sys/fs/cgroup/pids ro,nosuid - cgroup cgroup rw,pids\n"
	"702 650 0:42 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro - cgroup cgroup rw,cpu,cpuacct\n";
static const char v1_ns_self[] = "11:memory:/docker/abc\n6:pids:/docker/abc/x\n3:cpu,cpuacct:/docker/abc\n";

static void test_mounts(void **state)
{
	(void)state;
	exe_cg_mounts m;
	exe_cg_self s;
	char path[EXE_CG_PATH_MAX];
	exe_cg_mounts_parse(hybrid_mounts, &m);
	exe_cg_self_parse(hybrid_self, &s);
	assert_string_equal(m.v2, "/sys/fs/cgroup/unified");
	assert_string_equal(m.memory, "/sys/fs/cgroup/memory");
	assert_string_equal(m.pids, "/sys/fs/cgroup/pids");
	assert_true(s.has_v2);
	assert_string_equal(s.v2, "/");
	assert_string_equal(s.memory, "/process_api/dfd0");
	assert_true(exe_cg_join(m.v2, m.v2_root, s.v2, path, sizeof path));
	assert_string_equal(path, "/sys/fs/cgroup/unified");
	assert_true(exe_cg_join(m.memory, m.memory_root, s.memory, path, sizeof path));
	assert_string_equal(path, "/sys/fs/cgroup/memory/process_api/dfd0");

	exe_cg_mounts_parse(v2_mounts, &m);
	exe_cg_self_parse(v2_self, &s);
	assert_string_equal(m.v2, "/sys/fs/cgroup");
	assert_string_equal(m.memory, "");
	assert_true(exe_cg_join(m.v2, m.v2_root, s.v2, path, sizeof path));
	assert_string_equal(path, "/sys/fs/cgroup/system.slice/grace.service");

	/* A container's view: the mount is of our own subtree. */
	exe_cg_mounts_parse(v1_ns_mounts, &m);
	exe_cg_self_parse(v1_ns_self, &s);
	assert_string_equal(m.v2, "");
	assert_false(s.has_v2);
	assert_string_equal(m.memory_root, "/docker/abc");
	assert_true(exe_cg_join(m.memory, m.memory_root, s.memory, path, sizeof path));
	assert_string_equal(path, "/sys/fs/cgroup/memory");
	assert_true(exe_cg_join(m.pids, m.pids_root, s.pids, path, sizeof path));
	assert_string_equal(path, "/sys/fs/cgroup/pids/x");
	assert_false(exe_cg_join(m.pids, m.pids_root, "/elsewhere", path, sizeof path));

	exe_cg_mounts_parse("", &m);
	exe_cg_self_parse("", &s);
	assert_string_equal(m.v2, "");
	assert_false(s.has_v2);
}

/* A delegated group the executor may leave for a leaf of its own: only
 * when it is the group's one process. */
static void test_sole_process(void **state)
{
	(void)state;
	assert_true(exe_cg_sole_process("4242\n", 4242));
	assert_true(exe_cg_sole_process("4242", 4242));
	assert_false(exe_cg_sole_process("4242\n4243\n", 4242)); /* grace serve's group */
	assert_false(exe_cg_sole_process("17\n4242\n", 4242));
	assert_false(exe_cg_sole_process("17\n", 4242));
	assert_false(exe_cg_sole_process("", 4242)); /* not ours at all */
	assert_false(exe_cg_sole_process("x\n", 4242));
}

/* ---- choosing the mechanisms */

static exe_spec spec_of(const char *json)
{
	json_t *j = json_loads(json, 0, NULL);
	assert_non_null(j);
	grace_executor cfg = { .timeout_default_ms = 60000, .timeout_max_ms = 3600000,
			       .kill_grace_ms = 2000, .output_default_bytes = 1 << 20,
			       .output_max_bytes = 16 << 20 };
	exe_spec s;
	char field[EXE_FIELD_MAX];
	sdk_err e = { "" };
	if (exe_spec_parse(j, &cfg, &s, field, &e) < 0)
		fail_msg("%s: %s", json, e.msg);
	json_decref(j);
	return s;
}

static exe_host host_of(bool root, bool user, bool v2, bool v2_ctl, bool v1)
{
	exe_host h;
	memset(&h, 0, sizeof h);
	h.root = root;
	h.user_found = user;
	h.uid = root ? (user ? 994 : 0) : 1000;
	h.gid = h.uid;
	snprintf(h.user, sizeof h.user, "%s", root ? "grace-jobs" : "me");
	h.cg.v2 = v2;
	h.cg.v2_kill = v2;
	h.cg.v2_memory = h.cg.v2_pids = v2 && v2_ctl;
	h.cg.v1_memory = h.cg.v1_pids = v1;
	h.seccomp = true;
	h.seccomp_refused = 50;
	return h;
}

static void test_plan_matrix(void **state)
{
	(void)state;
	exe_spec s = spec_of("{\"argv\":[\"/bin/true\"],\"limits\":{\"memory_bytes\":67108864,"
			     "\"pids\":20,\"cpu_s\":5}}");
	exe_plan p;
	/* Pure v2, delegated. */
	exe_host h = host_of(true, true, true, true, false);
	exe_plan_select(&h, &s, &p);
	assert_true(p.cg_v2 && p.v2_memory && p.v2_pids && p.cpu_watch && p.drop);
	assert_false(p.v1_memory || p.v1_pids || p.rl_as || p.rl_nproc);
	assert_true(p.rl_cpu && p.rl_nofile && p.seccomp_inproc);
	assert_int_equal(p.uid, 994);
	assert_string_equal(p.refuse, "");
	/* This machine: v2 without controllers beside v1 memory and pids. */
	h = host_of(true, true, true, false, true);
	exe_plan_select(&h, &s, &p);
	assert_true(p.cg_v2 && p.v1_memory && p.v1_pids);
	assert_false(p.v2_memory || p.v2_pids || p.rl_as || p.rl_nproc);
	/* v1 only: the pids group also tracks the tree. */
	h = host_of(true, true, false, false, true);
	exe_plan_select(&h, &s, &p);
	assert_true(!p.cg_v2 && p.v1_memory && p.v1_pids && !p.cpu_watch);
	exe_spec bare = spec_of("{\"argv\":[\"/bin/true\"],\"limits\":{\"pids\":null}}");
	exe_plan_select(&h, &bare, &p);
	assert_true(p.v1_pids); /* a tracking group, even without a limit asked */
	/* Nothing: rlimits; RLIMIT_NPROC only for a user that is not root. */
	h = host_of(true, true, false, false, false);
	exe_plan_select(&h, &s, &p);
	assert_true(p.rl_as && p.rl_nproc && p.drop && !p.cg_v2 && !p.v1_pids);
	json_t *rec = exe_plan_json(&p, &s, &h);
	assert_string_equal(json_string_value(json_object_get(rec, "tracking")),
			    "process group and subreaper");
	assert_string_equal(json_string_value(json_object_get(rec, "pids")), "RLIMIT_NPROC (per user)");
	assert_string_equal(json_string_value(json_object_get(rec, "memory")),
			    "RLIMIT_AS (address space, per process)");
	json_decref(rec);
	h = host_of(false, false, false, false, false);
	exe_plan_select(&h, &s, &p);
	assert_true(p.rl_as && p.rl_nproc && !p.drop);
	assert_string_equal(p.refuse, "");
	/* Root with no user to switch to: refused. */
	h = host_of(true, false, false, false, false);
	exe_plan_select(&h, &s, &p);
	assert_non_null(strstr(p.refuse, "unprivileged user"));
	/* A sandbox needs bubblewrap; with it, bwrap loads the filter. */
	exe_spec sb = spec_of("{\"argv\":[\"/bin/true\"],\"sandbox\":{\"network\":true}}");
	assert_true(sb.sandbox && sb.net && sb.readonly_root);
	h = host_of(true, true, true, false, true);
	exe_plan_select(&h, &sb, &p);
	assert_true(!strncmp(p.refuse, "sandbox", 7));
	snprintf(h.bwrap, sizeof h.bwrap, "/usr/bin/bwrap");
	exe_plan_select(&h, &sb, &p);
	assert_true(p.bwrap && p.seccomp_bwrap && !p.seccomp_inproc);
	assert_string_equal(p.refuse, "");
	/* The filter asked for and missing: refused; not asked: none. */
	h.seccomp = false;
	exe_plan_select(&h, &s, &p);
	assert_true(!strncmp(p.refuse, "seccomp", 7));
	exe_spec nosec = spec_of("{\"argv\":[\"/bin/true\"],\"seccomp\":false}");
	exe_plan_select(&h, &nosec, &p);
	assert_true(!p.seccomp_inproc && !p.seccomp_bwrap);
	assert_string_equal(p.refuse, "");
	exe_spec_free(&s);
	exe_spec_free(&bare);
	exe_spec_free(&sb);
	exe_spec_free(&nosec);
}

/* ---- the job spec */

static void test_spec(void **state)
{
	(void)state;
	exe_spec s = spec_of("{\"shell\":\"echo hi\"}");
	const char **argv;
	size_t n;
	assert_int_equal(exe_spec_argv(&s, &argv, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(argv[0], "/bin/sh");
	assert_string_equal(argv[1], "-c");
	assert_string_equal(argv[2], "echo hi");
	assert_null(argv[3]);
	free(argv);
	assert_int_equal(s.limits.pids, EXE_PIDS_DEFAULT);
	assert_int_equal(s.limits.nofile, EXE_NOFILE_DEFAULT);
	assert_int_equal(s.limits.timeout_ms, 60000);
	assert_int_equal(s.limits.kill_grace_ms, 2000);
	assert_true(s.seccomp);
	assert_false(s.sandbox);
	exe_spec_free(&s);
	assert_true(exe_env_name_allowed("JOB_X"));
	assert_true(exe_env_name_allowed("path"));
	assert_false(exe_env_name_allowed("LD_PRELOAD"));
	assert_false(exe_env_name_allowed("LD_LIBRARY_PATH"));
	assert_false(exe_env_name_allowed("BASH_FUNC_x%%"));
	assert_false(exe_env_name_allowed("GCONV_PATH"));
	assert_false(exe_env_name_allowed("1X"));
	assert_false(exe_env_name_allowed("A=B"));
	assert_false(exe_env_name_allowed(""));
	grace_executor cfg = { .timeout_default_ms = 1000, .timeout_max_ms = 5000,
			       .output_max_bytes = 100 };
	static const struct {
		const char *json, *field;
	} bad[] = {
		{ "{\"argv\":[\"true\"]}", "argv[0]" },
		{ "{\"argv\":[\"/bin/true\"],\"timeout_ms\":6000}", "timeout_ms" },
		{ "{\"argv\":[\"/bin/true\"],\"limits\":{\"output_bytes\":101}}", "limits.output_bytes" },
		{ "{\"argv\":[\"/bin/true\"],\"stdin\":5}", "stdin" },
		{ "{\"argv\":[\"/bin/true\"],\"idempotency_key\":\"\"}", "idempotency_key" },
		{ "{}", "argv" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		json_t *j = json_loads(bad[i].json, 0, NULL);
		char field[EXE_FIELD_MAX];
		sdk_err e = { "" };
		assert_int_equal(exe_spec_parse(j, &cfg, &s, field, &e), SDK_EINVAL);
		if (strcmp(field, bad[i].field))
			fail_msg("%s: field %s, want %s (%s)", bad[i].json, field, bad[i].field, e.msg);
		json_decref(j);
	}
}

/* ---- output text */

static void test_utf8(void **state)
{
	(void)state;
	const char *s = "a\xc3\xa9"; /* a, e-acute */
	assert_int_equal(exe_utf8_complete(s, 3), 3);
	assert_int_equal(exe_utf8_complete(s, 2), 1); /* the cut would split the e */
	const char *euro = "\xe2\x82\xac";
	assert_int_equal(exe_utf8_complete(euro, 2), 0);
	assert_int_equal(exe_utf8_complete(euro, 1), 0);
	assert_int_equal(exe_utf8_complete(euro, 3), 3);
	assert_int_equal(exe_utf8_complete("abc\xff", 4), 4); /* not UTF-8: no waiting for it */
	json_t *j = exe_utf8_json("ok\xff\xc3(\0z", 7);
	assert_string_equal(json_string_value(j), "ok\xef\xbf\xbd\xef\xbf\xbd( z");
	json_decref(j);
	j = exe_utf8_json("\xed\xa0\x80", 3); /* a surrogate: not UTF-8 */
	assert_string_equal(json_string_value(j), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	json_decref(j);
}

/* ---- bubblewrap and seccomp */

static void test_bwrap_args(void **state)
{
	(void)state;
	const char *a[EXE_BWRAP_ARGS];
	int n = exe_bwrap_args("/usr/bin/bwrap", "/tmp/w", false, true, true, a);
	assert_true(n > 10 && n < EXE_BWRAP_ARGS);
	assert_string_equal(a[0], "/usr/bin/bwrap");
	assert_string_equal(a[n - 1], "--");
	bool net = false, ro = false, secc = false, bind = false;
	for (int i = 0; i < n; i++) {
		net |= !strcmp(a[i], "--unshare-net");
		ro |= !strcmp(a[i], "--ro-bind");
		secc |= !strcmp(a[i], "--seccomp") && !strcmp(a[i + 1], "3");
		bind |= !strcmp(a[i], "--bind") && !strcmp(a[i + 1], "/tmp/w");
	}
	assert_true(net && ro && secc && bind);
	n = exe_bwrap_args("/usr/bin/bwrap", "/tmp/w", true, false, false, a);
	for (int i = 0; i < n; i++) {
		assert_string_not_equal(a[i], "--unshare-net");
		assert_string_not_equal(a[i], "--ro-bind");
		assert_string_not_equal(a[i], "--seccomp");
	}
}

static void test_seccomp_builds(void **state)
{
	(void)state;
	exe_seccomp s;
	sdk_err why;
	assert_int_equal(exe_seccomp_build(&s, &why), 0);
	assert_true(s.refused > 40);
	assert_true(s.prog.len > 10);
	assert_true(s.memfd >= 0);
	exe_seccomp_free(&s);
}

/* ---- the shim */

static exe_shim_msg read_msg(const exe_shim *sh, int timeout_ms)
{
	exe_shim_msg m;
	size_t got = 0;
	while (got < sizeof m) {
		struct pollfd p = { .fd = sh->status_fd, .events = POLLIN };
		if (poll(&p, 1, timeout_ms) <= 0)
			fail_msg("no report from the shim within %d ms", timeout_ms);
		ssize_t r = read(sh->status_fd, (char *)&m + got, sizeof m - got);
		if (r < 0 && errno == EAGAIN)
			continue;
		if (r <= 0)
			fail_msg("the shim closed its report pipe");
		got += (size_t)r;
	}
	return m;
}

static size_t read_all(int fd, char *buf, size_t cap, int timeout_ms)
{
	size_t got = 0;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, timeout_ms) <= 0)
			break;
		ssize_t r = read(fd, buf + got, cap - 1 - got);
		if (r < 0 && errno == EAGAIN)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	buf[got] = '\0';
	return got;
}

static bool gone(pid_t pid)
{
	return kill(pid, 0) < 0 && errno == ESRCH;
}

static exe_shim spawn(const char *script, uint64_t timeout_ms)
{
	static const char *envp[] = { "PATH=/usr/bin:/bin", NULL };
	static const char *argv[4] = { "/bin/sh", "-c", NULL, NULL };
	argv[2] = script;
	FILE *null = fopen("/dev/null", "re");
	exe_launch l = { .argv = argv, .envp = envp, .workdir = "/", .stdin_fd = fileno(null),
			 .seccomp_memfd = -1, .timeout_ms = timeout_ms, .kill_grace_ms = 100 };
	exe_shim sh;
	sdk_err why;
	if (exe_shim_spawn(&l, &sh, &why) < 0)
		fail_msg("spawn: %s", why.msg);
	fclose(null);
	return sh;
}

static void close_shim(exe_shim *sh)
{
	close(sh->status_fd);
	if (sh->ctl_fd >= 0)
		close(sh->ctl_fd);
	close(sh->out_fd);
	close(sh->err_fd);
	int st;
	assert_int_equal(waitpid(sh->pid, &st, 0), sh->pid);
}

static void test_shim_kills_the_tree_on_timeout(void **state)
{
	(void)state;
	exe_shim sh = spawn("setsid sleep 100 & echo $!; (sleep 100 & echo $!); "
			    "sh -c 'trap \"\" TERM; exec sleep 100' & echo $!; wait", 500);
	exe_shim_msg m = read_msg(&sh, 5000);
	assert_int_equal(m.type, EXE_MSG_STARTED);
	assert_true(m.pid > 1);
	m = read_msg(&sh, 10000);
	assert_int_equal(m.type, EXE_MSG_EXITED);
	assert_true(m.timed_out);
	assert_int_equal(m.leftover, 0);
	assert_true(m.end_ns - m.start_ns >= 500000000LL);
	char out[256];
	read_all(sh.out_fd, out, sizeof out, 2000);
	int pids[3], n = 0;
	for (char *p = out; n < 3 && *p;) {
		char *end;
		long v = strtol(p, &end, 10);
		if (end == p)
			break;
		pids[n++] = (int)v;
		p = end;
	}
	assert_int_equal(n, 3);
	for (int i = 0; i < 3; i++)
		if (!gone(pids[i]))
			fail_msg("process %d outlived the job", pids[i]);
	close_shim(&sh);
}

static void test_shim_kills_the_tree_when_the_executor_goes(void **state)
{
	(void)state;
	exe_shim sh = spawn("setsid sleep 100 & echo $!; wait", 60000);
	assert_int_equal(read_msg(&sh, 5000).type, EXE_MSG_STARTED);
	char out[64] = "";
	size_t got = 0;
	for (int i = 0; i < 100 && !strchr(out, '\n'); i++) {
		struct pollfd p = { .fd = sh.out_fd, .events = POLLIN };
		poll(&p, 1, 100);
		ssize_t r = read(sh.out_fd, out + got, sizeof out - 1 - got);
		if (r > 0)
			got += (size_t)r;
		out[got] = '\0';
	}
	int daemon = atoi(out);
	assert_true(daemon > 1);
	assert_false(gone(daemon));
	close(sh.ctl_fd); /* as when the executor dies */
	sh.ctl_fd = -1;
	int st;
	assert_int_equal(waitpid(sh.pid, &st, 0), sh.pid);
	assert_true(gone(daemon));
	close(sh.status_fd);
	close(sh.out_fd);
	close(sh.err_fd);
}

static void test_shim_reports_an_exec_failure(void **state)
{
	(void)state;
	static const char *envp[] = { NULL };
	static const char *argv[] = { "/nonexistent/program", NULL };
	FILE *null = fopen("/dev/null", "re");
	exe_launch l = { .argv = argv, .envp = envp, .workdir = "/", .stdin_fd = fileno(null),
			 .seccomp_memfd = -1, .timeout_ms = 1000 };
	exe_shim sh;
	sdk_err why;
	assert_int_equal(exe_shim_spawn(&l, &sh, &why), 0);
	fclose(null);
	exe_shim_msg m = read_msg(&sh, 5000);
	assert_int_equal(m.type, EXE_MSG_EXEC_FAILED);
	assert_int_equal(m.err, ENOENT);
	assert_int_equal(m.stage, EXE_STAGE_EXEC);
	assert_string_equal(exe_stage_name(m.stage), "exec");
	close_shim(&sh);
}

static void test_shim_main_exit_kills_what_it_left(void **state)
{
	(void)state;
	exe_shim sh = spawn("setsid sleep 100 & echo $!; exit 7", 60000);
	assert_int_equal(read_msg(&sh, 5000).type, EXE_MSG_STARTED);
	exe_shim_msg m = read_msg(&sh, 10000);
	assert_int_equal(m.type, EXE_MSG_EXITED);
	assert_true(WIFEXITED(m.wait_status));
	assert_int_equal(WEXITSTATUS(m.wait_status), 7);
	assert_false(m.timed_out);
	assert_true(m.stragglers >= 1);
	char out[64];
	read_all(sh.out_fd, out, sizeof out, 2000);
	assert_true(gone(atoi(out)));
	close_shim(&sh);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mounts),
		cmocka_unit_test(test_sole_process),
		cmocka_unit_test(test_plan_matrix),
		cmocka_unit_test(test_spec),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_bwrap_args),
		cmocka_unit_test(test_seccomp_builds),
		cmocka_unit_test(test_shim_kills_the_tree_on_timeout),
		cmocka_unit_test(test_shim_kills_the_tree_when_the_executor_goes),
		cmocka_unit_test(test_shim_reports_an_exec_failure),
		cmocka_unit_test(test_shim_main_exit_kills_what_it_left),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
