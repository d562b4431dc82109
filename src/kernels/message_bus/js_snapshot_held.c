/* The snapshot GET /snapshot took (js_snapshot.c), held for grace serve to
 * read: GET /snapshot/ID?offset=N[&max=M] answers the bytes from N (at
 * most BUS_JS_PIECE_MAX, so each answer fits the main process's call path,
 * which buffers one), DELETE /snapshot/ID drops it. A few are held at once
 * (a scheduled backup and one asked for may run together); past
 * BUS_JS_HELD_MAX the oldest is dropped, and one that nobody reads for
 * BUS_JS_HELD_IDLE_MS too (a backup that died never drops its own).
 *
 * The file is unlinked already: dropping it is closing it. The loop owns
 * the held snapshot; a piece is read (pread) on the short pool, and a drop
 * while pieces are read waits for them to end before closing. */
#include "kernels/message_bus/js.h"

#include "sdk/log.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define BUS_JS_PIECE_MAX (16u << 20)
#define BUS_JS_HELD_IDLE_MS (10 * 60 * 1000)
#define BUS_JS_HELD_MAX 4

struct bus_js_held {
	bus_js *b;
	char id[BUS_JS_HELD_ID_LEN + 1];
	int fd;
	int64_t size;
	struct event *idle;
	unsigned readers; /* pieces being read on the pool */
	bool dropped;     /* no longer in b->held: closed when the last reader ends */
	LIST_ENTRY(bus_js_held) link;
};

static void held_free(struct bus_js_held *h)
{
	if (h->idle)
		event_free(h->idle);
	if (h->fd >= 0)
		close(h->fd);
	free(h);
}

static void held_drop(bus_js *b, struct bus_js_held *h)
{
	LIST_REMOVE(h, link);
	b->n_held--;
	h->dropped = true;
	if (!h->readers)
		held_free(h);
}

static void held_idle(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct bus_js_held *h = arg;
	sdk_warn("message bus: the snapshot %s was not read for %d minutes: dropped", h->id,
		 BUS_JS_HELD_IDLE_MS / 60000);
	held_drop(h->b, h);
}

static void held_touch(struct bus_js_held *h)
{
	struct timeval tv = { BUS_JS_HELD_IDLE_MS / 1000, 0 };
	evtimer_add(h->idle, &tv);
}

int bus_js_held_keep(bus_js *b, int fd, int64_t size, char id[BUS_JS_HELD_ID_LEN + 1])
{
	/* The oldest is last (each new one goes first). */
	while (b->n_held >= BUS_JS_HELD_MAX) {
		struct bus_js_held *last = LIST_FIRST(&b->held);
		while (LIST_NEXT(last, link))
			last = LIST_NEXT(last, link);
		sdk_warn("message bus: the snapshot %s dropped unread: %d are held", last->id,
			 BUS_JS_HELD_MAX);
		held_drop(b, last);
	}
	struct bus_js_held *h = calloc(1, sizeof *h);
	if (!h) {
		close(fd);
		return -1;
	}
	h->b = b;
	h->fd = fd; /* held_free closes it from here on */
	unsigned char rnd[BUS_JS_HELD_ID_LEN / 2];
	if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd ||
	    !(h->idle = evtimer_new(b->k->base, held_idle, h))) {
		held_free(h);
		return -1;
	}
	h->size = size;
	for (size_t i = 0; i < sizeof rnd; i++)
		snprintf(h->id + 2 * i, 3, "%02x", rnd[i]);
	memcpy(id, h->id, sizeof h->id);
	held_touch(h);
	LIST_INSERT_HEAD(&b->held, h, link);
	b->n_held++;
	return 0;
}

void bus_js_held_drop_all(bus_js *b)
{
	while (!LIST_EMPTY(&b->held))
		held_drop(b, LIST_FIRST(&b->held));
}

bool bus_js_snapshot_caller_ok(sdk_req *req, sdk_kernel *k)
{
	int role = SDK_CALLER_NONE;
	const char *caller = sdk_req_header(req, SDK_CALLER_HEADER);
	/* A backup is grace serve's: never a user's, even an admin through
	 * the gateway (the snapshot holds every message of every subject). */
	if (sdk_req_caller(req, k->token, &role) || !caller || strcmp(caller, "grace")) {
		sdk_reply_error(req, 403, "forbidden", "only grace serve takes a snapshot of the bus");
		return false;
	}
	return true;
}

/* The held snapshot the route names, or NULL after answering 404. */
static struct bus_js_held *held_of(sdk_req *req, bus_js *b)
{
	const char *id = sdk_req_param(req, "id");
	struct bus_js_held *h;
	LIST_FOREACH(h, &b->held, link)
		if (id && !strcmp(id, h->id))
			return h;
	sdk_reply_error(req, 404, "not_found", "no snapshot %s is held (dropped, or never taken)",
			id ? id : "");
	return NULL;
}

struct piece_job {
	struct bus_js_held *h;
	sdk_req *req;
	int64_t offset;
	size_t len;
	struct evbuffer *data;
	int err; /* errno, or 0 */
	bool ran;
};

static void piece_work(void *arg)
{
	struct piece_job *j = arg;
	j->ran = true;
	struct evbuffer_iovec v;
	if (!(j->data = evbuffer_new()) ||
	    evbuffer_reserve_space(j->data, (ev_ssize_t)j->len, &v, 1) != 1) {
		j->err = ENOMEM;
		return;
	}
	size_t have = 0;
	while (have < j->len) {
		ssize_t n = pread(j->h->fd, (char *)v.iov_base + have, j->len - have,
				  (off_t)(j->offset + (int64_t)have));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			j->err = n < 0 ? errno : EIO; /* the file is ours alone: never short */
			return;
		}
		have += (size_t)n;
	}
	v.iov_len = have;
	evbuffer_commit_space(j->data, &v, 1);
}

static void piece_done(void *arg)
{
	struct piece_job *j = arg;
	struct bus_js_held *h = j->h;
	if (!j->ran)
		sdk_reply_error(j->req, 503, "draining", "the bus is stopping");
	else if (j->err)
		sdk_reply_error(j->req, 500, "storage_error", "reading the snapshot %s: %s", h->id,
				strerror(j->err));
	else
		sdk_reply_raw(j->req, 200, "application/octet-stream", j->data);
	if (j->data)
		evbuffer_free(j->data);
	free(j);
	if (--h->readers == 0 && h->dropped)
		held_free(h);
}

void bus_js_on_snapshot_piece(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	bus_js *b = k->state;
	if (!bus_js_snapshot_caller_ok(req, k))
		return;
	struct bus_js_held *h = held_of(req, b);
	if (!h)
		return;
	const char *o = sdk_req_query(req, "offset"), *m = sdk_req_query(req, "max");
	char *end = NULL;
	long long offset = o ? strtoll(o, &end, 10) : 0;
	if (o && (!*o || *end || offset < 0 || offset > h->size)) {
		sdk_reply_error(req, 400, "invalid", "offset is 0 to %lld", (long long)h->size);
		return;
	}
	long long max = m ? strtoll(m, &end, 10) : BUS_JS_PIECE_MAX;
	if (m && (!*m || *end || max < 1 || max > BUS_JS_PIECE_MAX)) {
		sdk_reply_error(req, 400, "invalid", "max is 1 to %u", BUS_JS_PIECE_MAX);
		return;
	}
	held_touch(h);
	int64_t left = h->size - offset;
	size_t len = (size_t)(left < max ? left : max);
	if (len == 0) { /* at the end: nothing more */
		sdk_reply_raw(req, 200, "application/octet-stream", NULL);
		return;
	}
	struct piece_job *j = calloc(1, sizeof *j);
	if (j)
		*j = (struct piece_job){ .h = h, .req = req, .offset = offset, .len = len };
	if (!j || sdk_pool_submit(b->short_pool, piece_work, piece_done, j) < 0) {
		free(j);
		sdk_req_add_header(req, "Retry-After", "1");
		sdk_reply_error(req, 503, "busy", "too many requests waiting");
		return;
	}
	h->readers++;
}

void bus_js_on_snapshot_delete(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	bus_js *b = k->state;
	struct bus_js_held *h;
	if (!bus_js_snapshot_caller_ok(req, k) || !(h = held_of(req, b)))
		return;
	char id[BUS_JS_HELD_ID_LEN + 1];
	memcpy(id, h->id, sizeof id);
	held_drop(b, h);
	sdk_reply_json(req, 200, json_pack("{s:s, s:b}", "id", id, "deleted", 1));
}
