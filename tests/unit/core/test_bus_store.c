/* Unit tests for the message bus store (src/kernels/message_bus/store.c):
 * an in-memory database per test, and a fake clock passed as now_ms. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/message_bus/store.h"

#define T0 1700000000000LL

struct fx {
	sqlite3 *db;
	bus_store *st;
	sdk_err err;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	if (!f || sqlite3_open(":memory:", &f->db) != SQLITE_OK)
		return -1;
	if (bus_store_open(f->db, &f->st, &f->err) != SDK_OK)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	bus_store_close(f->st);
	sqlite3_close(f->db);
	free(f);
	return 0;
}

static void publish(struct fx *f, const char *subject, const char *payload, int64_t now)
{
	bus_msg m = { .subject = subject, .payload = payload };
	assert_int_equal(bus_store_append(f->st, &m, 1, now, &f->err), SDK_OK);
}

/* Collects what a scan or a poll hands out. */
struct seen {
	int64_t seq[64];
	int deliveries[64];
	char subject[64][64];
	size_t n;
};

static int on_msg(const bus_msg *m, void *arg)
{
	struct seen *s = arg;
	s->seq[s->n] = m->seq;
	snprintf(s->subject[s->n], sizeof s->subject[0], "%s", m->subject);
	s->n++;
	return 0;
}

static int on_delivery(const bus_msg *m, int deliveries, void *arg)
{
	struct seen *s = arg;
	s->deliveries[s->n] = deliveries;
	return on_msg(m, arg);
}

static void test_append_assigns_seq_and_ts(void **state)
{
	struct fx *f = *state;
	bus_msg m[3] = {
		{ .subject = "a.b", .payload = "1" },
		{ .subject = "a.b", .payload = "{\"x\":2}", .key = "k", .headers = "{\"h\":\"v\"}" },
		{ .subject = "c", .payload = "null" },
	};
	assert_int_equal(bus_store_next_seq(f->st), 1);
	assert_int_equal(bus_store_append(f->st, m, 3, T0, &f->err), SDK_OK);
	assert_int_equal(m[0].seq, 1);
	assert_int_equal(m[2].seq, 3);
	assert_int_equal(m[2].ts, T0);
	assert_int_equal(bus_store_next_seq(f->st), 4);
	/* The clock going back does not make timestamps go back. */
	bus_msg late = { .subject = "c", .payload = "0" };
	assert_int_equal(bus_store_append(f->st, &late, 1, T0 - 5000, &f->err), SDK_OK);
	assert_int_equal(late.ts, T0);

	json_t *subjects;
	assert_int_equal(bus_subjects_list(f->st, NULL, &subjects, &f->err), SDK_OK);
	assert_int_equal(json_array_size(subjects), 2);
	json_t *ab = json_array_get(subjects, 0);
	assert_string_equal(json_string_value(json_object_get(ab, "subject")), "a.b");
	assert_int_equal(json_integer_value(json_object_get(ab, "count")), 2);
	assert_int_equal(json_integer_value(json_object_get(ab, "first_offset")), 1);
	assert_int_equal(json_integer_value(json_object_get(ab, "last_offset")), 2);
	json_t *c = json_array_get(subjects, 1);
	assert_int_equal(json_integer_value(json_object_get(c, "count")), 2);
	assert_int_equal(json_integer_value(json_object_get(c, "last_offset")), 4);
	json_decref(subjects);
	assert_int_equal(bus_subjects_list(f->st, "a.*", &subjects, &f->err), SDK_OK);
	assert_int_equal(json_array_size(subjects), 1);
	json_decref(subjects);
}

static void test_scan(void **state)
{
	struct fx *f = *state;
	for (int i = 0; i < 10; i++)
		publish(f, i % 2 ? "odd.n" : "even.n", "0", T0);
	struct seen s = { 0 };
	int64_t next;
	/* Literal: through the index. */
	assert_int_equal(bus_store_scan(f->st, "odd.n", 1, 100, 100, on_msg, &s, &next, &f->err),
			 SDK_OK);
	assert_int_equal(s.n, 5);
	assert_int_equal(s.seq[0], 2);
	assert_int_equal(next, 11);
	/* Wildcard with a match limit: resumes right after the last match. */
	memset(&s, 0, sizeof s);
	assert_int_equal(bus_store_scan(f->st, "*.n", 3, 2, 100, on_msg, &s, &next, &f->err),
			 SDK_OK);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.seq[1], 4);
	assert_int_equal(next, 5);
	/* A budget of rows looked at stops a sparse scan part way. */
	memset(&s, 0, sizeof s);
	assert_int_equal(bus_store_scan(f->st, "nope.>", 1, 5, 4, on_msg, &s, &next, &f->err),
			 SDK_OK);
	assert_int_equal(s.n, 0);
	assert_int_equal(next, 5);
	/* From past the end: nothing, and nothing moves. */
	assert_int_equal(bus_store_scan(f->st, ">", 11, 5, 5, on_msg, &s, &next, &f->err), SDK_OK);
	assert_int_equal(next, 11);
}

static bus_poll_opts opts(const char *pattern, size_t max, int64_t vis, int deliveries)
{
	return (bus_poll_opts){ .pattern = pattern, .max = max, .budget = 1000,
				.visibility_ms = vis, .max_deliveries = deliveries };
}

static void poll(struct fx *f, const char *grp, bus_poll_opts o, int64_t now, struct seen *s,
		 bus_poll_result *res)
{
	memset(s, 0, sizeof *s);
	assert_int_equal(bus_group_poll(f->st, grp, &o, now, on_delivery, s, res, &f->err), SDK_OK);
}

static void test_group_create_and_conflict(void **state)
{
	struct fx *f = *state;
	struct seen s;
	bus_poll_result res;
	bus_poll_opts o = opts(NULL, 10, 0, 0);
	assert_int_equal(bus_group_poll(f->st, "g", &o, T0, on_delivery, &s, &res, &f->err),
			 SDK_ENOTFOUND);
	poll(f, "g", opts("a.>", 10, 0, 0), T0, &s, &res);
	assert_string_equal(res.pattern, "a.>");
	o = opts("b.>", 10, 0, 0);
	assert_int_equal(bus_group_poll(f->st, "g", &o, T0, on_delivery, &s, &res, &f->err),
			 SDK_ECONFLICT);
	/* Leaving the subject out uses the group's. */
	publish(f, "a.x", "1", T0);
	poll(f, "g", opts(NULL, 10, 0, 0), T0, &s, &res);
	assert_int_equal(s.n, 1);
	json_t *g;
	assert_int_equal(bus_group_get(f->st, "g", &g, &f->err), SDK_OK);
	assert_int_equal(json_integer_value(json_object_get(g, "visibility_ms")),
			 BUS_VISIBILITY_DEFAULT_MS);
	assert_int_equal(json_integer_value(json_object_get(g, "in_flight")), 1);
	json_decref(g);
	assert_int_equal(bus_group_delete(f->st, "g", &f->err), SDK_OK);
	assert_int_equal(bus_group_get(f->st, "g", &g, &f->err), SDK_ENOTFOUND);
}

static void test_group_from_latest(void **state)
{
	struct fx *f = *state;
	publish(f, "a.old", "1", T0);
	bus_poll_opts o = opts("a.>", 10, 0, 0);
	o.from = BUS_FROM_LATEST;
	struct seen s;
	bus_poll_result res;
	poll(f, "g", o, T0, &s, &res);
	assert_int_equal(s.n, 0);
	publish(f, "a.new", "2", T0);
	poll(f, "g", opts(NULL, 10, 0, 0), T0, &s, &res);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.subject[0], "a.new");
}

static void test_redelivery_and_ack(void **state)
{
	struct fx *f = *state;
	for (int i = 0; i < 4; i++)
		publish(f, "jobs", "1", T0);
	struct seen s;
	bus_poll_result res;
	poll(f, "w", opts("jobs", 3, 1000, 5), T0, &s, &res);
	assert_int_equal(s.n, 3);
	assert_int_equal(s.deliveries[0], 1);
	assert_int_equal(res.next_due_ms, T0 + 1000);
	/* The fourth, then nothing until the visibility timeout runs out. */
	poll(f, "w", opts(NULL, 3, 0, 0), T0 + 10, &s, &res);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.seq[0], 4);
	poll(f, "w", opts(NULL, 3, 0, 0), T0 + 999, &s, &res);
	assert_int_equal(s.n, 0);
	/* Ack 1 by offset, 2 by its current receipt, 3 by a wrong one. */
	int64_t seqs[] = { 1, 2, 3, 99 };
	int dels[] = { 0, 1, 7, 0 };
	bool acked[4];
	assert_int_equal(bus_group_ack(f->st, "w", seqs, dels, 4, acked, &f->err), SDK_OK);
	assert_true(acked[0]);
	assert_true(acked[1]);
	assert_false(acked[2]);
	assert_false(acked[3]);
	poll(f, "w", opts(NULL, 10, 0, 0), T0 + 1000, &s, &res);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.seq[0], 3);
	assert_int_equal(s.deliveries[0], 2);
	/* The stale receipt of the first delivery no longer acks. */
	int64_t three = 3;
	int one = 1;
	assert_int_equal(bus_group_ack(f->st, "w", &three, &one, 1, acked, &f->err), SDK_OK);
	assert_false(acked[0]);
	assert_int_equal(bus_group_ack(f->st, "nope", &three, NULL, 1, acked, &f->err),
			 SDK_ENOTFOUND);
}

static void test_dead_letter(void **state)
{
	struct fx *f = *state;
	bus_msg m = { .subject = "jobs.a", .payload = "{\"n\":1}", .key = "k", .headers = "{\"h\":\"v\"}" };
	assert_int_equal(bus_store_append(f->st, &m, 1, T0, &f->err), SDK_OK);
	struct seen s;
	bus_poll_result res;
	int64_t now = T0;
	for (int i = 1; i <= 3; i++, now += 100) {
		poll(f, "w", opts("jobs.>", 10, 100, 3), now, &s, &res);
		assert_int_equal(s.n, 1);
		assert_int_equal(s.deliveries[0], i);
	}
	/* Due a fourth time with max_deliveries 3: dead-lettered. */
	poll(f, "w", opts(NULL, 10, 0, 0), now, &s, &res);
	assert_int_equal(s.n, 0);
	assert_int_equal(res.dead_lettered, 1);
	assert_true(res.appended);
	struct seen dl = { 0 };
	int64_t next;
	assert_int_equal(bus_store_scan(f->st, "$dlq.w.>", 1, 10, 10, on_msg, &dl, &next, &f->err),
			 SDK_OK);
	assert_int_equal(dl.n, 1);
	assert_string_equal(dl.subject[0], "$dlq.w.jobs.a");
	/* A group on ">" does not see dead letters; one on "$dlq.>" does. */
	poll(f, "all", opts(">", 10, 0, 0), now, &s, &res);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.subject[0], "jobs.a");
	poll(f, "dlq", opts("$dlq.>", 10, 0, 0), now, &s, &res);
	assert_int_equal(s.n, 1);
	json_t *g;
	assert_int_equal(bus_group_get(f->st, "w", &g, &f->err), SDK_OK);
	assert_int_equal(json_integer_value(json_object_get(g, "in_flight")), 0);
	json_decref(g);
}

static void test_poll_budget(void **state)
{
	struct fx *f = *state;
	for (int i = 0; i < 20; i++)
		publish(f, "noise", "0", T0);
	publish(f, "sig.x", "1", T0);
	bus_poll_opts o = opts("sig.*", 5, 0, 0);
	o.budget = 8;
	struct seen s;
	bus_poll_result res;
	poll(f, "g", o, T0, &s, &res);
	assert_int_equal(s.n, 0);
	assert_true(res.more);
	o.pattern = NULL;
	poll(f, "g", o, T0, &s, &res);
	assert_true(res.more);
	poll(f, "g", o, T0, &s, &res);
	assert_int_equal(s.n, 1);
	assert_false(res.more);
}

static void test_retention(void **state)
{
	struct fx *f = *state;
	for (int i = 0; i < 10; i++)
		publish(f, "logs.a", "0", T0 + i * 1000);
	for (int i = 0; i < 3; i++)
		publish(f, "logs.b", "0", T0 + 10000);
	publish(f, "keep", "0", T0);
	assert_int_equal(bus_retention_set(f->st, "logs.*", 4, -1, T0, &f->err), SDK_OK);
	assert_int_equal(bus_retention_set(f->st, "x", -1, -1, T0, &f->err), SDK_EINVAL);
	size_t deleted;
	bool more;
	/* The budget bounds one pass; the next goes on. */
	assert_int_equal(bus_retention_enforce(f->st, T0 + 10000, 4, &deleted, &more, &f->err),
			 SDK_OK);
	assert_int_equal(deleted, 4);
	assert_true(more);
	assert_int_equal(bus_retention_enforce(f->st, T0 + 10000, 100, &deleted, &more, &f->err),
			 SDK_OK);
	assert_int_equal(deleted, 2);
	assert_false(more);
	json_t *subjects;
	assert_int_equal(bus_subjects_list(f->st, "logs.a", &subjects, &f->err), SDK_OK);
	json_t *a = json_array_get(subjects, 0);
	assert_int_equal(json_integer_value(json_object_get(a, "count")), 4);
	assert_int_equal(json_integer_value(json_object_get(a, "first_offset")), 7);
	json_decref(subjects);
	/* Age: messages of logs.a are at T0+6000..T0+9000. */
	assert_int_equal(bus_retention_set(f->st, "logs.a", -1, 2500, T0, &f->err), SDK_OK);
	assert_int_equal(bus_retention_enforce(f->st, T0 + 10000, 100, &deleted, &more, &f->err),
			 SDK_OK);
	assert_int_equal(deleted, 2);
	/* Everything old goes, the subject with it; offsets are never reused. */
	assert_int_equal(bus_retention_set(f->st, "logs.>", 0, -1, T0, &f->err), SDK_OK);
	assert_int_equal(bus_retention_enforce(f->st, T0 + 10000, 100, &deleted, &more, &f->err),
			 SDK_OK);
	assert_int_equal(deleted, 5);
	assert_int_equal(bus_subjects_list(f->st, NULL, &subjects, &f->err), SDK_OK);
	assert_int_equal(json_array_size(subjects), 1);
	json_decref(subjects);
	json_t *rules;
	assert_int_equal(bus_retention_list(f->st, &rules, &f->err), SDK_OK);
	assert_int_equal(json_array_size(rules), 3);
	json_decref(rules);
	assert_int_equal(bus_retention_delete(f->st, "logs.>", &f->err), SDK_OK);
	assert_int_equal(bus_retention_delete(f->st, "logs.>", &f->err), SDK_ENOTFOUND);
	int64_t next = bus_store_next_seq(f->st);
	bus_store_close(f->st);
	assert_int_equal(bus_store_open(f->db, &f->st, &f->err), SDK_OK);
	assert_int_equal(bus_store_next_seq(f->st), next);
}

static void test_offsets_survive_deleting_the_newest(void **state)
{
	struct fx *f = *state;
	publish(f, "a", "0", T0);
	publish(f, "a", "0", T0);
	assert_int_equal(bus_retention_set(f->st, "a", 0, -1, T0, &f->err), SDK_OK);
	size_t deleted;
	bool more;
	assert_int_equal(bus_retention_enforce(f->st, T0, 100, &deleted, &more, &f->err), SDK_OK);
	assert_int_equal(deleted, 2);
	bus_store_close(f->st);
	assert_int_equal(bus_store_open(f->db, &f->st, &f->err), SDK_OK);
	assert_int_equal(bus_store_next_seq(f->st), 3);
}

static void test_redelivery_of_deleted_message(void **state)
{
	struct fx *f = *state;
	publish(f, "a", "0", T0);
	struct seen s;
	bus_poll_result res;
	poll(f, "g", opts("a", 10, 100, 5), T0, &s, &res);
	assert_int_equal(s.n, 1);
	assert_int_equal(bus_retention_set(f->st, "a", 0, -1, T0, &f->err), SDK_OK);
	size_t deleted;
	bool more;
	assert_int_equal(bus_retention_enforce(f->st, T0, 100, &deleted, &more, &f->err), SDK_OK);
	/* Its delivery is dropped, not handed out without a message. */
	poll(f, "g", opts(NULL, 10, 0, 0), T0 + 200, &s, &res);
	assert_int_equal(s.n, 0);
	assert_int_equal(res.next_due_ms, 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_append_assigns_seq_and_ts),
		T(test_scan),
		T(test_group_create_and_conflict),
		T(test_group_from_latest),
		T(test_redelivery_and_ack),
		T(test_dead_letter),
		T(test_poll_budget),
		T(test_retention),
		T(test_offsets_survive_deleting_the_newest),
		T(test_redelivery_of_deleted_message),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
