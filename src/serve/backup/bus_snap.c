/* The bus's JetStream snapshot for a backup, asked by a worker through the
 * loop: bus_snap.h. */
#include "serve/backup/bus_snap.h"

#include "sdk/call.h"
#include "sdk/clock.h"
#include "serve/gateway/gateway.h"
#include "serve/supervisor/supervisor.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The kernel bounds each of its own waits on NATS (the reply, each chunk);
 * this bounds the whole, and the worker waits a little longer than the
 * call so the call's own answer says why it ended. */
#define BUS_SNAP_TIMEOUT_MS (10 * 60 * 1000)
#define BUS_SNAP_WAIT_MS (BUS_SNAP_TIMEOUT_MS + 15000)
#define BUS_SNAP_LINE_MAX (4u << 20) /* the JSON line: the manifest's bound */

enum snap_state { SNAP_IDLE, SNAP_ASKED, SNAP_CALLING, SNAP_ANSWERED };

struct bk_bus_snap {
	api_ctx *api;
	int pipe[2];
	struct event *ev;
	/* Loop only: calls in flight; free leaves the last of them to free. */
	unsigned in_flight;
	bool orphaned;
	pthread_mutex_t mu; /* guards what follows */
	pthread_cond_t cv;
	enum snap_state state;
	unsigned gen; /* of the fetch asked; an answer for an older one is dropped */
	bool cancelled;
	int status;   /* HTTP status, 0: none */
	char *body;   /* malloc'd */
	size_t len;
	char why[200];
};

static void answered(bk_bus_snap *s, unsigned gen, int status, const char *body, size_t len,
		     const char *why)
{
	pthread_mutex_lock(&s->mu);
	if (s->state == SNAP_CALLING && s->gen == gen) {
		s->status = status;
		s->body = len ? malloc(len) : NULL;
		s->len = s->body ? len : 0;
		if (s->body) {
			memcpy(s->body, body, len);
		} else if (len && status) {
			s->status = 0;
			why = "out of memory for the snapshot";
		}
		snprintf(s->why, sizeof s->why, "%s", why ? why : "");
		s->state = SNAP_ANSWERED;
		pthread_cond_broadcast(&s->cv);
	}
	pthread_mutex_unlock(&s->mu);
}

static void bus_snap_destroy(bk_bus_snap *s)
{
	if (s->ev)
		event_free(s->ev);
	for (int i = 0; i < 2; i++)
		if (s->pipe[i] >= 0)
			close(s->pipe[i]);
	free(s->body);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s);
}

/* One call: the fetch it answers. A worker that gave up waiting may ask
 * again while the first call is still out; its answer must not be taken
 * for the second's. */
struct ticket {
	bk_bus_snap *s;
	unsigned gen;
};

/* The call's answer, on the loop. */
static void on_answer(int status, const char *body, size_t len, double ms, const char *error,
		      void *arg)
{
	(void)ms;
	struct ticket *t = arg;
	bk_bus_snap *s = t->s;
	unsigned gen = t->gen;
	free(t);
	s->in_flight--;
	if (s->orphaned) {
		if (!s->in_flight)
			bus_snap_destroy(s);
		return;
	}
	answered(s, gen, status, body, len, error ? error : status ? NULL : "no answer");
}

/* A worker asked (one byte on the pipe): the call starts here, on the loop. */
static void on_ask(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	bk_bus_snap *s = arg;
	char buf[16];
	while (read(fd, buf, sizeof buf) > 0)
		;
	pthread_mutex_lock(&s->mu);
	bool go = s->state == SNAP_ASKED && !s->cancelled;
	unsigned gen = s->gen;
	if (go)
		s->state = SNAP_CALLING;
	pthread_mutex_unlock(&s->mu);
	if (!go)
		return;
	if (!sup_find(s->api->sup, "message_bus")) {
		answered(s, gen, -1, NULL, 0, "no message_bus kernel in this configuration");
		return;
	}
	struct ticket *t = malloc(sizeof *t);
	if (t)
		*t = (struct ticket){ s, gen };
	if (!t || sdk_call(gw_caller(s->api->gw), "message_bus", "GET", "/snapshot", NULL, 0, NULL,
			   BUS_SNAP_TIMEOUT_MS, on_answer, t) < 0) {
		free(t);
		answered(s, gen, 0, NULL, 0, "cannot call the message_bus kernel");
		return;
	}
	s->in_flight++;
}

bk_bus_snap *bk_bus_snap_new(api_ctx *api)
{
	bk_bus_snap *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->api = api;
	s->pipe[0] = s->pipe[1] = -1;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	if (pipe2(s->pipe, O_CLOEXEC | O_NONBLOCK) < 0 ||
	    !(s->ev = event_new(api->base, s->pipe[0], EV_READ | EV_PERSIST, on_ask, s)) ||
	    event_add(s->ev, NULL) < 0) {
		bus_snap_destroy(s);
		return NULL;
	}
	return s;
}

void bk_bus_snap_cancel(bk_bus_snap *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->cancelled = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

void bk_bus_snap_free(bk_bus_snap *s)
{
	if (!s)
		return;
	bk_bus_snap_cancel(s);
	event_del(s->ev);
	if (s->in_flight) { /* on_answer frees it */
		s->orphaned = true;
		return;
	}
	bus_snap_destroy(s);
}

/* ---- on the worker */

/* Waits for the loop's answer: SNAP_ANSWERED, or a status. Under s->mu. */
static int wait_answer(bk_bus_snap *s, sdk_err *e)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += BUS_SNAP_WAIT_MS / 1000;
	while (s->state != SNAP_ANSWERED && !s->cancelled)
		if (pthread_cond_timedwait(&s->cv, &s->mu, &until) == ETIMEDOUT)
			break;
	if (s->state == SNAP_ANSWERED)
		return 0;
	s->state = SNAP_IDLE; /* a late answer is for no one */
	if (s->cancelled)
		return sdk_fail(e, SDK_EBUSY, "Grace is stopping");
	return sdk_fail(e, SDK_ETIMEOUT, "the message_bus kernel's snapshot did not come in %d s",
			BUS_SNAP_WAIT_MS / 1000);
}

static int write_all(const char *path, const char *b, size_t n, sdk_err *e)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return sdk_fail(e, SDK_EIO, "cannot create %s: %s", path, strerror(errno));
	while (n > 0) {
		ssize_t w = write(fd, b, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int code = errno == ENOSPC || errno == EDQUOT ? SDK_EFULL : SDK_EIO;
			sdk_fail(e, code, "cannot write %s: %s", path, strerror(errno));
			close(fd);
			return code;
		}
		b += w;
		n -= (size_t)w;
	}
	close(fd);
	return 0;
}

/* The answer: a JSON line, "\n", the bytes. */
static int take_body(const char *body, size_t len, const char *out_path, json_t **info,
		     sdk_err *e)
{
	const char *nl = len ? memchr(body, '\n', len < BUS_SNAP_LINE_MAX ? len : BUS_SNAP_LINE_MAX)
			     : NULL;
	json_t *line = nl ? json_loadb(body, (size_t)(nl - body), 0, NULL) : NULL;
	if (!json_is_string(json_object_get(line, "stream")) ||
	    !json_is_object(json_object_get(line, "config")) ||
	    !json_is_object(json_object_get(line, "state"))) {
		json_decref(line);
		return sdk_fail(e, SDK_EIO, "the message_bus kernel's snapshot is not one it makes");
	}
	size_t n = len - (size_t)(nl + 1 - body);
	json_t *bytes = json_object_get(line, "bytes");
	if (!json_is_integer(bytes) || json_integer_value(bytes) != (json_int_t)n) {
		json_decref(line);
		return sdk_fail(e, SDK_EIO, "the bus's snapshot came short: %zu bytes of %" JSON_INTEGER_FORMAT,
				n, json_integer_value(bytes));
	}
	int r = write_all(out_path, nl + 1, n, e);
	if (r) {
		json_decref(line);
		return r;
	}
	*info = line;
	return 0;
}

/* The kernel's error answer, its message quoted (Grace's error shape). */
static int kernel_error(int status, const char *body, size_t len, sdk_err *e)
{
	json_t *j = body && len < BUS_SNAP_LINE_MAX ? json_loadb(body, len, 0, NULL) : NULL;
	const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
	int r = sdk_fail(e, status == 413 ? SDK_ETOOLARGE : SDK_EBUSY,
			 "the message_bus kernel answered %d to GET /snapshot: %s", status,
			 msg ? msg : "(no error message)");
	json_decref(j);
	return r;
}

int bk_bus_snap_fetch(bk_bus_snap *s, const char *out_path, json_t **info, sdk_err *e)
{
	pthread_mutex_lock(&s->mu);
	if (s->cancelled) {
		pthread_mutex_unlock(&s->mu);
		return sdk_fail(e, SDK_EBUSY, "Grace is stopping");
	}
	free(s->body);
	s->body = NULL;
	s->len = 0;
	s->gen++;
	s->state = SNAP_ASKED;
	pthread_mutex_unlock(&s->mu);
	ssize_t w = write(s->pipe[1], "x", 1);
	(void)w; /* a full pipe wakes the loop already */
	pthread_mutex_lock(&s->mu);
	int r = wait_answer(s, e);
	char *body = r ? NULL : s->body;
	size_t len = s->len;
	int status = s->status;
	char why[sizeof s->why];
	memcpy(why, s->why, sizeof why);
	s->body = NULL;
	s->len = 0;
	s->state = SNAP_IDLE;
	pthread_mutex_unlock(&s->mu);
	if (r)
		return r;
	if (status == 200)
		r = take_body(body, len, out_path, info, e);
	else if (status < 0)
		r = sdk_fail(e, SDK_ENOTFOUND, "%s", why);
	else if (status == 0)
		r = sdk_fail(e, SDK_EBUSY, "the message_bus kernel gave no snapshot: %s", why);
	else
		r = kernel_error(status, body, len, e);
	free(body);
	return r;
}
