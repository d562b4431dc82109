/* GET /snapshot on JetStream: the stream PREFIX_BUS as JetStream itself
 * snapshots it (messages, and consumers: the groups' acknowledged offsets),
 * for grace serve's backup (docs/backup.md "JetStream"). Only the main
 * process asks: the internal token, caller "grace", no user.
 *
 * The snapshot (s2-compressed tar, JetStream's own format, which
 * `$JS.API.STREAM.RESTORE` takes back as it is) is gathered into an
 * unlinked file of the data directory, held for grace serve to read in
 * pieces (js_snapshot_held.c: GET /snapshot/ID?offset=N, then DELETE), so
 * no answer is larger than the call path takes and no stream is too
 * large to back up. The answer is what the manifest records:
 *   {"id", "stream", "config", "state", "consumers": [{"name",
 *    "ack_floor", "delivered", "num_pending", "num_ack_pending"}],
 *    "bytes", "chunks"}
 *
 * The protocol (nats-server's jsStreamSnapshotRequest and streamSnapshot):
 * a request to $JS.API.STREAM.SNAPSHOT.<stream> naming a deliver subject
 * we are subscribed to; the reply carries the stream's config and its
 * state at the snapshot; then chunks arrive on the deliver subject, each
 * with a reply subject to answer (empty) for flow control; the end is an
 * empty message, with an error status in its headers when it failed.
 *
 * The consumers are read just before the snapshot is asked for: acks only
 * move forward, so the snapshot holds at least the positions listed, and a
 * restore can check them against what it gets back.
 *
 * Blocking (talks to NATS synchronously): runs on the short pool, one at a
 * time, bounded by BUS_SNAPSHOT_FILE_MAX.
 * Every wait is cut in slices so a stopping kernel (b->stop) is not held
 * for the whole of it: the pool is freed only once the job has returned. */
#include "kernels/message_bus/js.h"

#include "sdk/log.h"
#include "sdk/token.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BUS_SNAPSHOT_FILE_MAX (64LL << 30) /* 64 GiB */
#define BUS_SNAPSHOT_CHUNK (128 * 1024)
/* The reply comes once the snapshot is made (with jsck: every message's
 * checksum verified first), then each chunk within the chunk wait. */
#define BUS_SNAPSHOT_REPLY_MS 60000
#define BUS_SNAPSHOT_CHUNK_MS 10000
#define BUS_SNAPSHOT_REPLY_MAX (1u << 20)
#define BUS_SNAPSHOT_SLICE_MS 250

struct bus_snap_job {
	bus_js *b;
	sdk_req *req;
	bool ran;
	int rc;
	sdk_err err;
	json_t *info; /* the answer */
	int fd;       /* the snapshot's bytes: an unlinked file, or -1 */
	int64_t size;
};

/* The next message of `sub` within wait_ms: NATS_TIMEOUT past it, and
 * NATS_CONNECTION_CLOSED as soon as the kernel stops. */
static natsStatus snap_next(bus_js *b, natsSubscription *sub, int64_t wait_ms, natsMsg **m)
{
	for (int64_t waited = 0;; waited += BUS_SNAPSHOT_SLICE_MS) {
		if (atomic_load(&b->stop))
			return NATS_CONNECTION_CLOSED;
		natsStatus s = b->N.natsSubscription_NextMsg(m, sub, BUS_SNAPSHOT_SLICE_MS);
		if (s != NATS_TIMEOUT || waited + BUS_SNAPSHOT_SLICE_MS >= wait_ms)
			return s;
	}
}

/* The groups (durable consumers) and where each stands, as the manifest
 * lists them. */
static int snap_consumers(bus_js *b, json_t *out, sdk_err *err)
{
	jsOptions o;
	b->N.jsOptions_Init(&o);
	/* Not the short wait of the requests clients make (BUS_JS_API_WAIT_MS,
	 * so they hear 503 soon during an election): a backup has nobody to
	 * retry for it, and on a loaded machine a clustered stream's consumer
	 * list took longer than 2 s once (test_bus_jetstream, right after an
	 * SSE subscriber's consumer went), failing the snapshot. */
	o.Wait = BUS_SNAPSHOT_CHUNK_MS;
	jsConsumerInfoList *list = NULL;
	jsErrCode jerr = 0;
	char why[200];
	natsStatus s = b->N.js_Consumers(&list, b->js, b->stream, &o, &jerr);
	if (s == NATS_NOT_FOUND)
		return 0; /* no consumer at all */
	if (s != NATS_OK)
		return sdk_fail(err, SDK_EBUSY, "listing the consumers of %s: %s", b->stream,
				sdk_nats_why(&b->N, s, jerr, why, sizeof why));
	for (int i = 0; i < list->Count; i++) {
		const jsConsumerInfo *ci = list->List[i];
		/* The groups are the durable ones. An SSE subscriber's ordered
		 * consumer is ephemeral: in the snapshot too, but gone soon
		 * after a restore, so no restore could find it to check. */
		if (!ci->Config || !ci->Config->Durable || !*ci->Config->Durable)
			continue;
		json_array_append_new(out, json_pack("{s:s, s:I, s:I, s:I, s:I}", "name", ci->Name,
						     "ack_floor", (json_int_t)ci->AckFloor.Stream,
						     "delivered", (json_int_t)ci->Delivered.Stream,
						     "num_pending", (json_int_t)ci->NumPending,
						     "num_ack_pending", (json_int_t)ci->NumAckPending));
	}
	b->N.jsConsumerInfoList_Destroy(list);
	return 0;
}

/* The snapshot API's reply: its config and state into info, or its error. */
static int snap_reply(bus_js *b, natsMsg *reply, json_t *info, sdk_err *err)
{
	int len = b->N.natsMsg_GetDataLength(reply);
	const char *status = NULL;
	/* No JetStream server answers for the stream (no leader now): NATS
	 * itself answers with an empty 503. */
	if (len == 0 && b->N.natsMsgHeader_Get(reply, "Status", &status) == NATS_OK && status)
		return sdk_fail(err, SDK_EBUSY, "no JetStream server answered for %s (status %s)",
				b->stream, status);
	json_t *r = len > 0 && (unsigned)len <= BUS_SNAPSHOT_REPLY_MAX
			    ? json_loadb(b->N.natsMsg_GetData(reply), (size_t)len, 0, NULL)
			    : NULL;
	json_t *e = json_object_get(r, "error");
	const char *desc = json_string_value(json_object_get(e, "description"));
	int rc = 0;
	if (e)
		rc = sdk_fail(err, SDK_EBUSY, "JetStream refused the snapshot of %s: %s (%" JSON_INTEGER_FORMAT ")",
			      b->stream, desc ? desc : "?",
			      json_integer_value(json_object_get(e, "err_code")));
	else if (!json_is_object(json_object_get(r, "config")) ||
		 !json_is_object(json_object_get(r, "state")))
		rc = sdk_fail(err, SDK_EIO, "the snapshot of %s: a reply without config and state",
			      b->stream);
	if (!rc) {
		json_object_set(info, "config", json_object_get(r, "config"));
		json_object_set(info, "state", json_object_get(r, "state"));
	}
	json_decref(r);
	return rc;
}

/* The chunks, each answered, until the empty message that ends them. */
static int snap_chunks(bus_js *b, natsSubscription *sub, int fd, int64_t *size, json_int_t *chunks,
		       sdk_err *err)
{
	char why[200];
	for (;;) {
		natsMsg *m = NULL;
		natsStatus s = snap_next(b, sub, BUS_SNAPSHOT_CHUNK_MS, &m);
		if (s != NATS_OK)
			return sdk_fail(err, s == NATS_TIMEOUT ? SDK_ETIMEOUT : SDK_EBUSY,
					"the snapshot of %s stopped after %" JSON_INTEGER_FORMAT
					" chunks: %s",
					b->stream, *chunks,
					sdk_nats_why(&b->N, s, 0, why, sizeof why));
		int len = b->N.natsMsg_GetDataLength(m);
		if (len == 0) {
			/* The end; a newer server puts a status in its headers
			 * ("204" when whole, an error otherwise). */
			const char *status = NULL, *desc = NULL;
			int rc = 0;
			if (b->N.natsMsgHeader_Get(m, "Status", &status) == NATS_OK && status &&
			    strcmp(status, "204") && strcmp(status, "200")) {
				b->N.natsMsgHeader_Get(m, "Description", &desc);
				rc = sdk_fail(err, SDK_EIO, "JetStream ended the snapshot of %s with %s %s",
					      b->stream, status, desc ? desc : "");
			}
			b->N.natsMsg_Destroy(m);
			return rc;
		}
		if (*size + len > BUS_SNAPSHOT_FILE_MAX) {
			b->N.natsMsg_Destroy(m);
			return sdk_fail(err, SDK_ETOOLARGE,
					"the snapshot of %s is larger than %lld GiB, the most a backup "
					"takes of it",
					b->stream, BUS_SNAPSHOT_FILE_MAX >> 30);
		}
		const char *p = b->N.natsMsg_GetData(m);
		int ok = 0, werr = 0;
		for (int left = len; left > 0 && ok == 0;) {
			ssize_t w = write(fd, p, (size_t)left);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				werr = w < 0 ? errno : ENOSPC;
				ok = -1;
				break;
			}
			p += w;
			left -= (int)w;
		}
		*size += len;
		const char *ack = b->N.natsMsg_GetReply(m); /* m's: gone with it */
		bool answered = ok == 0 && ack && *ack;
		/* Flow control: the server sends more once a chunk is answered. */
		if (answered)
			s = b->N.natsConnection_Publish(b->nc, ack, NULL, 0);
		b->N.natsMsg_Destroy(m);
		if (ok != 0)
			return sdk_fail(err, werr == ENOSPC || werr == EDQUOT ? SDK_EFULL : SDK_EIO,
					"writing the snapshot of %s: %s", b->stream, strerror(werr));
		if (answered && s != NATS_OK)
			return sdk_fail(err, SDK_EBUSY, "answering a chunk of the snapshot of %s: %s",
					b->stream, sdk_nats_why(&b->N, s, 0, why, sizeof why));
		(*chunks)++;
	}
}

static void snap_work(void *arg)
{
	struct bus_snap_job *j = arg;
	bus_js *b = j->b;
	j->ran = true;
	json_t *consumers = json_array();
	j->info = json_pack("{s:s, s:o}", "stream", b->stream, "consumers", consumers);
	if (!j->info) {
		j->rc = sdk_fail(&j->err, SDK_EBUSY, "out of memory");
		return;
	}
	/* Unlinked at once: nothing is left behind whatever happens to this
	 * process, and a backup's survey never sees it (a dot name). */
	char path[PATH_MAX];
	if (snprintf(path, sizeof path, "%s/.bus-snapshot-XXXXXX", b->k->cfg->data_dir) >=
		    (int)sizeof path ||
	    (j->fd = mkostemp(path, O_CLOEXEC)) < 0) {
		j->rc = sdk_fail(&j->err, SDK_EIO, "cannot make the snapshot's file in %s: %s",
				 b->k->cfg->data_dir, strerror(errno));
		return;
	}
	unlink(path);
	if ((j->rc = snap_consumers(b, consumers, &j->err)))
		return;
	/* Two inboxes: the chunks', and the API reply's (read in slices,
	 * as the chunks are, rather than one natsConnection_Request). */
	natsInbox *inbox = NULL, *rinbox = NULL;
	natsSubscription *sub = NULL, *rsub = NULL;
	natsMsg *reply = NULL;
	char why[200], subj[64 + sizeof b->stream], req[256];
	snprintf(subj, sizeof subj, "$JS.API.STREAM.SNAPSHOT.%s", b->stream);
	natsStatus s = b->N.natsInbox_Create(&inbox);
	if (s == NATS_OK)
		s = b->N.natsInbox_Create(&rinbox);
	if (s == NATS_OK)
		s = b->N.natsConnection_SubscribeSync(&sub, b->nc, inbox);
	if (s == NATS_OK)
		s = b->N.natsConnection_SubscribeSync(&rsub, b->nc, rinbox);
	/* The server sends nothing until it sees our interest: make sure it has. */
	if (s == NATS_OK)
		s = b->N.natsConnection_Flush(b->nc);
	if (s != NATS_OK) {
		j->rc = sdk_fail(&j->err, SDK_EBUSY, "subscribing for the snapshot of %s: %s",
				 b->stream, sdk_nats_why(&b->N, s, 0, why, sizeof why));
		goto out;
	}
	int n = snprintf(req, sizeof req,
			 "{\"deliver_subject\":\"%s\",\"chunk_size\":%d,\"jsck\":true}", inbox,
			 BUS_SNAPSHOT_CHUNK);
	s = b->N.natsConnection_PublishRequest(b->nc, subj, rinbox, req, n);
	if (s == NATS_OK)
		s = snap_next(b, rsub, BUS_SNAPSHOT_REPLY_MS, &reply);
	if (s != NATS_OK) {
		j->rc = sdk_fail(&j->err, s == NATS_TIMEOUT ? SDK_ETIMEOUT : SDK_EBUSY,
				 "asking JetStream for a snapshot of %s: %s", b->stream,
				 sdk_nats_why(&b->N, s, 0, why, sizeof why));
		goto out;
	}
	if ((j->rc = snap_reply(b, reply, j->info, &j->err)))
		goto out;
	json_int_t chunks = 0;
	j->rc = snap_chunks(b, sub, j->fd, &j->size, &chunks, &j->err);
	json_object_set_new(j->info, "chunks", json_integer(chunks));
	json_object_set_new(j->info, "bytes", json_integer((json_int_t)j->size));
out:
	if (reply)
		b->N.natsMsg_Destroy(reply);
	natsSubscription *subs[] = { sub, rsub };
	for (size_t i = 0; i < 2; i++)
		if (subs[i]) {
			/* Leaving early tells the server no one listens: it stops. */
			b->N.natsSubscription_Unsubscribe(subs[i]);
			b->N.natsSubscription_Destroy(subs[i]);
		}
	if (inbox)
		b->N.natsInbox_Destroy(inbox);
	if (rinbox)
		b->N.natsInbox_Destroy(rinbox);
}

static void snap_done(void *arg)
{
	struct bus_snap_job *j = arg;
	bus_js *b = j->b;
	b->snapshotting = false;
	char id[BUS_JS_HELD_ID_LEN + 1];
	if (!j->ran) {
		sdk_reply_error(j->req, 503, "draining", "the bus is stopping");
	} else if (j->rc) {
		sdk_warn("message bus: snapshot of %s: %s", b->stream, j->err.msg);
		sdk_reply_status(j->req, j->rc, &j->err);
	} else if (bus_js_held_keep(b, j->fd, j->size, id) < 0) {
		j->fd = -1; /* closed by it */
		sdk_reply_error(j->req, 503, "busy", "out of memory");
	} else {
		j->fd = -1; /* held now */
		json_object_set_new(j->info, "id", json_string(id));
		sdk_info("message bus: snapshot of %s: %" JSON_INTEGER_FORMAT
			 " bytes, %zu groups, held as %s",
			 b->stream, json_integer_value(json_object_get(j->info, "bytes")),
			 json_array_size(json_object_get(j->info, "consumers")), id);
		sdk_reply_json(j->req, 200, json_incref(j->info));
	}
	if (j->fd >= 0)
		close(j->fd);
	json_decref(j->info);
	free(j);
}

void bus_js_on_snapshot(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	bus_js *b = k->state;
	if (!bus_js_snapshot_caller_ok(req, k))
		return;
	if (b->draining) {
		sdk_reply_error(req, 503, "draining", "the bus is stopping");
		return;
	}
	if (b->snapshotting) {
		sdk_reply_error(req, 409, "snapshot_running", "a snapshot of %s is under way",
				b->stream);
		return;
	}
	struct bus_snap_job *j = calloc(1, sizeof *j);
	if (j)
		*j = (struct bus_snap_job){ .b = b, .req = req, .fd = -1 };
	if (!j || sdk_pool_submit(b->short_pool, snap_work, snap_done, j) < 0) {
		free(j);
		sdk_req_add_header(req, "Retry-After", "1");
		sdk_reply_error(req, 503, "busy", "too many requests waiting for JetStream");
		return;
	}
	b->snapshotting = true;
}
