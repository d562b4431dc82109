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
 * these bound the calls, and the worker waits a little longer than a call
 * so the call's own answer says why it ended. Taking the snapshot gathers
 * the whole stream in the kernel; a piece is at most 16 MiB of a file. */
#define BUS_SNAP_TAKE_MS (30 * 60 * 1000)
#define BUS_SNAP_PIECE_MS (2 * 60 * 1000)
#define BUS_SNAP_WAIT_MARGIN_MS 15000
#define BUS_SNAP_INFO_MAX (4u << 20) /* the manifest's bound */
#define BUS_SNAP_ID_LEN 32

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
	unsigned gen; /* of the call asked; an answer for an older one is dropped */
	char method[8], target[128];
	unsigned timeout_ms;
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
	unsigned gen = s->gen, timeout_ms = s->timeout_ms;
	char method[sizeof s->method], target[sizeof s->target];
	memcpy(method, s->method, sizeof method);
	memcpy(target, s->target, sizeof target);
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
	if (!t || sdk_call(gw_caller(s->api->gw), "message_bus", method, target, NULL, 0, NULL,
			   timeout_ms, on_answer, t) < 0) {
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
static int wait_answer(bk_bus_snap *s, unsigned wait_ms, sdk_err *e)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += wait_ms / 1000;
	while (s->state != SNAP_ANSWERED && !s->cancelled)
		if (pthread_cond_timedwait(&s->cv, &s->mu, &until) == ETIMEDOUT)
			break;
	if (s->state == SNAP_ANSWERED)
		return 0;
	s->state = SNAP_IDLE; /* a late answer is for no one */
	if (s->cancelled)
		return sdk_fail(e, SDK_EBUSY, "Grace is stopping");
	return sdk_fail(e, SDK_ETIMEOUT, "the message_bus kernel did not answer in %u s",
			wait_ms / 1000);
}

/* One call of the bus kernel made by the loop for this worker: its HTTP
 * status in *status and its body (malloc'd, may be NULL when empty), or
 * SDK_ENOTFOUND (no message_bus kernel in this configuration) or another
 * negative status when there was no answer. */
static int call(bk_bus_snap *s, const char *method, const char *target, unsigned timeout_ms,
		int *status, char **body, size_t *len, sdk_err *e)
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
	snprintf(s->method, sizeof s->method, "%s", method);
	snprintf(s->target, sizeof s->target, "%s", target);
	s->timeout_ms = timeout_ms;
	pthread_mutex_unlock(&s->mu);
	ssize_t w = write(s->pipe[1], "x", 1);
	(void)w; /* a full pipe wakes the loop already */
	pthread_mutex_lock(&s->mu);
	int r = wait_answer(s, timeout_ms + BUS_SNAP_WAIT_MARGIN_MS, e);
	*body = r ? NULL : s->body;
	*len = r ? 0 : s->len;
	*status = s->status;
	char why[sizeof s->why];
	memcpy(why, s->why, sizeof why);
	s->body = NULL;
	s->len = 0;
	s->state = SNAP_IDLE;
	pthread_mutex_unlock(&s->mu);
	if (r)
		return r;
	if (*status < 0)
		r = sdk_fail(e, SDK_ENOTFOUND, "%s", why);
	else if (*status == 0)
		r = sdk_fail(e, SDK_EBUSY, "the message_bus kernel gave no answer to %s %s: %s",
			     method, target, why);
	if (r) {
		free(*body);
		*body = NULL;
	}
	return r;
}

/* The kernel's error answer, its message quoted (Grace's error shape). */
static int kernel_error(const char *what, int status, const char *body, size_t len, sdk_err *e)
{
	json_t *j = body && len < BUS_SNAP_INFO_MAX ? json_loadb(body, len, 0, NULL) : NULL;
	const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
	int r = sdk_fail(e, status == 413 ? SDK_ETOOLARGE : status == 507 ? SDK_EFULL : SDK_EBUSY,
			 "the message_bus kernel answered %d to %s: %s", status, what,
			 msg ? msg : "(no error message)");
	json_decref(j);
	return r;
}

/* GET /snapshot's answer: what the manifest records, and the held id. */
static json_t *take_info(const char *body, size_t len, sdk_err *e)
{
	json_t *j = body && len <= BUS_SNAP_INFO_MAX ? json_loadb(body, len, 0, NULL) : NULL;
	const char *id = json_string_value(json_object_get(j, "id"));
	if (!json_is_string(json_object_get(j, "stream")) ||
	    !json_is_object(json_object_get(j, "config")) ||
	    !json_is_object(json_object_get(j, "state")) ||
	    !json_is_integer(json_object_get(j, "bytes")) ||
	    json_integer_value(json_object_get(j, "bytes")) < 0 || !id ||
	    strlen(id) != BUS_SNAP_ID_LEN || strspn(id, "0123456789abcdef") != BUS_SNAP_ID_LEN) {
		json_decref(j);
		sdk_fail(e, SDK_EIO, "the message_bus kernel's snapshot is not one it makes");
		return NULL;
	}
	return j;
}

static int write_all(int fd, const char *path, const char *b, size_t n, sdk_err *e)
{
	while (n > 0) {
		ssize_t w = write(fd, b, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return sdk_fail(e, errno == ENOSPC || errno == EDQUOT ? SDK_EFULL : SDK_EIO,
					"cannot write %s: %s", path, strerror(w < 0 ? errno : ENOSPC));
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

/* The held snapshot, piece by piece, into out_path. */
static int read_pieces(bk_bus_snap *s, const char *id, long long size, const char *out_path,
		       sdk_err *e)
{
	int fd = open(out_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return sdk_fail(e, SDK_EIO, "cannot create %s: %s", out_path, strerror(errno));
	int r = 0;
	for (long long off = 0; !r && off < size;) {
		char target[96];
		snprintf(target, sizeof target, "/snapshot/%s?offset=%lld", id, off);
		int status;
		char *body = NULL;
		size_t len = 0;
		r = call(s, "GET", target, BUS_SNAP_PIECE_MS, &status, &body, &len, e);
		if (!r && status != 200)
			r = kernel_error("GET /snapshot/ID", status, body, len, e);
		else if (!r && (len == 0 || (long long)len > size - off))
			r = sdk_fail(e, SDK_EIO, "the bus's snapshot came as %zu bytes at %lld of %lld",
				     len, off, size);
		if (!r)
			r = write_all(fd, out_path, body, len, e);
		off += (long long)len;
		free(body);
	}
	close(fd);
	return r;
}

/* Whether an answer is the kernel's "a snapshot is being taken" (another
 * backup's: a scheduled one and one asked for may run together). */
static bool busy_taking(int status, const char *body, size_t len)
{
	if (status != 409 || !body || len > 4096)
		return false;
	json_t *j = json_loadb(body, len, 0, NULL);
	const char *code = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
	bool busy = code && !strcmp(code, "snapshot_running");
	json_decref(j);
	return busy;
}

int bk_bus_snap_fetch(bk_bus_snap *s, const char *out_path, json_t **info, sdk_err *e)
{
	int status;
	char *body = NULL;
	size_t len = 0;
	int r;
	/* Another backup's snapshot first: wait for it, as long as one may take. */
	for (int64_t until = sdk_mono_ms() + BUS_SNAP_TAKE_MS;;) {
		r = call(s, "GET", "/snapshot", BUS_SNAP_TAKE_MS, &status, &body, &len, e);
		if (r || !busy_taking(status, body, len) || sdk_mono_ms() > until)
			break;
		free(body);
		body = NULL;
		struct timespec pause = { 1, 0 };
		nanosleep(&pause, NULL);
	}
	if (r)
		return r;
	json_t *j = NULL;
	if (status != 200)
		r = kernel_error("GET /snapshot", status, body, len, e);
	else if (!(j = take_info(body, len, e)))
		r = SDK_EIO;
	free(body);
	if (r)
		return r;
	char id[BUS_SNAP_ID_LEN + 1], target[64];
	snprintf(id, sizeof id, "%s", json_string_value(json_object_get(j, "id")));
	r = read_pieces(s, id, (long long)json_integer_value(json_object_get(j, "bytes")), out_path,
			e);
	/* Dropped at once, read or not (else it is dropped when it has not
	 * been read for a while): nothing to answer if this fails. */
	sdk_err ignored;
	snprintf(target, sizeof target, "/snapshot/%s", id);
	if (call(s, "DELETE", target, BUS_SNAP_PIECE_MS, &status, &body, &len, &ignored) == 0)
		free(body);
	if (r) {
		json_decref(j);
		return r;
	}
	json_object_del(j, "id"); /* the kernel's, not the archive's */
	*info = j;
	return 0;
}
