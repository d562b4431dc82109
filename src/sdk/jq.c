#include "sdk/jq.h"

#include <jq.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Before every expression: no environment, no modules (see jq.h). */
static const char JQ_PREFIX[] = "def env: {}; {} as $ENV | (";
static const char JQ_SUFFIX[] = "\n)";

struct sdk_jq_prog {
	char *text;
	jq_state *jq;
	unsigned refs;
	sdk_jq_prog *hnext;             /* the cache's bucket chain */
	sdk_jq_prog *lru_prev, *lru_next; /* unused programs, oldest first */
	bool cached;
};

/* The first message jq reports while compiling, cleaned for a human. */
struct compile_msg {
	char text[sizeof ((sdk_err *)0)->msg];
	bool set;
};

static void on_jq_error(void *arg, jv msg)
{
	struct compile_msg *m = arg;
	if (!m->set) {
		jv s = jv_get_kind(msg) == JV_KIND_STRING ? jv_copy(msg) : jv_dump_string(jv_copy(msg), 0);
		const char *t = jv_string_value(s);
		if (!strncmp(t, "jq: error: ", 11))
			t += 11;
		size_t n = strcspn(t, "\n");
		snprintf(m->text, sizeof m->text, "%.*s", (int)n, t);
		char *q = strstr(m->text, " (Unix shell quoting issues?)");
		if (q)
			memmove(q, q + 29, strlen(q + 29) + 1);
		/* Locations count our prefix: drop them rather than mislead. */
		q = strstr(m->text, " at <top-level>");
		if (q)
			*q = '\0';
		m->set = true;
		jv_free(s);
	}
	jv_free(msg);
}

sdk_jq_prog *sdk_jq_compile(const char *text, sdk_err *err)
{
	size_t n = strlen(text);
	if (n == 0) {
		sdk_fail(err, SDK_EINVAL, "empty expression");
		return NULL;
	}
	if (n > SDK_JQ_TEXT_MAX) {
		sdk_fail(err, SDK_EINVAL, "expression longer than %d bytes", SDK_JQ_TEXT_MAX);
		return NULL;
	}
	if (memchr(text, '\0', n) != NULL) {
		sdk_fail(err, SDK_EINVAL, "expression holds a NUL byte");
		return NULL;
	}
	sdk_jq_prog *p = calloc(1, sizeof *p);
	char *full = malloc(sizeof JQ_PREFIX + n + sizeof JQ_SUFFIX);
	if (!p || !full || !(p->text = strdup(text)) || !(p->jq = jq_init())) {
		free(full);
		sdk_jq_prog_free(p);
		sdk_fail(err, SDK_EBUSY, "out of memory");
		return NULL;
	}
	memcpy(full, JQ_PREFIX, sizeof JQ_PREFIX - 1);
	memcpy(full + sizeof JQ_PREFIX - 1, text, n);
	memcpy(full + sizeof JQ_PREFIX - 1 + n, JQ_SUFFIX, sizeof JQ_SUFFIX);
	struct compile_msg m = { .set = false };
	jq_set_error_cb(p->jq, on_jq_error, &m);
	int ok = jq_compile(p->jq, full);
	free(full);
	jq_set_error_cb(p->jq, NULL, NULL);
	if (!ok) {
		sdk_fail(err, SDK_EINVAL, "%s", m.set ? m.text : "does not compile");
		sdk_jq_prog_free(p);
		return NULL;
	}
	return p;
}

void sdk_jq_prog_free(sdk_jq_prog *p)
{
	if (!p)
		return;
	if (p->jq)
		jq_teardown(&p->jq);
	free(p->text);
	free(p);
}

const char *sdk_jq_prog_text(const sdk_jq_prog *p) { return p->text; }

int sdk_jq_truthy(const json_t *v) { return v && !json_is_false(v) && !json_is_null(v); }

/* json_t to jv; jv_invalid() when too deep. */
static jv to_jv(json_t *v, int depth)
{
	if (depth > SDK_JQ_DEPTH_MAX)
		return jv_invalid();
	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		jv o = jv_object();
		const char *k;
		json_t *x;
		json_object_foreach(v, k, x) {
			jv e = to_jv(x, depth + 1);
			if (!jv_is_valid(e)) {
				jv_free(o);
				return e;
			}
			o = jv_object_set(o, jv_string_sized(k, (int)strlen(k)), e);
		}
		return o;
	}
	case JSON_ARRAY: {
		jv a = jv_array_sized((int)json_array_size(v));
		size_t i;
		json_t *x;
		json_array_foreach(v, i, x) {
			jv e = to_jv(x, depth + 1);
			if (!jv_is_valid(e)) {
				jv_free(a);
				return e;
			}
			a = jv_array_append(a, e);
		}
		return a;
	}
	case JSON_STRING:
		return jv_string_sized(json_string_value(v), (int)json_string_length(v));
	case JSON_INTEGER:
		return jv_number((double)json_integer_value(v));
	case JSON_REAL:
		return jv_number(json_real_value(v));
	case JSON_TRUE:
		return jv_true();
	case JSON_FALSE:
		return jv_false();
	default:
		return jv_null();
	}
}

/* jv (consumed) to json_t; NULL when too deep or too large. */
static json_t *from_jv(jv v, int depth, size_t *nodes)
{
	if (depth > SDK_JQ_DEPTH_MAX || ++*nodes > SDK_JQ_NODES_MAX) {
		jv_free(v);
		return NULL;
	}
	json_t *out = NULL;
	switch (jv_get_kind(v)) {
	case JV_KIND_OBJECT: {
		out = json_object();
		for (int it = jv_object_iter(v); out && jv_object_iter_valid(v, it);
		     it = jv_object_iter_next(v, it)) {
			jv k = jv_object_iter_key(v, it);
			json_t *e = from_jv(jv_object_iter_value(v, it), depth + 1, nodes);
			if (!e || json_object_set_new(out, jv_string_value(k), e) < 0) {
				json_decref(out);
				out = NULL;
			}
			jv_free(k);
		}
		break;
	}
	case JV_KIND_ARRAY: {
		out = json_array();
		int n = jv_array_length(jv_copy(v));
		for (int i = 0; out && i < n; i++) {
			json_t *e = from_jv(jv_array_get(jv_copy(v), i), depth + 1, nodes);
			if (!e || json_array_append_new(out, e) < 0) {
				json_decref(out);
				out = NULL;
			}
		}
		break;
	}
	case JV_KIND_STRING:
		out = json_stringn(jv_string_value(v), (size_t)jv_string_length_bytes(jv_copy(v)));
		break;
	case JV_KIND_NUMBER: {
		double d = jv_number_value(v);
		if (isnan(d))
			out = json_null();
		else if (isinf(d))
			out = json_real(d > 0 ? 1.7976931348623157e308 : -1.7976931348623157e308);
		else if (d >= -9007199254740992.0 && d <= 9007199254740992.0 && d == (double)(long long)d)
			out = json_integer((json_int_t)d);
		else
			out = json_real(d);
		break;
	}
	case JV_KIND_TRUE:
		out = json_true();
		break;
	case JV_KIND_FALSE:
		out = json_false();
		break;
	default:
		out = json_null();
		break;
	}
	jv_free(v);
	return out;
}

int sdk_jq_eval(sdk_jq_prog *p, json_t *input, json_t **out, sdk_err *err)
{
	*out = NULL;
	jv in = to_jv(input ? input : json_null(), 0);
	if (!jv_is_valid(in))
		return sdk_fail(err, SDK_EINVAL, "input nested deeper than %d", SDK_JQ_DEPTH_MAX);
	jq_start(p->jq, in, 0);
	jv r = jq_next(p->jq);
	if (jq_halted(p->jq)) {
		jv_free(r);
		jq_start(p->jq, jv_null(), 0); /* drops what is left of the run */
		return sdk_fail(err, SDK_EINVAL, "the expression halted");
	}
	if (!jv_is_valid(r)) {
		if (!jv_invalid_has_msg(jv_copy(r))) {
			jv_free(r);
			return 0;
		}
		jv m = jv_invalid_get_msg(r);
		if (jv_get_kind(m) == JV_KIND_STRING) {
			sdk_fail(err, SDK_EINVAL, "%s", jv_string_value(m));
			jv_free(m);
		} else {
			jv s = jv_dump_string(m, 0);
			sdk_fail(err, SDK_EINVAL, "%s (not a string)", jv_string_value(s));
			jv_free(s);
		}
		return SDK_EINVAL;
	}
	size_t nodes = 0;
	*out = from_jv(r, 0, &nodes);
	/* Leave no generator state behind: the next start would drop it
	 * anyway, but a large one would be held until then. */
	jq_start(p->jq, jv_null(), 0);
	if (!*out)
		return sdk_fail(err, SDK_EINVAL, "result nested deeper than %d or over %d values",
				SDK_JQ_DEPTH_MAX, SDK_JQ_NODES_MAX);
	return 1;
}

/* ---- the cache ---- */

#define CACHE_BUCKETS 1024

struct sdk_jq_cache {
	sdk_jq_prog *buckets[CACHE_BUCKETS];
	sdk_jq_prog *lru_head, *lru_tail; /* unused programs */
	size_t n, unused, keep_unused;
};

static size_t text_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return (size_t)(h % CACHE_BUCKETS);
}

sdk_jq_cache *sdk_jq_cache_new(size_t keep_unused)
{
	sdk_jq_cache *c = calloc(1, sizeof *c);
	if (c)
		c->keep_unused = keep_unused;
	return c;
}

void sdk_jq_cache_free(sdk_jq_cache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < CACHE_BUCKETS; i++)
		for (sdk_jq_prog *p = c->buckets[i], *next; p; p = next) {
			next = p->hnext;
			sdk_jq_prog_free(p);
		}
	free(c);
}

static void lru_unlink(sdk_jq_cache *c, sdk_jq_prog *p)
{
	if (p->lru_prev)
		p->lru_prev->lru_next = p->lru_next;
	else
		c->lru_head = p->lru_next;
	if (p->lru_next)
		p->lru_next->lru_prev = p->lru_prev;
	else
		c->lru_tail = p->lru_prev;
	p->lru_prev = p->lru_next = NULL;
	c->unused--;
}

static void cache_remove(sdk_jq_cache *c, sdk_jq_prog *p)
{
	sdk_jq_prog **pp = &c->buckets[text_hash(p->text)];
	while (*pp && *pp != p)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = p->hnext;
	c->n--;
}

sdk_jq_prog *sdk_jq_cache_get(sdk_jq_cache *c, const char *text)
{
	for (sdk_jq_prog *p = c->buckets[text_hash(text)]; p; p = p->hnext)
		if (!strcmp(p->text, text)) {
			if (p->refs++ == 0)
				lru_unlink(c, p);
			return p;
		}
	return NULL;
}

sdk_jq_prog *sdk_jq_cache_adopt(sdk_jq_cache *c, sdk_jq_prog *p)
{
	sdk_jq_prog *have = sdk_jq_cache_get(c, p->text);
	if (have) {
		sdk_jq_prog_free(p);
		return have;
	}
	size_t h = text_hash(p->text);
	p->hnext = c->buckets[h];
	c->buckets[h] = p;
	p->cached = true;
	p->refs = 1;
	c->n++;
	return p;
}

void sdk_jq_cache_release(sdk_jq_cache *c, sdk_jq_prog *p)
{
	if (!p || p->refs == 0 || --p->refs > 0)
		return;
	p->lru_prev = c->lru_tail;
	p->lru_next = NULL;
	if (c->lru_tail)
		c->lru_tail->lru_next = p;
	else
		c->lru_head = p;
	c->lru_tail = p;
	c->unused++;
	while (c->unused > c->keep_unused && c->lru_head) {
		sdk_jq_prog *old = c->lru_head;
		lru_unlink(c, old);
		cache_remove(c, old);
		sdk_jq_prog_free(old);
	}
}

size_t sdk_jq_cache_size(const sdk_jq_cache *c) { return c->n; }
