/* PromQL's lexer and a recursive-descent parser with precedence climbing,
 * giving the trees and the errors Prometheus 2.42's yacc grammar gives
 * (promql/parser/generated_parser.y, lex.go, parse.go's checkAST). */
#include "kernels/metrics/promql/ast.h"

#include "sdk/err.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ARENA_CHUNK 8192

typedef struct arena_chunk {
	struct arena_chunk *next;
	size_t size, used;
	char data[];
} arena_chunk;

struct pq_expr {
	arena_chunk *arena;
	pq_node *root;
	rx **rx;
	size_t n_rx, cap_rx;
};

static void *arena_alloc(pq_expr *e, size_t n)
{
	n = (n + 7) & ~(size_t)7;
	arena_chunk *c = e->arena;
	if (!c || c->used + n > c->size) {
		size_t size = n > ARENA_CHUNK ? n : ARENA_CHUNK;
		c = malloc(sizeof *c + size);
		if (!c)
			return NULL;
		c->size = size;
		c->used = 0;
		c->next = e->arena;
		e->arena = c;
	}
	void *p = c->data + c->used;
	c->used += n;
	memset(p, 0, n);
	return p;
}

static char *arena_strndup(pq_expr *e, const char *s, size_t n)
{
	char *d = arena_alloc(e, n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

void pq_expr_free(pq_expr *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->n_rx; i++)
		rx_free(e->rx[i]);
	free(e->rx);
	for (arena_chunk *c = e->arena, *nx; c; c = nx) {
		nx = c->next;
		free(c);
	}
	free(e);
}

pq_node *pq_expr_root(const pq_expr *e) { return e->root; }

/* ---- tokens */

enum tok {
	T_EOF, T_IDENT, T_METRIC_IDENT, T_NUMBER, T_DURATION, T_STRING,
	T_LBRACE, T_RBRACE, T_LPAREN, T_RPAREN, T_LBRACKET, T_RBRACKET, T_COMMA, T_COLON, T_AT,
	T_ADD, T_SUB, T_MUL, T_DIV, T_MOD, T_POW,
	T_EQLC, T_NEQ, T_LTE, T_LSS, T_GTE, T_GTR, T_ASSIGN, T_EQL_REGEX, T_NEQ_REGEX,
	/* keywords */
	T_AND, T_OR, T_UNLESS, T_ATAN2,
	T_SUM, T_AVG, T_COUNT, T_MIN, T_MAX, T_GROUP, T_STDDEV, T_STDVAR, T_TOPK, T_BOTTOMK,
	T_COUNT_VALUES, T_QUANTILE,
	T_OFFSET, T_BY, T_WITHOUT, T_ON, T_IGNORING, T_GROUP_LEFT, T_GROUP_RIGHT, T_BOOL,
	T_START, T_END,
};

static const struct {
	const char *word;
	enum tok t;
} keywords[] = {
	{ "and", T_AND }, { "or", T_OR }, { "unless", T_UNLESS }, { "atan2", T_ATAN2 },
	{ "sum", T_SUM }, { "avg", T_AVG }, { "count", T_COUNT }, { "min", T_MIN },
	{ "max", T_MAX }, { "group", T_GROUP }, { "stddev", T_STDDEV }, { "stdvar", T_STDVAR },
	{ "topk", T_TOPK }, { "bottomk", T_BOTTOMK }, { "count_values", T_COUNT_VALUES },
	{ "quantile", T_QUANTILE }, { "offset", T_OFFSET }, { "by", T_BY },
	{ "without", T_WITHOUT }, { "on", T_ON }, { "ignoring", T_IGNORING },
	{ "group_left", T_GROUP_LEFT }, { "group_right", T_GROUP_RIGHT }, { "bool", T_BOOL },
	{ "start", T_START }, { "end", T_END },
};

typedef struct token {
	enum tok t;
	const char *s; /* into the query */
	size_t n;
	unsigned pos;
} token;

typedef struct parser {
	pq_expr *e;
	const char *q;
	size_t len;
	size_t i;
	token tok; /* the current token */
	bool have;
	int brace;   /* inside {...}: keywords are identifiers */
	int bracket; /* inside [...]: durations and ':' */
	unsigned depth;
	sdk_err *err;
	bool failed;
} parser;

static bool perr(parser *p, unsigned pos, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static bool perr(parser *p, unsigned pos, const char *fmt, ...)
{
	if (p->failed)
		return false;
	p->failed = true;
	/* Prometheus counts lines and columns from 1. */
	unsigned line = 1, col = 1;
	for (unsigned k = 0; k < pos && k < p->len; k++) {
		if (p->q[k] == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
	}
	char msg[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	sdk_fail(p->err, SDK_EINVAL, "%u:%u: parse error: %s", line, col, msg);
	return false;
}

static bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_alnum(char c) { return is_alpha(c) || is_digit(c); }

static char at(const parser *p, size_t k) { return k < p->len ? p->q[k] : '\0'; }

/* Scans a number (Prometheus's scanNumber) or a duration from p->i. */
static bool lex_number(parser *p, token *t)
{
	size_t k = p->i;
	const char *digits = "0123456789";
	if (at(p, k) == '0' && (at(p, k + 1) == 'x' || at(p, k + 1) == 'X')) {
		digits = "0123456789abcdefABCDEF";
		k += 2;
	}
	while (at(p, k) && strchr(digits, at(p, k)))
		k++;
	if (at(p, k) == '.') {
		k++;
		while (at(p, k) && strchr(digits, at(p, k)))
			k++;
	}
	if (at(p, k) == 'e' || at(p, k) == 'E') {
		k++;
		if (at(p, k) == '+' || at(p, k) == '-')
			k++;
		while (is_digit(at(p, k)))
			k++;
	}
	if (!is_alnum(at(p, k))) {
		t->t = T_NUMBER;
		t->n = k - p->i;
		p->i = k;
		return true;
	}
	/* A duration: digits and units, "5m", "1h30m", "250ms". */
	k = p->i;
	bool any = false;
	while (is_digit(at(p, k))) {
		while (is_digit(at(p, k)))
			k++;
		if (!strchr("smhdwy", at(p, k)) || !at(p, k))
			return perr(p, (unsigned)p->i, "bad number or duration syntax: \"%.*s\"",
				    (int)(k - p->i + 1), p->q + p->i);
		k++;
		if (at(p, k) == 's' && at(p, k - 1) == 'm')
			k++;
		any = true;
	}
	if (!any || is_alnum(at(p, k)))
		return perr(p, (unsigned)p->i, "bad number or duration syntax: \"%.*s\"",
			    (int)(k - p->i + 1), p->q + p->i);
	t->t = T_DURATION;
	t->n = k - p->i;
	p->i = k;
	return true;
}

static bool lex_string(parser *p, token *t)
{
	char quote = p->q[p->i];
	size_t k = p->i + 1;
	for (;;) {
		char c = at(p, k);
		if (!c || (c == '\n' && quote != '`'))
			return perr(p, (unsigned)p->i, "unterminated quoted string");
		if (c == '\\' && quote != '`') {
			k += 2;
			continue;
		}
		k++;
		if (c == quote)
			break;
	}
	t->t = T_STRING;
	t->n = k - p->i;
	p->i = k;
	return true;
}

static bool lex(parser *p, token *t)
{
	for (;;) {
		while (p->i < p->len && strchr(" \t\n\r", p->q[p->i]))
			p->i++;
		if (at(p, p->i) == '#') {
			while (p->i < p->len && p->q[p->i] != '\n')
				p->i++;
			continue;
		}
		break;
	}
	t->s = p->q + p->i;
	t->pos = (unsigned)p->i;
	t->n = 1;
	if (p->i >= p->len) {
		t->t = T_EOF;
		t->n = 0;
		return true;
	}
	char c = p->q[p->i], d = at(p, p->i + 1);
	if (p->bracket && is_digit(c))
		return lex_number(p, t);
	if (is_digit(c) || (c == '.' && is_digit(d)))
		return lex_number(p, t);
	if (c == '"' || c == '\'' || c == '`')
		return lex_string(p, t);
	if (is_alpha(c) || (c == ':' && !p->brace && !p->bracket)) {
		size_t k = p->i;
		bool colon = false;
		while (is_alnum(at(p, k)) || (!p->brace && at(p, k) == ':')) {
			colon |= at(p, k) == ':';
			k++;
		}
		t->n = k - p->i;
		p->i = k;
		t->t = colon ? T_METRIC_IDENT : T_IDENT;
		/* Inf and NaN are numbers, in any case. */
		if (!p->brace && !colon && t->n == 3 &&
		    (!strncasecmp(t->s, "inf", 3) || !strncasecmp(t->s, "nan", 3))) {
			t->t = T_NUMBER;
			return true;
		}
		if (!p->brace && !colon)
			for (size_t j = 0; j < sizeof keywords / sizeof keywords[0]; j++)
				if (strlen(keywords[j].word) == t->n &&
				    !strncasecmp(keywords[j].word, t->s, t->n)) {
					t->t = keywords[j].t;
					break;
				}
		return true;
	}
	p->i++;
	switch (c) {
	case '{': t->t = T_LBRACE; return true;
	case '}': t->t = T_RBRACE; return true;
	case '(': t->t = T_LPAREN; return true;
	case ')': t->t = T_RPAREN; return true;
	case '[': t->t = T_LBRACKET; return true;
	case ']': t->t = T_RBRACKET; return true;
	case ',': t->t = T_COMMA; return true;
	case ':': t->t = T_COLON; return true;
	case '@': t->t = T_AT; return true;
	case '+': t->t = T_ADD; return true;
	case '-': t->t = T_SUB; return true;
	case '*': t->t = T_MUL; return true;
	case '/': t->t = T_DIV; return true;
	case '%': t->t = T_MOD; return true;
	case '^': t->t = T_POW; return true;
	case '=':
		if (d == '=') {
			p->i++, t->n = 2, t->t = T_EQLC;
		} else if (d == '~') {
			p->i++, t->n = 2, t->t = T_EQL_REGEX;
		} else {
			t->t = T_ASSIGN;
		}
		return true;
	case '!':
		if (d == '=') {
			p->i++, t->n = 2, t->t = T_NEQ;
			return true;
		}
		if (d == '~') {
			p->i++, t->n = 2, t->t = T_NEQ_REGEX;
			return true;
		}
		return perr(p, t->pos, "unexpected character after '!': '%c'", d);
	case '<':
		if (d == '=')
			p->i++, t->n = 2, t->t = T_LTE;
		else
			t->t = T_LSS;
		return true;
	case '>':
		if (d == '=')
			p->i++, t->n = 2, t->t = T_GTE;
		else
			t->t = T_GTR;
		return true;
	}
	return perr(p, t->pos, "unexpected character: '%c'", c);
}

static token *peek(parser *p)
{
	if (!p->have) {
		if (!lex(p, &p->tok))
			p->tok.t = T_EOF;
		p->have = true;
	}
	return &p->tok;
}

static token next(parser *p)
{
	token t = *peek(p);
	p->have = false;
	return t;
}

static const char *tok_desc(const token *t, char *buf, size_t len)
{
	if (t->t == T_EOF)
		return "end of input";
	snprintf(buf, len, "\"%.*s\"", (int)(t->n > 40 ? 40 : t->n), t->s);
	return buf;
}

static bool unexpected(parser *p, const token *t, const char *context)
{
	char b[64];
	return perr(p, t->pos, "unexpected %s%s%s", tok_desc(t, b, sizeof b),
		    context ? " in " : "", context ? context : "");
}

static bool expect(parser *p, enum tok want, const char *context)
{
	token t = next(p);
	if (t.t == want)
		return true;
	return unexpected(p, &t, context);
}

/* ---- literals */

static bool unquote(parser *p, const token *t, const char **out)
{
	char q = t->s[0];
	const char *s = t->s + 1, *end = t->s + t->n - 1;
	char *d = arena_alloc(p->e, t->n * 4 + 1);
	if (!d)
		return perr(p, t->pos, "out of memory");
	*out = d;
	if (q == '`') {
		memcpy(d, s, (size_t)(end - s));
		d[end - s] = '\0';
		return true;
	}
	while (s < end) {
		if (*s != '\\') {
			*d++ = *s++;
			continue;
		}
		s++;
		char c = *s++;
		switch (c) {
		case 'a': *d++ = '\a'; break;
		case 'b': *d++ = '\b'; break;
		case 'f': *d++ = '\f'; break;
		case 'n': *d++ = '\n'; break;
		case 'r': *d++ = '\r'; break;
		case 't': *d++ = '\t'; break;
		case 'v': *d++ = '\v'; break;
		case '\\': *d++ = '\\'; break;
		case '\'':
		case '"': *d++ = c; break;
		case 'x':
		case 'u':
		case 'U': {
			int n = c == 'x' ? 2 : c == 'u' ? 4 : 8;
			unsigned long v = 0;
			for (int i = 0; i < n; i++, s++) {
				if (s >= end || !isxdigit((unsigned char)*s))
					return perr(p, t->pos, "invalid escape sequence in string");
				v = v * 16 + (unsigned long)(isdigit((unsigned char)*s) ? *s - '0'
									    : (tolower(*s) - 'a' + 10));
			}
			if (c == 'x') {
				*d++ = (char)v;
			} else {
				if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
					return perr(p, t->pos, "invalid escape sequence in string");
				if (v < 0x80) {
					*d++ = (char)v;
				} else if (v < 0x800) {
					*d++ = (char)(0xc0 | (v >> 6));
					*d++ = (char)(0x80 | (v & 0x3f));
				} else if (v < 0x10000) {
					*d++ = (char)(0xe0 | (v >> 12));
					*d++ = (char)(0x80 | ((v >> 6) & 0x3f));
					*d++ = (char)(0x80 | (v & 0x3f));
				} else {
					*d++ = (char)(0xf0 | (v >> 18));
					*d++ = (char)(0x80 | ((v >> 12) & 0x3f));
					*d++ = (char)(0x80 | ((v >> 6) & 0x3f));
					*d++ = (char)(0x80 | (v & 0x3f));
				}
			}
			break;
		}
		default:
			if (c >= '0' && c <= '7') {
				int v = c - '0';
				for (int i = 0; i < 2; i++, s++) {
					if (s >= end || *s < '0' || *s > '7')
						return perr(p, t->pos, "invalid escape sequence in string");
					v = v * 8 + (*s - '0');
				}
				if (v > 255)
					return perr(p, t->pos, "invalid escape sequence in string");
				*d++ = (char)v;
				break;
			}
			return perr(p, t->pos, "invalid escape sequence in string");
		}
	}
	*d = '\0';
	return true;
}

static bool parse_number(const char *s, size_t n, double *out)
{
	char tmp[128];
	if (n >= sizeof tmp)
		return false;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	const char *b = tmp;
	if (*b == '+' || *b == '-')
		b++;
	if (!strcasecmp(b, "inf") || !strcasecmp(b, "infinity")) {
		*out = tmp[0] == '-' ? -INFINITY : INFINITY;
		return true;
	}
	if (!strcasecmp(b, "nan")) {
		*out = NAN;
		return true;
	}
	/* Go's ParseInt with base 0 first: 0x1f, and 0755 as octal. */
	char *end;
	errno = 0;
	long long iv = strtoll(tmp, &end, 0);
	if (!*end && !errno && end != tmp) {
		*out = (double)iv;
		return true;
	}
	errno = 0;
	double v = strtod(tmp, &end);
	if (*end || end == tmp || (errno == ERANGE && isinf(v)))
		return false;
	*out = v;
	return true;
}

bool pq_parse_duration(const char *s, size_t n, int64_t *ms)
{
	static const struct {
		const char *unit;
		int64_t ms;
	} units[] = { { "y", 365LL * 86400000 }, { "w", 7LL * 86400000 }, { "d", 86400000 },
		      { "h", 3600000 },		 { "m", 60000 },		  { "s", 1000 },
		      { "ms", 1 } };
	if (n == 1 && s[0] == '0') {
		*ms = 0;
		return true;
	}
	size_t i = 0, next_unit = 0;
	int64_t total = 0;
	bool any = false;
	while (i < n) {
		if (!is_digit(s[i]))
			return false;
		int64_t v = 0;
		while (i < n && is_digit(s[i])) {
			if (v > INT64_MAX / 10)
				return false;
			v = v * 10 + (s[i++] - '0');
		}
		size_t ul = (i + 1 < n && s[i] == 'm' && s[i + 1] == 's') ? 2 : 1;
		if (i >= n)
			return false;
		size_t u;
		for (u = next_unit; u < sizeof units / sizeof units[0]; u++)
			if (strlen(units[u].unit) == ul && !strncmp(units[u].unit, s + i, ul))
				break;
		if (u == sizeof units / sizeof units[0])
			return false; /* unknown, or out of order */
		if (v > INT64_MAX / units[u].ms || total > INT64_MAX - v * units[u].ms)
			return false;
		total += v * units[u].ms;
		next_unit = u + 1;
		i += ul;
		any = true;
	}
	if (!any)
		return false;
	*ms = total;
	return true;
}

/* ---- nodes */

static pq_node *node(parser *p, enum pq_kind k, enum pq_type type, unsigned pos)
{
	pq_node *n = arena_alloc(p->e, sizeof *n);
	if (!n) {
		perr(p, pos, "out of memory");
		return NULL;
	}
	n->kind = k;
	n->type = type;
	n->pos = pos;
	return n;
}

static const char *type_name(enum pq_type t)
{
	switch (t) {
	case PQ_SCALAR: return "scalar";
	case PQ_VECTOR: return "instant vector";
	case PQ_MATRIX: return "range vector";
	case PQ_STRING: return "string";
	default: return "none";
	}
}

static bool keep_rx(parser *p, rx *r)
{
	if (p->e->n_rx == p->e->cap_rx) {
		size_t cap = p->e->cap_rx ? p->e->cap_rx * 2 : 4;
		rx **n = realloc(p->e->rx, cap * sizeof *n);
		if (!n) {
			rx_free(r);
			return false;
		}
		p->e->rx = n;
		p->e->cap_rx = cap;
	}
	p->e->rx[p->e->n_rx++] = r;
	return true;
}

static bool is_keyword(enum tok t) { return t >= T_AND; }

/* A label name where keywords may stand (grouping labels, matchers). */
static bool label_name(parser *p, const char **out)
{
	token t = next(p);
	if (t.t != T_IDENT && !is_keyword(t.t)) {
		if (t.t == T_METRIC_IDENT)
			return perr(p, t.pos, "unexpected \"%.*s\" in grouping opts, expected label", (int)t.n, t.s);
		return unexpected(p, &t, "label list");
	}
	*out = arena_strndup(p->e, t.s, t.n);
	return *out != NULL;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* "(a, b, )" */
static bool label_list(parser *p, pq_names *out, bool sort)
{
	if (!expect(p, T_LPAREN, "grouping opts"))
		return false;
	const char *tmp[LBL_PAIRS_MAX * 2];
	size_t n = 0;
	while (peek(p)->t != T_RPAREN) {
		if (n == sizeof tmp / sizeof tmp[0])
			return perr(p, peek(p)->pos, "too many labels");
		if (!label_name(p, &tmp[n++]))
			return false;
		if (peek(p)->t == T_COMMA)
			next(p);
		else if (peek(p)->t != T_RPAREN)
			return unexpected(p, peek(p), "grouping opts");
	}
	next(p);
	out->v = arena_alloc(p->e, (n + 1) * sizeof *out->v);
	if (!out->v)
		return perr(p, 0, "out of memory");
	memcpy(out->v, tmp, n * sizeof *tmp);
	out->n = n;
	if (sort)
		qsort(out->v, n, sizeof *out->v, name_cmp);
	return true;
}

static bool matchers(parser *p, pq_node *vs)
{
	p->brace++;
	next(p); /* '{' */
	idx_matcher tmp[LBL_PAIRS_MAX + 1];
	size_t n = 0;
	while (peek(p)->t != T_RBRACE) {
		if (n == LBL_PAIRS_MAX)
			return perr(p, peek(p)->pos, "too many label matchers");
		token nt = next(p);
		if (nt.t != T_IDENT) {
			char b[64];
			if (nt.t == T_EOF)
				return perr(p, nt.pos, "unexpected end of input inside braces");
			return perr(p, nt.pos, "unexpected %s in label matching, expected identifier or \"}\"",
				    tok_desc(&nt, b, sizeof b));
		}
		idx_matcher *m = &tmp[n++];
		m->name = arena_strndup(p->e, nt.s, nt.n);
		token op = next(p);
		switch (op.t) {
		case T_ASSIGN: m->type = IDX_EQ; break;
		case T_NEQ: m->type = IDX_NEQ; break;
		case T_EQL_REGEX: m->type = IDX_RE; break;
		case T_NEQ_REGEX: m->type = IDX_NRE; break;
		default:
			return perr(p, op.pos, "unexpected %s in label matching, expected label matching operator",
				    op.t == T_EOF ? "end of input" : "token");
		}
		token v = next(p);
		if (v.t != T_STRING)
			return perr(p, v.pos, "unexpected %s in label matching, expected string",
				    v.t == T_EOF ? "end of input" : "token");
		if (!unquote(p, &v, &m->value))
			return false;
		if (m->type >= IDX_RE) {
			sdk_err why;
			m->re = rx_compile(m->value, &why);
			if (!m->re)
				return perr(p, v.pos, "%s", why.msg);
			if (!keep_rx(p, m->re))
				return perr(p, v.pos, "out of memory");
		}
		if (peek(p)->t == T_COMMA)
			next(p);
		else if (peek(p)->t != T_RBRACE)
			return unexpected(p, peek(p), "label matching");
	}
	p->brace--;
	next(p); /* '}' */
	/* The name given before the braces is matched last, as Prometheus
	 * appends it. */
	size_t total = n + (vs->vs.name ? 1 : 0);
	vs->vs.m = arena_alloc(p->e, (total + 1) * sizeof *vs->vs.m);
	if (!vs->vs.m)
		return perr(p, 0, "out of memory");
	memcpy(vs->vs.m, tmp, n * sizeof *tmp);
	vs->vs.nm = n;
	return true;
}

static pq_node *vector_selector(parser *p, const token *name)
{
	pq_node *vs = node(p, PQ_VSEL, PQ_VECTOR, name ? name->pos : peek(p)->pos);
	if (!vs)
		return NULL;
	if (name)
		vs->vs.name = arena_strndup(p->e, name->s, name->n);
	if (peek(p)->t == T_LBRACE) {
		if (!matchers(p, vs))
			return NULL;
	} else {
		vs->vs.m = arena_alloc(p->e, 2 * sizeof *vs->vs.m);
		if (!vs->vs.m)
			return perr(p, 0, "out of memory"), NULL;
	}
	if (vs->vs.name) {
		for (size_t i = 0; i < vs->vs.nm; i++)
			if (!strcmp(vs->vs.m[i].name, LBL_METRIC_NAME))
				return perr(p, vs->pos, "metric name must not be set twice: \"%s\" or \"%s\"",
					    vs->vs.name, vs->vs.m[i].value),
				       NULL;
		vs->vs.m[vs->vs.nm++] = (idx_matcher){ IDX_EQ, LBL_METRIC_NAME, vs->vs.name, NULL };
	} else {
		bool non_empty = false;
		for (size_t i = 0; i < vs->vs.nm && !non_empty; i++)
			non_empty = !idx_matcher_matches(&vs->vs.m[i], "");
		if (!non_empty)
			return perr(p, vs->pos, "vector selector must contain at least one non-empty matcher"),
			       NULL;
	}
	return vs;
}

static pq_node *expr(parser *p, int min_prec);

static bool agg_op(enum tok t, enum pq_agg_op *op)
{
	static const struct {
		enum tok t;
		enum pq_agg_op op;
	} m[] = { { T_SUM, PQ_AGG_SUM },	 { T_AVG, PQ_AGG_AVG },
		  { T_MIN, PQ_AGG_MIN },	 { T_MAX, PQ_AGG_MAX },
		  { T_COUNT, PQ_AGG_COUNT },	 { T_GROUP, PQ_AGG_GROUP },
		  { T_STDDEV, PQ_AGG_STDDEV },	 { T_STDVAR, PQ_AGG_STDVAR },
		  { T_TOPK, PQ_AGG_TOPK },	 { T_BOTTOMK, PQ_AGG_BOTTOMK },
		  { T_QUANTILE, PQ_AGG_QUANTILE }, { T_COUNT_VALUES, PQ_AGG_COUNT_VALUES } };
	for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
		if (m[i].t == t) {
			*op = m[i].op;
			return true;
		}
	return false;
}

static bool expect_type(parser *p, const pq_node *n, enum pq_type want, const char *context)
{
	if (n->type == want)
		return true;
	return perr(p, n->pos, "expected type %s in %s, got %s", type_name(want), context,
		    type_name(n->type));
}

static pq_node *aggregation(parser *p, const token *opt)
{
	pq_node *n = node(p, PQ_AGG, PQ_VECTOR, opt->pos);
	if (!n)
		return NULL;
	agg_op(opt->t, &n->agg.op);
	bool have_grouping = false;
	if (peek(p)->t == T_BY || peek(p)->t == T_WITHOUT) {
		n->agg.without = next(p).t == T_WITHOUT;
		if (!label_list(p, &n->agg.grouping, true))
			return NULL;
		have_grouping = true;
	}
	if (peek(p)->t != T_LPAREN)
		return unexpected(p, peek(p), "aggregation"), NULL;
	next(p);
	if (peek(p)->t == T_RPAREN)
		return perr(p, peek(p)->pos, "no arguments for aggregate expression provided"), NULL;
	pq_node *a = expr(p, 0);
	if (!a)
		return NULL;
	pq_node *b = NULL;
	if (peek(p)->t == T_COMMA) {
		next(p);
		b = expr(p, 0);
		if (!b)
			return NULL;
	}
	if (peek(p)->t == T_COMMA)
		return perr(p, peek(p)->pos, "trailing commas not allowed in aggregation"), NULL;
	if (!expect(p, T_RPAREN, "aggregation"))
		return NULL;
	enum pq_agg_op op = n->agg.op;
	bool param = op == PQ_AGG_TOPK || op == PQ_AGG_BOTTOMK || op == PQ_AGG_QUANTILE ||
		     op == PQ_AGG_COUNT_VALUES;
	if (param) {
		if (!b)
			return perr(p, n->pos, "wrong number of arguments for aggregate expression provided, expected 2, got 1"),
			       NULL;
		n->agg.param = a;
		n->agg.expr = b;
	} else {
		if (b)
			return perr(p, n->pos, "wrong number of arguments for aggregate expression provided, expected 1, got 2"),
			       NULL;
		n->agg.expr = a;
	}
	if (peek(p)->t == T_BY || peek(p)->t == T_WITHOUT) {
		if (have_grouping)
			return perr(p, peek(p)->pos, "aggregation must only contain one grouping clause"),
			       NULL;
		n->agg.without = next(p).t == T_WITHOUT;
		if (!label_list(p, &n->agg.grouping, true))
			return NULL;
	}
	if (!expect_type(p, n->agg.expr, PQ_VECTOR, "aggregation expression"))
		return NULL;
	if ((op == PQ_AGG_TOPK || op == PQ_AGG_BOTTOMK || op == PQ_AGG_QUANTILE) &&
	    !expect_type(p, n->agg.param, PQ_SCALAR, "aggregation parameter"))
		return NULL;
	if (op == PQ_AGG_COUNT_VALUES && !expect_type(p, n->agg.param, PQ_STRING, "aggregation parameter"))
		return NULL;
	return n;
}

static pq_node *call(parser *p, const token *name)
{
	const pq_func *f = pq_func_find(name->s, name->n);
	if (!f)
		return perr(p, name->pos, "unknown function with name \"%.*s\"", (int)name->n, name->s),
		       NULL;
	pq_node *n = node(p, PQ_CALL, f->ret, name->pos);
	if (!n)
		return NULL;
	n->call.f = f;
	next(p); /* '(' */
	pq_node *args[64];
	size_t na = 0;
	while (peek(p)->t != T_RPAREN) {
		if (na == sizeof args / sizeof args[0])
			return perr(p, peek(p)->pos, "too many arguments"), NULL;
		if (!(args[na++] = expr(p, 0)))
			return NULL;
		if (peek(p)->t == T_COMMA) {
			token c = next(p);
			if (peek(p)->t == T_RPAREN)
				return perr(p, c.pos, "trailing commas not allowed in function call args"),
				       NULL;
		} else if (peek(p)->t != T_RPAREN) {
			return unexpected(p, peek(p), "function call args"), NULL;
		}
	}
	next(p);
	n->call.args = arena_alloc(p->e, (na + 1) * sizeof *n->call.args);
	if (!n->call.args)
		return perr(p, 0, "out of memory"), NULL;
	memcpy(n->call.args, args, na * sizeof *args);
	n->call.n = na;
	/* Prometheus's checks, in its words. */
	int nargs = f->nargs;
	if (f->variadic == 0) {
		if ((size_t)nargs != na)
			return perr(p, n->pos, "expected %d argument(s) in call to \"%s\", got %zu", nargs,
				    f->name, na),
			       NULL;
	} else {
		int min = nargs - 1;
		if ((size_t)min > na)
			return perr(p, n->pos, "expected at least %d argument(s) in call to \"%s\", got %zu",
				    min, f->name, na),
			       NULL;
		if (f->variadic > 0 && (size_t)(min + f->variadic) < na)
			return perr(p, n->pos, "expected at most %d argument(s) in call to \"%s\", got %zu",
				    min + f->variadic, f->name, na),
			       NULL;
	}
	for (size_t i = 0; i < na; i++) {
		size_t ti = i < (size_t)nargs ? i : (size_t)nargs - 1;
		char ctx[64];
		snprintf(ctx, sizeof ctx, "call to function \"%s\"", f->name);
		if (!expect_type(p, args[i], f->args[ti], ctx))
			return NULL;
	}
	return n;
}

static bool signed_number(parser *p, double *v, unsigned *pos)
{
	token t = next(p);
	*pos = t.pos;
	double sign = 1;
	if (t.t == T_ADD || t.t == T_SUB) {
		sign = t.t == T_SUB ? -1 : 1;
		t = next(p);
	}
	if (t.t != T_NUMBER || !parse_number(t.s, t.n, v))
		return unexpected(p, &t, "@");
	*v *= sign;
	return true;
}

static bool duration(parser *p, int64_t *ms, const char *context)
{
	token t = next(p);
	if (t.t != T_DURATION && !(t.t == T_NUMBER && t.n == 1 && t.s[0] == '0'))
		return unexpected(p, &t, context);
	if (!pq_parse_duration(t.s, t.n, ms))
		return perr(p, t.pos, "not a valid duration string: \"%.*s\"", (int)t.n, t.s);
	return true;
}

/* offset, @, [range] and [range:step] after an expression. */
static pq_node *postfix(parser *p, pq_node *n)
{
	for (;;) {
		token *t = peek(p);
		if (t->t == T_LBRACKET) {
			token lb = next(p);
			p->bracket++;
			int64_t range, step = 0;
			if (!duration(p, &range, "range")) {
				p->bracket--;
				return NULL;
			}
			bool subq = false;
			if (peek(p)->t == T_COLON) {
				next(p);
				subq = true;
				if (peek(p)->t != T_RBRACKET && !duration(p, &step, "subquery step")) {
					p->bracket--;
					return NULL;
				}
			}
			p->bracket--;
			if (!expect(p, T_RBRACKET, subq ? "subquery selector" : "range selector"))
				return NULL;
			if (range == 0)
				return perr(p, lb.pos, "duration must be greater than 0"), NULL;
			if (subq) {
				if (n->type != PQ_VECTOR)
					return perr(p, n->pos, "subquery is only allowed on instant vector, got %s instead",
						    type_name(n->type)),
					       NULL;
				pq_node *s = node(p, PQ_SUBQUERY, PQ_MATRIX, n->pos);
				if (!s)
					return NULL;
				s->sq.expr = n;
				s->sq.range = range;
				s->sq.step = step;
				n = s;
			} else {
				if (n->kind != PQ_VSEL)
					return perr(p, n->pos, "ranges only allowed for vector selectors"), NULL;
				if (n->vs.offset)
					return perr(p, n->pos, "no offset modifiers allowed before range"), NULL;
				if (n->vs.at != PQ_AT_NONE)
					return perr(p, n->pos, "no @ modifiers allowed before range"), NULL;
				pq_node *m = node(p, PQ_MSEL, PQ_MATRIX, n->pos);
				if (!m)
					return NULL;
				m->ms.vs = n;
				m->ms.range = range;
				n = m;
			}
			continue;
		}
		if (t->t == T_OFFSET) {
			token ot = next(p);
			bool neg = false;
			if (peek(p)->t == T_SUB) {
				next(p);
				neg = true;
			}
			int64_t off;
			if (!duration(p, &off, "offset"))
				return NULL;
			if (neg)
				off = -off;
			int64_t *slot = n->kind == PQ_VSEL	  ? &n->vs.offset
					: n->kind == PQ_MSEL	  ? &n->ms.vs->vs.offset
					: n->kind == PQ_SUBQUERY ? &n->sq.offset
								 : NULL;
			if (!slot)
				return perr(p, ot.pos, "offset modifier must be preceded by an instant vector selector or range vector selector or a subquery"),
				       NULL;
			if (*slot)
				return perr(p, ot.pos, "offset may not be set multiple times"), NULL;
			*slot = off;
			continue;
		}
		if (t->t == T_AT) {
			token att = next(p);
			enum pq_at kind = PQ_AT_TIME;
			int64_t ms = 0;
			if (peek(p)->t == T_START || peek(p)->t == T_END) {
				kind = next(p).t == T_START ? PQ_AT_START : PQ_AT_END;
				if (!expect(p, T_LPAREN, "@") || !expect(p, T_RPAREN, "@"))
					return NULL;
			} else {
				double v;
				unsigned pos;
				if (!signed_number(p, &v, &pos))
					return NULL;
				if (isnan(v) || isinf(v) || fabs(v * 1000) > 9.2e18)
					return perr(p, pos, "timestamp out of bounds for @ modifier: %g", v), NULL;
				ms = (int64_t)llround(v * 1000);
			}
			enum pq_at *slot = n->kind == PQ_VSEL	 ? &n->vs.at
					   : n->kind == PQ_MSEL	 ? &n->ms.vs->vs.at
					   : n->kind == PQ_SUBQUERY ? &n->sq.at
								    : NULL;
			if (!slot)
				return perr(p, att.pos, "@ modifier must be preceded by an instant vector selector or range vector selector or a subquery"),
				       NULL;
			if (*slot != PQ_AT_NONE)
				return perr(p, att.pos, "@ <timestamp> may not be set multiple times"), NULL;
			*slot = kind;
			if (n->kind == PQ_VSEL)
				n->vs.at_ms = ms;
			else if (n->kind == PQ_MSEL)
				n->ms.vs->vs.at_ms = ms;
			else
				n->sq.at_ms = ms;
			continue;
		}
		return n;
	}
}

static pq_node *primary(parser *p)
{
	token *pk = peek(p);
	enum pq_agg_op aop;
	switch (pk->t) {
	case T_NUMBER: {
		token t = next(p);
		pq_node *n = node(p, PQ_NUMBER, PQ_SCALAR, t.pos);
		if (n && !parse_number(t.s, t.n, &n->num))
			return perr(p, t.pos, "error parsing number: %.*s", (int)t.n, t.s), NULL;
		return n;
	}
	case T_STRING: {
		token t = next(p);
		pq_node *n = node(p, PQ_STRING_LIT, PQ_STRING, t.pos);
		if (n && !unquote(p, &t, &n->str))
			return NULL;
		return n;
	}
	case T_LPAREN: {
		token t = next(p);
		pq_node *n = node(p, PQ_PAREN, PQ_NONE, t.pos);
		if (!n || !(n->paren.expr = expr(p, 0)))
			return NULL;
		if (!expect(p, T_RPAREN, "paren expression"))
			return NULL;
		n->type = n->paren.expr->type;
		return n;
	}
	case T_LBRACE:
		return vector_selector(p, NULL);
	case T_IDENT: {
		token t = next(p);
		if (peek(p)->t == T_LPAREN)
			return call(p, &t);
		return vector_selector(p, &t);
	}
	case T_METRIC_IDENT: {
		token t = next(p);
		return vector_selector(p, &t);
	}
	case T_DURATION: {
		token t = next(p);
		return perr(p, t.pos, "unexpected duration \"%.*s\"", (int)t.n, t.s), NULL;
	}
	default:
		break;
	}
	if (agg_op(pk->t, &aop)) {
		token t = next(p);
		token *after = peek(p);
		if (after->t == T_LPAREN || after->t == T_BY || after->t == T_WITHOUT)
			return aggregation(p, &t);
		return vector_selector(p, &t);
	}
	if (pk->t == T_BY || pk->t == T_WITHOUT || pk->t == T_OFFSET || pk->t == T_AND ||
	    pk->t == T_OR || pk->t == T_UNLESS || pk->t == T_START || pk->t == T_END) {
		token t = next(p);
		return vector_selector(p, &t);
	}
	token t = next(p);
	return unexpected(p, &t, NULL), NULL;
}

static int binop_prec(enum tok t, enum pq_op *op)
{
	switch (t) {
	case T_OR: *op = PQ_OP_OR; return 1;
	case T_AND: *op = PQ_OP_AND; return 2;
	case T_UNLESS: *op = PQ_OP_UNLESS; return 2;
	case T_EQLC: *op = PQ_OP_EQL; return 3;
	case T_NEQ: *op = PQ_OP_NEQ; return 3;
	case T_LTE: *op = PQ_OP_LTE; return 3;
	case T_LSS: *op = PQ_OP_LSS; return 3;
	case T_GTE: *op = PQ_OP_GTE; return 3;
	case T_GTR: *op = PQ_OP_GTR; return 3;
	case T_ADD: *op = PQ_OP_ADD; return 4;
	case T_SUB: *op = PQ_OP_SUB; return 4;
	case T_MUL: *op = PQ_OP_MUL; return 5;
	case T_DIV: *op = PQ_OP_DIV; return 5;
	case T_MOD: *op = PQ_OP_MOD; return 5;
	case T_ATAN2: *op = PQ_OP_ATAN2; return 5;
	case T_POW: *op = PQ_OP_POW; return 6;
	default: return 0;
	}
}

#define PREC_POW 6

static bool is_comparison(enum pq_op op) { return op >= PQ_OP_EQL && op <= PQ_OP_LTE; }
static bool is_set_op(enum pq_op op) { return op >= PQ_OP_AND; }

static pq_node *unary(parser *p)
{
	if (p->depth++ > PQ_DEPTH_MAX)
		return perr(p, peek(p)->pos, "query nested too deeply"), NULL;
	pq_node *r;
	token *pk = peek(p);
	if (pk->t == T_ADD || pk->t == T_SUB) {
		token t = next(p);
		pq_node *operand = expr(p, PREC_POW);
		if (!operand) {
			p->depth--;
			return NULL;
		}
		if (operand->type != PQ_SCALAR && operand->type != PQ_VECTOR) {
			p->depth--;
			return perr(p, t.pos, "unary expression only allowed on expressions of type scalar or instant vector, got \"%s\"",
				    type_name(operand->type)),
			       NULL;
		}
		if (operand->kind == PQ_NUMBER) {
			if (t.t == T_SUB)
				operand->num = -operand->num;
			operand->pos = t.pos;
			r = operand;
		} else {
			r = node(p, PQ_UNARY, operand->type, t.pos);
			if (r) {
				r->un.neg = t.t == T_SUB;
				r->un.expr = operand;
			}
		}
	} else {
		r = primary(p);
		if (r)
			r = postfix(p, r);
	}
	p->depth--;
	return r;
}

static bool bin_modifiers(parser *p, pq_node *n)
{
	if (peek(p)->t == T_BOOL) {
		next(p);
		n->bin.ret_bool = true;
	}
	if (peek(p)->t == T_ON || peek(p)->t == T_IGNORING) {
		n->bin.on = next(p).t == T_ON;
		n->bin.matching = true;
		if (!label_list(p, &n->bin.labels, false))
			return false;
		if (peek(p)->t == T_GROUP_LEFT || peek(p)->t == T_GROUP_RIGHT) {
			n->bin.card = next(p).t == T_GROUP_LEFT ? PQ_MANY_TO_ONE : PQ_ONE_TO_MANY;
			if (peek(p)->t == T_LPAREN && !label_list(p, &n->bin.include, false))
				return false;
		}
	}
	return true;
}

static pq_node *binary(parser *p, pq_node *lhs, enum pq_op op, unsigned pos, int prec)
{
	pq_node *n = node(p, PQ_BINARY, PQ_NONE, pos);
	if (!n)
		return NULL;
	n->bin.op = op;
	n->bin.lhs = lhs;
	n->bin.card = PQ_ONE_TO_ONE;
	if (!bin_modifiers(p, n))
		return NULL;
	/* ^ is right-associative: the right side may hold another ^. */
	pq_node *rhs = expr(p, op == PQ_OP_POW ? prec : prec + 1);
	if (!rhs)
		return NULL;
	n->bin.rhs = rhs;
	enum pq_type lt = lhs->type, rt = rhs->type;
	if (n->bin.ret_bool && !is_comparison(op))
		return perr(p, pos, "bool modifier can only be used on comparison operators"), NULL;
	if (is_comparison(op) && !n->bin.ret_bool && lt == PQ_SCALAR && rt == PQ_SCALAR)
		return perr(p, pos, "comparisons between scalars must use BOOL modifier"), NULL;
	if (is_set_op(op) && n->bin.card == PQ_ONE_TO_ONE)
		n->bin.card = PQ_MANY_TO_MANY;
	for (size_t i = 0; i < n->bin.labels.n && n->bin.on; i++)
		for (size_t j = 0; j < n->bin.include.n; j++)
			if (!strcmp(n->bin.labels.v[i], n->bin.include.v[j]))
				return perr(p, pos, "label \"%s\" must not occur in ON and GROUP clause at once",
					    n->bin.labels.v[i]),
				       NULL;
	if (lt != PQ_SCALAR && lt != PQ_VECTOR)
		return perr(p, lhs->pos, "binary expression must contain only scalar and instant vector types"),
		       NULL;
	if (rt != PQ_SCALAR && rt != PQ_VECTOR)
		return perr(p, rhs->pos, "binary expression must contain only scalar and instant vector types"),
		       NULL;
	if (lt != PQ_VECTOR || rt != PQ_VECTOR) {
		if (n->bin.matching && n->bin.labels.n > 0)
			return perr(p, pos, "vector matching only allowed between instant vectors"), NULL;
		n->bin.matching = false;
	} else {
		n->bin.matching = true;
		if (is_set_op(op)) {
			if (n->bin.card == PQ_ONE_TO_MANY || n->bin.card == PQ_MANY_TO_ONE)
				return perr(p, pos, "no grouping allowed for \"%s\" operation",
					    op == PQ_OP_AND ? "and" : op == PQ_OP_OR ? "or" : "unless"),
				       NULL;
		}
	}
	if ((lt == PQ_SCALAR || rt == PQ_SCALAR) && is_set_op(op))
		return perr(p, pos, "set operator \"%s\" not allowed in binary scalar expression",
			    op == PQ_OP_AND ? "and" : op == PQ_OP_OR ? "or" : "unless"),
		       NULL;
	n->type = lt == PQ_SCALAR && rt == PQ_SCALAR ? PQ_SCALAR : PQ_VECTOR;
	return n;
}

static pq_node *expr(parser *p, int min_prec)
{
	pq_node *lhs = unary(p);
	while (lhs) {
		enum pq_op op;
		token *t = peek(p);
		int prec = binop_prec(t->t, &op);
		if (!prec || prec < min_prec)
			break;
		token ot = next(p);
		lhs = binary(p, lhs, op, ot.pos, prec);
	}
	return lhs;
}

int pq_parse(const char *query, pq_expr **out, sdk_err *err)
{
	*out = NULL;
	size_t len = strlen(query);
	if (len > PQ_QUERY_MAX)
		return sdk_fail(err, SDK_EINVAL, "query longer than %d bytes", PQ_QUERY_MAX);
	pq_expr *e = calloc(1, sizeof *e);
	if (!e)
		return sdk_fail(err, SDK_EIO, "out of memory");
	parser p = { .e = e, .q = query, .len = len, .err = err };
	if (peek(&p)->t == T_EOF && !p.failed) {
		pq_expr_free(e);
		return sdk_fail(err, SDK_EINVAL, "1:1: parse error: no expression found in input");
	}
	e->root = expr(&p, 0);
	if (e->root && !p.failed && peek(&p)->t != T_EOF) {
		token t = next(&p);
		if (t.t == T_RPAREN)
			perr(&p, t.pos, "unexpected right parenthesis ')'");
		else
			unexpected(&p, &t, NULL);
	}
	if (!e->root || p.failed) {
		if (!p.failed)
			sdk_fail(err, SDK_EINVAL, "parse error");
		pq_expr_free(e);
		return SDK_EINVAL;
	}
	*out = e;
	return 0;
}

const char *pq_selector_name(const pq_node *vs)
{
	for (size_t i = 0; i < vs->vs.nm; i++)
		if (vs->vs.m[i].type == IDX_EQ && !strcmp(vs->vs.m[i].name, LBL_METRIC_NAME))
			return vs->vs.m[i].value;
	return NULL;
}
