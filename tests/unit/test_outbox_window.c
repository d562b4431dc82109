/* Unit tests for the noise counting windows (src/serve/outbox/window.c),
 * driven by a fake clock: every time is a number the test chooses. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "sdk/err.h"
#include "serve/outbox/window.h"

#define W 60000
#define T0 1800000000000LL /* a minute boundary */

struct seen {
	obw_entry e[64];
	int64_t start[64];
	size_t n;
};

static void emit(const obw_entry *e, int64_t start_ms, int64_t window_ms, void *arg)
{
	struct seen *s = arg;
	assert_int_equal(window_ms, W);
	assert_true(s->n < 64);
	s->e[s->n] = *e;
	s->start[s->n++] = start_ms;
}

static uint64_t total(const struct seen *s)
{
	uint64_t n = 0;
	for (size_t i = 0; i < s->n; i++)
		n += s->e[i].count;
	return n;
}

static void test_init_refuses_nonsense(void **state)
{
	(void)state;
	obw_table t;
	assert_int_equal(obw_init(&t, 0, 8), SDK_EINVAL);
	assert_int_equal(obw_init(&t, W, 0), SDK_EINVAL);
	assert_int_equal(obw_init(&t, W, 8), 0);
	assert_int_equal(t.nslots >= 16, 1);
	obw_free(&t);
}

static void test_start_is_aligned(void **state)
{
	(void)state;
	assert_int_equal(obw_start(W, T0), T0);
	assert_int_equal(obw_start(W, T0 + 59999), T0);
	assert_int_equal(obw_start(W, T0 + 60000), T0 + W);
	assert_int_equal(obw_start(1000, 1500), 1000);
}

static void test_counts_per_key_and_closes_at_the_boundary(void **state)
{
	(void)state;
	obw_table t;
	struct seen s = { 0 };
	assert_int_equal(obw_init(&t, W, 8), 0);
	for (int i = 0; i < 1000; i++)
		assert_false(obw_add(&t, "127.0.0.2", "POST 401", "/x", "rid-a", T0 + 10 + i, emit, &s));
	assert_false(obw_add(&t, "127.0.0.2", "PUT 401", "/y", "rid-b", T0 + 20000, emit, &s));
	assert_false(obw_add(&t, "127.0.0.3", "POST 401", "/z", "rid-c", T0 + 30000, emit, &s));
	assert_int_equal(obw_open(&t), 3);
	/* Nothing leaves before the window ends. */
	assert_int_equal(obw_close(&t, T0 + W - 1, false, emit, &s), 0);
	assert_int_equal(s.n, 0);
	assert_int_equal(obw_close(&t, T0 + W, false, emit, &s), 3);
	assert_int_equal(s.n, 3);
	assert_int_equal(total(&s), 1002);
	assert_string_equal(s.e[0].source, "127.0.0.2");
	assert_string_equal(s.e[0].kind, "POST 401");
	assert_int_equal(s.e[0].count, 1000);
	assert_int_equal(s.e[0].first_ms, T0 + 10);
	assert_int_equal(s.e[0].last_ms, T0 + 1009);
	assert_string_equal(s.e[0].sample, "/x");
	assert_string_equal(s.e[0].sample_id, "rid-a");
	assert_int_equal(s.start[0], T0);
	assert_int_equal(obw_open(&t), 0);
	/* Closed: nothing more to emit. */
	assert_int_equal(obw_close(&t, T0 + 5 * W, true, emit, &s), 0);
	assert_int_equal(t.counted, 1002);
	assert_int_equal(t.folded, 0);
	obw_free(&t);
}

static void test_a_request_in_a_later_window_closes_the_open_one(void **state)
{
	(void)state;
	obw_table t;
	struct seen s = { 0 };
	assert_int_equal(obw_init(&t, W, 8), 0);
	obw_add(&t, "a", "POST 401", "/1", "", T0 + 1, emit, &s);
	obw_add(&t, "a", "POST 401", "/2", "", T0 + W + 5, emit, &s);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.e[0].count, 1);
	assert_int_equal(s.start[0], T0);
	/* The clock went back: the open window closes too. */
	obw_add(&t, "a", "POST 401", "/3", "", T0 + 7, emit, &s);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.start[1], T0 + W);
	assert_int_equal(obw_close(&t, 0, true, emit, &s), 1);
	assert_int_equal(s.start[2], T0);
	assert_int_equal(total(&s), 3);
	obw_free(&t);
}

static void test_keys_past_max_fold_into_others(void **state)
{
	(void)state;
	obw_table t;
	struct seen s = { 0 };
	assert_int_equal(obw_init(&t, W, 4), 0);
	char src[32];
	/* 40 sources, 10 requests each, interleaved. */
	for (int r = 0; r < 10; r++)
		for (int i = 0; i < 40; i++) {
			snprintf(src, sizeof src, "127.0.1.%d", i);
			bool folded = obw_add(&t, src, "POST 401", "/f", "", T0 + r * 100 + i, emit, &s);
			assert_int_equal(folded, i >= 4);
		}
	assert_int_equal(obw_open(&t), 4);
	assert_int_equal(obw_close(&t, T0 + W, false, emit, &s), 5);
	assert_int_equal(total(&s), 400);
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(s.e[i].count, 10);
	/* Others last, with no source or kind of its own. */
	assert_string_equal(s.e[4].source, "");
	assert_string_equal(s.e[4].kind, "");
	assert_int_equal(s.e[4].count, 360);
	assert_int_equal(t.folded, 360);
	obw_free(&t);
}

static void test_samples_are_clipped(void **state)
{
	(void)state;
	obw_table t;
	struct seen s = { 0 };
	char path[2100], id[200];
	memset(path, 'p', sizeof path - 1);
	path[0] = '/';
	path[sizeof path - 1] = '\0';
	memset(id, 'i', sizeof id - 1);
	id[sizeof id - 1] = '\0';
	assert_int_equal(obw_init(&t, W, 2), 0);
	obw_add(&t, "s", "POST 401", path, id, T0, emit, &s);
	obw_add(&t, "t", "POST 401", "/x\xff", NULL, T0, emit, &s);
	obw_close(&t, T0, true, emit, &s);
	assert_true(strlen(s.e[0].sample) <= OB_SAMPLE_MAX);
	assert_non_null(strstr(s.e[0].sample, " bytes]"));
	assert_true(strlen(s.e[0].sample_id) < OBW_ID_MAX);
	assert_string_equal(s.e[1].sample, "/x%FF");
	assert_string_equal(s.e[1].sample_id, "");
	obw_free(&t);
}

static void test_long_sources_compare_as_kept(void **state)
{
	(void)state;
	obw_table t;
	struct seen s = { 0 };
	char a[200], b[200];
	memset(a, 'a', sizeof a - 1);
	a[sizeof a - 1] = '\0';
	memcpy(b, a, sizeof b);
	b[150] = 'b'; /* differs past what an entry keeps */
	assert_int_equal(obw_init(&t, W, 4), 0);
	obw_add(&t, a, "POST 401", "/", "", T0, emit, &s);
	obw_add(&t, b, "POST 401", "/", "", T0, emit, &s);
	assert_int_equal(obw_open(&t), 1);
	obw_close(&t, T0, true, emit, &s);
	assert_int_equal(s.e[0].count, 2);
	obw_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_refuses_nonsense),
		cmocka_unit_test(test_start_is_aligned),
		cmocka_unit_test(test_counts_per_key_and_closes_at_the_boundary),
		cmocka_unit_test(test_a_request_in_a_later_window_closes_the_open_one),
		cmocka_unit_test(test_keys_past_max_fold_into_others),
		cmocka_unit_test(test_samples_are_clipped),
		cmocka_unit_test(test_long_sources_compare_as_kept),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
