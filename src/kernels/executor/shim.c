#include "kernels/executor/shim.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TICK_MS 100        /* the CPU watch, and a bound on any wait */
#define KILL_ROUND_NS 5000000L
#define KILL_ROUNDS 1000   /* 5 s for a tree to go, then report what stays */
#define WALK_MAX 16384     /* processes signalled per pass of the tree walk */

static const char *const stage_names[] = { "", "cgroup", "rlimit", "descriptors", "chdir",
					   "user", "seccomp", "exec", "fork" };

const char *exe_stage_name(int stage)
{
	return stage > 0 && stage <= EXE_STAGE_FORK ? stage_names[stage] : "?";
}

/* ---- async-signal-safe helpers (used between fork and _exit) */

static char *utoa(char *out, unsigned long v)
{
	char tmp[24];
	int n = 0;
	do
		tmp[n++] = (char)('0' + v % 10);
	while ((v /= 10));
	while (n)
		*out++ = tmp[--n];
	*out = '\0';
	return out;
}

static int64_t mono_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void nap(long ns)
{
	struct timespec t = { 0, ns };
	nanosleep(&t, NULL);
}

static void write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

/* Closes every descriptor from `from` up but those in keep[] (sorted). */
static void close_except(int from, const int *keep, int n)
{
	int lo = from;
	for (int i = 0; i <= n; i++) {
		int hi = i < n ? keep[i] - 1 : INT32_MAX;
		if (hi >= lo) {
			if (syscall(SYS_close_range, (unsigned)lo, (unsigned)hi, 0) < 0) {
				int top = hi > 65535 ? 65535 : hi;
				for (int fd = lo; fd <= top; fd++)
					close(fd);
			}
		}
		if (i < n)
			lo = keep[i] + 1;
	}
}

static void sort_fds(int *a, int n)
{
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && a[j - 1] > a[j]; j--) {
			int t = a[j];
			a[j] = a[j - 1];
			a[j - 1] = t;
		}
}

/* Calls fn(pid, arg) for each number in the file (a cgroup.procs or a
 * /proc children list), read in pieces; returns how many. */
static int each_pid(const char *path, void (*fn)(pid_t, void *), void *arg)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	char buf[4096];
	long cur = -1;
	int n = 0;
	for (;;) {
		ssize_t r = read(fd, buf, sizeof buf);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		for (ssize_t i = 0; i < r; i++) {
			if (buf[i] >= '0' && buf[i] <= '9') {
				cur = (cur < 0 ? 0 : cur * 10) + (buf[i] - '0');
			} else if (cur >= 0) {
				fn((pid_t)cur, arg);
				n++;
				cur = -1;
			}
		}
	}
	if (cur >= 0) {
		fn((pid_t)cur, arg);
		n++;
	}
	close(fd);
	return n;
}

struct walk {
	pid_t stack[WALK_MAX];
	int top;
	int sig;
	int count;
};

static struct walk walk; /* the shim's own copy (it is a process of its own) */

static void push(pid_t pid, void *arg)
{
	(void)arg;
	if (pid > 1 && walk.top < WALK_MAX)
		walk.stack[walk.top++] = pid;
}

static void send_one(pid_t pid, void *arg)
{
	int sig = *(int *)arg;
	if (pid > 1)
		kill(pid, sig);
}

static void children_path(char *out, pid_t pid)
{
	/* /proc/PID/task/PID/children: the children of its main thread. */
	char *p = out;
	memcpy(p, "/proc/", 6);
	p = utoa(p + 6, (unsigned long)pid);
	memcpy(p, "/task/", 6);
	p = utoa(p + 6, (unsigned long)pid);
	memcpy(p, "/children", 10);
}

/* Signals the whole tree: the cgroups' processes, the job's group, and
 * every descendant of the shim (orphans come to it: it is their reaper).
 * Returns how many processes were signalled. */
static int tree_signal(const exe_launch *l, pid_t pgid, int sig)
{
	int n = 0;
	if (sig == SIGKILL && l->cg_kill) {
		int fd = open(l->cg_kill, O_WRONLY | O_CLOEXEC);
		if (fd >= 0) {
			write_all(fd, "1", 1);
			close(fd);
		}
	}
	for (int i = 0; l->cg_procs[i]; i++)
		n += each_pid(l->cg_procs[i], send_one, &sig);
	if (pgid > 0)
		kill(-pgid, sig);
	char path[64];
	walk.top = 0;
	children_path(path, getpid());
	each_pid(path, push, NULL);
	while (walk.top > 0) {
		pid_t p = walk.stack[--walk.top];
		kill(p, sig);
		n++;
		children_path(path, p);
		each_pid(path, push, NULL);
	}
	return n;
}

/* Reaps what has ended; sets *main_status when the main process did.
 * Returns -1 when the shim has no child left at all. */
static int reap(pid_t main_pid, int *main_status, bool *main_done)
{
	for (;;) {
		int st;
		pid_t p = waitpid(-1, &st, WNOHANG);
		if (p < 0)
			return errno == ECHILD ? -1 : 0;
		if (p == 0)
			return 0;
		if (p == main_pid && !*main_done) {
			*main_status = st;
			*main_done = true;
		}
	}
}

static bool cgroups_empty(const exe_launch *l)
{
	int zero = 0;
	for (int i = 0; l->cg_procs[i]; i++)
		if (each_pid(l->cg_procs[i], send_one, &zero)) /* signal 0: only counts */
			return false;
	return true;
}

/* SIGKILL until nothing is left; returns how many would not go. */
static uint32_t kill_all(const exe_launch *l, pid_t pgid, pid_t main_pid, int *main_status,
			 bool *main_done)
{
	int left = 0;
	for (int round = 0; round < KILL_ROUNDS; round++) {
		left = tree_signal(l, pgid, SIGKILL);
		if (reap(main_pid, main_status, main_done) < 0 && cgroups_empty(l))
			return 0;
		nap(KILL_ROUND_NS);
	}
	return (uint32_t)left;
}

/* The tree's CPU time from cpu.stat ("usage_usec N"), or -1. */
static int64_t cpu_usec(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	char buf[512];
	ssize_t r = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (r <= 0)
		return -1;
	buf[r] = '\0';
	static const char key[] = "usage_usec ";
	for (char *p = buf; p && *p;) {
		if (!strncmp(p, key, sizeof key - 1)) {
			int64_t v = 0;
			for (p += sizeof key - 1; *p >= '0' && *p <= '9'; p++)
				v = v * 10 + (*p - '0');
			return v;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return -1;
}

/* ---- the job's child: from fork to exec */

struct exec_failure {
	int32_t err, stage;
};

static void __attribute__((noreturn)) child_fail(int fd, int stage)
{
	struct exec_failure f = { errno, stage };
	write_all(fd, &f, sizeof f);
	_exit(127);
}

static void __attribute__((noreturn))
job_child(const exe_launch *l, int fail_fd, int out_w, int err_w)
{
	setpgid(0, 0);
	/* Into the job's groups first, so its limits hold from the start. */
	char pid_text[24];
	utoa(pid_text, (unsigned long)getpid());
	for (int i = 0; l->cg_join[i]; i++) {
		int fd = open(l->cg_join[i], O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			child_fail(fail_fd, EXE_STAGE_CGROUP);
		ssize_t w = write(fd, pid_text, strlen(pid_text));
		int e = errno;
		close(fd);
		if (w < 0) {
			errno = e;
			child_fail(fail_fd, EXE_STAGE_CGROUP);
		}
	}
	for (int i = 0; i < l->n_rlimits; i++)
		if (setrlimit((__rlimit_resource_t)l->rlimits[i].resource, &l->rlimits[i].lim) < 0)
			child_fail(fail_fd, EXE_STAGE_RLIMIT);
	int secc = -1;
	if (l->seccomp_memfd >= 0) {
		/* A description of its own: the offset is not shared with other jobs. */
		secc = open(l->seccomp_reopen, O_RDONLY | O_CLOEXEC);
		if (secc < 0)
			child_fail(fail_fd, EXE_STAGE_SECCOMP);
	}
	/* fd 0-2 (and 3: the filter for bwrap); fail_fd stays until exec. */
	int moved = fcntl(fail_fd, F_DUPFD_CLOEXEC, 10);
	if (moved < 0 || dup2(l->stdin_fd, 0) < 0 || dup2(out_w, 1) < 0 || dup2(err_w, 2) < 0)
		child_fail(fail_fd, EXE_STAGE_FDS);
	fail_fd = moved;
	if (secc >= 0 && (secc == 3 ? fcntl(3, F_SETFD, 0) : dup2(secc, 3)) < 0)
		child_fail(fail_fd, EXE_STAGE_FDS);
	int keep[] = { fail_fd };
	close_except(secc >= 0 ? 4 : 3, keep, 1);
	if (chdir(l->workdir) < 0)
		child_fail(fail_fd, EXE_STAGE_CHDIR);
	if (l->drop) {
		if (syscall(SYS_setgroups, 0, NULL) < 0 ||
		    syscall(SYS_setresgid, l->gid, l->gid, l->gid) < 0 ||
		    syscall(SYS_setresuid, l->uid, l->uid, l->uid) < 0)
			child_fail(fail_fd, EXE_STAGE_USER);
	}
	if (l->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		child_fail(fail_fd, EXE_STAGE_USER);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	if (l->seccomp_prog &&
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, l->seccomp_prog, 0, 0) < 0)
		child_fail(fail_fd, EXE_STAGE_SECCOMP);
	execve(l->argv[0], (char *const *)l->argv, (char *const *)l->envp);
	child_fail(fail_fd, EXE_STAGE_EXEC);
}

/* ---- the shim */

static void on_sigchld(int sig)
{
	(void)sig; /* only to interrupt poll() */
}

static void send_msg(int fd, exe_shim_msg *m)
{
	m->end_ns = mono_ns();
	write_all(fd, m, sizeof *m);
}

static void finish(const exe_launch *l, int status_w, exe_shim_msg *m, pid_t pgid,
		   pid_t main_pid, int *main_status, bool *main_done)
{
	m->leftover = kill_all(l, pgid, main_pid, main_status, main_done);
	struct rusage ru;
	if (getrusage(RUSAGE_CHILDREN, &ru) == 0) {
		m->user_usec = (int64_t)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec;
		m->sys_usec = (int64_t)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec;
		m->maxrss_kb = ru.ru_maxrss;
	}
	m->wait_status = *main_status;
	send_msg(status_w, m);
	_exit(0);
}

static void __attribute__((noreturn))
shim_main(const exe_launch *l, int status_w, int ctl_r, int out_w, int err_w)
{
	/* The executor's handlers (libevent's, writing to descriptors closed
	 * below) must not run here. */
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++)
		sigaction(sig, &sa, NULL);
	setsid();
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	sa.sa_handler = on_sigchld;
	sigaction(SIGCHLD, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* Nothing of the executor's stays open here (its listening socket, its
	 * database, other jobs' pipes): only ours. */
	int keep[6] = { status_w, ctl_r, out_w, err_w, l->stdin_fd, l->seccomp_memfd };
	int nkeep = l->seccomp_memfd >= 0 ? 6 : 5;
	sort_fds(keep, nkeep);
	close_except(3, keep, nkeep);

	exe_shim_msg m;
	memset(&m, 0, sizeof m);
	m.start_ns = mono_ns();
	int fail[2];
	if (pipe2(fail, O_CLOEXEC) < 0) {
		m.type = EXE_MSG_EXEC_FAILED;
		m.err = errno;
		m.stage = EXE_STAGE_FORK;
		send_msg(status_w, &m);
		_exit(0);
	}
	pid_t pid = fork();
	if (pid == 0) {
		close(fail[0]);
		close(status_w);
		close(ctl_r);
		job_child(l, fail[1], out_w, err_w);
	}
	int fork_errno = errno;
	close(fail[1]);
	close(out_w);
	close(err_w);
	close(l->stdin_fd);
	if (l->seccomp_memfd >= 0)
		close(l->seccomp_memfd);
	int main_status = 0;
	bool main_done = false;
	if (pid < 0) {
		m.type = EXE_MSG_EXEC_FAILED;
		m.err = fork_errno;
		m.stage = EXE_STAGE_FORK;
		send_msg(status_w, &m);
		_exit(0);
	}
	setpgid(pid, pid); /* both sides, so -pid works whoever runs first */
	struct exec_failure f;
	ssize_t r;
	do
		r = read(fail[0], &f, sizeof f);
	while (r < 0 && errno == EINTR);
	close(fail[0]);
	if (r == (ssize_t)sizeof f) {
		m.type = EXE_MSG_EXEC_FAILED;
		m.err = f.err;
		m.stage = f.stage;
		kill_all(l, pid, pid, &main_status, &main_done);
		send_msg(status_w, &m);
		_exit(0);
	}
	m.type = EXE_MSG_STARTED;
	m.pid = pid;
	send_msg(status_w, &m);

	m.type = EXE_MSG_EXITED;
	int64_t start = mono_ns();
	int64_t term_at = start + (int64_t)l->timeout_ms * 1000000;
	int64_t kill_at = INT64_MAX;
	for (;;) {
		if (reap(pid, &main_status, &main_done) < 0 || main_done) {
			/* The main process ended: what it left goes too. */
			int zero = 0;
			m.stragglers = (uint32_t)(l->cg_procs[0] ? each_pid(l->cg_procs[0], send_one, &zero)
							       : tree_signal(l, 0, 0));
			finish(l, status_w, &m, pid, pid, &main_status, &main_done);
		}
		int64_t now = mono_ns();
		if (now >= kill_at) {
			m.last_signal = SIGKILL;
			finish(l, status_w, &m, pid, pid, &main_status, &main_done);
		}
		if (now >= term_at && !m.timed_out && !m.cancelled) {
			m.timed_out = 1;
			m.last_signal = SIGTERM;
			tree_signal(l, pid, SIGTERM);
			kill_at = now + (int64_t)l->kill_grace_ms * 1000000;
			continue;
		}
		if (l->cpu_limit_usec && l->cg_cpu_stat) {
			int64_t used = cpu_usec(l->cg_cpu_stat);
			if (used >= 0 && (uint64_t)used >= l->cpu_limit_usec) {
				m.cpu_exceeded = 1;
				m.last_signal = SIGKILL;
				finish(l, status_w, &m, pid, pid, &main_status, &main_done);
			}
		}
		int64_t next = kill_at < term_at ? kill_at : term_at;
		if (m.timed_out || m.cancelled)
			next = kill_at;
		int64_t wait_ms = (next - now) / 1000000 + 1;
		if (wait_ms > TICK_MS)
			wait_ms = TICK_MS;
		struct pollfd p = { .fd = ctl_r, .events = POLLIN };
		int pr = poll(&p, 1, (int)wait_ms);
		if (pr > 0) {
			char c = 0;
			ssize_t n = read(ctl_r, &c, 1);
			if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
				/* The executor is gone: nobody will read a report. */
				kill_all(l, pid, pid, &main_status, &main_done);
				_exit(0);
			}
			if (n == 1 && c == EXE_CTL_KILL) {
				m.cancelled = 1;
				m.last_signal = SIGKILL;
				finish(l, status_w, &m, pid, pid, &main_status, &main_done);
			}
			if (n == 1 && c == EXE_CTL_CANCEL && !m.cancelled) {
				m.cancelled = 1;
				m.last_signal = SIGTERM;
				tree_signal(l, pid, SIGTERM);
				int64_t k = mono_ns() + (int64_t)l->kill_grace_ms * 1000000;
				if (k < kill_at)
					kill_at = k;
			}
		}
	}
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

int exe_shim_spawn(const exe_launch *l, exe_shim *out, sdk_err *why)
{
	int st[2] = { -1, -1 }, ctl[2] = { -1, -1 }, o[2] = { -1, -1 }, e[2] = { -1, -1 };
	if (pipe2(st, O_CLOEXEC) < 0 || pipe2(ctl, O_CLOEXEC) < 0 || pipe2(o, O_CLOEXEC) < 0 ||
	    pipe2(e, O_CLOEXEC) < 0) {
		int err = errno;
		int fds[] = { st[0], st[1], ctl[0], ctl[1], o[0], o[1], e[0], e[1] };
		for (int i = 0; i < 8; i++)
			if (fds[i] >= 0)
				close(fds[i]);
		return sdk_fail(why, SDK_EIO, "pipes: %s", strerror(err));
	}
	/* Signals wait until the child has its own handlers (see shim_main). */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	pid_t pid = fork();
	if (pid != 0)
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (pid < 0) {
		int err = errno;
		int fds[] = { st[0], st[1], ctl[0], ctl[1], o[0], o[1], e[0], e[1] };
		for (int i = 0; i < 8; i++)
			close(fds[i]);
		return sdk_fail(why, SDK_EIO, "fork: %s", strerror(err));
	}
	if (pid == 0) {
		close(st[0]);
		close(ctl[1]);
		close(o[0]);
		close(e[0]);
		shim_main(l, st[1], ctl[0], o[1], e[1]);
	}
	close(st[1]);
	close(ctl[0]);
	close(o[1]);
	close(e[1]);
	set_nonblock(st[0]);
	set_nonblock(o[0]);
	set_nonblock(e[0]);
	*out = (exe_shim){ .pid = pid, .status_fd = st[0], .ctl_fd = ctl[1], .out_fd = o[0],
			   .err_fd = e[0] };
	return 0;
}
