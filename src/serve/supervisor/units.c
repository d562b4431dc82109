#include "serve/supervisor/units.h"

#include "sdk/clock.h"
#include "sdk/config.h"
#include "serve/supervisor/spawn.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct cmd {
	sup_units *u;
	pid_t pid; /* 0: the slot is free */
	int fd;    /* our end of its output pipe */
	struct event *read_ev, *deadline_ev;
	char *out; /* SUP_UNITS_OUT_MAX + 1, owned */
	size_t len;
	sup_units_cb cb;
	void *arg;
};

struct sup_units {
	struct event_base *base;
	char cmdbuf[GRACE_COMMAND_MAX];
	char *argv[SUP_UNITS_ARGS_MAX];
	int argc;
	struct cmd cmds[SUP_UNITS_RUNNING_MAX];
};

static void drain(struct cmd *c)
{
	char scratch[4096];
	for (;;) {
		char *dst = c->len < SUP_UNITS_OUT_MAX ? c->out + c->len : scratch;
		size_t room = c->len < SUP_UNITS_OUT_MAX ? SUP_UNITS_OUT_MAX - c->len : sizeof scratch;
		ssize_t r = read(c->fd, dst, room);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return;
		if (dst != scratch)
			c->len += (size_t)r;
	}
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	drain(arg);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct cmd *c = arg;
	if (c->pid > 0) /* its own process group (sup_spawn): what it started goes too */
		kill(-c->pid, SIGKILL);
}

static void slot_release(struct cmd *c)
{
	if (c->read_ev)
		event_free(c->read_ev);
	if (c->deadline_ev)
		event_free(c->deadline_ev);
	if (c->fd >= 0)
		close(c->fd);
	free(c->out);
	sup_units *u = c->u;
	*c = (struct cmd){ .u = u, .fd = -1 };
}

sup_units *sup_units_new(struct event_base *base, const char *systemctl)
{
	sup_units *u = calloc(1, sizeof *u);
	if (!u)
		return NULL;
	u->base = base;
	u->argc = sup_split_command(systemctl, u->cmdbuf, sizeof u->cmdbuf, u->argv,
				    SUP_UNITS_ARGS_MAX / 2);
	if (u->argc < 0) {
		free(u);
		return NULL;
	}
	for (size_t i = 0; i < SUP_UNITS_RUNNING_MAX; i++)
		u->cmds[i] = (struct cmd){ .u = u, .fd = -1 };
	return u;
}

void sup_units_free(sup_units *u)
{
	if (!u)
		return;
	for (size_t i = 0; i < SUP_UNITS_RUNNING_MAX; i++) {
		struct cmd *c = &u->cmds[i];
		if (c->pid > 0) {
			kill(-c->pid, SIGKILL);
			while (waitpid(c->pid, NULL, 0) < 0 && errno == EINTR)
				;
		}
		slot_release(c);
	}
	free(u);
}

int sup_units_run(sup_units *u, const char *const *args, unsigned deadline_ms, sup_units_cb cb,
		  void *arg)
{
	struct cmd *c = NULL;
	for (size_t i = 0; i < SUP_UNITS_RUNNING_MAX && !c; i++)
		if (!u->cmds[i].pid)
			c = &u->cmds[i];
	if (!c)
		return -EAGAIN;
	const char *argv[SUP_UNITS_ARGS_MAX + 1];
	int n = 0;
	for (int i = 0; i < u->argc; i++)
		argv[n++] = u->argv[i];
	for (size_t i = 0; args[i]; i++) {
		if (n == SUP_UNITS_ARGS_MAX)
			return -E2BIG;
		argv[n++] = args[i];
	}
	argv[n] = NULL;

	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	static const char *const no_env[] = { NULL };
	sup_spawn_opts o = { .argv = argv, .env = no_env, .listen_fd = -1, .stdout_fd = p[1] };
	pid_t pid = sup_spawn(&o, NULL);
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		return (int)pid;
	}
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	c->pid = pid;
	c->fd = p[0];
	c->cb = cb;
	c->arg = arg;
	c->out = malloc(SUP_UNITS_OUT_MAX + 1);
	c->read_ev = event_new(u->base, p[0], EV_READ | EV_PERSIST, on_read, c);
	c->deadline_ev = evtimer_new(u->base, on_deadline, c);
	if (c->read_ev)
		event_add(c->read_ev, NULL);
	if (c->deadline_ev) {
		struct timeval tv = sdk_ms_tv(deadline_ms);
		evtimer_add(c->deadline_ev, &tv);
	}
	if (!c->out || !c->read_ev || !c->deadline_ev) {
		/* It runs; without a buffer or a deadline it cannot be trusted:
		 * killed now, reported at its reaping. */
		kill(-pid, SIGKILL);
	}
	return 0;
}

bool sup_units_owns(const sup_units *u, pid_t pid)
{
	for (size_t i = 0; u && i < SUP_UNITS_RUNNING_MAX; i++)
		if (u->cmds[i].pid == pid)
			return true;
	return false;
}

void sup_units_reaped(sup_units *u, pid_t pid, int status)
{
	for (size_t i = 0; i < SUP_UNITS_RUNNING_MAX; i++) {
		struct cmd *c = &u->cmds[i];
		if (c->pid != pid)
			continue;
		if (c->out) {
			drain(c); /* what is still in the pipe */
			c->out[c->len] = '\0';
		}
		sup_units_cb cb = c->cb;
		void *arg = c->arg;
		char *out = c->out;
		size_t len = c->out ? c->len : 0;
		c->out = NULL; /* kept for the callback */
		slot_release(c);
		cb(status, out ? out : "", len, arg);
		free(out);
		return;
	}
}
