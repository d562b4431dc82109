/* Unit tests for the memory store (src/serve/memory/{conn,tables,rows,shares}.c) on a real SQLite
 * file in a temporary directory: tables, rows, the checks, full-text
 * search, keyset pagination (every row exactly once, in order, whatever
 * the order and the NULLs), and who may see and change what. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serve/memory/store.h"

#include <sqlite3.h>

struct fx {
	char dir[64];
	mem_store *s;
	/* The last call: its status (0 or a negative sdk_status) and reason. */
	struct {
		int status;
		char msg[sizeof(sdk_err)];
	} e;
	sdk_err err;
	json_t *out;
};

/* A call answering JSON through x->out: the answer, or NULL with x->e set. */
static json_t *jcall(struct fx *x, int rc)
{
	x->e.status = rc < 0 ? rc : 0;
	snprintf(x->e.msg, sizeof x->e.msg, "%s", rc < 0 ? x->err.msg : "");
	json_t *o = rc < 0 ? NULL : x->out;
	x->out = NULL;
	return o;
}

/* A call answering a status: 0, or -1 with x->e set. */
static int icall(struct fx *x, int rc)
{
	x->e.status = rc < 0 ? rc : 0;
	snprintf(x->e.msg, sizeof x->e.msg, "%s", rc < 0 ? x->err.msg : "");
	return rc < 0 ? -1 : 0;
}

#define JCALL(x, call) jcall((x), (call))
#define ICALL(x, call) icall((x), (call))

static int setup(void **state)
{
	struct fx *x = calloc(1, sizeof *x);
	if (!x)
		return -1;
	snprintf(x->dir, sizeof x->dir, "/tmp/grace-memtest-XXXXXX");
	if (!mkdtemp(x->dir))
		return -1;
	sdk_err err;
	x->s = mem_store_open(x->dir, NULL, 2, &err);
	if (!x->s) {
		fprintf(stderr, "open: %s\n", err.msg);
		return -1;
	}
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;
	mem_store_close(x->s);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", x->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", x->dir);
	free(x);
	return 0;
}

static json_t *J(const char *text)
{
	json_error_t je;
	json_t *j = json_loads(text, JSON_DECODE_ANY, &je);
	if (!j)
		fail_msg("bad JSON in test: %s: %s", text, je.text);
	return j;
}

static void create(struct fx *x, const char *user, const char *spec)
{
	json_t *sp = J(spec);
	json_t *t = JCALL(x, mem_table_create(x->s, user, sp, 1000, &x->out, &x->err));
	if (!t)
		fail_msg("create %s: %s", spec, x->e.msg);
	json_decref(t);
	json_decref(sp);
}

/* Inserts; returns the ids array (new reference) or NULL with x->e set. */
static json_t *insert(struct fx *x, const char *user, const char *owner, const char *table,
		      const char *rows)
{
	json_t *r = J(rows);
	json_t *out = JCALL(x, mem_rows_insert(x->s, user, owner, table, r, 2000, &x->out, &x->err));
	json_decref(r);
	json_t *ids = out ? json_incref(json_object_get(out, "ids")) : NULL;
	json_decref(out);
	return ids;
}

static json_t *query(struct fx *x, const char *user, const char *owner, const char *table,
		     const char *where, const char *order, const char *cursor, const char *q,
		     unsigned limit)
{
	sdk_buf out = { 0 };
	mem_query mq = { .where = where, .order = order, .cursor = cursor, .q = q, .limit = limit };
	json_t *j = NULL;
	if (ICALL(x, mem_rows_query(x->s, user, owner, table, &mq, &out, &x->err)) == 0) {
		j = json_loads(out.p, 0, NULL);
		assert_non_null(j); /* the text the store wrote is valid JSON */
	}
	sdk_buf_free(&out);
	return j;
}

static void test_tables(void **state)
{
	struct fx *x = *state;
	create(x, "alice", "{\"name\":\"notes\",\"description\":\"mine\","
			   "\"columns\":[{\"name\":\"title\",\"type\":\"text\"}]}");
	json_t *sp = J("{\"name\":\"notes\"}");
	assert_null(JCALL(x, mem_table_create(x->s, "alice", sp, 1, &x->out, &x->err)));
	assert_int_equal(x->e.status, SDK_ECONFLICT);
	json_t *t = JCALL(x, mem_table_create(x->s, "bob", sp, 1, &x->out, &x->err)); /* names are per user */
	assert_non_null(t);
	json_decref(t);
	json_decref(sp);

	static const char *const bad[] = {
		"{\"name\":\"x; DROP TABLE mem_tables\"}", "{\"name\":\"Notes\"}", "{}",
		"{\"name\":\"ok\",\"extra\":1}", "{\"name\":\"ok\",\"columns\":{}}",
		"{\"name\":\"ok\",\"description\":5}", "[]",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		sp = J(bad[i]);
		t = JCALL(x, mem_table_create(x->s, "alice", sp, 1, &x->out, &x->err));
		if (t)
			fail_msg("created %s", bad[i]);
		assert_int_equal(x->e.status, SDK_EINVAL);
		json_decref(sp);
	}

	json_t *l = JCALL(x, mem_table_list(x->s, "alice", &x->out, &x->err));
	assert_non_null(l);
	assert_int_equal(json_array_size(json_object_get(l, "tables")), 1);
	json_t *t0 = json_array_get(json_object_get(l, "tables"), 0);
	assert_string_equal(json_string_value(json_object_get(t0, "description")), "mine");
	assert_true(json_is_true(json_object_get(t0, "full_text")));
	json_decref(l);

	/* Deleting takes the rows with it; the name can be used again. */
	json_t *ids = insert(x, "alice", NULL, "notes", "[{\"title\":\"a\"},{\"title\":\"b\"}]");
	assert_non_null(ids);
	json_decref(ids);
	t = JCALL(x, mem_table_delete(x->s, "alice", NULL, "notes", &x->out, &x->err));
	assert_non_null(t);
	json_decref(t);
	assert_null(JCALL(x, mem_table_get(x->s, "alice", NULL, "notes", &x->out, &x->err)));
	assert_int_equal(x->e.status, SDK_ENOTFOUND);
	/* The file is in incremental auto-vacuum mode and the pages came back. */
	char path[128];
	snprintf(path, sizeof path, "%s/memory.db", x->dir);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_stmt *st;
	assert_int_equal(
		sqlite3_prepare_v2(db, "SELECT * FROM pragma_auto_vacuum, pragma_freelist_count",
				   -1, &st, NULL),
		SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 2);
	assert_int_equal(sqlite3_column_int(st, 1), 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	create(x, "alice",
	       "{\"name\":\"notes\",\"columns\":[{\"name\":\"title\",\"type\":\"text\"}]}");
	json_t *page = query(x, "alice", NULL, "notes", NULL, NULL, NULL, NULL, 0);
	assert_int_equal(json_integer_value(json_object_get(page, "count")), 0);
	json_decref(page);
	page = query(x, "alice", NULL, "notes", NULL, NULL, NULL, "a", 0);
	assert_int_equal(json_integer_value(json_object_get(page, "count")), 0);
	json_decref(page);
}

static void test_rows_checked(void **state)
{
	struct fx *x = *state;
	create(x, "alice", "{\"name\":\"t\",\"columns\":[{\"name\":\"n\",\"type\":\"number\"},"
			   "{\"name\":\"s\",\"type\":\"string\"}]}");
	/* All or nothing: one bad row and none is stored. */
	assert_null(insert(x, "alice", NULL, "t", "[{\"n\":1},{\"n\":\"two\"},{\"n\":3}]"));
	assert_int_equal(x->e.status, SDK_EINVAL);
	assert_non_null(strstr(x->e.msg, "rows[1]"));
	assert_null(insert(x, "alice", NULL, "t", "[{\"n\":1},{\"bogus\":1}]"));
	assert_null(insert(x, "alice", NULL, "t", "[]"));
	assert_null(insert(x, "alice", NULL, "t", "5"));
	json_t *page = query(x, "alice", NULL, "t", NULL, NULL, NULL, NULL, 0);
	assert_int_equal(json_integer_value(json_object_get(page, "count")), 0);
	json_decref(page);

	/* Injection-shaped values are data. */
	json_t *ids = insert(x, "alice", NULL, "t",
			     "{\"s\":\"'); DROP TABLE mem_tables; --\",\"n\":1}");
	assert_non_null(ids);
	page = query(x, "alice", NULL, "t", "{\"s\":\"'); DROP TABLE mem_tables; --\"}", NULL, NULL,
		     NULL, 0);
	assert_non_null(page);
	assert_int_equal(json_integer_value(json_object_get(page, "count")), 1);
	json_decref(page);
	page = query(x, "alice", NULL, "t", "{\"s\":\"' OR 1=1 --\"}", NULL, NULL, NULL, 0);
	assert_int_equal(json_integer_value(json_object_get(page, "count")), 0);
	json_decref(page);

	/* Patch merges, re-checks, and null removes a key. */
	int64_t id = json_integer_value(json_array_get(ids, 0));
	json_decref(ids);
	sdk_buf out = { 0 };
	json_t *p = J("{\"n\":\"x\"}");
	assert_int_equal(ICALL(x, mem_row_patch(x->s, "alice", NULL, "t", id, p, 3000, &out, &x->err)), -1);
	assert_int_equal(x->e.status, SDK_EINVAL);
	json_decref(p);
	p = J("{\"n\":2,\"s\":null}");
	assert_int_equal(ICALL(x, mem_row_patch(x->s, "alice", NULL, "t", id, p, 3000, &out, &x->err)), 0);
	json_decref(p);
	json_t *row = json_loads(out.p, 0, NULL);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(row, "data"), "n")), 2);
	assert_null(json_object_get(json_object_get(row, "data"), "s"));
	assert_int_equal(json_integer_value(json_object_get(row, "updated_ms")), 3000);
	json_decref(row);
	sdk_buf_free(&out);

	assert_int_equal(ICALL(x, mem_row_get(x->s, "alice", NULL, "t", id + 100, &out, &x->err)), -1);
	assert_int_equal(x->e.status, SDK_ENOTFOUND);
	json_t *d = JCALL(x, mem_row_delete(x->s, "alice", NULL, "t", id, &x->out, &x->err));
	assert_non_null(d);
	json_decref(d);
	assert_null(JCALL(x, mem_row_delete(x->s, "alice", NULL, "t", id, &x->out, &x->err)));
	assert_int_equal(x->e.status, SDK_ENOTFOUND);
	sdk_buf_free(&out);
}

/* Pages through with `order` and `limit`: every row of the filter exactly
 * once, and in order (NULLs first ascending, last descending). */
static void page_all(struct fx *x, const char *table, const char *where, const char *order,
		     unsigned limit, size_t expect)
{
	char *cursor = NULL;
	size_t seen = 0, pages = 0;
	int64_t ids[256];
	json_t *prev = NULL;
	const char *col = order[0] == '-' ? order + 1 : order;
	bool desc = order[0] == '-';
	for (;;) {
		json_t *page = query(x, "alice", NULL, table, where, order, cursor, NULL, limit);
		if (!page)
			fail_msg("order=%s limit=%u: %s", order, limit, x->e.msg);
		json_t *rows = json_object_get(page, "rows");
		size_t i;
		json_t *r;
		assert_true(json_array_size(rows) <= limit);
		json_array_foreach(rows, i, r) {
			int64_t id = json_integer_value(json_object_get(r, "id"));
			for (size_t k = 0; k < seen; k++)
				if (ids[k] == id)
					fail_msg("order=%s limit=%u: row %lld twice", order, limit,
						 (long long)id);
			assert_true(seen < 256);
			ids[seen++] = id;
			json_t *v = strcmp(col, "_id")
					    ? json_object_get(json_object_get(r, "data"), col)
					    : json_object_get(r, "id");
			if (v && json_is_null(v))
				v = NULL;
			/* NULL sorts first ascending: after a value, no NULL; descending, the
			 * reverse. */
			if (prev && v && json_is_number(prev) && json_is_number(v)) {
				double a = json_number_value(prev), b = json_number_value(v);
				if (desc ? b > a : b < a)
					fail_msg("order=%s: out of order", order);
			}
			if (!desc && prev && !v)
				fail_msg("order=%s: a NULL after a value", order);
			if (desc && !prev && v && seen > 1)
				fail_msg("order=%s: a value after a NULL", order);
			json_decref(prev);
			prev = v ? json_incref(v) : NULL;
		}
		const char *next = json_string_value(json_object_get(page, "next_cursor"));
		free(cursor);
		cursor = next ? strdup(next) : NULL;
		json_decref(page);
		pages++;
		if (!cursor)
			break;
		assert_true(pages < 1000);
	}
	json_decref(prev);
	if (seen != expect)
		fail_msg("order=%s limit=%u where=%s: %zu rows, expected %zu", order, limit,
			 where ? where : "-", seen, expect);
}

static void test_pagination(void **state)
{
	struct fx *x = *state;
	create(x, "alice",
	       "{\"name\":\"p\",\"columns\":[{\"name\":\"n\",\"type\":\"number\"},"
	       "{\"name\":\"tag\",\"type\":\"string\"},{\"name\":\"u\",\"type\":\"number\","
	       "\"index\":false}]}");
	/* 60 rows: n has duplicates and NULLs (missing or null), tag likewise. */
	char rows[16384];
	size_t n = (size_t)snprintf(rows, sizeof rows, "[");
	for (int i = 0; i < 60; i++) {
		if (i % 7 == 0)
			n += (size_t)snprintf(rows + n, sizeof rows - n, "%s{\"tag\":\"t%d\"}",
					      i ? "," : "", i % 4);
		else if (i % 11 == 0)
			n += (size_t)snprintf(rows + n, sizeof rows - n, "%s{\"n\":null,\"u\":%d}",
					      i ? "," : "", i % 5);
		else
			n += (size_t)snprintf(rows + n, sizeof rows - n,
					      "%s{\"n\":%d,\"tag\":\"t%d\",\"u\":%d.5}",
					      i ? "," : "", i % 9, i % 4, i % 5);
	}
	snprintf(rows + n, sizeof rows - n, "]");
	json_t *ids = insert(x, "alice", NULL, "p", rows);
	assert_non_null(ids);
	assert_int_equal(json_array_size(ids), 60);
	json_decref(ids);

	static const char *const orders[] = { "_id", "-_id", "n", "-n", "tag", "-tag", "u", "-u" };
	static const unsigned limits[] = { 1, 4, 7, 59, 60, 1000 };
	for (size_t o = 0; o < sizeof orders / sizeof *orders; o++)
		for (size_t l = 0; l < sizeof limits / sizeof *limits; l++)
			page_all(x, "p", NULL, orders[o], limits[l], 60);
	/* With a filter: n in 3..5 (inclusive), 3 of every 9 of the numbered rows. */
	size_t want = 0;
	for (int i = 0; i < 60; i++)
		want += i % 7 != 0 && i % 11 != 0 && i % 9 >= 3 && i % 9 <= 5;
	page_all(x, "p", "{\"n\":{\"gte\":3,\"lte\":5}}", "-n", 2, want);
	page_all(x, "p", "{\"n\":{\"gte\":3,\"lte\":5}}", "tag", 3, want);

	/* A cursor only fits the order it was made for. */
	json_t *page = query(x, "alice", NULL, "p", NULL, "n", NULL, NULL, 5);
	const char *next = json_string_value(json_object_get(page, "next_cursor"));
	assert_non_null(next);
	json_t *other = query(x, "alice", NULL, "p", NULL, "-n", next, NULL, 5);
	assert_null(other);
	assert_int_equal(x->e.status, SDK_EINVAL);
	json_decref(page);
}

static void test_pagination_mixed(void **state)
{
	struct fx *x = *state;
	create(x, "alice", "{\"name\":\"m\"}");
	json_t *ids = insert(x, "alice", NULL, "m",
			     "[{\"v\":1},{\"v\":\"1\"},{\"v\":true},{\"v\":null},{},{\"v\":[1]},"
			     "{\"v\":{\"a\":1}},{\"v\":2.5},{\"v\":\"b\"},{\"v\":false},{\"v\":1},"
			     "{\"v\":\"a\"},{\"other\":1},{\"v\":-3}]");
	assert_non_null(ids);
	json_decref(ids);
	static const char *const orders[] = { "v", "-v" };
	for (size_t o = 0; o < 2; o++)
		for (unsigned l = 1; l <= 15; l += 2)
			page_all(x, "m", NULL, orders[o], l, 14);
	/* A boolean does not equal a number, nor a string its number. */
	json_t *page = query(x, "alice", NULL, "m", "{\"v\":1}", NULL, NULL, NULL, 0);
	assert_int_equal(json_integer_value(json_object_get(page, "count")), 2);
	json_decref(page);
	page = query(x, "alice", NULL, "m", "{\"v\":true}", NULL, NULL, NULL, 0);
	assert_int_equal(json_integer_value(json_object_get(page, "count")), 1);
	json_decref(page);
	page = query(x, "alice", NULL, "m", "{\"v\":{\"contains\":1}}", NULL, NULL, NULL, 0);
	assert_int_equal(json_integer_value(json_object_get(page, "count")), 1); /* the array */
	json_decref(page);
	page = query(x, "alice", NULL, "m", "{\"v\":{\"gt\":\"a\"}}", NULL, NULL, NULL, 0);
	assert_int_equal(json_integer_value(json_object_get(page, "count")), 1); /* "b" only */
	json_decref(page);
}

static int count(struct fx *x, const char *table, const char *where)
{
	json_t *page = query(x, "alice", NULL, table, where, NULL, NULL, NULL, 0);
	if (!page)
		fail_msg("%s: %s", where, x->e.msg);
	int n = (int)json_integer_value(json_object_get(page, "count"));
	json_decref(page);
	return n;
}

/* Found by fuzz_memory_filter: "in" and "contains" compared values of
 * different kinds, as SQLite gives them (true is 1, an array's element
 * that is an array is its JSON text), against docs/memory.md. */
static void test_filter_kinds(void **state)
{
	struct fx *x = *state;
	create(x, "alice", "{\"name\":\"m\"}");
	json_t *ids = insert(x, "alice", NULL, "m",
			     "[{\"v\":1},{\"v\":\"1\"},{\"v\":true},{\"v\":false},{\"v\":0},"
			     "{\"v\":[1]},{\"v\":{\"a\":1}},{\"v\":[true]},{\"v\":[[\"a\"]]},"
			     "{\"v\":[\"a\"]},{\"v\":\"xa\"},{\"v\":[0,\"0\"]}]");
	assert_non_null(ids);
	json_decref(ids);
	assert_int_equal(count(x, "m", "{\"v\":{\"in\":[1]}}"), 1);
	assert_int_equal(count(x, "m", "{\"v\":{\"in\":[0,1]}}"), 2);
	assert_int_equal(count(x, "m", "{\"v\":{\"in\":[\"[1]\"]}}"), 0);
	assert_int_equal(count(x, "m", "{\"v\":{\"in\":[\"{\\\"a\\\":1}\"]}}"), 0);
	assert_int_equal(count(x, "m", "{\"v\":{\"in\":[\"1\",\"xa\"]}}"), 2);
	assert_int_equal(count(x, "m", "{\"v\":{\"contains\":1}}"), 1);    /* [1] */
	assert_int_equal(count(x, "m", "{\"v\":{\"contains\":true}}"), 1); /* [true] */
	assert_int_equal(count(x, "m", "{\"v\":{\"contains\":0}}"), 1);    /* [0,"0"] */
	assert_int_equal(count(x, "m", "{\"v\":{\"contains\":\"a\"}}"), 2); /* ["a"], "xa" */
	assert_int_equal(count(x, "m", "{\"v\":{\"contains\":\"[\\\"a\\\"]\"}}"), 0);
	create(x, "alice", "{\"name\":\"jc\",\"columns\":[{\"name\":\"j\",\"type\":\"json\"}]}");
	ids = insert(x, "alice", NULL, "jc",
		     "[{\"j\":[true]},{\"j\":[1]},{\"j\":[[\"a\"]]},{\"j\":[\"a\"]}]");
	assert_non_null(ids);
	json_decref(ids);
	assert_int_equal(count(x, "jc", "{\"j\":{\"contains\":1}}"), 1);
	assert_int_equal(count(x, "jc", "{\"j\":{\"contains\":true}}"), 1);
	assert_int_equal(count(x, "jc", "{\"j\":{\"contains\":\"[\\\"a\\\"]\"}}"), 0);
	assert_int_equal(count(x, "jc", "{\"j\":{\"contains\":\"a\"}}"), 1);
}

static void test_fts(void **state)
{
	struct fx *x = *state;
	create(x, "alice",
	       "{\"name\":\"docs\",\"columns\":[{\"name\":\"title\",\"type\":\"text\"},"
	       "{\"name\":\"body\",\"type\":\"text\"},{\"name\":\"kind\",\"type\":\"string\"}]}");
	json_t *ids = insert(
		x, "alice", NULL, "docs",
		"[{\"title\":\"Red apples\",\"body\":\"crisp and sweet\",\"kind\":\"fruit\"},"
		"{\"title\":\"Green pears\",\"body\":\"soft\",\"kind\":\"fruit\"},"
		"{\"title\":\"Carrots\",\"body\":\"orange roots, like apples\",\"kind\":\"veg\"},"
		"{\"kind\":\"none\"}]");
	assert_non_null(ids);
	json_t *page = query(x, "alice", NULL, "docs", NULL, NULL, NULL, "apple", 0);
	assert_non_null(page);
	assert_int_equal(json_integer_value(json_object_get(page, "count")),
			 2); /* porter: apples */
	assert_string_equal(json_string_value(json_object_get(page, "order")), "_rank");
	json_decref(page);
	page = query(x, "alice", NULL, "docs", "{\"kind\":\"veg\"}", "-_id", NULL, "apple", 0);
	assert_int_equal(json_integer_value(json_object_get(page, "count")), 1);
	json_decref(page);
	page_all(x, "docs", NULL, "_id", 1, 4);

	/* Patching and deleting keep the index in step. */
	int64_t id = json_integer_value(json_array_get(ids, 0));
	sdk_buf out = { 0 };
	json_t *p = J("{\"title\":\"Yellow bananas\",\"body\":null}");
	assert_int_equal(ICALL(x, mem_row_patch(x->s, "alice", NULL, "docs", id, p, 5, &out, &x->err)), 0);
	json_decref(p);
	sdk_buf_free(&out);
	page = query(x, "alice", NULL, "docs", NULL, NULL, NULL, "apple", 0);
	assert_int_equal(json_integer_value(json_object_get(page, "count")), 1);
	json_decref(page);
	page = query(x, "alice", NULL, "docs", NULL, NULL, NULL, "banana", 0);
	assert_int_equal(json_integer_value(json_object_get(page, "count")), 1);
	json_decref(page);
	json_t *d = JCALL(x, mem_row_delete(x->s, "alice", NULL, "docs", id, &x->out, &x->err));
	json_decref(d);
	page = query(x, "alice", NULL, "docs", NULL, NULL, NULL, "banana", 0);
	assert_int_equal(json_integer_value(json_object_get(page, "count")), 0);
	json_decref(page);
	json_decref(ids);

	/* A malformed q is the caller's mistake, not the server's. */
	static const char *const bad[] = { "\"unbalanced", "AND", "apple OR", "(", "nosuchcol: x",
					   "NEAR(", "*" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		page = query(x, "alice", NULL, "docs", NULL, NULL, NULL, bad[i], 0);
		if (page)
			fail_msg("q=%s accepted", bad[i]);
		if (x->e.status != SDK_EINVAL)
			fail_msg("q=%s: status %d (%s)", bad[i], x->e.status, x->e.msg);
	}
	/* A table without text columns has nothing to search. */
	create(x, "alice", "{\"name\":\"plain\"}");
	assert_null(query(x, "alice", NULL, "plain", NULL, NULL, NULL, "x", 0));
	assert_int_equal(x->e.status, SDK_EINVAL);
	/* _rank needs q. */
	assert_null(query(x, "alice", NULL, "docs", NULL, "_rank", NULL, NULL, 0));
	assert_int_equal(x->e.status, SDK_EINVAL);
}

static void test_access(void **state)
{
	struct fx *x = *state;
	create(x, "alice",
	       "{\"name\":\"secret\",\"columns\":[{\"name\":\"v\",\"type\":\"number\"}]}");
	json_t *ids = insert(x, "alice", NULL, "secret", "[{\"v\":1},{\"v\":2}]");
	int64_t id = json_integer_value(json_array_get(ids, 0));
	json_decref(ids);

	/* Bob: not his, not shared: not found, whichever way he asks. */
	assert_null(JCALL(x, mem_table_get(x->s, "bob", NULL, "secret", &x->out, &x->err)));
	assert_int_equal(x->e.status, SDK_ENOTFOUND);
	assert_null(JCALL(x, mem_table_get(x->s, "bob", "alice", "secret", &x->out, &x->err)));
	assert_int_equal(x->e.status, SDK_ENOTFOUND);
	assert_null(query(x, "bob", "alice", "secret", NULL, NULL, NULL, NULL, 0));
	assert_int_equal(x->e.status, SDK_ENOTFOUND);
	sdk_buf out = { 0 };
	assert_int_equal(ICALL(x, mem_row_get(x->s, "bob", "alice", "secret", id, &out, &x->err)), -1);
	assert_int_equal(x->e.status, SDK_ENOTFOUND);
	assert_null(insert(x, "bob", "alice", "secret", "{\"v\":3}"));
	assert_int_equal(x->e.status, SDK_ENOTFOUND);
	assert_null(JCALL(x, mem_table_delete(x->s, "bob", "alice", "secret", &x->out, &x->err)));
	assert_int_equal(x->e.status, SDK_ENOTFOUND);

	/* Shared read-only with bob. */
	json_t *users = J("[\"bob\"]");
	json_t *sh = JCALL(x, mem_shares_add(x->s, "alice", "secret", users, 9, &x->out, &x->err));
	assert_non_null(sh);
	json_decref(sh);
	json_t *page = query(x, "bob", "alice", "secret", NULL, NULL, NULL, NULL, 0);
	assert_non_null(page);
	assert_int_equal(json_integer_value(json_object_get(page, "count")), 2);
	assert_true(json_is_true(json_object_get(page, "shared")));
	json_decref(page);
	assert_int_equal(ICALL(x, mem_row_get(x->s, "bob", "alice", "secret", id, &out, &x->err)), 0);
	sdk_buf_free(&out);
	json_t *l = JCALL(x, mem_table_list(x->s, "bob", &x->out, &x->err));
	json_t *t0 = json_array_get(json_object_get(l, "tables"), 0);
	assert_string_equal(json_string_value(json_object_get(t0, "owner")), "alice");
	assert_true(json_is_true(json_object_get(t0, "shared")));
	json_decref(l);
	assert_null(insert(x, "bob", "alice", "secret", "{\"v\":3}"));
	assert_int_equal(x->e.status, SDK_EDENIED);
	json_t *p = J("{\"v\":5}");
	assert_int_equal(ICALL(x, mem_row_patch(x->s, "bob", "alice", "secret", id, p, 1, &out, &x->err)), -1);
	assert_int_equal(x->e.status, SDK_EDENIED);
	json_decref(p);
	assert_null(JCALL(x, mem_row_delete(x->s, "bob", "alice", "secret", id, &x->out, &x->err)));
	assert_int_equal(x->e.status, SDK_EDENIED);
	assert_null(JCALL(x, mem_table_delete(x->s, "bob", "alice", "secret", &x->out, &x->err)));
	assert_int_equal(x->e.status, SDK_EDENIED);
	/* Bob's own name space is still his: "secret" alone is his own (none). */
	assert_null(JCALL(x, mem_table_get(x->s, "bob", NULL, "secret", &x->out, &x->err)));
	assert_int_equal(x->e.status, SDK_ENOTFOUND);
	/* Carol still sees nothing. */
	assert_null(query(x, "carol", "alice", "secret", NULL, NULL, NULL, NULL, 0));
	assert_int_equal(x->e.status, SDK_ENOTFOUND);

	/* The owner cannot be a share of their own table. */
	json_t *self = J("[\"alice\"]");
	assert_null(JCALL(x, mem_shares_add(x->s, "alice", "secret", self, 9, &x->out, &x->err)));
	assert_int_equal(x->e.status, SDK_EINVAL);
	json_decref(self);

	/* Unshared: gone again. */
	sh = JCALL(x, mem_shares_remove(x->s, "alice", "secret", users, &x->out, &x->err));
	assert_non_null(sh);
	assert_int_equal(json_array_size(json_object_get(sh, "shared_with")), 0);
	json_decref(sh);
	assert_null(query(x, "bob", "alice", "secret", NULL, NULL, NULL, NULL, 0));
	assert_int_equal(x->e.status, SDK_ENOTFOUND);

	/* A share ends with its table: a new table of the same name is not shared. */
	sh = JCALL(x, mem_shares_add(x->s, "alice", "secret", users, 9, &x->out, &x->err));
	json_decref(sh);
	json_t *d = JCALL(x, mem_table_delete(x->s, "alice", NULL, "secret", &x->out, &x->err));
	assert_non_null(d);
	json_decref(d);
	create(x, "alice", "{\"name\":\"secret\"}");
	assert_null(query(x, "bob", "alice", "secret", NULL, NULL, NULL, NULL, 0));
	assert_int_equal(x->e.status, SDK_ENOTFOUND);
	json_decref(users);
}

static void test_limits(void **state)
{
	struct fx *x = *state;
	create(x, "alice", "{\"name\":\"big\"}");
	/* A batch over the limit. */
	size_t cap = (MEM_BATCH_MAX + 1) * 3 + 8;
	char *rows = malloc(cap);
	size_t n = (size_t)snprintf(rows, cap, "[");
	for (int i = 0; i <= MEM_BATCH_MAX; i++)
		n += (size_t)snprintf(rows + n, cap - n, "%s{}", i ? "," : "");
	snprintf(rows + n, cap - n, "]");
	assert_null(insert(x, "alice", NULL, "big", rows));
	assert_int_equal(x->e.status, SDK_ETOOLARGE);
	free(rows);
	/* A row over the limit. */
	char *s = malloc(MEM_ROW_BYTES_MAX + 1);
	memset(s, 'x', MEM_ROW_BYTES_MAX);
	s[MEM_ROW_BYTES_MAX] = '\0';
	json_t *row = json_pack("{s:s}", "a", s);
	assert_null(JCALL(x, mem_rows_insert(x->s, "alice", NULL, "big", row, 1, &x->out, &x->err)));
	assert_int_equal(x->e.status, SDK_ETOOLARGE);
	json_decref(row);
	free(s);
	/* Tables per user. */
	for (int i = 1; i < MEM_QUOTA_TABLES_DEFAULT; i++) {
		char spec[64];
		snprintf(spec, sizeof spec, "{\"name\":\"t%d\"}", i);
		create(x, "alice", spec);
	}
	json_t *sp = J("{\"name\":\"one_too_many\"}");
	assert_null(JCALL(x, mem_table_create(x->s, "alice", sp, 1, &x->out, &x->err)));
	assert_int_equal(x->e.status, SDK_EQUOTA);
	json_decref(sp);
	/* Bad limits and q. */
	assert_null(query(x, "alice", NULL, "big", NULL, NULL, NULL, NULL, MEM_LIMIT_MAX + 1));
	assert_int_equal(x->e.status, SDK_EINVAL);
}

/* Per-user quotas: each one refused whole (nothing partial stored), with a
 * message that names the quota and its limit; other users unaffected. */
static void test_quotas(void **state)
{
	struct fx *x = *state;
	mem_quota q = { .tables = 2, .rows = 5, .bytes = 200 };
	mem_store_set_quota(x->s, &q);
	create(x, "alice", "{\"name\":\"a\"}");
	create(x, "alice", "{\"name\":\"b\"}");
	json_t *sp = J("{\"name\":\"c\"}");
	assert_null(JCALL(x, mem_table_create(x->s, "alice", sp, 1, &x->out, &x->err)));
	assert_int_equal(x->e.status, SDK_EQUOTA);
	assert_non_null(strstr(x->e.msg, "at most 2 tables"));
	json_decref(JCALL(x, mem_table_create(x->s, "bob", sp, 1, &x->out, &x->err)));
	assert_int_equal(x->e.status, 0);
	json_decref(sp);

	/* Rows, across tables: 4 fit, then a batch of 2 does not, whole. */
	json_t *ids = insert(x, "alice", NULL, "a", "[{\"n\":1},{\"n\":2},{\"n\":3}]");
	assert_non_null(ids);
	json_decref(ids);
	ids = insert(x, "alice", NULL, "b", "{\"n\":4}");
	assert_non_null(ids);
	json_decref(ids);
	assert_null(insert(x, "alice", NULL, "b", "[{\"n\":5},{\"n\":6}]"));
	assert_int_equal(x->e.status, SDK_EQUOTA);
	assert_non_null(strstr(x->e.msg, "at most 5 rows per user"));
	json_t *page = query(x, "alice", NULL, "b", NULL, NULL, NULL, NULL, 0);
	assert_int_equal(json_integer_value(json_object_get(page, "count")), 1);
	json_decref(page);

	/* Bytes: a row that would pass the limit, and a patch that would. */
	q.rows = 100;
	mem_store_set_quota(x->s, &q);
	char big[256];
	snprintf(big, sizeof big, "{\"s\":\"%0180d\"}", 0);
	assert_null(insert(x, "alice", NULL, "b", big));
	assert_int_equal(x->e.status, SDK_EQUOTA);
	assert_non_null(strstr(x->e.msg, "at most 200 bytes"));
	ids = insert(x, "alice", NULL, "b", "{\"s\":\"small\"}");
	assert_non_null(ids);
	int64_t id = json_integer_value(json_array_get(ids, 0));
	json_decref(ids);
	snprintf(big, sizeof big, "{\"s\":\"%0200d\"}", 0);
	json_t *p = J(big); /* a patch that makes the row longer than the quota lets it be */
	sdk_buf out = { 0 };
	assert_int_equal(ICALL(x, mem_row_patch(x->s, "alice", NULL, "b", id, p, 5, &out, &x->err)),
			 -1);
	assert_int_equal(x->e.status, SDK_EQUOTA);
	json_decref(p);
	assert_int_equal(ICALL(x, mem_row_get(x->s, "alice", NULL, "b", id, &out, &x->err)), 0);
	assert_non_null(strstr(out.p, "\"small\""));
	sdk_buf_free(&out);
	/* Bob's quota is his own. */
	ids = insert(x, "bob", NULL, "c", "[{\"n\":1},{\"n\":2},{\"n\":3},{\"n\":4},{\"n\":5}]");
	assert_non_null(ids);
	json_decref(ids);
}

/* A user's purge: their tables, their rows, shares of their tables and
 * shares given to them; nobody else's; twice is harmless. */
static void test_user_purge(void **state)
{
	struct fx *x = *state;
	create(x, "alice", "{\"name\":\"notes\",\"columns\":[{\"name\":\"t\",\"type\":\"text\"}]}");
	create(x, "alice", "{\"name\":\"more\"}");
	create(x, "bob", "{\"name\":\"notes\"}");
	json_decref(insert(x, "alice", NULL, "notes", "[{\"t\":\"secret plans\"}]"));
	json_decref(insert(x, "bob", NULL, "notes", "[{\"v\":1}]"));
	json_t *users = J("[\"bob\"]");
	json_decref(JCALL(x, mem_shares_add(x->s, "alice", "notes", users, 1, &x->out, &x->err)));
	json_decref(users);
	users = J("[\"alice\", \"carol\"]");
	json_decref(JCALL(x, mem_shares_add(x->s, "bob", "notes", users, 1, &x->out, &x->err)));
	json_decref(users);

	sdk_err e;
	assert_int_equal(mem_user_purge(x->s, "alice", &e), 2);
	json_t *l = JCALL(x, mem_table_list(x->s, "alice", &x->out, &x->err));
	assert_int_equal(json_array_size(json_object_get(l, "tables")), 0); /* not even bob's share */
	json_decref(l);
	assert_null(JCALL(x, mem_table_get(x->s, "alice", NULL, "notes", &x->out, &x->err)));
	assert_int_equal(x->e.status, SDK_ENOTFOUND);
	/* A new alice starts empty; bob keeps his table, and carol her share of it. */
	create(x, "alice", "{\"name\":\"notes\"}");
	json_t *page = query(x, "alice", NULL, "notes", NULL, NULL, NULL, NULL, 0);
	assert_int_equal(json_integer_value(json_object_get(page, "count")), 0);
	json_decref(page);
	assert_null(query(x, "alice", "bob", "notes", NULL, NULL, NULL, NULL, 0));
	page = query(x, "carol", "bob", "notes", NULL, NULL, NULL, NULL, 0);
	assert_int_equal(json_integer_value(json_object_get(page, "count")), 1);
	json_decref(page);
	l = JCALL(x, mem_table_list(x->s, "bob", &x->out, &x->err));
	assert_int_equal(json_array_size(json_object_get(l, "tables")), 1); /* alice's share is gone */
	json_decref(l);
	/* The dropped tables' SQL tables are gone too. */
	char path[128];
	snprintf(path, sizeof path, "%s/memory.db", x->dir);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master WHERE name LIKE"
						" 'mr\\_%' ESCAPE '\\' AND type = 'table'",
					    -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 2); /* bob's and the new alice's */
	sqlite3_finalize(st);
	sqlite3_close(db);
	assert_int_equal(mem_user_purge(x->s, "nobody", &e), 0);
	assert_int_equal(mem_user_purge(x->s, "alice", &e), 1);
	assert_int_equal(mem_user_purge(x->s, "alice", &e), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_tables, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rows_checked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pagination, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pagination_mixed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_filter_kinds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_access, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quotas, setup, teardown),
		cmocka_unit_test_setup_teardown(test_user_purge, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
