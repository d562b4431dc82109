/* Unit tests for OTLP metrics into Prometheus samples
 * (src/kernels/telemetry/otlp_metrics.c): names and labels as the
 * OpenTelemetry Collector's translator makes them (unit and _total
 * suffixes, ratio for unit "1" gauges, separators collapsed, a leading
 * digit prefixed), histogram buckets made cumulative, and delta sums
 * accumulated (the next interval adds, a resend of the last gives the same
 * total, a gap starts again). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/telemetry/otlp_metrics.h"

static void name_is(const char *name, const char *unit, char kind, const char *want)
{
	char out[OTLP_PROM_NAME_MAX + 1];
	otlp_prom_name(name, unit, kind, out, sizeof out);
	assert_string_equal(out, want);
}

static void test_names(void **state)
{
	(void)state;
	name_is("http.server.duration", "ms", 'h', "http_server_duration_milliseconds");
	name_is("http.server.duration", "s", 'h', "http_server_duration_seconds");
	name_is("bb.requests", "{request}", 'c', "bb_requests_total");
	name_is("requests_total", "", 'c', "requests_total");
	name_is("total.requests", "", 'c', "requests_total");
	name_is("bytes.sent", "By", 'c', "bytes_sent_total");
	name_is("net.io", "By", 'c', "net_io_bytes_total");
	name_is("cpu.utilization", "1", 'g', "cpu_utilization_ratio");
	name_is("cpu.utilization", "1", 'u', "cpu_utilization");
	name_is("queue.depth", "{item}", 'u', "queue_depth");
	name_is("speed", "m/s", 'g', "speed_meters_per_second");
	name_is("rate_per_second", "1/s", 'g', "rate_per_second");
	name_is("temp", "Cel", 'g', "temp_celsius");
	name_is("errors", "%", 'g', "errors_percent");
	name_is("weird..name__x", "", 'g', "weird_name_x");
	name_is("2xx.count", "", 'g', "_2xx_count");
	name_is("odd", "widgets", 'g', "odd_widgets");
	name_is("...", "", 'g', "");
}

static void label_is(const char *key, const char *want)
{
	char out[OTLP_PROM_NAME_MAX + 8];
	otlp_prom_label(key, out, sizeof out);
	assert_string_equal(out, want);
}

static void test_labels(void **state)
{
	(void)state;
	label_is("http.route", "http_route");
	label_is("2xx", "key_2xx");
	label_is("_private", "key_private");
	label_is("__reserved", "__reserved");
	label_is("a-b c", "a_b_c");
}

static json_t *translate(otlp_prom_acc *acc, const char *req, size_t *rejected)
{
	json_t *r = json_loads(req, 0, NULL);
	assert_non_null(r);
	otlp_prom_out out;
	sdk_err why;
	assert_int_equal(otlp_prom_translate(acc, r, 100, 1000, &out, &why), 0);
	json_decref(r);
	*rejected = out.rejected;
	return out.series;
}

/* The value of the series whose labels include name=value (NAN if none). */
static double value_of(json_t *series, const char *name, const char *label, const char *lv)
{
	size_t i;
	json_t *s;
	json_array_foreach(series, i, s) {
		json_t *l = json_object_get(s, "labels");
		if (strcmp(json_string_value(json_object_get(l, "__name__")), name))
			continue;
		if (label && strcmp(json_string_value(json_object_get(l, label)) ?: "", lv))
			continue;
		return json_number_value(json_array_get(json_array_get(json_object_get(s, "samples"), 0), 1));
	}
	return -12345;
}

#define RES "{\"resourceMetrics\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{\"stringValue\":\"svc\"}}]},\"scopeMetrics\":[{\"metrics\":["

static void test_histogram_cumulative(void **state)
{
	(void)state;
	otlp_prom_acc *acc = otlp_prom_acc_new(10);
	size_t rej;
	json_t *s = translate(acc, RES "{\"name\":\"lat\",\"unit\":\"s\",\"histogram\":{\"aggregationTemporality\":2,"
				   "\"dataPoints\":[{\"timeUnixNano\":\"5000000\",\"count\":\"6\",\"sum\":1.5,"
				   "\"bucketCounts\":[\"1\",\"2\",\"3\"],\"explicitBounds\":[0.1,0.5]}]}}]}]}]}",
			      &rej);
	assert_int_equal(rej, 0);
	assert_true(value_of(s, "lat_seconds_bucket", "le", "0.1") == 1);
	assert_true(value_of(s, "lat_seconds_bucket", "le", "0.5") == 3);
	assert_true(value_of(s, "lat_seconds_bucket", "le", "+Inf") == 6);
	assert_true(value_of(s, "lat_seconds_sum", NULL, NULL) == 1.5);
	assert_true(value_of(s, "lat_seconds_count", NULL, NULL) == 6);
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(json_array_get(s, 0), "labels"), "job")),
			    "svc");
	/* 5,000,000 ns is 5 ms. */
	assert_int_equal(json_integer_value(json_array_get(
				 json_array_get(json_object_get(json_array_get(s, 0), "samples"), 0), 0)),
			 5);
	json_decref(s);
	otlp_prom_acc_free(acc);
}

static double delta(otlp_prom_acc *acc, long start, long t, int v)
{
	char req[1024];
	snprintf(req, sizeof req,
		 RES "{\"name\":\"n\",\"sum\":{\"aggregationTemporality\":1,\"isMonotonic\":true,"
		     "\"dataPoints\":[{\"startTimeUnixNano\":\"%ld\",\"timeUnixNano\":\"%ld\",\"asInt\":\"%d\"}]}}]}]}]}",
		 start, t, v);
	size_t rej;
	json_t *s = translate(acc, req, &rej);
	double d = json_array_size(s) ? value_of(s, "n_total", NULL, NULL) : -1;
	json_decref(s);
	return d;
}

static void test_delta_accumulated(void **state)
{
	(void)state;
	otlp_prom_acc *acc = otlp_prom_acc_new(10);
	assert_true(delta(acc, 0, 1000000, 5) == 5);
	assert_true(delta(acc, 1000000, 2000000, 7) == 12);
	assert_true(delta(acc, 1000000, 2000000, 7) == 12); /* resent: the same total */
	assert_true(delta(acc, 0, 1000000, 5) == -1);	     /* older: left out */
	assert_true(delta(acc, 5000000, 6000000, 2) == 2);   /* a gap: starts again */
	assert_int_equal(otlp_prom_acc_size(acc), 1);
	otlp_prom_acc_free(acc);
}

static void test_refused(void **state)
{
	(void)state;
	otlp_prom_acc *acc = otlp_prom_acc_new(10);
	otlp_prom_out out;
	sdk_err why;
	json_t *r = json_loads("{\"resourceMetrics\":{}}", 0, NULL);
	assert_int_equal(otlp_prom_translate(acc, r, 100, 0, &out, &why), SDK_EINVAL);
	assert_null(out.series);
	json_decref(r);
	r = json_loads(RES "{\"name\":\"g\",\"gauge\":{\"dataPoints\":[{},{},{}]}}]}]}]}", 0, NULL);
	assert_int_equal(otlp_prom_translate(acc, r, 2, 0, &out, &why), SDK_ETOOLARGE);
	json_decref(r);
	otlp_prom_acc_free(acc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_labels),
		cmocka_unit_test(test_histogram_cumulative),
		cmocka_unit_test(test_delta_accumulated),
		cmocka_unit_test(test_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
