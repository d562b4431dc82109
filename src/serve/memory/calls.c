/* The memory store's calls (store.h), each written once over the steps
 * of the engine the store opened with (engine.h): SQLite or PostgreSQL
 * differ in their SQL, never in what a call checks, counts or answers. */
#include "serve/memory/store_int.h"

#include <stdlib.h>
#include <string.h>

/* --------------------------------------------------------------------- */
/* Tables */

int mem_table_create(mem_store *s, const char *user, json_t *spec, int64_t now_ms, json_t **out,
		     sdk_err *e)
{
	const mem_engine *en = s->eng;
	const char *name = NULL, *desc = "";
	char *ctext = NULL;
	mem_columns *cols = malloc(sizeof *cols);
	int rc = cols ? mem_spec_parse(spec, &name, &desc, cols, &ctext, e) : mem_oom(e);
	void *c = NULL;
	if (rc == 0)
		rc = en->get(s, &c, e);
	if (rc < 0)
		goto out;
	int64_t n = 0, id = 0;
	json_t *o = NULL;
	if ((rc = en->begin(c, true, false, e)) < 0 || (rc = en->tables_owned(c, user, &n, e)) < 0 ||
	    (rc = mem_quota_tables(&s->quota, n, e)) < 0)
		goto done;
	rc = en->table_add(c, user, name, desc, ctext, cols, now_ms, &id, e);
	if (rc == SDK_ECONFLICT)
		rc = mem_table_taken(name, e);
	if (rc < 0 || (rc = en->table_show(c, id, user, &o, e)) < 0)
		goto done;
	if ((rc = en->commit(c, e)) < 0)
		json_decref(o);
	else
		*out = o;
done:
	en->put(c);
out:
	free(ctext);
	free(cols);
	return rc;
}

int mem_table_list(mem_store *s, const char *user, json_t **out, sdk_err *e)
{
	const mem_engine *en = s->eng;
	void *c;
	int rc = en->get(s, &c, e);
	if (rc < 0)
		return rc;
	json_t *tables = json_array();
	rc = tables ? en->begin(c, false, false, e) : mem_oom(e);
	if (rc == 0)
		rc = en->table_list(c, user, tables, e);
	en->put(c);
	if (rc == 0)
		rc = mem_tables_answer(tables, out, e);
	json_decref(tables);
	return rc;
}

/* A call on one table: the engine, its connection, the table. */
typedef struct call {
	const mem_engine *en;
	void *c;
	mem_tinfo *t;
} call;

static void call_end(call *k)
{
	k->en->put(k->c);
	free(k->t);
}

/* Gets a connection, begins and resolves the table: the start of every
 * call on one table. 0 with *k to give back (call_end), or a status with
 * nothing held. */
static int call_start(mem_store *s, call *k, const char *user, const char *owner,
		      const char *name, bool write, bool drop, sdk_err *e)
{
	*k = (call){ .en = s->eng };
	if (!(k->t = malloc(sizeof *k->t)))
		return mem_oom(e);
	int rc = k->en->get(s, &k->c, e);
	if (rc < 0) {
		free(k->t);
		return rc;
	}
	if ((rc = k->en->begin(k->c, write, drop, e)) == 0)
		rc = k->en->resolve(k->c, user, owner, name, write, k->t, e);
	if (rc < 0)
		call_end(k);
	return rc;
}

int mem_table_get(mem_store *s, const char *user, const char *owner, const char *name,
		  json_t **out, sdk_err *e)
{
	call k;
	int rc = call_start(s, &k, user, owner, name, false, false, e);
	if (rc < 0)
		return rc;
	rc = k.en->table_show(k.c, k.t->id, user, out, e);
	call_end(&k);
	return rc;
}

int mem_table_delete(mem_store *s, const char *user, const char *owner, const char *name,
		     json_t **out, sdk_err *e)
{
	call k;
	int rc = call_start(s, &k, user, owner, name, true, true, e);
	if (rc < 0)
		return rc;
	if ((rc = k.en->table_drop(k.c, k.t->id, e)) == 0 && (rc = k.en->commit(k.c, e)) == 0) {
		k.en->reclaim(k.c);
		rc = mem_table_deleted(k.t->name, out, e);
	}
	call_end(&k);
	return rc;
}

int mem_user_purge(mem_store *s, const char *user, sdk_err *e)
{
	const mem_engine *en = s->eng;
	void *c;
	int rc = en->get(s, &c, e), dropped = 0;
	if (rc < 0)
		return rc;
	/* One table per transaction, so a huge user never holds the write
	 * lock for long; the last transaction finds none and drops the
	 * shares given to the user. */
	for (;;) {
		int64_t id = 0;
		if ((rc = en->begin(c, true, true, e)) < 0)
			break;
		if ((rc = en->table_first(c, user, &id, e)) <= 0)
			break; /* none left (0), or an error */
		if ((rc = en->table_drop(c, id, e)) < 0 || (rc = en->commit(c, e)) < 0)
			break;
		dropped++;
	}
	if (rc == 0)
		rc = en->shares_drop_user(c, user, e);
	if (rc == 0)
		rc = en->commit(c, e);
	if (rc == 0 && dropped)
		en->reclaim(c);
	en->put(c);
	return rc < 0 ? rc : dropped;
}

/* --------------------------------------------------------------------- */
/* Rows */

/* The batch checked and encoded, in order, stopping at the first row
 * that fails or that would pass the bytes quota. */
static int batch_encode(mem_store *s, const mem_tinfo *t, json_t *rows, size_t n,
			int64_t user_bytes, char **text, size_t *len, int64_t *bytes, sdk_err *e)
{
	for (size_t i = 0; i < n; i++) {
		int rc = mem_batch_encode(&t->cols, rows, i, &text[i], &len[i], e);
		if (rc < 0)
			return rc;
		*bytes += (int64_t)len[i];
		if (user_bytes + *bytes > s->quota.bytes)
			return mem_quota_bytes(&s->quota, user_bytes, e);
	}
	return 0;
}

int mem_rows_insert(mem_store *s, const char *user, const char *owner, const char *name,
		    json_t *rows, int64_t now_ms, json_t **out, sdk_err *e)
{
	size_t n;
	int rc = mem_batch_check(rows, &n, e);
	if (rc < 0)
		return rc;
	call k;
	if ((rc = call_start(s, &k, user, owner, name, true, false, e)) < 0)
		return rc;
	char **text = calloc(n, sizeof *text);
	size_t *len = calloc(n, sizeof *len);
	json_t *ids = json_array();
	int64_t have = 0, user_rows = 0, user_bytes = 0, bytes = 0;
	rc = !text || !len || !ids ? mem_oom(e)
				   : k.en->usage(k.c, k.t, &have, &user_rows, &user_bytes, e);
	if (rc == 0)
		rc = mem_quota_rows(&s->quota, have, user_rows, n, e);
	if (rc == 0)
		rc = batch_encode(s, k.t, rows, n, user_bytes, text, len, &bytes, e);
	if (rc == 0)
		rc = k.en->rows_add(k.c, k.t, text, len, n, now_ms, ids, e);
	if (rc == 0)
		rc = k.en->counts_add(k.c, k.t->id, (int64_t)n, bytes, e);
	if (rc == 0)
		rc = k.en->commit(k.c, e);
	if (rc == 0)
		rc = mem_ids_answer(ids, n, out, e);
	call_end(&k);
	for (size_t i = 0; text && i < n; i++)
		free(text[i]);
	free(text);
	free(len);
	json_decref(ids);
	return rc;
}

int mem_rows_query(mem_store *s, const char *user, const char *owner, const char *name,
		   const mem_query *q, sdk_buf *out, sdk_err *e)
{
	unsigned limit;
	const char *fq;
	int rc = mem_query_check(q, &limit, &fq, e);
	if (rc < 0)
		return rc;
	call k;
	if ((rc = call_start(s, &k, user, owner, name, false, false, e)) < 0)
		return rc;
	mem_filter *f = calloc(1, sizeof *f);
	mem_cursor cur = { 0 };
	mem_order ord;
	mem_page p = { 0 };
	rc = f ? mem_query_parse(q, k.t, fq, f, &ord, &cur, e) : mem_oom(e);
	if (rc == 0) {
		p = (mem_page){
			.order = &ord, .cursor = &cur, .filter = f, .q = fq, .limit = limit, .t = k.t
		};
		rc = mem_page_run(&p, out, k.en->page_pass, k.c, e);
	}
	call_end(&k);
	free(p.next);
	mem_cursor_clear(&cur);
	if (f)
		mem_filter_clear(f);
	free(f);
	return rc;
}

int mem_row_get(mem_store *s, const char *user, const char *owner, const char *name,
		int64_t id, sdk_buf *out, sdk_err *e)
{
	call k;
	int rc = call_start(s, &k, user, owner, name, false, false, e);
	if (rc < 0)
		return rc;
	mem_row r = { 0 };
	if ((rc = k.en->row_read(k.c, k.t, id, &r, e)) == 0) {
		mem_row_render(out, r.id, r.data, r.len, r.created_ms, r.updated_ms);
		rc = out->oom ? mem_oom(e) : 0;
	}
	mem_row_clear(&r);
	call_end(&k);
	return rc;
}

int mem_row_patch(mem_store *s, const char *user, const char *owner, const char *name,
		  int64_t id, json_t *patch, int64_t now_ms, sdk_buf *out, sdk_err *e)
{
	int rc = mem_patch_check(patch, e);
	if (rc < 0)
		return rc;
	call k;
	if ((rc = call_start(s, &k, user, owner, name, true, false, e)) < 0)
		return rc;
	mem_row r = { 0 };
	char *text = NULL;
	size_t len = 0;
	int64_t old = 0, table_rows = 0, user_rows = 0, user_bytes = 0;
	if ((rc = k.en->row_read(k.c, k.t, id, &r, e)) == 0) {
		old = r.size;
		rc = mem_row_merge(&k.t->cols, r.data, r.len, id, patch, &text, &len, e);
	}
	mem_row_clear(&r);
	if (rc == 0)
		rc = k.en->usage(k.c, k.t, &table_rows, &user_rows, &user_bytes, e);
	if (rc == 0 && (int64_t)len > old && user_bytes + (int64_t)len - old > s->quota.bytes)
		rc = mem_quota_bytes(&s->quota, user_bytes, e);
	if (rc == 0)
		rc = k.en->row_write(k.c, k.t, id, text, len, now_ms, e);
	if (rc == 0)
		rc = k.en->counts_add(k.c, k.t->id, 0, (int64_t)len - old, e);
	if (rc == 0 && (rc = k.en->row_read(k.c, k.t, id, &r, e)) == 0) {
		mem_row_render(out, r.id, r.data, r.len, r.created_ms, r.updated_ms);
		rc = out->oom ? mem_oom(e) : k.en->commit(k.c, e);
	}
	mem_row_clear(&r);
	call_end(&k);
	free(text);
	return rc;
}

int mem_row_delete(mem_store *s, const char *user, const char *owner, const char *name,
		   int64_t id, json_t **out, sdk_err *e)
{
	call k;
	int rc = call_start(s, &k, user, owner, name, true, false, e);
	if (rc < 0)
		return rc;
	mem_row r = { 0 };
	if ((rc = k.en->row_read(k.c, k.t, id, &r, e)) == 0 &&
	    (rc = k.en->row_remove(k.c, k.t, id, e)) == 0 &&
	    (rc = k.en->counts_add(k.c, k.t->id, -1, -r.size, e)) == 0 &&
	    (rc = k.en->commit(k.c, e)) == 0)
		rc = mem_row_deleted(id, out, e);
	mem_row_clear(&r);
	call_end(&k);
	return rc;
}

/* --------------------------------------------------------------------- */
/* Shares */

/* The users in `users` (an array, checked here one by one), and the cap
 * once they are added. */
static int shares_change(mem_store *s, void *c, const mem_tinfo *t, json_t *users, bool add,
			 int64_t now_ms, sdk_err *e)
{
	size_t i;
	json_t *u;
	int rc = 0;
	json_array_foreach(users, i, u) {
		if ((rc = mem_share_user_check(u, i, t->owner, e)) < 0 ||
		    (rc = s->eng->share_set(c, t->id, json_string_value(u), add, now_ms, e)) < 0)
			return rc;
	}
	if (!add)
		return 0;
	int64_t n = 0;
	if ((rc = s->eng->shares_count(c, t->id, &n, e)) < 0)
		return rc;
	return mem_shares_cap(n, e);
}

/* op: 1 add, 0 list, -1 remove. */
static int shares_op(mem_store *s, const char *owner, const char *name, json_t *users, int op,
		     int64_t now_ms, json_t **out, sdk_err *e)
{
	call k;
	/* As the owner: the admin acts on the owner's behalf. */
	int rc = call_start(s, &k, owner, NULL, name, op != 0, false, e);
	if (rc < 0)
		return rc;
	json_t *sh = NULL;
	if (op != 0)
		rc = shares_change(s, k.c, k.t, users, op > 0, now_ms, e);
	if (rc == 0)
		rc = k.en->shares_json(k.c, k.t->id, &sh, e);
	if (rc == 0 && op != 0)
		rc = k.en->commit(k.c, e);
	if (rc == 0)
		rc = mem_shares_answer(k.t, sh, out, e);
	else
		json_decref(sh);
	call_end(&k);
	return rc;
}

int mem_shares_add(mem_store *s, const char *owner, const char *name, json_t *users,
		   int64_t now_ms, json_t **out, sdk_err *e)
{
	return shares_op(s, owner, name, users, 1, now_ms, out, e);
}

int mem_shares_list(mem_store *s, const char *owner, const char *name, json_t **out,
		    sdk_err *e)
{
	return shares_op(s, owner, name, NULL, 0, 0, out, e);
}

int mem_shares_remove(mem_store *s, const char *owner, const char *name, json_t *users,
		      json_t **out, sdk_err *e)
{
	return shares_op(s, owner, name, users, -1, 0, out, e);
}
