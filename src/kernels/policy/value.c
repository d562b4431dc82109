#include "kernels/policy/value.h"

#include "kernels/policy/ext.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t cedar_uid_hash(const char *type, uint32_t tlen, const char *id, uint32_t ilen)
{
	/* FNV-1a over type, a separator no type contains, and id. */
	uint64_t h = 1469598103934665603ULL;
	for (uint32_t i = 0; i < tlen; i++)
		h = (h ^ (uint8_t)type[i]) * 1099511628211ULL;
	h = (h ^ 0xffu) * 1099511628211ULL;
	for (uint32_t i = 0; i < ilen; i++)
		h = (h ^ (uint8_t)id[i]) * 1099511628211ULL;
	return h ^ (h >> 29);
}

cedar_uid *cedar_uid_new(cedar_arena *a, const char *type, uint32_t tlen, const char *id,
			 uint32_t ilen)
{
	cedar_uid *u = cedar_arena_alloc(a, sizeof *u);
	char *t = cedar_arena_strndup(a, type, tlen);
	char *i = cedar_arena_strndup(a, id, ilen);
	if (!u || !t || !i)
		return NULL;
	*u = (cedar_uid){ .type = t, .id = i, .type_len = tlen, .id_len = ilen,
			  .hash = cedar_uid_hash(type, tlen, id, ilen) };
	return u;
}

int cedar_bytes_cmp(const char *a, uint32_t an, const char *b, uint32_t bn)
{
	uint32_t n = an < bn ? an : bn;
	int c = n ? memcmp(a, b, n) : 0;
	if (c)
		return c < 0 ? -1 : 1;
	return an < bn ? -1 : an > bn;
}

int cedar_uid_cmp(const cedar_uid *a, const cedar_uid *b)
{
	if (a == b)
		return 0;
	int c = cedar_bytes_cmp(a->type, a->type_len, b->type, b->type_len);
	return c ? c : cedar_bytes_cmp(a->id, a->id_len, b->id, b->id_len);
}

static int cmp_i64(int64_t a, int64_t b)
{
	return a < b ? -1 : a > b;
}

int cedar_value_cmp(const cedar_value *a, const cedar_value *b)
{
	if (a->kind != b->kind)
		return a->kind < b->kind ? -1 : 1;
	switch (a->kind) {
	case CEDAR_BOOL: return (int)a->b - (int)b->b;
	case CEDAR_LONG:
	case CEDAR_DECIMAL:
	case CEDAR_DATETIME:
	case CEDAR_DURATION: return cmp_i64(a->i, b->i);
	case CEDAR_STRING: return cedar_bytes_cmp(a->s, a->n, b->s, b->n);
	case CEDAR_ENTITY: return cedar_uid_cmp(a->uid, b->uid);
	case CEDAR_SET: {
		uint32_t n = a->n < b->n ? a->n : b->n;
		for (uint32_t i = 0; i < n; i++) {
			int c = cedar_value_cmp(&a->items[i], &b->items[i]);
			if (c)
				return c;
		}
		return a->n < b->n ? -1 : a->n > b->n;
	}
	case CEDAR_RECORD: {
		uint32_t n = a->n < b->n ? a->n : b->n;
		for (uint32_t i = 0; i < n; i++) {
			const cedar_attr *x = &a->attrs[i], *y = &b->attrs[i];
			int c = cedar_bytes_cmp(x->key, x->key_len, y->key, y->key_len);
			if (!c)
				c = cedar_value_cmp(&x->val, &y->val);
			if (c)
				return c;
		}
		return a->n < b->n ? -1 : a->n > b->n;
	}
	case CEDAR_IP: {
		const cedar_ipaddr *x = a->ip, *y = b->ip;
		if (x->v6 != y->v6)
			return x->v6 < y->v6 ? -1 : 1;
		int c = memcmp(x->addr, y->addr, x->v6 ? 16 : 4);
		if (c)
			return c < 0 ? -1 : 1;
		return x->prefix < y->prefix ? -1 : x->prefix > y->prefix;
	}
	default: return 0;
	}
}

bool cedar_value_eq(const cedar_value *a, const cedar_value *b)
{
	if (a->kind != b->kind)
		return false;
	switch (a->kind) {
	case CEDAR_BOOL: return a->b == b->b;
	case CEDAR_LONG:
	case CEDAR_DECIMAL:
	case CEDAR_DATETIME:
	case CEDAR_DURATION: return a->i == b->i;
	case CEDAR_STRING: return cedar_bytes_eq(a->s, a->n, b->s, b->n);
	case CEDAR_ENTITY: return cedar_uid_eq(a->uid, b->uid);
	default: return a->n == b->n && cedar_value_cmp(a, b) == 0;
	}
}

static int value_qcmp(const void *a, const void *b)
{
	return cedar_value_cmp(a, b);
}

/* Insertion sort for the small sets policies are made of; qsort past that. */
static void sort_values(cedar_value *v, uint32_t n)
{
	if (n > 16) {
		qsort(v, n, sizeof *v, value_qcmp);
		return;
	}
	for (uint32_t i = 1; i < n; i++) {
		cedar_value x = v[i];
		uint32_t j = i;
		while (j > 0 && cedar_value_cmp(&v[j - 1], &x) > 0) {
			v[j] = v[j - 1];
			j--;
		}
		v[j] = x;
	}
}

cedar_value cedar_set_of(cedar_value *items, uint32_t n)
{
	sort_values(items, n);
	uint32_t m = 0;
	for (uint32_t i = 0; i < n; i++)
		if (m == 0 || cedar_value_cmp(&items[m - 1], &items[i]) != 0)
			items[m++] = items[i];
	return (cedar_value){ .kind = CEDAR_SET, .n = m, .items = items };
}

bool cedar_set_contains(const cedar_value *set, const cedar_value *v)
{
	uint32_t lo = 0, hi = set->n;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		int c = cedar_value_cmp(&set->items[mid], v);
		if (c == 0)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

static int attr_qcmp(const void *a, const void *b)
{
	const cedar_attr *x = a, *y = b;
	return cedar_bytes_cmp(x->key, x->key_len, y->key, y->key_len);
}

int cedar_record_of(cedar_attr *attrs, uint32_t n, cedar_value *out, const cedar_attr **dup)
{
	if (n > 16) {
		qsort(attrs, n, sizeof *attrs, attr_qcmp);
	} else {
		for (uint32_t i = 1; i < n; i++) {
			cedar_attr x = attrs[i];
			uint32_t j = i;
			while (j > 0 && attr_qcmp(&attrs[j - 1], &x) > 0) {
				attrs[j] = attrs[j - 1];
				j--;
			}
			attrs[j] = x;
		}
	}
	for (uint32_t i = 1; i < n; i++)
		if (attr_qcmp(&attrs[i - 1], &attrs[i]) == 0) {
			if (dup)
				*dup = &attrs[i];
			return -1;
		}
	*out = (cedar_value){ .kind = CEDAR_RECORD, .n = n, .attrs = attrs };
	return 0;
}

const cedar_value *cedar_record_get(const cedar_value *rec, const char *key, uint32_t len)
{
	const cedar_attr *a = rec->attrs;
	if (rec->n <= 8) {
		for (uint32_t i = 0; i < rec->n; i++)
			if (cedar_bytes_eq(a[i].key, a[i].key_len, key, len))
				return &a[i].val;
		return NULL;
	}
	uint32_t lo = 0, hi = rec->n;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		int c = cedar_bytes_cmp(a[mid].key, a[mid].key_len, key, len);
		if (c == 0)
			return &a[mid].val;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

const char *cedar_kind_name(int kind)
{
	static const char *const names[CEDAR_KINDS] = {
		[CEDAR_BOOL] = "bool",       [CEDAR_LONG] = "long",
		[CEDAR_STRING] = "string",   [CEDAR_ENTITY] = "entity",
		[CEDAR_SET] = "set",         [CEDAR_RECORD] = "record",
		[CEDAR_DECIMAL] = "decimal", [CEDAR_IP] = "ipaddr",
		[CEDAR_DATETIME] = "datetime", [CEDAR_DURATION] = "duration",
	};
	return kind >= 0 && kind < CEDAR_KINDS ? names[kind] : "?";
}

/* A writer that truncates: `len` counts what would have been written. */
typedef struct fmt_buf {
	char *buf;
	size_t cap, len;
} fmt_buf;

static void put(fmt_buf *f, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++, f->len++)
		if (f->len + 1 < f->cap)
			f->buf[f->len] = s[i];
}

static void puts_(fmt_buf *f, const char *s)
{
	put(f, s, strlen(s));
}

static void put_quoted(fmt_buf *f, const char *s, uint32_t n)
{
	put(f, "\"", 1);
	for (uint32_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			char e[2] = { '\\', (char)c };
			put(f, e, 2);
		} else if (c < 0x20) {
			char e[12];
			snprintf(e, sizeof e, "\\u{%x}", c);
			puts_(f, e);
		} else {
			put(f, (const char *)&c, 1);
		}
	}
	put(f, "\"", 1);
}

static void format_value(fmt_buf *f, const cedar_value *v, int depth)
{
	char tmp[64];
	if (f->len >= f->cap)
		return;
	switch (v->kind) {
	case CEDAR_BOOL: puts_(f, v->b ? "true" : "false"); break;
	case CEDAR_LONG:
		snprintf(tmp, sizeof tmp, "%lld", (long long)v->i);
		puts_(f, tmp);
		break;
	case CEDAR_STRING: put_quoted(f, v->s, v->n); break;
	case CEDAR_ENTITY:
		put(f, v->uid->type, v->uid->type_len);
		puts_(f, "::");
		put_quoted(f, v->uid->id, v->uid->id_len);
		break;
	case CEDAR_SET:
		puts_(f, "[");
		for (uint32_t i = 0; i < v->n && depth < 8; i++) {
			if (i)
				puts_(f, ", ");
			format_value(f, &v->items[i], depth + 1);
		}
		puts_(f, "]");
		break;
	case CEDAR_RECORD:
		puts_(f, "{");
		for (uint32_t i = 0; i < v->n && depth < 8; i++) {
			if (i)
				puts_(f, ", ");
			put_quoted(f, v->attrs[i].key, v->attrs[i].key_len);
			puts_(f, ": ");
			format_value(f, &v->attrs[i].val, depth + 1);
		}
		puts_(f, "}");
		break;
	case CEDAR_DECIMAL:
		cedar_decimal_format(v->i, tmp, sizeof tmp);
		puts_(f, "decimal(\"");
		puts_(f, tmp);
		puts_(f, "\")");
		break;
	case CEDAR_IP:
		cedar_ip_format(v->ip, tmp, sizeof tmp);
		puts_(f, "ip(\"");
		puts_(f, tmp);
		puts_(f, "\")");
		break;
	case CEDAR_DATETIME:
		cedar_datetime_format(v->i, tmp, sizeof tmp);
		puts_(f, "datetime(\"");
		puts_(f, tmp);
		puts_(f, "\")");
		break;
	case CEDAR_DURATION:
		cedar_duration_format(v->i, tmp, sizeof tmp);
		puts_(f, "duration(\"");
		puts_(f, tmp);
		puts_(f, "\")");
		break;
	}
}

void cedar_value_format(const cedar_value *v, char *buf, size_t cap)
{
	if (!cap)
		return;
	fmt_buf f = { buf, cap, 0 };
	format_value(&f, v, 0);
	if (f.len >= cap && cap >= 4)
		memcpy(buf + cap - 4, "...", 3), f.len = cap - 1;
	buf[f.len < cap ? f.len : cap - 1] = 0;
}

void cedar_utf8_sanitize(char *msg)
{
	unsigned char *u = (unsigned char *)msg;
	for (size_t i = 0; u[i];) {
		unsigned c = u[i];
		size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
		bool ok = len > 0;
		uint32_t cp = len == 1 ? c : len ? c & (0x7fu >> len) : 0;
		for (size_t k = 1; ok && k < len; k++) {
			if ((u[i + k] & 0xc0) != 0x80)
				ok = false;
			else
				cp = cp << 6 | (u[i + k] & 0x3fu);
		}
		if (ok && len > 1) {
			static const uint32_t min[5] = { 0, 0, 0x80, 0x800, 0x10000 };
			ok = cp >= min[len] && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff);
		}
		if (!ok) {
			u[i++] = '?';
			continue;
		}
		i += len;
	}
}
