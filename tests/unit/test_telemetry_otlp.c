/* Unit tests for the telemetry kernel's OTLP decoding
 * (src/kernels/telemetry/otlp_json.c and otlp_pb.c): OTLP/JSON normalized
 * (hex ids in lowercase, 64-bit integers as strings or numbers, enums as
 * integers, unknown fields ignored), the request-level refusals (ids of the
 * wrong length, base64 ids, shapes that are not OTLP, oversized batches),
 * the partial rejections, and protobuf decoded to the same tree; the
 * stored bodies are json_dumps(JSON_COMPACT)'s bytes (the writer itself,
 * sdk/jsonw.h, is held to json_dumps in test_jsonw.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "kernels/telemetry/otlp.h"
#include "kernels/telemetry/trace.pb-c.h"

#define TID "5B8EFFF798038103D269B633813FC60C"
#define SID "EEE19B7EC3C1B174"

static json_t *parse(const char *s)
{
	json_error_t e;
	json_t *j = json_loads(s, 0, &e);
	if (!j)
		fail_msg("bad test JSON: %s", e.text);
	return j;
}

/* Row i of a batch as a jansson object, its "body" parsed and its
 * searched texts as "attrs": [[key, text], ...]. Also checks that the
 * body is exactly what json_dumps(JSON_COMPACT) writes of it. */
static json_t *row_json(const otlp_batch *b, size_t i)
{
	const otlp_row *r = &b->rows[i];
	json_error_t e;
	json_t *body = json_loadb(b->bodies.p + r->body, r->body_len, 0, &e);
	if (!body)
		fail_msg("a body that is not JSON: %s", e.text);
	char *again = json_dumps(body, JSON_COMPACT);
	assert_int_equal(strlen(again), r->body_len);
	assert_memory_equal(again, b->bodies.p + r->body, r->body_len);
	free(again);
	json_t *attrs = json_array();
	for (size_t k = 0; k < r->n_attrs + r->n_res_attrs; k++) {
		const otlp_attr *a = &b->attrs[k < r->n_attrs ? r->attr0 + k
							      : r->res_attr0 + k - r->n_attrs];
		json_array_append_new(attrs, json_pack("[s, s]", b->text.p + a->key,
						       b->text.p + a->value));
	}
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:I, s:I, s:i, s:o, s:o}", "trace_id",
			 r->trace_id, "span_id", r->span_id, "parent_id", r->parent_id, "service",
			 b->text.p + r->service, "name", b->text.p + r->name, "kind", (int)r->kind,
			 "start_ns", (json_int_t)r->start_ns, "end_ns", (json_int_t)r->end_ns, "status",
			 (int)r->status, "attrs", attrs, "body", body);
}

static int batch_of(const char *req, size_t max, otlp_batch *b, sdk_err *why)
{
	json_t *j = parse(req);
	int rc = otlp_json_batch(OTLP_TRACES, j, max, b, why);
	json_decref(j);
	return rc;
}

static const char *one_span =
	"{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\","
	"\"value\":{\"stringValue\":\"shop\"}}]},\"unknownField\":1,\"scopeSpans\":[{\"scope\":"
	"{\"name\":\"lib\",\"version\":\"1\"},\"spans\":[{\"traceId\":\"" TID "\",\"spanId\":\"" SID
	"\",\"parentSpanId\":\"\",\"name\":\"GET /\",\"kind\":2,\"startTimeUnixNano\":1700000000000000000,"
	"\"endTimeUnixNano\":\"1700000000000000500\",\"attributes\":[{\"key\":\"n\",\"value\":"
	"{\"intValue\":42}},{\"key\":\"big\",\"value\":{\"intValue\":\"-9223372036854775808\"}},"
	"{\"key\":\"ok\",\"value\":{\"boolValue\":true}},{\"key\":\"d\",\"value\":{\"doubleValue\":1.5}},"
	"{\"key\":\"b\",\"value\":{\"bytesValue\":\"aGk=\"}},{\"key\":\"arr\",\"value\":{\"arrayValue\":"
	"{\"values\":[{\"stringValue\":\"x\"}]}}}],\"status\":{\"code\":2,\"message\":\"boom\"},"
	"\"events\":[{\"timeUnixNano\":\"1700000000000000100\",\"name\":\"e\"}],"
	"\"links\":[{\"traceId\":\"" TID "\",\"spanId\":\"0000000000000001\"}]}]}]}]}";

static void test_json_normalized(void **state)
{
	(void)state;
	otlp_batch b;
	sdk_err why;
	assert_int_equal(batch_of(one_span, 10, &b, &why), 0);
	assert_int_equal(b.n_rows, 1);
	assert_int_equal(b.rejected, 0);
	json_t *row = row_json(&b, 0), *span = json_object_get(row, "body");
	assert_string_equal(json_string_value(json_object_get(row, "trace_id")),
			    "5b8efff798038103d269b633813fc60c");
	assert_string_equal(json_string_value(json_object_get(row, "parent_id")), "");
	assert_string_equal(json_string_value(json_object_get(row, "service")), "shop");
	assert_int_equal(json_integer_value(json_object_get(row, "start_ns")), 1700000000000000000LL);
	assert_int_equal(json_integer_value(json_object_get(row, "end_ns")), 1700000000000000500LL);
	assert_int_equal(json_integer_value(json_object_get(row, "status")), 2);
	assert_int_equal(json_integer_value(json_object_get(row, "kind")), 2);
	/* canonical: 64-bit integers as strings, the empty parent left out */
	assert_string_equal(json_string_value(json_object_get(span, "startTimeUnixNano")),
			    "1700000000000000000");
	assert_null(json_object_get(span, "parentSpanId"));
	json_t *attrs = json_object_get(span, "attributes");
	assert_string_equal(json_string_value(json_object_get(json_object_get(json_array_get(attrs, 0),
								      "value"), "intValue")), "42");
	assert_string_equal(json_string_value(json_object_get(json_object_get(json_array_get(attrs, 1),
								      "value"), "intValue")),
			    "-9223372036854775808");
	/* searchable texts: scalars (and the resource's), not arrays or bytes */
	char *texts = json_dumps(json_object_get(row, "attrs"), JSON_COMPACT);
	assert_string_equal(texts, "[[\"n\",\"42\"],[\"big\",\"-9223372036854775808\"],[\"ok\",\"true\"],"
				   "[\"d\",\"1.5\"],[\"service.name\",\"shop\"]]");
	free(texts);
	assert_string_equal(json_string_value(json_object_get(json_object_get(span, "scope"), "name")),
			    "lib");
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(json_object_get(span, "links"), 0), "spanId")),
			    "0000000000000001");
	json_decref(row);
	otlp_batch_free(&b);
}

static void test_json_refused(void **state)
{
	(void)state;
	static const struct {
		const char *req, *why;
	} bad[] = {
		{ "[]", "expected an object" },
		{ "{\"resourceSpans\":{}}", "expected an object" },
		{ "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"abc\",\"spanId\":\"" SID "\"}]}]}]}",
		  "traceId: a trace id is 16 bytes" },
		{ "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"" TID "\",\"spanId\":\"" SID "00\"}]}]}]}",
		  "spanId: a span id is 8 bytes" },
		{ "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"W46/95gDgQPSabYzgT/GDA==\",\"spanId\":\"" SID "\"}]}]}]}",
		  "traceId" },
		{ "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"" TID "\",\"spanId\":\"" SID "\",\"kind\":9}]}]}]}",
		  "kind" },
		{ "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"" TID "\",\"spanId\":\"" SID "\",\"startTimeUnixNano\":\"-1\"}]}]}]}",
		  "startTimeUnixNano" },
		{ "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"" TID "\",\"spanId\":\"" SID "\",\"attributes\":[{\"key\":\"k\",\"value\":{\"intValue\":\"1.5\"}}]}]}]}]}",
		  "AnyValue" },
		{ "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"" TID "\",\"spanId\":\"" SID "\",\"attributes\":[{\"value\":{}}]}]}]}]}",
		  "string key" },
		{ "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"" TID "\",\"spanId\":\"" SID "\",\"attributes\":[{\"key\":\"b\",\"value\":{\"bytesValue\":\"!!\"}}]}]}]}]}",
		  "AnyValue" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		otlp_batch b;
		sdk_err why;
		if (batch_of(bad[i].req, 10, &b, &why) != SDK_EINVAL)
			fail_msg("accepted %s", bad[i].req);
		assert_null(b.rows);
		assert_int_equal(b.n_rows, 0);
		if (!strstr(why.msg, bad[i].why))
			fail_msg("'%s' does not say '%s'", why.msg, bad[i].why);
	}
	/* one span too many: refused whole, as oversized */
	otlp_batch b;
	sdk_err why;
	assert_int_equal(batch_of(one_span, 0, &b, &why), SDK_ETOOLARGE);
	assert_non_null(strstr(why.msg, "the limit is 0"));
}

static void test_json_partial(void **state)
{
	(void)state;
	otlp_batch b;
	sdk_err why;
	const char *req =
		"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":["
		"{\"traceId\":\"" TID "\",\"spanId\":\"" SID "\"},"
		"{\"traceId\":\"00000000000000000000000000000000\",\"spanId\":\"" SID "\"},"
		"{\"traceId\":\"" TID "\",\"spanId\":\"" SID "\",\"startTimeUnixNano\":5,\"endTimeUnixNano\":4}"
		"]}]}]}";
	assert_int_equal(batch_of(req, 10, &b, &why), 0);
	assert_int_equal(b.n_rows, 1);
	assert_int_equal(b.rejected, 2);
	assert_non_null(strstr(b.why, "spans[1]"));
	assert_non_null(strstr(b.why, "all-zero"));
	json_decref(row_json(&b, 0));
	otlp_batch_free(&b);
}

static void test_protobuf_same_tree(void **state)
{
	(void)state;
	uint8_t tid[16], sid[8];
	for (int i = 0; i < 16; i++)
		tid[i] = (uint8_t)(0xa0 + i);
	for (int i = 0; i < 8; i++)
		sid[i] = (uint8_t)(i + 1);
	Otlp__AnyValue v = OTLP__ANY_VALUE__INIT;
	v.value_case = OTLP__ANY_VALUE__VALUE_INT_VALUE;
	v.int_value = -7;
	Otlp__KeyValue kv = OTLP__KEY_VALUE__INIT, *kvs[1] = { &kv };
	kv.key = "n";
	kv.value = &v;
	Otlp__Span span = OTLP__SPAN__INIT, *spans[1] = { &span };
	span.trace_id = (ProtobufCBinaryData){ 16, tid };
	span.span_id = (ProtobufCBinaryData){ 8, sid };
	span.name = "op";
	span.kind = OTLP__SPAN__SPAN_KIND__SPAN_KIND_CLIENT;
	span.start_time_unix_nano = 10;
	span.end_time_unix_nano = 20;
	span.n_attributes = 1;
	span.attributes = kvs;
	Otlp__ScopeSpans ss = OTLP__SCOPE_SPANS__INIT, *sss[1] = { &ss };
	ss.n_spans = 1;
	ss.spans = spans;
	Otlp__ResourceSpans rs = OTLP__RESOURCE_SPANS__INIT, *rss[1] = { &rs };
	rs.n_scope_spans = 1;
	rs.scope_spans = sss;
	Otlp__ExportTraceServiceRequest req = OTLP__EXPORT_TRACE_SERVICE_REQUEST__INIT;
	req.n_resource_spans = 1;
	req.resource_spans = rss;
	size_t len = otlp__export_trace_service_request__get_packed_size(&req);
	uint8_t *buf = malloc(len);
	otlp__export_trace_service_request__pack(&req, buf);
	json_t *tree;
	sdk_err why;
	assert_int_equal(otlp_pb_to_json(OTLP_TRACES, buf, len, &tree, &why), 0);
	otlp_batch b;
	assert_int_equal(otlp_json_batch(OTLP_TRACES, tree, 10, &b, &why), 0);
	json_t *row = row_json(&b, 0), *body = json_object_get(row, "body");
	assert_string_equal(json_string_value(json_object_get(row, "trace_id")),
			    "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf");
	assert_string_equal(json_string_value(json_object_get(row, "span_id")), "0102030405060708");
	assert_int_equal(json_integer_value(json_object_get(row, "kind")), 3);
	assert_string_equal(json_string_value(json_object_get(body, "endTimeUnixNano")), "20");
	char *texts = json_dumps(json_object_get(row, "attrs"), JSON_COMPACT);
	assert_string_equal(texts, "[[\"n\",\"-7\"]]");
	free(texts);
	json_decref(row);
	otlp_batch_free(&b);
	json_decref(tree);
	/* a 15-byte trace id decodes, and the checker refuses it */
	span.trace_id.len = 15;
	len = otlp__export_trace_service_request__get_packed_size(&req);
	otlp__export_trace_service_request__pack(&req, buf);
	assert_int_equal(otlp_pb_to_json(OTLP_TRACES, buf, len, &tree, &why), 0);
	assert_int_equal(otlp_json_batch(OTLP_TRACES, tree, 10, &b, &why), SDK_EINVAL);
	assert_non_null(strstr(why.msg, "30 digits"));
	json_decref(tree);
	/* and bytes that are not a message do not decode */
	assert_int_equal(otlp_pb_to_json(OTLP_TRACES, (const uint8_t *)"\xff\xff\xff", 3, &tree, &why),
			 SDK_EINVAL);
	free(buf);
}

/* A span of each kind of odd content: its body is json_dumps's text. */
static void test_body_as_dumps(void **state)
{
	(void)state;
	const char *req =
		"{\"resourceSpans\":[{\"resource\":{\"droppedAttributesCount\":2,\"attributes\":["
		"{\"key\":\"service.name\",\"value\":{\"stringValue\":\"caf\u00e9 \\\"q\\\"\"}},"
		"{\"key\":\"service.name\",\"value\":{\"intValue\":3}}]},\"scopeSpans\":[{\"scope\":"
		"{\"name\":\"\",\"attributes\":[{\"key\":\"s\",\"value\":{\"doubleValue\":\"NaN\"}}],"
		"\"droppedAttributesCount\":\"1\"},\"spans\":[{\"traceId\":\"" TID "\",\"spanId\":\"" SID "\","
		"\"traceState\":\"a=b\",\"flags\":257,\"kind\":\"1\",\"startTimeUnixNano\":5,"
		"\"endTimeUnixNano\":6,\"attributes\":[{\"key\":\"d\",\"value\":{\"doubleValue\":3}},"
		"{\"key\":\"e\",\"value\":{\"doubleValue\":0.1}},{\"key\":\"n\",\"value\":null},"
		"{\"key\":\"kv\",\"value\":{\"kvlistValue\":{\"values\":[{\"key\":\"x\",\"value\":"
		"{\"boolValue\":false}}]}}},{\"key\":\"t\\n\",\"value\":{\"stringValue\":\"\\u0001/\\\\\"}}],"
		"\"droppedAttributesCount\":1,\"events\":[{\"timeUnixNano\":\"7\",\"attributes\":"
		"[{\"key\":\"a\",\"value\":{\"arrayValue\":{}}}],\"droppedAttributesCount\":4}],"
		"\"droppedEventsCount\":2,\"links\":[{\"traceId\":\"" TID "\",\"spanId\":\"" SID "\","
		"\"traceState\":\"x\",\"flags\":1,\"droppedAttributesCount\":3}],\"droppedLinksCount\":9,"
		"\"status\":{\"message\":\"m\",\"code\":1}},"
		"{\"traceId\":\"" TID "\",\"spanId\":\"" SID "\",\"name\":\"late\",\"status\":null}]}]}]}";
	otlp_batch b;
	sdk_err why;
	assert_int_equal(batch_of(req, 10, &b, &why), 0);
	assert_int_equal(b.n_rows, 2);
	json_t *row = row_json(&b, 0);
	assert_string_equal(json_string_value(json_object_get(row, "service")), "caf\u00e9 \"q\"");
	assert_string_equal(json_string_value(json_object_get(row, "name")), "");
	char *texts = json_dumps(json_object_get(row, "attrs"), JSON_COMPACT);
	assert_string_equal(texts, "[[\"d\",\"3\"],[\"e\",\"0.10000000000000001\"],"
				   "[\"t\\n\",\"\\u0001/\\\\\"],[\"service.name\",\"caf\u00e9 \\\"q\\\"\"],"
				   "[\"service.name\",\"3\"]]");
	free(texts);
	/* an empty name after the flags, a status's message before its code */
	const char *body = b.bodies.p + b.rows[0].body;
	assert_non_null(strstr(body, "\"endTimeUnixNano\":\"6\",\"flags\":257,\"name\":\"\",\"kind\":1,"));
	assert_non_null(strstr(body, "\"status\":{\"message\":\"m\",\"code\":1},\"droppedAttributesCount\":1,"));
	assert_non_null(strstr(body, "\"resource\":{\"droppedAttributesCount\":2,\"attributes\":["));
	json_decref(row);
	row = row_json(&b, 1);
	assert_string_equal(json_string_value(json_object_get(row, "name")), "late");
	json_decref(row);
	otlp_batch_free(&b);
}

static void test_answers(void **state)
{
	(void)state;
	uint8_t *out;
	size_t len;
	assert_int_equal(otlp_encode_success(OTLP_TRACES, false, 0, NULL, &out, &len), 0);
	assert_int_equal(len, 2);
	assert_memory_equal(out, "{}", 2);
	free(out);
	assert_int_equal(otlp_encode_success(OTLP_LOGS, false, 3, "why", &out, &len), 0);
	json_t *j = json_loadb((const char *)out, len, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "partialSuccess"),
							      "rejectedLogRecords")), "3");
	json_decref(j);
	free(out);
	assert_int_equal(otlp_encode_success(OTLP_TRACES, true, 0, NULL, &out, &len), 0);
	assert_int_equal(len, 0); /* an empty ExportTraceServiceResponse */
	free(out);
	assert_int_equal(otlp_encode_status(true, 3, "bad", &out, &len), 0);
	/* code = 1 (varint 3), message = 2 ("bad") */
	assert_int_equal(len, 7);
	assert_memory_equal(out, "\x08\x03\x12\x03" "bad", 7);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_normalized), cmocka_unit_test(test_json_refused),
		cmocka_unit_test(test_json_partial), cmocka_unit_test(test_protobuf_same_tree),
		cmocka_unit_test(test_answers),
		cmocka_unit_test(test_body_as_dumps),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
