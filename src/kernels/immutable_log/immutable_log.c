/* The immutable log kernel (8101): an append-only Merkle log with RFC 6962
 * hashing, signed tree heads, inclusion and consistency proofs, and a full
 * verification of what is stored. See docs/immutable-log.md. */
#include "sdk/keyfile.h"
#include "sdk/clock.h"
#include "sdk/call.h"
#include "sdk/json_keys.h"
#include "sdk/pool.h"
#include "sdk/token.h"
#include "kernels/immutable_log/archive.h"
#include "kernels/immutable_log/store.h"
#include "kernels/registry.h"
#include "sdk/log.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ILOG_KEY_FILE "immutable_log.key"
#define ILOG_META_PUBLIC_KEY "public_key"
/* Indexes travel through SQLite's signed 64-bit integers. */
#define ILOG_INDEX_MAX ((unsigned long long)INT64_MAX)
/* Entries hashed per turn of the event loop during /verify: a few ms. */
#define ILOG_VERIFY_STEP 4096u
#define ILOG_VERIFY_JOBS_MAX 4u
/* Entries one POST /archive may take, so that it answers within the
 * gateway's 10 s: 30,000 took 7.3 s here on a busy machine (the proofs
 * dominate), and the removal is one transaction on the loop. Archive a
 * longer history in steps. */
#define ILOG_ARCHIVE_MAX 20000u
#define ILOG_ARCHIVE_DIR "archive"
#define ILOG_AUDIT_TIMEOUT_MS 5000

struct ilog_job;

struct ilog_state {
	ilog_store *store;
	struct event_base *base;
	unsigned char sk[crypto_sign_SECRETKEYBYTES];
	unsigned char pk[crypto_sign_PUBLICKEYBYTES];
	ilog_sth sth; /* the latest signed head, when have_sth */
	bool have_sth;
	char db_path[PATH_MAX];
	struct ilog_job *jobs;
	unsigned n_jobs;
	bool draining;
	sdk_kernel *k;
	sdk_pool *pool;             /* writes archive files */
	struct ilog_archiving *arch; /* the POST /archive in progress, or NULL */
	struct event *sweep;         /* deletes archived rows, a few per turn */
};

/* A /verify in progress: its request is answered when the steps finish. */
struct ilog_job {
	struct ilog_state *st;
	sdk_req *req;
	ilog_verify *v;
	struct event *tick;
	struct timespec t0;
	struct ilog_job *prev, *next;
};

static struct ilog_state *ilog_state_of(void *ctx)
{
	return ((sdk_kernel *)ctx)->state;
}

/* ---- replies */

static json_t *ilog_hex_json(const ilog_hash h)
{
	char hex[2 * ILOG_HASH_BYTES + 1];
	ilog_hash_hex(h, hex);
	return json_string(hex);
}

static json_t *ilog_b64_json(const unsigned char *data, size_t len)
{
	char buf[sodium_base64_ENCODED_LEN(crypto_sign_BYTES, sodium_base64_VARIANT_ORIGINAL)];
	if (len > crypto_sign_BYTES)
		return json_null();
	sodium_bin2base64(buf, sizeof buf, data, len, sodium_base64_VARIANT_ORIGINAL);
	return json_string(buf);
}

static json_t *ilog_proof_json(const ilog_hash *h, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, ilog_hex_json(h[i]));
	return a;
}

static json_t *ilog_key_id(const struct ilog_state *st)
{
	ilog_hash id;
	crypto_hash_sha256(id, st->pk, sizeof st->pk);
	return ilog_hex_json(id);
}

/* ---- parameters */

/* A required unsigned query parameter; answers 400 and returns -1 when
 * missing or malformed. */
static int ilog_query_required(sdk_req *req, const char *name, unsigned long long *out)
{
	if (!sdk_req_query(req, name)) {
		sdk_reply_error(req, 400, "invalid", "the query parameter %s is required", name);
		return -1;
	}
	return sdk_req_query_uint(req, name, 0, ILOG_INDEX_MAX, 0, out);
}

static int ilog_path_index(sdk_req *req, unsigned long long *out)
{
	const char *s = sdk_req_param(req, "index");
	char *end;
	errno = 0;
	unsigned long long v = s && *s >= '0' && *s <= '9' ? strtoull(s, &end, 10) : 0;
	if (!s || *s < '0' || *s > '9' || *end || errno || v > ILOG_INDEX_MAX) {
		sdk_reply_error(req, 400, "invalid", "an entry index is a non-negative integer");
		return -1;
	}
	*out = v;
	return 0;
}

/* ---- POST /entries */

/* One entry of the body: {"data": any JSON} or {"data_b64": "..."}. On
 * success it->data points into *owned (the caller frees it). */
static int ilog_parse_item(sdk_req *req, json_t *obj, size_t i, ilog_item *it,
			   unsigned char **owned)
{
	if (!json_is_object(obj)) {
		sdk_reply_error(req, 400, "invalid",
				"entry %zu must be an object with data or data_b64", i);
		return -1;
	}
	const char *key;
	json_t *val;
	json_object_foreach(obj, key, val) {
		if (strcmp(key, "data") && strcmp(key, "data_b64")) {
			sdk_reply_error(req, 400, "invalid",
					"entry %zu: unknown field \"%s\" (use data or data_b64)", i,
					key);
			return -1;
		}
	}
	json_t *data = json_object_get(obj, "data");
	json_t *b64 = json_object_get(obj, "data_b64");
	if (!data == !b64) {
		sdk_reply_error(req, 400, "invalid", "entry %zu needs exactly one of data and data_b64",
				i);
		return -1;
	}
	if (data) {
		char *canon = ilog_canonical_json(data);
		if (!canon) {
			sdk_reply_error(req, 500, "internal", "out of memory");
			return -1;
		}
		*owned = (unsigned char *)canon;
		*it = (ilog_item){ *owned, strlen(canon), ILOG_KIND_JSON };
		return 0;
	}
	const char *text = json_string_value(b64);
	size_t tlen = json_string_length(b64);
	unsigned char *buf = malloc(tlen / 4 * 3 + 1);
	size_t len = 0;
	if (!text || !buf ||
	    sodium_base642bin(buf, tlen / 4 * 3 + 1, text, tlen, NULL, &len, NULL,
			      sodium_base64_VARIANT_ORIGINAL) < 0) {
		free(buf);
		sdk_reply_error(req, 400, "bad_base64",
				"entry %zu: data_b64 must be a base64 string (standard alphabet,"
				" padded)", i);
		return -1;
	}
	*owned = buf;
	*it = (ilog_item){ buf, len, ILOG_KIND_BYTES };
	return 0;
}

static void ilog_reply_appended(sdk_req *req, struct ilog_state *st, bool batch, uint64_t first,
				const ilog_hash *leaves, size_t n)
{
	ilog_hash root;
	ilog_store_root(st->store, root);
	json_t *out = json_object();
	if (batch) {
		json_t *arr = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(arr, json_pack("{s:I, s:o}", "index",
							     (json_int_t)(first + i), "leaf_hash",
							     ilog_hex_json(leaves[i])));
		json_object_set_new(out, "entries", arr);
	} else {
		json_object_set_new(out, "index", json_integer((json_int_t)first));
		json_object_set_new(out, "leaf_hash", ilog_hex_json(leaves[0]));
	}
	json_object_set_new(out, "tree_size", json_integer((json_int_t)ilog_store_size(st->store)));
	json_object_set_new(out, "root_hash", ilog_hex_json(root));
	sdk_reply_json(req, 201, out);
}

static void on_append(sdk_req *req, void *ctx)
{
	struct ilog_state *st = ilog_state_of(ctx);
	json_t *body = sdk_req_json(req, false);
	if (!body)
		return;
	bool batch = json_is_array(body);
	size_t n = batch ? json_array_size(body) : 1;
	if (!batch && !json_is_object(body)) {
		sdk_reply_error(req, 400, "invalid",
				"the body is an entry object or an array of entry objects");
		return;
	}
	if (n == 0 || n > ILOG_BATCH_MAX) {
		sdk_reply_error(req, 400, "invalid", "a batch holds 1 to %u entries", ILOG_BATCH_MAX);
		return;
	}
	ilog_item *items = calloc(n, sizeof *items);
	unsigned char **owned = calloc(n, sizeof *owned);
	ilog_hash *leaves = calloc(n, sizeof *leaves);
	if (!items || !owned || !leaves) {
		sdk_reply_error(req, 500, "internal", "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if (ilog_parse_item(req, batch ? json_array_get(body, i) : body, i, &items[i],
				    &owned[i]) < 0)
			goto out;
	uint64_t first;
	sdk_err e;
	int rc = ilog_store_append(st->store, items, n, sdk_wall_ms(), &first, leaves, &e);
	if (rc < 0) {
		sdk_log(SDK_LOG_ERROR, sdk_req_id(req), "append failed: %s", e.msg);
		sdk_reply_status(req, rc, &e);
	} else {
		ilog_reply_appended(req, st, batch, first, leaves, n);
	}
out:
	if (owned)
		for (size_t i = 0; i < n; i++)
			free(owned[i]);
	free(owned);
	free(items);
	free(leaves);
}

/* ---- entries */

/* 410 Gone for an archived entry, naming the archive that holds it. */
static void ilog_reply_gone(sdk_req *req, struct ilog_state *st, uint64_t index)
{
	json_t *a = NULL;
	sdk_err e;
	if (ilog_store_archive_of(st->store, index, &a, &e) < 0) {
		sdk_reply_status(req, SDK_ECORRUPT, &e);
		return;
	}
	sdk_reply_error(req, 410, "archived",
			"entry %llu was archived: entries [%lld, %lld) are in the archive %s"
			" (SHA-256 %s); entries from %llu are still here",
			(unsigned long long)index,
			(long long)json_integer_value(json_object_get(a, "first")),
			(long long)json_integer_value(json_object_get(a, "end")),
			json_string_value(json_object_get(a, "file")),
			json_string_value(json_object_get(a, "sha256")),
			(unsigned long long)ilog_store_archived(st->store));
	json_decref(a);
}

static void on_entry(sdk_req *req, void *ctx)
{
	struct ilog_state *st = ilog_state_of(ctx);
	unsigned long long index;
	if (ilog_path_index(req, &index) < 0)
		return;
	if (index < ilog_store_archived(st->store)) {
		ilog_reply_gone(req, st, index);
		return;
	}
	json_t *out;
	sdk_err e;
	int rc = ilog_store_entry(st->store, index, &out, &e);
	if (rc < 0)
		sdk_reply_status(req, rc, &e);
	else
		sdk_reply_json(req, 200, out);
}

static void on_entries(sdk_req *req, void *ctx)
{
	struct ilog_state *st = ilog_state_of(ctx);
	uint64_t size = ilog_store_size(st->store);
	unsigned long long start, end;
	if (sdk_req_query_uint(req, "start", 0, ILOG_INDEX_MAX, 0, &start) < 0)
		return;
	if (start > size) {
		sdk_reply_error(req, 400, "invalid", "start %llu is past the tree size %llu", start,
				(unsigned long long)size);
		return;
	}
	if (sdk_req_query_uint(req, "end", 0, ILOG_INDEX_MAX, start + ILOG_PAGE_DEFAULT, &end) < 0)
		return;
	if (end < start) {
		sdk_reply_error(req, 400, "invalid", "end %llu is before start %llu", end, start);
		return;
	}
	if (start < ilog_store_archived(st->store) && start < end) {
		ilog_reply_gone(req, st, start);
		return;
	}
	/* A bounded page: the caller continues from the "end" it gets back. */
	if (end > size)
		end = size;
	if (end - start > ILOG_PAGE_MAX)
		end = start + ILOG_PAGE_MAX;
	json_t *arr;
	sdk_err e;
	int rc = ilog_store_entries(st->store, start, end, &arr, &e);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	sdk_reply_json(req, 200, json_pack("{s:I, s:I, s:I, s:o}", "start", (json_int_t)start,
					   "end", (json_int_t)end, "tree_size", (json_int_t)size,
					   "entries", arr));
}

/* ---- tree heads and the key */

static int ilog_sign_head(struct ilog_state *st, sdk_err *e)
{
	ilog_sth h = { .tree_size = ilog_store_size(st->store) };
	int64_t now = sdk_wall_ms();
	h.timestamp_ms = now > 0 ? (uint64_t)now : 0;
	/* Heads are ordered by size; keep their timestamps ordered too even if
	 * the wall clock steps back. */
	if (st->have_sth && h.timestamp_ms < st->sth.timestamp_ms)
		h.timestamp_ms = st->sth.timestamp_ms;
	ilog_store_root(st->store, h.root);
	unsigned char msg[ILOG_STH_MESSAGE_BYTES];
	ilog_sth_message(&h, msg);
	crypto_sign_detached(h.signature, NULL, msg, sizeof msg, st->sk);
	int rc = ilog_store_sth_save(st->store, &h, e);
	if (rc)
		return rc;
	st->sth = h;
	st->have_sth = true;
	return 0;
}

static void on_sth(sdk_req *req, void *ctx)
{
	struct ilog_state *st = ilog_state_of(ctx);
	/* A head is signed once per tree size: asking again returns it as is. */
	if (!st->have_sth || st->sth.tree_size != ilog_store_size(st->store)) {
		sdk_err e;
		int rc = ilog_sign_head(st, &e);
		if (rc < 0) {
			sdk_reply_status(req, rc, &e);
			return;
		}
	}
	const ilog_sth *h = &st->sth;
	sdk_reply_json(req, 200,
		       json_pack("{s:I, s:I, s:o, s:o, s:s, s:o}", "tree_size",
				 (json_int_t)h->tree_size, "timestamp", (json_int_t)h->timestamp_ms,
				 "root_hash", ilog_hex_json(h->root), "signature",
				 ilog_b64_json(h->signature, sizeof h->signature), "algorithm",
				 "ed25519", "key_id", ilog_key_id(st)));
}

static void on_key(sdk_req *req, void *ctx)
{
	struct ilog_state *st = ilog_state_of(ctx);
	sdk_reply_json(req, 200,
		       json_pack("{s:s, s:o, s:o}", "algorithm", "ed25519", "public_key",
				 ilog_b64_json(st->pk, sizeof st->pk), "key_id", ilog_key_id(st)));
}

/* ---- proofs */

static void on_inclusion(sdk_req *req, void *ctx)
{
	struct ilog_state *st = ilog_state_of(ctx);
	uint64_t size = ilog_store_size(st->store);
	unsigned long long index, tree_size;
	if (ilog_query_required(req, "index", &index) < 0 ||
	    sdk_req_query_uint(req, "tree_size", 0, ILOG_INDEX_MAX, size, &tree_size) < 0)
		return;
	ilog_hash path[ILOG_PROOF_MAX], leaf, root;
	size_t n = 0;
	sdk_err e;
	int rc = ilog_store_inclusion(st->store, index, tree_size, path, &n, &e);
	if (!rc)
		rc = ilog_store_leaf_hash(st->store, index, leaf, &e);
	if (!rc)
		rc = ilog_store_root_at(st->store, tree_size, root, &e);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	sdk_reply_json(req, 200,
		       json_pack("{s:I, s:I, s:o, s:o, s:o}", "index", (json_int_t)index,
				 "tree_size", (json_int_t)tree_size, "leaf_hash", ilog_hex_json(leaf),
				 "root_hash", ilog_hex_json(root), "audit_path",
				 ilog_proof_json(path, n)));
}

static void on_consistency(sdk_req *req, void *ctx)
{
	struct ilog_state *st = ilog_state_of(ctx);
	uint64_t size = ilog_store_size(st->store);
	unsigned long long first, second;
	if (ilog_query_required(req, "first", &first) < 0 ||
	    sdk_req_query_uint(req, "second", 0, ILOG_INDEX_MAX, size, &second) < 0)
		return;
	ilog_hash proof[ILOG_PROOF_MAX], r1, r2;
	size_t n = 0;
	sdk_err e;
	int rc = ilog_store_consistency(st->store, first, second, proof, &n, &e);
	if (!rc)
		rc = ilog_store_root_at(st->store, first, r1, &e);
	if (!rc)
		rc = ilog_store_root_at(st->store, second, r2, &e);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	sdk_reply_json(req, 200,
		       json_pack("{s:I, s:I, s:o, s:o, s:o}", "first", (json_int_t)first, "second",
				 (json_int_t)second, "first_root_hash", ilog_hex_json(r1),
				 "second_root_hash", ilog_hex_json(r2), "consistency",
				 ilog_proof_json(proof, n)));
}

/* ---- GET /verify: in steps, so the event loop (and the watchdog) keep
 * running while a large log is rehashed. */

static void ilog_job_free(struct ilog_job *j)
{
	struct ilog_state *st = j->st;
	if (j->prev)
		j->prev->next = j->next;
	else
		st->jobs = j->next;
	if (j->next)
		j->next->prev = j->prev;
	st->n_jobs--;
	if (j->tick)
		event_free(j->tick);
	ilog_verify_free(j->v);
	free(j);
}

/* A zero timeout rather than event_active: libevent runs events activated
 * from a callback in the same pass, which would starve the sockets; timers
 * wait for the next turn of the loop, after I/O has been polled. */
static void ilog_job_schedule(struct ilog_job *j)
{
	static const struct timeval now = { 0, 0 };
	evtimer_add(j->tick, &now);
}

static void ilog_job_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct ilog_job *j = arg;
	sdk_err e;
	int rc = ilog_verify_step(j->v, ILOG_VERIFY_STEP, &e);
	if (rc == 0) {
		ilog_job_schedule(j);
		return;
	}
	if (rc < 0) {
		sdk_reply_status(j->req, rc, &e);
	} else {
		struct timespec t1;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		double ms = (double)(t1.tv_sec - j->t0.tv_sec) * 1e3 +
			    (double)(t1.tv_nsec - j->t0.tv_nsec) / 1e6;
		json_t *report = ilog_verify_report(j->v);
		json_object_set_new(report, "elapsed_ms", json_real(ms));
		if (!json_is_true(json_object_get(report, "ok")))
			sdk_log(SDK_LOG_WARN, sdk_req_id(j->req), "verify: %s",
				json_string_value(json_object_get(report, "reason")));
		sdk_reply_json(j->req, 200, report);
	}
	ilog_job_free(j);
}

static void on_verify(sdk_req *req, void *ctx)
{
	struct ilog_state *st = ilog_state_of(ctx);
	if (st->draining || st->n_jobs >= ILOG_VERIFY_JOBS_MAX) {
		sdk_req_add_header(req, "Retry-After", "1");
		if (st->draining)
			sdk_reply_error(req, 503, "shutting_down", "the log is shutting down");
		else
			sdk_reply_error(req, 503, "busy", "%u verifications are already running",
					st->n_jobs);
		return;
	}
	struct ilog_job *j = calloc(1, sizeof *j);
	if (!j) {
		sdk_reply_error(req, 500, "internal", "out of memory");
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &j->t0);
	ilog_hash root;
	ilog_store_root(st->store, root);
	sdk_err e;
	int rc = ilog_verify_begin(st->db_path, st->pk, ilog_store_size(st->store), root, &j->v, &e);
	j->tick = rc ? NULL : evtimer_new(st->base, ilog_job_tick, j);
	if (!j->tick) {
		ilog_verify_free(rc ? NULL : j->v);
		free(j);
		if (!rc)
			sdk_fail(&e, SDK_EIO, "out of memory");
		sdk_reply_status(req, rc ? rc : SDK_EIO, &e);
		return;
	}
	j->st = st;
	j->req = req;
	j->next = st->jobs;
	if (st->jobs)
		st->jobs->prev = j;
	st->jobs = j;
	st->n_jobs++;
	ilog_job_schedule(j);
}

/* ---- POST /archive: export entries to DATA_DIR/archive/, then (asked
 * for) remove their bytes. docs/immutable-log.md "Archival". */

struct ilog_archiving {
	struct ilog_state *st;
	sdk_req *req; /* NULL once the client has gone */
	bool remove;
	char actor[128];
	ilog_export x;
};

static void ilog_archiving_gone(sdk_req *req, void *arg)
{
	(void)req;
	((struct ilog_archiving *)arg)->req = NULL;
}

static void ilog_audit_sent(int status, const char *body, size_t len, double ms,
			    const char *error, void *arg)
{
	(void)body, (void)len, (void)ms, (void)arg;
	if (status < 200 || status >= 300)
		sdk_warn("archive: the audit trail did not take the archival's event (%d %s)",
			 status, error ? error : "");
}

/* Every archival, exported or removed, is an audit event. */
static void ilog_audit_archival(struct ilog_archiving *a, const char *outcome, json_t *details)
{
	json_t *ev = json_pack("{s:s, s:s, s:s, s:s, s:o}", "actor", a->actor, "action",
			       a->remove ? "immutable_log.archive.remove"
					 : "immutable_log.archive.export",
			       "resource", a->x.file, "outcome", outcome, "details", details);
	char *body = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
	json_decref(ev);
	if (!body || sdk_call(a->st->k->caller, "audit", "POST", "/events", body, strlen(body),
			      NULL, ILOG_AUDIT_TIMEOUT_MS, ilog_audit_sent, NULL) < 0)
		sdk_warn("archive: cannot send the archival's audit event");
	free(body);
}

static void ilog_archive_work(void *arg)
{
	struct ilog_archiving *a = arg;
	ilog_export_run(&a->x);
}

/* The record of an archival, appended to the log in the removal's
 * transaction: the log itself says what left it and where it went. */
static char *ilog_archive_record(const struct ilog_archiving *a)
{
	json_t *r = json_pack("{s:s, s:I, s:I, s:s, s:s, s:I, s:I}", "type",
			      "immutable_log.archive", "first", (json_int_t)a->x.first, "end",
			      (json_int_t)a->x.end, "sha256", a->x.sha256, "file", a->x.file,
			      "tree_size", (json_int_t)a->x.head.tree_size, "archived_at",
			      (json_int_t)a->x.now_ms);
	char *text = r ? ilog_canonical_json(r) : NULL;
	json_decref(r);
	return text;
}

/* Archived entries' rows go ILOG_SWEEP_ROWS at a time, one transaction
 * each, with the loop free between them: deleting a whole archive's rows
 * at once held it for hundreds of ms (20,000 rows, measured on a loaded
 * machine), long enough to fail the guardian's probes. */
#define ILOG_SWEEP_ROWS 500
#define ILOG_SWEEP_EVERY_MS 5

static void ilog_sweep_soon(struct ilog_state *st)
{
	struct timeval tv = sdk_ms_tv(ILOG_SWEEP_EVERY_MS);
	if (st->sweep && !st->draining)
		evtimer_add(st->sweep, &tv);
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct ilog_state *st = arg;
	bool more = false;
	sdk_err e;
	if (!st->store || st->draining)
		return;
	if (ilog_store_sweep(st->store, ILOG_SWEEP_ROWS, &more, &e) < 0) {
		/* Left for the next start (or the next archival) to take up. */
		sdk_warn("archive: archived rows not deleted yet: %s", e.msg);
		return;
	}
	if (more)
		ilog_sweep_soon(st);
}

static void ilog_archive_done(void *arg)
{
	struct ilog_archiving *a = arg;
	struct ilog_state *st = a->st;
	if (st->arch == a)
		st->arch = NULL;
	if (!st->store) { /* closing: the request goes with the server */
		free(a);
		return;
	}
	if (a->req)
		sdk_req_on_close(a->req, NULL, NULL);
	sdk_err e = a->x.err;
	int rc = a->x.rc;
	uint64_t record_index = 0;
	bool removed = false;
	if (!rc && a->remove) {
		char *text = ilog_archive_record(a);
		ilog_item item = { (const unsigned char *)text, text ? strlen(text) : 0,
				   ILOG_KIND_JSON };
		ilog_archive_rec rec = { a->x.first, a->x.end, a->x.head.tree_size, a->x.sha256,
					 a->x.file };
		rc = text ? ilog_store_remove(st->store, &rec, &item, a->x.now_ms, &record_index, &e)
			  : sdk_fail(&e, SDK_EIO, "out of memory");
		free(text);
		removed = rc == 0;
		if (removed) {
			ilog_sweep_soon(st);
			sdk_info("archive: entries [%llu, %llu) removed, in %s (SHA-256 %s)",
				 (unsigned long long)a->x.first, (unsigned long long)a->x.end,
				 a->x.file, a->x.sha256);
		}
	}
	json_t *out = json_pack("{s:I, s:I, s:I, s:s, s:s, s:I, s:I, s:b, s:I}", "first",
				(json_int_t)a->x.first, "end", (json_int_t)a->x.end, "entries",
				(json_int_t)(a->x.end - a->x.first), "file", a->x.file, "sha256",
				rc ? "" : a->x.sha256, "bytes", (json_int_t)a->x.bytes,
				"tree_size", (json_int_t)a->x.head.tree_size, "removed", removed,
				"archived_before", (json_int_t)ilog_store_archived(st->store));
	if (removed)
		json_object_set_new(out, "record_index", json_integer((json_int_t)record_index));
	if (rc) {
		json_object_set_new(out, "error", json_string(e.msg));
		ilog_audit_archival(a, "failure", out);
		sdk_warn("archive of [%llu, %llu) failed: %s", (unsigned long long)a->x.first,
			 (unsigned long long)a->x.end, e.msg);
		if (a->req)
			sdk_reply_status(a->req, rc, &e);
	} else {
		ilog_audit_archival(a, "success", json_incref(out));
		if (a->req)
			sdk_reply_json(a->req, 200, out);
		else
			json_decref(out);
	}
	free(a);
}

/* Reads {"before": N} or {"older_than_s": S}, "remove" and "sha256" into a;
 * answers 400 naming the field (or 409) and returns -1. */
static int ilog_archive_parse(sdk_req *req, struct ilog_state *st, json_t *body,
			      struct ilog_archiving *a)
{
	static const char *const fields[] = { "before", "older_than_s", "remove", "sha256", NULL };
	if (sdk_req_fields_only(req, body, fields) < 0)
		return -1;
	json_t *before = json_object_get(body, "before");
	json_t *age = json_object_get(body, "older_than_s");
	json_t *remove = json_object_get(body, "remove");
	json_t *sha = json_object_get(body, "sha256");
	uint64_t size = ilog_store_size(st->store), first = ilog_store_archived(st->store);
	if (!before == !age) {
		sdk_reply_error(req, 400, "invalid", "before: give exactly one of before (an entry"
				" index) and older_than_s (an age in seconds)");
		return -1;
	}
	if (remove && !json_is_boolean(remove)) {
		sdk_reply_error(req, 400, "invalid", "remove is a boolean");
		return -1;
	}
	a->remove = json_is_true(remove);
	if (sha && (!a->remove || !json_is_string(sha) || json_string_length(sha) != 64 ||
		    strspn(json_string_value(sha), "0123456789abcdef") != 64)) {
		sdk_reply_error(req, 400, "invalid", "sha256 is the lower-case hex SHA-256 of the"
				" archive written before, and goes with \"remove\": true");
		return -1;
	}
	uint64_t end;
	if (before) {
		json_int_t v = json_is_integer(before) ? json_integer_value(before) : -1;
		if (v <= 0 || (uint64_t)v > size) {
			sdk_reply_error(req, 400, "invalid",
					"before is an entry index from 1 to the tree size %llu",
					(unsigned long long)size);
			return -1;
		}
		end = (uint64_t)v;
		if (end > first && end - first > ILOG_ARCHIVE_MAX) {
			sdk_reply_error(req, 400, "invalid",
					"before: one archive holds at most %u entries (from %llu);"
					" archive in steps",
					ILOG_ARCHIVE_MAX, (unsigned long long)first);
			return -1;
		}
	} else {
		json_int_t v = json_is_integer(age) ? json_integer_value(age) : -1;
		if (v < 0 || v > (json_int_t)1 << 40) {
			sdk_reply_error(req, 400, "invalid",
					"older_than_s is a non-negative integer (seconds)");
			return -1;
		}
		sdk_err e;
		int rc = ilog_store_index_at(st->store, sdk_wall_ms() - (int64_t)v * 1000, &end, &e);
		if (rc < 0) {
			sdk_reply_status(req, rc, &e);
			return -1;
		}
		if (end > first + ILOG_ARCHIVE_MAX)
			end = first + ILOG_ARCHIVE_MAX; /* the next call takes the rest */
	}
	if (end <= first) {
		sdk_reply_error(req, 409, "conflict",
				"entries before %llu are already archived (archived_before is %llu):"
				" nothing to archive",
				(unsigned long long)end, (unsigned long long)first);
		return -1;
	}
	a->x.first = first;
	a->x.end = end;
	if (sha)
		snprintf(a->x.expect_sha256, sizeof a->x.expect_sha256, "%s",
			 json_string_value(sha));
	return 0;
}

static void on_archive(sdk_req *req, void *ctx)
{
	struct ilog_state *st = ilog_state_of(ctx);
	const char *role = sdk_req_header(req, SDK_ROLE_HEADER);
	if (role && strcmp(role, "admin")) {
		sdk_reply_error(req, 403, "forbidden", "only an admin archives the log");
		return;
	}
	json_t *body = sdk_req_json(req, true);
	if (!body)
		return;
	if (st->arch || st->draining) {
		sdk_req_add_header(req, "Retry-After", "1");
		sdk_reply_error(req, 503, "busy", st->draining ? "the log is shutting down"
							       : "an archival is already running");
		return;
	}
	const char *broken = ilog_store_broken(st->store);
	if (broken) {
		sdk_reply_error(req, 500, "corrupt", "the log's storage is damaged: %s", broken);
		return;
	}
	struct ilog_archiving *a = calloc(1, sizeof *a);
	if (!a) {
		sdk_reply_error(req, 500, "internal", "out of memory");
		return;
	}
	if (ilog_archive_parse(req, st, body, a) < 0) {
		free(a);
		return;
	}
	const char *user = sdk_req_header(req, SDK_USER_HEADER);
	const char *caller = sdk_req_header(req, "X-Grace-Caller");
	snprintf(a->actor, sizeof a->actor, "%s", user ? user : caller ? caller : "admin");
	/* Proofs go against a signed head of the current size (>= end). */
	sdk_err e;
	if (!st->have_sth || st->sth.tree_size != ilog_store_size(st->store)) {
		int rc = ilog_sign_head(st, &e);
		if (rc < 0) {
			free(a);
			sdk_reply_status(req, rc, &e);
			return;
		}
	}
	a->st = st;
	a->req = req;
	a->x.head = st->sth;
	memcpy(a->x.public_key, st->pk, sizeof st->pk);
	a->x.now_ms = sdk_wall_ms();
	snprintf(a->x.db_path, sizeof a->x.db_path, "%s", st->db_path);
	if (snprintf(a->x.dir, sizeof a->x.dir, "%s/%s", st->k->cfg->data_dir, ILOG_ARCHIVE_DIR) >=
	    (int)sizeof a->x.dir) {
		free(a);
		sdk_reply_error(req, 500, "internal", "the data directory's path is too long");
		return;
	}
	ilog_archive_name(a->x.first, a->x.end, a->x.file);
	if (sdk_pool_submit(st->pool, ilog_archive_work, ilog_archive_done, a) < 0) {
		free(a);
		sdk_req_add_header(req, "Retry-After", "1");
		sdk_reply_error(req, 503, "busy", "the archive writer is busy");
		return;
	}
	st->arch = a;
	sdk_req_on_close(req, ilog_archiving_gone, a);
}

/* GET /archives: what has been archived, and the files still on disk. */
static void on_archives(sdk_req *req, void *ctx)
{
	struct ilog_state *st = ilog_state_of(ctx);
	json_t *list = json_array();
	uint64_t at = 0;
	while (at < ilog_store_archived(st->store)) {
		json_t *a;
		sdk_err e;
		if (ilog_store_archive_of(st->store, at, &a, &e) < 0) {
			json_decref(list);
			sdk_reply_status(req, SDK_ECORRUPT, &e);
			return;
		}
		at = (uint64_t)json_integer_value(json_object_get(a, "end"));
		json_array_append_new(list, a);
	}
	sdk_reply_json(req, 200,
		       json_pack("{s:I, s:I, s:o}", "archived_before",
				 (json_int_t)ilog_store_archived(st->store), "tree_size",
				 (json_int_t)ilog_store_size(st->store), "archives", list));
}

/* GET /archives/:name: the archive file, for the operator to take away. */
static void on_archive_file(sdk_req *req, void *ctx)
{
	struct ilog_state *st = ilog_state_of(ctx);
	const char *name = sdk_req_param(req, "name");
	if (!name || !ilog_archive_name_ok(name)) {
		sdk_reply_error(req, 400, "invalid", "name: not an archive file name");
		return;
	}
	char path[PATH_MAX];
	if (snprintf(path, sizeof path, "%s/%s/%s", st->k->cfg->data_dir, ILOG_ARCHIVE_DIR,
		     name) >= (int)sizeof path) {
		sdk_reply_error(req, 400, "invalid", "name: too long");
		return;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat sb;
	if (fd < 0 || fstat(fd, &sb) != 0) {
		if (fd >= 0)
			close(fd);
		sdk_reply_error(req, 404, "not_found", "no archive file %s here (it may have been"
				" moved away)", name);
		return;
	}
	struct evbuffer *b = evbuffer_new();
	/* The buffer takes the descriptor: the file is sent, not read here. */
	if (!b || evbuffer_add_file(b, fd, 0, sb.st_size) != 0) {
		if (b)
			evbuffer_free(b);
		else
			close(fd);
		sdk_reply_error(req, 500, "internal", "cannot send %s", name);
		return;
	}
	sdk_reply_raw(req, 200, "application/jsonl", b);
	evbuffer_free(b);
}

/* ---- life */

/* The signing key: its 32-byte seed in DATA_DIR/immutable_log.key (0600),
 * created on first start. The public key is also recorded in the database,
 * so a lost or swapped key file stops the log instead of silently signing
 * with a key nobody has pinned. */
static int ilog_key_init(struct ilog_state *st, const char *data_dir, sdk_err *err)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof path, "%s/%s", data_dir, ILOG_KEY_FILE) >= (int)sizeof path)
		return sdk_fail(err, SDK_EINVAL, "key file path too long");
	unsigned char recorded[crypto_sign_PUBLICKEYBYTES];
	int have = ilog_store_meta_get(st->store, ILOG_META_PUBLIC_KEY, recorded, sizeof recorded,
				       err);
	if (have != SDK_OK && have != SDK_ENOTFOUND)
		return have;
	unsigned char seed[crypto_sign_SEEDBYTES];
	int rc = keyfile_read(path, seed, sizeof seed, err);
	if (rc == SDK_ENOTFOUND && have == SDK_OK)
		return sdk_fail(err, SDK_ENOTFOUND,
				"%s is missing but this log was signed with another key;"
				" restore the key file",
				path);
	if (rc == SDK_ENOTFOUND) {
		randombytes_buf(seed, sizeof seed);
		rc = keyfile_create(path, seed, sizeof seed, err);
		if (rc == 0)
			sdk_info("created the log's signing key in %s", path);
	}
	if (rc != 0) {
		sodium_memzero(seed, sizeof seed);
		return rc;
	}
	crypto_sign_seed_keypair(st->pk, st->sk, seed);
	sodium_memzero(seed, sizeof seed);
	if (have == SDK_OK && sodium_memcmp(recorded, st->pk, sizeof recorded))
		return sdk_fail(err, SDK_ECONFLICT, "%s is not the key this log was signed with",
				path);
	if (have != SDK_OK &&
	    (rc = ilog_store_meta_put(st->store, ILOG_META_PUBLIC_KEY, st->pk, sizeof st->pk, err)))
		return rc;
	return 0;
}

/* The latest stored head is reused while the tree has not grown, as long as
 * it still describes the tree. */
static void ilog_sth_load(struct ilog_state *st)
{
	ilog_sth h;
	ilog_hash root;
	if (ilog_store_sth_latest(st->store, &h, NULL))
		return;
	ilog_store_root(st->store, root);
	if (h.tree_size == ilog_store_size(st->store) && !sodium_memcmp(root, h.root, sizeof root)) {
		st->sth = h;
		st->have_sth = true;
	}
}

static int ilog_init(sdk_kernel *k, sdk_err *err)
{
	if (sodium_init() < 0) {
		return sdk_fail(err, SDK_EIO, "libsodium failed to initialise");
	}
	struct ilog_state *st = calloc(1, sizeof *st);
	if (!st) {
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	k->state = st;
	st->base = k->base;
	st->k = k;
	st->pool = sdk_pool_new(k->base, 1, 4);
	if (!st->pool) {
		return sdk_fail(err, SDK_EIO, "cannot start the archive writer");
	}
	const char *path = sqlite3_db_filename(k->db, "main");
	snprintf(st->db_path, sizeof st->db_path, "%s", path ? path : "");
	sdk_err e;
	if (ilog_store_open(k->db, &st->store, &e) < 0) {
		return sdk_fail(err, SDK_EIO, "%s", e.msg);
	}
	if (ilog_key_init(st, k->cfg->data_dir, &e) < 0) {
		return sdk_fail(err, SDK_EIO, "%s", e.msg);
	}
	ilog_sth_load(st);
	if (!(st->sweep = evtimer_new(k->base, on_sweep, st))) {
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	ilog_sweep_soon(st); /* rows a kill left behind, if any */
	const char *broken = ilog_store_broken(st->store);
	if (broken)
		sdk_error("the log's storage is damaged, appends are refused: %s", broken);
	sdk_info("%llu entries", (unsigned long long)ilog_store_size(st->store));
	return 0;
}

static void ilog_drain(sdk_kernel *k)
{
	struct ilog_state *st = k->state;
	if (!st)
		return;
	st->draining = true;
	while (st->jobs) {
		sdk_reply_error(st->jobs->req, 503, "shutting_down",
				"the log is shutting down; verify again later");
		ilog_job_free(st->jobs);
	}
}

static void ilog_close(sdk_kernel *k)
{
	struct ilog_state *st = k->state;
	if (!st)
		return;
	/* Jobs still here never got a reply: their requests go with the server. */
	while (st->jobs)
		ilog_job_free(st->jobs);
	if (st->sweep)
		event_free(st->sweep);
	ilog_store_close(st->store);
	st->store = NULL;
	/* Waits for an archive being written; its done sees no store. */
	sdk_pool_free(st->pool);
	sodium_memzero(st->sk, sizeof st->sk);
	free(st);
	k->state = NULL;
}

static const sdk_route ilog_routes[] = {
	SDK_ROUTE("POST", "/entries", on_append),
	SDK_ROUTE("GET", "/entries", on_entries),
	SDK_ROUTE("GET", "/entries/:index", on_entry),
	SDK_ROUTE("GET", "/sth", on_sth),
	SDK_ROUTE("GET", "/key", on_key),
	SDK_ROUTE("GET", "/proof/inclusion", on_inclusion),
	SDK_ROUTE("GET", "/proof/consistency", on_consistency),
	SDK_ROUTE("GET", "/verify", on_verify),
	SDK_ROUTE("POST", "/archive", on_archive),
	SDK_ROUTE("GET", "/archives", on_archives),
	SDK_ROUTE("GET", "/archives/:name", on_archive_file),
};

const sdk_kernel_def immutable_log_kernel = {
	.name = "immutable_log",
	.port = 8101, .tier = "core",
	.summary = "append-only Merkle log (RFC 6962) with signed tree heads and proofs",
	.complete = true,
	.schema_version = ILOG_SCHEMA_VERSION,
	.migrations = ilog_migrations,
	.n_migrations = ILOG_SCHEMA_VERSION,
	.routes = ilog_routes,
	.n_routes = sizeof ilog_routes / sizeof ilog_routes[0],
	.init = ilog_init,
	.drain = ilog_drain,
	.close = ilog_close,
};
