/* OTLP protobuf in and out: a request decoded into the OTLP/JSON tree it
 * stands for (so one checker, otlp_json.c, serves both encodings), and the
 * answers (partial success, google.rpc.Status) encoded. */
#include "kernels/telemetry/otlp.h"

#include "kernels/telemetry/logs.pb-c.h"
#include "kernels/telemetry/metrics.pb-c.h"
#include "kernels/telemetry/status.pb-c.h"
#include "kernels/telemetry/trace.pb-c.h"

#include <inttypes.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void otlp_hex(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

/* A bytes field as hex: any length, so the checker can say it is wrong. */
static json_t *hex_of(ProtobufCBinaryData b)
{
	char *s = malloc(2 * b.len + 1);
	if (!s)
		return NULL;
	otlp_hex(b.data, b.len, s);
	json_t *j = json_string(s);
	free(s);
	return j;
}

static json_t *u64_str(uint64_t v)
{
	char s[24];
	snprintf(s, sizeof s, "%" PRIu64, v);
	return json_string(s);
}

static json_t *i64_str(int64_t v)
{
	char s[24];
	snprintf(s, sizeof s, "%" PRId64, v);
	return json_string(s);
}

static json_t *kvs_json(size_t n, Otlp__KeyValue **kv, int depth);

/* proto3's JSON mapping: NaN and the infinities as strings. */
static json_t *double_json(double d)
{
	if (isnan(d))
		return json_string("NaN");
	if (isinf(d))
		return json_string(d > 0 ? "Infinity" : "-Infinity");
	return json_real(d);
}

static json_t *any_json(const Otlp__AnyValue *v, int depth)
{
	json_t *o = json_object();
	if (!v || depth > OTLP_ANY_DEPTH_MAX)
		return o;
	switch (v->value_case) {
	case OTLP__ANY_VALUE__VALUE_STRING_VALUE:
		json_object_set_new(o, "stringValue", json_string(v->string_value));
		break;
	case OTLP__ANY_VALUE__VALUE_BOOL_VALUE:
		json_object_set_new(o, "boolValue", json_boolean(v->bool_value));
		break;
	case OTLP__ANY_VALUE__VALUE_INT_VALUE:
		json_object_set_new(o, "intValue", i64_str(v->int_value));
		break;
	case OTLP__ANY_VALUE__VALUE_DOUBLE_VALUE:
		json_object_set_new(o, "doubleValue", double_json(v->double_value));
		break;
	case OTLP__ANY_VALUE__VALUE_ARRAY_VALUE: {
		json_t *a = json_array();
		for (size_t i = 0; v->array_value && i < v->array_value->n_values; i++)
			json_array_append_new(a, any_json(v->array_value->values[i], depth + 1));
		json_object_set_new(o, "arrayValue", json_pack("{s:o}", "values", a));
		break;
	}
	case OTLP__ANY_VALUE__VALUE_KVLIST_VALUE:
		json_object_set_new(o, "kvlistValue",
				    json_pack("{s:o}", "values",
					      kvs_json(v->kvlist_value ? v->kvlist_value->n_values : 0,
						       v->kvlist_value ? v->kvlist_value->values : NULL,
						       depth + 1)));
		break;
	case OTLP__ANY_VALUE__VALUE_BYTES_VALUE: {
		size_t n = sodium_base64_ENCODED_LEN(v->bytes_value.len, sodium_base64_VARIANT_ORIGINAL);
		char *s = malloc(n);
		if (s) {
			sodium_bin2base64(s, n, v->bytes_value.data, v->bytes_value.len,
					  sodium_base64_VARIANT_ORIGINAL);
			json_object_set_new(o, "bytesValue", json_string(s));
		}
		free(s);
		break;
	}
	default:
		break;
	}
	return o;
}

static json_t *kvs_json(size_t n, Otlp__KeyValue **kv, int depth)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_pack("{s:s, s:o}", "key", kv[i]->key ? kv[i]->key : "",
						   "value", any_json(kv[i]->value, depth)));
	return a;
}

static void set_u32(json_t *o, const char *k, uint32_t v)
{
	if (v)
		json_object_set_new(o, k, json_integer(v));
}

static void set_str(json_t *o, const char *k, const char *v)
{
	if (v && *v)
		json_object_set_new(o, k, json_string(v));
}

static json_t *resource_json(const Otlp__Resource *r)
{
	json_t *o = json_object();
	if (!r)
		return o;
	json_object_set_new(o, "attributes", kvs_json(r->n_attributes, r->attributes, 0));
	set_u32(o, "droppedAttributesCount", r->dropped_attributes_count);
	return o;
}

static json_t *scope_json(const Otlp__InstrumentationScope *s)
{
	json_t *o = json_object();
	if (!s)
		return o;
	set_str(o, "name", s->name);
	set_str(o, "version", s->version);
	if (s->n_attributes)
		json_object_set_new(o, "attributes", kvs_json(s->n_attributes, s->attributes, 0));
	set_u32(o, "droppedAttributesCount", s->dropped_attributes_count);
	return o;
}

static json_t *span_json(const Otlp__Span *s)
{
	json_t *o = json_object();
	json_object_set_new(o, "traceId", hex_of(s->trace_id));
	json_object_set_new(o, "spanId", hex_of(s->span_id));
	set_str(o, "traceState", s->trace_state);
	if (s->parent_span_id.len)
		json_object_set_new(o, "parentSpanId", hex_of(s->parent_span_id));
	set_u32(o, "flags", s->flags);
	json_object_set_new(o, "name", json_string(s->name ? s->name : ""));
	json_object_set_new(o, "kind", json_integer(s->kind));
	json_object_set_new(o, "startTimeUnixNano", u64_str(s->start_time_unix_nano));
	json_object_set_new(o, "endTimeUnixNano", u64_str(s->end_time_unix_nano));
	json_object_set_new(o, "attributes", kvs_json(s->n_attributes, s->attributes, 0));
	set_u32(o, "droppedAttributesCount", s->dropped_attributes_count);
	json_t *events = json_array();
	for (size_t i = 0; i < s->n_events; i++) {
		const Otlp__Span__Event *e = s->events[i];
		json_t *ej = json_pack("{s:o, s:s, s:o}", "timeUnixNano", u64_str(e->time_unix_nano),
				       "name", e->name ? e->name : "", "attributes",
				       kvs_json(e->n_attributes, e->attributes, 0));
		set_u32(ej, "droppedAttributesCount", e->dropped_attributes_count);
		json_array_append_new(events, ej);
	}
	json_object_set_new(o, "events", events);
	set_u32(o, "droppedEventsCount", s->dropped_events_count);
	json_t *links = json_array();
	for (size_t i = 0; i < s->n_links; i++) {
		const Otlp__Span__Link *l = s->links[i];
		json_t *lj = json_pack("{s:o, s:o, s:o}", "traceId", hex_of(l->trace_id), "spanId",
				       hex_of(l->span_id), "attributes",
				       kvs_json(l->n_attributes, l->attributes, 0));
		set_str(lj, "traceState", l->trace_state);
		set_u32(lj, "droppedAttributesCount", l->dropped_attributes_count);
		set_u32(lj, "flags", l->flags);
		json_array_append_new(links, lj);
	}
	json_object_set_new(o, "links", links);
	set_u32(o, "droppedLinksCount", s->dropped_links_count);
	json_t *st = json_object();
	if (s->status) {
		if (s->status->code)
			json_object_set_new(st, "code", json_integer(s->status->code));
		set_str(st, "message", s->status->message);
	}
	json_object_set_new(o, "status", st);
	return o;
}

static json_t *log_json(const Otlp__LogRecord *r)
{
	json_t *o = json_object();
	json_object_set_new(o, "timeUnixNano", u64_str(r->time_unix_nano));
	json_object_set_new(o, "observedTimeUnixNano", u64_str(r->observed_time_unix_nano));
	if (r->severity_number)
		json_object_set_new(o, "severityNumber", json_integer(r->severity_number));
	set_str(o, "severityText", r->severity_text);
	if (r->body)
		json_object_set_new(o, "body", any_json(r->body, 0));
	json_object_set_new(o, "attributes", kvs_json(r->n_attributes, r->attributes, 0));
	set_u32(o, "droppedAttributesCount", r->dropped_attributes_count);
	set_u32(o, "flags", r->flags);
	if (r->trace_id.len)
		json_object_set_new(o, "traceId", hex_of(r->trace_id));
	if (r->span_id.len)
		json_object_set_new(o, "spanId", hex_of(r->span_id));
	set_str(o, "eventName", r->event_name);
	return o;
}

static json_t *traces_json(const Otlp__ExportTraceServiceRequest *m)
{
	json_t *rss = json_array();
	for (size_t i = 0; i < m->n_resource_spans; i++) {
		const Otlp__ResourceSpans *rs = m->resource_spans[i];
		json_t *sss = json_array();
		for (size_t j = 0; j < rs->n_scope_spans; j++) {
			const Otlp__ScopeSpans *ss = rs->scope_spans[j];
			json_t *spans = json_array();
			for (size_t k = 0; k < ss->n_spans; k++)
				json_array_append_new(spans, span_json(ss->spans[k]));
			json_t *ssj = json_pack("{s:o, s:o}", "scope", scope_json(ss->scope), "spans", spans);
			set_str(ssj, "schemaUrl", ss->schema_url);
			json_array_append_new(sss, ssj);
		}
		json_t *rsj = json_pack("{s:o, s:o}", "resource", resource_json(rs->resource),
					"scopeSpans", sss);
		set_str(rsj, "schemaUrl", rs->schema_url);
		json_array_append_new(rss, rsj);
	}
	return json_pack("{s:o}", "resourceSpans", rss);
}

static json_t *logs_json(const Otlp__ExportLogsServiceRequest *m)
{
	json_t *rls = json_array();
	for (size_t i = 0; i < m->n_resource_logs; i++) {
		const Otlp__ResourceLogs *rl = m->resource_logs[i];
		json_t *sls = json_array();
		for (size_t j = 0; j < rl->n_scope_logs; j++) {
			const Otlp__ScopeLogs *sl = rl->scope_logs[j];
			json_t *recs = json_array();
			for (size_t k = 0; k < sl->n_log_records; k++)
				json_array_append_new(recs, log_json(sl->log_records[k]));
			json_t *slj = json_pack("{s:o, s:o}", "scope", scope_json(sl->scope),
						"logRecords", recs);
			set_str(slj, "schemaUrl", sl->schema_url);
			json_array_append_new(sls, slj);
		}
		json_t *rlj = json_pack("{s:o, s:o}", "resource", resource_json(rl->resource),
					"scopeLogs", sls);
		set_str(rlj, "schemaUrl", rl->schema_url);
		json_array_append_new(rls, rlj);
	}
	return json_pack("{s:o}", "resourceLogs", rls);
}

/* ---- metrics: the OTLP/JSON tree otlp_metrics.c translates (exemplars
 * are left out: the metrics kernel keeps none) ---- */

static void point_common(json_t *o, size_t n_attrs, Otlp__KeyValue **attrs, uint64_t start,
			 uint64_t t, uint32_t flags)
{
	json_object_set_new(o, "attributes", kvs_json(n_attrs, attrs, 0));
	json_object_set_new(o, "startTimeUnixNano", u64_str(start));
	json_object_set_new(o, "timeUnixNano", u64_str(t));
	set_u32(o, "flags", flags);
}

static json_t *number_points(size_t n, Otlp__NumberDataPoint **p)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++) {
		json_t *o = json_object();
		point_common(o, p[i]->n_attributes, p[i]->attributes, p[i]->start_time_unix_nano,
			     p[i]->time_unix_nano, p[i]->flags);
		if (p[i]->value_case == OTLP__NUMBER_DATA_POINT__VALUE_AS_INT)
			json_object_set_new(o, "asInt", i64_str(p[i]->as_int));
		else if (p[i]->value_case == OTLP__NUMBER_DATA_POINT__VALUE_AS_DOUBLE)
			json_object_set_new(o, "asDouble", double_json(p[i]->as_double));
		json_array_append_new(a, o);
	}
	return a;
}

static json_t *histogram_points(size_t n, Otlp__HistogramDataPoint **p)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++) {
		json_t *o = json_object(), *counts = json_array(), *bounds = json_array();
		point_common(o, p[i]->n_attributes, p[i]->attributes, p[i]->start_time_unix_nano,
			     p[i]->time_unix_nano, p[i]->flags);
		json_object_set_new(o, "count", u64_str(p[i]->count));
		if (p[i]->has_sum_case == OTLP__HISTOGRAM_DATA_POINT__HAS_SUM_SUM)
			json_object_set_new(o, "sum", double_json(p[i]->sum));
		for (size_t j = 0; j < p[i]->n_bucket_counts; j++)
			json_array_append_new(counts, u64_str(p[i]->bucket_counts[j]));
		for (size_t j = 0; j < p[i]->n_explicit_bounds; j++)
			json_array_append_new(bounds, double_json(p[i]->explicit_bounds[j]));
		json_object_set_new(o, "bucketCounts", counts);
		json_object_set_new(o, "explicitBounds", bounds);
		json_array_append_new(a, o);
	}
	return a;
}

static json_t *summary_points(size_t n, Otlp__SummaryDataPoint **p)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++) {
		json_t *o = json_object(), *qs = json_array();
		point_common(o, p[i]->n_attributes, p[i]->attributes, p[i]->start_time_unix_nano,
			     p[i]->time_unix_nano, p[i]->flags);
		json_object_set_new(o, "count", u64_str(p[i]->count));
		json_object_set_new(o, "sum", double_json(p[i]->sum));
		for (size_t j = 0; j < p[i]->n_quantile_values; j++)
			json_array_append_new(
				qs, json_pack("{s:o, s:o}", "quantile",
					      double_json(p[i]->quantile_values[j]->quantile), "value",
					      double_json(p[i]->quantile_values[j]->value)));
		json_object_set_new(o, "quantileValues", qs);
		json_array_append_new(a, o);
	}
	return a;
}

static json_t *metric_json(const Otlp__Metric *m)
{
	json_t *o = json_object(), *d = NULL;
	json_object_set_new(o, "name", json_string(m->name ? m->name : ""));
	set_str(o, "description", m->description);
	set_str(o, "unit", m->unit);
	switch (m->data_case) {
	case OTLP__METRIC__DATA_GAUGE:
		d = json_pack("{s:o}", "dataPoints",
			      number_points(m->gauge->n_data_points, m->gauge->data_points));
		json_object_set_new(o, "gauge", d);
		break;
	case OTLP__METRIC__DATA_SUM:
		d = json_pack("{s:o, s:i, s:b}", "dataPoints",
			      number_points(m->sum->n_data_points, m->sum->data_points),
			      "aggregationTemporality", (int)m->sum->aggregation_temporality,
			      "isMonotonic", (int)m->sum->is_monotonic);
		json_object_set_new(o, "sum", d);
		break;
	case OTLP__METRIC__DATA_HISTOGRAM:
		d = json_pack("{s:o, s:i}", "dataPoints",
			      histogram_points(m->histogram->n_data_points, m->histogram->data_points),
			      "aggregationTemporality", (int)m->histogram->aggregation_temporality);
		json_object_set_new(o, "histogram", d);
		break;
	case OTLP__METRIC__DATA_EXPONENTIAL_HISTOGRAM: {
		/* Not translated (see otlp_metrics.c): only counted, to be
		 * rejected point by point. */
		json_t *pts = json_array();
		for (size_t i = 0; i < m->exponential_histogram->n_data_points; i++)
			json_array_append_new(pts, json_object());
		d = json_pack("{s:o, s:i}", "dataPoints", pts, "aggregationTemporality",
			      (int)m->exponential_histogram->aggregation_temporality);
		json_object_set_new(o, "exponentialHistogram", d);
		break;
	}
	case OTLP__METRIC__DATA_SUMMARY:
		d = json_pack("{s:o}", "dataPoints",
			      summary_points(m->summary->n_data_points, m->summary->data_points));
		json_object_set_new(o, "summary", d);
		break;
	default:
		break;
	}
	return o;
}

static json_t *metrics_json(const Otlp__ExportMetricsServiceRequest *m)
{
	json_t *rms = json_array();
	for (size_t i = 0; i < m->n_resource_metrics; i++) {
		const Otlp__ResourceMetrics *rm = m->resource_metrics[i];
		json_t *sms = json_array();
		for (size_t j = 0; j < rm->n_scope_metrics; j++) {
			const Otlp__ScopeMetrics *sm = rm->scope_metrics[j];
			json_t *ms = json_array();
			for (size_t k = 0; k < sm->n_metrics; k++)
				json_array_append_new(ms, metric_json(sm->metrics[k]));
			json_t *smj = json_pack("{s:o, s:o}", "scope", scope_json(sm->scope), "metrics", ms);
			set_str(smj, "schemaUrl", sm->schema_url);
			json_array_append_new(sms, smj);
		}
		json_t *rmj = json_pack("{s:o, s:o}", "resource", resource_json(rm->resource),
					"scopeMetrics", sms);
		set_str(rmj, "schemaUrl", rm->schema_url);
		json_array_append_new(rms, rmj);
	}
	return json_pack("{s:o}", "resourceMetrics", rms);
}

static const char *const request_names[] = {
	[OTLP_TRACES] = "ExportTraceServiceRequest",
	[OTLP_LOGS] = "ExportLogsServiceRequest",
	[OTLP_METRICS] = "ExportMetricsServiceRequest",
};

int otlp_pb_to_json(otlp_signal sig, const uint8_t *buf, size_t len, json_t **out,
		    sdk_err *err)
{
	*out = NULL;
	if (sig == OTLP_TRACES) {
		Otlp__ExportTraceServiceRequest *m =
			otlp__export_trace_service_request__unpack(NULL, len, buf);
		if (m) {
			*out = traces_json(m);
			otlp__export_trace_service_request__free_unpacked(m, NULL);
		}
	} else if (sig == OTLP_LOGS) {
		Otlp__ExportLogsServiceRequest *m =
			otlp__export_logs_service_request__unpack(NULL, len, buf);
		if (m) {
			*out = logs_json(m);
			otlp__export_logs_service_request__free_unpacked(m, NULL);
		}
	} else {
		Otlp__ExportMetricsServiceRequest *m =
			otlp__export_metrics_service_request__unpack(NULL, len, buf);
		if (m) {
			*out = metrics_json(m);
			otlp__export_metrics_service_request__free_unpacked(m, NULL);
		}
	}
	if (!*out)
		return sdk_fail(err, SDK_EINVAL, "the body does not decode as a protobuf %s",
				request_names[sig]);
	return 0;
}

static int pack_out(size_t need, uint8_t **out, size_t *len)
{
	*out = malloc(need ? need : 1);
	*len = need;
	return *out ? 0 : -1;
}

int otlp_encode_success(otlp_signal sig, bool pb, size_t rejected, const char *why, uint8_t **out,
			size_t *len)
{
	if (!pb) {
		json_t *o = json_object();
		static const char *const rejected_names[] = { [OTLP_TRACES] = "rejectedSpans",
							      [OTLP_LOGS] = "rejectedLogRecords",
							      [OTLP_METRICS] = "rejectedDataPoints" };
		/* A message with nothing rejected is a warning (the OTLP
		 * specification allows it); only metrics send one. */
		if (rejected || (why && *why))
			json_object_set_new(o, "partialSuccess",
					    json_pack("{s:o, s:s}", rejected_names[sig],
						      i64_str((int64_t)rejected), "errorMessage",
						      why ? why : ""));
		char *s = json_dumps(o, JSON_COMPACT);
		json_decref(o);
		if (!s)
			return -1;
		*out = (uint8_t *)s;
		*len = strlen(s);
		return 0;
	}
	if (sig == OTLP_TRACES) {
		Otlp__ExportTraceServiceResponse r = OTLP__EXPORT_TRACE_SERVICE_RESPONSE__INIT;
		Otlp__ExportTracePartialSuccess ps = OTLP__EXPORT_TRACE_PARTIAL_SUCCESS__INIT;
		if (rejected) {
			ps.rejected_spans = (int64_t)rejected;
			ps.error_message = (char *)(why ? why : "");
			r.partial_success = &ps;
		}
		if (pack_out(otlp__export_trace_service_response__get_packed_size(&r), out, len) < 0)
			return -1;
		otlp__export_trace_service_response__pack(&r, *out);
		return 0;
	}
	if (sig == OTLP_METRICS) {
		Otlp__ExportMetricsServiceResponse r = OTLP__EXPORT_METRICS_SERVICE_RESPONSE__INIT;
		Otlp__ExportMetricsPartialSuccess ps = OTLP__EXPORT_METRICS_PARTIAL_SUCCESS__INIT;
		if (rejected || (why && *why)) {
			ps.rejected_data_points = (int64_t)rejected;
			ps.error_message = (char *)(why ? why : "");
			r.partial_success = &ps;
		}
		if (pack_out(otlp__export_metrics_service_response__get_packed_size(&r), out, len) < 0)
			return -1;
		otlp__export_metrics_service_response__pack(&r, *out);
		return 0;
	}
	Otlp__ExportLogsServiceResponse r = OTLP__EXPORT_LOGS_SERVICE_RESPONSE__INIT;
	Otlp__ExportLogsPartialSuccess ps = OTLP__EXPORT_LOGS_PARTIAL_SUCCESS__INIT;
	if (rejected) {
		ps.rejected_log_records = (int64_t)rejected;
		ps.error_message = (char *)(why ? why : "");
		r.partial_success = &ps;
	}
	if (pack_out(otlp__export_logs_service_response__get_packed_size(&r), out, len) < 0)
		return -1;
	otlp__export_logs_service_response__pack(&r, *out);
	return 0;
}

int otlp_encode_status(bool pb, int code, const char *message, uint8_t **out, size_t *len)
{
	if (!pb) {
		json_t *o = json_pack("{s:i, s:s}", "code", code, "message", message ? message : "");
		char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
		json_decref(o);
		if (!s)
			return -1;
		*out = (uint8_t *)s;
		*len = strlen(s);
		return 0;
	}
	Otlp__RpcStatus st = OTLP__RPC_STATUS__INIT;
	st.code = code;
	st.message = (char *)(message ? message : "");
	if (pack_out(otlp__rpc_status__get_packed_size(&st), out, len) < 0)
		return -1;
	otlp__rpc_status__pack(&st, *out);
	return 0;
}
