/* The memory store's rows: insert (within the quotas), keyset-paged
 * queries, one row's get, patch and delete. */
#include "serve/memory/store_int.h"

#include "serve/memory/filter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int bind_json(sqlite3_stmt *st, int i, json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_STRING:
		return sqlite3_bind_text(st, i, json_string_value(v), (int)json_string_length(v),
					 SQLITE_STATIC);
	case JSON_INTEGER: return sqlite3_bind_int64(st, i, json_integer_value(v));
	case JSON_REAL: return sqlite3_bind_double(st, i, json_real_value(v));
	case JSON_TRUE: return sqlite3_bind_int(st, i, 1);
	case JSON_FALSE: return sqlite3_bind_int(st, i, 0);
	default: return sqlite3_bind_null(st, i);
	}
}

/* A column's SQL value as JSON (a new reference), NULL on failure. */
static json_t *value_json(sqlite3_stmt *st, int col)
{
	switch (sqlite3_column_type(st, col)) {
	case SQLITE_INTEGER: return json_integer(sqlite3_column_int64(st, col));
	case SQLITE_FLOAT: return json_real(sqlite3_column_double(st, col));
	case SQLITE_TEXT:
		return json_stringn((const char *)sqlite3_column_text(st, col),
				    (size_t)sqlite3_column_bytes(st, col));
	case SQLITE_NULL: return json_null();
	default: return NULL;
	}
}

/* What `owner` holds in all their tables: rows and bytes of row JSON. */
static int user_usage(mem_conn *c, const char *owner, int64_t *rows, int64_t *bytes, sdk_err *e)
{
	sqlite3_stmt *st;
	int rc = mem_prep(c, "SELECT coalesce(sum(n_rows), 0), coalesce(sum(bytes), 0)"
			     " FROM mem_tables WHERE owner = ?", &st, e);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		*rows = sqlite3_column_int64(st, 0);
		*bytes = sqlite3_column_int64(st, 1);
	} else {
		rc = mem_db_fail(c->db, e, "count rows");
	}
	sqlite3_finalize(st);
	return rc;
}

/* Reads n_rows of table `id`. */
static int table_rows(mem_conn *c, int64_t id, int64_t *n, sdk_err *e)
{
	sqlite3_stmt *st;
	int rc = mem_prep(c, "SELECT n_rows FROM mem_tables WHERE id = ?", &st, e);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) == SQLITE_ROW)
		*n = sqlite3_column_int64(st, 0);
	else
		rc = mem_db_fail(c->db, e, "count rows");
	sqlite3_finalize(st);
	return rc;
}

static int counts_add(mem_conn *c, int64_t id, int64_t rows, int64_t bytes, sdk_err *e)
{
	sqlite3_stmt *st;
	int rc = mem_prep(c, "UPDATE mem_tables SET n_rows = n_rows + ?, bytes = bytes + ?"
			     " WHERE id = ?", &st, e);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, rows);
	sqlite3_bind_int64(st, 2, bytes);
	sqlite3_bind_int64(st, 3, id);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = mem_db_fail(c->db, e, "update counts");
	sqlite3_finalize(st);
	return rc;
}

static int bytes_quota(const mem_store *s, int64_t have, sdk_err *e)
{
	return sdk_fail(e, SDK_EQUOTA,
			"memory quota: at most %lld bytes of rows per user (you have %lld)",
			(long long)s->quota.bytes, (long long)have);
}

int mem_rows_insert(mem_store *s, const char *user, const char *owner, const char *name,
		    json_t *rows, int64_t now_ms, json_t **out, sdk_err *e)
{
	size_t n = json_is_array(rows) ? json_array_size(rows) : 1;
	if (!json_is_array(rows) && !json_is_object(rows))
		return sdk_fail(e, SDK_EINVAL, "the body is a row (an object) or an array of rows");
	if (n == 0)
		return sdk_fail(e, SDK_EINVAL, "an empty array of rows");
	if (n > MEM_BATCH_MAX)
		return sdk_fail(e, SDK_ETOOLARGE, "at most %d rows at once", MEM_BATCH_MAX);
	mem_conn c;
	mem_conn_get(s, &c);
	mem_tinfo *t = malloc(sizeof *t);
	json_t *ids = json_array();
	mem_buf sql = { 0 };
	sqlite3_stmt *st = NULL;
	int64_t have = 0, user_rows = 0, user_bytes = 0, bytes = 0;
	int rc = !t || !ids ? mem_oom(e) : mem_begin(&c, true, e);
	if (rc == 0)
		rc = mem_resolve(&c, user, owner, name, true, t, e);
	if (rc == 0)
		rc = table_rows(&c, t->id, &have, e);
	if (rc == 0)
		rc = user_usage(&c, t->owner, &user_rows, &user_bytes, e);
	if (rc < 0)
		goto done;
	if (have + (int64_t)n > MEM_ROWS_PER_TABLE_MAX) {
		rc = sdk_fail(e, SDK_EQUOTA, "a table holds at most %d rows (this one has %lld)",
			      MEM_ROWS_PER_TABLE_MAX, (long long)have);
		goto done;
	}
	if (user_rows + (int64_t)n > s->quota.rows) {
		rc = sdk_fail(e, SDK_EQUOTA, "memory quota: at most %lld rows per user (you have %lld)",
			      (long long)s->quota.rows, (long long)user_rows);
		goto done;
	}
	mem_buf_printf(&sql, "INSERT INTO mr_%lld (data, created_ms, updated_ms) VALUES (?, ?, ?)",
		       (long long)t->id);
	if (sql.oom) {
		rc = mem_oom(e);
		goto done;
	}
	if ((rc = mem_prep(&c, sql.p, &st, e)) < 0)
		goto done;
	for (size_t i = 0; i < n; i++) {
		json_t *row = json_is_array(rows) ? json_array_get(rows, i) : rows;
		char err[200];
		size_t len;
		bool too_large;
		char *text = mem_row_encode(&t->cols, row, &len, &too_large, err, sizeof err);
		if (!text) {
			int st_ = too_large ? SDK_ETOOLARGE : SDK_EINVAL;
			rc = json_is_array(rows) ? sdk_fail(e, st_, "rows[%zu]: %s", i, err)
						 : sdk_fail(e, st_, "%s", err);
			goto done;
		}
		bytes += (int64_t)len;
		/* Checked before each write: a batch over the quota stops early. */
		if (user_bytes + bytes > s->quota.bytes) {
			free(text);
			rc = bytes_quota(s, user_bytes, e);
			goto done;
		}
		sqlite3_bind_text(st, 1, text, (int)len, free);
		sqlite3_bind_int64(st, 2, now_ms);
		sqlite3_bind_int64(st, 3, now_ms);
		if (sqlite3_step(st) != SQLITE_DONE) {
			rc = mem_db_fail(c.db, e, "insert row");
			goto done;
		}
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		if (json_array_append_new(ids, json_integer(sqlite3_last_insert_rowid(c.db))) < 0) {
			rc = mem_oom(e);
			goto done;
		}
	}
	if ((rc = counts_add(&c, t->id, (int64_t)n, bytes, e)) < 0 || (rc = mem_commit(&c, e)) < 0)
		goto done;
	if (!(*out = json_pack("{s:O, s:i}", "ids", ids, "count", (int)n)))
		rc = mem_oom(e);
done:
	sqlite3_finalize(st);
	mem_rollback(&c);
	mem_conn_put(&c);
	json_decref(ids);
	mem_buf_free(&sql);
	free(t);
	return rc;
}

static void row_text(sqlite3_stmt *st, mem_buf *out)
{
	mem_buf_printf(out, "{\"id\":%lld,\"data\":", (long long)sqlite3_column_int64(st, 0));
	mem_buf_add(out, (const char *)sqlite3_column_text(st, 1),
		    (size_t)sqlite3_column_bytes(st, 1));
	mem_buf_printf(out, ",\"created_ms\":%lld,\"updated_ms\":%lld}",
		       (long long)sqlite3_column_int64(st, 2),
		       (long long)sqlite3_column_int64(st, 3));
}

/* A JSON string literal of `s` (a name that passed validation). */
static void json_str(mem_buf *out, const char *s)
{
	mem_buf_printf(out, "\"%s\"", s);
}

struct page {
	const mem_order *order;
	const mem_cursor *cursor;
	const mem_filter *filter;
	const char *q;
	unsigned limit;
	const mem_tinfo *t;
	/* filled as rows are read */
	unsigned got;
	char *next; /* the cursor after the last row shown */
	bool stop;
};

/* One keyset pass: appends up to limit+1-got rows to `out`. */
static int page_pass(mem_conn *c, struct page *p, int pass, mem_buf *out, sdk_err *e)
{
	mem_buf sql = { 0 };
	mem_binds *b = malloc(sizeof *b);
	long long id = (long long)p->t->id;
	char rank[48], rowid[48];
	snprintf(rank, sizeof rank, "mf_%lld.rank", id);
	snprintf(rowid, sizeof rowid, "mf_%lld.rowid", id);
	mem_sql_names names = { p->q ? rowid : "r.id", p->q ? rank : NULL };
	if (!b)
		return mem_oom(e);
	b->n = 0;
	mem_buf_str(&sql, "SELECT r.id, r.data, r.created_ms, r.updated_ms, ");
	mem_order_key_sql(p->order, &names, &sql);
	if (p->q)
		mem_buf_printf(&sql, " FROM mf_%lld JOIN mr_%lld r ON r.id = mf_%lld.rowid"
				     " WHERE mf_%lld MATCH ?",
			       id, id, id, id);
	else
		mem_buf_printf(&sql, " FROM mr_%lld r WHERE 1", id);
	int rc;
	sqlite3_stmt *st = NULL;
	if (mem_filter_sql(p->filter, &sql, b) < 0 ||
	    mem_keyset_sql(p->order, p->cursor, pass, &names, &sql, b) < 0) {
		rc = sdk_fail(e, SDK_EINVAL, "the filter is too large");
		goto out;
	}
	mem_order_sql(p->order, &names, &sql);
	mem_buf_str(&sql, " LIMIT ?");
	if (sql.oom) {
		rc = mem_oom(e);
		goto out;
	}
	if ((rc = mem_prep(c, sql.p, &st, e)) < 0)
		goto out;
	int i = 1;
	if (p->q)
		sqlite3_bind_text(st, i++, p->q, -1, SQLITE_STATIC);
	for (size_t k = 0; k < b->n; k++)
		bind_json(st, i++, b->v[k]);
	sqlite3_bind_int64(st, i, (sqlite3_int64)(p->limit + 1 - p->got));
	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (p->got == p->limit || out->len > MEM_PAGE_BYTES_MAX) {
			/* There is more: p->next already points past the last row. */
			p->stop = true;
			break;
		}
		if (p->got)
			mem_buf_str(out, ",");
		row_text(st, out);
		p->got++;
		/* By id, the id alone says where to continue. */
		json_t *key = p->order->kind == MEM_ORDER_ID ? json_null() : value_json(st, 4);
		free(p->next);
		p->next = key ? mem_cursor_make(p->order, key, sqlite3_column_int64(st, 0)) : NULL;
		json_decref(key);
		if (!p->next) {
			rc = mem_oom(e);
			goto out;
		}
	}
	if (step != SQLITE_ROW && step != SQLITE_DONE) {
		if (p->q && (step & 0xff) == SQLITE_ERROR)
			rc = sdk_fail(e, SDK_EINVAL, "q is not a valid full-text query: %s",
				      sqlite3_errmsg(c->db));
		else
			rc = mem_db_fail(c->db, e, "query rows");
		goto out;
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	mem_buf_free(&sql);
	free(b);
	return rc;
}

int mem_rows_query(mem_store *s, const char *user, const char *owner, const char *name,
		   const mem_query *q, mem_buf *out, sdk_err *e)
{
	unsigned limit = q->limit ? q->limit : MEM_LIMIT_DEFAULT;
	if (limit > MEM_LIMIT_MAX)
		return sdk_fail(e, SDK_EINVAL, "limit is 1 to %d", MEM_LIMIT_MAX);
	const char *fq = q->q && *q->q ? q->q : NULL;
	if (fq && strlen(fq) > MEM_Q_BYTES_MAX)
		return sdk_fail(e, SDK_EINVAL, "q is at most %d bytes", MEM_Q_BYTES_MAX);
	mem_conn c;
	mem_conn_get(s, &c);
	mem_tinfo *t = malloc(sizeof *t);
	mem_filter *f = calloc(1, sizeof *f);
	mem_cursor cur = { 0 };
	mem_order ord;
	struct page p = { 0 };
	char err[200];
	int rc = !t || !f ? mem_oom(e) : mem_begin(&c, false, e);
	if (rc == 0)
		rc = mem_resolve(&c, user, owner, name, false, t, e);
	if (rc < 0)
		goto done;
	if (fq && !t->fts) {
		rc = sdk_fail(e, SDK_EINVAL, "table '%s' has no text columns to search with q", name);
		goto done;
	}
	if (mem_filter_parse(q->where, &t->cols, f, err, sizeof err) < 0 ||
	    mem_order_parse(q->order, &t->cols, fq != NULL, &ord, err, sizeof err) < 0 ||
	    mem_cursor_parse(q->cursor, &ord, &cur, err, sizeof err) < 0) {
		rc = sdk_fail(e, SDK_EINVAL, "%s", err);
		goto done;
	}
	p = (struct page){
		.order = &ord, .cursor = &cur, .filter = f, .q = fq, .limit = limit, .t = t
	};
	mem_buf_str(out, "{\"table\":");
	json_str(out, t->name);
	mem_buf_str(out, ",\"owner\":");
	json_str(out, t->owner);
	mem_buf_printf(out, ",\"shared\":%s,\"order\":", t->shared ? "true" : "false");
	json_str(out, ord.spec);
	mem_buf_str(out, ",\"rows\":[");
	int passes = mem_keyset_passes(&ord, &cur);
	for (int pass = 0; pass < passes && !p.stop && p.got <= limit; pass++)
		if ((rc = page_pass(&c, &p, pass, out, e)) < 0)
			goto done;
	mem_buf_printf(out, "],\"count\":%u,\"next_cursor\":", p.got);
	if (p.stop && p.next) {
		mem_buf_str(out, "\"");
		mem_buf_str(out, p.next); /* base64url: nothing to escape */
		mem_buf_str(out, "\"}");
	} else {
		mem_buf_str(out, "null}");
	}
	rc = out->oom ? mem_oom(e) : 0;
done:
	mem_rollback(&c);
	mem_conn_put(&c);
	free(p.next);
	mem_cursor_clear(&cur);
	if (f)
		mem_filter_clear(f);
	free(f);
	free(t);
	return rc;
}

/* Reads row `id` of table `t` into a statement positioned on it. */
static int row_find(mem_conn *c, const mem_tinfo *t, int64_t id, sqlite3_stmt **out,
		    sdk_err *e)
{
	char sql[160];
	snprintf(sql, sizeof sql, "SELECT r.id, r.data, r.created_ms, r.updated_ms FROM mr_%lld r"
				  " WHERE r.id = ?", (long long)t->id);
	sqlite3_stmt *st;
	int rc = mem_prep(c, sql, &st, e);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		*out = st;
		return 0;
	}
	if (step == SQLITE_DONE)
		rc = sdk_fail(e, SDK_ENOTFOUND, "no row %lld in table '%s'", (long long)id, t->name);
	else
		rc = mem_db_fail(c->db, e, "read row");
	sqlite3_finalize(st);
	return rc;
}

int mem_row_get(mem_store *s, const char *user, const char *owner, const char *name,
		int64_t id, mem_buf *out, sdk_err *e)
{
	mem_conn c;
	mem_conn_get(s, &c);
	mem_tinfo *t = malloc(sizeof *t);
	sqlite3_stmt *st = NULL;
	int rc = !t ? mem_oom(e) : mem_begin(&c, false, e);
	if (rc == 0)
		rc = mem_resolve(&c, user, owner, name, false, t, e);
	if (rc == 0)
		rc = row_find(&c, t, id, &st, e);
	if (rc == 0) {
		row_text(st, out);
		rc = out->oom ? mem_oom(e) : 0;
	}
	sqlite3_finalize(st);
	mem_rollback(&c);
	mem_conn_put(&c);
	free(t);
	return rc;
}

/* The patched row as compact JSON (*text, malloc'd) from the stored one. */
static int patch_apply(const mem_tinfo *t, sqlite3_stmt *st, int64_t id, json_t *patch,
		       char **text, size_t *len, sdk_err *e)
{
	json_t *row = json_loadb((const char *)sqlite3_column_text(st, 1),
				 (size_t)sqlite3_column_bytes(st, 1), 0, NULL);
	int rc = 0;
	if (!json_is_object(row))
		rc = sdk_fail(e, SDK_ECORRUPT, "row %lld is unreadable", (long long)id);
	const char *key;
	json_t *v;
	if (rc == 0)
		json_object_foreach(patch, key, v) {
			if (json_is_null(v))
				json_object_del(row, key);
			else if (json_object_set(row, key, v) < 0)
				rc = mem_oom(e);
		}
	char err[200];
	bool too_large;
	if (rc == 0 && !(*text = mem_row_encode(&t->cols, row, len, &too_large, err, sizeof err)))
		rc = sdk_fail(e, too_large ? SDK_ETOOLARGE : SDK_EINVAL, "%s", err);
	json_decref(row);
	return rc;
}

int mem_row_patch(mem_store *s, const char *user, const char *owner, const char *name,
		  int64_t id, json_t *patch, int64_t now_ms, mem_buf *out, sdk_err *e)
{
	if (!json_is_object(patch))
		return sdk_fail(e, SDK_EINVAL,
				"the body is an object of keys to set (null removes)");
	mem_conn c;
	mem_conn_get(s, &c);
	mem_tinfo *t = malloc(sizeof *t);
	char *text = NULL;
	size_t len = 0;
	sqlite3_stmt *st = NULL;
	int64_t old_len = 0, user_rows = 0, user_bytes = 0;
	int rc = !t ? mem_oom(e) : mem_begin(&c, true, e);
	if (rc == 0)
		rc = mem_resolve(&c, user, owner, name, true, t, e);
	if (rc == 0)
		rc = row_find(&c, t, id, &st, e);
	if (rc < 0)
		goto done;
	old_len = sqlite3_column_bytes(st, 1);
	rc = patch_apply(t, st, id, patch, &text, &len, e);
	sqlite3_finalize(st);
	st = NULL;
	if (rc == 0)
		rc = user_usage(&c, t->owner, &user_rows, &user_bytes, e);
	if (rc < 0)
		goto done;
	if ((int64_t)len > old_len && user_bytes + (int64_t)len - old_len > s->quota.bytes) {
		rc = bytes_quota(s, user_bytes, e);
		goto done;
	}
	char sql[128];
	snprintf(sql, sizeof sql, "UPDATE mr_%lld SET data = ?, updated_ms = ? WHERE id = ?",
		 (long long)t->id);
	if ((rc = mem_prep(&c, sql, &st, e)) < 0)
		goto done;
	sqlite3_bind_text(st, 1, text, (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now_ms);
	sqlite3_bind_int64(st, 3, id);
	if (sqlite3_step(st) != SQLITE_DONE) {
		rc = mem_db_fail(c.db, e, "update row");
		goto done;
	}
	sqlite3_finalize(st);
	st = NULL;
	if ((rc = counts_add(&c, t->id, 0, (int64_t)len - old_len, e)) < 0 ||
	    (rc = row_find(&c, t, id, &st, e)) < 0)
		goto done;
	row_text(st, out);
	if (out->oom) {
		rc = mem_oom(e);
		goto done;
	}
	sqlite3_finalize(st);
	st = NULL;
	rc = mem_commit(&c, e);
done:
	sqlite3_finalize(st);
	mem_rollback(&c);
	mem_conn_put(&c);
	free(text);
	free(t);
	return rc;
}

int mem_row_delete(mem_store *s, const char *user, const char *owner, const char *name,
		   int64_t id, json_t **out, sdk_err *e)
{
	mem_conn c;
	mem_conn_get(s, &c);
	mem_tinfo *t = malloc(sizeof *t);
	sqlite3_stmt *st = NULL;
	int rc = !t ? mem_oom(e) : mem_begin(&c, true, e);
	if (rc == 0)
		rc = mem_resolve(&c, user, owner, name, true, t, e);
	if (rc == 0)
		rc = row_find(&c, t, id, &st, e);
	if (rc < 0)
		goto done;
	int64_t len = sqlite3_column_bytes(st, 1);
	sqlite3_finalize(st);
	st = NULL;
	char sql[96];
	snprintf(sql, sizeof sql, "DELETE FROM mr_%lld WHERE id = ?", (long long)t->id);
	if ((rc = mem_prep(&c, sql, &st, e)) < 0)
		goto done;
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) != SQLITE_DONE) {
		rc = mem_db_fail(c.db, e, "delete row");
		goto done;
	}
	if ((rc = counts_add(&c, t->id, -1, -len, e)) < 0 || (rc = mem_commit(&c, e)) < 0)
		goto done;
	if (!(*out = json_pack("{s:I, s:b}", "id", (json_int_t)id, "deleted", 1)))
		rc = mem_oom(e);
done:
	sqlite3_finalize(st);
	mem_rollback(&c);
	mem_conn_put(&c);
	free(t);
	return rc;
}
