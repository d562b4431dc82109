#include "kernels/policy/eval.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static __attribute__((format(printf, 2, 3))) int fail(cedar_eval *ev, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ev->err, sizeof ev->err, fmt, ap);
	va_end(ap);
	return -1;
}

static int type_error(cedar_eval *ev, const char *want, const cedar_value *got)
{
	char shown[80];
	cedar_value_format(got, shown, sizeof shown);
	return fail(ev, "type error: expected %s, got %s: %s", want, cedar_kind_name(got->kind), shown);
}

static int want(cedar_eval *ev, const cedar_value *v, int kind)
{
	return v->kind == kind ? 0 : type_error(ev, cedar_kind_name(kind), v);
}

static int oom(cedar_eval *ev)
{
	return fail(ev, "out of memory while evaluating");
}

static const char *entity_label(const cedar_uid *u, char *buf, size_t cap)
{
	cedar_value v = cedar_uid_value(u);
	cedar_value_format(&v, buf, cap);
	return buf;
}

bool cedar_like(const cedar_pattern *pat, const char *s, uint32_t n)
{
	uint32_t k = pat->n;
	if (k == 0)
		return n == 0;
	/* No wildcard: the one literal is the whole string. */
	if (k == 1 && !pat->el[0].star)
		return cedar_bytes_eq(pat->el[0].s, pat->el[0].len, s, n);
	uint32_t lo = 0, hi = n, first = 0, last = k;
	if (!pat->el[0].star) {
		uint32_t len = pat->el[0].len;
		if (len > n || memcmp(pat->el[0].s, s, len))
			return false;
		lo = len;
		first = 1;
	}
	if (!pat->el[k - 1].star) {
		uint32_t len = pat->el[k - 1].len;
		if (len > hi - lo || memcmp(pat->el[k - 1].s, s + n - len, len))
			return false;
		hi = n - len;
		last = k - 1;
	}
	/* Between the anchored ends, each literal at its leftmost place. */
	for (uint32_t i = first; i < last; i++) {
		if (pat->el[i].star)
			continue;
		uint32_t len = pat->el[i].len;
		const char *at = len <= hi - lo ? memmem(s + lo, hi - lo, pat->el[i].s, len) : NULL;
		if (!at)
			return false;
		lo = (uint32_t)(at - s) + len;
	}
	return true;
}

static int eval(cedar_eval *ev, const cedar_expr *e, cedar_value *out);

static int eval_bool(cedar_eval *ev, const cedar_expr *e, bool *out)
{
	cedar_value v;
	if (eval(ev, e, &v) < 0 || want(ev, &v, CEDAR_BOOL) < 0)
		return -1;
	*out = v.b;
	return 0;
}

static int eval_in(cedar_eval *ev, const cedar_value *a, const cedar_value *b, cedar_value *out)
{
	if (a->kind != CEDAR_ENTITY)
		return type_error(ev, "entity", a);
	if (b->kind == CEDAR_ENTITY) {
		int r = cedar_view_in(&ev->view, ev->arena, a->uid, b->uid);
		if (r < 0)
			return oom(ev);
		*out = cedar_bool(r);
		return 0;
	}
	if (b->kind != CEDAR_SET)
		return type_error(ev, "set or entity", b);
	for (uint32_t i = 0; i < b->n; i++)
		if (b->items[i].kind != CEDAR_ENTITY)
			return type_error(ev, "entity", &b->items[i]);
	for (uint32_t i = 0; i < b->n; i++) {
		int r = cedar_view_in(&ev->view, ev->arena, a->uid, b->items[i].uid);
		if (r < 0)
			return oom(ev);
		if (r) {
			*out = cedar_bool(true);
			return 0;
		}
	}
	*out = cedar_bool(false);
	return 0;
}

/* a ⊇ b, both sorted. */
static bool superset(const cedar_value *a, const cedar_value *b)
{
	uint32_t i = 0;
	for (uint32_t j = 0; j < b->n; j++) {
		int c = -1;
		while (i < a->n && (c = cedar_value_cmp(&a->items[i], &b->items[j])) < 0)
			i++;
		if (i == a->n || c != 0)
			return false;
		i++;
	}
	return true;
}

static bool intersects(const cedar_value *a, const cedar_value *b)
{
	uint32_t i = 0, j = 0;
	while (i < a->n && j < b->n) {
		int c = cedar_value_cmp(&a->items[i], &b->items[j]);
		if (c == 0)
			return true;
		if (c < 0)
			i++;
		else
			j++;
	}
	return false;
}

static int eval_compare(cedar_eval *ev, int op, const cedar_value *a, const cedar_value *b,
			cedar_value *out)
{
	bool ok_a = a->kind == CEDAR_LONG || a->kind == CEDAR_DATETIME || a->kind == CEDAR_DURATION;
	bool ok_b = b->kind == CEDAR_LONG || b->kind == CEDAR_DATETIME || b->kind == CEDAR_DURATION;
	if (a->kind == b->kind && ok_a) {
		*out = cedar_bool(op == OP_LT ? a->i < b->i : a->i <= b->i);
		return 0;
	}
	if (ok_a)
		return type_error(ev, cedar_kind_name(a->kind), b);
	if (ok_b)
		return type_error(ev, cedar_kind_name(b->kind), a);
	return type_error(ev, "long, datetime or duration", a);
}

static int eval_arith(cedar_eval *ev, int op, const cedar_value *a, const cedar_value *b,
		      cedar_value *out)
{
	if (want(ev, a, CEDAR_LONG) < 0 || want(ev, b, CEDAR_LONG) < 0)
		return -1;
	int64_t r;
	bool over = op == OP_ADD ? __builtin_add_overflow(a->i, b->i, &r)
		    : op == OP_SUB ? __builtin_sub_overflow(a->i, b->i, &r)
				   : __builtin_mul_overflow(a->i, b->i, &r);
	if (over)
		return fail(ev, "integer overflow while attempting to %s the values %lld and %lld",
			    op == OP_ADD ? "add" : op == OP_SUB ? "subtract" : "multiply",
			    (long long)a->i, (long long)b->i);
	*out = cedar_long(r);
	return 0;
}

static int get_attr(cedar_eval *ev, const cedar_expr *e, const cedar_value *t, cedar_value *out)
{
	char label[128];
	if (t->kind == CEDAR_RECORD) {
		const cedar_value *v = cedar_record_get(t, e->str, e->n);
		if (!v)
			return fail(ev, "record does not have the attribute `%.*s`", (int)(e->n > 80 ? 80 : e->n),
				    e->str);
		*out = *v;
		return 0;
	}
	if (t->kind != CEDAR_ENTITY)
		return type_error(ev, "record or entity", t);
	const cedar_entity *ent = cedar_view_get(&ev->view, t->uid);
	if (!ent)
		return fail(ev, "entity `%s` does not exist", entity_label(t->uid, label, sizeof label));
	const cedar_value *v = cedar_record_get(&ent->attrs, e->str, e->n);
	if (!v)
		return fail(ev, "`%s` does not have the attribute `%.*s`",
			    entity_label(t->uid, label, sizeof label), (int)(e->n > 80 ? 80 : e->n), e->str);
	*out = *v;
	return 0;
}

static int has_attr(cedar_eval *ev, const cedar_expr *e, const cedar_value *t, cedar_value *out)
{
	if (t->kind == CEDAR_RECORD) {
		*out = cedar_bool(cedar_record_get(t, e->str, e->n) != NULL);
		return 0;
	}
	if (t->kind != CEDAR_ENTITY)
		return type_error(ev, "record or entity", t);
	const cedar_entity *ent = cedar_view_get(&ev->view, t->uid);
	*out = cedar_bool(ent && cedar_record_get(&ent->attrs, e->str, e->n));
	return 0;
}

static int tag_op(cedar_eval *ev, int op, const cedar_value *a, const cedar_value *b,
		  cedar_value *out)
{
	char label[128];
	if (want(ev, a, CEDAR_ENTITY) < 0 || want(ev, b, CEDAR_STRING) < 0)
		return -1;
	const cedar_entity *ent = cedar_view_get(&ev->view, a->uid);
	const cedar_value *v = ent ? cedar_record_get(&ent->tags, b->s, b->n) : NULL;
	if (op == OP_HAS_TAG) {
		*out = cedar_bool(v != NULL);
		return 0;
	}
	if (!ent)
		return fail(ev, "entity `%s` does not exist", entity_label(a->uid, label, sizeof label));
	if (!v)
		return fail(ev, "`%s` does not have the tag `%.*s`", entity_label(a->uid, label, sizeof label),
			    (int)(b->n > 80 ? 80 : b->n), b->s);
	*out = *v;
	return 0;
}

static int eval_set(cedar_eval *ev, const cedar_expr *e, cedar_value *out)
{
	cedar_value *items = cedar_arena_alloc(ev->arena, sizeof *items * (e->n ? e->n : 1));
	if (!items)
		return oom(ev);
	for (uint32_t i = 0; i < e->n; i++)
		if (eval(ev, e->items[i], &items[i]) < 0)
			return -1;
	*out = cedar_set_of(items, e->n);
	return 0;
}

static int eval_record(cedar_eval *ev, const cedar_expr *e, cedar_value *out)
{
	cedar_attr *attrs = cedar_arena_alloc(ev->arena, sizeof *attrs * (e->n ? e->n : 1));
	if (!attrs)
		return oom(ev);
	for (uint32_t i = 0; i < e->n; i++) {
		attrs[i].key = e->keys[i];
		attrs[i].key_len = e->key_lens[i];
		if (eval(ev, e->items[i], &attrs[i].val) < 0)
			return -1;
	}
	/* The parser sorted the keys, so this is a record as it stands. */
	*out = (cedar_value){ .kind = CEDAR_RECORD, .n = e->n, .attrs = attrs };
	return 0;
}

static int eval_call(cedar_eval *ev, const cedar_expr *e, cedar_value *out)
{
	cedar_value args[8];
	if (e->n > 8)
		return fail(ev, "wrong number of arguments provided to extension function `%s`: "
				"expected %u, got %u", e->fn->name, e->fn->arity, e->n);
	for (uint32_t i = 0; i < e->n; i++)
		if (eval(ev, e->items[i], &args[i]) < 0)
			return -1;
	sdk_err why;
	if (cedar_ext_call(e->fn, ev->arena, args, e->n, out, &why) < 0) {
		snprintf(ev->err, sizeof ev->err, "%s", why.msg);
		return -1;
	}
	return 0;
}

static int eval(cedar_eval *ev, const cedar_expr *e, cedar_value *out)
{
	cedar_value a, b;
	bool t;
	switch (e->op) {
	case OP_LIT: *out = e->lit; return 0;
	case OP_VAR:
		switch (e->var) {
		case VAR_PRINCIPAL: *out = cedar_uid_value(ev->principal); return 0;
		case VAR_ACTION: *out = cedar_uid_value(ev->action); return 0;
		case VAR_RESOURCE: *out = cedar_uid_value(ev->resource); return 0;
		default: *out = ev->context; return 0;
		}
	case OP_IF:
		if (eval_bool(ev, e->a, &t) < 0)
			return -1;
		return eval(ev, t ? e->b : e->c, out);
	case OP_AND:
		if (eval_bool(ev, e->a, &t) < 0)
			return -1;
		if (!t) {
			*out = cedar_bool(false);
			return 0;
		}
		if (eval_bool(ev, e->b, &t) < 0)
			return -1;
		*out = cedar_bool(t);
		return 0;
	case OP_OR:
		if (eval_bool(ev, e->a, &t) < 0)
			return -1;
		if (t) {
			*out = cedar_bool(true);
			return 0;
		}
		if (eval_bool(ev, e->b, &t) < 0)
			return -1;
		*out = cedar_bool(t);
		return 0;
	case OP_NOT:
		if (eval_bool(ev, e->a, &t) < 0)
			return -1;
		*out = cedar_bool(!t);
		return 0;
	case OP_NEG:
		if (eval(ev, e->a, &a) < 0 || want(ev, &a, CEDAR_LONG) < 0)
			return -1;
		if (a.i == INT64_MIN)
			return fail(ev, "integer overflow while attempting to negate %lld", (long long)a.i);
		*out = cedar_long(-a.i);
		return 0;
	case OP_IS_EMPTY:
		if (eval(ev, e->a, &a) < 0 || want(ev, &a, CEDAR_SET) < 0)
			return -1;
		*out = cedar_bool(a.n == 0);
		return 0;
	case OP_GET_ATTR:
		if (eval(ev, e->a, &a) < 0)
			return -1;
		return get_attr(ev, e, &a, out);
	case OP_HAS_ATTR:
		if (eval(ev, e->a, &a) < 0)
			return -1;
		return has_attr(ev, e, &a, out);
	case OP_LIKE:
		if (eval(ev, e->a, &a) < 0 || want(ev, &a, CEDAR_STRING) < 0)
			return -1;
		*out = cedar_bool(cedar_like(e->pat, a.s, a.n));
		return 0;
	case OP_IS:
		if (eval(ev, e->a, &a) < 0 || want(ev, &a, CEDAR_ENTITY) < 0)
			return -1;
		*out = cedar_bool(cedar_bytes_eq(a.uid->type, a.uid->type_len, e->str, e->n));
		return 0;
	case OP_SET: return eval_set(ev, e, out);
	case OP_RECORD: return eval_record(ev, e, out);
	case OP_CALL: return eval_call(ev, e, out);
	default: break;
	}
	/* The binary operators: both operands first, then their types. */
	if (eval(ev, e->a, &a) < 0 || eval(ev, e->b, &b) < 0)
		return -1;
	switch (e->op) {
	case OP_EQ: *out = cedar_bool(cedar_value_eq(&a, &b)); return 0;
	case OP_LT:
	case OP_LE: return eval_compare(ev, e->op, &a, &b, out);
	case OP_ADD:
	case OP_SUB:
	case OP_MUL: return eval_arith(ev, e->op, &a, &b, out);
	case OP_IN: return eval_in(ev, &a, &b, out);
	case OP_CONTAINS:
		if (want(ev, &a, CEDAR_SET) < 0)
			return -1;
		*out = cedar_bool(cedar_set_contains(&a, &b));
		return 0;
	case OP_CONTAINS_ALL:
		if (want(ev, &a, CEDAR_SET) < 0 || want(ev, &b, CEDAR_SET) < 0)
			return -1;
		*out = cedar_bool(superset(&a, &b));
		return 0;
	case OP_CONTAINS_ANY:
		if (want(ev, &a, CEDAR_SET) < 0 || want(ev, &b, CEDAR_SET) < 0)
			return -1;
		*out = cedar_bool(intersects(&a, &b));
		return 0;
	case OP_GET_TAG:
	case OP_HAS_TAG: return tag_op(ev, e->op, &a, &b, out);
	default: return fail(ev, "internal error: unknown operator %d", e->op);
	}
}

int cedar_eval_expr(cedar_eval *ev, const cedar_expr *e, cedar_value *out)
{
	ev->err[0] = 0;
	int rc = eval(ev, e, out);
	if (rc < 0)
		cedar_utf8_sanitize(ev->err);
	return rc;
}
