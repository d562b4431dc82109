/* Unit test: what one export of the tracer holds (src/sdk/tracer.c). At
 * most the telemetry kernel's request_items_max spans, a body under its
 * max_body_bytes (a span too large alone dropped and counted), and after a
 * 413 half the spans of the refused export. The test includes tracer.c to
 * call its flush and read its queue and the body it wrote; the loop never
 * runs, so no export is answered (the caller resolves no kernel anyway). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "../../src/sdk/tracer.c"

#include <event2/event.h>

static struct event_base *base;
static sdk_caller *caller;
static sdk_tracer *tracer;

static int setup(void **state)
{
	(void)state;
	base = event_base_new();
	caller = sdk_caller_new(base, "test", NULL, NULL, NULL);
	tracer = sdk_tracer_new(base, caller, "grace.test");
	assert_non_null(tracer);
	event_del(tracer->timer); /* flushed by the test only */
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	sdk_tracer_free(tracer);
	sdk_caller_free(caller);
	event_base_free(base);
	return 0;
}

static void reset(unsigned items_max, size_t body_max)
{
	tracer->head = tracer->n = 0;
	tracer->dropped = tracer->sent = 0;
	tracer->sending = false;
	tracer->batch_max = SDK_TRACER_BATCH;
	tracer->body_max = 0;
	sdk_tracer_set_limits(tracer, items_max, body_max);
}

/* `n` sampled spans queued, each with a target of `target_len` bytes. */
static void queue_spans(size_t n, size_t target_len)
{
	char target[160];
	assert_true(target_len < sizeof target);
	memset(target, 'a', target_len);
	target[0] = '/';
	target[target_len] = '\0';
	for (size_t i = 0; i < n; i++) {
		sdk_span s;
		sdk_span_start(&s, NULL, SDK_SPAN_SERVER, "GET /x");
		s.ctx.flags |= SDK_TRACE_FLAG_SAMPLED;
		sdk_span_end(tracer, &s, 200, "GET", target, NULL);
	}
	assert_int_equal(tracer->n, n);
}

/* The spans of the export flush() just wrote (its body, parsed). */
static size_t exported_spans(void)
{
	json_error_t e;
	json_t *o = json_loadb(tracer->out.p, tracer->out.len, 0, &e);
	if (!o)
		fail_msg("the export is not JSON: %s", e.text);
	json_t *spans = json_object_get(
		json_array_get(json_object_get(json_array_get(json_object_get(o, "resourceSpans"), 0),
					       "scopeSpans"),
			       0),
		"spans");
	assert_true(json_is_array(spans));
	size_t n = json_array_size(spans);
	json_decref(o);
	return n;
}

static void test_at_most_request_items_max(void **state)
{
	(void)state;
	reset(7, 0);
	queue_spans(30, 10);
	flush(tracer);
	assert_int_equal(exported_spans(), 7);
	assert_int_equal(tracer->n, 23); /* the rest wait for the next exports */
	/* Never more than SDK_TRACER_BATCH, whatever the kernel takes. */
	reset(100000, 0);
	assert_int_equal(tracer->batch_max, SDK_TRACER_BATCH);
}

static void test_under_max_body_bytes(void **state)
{
	(void)state;
	const size_t max = 2000;
	reset(0, max);
	queue_spans(30, 100);
	flush(tracer);
	size_t k = exported_spans(), len = tracer->out.len;
	assert_true(k >= 1 && k < 30);
	assert_true(len <= max);
	assert_true(len + len / k > max - 16); /* one more would not have fitted */
	/* It stopped at the span that did not fit: the next export begins
	 * with it, nothing is dropped for its size. */
	assert_int_equal(tracer->n, 30 - k);
	tracer->sending = false; /* as if the first export were answered */
	flush(tracer);
	assert_int_equal(exported_spans(), k);
	assert_true(tracer->out.len <= max);
	assert_int_equal(tracer->n, 30 - 2 * k);
}

static void test_a_span_too_large_alone_is_dropped(void **state)
{
	(void)state;
	reset(0, 300); /* a span here is about 500 bytes of JSON */
	queue_spans(3, 100);
	flush(tracer);
	assert_int_equal(tracer->n, 0);
	assert_int_equal(tracer->dropped, 3); /* counted, never sent */
	assert_false(tracer->sending);
}

static void test_413_halves_the_export(void **state)
{
	(void)state;
	reset(0, 0);
	tracer->sending = true;
	tracer->sending_n = 40;
	on_sent(413, NULL, 0, 0, NULL, tracer);
	assert_false(tracer->sending);
	assert_int_equal(tracer->dropped, 40);
	assert_int_equal(tracer->batch_max, 20);
	tracer->sending = true;
	tracer->sending_n = 1;
	on_sent(413, NULL, 0, 0, NULL, tracer);
	assert_int_equal(tracer->batch_max, 1);
	/* Any other refusal drops the spans and leaves the size. */
	tracer->batch_max = 64;
	tracer->sending = true;
	tracer->sending_n = 10;
	on_sent(503, NULL, 0, 0, NULL, tracer);
	assert_int_equal(tracer->batch_max, 64);
	assert_int_equal(tracer->dropped, 51);
}

static void test_a_full_export_waiting_goes_at_once(void **state)
{
	(void)state;
	reset(4, 0);
	queue_spans(10, 10);
	tracer->sending = true; /* an export in flight */
	tracer->sending_n = 4;
	on_sent(200, NULL, 0, 0, NULL, tracer);
	assert_int_equal(tracer->sent, 4);
	/* Four of the ten were flushed at once, not at the next tick. */
	assert_int_equal(tracer->n, 6);
	assert_int_equal(exported_spans(), 4);
	/* Fewer than a full export wait for the timer. */
	reset(4, 0);
	queue_spans(3, 10);
	tracer->sending = true;
	tracer->sending_n = 4;
	on_sent(200, NULL, 0, 0, NULL, tracer);
	assert_int_equal(tracer->n, 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_at_most_request_items_max),
		cmocka_unit_test(test_under_max_body_bytes),
		cmocka_unit_test(test_a_span_too_large_alone_is_dropped),
		cmocka_unit_test(test_413_halves_the_export),
		cmocka_unit_test(test_a_full_export_waiting_goes_at_once),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
