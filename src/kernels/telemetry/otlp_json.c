/* OTLP/JSON checked and normalized (the OTLP specification, "JSON Protobuf
 * Encoding"): lowerCamelCase field names, trace and span ids as hex (not
 * base64), enums as integers, 64-bit integers as strings or numbers.
 * Unknown fields are ignored, as the specification asks of receivers. What
 * comes out is canonical: ids in lowercase hex, 64-bit integers as
 * strings, empty optional fields left out.
 *
 * The canonical item is written as JSON text as it is checked (sdk/jsonw.h
 * writes what json_dumps(JSON_COMPACT) would), in the key order the stored
 * bodies have always had: the order in which a jansson object used to be
 * filled, which is not the order the fields are checked in (the first
 * error a request has is the one reported, so the checks keep their
 * order). Strings are read from the request's tree, never copied into new
 * jansson values. */
#include "kernels/telemetry/otlp.h"

#include "sdk/jsonw.h"

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
	otlp_batch *b;
	/* Scratch text, kept across items (reset, not freed, per use) */
	sdk_buf part;	/* a KeyValue list written before its place is known */
	sdk_buf tail;	/* a span's events and links, written before its status */
	sdk_buf res;	/* the current resource, as it goes into every body */
	sdk_buf scope;	/* the current scope, likewise */
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

/* A key and its colon, after a comma unless first in its object. */
static void key(sdk_buf *o, const char *k)
{
	if (o->len && o->p[o->len - 1] != '{')
		sdk_buf_put(o, ",", 1);
	sdk_jsonw_utf8(o, k, strlen(k));
	sdk_buf_put(o, ":", 1);
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

/* The field, when not 0, as an integer member of out. */
static int copy_u32(ctx *c, json_t *in, sdk_buf *out, const char *name, uint32_t max)
{
	uint32_t v = 0;
	if (get_u32(c, in, name, max, &v) < 0)
		return -1;
	if (v) {
		key(out, name);
		sdk_jsonw_int(out, v, 0);
	}
	return 0;
}

/* An optional string: *val its text ("" when absent), a member of out
 * when not empty (NULL out: checked only). */
static int copy_str(ctx *c, json_t *in, sdk_buf *out, const char *name, json_t **val)
{
	json_t *v = json_object_get(in, name);
	if (val)
		*val = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return bad(c, "%s: expected a string", name);
	if (val)
		*val = v;
	if (out && json_string_length(v)) {
		key(out, name);
		sdk_jsonw_utf8(out, json_string_value(v), json_string_length(v));
	}
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

static void id_member(sdk_buf *o, const char *name, const char *hex)
{
	key(o, name);
	sdk_buf_put(o, "\"", 1);
	sdk_buf_put(o, hex, strlen(hex));
	sdk_buf_put(o, "\"", 1);
}

static bool all_zero(const char *hex)
{
	return strspn(hex, "0") == strlen(hex);
}

/* ---- the batch's own storage ---- */

void otlp_batch_free(otlp_batch *b)
{
	if (!b)
		return;
	free(b->rows);
	free(b->attrs);
	sdk_buf_free(&b->bodies);
	sdk_buf_free(&b->text);
	b->rows = NULL, b->attrs = NULL;
	b->n_rows = b->cap_rows = b->n_attrs = b->cap_attrs = 0;
}

/* A NUL-ended copy of n bytes in b->text: its offset. */
static size_t text_add(otlp_batch *b, const char *s, size_t n)
{
	size_t at = b->text.len;
	sdk_buf_put(&b->text, s, n);
	sdk_buf_put(&b->text, "", 1);
	return at;
}

/* The scalar an AnyValue holds, as text_any found it: kind 's'
 * (stringValue), 'b', 'i' (its value in i), 'd', or 0 for none. */
typedef struct scalar {
	char kind;
	json_t *v;
	int64_t i;
} scalar;

/* The text an attribute is searched by (key=value), recorded in b->attrs:
 * strings as they are, numbers and booleans as written; none for arrays,
 * kvlists and bytes, and for values over OTLP_ATTR_INDEXED_MAX bytes (a
 * long value is kept with its span but not indexed). */
static void attr_text(otlp_batch *b, json_t *k, const scalar *sc)
{
	char num[40];
	const char *s = NULL;
	size_t n = 0;
	switch (sc->kind) {
	case 's':
		s = json_string_value(sc->v), n = json_string_length(sc->v);
		break;
	case 'b':
		s = json_is_true(sc->v) ? "true" : "false", n = strlen(s);
		break;
	case 'i':
		n = (size_t)snprintf(num, sizeof num, "%" PRId64, sc->i), s = num;
		break;
	case 'd':
		if (json_is_string(sc->v))
			s = json_string_value(sc->v), n = json_string_length(sc->v);
		else
			n = (size_t)snprintf(num, sizeof num, "%.17g", json_number_value(sc->v)),
			s = num;
		break;
	}
	if (!s || n > OTLP_ATTR_INDEXED_MAX)
		return;
	otlp_attr *a = sdk_grow(b->attrs, &b->cap_attrs, b->n_attrs, sizeof *a, 64);
	if (!a) {
		b->text.oom = true;
		return;
	}
	b->attrs = a;
	/* As a bound SQL text: up to a NUL, should a protobuf string hold one. */
	const char *ks = json_string_value(k);
	b->attrs[b->n_attrs++] = (otlp_attr){ .key = text_add(b, ks, strlen(ks)),
					      .value = text_add(b, s, strlen(s)) };
}

/* ---- AnyValue and KeyValue lists ---- */

static int text_kvs(ctx *c, json_t *in, int depth, sdk_buf *o, bool searched);

/* A real as the body has always had it: the number made a jansson real
 * (an integer written 3 is the real 3.0). A failure can only be memory:
 * marked so, and the request is refused as out of memory. */
static void real_member(sdk_buf *o, double d)
{
	json_t *r = json_real(d);
	if (!r || sdk_jsonw_value(o, r) < 0)
		o->oom = true;
	json_decref(r);
}

/* An AnyValue; *sc (when not NULL) the scalar it holds, for attr_text. */
static int text_any(ctx *c, json_t *in, int depth, sdk_buf *o, scalar *sc)
{
	scalar none;
	if (!sc)
		sc = &none;
	sc->kind = 0;
	if (depth > OTLP_ANY_DEPTH_MAX)
		return bad(c, "values nested deeper than %d", OTLP_ANY_DEPTH_MAX);
	if (!in || json_is_null(in)) {
		sdk_jsonw_raw(o, "{}");
		return 0;
	}
	if (!json_is_object(in))
		return bad(c, "expected an AnyValue object");
	json_t *v;
	size_t mark = o->len;
	sdk_jsonw_raw(o, "{");
	if ((v = json_object_get(in, "stringValue"))) {
		if (!json_is_string(v))
			goto wrong;
		*sc = (scalar){ 's', v, 0 };
		sdk_jsonw_raw(o, "\"stringValue\":");
		sdk_jsonw_utf8(o, json_string_value(v), json_string_length(v));
	} else if ((v = json_object_get(in, "boolValue"))) {
		if (!json_is_boolean(v))
			goto wrong;
		*sc = (scalar){ 'b', v, 0 };
		sdk_jsonw_raw(o, json_is_true(v) ? "\"boolValue\":true" : "\"boolValue\":false");
	} else if ((v = json_object_get(in, "intValue"))) {
		int64_t i;
		if (get_i64(v, &i) < 0)
			goto wrong;
		*sc = (scalar){ 'i', v, i };
		sdk_jsonw_raw(o, "\"intValue\":\"");
		sdk_jsonw_int(o, i, 0);
		sdk_jsonw_raw(o, "\"");
	} else if ((v = json_object_get(in, "doubleValue"))) {
		const char *s = json_string_value(v);
		if (!json_is_number(v) &&
		    !(s && (!strcmp(s, "NaN") || !strcmp(s, "Infinity") || !strcmp(s, "-Infinity"))))
			goto wrong;
		*sc = (scalar){ 'd', v, 0 };
		sdk_jsonw_raw(o, "\"doubleValue\":");
		if (json_is_number(v))
			real_member(o, json_number_value(v));
		else
			sdk_jsonw_utf8(o, s, strlen(s));
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
		sdk_jsonw_raw(o, "\"bytesValue\":");
		sdk_jsonw_utf8(o, s, json_string_length(v));
	} else if ((v = json_object_get(in, "arrayValue"))) {
		json_t *vals = json_object_get(v, "values"), *e;
		if (!json_is_object(v) || (vals && !json_is_array(vals)))
			goto wrong;
		sdk_jsonw_raw(o, "\"arrayValue\":{\"values\":[");
		size_t i;
		json_array_foreach(vals, i, e) {
			if (i)
				sdk_jsonw_raw(o, ",");
			if (text_any(c, e, depth + 1, o, NULL) < 0)
				return -1;
		}
		sdk_jsonw_raw(o, "]}");
	} else if ((v = json_object_get(in, "kvlistValue"))) {
		if (!json_is_object(v))
			goto wrong;
		sdk_jsonw_raw(o, "\"kvlistValue\":{\"values\":");
		if (text_kvs(c, json_object_get(v, "values"), depth + 1, o, false) < 0)
			return -1;
		sdk_jsonw_raw(o, "}");
	}
	sdk_jsonw_raw(o, "}");
	return 0;
wrong:
	sdk_buf_truncate(o, mark);
	return bad(c, "an AnyValue of the wrong type");
}

/* A KeyValue list as a JSON array; `searched`: each scalar's text is
 * recorded in the batch's attributes too. */
static int text_kvs(ctx *c, json_t *in, int depth, sdk_buf *o, bool searched)
{
	if (in && !json_is_null(in) && !json_is_array(in))
		return bad(c, "expected an array of KeyValue");
	json_t *kv;
	size_t i;
	sdk_jsonw_raw(o, "[");
	json_array_foreach(in, i, kv) {
		json_t *k = json_object_get(kv, "key"), *val = json_object_get(kv, "value");
		if (!json_is_string(k))
			return bad(c, "a KeyValue without a string key");
		sdk_jsonw_raw(o, i ? ",{\"key\":" : "{\"key\":");
		sdk_jsonw_utf8(o, json_string_value(k), json_string_length(k));
		sdk_jsonw_raw(o, ",\"value\":");
		scalar sc;
		if (text_any(c, val, depth, o, &sc) < 0)
			return -1;
		sdk_jsonw_raw(o, "}");
		if (searched)
			attr_text(c->b, k, &sc);
	}
	sdk_jsonw_raw(o, "]");
	return 0;
}

/* ---- resource and scope: written once, copied into every body ---- */

static int text_resource(ctx *c, json_t *in, bool searched, const char **service, size_t *attr0,
			 size_t *n_attrs)
{
	*service = "";
	sdk_buf_reset(&c->res);
	sdk_buf_reset(&c->part);
	if (in && !json_is_null(in) && !json_is_object(in))
		return bad(c, "resource: expected an object");
	json_t *kvs = json_object_get(in, "attributes"), *kv;
	*attr0 = c->b->n_attrs;
	sdk_jsonw_raw(&c->res, "{");
	if (text_kvs(c, kvs, 0, &c->part, searched) < 0 ||
	    copy_u32(c, in, &c->res, "droppedAttributesCount", UINT32_MAX) < 0)
		return -1;
	*n_attrs = c->b->n_attrs - *attr0;
	key(&c->res, "attributes");
	sdk_buf_put(&c->res, c->part.p, c->part.len);
	sdk_jsonw_raw(&c->res, "}");
	size_t i;
	json_array_foreach(kvs, i, kv) {
		const char *s = json_string_value(
			json_object_get(json_object_get(kv, "value"), "stringValue"));
		if (s && !strcmp(json_string_value(json_object_get(kv, "key")), "service.name"))
			*service = s;
	}
	return 0;
}

static int text_scope(ctx *c, json_t *in)
{
	sdk_buf_reset(&c->scope);
	sdk_buf_reset(&c->part);
	if (in && !json_is_null(in) && !json_is_object(in))
		return bad(c, "scope: expected an object");
	sdk_jsonw_raw(&c->scope, "{");
	if (copy_str(c, in, &c->scope, "name", NULL) < 0 ||
	    copy_str(c, in, &c->scope, "version", NULL) < 0 ||
	    text_kvs(c, json_object_get(in, "attributes"), 0, &c->part, false) < 0)
		return -1;
	/* The count before the attributes, though checked after them. */
	if (copy_u32(c, in, &c->scope, "droppedAttributesCount", UINT32_MAX) < 0)
		return -1;
	if (json_array_size(json_object_get(in, "attributes"))) {
		key(&c->scope, "attributes");
		sdk_buf_put(&c->scope, c->part.p, c->part.len);
	}
	sdk_jsonw_raw(&c->scope, "}");
	return 0;
}

static int get_time(ctx *c, json_t *in, const char *name, uint64_t *t)
{
	if (otlp_json_u64(json_object_get(in, name), t) < 0 || *t > INT64_MAX)
		return bad(c, "%s: expected nanoseconds since the epoch, a number or a string of digits",
			   name);
	return 0;
}

static void time_member(sdk_buf *o, const char *name, uint64_t t)
{
	key(o, name);
	sdk_buf_put(o, "\"", 1);
	sdk_jsonw_int(o, (int64_t)t, 0);
	sdk_buf_put(o, "\"", 1);
}

static int text_time(ctx *c, json_t *in, sdk_buf *out, const char *name, uint64_t *t)
{
	if (get_time(c, in, name, t) < 0)
		return -1;
	time_member(out, name, *t);
	return 0;
}

/* A span's events into out["events"], then its droppedEventsCount. */
static int text_events(ctx *c, json_t *in, sdk_buf *out)
{
	json_t *evs = json_object_get(in, "events"), *e;
	if (evs && !json_is_null(evs) && !json_is_array(evs))
		return bad(c, "events: expected an array");
	key(out, "events");
	sdk_jsonw_raw(out, "[");
	size_t i;
	json_array_foreach(evs, i, e) {
		uint64_t t;
		sdk_jsonw_raw(out, i ? ",{" : "{");
		if (!json_is_object(e))
			return bad(c, "events[%zu]: expected an object", i);
		if (text_time(c, e, out, "timeUnixNano", &t) < 0 ||
		    copy_str(c, e, out, "name", NULL) < 0)
			return -1;
		key(out, "attributes");
		if (text_kvs(c, json_object_get(e, "attributes"), 0, out, false) < 0 ||
		    copy_u32(c, e, out, "droppedAttributesCount", UINT32_MAX) < 0)
			return -1;
		sdk_jsonw_raw(out, "}");
	}
	sdk_jsonw_raw(out, "]");
	return copy_u32(c, in, out, "droppedEventsCount", UINT32_MAX);
}

static int text_links(ctx *c, json_t *in, sdk_buf *out)
{
	json_t *ls = json_object_get(in, "links"), *l;
	if (ls && !json_is_null(ls) && !json_is_array(ls))
		return bad(c, "links: expected an array");
	key(out, "links");
	sdk_jsonw_raw(out, "[");
	size_t i;
	json_array_foreach(ls, i, l) {
		char tid[33], sid[17];
		sdk_jsonw_raw(out, i ? ",{" : "{");
		if (!json_is_object(l))
			return bad(c, "links[%zu]: expected an object", i);
		if (get_id(c, l, "traceId", 16, false, tid) < 0 || get_id(c, l, "spanId", 8, false, sid) < 0)
			return -1;
		id_member(out, "traceId", tid);
		id_member(out, "spanId", sid);
		if (copy_str(c, l, out, "traceState", NULL) < 0)
			return -1;
		key(out, "attributes");
		if (text_kvs(c, json_object_get(l, "attributes"), 0, out, false) < 0 ||
		    copy_u32(c, l, out, "droppedAttributesCount", UINT32_MAX) < 0 ||
		    copy_u32(c, l, out, "flags", UINT32_MAX) < 0)
			return -1;
		sdk_jsonw_raw(out, "}");
	}
	sdk_jsonw_raw(out, "]");
	return copy_u32(c, in, out, "droppedLinksCount", UINT32_MAX);
}

/* The status object's members, written after the span's attributes but
 * checked after its events and links. */
static int text_status(ctx *c, json_t *in, sdk_buf *o, uint32_t *code)
{
	json_t *st = json_object_get(in, "status");
	*code = 0;
	key(o, "status");
	sdk_jsonw_raw(o, "{");
	if (st && !json_is_null(st)) {
		if (!json_is_object(st))
			return bad(c, "status: expected an object");
		if (get_u32(c, st, "code", 2, code) < 0 || copy_str(c, st, o, "message", NULL) < 0)
			return -1;
		if (*code) {
			key(o, "code");
			sdk_jsonw_int(o, *code, 0);
		}
	}
	sdk_jsonw_raw(o, "}");
	return 0;
}

/* The row being written, with room for it; NULL when memory ran out. */
static otlp_row *new_row(otlp_batch *b)
{
	otlp_row *rows = sdk_grow(b->rows, &b->cap_rows, b->n_rows, sizeof *rows, 64);
	if (!rows) {
		b->text.oom = true;
		return NULL;
	}
	b->rows = rows;
	otlp_row *r = &rows[b->n_rows];
	*r = (otlp_row){ .body = b->bodies.len, .text0 = b->text.len, .attr0 = b->n_attrs };
	return r;
}

/* Ends the body being written with the resource and scope, and takes
 * the row. */
static void take_row(ctx *c, otlp_row *r)
{
	otlp_batch *b = c->b;
	key(&b->bodies, "resource");
	sdk_buf_put(&b->bodies, c->res.p, c->res.len);
	key(&b->bodies, "scope");
	sdk_buf_put(&b->bodies, c->scope.p, c->scope.len);
	sdk_jsonw_raw(&b->bodies, "}");
	r->body_len = b->bodies.len - r->body;
	b->n_rows++;
}

/* Forgets the row being written (a rejected item), its texts too. */
static void drop_row(otlp_batch *b, const otlp_row *r)
{
	sdk_buf_truncate(&b->bodies, r->body);
	sdk_buf_truncate(&b->text, r->text0);
	b->n_attrs = r->attr0;
}

/* The scalar fields a span is checked for, in this order, before its
 * attributes. */
typedef struct span_head {
	json_t *trace_state, *name;
	uint32_t flags, kind;
	uint64_t start, end;
} span_head;

static int span_head_of(ctx *c, json_t *in, span_head *h)
{
	*h = (span_head){ 0 };
	if (copy_str(c, in, NULL, "traceState", &h->trace_state) < 0 ||
	    get_u32(c, in, "flags", UINT32_MAX, &h->flags) < 0 ||
	    copy_str(c, in, NULL, "name", &h->name) < 0 || get_u32(c, in, "kind", 5, &h->kind) < 0 ||
	    get_time(c, in, "startTimeUnixNano", &h->start) < 0 ||
	    get_time(c, in, "endTimeUnixNano", &h->end) < 0)
		return -1;
	return 0;
}


/* One span: 0 and a row, 1 when it is rejected (the reason in `reject`:
 * the rest of the request is taken), SDK_EINVAL when the request is bad.
 * The body's members come in the order a jansson object used to be
 * filled in: the name where it is checked when it is not empty, else
 * after the flags. */
static int text_span(ctx *c, json_t *in, size_t service_at, size_t res_attr0, size_t n_res_attrs,
		     sdk_err *reject)
{
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
	span_head h;
	if (span_head_of(c, in, &h) < 0)
		return -1;
	otlp_batch *b = c->b;
	otlp_row *r = new_row(b);
	if (!r)
		return -1;
	sdk_buf *o = &b->bodies;
	/* The name as a row's text and as its body had it once the object
	 * was filled: up to a NUL, should a protobuf string hold one. */
	const char *name = h.name ? json_string_value(h.name) : "";
	sdk_jsonw_raw(o, "{");
	id_member(o, "traceId", tid);
	id_member(o, "spanId", sid);
	if (*pid)
		id_member(o, "parentSpanId", pid);
	if (h.trace_state && json_string_length(h.trace_state)) {
		key(o, "traceState");
		sdk_jsonw_utf8(o, json_string_value(h.trace_state), json_string_length(h.trace_state));
	}
	bool name_early = h.name && json_string_length(h.name);
	if (name_early) {
		key(o, "name");
		sdk_jsonw_utf8(o, name, strlen(name));
	}
	time_member(o, "startTimeUnixNano", h.start);
	time_member(o, "endTimeUnixNano", h.end);
	if (h.flags) {
		key(o, "flags");
		sdk_jsonw_int(o, h.flags, 0);
	}
	if (!name_early) {
		key(o, "name");
		sdk_jsonw_utf8(o, name, strlen(name));
	}
	key(o, "kind");
	sdk_jsonw_int(o, h.kind, 0);
	key(o, "attributes");
	sdk_buf_reset(&c->tail);
	uint32_t code;
	if (text_kvs(c, json_object_get(in, "attributes"), 0, o, true) < 0 ||
	    copy_u32(c, in, &c->tail, "droppedAttributesCount", UINT32_MAX) < 0 ||
	    text_events(c, in, &c->tail) < 0 || text_links(c, in, &c->tail) < 0 ||
	    text_status(c, in, o, &code) < 0) {
		drop_row(b, r);
		return -1;
	}
	sdk_jsonw_raw(o, ",");
	sdk_buf_put(o, c->tail.p, c->tail.len);
	if (all_zero(tid) || all_zero(sid) || h.end < h.start) {
		sdk_fail(reject, SDK_EINVAL, "%s: %s", c->path,
			 h.end < h.start ? "the span ends before it starts"
					 : "an all-zero trace or span id is invalid");
		drop_row(b, r);
		return 1;
	}
	memcpy(r->trace_id, tid, sizeof tid);
	memcpy(r->span_id, sid, sizeof sid);
	memcpy(r->parent_id, pid, sizeof pid);
	r->service = service_at;
	r->name = text_add(b, name, strlen(name));
	r->kind = h.kind, r->status = code;
	r->start_ns = (int64_t)h.start, r->end_ns = (int64_t)h.end;
	r->n_attrs = b->n_attrs - r->attr0;
	r->res_attr0 = res_attr0, r->n_res_attrs = n_res_attrs;
	take_row(c, r);
	return 0;
}

/* One log record; as text_span. The body's members in the order a
 * jansson object used to be filled in. */
static int text_log(ctx *c, json_t *in, size_t service_at, sdk_err *reject)
{
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
	otlp_batch *b = c->b;
	otlp_row *r = new_row(b);
	if (!r)
		return -1;
	sdk_buf *o = &b->bodies;
	uint64_t t, observed;
	uint32_t sev = 0;
	sdk_jsonw_raw(o, "{");
	if (text_time(c, in, o, "timeUnixNano", &t) < 0 ||
	    text_time(c, in, o, "observedTimeUnixNano", &observed) < 0 ||
	    get_u32(c, in, "severityNumber", 24, &sev) < 0 ||
	    copy_str(c, in, o, "severityText", NULL) < 0)
		goto fail;
	if (sev) {
		key(o, "severityNumber");
		sdk_jsonw_int(o, sev, 0);
	}
	key(o, "attributes");
	if (text_kvs(c, json_object_get(in, "attributes"), 0, o, false) < 0)
		goto fail;
	if (json_object_get(in, "body")) {
		key(o, "body");
		if (text_any(c, json_object_get(in, "body"), 0, o, NULL) < 0)
			goto fail;
	}
	if (copy_u32(c, in, o, "droppedAttributesCount", UINT32_MAX) < 0 ||
	    copy_u32(c, in, o, "flags", UINT32_MAX) < 0 || copy_str(c, in, o, "eventName", NULL) < 0)
		goto fail;
	if (*tid)
		id_member(o, "traceId", tid);
	if (*sid)
		id_member(o, "spanId", sid);
	if ((*tid && all_zero(tid)) || (*sid && all_zero(sid)) || (*sid && !*tid)) {
		sdk_fail(reject, SDK_EINVAL, "%s: %s", c->path,
			 *sid && !*tid ? "a span id without a trace id"
				       : "an all-zero trace or span id is invalid");
		drop_row(b, r);
		return 1;
	}
	memcpy(r->trace_id, tid, sizeof tid);
	memcpy(r->span_id, sid, sizeof sid);
	r->service = service_at;
	r->name = text_add(b, "", 0);
	r->severity = sev;
	/* A record without a time is placed at its observed time (the
	 * specification's advice to receivers). */
	r->time_ns = (int64_t)(t ? t : observed);
	take_row(c, r);
	return 0;
fail:
	drop_row(b, r);
	return -1;
}

static void ctx_free(ctx *c)
{
	sdk_buf_free(&c->part);
	sdk_buf_free(&c->tail);
	sdk_buf_free(&c->res);
	sdk_buf_free(&c->scope);
}

static bool oom(const ctx *c)
{
	return c->b->text.oom || c->b->bodies.oom || c->part.oom || c->tail.oom || c->res.oom ||
	       c->scope.oom;
}

/* Every span or record of the request, or the first reason not to take
 * any. */
static int text_items(ctx *c, otlp_signal sig, json_t *rs_all)
{
	const char *k_res = sig == OTLP_TRACES ? "resourceSpans" : "resourceLogs";
	const char *k_scope = sig == OTLP_TRACES ? "scopeSpans" : "scopeLogs";
	const char *k_items = sig == OTLP_TRACES ? "spans" : "logRecords";
	otlp_batch *b = c->b;
	size_t i, j, k;
	json_t *rs, *ss, *item;
	json_array_foreach(rs_all, i, rs) {
		snprintf(c->path, sizeof c->path, "%s[%zu]", k_res, i);
		if (!json_is_object(rs))
			return bad(c, "expected an object");
		json_t *sss = json_object_get(rs, k_scope);
		const char *service;
		size_t res_attr0 = 0, n_res_attrs = 0;
		/* Only spans are searched by attribute. */
		if (text_resource(c, json_object_get(rs, "resource"), sig == OTLP_TRACES, &service,
				  &res_attr0, &n_res_attrs) < 0)
			return -1;
		if (sss && !json_is_array(sss))
			return bad(c, "%s: expected an array", k_scope);
		size_t service_at = text_add(b, service, strlen(service));
		json_array_foreach(sss, j, ss) {
			snprintf(c->path, sizeof c->path, "%s[%zu].%s[%zu]", k_res, i, k_scope, j);
			json_t *items = json_object_get(ss, k_items);
			if (!json_is_object(ss) || (items && !json_is_array(items)))
				return bad(c, "expected an object with an array \"%s\"", k_items);
			if (text_scope(c, json_object_get(ss, "scope")) < 0)
				return -1;
			json_array_foreach(items, k, item) {
				snprintf(c->path, sizeof c->path, "%s[%zu].%s[%zu].%s[%zu]", k_res, i,
					 k_scope, j, k_items, k);
				sdk_err reject;
				int rc = sig == OTLP_TRACES
						 ? text_span(c, item, service_at, res_attr0, n_res_attrs,
							     &reject)
						 : text_log(c, item, service_at, &reject);
				/* A row that found no memory failed without a reason. */
				if (rc < 0 && oom(c))
					return sdk_fail(c->err, SDK_EIO, "out of memory");
				if (rc < 0)
					return -1;
				if (rc == 1 && b->rejected++ == 0)
					snprintf(b->why, sizeof b->why, "%s", reject.msg);
				if (oom(c))
					return sdk_fail(c->err, SDK_EIO, "out of memory");
			}
		}
	}
	return oom(c) ? sdk_fail(c->err, SDK_EIO, "out of memory") : 0;
}

int otlp_json_batch(otlp_signal sig, json_t *req, size_t items_max, otlp_batch *batch,
		    sdk_err *err)
{
	sdk_err own;
	ctx c = { .err = err ? err : &own, .b = batch };
	c.err->msg[0] = '\0';
	*batch = (otlp_batch){ 0 };
	const char *k_res = sig == OTLP_TRACES ? "resourceSpans" : "resourceLogs";
	const char *k_scope = sig == OTLP_TRACES ? "scopeSpans" : "scopeLogs";
	const char *k_items = sig == OTLP_TRACES ? "spans" : "logRecords";
	json_t *rs_all = json_object_get(req, k_res);
	if (!json_is_object(req) || (rs_all && !json_is_array(rs_all)))
		return bad(&c, "expected an object with an array \"%s\"", k_res);
	/* Counted before anything is looked at: an oversized batch is
	 * refused whole. */
	size_t total = 0, i, j;
	json_t *rs, *ss;
	json_array_foreach(rs_all, i, rs)
		json_array_foreach(json_object_get(rs, k_scope), j, ss)
			total += json_array_size(json_object_get(ss, k_items));
	if (total > items_max)
		return sdk_fail(c.err, SDK_ETOOLARGE, "%zu %s in one request; the limit is %zu",
				total, sig == OTLP_TRACES ? "spans" : "log records", items_max);
	int rc = text_items(&c, sig, rs_all);
	ctx_free(&c);
	if (rc < 0) {
		otlp_batch_free(batch);
		*batch = (otlp_batch){ 0 };
	}
	return rc;
}
