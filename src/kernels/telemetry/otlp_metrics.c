/* OTLP/JSON metrics into Prometheus samples (otlp_metrics.h). The naming
 * follows the Collector's translator (pkg/translator/prometheus,
 * normalize_name.go and normalize_label.go, with metric suffixes on). */
#include "kernels/telemetry/otlp_metrics.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- names ---- */

typedef struct unit_word {
	const char *ucum, *word;
} unit_word;

/* The Collector's unitMap and perUnitMap. */
static const unit_word main_units[] = {
	{ "d", "days" },	{ "h", "hours" },	  { "min", "minutes" },
	{ "s", "seconds" },	{ "ms", "milliseconds" }, { "us", "microseconds" },
	{ "ns", "nanoseconds" }, { "By", "bytes" },	  { "KiBy", "kibibytes" },
	{ "MiBy", "mebibytes" }, { "GiBy", "gibibytes" }, { "TiBy", "tibibytes" },
	{ "KBy", "kilobytes" },	{ "MBy", "megabytes" },	  { "GBy", "gigabytes" },
	{ "TBy", "terabytes" },	{ "m", "meters" },	  { "V", "volts" },
	{ "A", "amperes" },	{ "J", "joules" },	  { "W", "watts" },
	{ "g", "grams" },	{ "Cel", "celsius" },	  { "Hz", "hertz" },
	{ "1", "" },		{ "%", "percent" },
};

static const unit_word per_units[] = {
	{ "s", "second" }, { "m", "minute" }, { "h", "hour" }, { "d", "day" },
	{ "w", "week" },   { "mo", "month" }, { "y", "year" },
};

static const char *unit_lookup(const unit_word *t, size_t n, const char *u)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(t[i].ucum, u))
			return t[i].word;
	return u;
}

#define TOKENS_MAX 64
#define TOKEN_LEN 64

typedef struct tokens {
	char t[TOKENS_MAX][TOKEN_LEN];
	size_t n;
} tokens;

/* Splits on every character that is not a letter or a digit (so runs of
 * separators, and leading or trailing ones, vanish). */
static void split(const char *s, tokens *tk)
{
	while (*s) {
		while (*s && !isalnum((unsigned char)*s))
			s++;
		size_t n = 0;
		const char *b = s;
		while (s[n] && isalnum((unsigned char)s[n]))
			n++;
		if (n && tk->n < TOKENS_MAX) {
			snprintf(tk->t[tk->n], TOKEN_LEN, "%.*s", (int)n, b);
			tk->n++;
		}
		s = b + n;
	}
}

static bool has(const tokens *tk, const char *w)
{
	for (size_t i = 0; i < tk->n; i++)
		if (!strcmp(tk->t[i], w))
			return true;
	return false;
}

static void drop(tokens *tk, const char *w)
{
	size_t o = 0;
	for (size_t i = 0; i < tk->n; i++)
		if (strcmp(tk->t[i], w))
			memmove(tk->t[o++], tk->t[i], TOKEN_LEN);
	tk->n = o;
}

/* Appends a suffix (itself cleaned into tokens) unless the name has it. */
static void add_suffix(tokens *tk, const char *word)
{
	tokens w = { .n = 0 };
	split(word, &w);
	if (!w.n)
		return;
	char joined[TOKEN_LEN] = "";
	for (size_t i = 0; i < w.n; i++)
		snprintf(joined + strlen(joined), sizeof joined - strlen(joined), "%s%s",
			 i ? "_" : "", w.t[i]);
	if (has(tk, joined) || tk->n >= TOKENS_MAX)
		return;
	snprintf(tk->t[tk->n++], TOKEN_LEN, "%s", joined);
}

void otlp_prom_name(const char *name, const char *unit, char kind, char *out, size_t outlen)
{
	tokens tk = { .n = 0 };
	split(name, &tk);
	char u[128];
	snprintf(u, sizeof u, "%s", unit ? unit : "");
	/* "{packets}" and the like are annotations, not units. */
	char *slash = strchr(u, '/');
	char *per = slash ? slash + 1 : NULL;
	if (slash)
		*slash = '\0';
	if (*u && !strpbrk(u, "{}"))
		add_suffix(&tk, unit_lookup(main_units, sizeof main_units / sizeof *main_units, u));
	if (per && *per && !strpbrk(per, "{}")) {
		char w[160];
		snprintf(w, sizeof w, "per_%s",
			 unit_lookup(per_units, sizeof per_units / sizeof *per_units, per));
		tokens pw = { .n = 0 };
		split(w, &pw);
		/* "per_second" is two tokens; the name has it when it ends so. */
		bool present = pw.n == 2 && tk.n >= 2 && !strcmp(tk.t[tk.n - 2], "per") &&
			       !strcmp(tk.t[tk.n - 1], pw.t[1]);
		for (size_t i = 0; !present && i < pw.n && tk.n < TOKENS_MAX; i++)
			snprintf(tk.t[tk.n++], TOKEN_LEN, "%s", pw.t[i]);
	}
	if (kind == 'c') {
		drop(&tk, "total");
		if (tk.n < TOKENS_MAX)
			snprintf(tk.t[tk.n++], TOKEN_LEN, "total");
	}
	if (kind == 'g' && unit && !strcmp(unit, "1")) {
		drop(&tk, "ratio");
		if (tk.n < TOKENS_MAX)
			snprintf(tk.t[tk.n++], TOKEN_LEN, "ratio");
	}
	size_t o = 0;
	out[0] = '\0';
	for (size_t i = 0; i < tk.n; i++) {
		int n = snprintf(out + o, outlen - o, "%s%s%s", i ? "_" : "",
				 !i && isdigit((unsigned char)tk.t[0][0]) ? "_" : "", tk.t[i]);
		if (n < 0 || (size_t)n >= outlen - o) {
			out[o] = '\0';
			return;
		}
		o += (size_t)n;
	}
}

void otlp_prom_label(const char *key, char *out, size_t outlen)
{
	const char *prefix = "";
	if (isdigit((unsigned char)key[0]))
		prefix = "key_";
	else if (key[0] == '_' && key[1] != '_')
		prefix = "key";
	int n = snprintf(out, outlen, "%s%s", prefix, key);
	if (n < 0)
		n = 0;
	for (char *p = out; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_')
			*p = '_';
}

/* ---- values ---- */

/* The shortest text that reads back as d, without an exponent where Go's
 * strconv.FormatFloat(d, 'f', -1, 64) (the Collector's) has none: "10",
 * "0.25", "0.001" (a label value: le, quantile). */
static void float_text(double d, char *out, size_t outlen)
{
	if (isinf(d)) {
		snprintf(out, outlen, "%s", d > 0 ? "+Inf" : "-Inf");
		return;
	}
	if (isnan(d)) {
		snprintf(out, outlen, "NaN");
		return;
	}
	if (fabs(d) < 1e21 && (d == 0 || fabs(d) >= 1e-9))
		for (int prec = 0; prec <= 20; prec++) {
			snprintf(out, outlen, "%.*f", prec, d);
			if (strtod(out, NULL) == d)
				return;
		}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(out, outlen, "%.*g", prec, d);
		if (strtod(out, NULL) == d)
			return;
	}
}

/* A sample's value for /write: a number, or the strings it takes for
 * what JSON cannot say. */
static json_t *sample_value(double d, bool stale)
{
	if (stale)
		return json_string("stale");
	if (isnan(d))
		return json_string("NaN");
	if (isinf(d))
		return json_string(d > 0 ? "+Inf" : "-Inf");
	return json_real(d);
}

/* A double in OTLP/JSON: a number, or "NaN", "Infinity", "-Infinity" (or
 * a decimal string). */
static int get_double(json_t *v, double *out)
{
	if (json_is_number(v)) {
		*out = json_number_value(v);
		return 0;
	}
	const char *s = json_string_value(v);
	if (!s)
		return -1;
	if (!strcmp(s, "NaN"))
		*out = NAN;
	else if (!strcmp(s, "Infinity"))
		*out = INFINITY;
	else if (!strcmp(s, "-Infinity"))
		*out = -INFINITY;
	else {
		char *end;
		errno = 0;
		*out = strtod(s, &end);
		if (!*s || *end || errno)
			return -1;
	}
	return 0;
}

/* ---- the translation's state ---- */

typedef struct tctx {
	otlp_prom_acc *acc;
	otlp_prom_out *out;
	int64_t now_ms;
	sdk_err *err; /* may be NULL */
	char path[160];
} tctx;

static int bad(tctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(tctx *c, const char *fmt, ...)
{
	char msg[OTLP_WHY_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return sdk_fail(c->err, SDK_EINVAL, "%s%s%s", c->path, *c->path ? ": " : "", msg);
}

static void reject(tctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reject(tctx *c, const char *fmt, ...)
{
	if (c->out->rejected++ == 0) {
		char msg[OTLP_WHY_MAX];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, sizeof msg, fmt, ap);
		va_end(ap);
		/* Cut to fit: the path comes first, the reason after it. */
		if (snprintf(c->out->why, sizeof c->out->why, "%s: %s", c->path, msg) < 0)
			c->out->why[0] = '\0';
	}
}

/* An AnyValue as plain JSON (for arrays and kvlists as label values). */
static json_t *any_plain(json_t *any, int depth)
{
	json_t *v;
	if (depth > OTLP_ANY_DEPTH_MAX || !json_is_object(any))
		return json_null();
	if ((v = json_object_get(any, "stringValue")) || (v = json_object_get(any, "boolValue")) ||
	    (v = json_object_get(any, "bytesValue")))
		return json_incref(v);
	if ((v = json_object_get(any, "intValue"))) {
		if (json_is_string(v))
			return json_integer(strtoll(json_string_value(v), NULL, 10));
		return json_incref(v);
	}
	if ((v = json_object_get(any, "doubleValue")))
		return json_incref(v);
	if ((v = json_object_get(any, "arrayValue"))) {
		json_t *a = json_array(), *e;
		size_t i;
		json_array_foreach(json_object_get(v, "values"), i, e)
			json_array_append_new(a, any_plain(e, depth + 1));
		return a;
	}
	if ((v = json_object_get(any, "kvlistValue"))) {
		json_t *o = json_object(), *kv;
		size_t i;
		json_array_foreach(json_object_get(v, "values"), i, kv) {
			const char *k = json_string_value(json_object_get(kv, "key"));
			if (k)
				json_object_set_new(o, k, any_plain(json_object_get(kv, "value"), depth + 1));
		}
		return o;
	}
	return json_null();
}

/* An attribute's value as a label value (new string), or NULL when the
 * value is not an AnyValue. */
static char *any_text(json_t *any)
{
	json_t *v;
	if (!json_is_object(any))
		return NULL;
	if ((v = json_object_get(any, "stringValue")))
		return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
	if ((v = json_object_get(any, "boolValue")))
		return json_is_boolean(v) ? strdup(json_is_true(v) ? "true" : "false") : NULL;
	if ((v = json_object_get(any, "intValue"))) {
		if (json_is_string(v))
			return strdup(json_string_value(v));
		if (!json_is_integer(v))
			return NULL;
		char s[24];
		snprintf(s, sizeof s, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return strdup(s);
	}
	if ((v = json_object_get(any, "doubleValue"))) {
		double d;
		char s[40];
		if (get_double(v, &d) < 0)
			return NULL;
		float_text(d, s, sizeof s);
		return strdup(s);
	}
	if ((v = json_object_get(any, "bytesValue")))
		return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
	json_t *p = any_plain(any, 0);
	char *s = json_dumps(p, JSON_COMPACT | JSON_ENCODE_ANY);
	json_decref(p);
	return s ? s : strdup("");
}

/* Adds a KeyValue list to `labels` (name -> value). Keys that become the
 * same label name are joined with ';' in key order, as the Collector
 * does. -1 when a KeyValue is malformed. */
static int add_attrs(tctx *c, json_t *labels, json_t *kvs)
{
	if (kvs && !json_is_null(kvs) && !json_is_array(kvs))
		return bad(c, "attributes: expected an array of KeyValue");
	/* Sorted by key first, so a collision joins in a stable order. */
	size_t n = json_array_size(kvs);
	json_t **sorted = calloc(n + 1, sizeof *sorted);
	if (!sorted)
		return bad(c, "out of memory");
	for (size_t i = 0; i < n; i++) {
		json_t *kv = json_array_get(kvs, i);
		if (!json_is_string(json_object_get(kv, "key"))) {
			free(sorted);
			return bad(c, "attributes[%zu]: a KeyValue without a string key", i);
		}
		size_t j = i;
		while (j > 0 && strcmp(json_string_value(json_object_get(sorted[j - 1], "key")),
				       json_string_value(json_object_get(kv, "key"))) > 0) {
			sorted[j] = sorted[j - 1];
			j--;
		}
		sorted[j] = kv;
	}
	for (size_t i = 0; i < n; i++) {
		const char *key = json_string_value(json_object_get(sorted[i], "key"));
		json_t *val = json_object_get(sorted[i], "value");
		char *text = val && !json_is_null(val) ? any_text(val) : strdup("");
		if (!text) {
			free(sorted);
			return bad(c, "attributes: %s: not an AnyValue", key);
		}
		char name[OTLP_PROM_NAME_MAX + 8];
		otlp_prom_label(key, name, sizeof name);
		const char *prev = json_string_value(json_object_get(labels, name));
		if (prev && *text) {
			size_t len = strlen(prev) + strlen(text) + 2;
			char *joined = malloc(len);
			if (joined) {
				snprintf(joined, len, "%s;%s", prev, text);
				json_object_set_new(labels, name, json_string(joined));
			}
			free(joined);
		} else if (!prev) {
			json_object_set_new(labels, name, json_string(text));
		}
		free(text);
	}
	free(sorted);
	return 0;
}

/* A point's labels respect the metrics kernel's limits. */
static const char *labels_fault(json_t *labels)
{
	if (json_object_size(labels) > OTLP_PROM_LABELS_MAX)
		return "more than 63 attributes once made labels";
	const char *k;
	json_t *v;
	json_object_foreach(labels, k, v) {
		if (!*k || strlen(k) > OTLP_PROM_NAME_MAX)
			return "an attribute key is empty or too long for a label name";
		if (json_string_length(v) > OTLP_PROM_VALUE_MAX)
			return "an attribute value is longer than 4096 bytes";
		if (!json_string_value(v))
			return "an attribute value is not valid UTF-8";
	}
	return NULL;
}

/* ---- the accumulator (delta into cumulative) ---- */

#define ACC_SLOTS 4096

typedef struct acc_entry {
	struct acc_entry *next;
	char *key; /* the series' labels, serialized */
	uint64_t start_ns, end_ns; /* of the running total */
	uint64_t last_start_ns;	   /* of the last point added */
	double value; /* a sum's total, a histogram's count */
	double sum;
	size_t nb;
	double *buckets; /* per bucket (not cumulative), nb of them */
	double *bounds;	 /* nb - 1 of them */
} acc_entry;

struct otlp_prom_acc {
	acc_entry *slot[ACC_SLOTS];
	size_t n, max;
};

otlp_prom_acc *otlp_prom_acc_new(size_t series_max)
{
	otlp_prom_acc *a = calloc(1, sizeof *a);
	if (a)
		a->max = series_max;
	return a;
}

static void entry_free(acc_entry *e)
{
	free(e->key);
	free(e->buckets);
	free(e->bounds);
	free(e);
}

void otlp_prom_acc_free(otlp_prom_acc *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < ACC_SLOTS; i++)
		for (acc_entry *e = a->slot[i], *n; e; e = n) {
			n = e->next;
			entry_free(e);
		}
	free(a);
}

size_t otlp_prom_acc_size(const otlp_prom_acc *a)
{
	return a ? a->n : 0;
}

static size_t hash_of(const char *s)
{
	size_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

/* The entry for `labels` (with its __name__), made when absent; NULL when
 * the accumulator is full. *fresh says it was just made. */
static acc_entry *acc_get(otlp_prom_acc *a, json_t *labels, bool *fresh)
{
	char *key = json_dumps(labels, JSON_COMPACT | JSON_SORT_KEYS);
	*fresh = false;
	if (!key)
		return NULL;
	size_t h = hash_of(key) % ACC_SLOTS;
	for (acc_entry *e = a->slot[h]; e; e = e->next)
		if (!strcmp(e->key, key)) {
			free(key);
			return e;
		}
	acc_entry *e = a->n < a->max ? calloc(1, sizeof *e) : NULL;
	if (!e) {
		free(key);
		return NULL;
	}
	e->key = key;
	e->next = a->slot[h];
	a->slot[h] = e;
	a->n++;
	*fresh = true;
	return e;
}

/* What a delta point does to its running total, as the Collector's
 * Prometheus exporter decides it: the next interval (its start is the
 * last end) adds; a gap starts the total again; a point not after the last
 * end is old and is left out. One exception: the last point again (an
 * exporter's retry after a 503) gives the same total again, so a retried
 * request stores what the first would have. */
typedef enum { DELTA_ADD, DELTA_SAME, DELTA_OLD, DELTA_RESET } delta_step;

static delta_step delta_of(const acc_entry *e, bool fresh, uint64_t start, uint64_t t)
{
	if (fresh)
		return DELTA_RESET;
	if (start == e->last_start_ns && t == e->end_ns)
		return DELTA_SAME;
	if (start == e->end_ns)
		return DELTA_ADD;
	if (t <= e->end_ns)
		return DELTA_OLD;
	return DELTA_RESET;
}

/* ---- emitting samples ---- */

static void emit(tctx *c, json_t *labels, const char *name, const char *extra_k,
		 const char *extra_v, int64_t ms, double v, bool stale)
{
	json_t *l = json_deep_copy(labels);
	json_object_set_new(l, "__name__", json_string(name));
	if (extra_k)
		json_object_set_new(l, extra_k, json_string(extra_v));
	json_array_append_new(c->out->series,
			      json_pack("{s:o, s:[[I, o]]}", "labels", l, "samples", (json_int_t)ms,
					sample_value(v, stale)));
}

static int64_t ms_of(tctx *c, uint64_t ns)
{
	return ns ? (int64_t)(ns / 1000000) : c->now_ms;
}

/* The labels a point gets: the resource's (job, instance), the scope's
 * and its own attributes. NULL (and the point rejected) when they break a
 * limit; -1 in *rc when malformed. */
static json_t *point_labels(tctx *c, json_t *base, json_t *point, int *rc)
{
	json_t *labels = json_object();
	*rc = 0;
	if (add_attrs(c, labels, json_object_get(point, "attributes")) < 0) {
		json_decref(labels);
		*rc = -1;
		return NULL;
	}
	/* The resource's job and instance win over a point's own. */
	json_object_update(labels, base);
	const char *fault = labels_fault(labels);
	if (fault) {
		reject(c, "%s", fault);
		json_decref(labels);
		return NULL;
	}
	return labels;
}

static int read_times(tctx *c, json_t *p, uint64_t *start, uint64_t *t, bool *stale)
{
	uint32_t flags = 0;
	uint64_t f;
	if (otlp_json_u64(json_object_get(p, "startTimeUnixNano"), start) < 0 ||
	    otlp_json_u64(json_object_get(p, "timeUnixNano"), t) < 0)
		return bad(c, "a time is not a non-negative integer");
	if (otlp_json_u64(json_object_get(p, "flags"), &f) < 0 || f > UINT32_MAX)
		return bad(c, "flags: expected an integer");
	flags = (uint32_t)f;
	*stale = flags & 1; /* FLAG_NO_RECORDED_VALUE */
	return 0;
}

/* A gauge's or a sum's point. kind as otlp_prom_name's; `delta` for a
 * delta sum. */
static int number_point(tctx *c, json_t *base, json_t *p, const char *name, bool delta)
{
	uint64_t start, t;
	bool stale;
	if (read_times(c, p, &start, &t, &stale) < 0)
		return -1;
	double v = 0;
	json_t *ai = json_object_get(p, "asInt"), *ad = json_object_get(p, "asDouble");
	if (ai && !json_is_null(ai)) {
		int64_t i;
		if (json_is_integer(ai))
			i = json_integer_value(ai);
		else if (json_is_string(ai)) {
			char *end;
			errno = 0;
			i = strtoll(json_string_value(ai), &end, 10);
			if (!*json_string_value(ai) || *end || errno)
				return bad(c, "asInt: expected a 64-bit integer");
		} else
			return bad(c, "asInt: expected a 64-bit integer");
		v = (double)i;
	} else if (ad && !json_is_null(ad)) {
		if (get_double(ad, &v) < 0)
			return bad(c, "asDouble: expected a number");
	} else if (!stale) {
		reject(c, "a data point without a value");
		return 0;
	}
	int rc;
	json_t *labels = point_labels(c, base, p, &rc);
	if (!labels)
		return rc;
	if (delta && !stale) {
		json_object_set_new(labels, "__name__", json_string(name));
		bool fresh;
		acc_entry *e = acc_get(c->acc, labels, &fresh);
		json_object_del(labels, "__name__");
		if (!e) {
			reject(c, "too many delta series to accumulate");
			json_decref(labels);
			return 0;
		}
		delta_step st = delta_of(e, fresh, start, t);
		if (st == DELTA_OLD) {
			json_decref(labels);
			return 0;
		}
		if (st != DELTA_SAME) {
			e->value = st == DELTA_ADD ? e->value + v : v;
			if (st == DELTA_RESET)
				e->start_ns = start;
			e->last_start_ns = start, e->end_ns = t;
		}
		v = e->value;
	}
	emit(c, labels, name, NULL, NULL, ms_of(c, t), v, stale);
	json_decref(labels);
	return 0;
}

static int histogram_point(tctx *c, json_t *base, json_t *p, const char *name, bool delta)
{
	uint64_t start, t, count;
	bool stale;
	if (read_times(c, p, &start, &t, &stale) < 0)
		return -1;
	if (otlp_json_u64(json_object_get(p, "count"), &count) < 0)
		return bad(c, "count: expected a non-negative integer");
	json_t *bc = json_object_get(p, "bucketCounts"), *eb = json_object_get(p, "explicitBounds");
	json_t *sj = json_object_get(p, "sum");
	if ((bc && !json_is_null(bc) && !json_is_array(bc)) ||
	    (eb && !json_is_null(eb) && !json_is_array(eb)))
		return bad(c, "bucketCounts and explicitBounds are arrays");
	size_t nb = json_array_size(bc), nbounds = json_array_size(eb);
	if (nb && nb != nbounds + 1) {
		reject(c, "%zu bucket counts for %zu bounds (expected one more count than bounds)",
		       nb, nbounds);
		return 0;
	}
	double *counts = calloc(nb + 1, sizeof *counts), *bounds = calloc(nbounds + 1, sizeof *bounds);
	double sum = 0;
	bool has_sum = sj && !json_is_null(sj);
	int rc = 0;
	if (!counts || !bounds) {
		rc = bad(c, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < nb; i++) {
		uint64_t u;
		if (otlp_json_u64(json_array_get(bc, i), &u) < 0) {
			rc = bad(c, "bucketCounts[%zu]: expected a non-negative integer", i);
			goto out;
		}
		counts[i] = (double)u;
	}
	for (size_t i = 0; i < nbounds; i++)
		if (get_double(json_array_get(eb, i), &bounds[i]) < 0 ||
		    (i && !(bounds[i] > bounds[i - 1]))) {
			rc = bad(c, "explicitBounds[%zu]: expected increasing numbers", i);
			goto out;
		}
	if (has_sum && get_double(sj, &sum) < 0) {
		rc = bad(c, "sum: expected a number");
		goto out;
	}
	json_t *labels = point_labels(c, base, p, &rc);
	if (!labels)
		goto out;
	double total = (double)count;
	if (delta && !stale) {
		json_object_set_new(labels, "__name__", json_string(name));
		bool fresh;
		acc_entry *e = acc_get(c->acc, labels, &fresh);
		json_object_del(labels, "__name__");
		if (!e) {
			reject(c, "too many delta series to accumulate");
			json_decref(labels);
			goto out;
		}
		delta_step st = delta_of(e, fresh, start, t);
		/* Other bounds than last time: the old totals do not add up. */
		if (st == DELTA_ADD && (e->nb != nb || (nbounds && memcmp(e->bounds, bounds,
									 nbounds * sizeof *bounds))))
			st = DELTA_RESET;
		if (st == DELTA_OLD) {
			json_decref(labels);
			goto out;
		}
		if (st == DELTA_SAME && e->nb != nb)
			st = DELTA_OLD;
		if (st == DELTA_RESET) {
			double *nbk = calloc(nb + 1, sizeof *nbk), *nbd = calloc(nbounds + 1, sizeof *nbd);
			if (!nbk || !nbd) {
				free(nbk);
				free(nbd);
				json_decref(labels);
				rc = bad(c, "out of memory");
				goto out;
			}
			free(e->buckets);
			free(e->bounds);
			e->buckets = nbk, e->bounds = nbd, e->nb = nb;
			memcpy(e->bounds, bounds, nbounds * sizeof *bounds);
			e->value = 0, e->sum = 0, e->start_ns = start;
		}
		if (st != DELTA_SAME) {
			e->value += total;
			e->sum += sum;
			for (size_t i = 0; i < nb; i++)
				e->buckets[i] += counts[i];
			e->last_start_ns = start, e->end_ns = t;
		}
		total = e->value, sum = e->sum;
		memcpy(counts, e->buckets, nb * sizeof *counts);
	}
	char n_bucket[OTLP_PROM_NAME_MAX + 16], n_sum[OTLP_PROM_NAME_MAX + 16],
		n_count[OTLP_PROM_NAME_MAX + 16], le[40];
	snprintf(n_bucket, sizeof n_bucket, "%s_bucket", name);
	snprintf(n_sum, sizeof n_sum, "%s_sum", name);
	snprintf(n_count, sizeof n_count, "%s_count", name);
	int64_t ms = ms_of(c, t);
	double cum = 0;
	for (size_t i = 0; i + 1 < nb; i++) {
		cum += counts[i];
		float_text(bounds[i], le, sizeof le);
		emit(c, labels, n_bucket, "le", le, ms, cum, stale);
	}
	emit(c, labels, n_bucket, "le", "+Inf", ms, total, stale);
	if (has_sum)
		emit(c, labels, n_sum, NULL, NULL, ms, sum, stale);
	emit(c, labels, n_count, NULL, NULL, ms, total, stale);
	json_decref(labels);
out:
	free(counts);
	free(bounds);
	return rc;
}

static int summary_point(tctx *c, json_t *base, json_t *p, const char *name)
{
	uint64_t start, t, count;
	bool stale;
	double sum = 0;
	if (read_times(c, p, &start, &t, &stale) < 0)
		return -1;
	json_t *qv = json_object_get(p, "quantileValues"), *sj = json_object_get(p, "sum");
	if (otlp_json_u64(json_object_get(p, "count"), &count) < 0)
		return bad(c, "count: expected a non-negative integer");
	if (sj && !json_is_null(sj) && get_double(sj, &sum) < 0)
		return bad(c, "sum: expected a number");
	if (qv && !json_is_null(qv) && !json_is_array(qv))
		return bad(c, "quantileValues: expected an array");
	size_t i;
	json_t *q;
	json_array_foreach(qv, i, q) {
		double qq = 0, vv = 0;
		json_t *jq = json_object_get(q, "quantile"), *jv = json_object_get(q, "value");
		if ((jq && get_double(jq, &qq) < 0) || (jv && get_double(jv, &vv) < 0))
			return bad(c, "quantileValues[%zu]: expected numbers", i);
	}
	int rc;
	json_t *labels = point_labels(c, base, p, &rc);
	if (!labels)
		return rc;
	int64_t ms = ms_of(c, t);
	json_array_foreach(qv, i, q) {
		double qq = 0, vv = 0;
		char qs[40];
		json_t *jq = json_object_get(q, "quantile"), *jv = json_object_get(q, "value");
		if (jq)
			get_double(jq, &qq);
		if (jv)
			get_double(jv, &vv);
		float_text(qq, qs, sizeof qs);
		emit(c, labels, name, "quantile", qs, ms, vv, stale);
	}
	char n_sum[OTLP_PROM_NAME_MAX + 16], n_count[OTLP_PROM_NAME_MAX + 16];
	snprintf(n_sum, sizeof n_sum, "%s_sum", name);
	snprintf(n_count, sizeof n_count, "%s_count", name);
	emit(c, labels, n_sum, NULL, NULL, ms, sum, stale);
	emit(c, labels, n_count, NULL, NULL, ms, (double)count, stale);
	json_decref(labels);
	return 0;
}

/* The kinds a Metric may carry, and how each is read. */
typedef enum { M_GAUGE, M_SUM, M_HISTOGRAM, M_EXPHISTOGRAM, M_SUMMARY, M_KINDS } mkind;
static const char *const kind_keys[M_KINDS] = { "gauge", "sum", "histogram",
						"exponentialHistogram", "summary" };

enum { TEMP_UNSPECIFIED = 0, TEMP_DELTA = 1, TEMP_CUMULATIVE = 2 };

static int one_metric(tctx *c, json_t *base, json_t *m)
{
	if (!json_is_object(m))
		return bad(c, "expected a Metric object");
	json_t *jn = json_object_get(m, "name"), *ju = json_object_get(m, "unit");
	if ((jn && !json_is_string(jn)) || (ju && !json_is_null(ju) && !json_is_string(ju)))
		return bad(c, "name and unit are strings");
	const char *mname = json_string_value(jn) ? json_string_value(jn) : "";
	const char *unit = json_string_value(ju) ? json_string_value(ju) : "";
	mkind kind = M_KINDS;
	json_t *data = NULL;
	for (int k = 0; k < M_KINDS; k++)
		if ((data = json_object_get(m, kind_keys[k])) && !json_is_null(data)) {
			kind = (mkind)k;
			break;
		}
	if (kind == M_KINDS)
		return 0; /* no data: nothing to store, nothing rejected */
	json_t *points = json_object_get(data, "dataPoints");
	if (!json_is_object(data) || (points && !json_is_array(points)))
		return bad(c, "%s: expected an object with an array \"dataPoints\"", kind_keys[kind]);
	size_t np = json_array_size(points);
	uint64_t temp = 0;
	if (otlp_json_u64(json_object_get(data, "aggregationTemporality"), &temp) < 0 || temp > 2)
		return bad(c, "aggregationTemporality: expected 0, 1 or 2");
	bool mono = json_is_true(json_object_get(data, "isMonotonic"));
	char pkind = kind == M_GAUGE ? 'g'
		     : kind == M_SUM ? (mono ? 'c' : 'u')
		     : kind == M_SUMMARY ? 's'
					 : 'h';
	char name[OTLP_PROM_NAME_MAX + 1];
	otlp_prom_name(mname, unit, pkind, name, sizeof name);
	const char *why = NULL;
	if (!*name)
		why = "the metric's name has no letter or digit";
	else if (kind == M_EXPHISTOGRAM)
		why = "exponential histograms are not translated (Prometheus native histograms are not kept)";
	else if ((kind == M_SUM || kind == M_HISTOGRAM) && temp == TEMP_UNSPECIFIED)
		why = "aggregationTemporality is unspecified";
	if (why) {
		for (size_t i = 0; i < np; i++)
			reject(c, "%s", why);
		return 0;
	}
	size_t plen = strlen(c->path);
	bool delta = temp == TEMP_DELTA;
	for (size_t i = 0; i < np; i++) {
		json_t *p = json_array_get(points, i);
		snprintf(c->path + plen, sizeof c->path - plen, ".%s.dataPoints[%zu]", kind_keys[kind],
			 i);
		if (!json_is_object(p))
			return bad(c, "expected a data point object");
		int rc = kind == M_HISTOGRAM ? histogram_point(c, base, p, name, delta)
			 : kind == M_SUMMARY ? summary_point(c, base, p, name)
					     : number_point(c, base, p, name, delta && kind == M_SUM);
		if (rc < 0)
			return -1;
	}
	c->path[plen] = '\0';
	return 0;
}

/* The labels every point of a resource and scope gets: job from
 * service.namespace/service.name, instance from service.instance.id, and
 * the scope's otel_scope_name and otel_scope_version. */
static int base_labels(tctx *c, json_t *resource, json_t *scope, json_t **out)
{
	*out = NULL;
	if (resource && !json_is_null(resource) && !json_is_object(resource))
		return bad(c, "resource: expected an object");
	if (scope && !json_is_null(scope) && !json_is_object(scope))
		return bad(c, "scope: expected an object");
	json_t *ra = json_object_get(resource, "attributes");
	if (ra && !json_is_null(ra) && !json_is_array(ra))
		return bad(c, "resource.attributes: expected an array");
	const char *svc = NULL, *ns = NULL, *inst = NULL;
	size_t i;
	json_t *kv;
	json_array_foreach(ra, i, kv) {
		const char *k = json_string_value(json_object_get(kv, "key"));
		const char *v = json_string_value(
			json_object_get(json_object_get(kv, "value"), "stringValue"));
		if (!k || !v)
			continue;
		if (!strcmp(k, "service.name"))
			svc = v;
		else if (!strcmp(k, "service.namespace"))
			ns = v;
		else if (!strcmp(k, "service.instance.id"))
			inst = v;
	}
	json_t *b = json_object();
	if (svc) {
		size_t len = strlen(svc) + (ns ? strlen(ns) + 1 : 0) + 1;
		char *job = malloc(len);
		if (job) {
			snprintf(job, len, "%s%s%s", ns ? ns : "", ns ? "/" : "", svc);
			json_object_set_new(b, "job", json_string(job));
		}
		free(job);
	}
	if (inst)
		json_object_set_new(b, "instance", json_string(inst));
	const char *sn = json_string_value(json_object_get(scope, "name"));
	const char *sv = json_string_value(json_object_get(scope, "version"));
	if (sn && *sn)
		json_object_set_new(b, "otel_scope_name", json_string(sn));
	if (sv && *sv)
		json_object_set_new(b, "otel_scope_version", json_string(sv));
	*out = b;
	return 0;
}

static size_t count_points(json_t *rms)
{
	size_t total = 0, i, j, k;
	json_t *rm, *sm, *m;
	json_array_foreach(rms, i, rm)
		json_array_foreach(json_object_get(rm, "scopeMetrics"), j, sm)
			json_array_foreach(json_object_get(sm, "metrics"), k, m)
				for (int q = 0; q < M_KINDS; q++)
					total += json_array_size(json_object_get(
						json_object_get(m, kind_keys[q]), "dataPoints"));
	return total;
}

int otlp_prom_translate(otlp_prom_acc *acc, json_t *req, size_t points_max, int64_t now_ms,
			otlp_prom_out *out, sdk_err *err)
{
	*out = (otlp_prom_out){ .series = json_array() };
	if (err)
		err->msg[0] = '\0';
	tctx c = { .acc = acc, .out = out, .now_ms = now_ms, .err = err };
	json_t *rms = json_object_get(req, "resourceMetrics");
	if (!json_is_object(req) || (rms && !json_is_array(rms))) {
		bad(&c, "expected an object with an array \"resourceMetrics\"");
		goto fail;
	}
	out->points = count_points(rms);
	if (out->points > points_max) {
		json_decref(out->series);
		out->series = NULL;
		return sdk_fail(err, SDK_ETOOLARGE, "%zu data points in one request; the limit is %zu",
				out->points, points_max);
	}
	size_t i, j, k;
	json_t *rm, *sm, *m;
	json_array_foreach(rms, i, rm) {
		snprintf(c.path, sizeof c.path, "resourceMetrics[%zu]", i);
		json_t *sms = json_object_get(rm, "scopeMetrics");
		if (!json_is_object(rm) || (sms && !json_is_array(sms))) {
			bad(&c, "expected an object with an array \"scopeMetrics\"");
			goto fail;
		}
		json_array_foreach(sms, j, sm) {
			snprintf(c.path, sizeof c.path, "resourceMetrics[%zu].scopeMetrics[%zu]", i, j);
			json_t *ms = json_object_get(sm, "metrics"), *base;
			if (!json_is_object(sm) || (ms && !json_is_array(ms))) {
				bad(&c, "expected an object with an array \"metrics\"");
				goto fail;
			}
			if (base_labels(&c, json_object_get(rm, "resource"), json_object_get(sm, "scope"),
					&base) < 0)
				goto fail;
			json_array_foreach(ms, k, m) {
				snprintf(c.path, sizeof c.path,
					 "resourceMetrics[%zu].scopeMetrics[%zu].metrics[%zu]", i, j, k);
				if (one_metric(&c, base, m) < 0) {
					json_decref(base);
					goto fail;
				}
			}
			json_decref(base);
		}
	}
	return 0;
fail:
	json_decref(out->series);
	out->series = NULL;
	return SDK_EINVAL;
}
