/* A memory store for the memory harnesses: a temporary directory (under
 * $GRACE_FUZZ_TMP, else /dev/shm when there is one: the store's writes stay
 * in memory), user "alice" with two tables of rows that hold the awkward
 * values (quotes, controls and non-ASCII in strings, -0.0, integers past
 * 2^53, nested containers, values of every kind under one key):
 *   typed: a column of every type, r required, u not indexed;
 *   free:  no declared columns.
 * The rows and their ids are kept for the harnesses' reference checks.
 * Rows are read as the API reads bodies (sdk_req_json): no \u0000. */
#ifndef GRACE_FUZZ_MEMORY_FIXTURE_H
#define GRACE_FUZZ_MEMORY_FIXTURE_H

#include "serve/memory/store.h"

#include "fuzz.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FX_USER "alice"

static const char fx_typed_spec[] =
	"{\"name\":\"typed\",\"columns\":["
	"{\"name\":\"s\",\"type\":\"string\"},{\"name\":\"n\",\"type\":\"number\"},"
	"{\"name\":\"b\",\"type\":\"boolean\"},{\"name\":\"j\",\"type\":\"json\"},"
	"{\"name\":\"t\",\"type\":\"text\"},{\"name\":\"u\",\"type\":\"string\",\"index\":false},"
	"{\"name\":\"r\",\"type\":\"number\",\"required\":true}]}";

static const char *const fx_typed_rows[] = {
	"{\"r\":1,\"s\":\"a\",\"n\":1,\"b\":true,\"j\":[1,2,\"x\"],\"t\":\"the quick brown fox\"}",
	"{\"r\":2,\"s\":\"a\",\"n\":1.5,\"b\":false,\"j\":{\"k\":\"v\"},\"t\":\"lazy dogs\"}",
	"{\"r\":3,\"s\":\"b\",\"n\":-0.0,\"b\":null,\"j\":\"x\",\"t\":\"fox\"}",
	"{\"r\":4,\"s\":null,\"n\":null}",
	"{\"r\":5,\"s\":\"\",\"n\":9007199254740993,\"j\":[true,false,null]}",
	"{\"r\":6,\"s\":\"it's \\\"quoted\\\" \\\\ and ?\",\"n\":1e300,\"t\":\"it's ? quoted\"}",
	"{\"r\":7,\"s\":\"tab\\there\\n\",\"n\":-5,\"u\":\"\\u0001\"}",
	"{\"r\":8,\"s\":\"caf\\u00e9 \\ud83d\\ude00\",\"n\":0,\"u\":\"x\"}",
	"{\"r\":9,\"s\":\"a\",\"n\":1}",
	"{\"r\":10}",
	"{\"r\":11,\"s\":\"z\",\"n\":-9223372036854775808,\"j\":[[\"a\"],\"[\\\"a\\\"]\"]}",
	"{\"r\":12,\"s\":\"a%_*\",\"b\":true,\"j\":[1,[2],1.0],\"t\":\"quick quick\"}",
};

static const char *const fx_free_rows[] = {
	"{\"x\":1,\"y\":\"a\"}",
	"{\"x\":\"1\",\"y\":null}",
	"{\"x\":true,\"y\":[1,2]}",
	"{\"x\":[1,\"1\",true],\"y\":{\"z\":1}}",
	"{\"x\":1.0,\"nested\":{\"a\":{\"b\":{\"c\":1}}}}",
	"{\"x\":null}",
	"{}",
	"{\"x\":\"ctl\\u001f\",\"y\":\"\",\"Z_9\":2}",
	"{\"x\":false,\"y\":\"a\"}",
	"{\"x\":-1e-300,\"y\":\"b\"}",
	"{\"x\":\"[1,2]\",\"y\":[[\"a\"]]}",
	"{\"x\":{\"a\":1},\"y\":\"[\\\"a\\\"]\"}",
	"{\"x\":0,\"y\":[0,false,\"0\"]}",
};

#define FX_TYPED_N (sizeof fx_typed_rows / sizeof *fx_typed_rows)
#define FX_FREE_N (sizeof fx_free_rows / sizeof *fx_free_rows)

struct fx_table {
	const char *name;
	size_t n;
	json_t *rows[16]; /* as inserted, owned */
	int64_t ids[16];
};

static struct {
	char dir[256];
	mem_store *s;
	struct fx_table typed, free_;
} fx;

static void fx_close(void)
{
	if (!fx.s)
		return;
	mem_store_close(fx.s);
	fx.s = NULL;
	static const char *const files[] = { "memory.db", "memory.db-wal", "memory.db-shm" };
	char path[300];
	for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
		snprintf(path, sizeof path, "%s/%s", fx.dir, files[i]);
		unlink(path);
	}
	rmdir(fx.dir);
}

static json_t *fx_json(const char *text)
{
	json_error_t je;
	json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
	if (!j) {
		fprintf(stderr, "fixture: bad JSON %s: %s\n", text, je.text);
		abort();
	}
	return j;
}

static void fx_fill(struct fx_table *t, const char *name, const char *spec,
		    const char *const *rows, size_t n)
{
	sdk_err e;
	json_t *sp = fx_json(spec), *made = NULL;
	if (mem_table_create(fx.s, FX_USER, sp, 1000, &made, &e) < 0) {
		fprintf(stderr, "fixture: create %s: %s\n", name, e.msg);
		abort();
	}
	json_decref(made);
	json_decref(sp);
	t->name = name;
	for (size_t i = 0; i < n; i++) {
		json_t *row = fx_json(rows[i]);
		json_t *ids = NULL;
		if (mem_rows_insert(fx.s, FX_USER, NULL, name, row, 2000, &ids, &e) < 0) {
			fprintf(stderr, "fixture: insert %s: %s\n", rows[i], e.msg);
			abort();
		}
		t->rows[t->n] = row;
		t->ids[t->n++] = json_integer_value(json_array_get(json_object_get(ids, "ids"), 0));
		json_decref(ids);
	}
}

/* Opens the store and fills it; removed at exit. */
static void fx_open(void)
{
	const char *base = getenv("GRACE_FUZZ_TMP"); /* scripts/fuzz.sh's, removed after */
	if (!base || !*base)
		base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(fx.dir, sizeof fx.dir, "%s/grace-fuzz-XXXXXX", base);
	FUZZ_CHECK(strlen(fx.dir) + 16 < sizeof fx.dir, "a long temporary directory");
	sdk_err e;
	if (!mkdtemp(fx.dir) || !(fx.s = mem_store_open(fx.dir, NULL, 1, &e))) {
		fprintf(stderr, "fixture: cannot open a store in %s\n", fx.dir);
		abort();
	}
	atexit(fx_close);
	fx_fill(&fx.typed, "typed", fx_typed_spec, fx_typed_rows, FX_TYPED_N);
	fx_fill(&fx.free_, "free", "{\"name\":\"free\"}", fx_free_rows, FX_FREE_N);
}

/* The rows of a query's answer, by id, in order; -1 when the answer is not
 * the documented shape. *next is the next_cursor (malloc'd) or NULL. */
static long fx_answer_ids(const char *text, int64_t *ids, size_t max, char **next)
{
	json_error_t je;
	json_t *a = json_loads(text, 0, &je);
	FUZZ_CHECK(a, "the answer is not JSON: %s: %.200s", je.text, text);
	json_t *rows = json_object_get(a, "rows"), *nc = json_object_get(a, "next_cursor");
	FUZZ_CHECK(json_is_array(rows) && (json_is_null(nc) || json_is_string(nc)) &&
			   json_integer_value(json_object_get(a, "count")) ==
				   (json_int_t)json_array_size(rows),
		   "the answer's shape: %.200s", text);
	size_t n = json_array_size(rows);
	FUZZ_CHECK(n <= max, "%zu rows, more than %zu", n, max);
	for (size_t i = 0; i < n; i++) {
		json_t *r = json_array_get(rows, i);
		FUZZ_CHECK(json_is_integer(json_object_get(r, "id")) &&
				   json_is_object(json_object_get(r, "data")),
			   "row %zu's shape", i);
		ids[i] = json_integer_value(json_object_get(r, "id"));
	}
	*next = json_is_string(nc) ? strdup(json_string_value(nc)) : NULL;
	json_decref(a);
	return (long)n;
}

#endif
