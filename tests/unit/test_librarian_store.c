/* Unit tests for the librarian store: an in-memory database per test and a
 * scratch directory tree for ingest. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/librarian/ingest.h"
#include "kernels/librarian/store.h"

struct fx {
	sqlite3 *db;
	char dir[PATH_MAX];	/* scratch tree, already realpath'd */
	char root[PATH_MAX];	/* dir/lib: the library root */
	lib_err err;
};

static void path_of(char *buf, const struct fx *f, const char *rel)
{
	int n = snprintf(buf, PATH_MAX, "%s/%s", f->dir, rel);

	assert_true(n > 0 && n < PATH_MAX);
}

static void write_file(const struct fx *f, const char *rel, const void *data,
		       size_t len)
{
	char p[PATH_MAX];
	FILE *fp;

	path_of(p, f, rel);
	fp = fopen(p, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

static void write_text(const struct fx *f, const char *rel, const char *text)
{
	write_file(f, rel, text, strlen(text));
}

static void make_dir(const struct fx *f, const char *rel)
{
	char p[PATH_MAX];

	path_of(p, f, rel);
	assert_int_equal(mkdir(p, 0700), 0);
}

static void make_link(const struct fx *f, const char *target, const char *rel)
{
	char p[PATH_MAX];

	path_of(p, f, rel);
	assert_int_equal(symlink(target, p), 0);
}

static int rm_entry(const char *p, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char tmpl[] = "/tmp/test_librarian_XXXXXX";

	assert_non_null(f);
	assert_int_equal(sqlite3_open(":memory:", &f->db), SQLITE_OK);
	assert_int_equal(lib_store_init(f->db, &f->err), SDK_OK);
	assert_non_null(mkdtemp(tmpl));
	/* /tmp may itself be a symlink; the store reports resolved paths. */
	assert_non_null(realpath(tmpl, f->dir));
	path_of(f->root, f, "lib");
	make_dir(f, "lib");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	sqlite3_close(f->db);
	free(f);
	return 0;
}

static int64_t put(struct fx *f, const char *title, const char *body,
		   const char *tags_json)
{
	json_t *tags = tags_json ? json_loads(tags_json, 0, NULL) : NULL;
	int64_t id = 0;

	assert_int_equal(lib_doc_put(f->db, title, body, tags, NULL, &id,
				     &f->err), SDK_OK);
	json_decref(tags);
	assert_true(id > 0);
	return id;
}

static int put_rc(struct fx *f, const char *title, const char *body,
		  json_t *tags, const char *msg)
{
	int rc;

	f->err.msg[0] = '\0';
	rc = lib_doc_put(f->db, title, body, tags, NULL, NULL, &f->err);
	json_decref(tags);
	if (msg && !strstr(f->err.msg, msg))
		fail_msg("expected \"%s\" in \"%s\"", msg, f->err.msg);
	return rc;
}

static long long count_rows(struct fx *f, const char *sql)
{
	sqlite3_stmt *st;
	long long n;

	assert_int_equal(sqlite3_prepare_v2(f->db, sql, -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

static json_t *search(struct fx *f, const char *q, const char *tag,
		      unsigned limit)
{
	json_t *out = NULL;

	assert_int_equal(lib_search(f->db, NULL, q, tag, limit, &out, &f->err),
			 SDK_OK);
	assert_non_null(out);
	return out;
}

static json_int_t total_of(json_t *res)
{
	return json_integer_value(json_object_get(res, "total"));
}

static json_t *hit(json_t *res, size_t i)
{
	return json_array_get(json_object_get(res, "results"), i);
}

static const char *str_of(json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

static void test_init_idempotent(void **state)
{
	struct fx *f = *state;

	assert_int_equal(lib_store_init(f->db, &f->err), SDK_OK);
	assert_int_equal(count_rows(f, "PRAGMA user_version"), LIB_SCHEMA_VERSION);
}

static void test_init_refuses_newer_schema(void **state)
{
	struct fx *f = *state;

	assert_int_equal(sqlite3_exec(f->db, "PRAGMA user_version = 99",
				      NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(lib_store_init(f->db, &f->err), SDK_EIO);
	assert_non_null(strstr(f->err.msg, "newer"));
}

static void test_put_get_delete(void **state)
{
	struct fx *f = *state;
	json_t *tags = json_pack("[s,s,s]", "a", "b", "a");
	json_t *doc = NULL;
	int64_t id = 0;

	assert_int_equal(lib_doc_put(f->db, "Title", "Body text", tags,
				     "/src/x", &id, &f->err), SDK_OK);
	json_decref(tags);
	assert_true(id > 0);

	assert_int_equal(lib_doc_get(f->db, id, &doc, &f->err), SDK_OK);
	assert_int_equal(json_integer_value(json_object_get(doc, "id")), id);
	assert_string_equal(str_of(doc, "title"), "Title");
	assert_string_equal(str_of(doc, "body"), "Body text");
	assert_string_equal(str_of(doc, "source"), "/src/x");
	assert_true(json_integer_value(json_object_get(doc, "created_at")) >
		    1600000000000LL);
	/* The duplicate tag is dropped. */
	tags = json_object_get(doc, "tags");
	assert_int_equal(json_array_size(tags), 2);
	assert_string_equal(json_string_value(json_array_get(tags, 0)), "a");
	assert_string_equal(json_string_value(json_array_get(tags, 1)), "b");
	json_decref(doc);
	assert_int_equal(count_rows(f, "SELECT count(*) FROM document_tags"), 2);

	assert_int_equal(lib_doc_delete(f->db, id, &f->err), SDK_OK);
	assert_int_equal(lib_doc_get(f->db, id, &doc, &f->err), SDK_ENOTFOUND);
	assert_null(doc);
	assert_int_equal(lib_doc_delete(f->db, id, &f->err), SDK_ENOTFOUND);
	assert_non_null(strstr(f->err.msg, "not found"));
	/* Triggers cleaned up the derived tables. */
	assert_int_equal(count_rows(f, "SELECT count(*) FROM document_tags"), 0);
	assert_int_equal(count_rows(f, "SELECT count(*) FROM documents_fts "
				       "WHERE documents_fts MATCH 'body'"), 0);
}

static void test_put_defaults(void **state)
{
	struct fx *f = *state;
	int64_t id = put(f, "t", "b", NULL);
	json_t *doc = NULL;

	assert_int_equal(lib_doc_get(f->db, id, &doc, &f->err), SDK_OK);
	assert_true(json_is_array(json_object_get(doc, "tags")));
	assert_int_equal(json_array_size(json_object_get(doc, "tags")), 0);
	assert_true(json_is_null(json_object_get(doc, "source")));
	json_decref(doc);
}

static void test_get_not_found(void **state)
{
	struct fx *f = *state;
	json_t *doc = NULL;

	assert_int_equal(lib_doc_get(f->db, 12345, &doc, &f->err),
			 SDK_ENOTFOUND);
	assert_null(doc);
	assert_int_equal(lib_doc_get(f->db, -1, &doc, &f->err), SDK_ENOTFOUND);
}

static void test_ids_not_reused(void **state)
{
	struct fx *f = *state;
	int64_t a = put(f, "a", "a", NULL);

	assert_int_equal(lib_doc_delete(f->db, a, &f->err), SDK_OK);
	assert_true(put(f, "b", "b", NULL) > a);
}

static void test_validation(void **state)
{
	struct fx *f = *state;
	char *big = malloc(LIB_BODY_MAX + 2);
	char title[LIB_TITLE_MAX + 2];
	char tag[LIB_TAG_LEN_MAX + 2];
	json_t *many;
	unsigned i;

	assert_non_null(big);
	memset(title, 't', sizeof(title));
	title[LIB_TITLE_MAX + 1] = '\0';
	memset(tag, 'g', sizeof(tag));
	tag[LIB_TAG_LEN_MAX + 1] = '\0';

	assert_int_equal(put_rc(f, NULL, "b", NULL, "title"), SDK_EINVAL);
	assert_int_equal(put_rc(f, "", "b", NULL, "title must not be empty"),
			 SDK_EINVAL);
	assert_int_equal(put_rc(f, title, "b", NULL, "title longer"),
			 SDK_EINVAL);
	title[LIB_TITLE_MAX] = '\0';
	assert_int_equal(put_rc(f, title, "b", NULL, NULL), SDK_OK);
	assert_int_equal(put_rc(f, "\xff", "b", NULL, "UTF-8"), SDK_EINVAL);

	assert_int_equal(put_rc(f, "t", "", NULL, "body must not be empty"),
			 SDK_EINVAL);
	assert_int_equal(put_rc(f, "t", NULL, NULL, "body"), SDK_EINVAL);
	memset(big, 'x', LIB_BODY_MAX + 1);
	big[LIB_BODY_MAX + 1] = '\0';
	assert_int_equal(put_rc(f, "t", big, NULL, "body longer"), SDK_EINVAL);
	big[LIB_BODY_MAX] = '\0';
	assert_int_equal(put_rc(f, "t", big, NULL, NULL), SDK_OK);
	free(big);

	assert_int_equal(put_rc(f, "t", "b", json_object(),
				"tags must be an array of strings"), SDK_EINVAL);
	assert_int_equal(put_rc(f, "t", "b", json_string("a"),
				"tags must be an array of strings"), SDK_EINVAL);
	assert_int_equal(put_rc(f, "t", "b", json_pack("[s,i]", "a", 1),
				"tags must be an array of strings"), SDK_EINVAL);
	assert_int_equal(put_rc(f, "t", "b", json_pack("[s]", ""),
				"tags must not be empty"), SDK_EINVAL);
	assert_int_equal(put_rc(f, "t", "b", json_pack("[s]", tag),
				"tag longer"), SDK_EINVAL);
	tag[LIB_TAG_LEN_MAX] = '\0';
	assert_int_equal(put_rc(f, "t", "b", json_pack("[s]", tag), NULL),
			 SDK_OK);
	assert_int_equal(put_rc(f, "t", "b", json_pack("[o]", json_stringn("a\0b", 3)),
				"NUL"), SDK_EINVAL);

	many = json_array();
	for (i = 0; i < LIB_TAGS_MAX; i++)
		json_array_append_new(many, json_sprintf("t%u", i));
	assert_int_equal(put_rc(f, "t", "b", json_incref(many), NULL), SDK_OK);
	json_array_append_new(many, json_string("one-too-many"));
	assert_int_equal(put_rc(f, "t", "b", many, "at most"), SDK_EINVAL);

	assert_int_equal(lib_doc_put(f->db, "t", "b", NULL, "/dup", NULL,
				     &f->err), SDK_OK);
	assert_int_equal(lib_doc_put(f->db, "t", "b", NULL, "/dup", NULL,
				     &f->err), SDK_EINVAL);
	assert_non_null(strstr(f->err.msg, "source already exists"));
	assert_int_equal(lib_doc_put(f->db, "t", "b", NULL, "", NULL,
				     &f->err), SDK_EINVAL);

	/* A NULL err is allowed. */
	assert_int_equal(lib_doc_put(f->db, "", "b", NULL, NULL, NULL, NULL),
			 SDK_EINVAL);
}

static void test_search_ranking(void **state)
{
	struct fx *f = *state;
	int64_t weak, strong;
	json_t *res;
	double s0, s1;

	weak = put(f, "Birds of the coast", "Gulls, terns and one kestrel "
		   "were seen along the cliffs during the long walk.", NULL);
	strong = put(f, "Kestrel kestrel kestrel", "A small falcon.", NULL);
	put(f, "Unrelated", "Nothing to see here.", NULL);

	res = search(f, "kestrel", NULL, 10);
	assert_int_equal(total_of(res), 2);
	assert_int_equal(json_integer_value(json_object_get(hit(res, 0), "id")),
			 strong);
	assert_int_equal(json_integer_value(json_object_get(hit(res, 1), "id")),
			 weak);
	s0 = json_real_value(json_object_get(hit(res, 0), "score"));
	s1 = json_real_value(json_object_get(hit(res, 1), "score"));
	assert_true(s0 > s1);
	assert_true(s1 > 0.0);
	assert_string_equal(str_of(res, "query"), "kestrel");
	json_decref(res);
}

static void test_search_snippet_and_stemming(void **state)
{
	struct fx *f = *state;
	const char *snip;
	json_t *res;

	put(f, "Notes", "The dogs were running through the park.", "[\"x\"]");
	/* porter: "run" matches "running". */
	res = search(f, "run", NULL, 5);
	assert_int_equal(total_of(res), 1);
	snip = str_of(hit(res, 0), "snippet");
	assert_non_null(snip);
	assert_non_null(strstr(snip, "<mark>running</mark>"));
	assert_true(json_is_array(json_object_get(hit(res, 0), "tags")));
	assert_true(json_is_null(json_object_get(hit(res, 0), "source")));
	assert_string_equal(str_of(hit(res, 0), "title"), "Notes");
	json_decref(res);
}

static void test_search_tag_filter(void **state)
{
	struct fx *f = *state;
	int64_t red;
	json_t *res;

	red = put(f, "Apple", "A red fruit.", "[\"fruit\",\"red\"]");
	put(f, "Banana", "A yellow fruit.", "[\"fruit\",\"yellow\"]");
	put(f, "Cherry", "Another red fruit.", "[\"fruit\"]");

	res = search(f, "fruit", "red", 10);
	assert_int_equal(total_of(res), 1);
	assert_int_equal(json_array_size(json_object_get(res, "results")), 1);
	assert_int_equal(json_integer_value(json_object_get(hit(res, 0), "id")),
			 red);
	json_decref(res);

	res = search(f, "fruit", "fruit", 10);
	assert_int_equal(total_of(res), 3);
	json_decref(res);

	res = search(f, "fruit", "nope", 10);
	assert_int_equal(total_of(res), 0);
	assert_int_equal(json_array_size(json_object_get(res, "results")), 0);
	json_decref(res);

	/* Tag filtering must not be fooled by a tag that is only a prefix. */
	res = search(f, "fruit", "re", 10);
	assert_int_equal(total_of(res), 0);
	json_decref(res);
}

static void test_search_total_and_limit(void **state)
{
	struct fx *f = *state;
	json_t *res;
	int i;

	for (i = 0; i < 7; i++)
		put(f, "Report", "quarterly figures", NULL);
	res = search(f, "quarterly", NULL, 3);
	assert_int_equal(total_of(res), 7);
	assert_int_equal(json_array_size(json_object_get(res, "results")), 3);
	json_decref(res);

	res = search(f, "title:report", NULL, LIB_SEARCH_LIMIT_MAX);
	assert_int_equal(total_of(res), 7);
	json_decref(res);
}

static void test_search_malformed(void **state)
{
	static const char *const bad[] = {
		"\"unterminated", "AND", "foo AND", "(", "NEAR(", "!!!",
		"foo OR", "NOT", "nosuchcolumn:foo",
	};
	struct fx *f = *state;
	json_t *out = NULL;
	size_t i;

	put(f, "foo", "foo bar", NULL);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		f->err.msg[0] = '\0';
		if (lib_search(f->db, NULL, bad[i], NULL, 10, &out, &f->err) !=
		    SDK_EINVAL)
			fail_msg("query '%s' was not SDK_EINVAL", bad[i]);
		assert_null(out);
		if (strncmp(f->err.msg, "malformed query: ", 17) != 0)
			fail_msg("query '%s': message \"%s\"", bad[i],
				 f->err.msg);
	}
	/* With a tag filter too: the count query must fail the same way. */
	assert_int_equal(lib_search(f->db, NULL, "foo AND", "t", 10, &out, &f->err),
			 SDK_EINVAL);
	assert_non_null(strstr(f->err.msg, "fts5: syntax error"));
}

static void test_search_bad_arguments(void **state)
{
	struct fx *f = *state;
	char q[1026];
	json_t *out = NULL;

	assert_int_equal(lib_search(f->db, NULL, "", NULL, 10, &out, &f->err),
			 SDK_EINVAL);
	assert_non_null(strstr(f->err.msg, "empty"));
	assert_int_equal(lib_search(f->db, NULL, "  \t", NULL, 10, &out, &f->err),
			 SDK_EINVAL);
	assert_int_equal(lib_search(f->db, NULL, NULL, NULL, 10, &out, &f->err),
			 SDK_EINVAL);
	memset(q, 'a', sizeof(q));
	q[1025] = '\0';
	assert_int_equal(lib_search(f->db, NULL, q, NULL, 10, &out, &f->err),
			 SDK_EINVAL);
	assert_non_null(strstr(f->err.msg, "longer"));
	q[1024] = '\0';
	assert_int_equal(lib_search(f->db, NULL, q, NULL, 10, &out, &f->err), SDK_OK);
	json_decref(out);
	assert_int_equal(lib_search(f->db, NULL, "a", NULL, 0, &out, &f->err),
			 SDK_EINVAL);
	assert_int_equal(lib_search(f->db, NULL, "a", NULL, LIB_SEARCH_LIMIT_MAX + 1,
				    &out, &f->err), SDK_EINVAL);
	assert_int_equal(lib_search(f->db, NULL, "a", "", 10, &out, &f->err),
			 SDK_EINVAL);
	assert_null(out);
}

static void test_search_io_error(void **state)
{
	struct fx *f = *state;
	json_t *out = NULL;

	/* A broken schema is the database's fault, not the query's: FTS5's
	 * for a phrase, the block index's for plain words (whose snippets do
	 * not need FTS5). */
	assert_int_equal(sqlite3_exec(f->db, "DROP TABLE documents_fts",
				      NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(lib_search(f->db, NULL, "\"foo bar\"", NULL, 10, &out, &f->err),
			 SDK_EIO);
	assert_null(out);
	assert_int_equal(sqlite3_exec(f->db, "DROP TABLE ix_meta", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(lib_search(f->db, NULL, "foo", NULL, 10, &out, &f->err), SDK_EIO);
	assert_null(out);
}

/*
 * dir/lib/a.md          "# Hello World" heading       -> ingested
 * dir/lib/B.TXT         plain text                    -> ingested
 * dir/lib/blank.txt     whitespace only: title = name -> ingested
 * dir/lib/c.bin                                        -> ignored
 * dir/lib/link.md       symlink to a.md                -> ignored
 * dir/lib/out.md        symlink to dir/secret.md       -> ignored
 * dir/lib/loop          symlink to dir/lib             -> ignored
 * dir/lib/sub/d.md      nested                         -> ingested
 * dir/lib/sub/big.txt   LIB_INGEST_FILE_MAX + 1 bytes  -> skipped
 * dir/lib/sub/bad.txt   not UTF-8                      -> skipped
 * dir/lib/sub/empty.md  zero bytes                     -> skipped
 */
static void make_tree(struct fx *f)
{
	char *big = malloc(LIB_INGEST_FILE_MAX + 1);

	assert_non_null(big);
	write_text(f, "lib/a.md", "\n  \n## Hello World  \nkestrel body\n");
	write_text(f, "lib/B.TXT", "Plain title\nsecond line about herons\n");
	write_text(f, "lib/blank.txt", " \n\t\n");
	write_text(f, "lib/c.bin", "kestrel binary");
	write_text(f, "secret.md", "# Secret\nkestrel secret\n");
	make_link(f, "a.md", "lib/link.md");
	make_link(f, "../secret.md", "lib/out.md");
	make_link(f, ".", "lib/loop");
	make_dir(f, "lib/sub");
	write_text(f, "lib/sub/d.md", "# Deep\nnested kestrel\n");
	memset(big, 'k', LIB_INGEST_FILE_MAX + 1);
	write_file(f, "lib/sub/big.txt", big, LIB_INGEST_FILE_MAX + 1);
	free(big);
	write_file(f, "lib/sub/bad.txt", "caf\xe9\n", 5);
	write_file(f, "lib/sub/empty.md", "", 0);
}

static json_t *ingest(struct fx *f, const char *rel)
{
	char p[PATH_MAX];
	json_t *out = NULL;

	path_of(p, f, rel);
	if (lib_ingest(f->db, f->root, p, &out, &f->err) != SDK_OK)
		fail_msg("ingest %s: %s", rel, f->err.msg);
	assert_non_null(out);
	return out;
}

static json_t *doc_by_source(struct fx *f, json_t *report, const char *rel)
{
	json_t *docs = json_object_get(report, "documents"), *d, *doc = NULL;
	char p[PATH_MAX];
	size_t i;

	path_of(p, f, rel);
	json_array_foreach(docs, i, d) {
		if (strcmp(str_of(d, "source"), p) == 0) {
			assert_int_equal(lib_doc_get(f->db, json_integer_value(
					 json_object_get(d, "id")), &doc,
					 &f->err), SDK_OK);
			return doc;
		}
	}
	fail_msg("%s not in ingest report", rel);
	return NULL;
}

static void test_ingest_tree(void **state)
{
	struct fx *f = *state;
	json_t *rep, *doc, *tags, *res;

	make_tree(f);
	rep = ingest(f, "lib");
	assert_int_equal(json_integer_value(json_object_get(rep, "ingested")), 4);
	assert_int_equal(json_integer_value(json_object_get(rep, "skipped")), 3);
	assert_int_equal(json_array_size(json_object_get(rep, "documents")), 4);
	assert_int_equal(count_rows(f, "SELECT count(*) FROM documents"), 4);

	doc = doc_by_source(f, rep, "lib/a.md");
	assert_string_equal(str_of(doc, "title"), "Hello World");
	assert_string_equal(str_of(doc, "body"),
			    "\n  \n## Hello World  \nkestrel body\n");
	tags = json_object_get(doc, "tags");
	assert_int_equal(json_array_size(tags), 2);
	assert_string_equal(json_string_value(json_array_get(tags, 0)),
			    "ingested");
	assert_string_equal(json_string_value(json_array_get(tags, 1)), "md");
	json_decref(doc);

	doc = doc_by_source(f, rep, "lib/B.TXT");
	assert_string_equal(str_of(doc, "title"), "Plain title");
	assert_string_equal(json_string_value(json_array_get(
			    json_object_get(doc, "tags"), 1)), "txt");
	json_decref(doc);

	doc = doc_by_source(f, rep, "lib/blank.txt");
	assert_string_equal(str_of(doc, "title"), "blank.txt");
	json_decref(doc);

	doc = doc_by_source(f, rep, "lib/sub/d.md");
	assert_string_equal(str_of(doc, "title"), "Deep");
	json_decref(doc);
	json_decref(rep);

	/* Neither the binary nor the symlinked secret were taken in. */
	res = search(f, "kestrel", "ingested", 10);
	assert_int_equal(total_of(res), 2);
	json_decref(res);
	res = search(f, "secret", NULL, 10);
	assert_int_equal(total_of(res), 0);
	json_decref(res);
	res = search(f, "md", "md", 10);
	assert_int_equal(total_of(res), 2);
	json_decref(res);
}

static void test_ingest_single_file(void **state)
{
	struct fx *f = *state;
	json_t *rep;

	make_tree(f);
	rep = ingest(f, "lib/sub/d.md");
	assert_int_equal(json_integer_value(json_object_get(rep, "ingested")), 1);
	json_decref(rep);
	rep = ingest(f, "lib/c.bin");
	assert_int_equal(json_integer_value(json_object_get(rep, "ingested")), 0);
	json_decref(rep);
}

static void test_ingest_denied(void **state)
{
	static const char *const outside[] = {
		"",		/* the scratch dir: parent of the root */
		"secret.md",
		"lib/../secret.md",
		"lib/sub/../../secret.md",
		"lib2",		/* sibling sharing the root's name prefix */
		"lib2/e.md",
		"lib/out.md",	/* symlink inside, target outside */
		"lib/missing.md",
		"/etc",
	};
	struct fx *f = *state;
	char p[PATH_MAX];
	json_t *out = NULL;
	size_t i;

	make_tree(f);
	make_dir(f, "lib2");
	write_text(f, "lib2/e.md", "# E\nkestrel\n");
	for (i = 0; i < sizeof(outside) / sizeof(outside[0]); i++) {
		if (outside[i][0] == '/')
			snprintf(p, sizeof(p), "%s", outside[i]);
		else
			path_of(p, f, outside[i]);
		if (lib_ingest(f->db, f->root, p, &out, &f->err) != SDK_EDENIED)
			fail_msg("%s was not denied", outside[i]);
		assert_null(out);
	}
	assert_int_equal(count_rows(f, "SELECT count(*) FROM documents"), 0);

	/* The root itself, spelled with a detour, is fine. */
	out = ingest(f, "lib/sub/..");
	assert_int_equal(json_integer_value(json_object_get(out, "ingested")), 4);
	json_decref(out);
}

static void test_reingest_replaces(void **state)
{
	struct fx *f = *state;
	json_t *first, *second, *doc, *res;
	json_int_t id;

	make_tree(f);
	first = ingest(f, "lib");
	doc = doc_by_source(f, first, "lib/a.md");
	id = json_integer_value(json_object_get(doc, "id"));
	json_decref(doc);

	write_text(f, "lib/a.md", "# Renamed\nosprey now\n");
	second = ingest(f, "lib");
	assert_int_equal(count_rows(f, "SELECT count(*) FROM documents"), 4);
	assert_true(json_equal(json_object_get(first, "documents"),
			       json_object_get(second, "documents")));
	doc = doc_by_source(f, second, "lib/a.md");
	assert_int_equal(json_integer_value(json_object_get(doc, "id")), id);
	assert_string_equal(str_of(doc, "title"), "Renamed");
	json_decref(doc);
	json_decref(first);
	json_decref(second);

	/* The FTS index followed the update. */
	res = search(f, "osprey", NULL, 10);
	assert_int_equal(total_of(res), 1);
	json_decref(res);
	res = search(f, "\"hello world\"", NULL, 10);
	assert_int_equal(total_of(res), 0);
	json_decref(res);
	assert_int_equal(count_rows(f, "SELECT count(*) FROM document_tags"), 8);
}

static void test_ingest_rolls_back(void **state)
{
	struct fx *f = *state;
	json_t *out = NULL;

	write_text(f, "lib/a.md", "# fine\nok\n");
	write_text(f, "lib/b.md", "# boom\nfails\n");
	assert_int_equal(sqlite3_exec(f->db,
		"CREATE TEMP TRIGGER boom BEFORE INSERT ON documents "
		"WHEN new.title = 'boom' BEGIN SELECT RAISE(ABORT, 'boom'); END",
		NULL, NULL, NULL), SQLITE_OK);
	assert_true(lib_ingest(f->db, f->root, f->root, &out, &f->err) < 0);
	assert_null(out);
	assert_non_null(strstr(f->err.msg, "boom"));
	assert_int_equal(count_rows(f, "SELECT count(*) FROM documents"), 0);
	assert_true(sqlite3_get_autocommit(f->db));
}

static void test_ingest_inside_caller_transaction(void **state)
{
	struct fx *f = *state;
	json_t *out;

	write_text(f, "lib/a.md", "# fine\nok\n");
	assert_int_equal(sqlite3_exec(f->db, "BEGIN", NULL, NULL, NULL),
			 SQLITE_OK);
	out = ingest(f, "lib");
	json_decref(out);
	assert_false(sqlite3_get_autocommit(f->db));
	assert_int_equal(sqlite3_exec(f->db, "ROLLBACK", NULL, NULL, NULL),
			 SQLITE_OK);
	assert_int_equal(count_rows(f, "SELECT count(*) FROM documents"), 0);
}


/* A schema 1 database (no owners, no ingest tables) is migrated: its
 * documents stay, with no owner and their size counted. */
static void test_migrate_schema_1(void **state)
{
	struct fx *f = *state;
	sqlite3 *db;
	json_t *doc = NULL;
	int64_t docs, bytes;

	assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
		"CREATE TABLE documents (id INTEGER PRIMARY KEY AUTOINCREMENT,"
		" title TEXT NOT NULL, body TEXT NOT NULL, tags TEXT NOT NULL DEFAULT '[]',"
		" source TEXT UNIQUE NULL, created_at INTEGER NOT NULL);"
		"CREATE TABLE document_tags (doc_id INTEGER NOT NULL, tag TEXT NOT NULL,"
		" PRIMARY KEY (doc_id, tag)) WITHOUT ROWID;"
		"CREATE VIRTUAL TABLE documents_fts USING fts5(title, body, tags,"
		" content = 'documents', content_rowid = 'id', tokenize = 'porter unicode61');"
		"CREATE TRIGGER documents_au AFTER UPDATE ON documents BEGIN SELECT 1; END;"
		"INSERT INTO documents (title, body, created_at) VALUES ('Old', 'kestrel', 1);"
		"INSERT INTO documents_fts (rowid, title, body, tags) VALUES (1, 'Old', 'kestrel', '[]');"
		"PRAGMA user_version = 1;", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(lib_store_init(db, &f->err), SDK_OK);
	assert_int_equal(lib_doc_get(db, 1, &doc, &f->err), SDK_OK);
	assert_true(json_is_null(json_object_get(doc, "owner")));
	json_decref(doc);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT size FROM documents WHERE id = 1",
					    -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 3 + 7);
	sqlite3_finalize(st);
	assert_int_equal(lib_usage(db, "nobody", &docs, &bytes, &f->err), SDK_OK);
	assert_int_equal(docs, 0);
	sqlite3_close(db);
}

/* owner_usage (kept by triggers) says what counting the documents says. */
static void assert_usage_counted(sqlite3 *db)
{
	static const char sql[] =
		"SELECT (SELECT json_group_array(json_array(owner, docs, bytes)) FROM"
		"  (SELECT * FROM owner_usage WHERE docs != 0 OR bytes != 0 ORDER BY owner)),"
		" (SELECT json_group_array(json_array(owner, n, b)) FROM"
		"  (SELECT owner, count(*) AS n, sum(size) AS b FROM documents"
		"   WHERE owner IS NOT NULL GROUP BY owner ORDER BY owner))";
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0),
			    (const char *)sqlite3_column_text(st, 1));
	sqlite3_finalize(st);
}

/* A start counts owner_usage again when it disagrees with the documents:
 * a count too high, a row missing, a row of nobody's. */
static void test_usage_counted_again_at_start(void **state)
{
	struct fx *f = *state;
	lib_quota q = { .docs = 3, .bytes = 1000 };
	assert_int_equal(lib_doc_put_owned(f->db, "alice", &q, "a", "first", NULL, NULL, NULL,
					   &f->err), SDK_OK);
	assert_int_equal(lib_doc_put_owned(f->db, "alice", &q, "b", "second", NULL, NULL, NULL,
					   &f->err), SDK_OK);
	assert_int_equal(lib_doc_put_owned(f->db, "bob", &q, "c", "third", NULL, NULL, NULL,
					   &f->err), SDK_OK);
	assert_usage_counted(f->db);
	assert_int_equal(lib_store_init(f->db, &f->err), SDK_OK); /* agrees: unchanged */
	assert_usage_counted(f->db);
	assert_int_equal(sqlite3_exec(f->db, "UPDATE owner_usage SET docs = docs + 2"
					     " WHERE owner = 'alice';"
					     "DELETE FROM owner_usage WHERE owner = 'bob';"
					     "INSERT INTO owner_usage VALUES ('ghost', 1, 9);",
				      NULL, NULL, NULL), SQLITE_OK);
	/* alice's wrong count would refuse her third document */
	assert_int_equal(lib_doc_put_owned(f->db, "alice", &q, "d", "x", NULL, NULL, NULL,
					   &f->err), SDK_EQUOTA);
	assert_int_equal(lib_store_init(f->db, &f->err), SDK_OK);
	assert_usage_counted(f->db);
	int64_t docs, bytes;
	assert_int_equal(lib_usage(f->db, "ghost", &docs, &bytes, &f->err), SDK_OK);
	assert_int_equal(docs, 0);
	assert_int_equal(lib_doc_put_owned(f->db, "alice", &q, "d", "x", NULL, NULL, NULL,
					   &f->err), SDK_OK);
	assert_usage_counted(f->db);
}

/* Owners: who may delete, quotas, and a deleted owner's release. */
static void test_owners_and_quotas(void **state)
{
	struct fx *f = *state;
	lib_quota q = { .docs = 2, .bytes = 100 };
	lib_actor alice = { "alice", false }, bob = { "bob", false }, admin = { "root", true },
		  none = { NULL, false };
	int64_t a, b, docs, bytes;
	json_t *out = NULL, *doc = NULL;

	assert_int_equal(lib_doc_put_owned(f->db, "alice", &q, "a", "first", NULL, NULL, &a,
					   &f->err), SDK_OK);
	assert_int_equal(lib_doc_put_owned(f->db, "alice", &q, "b", "second", NULL, NULL, &b,
					   &f->err), SDK_OK);
	assert_int_equal(lib_doc_put_owned(f->db, "alice", &q, "c", "third", NULL, NULL, NULL,
					   &f->err), SDK_EQUOTA);
	assert_non_null(strstr(f->err.msg, "at most 2 documents"));
	assert_int_equal(lib_doc_put_owned(f->db, "bob", &q, "c", "x", NULL, NULL, NULL,
					   &f->err), SDK_OK);
	assert_int_equal(lib_doc_put_owned(f->db, "carol", &q, "big", "0123456789012345678901234"
					   "56789012345678901234567890123456789012345678901234567"
					   "8901234567890123456789", NULL, NULL, NULL, &f->err),
			 SDK_EQUOTA);
	assert_non_null(strstr(f->err.msg, "100 bytes"));
	assert_int_equal(lib_usage(f->db, "alice", &docs, &bytes, &f->err), SDK_OK);
	assert_int_equal(docs, 2);
	assert_int_equal(bytes, 1 + 5 + 1 + 6);
	assert_usage_counted(f->db);
	/* A replace by source changes the bytes, not the count; a hand-made
	 * change of owner moves both (the triggers see every write). */
	int64_t c;
	assert_int_equal(lib_doc_upsert(f->db, NULL, "bob", "s", "one", "[]", "src://1", 4, &c,
					&f->err), SDK_OK);
	assert_int_equal(lib_doc_upsert(f->db, NULL, "bob", "s", "longer", "[]", "src://1", 7,
					&c, &f->err), SDK_OK);
	assert_usage_counted(f->db);
	assert_int_equal(lib_usage(f->db, "bob", &docs, &bytes, &f->err), SDK_OK);
	assert_int_equal(docs, 2);
	assert_int_equal(bytes, 2 + 7);
	assert_int_equal(sqlite3_exec(f->db, "UPDATE documents SET owner = 'dave' WHERE source ="
					     " 'src://1'", NULL, NULL, NULL), SQLITE_OK);
	assert_usage_counted(f->db);
	assert_int_equal(lib_usage(f->db, "dave", &docs, &bytes, &f->err), SDK_OK);
	assert_int_equal(docs, 1);

	assert_int_equal(lib_doc_delete_as(f->db, &bob, a, &f->err), SDK_EDENIED);
	assert_int_equal(lib_doc_delete_as(f->db, &none, a, &f->err), SDK_EDENIED);
	assert_int_equal(lib_doc_delete_as(f->db, &alice, a, &f->err), SDK_OK);
	assert_int_equal(lib_doc_delete_as(f->db, &alice, a, &f->err), SDK_ENOTFOUND);
	assert_usage_counted(f->db);
	/* The freed place takes a document again. */
	assert_int_equal(lib_doc_put_owned(f->db, "alice", &q, "c", "third", NULL, NULL, &a,
					   &f->err), SDK_OK);
	assert_int_equal(lib_doc_delete_as(f->db, &alice, a, &f->err), SDK_OK);

	/* alice is gone: b stays, with no owner, and only an admin deletes it. */
	assert_int_equal(lib_owner_release(f->db, "alice", 5, &out, &f->err), SDK_OK);
	assert_int_equal(json_integer_value(json_object_get(out, "documents")), 1);
	json_decref(out);
	assert_usage_counted(f->db);
	assert_int_equal(lib_usage(f->db, "alice", &docs, &bytes, &f->err), SDK_OK);
	assert_int_equal(docs, 0);
	assert_int_equal(lib_doc_get(f->db, b, &doc, &f->err), SDK_OK);
	assert_true(json_is_null(json_object_get(doc, "owner")));
	json_decref(doc);
	assert_int_equal(lib_doc_delete_as(f->db, &alice, b, &f->err), SDK_EDENIED);
	assert_int_equal(lib_doc_delete_as(f->db, &admin, b, &f->err), SDK_OK);
}

/* A job: walked, listed, ingested a chunk at a time, each file once; a
 * job that would pass the quota is refused whole; another user's file is
 * not taken over. */
static void test_jobs(void **state)
{
	struct fx *f = *state;
	lib_actor alice = { "alice", false }, bob = { "bob", false };
	lib_quota q = { 0 };
	lib_files files;
	char *rpath = NULL, p[PATH_MAX], state_[16];
	int64_t id, id2, n;
	json_t *job = NULL, *rep = NULL;
	int rc, rounds = 0;

	make_tree(f);
	path_of(p, f, "lib");
	assert_int_equal(lib_ingest_resolve(f->root, p, &rpath, &f->err), SDK_OK);
	assert_int_equal(lib_ingest_walk(rpath, 5, 0, &files, &f->err), SDK_ETOOLARGE);
	assert_int_equal(lib_ingest_walk(rpath, 0, 0, &files, &f->err), SDK_OK);
	assert_int_equal(files.n, 7); /* 4 to read, 3 skipped at the walk or the read */
	assert_int_equal(lib_job_create(f->db, &alice, rpath, 1, &id, &f->err), SDK_OK);
	assert_int_equal(lib_job_active(f->db, "alice", &n, &f->err), SDK_OK);
	assert_int_equal(n, 1);
	assert_int_equal(lib_job_scan_store(f->db, id, &files, &q, 2, &f->err), SDK_OK);
	while ((rc = lib_job_chunk(f->db, id, 2, 1 << 20, &q, 3, &f->err)) == 1)
		rounds++;
	assert_int_equal(rc, 0);
	assert_true(rounds >= 1);
	assert_int_equal(lib_job_chunk(f->db, id, 2, 1 << 20, &q, 3, &f->err), 0);
	assert_int_equal(lib_job_state(f->db, id, state_, sizeof state_, &f->err), SDK_OK);
	assert_string_equal(state_, "done");
	assert_int_equal(lib_job_report(f->db, id, &rep, &f->err), SDK_OK);
	assert_int_equal(json_integer_value(json_object_get(rep, "ingested")), 4);
	assert_int_equal(json_integer_value(json_object_get(rep, "skipped")), 3);
	json_decref(rep);
	assert_int_equal(count_rows(f, "SELECT count(*) FROM documents WHERE owner = 'alice'"), 4);
	assert_int_equal(lib_job_get(f->db, &bob, id, &job, &f->err), SDK_ENOTFOUND);
	assert_int_equal(lib_job_get(f->db, &alice, id, &job, &f->err), SDK_OK);
	assert_int_equal(json_array_size(json_object_get(job, "errors")), 3);
	json_decref(job);

	/* Bob ingests the same files: each fails, none is taken over. */
	assert_int_equal(lib_job_create(f->db, &bob, rpath, 4, &id2, &f->err), SDK_OK);
	assert_int_equal(lib_job_scan_store(f->db, id2, &files, &q, 5, &f->err), SDK_OK);
	while (lib_job_chunk(f->db, id2, 10, 1 << 20, &q, 6, &f->err) == 1)
		;
	assert_int_equal(lib_job_report(f->db, id2, &rep, &f->err), SDK_OK);
	assert_int_equal(json_integer_value(json_object_get(rep, "failed")), 4);
	json_decref(rep);
	assert_int_equal(count_rows(f, "SELECT count(*) FROM documents WHERE owner = 'alice'"), 4);

	/* alice is deleted: her documents stay, with no owner. */
	assert_int_equal(lib_owner_release(f->db, "alice", 8, &job, &f->err), SDK_OK);
	json_decref(job);
	assert_int_equal(count_rows(f, "SELECT count(*) FROM documents WHERE owner IS NULL"), 4);
	lib_files_free(&files);
	free(rpath);

	/* Files that would pass a quota: refused whole, nothing listed or stored. */
	lib_actor carol = { "carol", false };
	make_dir(f, "lib/fresh");
	for (int i = 0; i < 4; i++) {
		char rel[32];
		snprintf(rel, sizeof rel, "lib/fresh/f%d.md", i);
		write_text(f, rel, "# fresh\nosprey\n");
	}
	path_of(p, f, "lib/fresh");
	assert_int_equal(lib_ingest_resolve(f->root, p, &rpath, &f->err), SDK_OK);
	assert_int_equal(lib_ingest_walk(rpath, 0, 0, &files, &f->err), SDK_OK);
	assert_int_equal(lib_job_create(f->db, &carol, rpath, 9, &id2, &f->err), SDK_OK);
	q.docs = 3;
	assert_int_equal(lib_job_scan_store(f->db, id2, &files, &q, 10, &f->err), SDK_EQUOTA);
	assert_non_null(strstr(f->err.msg, "at most 3 documents"));
	assert_int_equal(lib_job_fail(f->db, id2, f->err.msg, 11, &f->err), SDK_OK);
	assert_int_equal(count_rows(f, "SELECT count(*) FROM ingest_files WHERE job_id ="
				       " (SELECT max(id) FROM ingest_jobs)"), 0);
	assert_int_equal(count_rows(f, "SELECT count(*) FROM documents WHERE owner = 'carol'"), 0);
	assert_int_equal(lib_job_chunk(f->db, id2, 10, 1 << 20, &q, 12, &f->err), 0);
	assert_int_equal(lib_job_state(f->db, id2, state_, sizeof state_, &f->err), SDK_OK);
	assert_string_equal(state_, "failed");
	lib_files_free(&files);
	free(rpath);
}

/* lib_utf8_valid (which skips ASCII eight bytes at a time) against the
 * definition, one character at a time: every sequence below at every
 * alignment, inside and after runs of ASCII, and a NUL anywhere. */
static bool utf8_by_char(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned c = s[i], need, min;
		uint32_t cp;
		if (c == 0)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			need = 1, cp = c & 0x1f, min = 0x80;
		else if ((c & 0xf0) == 0xe0)
			need = 2, cp = c & 0x0f, min = 0x800;
		else if (c >= 0xf0 && c <= 0xf4)
			need = 3, cp = c & 0x07, min = 0x10000;
		else
			return false;
		if (n - i - 1 < need)
			return false;
		for (unsigned k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += need + 1;
	}
	return true;
}

/* lib_may_change, the rule an ingest of a file and a bulk line with a
 * source both apply to the stored document they would replace: every
 * caller against an owned document and one of nobody. */
static void test_may_change(void **state)
{
	(void)state;
	static const struct {
		const char *name;
		bool admin;
		const char *owner;
		bool may;
	} cases[] = {
		{ "alice", false, "alice", true },  /* its owner */
		{ "bob", false, "alice", false },   /* another user */
		{ "root", true, "alice", true },    /* an admin */
		{ NULL, false, "alice", false },    /* no caller: not an owned one */
		{ NULL, true, "alice", false },     /* a role without a name is no one */
		{ "bob", false, NULL, false },      /* nobody's: not a user's to change */
		{ "root", true, NULL, true },       /* ... an admin's */
		{ NULL, false, NULL, true },        /* ... and the kernel's own port's */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		lib_actor who = { cases[i].name, cases[i].admin };
		const char *why = lib_may_change(&who, cases[i].owner);
		if ((why == NULL) != cases[i].may)
			fail_msg("case %zu: %s", i, why ? why : "allowed");
		if (why)
			assert_non_null(strstr(why, cases[i].owner ? "another user" : "no owner"));
	}
}

static void test_utf8_valid(void **state)
{
	(void)state;
	static const char *const seqs[] = {
		"", "a", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xc0\xaf", "\xed\xa0\x80",
		"\xf4\x90\x80\x80", "\x80", "\xc3", "\xe2\x82", "\xff", "\x7f", "\x01",
	};
	unsigned char buf[80];
	unsigned checked = 0;
	for (size_t q = 0; q < sizeof seqs / sizeof *seqs; q++)
		for (size_t pre = 0; pre < 20; pre++)
			for (size_t post = 0; post < 12; post++)
				for (int nul = -1; nul < (int)(pre + post); nul++) {
					size_t len = strlen(seqs[q]), n = 0;
					memset(buf, 'x', pre);
					n = pre;
					memcpy(buf + n, seqs[q], len);
					n += len;
					memset(buf + n, 'y', post);
					n += post;
					if (nul >= 0)
						buf[nul < (int)pre ? nul : (int)len + nul] = 0;
					assert_int_equal(lib_utf8_valid(buf, n), utf8_by_char(buf, n));
					checked++;
				}
	assert_true(checked > 10000);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_init_idempotent),
		T(test_utf8_valid),
		T(test_may_change),
		T(test_init_refuses_newer_schema),
		T(test_put_get_delete),
		T(test_put_defaults),
		T(test_get_not_found),
		T(test_ids_not_reused),
		T(test_validation),
		T(test_search_ranking),
		T(test_search_snippet_and_stemming),
		T(test_search_tag_filter),
		T(test_search_total_and_limit),
		T(test_search_malformed),
		T(test_search_bad_arguments),
		T(test_search_io_error),
		T(test_ingest_tree),
		T(test_ingest_single_file),
		T(test_ingest_denied),
		T(test_reingest_replaces),
		T(test_ingest_rolls_back),
		T(test_ingest_inside_caller_transaction),
		T(test_migrate_schema_1),
		T(test_owners_and_quotas),
		T(test_usage_counted_again_at_start),
		T(test_jobs),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
