/* What both memory engines share (engine.h): checks, messages, answers. */
#include "serve/memory/engine.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *mem_owner_of(const char *user, const char *owner)
{
	return owner && *owner ? owner : user;
}

int mem_oom(sdk_err *e) { return sdk_fail(e, SDK_EIO, "out of memory"); }

int mem_fail_as(int st, sdk_err *e, const char *what, const char *detail)
{
	switch (st) {
	case SDK_EBUSY: return sdk_fail(e, st, "the memory database is busy; try again");
	case SDK_ETIMEOUT:
		return sdk_fail(e, st, "the query ran longer than %d ms", MEM_QUERY_MS_MAX);
	case SDK_EFULL: return sdk_fail(e, st, "the disk is full");
	case SDK_ETOOLARGE: return sdk_fail(e, st, "%s: a value is too large", what);
	default: return sdk_fail(e, st, "%s: %s", what, detail);
	}
}

/* --------------------------------------------------------------------- */
/* Tables */

int mem_resolve_start(const char *user, const char *owner, const char *name, mem_tinfo *t,
		      const char **own, sdk_err *e)
{
	if (!mem_table_name_valid(name))
		return sdk_fail(e, SDK_EINVAL,
				"a table name is 1 to %d of a-z, 0-9, '_', starting with a letter",
				MEM_NAME_MAX);
	memset(t, 0, sizeof *t);
	*own = mem_owner_of(user, owner);
	return strcmp(*own, user) != 0;
}

int mem_resolve_end(int found, mem_tinfo *t, const char *name, const char *own, bool other,
		    bool write, sdk_err *e)
{
	if (found > 0)
		return other ? sdk_fail(e, SDK_ENOTFOUND, "no table '%s' of '%s' is shared with you",
					name, own)
			     : sdk_fail(e, SDK_ENOTFOUND, "no table '%s'", name);
	if (found < 0 || !other)
		return found;
	t->shared = true;
	if (write)
		return sdk_fail(e, SDK_EDENIED, "table '%s' of '%s' is shared read-only", name, own);
	return 0;
}

int mem_tinfo_fill(mem_tinfo *t, const mem_table_row *r, sdk_err *e)
{
	t->id = r->id;
	snprintf(t->owner, sizeof t->owner, "%s", r->owner ? r->owner : "");
	snprintf(t->name, sizeof t->name, "%s", r->name ? r->name : "");
	json_t *spec = r->columns ? json_loads(r->columns, 0, NULL) : NULL;
	int rc = spec ? mem_columns_parse(spec, &t->cols, NULL) : -1;
	json_decref(spec);
	if (rc < 0)
		return sdk_fail(e, SDK_ECORRUPT, "table %lld: stored columns unreadable",
				(long long)t->id);
	t->fts = mem_columns_has_text(&t->cols);
	return 0;
}

/* The checks of a create that need no database; *desc borrows from spec. */
static int spec_check(json_t *spec, const char **name, const char **desc, sdk_err *e)
{
	if (!json_is_object(spec))
		return sdk_fail(e, SDK_EINVAL, "the body is {\"name\", \"columns\"?, \"description\"?}");
	const char *key;
	json_t *v;
	json_object_foreach(spec, key, v) {
		if (strcmp(key, "name") && strcmp(key, "columns") && strcmp(key, "description"))
			return sdk_fail(e, SDK_EINVAL,
					"unknown key '%.32s' (name, columns, description)", key);
	}
	*name = json_string_value(json_object_get(spec, "name"));
	if (!*name || !mem_table_name_valid(*name) ||
	    strlen(*name) != json_string_length(json_object_get(spec, "name")))
		return sdk_fail(e, SDK_EINVAL,
				"name: 1 to %d of a-z, 0-9, '_', starting with a letter",
				MEM_NAME_MAX);
	json_t *d = json_object_get(spec, "description");
	if (d && !json_is_null(d) &&
	    (!json_is_string(d) || json_string_length(d) > MEM_DESCRIPTION_MAX))
		return sdk_fail(e, SDK_EINVAL, "description is a string of at most %d bytes",
				MEM_DESCRIPTION_MAX);
	*desc = json_is_string(d) ? json_string_value(d) : "";
	return 0;
}

int mem_spec_parse(json_t *spec, const char **name, const char **desc, mem_columns *cols,
		   char **ctext, sdk_err *e)
{
	*ctext = NULL;
	int rc = spec_check(spec, name, desc, e);
	if (rc < 0)
		return rc;
	rc = mem_columns_parse(json_object_get(spec, "columns"), cols, e);
	if (rc < 0)
		return rc;
	json_t *cj = mem_columns_json(cols);
	*ctext = cj ? json_dumps(cj, JSON_COMPACT) : NULL;
	json_decref(cj);
	return *ctext ? 0 : mem_oom(e);
}

int mem_table_taken(const char *name, sdk_err *e)
{
	return sdk_fail(e, SDK_ECONFLICT, "you have a table '%s' already", name);
}

int mem_table_render(const mem_engine *en, void *c, const mem_table_row *r, const char *user,
		     bool with_shares, json_t **out, sdk_err *e)
{
	json_t *shares = NULL;
	if (with_shares && !strcmp(r->owner, user)) {
		int rc = en->shares_json(c, r->id, &shares, e);
		if (rc < 0)
			return rc;
	}
	json_t *cols = r->columns ? json_loads(r->columns, 0, NULL) : NULL;
	bool fts = false;
	size_t i;
	json_t *m;
	json_array_foreach(cols, i, m) {
		const char *type = json_string_value(json_object_get(m, "type"));
		fts |= type && !strcmp(type, "text");
	}
	json_t *o = json_pack("{s:s, s:s, s:s, s:o, s:b, s:I, s:I, s:I, s:b}", "name", r->name,
			      "owner", r->owner, "description", r->description ? r->description : "",
			      "columns", cols ? cols : json_array(), "full_text", fts, "rows",
			      (json_int_t)r->rows, "bytes", (json_int_t)r->bytes, "created_ms",
			      (json_int_t)r->created_ms, "shared", strcmp(r->owner, user) != 0);
	if (!o) {
		json_decref(shares);
		return mem_oom(e);
	}
	if (shares)
		json_object_set_new(o, "shared_with", shares);
	*out = o;
	return 0;
}

int mem_tables_answer(json_t *tables, json_t **out, sdk_err *e)
{
	*out = json_pack("{s:O, s:i}", "tables", tables, "count", (int)json_array_size(tables));
	return *out ? 0 : mem_oom(e);
}

int mem_table_deleted(const char *name, json_t **out, sdk_err *e)
{
	*out = json_pack("{s:s, s:b}", "name", name, "deleted", 1);
	return *out ? 0 : mem_oom(e);
}

/* --------------------------------------------------------------------- */
/* Quotas */

int mem_quota_tables(const mem_quota *q, int64_t have, sdk_err *e)
{
	if (have < q->tables)
		return 0;
	return sdk_fail(e, SDK_EQUOTA, "memory quota: at most %u tables per user (you have %lld)",
			q->tables, (long long)have);
}

int mem_quota_rows(const mem_quota *q, int64_t table_rows, int64_t user_rows, size_t n,
		   sdk_err *e)
{
	if (table_rows + (int64_t)n > MEM_ROWS_PER_TABLE_MAX)
		return sdk_fail(e, SDK_EQUOTA, "a table holds at most %d rows (this one has %lld)",
				MEM_ROWS_PER_TABLE_MAX, (long long)table_rows);
	if (user_rows + (int64_t)n > q->rows)
		return sdk_fail(e, SDK_EQUOTA,
				"memory quota: at most %lld rows per user (you have %lld)",
				(long long)q->rows, (long long)user_rows);
	return 0;
}

int mem_quota_bytes(const mem_quota *q, int64_t have, sdk_err *e)
{
	return sdk_fail(e, SDK_EQUOTA,
			"memory quota: at most %lld bytes of rows per user (you have %lld)",
			(long long)q->bytes, (long long)have);
}

/* --------------------------------------------------------------------- */
/* Rows */

int mem_batch_check(json_t *rows, size_t *n, sdk_err *e)
{
	*n = json_is_array(rows) ? json_array_size(rows) : 1;
	if (!json_is_array(rows) && !json_is_object(rows))
		return sdk_fail(e, SDK_EINVAL, "the body is a row (an object) or an array of rows");
	if (*n == 0)
		return sdk_fail(e, SDK_EINVAL, "an empty array of rows");
	if (*n > MEM_BATCH_MAX)
		return sdk_fail(e, SDK_ETOOLARGE, "at most %d rows at once", MEM_BATCH_MAX);
	return 0;
}

int mem_batch_encode(const mem_columns *cols, json_t *rows, size_t i, char **text, size_t *len,
		     sdk_err *e)
{
	json_t *row = json_is_array(rows) ? json_array_get(rows, i) : rows;
	sdk_err err;
	bool too_large;
	if ((*text = mem_row_encode(cols, row, len, &too_large, &err)))
		return 0;
	int st = too_large ? SDK_ETOOLARGE : SDK_EINVAL;
	return json_is_array(rows) ? sdk_fail(e, st, "rows[%zu]: %s", i, err.msg)
				   : sdk_fail(e, st, "%s", err.msg);
}

int mem_ids_answer(json_t *ids, size_t n, json_t **out, sdk_err *e)
{
	*out = json_pack("{s:O, s:i}", "ids", ids, "count", (int)n);
	return *out ? 0 : mem_oom(e);
}

void mem_row_render(sdk_buf *out, int64_t id, const char *data, size_t len, int64_t created_ms,
		    int64_t updated_ms)
{
	sdk_buf_printf(out, "{\"id\":%lld,\"data\":", (long long)id);
	sdk_buf_add(out, data, len);
	sdk_buf_printf(out, ",\"created_ms\":%lld,\"updated_ms\":%lld}", (long long)created_ms,
		       (long long)updated_ms);
}

int mem_no_row(int64_t id, const char *table, sdk_err *e)
{
	return sdk_fail(e, SDK_ENOTFOUND, "no row %lld in table '%s'", (long long)id, table);
}

int mem_patch_check(json_t *patch, sdk_err *e)
{
	if (json_is_object(patch))
		return 0;
	return sdk_fail(e, SDK_EINVAL, "the body is an object of keys to set (null removes)");
}

/* A copy of JSON text with ".0" after every integer too large for an
 * int64 (malloc'd; NULL when out of memory). PostgreSQL's jsonb writes a
 * number such as 1e20 with all its digits, which jansson refuses as an
 * integer; as a real it is the number the row was written with. */
static char *big_ints_as_reals(const char *s, size_t n, size_t *outlen)
{
	char *out = malloc(n + n / 2 + 3); /* at most 2 bytes more per 20 */
	if (!out)
		return NULL;
	size_t o = 0;
	bool in_str = false;
	for (size_t i = 0; i < n;) {
		char c = s[i];
		if (in_str) {
			out[o++] = s[i++];
			if (c == '\\' && i < n)
				out[o++] = s[i++];
			else if (c == '"')
				in_str = false;
			continue;
		}
		if (c == '"')
			in_str = true;
		if (c != '-' && !(c >= '0' && c <= '9')) {
			out[o++] = s[i++];
			continue;
		}
		size_t j = i + (c == '-');
		while (j < n && s[j] >= '0' && s[j] <= '9')
			j++;
		bool integer = j == n || (s[j] != '.' && s[j] != 'e' && s[j] != 'E');
		bool big = integer && j - i > 18;
		if (big) {
			char digits[32];
			errno = 0;
			snprintf(digits, sizeof digits, "%.*s", (int)(j - i > 30 ? 30 : j - i), s + i);
			big = j - i > 30 || (strtoll(digits, NULL, 10), errno == ERANGE);
		}
		memcpy(out + o, s + i, j - i);
		o += j - i;
		if (big) {
			out[o++] = '.';
			out[o++] = '0';
		}
		i = j;
	}
	out[o] = '\0';
	*outlen = o;
	return out;
}

int mem_row_merge(const mem_columns *cols, const char *stored, size_t stored_len, int64_t id,
		  json_t *patch, char **text, size_t *len, sdk_err *e)
{
	json_t *row = json_loadb(stored, stored_len, 0, NULL);
	if (!row) {
		size_t n;
		char *fixed = big_ints_as_reals(stored, stored_len, &n);
		if (!fixed)
			return mem_oom(e);
		row = json_loadb(fixed, n, 0, NULL);
		free(fixed);
	}
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
	sdk_err err;
	bool too_large;
	if (rc == 0 && !(*text = mem_row_encode(cols, row, len, &too_large, &err)))
		rc = sdk_fail(e, too_large ? SDK_ETOOLARGE : SDK_EINVAL, "%s", err.msg);
	json_decref(row);
	return rc;
}

void mem_row_clear(mem_row *r)
{
	free(r->data);
	*r = (mem_row){ 0 };
}

int mem_row_deleted(int64_t id, json_t **out, sdk_err *e)
{
	*out = json_pack("{s:I, s:b}", "id", (json_int_t)id, "deleted", 1);
	return *out ? 0 : mem_oom(e);
}

/* --------------------------------------------------------------------- */
/* Pages */

int mem_query_check(const mem_query *q, unsigned *limit, const char **fq, sdk_err *e)
{
	*limit = q->limit ? q->limit : MEM_LIMIT_DEFAULT;
	if (*limit > MEM_LIMIT_MAX)
		return sdk_fail(e, SDK_EINVAL, "limit is 1 to %d", MEM_LIMIT_MAX);
	*fq = q->q && *q->q ? q->q : NULL;
	if (*fq && strlen(*fq) > MEM_Q_BYTES_MAX)
		return sdk_fail(e, SDK_EINVAL, "q is at most %d bytes", MEM_Q_BYTES_MAX);
	return 0;
}

int mem_query_parse(const mem_query *q, const mem_tinfo *t, const char *fq, mem_filter *f,
		    mem_order *ord, mem_cursor *cur, sdk_err *e)
{
	if (fq && !t->fts)
		return sdk_fail(e, SDK_EINVAL, "table '%s' has no text columns to search with q",
				t->name);
	int rc;
	if ((rc = mem_filter_parse(q->where, &t->cols, f, e)) < 0 ||
	    (rc = mem_order_parse(q->order, &t->cols, fq != NULL, ord, e)) < 0 ||
	    (rc = mem_cursor_parse(q->cursor, ord, cur, e)) < 0)
		return rc;
	return 0;
}

/* A JSON string literal of `s` (a name that passed validation). */
static void json_str(sdk_buf *out, const char *s)
{
	sdk_buf_printf(out, "\"%s\"", s);
}

void mem_page_head(sdk_buf *out, const mem_tinfo *t, const mem_order *o)
{
	sdk_buf_str(out, "{\"table\":");
	json_str(out, t->name);
	sdk_buf_str(out, ",\"owner\":");
	json_str(out, t->owner);
	sdk_buf_printf(out, ",\"shared\":%s,\"order\":", t->shared ? "true" : "false");
	json_str(out, o->spec);
	sdk_buf_str(out, ",\"rows\":[");
}

int mem_page_row(mem_page *p, sdk_buf *out, int64_t id, const char *data, size_t len,
		 int64_t created_ms, int64_t updated_ms, json_t *key, sdk_err *e)
{
	if (p->got == p->limit || out->len > MEM_PAGE_BYTES_MAX) {
		/* There is more: p->next already points past the last row. */
		json_decref(key);
		p->stop = true;
		return 1;
	}
	if (p->got)
		sdk_buf_str(out, ",");
	mem_row_render(out, id, data, len, created_ms, updated_ms);
	p->got++;
	/* By id, the id alone says where to continue. */
	if (p->order->kind == MEM_ORDER_ID) {
		json_decref(key);
		key = json_null();
	}
	free(p->next);
	p->next = key ? mem_cursor_make(p->order, key, id) : NULL;
	json_decref(key);
	return p->next ? 0 : mem_oom(e);
}

int mem_page_end(mem_page *p, sdk_buf *out, sdk_err *e)
{
	sdk_buf_printf(out, "],\"count\":%u,\"next_cursor\":", p->got);
	if (p->stop && p->next) {
		sdk_buf_str(out, "\"");
		sdk_buf_str(out, p->next); /* base64url: nothing to escape */
		sdk_buf_str(out, "\"}");
	} else {
		sdk_buf_str(out, "null}");
	}
	return out->oom ? mem_oom(e) : 0;
}

int mem_page_run(mem_page *p, sdk_buf *out,
		 int (*pass_fn)(void *c, mem_page *p, int pass, sdk_buf *out, sdk_err *e), void *c,
		 sdk_err *e)
{
	mem_page_head(out, p->t, p->order);
	int passes = mem_keyset_passes(p->order, p->cursor);
	for (int pass = 0; pass < passes && !p->stop && p->got <= p->limit; pass++) {
		int rc = pass_fn(c, p, pass, out, e);
		if (rc < 0)
			return rc;
	}
	return mem_page_end(p, out, e);
}

int mem_bad_fts(const char *why, sdk_err *e)
{
	return sdk_fail(e, SDK_EINVAL, "q is not a valid full-text query: %s", why);
}

/* --------------------------------------------------------------------- */
/* Shares */

int mem_share_user_check(json_t *u, size_t i, const char *owner, sdk_err *e)
{
	if (json_is_string(u) && strcmp(json_string_value(u), owner))
		return 0;
	return sdk_fail(e, SDK_EINVAL, "users[%zu]: a user other than the owner", i);
}

int mem_shares_cap(int64_t n, sdk_err *e)
{
	if (n <= MEM_SHARES_MAX)
		return 0;
	return sdk_fail(e, SDK_EQUOTA, "a table is shared with at most %d users", MEM_SHARES_MAX);
}

int mem_shares_answer(const mem_tinfo *t, json_t *sh, json_t **out, sdk_err *e)
{
	*out = json_pack("{s:s, s:s, s:o}", "owner", t->owner, "table", t->name, "shared_with", sh);
	return *out ? 0 : mem_oom(e);
}
