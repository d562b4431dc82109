#include "serve/supervisor/supervisor.h"
#include "sdk/clock.h"

#include "sdk/log.h"
#include "sdk/notify.h"
#include "sdk/token.h"
#include "serve/supervisor/spawn.h"

#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NOTIFY_MSG_MAX 4096
#define EXIT_PERMANENT 100

struct supervisor {
	struct event_base *base;
	sup_opts opts;
	sup_kernel kernels[GRACE_KERNELS_MAX];
	size_t n;
	int notify_fd;
	char notify_path[108]; /* "@grace/<pid>/notify" */
	struct event *notify_ev, *sigchld_ev;
	bool shutting_down;
};

const char *sup_state_name(enum sup_state st)
{
	static const char *const names[] = { "starting", "ready",  "restarting",      "stopping",
					      "stopped",  "failed", "port_unavailable" };
	return (size_t)st < sizeof names / sizeof names[0] ? names[st] : "unknown";
}

static void set_state(sup_kernel *k, enum sup_state st)
{
	enum sup_state old = k->state;
	if (old == st)
		return;
	k->state = st;
	k->since_ms = sdk_wall_ms();
	if ((st == SUP_FAILED || st == SUP_STOPPED) && k->fd >= 0) {
		/* Nobody will accept on it: let clients be refused at once rather
		 * than wait in a backlog forever. Starting again binds anew. */
		close(k->fd);
		k->fd = -1;
	}
	sdk_info("kernel %s: %s -> %s", k->cfg->name, sup_state_name(old), sup_state_name(st));
	if (k->sup->opts.on_change)
		k->sup->opts.on_change(k, old, k->sup->opts.arg);
}

static void arm_timer(sup_kernel *k, uint64_t ms)
{
	struct timeval tv = sdk_ms_tv(ms);
	evtimer_add(k->timer, &tv);
}

static void arm_watchdog(sup_kernel *k)
{
	if (k->cfg->watchdog_ms) {
		struct timeval tv = sdk_ms_tv(k->cfg->watchdog_ms);
		evtimer_add(k->watchdog, &tv);
	}
}

/* Signals the kernel's whole process group, so what it forked goes too. */
static void kill_group(sup_kernel *k, int sig)
{
	if (k->pid > 0 && kill(-k->pid, sig) < 0 && errno == ESRCH)
		kill(k->pid, sig);
}

static int ensure_socket(sup_kernel *k)
{
	if (k->fd >= 0)
		return 0;
	int fd = sup_socket_bind(k->port, &k->holder);
	if (fd < 0) {
		if (fd == -EADDRINUSE)
			snprintf(k->last_exit, sizeof k->last_exit,
				 "port %d held by pid %d (%.120s)", k->port, (int)k->holder.pid,
				 k->holder.cmdline[0] ? k->holder.cmdline : "unknown");
		else
			snprintf(k->last_exit, sizeof k->last_exit, "cannot bind port %d: %s",
				 k->port, strerror(-fd));
		sdk_warn("kernel %s: %s", k->cfg->name, k->last_exit);
		return fd;
	}
	memset(&k->holder, 0, sizeof k->holder);
	k->fd = fd;
	return 0;
}

static void schedule_restart(sup_kernel *k, const sup_decision *d);

static void exec_watch_close(sup_kernel *k)
{
	if (!k->exec_ev)
		return;
	close(event_get_fd(k->exec_ev));
	event_free(k->exec_ev);
	k->exec_ev = NULL;
}

/* Takes in the exec result, if it is known: a failed exec names its reason
 * before the child's exit (127) is reported. */
static void exec_watch_read(sup_kernel *k)
{
	if (!k->exec_ev)
		return;
	int e = sup_spawn_exec_result(event_get_fd(k->exec_ev));
	if (e == -EAGAIN)
		return;
	if (e > 0)
		snprintf(k->kill_reason, sizeof k->kill_reason, "cannot run the command: %s",
			 strerror(e));
	exec_watch_close(k);
}

static void on_exec_result(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	exec_watch_read(arg);
}

static void spawn_kernel(sup_kernel *k)
{
	supervisor *s = k->sup;
	char cmdbuf[GRACE_COMMAND_MAX + 64];
	char *argv[SPAWN_ARGS_MAX];
	if (k->cfg->command[0]) {
		if (sup_split_command(k->cfg->command, cmdbuf, sizeof cmdbuf, argv,
				      SPAWN_ARGS_MAX) < 0) {
			snprintf(k->last_exit, sizeof k->last_exit, "command cannot be parsed");
			set_state(k, SUP_FAILED);
			return;
		}
	} else {
		argv[0] = (char *)s->opts.self_exe;
		argv[1] = "kernel";
		argv[2] = (char *)k->cfg->name;
		argv[3] = NULL;
	}
	char e_notify[160], e_wd[48], e_kernel[64], e_cfg[PATH_MAX + 16], e_data[PATH_MAX + 16],
		e_off[48], e_lib[PATH_MAX + 24], e_names[64], e_tok[PATH_MAX + 32],
		tok_path[PATH_MAX];
	sdk_token_path(s->opts.cfg, tok_path, sizeof tok_path);
	snprintf(e_tok, sizeof e_tok, "GRACE_INTERNAL_TOKEN_FILE=%s", tok_path);
	snprintf(e_notify, sizeof e_notify, "NOTIFY_SOCKET=%s", s->notify_path);
	/* sd_watchdog_enabled(3) wants WATCHDOG_PID to be the kernel's own pid
	 * (filled in by spawn) and no WATCHDOG_USEC at all when there is none. */
	if (k->cfg->watchdog_ms)
		snprintf(e_wd, sizeof e_wd, "WATCHDOG_USEC=%llu",
			 (unsigned long long)k->cfg->watchdog_ms * 1000ULL);
	else
		snprintf(e_wd, sizeof e_wd, "WATCHDOG_USEC");
	snprintf(e_kernel, sizeof e_kernel, "GRACE_KERNEL=%s", k->cfg->name);
	snprintf(e_cfg, sizeof e_cfg, "GRACE_CONFIG=%s", s->opts.cfg->path);
	snprintf(e_data, sizeof e_data, "GRACE_DATA_DIR=%s", s->opts.cfg->data_dir);
	snprintf(e_off, sizeof e_off, "GRACE_PORT_OFFSET=%d", s->opts.cfg->port_offset);
	snprintf(e_lib, sizeof e_lib, "GRACE_LIBRARY_ROOT=%s", s->opts.cfg->library_root);
	snprintf(e_names, sizeof e_names, "LISTEN_FDNAMES=%s", k->cfg->name);
	const char *env[] = { e_notify, e_wd, e_kernel, e_data, e_off,
			      e_lib, "LISTEN_FDS=1", e_names, e_tok,
			      s->opts.cfg->path[0] ? e_cfg : "GRACE_CONFIG=", NULL };
	sup_spawn_opts o = { .argv = (const char *const *)argv,
			     .env = env,
			     .listen_fd = k->fd,
			     .watchdog_pid = k->cfg->watchdog_ms > 0 };

	uint64_t now = sdk_mono_ms();
	sup_history_add_start(&k->history, now);
	k->started_mono_ms = now;
	k->started_ms = sdk_wall_ms();
	k->kill_reason[0] = '\0';
	exec_watch_close(k);
	int exec_fd = -1;
	pid_t pid = sup_spawn(&o, &exec_fd);
	if (pid < 0) {
		snprintf(k->last_exit, sizeof k->last_exit, "cannot run %s: %s", argv[0],
			 strerror((int)-pid));
		sdk_warn("kernel %s: %s", k->cfg->name, k->last_exit);
		sup_decision d = sup_policy_decide(&k->cfg->restart, &k->history, now, now, false);
		schedule_restart(k, &d);
		return;
	}
	k->pid = pid;
	/* Not waited for: the kernels' execs run in parallel. */
	k->exec_ev = event_new(s->base, exec_fd, EV_READ, on_exec_result, k);
	if (k->exec_ev)
		event_add(k->exec_ev, NULL);
	else
		close(exec_fd);
	set_state(k, SUP_STARTING);
	arm_timer(k, k->cfg->ready_timeout_ms);
	sdk_debug("kernel %s: spawned pid %d on port %d", k->cfg->name, (int)pid, k->port);
}

static void schedule_restart(sup_kernel *k, const sup_decision *d)
{
	if (d->verdict == SUP_GIVE_UP) {
		sdk_error("kernel %s: failed: %s (last: %s)", k->cfg->name, d->why, k->last_exit);
		set_state(k, SUP_FAILED);
		return;
	}
	k->restarts++;
	set_state(k, SUP_RESTARTING);
	/* Through the timer even for "now": no recursion when exec keeps failing. */
	arm_timer(k, d->verdict == SUP_RESTART_NOW ? 0 : d->delay_ms);
}

static void describe_exit(sup_kernel *k, int status)
{
	char what[64];
	if (WIFEXITED(status))
		snprintf(what, sizeof what, "exit %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(what, sizeof what, "signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else
		snprintf(what, sizeof what, "status %d", status);
	char text[sizeof k->last_exit];
	if (k->kill_reason[0])
		snprintf(text, sizeof text, "%.120s: %s", k->kill_reason, what);
	else
		snprintf(text, sizeof text, "%s", what);
	memcpy(k->last_exit, text, sizeof text);
}

static void on_exit_of(sup_kernel *k, int status)
{
	evtimer_del(k->timer);
	evtimer_del(k->watchdog);
	exec_watch_read(k);
	exec_watch_close(k);
	k->pid = 0;
	describe_exit(k, status);
	sdk_log(k->state == SUP_STOPPING ? SDK_LOG_INFO : SDK_LOG_WARN, NULL,
		"kernel %s: exited: %s", k->cfg->name, k->last_exit);

	if (k->sup->shutting_down || k->after_exit == SUP_THEN_STOP) {
		k->after_exit = SUP_THEN_POLICY;
		set_state(k, SUP_STOPPED);
		return;
	}
	if (k->after_exit == SUP_THEN_START) {
		k->after_exit = SUP_THEN_POLICY;
		sup_history_reset(&k->history);
		spawn_kernel(k);
		return;
	}
	bool permanent = WIFEXITED(status) && WEXITSTATUS(status) == EXIT_PERMANENT;
	uint64_t now = sdk_mono_ms();
	sup_decision d = sup_policy_decide(&k->cfg->restart, &k->history, k->started_mono_ms,
					   now, permanent);
	if (d.verdict == SUP_RESTART_NOW) {
		/* The common case (a crash after a stable run) restarts right here:
		 * the socket never closed, so waiting clients are served in ms. */
		k->restarts++;
		spawn_kernel(k);
		return;
	}
	schedule_restart(k, &d);
}

static sup_kernel *kernel_by_pid(supervisor *s, pid_t pid)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->kernels[i].pid == pid)
			return &s->kernels[i];
	return NULL;
}

static void on_sigchld(evutil_socket_t sig, short what, void *arg)
{
	(void)sig, (void)what;
	supervisor *s = arg;
	for (;;) {
		siginfo_t info = { 0 };
		/* Peek first: while the exited kernel is a zombie its pid (and so its
		 * process group id) cannot be reused, so killing the group is safe. */
		if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) < 0 || info.si_pid == 0)
			break;
		pid_t pid = info.si_pid;
		sup_kernel *k = kernel_by_pid(s, pid);
		if (k)
			kill(-pid, SIGKILL);
		int status = 0;
		if (waitpid(pid, &status, WNOHANG) <= 0)
			break;
		if (k)
			on_exit_of(k, status);
	}
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	sup_kernel *k = arg;
	switch (k->state) {
	case SUP_RESTARTING:
		spawn_kernel(k);
		break;
	case SUP_STARTING:
		snprintf(k->kill_reason, sizeof k->kill_reason, "not ready within %u ms",
			 k->cfg->ready_timeout_ms);
		sdk_warn("kernel %s: %s: killing it", k->cfg->name, k->kill_reason);
		kill_group(k, SIGKILL);
		break;
	case SUP_STOPPING:
		snprintf(k->kill_reason, sizeof k->kill_reason, "did not stop within %u ms",
			 k->cfg->stop_timeout_ms);
		sdk_warn("kernel %s: %s: killing it", k->cfg->name, k->kill_reason);
		kill_group(k, SIGKILL);
		break;
	default:
		break;
	}
}

static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	sup_kernel *k = arg;
	if (k->state != SUP_READY || k->pid <= 0)
		return;
	k->watchdog_kills++;
	snprintf(k->kill_reason, sizeof k->kill_reason, "watchdog: no WATCHDOG=1 for %u ms",
		 k->cfg->watchdog_ms);
	sdk_warn("kernel %s: %s: killing pid %d", k->cfg->name, k->kill_reason, (int)k->pid);
	kill_group(k, SIGKILL);
}

static void on_notify_msg(sup_kernel *k, char *msg)
{
	for (char *line = strtok(msg, "\n"); line; line = strtok(NULL, "\n")) {
		if (!strcmp(line, "READY=1")) {
			if (k->state == SUP_STARTING) {
				evtimer_del(k->timer);
				set_state(k, SUP_READY);
				arm_watchdog(k);
			}
		} else if (!strcmp(line, "WATCHDOG=1")) {
			if (k->state == SUP_READY)
				arm_watchdog(k);
		} else if (!strcmp(line, "STOPPING=1")) {
			if (k->state == SUP_READY || k->state == SUP_STARTING) {
				/* Stopping on its own: no hang detection while it drains. */
				evtimer_del(k->watchdog);
			}
		}
	}
}

static void on_notify(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	supervisor *s = arg;
	for (;;) {
		char buf[NOTIFY_MSG_MAX + 1];
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(sizeof(struct ucred))];
		} ctl;
		struct iovec iov = { buf, NOTIFY_MSG_MAX };
		struct msghdr mh = { .msg_iov = &iov,
				     .msg_iovlen = 1,
				     .msg_control = &ctl,
				     .msg_controllen = sizeof ctl };
		ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0)
			break;
		buf[n] = '\0';
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_CREDENTIALS)
			continue;
		struct ucred cred;
		memcpy(&cred, CMSG_DATA(c), sizeof cred);
		/* Only a kernel's own process speaks for it. */
		sup_kernel *k = kernel_by_pid(s, cred.pid);
		if (k)
			on_notify_msg(k, buf);
	}
}

static int notify_socket_open(supervisor *s)
{
	snprintf(s->notify_path, sizeof s->notify_path, "@grace/%d/notify", (int)getpid());
	struct sockaddr_un sun;
	int alen = sdk_notify_addr(s->notify_path, &sun);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) < 0 ||
	    bind(fd, (struct sockaddr *)&sun, (socklen_t)alen) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	s->notify_fd = fd;
	return 0;
}

supervisor *sup_new(struct event_base *base, const sup_opts *opts)
{
	supervisor *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->base = base;
	s->opts = *opts;
	s->notify_fd = -1;
	if (notify_socket_open(s) < 0)
		goto fail;
	s->notify_ev = event_new(base, s->notify_fd, EV_READ | EV_PERSIST, on_notify, s);
	s->sigchld_ev = evsignal_new(base, SIGCHLD, on_sigchld, s);
	if (!s->notify_ev || !s->sigchld_ev)
		goto fail;
	event_add(s->notify_ev, NULL);
	evsignal_add(s->sigchld_ev, NULL);
	for (size_t i = 0; i < opts->cfg->n_kernels; i++) {
		sup_kernel *k = &s->kernels[s->n++];
		k->cfg = &opts->cfg->kernels[i];
		k->sup = s;
		k->fd = -1;
		k->state = SUP_STOPPED;
		k->since_ms = sdk_wall_ms();
		k->port = k->configured_port = grace_kernel_port(opts->cfg, k->cfg);
		k->timer = evtimer_new(base, on_timer, k);
		k->watchdog = evtimer_new(base, on_watchdog, k);
		if (!k->timer || !k->watchdog)
			goto fail;
	}
	return s;
fail:
	sup_free(s);
	return NULL;
}

void sup_free(supervisor *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++) {
		sup_kernel *k = &s->kernels[i];
		if (k->pid > 0) {
			kill_group(k, SIGKILL);
			waitpid(k->pid, NULL, 0);
		}
		if (k->fd >= 0)
			close(k->fd);
		if (k->timer)
			event_free(k->timer);
		if (k->watchdog)
			event_free(k->watchdog);
		exec_watch_close(k);
	}
	if (s->notify_ev)
		event_free(s->notify_ev);
	if (s->sigchld_ev)
		event_free(s->sigchld_ev);
	if (s->notify_fd >= 0)
		close(s->notify_fd);
	free(s);
}

int sup_kernel_start(sup_kernel *k)
{
	switch (k->state) {
	case SUP_STARTING:
	case SUP_READY:
		return -EALREADY;
	case SUP_STOPPING:
		k->after_exit = SUP_THEN_START;
		return 0;
	case SUP_RESTARTING:
		evtimer_del(k->timer);
		break;
	default:
		break;
	}
	if (k->sup->shutting_down)
		return -ESHUTDOWN;
	int rc = ensure_socket(k);
	if (rc < 0) {
		set_state(k, SUP_PORT_UNAVAILABLE);
		return rc;
	}
	sup_history_reset(&k->history);
	spawn_kernel(k);
	return 0;
}

int sup_kernel_stop(sup_kernel *k)
{
	switch (k->state) {
	case SUP_STARTING:
	case SUP_READY:
		k->after_exit = SUP_THEN_STOP;
		evtimer_del(k->watchdog);
		kill_group(k, SIGTERM);
		/* As systemd does: a stopped (SIGSTOP) process must run to act on it. */
		kill_group(k, SIGCONT);
		set_state(k, SUP_STOPPING);
		arm_timer(k, k->cfg->stop_timeout_ms);
		return 0;
	case SUP_STOPPING:
		k->after_exit = SUP_THEN_STOP;
		return 0;
	case SUP_RESTARTING:
		evtimer_del(k->timer);
		set_state(k, SUP_STOPPED);
		return 0;
	default:
		return -EALREADY;
	}
}

int sup_kernel_restart(sup_kernel *k)
{
	if (k->state == SUP_STARTING || k->state == SUP_READY) {
		int rc = sup_kernel_stop(k);
		k->after_exit = SUP_THEN_START;
		return rc;
	}
	if (k->state == SUP_STOPPING) {
		k->after_exit = SUP_THEN_START;
		return 0;
	}
	return sup_kernel_start(k);
}

int sup_kernel_set_port(sup_kernel *k, int port, int fd)
{
	if (k->pid > 0) {
		if (fd >= 0)
			close(fd);
		return -EBUSY;
	}
	if (k->fd >= 0)
		close(k->fd);
	k->fd = fd;
	k->port = port;
	return 0;
}

void sup_start_all(supervisor *s)
{
	for (size_t i = 0; i < s->n; i++) {
		sup_kernel *k = &s->kernels[i];
		if (k->cfg->enabled)
			sup_kernel_start(k);
	}
}

void sup_shutdown(supervisor *s)
{
	s->shutting_down = true;
	for (size_t i = 0; i < s->n; i++) {
		sup_kernel *k = &s->kernels[i];
		if (k->state == SUP_RESTARTING) {
			evtimer_del(k->timer);
			set_state(k, SUP_STOPPED);
		} else {
			sup_kernel_stop(k);
		}
	}
}

size_t sup_count(const supervisor *s) { return s->n; }

sup_kernel *sup_at(supervisor *s, size_t i) { return i < s->n ? &s->kernels[i] : NULL; }

sup_kernel *sup_find(supervisor *s, const char *name)
{
	int i = grace_config_kernel_index(s->opts.cfg, name);
	return i < 0 ? NULL : &s->kernels[i];
}

bool sup_all_settled(const supervisor *s)
{
	for (size_t i = 0; i < s->n; i++) {
		enum sup_state st = s->kernels[i].state;
		if (st == SUP_STARTING || st == SUP_RESTARTING)
			return false;
	}
	return true;
}

bool sup_shutting_down(const supervisor *s) { return s->shutting_down; }

bool sup_all_ready(const supervisor *s)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->kernels[i].cfg->enabled && s->kernels[i].state != SUP_READY)
			return false;
	return true;
}

bool sup_all_down(const supervisor *s)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->kernels[i].pid > 0)
			return false;
	return true;
}
