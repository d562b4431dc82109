/* The PostgreSQL engine's SQL text (pg_sql.h). */
#include "serve/memory/pg_sql.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mem_pg_params_free(mem_pg_params *p)
{
	for (int i = 0; i < p->n; i++)
		free(p->v[i]);
	p->n = 0;
}

void mem_pg_param(sdk_buf *sql, mem_pg_params *p, const char *text, size_t len)
{
	if (p->n >= MEM_PG_PARAMS_MAX) {
		p->oom = true;
		return;
	}
	char *v = malloc(len + 1);
	if (!v) {
		p->oom = true;
		return;
	}
	memcpy(v, text, len);
	v[len] = '\0';
	p->v[p->n++] = v;
	sdk_buf_printf(sql, "$%d", p->n);
}

void mem_pg_param_json(sdk_buf *sql, mem_pg_params *p, json_t *v, bool raw)
{
	if (raw && json_is_string(v)) {
		mem_pg_param(sql, p, json_string_value(v), json_string_length(v));
		return;
	}
	/* The same encoding as the stored rows (mem_row_encode), so that a
	 * number compares with the very digits it was stored with. */
	char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!text) {
		p->oom = true;
		return;
	}
	mem_pg_param(sql, p, text, strlen(text));
	free(text);
}

void mem_pg_key_sql(sdk_buf *sql, const char *row, const char *col, enum mem_type type)
{
	switch (type) {
	case MEM_T_NUMBER: sdk_buf_printf(sql, "((%sdata->>'%s')::numeric)", row, col); break;
	case MEM_T_BOOLEAN: sdk_buf_printf(sql, "((%sdata->>'%s')::boolean)", row, col); break;
	case MEM_T_STRING:
	case MEM_T_TEXT: sdk_buf_printf(sql, "((%sdata->>'%s') COLLATE \"C\")", row, col); break;
	default: sdk_buf_printf(sql, "(%sdata->'%s')", row, col); break;
	}
}

/* --------------------------------------------------------------------- */
/* Filters */

static void jval(const mem_term *t, sdk_buf *sql)
{
	sdk_buf_printf(sql, "(r.data->'%s')", t->col);
}

static void jtext(const mem_term *t, sdk_buf *sql)
{
	sdk_buf_printf(sql, "(r.data->>'%s')", t->col);
}

static void jtype(const mem_term *t, sdk_buf *sql)
{
	sdk_buf_printf(sql, "jsonb_typeof(r.data->'%s')", t->col);
}

/* The value a declared column or the id compares with, and its cast. */
static void typed(const mem_term *t, sdk_buf *sql)
{
	if (t->is_id)
		sdk_buf_str(sql, "r.id");
	else
		mem_pg_key_sql(sql, "r.", t->col, t->type);
}

static void typed_param(const mem_term *t, json_t *v, sdk_buf *sql, mem_pg_params *p)
{
	bool text = !t->is_id && (t->type == MEM_T_STRING || t->type == MEM_T_TEXT);
	mem_pg_param_json(sql, p, v, text);
	if (t->is_id)
		sdk_buf_str(sql, "::bigint");
	else if (t->type == MEM_T_NUMBER)
		sdk_buf_str(sql, "::numeric");
	else if (t->type == MEM_T_BOOLEAN)
		sdk_buf_str(sql, "::boolean");
	else
		sdk_buf_str(sql, "::text");
}

/* `v` as an element of an array value: contains on json and undeclared
 * columns. jsonb's @> matches an element of the same kind only (1 is not
 * true, nor "1"), as the SQLite engine's json_each does. */
static void element_sql(const mem_term *t, json_t *v, sdk_buf *sql, mem_pg_params *p)
{
	jtype(t, sql);
	sdk_buf_str(sql, " = 'array' AND ");
	jval(t, sql);
	sdk_buf_str(sql, " @> jsonb_build_array(");
	mem_pg_param_json(sql, p, v, false);
	sdk_buf_str(sql, "::jsonb)");
}

static const char *cmp_op(enum mem_op op)
{
	switch (op) {
	case MEM_OP_GT: return ">";
	case MEM_OP_GTE: return ">=";
	case MEM_OP_LT: return "<";
	default: return "<=";
	}
}

/* An undeclared column: values match values of their own kind only,
 * which jsonb's = does (true is not 1, "1" is not 1); ordered comparisons
 * are between numbers or between strings (by bytes). */
static void any_term(const mem_term *t, sdk_buf *sql, mem_pg_params *p)
{
	json_t *v = t->value;
	switch (t->op) {
	case MEM_OP_EQ:
	case MEM_OP_NE:
		jval(t, sql);
		sdk_buf_str(sql, t->op == MEM_OP_EQ ? " = " : " IS DISTINCT FROM ");
		mem_pg_param_json(sql, p, v, false);
		sdk_buf_str(sql, "::jsonb");
		break;
	case MEM_OP_IN: {
		jval(t, sql);
		sdk_buf_str(sql, " IN (");
		size_t i;
		json_t *m;
		json_array_foreach(v, i, m) {
			sdk_buf_str(sql, i ? ", " : "");
			mem_pg_param_json(sql, p, m, false);
			sdk_buf_str(sql, "::jsonb");
		}
		sdk_buf_str(sql, ")");
		break;
	}
	case MEM_OP_CONTAINS:
		if (!json_is_string(v)) {
			element_sql(t, v, sql, p);
			break;
		}
		sdk_buf_str(sql, "CASE ");
		jtype(t, sql);
		sdk_buf_str(sql, " WHEN 'string' THEN strpos(");
		jtext(t, sql);
		sdk_buf_str(sql, ", ");
		mem_pg_param_json(sql, p, v, true);
		sdk_buf_str(sql, "::text) > 0 WHEN 'array' THEN ");
		jval(t, sql);
		sdk_buf_str(sql, " @> jsonb_build_array(");
		mem_pg_param_json(sql, p, v, true);
		sdk_buf_str(sql, "::text) ELSE false END");
		break;
	default: /* gt gte lt lte: a string or a number (filter.c checked) */
		jtype(t, sql);
		if (json_is_number(v)) {
			sdk_buf_str(sql, " = 'number' AND ");
			jval(t, sql);
			sdk_buf_printf(sql, " %s ", cmp_op(t->op));
			mem_pg_param_json(sql, p, v, false);
			sdk_buf_str(sql, "::jsonb");
		} else {
			sdk_buf_str(sql, " = 'string' AND ");
			jtext(t, sql);
			sdk_buf_printf(sql, " COLLATE \"C\" %s ", cmp_op(t->op));
			mem_pg_param_json(sql, p, v, true);
			sdk_buf_str(sql, "::text");
		}
		break;
	}
}

/* A declared column (or the id): its typed key, so its index serves. */
static void typed_term(const mem_term *t, sdk_buf *sql, mem_pg_params *p)
{
	json_t *v = t->value;
	switch (t->op) {
	case MEM_OP_EQ:
	case MEM_OP_NE:
		typed(t, sql);
		sdk_buf_str(sql, t->op == MEM_OP_EQ ? " = " : " IS DISTINCT FROM ");
		typed_param(t, v, sql, p);
		break;
	case MEM_OP_IN: {
		typed(t, sql);
		sdk_buf_str(sql, " IN (");
		size_t i;
		json_t *m;
		json_array_foreach(v, i, m) {
			sdk_buf_str(sql, i ? ", " : "");
			typed_param(t, m, sql, p);
		}
		sdk_buf_str(sql, ")");
		break;
	}
	case MEM_OP_CONTAINS:
		if (t->type == MEM_T_JSON) {
			element_sql(t, v, sql, p);
		} else { /* string and text: a substring */
			sdk_buf_str(sql, "strpos(");
			jtext(t, sql);
			sdk_buf_str(sql, ", ");
			mem_pg_param_json(sql, p, v, true);
			sdk_buf_str(sql, "::text) > 0");
		}
		break;
	default:
		typed(t, sql);
		sdk_buf_printf(sql, " %s ", cmp_op(t->op));
		typed_param(t, v, sql, p);
		break;
	}
}

static void term_sql(const mem_term *t, sdk_buf *sql, mem_pg_params *p)
{
	sdk_buf_str(sql, " AND (");
	bool null_test = t->op == MEM_OP_EXISTS ||
			 ((t->op == MEM_OP_EQ || t->op == MEM_OP_NE) && json_is_null(t->value));
	if (null_test) {
		/* Missing or null: ->> is NULL for both. */
		bool present = t->op == MEM_OP_EXISTS ? json_is_true(t->value) : t->op == MEM_OP_NE;
		if (t->is_id)
			sdk_buf_str(sql, "r.id");
		else
			jtext(t, sql);
		sdk_buf_str(sql, present ? " IS NOT NULL" : " IS NULL");
	} else if (t->type == MEM_T_ANY && !t->is_id) {
		any_term(t, sql, p);
	} else {
		typed_term(t, sql, p);
	}
	sdk_buf_str(sql, ")");
}

void mem_pg_filter_sql(const mem_filter *f, sdk_buf *sql, mem_pg_params *p)
{
	for (size_t i = 0; i < f->n; i++)
		term_sql(&f->t[i], sql, p);
}

/* --------------------------------------------------------------------- */
/* Order, keys and keysets */

static bool any_key(const mem_order *o, enum mem_type type)
{
	return o->kind == MEM_ORDER_COLUMN && type == MEM_T_ANY;
}

/* A one-expression key: the id, the rank, or a declared column's. */
static void key_expr(const mem_order *o, enum mem_type type, sdk_buf *sql)
{
	switch (o->kind) {
	case MEM_ORDER_ID: sdk_buf_str(sql, "r.id"); break;
	case MEM_ORDER_RANK: sdk_buf_str(sql, MEM_PG_RANK_SQL); break;
	case MEM_ORDER_COLUMN: mem_pg_key_sql(sql, "r.", o->col, type); break;
	}
}

/* The three parts of an undeclared column's key (pg_sql.h). */
static void any_kind(const char *col, sdk_buf *sql)
{
	sdk_buf_printf(sql,
		       "(CASE jsonb_typeof(r.data->'%s') WHEN 'number' THEN 1 WHEN 'boolean' THEN 1"
		       " WHEN 'string' THEN 2 WHEN 'array' THEN 2 WHEN 'object' THEN 2 END)",
		       col);
}

static void any_num(const char *col, sdk_buf *sql)
{
	sdk_buf_printf(sql,
		       "(CASE jsonb_typeof(r.data->'%s') WHEN 'number' THEN (r.data->>'%s')::numeric"
		       " WHEN 'boolean' THEN (r.data->>'%s')::boolean::integer ELSE 0 END)",
		       col, col, col);
}

static void any_txt(const char *col, sdk_buf *sql)
{
	sdk_buf_printf(sql,
		       "((CASE WHEN jsonb_typeof(r.data->'%s') IN ('string', 'array', 'object')"
		       " THEN r.data->>'%s' ELSE '' END) COLLATE \"C\")",
		       col, col);
}

void mem_pg_key_select(const mem_order *o, enum mem_type type, sdk_buf *sql)
{
	sdk_buf_str(sql, ", ");
	if (!any_key(o, type)) {
		key_expr(o, type, sql);
		return;
	}
	any_kind(o->col, sql);
	sdk_buf_str(sql, ", ");
	any_num(o->col, sql);
	sdk_buf_str(sql, ", ");
	any_txt(o->col, sql);
}

void mem_pg_order_sql(const mem_order *o, enum mem_type type, sdk_buf *sql)
{
	const char *dir = o->desc ? "DESC" : "ASC";
	/* SQLite's NULLs sort first ascending; PostgreSQL's last. */
	const char *nulls = o->desc ? "NULLS LAST" : "NULLS FIRST";
	sdk_buf_str(sql, " ORDER BY ");
	if (any_key(o, type)) {
		any_kind(o->col, sql);
		sdk_buf_printf(sql, " %s %s, ", dir, nulls);
		any_num(o->col, sql);
		sdk_buf_printf(sql, " %s, ", dir);
		any_txt(o->col, sql);
		sdk_buf_printf(sql, " %s, ", dir);
	} else if (o->kind != MEM_ORDER_ID) {
		key_expr(o, type, sql);
		sdk_buf_printf(sql, " %s %s, ", dir, nulls);
	}
	sdk_buf_printf(sql, "r.id %s", dir);
}

/* The cursor's key as a parameter of the key's type. */
static void key_param(const mem_order *o, enum mem_type type, json_t *key, sdk_buf *sql,
		      mem_pg_params *p)
{
	bool text = o->kind == MEM_ORDER_COLUMN && (type == MEM_T_STRING || type == MEM_T_TEXT);
	mem_pg_param_json(sql, p, key, text);
	if (o->kind == MEM_ORDER_RANK)
		sdk_buf_str(sql, "::float8");
	else if (type == MEM_T_NUMBER)
		sdk_buf_str(sql, "::numeric");
	else if (type == MEM_T_BOOLEAN)
		sdk_buf_str(sql, "::boolean");
	else
		sdk_buf_str(sql, "::text");
}

/* The null test of the key. */
static void key_null(const mem_order *o, enum mem_type type, bool null, sdk_buf *sql)
{
	sdk_buf_str(sql, " AND ");
	if (any_key(o, type))
		any_kind(o->col, sql);
	else
		key_expr(o, type, sql);
	sdk_buf_str(sql, null ? " IS NULL" : " IS NOT NULL");
}

void mem_pg_keyset_sql(const mem_order *o, enum mem_type type, const mem_cursor *c, int pass,
		       sdk_buf *sql, mem_pg_params *p)
{
	if (!c->set)
		return;
	const char *lt = o->desc ? "<" : ">";
	if (o->kind == MEM_ORDER_ID) {
		sdk_buf_printf(sql, " AND r.id %s ", lt);
		mem_pg_param_json(sql, p, c->id, false);
		sdk_buf_str(sql, "::bigint");
		return;
	}
	if (json_is_null(c->key)) {
		/* Pass 0: the rest of the missing; pass 1 (ascending): the others. */
		key_null(o, type, pass == 0, sql);
		if (pass == 0) {
			sdk_buf_printf(sql, " AND r.id %s ", lt);
			mem_pg_param_json(sql, p, c->id, false);
			sdk_buf_str(sql, "::bigint");
		}
		return;
	}
	if (pass == 1) { /* descending, past every value: the missing */
		key_null(o, type, true, sql);
		return;
	}
	if (any_key(o, type)) {
		/* (kind, num, txt, id) past the cursor's, as a row. */
		bool num = json_is_number(c->key);
		sdk_buf_str(sql, " AND (");
		any_kind(o->col, sql);
		sdk_buf_str(sql, ", ");
		any_num(o->col, sql);
		sdk_buf_str(sql, ", ");
		any_txt(o->col, sql);
		sdk_buf_printf(sql, ", r.id) %s (%d, ", lt, num ? 1 : 2);
		if (num) {
			mem_pg_param_json(sql, p, c->key, false);
			sdk_buf_str(sql, "::numeric, ''::text, ");
		} else {
			sdk_buf_str(sql, "0::numeric, ");
			mem_pg_param_json(sql, p, c->key, true);
			sdk_buf_str(sql, "::text, ");
		}
		mem_pg_param_json(sql, p, c->id, false);
		sdk_buf_str(sql, "::bigint)");
		return;
	}
	/* key >= k (an index range) and, among equal keys, past the id. */
	sdk_buf_str(sql, " AND ");
	key_expr(o, type, sql);
	sdk_buf_printf(sql, " %s= ", lt);
	key_param(o, type, c->key, sql, p);
	sdk_buf_str(sql, " AND (");
	key_expr(o, type, sql);
	sdk_buf_printf(sql, " %s ", lt);
	key_param(o, type, c->key, sql, p);
	sdk_buf_printf(sql, " OR r.id %s ", lt);
	mem_pg_param_json(sql, p, c->id, false);
	sdk_buf_str(sql, "::bigint)");
}

/* A number as PostgreSQL wrote it, as JSON: an integer too large for
 * one (numeric has no bound) becomes a real. */
static json_t *number_json(const char *text)
{
	json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
	if (!v)
		v = json_loads(text, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, NULL);
	if (v && !json_is_number(v)) {
		json_decref(v);
		v = NULL;
	}
	return v;
}

json_t *mem_pg_key_json(const mem_order *o, enum mem_type type, const char *const v[3])
{
	if (o->kind == MEM_ORDER_ID || !v[0])
		return json_null();
	if (o->kind == MEM_ORDER_RANK)
		return number_json(v[0]);
	if (any_key(o, type)) {
		if (!strcmp(v[0], "1"))
			return v[1] ? number_json(v[1]) : NULL;
		return v[2] ? json_string(v[2]) : NULL;
	}
	switch (type) {
	case MEM_T_NUMBER: return number_json(v[0]);
	/* As SQLite gives a boolean: 1 or 0 (the cursor holds numbers). */
	case MEM_T_BOOLEAN: return json_integer(!strcmp(v[0], "t"));
	default: return json_string(v[0]);
	}
}
