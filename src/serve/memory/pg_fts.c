/* FTS5 query syntax to tsquery text (pg_fts.h): a tokenizer and a
 * recursive descent parser; each rule writes its translation into a
 * buffer of its own, empty when the operand counts for nothing. */
#include "serve/memory/pg_fts.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum tok {
	T_END,
	T_WORD,   /* a bareword, keywords included */
	T_STRING, /* "...", with "" for a quote */
	T_LP,
	T_RP,
	T_STAR,
	T_PLUS,
	T_COMMA,
	T_OTHER, /* anything FTS5 has no use for here: ':', '^', '{', '-', '\'' ... */
};

typedef struct lexer {
	const char *s;
	size_t pos;
	enum tok tok;
	const char *text; /* the token's bytes in s (a string: without its quotes) */
	size_t len;
	bool unterminated;
	sdk_err *err;
} lexer;

/* FTS5's bareword characters: ASCII letters and digits, '_', 0x1a, and
 * every byte of a non-ASCII character. */
static bool bare(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == 0x1a || c >= 0x80;
}

static void next(lexer *lx)
{
	const char *s = lx->s;
	while (s[lx->pos] == ' ' || s[lx->pos] == '\t' || s[lx->pos] == '\n' || s[lx->pos] == '\r')
		lx->pos++;
	size_t p = lx->pos;
	lx->text = s + p;
	lx->len = 1;
	switch (s[p]) {
	case '\0': lx->tok = T_END; lx->len = 0; return;
	case '(': lx->tok = T_LP; break;
	case ')': lx->tok = T_RP; break;
	case '*': lx->tok = T_STAR; break;
	case '+': lx->tok = T_PLUS; break;
	case ',': lx->tok = T_COMMA; break;
	case '"': {
		size_t q = p + 1;
		for (;;) {
			if (!s[q]) {
				lx->unterminated = true;
				lx->tok = T_OTHER;
				return;
			}
			if (s[q] == '"') {
				if (s[q + 1] != '"')
					break;
				q++;
			}
			q++;
		}
		lx->tok = T_STRING;
		lx->text = s + p + 1;
		lx->len = q - p - 1;
		lx->pos = q + 1;
		return;
	}
	default:
		if (!bare((unsigned char)s[p])) {
			lx->tok = T_OTHER;
			return;
		}
		while (bare((unsigned char)s[p + lx->len]))
			lx->len++;
		lx->tok = T_WORD;
	}
	lx->pos = p + lx->len;
}

static bool is_kw(const lexer *lx, const char *kw)
{
	return lx->tok == T_WORD && lx->len == strlen(kw) && !memcmp(lx->text, kw, lx->len);
}

/* NEAR is a keyword only right before '(' (FTS5: else it is a word). */
static bool is_near(const lexer *lx)
{
	return is_kw(lx, "NEAR") && lx->s[lx->pos] == '(';
}

static bool is_operator(const lexer *lx)
{
	return is_kw(lx, "AND") || is_kw(lx, "OR") || is_kw(lx, "NOT");
}

/* Can a phrase or a NEAR group start here? */
static bool item_start(const lexer *lx)
{
	return lx->tok == T_STRING || (lx->tok == T_WORD && !is_operator(lx));
}

static int fail(lexer *lx, const char *what)
{
	if (lx->unterminated)
		return sdk_fail(lx->err, SDK_EINVAL, "an unterminated \"string\"");
	if (lx->tok == T_END)
		return sdk_fail(lx->err, SDK_EINVAL, "%s at the end", what);
	return sdk_fail(lx->err, SDK_EINVAL, "%s near '%.*s'", what,
			(int)(lx->len > 32 ? 32 : lx->len), lx->text);
}

/* One word or string as a quoted tsquery operand ("" when it holds
 * nothing FTS5 would index). A string's "" becomes one quote. */
static void operand(sdk_buf *out, const char *text, size_t len, bool string, bool prefix)
{
	bool some = false;
	for (size_t i = 0; i < len; i++)
		some |= bare((unsigned char)text[i]) && text[i] != '_' && text[i] != 0x1a;
	if (!some)
		return;
	sdk_buf_str(out, "'");
	for (size_t i = 0; i < len; i++) {
		char c = text[i];
		if (string && c == '"')
			i++; /* the second of "" */
		if (c == '\'')
			sdk_buf_str(out, "''");
		else if (c == '\\')
			sdk_buf_str(out, "\\\\");
		else
			sdk_buf_add(out, &c, 1);
	}
	sdk_buf_str(out, prefix ? "':*" : "'");
}

/* a = (a OP b), where an empty side counts for nothing; frees b. */
static void combine(sdk_buf *a, const char *op, sdk_buf *b, bool not)
{
	if (!b->len) {
		sdk_buf_free(b);
		return;
	}
	if (!a->len) {
		if (!not) {
			sdk_buf_free(a);
			*a = *b;
			*b = (sdk_buf){ 0 };
		}
		sdk_buf_free(b);
		return;
	}
	sdk_buf r = { 0 };
	sdk_buf_str(&r, "(");
	sdk_buf_add(&r, a->p, a->len);
	sdk_buf_str(&r, op);
	sdk_buf_add(&r, b->p, b->len);
	sdk_buf_str(&r, ")");
	r.oom |= a->oom || b->oom;
	sdk_buf_free(a);
	sdk_buf_free(b);
	*a = r;
}

/* phrase := unit [*] { "+" unit [*] } */
static int phrase(lexer *lx, sdk_buf *out)
{
	for (bool first = true;; first = false) {
		if (lx->tok != T_STRING && (lx->tok != T_WORD || is_operator(lx)))
			return fail(lx, "a word or \"phrase\" expected");
		bool string = lx->tok == T_STRING;
		const char *text = lx->text;
		size_t len = lx->len;
		next(lx);
		bool prefix = lx->tok == T_STAR;
		if (prefix)
			next(lx);
		sdk_buf one = { 0 };
		operand(&one, text, len, string, prefix);
		if (one.len) {
			if (!first && out->len)
				sdk_buf_str(out, " <-> ");
			sdk_buf_add(out, one.p, one.len);
		}
		out->oom |= one.oom;
		sdk_buf_free(&one);
		if (lx->tok != T_PLUS)
			return 0;
		next(lx);
	}
}

/* NEAR ( phrase { phrase } [ , N ] ): every phrase, nearness dropped. */
static int near(lexer *lx, sdk_buf *out)
{
	next(lx); /* NEAR */
	next(lx); /* ( */
	int n = 0;
	while (lx->tok == T_STRING || lx->tok == T_WORD) {
		sdk_buf p = { 0 };
		if (phrase(lx, &p) < 0) {
			sdk_buf_free(&p);
			return -1;
		}
		combine(out, " & ", &p, false);
		n++;
	}
	if (!n)
		return fail(lx, "NEAR( needs phrases");
	if (lx->tok == T_COMMA) {
		next(lx);
		bool digits = lx->tok == T_WORD && lx->len > 0;
		for (size_t i = 0; digits && i < lx->len; i++)
			digits = lx->text[i] >= '0' && lx->text[i] <= '9';
		if (!digits)
			return fail(lx, "NEAR( , N) takes a number");
		next(lx);
	}
	if (lx->tok != T_RP)
		return fail(lx, "')' expected");
	next(lx);
	return 0;
}

/* seq := item { item }: phrases side by side, ANDed. */
static int seq(lexer *lx, sdk_buf *out)
{
	if (!item_start(lx))
		return fail(lx, "a word or \"phrase\" expected");
	while (item_start(lx)) {
		sdk_buf one = { 0 };
		int rc = is_near(lx) ? near(lx, &one) : phrase(lx, &one);
		if (rc < 0) {
			sdk_buf_free(&one);
			return -1;
		}
		combine(out, " & ", &one, false);
	}
	return 0;
}

static int or_expr(lexer *lx, sdk_buf *out, int depth);

/* primary := "(" or ")" | seq */
static int primary(lexer *lx, sdk_buf *out, int depth)
{
	if (lx->tok != T_LP)
		return seq(lx, out);
	if (depth > 32)
		return fail(lx, "too deeply nested");
	next(lx);
	if (or_expr(lx, out, depth + 1) < 0)
		return -1;
	if (lx->tok != T_RP)
		return fail(lx, "')' expected");
	next(lx);
	return 0;
}

/* Left-associative binary levels: NOT over primary, AND over NOT, OR
 * over AND. */
static int not_expr(lexer *lx, sdk_buf *out, int depth)
{
	if (primary(lx, out, depth) < 0)
		return -1;
	while (is_kw(lx, "NOT")) {
		next(lx);
		sdk_buf b = { 0 };
		if (primary(lx, &b, depth) < 0) {
			sdk_buf_free(&b);
			return -1;
		}
		combine(out, " & !", &b, true);
	}
	return 0;
}

static int and_expr(lexer *lx, sdk_buf *out, int depth)
{
	if (not_expr(lx, out, depth) < 0)
		return -1;
	while (is_kw(lx, "AND")) {
		next(lx);
		sdk_buf b = { 0 };
		if (not_expr(lx, &b, depth) < 0) {
			sdk_buf_free(&b);
			return -1;
		}
		combine(out, " & ", &b, false);
	}
	return 0;
}

static int or_expr(lexer *lx, sdk_buf *out, int depth)
{
	if (and_expr(lx, out, depth) < 0)
		return -1;
	while (is_kw(lx, "OR")) {
		next(lx);
		sdk_buf b = { 0 };
		if (and_expr(lx, &b, depth) < 0) {
			sdk_buf_free(&b);
			return -1;
		}
		combine(out, " | ", &b, false);
	}
	return 0;
}

int mem_fts_tsquery(const char *q, sdk_buf *out, sdk_err *err)
{
	lexer lx = { .s = q, .err = err };
	next(&lx);
	sdk_buf r = { 0 };
	int rc = or_expr(&lx, &r, 0);
	if (rc == 0 && lx.tok != T_END)
		rc = fail(&lx, "syntax error");
	if (rc == 0) {
		out->oom |= r.oom;
		sdk_buf_add(out, r.len ? r.p : "", r.len);
		sdk_buf_str(out, ""); /* a NUL-terminated "" even when empty */
	}
	sdk_buf_free(&r);
	return rc;
}
