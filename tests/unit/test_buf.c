/* Unit tests for the growable buffers (src/sdk/buf.c): sdk_grow's
 * doubling, its first size, and its refusal of a size that would
 * overflow, which leaves the array as it was. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>

#include "sdk/buf.h"

static void grows_by_doubling(void **state)
{
	(void)state;
	int *v = NULL;
	size_t cap = 0;
	for (size_t n = 0; n < 1000; n++) {
		int *g = sdk_grow(v, &cap, n, sizeof *v, 16);
		assert_non_null(g);
		v = g;
		v[n] = (int)n; /* the room asked for is there */
		assert_true(n < cap);
		size_t want = 16;
		while (want <= n)
			want *= 2;
		assert_int_equal(cap, want);
	}
	for (size_t n = 0; n < 1000; n++)
		assert_int_equal(v[n], (int)n);
	free(v);
}

static void room_left_is_the_same_array(void **state)
{
	(void)state;
	size_t cap = 0;
	char *v = sdk_grow(NULL, &cap, 0, 1, 8);
	assert_non_null(v);
	assert_int_equal(cap, 8);
	assert_ptr_equal(sdk_grow(v, &cap, 7, 1, 8), v);
	assert_int_equal(cap, 8);
	free(v);
}

static void overflow_is_refused(void **state)
{
	(void)state;
	size_t cap = 4;
	char *v = malloc(4);
	assert_non_null(v);
	assert_null(sdk_grow(v, &cap, SIZE_MAX / 2 + 1, 1, 4)); /* no count fits */
	assert_int_equal(cap, 4);
	assert_null(sdk_grow(v, &cap, 4, SIZE_MAX / 4, 4)); /* 8 elements would not */
	assert_int_equal(cap, 4);
	free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(grows_by_doubling),
		cmocka_unit_test(room_left_is_the_same_array),
		cmocka_unit_test(overflow_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
