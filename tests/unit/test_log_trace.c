/* Unit test: a log line written while a span is current carries its
 * trace_id and span_id (src/sdk/log.c, set by src/sdk/tracer.c), and one
 * written without does not. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sdk/log.h"

/* Runs sdk_log with stderr on a pipe; returns the line parsed. */
static json_t *logged(const char *msg)
{
	int p[2], saved = dup(STDERR_FILENO);
	assert_int_equal(pipe(p), 0);
	dup2(p[1], STDERR_FILENO);
	sdk_log(SDK_LOG_WARN, NULL, "%s", msg);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(p[1]);
	char buf[4096];
	ssize_t n = read(p[0], buf, sizeof buf - 1);
	close(p[0]);
	assert_true(n > 0);
	buf[n] = '\0';
	json_t *j = json_loads(buf, 0, NULL);
	assert_non_null(j);
	return j;
}

static void test_trace_ids_on_lines(void **state)
{
	(void)state;
	sdk_log_init("test", SDK_LOG_DEBUG);
	const unsigned char tid[16] = { 0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6,
					0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36 };
	const unsigned char sid[8] = { 0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7 };
	sdk_log_set_trace(tid, sid);
	json_t *j = logged("inside");
	assert_string_equal(json_string_value(json_object_get(j, "trace_id")),
			    "4bf92f3577b34da6a3ce929d0e0e4736");
	assert_string_equal(json_string_value(json_object_get(j, "span_id")), "00f067aa0ba902b7");
	json_decref(j);
	sdk_log_set_trace(NULL, NULL);
	j = logged("outside");
	assert_null(json_object_get(j, "trace_id"));
	assert_null(json_object_get(j, "span_id"));
	json_decref(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = { cmocka_unit_test(test_trace_ids_on_lines) };
	return cmocka_run_group_tests(tests, NULL, NULL);
}
