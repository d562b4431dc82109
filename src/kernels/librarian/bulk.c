#include "kernels/librarian/bulk.h"

#include "kernels/librarian/index.h"
#include "kernels/librarian/ndjson.h"
#include "kernels/librarian/rows.h"
#include "sdk/clock.h"

#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

struct tally {
	int64_t created, updated, duplicates, failed;
	int64_t docs, bytes; /* the owner's, as the batch goes */
};

/* A new document waiting for the request's one INSERT (rows.h): its row
 * (pointing into doc, tags and hash, kept alive until the request ends),
 * and the key it is found by while it waits: its content hash, or its
 * source's. */
struct pend {
	json_t *doc;
	char *tags;
	uint8_t hash[LIB_HASH_BYTES];
	uint8_t key[LIB_HASH_BYTES];
	bool by_source;
};

/* What one line says, worked out before the run looks at the database
 * (parsed, checked, hashed): none of it depends on another line or on
 * SQLite, so prep_lines makes them on two threads at once, and the
 * writer's thread, which the whole load waits on, only looks them up. */
struct prep {
	unsigned line;
	json_t *doc;                      /* owned until one() takes it */
	const char *title, *body, *source; /* in doc */
	char *tags;                       /* owned until one() takes it */
	int64_t size;
	uint8_t hash[LIB_HASH_BYTES];
	uint8_t key[LIB_HASH_BYTES]; /* the hash, or the source's */
	int status;                  /* 0, or the line's error (400) with msg */
	char *msg; /* what is wrong (malloc'd; NULL: no memory to say it) */
	size_t at, len; /* the line, in the request's body */
};

/* One run over a request's lines. careful: every new document is
 * inserted at its line (the slow way, one FTS5 segment each), so that a
 * constraint refusing one is that line's error; the fast way inserts
 * them all at the end and, should SQLite refuse one (the checks here
 * make that unexpected), the request is run again carefully. */
struct run {
	sqlite3 *db;
	lib_ix *ix;
	lib_ix_tails *tails;
	const char *owner;
	bool admin; /* with owner, who the caller is (lib_may_change) */
	const lib_quota *quota;
	bool careful;
	json_t *items;
	struct tally t;
	int64_t next_id;
	lib_row *rows; /* [cap]: one per line at most, never moved */
	struct pend *pend;
	uint32_t n, done, cap; /* rows pending from `done` to n */
	uint32_t *slot; /* open addressing over pend by key: index + 1, 0 empty */
	uint32_t nslot; /* a power of two, at least twice cap */
	struct prep *prep; /* [nprep]: the lines that are not blank */
	uint32_t nprep;
};

#define BULK_REFUSED 1 /* the fast way's INSERT hit a constraint: run carefully */

static const char *bad_code(int status)
{
	return status == 413 ? "quota" : status == 403 ? "forbidden" : "invalid";
}

static void item_bad(json_t *items, struct tally *t, unsigned line, int status, const char *msg)
{
	t->failed++;
	if (t->failed > LIB_BULK_ERRORS_MAX)
		return;
	json_array_append_new(items, json_pack("{s:I, s:i, s:{s:s, s:s}}", "line",
					       (json_int_t)line, "status", status, "error", "code",
					       bad_code(status), "message", msg));
}

static void item_ok(json_t *items, unsigned line, int status, const char *result, int64_t id)
{
	json_array_append_new(items, json_pack("{s:I, s:i, s:s, s:I}", "line", (json_int_t)line,
					       "status", status, "result", result, "id",
					       (json_int_t)id));
}

const char lib_bulk_sql_hash_find[] = "SELECT id FROM documents WHERE substr(hash, 1, 8) ="
				      " substr(?1, 1, 8) AND hash IS NOT NULL AND hash = ?1";

static int hash_find(sqlite3 *db, lib_ix *ix, const uint8_t *hash, int64_t *id, lib_err *err)
{
	sqlite3_stmt *st = lib_ix_stmt(ix, lib_bulk_sql_hash_find); /* ix's */
	*id = 0;
	if (!st)
		return lib_fail_sql(db, err, "prepare hash");
	sqlite3_bind_blob(st, 1, hash, LIB_HASH_BYTES, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*id = sqlite3_column_int64(st, 0);
	rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SDK_OK : lib_fail_sql(db, err, "read hash");
	sqlite3_reset(st);
	return rc;
}

static const char *opt_str(json_t *o, const char *key, bool *bad)
{
	json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v))
		return NULL;
	if (!json_is_string(v))
		*bad = true;
	return json_string_value(v);
}

static const char sql_rows_insert[] =
	"INSERT INTO documents (id, title, body, tags, source, created_at, owner, size, hash)"
	" SELECT id, title, body, tags, source, created_at, owner, size, hash FROM lib_rows(?1)";

/* AUTOINCREMENT's own rule (the largest id ever used, plus one): ids are
 * given here so that the request's documents go in one statement and
 * the items can name them before it runs. Under the write lock. */
static const char sql_next_id[] =
	"SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'documents'), 0),"
	" coalesce((SELECT max(id) FROM documents), 0)) + 1";

static int next_id(struct run *r, lib_err *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(r->db, sql_next_id, -1, &st, NULL) != SQLITE_OK)
		return lib_fail_sql(r->db, err, "prepare next id");
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		r->next_id = sqlite3_column_int64(st, 0);
	rc = rc == SQLITE_ROW ? SDK_OK : lib_fail_sql(r->db, err, "read next id");
	sqlite3_finalize(st);
	return rc;
}

static uint32_t key_slot(const struct run *r, const uint8_t *key, bool by_source, bool *hit)
{
	uint64_t h;
	memcpy(&h, key, sizeof h);
	uint32_t j = (uint32_t)h & (r->nslot - 1);
	*hit = false;
	while (r->slot[j]) {
		const struct pend *p = &r->pend[r->slot[j] - 1];
		if (p->by_source == by_source && !memcmp(p->key, key, LIB_HASH_BYTES)) {
			*hit = true;
			break;
		}
		j = (j + 1) & (r->nslot - 1);
	}
	return j;
}

/* A waiting document of this key (not yet inserted), or -1. */
static int64_t pending_find(const struct run *r, const uint8_t *key, bool by_source)
{
	bool hit;
	uint32_t j = key_slot(r, key, by_source, &hit);
	if (!hit || r->slot[j] - 1 < r->done)
		return -1;
	return (int64_t)r->slot[j] - 1;
}

/* Rows [from, to) handed to the block index, which only collects them
 * (tokenizing, in memory: no SQLite), so that it can run on a thread of
 * its own while the writer's thread inserts the same rows. */
struct collect {
	lib_ix *ix;
	const lib_row *rows;
	uint32_t from, to;
	int rc;
	sdk_err err;
};

static void *collect_rows(void *arg)
{
	struct collect *c = arg;
	for (uint32_t i = c->from; !c->rc && i < c->to; i++)
		c->rc = lib_ix_add(c->ix, c->rows[i].id, c->rows[i].title, c->rows[i].body,
				   c->rows[i].tags, &c->err);
	return NULL;
}

/* Inserts rows [done, n) in one statement and hands them to the block
 * index (flushed by the caller at the end). The index's collecting (a
 * seventh of a bulk load's CPU) runs on a second thread meanwhile when
 * there are BULK_COLLECT_THREAD_MIN rows or more: the two share no state
 * but the rows, which both only read, and it is joined before either
 * result is looked at. A failed INSERT fails the run, whose collection
 * is dropped with its index (run_lines). */
#define BULK_COLLECT_THREAD_MIN 64

static int rows_flush(struct run *r, lib_err *err)
{
	if (r->done == r->n)
		return SDK_OK;
	sqlite3_stmt *st = lib_ix_stmt(r->ix, sql_rows_insert);
	if (!st && lib_rows_register(r->db) == SQLITE_OK) /* first use on this connection */
		st = lib_ix_stmt(r->ix, sql_rows_insert);
	if (!st)
		return lib_fail_sql(r->db, err, "prepare bulk insert");
	struct collect c = { .ix = r->ix, .rows = r->rows, .from = r->done, .to = r->n };
	pthread_t th;
	bool apart = r->n - r->done >= BULK_COLLECT_THREAD_MIN &&
		     pthread_create(&th, NULL, collect_rows, &c) == 0;
	lib_rows rows = { r->rows + r->done, r->n - r->done };
	lib_rows_bind(st, 1, &rows);
	int rc = sqlite3_step(st);
	int ext = sqlite3_extended_errcode(r->db);
	if (apart)
		pthread_join(th, NULL);
	if (rc != SQLITE_DONE) {
		rc = (ext & 0xff) == SQLITE_CONSTRAINT
			     ? sdk_fail(err, SDK_EINVAL, "document rejected: %s", sqlite3_errmsg(r->db))
			     : lib_fail_sql(r->db, err, "write documents");
		sqlite3_reset(st);
		return rc == SDK_EINVAL ? (r->careful ? SDK_EINVAL : BULK_REFUSED) : rc;
	}
	sqlite3_reset(st);
	if (!apart)
		collect_rows(&c);
	if (c.rc && err)
		*err = c.err;
	r->done = r->n;
	return c.rc;
}

static void source_key(const char *source, uint8_t *key)
{
	crypto_generichash(key, LIB_HASH_BYTES, (const uint8_t *)source, strlen(source), NULL, 0);
}

/* The line is bad: 400 and why. Only bad lines hold a message, so a
 * request of many lines costs a pointer a line for them. */
static void prep_bad(struct prep *p, const char *msg)
{
	p->status = 400;
	p->msg = strdup(msg);
}

/* Parses, checks and hashes line `p->line`, s[0..n): p->status and
 * p->msg say what is wrong with it. Touches nothing but `p`. */
static void prep_one(struct prep *p, const char *s, size_t n)
{
	json_error_t je;
	json_t *doc = lib_ndjson_plain(s, n);
	if (!doc)
		doc = json_loadb(s, n, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(doc)) {
		char msg[sizeof je.text + 16];
		snprintf(msg, sizeof msg, doc ? "a line must be a JSON object" : "not JSON: %s",
			 je.text);
		json_decref(doc);
		prep_bad(p, msg);
		return;
	}
	p->doc = doc;
	bool bad = false;
	p->title = opt_str(doc, "title", &bad);
	p->body = opt_str(doc, "body", &bad);
	p->source = opt_str(doc, "source", &bad);
	json_t *tags = json_object_get(doc, "tags");
	lib_err e;
	if (bad || !p->title || !p->body) {
		prep_bad(p, "title and body are required strings; source is a string");
		return;
	}
	if (lib_check_doc(p->title, p->body, p->source, &e) ||
	    lib_tags_text(json_is_null(tags) ? NULL : tags, &p->tags, &e)) {
		prep_bad(p, e.msg);
		return;
	}
	size_t tl = strlen(p->title), bl = strlen(p->body);
	p->size = (int64_t)tl + (int64_t)bl;
	crypto_generichash_state hs;
	crypto_generichash_init(&hs, NULL, 0, sizeof p->hash);
	crypto_generichash_update(&hs, (const uint8_t *)p->title, tl + 1);
	crypto_generichash_update(&hs, (const uint8_t *)p->body, bl + 1);
	crypto_generichash_update(&hs, (const uint8_t *)p->tags, strlen(p->tags));
	crypto_generichash_final(&hs, p->hash, sizeof p->hash);
	if (p->source)
		source_key(p->source, p->key);
	else
		memcpy(p->key, p->hash, sizeof p->key);
}

struct prep_part {
	struct prep *prep;
	uint32_t from, to;
	const char *body;
};

static void *prep_part_run(void *arg)
{
	struct prep_part *pp = arg;
	for (uint32_t i = pp->from; i < pp->to; i++) {
		struct prep *p = &pp->prep[i];
		prep_one(p, pp->body + p->at, p->len);
	}
	return NULL;
}

/* Finds the lines that are not blank and makes their preps, the second
 * half on a thread of its own from BULK_PREP_THREAD_MIN lines on. */
#define BULK_PREP_THREAD_MIN 64

static int prep_lines(struct run *r, const char *body, size_t len, unsigned lines, lib_err *err)
{
	r->prep = calloc(lines ? lines : 1, sizeof *r->prep);
	if (!r->prep)
		return sdk_fail(err, SDK_EIO, "out of memory");
	size_t at = 0;
	for (unsigned line = 1; at < len; line++) {
		const char *nl = memchr(body + at, '\n', len - at);
		size_t end = nl ? (size_t)(nl - body) : len, n = end - at;
		if (n && body[at + n - 1] == '\r')
			n--;
		bool blank = true;
		for (size_t i = 0; blank && i < n; i++)
			blank = body[at + i] == ' ' || body[at + i] == '\t';
		if (!blank) {
			struct prep *p = &r->prep[r->nprep++];
			*p = (struct prep){ .line = line, .at = at, .len = n };
		}
		at = end + 1;
	}
	uint32_t half = r->nprep >= BULK_PREP_THREAD_MIN ? r->nprep / 2 : r->nprep;
	struct prep_part second = { r->prep, half, r->nprep, body }, first = { r->prep, 0, half, body };
	pthread_t th;
	bool apart = half < r->nprep && pthread_create(&th, NULL, prep_part_run, &second) == 0;
	prep_part_run(&first);
	if (apart)
		pthread_join(th, NULL);
	else
		prep_part_run(&second);
	return SDK_OK;
}

/* One prepared line, against the database and the request's waiting
 * documents; takes p's doc and tags. A negative return is the batch
 * failing (storage, memory), BULK_REFUSED a constraint in the fast way;
 * a bad line is an item and 0. */
static int one(struct run *r, struct prep *p, lib_err *err)
{
	json_t *items = r->items;
	struct tally *t = &r->t;
	unsigned line = p->line;
	json_t *doc = p->doc;
	char *tags_text = p->tags;
	const char *title = p->title, *body = p->body, *source = p->source;
	char *holder = NULL; /* a stored document of the source's owner */
	p->doc = NULL, p->tags = NULL;
	lib_err e;
	int rc = SDK_OK;
	if (p->status) {
		item_bad(items, t, line, p->status, p->msg ? p->msg : "out of memory");
		goto out;
	}
	int64_t size = p->size, id = 0;
	const uint8_t *hash = p->hash, *key = p->key;
	/* A document of this request still waiting, else one stored (of a
	 * source: with its owner and size, for the checks below). */
	int64_t waiting = pending_find(r, key, source != NULL), old = 0, was = 0;
	if (waiting >= 0)
		old = r->rows[waiting].id;
	else if (source)
		rc = lib_source_owner(r->db, source, &old, &holder, &was, err);
	else
		rc = hash_find(r->db, r->ix, hash, &old, err);
	if (rc < 0)
		goto out;
	rc = SDK_OK; /* lib_source_owner's 1: found */
	if (!source && old) {
		t->duplicates++;
		item_ok(items, line, 200, "duplicate", old);
		goto out;
	}
	/* What the caller's usage gains, for the quota: a new document, or a
	 * replaced one's growth (a waiting one is a new document of this
	 * request, counted already). */
	int64_t grow = waiting >= 0 ? size - r->rows[waiting].size : size;
	bool counted = true;
	if (old && waiting < 0) {
		/* A stored document of this source: replacing it is changing it,
		 * its owner's or an admin's to do (the owner stays), as an
		 * ingest of its file. Another owner's (an admin's change) moves
		 * that owner's usage, not the caller's: not counted, as there. */
		const char *denied = lib_may_change(&(lib_actor){ r->owner, r->admin }, holder);
		counted = holder && r->owner && !strcmp(holder, r->owner);
		if (denied) {
			item_bad(items, t, line, 403, denied);
			goto out;
		}
		grow = size - was;
	}
	if (r->owner && r->quota && counted &&
	    ((r->quota->docs && !old && t->docs + 1 > r->quota->docs) ||
	     (r->quota->bytes && grow > 0 && t->bytes + grow > r->quota->bytes))) {
		item_bad(items, t, line, 413, "over your librarian quota (documents or bytes)");
		goto out;
	}
	if (old && waiting < 0) {
		/* A stored document of this source: updated in place, now. */
		rc = lib_doc_write_bulk(r->db, r->ix, r->owner, title, body, tags_text, source, size,
					NULL, &id, &e);
		if (rc == SDK_EINVAL) { /* refused by a constraint: this line only */
			item_bad(items, t, line, 400, e.msg);
			rc = SDK_OK;
			goto out;
		}
		if (rc) {
			*err = e;
			goto out;
		}
	} else {
		/* New, or replacing a waiting one of the same source (its id kept). */
		uint32_t k = waiting >= 0 ? (uint32_t)waiting : r->n;
		struct pend *pe = &r->pend[k];
		lib_row *row = &r->rows[k];
		if (waiting >= 0) {
			json_decref(pe->doc);
			free(pe->tags);
		} else {
			bool hit;
			r->slot[key_slot(r, key, source != NULL, &hit)] = k + 1;
			row->id = r->next_id++;
			r->n++;
		}
		*pe = (struct pend){ .doc = doc, .tags = tags_text, .by_source = source != NULL };
		memcpy(pe->hash, hash, LIB_HASH_BYTES);
		memcpy(pe->key, key, LIB_HASH_BYTES);
		*row = (lib_row){ .id = row->id, .created_at = sdk_wall_ms(), .size = size,
				  .title = title, .body = body, .tags = tags_text, .source = source,
				  .owner = r->owner, .hash = source ? NULL : pe->hash };
		id = row->id;
		doc = NULL, tags_text = NULL; /* the row's now */
		if (r->careful) {
			rc = rows_flush(r, &e);
			if (rc == SDK_EINVAL) { /* refused by a constraint: this line only */
				r->done = r->n; /* never inserted: its id is left unused */
				item_bad(items, t, line, 400, e.msg);
				rc = SDK_OK;
				goto out;
			}
			if (rc) {
				*err = e;
				goto out;
			}
		}
	}
	if (counted) {
		t->docs += !old;
		t->bytes += grow;
	}
	if (old)
		t->updated++;
	else
		t->created++;
	item_ok(items, line, old ? 200 : 201, old ? "updated" : "created", id);
out:
	free(holder);
	free(tags_text);
	json_decref(doc);
	return rc;
}

static void run_free(struct run *r)
{
	for (uint32_t i = 0; r->pend && i < r->n; i++) {
		json_decref(r->pend[i].doc);
		free(r->pend[i].tags);
	}
	free(r->pend);
	free(r->rows);
	free(r->slot);
	for (uint32_t i = 0; r->prep && i < r->nprep; i++) {
		json_decref(r->prep[i].doc);
		free(r->prep[i].tags);
		free(r->prep[i].msg);
	}
	free(r->prep);
	json_decref(r->items);
}

/* The lines into r->ix (open, its tails in use), inside the caller's
 * transaction; the caller flushes the index. */
static int run_body(struct run *r, const char *body, size_t len, unsigned lines, lib_err *err)
{
	r->cap = lines;
	r->nslot = 16;
	while (r->nslot < 2 * lines)
		r->nslot *= 2;
	r->items = json_array();
	r->rows = calloc(lines, sizeof *r->rows);
	r->pend = calloc(lines, sizeof *r->pend);
	r->slot = calloc(r->nslot, sizeof *r->slot);
	if (!r->items || !r->rows || !r->pend || !r->slot)
		return sdk_fail(err, SDK_EIO, "out of memory");
	int rc = SDK_OK;
	if (r->owner && r->quota && (r->quota->docs || r->quota->bytes))
		rc = lib_usage(r->db, r->owner, &r->t.docs, &r->t.bytes, err);
	if (!rc)
		rc = next_id(r, err);
	if (!rc)
		rc = prep_lines(r, body, len, lines, err);
	for (uint32_t i = 0; !rc && i < r->nprep; i++)
		rc = one(r, &r->prep[i], err);
	if (!rc)
		rc = rows_flush(r, err);
	return rc;
}

/* The lines, inside the caller's transaction. */
static int run_lines(struct run *r, const char *body, size_t len, unsigned lines, lib_err *err)
{
	int rc = lib_ix_open(r->db, &r->ix, err);
	if (!rc) {
		lib_ix_use_tails(r->ix, r->tails);
		rc = run_body(r, body, len, lines, err);
	}
	if (!rc)
		rc = lib_ix_flush(r->ix, err);
	lib_ix_close(r->ix);
	r->ix = NULL;
	return rc;
}

/* The body's lines, or SDK_EINVAL when there are none or too many. */
static int count_lines(const char *body, size_t len, unsigned *lines, lib_err *err)
{
	unsigned n = 0;
	for (size_t i = 0; i < len; i++)
		n += body[i] == '\n';
	n += len && body[len - 1] != '\n';
	*lines = n;
	if (!len || !n)
		return sdk_fail(err, SDK_EINVAL, "the body is empty: one JSON document a line");
	if (n > LIB_BULK_LINES_MAX)
		return sdk_fail(err, SDK_EINVAL, "at most %u lines a request", LIB_BULK_LINES_MAX);
	return SDK_OK;
}

/* A run's answer; takes its items. */
static int report(struct run *r, int64_t t0, json_t **out, lib_err *err)
{
	json_t *items = r->items;
	r->items = NULL;
	struct tally t = r->t;
	*out = json_pack("{s:I, s:b, s:I, s:I, s:I, s:I, s:o}", "took_ms",
			 (json_int_t)(sdk_mono_ms() - t0), "errors", t.failed > 0, "created",
			 (json_int_t)t.created, "updated", (json_int_t)t.updated, "duplicates",
			 (json_int_t)t.duplicates, "failed", (json_int_t)t.failed, "items", items);
	return *out ? SDK_OK : sdk_fail(err, SDK_EIO, "out of memory");
}

/* lib_bulk_load of a body whose `lines` count_lines counted, answered
 * with took_ms since t0. */
static int load_lines(sqlite3 *db, lib_ix_tails *tails, const char *owner, bool admin,
		      const lib_quota *quota, const char *body, size_t len, unsigned lines,
		      int64_t t0, json_t **out, lib_err *err)
{
	*out = NULL;
	int rc = BULK_REFUSED;
	struct run r;
	for (int careful = 0; rc == BULK_REFUSED && careful < 2; careful++) {
		bool nested;
		r = (struct run){ .db = db, .tails = tails, .owner = owner, .admin = admin,
				  .quota = quota, .careful = careful };
		rc = lib_tx_begin(db, &nested, err);
		if (rc)
			return rc;
		rc = run_lines(&r, body, len, lines, err);
		if (rc)
			lib_tx_rollback(db, nested);
		else
			rc = lib_tx_commit(db, nested, err); /* rolls back when it fails */
		/* Committed for good only outside a caller's transaction. */
		lib_ix_tails_done(tails, !rc && !nested);
		if (rc)
			run_free(&r);
	}
	if (rc)
		return rc;
	rc = report(&r, t0, out, err);
	run_free(&r);
	return rc;
}

int lib_bulk_load(sqlite3 *db, lib_ix_tails *tails, const char *owner, bool admin,
		  const lib_quota *quota, const char *body, size_t len, json_t **out, lib_err *err)
{
	int64_t t0 = sdk_mono_ms();
	*out = NULL;
	unsigned lines;
	int rc = count_lines(body, len, &lines, err);
	return rc ? rc : load_lines(db, tails, owner, admin, quota, body, len, lines, t0, out, err);
}

/* The group's requests [0, n) with good bodies in one transaction, on
 * one index whose flush they share: SDK_OK with every run's report, or
 * a failure (BULK_REFUSED: a constraint the checks did not foresee) with
 * everything rolled back. */
static int group_run(sqlite3 *db, lib_ix_tails *tails, lib_bulk_req *q, const unsigned *lines,
		     struct run *runs, size_t n, int64_t t0, lib_err *err)
{
	bool nested;
	int rc = lib_tx_begin(db, &nested, err);
	if (rc)
		return rc;
	lib_ix *ix = NULL;
	rc = lib_ix_open(db, &ix, err);
	if (!rc)
		lib_ix_use_tails(ix, tails);
	for (size_t i = 0; !rc && i < n; i++) {
		if (!lines[i])
			continue; /* answered alone: its body was refused */
		runs[i] = (struct run){ .db = db, .ix = ix, .tails = tails, .owner = q[i].owner,
					.admin = q[i].admin, .quota = q[i].quota };
		rc = run_body(&runs[i], q[i].body, q[i].len, lines[i], err);
	}
	if (!rc)
		rc = lib_ix_flush(ix, err);
	lib_ix_close(ix);
	for (size_t i = 0; i < n; i++)
		runs[i].ix = NULL;
	if (rc)
		lib_tx_rollback(db, nested);
	else
		rc = lib_tx_commit(db, nested, err); /* rolls back when it fails */
	lib_ix_tails_done(tails, !rc && !nested);
	for (size_t i = 0; !rc && i < n; i++)
		if (lines[i])
			q[i].rc = report(&runs[i], t0, &q[i].out, &q[i].err);
	return rc;
}

unsigned lib_bulk_load_group(sqlite3 *db, lib_ix_tails *tails, lib_bulk_req *q, size_t n)
{
	int64_t t0 = sdk_mono_ms();
	unsigned *lines = calloc(n ? n : 1, sizeof *lines);
	struct run *runs = calloc(n ? n : 1, sizeof *runs);
	unsigned tx = 0;
	if (!lines || !runs) { /* no memory to group in: each alone */
		for (size_t i = 0; i < n; i++) {
			q[i].rc = lib_bulk_load(db, tails, q[i].owner, q[i].admin, q[i].quota,
						q[i].body, q[i].len, &q[i].out, &q[i].err);
			tx += !q[i].rc;
		}
		free(lines);
		free(runs);
		return tx;
	}
	size_t good = 0;
	for (size_t i = 0; i < n; i++) {
		q[i].out = NULL;
		q[i].rc = count_lines(q[i].body, q[i].len, &lines[i], &q[i].err);
		if (q[i].rc)
			lines[i] = 0; /* refused whole: in no run */
		good += !q[i].rc;
	}
	lib_err err;
	int rc = good > 1 ? group_run(db, tails, q, lines, runs, n, t0, &err) : -1;
	for (size_t i = 0; i < n; i++)
		run_free(&runs[i]);
	/* Alone, as if no other had come: one, or the group failed (each
	 * then gets its own report, or its own error, by itself). Its lines
	 * are counted already. */
	tx = !rc;
	for (size_t i = 0; rc && i < n; i++)
		if (!q[i].rc) {
			q[i].rc = load_lines(db, tails, q[i].owner, q[i].admin, q[i].quota, q[i].body,
					     q[i].len, lines[i], t0, &q[i].out, &q[i].err);
			tx += !q[i].rc;
		}
	free(lines);
	free(runs);
	return tx;
}
