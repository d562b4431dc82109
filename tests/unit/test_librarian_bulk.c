/* The bulk loader (bulk.h) on a store of its own: a request's new
 * documents in one statement, ids as AUTOINCREMENT gives them, and the
 * careful rerun when SQLite refuses one of them; the block index and FTS5
 * sound after each. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "kernels/librarian/block.h"
#include "kernels/librarian/bulk.h"
#include "kernels/librarian/index.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static sqlite3 *open_store(void)
{
	sqlite3 *db;
	sdk_err e;
	assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
	assert_int_equal(lib_store_init(db, &e), 0);
	return db;
}

/* The block index's deep check, `sample` documents tokenized again. */
static int deep_check(sqlite3 *db, unsigned sample, sdk_err *e)
{
	lib_tok *tok;
	json_t *report = NULL;
	assert_int_equal(lib_tok_new(db, &tok, e), 0);
	int rc = lib_ix_check_deep(db, tok, sample, &report, e);
	json_decref(report);
	lib_tok_free(tok);
	return rc;
}

static void assert_sound(sqlite3 *db)
{
	sdk_err e;
	assert_int_equal(lib_ix_check_quick(db, &e), 0);
	int rc = deep_check(db, 1000, &e);
	if (rc)
		fprintf(stderr, "deep check: %s\n", e.msg);
	assert_int_equal(rc, 0);
	assert_int_equal(sqlite3_exec(db, "INSERT INTO documents_fts (documents_fts, rank)"
					  " VALUES ('integrity-check', 1)", NULL, NULL, NULL),
			 SQLITE_OK);
}

static int64_t count(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int64_t n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

static json_t *load_with(sqlite3 *db, lib_ix_tails *tails, const char *body)
{
	json_t *out = NULL;
	sdk_err e;
	int rc = lib_bulk_load(db, tails, NULL, false, NULL, body, strlen(body), &out, &e);
	if (rc)
		fprintf(stderr, "bulk: %s\n", e.msg);
	assert_int_equal(rc, 0);
	return out;
}

static json_t *load(sqlite3 *db, const char *body) { return load_with(db, NULL, body); }

static int64_t item_id(json_t *r, size_t i)
{
	return json_integer_value(json_object_get(json_array_get(json_object_get(r, "items"), i),
						  "id"));
}

static int64_t num(json_t *r, const char *key)
{
	return json_integer_value(json_object_get(r, key));
}

/* Ids follow AUTOINCREMENT's rule: never one used before, even deleted. */
static void test_ids_and_one_request(void **state)
{
	(void)state;
	sqlite3 *db = open_store();
	sdk_err e;
	int64_t id;
	assert_int_equal(lib_doc_put(db, "first", "put alone", NULL, NULL, &id, &e), 0);
	assert_int_equal(lib_doc_delete(db, id, &e), 0);
	char body[20000];
	size_t n = 0;
	for (int i = 0; i < 200; i++)
		n += (size_t)snprintf(body + n, sizeof body - n,
				      "{\"title\":\"doc %d\",\"body\":\"word%d common text %d\","
				      "\"tags\":[\"t%d\"]}\n", i, i % 17, i, i % 3);
	json_t *r = load(db, body);
	assert_int_equal(num(r, "created"), 200);
	for (size_t i = 0; i < 200; i++)
		assert_int_equal(item_id(r, i), id + 1 + (int64_t)i);
	json_decref(r);
	assert_int_equal(count(db, "SELECT count(*) FROM documents"), 200);
	assert_int_equal(count(db, "SELECT count(*) FROM document_tags"), 200);
	assert_sound(db);
	/* A single document after: the next id. */
	int64_t next;
	assert_int_equal(lib_doc_put(db, "after", "the bulk", NULL, NULL, &next, &e), 0);
	assert_int_equal(next, id + 201);
	assert_sound(db);
	/* An owner's request: their usage (owner_usage's triggers) counts it,
	 * a line replaced by source once. */
	json_t *o = NULL;
	const char *owned = "{\"title\":\"a\",\"body\":\"bb\",\"source\":\"s1\"}\n"
			    "{\"title\":\"c\",\"body\":\"ddd\"}\n"
			    "{\"title\":\"a\",\"body\":\"bbbb\",\"source\":\"s1\"}\n";
	assert_int_equal(lib_bulk_load(db, NULL, "olga", false, NULL, owned, strlen(owned), &o, &e), 0);
	json_decref(o);
	int64_t docs, bytes;
	assert_int_equal(lib_usage(db, "olga", &docs, &bytes, &e), 0);
	assert_int_equal(docs, 2);
	assert_int_equal(bytes, (1 + 4) + (1 + 3));
	assert_int_equal(count(db, "SELECT count(*) FROM documents WHERE owner = 'olga'"), docs);
	assert_int_equal(count(db, "SELECT sum(size) FROM documents WHERE owner = 'olga'"), bytes);
	/* At her byte quota (9): a replacement is counted by its growth, as
	 * an ingest counts it (it was counted whole: the smaller s1 was 413).
	 * s1 shrinks from 5 to 2 (usage 6), a new s2 of 3 brings it to 9, s2
	 * replaced within the request by one of 2 to 8; then s1 grown by 2
	 * is past it. */
	lib_quota q = { .bytes = 9 };
	const char *smaller = "{\"title\":\"a\",\"body\":\"b\",\"source\":\"s1\"}\n"
			      "{\"title\":\"e\",\"body\":\"ff\",\"source\":\"s2\"}\n"
			      "{\"title\":\"e\",\"body\":\"\",\"source\":\"s2\"}\n"
			      "{\"title\":\"e\",\"body\":\"f\",\"source\":\"s2\"}\n";
	assert_int_equal(lib_bulk_load(db, NULL, "olga", false, &q, smaller, strlen(smaller), &o, &e), 0);
	assert_int_equal(num(o, "updated"), 1 + 1);
	assert_int_equal(num(o, "created"), 1);
	assert_int_equal(num(o, "failed"), 1); /* the empty body */
	json_decref(o);
	assert_int_equal(lib_usage(db, "olga", &docs, &bytes, &e), 0);
	assert_int_equal(bytes, 2 + 4 + 2);
	const char *larger = "{\"title\":\"a\",\"body\":\"bbb\",\"source\":\"s1\"}\n";
	assert_int_equal(lib_bulk_load(db, NULL, "olga", false, &q, larger, strlen(larger), &o, &e), 0);
	assert_int_equal(json_integer_value(json_object_get(
				 json_array_get(json_object_get(o, "items"), 0), "status")),
			 413);
	json_decref(o);
	sqlite3_close(db);
}

/* The lines are parsed and checked in two halves on two threads
 * (prep_lines) before the run looks them up in order: every item keeps
 * its line's number and answer, whichever half made it. Blank and CRLF
 * lines, bad lines in both halves, a duplicate and a source replaced
 * across the halves. */
static void test_lines_prepared_in_two_halves(void **state)
{
	(void)state;
	sqlite3 *db = open_store();
	char body[40000];
	size_t n = 0;
	const unsigned lines = 300; /* line numbers 1..300 */
	for (unsigned line = 1; line <= lines; line++) {
		const char *fmt = line % 50 == 7    ? "not json %u\n"
				  : line % 61 == 3  ? "{\"title\":\"no body %u\"}\n"
				  : line % 23 == 0  ? "  \t\n"
				  : line == 20      ? "{\"title\":\"t\",\"body\":\"src one\",\"source\":\"s\"}\n"
				  : line == 280     ? "{\"title\":\"t\",\"body\":\"src two\",\"source\":\"s\"}\n"
				  : line == 290     ? "{\"title\":\"doc 2\",\"body\":\"same %u\"}\r\n"
				  : line == 2       ? "{\"title\":\"doc 2\",\"body\":\"same 290\"}\r\n"
						    : "{\"title\":\"doc\",\"body\":\"body %u\"}\n";
		n += (size_t)snprintf(body + n, sizeof body - n, fmt, line);
	}
	json_t *r = load(db, body);
	json_t *items = json_object_get(r, "items");
	unsigned bad = 0, blank = 0;
	size_t k = 0;
	for (unsigned line = 1; line <= lines; line++) {
		if (line % 23 == 0 && line % 50 != 7 && line % 61 != 3) {
			blank++;
			continue;
		}
		json_t *it = json_array_get(items, k++);
		assert_non_null(it);
		assert_int_equal(json_integer_value(json_object_get(it, "line")), line);
		int status = (int)json_integer_value(json_object_get(it, "status"));
		const char *msg = json_string_value(
			json_object_get(json_object_get(it, "error"), "message"));
		if (line % 50 == 7) {
			assert_int_equal(status, 400);
			assert_non_null(strstr(msg, "not JSON"));
			bad++;
		} else if (line % 61 == 3) {
			assert_int_equal(status, 400);
			assert_non_null(strstr(msg, "title and body are required"));
			bad++;
		} else if (line == 290) {
			assert_int_equal(status, 200); /* the same as line 2 */
			assert_string_equal(json_string_value(json_object_get(it, "result")),
					    "duplicate");
		} else if (line == 280) {
			assert_int_equal(status, 200); /* replaces line 20's, still waiting */
			assert_string_equal(json_string_value(json_object_get(it, "result")),
					    "updated");
			assert_int_equal(json_integer_value(json_object_get(it, "id")),
					 json_integer_value(json_object_get(json_array_get(items, 19),
									    "id")));
		} else {
			assert_int_equal(status, 201);
		}
	}
	assert_int_equal(k, json_array_size(items));
	assert_int_equal(num(r, "failed"), bad);
	assert_int_equal(num(r, "duplicates"), 1);
	assert_int_equal(count(db, "SELECT count(*) FROM documents"),
			 (int64_t)(lines - blank - bad - 2));
	assert_int_equal(count(db, "SELECT count(*) FROM documents WHERE body = 'src two'"), 1);
	json_decref(r);
	assert_sound(db);
	sqlite3_close(db);
}

/* SQLite refusing one row of the request's INSERT: the request runs again
 * a line at a time, that line is its error, the others are stored. */
static void test_refused_row_reruns_carefully(void **state)
{
	(void)state;
	sqlite3 *db = open_store();
	assert_int_equal(sqlite3_exec(db, "CREATE TRIGGER refuse BEFORE INSERT ON documents"
					  " WHEN new.title = 'refuse me' BEGIN"
					  " SELECT RAISE(ABORT, 'refused by the test'); END",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	json_t *r = load(db, "{\"title\":\"alpha\",\"body\":\"one\"}\n"
			     "{\"title\":\"refuse me\",\"body\":\"two\"}\n"
			     "{\"title\":\"beta\",\"body\":\"three\",\"source\":\"s://b\"}\n"
			     "{\"title\":\"alpha\",\"body\":\"one\"}\n");
	assert_int_equal(num(r, "created"), 2);
	assert_int_equal(num(r, "failed"), 1);
	assert_int_equal(num(r, "duplicates"), 1);
	json_t *items = json_object_get(r, "items");
	assert_int_equal(json_array_size(items), 4);
	json_t *bad = json_array_get(items, 1);
	assert_int_equal(json_integer_value(json_object_get(bad, "line")), 2);
	assert_int_equal(json_integer_value(json_object_get(bad, "status")), 400);
	assert_non_null(strstr(json_string_value(json_object_get(json_object_get(bad, "error"),
								 "message")),
			       "refused by the test"));
	assert_int_equal(item_id(r, 3), item_id(r, 0));
	json_decref(r);
	assert_int_equal(count(db, "SELECT count(*) FROM documents"), 2);
	assert_sound(db);
	/* The same past BULK_COLLECT_THREAD_MIN lines, where the index
	 * collects on a second thread while the refused INSERT runs: that
	 * collection goes with the run, the careful one indexes the rest. */
	char body[100 * 80];
	size_t n = 0;
	for (int i = 0; i < 100; i++)
		n += (size_t)snprintf(body + n, sizeof body - n,
				      "{\"title\":\"%s\",\"body\":\"many %d words\"}\n",
				      i == 50 ? "refuse me" : "many", i);
	r = load(db, body);
	assert_int_equal(num(r, "created"), 99);
	assert_int_equal(num(r, "failed"), 1);
	json_decref(r);
	assert_int_equal(count(db, "SELECT count(*) FROM documents"), 101);
	assert_sound(db);
	sqlite3_close(db);
}

/* The one text `sql` selects (the caller's to free). */
static char *text_of(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	char *out = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return out;
}

/* The block index's rows, in order, as one text (blobs in hex): each
 * term's blocks, then its tail. */
static char *index_dump(sqlite3 *db)
{
	return text_of(db, "SELECT group_concat(x, ';') FROM (SELECT"
			   " t.term || ',' || t.df || ',' || b.last || ',' || b.n || ','"
			   " || hex(b.bound) || ',' || hex(b.docs) AS x"
			   " FROM ix_terms t JOIN (SELECT b.term, b.last, b.n, b.bound, p.docs"
			   " FROM ix_blocks b JOIN ix_posts p ON p.id = b.post UNION ALL"
			   " SELECT term, last, n, bound, docs FROM ix_tails) b ON b.term = t.id"
			   " ORDER BY t.term, b.last)");
}

/* Requests of 40 documents over a small vocabulary (tails fill and
 * split), with single writes between some of them (which the cache must
 * notice): with the writer's tails cache the index is the same, byte for
 * byte, as without. */
static void test_tails_cache_changes_nothing(void **state)
{
	(void)state;
	sqlite3 *with = open_store(), *without = open_store();
	lib_ix_tails *tails = lib_ix_tails_new();
	assert_non_null(tails);
	unsigned seed = 3;
	int64_t single = 0;
	for (int req = 0; req < 30; req++) {
		char body[100 * 200];
		size_t n = 0;
		/* 40 lines collected on the writer's thread, 70 and 100 on a second */
		for (int i = 0; i < 40 + req % 3 * 30; i++) {
			n += (size_t)snprintf(body + n, sizeof body - n, "{\"title\":\"r%d d%d\",\"body\":\"",
					      req, i);
			for (int w = 0; w < 12; w++)
				n += (size_t)snprintf(body + n, sizeof body - n, "w%u ",
						      rand_r(&seed) % 60);
			n += (size_t)snprintf(body + n, sizeof body - n, "\"%s}\n",
					      i == 0 && req % 5 == 0 ? ",\"source\":\"s://x\"" : "");
		}
		json_decref(load_with(with, tails, body));
		json_decref(load(without, body));
		sdk_err e;
		if (req % 7 == 3) { /* writes the cache does not see */
			assert_int_equal(lib_doc_put(with, "single", "w1 w2 w3", NULL, NULL, &single,
						     &e), 0);
			assert_int_equal(lib_doc_put(without, "single", "w1 w2 w3", NULL, NULL, &single,
						     &e), 0);
		} else if (req % 7 == 5 && single) {
			assert_int_equal(lib_doc_delete(with, single, &e), 0);
			assert_int_equal(lib_doc_delete(without, single, &e), 0);
			single = 0;
		}
	}
	assert_true(lib_ix_tails_terms(tails) > 0); /* the last requests used it */
	char *a = index_dump(with), *b = index_dump(without);
	assert_string_equal(a, b);
	free(a);
	free(b);
	assert_sound(with);
	lib_ix_tails_free(tails);
	sqlite3_close(with);
	sqlite3_close(without);
}

/* A request of `n` documents, each "common" and two words of w0..w(v-1). */
static char *words_body(unsigned *seed, int req, int n, unsigned v)
{
	char *body = malloc((size_t)n * 100 + 1);
	assert_non_null(body);
	size_t o = 0;
	for (int i = 0; i < n; i++)
		o += (size_t)sprintf(body + o, "{\"title\":\"t%d.%d\",\"body\":\"common w%u w%u\"}\n",
				     req, i, rand_r(seed) % v, rand_r(seed) % v);
	return body;
}

static char *posts_dump(sqlite3 *db)
{
	return text_of(db, "SELECT coalesce(group_concat(x, ';'), '') FROM (SELECT b.term || ','"
			   " || b.last || ',' || b.n || ',' || hex(p.docs) AS x FROM ix_blocks b"
			   " JOIN ix_posts p ON p.id = b.post ORDER BY b.term, b.last)");
}

/* Each term's last block is its row of ix_tails (index.h): a flush whose
 * words' tails have room writes no block and no postings row; a tail that
 * fills becomes blocks of LIB_BLK_TARGET before it; a tail emptied by
 * removals goes (here with its term); a term with no tail, its last block
 * among the blocks (as schema 5 left every term), takes appends into a
 * new tail, and a document replaced inside that block's range merges into
 * the block. The index sound after each. */
static void test_tails_in_their_table(void **state)
{
	(void)state;
	sqlite3 *db = open_store();
	unsigned seed = 11;
	sdk_err e;
	char *body = words_body(&seed, 0, 40, 30);
	json_decref(load(db, body));
	free(body);
	assert_int_equal(count(db, "SELECT count(*) FROM ix_blocks"), 0);
	assert_int_equal(count(db, "SELECT count(*) FROM ix_tails"),
			 count(db, "SELECT count(*) FROM ix_terms"));
	assert_int_equal(count(db, "SELECT n FROM ix_tails WHERE term ="
				   " (SELECT id FROM ix_terms WHERE term = 'common')"), 40);
	/* Appends with room: no block, no postings row written. */
	char *before = posts_dump(db);
	body = words_body(&seed, 1, 20, 30);
	json_decref(load(db, body));
	free(body);
	char *after = posts_dump(db);
	assert_string_equal(before, after);
	free(before);
	free(after);
	/* "common" past LIB_BLK_TARGET: full blocks before its tail. */
	for (int req = 2; req < 6; req++) {
		body = words_body(&seed, req, 40, 30);
		json_decref(load(db, body));
		free(body);
	}
	int64_t common = count(db, "SELECT id FROM ix_terms WHERE term = 'common'");
	char q[600];
	snprintf(q, sizeof q, "SELECT count(*) FROM ix_blocks WHERE term = %lld AND n = %d",
		 (long long)common, LIB_BLK_TARGET);
	assert_int_equal(count(db, q), 1); /* 220 postings: 128, then a tail of 92 */
	snprintf(q, sizeof q, "SELECT n FROM ix_tails WHERE term = %lld", (long long)common);
	assert_int_equal(count(db, q), 220 - LIB_BLK_TARGET);
	assert_sound(db);
	/* Every document of a word's tail removed: its tail goes. A word
	 * only the last request has is all tail. */
	json_decref(load(db, "{\"title\":\"x\",\"body\":\"zebra\"}\n"
			     "{\"title\":\"y\",\"body\":\"zebra common\"}\n"));
	int64_t zebra = count(db, "SELECT id FROM ix_terms WHERE term = 'zebra'");
	int64_t last = count(db, "SELECT max(id) FROM documents");
	assert_int_equal(lib_doc_delete(db, last, &e), 0);
	assert_int_equal(lib_doc_delete(db, last - 1, &e), 0);
	snprintf(q, sizeof q, "SELECT count(*) FROM ix_tails WHERE term = %lld", (long long)zebra);
	assert_int_equal(count(db, q), 0);
	assert_int_equal(count(db, "SELECT count(*) FROM ix_terms WHERE term = 'zebra'"), 0);
	assert_sound(db);
	/* A term whose last block is among the blocks (schema 5's layout):
	 * its tail made a block, by hand, its last two documents ones with
	 * a source. */
	int64_t a, b, a2;
	assert_int_equal(lib_doc_upsert(db, NULL, NULL, "s1", "common w1", "[]", "s://one", 10, &a,
					&e), 0);
	assert_int_equal(lib_doc_upsert(db, NULL, NULL, "s2", "common w1", "[]", "s://two", 10, &a2,
					&e), 0);
	assert_int_equal(lib_ix_merge_all(db, NULL, NULL, &e), 0);
	snprintf(q, sizeof q,
		 "INSERT INTO ix_posts (id, docs, pos) SELECT (SELECT coalesce(max(id), 0) + 1"
		 " FROM ix_posts), docs, pos FROM ix_tails WHERE term = %lld", (long long)common);
	assert_int_equal(sqlite3_exec(db, q, NULL, NULL, NULL), SQLITE_OK);
	snprintf(q, sizeof q,
		 "INSERT INTO ix_blocks (term, last, n, bound, post) SELECT term, last, n, bound,"
		 " (SELECT max(id) FROM ix_posts) FROM ix_tails WHERE term = %lld;"
		 " DELETE FROM ix_tails WHERE term = %lld", (long long)common, (long long)common);
	assert_int_equal(sqlite3_exec(db, q, NULL, NULL, NULL), SQLITE_OK);
	snprintf(q, sizeof q, "SELECT max(last) FROM ix_blocks WHERE term = %lld", (long long)common);
	assert_int_equal(count(db, q), a2);
	assert_sound(db);
	/* The first of them replaced (its id kept, inside the block's range) in
	 * a bulk request with new ones after it: into the block, and into a
	 * new tail; then replaced again through the pending documents. */
	body = words_body(&seed, 7, 30, 30);
	char *with = malloc(strlen(body) + 100);
	assert_non_null(with);
	sprintf(with, "{\"title\":\"again\",\"body\":\"common w2\",\"source\":\"s://one\"}\n%s", body);
	json_t *r = load(db, with);
	assert_int_equal(item_id(r, 0), a);
	json_decref(r);
	free(with);
	free(body);
	assert_sound(db);
	assert_int_equal(lib_doc_upsert(db, NULL, NULL, "s1", "common w3", "[]", "s://one", 10, &b,
					&e), 0);
	assert_int_equal(a, b);
	assert_int_equal(lib_ix_merge_all(db, NULL, NULL, &e), 0);
	snprintf(q, sizeof q, "SELECT count(*) FROM ix_tails WHERE term = %lld", (long long)common);
	assert_int_equal(count(db, q), 1);
	snprintf(q, sizeof q, "SELECT df FROM ix_terms WHERE id = %lld", (long long)common);
	assert_int_equal(count(db, q), count(db, "SELECT count(*) FROM documents WHERE"
						 " body LIKE '%common%'"));
	assert_sound(db);
	/* A tail out of order with its blocks is damage the deep check finds. */
	snprintf(q, sizeof q, "UPDATE ix_tails SET docs = (SELECT p.docs FROM ix_blocks b JOIN"
		 " ix_posts p ON p.id = b.post WHERE b.term = %lld LIMIT 1), last = (SELECT b.last"
		 " FROM ix_blocks b WHERE b.term = %lld LIMIT 1), n = (SELECT b.n FROM ix_blocks b"
		 " WHERE b.term = %lld LIMIT 1) WHERE term = %lld", (long long)common,
		 (long long)common, (long long)common, (long long)common);
	assert_int_equal(sqlite3_exec(db, q, NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(deep_check(db, 0, &e), SDK_ECORRUPT);
	sqlite3_close(db);
}

/* At most LIB_BULK_LINES_MAX lines (blank ones count): one more is the
 * whole request refused, naming the limit; at the limit it runs, and a
 * bad line among many still says what is wrong with it. 12,000 short
 * documents (past the 10,000 lines of before) are stored. */
static void test_line_limit(void **state)
{
	(void)state;
	sqlite3 *db = open_store();
	size_t cap = (size_t)LIB_BULK_LINES_MAX * 40 + 200;
	char *body = malloc(cap);
	assert_non_null(body);
	memset(body, '\n', LIB_BULK_LINES_MAX + 1);
	json_t *out = NULL;
	sdk_err e;
	assert_int_equal(lib_bulk_load(db, NULL, NULL, false, NULL, body, LIB_BULK_LINES_MAX + 1, &out, &e),
			 SDK_EINVAL);
	char want[64];
	snprintf(want, sizeof want, "at most %u lines", LIB_BULK_LINES_MAX);
	assert_non_null(strstr(e.msg, want));
	assert_null(out);
	size_t n = (size_t)sprintf(body, "{\"title\":\"a\",\"body\":\"first\"}\n"
				       "{\"title\":\"b\",\"body\":\"second\"}\n");
	memset(body + n, '\n', LIB_BULK_LINES_MAX - 3);
	n += LIB_BULK_LINES_MAX - 3;
	n += (size_t)sprintf(body + n, "{\"title\":7}\n");
	json_t *r = load(db, body);
	assert_int_equal(num(r, "created"), 2);
	assert_int_equal(num(r, "failed"), 1);
	json_t *bad = json_array_get(json_object_get(r, "items"), 2);
	assert_int_equal(json_integer_value(json_object_get(bad, "line")), LIB_BULK_LINES_MAX);
	assert_non_null(strstr(json_string_value(json_object_get(json_object_get(bad, "error"),
								"message")),
			       "title and body are required"));
	json_decref(r);
	n = 0;
	for (int i = 0; i < 12000; i++)
		n += (size_t)sprintf(body + n, "{\"title\":\"s%d\",\"body\":\"w%d\"}\n", i, i);
	r = load(db, body);
	assert_int_equal(num(r, "created"), 12000);
	assert_int_equal(num(r, "failed"), 0);
	json_decref(r);
	free(body);
	assert_sound(db);
	sqlite3_close(db);
}

/* A document is found by its hash through documents_by_hash8 (a lookup,
 * never a scan of the documents), and loading it again, alone or among
 * others, is a duplicate; so is one whose hash shares its first 8 bytes
 * with another's only when the whole hash is the same. */
static void test_hash_lookup(void **state)
{
	(void)state;
	sqlite3 *db = open_store();
	char *plan = NULL;
	{
		char q[400];
		snprintf(q, sizeof q, "EXPLAIN QUERY PLAN %s", lib_bulk_sql_hash_find);
		sqlite3_stmt *st;
		assert_int_equal(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		plan = strdup((const char *)sqlite3_column_text(st, 3));
		sqlite3_finalize(st);
	}
	assert_non_null(strstr(plan, "USING INDEX documents_by_hash8"));
	free(plan);
	json_decref(load(db, "{\"title\":\"a\",\"body\":\"one\"}\n{\"title\":\"b\",\"body\":\"two\"}\n"));
	/* A row whose hash is x's but for its last byte (x's hash from a
	 * store of its own): x is new all the same, and a a duplicate. */
	sqlite3 *other = open_store();
	json_decref(load(other, "{\"title\":\"x\",\"body\":\"new\"}\n"));
	char *xhash = text_of(other, "SELECT hex(substr(hash, 1, 31)) || CASE substr(hash, 32, 1)"
				     " WHEN x'00' THEN '01' ELSE '00' END FROM documents");
	sqlite3_close(other);
	char q[300];
	snprintf(q, sizeof q, "INSERT INTO documents (title, body, created_at, hash)"
		 " VALUES ('c', 'three', 0, x'%s')", xhash);
	free(xhash);
	assert_int_equal(sqlite3_exec(db, q, NULL, NULL, NULL), SQLITE_OK);
	json_t *r = load(db, "{\"title\":\"x\",\"body\":\"new\"}\n{\"title\":\"a\",\"body\":\"one\"}\n");
	assert_int_equal(num(r, "created"), 1);
	assert_int_equal(num(r, "duplicates"), 1);
	assert_int_equal(item_id(r, 1), 1);
	json_decref(r);
	sqlite3_close(db);
}

/* The documents' rows as one text (not created_at, which is the clock's). */
static char *docs_dump(sqlite3 *db)
{
	return text_of(db, "SELECT group_concat(x, ';') FROM (SELECT id || ','"
			   " || title || ',' || body || ',' || tags || ','"
			   " || coalesce(source, '') || ',' || coalesce(owner, '') || ','"
			   " || size || ',' || coalesce(hex(hash), '') AS x"
			   " FROM documents ORDER BY id)");
}

/* Runs `bodies` as one group on `grouped` and one at a time on `alone`
 * (each with a tails cache of its own), for `owner` under `quota`, and
 * checks that every request got the same answer and that the stores are
 * the same: documents, block index, FTS5 sound. */
static void group_against_alone(const char **bodies, size_t n, const char *owner,
				const lib_quota *quota, const char *refuse)
{
	sqlite3 *grouped = open_store(), *alone = open_store();
	if (refuse) {
		char sql[256];
		snprintf(sql, sizeof sql, "CREATE TRIGGER refuse BEFORE INSERT ON documents"
			 " WHEN new.title = '%s' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
			 refuse);
		assert_int_equal(sqlite3_exec(grouped, sql, NULL, NULL, NULL), SQLITE_OK);
		assert_int_equal(sqlite3_exec(alone, sql, NULL, NULL, NULL), SQLITE_OK);
	}
	lib_ix_tails *tg = lib_ix_tails_new(), *ta = lib_ix_tails_new();
	lib_bulk_req q[8];
	assert_true(n <= 8);
	for (size_t i = 0; i < n; i++)
		q[i] = (lib_bulk_req){ .owner = owner, .quota = quota, .body = bodies[i],
				       .len = strlen(bodies[i]) };
	lib_bulk_load_group(grouped, tg, q, n);
	for (size_t i = 0; i < n; i++) {
		json_t *out = NULL;
		sdk_err e;
		int rc = lib_bulk_load(alone, ta, owner, false, quota, bodies[i], strlen(bodies[i]), &out, &e);
		assert_int_equal(q[i].rc, rc);
		if (rc) {
			assert_string_equal(q[i].err.msg, e.msg);
			continue;
		}
		json_object_del(out, "took_ms");
		json_object_del(q[i].out, "took_ms");
		if (!json_equal(out, q[i].out)) {
			char *a = json_dumps(q[i].out, JSON_COMPACT), *b = json_dumps(out, JSON_COMPACT);
			fprintf(stderr, "request %zu grouped: %s\nalone: %s\n", i, a, b);
			free(a);
			free(b);
			fail();
		}
		json_decref(out);
		json_decref(q[i].out);
	}
	char *a = docs_dump(grouped), *b = docs_dump(alone);
	assert_string_equal(a, b);
	free(a);
	free(b);
	a = index_dump(grouped), b = index_dump(alone);
	assert_string_equal(a, b);
	free(a);
	free(b);
	assert_sound(grouped);
	lib_ix_tails_free(tg);
	lib_ix_tails_free(ta);
	sqlite3_close(grouped);
	sqlite3_close(alone);
}

/* Requests written together (the writer takes the ones of an owner that
 * wait together, workers.c) answer and store what they would one at a
 * time: a duplicate of an earlier request's document, a source stored by
 * one and replaced by a later one, bad lines, a body refused whole, and
 * an owner's quota running out in the third. */
static void test_group_is_one_at_a_time(void **state)
{
	(void)state;
	const char *bodies[] = {
		"{\"title\":\"alpha\",\"body\":\"one two\"}\n"
		"{\"title\":\"src\",\"body\":\"first text\",\"source\":\"s://1\"}\n"
		"not json\n",
		"{\"title\":\"alpha\",\"body\":\"one two\"}\n"
		"{\"title\":\"beta\",\"body\":\"three four\",\"tags\":[\"x\"]}\n",
		"",
		"{\"title\":\"src\",\"body\":\"second text\",\"source\":\"s://1\"}\n"
		"{\"title\":\"gamma\",\"body\":\"five\"}\n"
		"{\"title\":\"delta\",\"body\":\"six\"}\n"
		"{\"title\":\"epsilon\",\"body\":\"seven\"}\n",
		"{\"title\":\"beta\",\"body\":\"three four\",\"tags\":[\"x\"]}\n"
		"{\"title\":\"zeta\",\"body\":\"eight\"}\n",
	};
	group_against_alone(bodies, 5, NULL, NULL, NULL);
	lib_quota quota = { .docs = 5 };
	group_against_alone(bodies, 5, "olga", &quota, NULL);
	/* A row SQLite refuses in the second request: the group is rolled
	 * back and each runs alone (the second carefully). */
	group_against_alone(bodies, 5, NULL, NULL, "beta");
	/* Past BULK_COLLECT_THREAD_MIN lines a request, with tails filling. */
	static char big[3][100 * 120];
	const char *many[3];
	unsigned seed = 9;
	for (int r = 0; r < 3; r++) {
		size_t n = 0;
		for (int i = 0; i < 100; i++) {
			n += (size_t)snprintf(big[r] + n, sizeof big[r] - n,
					      "{\"title\":\"r%d d%d\",\"body\":\"", r, i % 90);
			for (int w = 0; w < 12; w++)
				n += (size_t)snprintf(big[r] + n, sizeof big[r] - n, "w%u ",
						      rand_r(&seed) % 60);
			n += (size_t)snprintf(big[r] + n, sizeof big[r] - n, "\"}\n");
		}
		many[r] = big[r];
	}
	group_against_alone(many, 3, NULL, NULL, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ids_and_one_request),
		cmocka_unit_test(test_lines_prepared_in_two_halves),
		cmocka_unit_test(test_refused_row_reruns_carefully),
		cmocka_unit_test(test_tails_cache_changes_nothing),
		cmocka_unit_test(test_tails_in_their_table),
		cmocka_unit_test(test_line_limit),
		cmocka_unit_test(test_hash_lookup),
		cmocka_unit_test(test_group_is_one_at_a_time),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
