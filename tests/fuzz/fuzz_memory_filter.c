/* The memory tables' query language (src/serve/memory/filter.c): the
 * `where` grammar, `order`, `cursor` and `q`, from the parser to the rows
 * a real store (memory_fixture.h) answers.
 *
 * Input: a flags byte (bit 0: the "free" table rather than "typed"; bits
 * 1-3: the page size less one), then lines: where, order, cursor, q.
 *
 * Properties (a failure aborts):
 *  - the SQL a filter becomes holds no text from the request: its only
 *    quoted literals are JSON paths of valid column names and fixed type
 *    names, and it has exactly one `?` per bound value, each bound value
 *    a scalar of the filter (keyset conditions likewise);
 *  - a query fails only as bad input (SDK_EINVAL, a 400), and not at
 *    all when where, order and cursor parse and there is no q: no input
 *    makes the generated SQL fail;
 *  - the rows that match are those a reference evaluator of the grammar
 *    (docs/memory.md: kinds never mix in undeclared columns) picks from
 *    the fixture's rows;
 *  - paging with next_cursor, whatever the page size, gives exactly the
 *    rows of one large page, in the same order: each once, none skipped. */
#include "memory_fixture.h"
#include "serve/memory/filter.h"

#include <stdbool.h>
#include <string.h>

#define PAGES_MAX 64

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	fx_open();
	return 0;
}

/* ---- the generated SQL ---- */

static bool literal_allowed(const char *s, size_t n)
{
	static const char *const fixed[] = { "true", "false", "integer", "real", "text", "array" };
	for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
		if (strlen(fixed[i]) == n && !memcmp(s, fixed[i], n))
			return true;
	char name[MEM_NAME_MAX + 3];
	if (n < 3 || n > MEM_NAME_MAX + 2 || memcmp(s, "$.", 2))
		return false;
	memcpy(name, s + 2, n - 2);
	name[n - 2] = '\0';
	return mem_column_name_valid(name);
}

static void check_sql(const char *sql, size_t binds, const char *what)
{
	size_t marks = 0;
	for (const char *p = sql; *p; p++) {
		if (*p == '?') {
			marks++;
		} else if (*p == '\'') {
			const char *e = strchr(p + 1, '\'');
			FUZZ_CHECK(e, "%s: an unterminated literal: %s", what, sql);
			FUZZ_CHECK(literal_allowed(p + 1, (size_t)(e - p - 1)),
				   "%s: literal '%.*s' in %s", what, (int)(e - p - 1), p + 1, sql);
			p = e;
		}
	}
	FUZZ_CHECK(marks == binds, "%s: %zu placeholders, %zu values: %s", what, marks, binds, sql);
}

static bool bound_from(json_t *v, const mem_filter *f)
{
	for (size_t i = 0; i < f->n; i++) {
		if (f->t[i].value == v)
			return true;
		size_t k;
		json_t *m;
		if (json_is_array(f->t[i].value))
			json_array_foreach(f->t[i].value, k, m) {
				if (m == v)
					return true;
			}
	}
	return false;
}

static mem_binds binds;

static void check_generated(const struct fx_table *t, const mem_columns *cols, const char *where,
			    const char *order, const char *cursor)
{
	static mem_filter f;
	sdk_err err = { "" };
	if (mem_filter_parse(where, cols, &f, &err) == 0) {
		sdk_buf sql = { 0 };
		binds.n = 0;
		FUZZ_CHECK(mem_filter_sql(&f, &sql, &binds) == 0, "binds do not fit");
		FUZZ_CHECK(!sql.oom, "out of memory");
		if (sql.p)
			check_sql(sql.p, binds.n, "where");
		for (size_t i = 0; i < binds.n; i++)
			FUZZ_CHECK((json_is_string(binds.v[i]) || json_is_number(binds.v[i]) ||
				    json_is_boolean(binds.v[i])) &&
					   bound_from(binds.v[i], &f),
				   "value %zu bound is not a scalar of the filter", i);
		sdk_buf_free(&sql);
	}
	mem_filter_clear(&f);
	mem_order o;
	mem_cursor c;
	if (mem_order_parse(order, cols, false, &o, &err) < 0)
		return;
	if (mem_cursor_parse(cursor, &o, &c, &err) == 0) {
		static const mem_sql_names names = { "r.id", NULL };
		for (int pass = 0; pass < mem_keyset_passes(&o, &c); pass++) {
			sdk_buf sql = { 0 };
			binds.n = 0;
			FUZZ_CHECK(mem_keyset_sql(&o, &c, pass, &names, &sql, &binds) == 0, "keyset");
			if (sql.p)
				check_sql(sql.p, binds.n, "cursor");
			sdk_buf_free(&sql);
		}
	}
	mem_cursor_clear(&c);
	(void)t;
}

/* ---- the reference evaluator ---- */

enum kind { K_NONE, K_BOOL, K_NUM, K_STR, K_OTHER };

static enum kind kind_of(json_t *v)
{
	return !v || json_is_null(v) ? K_NONE
	       : json_is_boolean(v)  ? K_BOOL
	       : json_is_number(v)   ? K_NUM
	       : json_is_string(v)   ? K_STR
				     : K_OTHER;
}

/* SQLite compares integers and reals exactly: so does long double. */
static int cmp_num(json_t *a, json_t *b)
{
	if (json_is_integer(a) && json_is_integer(b)) {
		json_int_t x = json_integer_value(a), y = json_integer_value(b);
		return (x > y) - (x < y);
	}
	long double x = json_is_integer(a) ? (long double)json_integer_value(a) : json_real_value(a);
	long double y = json_is_integer(b) ? (long double)json_integer_value(b) : json_real_value(b);
	return (x > y) - (x < y);
}

/* Strings by bytes (SQLite's BINARY collation). */
static int cmp_str(json_t *a, json_t *b)
{
	size_t la = json_string_length(a), lb = json_string_length(b);
	int c = memcmp(json_string_value(a), json_string_value(b), la < lb ? la : lb);
	return c ? (c > 0) - (c < 0) : (la > lb) - (la < lb);
}

/* Compares two values of the same kind (bool, number or string). */
static int cmp_same(json_t *a, json_t *b)
{
	switch (kind_of(a)) {
	case K_BOOL: return json_is_true(a) - json_is_true(b);
	case K_NUM: return cmp_num(a, b);
	default: return cmp_str(a, b);
	}
}

static bool equal(json_t *v, json_t *x)
{
	return kind_of(v) == kind_of(x) && kind_of(v) != K_OTHER && kind_of(v) != K_NONE &&
	       cmp_same(v, x) == 0;
}

static bool has_element(json_t *arr, json_t *x)
{
	size_t i;
	json_t *e;
	if (json_is_array(arr))
		json_array_foreach(arr, i, e) {
			if (equal(e, x))
				return true;
		}
	return false;
}

static bool substring(json_t *v, json_t *x)
{
	return json_is_string(v) &&
	       memmem(json_string_value(v), json_string_length(v), json_string_value(x),
		      json_string_length(x)) != NULL;
}

static bool term_holds(const mem_term *t, json_t *row, json_int_t id)
{
	json_t *idv = json_integer(id);
	json_t *v = t->is_id ? idv : json_object_get(row, t->col), *x = t->value;
	bool present = kind_of(v) != K_NONE, r = false;
	switch (t->op) {
	case MEM_OP_EXISTS: r = json_is_true(x) ? present : !present; break;
	case MEM_OP_EQ: r = json_is_null(x) ? !present : equal(v, x); break;
	case MEM_OP_NE: r = json_is_null(x) ? present : !equal(v, x); break;
	case MEM_OP_GT: r = kind_of(v) == kind_of(x) && cmp_same(v, x) > 0; break;
	case MEM_OP_GTE: r = kind_of(v) == kind_of(x) && cmp_same(v, x) >= 0; break;
	case MEM_OP_LT: r = kind_of(v) == kind_of(x) && cmp_same(v, x) < 0; break;
	case MEM_OP_LTE: r = kind_of(v) == kind_of(x) && cmp_same(v, x) <= 0; break;
	case MEM_OP_IN: r = has_element(x, v) && present; break;
	case MEM_OP_CONTAINS:
		if (t->type == MEM_T_STRING || t->type == MEM_T_TEXT)
			r = substring(v, x);
		else if (t->type == MEM_T_JSON || !json_is_string(x))
			r = has_element(v, x);
		else
			r = substring(v, x) || has_element(v, x);
		break;
	}
	json_decref(idv);
	return r;
}

/* ---- queries ---- */

static long query(const struct fx_table *t, const char *where, const char *order,
		  const char *cursor, const char *q, unsigned limit, int64_t *ids, char **next,
		  int *status, sdk_err *e)
{
	sdk_buf out = { 0 };
	mem_query mq = { where, order, cursor, q, limit };
	*next = NULL;
	if ((*status = mem_rows_query(fx.s, FX_USER, NULL, t->name, &mq, &out, e)) < 0) {
		sdk_buf_free(&out);
		return -1;
	}
	FUZZ_CHECK(!out.oom && out.p, "no answer");
	long n = fx_answer_ids(out.p, ids, limit, next);
	sdk_buf_free(&out);
	return n;
}

static char *line(char **p, char *end)
{
	if (*p >= end)
		return NULL;
	char *s = *p, *nl = memchr(s, '\n', (size_t)(end - s));
	if (!nl)
		nl = end;
	*nl = '\0';
	*p = nl + 1;
	return s;
}

static mem_columns typed_cols, free_cols;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > MEM_WHERE_BYTES_MAX + 1024)
		return 0;
	if (!typed_cols.n) {
		json_t *spec = fx_json(fx_typed_spec);
		sdk_err err = { "" };
		FUZZ_CHECK(mem_columns_parse(json_object_get(spec, "columns"), &typed_cols, &err) ==
				   0,
			   "%s", err.msg);
		json_decref(spec);
	}
	const struct fx_table *t = data[0] & 1 ? &fx.free_ : &fx.typed;
	const mem_columns *cols = data[0] & 1 ? &free_cols : &typed_cols;
	unsigned limit = ((data[0] >> 1) & 7) + 1;
	char *buf = fuzz_copy(data + 1, size - 1, 1), *p = buf, *end = buf + size - 1;
	char *where = line(&p, end), *order = line(&p, end), *cursor = line(&p, end),
	     *q = line(&p, end);
	bool no_q = !q || !*q;

	check_generated(t, cols, where, order, cursor);

	static int64_t ids[MEM_LIMIT_MAX + 1], all[MEM_LIMIT_MAX + 1];
	char *next = NULL;
	sdk_err e = { 0 };
	int status = 0;
	long n = query(t, where, order, cursor, q, limit, ids, &next, &status, &e);
	if (n < 0) {
		FUZZ_CHECK(status == SDK_EINVAL, "status %d: %s", status, e.msg);
		/* Refused: one of the parts must be bad. */
		static mem_filter f;
		mem_order o;
		mem_cursor c = { 0 };
		sdk_err err = { "" };
		bool parts_ok = mem_filter_parse(where, cols, &f, &err) == 0 &&
				mem_order_parse(order, cols, !no_q, &o, &err) == 0 &&
				mem_cursor_parse(cursor, &o, &c, &err) == 0;
		mem_filter_clear(&f);
		mem_cursor_clear(&c);
		FUZZ_CHECK(!parts_ok || !no_q, "a good query refused: %s", e.msg);
		free(buf);
		return 0;
	}
	free(next);
	if (cursor && *cursor) {
		free(buf);
		return 0;
	}

	/* One page with every row. */
	long n_all = query(t, where, order, NULL, q, MEM_LIMIT_MAX, all, &next, &status, &e);
	FUZZ_CHECK(n_all >= 0 && !next, "the whole page: %s", e.msg);
	FUZZ_CHECK(n <= n_all && !memcmp(ids, all, (size_t)n * sizeof *ids),
		   "the first page is not the start of the whole");

	if (no_q) {
		static mem_filter f;
		sdk_err err = { "" };
		FUZZ_CHECK(mem_filter_parse(where, cols, &f, &err) == 0, "%s", err.msg);
		for (size_t i = 0; i < t->n; i++) {
			bool want = true;
			for (size_t k = 0; k < f.n && want; k++)
				want = term_holds(&f.t[k], t->rows[i], t->ids[i]);
			bool got = false;
			for (long k = 0; k < n_all && !got; k++)
				got = all[k] == t->ids[i];
			char *row = json_dumps(t->rows[i], JSON_COMPACT);
			FUZZ_CHECK(want == got, "where %s: row %s %s, the reference says it %s", where,
				   row, got ? "matched" : "did not match", want ? "does" : "does not");
			free(row);
		}
		mem_filter_clear(&f);
	}

	/* Page by page, with the cursors the server gives. */
	long got = 0;
	char *cur = NULL;
	for (int page = 0;; page++) {
		FUZZ_CHECK(page < PAGES_MAX, "more pages than rows");
		long k = query(t, where, order, cur, q, limit, ids, &next, &status, &e);
		FUZZ_CHECK(k >= 0, "page %d refused its own cursor %s: %s", page, cur, e.msg);
		FUZZ_CHECK(got + k <= n_all && !memcmp(ids, all + got, (size_t)k * sizeof *ids),
			   "page %d (order %s, limit %u) is not the next part of the whole", page,
			   order ? order : "", limit);
		got += k;
		free(cur);
		cur = next;
		if (!cur)
			break;
		FUZZ_CHECK(k == (long)limit, "a short page %ld of %u with a cursor", k, limit);
	}
	FUZZ_CHECK(got == n_all, "paging gave %ld rows, the whole page %ld", got, n_all);
	free(buf);
	return 0;
}
