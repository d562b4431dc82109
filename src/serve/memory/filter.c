#include "serve/memory/filter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const op_names[] = {
	[MEM_OP_EQ] = "eq",	  [MEM_OP_NE] = "ne",	[MEM_OP_GT] = "gt",
	[MEM_OP_GTE] = "gte",	  [MEM_OP_LT] = "lt",	[MEM_OP_LTE] = "lte",
	[MEM_OP_IN] = "in",	  [MEM_OP_CONTAINS] = "contains", [MEM_OP_EXISTS] = "exists",
};

const char *mem_op_name(enum mem_op op)
{
	return (unsigned)op < sizeof op_names / sizeof *op_names ? op_names[op] : "?";
}

static int op_parse(const char *s, enum mem_op *out)
{
	for (size_t i = 0; i < sizeof op_names / sizeof *op_names; i++)
		if (!strcmp(s, op_names[i])) {
			*out = (enum mem_op)i;
			return 0;
		}
	return -1;
}

/* A name from the input, shortened and made printable for an error message. */
static const char *shown(const char *s, char out[40])
{
	size_t i = 0;
	for (; i < 32 && s[i]; i++)
		out[i] = (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\'') ? s[i] : '?';
	if (s[i])
		out[i++] = '.', out[i++] = '.', out[i++] = '.';
	out[i] = '\0';
	return out;
}

/* --------------------------------------------------------------------- */
/* Parsing */

static bool is_scalar(json_t *v)
{
	return json_is_string(v) || json_is_number(v) || json_is_boolean(v) || json_is_null(v);
}

/* Which values an operator takes on a column of type `t` (is_id: the row
 * id). NULL when the value fits, else why not. */
static const char *value_problem(const mem_term *t, json_t *v)
{
	if (json_is_string(v) && json_string_length(v) > MEM_VALUE_BYTES_MAX)
		return "a string in a filter is at most 1024 bytes";
	if (t->op == MEM_OP_EXISTS)
		return json_is_boolean(v) ? NULL : "exists takes true or false";
	if (t->is_id) {
		if (t->op == MEM_OP_CONTAINS)
			return "_id takes eq, ne, gt, gte, lt, lte, in";
		return json_is_integer(v) ? NULL : "_id is compared with integers";
	}
	bool null_ok = t->op == MEM_OP_EQ || t->op == MEM_OP_NE;
	if (json_is_null(v))
		return null_ok ? NULL : "null is only compared with eq and ne";
	bool ordering = t->op == MEM_OP_GT || t->op == MEM_OP_GTE || t->op == MEM_OP_LT ||
			t->op == MEM_OP_LTE;
	switch (t->type) {
	case MEM_T_NUMBER:
		if (t->op == MEM_OP_CONTAINS)
			return "contains is for string, text, json and undeclared columns";
		return json_is_number(v) ? NULL : "this column holds numbers";
	case MEM_T_STRING:
	case MEM_T_TEXT:
		return json_is_string(v) ? NULL : "this column holds strings";
	case MEM_T_BOOLEAN:
		if (ordering || t->op == MEM_OP_IN || t->op == MEM_OP_CONTAINS)
			return "a boolean column takes eq, ne, exists";
		return json_is_boolean(v) ? NULL : "this column holds booleans";
	case MEM_T_JSON:
		if (t->op == MEM_OP_CONTAINS)
			return is_scalar(v) ? NULL : "contains takes a scalar";
		return "a json column takes contains, exists, or eq/ne null";
	case MEM_T_ANY:
		if (ordering || t->op == MEM_OP_IN)
			return json_is_string(v) || json_is_number(v)
				       ? NULL
				       : "gt, gte, lt, lte and in compare strings or numbers";
		return is_scalar(v) ? NULL
				    : "filters compare scalars (string, number, boolean, null)";
	}
	return "unsupported";
}

static int add_term(mem_filter *out, const char *col, const mem_column *decl, bool is_id,
		    enum mem_op op, json_t *value, size_t *n_values, sdk_err *err)
{
	if (out->n >= MEM_WHERE_TERMS_MAX) {
		return sdk_fail(err, SDK_EINVAL, "a filter has at most %d conditions",
				MEM_WHERE_TERMS_MAX);
	}
	mem_term *t = &out->t[out->n];
	memset(t, 0, sizeof *t);
	snprintf(t->col, sizeof t->col, "%s", col);
	t->type = decl ? decl->type : MEM_T_ANY;
	t->is_id = is_id;
	t->op = op;
	const char *why = NULL;
	if (op == MEM_OP_IN) {
		size_t i;
		json_t *m;
		if (!json_is_array(value) || json_array_size(value) == 0)
			why = "in takes a non-empty array";
		else
			json_array_foreach(value, i, m) {
				if (json_is_null(m))
					why = "in takes no null";
				else
					why = value_problem(t, m);
				if (why)
					break;
			}
		*n_values += json_array_size(value);
	} else {
		why = value_problem(t, value);
		*n_values += 1;
	}
	if (why) {
		char tmp[40];
		return sdk_fail(err, SDK_EINVAL, "where: %s %s: %s", shown(col, tmp),
				mem_op_name(op), why);
	}
	if (*n_values > MEM_WHERE_VALUES_MAX) {
		return sdk_fail(err, SDK_EINVAL, "a filter has at most %d values",
				MEM_WHERE_VALUES_MAX);
	}
	t->value = json_incref(value);
	out->n++;
	return 0;
}

int mem_filter_parse(const char *where, const mem_columns *cols, mem_filter *out, sdk_err *err)
{
	memset(out, 0, sizeof *out);
	if (!where || !*where)
		return 0;
	size_t len = strlen(where);
	if (len > MEM_WHERE_BYTES_MAX) {
		return sdk_fail(err, SDK_EINVAL, "where is at most %d bytes", MEM_WHERE_BYTES_MAX);
	}
	json_error_t je;
	json_t *w = json_loadb(where, len, JSON_REJECT_DUPLICATES, &je);
	if (!w) {
		return sdk_fail(err, SDK_EINVAL, "where is a JSON object: %s (column %d)", je.text,
				je.column);
	}
	int rc = -1;
	if (!json_is_object(w)) {
		sdk_fail(err, SDK_EINVAL, "where is a JSON object of column: value or {op: value}");
		goto out;
	}
	size_t n_values = 0;
	const char *col;
	json_t *v;
	char tmp[40];
	json_object_foreach(w, col, v) {
		bool is_id = !strcmp(col, "_id");
		const mem_column *decl = NULL;
		if (!is_id) {
			if (!mem_column_name_valid(col)) {
				sdk_fail(err, SDK_EINVAL, "where: '%s' is not a column name",
					 shown(col, tmp));
				goto out;
			}
			decl = mem_columns_find(cols, col);
			if (cols->n && !decl) {
				sdk_fail(err, SDK_EINVAL, "where: no column '%s' in this table",
					 col);
				goto out;
			}
		}
		if (!json_is_object(v)) {
			if (json_is_array(v)) {
				sdk_fail(err, SDK_EINVAL,
					 "where: %s: use {\"in\": [...]} to match a list", col);
				goto out;
			}
			if (add_term(out, col, decl, is_id, MEM_OP_EQ, v, &n_values, err) < 0)
				goto out;
			continue;
		}
		if (json_object_size(v) == 0) {
			sdk_fail(err, SDK_EINVAL, "where: %s: an empty set of operators", col);
			goto out;
		}
		const char *opname;
		json_t *arg;
		json_object_foreach(v, opname, arg) {
			enum mem_op op;
			if (op_parse(opname, &op) < 0) {
				sdk_fail(err, SDK_EINVAL,
					 "where: %s: unknown operator '%s' (eq, ne, gt, gte, lt, "
					 "lte, in, "
					 "contains, exists)",
					 col, shown(opname, tmp));
				goto out;
			}
			if (add_term(out, col, decl, is_id, op, arg, &n_values, err) < 0)
				goto out;
		}
	}
	rc = 0;
out:
	json_decref(w);
	return rc;
}

void mem_filter_clear(mem_filter *f)
{
	for (size_t i = 0; i < f->n; i++)
		json_decref(f->t[i].value);
	f->n = 0;
}

/* --------------------------------------------------------------------- */
/* SQL */

static int bind(mem_binds *b, json_t *v)
{
	if (b->n >= MEM_BINDS_MAX)
		return -1;
	b->v[b->n++] = v;
	return 0;
}

/* The value of column `col` in the row: a JSON path literal of a name
 * that passed mem_column_name_valid, so it needs no quoting. */
static void value_sql(const mem_term *t, sdk_buf *sql)
{
	if (t->is_id)
		sdk_buf_str(sql, "r.id");
	else
		sdk_buf_printf(sql, "json_extract(r.data,'$.%s')", t->col);
}

static void type_sql(const mem_term *t, sdk_buf *sql)
{
	sdk_buf_printf(sql, "json_type(r.data,'$.%s')", t->col);
}

/* For undeclared columns, a number must not equal a boolean (SQLite's
 * JSON functions give true as 1) nor a string compare with an array's
 * JSON text: the comparison is restricted to values of the same kind. */
static const char *kind_list(json_t *v)
{
	if (json_is_boolean(v))
		return "('true','false')";
	if (json_is_number(v))
		return "('integer','real')";
	return "('text')";
}

static int term_sql(const mem_term *t, sdk_buf *sql, mem_binds *b)
{
	static const char *const cmp[] = { [MEM_OP_GT] = ">", [MEM_OP_GTE] = ">=",
					   [MEM_OP_LT] = "<", [MEM_OP_LTE] = "<=" };
	bool any = t->type == MEM_T_ANY && !t->is_id;
	json_t *v = t->value;
	int rc = 0;
	sdk_buf_str(sql, " AND (");
	switch (t->op) {
	case MEM_OP_EXISTS:
		value_sql(t, sql);
		sdk_buf_str(sql, json_is_true(v) ? " IS NOT NULL" : " IS NULL");
		break;
	case MEM_OP_EQ:
	case MEM_OP_NE:
		if (json_is_null(v)) {
			value_sql(t, sql);
			sdk_buf_str(sql, t->op == MEM_OP_EQ ? " IS NULL" : " IS NOT NULL");
		} else if (any) {
			sdk_buf_str(sql, t->op == MEM_OP_EQ ? "(" : "NOT (");
			value_sql(t, sql);
			sdk_buf_str(sql, " IS ? AND coalesce(");
			type_sql(t, sql);
			sdk_buf_printf(sql, " IN %s, 0))", kind_list(v));
			rc |= bind(b, v);
		} else {
			value_sql(t, sql);
			sdk_buf_str(sql, t->op == MEM_OP_EQ ? " = ?" : " IS NOT ?");
			rc |= bind(b, v);
		}
		break;
	case MEM_OP_GT:
	case MEM_OP_GTE:
	case MEM_OP_LT:
	case MEM_OP_LTE:
		value_sql(t, sql);
		sdk_buf_printf(sql, " %s ?", cmp[t->op]);
		rc |= bind(b, v);
		if (any) {
			sdk_buf_str(sql, " AND ");
			type_sql(t, sql);
			sdk_buf_printf(sql, " IN %s", kind_list(v));
		}
		break;
	case MEM_OP_IN: {
		value_sql(t, sql);
		sdk_buf_str(sql, " IN (");
		size_t i;
		json_t *m;
		json_array_foreach(v, i, m) {
			sdk_buf_str(sql, i ? ",?" : "?");
			rc |= bind(b, m);
		}
		sdk_buf_str(sql, ")");
		/* The list holds strings and numbers: no boolean (SQLite's 1 and
		 * 0) nor array or object (their JSON text) may equal one. */
		if (any) {
			sdk_buf_str(sql, " AND ");
			type_sql(t, sql);
			sdk_buf_str(sql, " IN ('integer','real','text')");
		}
		break;
	}
	case MEM_OP_CONTAINS:
		if (t->type == MEM_T_STRING || t->type == MEM_T_TEXT) {
			sdk_buf_str(sql, "instr(");
			value_sql(t, sql);
			sdk_buf_str(sql, ", ?) > 0");
			rc |= bind(b, v);
		} else if (t->type == MEM_T_JSON || !json_is_string(v)) {
			/* A number or boolean is contained only as an array's element
			 * (json_each on a scalar would yield the scalar itself), and
			 * only as an element of its own kind (true is 1 to SQLite, a
			 * nested array its JSON text). */
			type_sql(t, sql);
			sdk_buf_printf(
				sql,
				" = 'array' AND EXISTS (SELECT 1 FROM json_each(r.data,'$.%s') "
				"WHERE json_each.value = ? AND json_each.type IN %s)",
				t->col, kind_list(v));
			rc |= bind(b, v);
		} else {
			sdk_buf_str(sql, "CASE ");
			type_sql(t, sql);
			sdk_buf_str(sql, " WHEN 'text' THEN instr(");
			value_sql(t, sql);
			sdk_buf_printf(sql, ", ?) > 0 WHEN 'array' THEN EXISTS (SELECT 1 FROM "
					    "json_each(r.data,'$.%s') WHERE json_each.value = ? AND "
					    "json_each.type = 'text') ELSE 0 END",
				       t->col);
			rc |= bind(b, v);
			rc |= bind(b, v);
		}
		break;
	}
	sdk_buf_str(sql, ")");
	return rc ? -1 : 0;
}

int mem_filter_sql(const mem_filter *f, sdk_buf *sql, mem_binds *b)
{
	for (size_t i = 0; i < f->n; i++)
		if (term_sql(&f->t[i], sql, b) < 0)
			return -1;
	return 0;
}

/* --------------------------------------------------------------------- */
/* Order */

int mem_order_parse(const char *s, const mem_columns *cols, bool have_q, mem_order *out,
		    sdk_err *err)
{
	memset(out, 0, sizeof *out);
	if (!s || !*s)
		s = have_q ? "_rank" : "_id";
	const char *name = s;
	if (*name == '-') {
		out->desc = true;
		name++;
	}
	char tmp[40];
	if (!strcmp(name, "_id")) {
		out->kind = MEM_ORDER_ID;
	} else if (!strcmp(name, "_rank")) {
		if (!have_q || out->desc) {
			return sdk_fail(err, SDK_EINVAL,
					"order=_rank needs a full-text query q (best first)");
		}
		out->kind = MEM_ORDER_RANK;
	} else {
		if (!mem_column_name_valid(name)) {
			return sdk_fail(err, SDK_EINVAL, "order: '%s' is not a column name",
					shown(name, tmp));
		}
		const mem_column *c = mem_columns_find(cols, name);
		if (cols->n && !c) {
			return sdk_fail(err, SDK_EINVAL, "order: no column '%s' in this table",
					name);
		}
		if (c && (c->type == MEM_T_JSON || c->type == MEM_T_TEXT)) {
			return sdk_fail(err, SDK_EINVAL,
					"order: '%s' is a %s column; order by string, number or "
					"boolean columns",
					name, mem_type_name(c->type));
		}
		out->kind = MEM_ORDER_COLUMN;
		snprintf(out->col, sizeof out->col, "%s", name);
	}
	snprintf(out->spec, sizeof out->spec, "%s%s", out->desc ? "-" : "", name);
	return 0;
}

void mem_order_key_sql(const mem_order *o, const mem_sql_names *n, sdk_buf *sql)
{
	switch (o->kind) {
	case MEM_ORDER_ID: sdk_buf_str(sql, n->id); break;
	case MEM_ORDER_RANK: sdk_buf_str(sql, n->rank ? n->rank : "0"); break;
	case MEM_ORDER_COLUMN: sdk_buf_printf(sql, "json_extract(r.data,'$.%s')", o->col); break;
	}
}

void mem_order_sql(const mem_order *o, const mem_sql_names *n, sdk_buf *sql)
{
	const char *dir = o->desc ? "DESC" : "ASC";
	sdk_buf_str(sql, " ORDER BY ");
	if (o->kind != MEM_ORDER_ID) {
		mem_order_key_sql(o, n, sql);
		sdk_buf_printf(sql, " %s, ", dir);
	}
	sdk_buf_printf(sql, "%s %s", n->id, dir);
}

/* --------------------------------------------------------------------- */
/* Cursors: base64url of {"o": order, "k": last key, "i": last id}. They
 * are opaque to clients; a forged one only moves the caller's own page. */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static char *b64_encode(const char *in, size_t n)
{
	char *out = malloc((n + 2) / 3 * 4 + 1);
	if (!out)
		return NULL;
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned char)in[i] << 16;
		if (i + 1 < n)
			v |= (unsigned char)in[i + 1] << 8;
		if (i + 2 < n)
			v |= (unsigned char)in[i + 2];
		out[o++] = b64[(v >> 18) & 63];
		out[o++] = b64[(v >> 12) & 63];
		if (i + 1 < n)
			out[o++] = b64[(v >> 6) & 63];
		if (i + 2 < n)
			out[o++] = b64[v & 63];
	}
	out[o] = '\0';
	return out;
}

static int b64_value(char c)
{
	const char *p = c ? strchr(b64, c) : NULL;
	return p ? (int)(p - b64) : -1;
}

/* Decodes into `out` (at least n*3/4+1 bytes); -1 on anything malformed. */
static int b64_decode(const char *in, size_t n, char *out, size_t *outlen)
{
	if (n % 4 == 1)
		return -1;
	size_t o = 0;
	for (size_t i = 0; i < n; i += 4) {
		unsigned v = 0;
		size_t k;
		for (k = 0; k < 4 && i + k < n; k++) {
			int d = b64_value(in[i + k]);
			if (d < 0)
				return -1;
			v |= (unsigned)d << (18 - 6 * k);
		}
		out[o++] = (char)(v >> 16);
		if (k > 2)
			out[o++] = (char)(v >> 8);
		if (k > 3)
			out[o++] = (char)v;
	}
	*outlen = o;
	return 0;
}

char *mem_cursor_make(const mem_order *o, json_t *key, int64_t id)
{
	json_t *c = json_pack("{s:s, s:O, s:I}", "o", o->spec, "k", key ? key : json_null(), "i",
			      (json_int_t)id);
	char *text = c ? json_dumps(c, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
	json_decref(c);
	if (!text)
		return NULL;
	char *out = b64_encode(text, strlen(text));
	free(text);
	return out;
}

int mem_cursor_parse(const char *s, const mem_order *o, mem_cursor *out, sdk_err *err)
{
	memset(out, 0, sizeof *out);
	if (!s || !*s)
		return 0;
	size_t n = strlen(s);
	char *raw = n <= MEM_CURSOR_BYTES_MAX ? malloc(n) : NULL;
	size_t rawlen = 0;
	json_t *c = NULL;
	int rc = -1;
	if (raw && b64_decode(s, n, raw, &rawlen) == 0)
		c = json_loadb(raw, rawlen, JSON_REJECT_DUPLICATES, NULL);
	free(raw);
	json_t *spec = json_object_get(c, "o"), *key = json_object_get(c, "k"),
	       *id = json_object_get(c, "i");
	if (!json_is_object(c) || json_object_size(c) != 3 || !json_is_string(spec) ||
	    !key || !json_is_integer(id) ||
	    !(json_is_null(key) || json_is_string(key) || json_is_number(key))) {
		sdk_fail(err, SDK_EINVAL, "cursor is not one this server made");
		goto out;
	}
	if (strcmp(json_string_value(spec), o->spec)) {
		sdk_fail(err, SDK_EINVAL, "cursor was made for order=%.64s, not order=%s",
			 json_string_value(spec), o->spec);
		goto out;
	}
	if ((o->kind == MEM_ORDER_ID && !json_is_null(key)) ||
	    (o->kind == MEM_ORDER_RANK && !json_is_number(key))) {
		sdk_fail(err, SDK_EINVAL, "cursor is not one this server made");
		goto out;
	}
	out->set = true;
	out->key = json_incref(key);
	out->id = json_incref(id);
	rc = 0;
out:
	json_decref(c);
	return rc;
}

void mem_cursor_clear(mem_cursor *c)
{
	json_decref(c->key);
	json_decref(c->id);
	memset(c, 0, sizeof *c);
}

int mem_keyset_passes(const mem_order *o, const mem_cursor *c)
{
	if (!c->set || o->kind != MEM_ORDER_COLUMN)
		return 1;
	bool null_key = json_is_null(c->key);
	/* Ascending after a NULL: the rest of the NULLs, then every non-NULL.
	 * Descending after a value: the rest of the values, then the NULLs. */
	return (!o->desc && null_key) || (o->desc && !null_key) ? 2 : 1;
}

int mem_keyset_sql(const mem_order *o, const mem_cursor *c, int pass, const mem_sql_names *n,
		   sdk_buf *sql, mem_binds *b)
{
	if (!c->set)
		return 0;
	const char *lt = o->desc ? "<" : ">";
	if (o->kind == MEM_ORDER_ID) {
		sdk_buf_printf(sql, " AND %s %s ?", n->id, lt);
		return bind(b, c->id);
	}
	sdk_buf k = { 0 };
	mem_order_key_sql(o, n, &k);
	if (k.oom) {
		sql->oom = true;
		return -1;
	}
	int rc = 0;
	if (json_is_null(c->key)) {
		if (pass == 0) {
			sdk_buf_printf(sql, " AND %s IS NULL AND %s %s ?", k.p, n->id, lt);
			rc |= bind(b, c->id);
		} else
			sdk_buf_printf(sql, " AND %s IS NOT NULL", k.p);
	} else if (pass == 0) {
		/* key >= k (an index range) and, among equal keys, past the id. */
		sdk_buf_printf(sql, " AND %s %s= ? AND (%s %s ? OR %s %s ?)", k.p, lt, k.p, lt,
			       n->id, lt);
		rc |= bind(b, c->key);
		rc |= bind(b, c->key);
		rc |= bind(b, c->id);
	} else {
		sdk_buf_printf(sql, " AND %s IS NULL", k.p);
	}
	sdk_buf_free(&k);
	return rc ? -1 : 0;
}
