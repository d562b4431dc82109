/* The immutable log kernel (8101): an append-only Merkle log with RFC 6962
 * hashing, signed tree heads, inclusion and consistency proofs, and a full
 * verification of what is stored. See docs/immutable-log.md. */
#include "sdk/keyfile.h"
#include "sdk/clock.h"
#include "kernels/immutable_log/store.h"
#include "kernels/registry.h"
#include "sdk/log.h"

#include <errno.h>
#include <event2/event.h>
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

static void on_entry(sdk_req *req, void *ctx)
{
	struct ilog_state *st = ilog_state_of(ctx);
	unsigned long long index;
	if (ilog_path_index(req, &index) < 0)
		return;
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

/* ---- life */

/* The signing key: its 32-byte seed in DATA_DIR/immutable_log.key (0600),
 * created on first start. The public key is also recorded in the database,
 * so a lost or swapped key file stops the log instead of silently signing
 * with a key nobody has pinned. */
static int ilog_key_init(struct ilog_state *st, const char *data_dir, char *err, size_t errlen)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof path, "%s/%s", data_dir, ILOG_KEY_FILE) >= (int)sizeof path) {
		snprintf(err, errlen, "key file path too long");
		return -1;
	}
	unsigned char recorded[crypto_sign_PUBLICKEYBYTES];
	sdk_err e;
	int have = ilog_store_meta_get(st->store, ILOG_META_PUBLIC_KEY, recorded, sizeof recorded,
				       &e);
	if (have != SDK_OK && have != SDK_ENOTFOUND) {
		snprintf(err, errlen, "%s", e.msg);
		return -1;
	}
	unsigned char seed[crypto_sign_SEEDBYTES];
	int rc = keyfile_read(path, seed, sizeof seed, err, errlen);
	if (rc == KEYFILE_ENOENT && have == SDK_OK) {
		snprintf(err, errlen, "%s is missing but this log was signed with another key;"
			 " restore the key file", path);
		return -1;
	}
	if (rc == KEYFILE_ENOENT) {
		randombytes_buf(seed, sizeof seed);
		rc = keyfile_create(path, seed, sizeof seed, err, errlen);
		if (rc == 0)
			sdk_info("created the log's signing key in %s", path);
	}
	if (rc != 0) {
		sodium_memzero(seed, sizeof seed);
		return -1;
	}
	crypto_sign_seed_keypair(st->pk, st->sk, seed);
	sodium_memzero(seed, sizeof seed);
	if (have == SDK_OK && sodium_memcmp(recorded, st->pk, sizeof recorded)) {
		snprintf(err, errlen, "%s is not the key this log was signed with", path);
		return -1;
	}
	if (have != SDK_OK &&
	    ilog_store_meta_put(st->store, ILOG_META_PUBLIC_KEY, st->pk, sizeof st->pk, &e)) {
		snprintf(err, errlen, "%s", e.msg);
		return -1;
	}
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

static int ilog_init(sdk_kernel *k, char *err, size_t errlen)
{
	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium failed to initialise");
		return -1;
	}
	struct ilog_state *st = calloc(1, sizeof *st);
	if (!st) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	k->state = st;
	st->base = k->base;
	const char *path = sqlite3_db_filename(k->db, "main");
	snprintf(st->db_path, sizeof st->db_path, "%s", path ? path : "");
	sdk_err e;
	if (ilog_store_open(k->db, &st->store, &e) < 0) {
		snprintf(err, errlen, "%s", e.msg);
		return -1;
	}
	if (ilog_key_init(st, k->cfg->data_dir, err, errlen) < 0)
		return -1;
	ilog_sth_load(st);
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
	ilog_store_close(st->store);
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
};

const sdk_kernel_def immutable_log_kernel = {
	.name = "immutable_log",
	.port = 8101, .tier = "core",
	.summary = "append-only Merkle log (RFC 6962) with signed tree heads and proofs",
	.complete = true,
	.routes = ilog_routes,
	.n_routes = sizeof ilog_routes / sizeof ilog_routes[0],
	.init = ilog_init,
	.drain = ilog_drain,
	.close = ilog_close,
};
