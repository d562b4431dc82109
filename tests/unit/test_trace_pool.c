/* Unit test: SQLite statements a pool job runs on a worker thread become
 * spans (src/sdk/tracer.c with src/sdk/pool.c's trace hooks and
 * src/sdk/db.c's statement hook): children of the span current when the
 * job was submitted, timed on the worker, a failed one an error, at most
 * SDK_TRACE_CHILDREN_MAX a job with the rest counted; nothing for a job
 * submitted with no span or an unsampled one; the span current again
 * while the job's done runs. The test includes tracer.c to read the
 * tracer's queue (the spans it would send). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "../../src/sdk/tracer.c"

#include "sdk/pool.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

static struct event_base *base;
static sdk_caller *caller;
static sdk_tracer *tracer;
static sdk_pool *pool;
static sqlite3 *db;
static char dir[] = "/tmp/grace-trace-pool-XXXXXX";
static pthread_t loop_thread;

struct job {
	int statements; /* INSERTs to run */
	bool fail;      /* and one that breaks the primary key */
	bool done;
	pthread_t worker;
	const sdk_span *current_in_done;
	int64_t work_start, work_end;
};

static void work(void *arg)
{
	struct job *j = arg;
	j->worker = pthread_self();
	j->work_start = now_ns();
	for (int i = 0; i < j->statements; i++) {
		sqlite3_stmt *st;
		assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO t(v) VALUES (?1)", -1, &st, NULL),
				 SQLITE_OK);
		sqlite3_bind_int(st, 1, i);
		assert_int_equal(sqlite3_step(st), SQLITE_DONE);
		sqlite3_finalize(st);
	}
	if (j->fail)
		assert_int_not_equal(sqlite3_exec(db, "INSERT INTO t(id, v) VALUES (1, 0)", NULL, NULL,
						  NULL),
				     SQLITE_OK);
	j->work_end = now_ns();
}

static void done(void *arg)
{
	struct job *j = arg;
	assert_true(pthread_equal(pthread_self(), loop_thread));
	j->current_in_done = sdk_trace_current();
	j->done = true;
}

/* Submits `j` with `span` current (NULL: none), as a handler does, and
 * runs the loop until its done has run. */
static void run(struct job *j, const sdk_span *span)
{
	const sdk_span *was = sdk_trace_set_current(span);
	assert_int_equal(sdk_pool_submit(pool, work, done, j), 0);
	sdk_trace_set_current(was); /* the handler returned */
	while (!j->done)
		event_base_loop(base, EVLOOP_ONCE);
	assert_false(pthread_equal(j->worker, loop_thread));
	assert_null(sdk_trace_current());
}

static const rec *queued(size_t i)
{
	return &tracer->queue[(tracer->head + i) % SDK_TRACER_QUEUE_MAX];
}

static void clear_queue(void)
{
	tracer->head = tracer->n = 0;
	tracer->dropped = 0;
}

static int setup(void **state)
{
	(void)state;
	loop_thread = pthread_self();
	/* Before SQLite starts: failed statements are known from its log. */
	assert_int_equal(sdk_db_log_install(), 0);
	assert_non_null(mkdtemp(dir));
	base = event_base_new();
	caller = sdk_caller_new(base, "test", NULL, NULL, NULL);
	tracer = sdk_tracer_new(base, caller, "grace.test");
	assert_non_null(tracer);
	event_del(tracer->timer); /* nothing is sent: the test reads the queue */
	pool = sdk_pool_new(base, 1, 16);
	sdk_err err;
	assert_int_equal(sdk_db_open(dir, "t", &db, &err), 0);
	assert_int_equal(sdk_db_exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER)", &err),
			 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	sqlite3_close(db);
	sdk_pool_free(pool);
	sdk_tracer_free(tracer);
	sdk_caller_free(caller);
	event_base_free(base);
	char path[64];
	static const char *const files[] = { "t.db", "t.db-wal", "t.db-shm" };
	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, files[i]);
		unlink(path);
	}
	rmdir(dir);
	return 0;
}

/* A queued span as the exporter writes it, parsed back: the text must be
 * valid JSON. */
static json_t *span_json_of(const rec *r)
{
	sdk_buf b = { 0 };
	span_json(&b, r);
	assert_false(b.oom);
	json_error_t e;
	json_t *o = json_loadb(b.p, b.len, 0, &e);
	if (!o)
		fail_msg("the exporter wrote no JSON: %s", e.text);
	sdk_buf_free(&b);
	return o;
}

static const char *attr(json_t *span, const char *key)
{
	size_t i;
	json_t *kv;
	json_array_foreach(json_object_get(span, "attributes"), i, kv)
	{
		if (!strcmp(json_string_value(json_object_get(kv, "key")), key)) {
			json_t *v = json_object_get(kv, "value");
			const char *k = json_object_iter_key(json_object_iter(v));
			return json_string_value(json_object_get(v, k));
		}
	}
	return NULL;
}

static void test_children_of_the_submitting_span(void **state)
{
	(void)state;
	clear_queue();
	sdk_span handler;
	sdk_span_start(&handler, NULL, SDK_SPAN_SERVER, "GET /things");
	struct job j = { .statements = 3, .fail = true };
	run(&j, &handler);
	/* The handler's span again while done ran (a copy: the handler's own
	 * may be gone by then). */
	assert_non_null(j.current_in_done);
	assert_memory_equal(j.current_in_done->ctx.span_id, handler.ctx.span_id, 8);
	assert_int_equal(tracer->n, 4);
	for (size_t i = 0; i < 4; i++) {
		const rec *r = queued(i);
		assert_true(r->s.has_parent);
		assert_memory_equal(r->s.parent, handler.ctx.span_id, 8);
		assert_memory_equal(r->s.ctx.trace_id, handler.ctx.trace_id, 16);
		assert_int_equal(r->s.kind, SDK_SPAN_INTERNAL);
		assert_string_equal(r->s.name, "sqlite INSERT");
		/* Timed on the worker, inside its work. */
		assert_true(r->s.start_ns >= j.work_start);
		assert_true(r->end_ns <= j.work_end);
		assert_true(r->end_ns >= r->s.start_ns);
		if (i)
			assert_true(r->s.start_ns >= queued(i - 1)->end_ns);
		json_t *o = span_json_of(r);
		assert_string_equal(attr(o, "db.system.name"), "sqlite");
		const char *text = attr(o, "db.query.text");
		assert_non_null(text);
		bool failed = i == 3;
		assert_string_equal(text, failed ? "INSERT INTO t(id, v) VALUES (1, 0)"
						 : "INSERT INTO t(v) VALUES (?1)");
		json_t *status = json_object_get(o, "status");
		if (failed) {
			assert_int_equal(json_integer_value(json_object_get(status, "code")), 2);
			char code[16];
			snprintf(code, sizeof code, "%d", SQLITE_CONSTRAINT_PRIMARYKEY);
			assert_string_equal(attr(o, "db.response.status_code"), code);
			assert_string_equal(attr(o, "error.type"), code);
		} else {
			assert_null(json_object_get(status, "code"));
			assert_null(attr(o, "error.type"));
		}
		assert_null(attr(o, "grace.db.statements_dropped"));
		json_decref(o);
	}
	assert_int_equal(tracer->dropped, 0);
}

static void test_bounded_per_job(void **state)
{
	(void)state;
	clear_queue();
	sdk_span handler;
	sdk_span_start(&handler, NULL, SDK_SPAN_SERVER, "POST /bulk");
	struct job j = { .statements = SDK_TRACE_CHILDREN_MAX + 36 };
	run(&j, &handler);
	assert_int_equal(tracer->n, SDK_TRACE_CHILDREN_MAX);
	assert_int_equal(tracer->dropped, 36);
	json_t *o = span_json_of(queued(SDK_TRACE_CHILDREN_MAX - 1));
	assert_string_equal(attr(o, "grace.db.statements_dropped"), "36");
	json_decref(o);
	o = span_json_of(queued(0));
	assert_null(attr(o, "grace.db.statements_dropped"));
	json_decref(o);
	/* A second job of the same handler has its own bound. */
	clear_queue();
	struct job k = { .statements = 2 };
	run(&k, &handler);
	assert_int_equal(tracer->n, 2);
}

static void test_nothing_without_a_sampled_span(void **state)
{
	(void)state;
	clear_queue();
	struct job j = { .statements = 2 };
	run(&j, NULL);
	assert_null(j.current_in_done);
	assert_int_equal(tracer->n, 0);
	sdk_span unsampled;
	sdk_span_start(&unsampled, NULL, SDK_SPAN_SERVER, "GET /quiet");
	unsampled.ctx.flags &= (uint8_t)~SDK_TRACE_FLAG_SAMPLED;
	struct job k = { .statements = 2, .fail = true };
	run(&k, &unsampled);
	assert_null(k.current_in_done);
	assert_int_equal(tracer->n, 0);
	assert_int_equal(tracer->dropped, 0);
}

/* On the loop too, a failed statement is an error (same shape). */
static void test_loop_statement_failure(void **state)
{
	(void)state;
	clear_queue();
	sdk_span handler;
	sdk_span_start(&handler, NULL, SDK_SPAN_SERVER, "POST /one");
	const sdk_span *was = sdk_trace_set_current(&handler);
	assert_int_not_equal(sqlite3_exec(db, "INSERT INTO t(id, v) VALUES (1, 0)", NULL, NULL, NULL),
			     SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "SELECT count(*) FROM t", NULL, NULL, NULL), SQLITE_OK);
	sdk_trace_set_current(was);
	assert_int_equal(tracer->n, 2);
	json_t *o = span_json_of(queued(0));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "status"), "code")), 2);
	assert_string_equal(attr(o, "db.system.name"), "sqlite");
	json_decref(o);
	o = span_json_of(queued(1));
	assert_string_equal(json_string_value(json_object_get(o, "name")), "sqlite SELECT");
	assert_null(json_object_get(json_object_get(o, "status"), "code"));
	json_decref(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_children_of_the_submitting_span),
		cmocka_unit_test(test_bounded_per_job),
		cmocka_unit_test(test_nothing_without_a_sampled_span),
		cmocka_unit_test(test_loop_statement_failure),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
