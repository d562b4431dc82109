/* The coding_agent's search/replace blocks (parser and applier), the
 * all-or-nothing application to files, and path confinement. */
#include "kernels/coding_agent/edits.h"
#include "kernels/coding_agent/paths.h"
#include "kernels/coding_agent/sr.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void parse_ok(const char *text, ca_sr_list *l)
{
	sdk_err e = { "" };
	int rc = ca_sr_parse(text, strlen(text), l, &e);
	if (rc != 0)
		fail_msg("parse: %s", e.msg);
}

/* Applies the one block of `text` to `content`; the status, *out set. */
static int apply1(const char *text, const char *content, char **out, ca_sr_result *res)
{
	ca_sr_list l;
	parse_ok(text, &l);
	assert_int_equal(l.n, 1);
	size_t n;
	int rc = ca_sr_apply(content, content ? strlen(content) : 0, content != NULL, &l.blocks[0],
			     out, &n, res);
	ca_sr_list_free(&l);
	return rc;
}

static void test_parse_blocks(void **state)
{
	(void)state;
	const char *text = "Here is the fix.\n\n"
			   "src/calc.py\n"
			   "```python\n"
			   "<<<<<<< SEARCH\n"
			   "    return a - b\n"
			   "=======\n"
			   "    return a + b\n"
			   ">>>>>>> REPLACE\n"
			   "```\n"
			   "\n"
			   "```\n"
			   "<<<<<<< SEARCH\n"
			   "x = 1\n"
			   "=======\n"
			   ">>>>>>> REPLACE\n"
			   "```\n"
			   "`docs/new.md`:\n"
			   "<<<<<<< SEARCH\n"
			   "=======\n"
			   "hello\n"
			   ">>>>>>> REPLACE\n";
	ca_sr_list l;
	parse_ok(text, &l);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.blocks[0].path, "src/calc.py");
	assert_string_equal(l.blocks[0].search, "    return a - b\n");
	assert_string_equal(l.blocks[0].replace, "    return a + b\n");
	assert_int_equal(l.blocks[0].line_first, 5);
	assert_int_equal(l.blocks[0].line_last, 9);
	/* No name before it: the previous block's file. */
	assert_string_equal(l.blocks[1].path, "src/calc.py");
	assert_string_equal(l.blocks[1].replace, "");
	assert_string_equal(l.blocks[2].path, "docs/new.md");
	assert_string_equal(l.blocks[2].search, "");
	assert_string_equal(l.blocks[2].replace, "hello\n");
	ca_sr_list_free(&l);
}

static void test_parse_errors(void **state)
{
	(void)state;
	ca_sr_list l;
	sdk_err e;
	const char *unterminated = "a.py\n<<<<<<< SEARCH\nx\n=======\ny\n";
	assert_int_equal(ca_sr_parse(unterminated, strlen(unterminated), &l, &e), SDK_EINVAL);
	assert_non_null(strstr(e.msg, ">>>>>>> REPLACE"));
	assert_non_null(strstr(e.msg, "block 1"));
	ca_sr_list_free(&l);
	const char *no_divider = "a.py\n<<<<<<< SEARCH\nx\n>>>>>>> REPLACE\n";
	assert_int_equal(ca_sr_parse(no_divider, strlen(no_divider), &l, &e), SDK_EINVAL);
	assert_non_null(strstr(e.msg, "======="));
	ca_sr_list_free(&l);
	const char *no_name = "<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE\n";
	assert_int_equal(ca_sr_parse(no_name, strlen(no_name), &l, &e), SDK_EINVAL);
	assert_non_null(strstr(e.msg, "no file name"));
	ca_sr_list_free(&l);
	/* No block at all is not an error of the parser. */
	assert_int_equal(ca_sr_parse("just text\n", 10, &l, &e), 0);
	assert_int_equal(l.n, 0);
	ca_sr_list_free(&l);
}

static void test_apply_exact(void **state)
{
	(void)state;
	char *out;
	ca_sr_result res;
	const char *file = "def add(a, b):\n    return a - b\n\n\ndef sub(a, b):\n    return a - b + 0\n";
	assert_int_equal(apply1("calc.py\n<<<<<<< SEARCH\ndef add(a, b):\n    return a - b\n"
				"=======\ndef add(a, b):\n    return a + b\n>>>>>>> REPLACE\n",
				file, &out, &res),
			 0);
	assert_string_equal(out, "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n"
				 "    return a - b + 0\n");
	assert_false(res.fuzzy);
	assert_int_equal(res.file_line, 1);
	free(out);
}

static void test_apply_whitespace(void **state)
{
	(void)state;
	char *out;
	ca_sr_result res;
	/* The model lost the indentation and left blanks at the ends. */
	const char *file = "class C:\n    def f(self):\n        return 1  \n\n    def g(self):\n"
			   "        return 2\n";
	assert_int_equal(apply1("c.py\n<<<<<<< SEARCH\ndef f(self):\n    return 1\n=======\n"
				"def f(self):\n    x = 1\n\n    return x\n>>>>>>> REPLACE\n",
				file, &out, &res),
			 0);
	assert_true(res.fuzzy);
	assert_int_equal(res.file_line, 2);
	assert_string_equal(out, "class C:\n    def f(self):\n        x = 1\n\n        return x\n\n"
				 "    def g(self):\n        return 2\n");
	free(out);
}

static void test_apply_not_found(void **state)
{
	(void)state;
	char *out;
	ca_sr_result res;
	assert_int_equal(apply1("a.py\n<<<<<<< SEARCH\nnot there\n=======\nx\n>>>>>>> REPLACE\n",
				"one\ntwo\n", &out, &res),
			 SDK_ECONFLICT);
	assert_null(out);
	assert_int_equal(res.why, CA_SR_NOT_FOUND);
	assert_string_equal(ca_sr_why_label(res.why), "not_found");
	assert_non_null(strstr(res.msg, "a.py"));
}

static void test_apply_ambiguous(void **state)
{
	(void)state;
	char *out;
	ca_sr_result res;
	assert_int_equal(apply1("a.py\n<<<<<<< SEARCH\nx = 1\n=======\nx = 2\n>>>>>>> REPLACE\n",
				"x = 1\ny = 0\nx = 1\n", &out, &res),
			 SDK_ECONFLICT);
	assert_int_equal(res.why, CA_SR_AMBIGUOUS);
	assert_int_equal(res.file_line, 1);
	assert_int_equal(res.second_line, 3);
	assert_non_null(strstr(res.msg, "lines 1 and 3"));
	/* Twice only when whitespace is ignored: ambiguous too. */
	assert_int_equal(apply1("a.py\n<<<<<<< SEARCH\n  x = 1\n=======\nx = 2\n>>>>>>> REPLACE\n",
				"x = 1\ny = 0\n\tx = 1\n", &out, &res),
			 SDK_ECONFLICT);
	assert_int_equal(res.why, CA_SR_AMBIGUOUS);
}

static void test_apply_new_and_missing(void **state)
{
	(void)state;
	char *out;
	ca_sr_result res;
	assert_int_equal(apply1("n.txt\n<<<<<<< SEARCH\n=======\nnew\n>>>>>>> REPLACE\n", NULL, &out,
				&res),
			 0);
	assert_string_equal(out, "new\n");
	free(out);
	assert_int_equal(apply1("n.txt\n<<<<<<< SEARCH\n=======\nnew\n>>>>>>> REPLACE\n", "old\n",
				&out, &res),
			 SDK_ECONFLICT);
	assert_int_equal(res.why, CA_SR_FILE_EXISTS);
	assert_int_equal(apply1("m.txt\n<<<<<<< SEARCH\nold\n=======\nnew\n>>>>>>> REPLACE\n", NULL,
				&out, &res),
			 SDK_ENOTFOUND);
	assert_int_equal(res.why, CA_SR_FILE_MISSING);
}

static void test_apply_delete(void **state)
{
	(void)state;
	char *out;
	ca_sr_result res;
	assert_int_equal(apply1("a.py\n<<<<<<< SEARCH\nimport os\n=======\n>>>>>>> REPLACE\n",
				"import os\nimport sys\n", &out, &res),
			 0);
	assert_string_equal(out, "import sys\n");
	free(out);
}

static void test_paths(void **state)
{
	(void)state;
	assert_true(ca_path_under("/w", "/w"));
	assert_true(ca_path_under("/w", "/w/a"));
	assert_false(ca_path_under("/w", "/wx"));
	assert_false(ca_path_under("/w", "/"));
	assert_true(ca_path_has_dotdot("../a"));
	assert_true(ca_path_has_dotdot("a/../b"));
	assert_true(ca_path_has_dotdot("/etc/passwd"));
	assert_true(ca_path_has_dotdot("a//b"));
	assert_true(ca_path_has_dotdot("./a"));
	assert_false(ca_path_has_dotdot("a/b..c/d.py"));

	char tmpl[] = "/tmp/ca-paths-XXXXXX";
	char *root = mkdtemp(tmpl);
	assert_non_null(root);
	char real[PATH_MAX], p[PATH_MAX + 64], out[PATH_MAX];
	assert_non_null(realpath(root, real));
	snprintf(p, sizeof p, "%s/repo", real);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof p, "%s/out", real);
	assert_int_equal(symlink("/etc", p), 0);
	sdk_err e;
	assert_int_equal(ca_path_repo(real, "repo", out, &e), 0);
	assert_int_equal(ca_path_repo(real, "../repo", out, &e), SDK_EDENIED);
	assert_int_equal(ca_path_repo(real, "repo/../..", out, &e), SDK_EDENIED);
	assert_int_equal(ca_path_repo(real, "/etc", out, &e), SDK_EDENIED);
	assert_int_equal(ca_path_repo(real, "out", out, &e), SDK_EDENIED);
	assert_non_null(strstr(e.msg, "outside"));
	assert_int_equal(ca_path_repo(real, "nope", out, &e), SDK_ENOTFOUND);

	/* Files of an edit: inside the worktree, no symlink out, not .git. */
	char wt[PATH_MAX + 16];
	snprintf(wt, sizeof wt, "%s/repo", real);
	snprintf(p, sizeof p, "%s/link", wt);
	assert_int_equal(symlink("/etc", p), 0);
	bool exists;
	assert_int_equal(ca_path_edit(wt, "a/b/new.py", out, &exists, &e), 0);
	assert_false(exists);
	assert_int_equal(ca_path_edit(wt, "link/passwd", out, &exists, &e), SDK_EDENIED);
	assert_int_equal(ca_path_edit(wt, "link", out, &exists, &e), SDK_EDENIED);
	assert_int_equal(ca_path_edit(wt, "../x", out, &exists, &e), SDK_EDENIED);
	assert_int_equal(ca_path_edit(wt, ".git/config", out, &exists, &e), SDK_EDENIED);
	assert_int_equal(ca_path_edit(wt, "/etc/passwd", out, &exists, &e), SDK_EDENIED);
	unlink(p);
	snprintf(p, sizeof p, "%s/out", real);
	unlink(p);
	rmdir(wt);
	rmdir(real);
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static char *read_text(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	static char b[4096];
	size_t n = fread(b, 1, sizeof b - 1, f);
	fclose(f);
	b[n] = '\0';
	return b;
}

static void test_edits_all_or_nothing(void **state)
{
	(void)state;
	char tmpl[] = "/tmp/ca-edits-XXXXXX";
	char *dir = mkdtemp(tmpl);
	assert_non_null(dir);
	char wt[PATH_MAX], a[PATH_MAX + 16], b[PATH_MAX + 16];
	assert_non_null(realpath(dir, wt));
	snprintf(a, sizeof a, "%s/a.py", wt);
	snprintf(b, sizeof b, "%s/b.py", wt);
	write_text(a, "x = 1\n");
	write_text(b, "y = 2\n");
	const char *text = "a.py\n<<<<<<< SEARCH\nx = 1\n=======\nx = 10\n>>>>>>> REPLACE\n"
			   "b.py\n<<<<<<< SEARCH\ny = 3\n=======\ny = 30\n>>>>>>> REPLACE\n"
			   "c.py\n<<<<<<< SEARCH\nz\n=======\nw\n>>>>>>> REPLACE\n";
	json_t *rep;
	sdk_err e;
	assert_int_equal(ca_edits_apply(wt, text, strlen(text), &rep, &e), SDK_ECONFLICT);
	assert_non_null(strstr(e.msg, "nothing was written"));
	/* Block 1 would apply, but nothing is written. */
	assert_string_equal(read_text(a), "x = 1\n");
	assert_string_equal(read_text(b), "y = 2\n");
	json_t *failed = json_object_get(rep, "failed");
	assert_int_equal(json_array_size(failed), 2);
	json_t *f0 = json_array_get(failed, 0), *f1 = json_array_get(failed, 1);
	assert_int_equal(json_integer_value(json_object_get(f0, "block")), 2);
	assert_string_equal(json_string_value(json_object_get(f0, "file")), "b.py");
	assert_string_equal(json_string_value(json_object_get(f0, "why")), "not_found");
	assert_int_equal(json_integer_value(json_array_get(json_object_get(f0, "lines"), 0)), 8);
	assert_int_equal(json_integer_value(json_array_get(json_object_get(f0, "lines"), 1)), 12);
	assert_string_equal(json_string_value(json_object_get(f1, "why")), "file_missing");
	assert_int_equal(json_array_size(json_object_get(rep, "applied")), 1);
	json_decref(rep);

	/* Two blocks on one file, the second seeing the first's result; a new file. */
	const char *ok = "a.py\n<<<<<<< SEARCH\nx = 1\n=======\nx = 10\n>>>>>>> REPLACE\n"
			 "<<<<<<< SEARCH\nx = 10\n=======\nx = 11\n>>>>>>> REPLACE\n"
			 "sub/c.py\n<<<<<<< SEARCH\n=======\nz = 0\n>>>>>>> REPLACE\n";
	assert_int_equal(ca_edits_apply(wt, ok, strlen(ok), &rep, &e), 0);
	assert_string_equal(read_text(a), "x = 11\n");
	snprintf(b, sizeof b, "%s/sub/c.py", wt);
	assert_string_equal(read_text(b), "z = 0\n");
	json_decref(rep);

	const char *escape = "../evil.py\n<<<<<<< SEARCH\n=======\nz\n>>>>>>> REPLACE\n";
	assert_int_equal(ca_edits_apply(wt, escape, strlen(escape), &rep, &e), SDK_ECONFLICT);
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(json_object_get(rep, "failed"), 0), "why")),
			    "path_refused");
	json_decref(rep);
	unlink(b);
	snprintf(b, sizeof b, "%s/sub", wt);
	rmdir(b);
	snprintf(b, sizeof b, "%s/b.py", wt);
	unlink(b);
	unlink(a);
	rmdir(wt);
}

static void test_is_sr(void **state)
{
	(void)state;
	const char *diff = "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n";
	const char *sr = "x\n<<<<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE\n";
	assert_false(ca_edits_is_sr(diff, strlen(diff)));
	assert_true(ca_edits_is_sr(sr, strlen(sr)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_blocks),	  cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_apply_exact),	  cmocka_unit_test(test_apply_whitespace),
		cmocka_unit_test(test_apply_not_found),	  cmocka_unit_test(test_apply_ambiguous),
		cmocka_unit_test(test_apply_new_and_missing), cmocka_unit_test(test_apply_delete),
		cmocka_unit_test(test_paths),		  cmocka_unit_test(test_edits_all_or_nothing),
		cmocka_unit_test(test_is_sr),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
