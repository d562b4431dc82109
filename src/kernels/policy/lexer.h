/* Cedar's tokens, as its grammar (cedar-policy-core's grammar.lalrpop)
 * defines them: Unicode whitespace and `//` comments between tokens,
 * ASCII identifiers, unsigned decimal numbers, double-quoted strings whose
 * escapes are decoded later (they mean different things in a `like`
 * pattern), `?slots` and punctuation, longest match first. */
#ifndef GRACE_POLICY_LEXER_H
#define GRACE_POLICY_LEXER_H

#include "kernels/layer.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum cedar_tok {
	TK_EOF,
	TK_IDENT,
	TK_NUMBER,
	TK_STRING, /* start/len cover the quotes */
	TK_SLOT,   /* ?name */
	TK_AT,
	TK_DOT,
	TK_COMMA,
	TK_SEMI,
	TK_COLON,
	TK_COLON2, /* :: */
	TK_LPAREN,
	TK_RPAREN,
	TK_LBRACE,
	TK_RBRACE,
	TK_LBRACKET,
	TK_RBRACKET,
	TK_EQ2, /* == */
	TK_NE,  /* != */
	TK_LT,
	TK_LE,
	TK_GE,
	TK_GT,
	TK_OR,  /* || */
	TK_AND, /* && */
	TK_PLUS,
	TK_MINUS,
	TK_STAR,
	TK_SLASH,
	TK_PERCENT,
	TK_BANG,
	TK_EQ, /* = (only ever an error: Cedar suggests ==) */
	TK_ERROR
} cedar_tok;

/* Identifiers that the grammar treats as keywords somewhere. */
typedef enum cedar_kw {
	KW_NONE,
	KW_TRUE,
	KW_FALSE,
	KW_IF,
	KW_THEN,
	KW_ELSE,
	KW_IN,
	KW_IS,
	KW_HAS,
	KW_LIKE,
	KW_PERMIT,
	KW_FORBID,
	KW_WHEN,
	KW_UNLESS,
	KW_PRINCIPAL,
	KW_ACTION,
	KW_RESOURCE,
	KW_CONTEXT,
} cedar_kw;

typedef struct cedar_token {
	uint8_t kind; /* cedar_tok */
	uint8_t kw;   /* cedar_kw, for TK_IDENT */
	bool overflow; /* TK_NUMBER past 2^64 - 1 */
	uint32_t start, len;
	uint64_t num;
	const char *why; /* TK_ERROR: what is wrong */
} cedar_token;

typedef struct cedar_lexer {
	const char *src;
	uint32_t len, pos;
} cedar_lexer;

void cedar_lex_init(cedar_lexer *lx, const char *src, uint32_t len);
/* The next token; TK_EOF at the end, TK_ERROR (at the bad byte) on junk. */
void cedar_lex_next(cedar_lexer *lx, cedar_token *t);
/* 1-based line and column (in characters) of a byte offset. */
void cedar_lex_position(const char *src, uint32_t len, uint32_t offset, uint32_t *line,
			uint32_t *column);
/* True when the identifier may not name an attribute, a type or a
 * namespace: true, false, if, then, else, in, is, has, like; `__cedar`
 * too when `strict` (Cedar reserves it in names but not in annotations). */
bool cedar_ident_reserved(const char *s, uint32_t n, bool strict);

#endif
