/* Recursive descent over Cedar's grammar (grammar.lalrpop), building the
 * AST directly and applying the checks Cedar's CST-to-AST pass makes
 * (reserved identifiers, one relational operator per level, scope shapes,
 * method arities, known extension functions ...). The first error stops
 * the parse: a longjmp back to cedar_parse(), which is safe because every
 * allocation is in the set's arena and the arena is dropped with it. */
#include "kernels/policy/cedar.h"

#include "kernels/policy/lexer.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What a sub-expression parsed as, before the context decides what it may
 * be: Cedar lets a name, a variable or a string literal mean different
 * things as a `has` operand, a record key or a call target. */
typedef enum px_kind { PX_EXPR, PX_VAR, PX_NAME, PX_STR, PX_BOOL, PX_NUM } px_kind;

typedef struct px {
	px_kind kind;
	uint32_t offset;
	cedar_expr *e;    /* EXPR */
	int var;          /* VAR */
	const char *s;    /* NAME: "A::B"; STR: the raw body between the quotes */
	uint32_t len;
	bool qualified;   /* NAME with a path */
	bool b;           /* BOOL */
	uint64_t num;     /* NUM */
	bool overflow;    /* NUM past u64 */
} px;

typedef struct parser {
	cedar_lexer lx;
	cedar_token tok;
	const char *src;
	uint32_t len;
	cedar_arena *a;
	cedar_parse_error *err;
	jmp_buf fail;
	int nest;
	uint32_t pos_off, pos_line, pos_col; /* a cursor: positions are asked in order */
} parser;

/* Line and column of an offset, scanning on from the last one asked when
 * it is further on (policies are named in order: no quadratic rescans). */
static void position(parser *p, uint32_t offset, uint32_t *line, uint32_t *column)
{
	if (offset < p->pos_off || !p->pos_line) {
		p->pos_off = 0, p->pos_line = 1, p->pos_col = 1;
	}
	for (uint32_t i = p->pos_off; i < offset && i < p->len; i++) {
		unsigned char c = (unsigned char)p->src[i];
		if (c == '\n')
			p->pos_line++, p->pos_col = 1;
		else if ((c & 0xc0) != 0x80)
			p->pos_col++;
	}
	p->pos_off = offset < p->len ? offset : p->len;
	*line = p->pos_line;
	*column = p->pos_col;
}

static _Noreturn __attribute__((format(printf, 3, 4))) void fail_at(parser *p, uint32_t offset,
								   const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->err->msg, sizeof p->err->msg, fmt, ap);
	va_end(ap);
	cedar_utf8_sanitize(p->err->msg);
	p->err->offset = offset;
	position(p, offset, &p->err->line, &p->err->column);
	longjmp(p->fail, 1);
}

static void *alloc(parser *p, size_t n)
{
	void *m = cedar_arena_alloc(p->a, n);
	if (!m)
		fail_at(p, p->tok.start, "out of memory");
	return m;
}

static void advance(parser *p)
{
	cedar_lex_next(&p->lx, &p->tok);
	if (p->tok.kind == TK_ERROR)
		fail_at(p, p->tok.start, "%s", p->tok.why);
}

static const char *tok_text(parser *p, char *buf, size_t cap)
{
	if (p->tok.kind == TK_EOF)
		return "end of input";
	uint32_t n = p->tok.len > 40 ? 40 : p->tok.len;
	snprintf(buf, cap, "`%.*s`", (int)n, p->src + p->tok.start);
	return buf;
}

static _Noreturn void unexpected(parser *p, const char *wanted)
{
	char buf[64];
	fail_at(p, p->tok.start, "unexpected %s, expected %s", tok_text(p, buf, sizeof buf), wanted);
}

static void expect(parser *p, int kind, const char *wanted)
{
	if (p->tok.kind != kind)
		unexpected(p, wanted);
	advance(p);
}

static bool is_kw(parser *p, int kw)
{
	return p->tok.kind == TK_IDENT && p->tok.kw == kw;
}

/* ---- string literals */

static int hexdigit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static uint32_t put_utf8(char *out, uint32_t cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | cp >> 12);
		out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | cp >> 18);
	out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* One escape at raw[*i] (just past the backslash). Writes the character's
 * code point into *cp. Returns 0, 1 when it is `\*` (pattern_star), or -1. */
static int unescape_one(const char *raw, uint32_t len, uint32_t *i, uint32_t *cp)
{
	if (*i >= len)
		return -1;
	char c = raw[(*i)++];
	switch (c) {
	case 'n': *cp = '\n'; return 0;
	case 'r': *cp = '\r'; return 0;
	case 't': *cp = '\t'; return 0;
	case '\\': *cp = '\\'; return 0;
	case '0': *cp = 0; return 0;
	case '\'': *cp = '\''; return 0;
	case '"': *cp = '"'; return 0;
	case '*': return 1;
	case 'x': {
		if (*i + 2 > len)
			return -1;
		int hi = hexdigit(raw[*i]), lo = hexdigit(raw[*i + 1]);
		if (hi < 0 || lo < 0 || hi > 7)
			return -1;
		*i += 2;
		*cp = (uint32_t)(hi * 16 + lo);
		return 0;
	}
	case 'u': {
		if (*i >= len || raw[*i] != '{')
			return -1;
		(*i)++;
		if (*i >= len || raw[*i] == '_' || raw[*i] == '}')
			return -1;
		uint32_t v = 0, digits = 0;
		for (;;) {
			if (*i >= len)
				return -1;
			char d = raw[(*i)++];
			if (d == '}')
				break;
			if (d == '_')
				continue;
			int h = hexdigit(d);
			if (h < 0)
				return -1;
			if (++digits <= 6)
				v = v * 16 + (uint32_t)h;
		}
		if (digits > 6 || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
			return -1;
		*cp = v;
		return 0;
	}
	default: return -1;
	}
}

int cedar_unescape(const char *raw, uint32_t len, char *out)
{
	uint32_t o = 0;
	for (uint32_t i = 0; i < len;) {
		char c = raw[i];
		if (c == '\r')
			return -1; /* Rust refuses a bare carriage return */
		if (c != '\\') {
			out[o++] = c;
			i++;
			continue;
		}
		i++;
		uint32_t cp;
		if (unescape_one(raw, len, &i, &cp) != 0)
			return -1;
		o += put_utf8(out + o, cp);
	}
	return (int)o;
}

static void str_value(parser *p, const char *raw, uint32_t len, uint32_t offset, const char **out,
		      uint32_t *out_len)
{
	char *buf = alloc(p, len + 1);
	int n = cedar_unescape(raw, len, buf);
	if (n < 0)
		fail_at(p, offset, "invalid escape sequence in string literal");
	buf[n] = 0;
	*out = buf;
	*out_len = (uint32_t)n;
}

/* A `like` pattern: `*` is a wildcard (also when spelt \u{2a}); `\*` a star. */
static cedar_pattern *pattern_value(parser *p, const char *raw, uint32_t len, uint32_t offset)
{
	cedar_pattern *pat = alloc(p, sizeof *pat);
	pat->el = alloc(p, sizeof *pat->el * (len + 1));
	char *buf = alloc(p, len + 1);
	uint32_t o = 0, run = 0;
	for (uint32_t i = 0; i < len;) {
		char c = raw[i];
		uint32_t cp;
		bool star = false, literal_star = false;
		if (c == '\r')
			fail_at(p, offset, "invalid escape sequence in pattern");
		if (c == '\\') {
			i++;
			int r = unescape_one(raw, len, &i, &cp);
			if (r < 0)
				fail_at(p, offset, "invalid escape sequence in pattern");
			if (r == 1)
				literal_star = true;
			else
				star = cp == '*';
		} else if (c == '*') {
			star = true;
			i++;
		} else {
			buf[o++] = c;
			i++;
			continue;
		}
		if (star) {
			if (o > run) {
				pat->el[pat->n].star = false;
				pat->el[pat->n].s = buf + run;
				pat->el[pat->n].len = o - run;
				pat->n++;
			}
			/* Consecutive stars mean what one does. */
			if (!pat->n || !pat->el[pat->n - 1].star) {
				pat->el[pat->n].star = true;
				pat->n++;
			}
			run = o;
		} else {
			o += literal_star ? (buf[o] = '*', 1) : put_utf8(buf + o, cp);
		}
	}
	if (o > run) {
		pat->el[pat->n].star = false;
		pat->el[pat->n].s = buf + run;
		pat->el[pat->n].len = o - run;
		pat->n++;
	}
	return pat;
}

/* ---- nodes */

static uint32_t depth_of(const cedar_expr *e)
{
	return e ? e->depth : 0;
}

static cedar_expr *node(parser *p, int op, uint32_t offset, cedar_expr *a, cedar_expr *b,
			cedar_expr *c)
{
	cedar_expr *e = alloc(p, sizeof *e);
	e->op = (uint8_t)op;
	e->offset = offset;
	e->a = a, e->b = b, e->c = c;
	uint32_t d = depth_of(a);
	if (depth_of(b) > d)
		d = depth_of(b);
	if (depth_of(c) > d)
		d = depth_of(c);
	e->depth = d + 1;
	if (e->depth > CEDAR_DEPTH_MAX)
		fail_at(p, offset, "expression nested too deeply (more than %d levels)", CEDAR_DEPTH_MAX);
	return e;
}

static cedar_expr *lit(parser *p, uint32_t offset, cedar_value v)
{
	cedar_expr *e = node(p, OP_LIT, offset, NULL, NULL, NULL);
	e->lit = v;
	return e;
}

static cedar_expr *var_node(parser *p, uint32_t offset, int var)
{
	cedar_expr *e = node(p, OP_VAR, offset, NULL, NULL, NULL);
	e->var = (uint8_t)var;
	return e;
}

static cedar_expr *attr_node(parser *p, int op, uint32_t offset, cedar_expr *target,
			     const char *name, uint32_t len)
{
	cedar_expr *e = node(p, op, offset, target, NULL, NULL);
	e->str = name;
	e->n = len;
	return e;
}

static int64_t num_value(parser *p, const px *x)
{
	if (x->overflow)
		fail_at(p, x->offset, "integer parse error: number too large to fit in target type");
	if (x->num > INT64_MAX)
		fail_at(p, x->offset, "integer literal `%llu` is too large", (unsigned long long)x->num);
	return (int64_t)x->num;
}

static cedar_expr *expr_of(parser *p, px *x)
{
	switch (x->kind) {
	case PX_EXPR: return x->e;
	case PX_VAR: return var_node(p, x->offset, x->var);
	case PX_NAME:
		fail_at(p, x->offset, "`%.*s` is not a valid variable or expression (variables are "
				      "principal, action, resource and context)", (int)(x->len > 60 ? 60 : x->len), x->s);
	case PX_STR: {
		const char *s;
		uint32_t n;
		str_value(p, x->s, x->len, x->offset, &s, &n);
		return lit(p, x->offset, cedar_string(s, n));
	}
	case PX_BOOL: return lit(p, x->offset, cedar_bool(x->b));
	case PX_NUM: return lit(p, x->offset, cedar_long(num_value(p, x)));
	}
	return NULL;
}

static px px_expr(cedar_expr *e, uint32_t offset)
{
	return (px){ .kind = PX_EXPR, .e = e, .offset = offset };
}

static const char *var_name(int var)
{
	static const char *const names[] = { "principal", "action", "resource", "context" };
	return names[var];
}

/* ---- names */

/* Reads `ident (:: ident)*` from the current identifier. Stops before a
 * `::` that a string or `{` follows (an entity reference): *ref_next is
 * then true and the `::` consumed. Checks each part. */
static void read_path(parser *p, const char **out, uint32_t *out_len, uint32_t *parts,
		      bool *ref_next)
{
	struct { uint32_t at, len; } part[CEDAR_NEST_MAX];
	uint32_t n = 0, total = 0;
	*ref_next = false;
	for (;;) {
		if (p->tok.kind != TK_IDENT)
			unexpected(p, "an identifier");
		if (n == CEDAR_NEST_MAX)
			fail_at(p, p->tok.start, "a name of more than %d parts", CEDAR_NEST_MAX);
		const char *id = p->src + p->tok.start;
		uint32_t len = p->tok.len, at = p->tok.start;
		part[n].at = at, part[n].len = len, n++;
		total += len + 2;
		advance(p);
		if (p->tok.kind != TK_COLON2) {
			/* A single name may be a variable; the caller checks it. */
			if (n > 1 && cedar_ident_reserved(id, len, true))
				fail_at(p, at, "`%.*s` is a reserved identifier", (int)len, id);
			break;
		}
		if (cedar_ident_reserved(id, len, true))
			fail_at(p, at, "`%.*s` is a reserved identifier", (int)len, id);
		advance(p);
		if (p->tok.kind == TK_STRING || p->tok.kind == TK_LBRACE) {
			*ref_next = true;
			break;
		}
	}
	char *buf = alloc(p, total + 1);
	uint32_t o = 0;
	for (uint32_t i = 0; i < n; i++) {
		if (i) {
			memcpy(buf + o, "::", 2);
			o += 2;
		}
		memcpy(buf + o, p->src + part[i].at, part[i].len);
		o += part[i].len;
	}
	buf[o] = 0;
	*out = buf;
	*out_len = o;
	*parts = n;
}

/* An entity type after `is`: a name (a variable's name counts as one). */
static void parse_type_name(parser *p, const char **type, uint32_t *len)
{
	if (p->tok.kind != TK_IDENT)
		unexpected(p, "an entity type name");
	uint32_t at = p->tok.start, parts;
	bool ref;
	read_path(p, type, len, &parts, &ref);
	if (ref)
		fail_at(p, at, "expected an entity type name, found an entity uid");
	if (parts == 1 && cedar_ident_reserved(*type, *len, true))
		fail_at(p, at, "`%s` is a reserved identifier", *type);
}

/* The entity uid after `Type::` (the `::` already read). */
static cedar_uid *parse_uid_tail(parser *p, const char *type, uint32_t tlen, uint32_t at)
{
	if (p->tok.kind == TK_LBRACE)
		fail_at(p, p->tok.start, "entity literals with `{...}` are not supported");
	const char *id;
	uint32_t idlen;
	str_value(p, p->src + p->tok.start + 1, p->tok.len - 2, p->tok.start, &id, &idlen);
	advance(p);
	/* A single-part type was not checked by read_path. */
	if (!memchr(type, ':', tlen) && cedar_ident_reserved(type, tlen, true))
		fail_at(p, at, "`%s` is a reserved identifier", type);
	cedar_uid *u = alloc(p, sizeof *u);
	*u = (cedar_uid){ .type = type, .type_len = tlen, .id = id, .id_len = idlen,
			  .hash = cedar_uid_hash(type, tlen, id, idlen) };
	return u;
}

/* ---- expressions */

static px parse_expr(parser *p);

static cedar_expr *parse_expr_e(parser *p)
{
	px x = parse_expr(p);
	return expr_of(p, &x);
}

/* Comma-separated expressions up to `close` (a trailing comma is allowed). */
static cedar_expr **parse_list(parser *p, int close, const char *what, uint32_t *n)
{
	uint32_t cap = 8, count = 0;
	cedar_expr **items = alloc(p, sizeof *items * cap);
	while (p->tok.kind != close) {
		if (count == CEDAR_SET_MAX)
			fail_at(p, p->tok.start, "more than %d items in one %s", CEDAR_SET_MAX, what);
		if (count == cap) {
			cedar_expr **more = alloc(p, sizeof *more * cap * 2);
			memcpy(more, items, sizeof *items * cap);
			items = more;
			cap *= 2;
		}
		items[count++] = parse_expr_e(p);
		if (p->tok.kind != TK_COMMA)
			break;
		advance(p);
	}
	expect(p, close, close == TK_RPAREN ? "`)`" : "`]`");
	*n = count;
	return items;
}

/* Folds a call on literal arguments now, when it succeeds; a failing one
 * stays a call, so that it fails when evaluated, as in Cedar. */
static cedar_expr *call_node(parser *p, uint32_t offset, const cedar_ext_def *fn,
			     cedar_expr **args, uint32_t n)
{
	cedar_expr *e = node(p, OP_CALL, offset, NULL, NULL, NULL);
	e->fn = fn;
	e->items = args;
	e->n = n;
	uint32_t d = 0;
	bool all_lit = true;
	for (uint32_t i = 0; i < n; i++) {
		if (args[i]->depth > d)
			d = args[i]->depth;
		all_lit &= args[i]->op == OP_LIT;
	}
	e->depth = d + 1;
	if (e->depth > CEDAR_DEPTH_MAX)
		fail_at(p, offset, "expression nested too deeply");
	if (all_lit && n <= 4) {
		cedar_value vals[4], out;
		for (uint32_t i = 0; i < n; i++)
			vals[i] = args[i]->lit;
		sdk_err why; /* not a literal after all: left to the evaluator */
		if (cedar_ext_call(fn, p->a, vals, n, &out, &why) == 0)
			return lit(p, offset, out);
	}
	return e;
}

static cedar_expr *set_node(parser *p, uint32_t offset, cedar_expr **items, uint32_t n)
{
	bool all_lit = true;
	uint32_t d = 0;
	for (uint32_t i = 0; i < n; i++) {
		all_lit &= items[i]->op == OP_LIT;
		if (items[i]->depth > d)
			d = items[i]->depth;
	}
	if (all_lit) {
		cedar_value *vals = alloc(p, sizeof *vals * (n ? n : 1));
		for (uint32_t i = 0; i < n; i++)
			vals[i] = items[i]->lit;
		return lit(p, offset, cedar_set_of(vals, n));
	}
	cedar_expr *e = node(p, OP_SET, offset, NULL, NULL, NULL);
	e->items = items;
	e->n = n;
	e->depth = d + 1;
	if (e->depth > CEDAR_DEPTH_MAX)
		fail_at(p, offset, "expression nested too deeply");
	return e;
}

static const char *const builtin_methods[] = { "contains", "containsAll", "containsAny",
					       "isEmpty", "getTag", "hasTag" };

static cedar_expr *method_node(parser *p, uint32_t offset, cedar_expr *recv, const char *name,
			       uint32_t len, cedar_expr **args, uint32_t n)
{
	static const struct {
		const char *name;
		int op;
		uint32_t arity;
	} builtins[] = {
		{ "contains", OP_CONTAINS, 1 },         { "containsAll", OP_CONTAINS_ALL, 1 },
		{ "containsAny", OP_CONTAINS_ANY, 1 },  { "isEmpty", OP_IS_EMPTY, 0 },
		{ "getTag", OP_GET_TAG, 1 },            { "hasTag", OP_HAS_TAG, 1 },
	};
	for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++) {
		if (strlen(builtins[i].name) != len || memcmp(builtins[i].name, name, len))
			continue;
		if (n != builtins[i].arity)
			fail_at(p, offset, "call to `%s` requires exactly %u argument%s, but got %u",
				builtins[i].name, builtins[i].arity, builtins[i].arity == 1 ? "" : "s", n);
		return node(p, builtins[i].op, offset, recv, n ? args[0] : NULL, NULL);
	}
	const cedar_ext_def *fn = cedar_ext_find(name, len);
	if (!fn)
		fail_at(p, offset, "`%.*s` is not a valid method", (int)len, name);
	if (!fn->method)
		fail_at(p, offset, "`%s` is a function, not a method: call it as %s(...)", fn->name,
			fn->name);
	cedar_expr **all = alloc(p, sizeof *all * (n + 1));
	all[0] = recv;
	memcpy(all + 1, args, sizeof *args * n);
	return call_node(p, offset, fn, all, n + 1);
}

static cedar_expr *function_node(parser *p, const px *name, cedar_expr **args, uint32_t n)
{
	if (!name->qualified) {
		const cedar_ext_def *fn = cedar_ext_find(name->s, name->len);
		bool method = fn && fn->method;
		for (size_t i = 0; i < sizeof builtin_methods / sizeof builtin_methods[0]; i++)
			method |= strlen(builtin_methods[i]) == name->len &&
				  !memcmp(builtin_methods[i], name->s, name->len);
		if (method)
			fail_at(p, name->offset, "`%s` is a method, not a function: call it as x.%s(...)",
				name->s, name->s);
		if (fn)
			return call_node(p, name->offset, fn, args, n);
	}
	fail_at(p, name->offset, "`%s` is not a valid function", name->s);
}

typedef enum acc_kind { ACC_FIELD, ACC_CALL, ACC_INDEX } acc_kind;

typedef struct accessor {
	acc_kind kind;
	uint32_t offset;
	const char *s; /* FIELD, INDEX */
	uint32_t len;
	cedar_expr **args; /* CALL */
	uint32_t n;
} accessor;

static px parse_primary(parser *p);

static px parse_member(parser *p)
{
	uint32_t start = p->tok.start;
	px prim = parse_primary(p);
	accessor acc[16], *accs = acc;
	uint32_t n = 0, cap = 16;
	for (;;) {
		accessor a = { .offset = p->tok.start };
		if (p->tok.kind == TK_DOT) {
			advance(p);
			if (p->tok.kind != TK_IDENT)
				unexpected(p, "an attribute or method name");
			a.kind = ACC_FIELD;
			a.s = p->src + p->tok.start;
			a.len = p->tok.len;
			if (cedar_ident_reserved(a.s, a.len, true))
				fail_at(p, p->tok.start, "`%.*s` is a reserved identifier", (int)a.len, a.s);
			advance(p);
		} else if (p->tok.kind == TK_LPAREN) {
			advance(p);
			if (++p->nest > CEDAR_NEST_MAX)
				fail_at(p, a.offset, "nested more than %d levels deep", CEDAR_NEST_MAX);
			a.kind = ACC_CALL;
			a.args = parse_list(p, TK_RPAREN, "call", &a.n);
			p->nest--;
		} else if (p->tok.kind == TK_LBRACKET) {
			advance(p);
			px idx = parse_expr(p);
			if (idx.kind != PX_STR)
				fail_at(p, idx.offset, "the index of `[...]` must be a string literal");
			a.kind = ACC_INDEX;
			str_value(p, idx.s, idx.len, idx.offset, &a.s, &a.len);
			expect(p, TK_RBRACKET, "`]`");
		} else {
			break;
		}
		if (n == cap) {
			accessor *more = alloc(p, sizeof *more * cap * 2);
			memcpy(more, accs, sizeof *accs * cap);
			accs = more;
			cap *= 2;
		}
		accs[n++] = a;
	}
	if (n == 0)
		return prim;
	cedar_expr *head;
	uint32_t i = 0;
	switch (prim.kind) {
	case PX_NAME:
		if (accs[0].kind == ACC_CALL) {
			head = function_node(p, &prim, accs[0].args, accs[0].n);
			i = 1;
			break;
		}
		if (accs[0].kind == ACC_FIELD && n > 1 && accs[1].kind == ACC_CALL)
			fail_at(p, start, "`%s` is not a variable: it has no methods", prim.s);
		fail_at(p, start, "`%s` is not a variable: it has no attributes", prim.s);
	case PX_VAR:
		if (accs[0].kind == ACC_CALL)
			fail_at(p, start, "`%s` is a variable, not a function", var_name(prim.var));
		head = expr_of(p, &prim);
		break;
	default: head = expr_of(p, &prim); break;
	}
	while (i < n) {
		accessor *a = &accs[i];
		if (a->kind == ACC_CALL)
			fail_at(p, a->offset, "expressions cannot be called like functions");
		if (a->kind == ACC_FIELD && i + 1 < n && accs[i + 1].kind == ACC_CALL) {
			head = method_node(p, start, head, a->s, a->len, accs[i + 1].args, accs[i + 1].n);
			i += 2;
			continue;
		}
		head = attr_node(p, OP_GET_ATTR, start, head, a->s, a->len);
		i++;
	}
	return px_expr(head, start);
}

static px parse_unary(parser *p)
{
	uint32_t start = p->tok.start;
	int kind = p->tok.kind;
	if (kind != TK_BANG && kind != TK_MINUS)
		return parse_member(p);
	int count = 0;
	while (p->tok.kind == kind) {
		count++;
		advance(p);
	}
	px m = parse_member(p);
	if (count > 4)
		fail_at(p, start, "too many `%c` in a row: at most 4", kind == TK_BANG ? '!' : '-');
	cedar_expr *e;
	if (kind == TK_BANG) {
		e = expr_of(p, &m);
		for (int i = 0; i < count; i++)
			e = node(p, OP_NOT, start, e, NULL, NULL);
		return px_expr(e, start);
	}
	if (m.kind == PX_NUM) {
		if (m.overflow)
			fail_at(p, m.offset, "integer parse error: number too large to fit in target type");
		if (m.num > (uint64_t)INT64_MAX + 1)
			fail_at(p, start, "integer literal `%llu` is too large", (unsigned long long)m.num);
		int64_t v = m.num == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)m.num;
		e = lit(p, m.offset, cedar_long(v));
		count--;
	} else {
		e = expr_of(p, &m);
	}
	for (int i = 0; i < count; i++)
		e = node(p, OP_NEG, start, e, NULL, NULL);
	return px_expr(e, start);
}

static px parse_mult(parser *p)
{
	uint32_t start = p->tok.start;
	px first = parse_unary(p);
	if (p->tok.kind != TK_STAR && p->tok.kind != TK_SLASH && p->tok.kind != TK_PERCENT)
		return first;
	cedar_expr *e = expr_of(p, &first);
	while (p->tok.kind == TK_STAR || p->tok.kind == TK_SLASH || p->tok.kind == TK_PERCENT) {
		if (p->tok.kind != TK_STAR)
			fail_at(p, p->tok.start, "%s is not supported",
				p->tok.kind == TK_SLASH ? "division" : "remainder");
		advance(p);
		px r = parse_unary(p);
		e = node(p, OP_MUL, start, e, expr_of(p, &r), NULL);
	}
	return px_expr(e, start);
}

static px parse_add(parser *p)
{
	uint32_t start = p->tok.start;
	px first = parse_mult(p);
	if (p->tok.kind != TK_PLUS && p->tok.kind != TK_MINUS)
		return first;
	cedar_expr *e = expr_of(p, &first);
	while (p->tok.kind == TK_PLUS || p->tok.kind == TK_MINUS) {
		int op = p->tok.kind == TK_PLUS ? OP_ADD : OP_SUB;
		advance(p);
		px r = parse_mult(p);
		e = node(p, op, start, e, expr_of(p, &r), NULL);
	}
	return px_expr(e, start);
}

static bool at_relop(parser *p)
{
	switch (p->tok.kind) {
	case TK_LT:
	case TK_LE:
	case TK_GE:
	case TK_GT:
	case TK_NE:
	case TK_EQ2:
	case TK_EQ: return true;
	case TK_IDENT: return p->tok.kw == KW_IN;
	default: return false;
	}
}

/* `target has a.b.c`: has a && a has b && a.b has c, as Cedar desugars it. */
static cedar_expr *parse_has(parser *p, uint32_t start, cedar_expr *target)
{
	const char *names[CEDAR_NEST_MAX];
	uint32_t lens[CEDAR_NEST_MAX], n = 0;
	if (p->tok.kind == TK_STRING) {
		str_value(p, p->src + p->tok.start + 1, p->tok.len - 2, p->tok.start, &names[0], &lens[0]);
		n = 1;
		advance(p);
	} else if (p->tok.kind == TK_IDENT) {
		const char *s = p->src + p->tok.start;
		uint32_t len = p->tok.len;
		if (cedar_ident_reserved(s, len, true))
			fail_at(p, p->tok.start, "`%.*s` is a reserved identifier", (int)len, s);
		names[n] = s, lens[n] = len, n++;
		advance(p);
		if (p->tok.kind == TK_COLON2)
			fail_at(p, p->tok.start, "a path cannot be used as an attribute name");
		while (p->tok.kind == TK_DOT) {
			advance(p);
			if (p->tok.kind != TK_IDENT)
				unexpected(p, "an attribute name");
			s = p->src + p->tok.start;
			len = p->tok.len;
			if (cedar_ident_reserved(s, len, true))
				fail_at(p, p->tok.start, "`%.*s` is a reserved identifier", (int)len, s);
			if (n == CEDAR_NEST_MAX)
				fail_at(p, p->tok.start, "too many attributes after `has`");
			names[n] = s, lens[n] = len, n++;
			advance(p);
		}
	} else {
		fail_at(p, p->tok.start, "the right of `has` must be an attribute name or a string");
	}
	if (p->tok.kind == TK_LPAREN || p->tok.kind == TK_LBRACKET || p->tok.kind == TK_DOT)
		fail_at(p, p->tok.start, "the right of `has` must be an attribute name or a string");
	cedar_expr *has = attr_node(p, OP_HAS_ATTR, start, target, names[0], lens[0]);
	cedar_expr *get = attr_node(p, OP_GET_ATTR, start, target, names[0], lens[0]);
	for (uint32_t i = 1; i < n; i++) {
		has = node(p, OP_AND, start, has, attr_node(p, OP_HAS_ATTR, start, get, names[i], lens[i]),
			   NULL);
		get = attr_node(p, OP_GET_ATTR, start, get, names[i], lens[i]);
	}
	return has;
}

static px parse_relation(parser *p)
{
	uint32_t start = p->tok.start;
	px first = parse_add(p);
	if (at_relop(p)) {
		int tk = p->tok.kind;
		uint32_t op_at = p->tok.start;
		if (tk == TK_EQ)
			fail_at(p, op_at, "`=` is not an operator: did you mean `==`?");
		advance(p);
		px second = parse_add(p);
		if (at_relop(p))
			fail_at(p, p->tok.start, "multiple relational operators (>, ==, in, etc.) must be "
						  "used with parentheses to make ordering explicit");
		cedar_expr *a = expr_of(p, &first), *b = expr_of(p, &second), *e;
		switch (tk) {
		case TK_LT: e = node(p, OP_LT, start, a, b, NULL); break;
		case TK_LE: e = node(p, OP_LE, start, a, b, NULL); break;
		case TK_GT: e = node(p, OP_NOT, start, node(p, OP_LE, start, a, b, NULL), NULL, NULL); break;
		case TK_GE: e = node(p, OP_NOT, start, node(p, OP_LT, start, a, b, NULL), NULL, NULL); break;
		case TK_NE: e = node(p, OP_NOT, start, node(p, OP_EQ, start, a, b, NULL), NULL, NULL); break;
		case TK_EQ2: e = node(p, OP_EQ, start, a, b, NULL); break;
		default: e = node(p, OP_IN, start, a, b, NULL); break;
		}
		return px_expr(e, start);
	}
	if (is_kw(p, KW_HAS)) {
		advance(p);
		cedar_expr *t = expr_of(p, &first);
		return px_expr(parse_has(p, start, t), start);
	}
	if (is_kw(p, KW_LIKE)) {
		advance(p);
		cedar_expr *t = expr_of(p, &first);
		if (p->tok.kind != TK_STRING)
			fail_at(p, p->tok.start, "the pattern of `like` must be a string literal");
		cedar_pattern *pat = pattern_value(p, p->src + p->tok.start + 1, p->tok.len - 2,
						   p->tok.start);
		advance(p);
		if (p->tok.kind == TK_LPAREN || p->tok.kind == TK_LBRACKET || p->tok.kind == TK_DOT)
			fail_at(p, p->tok.start, "the pattern of `like` must be a string literal");
		cedar_expr *e = node(p, OP_LIKE, start, t, NULL, NULL);
		e->pat = pat;
		return px_expr(e, start);
	}
	if (is_kw(p, KW_IS)) {
		advance(p);
		cedar_expr *t = expr_of(p, &first);
		const char *type;
		uint32_t tlen;
		parse_type_name(p, &type, &tlen);
		cedar_expr *is = attr_node(p, OP_IS, start, t, type, tlen);
		if (!is_kw(p, KW_IN))
			return px_expr(is, start);
		advance(p);
		px in = parse_add(p);
		cedar_expr *e = node(p, OP_AND, start, is, node(p, OP_IN, start, t, expr_of(p, &in), NULL),
				     NULL);
		return px_expr(e, start);
	}
	return first;
}

static px parse_and(parser *p)
{
	uint32_t start = p->tok.start;
	px first = parse_relation(p);
	if (p->tok.kind != TK_AND)
		return first;
	cedar_expr *e = expr_of(p, &first);
	while (p->tok.kind == TK_AND) {
		advance(p);
		px r = parse_relation(p);
		e = node(p, OP_AND, start, e, expr_of(p, &r), NULL);
	}
	return px_expr(e, start);
}

static px parse_or(parser *p)
{
	uint32_t start = p->tok.start;
	px first = parse_and(p);
	if (p->tok.kind != TK_OR)
		return first;
	cedar_expr *e = expr_of(p, &first);
	while (p->tok.kind == TK_OR) {
		advance(p);
		px r = parse_and(p);
		e = node(p, OP_OR, start, e, expr_of(p, &r), NULL);
	}
	return px_expr(e, start);
}

static px parse_expr(parser *p)
{
	uint32_t start = p->tok.start;
	if (++p->nest > CEDAR_NEST_MAX)
		fail_at(p, start, "nested more than %d levels deep", CEDAR_NEST_MAX);
	px r;
	if (is_kw(p, KW_IF)) {
		advance(p);
		cedar_expr *c = parse_expr_e(p);
		if (!is_kw(p, KW_THEN))
			unexpected(p, "`then`");
		advance(p);
		cedar_expr *t = parse_expr_e(p);
		if (!is_kw(p, KW_ELSE))
			unexpected(p, "`else`");
		advance(p);
		cedar_expr *e = parse_expr_e(p);
		r = px_expr(node(p, OP_IF, start, c, t, e), start);
	} else {
		r = parse_or(p);
	}
	p->nest--;
	return r;
}

static px parse_record(parser *p, uint32_t start)
{
	uint32_t cap = 8, n = 0;
	cedar_attr *attrs = alloc(p, sizeof *attrs * cap);
	cedar_expr **vals = alloc(p, sizeof *vals * cap);
	while (p->tok.kind != TK_RBRACE) {
		if (n == CEDAR_SET_MAX)
			fail_at(p, p->tok.start, "more than %d attributes in one record", CEDAR_SET_MAX);
		if (n == cap) {
			cedar_attr *a2 = alloc(p, sizeof *a2 * cap * 2);
			cedar_expr **v2 = alloc(p, sizeof *v2 * cap * 2);
			memcpy(a2, attrs, sizeof *attrs * cap);
			memcpy(v2, vals, sizeof *vals * cap);
			attrs = a2, vals = v2, cap *= 2;
		}
		uint32_t key_at = p->tok.start;
		if (is_kw(p, KW_IF))
			fail_at(p, key_at, "`if` is a reserved identifier");
		px key = parse_expr(p);
		switch (key.kind) {
		case PX_VAR:
			attrs[n].key = var_name(key.var);
			attrs[n].key_len = (uint32_t)strlen(attrs[n].key);
			break;
		case PX_NAME:
			if (key.qualified)
				fail_at(p, key_at, "a path cannot be used as an attribute name");
			if (cedar_ident_reserved(key.s, key.len, true))
				fail_at(p, key_at, "`%s` is a reserved identifier", key.s);
			attrs[n].key = key.s;
			attrs[n].key_len = key.len;
			break;
		case PX_STR: str_value(p, key.s, key.len, key.offset, &attrs[n].key, &attrs[n].key_len); break;
		case PX_BOOL: fail_at(p, key_at, "`%s` is a reserved identifier", key.b ? "true" : "false");
		default: fail_at(p, key_at, "a record key must be an identifier or a string literal");
		}
		expect(p, TK_COLON, "`:`");
		vals[n] = parse_expr_e(p);
		n++;
		if (p->tok.kind != TK_COMMA)
			break;
		advance(p);
	}
	expect(p, TK_RBRACE, "`}`");
	/* Keys must be distinct; a record of literals folds to a value. */
	for (uint32_t i = 0; i < n; i++)
		for (uint32_t j = i + 1; j < n && n <= 64; j++)
			if (cedar_bytes_eq(attrs[i].key, attrs[i].key_len, attrs[j].key, attrs[j].key_len))
				fail_at(p, start, "duplicate key `%s` in record literal", attrs[i].key);
	bool all_lit = true;
	uint32_t d = 0;
	for (uint32_t i = 0; i < n; i++) {
		all_lit &= vals[i]->op == OP_LIT;
		if (vals[i]->depth > d)
			d = vals[i]->depth;
	}
	if (all_lit || n > 64) {
		cedar_attr *copy = alloc(p, sizeof *copy * (n ? n : 1));
		for (uint32_t i = 0; i < n; i++)
			copy[i] = (cedar_attr){ attrs[i].key, attrs[i].key_len, vals[i]->lit };
		cedar_value rec;
		const cedar_attr *dup;
		if (cedar_record_of(copy, n, &rec, &dup) < 0)
			fail_at(p, start, "duplicate key `%s` in record literal", dup->key);
		if (all_lit)
			return px_expr(lit(p, start, rec), start);
	}
	/* Sorted by key now, so that evaluating makes a record as it stands
	 * (Cedar too evaluates the values in key order). */
	for (uint32_t i = 1; i < n; i++) {
		cedar_attr ka = attrs[i];
		cedar_expr *kv = vals[i];
		uint32_t j = i;
		while (j > 0 && cedar_bytes_cmp(attrs[j - 1].key, attrs[j - 1].key_len, ka.key, ka.key_len) > 0) {
			attrs[j] = attrs[j - 1];
			vals[j] = vals[j - 1];
			j--;
		}
		attrs[j] = ka;
		vals[j] = kv;
	}
	cedar_expr *e = node(p, OP_RECORD, start, NULL, NULL, NULL);
	e->items = vals;
	e->n = n;
	e->keys = alloc(p, sizeof *e->keys * (n ? n : 1));
	e->key_lens = alloc(p, sizeof *e->key_lens * (n ? n : 1));
	for (uint32_t i = 0; i < n; i++) {
		e->keys[i] = attrs[i].key;
		e->key_lens[i] = attrs[i].key_len;
	}
	e->depth = d + 1;
	if (e->depth > CEDAR_DEPTH_MAX)
		fail_at(p, start, "expression nested too deeply");
	return px_expr(e, start);
}

static px parse_primary(parser *p)
{
	uint32_t start = p->tok.start;
	switch (p->tok.kind) {
	case TK_NUMBER: {
		px x = { .kind = PX_NUM, .offset = start, .num = p->tok.num, .overflow = p->tok.overflow };
		advance(p);
		return x;
	}
	case TK_STRING: {
		px x = { .kind = PX_STR, .offset = start, .s = p->src + start + 1, .len = p->tok.len - 2 };
		advance(p);
		return x;
	}
	case TK_SLOT:
		fail_at(p, start, "templates (slots like `%.*s`) are not supported", (int)p->tok.len,
			p->src + start);
	case TK_LPAREN: {
		advance(p);
		cedar_expr *e = parse_expr_e(p);
		expect(p, TK_RPAREN, "`)`");
		return px_expr(e, start);
	}
	case TK_LBRACKET: {
		advance(p);
		if (++p->nest > CEDAR_NEST_MAX)
			fail_at(p, start, "nested more than %d levels deep", CEDAR_NEST_MAX);
		uint32_t n;
		cedar_expr **items = parse_list(p, TK_RBRACKET, "set", &n);
		p->nest--;
		return px_expr(set_node(p, start, items, n), start);
	}
	case TK_LBRACE: {
		advance(p);
		if (++p->nest > CEDAR_NEST_MAX)
			fail_at(p, start, "nested more than %d levels deep", CEDAR_NEST_MAX);
		px r = parse_record(p, start);
		p->nest--;
		return r;
	}
	case TK_IDENT: break;
	default: unexpected(p, "an expression");
	}
	if (p->tok.kw == KW_TRUE || p->tok.kw == KW_FALSE) {
		px x = { .kind = PX_BOOL, .offset = start, .b = p->tok.kw == KW_TRUE };
		advance(p);
		if (p->tok.kind == TK_COLON2)
			fail_at(p, start, "`%s` is a reserved identifier", x.b ? "true" : "false");
		return x;
	}
	if (p->tok.kw == KW_IF)
		fail_at(p, start, "an `if` expression must be in parentheses here");
	int kw = p->tok.kw;
	const char *path;
	uint32_t len, parts;
	bool ref;
	read_path(p, &path, &len, &parts, &ref);
	if (ref)
		return px_expr(lit(p, start, cedar_uid_value(parse_uid_tail(p, path, len, start))), start);
	if (parts == 1 && kw >= KW_PRINCIPAL && kw <= KW_CONTEXT)
		return (px){ .kind = PX_VAR, .offset = start, .var = kw - KW_PRINCIPAL };
	if (parts == 1 && cedar_ident_reserved(path, len, true))
		fail_at(p, start, "`%s` is a reserved identifier", path);
	return (px){ .kind = PX_NAME, .offset = start, .s = path, .len = len, .qualified = parts > 1 };
}

/* ---- policies */

/* One entity uid of a scope, or (for the action's `in`) a list of them;
 * parentheses around either are allowed, as in Cedar. */
static const cedar_uid *parse_scope_uid(parser *p)
{
	if (p->tok.kind == TK_LPAREN) {
		advance(p);
		const cedar_uid *u = parse_scope_uid(p);
		expect(p, TK_RPAREN, "`)`");
		return u;
	}
	if (p->tok.kind == TK_SLOT)
		fail_at(p, p->tok.start, "templates (slots like `%.*s`) are not supported",
			(int)p->tok.len, p->src + p->tok.start);
	if (p->tok.kind != TK_IDENT)
		unexpected(p, "an entity uid");
	uint32_t at = p->tok.start, len, parts;
	const char *path;
	bool ref;
	read_path(p, &path, &len, &parts, &ref);
	if (!ref)
		fail_at(p, at, "expected an entity uid, found the name `%s`", path);
	return parse_uid_tail(p, path, len, at);
}

static void parse_scope_uids(parser *p, cedar_scope *s, int depth)
{
	if (p->tok.kind == TK_LPAREN && depth < CEDAR_NEST_MAX) {
		/* `( [...] )` or `( uid )`: look past the parentheses. */
		advance(p);
		parse_scope_uids(p, s, depth + 1);
		expect(p, TK_RPAREN, "`)`");
		return;
	}
	if (p->tok.kind != TK_LBRACKET) {
		s->uids = alloc(p, sizeof *s->uids);
		s->uids[0] = parse_scope_uid(p);
		s->n_uids = 1;
		return;
	}
	advance(p);
	uint32_t cap = 8;
	s->uids = alloc(p, sizeof *s->uids * cap);
	while (p->tok.kind != TK_RBRACKET) {
		if (s->n_uids == CEDAR_SET_MAX)
			fail_at(p, p->tok.start, "more than %d actions in one scope", CEDAR_SET_MAX);
		if (s->n_uids == cap) {
			const cedar_uid **more = alloc(p, sizeof *more * cap * 2);
			memcpy(more, s->uids, sizeof *more * cap);
			s->uids = more;
			cap *= 2;
		}
		s->uids[s->n_uids++] = parse_scope_uid(p);
		if (p->tok.kind != TK_COMMA)
			break;
		advance(p);
	}
	expect(p, TK_RBRACKET, "`]`");
}

static bool is_action_type(const cedar_uid *u)
{
	const char *base = u->type;
	for (uint32_t i = 0; i + 1 < u->type_len; i++)
		if (u->type[i] == ':' && u->type[i + 1] == ':')
			base = u->type + i + 2;
	return u->type + u->type_len - base == 6 && !memcmp(base, "Action", 6);
}

static void scope_end(parser *p)
{
	if (p->tok.kind != TK_COMMA && p->tok.kind != TK_RPAREN)
		unexpected(p, "`,` or `)` after the scope constraint");
}

static void parse_scope(parser *p, int var, cedar_scope *s)
{
	static const char *const names[] = { "principal", "action", "resource" };
	if (p->tok.kind != TK_IDENT)
		unexpected(p, names[var]);
	int got = p->tok.kw == KW_PRINCIPAL ? 0 : p->tok.kw == KW_ACTION ? 1
					      : p->tok.kw == KW_RESOURCE ? 2 : -1;
	if (got < 0)
		fail_at(p, p->tok.start, "`%.*s` is not a scope variable: expected `%s`",
			(int)p->tok.len, p->src + p->tok.start, names[var]);
	if (got != var)
		fail_at(p, p->tok.start, "expected `%s` here, found `%s`", names[var], names[got]);
	advance(p);
	if (p->tok.kind == TK_COLON)
		fail_at(p, p->tok.start, "type constraints like `%s: Type` are not supported: use `%s is Type`",
			names[var], names[var]);
	*s = (cedar_scope){ .op = SCOPE_ANY };
	if (is_kw(p, KW_IS)) {
		if (var == 1)
			fail_at(p, p->tok.start, "`is` is not allowed in the action scope");
		advance(p);
		parse_type_name(p, &s->type, &s->type_len);
		s->op = SCOPE_IS;
	}
	if (p->tok.kind == TK_COMMA || p->tok.kind == TK_RPAREN)
		return;
	uint32_t op_at = p->tok.start;
	bool eq = p->tok.kind == TK_EQ2, in = is_kw(p, KW_IN);
	if (p->tok.kind == TK_EQ)
		fail_at(p, op_at, "`=` is not an operator: did you mean `==`?");
	if (!eq && !in) {
		if (at_relop(p))
			fail_at(p, op_at, "only `==`, `in` and `is` may constrain `%s` in the scope",
				names[var]);
		unexpected(p, "`==`, `in`, `,` or `)`");
	}
	if (eq && s->op == SCOPE_IS)
		fail_at(p, op_at, "`is` cannot be combined with `==` in the scope");
	advance(p);
	if (var == 1) {
		if (eq) {
			s->op = SCOPE_EQ;
			s->uid = parse_scope_uid(p);
			if (!is_action_type(s->uid))
				fail_at(p, op_at, "expected an entity uid of type `Action` in the action scope");
		} else {
			s->op = SCOPE_IN;
			parse_scope_uids(p, s, 0);
			for (uint32_t i = 0; i < s->n_uids; i++)
				if (!is_action_type(s->uids[i]))
					fail_at(p, op_at,
						"expected entity uids of type `Action` in the action scope");
		}
	} else {
		s->uid = parse_scope_uid(p);
		s->op = eq ? SCOPE_EQ : s->op == SCOPE_IS ? SCOPE_IS_IN : SCOPE_IN;
	}
	scope_end(p);
}

static void parse_annotations(parser *p, cedar_policy *pol)
{
	uint32_t cap = 0;
	while (p->tok.kind == TK_AT) {
		uint32_t at = p->tok.start;
		advance(p);
		if (p->tok.kind != TK_IDENT)
			unexpected(p, "an annotation name");
		cedar_annotation an = { .key = p->src + p->tok.start, .key_len = p->tok.len, .value = "" };
		advance(p);
		if (p->tok.kind == TK_LPAREN) {
			advance(p);
			if (p->tok.kind != TK_STRING)
				unexpected(p, "a string");
			str_value(p, p->src + p->tok.start + 1, p->tok.len - 2, p->tok.start, &an.value,
				  &an.value_len);
			advance(p);
			expect(p, TK_RPAREN, "`)`");
		}
		for (uint32_t i = 0; i < pol->n_annotations; i++)
			if (cedar_bytes_eq(pol->annotations[i].key, pol->annotations[i].key_len, an.key,
					   an.key_len))
				fail_at(p, at, "duplicate annotation `@%.*s`", (int)an.key_len, an.key);
		if (pol->n_annotations == cap) {
			cap = cap ? cap * 2 : 4;
			cedar_annotation *more = alloc(p, sizeof *more * cap);
			if (pol->n_annotations)
				memcpy(more, pol->annotations, sizeof *more * pol->n_annotations);
			pol->annotations = more;
		}
		pol->annotations[pol->n_annotations++] = an;
	}
	/* Keys point into the source; give them their own NUL-terminated copy. */
	for (uint32_t i = 0; i < pol->n_annotations; i++) {
		char *k = alloc(p, pol->annotations[i].key_len + 1);
		memcpy(k, pol->annotations[i].key, pol->annotations[i].key_len);
		pol->annotations[i].key = k;
	}
}

static void parse_policy(parser *p, cedar_policy *pol)
{
	pol->start = p->tok.start;
	position(p, pol->start, &pol->line, &pol->column);
	parse_annotations(p, pol);
	if (p->tok.kind != TK_IDENT)
		unexpected(p, "`permit` or `forbid`");
	if (p->tok.kw != KW_PERMIT && p->tok.kw != KW_FORBID)
		fail_at(p, p->tok.start, "`%.*s` is not a valid policy effect: expected `permit` or `forbid`",
			(int)p->tok.len, p->src + p->tok.start);
	pol->forbid = p->tok.kw == KW_FORBID;
	uint32_t effect_at = p->tok.start;
	advance(p);
	expect(p, TK_LPAREN, "`(`");
	cedar_scope *scopes[3] = { &pol->principal, &pol->action, &pol->resource };
	static const char *const names[] = { "principal", "action", "resource" };
	int count = 0;
	while (p->tok.kind != TK_RPAREN) {
		if (count == 3)
			fail_at(p, p->tok.start, "the scope has only principal, action and resource");
		parse_scope(p, count, scopes[count]);
		count++;
		if (p->tok.kind != TK_COMMA)
			break;
		advance(p);
	}
	if (count < 3)
		fail_at(p, count ? p->tok.start : effect_at, "the scope is missing `%s`", names[count]);
	expect(p, TK_RPAREN, "`)`");
	cedar_expr *conds[256];
	uint32_t nc = 0;
	while (p->tok.kind == TK_IDENT) {
		uint32_t at = p->tok.start;
		bool when = p->tok.kw == KW_WHEN;
		if (!when && p->tok.kw != KW_UNLESS)
			fail_at(p, at, "`%.*s` is not a valid condition: expected `when` or `unless`",
				(int)p->tok.len, p->src + at);
		advance(p);
		expect(p, TK_LBRACE, "`{`");
		if (p->tok.kind == TK_RBRACE)
			fail_at(p, at, "`%s` needs a condition between its braces", when ? "when" : "unless");
		cedar_expr *e = parse_expr_e(p);
		expect(p, TK_RBRACE, "`}`");
		if (nc == sizeof conds / sizeof conds[0])
			fail_at(p, at, "more than %zu conditions in one policy", sizeof conds / sizeof conds[0]);
		conds[nc++] = when ? e : node(p, OP_NOT, at, e, NULL, NULL);
	}
	if (p->tok.kind != TK_SEMI)
		unexpected(p, "`;`, `when` or `unless`");
	pol->end = p->tok.start + 1;
	advance(p);
	/* c1 && (c2 && c3), as Cedar conjoins them. */
	cedar_expr *cond = nc ? conds[nc - 1] : NULL;
	for (uint32_t i = nc - 1; nc && i-- > 0;)
		cond = node(p, OP_AND, conds[i]->offset, conds[i], cond, NULL);
	pol->cond = cond;
}

static uint32_t utf8_invalid_at(const char *s, uint32_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	for (uint32_t i = 0; i < n;) {
		unsigned c = u[i];
		uint32_t len;
		uint32_t min;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			len = 2, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			len = 3, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			len = 4, min = 0x10000;
		} else {
			return i;
		}
		if (i + len > n)
			return i;
		uint32_t cp = c & (0x7f >> len);
		for (uint32_t k = 1; k < len; k++) {
			if ((u[i + k] & 0xc0) != 0x80)
				return i;
			cp = cp << 6 | (u[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return i;
		i += len;
	}
	return UINT32_MAX;
}

static int id_cmp(const void *a, const void *b)
{
	const cedar_policy *x = *(cedar_policy *const *)a, *y = *(cedar_policy *const *)b;
	int c = strcmp(x->id, y->id);
	return c ? c : (x->index > y->index) - (x->index < y->index);
}

static void name_policies(parser *p, cedar_policy *pols, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		cedar_policy *pol = &pols[i];
		pol->index = i;
		for (uint32_t k = 0; k < pol->n_annotations; k++)
			if (pol->annotations[k].key_len == 2 && !memcmp(pol->annotations[k].key, "id", 2)) {
				if (memchr(pol->annotations[k].value, 0, pol->annotations[k].value_len))
					fail_at(p, pol->start, "an @id may not contain a NUL character");
				pol->id = pol->annotations[k].value;
			}
		if (!pol->id) {
			char *id = alloc(p, 24);
			snprintf(id, 24, "policy%u", i);
			pol->id = id;
		}
	}
	if (n < 2)
		return;
	cedar_policy **sorted = alloc(p, sizeof *sorted * n);
	for (uint32_t i = 0; i < n; i++)
		sorted[i] = &pols[i];
	qsort(sorted, n, sizeof *sorted, id_cmp);
	for (uint32_t i = 1; i < n; i++)
		if (!strcmp(sorted[i - 1]->id, sorted[i]->id))
			fail_at(p, sorted[i]->start, "two policies are named `%s`", sorted[i]->id);
}

int cedar_parse(const char *text, size_t len, cedar_policy_set **out, cedar_parse_error *err)
{
	cedar_parse_error ignored;
	if (!err)
		err = &ignored;
	*err = (cedar_parse_error){ .line = 1, .column = 1 };
	*out = NULL;
	if (len > CEDAR_TEXT_MAX) {
		snprintf(err->msg, sizeof err->msg, "the policy text is larger than %u bytes", CEDAR_TEXT_MAX);
		return -1;
	}
	cedar_policy_set *ps = calloc(1, sizeof *ps);
	if (!ps) {
		snprintf(err->msg, sizeof err->msg, "out of memory");
		return -1;
	}
	cedar_arena_init(&ps->arena, 0);
	parser *p = calloc(1, sizeof *p);
	char *copy = cedar_arena_strndup(&ps->arena, text, len);
	if (!p || !copy) {
		free(p);
		cedar_policy_set_free(ps);
		snprintf(err->msg, sizeof err->msg, "out of memory");
		return -1;
	}
	p->src = copy;
	p->len = (uint32_t)len;
	p->a = &ps->arena;
	p->err = err;
	ps->text = copy;
	ps->text_len = (uint32_t)len;
	if (setjmp(p->fail)) {
		free(p);
		cedar_policy_set_free(ps);
		return -1;
	}
	uint32_t bad = utf8_invalid_at(copy, p->len);
	if (bad != UINT32_MAX)
		fail_at(p, bad, "the policy text is not valid UTF-8");
	cedar_lex_init(&p->lx, copy, p->len);
	advance(p);
	uint32_t cap = 8;
	ps->policies = alloc(p, sizeof *ps->policies * cap);
	while (p->tok.kind != TK_EOF) {
		if (ps->n == CEDAR_POLICIES_MAX)
			fail_at(p, p->tok.start, "more than %d policies in one set", CEDAR_POLICIES_MAX);
		if (ps->n == cap) {
			cedar_policy *more = alloc(p, sizeof *more * cap * 2);
			memcpy(more, ps->policies, sizeof *more * cap);
			ps->policies = more;
			cap *= 2;
		}
		parse_policy(p, &ps->policies[ps->n]);
		ps->n++;
	}
	name_policies(p, ps->policies, ps->n);
	free(p);
	*out = ps;
	return 0;
}

void cedar_policy_set_free(cedar_policy_set *ps)
{
	if (!ps)
		return;
	cedar_arena_free(&ps->arena);
	free(ps);
}
