/* The telemetry store (store.h). */
#include "kernels/telemetry/store.h"

#include "sdk/buf.h"
#include "sdk/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS spans ("
	" id INTEGER PRIMARY KEY, trace_id TEXT NOT NULL, span_id TEXT NOT NULL,"
	" parent_id TEXT NOT NULL, service TEXT NOT NULL, name TEXT NOT NULL,"
	" kind INTEGER NOT NULL, start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL,"
	" duration_ns INTEGER NOT NULL, status INTEGER NOT NULL,"
	" received_ms INTEGER NOT NULL, body TEXT NOT NULL);"
	"CREATE INDEX IF NOT EXISTS spans_trace ON spans(trace_id);"
	"CREATE INDEX IF NOT EXISTS spans_start ON spans(start_ns);"
	"CREATE INDEX IF NOT EXISTS spans_service ON spans(service, start_ns);"
	"CREATE INDEX IF NOT EXISTS spans_name ON spans(name, start_ns);"
	"CREATE INDEX IF NOT EXISTS spans_received ON spans(received_ms);"
	"CREATE TABLE IF NOT EXISTS span_attrs (span INTEGER NOT NULL, key TEXT NOT NULL,"
	" value TEXT NOT NULL);"
	"CREATE INDEX IF NOT EXISTS span_attrs_kv ON span_attrs(key, value);"
	"CREATE INDEX IF NOT EXISTS span_attrs_span ON span_attrs(span);"
	"CREATE TABLE IF NOT EXISTS logs ("
	" id INTEGER PRIMARY KEY, trace_id TEXT NOT NULL, span_id TEXT NOT NULL,"
	" service TEXT NOT NULL, time_ns INTEGER NOT NULL, severity INTEGER NOT NULL,"
	" received_ms INTEGER NOT NULL, body TEXT NOT NULL);"
	"CREATE INDEX IF NOT EXISTS logs_trace ON logs(trace_id, time_ns);"
	"CREATE INDEX IF NOT EXISTS logs_time ON logs(time_ns);"
	"CREATE INDEX IF NOT EXISTS logs_received ON logs(received_ms);";

int tel_store_init(sqlite3 *db, sdk_err *err)
{
	if (sqlite3_exec(db, schema, NULL, NULL, NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, "create the telemetry tables");
	return 0;
}

static int begin(sqlite3 *db, sdk_err *err)
{
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, "begin");
	return 0;
}

static int finish(sqlite3 *db, int rc, sdk_err *err, const char *what)
{
	if (rc == 0 && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
		return 0;
	if (rc == 0)
		rc = sdk_db_fail(db, err, what);
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

static const char *text(const otlp_batch *b, size_t at)
{
	return b->text.p + at;
}

/* Rows one INSERT statement takes at most. A statement's fixed cost (its step,
 * reset and halt, a statement journal for the spans' five indexes) was
 * about a quarter of a span's SQLite instructions when each row was a
 * statement of its own; in chunks it is paid once for many rows. Each
 * chunk's variables stay far below SQLite's limit (32766). */
#define SPANS_CHUNK 16 /* 13 variables a row */
#define ATTRS_CHUNK 64 /* 3 a row */

static const char span_cols[] =
	"INSERT INTO spans(id, trace_id, span_id, parent_id, service, name, kind, start_ns,"
	" end_ns, duration_ns, status, received_ms, body) VALUES ";
static const char span_row[] = "(?,?,?,?,?,?,?,?,?,?,?,?,?)";
static const char attr_cols[] = "INSERT INTO span_attrs(span, key, value) VALUES ";
static const char attr_row[] = "(?,?,?)";

/* An INSERT of n rows: head, then n times row. */
static int prepare_rows(sqlite3 *db, const char *head, const char *row, size_t n,
			sqlite3_stmt **st, sdk_err *err)
{
	sdk_buf sql = { 0 };
	sdk_buf_str(&sql, head);
	for (size_t i = 0; i < n; i++) {
		if (i)
			sdk_buf_add(&sql, ",", 1);
		sdk_buf_str(&sql, row);
	}
	int rc = sql.oom ? SQLITE_NOMEM : sqlite3_prepare_v2(db, sql.p, (int)sql.len, st, NULL);
	sdk_buf_free(&sql);
	if (rc != SQLITE_OK)
		return sdk_db_fail(db, err, "prepare the span insert");
	return 0;
}

/* Chunks are powers of two up to the full chunk, so that a batch of any
 * size is a few of them and each statement is prepared once in the
 * kernel's life (parsing a 64-row INSERT for every batch cost more than
 * the statements saved). */
#define CHUNK_SIZES 7 /* 1, 2, 4 ... 64 rows */

struct tel_stmts {
	sqlite3_stmt *spans[CHUNK_SIZES], *attrs[CHUNK_SIZES];
	sqlite3_stmt *last_id;
};

tel_stmts *tel_stmts_new(void)
{
	return calloc(1, sizeof(tel_stmts));
}

void tel_stmts_free(tel_stmts *s)
{
	if (!s)
		return;
	for (int i = 0; i < CHUNK_SIZES; i++) {
		sqlite3_finalize(s->spans[i]);
		sqlite3_finalize(s->attrs[i]);
	}
	sqlite3_finalize(s->last_id);
	free(s);
}

/* The largest chunk of at most `left` rows and `full`: its size. */
static size_t chunk_size(size_t left, size_t full)
{
	size_t n = 1;
	while (n * 2 <= left && n * 2 <= full)
		n *= 2;
	return n;
}

static int log2_of(size_t n)
{
	int k = 0;
	while ((size_t)1 << (k + 1) <= n)
		k++;
	return k;
}

/* The statement for a chunk of n rows (a power of two), from `cache`,
 * prepared the first time. */
static sqlite3_stmt *chunk_of(sqlite3 *db, sqlite3_stmt **cache, const char *head,
			      const char *row, size_t n, sdk_err *err)
{
	sqlite3_stmt **st = &cache[log2_of(n)];
	if (*st) {
		sqlite3_reset(*st);
		return *st;
	}
	if (prepare_rows(db, head, row, n, st, err) < 0)
		return NULL;
	return *st;
}

static int step_done(sqlite3 *db, sqlite3_stmt *st, const char *what, sdk_err *err)
{
	if (sqlite3_step(st) != SQLITE_DONE)
		return sdk_db_fail(db, err, what);
	return 0;
}

/* The id the next span gets: as SQLite picks an INTEGER PRIMARY KEY
 * (the largest plus one), given explicitly so that a chunk's rows know
 * their ids before their attributes are written. */
static int next_span_id(sqlite3 *db, tel_stmts *c, size_t n, sqlite3_int64 *id, sdk_err *err)
{
	sqlite3_stmt *st = c->last_id;
	if (st)
		sqlite3_reset(st);
	else if (sqlite3_prepare_v2(db, "SELECT coalesce(max(id), 0) FROM spans", -1, &st, NULL) !=
		 SQLITE_OK)
		return sdk_db_fail(db, err, "prepare the span insert");
	c->last_id = st;
	int rc = sqlite3_step(st);
	sqlite3_int64 max = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	if (rc != SQLITE_ROW)
		return sdk_db_fail(db, err, "read the last span id");
	if (max > INT64_MAX - (sqlite3_int64)n)
		return sdk_fail(err, SDK_EIO, "the span ids are used up");
	*id = max + 1;
	return 0;
}

static void bind_span(sqlite3_stmt *st, int at, const otlp_batch *b, const otlp_row *r,
		      sqlite3_int64 id, int64_t now_ms)
{
	sqlite3_bind_int64(st, at + 1, id);
	sqlite3_bind_text(st, at + 2, r->trace_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, at + 3, r->span_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, at + 4, r->parent_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, at + 5, text(b, r->service), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, at + 6, text(b, r->name), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, at + 7, r->kind);
	sqlite3_bind_int64(st, at + 8, r->start_ns);
	sqlite3_bind_int64(st, at + 9, r->end_ns);
	sqlite3_bind_int64(st, at + 10, r->end_ns - r->start_ns);
	sqlite3_bind_int64(st, at + 11, r->status);
	sqlite3_bind_int64(st, at + 12, now_ms);
	sqlite3_bind_text(st, at + 13, b->bodies.p + r->body, (int)r->body_len, SQLITE_STATIC);
}

/* The attribute rows of the batch, in the order they always had (each
 * span's own, then its resource's, span after span), a chunk at a time. */
typedef struct attr_cursor {
	size_t row, k; /* the k-th attribute of rows[row] */
} attr_cursor;

static const otlp_attr *next_attr(const otlp_batch *b, attr_cursor *c, size_t *row)
{
	while (c->row < b->n_rows) {
		const otlp_row *r = &b->rows[c->row];
		if (c->k < r->n_attrs + r->n_res_attrs) {
			size_t k = c->k++;
			*row = c->row;
			return &b->attrs[k < r->n_attrs ? r->attr0 + k : r->res_attr0 + k - r->n_attrs];
		}
		c->row++, c->k = 0;
	}
	return NULL;
}

static int insert_attrs(sqlite3 *db, tel_stmts *c, const otlp_batch *b, sqlite3_int64 id0,
			sdk_err *err)
{
	size_t total = 0;
	for (size_t i = 0; i < b->n_rows; i++)
		total += b->rows[i].n_attrs + b->rows[i].n_res_attrs;
	attr_cursor cur = { 0 };
	int rc = 0;
	for (size_t done = 0; done < total && rc == 0;) {
		size_t n = chunk_size(total - done, ATTRS_CHUNK);
		sqlite3_stmt *st = chunk_of(db, c->attrs, attr_cols, attr_row, n, err);
		if (!st) {
			rc = SDK_EIO;
			break;
		}
		for (size_t i = 0; i < n; i++) {
			size_t row = 0;
			const otlp_attr *a = next_attr(b, &cur, &row);
			sqlite3_bind_int64(st, (int)(3 * i + 1), id0 + (sqlite3_int64)row);
			sqlite3_bind_text(st, (int)(3 * i + 2), text(b, a->key), -1, SQLITE_STATIC);
			sqlite3_bind_text(st, (int)(3 * i + 3), text(b, a->value), -1, SQLITE_STATIC);
		}
		rc = step_done(db, st, "insert a span attribute", err);
		/* Unbound, so that no statement kept for the next batch points
		 * into this one's text. */
		sqlite3_clear_bindings(st);
		done += n;
	}
	return rc;
}

int tel_store_spans(sqlite3 *db, tel_stmts *c, const otlp_batch *b, int64_t now_ms,
		    sdk_err *err)
{
	int rc = begin(db, err);
	if (rc < 0)
		return rc;
	sqlite3_int64 id0 = 0;
	if ((rc = next_span_id(db, c, b->n_rows, &id0, err)) < 0)
		goto out;
	for (size_t done = 0; done < b->n_rows;) {
		size_t n = chunk_size(b->n_rows - done, SPANS_CHUNK);
		sqlite3_stmt *st = chunk_of(db, c->spans, span_cols, span_row, n, err);
		if (!st) {
			rc = SDK_EIO;
			goto out;
		}
		for (size_t i = 0; i < n; i++)
			bind_span(st, (int)(13 * i), b, &b->rows[done + i],
				  id0 + (sqlite3_int64)(done + i), now_ms);
		rc = step_done(db, st, "insert a span", err);
		sqlite3_clear_bindings(st);
		if (rc < 0)
			goto out;
		done += n;
	}
	rc = insert_attrs(db, c, b, id0, err);
out:
	return finish(db, rc, err, "commit the spans");
}

int tel_store_logs(sqlite3 *db, const otlp_batch *b, int64_t now_ms, sdk_err *err)
{
	sqlite3_stmt *ins = NULL;
	int rc = begin(db, err);
	if (rc < 0)
		return rc;
	if (sqlite3_prepare_v2(db,
			       "INSERT INTO logs(trace_id, span_id, service, time_ns, severity,"
			       " received_ms, body) VALUES (?,?,?,?,?,?,?)",
			       -1, &ins, NULL) != SQLITE_OK) {
		rc = sdk_db_fail(db, err, "prepare the log insert");
		goto out;
	}
	for (size_t i = 0; i < b->n_rows; i++) {
		const otlp_row *r = &b->rows[i];
		sqlite3_reset(ins);
		sqlite3_bind_text(ins, 1, r->trace_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 2, r->span_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 3, text(b, r->service), -1, SQLITE_STATIC);
		sqlite3_bind_int64(ins, 4, r->time_ns);
		sqlite3_bind_int64(ins, 5, r->severity);
		sqlite3_bind_int64(ins, 6, now_ms);
		sqlite3_bind_text(ins, 7, b->bodies.p + r->body, (int)r->body_len, SQLITE_STATIC);
		if (sqlite3_step(ins) != SQLITE_DONE) {
			rc = sdk_db_fail(db, err, "insert a log record");
			goto out;
		}
	}
out:
	sqlite3_finalize(ins);
	return finish(db, rc, err, "commit the log records");
}

/* A stored body with "service" added (a query's answer). */
static json_t *body_of(sqlite3_stmt *st, int col, const char *service)
{
	json_t *b = json_loads((const char *)sqlite3_column_text(st, col), 0, NULL);
	if (b && service)
		json_object_set_new(b, "service", json_string(service));
	return b;
}

/* Steps `st` (its columns: service, body) to its end and finalizes it:
 * *out the bodies, each with its service, in row order. */
static int bodies_of(sqlite3 *db, sqlite3_stmt *st, const char *what, json_t **out,
		     sdk_err *err)
{
	json_t *a = json_array();
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *b = body_of(st, 1, (const char *)sqlite3_column_text(st, 0));
		if (b)
			json_array_append_new(a, b);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		json_decref(a);
		return sdk_db_fail(db, err, what);
	}
	*out = a;
	return 0;
}

int tel_trace(sqlite3 *db, const char *trace_id, json_t **out, sdk_err *err)
{
	*out = NULL;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "SELECT span_id, parent_id, service, body FROM spans WHERE trace_id = ?"
			       " ORDER BY start_ns, id LIMIT ?",
			       -1, &st, NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, "prepare the trace query");
	sqlite3_bind_text(st, 1, trace_id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, TEL_TRACE_SPANS_MAX);
	json_t *by_id = json_object(), *order = json_array();
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *b = body_of(st, 3, (const char *)sqlite3_column_text(st, 2));
		if (!b)
			continue;
		json_object_set_new(b, "children", json_array());
		/* A span sent twice is one node (the first). */
		const char *sid = (const char *)sqlite3_column_text(st, 0);
		if (json_object_get(by_id, sid)) {
			json_decref(b);
			continue;
		}
		json_object_set(by_id, sid, b);
		json_array_append_new(order, b);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		json_decref(by_id);
		json_decref(order);
		return sdk_db_fail(db, err, "read a trace");
	}
	if (json_array_size(order) == 0) {
		json_decref(by_id);
		json_decref(order);
		return sdk_fail(err, SDK_ENOTFOUND, "no span of trace %s is stored", trace_id);
	}
	/* Children in start order under their parents; a span whose parent
	 * is not stored (or has none) is a root. */
	json_t *roots = json_array(), *s;
	size_t i;
	json_array_foreach(order, i, s) {
		const char *pid = json_string_value(json_object_get(s, "parentSpanId"));
		json_t *parent = pid ? json_object_get(by_id, pid) : NULL;
		if (parent && parent != s)
			json_array_append(json_object_get(parent, "children"), s);
		else
			json_array_append(roots, s);
	}
	*out = json_pack("{s:s, s:I, s:o}", "traceId", trace_id, "spanCount",
			 (json_int_t)json_array_size(order), "roots", roots);
	json_decref(by_id);
	json_decref(order);
	return 0;
}

int tel_search(sqlite3 *db, const tel_span_filter *f, json_t **out, sdk_err *err)
{
	*out = NULL;
	char sql[1024] = "SELECT s.service, s.body FROM spans s";
	if (f->attr_key)
		strcat(sql, " JOIN span_attrs a ON a.span = s.id AND a.key = ?5 AND a.value = ?6");
	strcat(sql, " WHERE (?1 IS NULL OR s.service = ?1) AND (?2 IS NULL OR s.name = ?2)"
		    " AND (?3 < 0 OR s.status = ?3) AND s.duration_ns >= ?4"
		    " AND (?7 = 0 OR s.duration_ns <= ?7) AND s.start_ns >= ?8"
		    " AND (?9 = 0 OR s.start_ns < ?9)"
		    " GROUP BY s.id ORDER BY s.start_ns DESC, s.id DESC LIMIT ?10");
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, "prepare the span search");
	if (f->service)
		sqlite3_bind_text(st, 1, f->service, -1, SQLITE_STATIC);
	if (f->name)
		sqlite3_bind_text(st, 2, f->name, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, f->status);
	sqlite3_bind_int64(st, 4, f->min_duration_ns);
	if (f->attr_key) {
		sqlite3_bind_text(st, 5, f->attr_key, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 6, f->attr_value, -1, SQLITE_STATIC);
	}
	sqlite3_bind_int64(st, 7, f->max_duration_ns);
	sqlite3_bind_int64(st, 8, f->since_ns);
	sqlite3_bind_int64(st, 9, f->until_ns);
	sqlite3_bind_int(st, 10, (int)f->limit);
	return bodies_of(db, st, "search spans", out, err);
}

int tel_logs(sqlite3 *db, const tel_log_filter *f, json_t **out, sdk_err *err)
{
	*out = NULL;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "SELECT service, body FROM logs WHERE (?1 IS NULL OR trace_id = ?1)"
			       " AND (?2 IS NULL OR span_id = ?2) AND (?3 IS NULL OR service = ?3)"
			       " AND time_ns >= ?4 AND (?5 = 0 OR time_ns < ?5)"
			       " ORDER BY time_ns, id LIMIT ?6",
			       -1, &st, NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, "prepare the log query");
	if (f->trace_id)
		sqlite3_bind_text(st, 1, f->trace_id, -1, SQLITE_STATIC);
	if (f->span_id)
		sqlite3_bind_text(st, 2, f->span_id, -1, SQLITE_STATIC);
	if (f->service)
		sqlite3_bind_text(st, 3, f->service, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, f->since_ns);
	sqlite3_bind_int64(st, 5, f->until_ns);
	sqlite3_bind_int(st, 6, (int)f->limit);
	return bodies_of(db, st, "read log records", out, err);
}

static int exec_id(sqlite3 *db, const char *sql, int64_t arg, sdk_err *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, "prepare retention");
	sqlite3_bind_int64(st, 1, arg);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return sdk_db_fail(db, err, "retention");
	return sqlite3_changes(db);
}

static int64_t live_bytes(sqlite3 *db)
{
	int64_t v[3] = { 0, 0, 0 };
	static const char *const q[] = { "PRAGMA page_count", "PRAGMA freelist_count",
					 "PRAGMA page_size" };
	for (int i = 0; i < 3; i++) {
		sqlite3_stmt *st;
		if (sqlite3_prepare_v2(db, q[i], -1, &st, NULL) == SQLITE_OK &&
		    sqlite3_step(st) == SQLITE_ROW)
			v[i] = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	return (v[0] - v[1]) * v[2];
}

#define RETAIN_CHUNK 200 /* rows deleted per step while over the size */

int tel_retain(sqlite3 *db, int64_t now_ms, int64_t max_age_ms, size_t max_bytes,
	       unsigned long long *deleted, sdk_err *err)
{
	*deleted = 0;
	int64_t cutoff = now_ms - max_age_ms;
	int n;
	/* Ids grow with time received, so an age is an id bound. */
	if ((n = exec_id(db,
			 "DELETE FROM span_attrs WHERE span <= (SELECT max(id) FROM spans"
			 " WHERE received_ms < ?1)",
			 cutoff, err)) < 0 ||
	    (n = exec_id(db, "DELETE FROM spans WHERE received_ms < ?1", cutoff, err)) < 0)
		return n;
	*deleted += (unsigned)n;
	if ((n = exec_id(db, "DELETE FROM logs WHERE received_ms < ?1", cutoff, err)) < 0)
		return n;
	*deleted += (unsigned)n;
	/* Then the oldest of each, a chunk at a time, until the live pages
	 * fit: freed pages are reused by later writes (no VACUUM). */
	for (int guard = 0; guard < 10000 && live_bytes(db) > (int64_t)max_bytes; guard++) {
		int a, b;
		if (exec_id(db,
			    "DELETE FROM span_attrs WHERE span <= (SELECT max(id) FROM"
			    " (SELECT id FROM spans ORDER BY id LIMIT ?1))",
			    RETAIN_CHUNK, err) < 0 ||
		    (a = exec_id(db,
				 "DELETE FROM spans WHERE id <= (SELECT max(id) FROM"
				 " (SELECT id FROM spans ORDER BY id LIMIT ?1))",
				 RETAIN_CHUNK, err)) < 0 ||
		    (b = exec_id(db,
				 "DELETE FROM logs WHERE id <= (SELECT max(id) FROM"
				 " (SELECT id FROM logs ORDER BY id LIMIT ?1))",
				 RETAIN_CHUNK, err)) < 0)
			return SDK_EIO;
		*deleted += (unsigned)(a + b);
		if (a + b == 0)
			break;
	}
	return 0;
}
