/* Archival of the audit trail (see archive.h). One archival at a time:
 * select the events, fetch the log's signed tree head and key, then one
 * inclusion proof per event (each checked against the event's own bytes),
 * write the file on a worker thread (synced, renamed), and only then, if
 * asked, remove the events in one transaction. */
#include "kernels/audit/archive.h"

#include "kernels/audit/store.h"
#include "sdk/clock.h"
#include "sdk/json_keys.h"
#include "sdk/log.h"
#include "sdk/pool.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define AUD_LOG_TIMEOUT_MS 5000
#define AUD_NAME_MAX 96

struct aud_archiver {
	sdk_kernel *k;
	sdk_pool *pool;
	struct aud_job *job; /* the archival in progress, or NULL */
	bool closing;
};

struct aud_job {
	aud_archiver *ar;
	sdk_req *req; /* NULL once the client has gone */
	bool remove;
	char actor[128];
	json_t *events; /* to archive, with their log_index */
	json_t *sth;    /* the log's signed tree head, with "public_key" added */
	json_t *lines;  /* one object per event, proofs included */
	size_t next;    /* the event whose proof comes next */
	int64_t now_ms;
	char dir[PATH_MAX];
	char file[AUD_NAME_MAX];
	/* the writer's outcome */
	int rc;
	sdk_err err;
	char sha256[2 * crypto_hash_sha256_BYTES + 1];
	long long bytes;
};

static void aud_job_free(struct aud_job *j)
{
	if (j->ar->job == j)
		j->ar->job = NULL;
	json_decref(j->events);
	json_decref(j->sth);
	json_decref(j->lines);
	free(j);
}

static void aud_job_gone(sdk_req *req, void *arg)
{
	(void)req;
	((struct aud_job *)arg)->req = NULL;
}

/* Ends the job with an error answer. */
static void aud_job_fail(struct aud_job *j, int http, const char *code, const char *msg)
{
	sdk_warn("audit: archive failed: %s", msg);
	if (j->req) {
		sdk_req_on_close(j->req, NULL, NULL);
		sdk_reply_error(j->req, http, code, "%s", msg);
	}
	aud_job_free(j);
}

/* The archival itself is an event of the trail (it is not archived away
 * with the events it removed: its id is newer). */
static void aud_job_record(struct aud_job *j, const char *outcome, json_t *details)
{
	json_t *ev = json_pack("[{s:s, s:s, s:s, s:s, s:O}]", "actor", j->actor, "action",
			       j->remove ? "audit.archive.remove" : "audit.archive.export",
			       "resource", j->file, "outcome", outcome, "details", details);
	json_t *ids = NULL;
	sdk_err e;
	if (!ev || aud_insert(j->ar->k->db, ev, sdk_wall_ms(), &ids, &e) < 0)
		sdk_warn("audit: cannot record the archival itself");
	json_decref(ids);
	json_decref(ev);
}

/* ---- writing the file (worker thread) */

/* Writes `line` (stolen) and hashes it. */
static int aud_put_line(FILE *f, crypto_hash_sha256_state *h, long long *bytes, json_t *line,
			sdk_err *err)
{
	char *text = json_dumps(line, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(line);
	if (!text)
		return sdk_fail(err, SDK_EIO, "out of memory");
	size_t len = strlen(text);
	text[len] = '\n';
	size_t put = fwrite(text, 1, len + 1, f);
	if (put == len + 1)
		crypto_hash_sha256_update(h, (unsigned char *)text, len + 1);
	free(text);
	*bytes += (long long)put;
	if (put != len + 1)
		return sdk_fail(err, errno == ENOSPC ? SDK_EFULL : SDK_EIO, "writing the archive: %s",
				 strerror(errno));
	return 0;
}

static void aud_hex(const unsigned char *h, char *out)
{
	sodium_bin2hex(out, 2 * crypto_hash_sha256_BYTES + 1, h, crypto_hash_sha256_BYTES);
}

static int aud_write(struct aud_job *j)
{
	char path[PATH_MAX + AUD_NAME_MAX + 8], tmp[sizeof path + 8];
	snprintf(path, sizeof path, "%s/%s", j->dir, j->file);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	if (mkdir(j->dir, 0700) != 0 && errno != EEXIST)
		return sdk_fail(&j->err, SDK_EIO, "creating %s: %s", j->dir, strerror(errno));
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f) {
		if (fd >= 0)
			close(fd);
		return sdk_fail(&j->err, SDK_EIO, "creating %s: %s", tmp, strerror(errno));
	}
	crypto_hash_sha256_state h;
	crypto_hash_sha256_init(&h);
	json_t *first = json_array_get(j->lines, 0);
	json_t *last = json_array_get(j->lines, json_array_size(j->lines) - 1);
	json_int_t first_id = json_integer_value(json_object_get(json_object_get(first, "event"), "id"));
	json_int_t last_id = json_integer_value(json_object_get(json_object_get(last, "event"), "id"));
	json_int_t n = (json_int_t)json_array_size(j->lines);
	int rc = aud_put_line(f, &h, &j->bytes,
			      json_pack("{s:s, s:I, s:I, s:I, s:I, s:s, s:O}", "format",
					AUD_ARCHIVE_FORMAT, "first_id", first_id, "last_id", last_id,
					"events", n, "created_at", (json_int_t)j->now_ms, "hashing",
					"RFC 6962 (SHA-256) over each event's canonical JSON",
					"tree_head", j->sth),
			      &j->err);
	size_t i;
	json_t *line;
	json_array_foreach(j->lines, i, line) {
		if (rc)
			break;
		rc = aud_put_line(f, &h, &j->bytes, json_incref(line), &j->err);
	}
	if (!rc) {
		crypto_hash_sha256_state copy = h;
		unsigned char sum[crypto_hash_sha256_BYTES];
		char hex[2 * crypto_hash_sha256_BYTES + 1];
		crypto_hash_sha256_final(&copy, sum);
		aud_hex(sum, hex);
		rc = aud_put_line(f, &h, &j->bytes,
				  json_pack("{s:{s:s, s:I, s:I, s:I, s:O, s:I, s:s}}", "manifest",
					    "format", AUD_ARCHIVE_FORMAT, "first_id", first_id,
					    "last_id", last_id, "events", n, "tree_size",
					    json_object_get(j->sth, "tree_size"), "content_bytes",
					    (json_int_t)j->bytes, "content_sha256", hex),
				  &j->err);
	}
	if (!rc && (fflush(f) != 0 || fsync(fileno(f)) != 0))
		rc = sdk_fail(&j->err, errno == ENOSPC ? SDK_EFULL : SDK_EIO,
			      "writing the archive: %s", strerror(errno));
	if (fclose(f) != 0 && !rc)
		rc = sdk_fail(&j->err, SDK_EIO, "writing the archive: %s", strerror(errno));
	if (!rc && rename(tmp, path) != 0)
		rc = sdk_fail(&j->err, SDK_EIO, "renaming the archive: %s", strerror(errno));
	if (!rc) {
		int dfd = open(j->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0 || fsync(dfd) != 0)
			rc = sdk_fail(&j->err, SDK_EIO, "syncing %s: %s", j->dir, strerror(errno));
		if (dfd >= 0)
			close(dfd);
	}
	if (rc) {
		unlink(tmp);
		return rc;
	}
	unsigned char sum[crypto_hash_sha256_BYTES];
	crypto_hash_sha256_final(&h, sum);
	aud_hex(sum, j->sha256);
	return 0;
}

static void aud_write_work(void *arg)
{
	struct aud_job *j = arg;
	j->rc = aud_write(j);
}

static void aud_write_done(void *arg)
{
	struct aud_job *j = arg;
	if (j->ar->closing) {
		aud_job_free(j);
		return;
	}
	json_t *first = json_object_get(json_array_get(j->lines, 0), "event");
	json_t *last = json_object_get(json_array_get(j->lines, json_array_size(j->lines) - 1),
				       "event");
	int64_t first_id = json_integer_value(json_object_get(first, "id"));
	int64_t last_id = json_integer_value(json_object_get(last, "id"));
	int64_t n = (int64_t)json_array_size(j->lines);
	int64_t tree_size = json_integer_value(json_object_get(j->sth, "tree_size"));
	sdk_err e = j->err;
	int rc = j->rc;
	bool removed = false;
	if (!rc && j->remove) {
		aud_archive_rec rec = { first_id, last_id, n, tree_size, j->sha256, j->file };
		rc = aud_remove(j->ar->k->db, &rec, j->now_ms, &e);
		removed = rc == 0;
	}
	json_t *out = json_pack("{s:I, s:I, s:I, s:s, s:s, s:I, s:I, s:b}", "first_id",
				(json_int_t)first_id, "last_id", (json_int_t)last_id, "events",
				(json_int_t)n, "file", j->file, "sha256", rc ? "" : j->sha256,
				"bytes", (json_int_t)j->bytes, "tree_size", (json_int_t)tree_size,
				"removed", removed);
	if (rc) {
		json_object_set_new(out, "error", json_string(e.msg));
		aud_job_record(j, "failure", out);
		json_decref(out);
		if (j->req) {
			sdk_req_on_close(j->req, NULL, NULL);
			sdk_reply_status(j->req, rc, &e);
		}
	} else {
		aud_job_record(j, "success", out);
		sdk_info("audit: events [%lld, %lld] archived in %s%s", (long long)first_id,
			 (long long)last_id, j->file, removed ? " and removed" : "");
		if (j->req) {
			sdk_req_on_close(j->req, NULL, NULL);
			sdk_reply_json(j->req, 200, out);
		} else {
			json_decref(out);
		}
	}
	aud_job_free(j);
}

static void aud_job_write(struct aud_job *j)
{
	json_t *last = json_array_get(j->events, json_array_size(j->events) - 1);
	snprintf(j->file, sizeof j->file, "audit-%020lld-%020lld.jsonl",
		 (long long)json_integer_value(json_object_get(json_array_get(j->events, 0), "id")),
		 (long long)json_integer_value(json_object_get(last, "id")));
	if (sdk_pool_submit(j->ar->pool, aud_write_work, aud_write_done, j) < 0)
		aud_job_fail(j, 503, "busy", "the archive writer is busy");
}

/* ---- proofs from the log, one event at a time */

static void aud_next_proof(struct aud_job *j);

/* The leaf hash of the event as the trail appended it: its canonical JSON
 * (compact, keys sorted) without the log index. */
static void aud_event_leaf(json_t *logged, unsigned char out[crypto_hash_sha256_BYTES])
{
	char *text = json_dumps(logged, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	crypto_hash_sha256_state h;
	crypto_hash_sha256_init(&h);
	crypto_hash_sha256_update(&h, (const unsigned char *)"\0", 1);
	if (text)
		crypto_hash_sha256_update(&h, (const unsigned char *)text, strlen(text));
	crypto_hash_sha256_final(&h, out);
	free(text);
}

static void aud_on_proof(int status, const char *body, size_t len, double ms, const char *error,
			 void *arg)
{
	(void)ms;
	struct aud_job *j = arg;
	json_t *p = body ? json_loadb(body, len, 0, NULL) : NULL;
	json_t *ev = json_array_get(j->events, j->next);
	json_t *path = json_object_get(p, "audit_path");
	const char *leaf = json_string_value(json_object_get(p, "leaf_hash"));
	if (status != 200 || !json_is_array(path) || !leaf) {
		char msg[256];
		snprintf(msg, sizeof msg, "the immutable log gave no inclusion proof (%d %s)", status,
			 error ? error : "");
		json_decref(p);
		aud_job_fail(j, 502, "log_unavailable", msg);
		return;
	}
	json_t *logged = json_deep_copy(ev);
	json_object_del(logged, "log_index");
	unsigned char mine[crypto_hash_sha256_BYTES];
	char hex[2 * crypto_hash_sha256_BYTES + 1];
	aud_event_leaf(logged, mine);
	aud_hex(mine, hex);
	if (strcmp(hex, leaf)) {
		char msg[256];
		snprintf(msg, sizeof msg,
			 "event %lld does not match what the log holds at index %lld: refusing to"
			 " archive it",
			 (long long)json_integer_value(json_object_get(ev, "id")),
			 (long long)json_integer_value(json_object_get(ev, "log_index")));
		json_decref(logged);
		json_decref(p);
		aud_job_fail(j, 500, "corrupt", msg);
		return;
	}
	json_array_append_new(j->lines,
			      json_pack("{s:o, s:O, s:s, s:O}", "event", logged, "log_index",
					json_object_get(ev, "log_index"), "leaf_hash", leaf,
					"audit_path", path));
	json_decref(p);
	j->next++;
	aud_next_proof(j);
}

static void aud_next_proof(struct aud_job *j)
{
	if (j->next == json_array_size(j->events)) {
		aud_job_write(j);
		return;
	}
	char path[128];
	snprintf(path, sizeof path, "/proof/inclusion?index=%lld&tree_size=%lld",
		 (long long)json_integer_value(
			 json_object_get(json_array_get(j->events, j->next), "log_index")),
		 (long long)json_integer_value(json_object_get(j->sth, "tree_size")));
	if (sdk_call(j->ar->k->caller, "immutable_log", "GET", path, NULL, 0, NULL,
		     AUD_LOG_TIMEOUT_MS, aud_on_proof, j) < 0)
		aud_job_fail(j, 503, "log_unavailable", "cannot call the immutable log");
}

static void aud_on_key(int status, const char *body, size_t len, double ms, const char *error,
		       void *arg)
{
	(void)ms, (void)error;
	struct aud_job *j = arg;
	json_t *key = body ? json_loadb(body, len, 0, NULL) : NULL;
	json_t *pk = json_object_get(key, "public_key");
	if (status != 200 || !json_is_string(pk)) {
		json_decref(key);
		aud_job_fail(j, 502, "log_unavailable", "the immutable log gave no public key");
		return;
	}
	json_object_set(j->sth, "public_key", pk);
	json_decref(key);
	aud_next_proof(j);
}

static void aud_on_sth(int status, const char *body, size_t len, double ms, const char *error,
		       void *arg)
{
	(void)ms, (void)error;
	struct aud_job *j = arg;
	j->sth = body ? json_loadb(body, len, 0, NULL) : NULL;
	json_t *size = json_object_get(j->sth, "tree_size");
	json_t *last = json_array_get(j->events, json_array_size(j->events) - 1);
	if (status != 200 || !json_is_integer(size) ||
	    json_integer_value(size) <= json_integer_value(json_object_get(last, "log_index"))) {
		aud_job_fail(j, 502, "log_unavailable",
			     "the immutable log gave no signed tree head covering the events");
		return;
	}
	if (sdk_call(j->ar->k->caller, "immutable_log", "GET", "/key", NULL, 0, NULL,
		     AUD_LOG_TIMEOUT_MS, aud_on_key, j) < 0)
		aud_job_fail(j, 503, "log_unavailable", "cannot call the immutable log");
}

/* ---- the route */

/* Reads the body into the bounds of the selection; answers 400 naming the
 * field and returns -1 when it is bad. */
static int aud_archive_parse(sdk_req *req, json_t *body, int64_t *before_id, int64_t *before_ms,
			     bool *remove)
{
	static const char *const fields[] = { "before_id", "before_ms", "older_than_s", "remove",
					      NULL };
	if (sdk_req_fields_only(req, body, fields) < 0)
		return -1;
	json_t *id = json_object_get(body, "before_id");
	json_t *ms = json_object_get(body, "before_ms");
	json_t *age = json_object_get(body, "older_than_s");
	json_t *rm = json_object_get(body, "remove");
	if (!id && !ms && !age) {
		sdk_reply_error(req, 400, "invalid",
				"before_id: give before_id (an event id), before_ms (unix ms) or"
				" older_than_s (an age in seconds)");
		return -1;
	}
	if (ms && age) {
		sdk_reply_error(req, 400, "invalid", "before_ms: give before_ms or older_than_s, not both");
		return -1;
	}
	*before_id = INT64_MAX;
	*before_ms = INT64_MAX;
	if (id && (!json_is_integer(id) || json_integer_value(id) <= 0)) {
		sdk_reply_error(req, 400, "invalid", "before_id is a positive integer (an event id)");
		return -1;
	}
	if (ms && (!json_is_integer(ms) || json_integer_value(ms) <= 0)) {
		sdk_reply_error(req, 400, "invalid", "before_ms is a positive integer (unix ms)");
		return -1;
	}
	if (age && (!json_is_integer(age) || json_integer_value(age) < 0 ||
		    json_integer_value(age) > (json_int_t)1 << 40)) {
		sdk_reply_error(req, 400, "invalid", "older_than_s is a non-negative integer");
		return -1;
	}
	if (rm && !json_is_boolean(rm)) {
		sdk_reply_error(req, 400, "invalid", "remove is a boolean");
		return -1;
	}
	if (id)
		*before_id = json_integer_value(id);
	if (ms)
		*before_ms = json_integer_value(ms);
	if (age)
		*before_ms = sdk_wall_ms() - json_integer_value(age) * 1000;
	*remove = json_is_true(rm);
	return 0;
}

void aud_archive_route(sdk_req *req, aud_archiver *ar)
{
	const char *role = sdk_req_header(req, SDK_ROLE_HEADER);
	if (role && strcmp(role, "admin")) {
		sdk_reply_error(req, 403, "forbidden", "only an admin archives the audit trail");
		return;
	}
	json_t *body = sdk_req_json(req, true);
	if (!body)
		return;
	int64_t before_id, before_ms;
	bool remove;
	if (aud_archive_parse(req, body, &before_id, &before_ms, &remove) < 0)
		return;
	if (ar->job) {
		sdk_req_add_header(req, "Retry-After", "1");
		sdk_reply_error(req, 503, "busy", "an archival is already running");
		return;
	}
	json_t *events = NULL;
	sdk_err e;
	int rc = aud_archivable(ar->k->db, before_id, before_ms, AUD_ARCHIVE_MAX, &events, &e);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	if (json_array_size(events) == 0) {
		json_decref(events);
		sdk_reply_error(req, 409, "conflict",
				"nothing to archive: the events before that are already archived,"
				" or the oldest is not in the immutable log yet");
		return;
	}
	struct aud_job *j = calloc(1, sizeof *j);
	if (!j || snprintf(j->dir, sizeof j->dir, "%s/archive", ar->k->cfg->data_dir) >=
			  (int)sizeof j->dir) {
		free(j);
		json_decref(events);
		sdk_reply_error(req, 500, "internal", "out of memory or the data directory's path"
				" is too long");
		return;
	}
	j->ar = ar;
	j->req = req;
	j->remove = remove;
	j->events = events;
	j->lines = json_array();
	j->now_ms = sdk_wall_ms();
	const char *user = sdk_req_header(req, SDK_USER_HEADER);
	snprintf(j->actor, sizeof j->actor, "%s", user ? user : "admin");
	ar->job = j;
	sdk_req_on_close(req, aud_job_gone, j);
	if (sdk_call(ar->k->caller, "immutable_log", "GET", "/sth", NULL, 0, NULL,
		     AUD_LOG_TIMEOUT_MS, aud_on_sth, j) < 0)
		aud_job_fail(j, 503, "log_unavailable", "cannot call the immutable log");
}

aud_archiver *aud_archiver_new(sdk_kernel *k)
{
	aud_archiver *ar = calloc(1, sizeof *ar);
	if (!ar)
		return NULL;
	ar->k = k;
	ar->pool = sdk_pool_new(k->base, 1, 2);
	if (!ar->pool) {
		free(ar);
		return NULL;
	}
	return ar;
}

void aud_archiver_free(aud_archiver *ar)
{
	if (!ar)
		return;
	ar->closing = true;
	sdk_pool_free(ar->pool);
	/* A job still waiting on the log: its request goes with the server. */
	if (ar->job)
		aud_job_free(ar->job);
	free(ar);
}
