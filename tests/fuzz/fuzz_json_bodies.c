/* The JSON bodies that become SQL or stored state in the memory tables
 * (src/serve/memory/columns.c, tables.c and rows.c), read as the API reads them
 * (sdk_req_json: jansson, duplicate keys refused), against the real store
 * of memory_fixture.h.
 *
 * Input: a selector byte, then the body:
 *   0: POST /memory/tables            {"name", "columns"?, "description"?}
 *   1: POST /memory/tables/typed/rows  a row or an array of rows
 *   2: POST /memory/tables/free/rows   the same, no declared columns
 *   3: PATCH a row of "typed" (a fixture row chosen by the next byte)
 *   4: PATCH a row of "free"
 *
 * Properties (a failure aborts):
 *  - the store refuses a body only as bad input (400, 409 for a quota,
 *    413 for size), never with a database error: every table a spec may
 *    declare gets DDL that runs, indexes and full-text triggers included,
 *    and takes a row of every column, and every order and filter its
 *    columns allow runs on it;
 *  - a declaration read back is the one made, and reads again to itself;
 *  - a row stored is read back equal to the row sent (a patched row:
 *    to the row merged by the patch, null removing a key), and it is
 *    found by a filter on each of its own scalar values. */
#include "memory_fixture.h"
#include "serve/memory/filter.h"

#include <stdbool.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	fx_open();
	return 0;
}

static json_t *body_of(const uint8_t *d, size_t n)
{
	return json_loadb((const char *)d, n, JSON_REJECT_DUPLICATES, NULL);
}

static bool status_of_input(int s)
{
	return s == SDK_EINVAL || s == SDK_EQUOTA || s == SDK_ETOOLARGE;
}

/* The stored row `id` of `table`, parsed (new reference). */
static json_t *row_get(const char *table, int64_t id)
{
	sdk_buf out = { 0 };
	sdk_err e;
	FUZZ_CHECK(mem_row_get(fx.s, FX_USER, NULL, table, id, &out, &e) == 0, "row %lld: %s",
		   (long long)id, e.msg);
	json_t *r = json_loads(out.p, 0, NULL);
	FUZZ_CHECK(r, "row %lld is not JSON: %.200s", (long long)id, out.p);
	json_t *data = json_incref(json_object_get(r, "data"));
	json_decref(r);
	sdk_buf_free(&out);
	return data;
}

/* Whether the query `where` on `table` finds row `id`. */
static bool finds(const char *table, json_t *where, int64_t id)
{
	char *w = json_dumps(where, JSON_COMPACT);
	sdk_buf out = { 0 };
	sdk_err e;
	mem_query q = { .where = w, .limit = MEM_LIMIT_MAX };
	int rc = mem_rows_query(fx.s, FX_USER, NULL, table, &q, &out, &e);
	FUZZ_CHECK(rc == 0, "where %s: %s", w, e.msg);
	static int64_t ids[MEM_LIMIT_MAX + 1];
	char *next = NULL;
	long n = fx_answer_ids(out.p, ids, MEM_LIMIT_MAX, &next);
	free(next);
	bool found = false;
	for (long i = 0; i < n && !found; i++)
		found = ids[i] == id;
	sdk_buf_free(&out);
	free(w);
	return found;
}

/* A filter on each scalar value of a stored row finds it: equality on
 * scalars, contains on an array's scalar elements. */
static void check_found(const char *table, const mem_columns *cols, json_t *row, int64_t id)
{
	const char *k;
	json_t *v;
	json_object_foreach(row, k, v) {
		const mem_column *c = mem_columns_find(cols, k);
		if (!mem_column_name_valid(k) || (c && c->type == MEM_T_JSON) ||
		    (json_is_string(v) && json_string_length(v) > MEM_VALUE_BYTES_MAX))
			continue;
		json_t *w = NULL;
		if (json_is_string(v) || json_is_number(v) || json_is_boolean(v)) {
			w = json_pack("{s:O}", k, v);
		} else if (json_is_array(v) && !c) {
			json_t *e = json_array_get(v, 0);
			if ((json_is_string(e) && json_string_length(e) <= MEM_VALUE_BYTES_MAX) ||
			    json_is_number(e) || json_is_boolean(e))
				w = json_pack("{s:{s:O}}", k, "contains", e);
		}
		if (!w)
			continue;
		char *ws = json_dumps(w, JSON_COMPACT);
		FUZZ_CHECK(finds(table, w, id), "row %lld not found by its own value: %s",
			   (long long)id, ws);
		free(ws);
		json_decref(w);
	}
}

static void row_delete(const char *table, int64_t id)
{
	sdk_err e;
	json_t *r = NULL;
	FUZZ_CHECK(mem_row_delete(fx.s, FX_USER, NULL, table, id, &r, &e) == 0, "delete row %lld: %s", (long long)id, e.msg);
	json_decref(r);
}

/* A value of a column's type, for the row every new table must take. */
static json_t *sample(enum mem_type t, size_t i)
{
	switch (t) {
	case MEM_T_NUMBER: return json_integer((json_int_t)i);
	case MEM_T_BOOLEAN: return json_boolean(i & 1);
	case MEM_T_JSON: return json_pack("[i,s]", (int)i, "x");
	default: return json_sprintf("v%zu it's", i);
	}
}

static void check_table_spec(json_t *spec)
{
	sdk_err e = { 0 };
	json_t *made = NULL;
	int rc = mem_table_create(fx.s, FX_USER, spec, 1000, &made, &e);
	if (rc < 0) {
		/* 409 only for a name the fixture's tables hold. */
		const char *nm = json_string_value(json_object_get(spec, "name"));
		FUZZ_CHECK(status_of_input(rc) ||
				   (rc == SDK_ECONFLICT && nm &&
				    (!strcmp(nm, fx.typed.name) || !strcmp(nm, fx.free_.name))),
			   "create refused with %d: %s", rc, e.msg);
		return;
	}
	const char *name = json_string_value(json_object_get(made, "name"));
	FUZZ_CHECK(name && !strcmp(name, json_string_value(json_object_get(spec, "name"))),
		   "the table's name");
	char table[MEM_NAME_MAX + 1];
	snprintf(table, sizeof table, "%s", name);

	/* The declaration as made, as read back, and read again. */
	mem_columns cols, again;
	sdk_err err = { "" };
	FUZZ_CHECK(mem_columns_parse(json_object_get(spec, "columns"), &cols, &err) == 0,
		   "created, yet its columns are refused: %s", err.msg);
	json_t *shown = json_object_get(made, "columns"), *want = mem_columns_json(&cols);
	FUZZ_CHECK(json_equal(shown, want), "the columns shown differ from those declared");
	FUZZ_CHECK(mem_columns_parse(shown, &again, &err) == 0 && again.n == cols.n &&
			   !memcmp(again.c, cols.c, cols.n * sizeof *cols.c),
		   "the columns shown do not read back to themselves");
	json_decref(want);

	/* A row of every column; then every order and an equality on each. */
	json_t *row = json_object();
	for (size_t i = 0; i < cols.n; i++)
		json_object_set_new(row, cols.c[i].name, sample(cols.c[i].type, i));
	json_t *ids = NULL;
	FUZZ_CHECK(mem_rows_insert(fx.s, FX_USER, NULL, table, row, 2000, &ids, &e) == 0,
		   "the new table takes no row: %s", e.msg);
	int64_t id = json_integer_value(json_array_get(json_object_get(ids, "ids"), 0));
	json_decref(ids);
	json_t *back = row_get(table, id);
	FUZZ_CHECK(json_equal(back, row), "the row read back differs");
	json_decref(back);
	check_found(table, &cols, row, id);
	for (size_t i = 0; i < cols.n; i++) {
		sdk_buf out = { 0 };
		char order[MEM_NAME_MAX + 2];
		snprintf(order, sizeof order, "-%s", cols.c[i].name);
		mem_query q = { .order = order };
		rc = mem_rows_query(fx.s, FX_USER, NULL, table, &q, &out, &e);
		FUZZ_CHECK(rc == 0 || rc == SDK_EINVAL, "order %s: %s", order, e.msg);
		sdk_buf_free(&out);
	}
	if (mem_columns_has_text(&cols)) {
		sdk_buf out = { 0 };
		mem_query q = { .q = "v0 OR it" };
		FUZZ_CHECK(mem_rows_query(fx.s, FX_USER, NULL, table, &q, &out, &e) == 0, "q: %s",
			   e.msg);
		sdk_buf_free(&out);
	}
	json_decref(row);
	json_t *gone = NULL;
	FUZZ_CHECK(mem_table_delete(fx.s, FX_USER, NULL, table, &gone, &e) == 0, "delete table %s: %s", table, e.msg);
	json_decref(gone);
	json_decref(made);
}

static void check_rows(const struct fx_table *t, const mem_columns *cols, json_t *body)
{
	sdk_err e = { 0 };
	json_t *ids = NULL;
	int rc = mem_rows_insert(fx.s, FX_USER, NULL, t->name, body, 2000, &ids, &e);
	if (rc < 0) {
		FUZZ_CHECK(status_of_input(rc), "insert refused with %d: %s", rc, e.msg);
		return;
	}
	json_t *list = json_object_get(ids, "ids");
	size_t n = json_array_size(list);
	FUZZ_CHECK(n == (json_is_array(body) ? json_array_size(body) : 1), "%zu ids", n);
	for (size_t i = 0; i < n; i++) {
		json_t *row = json_is_array(body) ? json_array_get(body, i) : body;
		int64_t id = json_integer_value(json_array_get(list, i));
		json_t *back = row_get(t->name, id);
		FUZZ_CHECK(json_equal(back, row), "row %zu read back differs", i);
		json_decref(back);
		if (i < 4)
			check_found(t->name, cols, row, id);
	}
	for (size_t i = 0; i < n; i++)
		row_delete(t->name, json_integer_value(json_array_get(list, i)));
	json_decref(ids);
}

static void check_patch(const struct fx_table *t, const mem_columns *cols, size_t which,
			json_t *patch)
{
	sdk_err e = { 0 };
	json_t *base = t->rows[which % t->n];
	json_t *ids = NULL;
	FUZZ_CHECK(mem_rows_insert(fx.s, FX_USER, NULL, t->name, base, 2000, &ids, &e) == 0,
		   "insert a fixture row: %s", e.msg);
	int64_t id = json_integer_value(json_array_get(json_object_get(ids, "ids"), 0));
	json_decref(ids);
	sdk_buf out = { 0 };
	int rc = mem_row_patch(fx.s, FX_USER, NULL, t->name, id, patch, 3000, &out, &e);
	sdk_buf_free(&out);
	json_t *stored = row_get(t->name, id);
	if (rc < 0) {
		FUZZ_CHECK(status_of_input(rc), "patch refused with %d: %s", rc, e.msg);
		FUZZ_CHECK(json_equal(stored, base), "a refused patch changed the row");
	} else {
		json_t *want = json_deep_copy(base);
		const char *k;
		json_t *v;
		json_object_foreach(patch, k, v) {
			if (json_is_null(v))
				json_object_del(want, k);
			else
				json_object_set(want, k, v);
		}
		FUZZ_CHECK(json_equal(stored, want), "the patched row is not the merge");
		check_found(t->name, cols, stored, id);
		json_decref(want);
	}
	json_decref(stored);
	row_delete(t->name, id);
}

static mem_columns typed_cols, free_cols;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2 || size > 256 * 1024)
		return 0;
	if (!typed_cols.n) {
		json_t *spec = fx_json(fx_typed_spec);
		sdk_err err = { "" };
		FUZZ_CHECK(mem_columns_parse(json_object_get(spec, "columns"), &typed_cols, &err) ==
				   0,
			   "%s", err.msg);
		json_decref(spec);
	}
	unsigned sel = data[0] % 5;
	size_t skip = sel >= 3 ? 2 : 1;
	if (size < skip)
		return 0;
	json_t *body = body_of(data + skip, size - skip);
	if (!body)
		return 0; /* sdk_req_json answers 400 */
	switch (sel) {
	case 0: check_table_spec(body); break;
	case 1: check_rows(&fx.typed, &typed_cols, body); break;
	case 2: check_rows(&fx.free_, &free_cols, body); break;
	case 3:
	case 4:
		if (json_is_object(body))
			check_patch(sel == 3 ? &fx.typed : &fx.free_, sel == 3 ? &typed_cols : &free_cols,
				    data[1], body);
		break;
	}
	json_decref(body);
	return 0;
}
