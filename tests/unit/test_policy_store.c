/* Unit tests of the policy kernel's store (src/kernels/policy/store.c):
 * versions of policy sets, deletions as versions, syntax errors and
 * version conflicts that change nothing, the entity store's writes, and
 * what a reopened file holds. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/policy/store.h"

typedef struct fixture {
	char path[64];
	sqlite3 *db;
	pol_store *s;
} fixture;

static void open_store(fixture *f)
{
	sdk_err e;
	assert_int_equal(sqlite3_open(f->path, &f->db), SQLITE_OK);
	if (pol_store_open(f->db, &f->s, &e) < 0)
		fail_msg("open: %s", e.msg);
}

static void close_store(fixture *f)
{
	pol_store_close(f->s);
	sqlite3_close(f->db);
	f->s = NULL;
	f->db = NULL;
}

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	snprintf(f->path, sizeof f->path, "/tmp/grace-polstore-XXXXXX");
	int fd = mkstemp(f->path);
	if (fd < 0)
		return -1;
	close(fd);
	open_store(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	close_store(f);
	unlink(f->path);
	char wal[80];
	snprintf(wal, sizeof wal, "%s-wal", f->path);
	unlink(wal);
	snprintf(wal, sizeof wal, "%s-shm", f->path);
	unlink(wal);
	free(f);
	return 0;
}

static int put(fixture *f, const char *name, const char *text, int64_t expected, sdk_err *e)
{
	const pol_set *set;
	bool created;
	cedar_parse_error perr;
	return pol_store_put(f->s, name, text, strlen(text), expected, 1000, &set, &created, &perr, e);
}

static void test_versions(void **state)
{
	fixture *f = *state;
	sdk_err e;
	assert_null(pol_store_set(f->s, "default"));
	assert_int_equal(put(f, "default", "permit(principal, action, resource);", 0, &e), 0);
	assert_int_equal(put(f, "default", "forbid(principal, action, resource);", -1, &e), 0);
	const pol_set *set = pol_store_set(f->s, "default");
	assert_int_equal(set->version, 2);
	assert_true(set->ps->policies[0].forbid);
	/* A syntax error and a stale version change nothing. */
	const pol_set *out;
	bool created;
	cedar_parse_error perr;
	assert_int_equal(pol_store_put(f->s, "default", "permit(", 7, -1, 1000, &out, &created, &perr, &e),
			 POL_ESYNTAX);
	assert_int_equal(perr.line, 1);
	assert_int_equal(put(f, "default", "permit(principal, action, resource);", 1, &e), SDK_ECONFLICT);
	assert_int_equal(put(f, "bad name!", "", -1, &e), SDK_EINVAL);
	assert_int_equal(pol_store_set(f->s, "default")->version, 2);
	/* Deleting writes a version; the next write continues from it. */
	assert_int_equal(pol_store_delete(f->s, "default", 2, 2000, &out, &e), 0);
	assert_int_equal(out->version, 3);
	assert_null(out->ps);
	assert_int_equal(pol_store_delete(f->s, "default", -1, 2000, &out, &e), SDK_ENOTFOUND);
	assert_int_equal(pol_store_put(f->s, "default", "permit(principal, action, resource);", 36, 3, 3000,
				       &out, &created, &perr, &e), 0);
	assert_true(created); /* live again after the deletion */
	assert_int_equal(put(f, "default", "permit(principal, action, resource);", -1, &e), 0);
	json_t *vs;
	assert_int_equal(pol_store_versions(f->s, "default", &vs, &e), 0);
	assert_int_equal(json_array_size(vs), 5);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(vs, 0), "version")), 5);
	assert_true(json_is_true(json_object_get(json_array_get(vs, 2), "deleted")));
	json_decref(vs);
	json_t *v1;
	assert_int_equal(pol_store_version(f->s, "default", 1, &v1, &e), 0);
	assert_string_equal(json_string_value(json_object_get(v1, "text")), "permit(principal, action, resource);");
	json_decref(v1);
	assert_int_equal(pol_store_version(f->s, "default", 9, &v1, &e), SDK_ENOTFOUND);
	assert_int_equal(pol_store_versions(f->s, "nope", &vs, &e), SDK_ENOTFOUND);
	/* All of it comes back from the file. */
	close_store(f);
	open_store(f);
	set = pol_store_set(f->s, "default");
	assert_non_null(set);
	assert_int_equal(set->version, 5);
	assert_non_null(set->ps);
	assert_int_equal(set->ps->n, 1);
}

static void test_broken_text(void **state)
{
	fixture *f = *state;
	/* A stored text the engine no longer parses keeps its set out of use. */
	assert_int_equal(sqlite3_exec(f->db, "INSERT INTO policy_versions (name, version, text, policies, created_ms)"
					     " VALUES ('old', 1, 'permit(', 1, 5)", NULL, NULL, NULL), SQLITE_OK);
	close_store(f);
	open_store(f);
	const pol_set *set = pol_store_set(f->s, "old");
	assert_non_null(set);
	assert_null(set->ps);
	assert_non_null(set->broken);
	sdk_err e;
	assert_int_equal(put(f, "old", "permit(principal, action, resource);", 1, &e), 0);
	assert_null(pol_store_set(f->s, "old")->broken);
}

static json_t *J(const char *text)
{
	json_t *j = json_loads(text, JSON_ALLOW_NUL, NULL);
	assert_non_null(j);
	return j;
}

#define ENT(t, i, parents, attrs) "{\"uid\": {\"type\": \"" t "\", \"id\": \"" i "\"}, \"attrs\": {" attrs "}, \"parents\": [" parents "]}"
#define UID(t, i) "{\"type\": \"" t "\", \"id\": \"" i "\"}"

static bool in(fixture *f, const char *t1, const char *i1, const char *t2, const char *i2)
{
	cedar_arena a;
	cedar_arena_init(&a, 0);
	cedar_uid *x = cedar_uid_new(&a, t1, (uint32_t)strlen(t1), i1, (uint32_t)strlen(i1));
	cedar_uid *y = cedar_uid_new(&a, t2, (uint32_t)strlen(t2), i2, (uint32_t)strlen(i2));
	cedar_view v = { .base = f->s->ents };
	int r = cedar_view_in(&v, &a, x, y);
	cedar_arena_free(&a);
	return r == 1;
}

static void test_entities(void **state)
{
	fixture *f = *state;
	sdk_err e;
	assert_int_equal(f->s->ents_version, 0);
	json_t *arr = J("[" ENT("User", "a", UID("Group", "g"), "\"n\": 1") "," ENT("Group", "g", UID("Group", "top"), "") "]");
	assert_int_equal(pol_store_put_entities(f->s, arr, true, 0, 10, &e), 0);
	json_decref(arr);
	assert_int_equal(f->s->ents_version, 1);
	assert_true(in(f, "User", "a", "Group", "top"));
	/* Upsert: replaces one, adds one, keeps the rest. */
	arr = J("[" ENT("Group", "g", "", "") "," ENT("User", "b", UID("Group", "g"), "") "]");
	assert_int_equal(pol_store_put_entities(f->s, arr, false, 1, 20, &e), 0);
	json_decref(arr);
	assert_int_equal(f->s->ents->n, 3);
	assert_false(in(f, "User", "a", "Group", "top"));
	assert_true(in(f, "User", "b", "Group", "g"));
	/* A cycle, a bad entity, a stale version: refused, nothing changed. */
	arr = J("[" ENT("Group", "g", UID("User", "a"), "") "]");
	assert_int_equal(pol_store_put_entities(f->s, arr, false, -1, 30, &e), SDK_EINVAL);
	assert_non_null(strstr(e.msg, "cycle"));
	json_decref(arr);
	arr = J("[{\"uid\": " UID("User", "c") ", \"attrs\": {\"x\": null}, \"parents\": []}]");
	assert_int_equal(pol_store_put_entities(f->s, arr, false, -1, 30, &e), SDK_EINVAL);
	json_decref(arr);
	arr = J("[]");
	assert_int_equal(pol_store_put_entities(f->s, arr, true, 1, 30, &e), SDK_ECONFLICT);
	json_decref(arr);
	assert_int_equal(f->s->ents_version, 2);
	assert_int_equal(f->s->ents->n, 3);
	/* Delete one. */
	assert_int_equal(pol_store_delete_entity(f->s, "User", "b", 1, 2, 40, &e), 0);
	assert_int_equal(pol_store_delete_entity(f->s, "User", "b", 1, -1, 40, &e), SDK_ENOTFOUND);
	assert_int_equal(f->s->ents_version, 3);
	assert_int_equal(f->s->ents->n, 2);
	/* The file holds the same. */
	close_store(f);
	open_store(f);
	assert_int_equal(f->s->ents_version, 3);
	assert_int_equal(f->s->ents_updated_ms, 40);
	assert_int_equal(f->s->ents->n, 2);
	assert_true(in(f, "User", "a", "Group", "g"));
	assert_false(in(f, "User", "b", "Group", "g"));
	/* Replace with nothing. */
	arr = J("[]");
	assert_int_equal(pol_store_put_entities(f->s, arr, true, -1, 50, &e), 0);
	json_decref(arr);
	assert_int_equal(f->s->ents->n, 0);
}

/* The audit outbox: one event per change, written with it; none for a
 * refused change; each with its actor; delivered ones go; kept across a
 * reopen (so `grace policy reset`'s is sent at the next start). */
static void test_audit_events(void **state)
{
	fixture *f = *state;
	sdk_err e;
	json_t *evs;
	int64_t last;
	assert_int_equal(pol_store_events(f->s, 100, &evs, &last, &e), 0);
	assert_int_equal(json_array_size(evs), 0);
	assert_int_equal(last, 0);
	json_decref(evs);
	pol_store_actor(f->s, "alice");
	assert_int_equal(put(f, "default", "permit(principal, action, resource);", -1, &e), 0);
	assert_int_equal(put(f, "default", "permit(", -1, &e), POL_ESYNTAX);       /* refused */
	assert_int_equal(put(f, "default", "forbid(principal, action, resource);", 9, &e), SDK_ECONFLICT);
	pol_store_actor(f->s, NULL);
	const pol_set *out;
	assert_int_equal(pol_store_delete(f->s, "default", -1, 2000, &out, &e), 0);
	json_t *arr = J("[" ENT("User", "a", "", "") "]");
	assert_int_equal(pol_store_put_entities(f->s, arr, false, -1, 3000, &e), 0);
	json_decref(arr);
	assert_int_equal(pol_store_delete_entity(f->s, "User", "a", 1, -1, 4000, &e), 0);
	close_store(f);
	open_store(f);
	assert_int_equal(pol_store_events(f->s, 100, &evs, &last, &e), 0);
	assert_int_equal(json_array_size(evs), 4);
	static const char *const actions[] = { "policy.set.put", "policy.set.delete",
					       "policy.entities.put", "policy.entities.delete" };
	static const char *const actors[] = { "alice", "policy", "policy", "policy" };
	for (size_t i = 0; i < 4; i++) {
		json_t *ev = json_array_get(evs, i);
		assert_string_equal(json_string_value(json_object_get(ev, "action")), actions[i]);
		assert_string_equal(json_string_value(json_object_get(ev, "actor")), actors[i]);
		assert_string_equal(json_string_value(json_object_get(ev, "outcome")), "ok");
		assert_non_null(strstr(json_string_value(json_object_get(ev, "uid")), "policy-"));
	}
	json_t *d0 = json_object_get(json_array_get(evs, 0), "details");
	assert_int_equal(json_integer_value(json_object_get(d0, "version")), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(evs, 0), "resource")),
			    "policy-set/default");
	json_t *d3 = json_object_get(json_array_get(evs, 3), "details");
	assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(d3, "uids"), 0), "id")), "a");
	/* Two at a time, then delivered: the rest stay. */
	json_decref(evs);
	assert_int_equal(pol_store_events(f->s, 2, &evs, &last, &e), 0);
	assert_int_equal(json_array_size(evs), 2);
	json_decref(evs);
	assert_int_equal(pol_store_events_done(f->s, last, &e), 0);
	assert_int_equal(pol_store_events(f->s, 100, &evs, &last, &e), 0);
	assert_int_equal(json_array_size(evs), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(evs, 0), "action")),
			    "policy.entities.put");
	json_decref(evs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_versions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_broken_text, setup, teardown),
		cmocka_unit_test_setup_teardown(test_entities, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit_events, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
