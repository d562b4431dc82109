/* sdk_bucket (sdk/bucket.h): refill by the caller's clock, the capacity
 * as a ceiling, the wait until a token, a clock that goes back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "sdk/bucket.h"

static void test_rate_and_capacity(void **state)
{
	(void)state;
	sdk_bucket b;
	sdk_bucket_init(&b, 3, 0.01, 1000); /* 3 at most, one every 100 ms */
	for (int i = 0; i < 3; i++)
		assert_true(sdk_bucket_take(&b, 1000));
	assert_false(sdk_bucket_take(&b, 1000));
	assert_int_equal(sdk_bucket_wait_ms(&b, 1000), 100);
	assert_false(sdk_bucket_take(&b, 1099));
	assert_int_equal(sdk_bucket_wait_ms(&b, 1099), 1);
	assert_true(sdk_bucket_take(&b, 1100));
	/* Ten seconds idle fill it to its capacity, not past. */
	assert_true(sdk_bucket_tokens(&b, 11100) == 3.0);
	assert_int_equal(sdk_bucket_wait_ms(&b, 11100), 0);
	/* A clock that goes back refills nothing and takes what is there. */
	assert_true(sdk_bucket_take(&b, 5000));
	assert_true(sdk_bucket_tokens(&b, 11100) == 2.0);
}

static void test_no_refill(void **state)
{
	(void)state;
	sdk_bucket b;
	sdk_bucket_init(&b, 1, 0, 0);
	assert_true(sdk_bucket_take(&b, 0));
	assert_false(sdk_bucket_take(&b, 1000000));
	assert_int_equal(sdk_bucket_wait_ms(&b, 1000000), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rate_and_capacity),
		cmocka_unit_test(test_no_refill),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
