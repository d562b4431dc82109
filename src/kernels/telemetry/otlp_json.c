/* OTLP/JSON checked and normalized (the OTLP specification, "JSON Protobuf
 * Encoding"): lowerCamelCase field names, trace and span ids as hex (not
 * base64), enums as integers, 64-bit integers as strings or numbers.
 * Unknown fields are ignored, as the specification asks of receivers. What
 * comes out is canonical: ids in lowercase hex, 64-bit integers as
 * strings, empty optional fields left out. */
#include "kernels/telemetry/otlp.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ctx {
	sdk_err *err; /* never NULL here: the caller's, or one of its own */
	char path[160]; /* where in the request, for the message */
} ctx;

static int bad(ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(ctx *c, const char *fmt, ...)
{
	char msg[OTLP_WHY_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return sdk_fail(c->err, SDK_EINVAL, "%s%s%s", c->path, *c->path ? ": " : "", msg);
}

static int get_i64(json_t *v, int64_t *out)
{
	if (json_is_integer(v)) {
		*out = json_integer_value(v);
		return 0;
	}
	if (!json_is_string(v))
		return -1;
	const char *s = json_string_value(v);
	if (!*s || !(isdigit((unsigned char)*s) || (*s == '-' && isdigit((unsigned char)s[1]))))
		return -1;
	char *end;
	errno = 0;
	long long l = strtoll(s, &end, 10);
	if (*end || errno)
		return -1;
	*out = l;
	return 0;
}

/* A small unsigned field (a count, flags, an enum): a number, or a string
 * of digits. */
static int get_u32(ctx *c, json_t *o, const char *name, uint32_t max, uint32_t *out)
{
	uint64_t v;
	if (otlp_json_u64(json_object_get(o, name), &v) < 0 || v > max)
		return bad(c, "%s: expected an integer from 0 to %" PRIu32, name, max);
	*out = (uint32_t)v;
	return 0;
}

static int copy_u32(ctx *c, json_t *in, json_t *out, const char *name, uint32_t max)
{
	uint32_t v = 0;
	if (get_u32(c, in, name, max, &v) < 0)
		return -1;
	if (v)
		json_object_set_new(out, name, json_integer(v));
	return 0;
}

static int copy_str(ctx *c, json_t *in, json_t *out, const char *name, const char **val)
{
	json_t *v = json_object_get(in, name);
	if (val)
		*val = "";
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return bad(c, "%s: expected a string", name);
	if (val)
		*val = json_string_value(v);
	if (json_string_length(v))
		json_object_set(out, name, v);
	return 0;
}

/* An id of `bytes` bytes in hex. 1 when absent or empty and `optional`;
 * out gets it in lowercase. */
static int get_id(ctx *c, json_t *o, const char *name, size_t bytes, bool optional, char *out)
{
	json_t *v = json_object_get(o, name);
	const char *s = json_is_string(v) ? json_string_value(v) : NULL;
	if ((!v || json_is_null(v) || (s && !*s)) && optional)
		return 1;
	if (!s)
		return bad(c, "%s: expected %zu bytes as %zu hex digits", name, bytes, 2 * bytes);
	size_t n = strlen(s);
	if (n != 2 * bytes)
		return bad(c, "%s: a %s is %zu bytes (%zu hex digits), this one has %zu digits", name,
			   bytes == 16 ? "trace id" : "span id", bytes, 2 * bytes, n);
	for (size_t i = 0; i < n; i++) {
		if (!isxdigit((unsigned char)s[i]))
			return bad(c, "%s: not hex (ids are hex in OTLP/JSON, not base64)", name);
		out[i] = (char)tolower((unsigned char)s[i]);
	}
	out[n] = '\0';
	return 0;
}

static bool all_zero(const char *hex)
{
	return strspn(hex, "0") == strlen(hex);
}

static int norm_kvs(ctx *c, json_t *in, int depth, json_t **out);

static int norm_any(ctx *c, json_t *in, int depth, json_t **out)
{
	*out = NULL;
	if (depth > OTLP_ANY_DEPTH_MAX)
		return bad(c, "values nested deeper than %d", OTLP_ANY_DEPTH_MAX);
	if (!in || json_is_null(in)) {
		*out = json_object();
		return 0;
	}
	if (!json_is_object(in))
		return bad(c, "expected an AnyValue object");
	json_t *o = json_object(), *v;
	if ((v = json_object_get(in, "stringValue"))) {
		if (!json_is_string(v))
			goto wrong;
		json_object_set(o, "stringValue", v);
	} else if ((v = json_object_get(in, "boolValue"))) {
		if (!json_is_boolean(v))
			goto wrong;
		json_object_set(o, "boolValue", v);
	} else if ((v = json_object_get(in, "intValue"))) {
		int64_t i;
		if (get_i64(v, &i) < 0)
			goto wrong;
		char s[24];
		snprintf(s, sizeof s, "%" PRId64, i);
		json_object_set_new(o, "intValue", json_string(s));
	} else if ((v = json_object_get(in, "doubleValue"))) {
		const char *s = json_string_value(v);
		if (!json_is_number(v) &&
		    !(s && (!strcmp(s, "NaN") || !strcmp(s, "Infinity") || !strcmp(s, "-Infinity"))))
			goto wrong;
		json_object_set_new(o, "doubleValue",
				    json_is_number(v) ? json_real(json_number_value(v)) : json_string(s));
	} else if ((v = json_object_get(in, "bytesValue"))) {
		const char *s = json_string_value(v);
		size_t n = s ? strlen(s) : 0, got;
		unsigned char *bin = malloc(n + 1);
		int rc = !s || !bin ? -1
				    : sodium_base642bin(bin, n + 1, s, n, NULL, &got, NULL,
							sodium_base64_VARIANT_ORIGINAL);
		free(bin);
		if (rc != 0)
			goto wrong;
		json_object_set(o, "bytesValue", v);
	} else if ((v = json_object_get(in, "arrayValue"))) {
		json_t *vals = json_object_get(v, "values");
		if (!json_is_object(v) || (vals && !json_is_array(vals)))
			goto wrong;
		json_t *a = json_array(), *e;
		size_t i;
		json_array_foreach(vals, i, e) {
			json_t *n;
			if (norm_any(c, e, depth + 1, &n) < 0) {
				json_decref(a);
				json_decref(o);
				return -1;
			}
			json_array_append_new(a, n);
		}
		json_object_set_new(o, "arrayValue", json_pack("{s:o}", "values", a));
	} else if ((v = json_object_get(in, "kvlistValue"))) {
		json_t *kvs;
		if (!json_is_object(v)) 
			goto wrong;
		if (norm_kvs(c, json_object_get(v, "values"), depth + 1, &kvs) < 0) {
			json_decref(o);
			return -1;
		}
		json_object_set_new(o, "kvlistValue", json_pack("{s:o}", "values", kvs));
	}
	*out = o;
	return 0;
wrong:
	json_decref(o);
	return bad(c, "an AnyValue of the wrong type");
}

static int norm_kvs(ctx *c, json_t *in, int depth, json_t **out)
{
	*out = NULL;
	if (in && !json_is_null(in) && !json_is_array(in))
		return bad(c, "expected an array of KeyValue");
	json_t *a = json_array(), *kv;
	size_t i;
	json_array_foreach(in, i, kv) {
		json_t *key = json_object_get(kv, "key"), *val;
		if (!json_is_string(key) || norm_any(c, json_object_get(kv, "value"), depth, &val) < 0) {
			json_decref(a);
			return json_is_string(key) ? -1 : bad(c, "a KeyValue without a string key");
		}
		json_array_append_new(a, json_pack("{s:O, s:o}", "key", key, "value", val));
	}
	*out = a;
	return 0;
}

/* The text an attribute is searched by (key=value): strings as they are,
 * numbers and booleans as written; NULL for arrays, kvlists and bytes,
 * and for values over OTLP_ATTR_INDEXED_MAX bytes. */
static json_t *attr_text(json_t *any)
{
	json_t *v;
	if ((v = json_object_get(any, "stringValue")) || (v = json_object_get(any, "intValue")))
		return json_incref(v);
	if ((v = json_object_get(any, "boolValue")))
		return json_string(json_is_true(v) ? "true" : "false");
	if ((v = json_object_get(any, "doubleValue"))) {
		if (json_is_string(v))
			return json_incref(v);
		char s[40];
		snprintf(s, sizeof s, "%.17g", json_real_value(v));
		return json_string(s);
	}
	return NULL;
}

static void add_attr_texts(json_t *attrs, json_t *kvs)
{
	size_t i;
	json_t *kv;
	json_array_foreach(kvs, i, kv) {
		json_t *t = attr_text(json_object_get(kv, "value"));
		/* A long value is kept with its span but not indexed. */
		if (t && json_string_length(t) > OTLP_ATTR_INDEXED_MAX) {
			json_decref(t);
			t = NULL;
		}
		if (t)
			json_array_append_new(attrs, json_pack("[O, o]", json_object_get(kv, "key"), t));
	}
}

static int norm_resource(ctx *c, json_t *in, json_t **out, const char **service)
{
	*out = NULL;
	*service = "";
	if (in && !json_is_null(in) && !json_is_object(in))
		return bad(c, "resource: expected an object");
	json_t *o = json_object(), *kvs;
	if (norm_kvs(c, json_object_get(in, "attributes"), 0, &kvs) < 0 ||
	    copy_u32(c, in, o, "droppedAttributesCount", UINT32_MAX) < 0) {
		json_decref(kvs);
		json_decref(o);
		return -1;
	}
	json_object_set_new(o, "attributes", kvs);
	size_t i;
	json_t *kv;
	json_array_foreach(kvs, i, kv) {
		const char *s = json_string_value(
			json_object_get(json_object_get(kv, "value"), "stringValue"));
		if (s && !strcmp(json_string_value(json_object_get(kv, "key")), "service.name"))
			*service = s;
	}
	*out = o;
	return 0;
}

static int norm_scope(ctx *c, json_t *in, json_t **out)
{
	*out = NULL;
	if (in && !json_is_null(in) && !json_is_object(in))
		return bad(c, "scope: expected an object");
	json_t *o = json_object(), *kvs = NULL;
	if (copy_str(c, in, o, "name", NULL) < 0 || copy_str(c, in, o, "version", NULL) < 0 ||
	    norm_kvs(c, json_object_get(in, "attributes"), 0, &kvs) < 0 ||
	    copy_u32(c, in, o, "droppedAttributesCount", UINT32_MAX) < 0) {
		json_decref(kvs);
		json_decref(o);
		return -1;
	}
	if (json_array_size(kvs))
		json_object_set(o, "attributes", kvs);
	json_decref(kvs);
	*out = o;
	return 0;
}

static int norm_time(ctx *c, json_t *in, json_t *out, const char *name, uint64_t *t)
{
	if (otlp_json_u64(json_object_get(in, name), t) < 0 || *t > INT64_MAX)
		return bad(c, "%s: expected nanoseconds since the epoch, a number or a string of digits",
			   name);
	char s[24];
	snprintf(s, sizeof s, "%" PRIu64, *t);
	json_object_set_new(out, name, json_string(s));
	return 0;
}

/* Normalizes one list of events or links into out[name]. */
static int norm_events(ctx *c, json_t *in, json_t *out)
{
	json_t *evs = json_object_get(in, "events"), *e, *a = json_array();
	json_object_set_new(out, "events", a);
	if (evs && !json_is_null(evs) && !json_is_array(evs))
		return bad(c, "events: expected an array");
	size_t i;
	json_array_foreach(evs, i, e) {
		json_t *o = json_object(), *kvs;
		uint64_t t;
		json_array_append_new(a, o);
		if (!json_is_object(e) || norm_time(c, e, o, "timeUnixNano", &t) < 0 ||
		    copy_str(c, e, o, "name", NULL) < 0 ||
		    norm_kvs(c, json_object_get(e, "attributes"), 0, &kvs) < 0)
			return *c->err->msg ? -1 : bad(c, "events[%zu]: expected an object", i);
		json_object_set_new(o, "attributes", kvs);
		if (copy_u32(c, e, o, "droppedAttributesCount", UINT32_MAX) < 0)
			return -1;
	}
	return copy_u32(c, in, out, "droppedEventsCount", UINT32_MAX);
}

static int norm_links(ctx *c, json_t *in, json_t *out)
{
	json_t *ls = json_object_get(in, "links"), *l, *a = json_array();
	json_object_set_new(out, "links", a);
	if (ls && !json_is_null(ls) && !json_is_array(ls))
		return bad(c, "links: expected an array");
	size_t i;
	json_array_foreach(ls, i, l) {
		json_t *o = json_object(), *kvs;
		char tid[33], sid[17];
		json_array_append_new(a, o);
		if (!json_is_object(l))
			return bad(c, "links[%zu]: expected an object", i);
		if (get_id(c, l, "traceId", 16, false, tid) < 0 || get_id(c, l, "spanId", 8, false, sid) < 0)
			return -1;
		json_object_set_new(o, "traceId", json_string(tid));
		json_object_set_new(o, "spanId", json_string(sid));
		if (copy_str(c, l, o, "traceState", NULL) < 0 ||
		    norm_kvs(c, json_object_get(l, "attributes"), 0, &kvs) < 0)
			return -1;
		json_object_set_new(o, "attributes", kvs);
		if (copy_u32(c, l, o, "droppedAttributesCount", UINT32_MAX) < 0 ||
		    copy_u32(c, l, o, "flags", UINT32_MAX) < 0)
			return -1;
	}
	return copy_u32(c, in, out, "droppedLinksCount", UINT32_MAX);
}

/* One span: 0 and *row, 1 when it is rejected (the reason in `reject`:
 * the rest of the request is taken), SDK_EINVAL when the request is bad. */
static int norm_span(ctx *c, json_t *in, json_t *resource, json_t *scope, const char *service,
		     json_t **row, sdk_err *reject)
{
	*row = NULL;
	if (!json_is_object(in))
		return bad(c, "expected a Span object");
	char tid[33], sid[17], pid[17] = "";
	if (get_id(c, in, "traceId", 16, false, tid) < 0 || get_id(c, in, "spanId", 8, false, sid) < 0)
		return -1;
	int prc = get_id(c, in, "parentSpanId", 8, true, pid);
	if (prc < 0)
		return -1;
	if (prc == 1)
		pid[0] = '\0';
	json_t *o = json_pack("{s:s, s:s}", "traceId", tid, "spanId", sid);
	if (*pid)
		json_object_set_new(o, "parentSpanId", json_string(pid));
	const char *name;
	uint32_t kind = 0, flags = 0, code = 0;
	uint64_t start, end;
	json_t *kvs = NULL, *st = json_object_get(in, "status");
	if (copy_str(c, in, o, "traceState", NULL) < 0 || get_u32(c, in, "flags", UINT32_MAX, &flags) < 0 ||
	    copy_str(c, in, o, "name", &name) < 0 || get_u32(c, in, "kind", 5, &kind) < 0 ||
	    norm_time(c, in, o, "startTimeUnixNano", &start) < 0 ||
	    norm_time(c, in, o, "endTimeUnixNano", &end) < 0 ||
	    norm_kvs(c, json_object_get(in, "attributes"), 0, &kvs) < 0)
		goto fail;
	if (flags)
		json_object_set_new(o, "flags", json_integer(flags));
	json_object_set_new(o, "name", json_string(name));
	json_object_set_new(o, "kind", json_integer(kind));
	json_object_set_new(o, "attributes", kvs);
	json_t *sto = json_object();
	json_object_set_new(o, "status", sto);
	if (copy_u32(c, in, o, "droppedAttributesCount", UINT32_MAX) < 0 || norm_events(c, in, o) < 0 ||
	    norm_links(c, in, o) < 0)
		goto fail;
	if (st && !json_is_null(st)) {
		if (!json_is_object(st) || get_u32(c, st, "code", 2, &code) < 0 ||
		    copy_str(c, st, sto, "message", NULL) < 0) {
			if (!json_is_object(st))
				bad(c, "status: expected an object");
			goto fail;
		}
		if (code)
			json_object_set_new(sto, "code", json_integer(code));
	}
	if (all_zero(tid) || all_zero(sid) || end < start) {
		sdk_fail(reject, SDK_EINVAL, "%s: %s", c->path,
			 end < start ? "the span ends before it starts"
				     : "an all-zero trace or span id is invalid");
		json_decref(o);
		return 1;
	}
	json_object_set(o, "resource", resource);
	json_object_set(o, "scope", scope);
	json_t *attrs = json_array();
	add_attr_texts(attrs, json_object_get(o, "attributes"));
	add_attr_texts(attrs, json_object_get(resource, "attributes"));
	*row = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:I, s:I, s:i, s:o, s:o}", "trace_id", tid,
			 "span_id", sid, "parent_id", pid, "service", service, "name", name, "kind",
			 (int)kind, "start_ns", (json_int_t)start, "end_ns", (json_int_t)end, "status",
			 (int)code, "attrs", attrs, "body", o);
	return 0;
fail:
	json_decref(o);
	return -1;
}

static int norm_log(ctx *c, json_t *in, json_t *resource, json_t *scope, const char *service,
		    json_t **row, sdk_err *reject)
{
	*row = NULL;
	if (!json_is_object(in))
		return bad(c, "expected a LogRecord object");
	char tid[33] = "", sid[17] = "";
	int trc = get_id(c, in, "traceId", 16, true, tid), src;
	if (trc < 0 || (src = get_id(c, in, "spanId", 8, true, sid)) < 0)
		return -1;
	if (trc == 1)
		tid[0] = '\0';
	if (src == 1)
		sid[0] = '\0';
	json_t *o = json_object(), *kvs = NULL, *body = NULL;
	uint64_t t, observed;
	uint32_t sev = 0;
	if (norm_time(c, in, o, "timeUnixNano", &t) < 0 ||
	    norm_time(c, in, o, "observedTimeUnixNano", &observed) < 0 ||
	    get_u32(c, in, "severityNumber", 24, &sev) < 0 ||
	    copy_str(c, in, o, "severityText", NULL) < 0 ||
	    norm_kvs(c, json_object_get(in, "attributes"), 0, &kvs) < 0)
		goto fail;
	if (sev)
		json_object_set_new(o, "severityNumber", json_integer(sev));
	json_object_set_new(o, "attributes", kvs);
	if (json_object_get(in, "body")) {
		if (norm_any(c, json_object_get(in, "body"), 0, &body) < 0)
			goto fail;
		json_object_set_new(o, "body", body);
	}
	if (copy_u32(c, in, o, "droppedAttributesCount", UINT32_MAX) < 0 ||
	    copy_u32(c, in, o, "flags", UINT32_MAX) < 0 || copy_str(c, in, o, "eventName", NULL) < 0)
		goto fail;
	if (*tid)
		json_object_set_new(o, "traceId", json_string(tid));
	if (*sid)
		json_object_set_new(o, "spanId", json_string(sid));
	if ((*tid && all_zero(tid)) || (*sid && all_zero(sid)) || (*sid && !*tid)) {
		sdk_fail(reject, SDK_EINVAL, "%s: %s", c->path,
			 *sid && !*tid ? "a span id without a trace id"
				       : "an all-zero trace or span id is invalid");
		json_decref(o);
		return 1;
	}
	json_object_set(o, "resource", resource);
	json_object_set(o, "scope", scope);
	/* A record without a time is placed at its observed time (the
	 * specification's advice to receivers). */
	*row = json_pack("{s:s, s:s, s:s, s:I, s:i, s:o}", "trace_id", tid, "span_id", sid, "service",
			 service, "time_ns", (json_int_t)(t ? t : observed), "severity", (int)sev,
			 "body", o);
	return 0;
fail:
	json_decref(o);
	return -1;
}

int otlp_json_batch(otlp_signal sig, json_t *req, size_t items_max, otlp_batch *batch,
		    sdk_err *err)
{
	sdk_err own;
	ctx c = { .err = err ? err : &own };
	c.err->msg[0] = '\0';
	*batch = (otlp_batch){ .rows = json_array() };
	const char *k_res = sig == OTLP_TRACES ? "resourceSpans" : "resourceLogs";
	const char *k_scope = sig == OTLP_TRACES ? "scopeSpans" : "scopeLogs";
	const char *k_items = sig == OTLP_TRACES ? "spans" : "logRecords";
	json_t *rs_all = json_object_get(req, k_res);
	if (!json_is_object(req) || (rs_all && !json_is_array(rs_all))) {
		bad(&c, "expected an object with an array \"%s\"", k_res);
		goto fail;
	}
	/* Counted before anything is looked at: an oversized batch is
	 * refused whole. */
	size_t total = 0, i, j, k;
	json_t *rs, *ss, *item;
	json_array_foreach(rs_all, i, rs)
		json_array_foreach(json_object_get(rs, k_scope), j, ss)
			total += json_array_size(json_object_get(ss, k_items));
	if (total > items_max) {
		json_decref(batch->rows);
		batch->rows = NULL;
		return sdk_fail(c.err, SDK_ETOOLARGE, "%zu %s in one request; the limit is %zu",
				total, sig == OTLP_TRACES ? "spans" : "log records", items_max);
	}
	json_array_foreach(rs_all, i, rs) {
		snprintf(c.path, sizeof c.path, "%s[%zu]", k_res, i);
		if (!json_is_object(rs)) {
			bad(&c, "expected an object");
			goto fail;
		}
		json_t *resource, *sss = json_object_get(rs, k_scope);
		const char *service;
		if (norm_resource(&c, json_object_get(rs, "resource"), &resource, &service) < 0)
			goto fail;
		if (sss && !json_is_array(sss)) {
			json_decref(resource);
			bad(&c, "%s: expected an array", k_scope);
			goto fail;
		}
		json_array_foreach(sss, j, ss) {
			snprintf(c.path, sizeof c.path, "%s[%zu].%s[%zu]", k_res, i, k_scope, j);
			json_t *scope, *items = json_object_get(ss, k_items);
			if (!json_is_object(ss) || (items && !json_is_array(items))) {
				json_decref(resource);
				bad(&c, "expected an object with an array \"%s\"", k_items);
				goto fail;
			}
			if (norm_scope(&c, json_object_get(ss, "scope"), &scope) < 0) {
				json_decref(resource);
				goto fail;
			}
			json_array_foreach(items, k, item) {
				snprintf(c.path, sizeof c.path, "%s[%zu].%s[%zu].%s[%zu]", k_res, i,
					 k_scope, j, k_items, k);
				json_t *row;
				sdk_err reject;
				int rc = sig == OTLP_TRACES
						 ? norm_span(&c, item, resource, scope, service, &row,
							     &reject)
						 : norm_log(&c, item, resource, scope, service, &row,
							    &reject);
				if (rc < 0) {
					json_decref(scope);
					json_decref(resource);
					goto fail;
				}
				if (rc == 1) {
					if (batch->rejected++ == 0)
						snprintf(batch->why, sizeof batch->why, "%s", reject.msg);
					continue;
				}
				json_array_append_new(batch->rows, row);
			}
			json_decref(scope);
		}
		json_decref(resource);
	}
	return 0;
fail:
	json_decref(batch->rows);
	batch->rows = NULL;
	return SDK_EINVAL;
}
