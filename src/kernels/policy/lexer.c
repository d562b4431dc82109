#include "kernels/policy/lexer.h"

#include <string.h>

void cedar_lex_init(cedar_lexer *lx, const char *src, uint32_t len)
{
	*lx = (cedar_lexer){ .src = src, .len = len };
}

/* Bytes of the Unicode White_Space character at p (what Rust's regex `\s`
 * matches), or 0. */
static uint32_t space_len(const unsigned char *p, uint32_t left)
{
	unsigned c = p[0];
	if (c == ' ' || (c >= 0x09 && c <= 0x0d))
		return 1;
	if (c < 0x80 || left < 2)
		return 0;
	if (c == 0xc2 && (p[1] == 0x85 || p[1] == 0xa0))
		return 2;
	if (left < 3)
		return 0;
	unsigned cp = (c & 0x0f) << 12 | (p[1] & 0x3fu) << 6 | (p[2] & 0x3fu);
	if ((c & 0xf0) != 0xe0 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80)
		return 0;
	if (cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 ||
	    cp == 0x202f || cp == 0x205f || cp == 0x3000)
		return 3;
	return 0;
}

static bool ident_start(char c)
{
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool ident_char(char c)
{
	return ident_start(c) || (c >= '0' && c <= '9');
}

static const struct {
	const char *word;
	uint8_t kw;
} keywords[] = {
	{ "true", KW_TRUE },     { "false", KW_FALSE },   { "if", KW_IF },
	{ "then", KW_THEN },     { "else", KW_ELSE },     { "in", KW_IN },
	{ "is", KW_IS },         { "has", KW_HAS },       { "like", KW_LIKE },
	{ "permit", KW_PERMIT }, { "forbid", KW_FORBID }, { "when", KW_WHEN },
	{ "unless", KW_UNLESS }, { "principal", KW_PRINCIPAL }, { "action", KW_ACTION },
	{ "resource", KW_RESOURCE }, { "context", KW_CONTEXT },
};

static uint8_t keyword(const char *s, uint32_t n)
{
	for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++)
		if (strlen(keywords[i].word) == n && !memcmp(keywords[i].word, s, n))
			return keywords[i].kw;
	return KW_NONE;
}

bool cedar_ident_reserved(const char *s, uint32_t n, bool strict)
{
	uint8_t kw = keyword(s, n);
	if (kw >= KW_TRUE && kw <= KW_LIKE)
		return true;
	return strict && n == 7 && !memcmp(s, "__cedar", 7);
}

/* Bytes of the UTF-8 character at p (1 on a bad lead byte). */
static uint32_t utf8_len(unsigned char c)
{
	return c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 1;
}

static void skip_space(cedar_lexer *lx)
{
	for (;;) {
		const unsigned char *p = (const unsigned char *)lx->src + lx->pos;
		uint32_t left = lx->len - lx->pos;
		if (!left)
			return;
		uint32_t n = space_len(p, left);
		if (n) {
			lx->pos += n;
			continue;
		}
		if (left >= 2 && p[0] == '/' && p[1] == '/') {
			while (lx->pos < lx->len && lx->src[lx->pos] != '\n' && lx->src[lx->pos] != '\r')
				lx->pos++;
			continue;
		}
		return;
	}
}

void cedar_lex_next(cedar_lexer *lx, cedar_token *t)
{
	skip_space(lx);
	*t = (cedar_token){ .kind = TK_EOF, .start = lx->pos };
	if (lx->pos >= lx->len)
		return;
	const char *s = lx->src;
	uint32_t i = lx->pos, n = lx->len;
	char c = s[i];
	if (ident_start(c)) {
		uint32_t j = i + 1;
		while (j < n && ident_char(s[j]))
			j++;
		t->kind = TK_IDENT;
		t->kw = keyword(s + i, j - i);
		t->len = j - i;
	} else if (c >= '0' && c <= '9') {
		uint32_t j = i;
		uint64_t v = 0;
		while (j < n && s[j] >= '0' && s[j] <= '9') {
			uint64_t d = (uint64_t)(s[j] - '0');
			if (v > (UINT64_MAX - d) / 10)
				t->overflow = true;
			else
				v = v * 10 + d;
			j++;
		}
		t->kind = TK_NUMBER;
		t->num = v;
		t->len = j - i;
	} else if (c == '"') {
		uint32_t j = i + 1;
		for (;;) {
			if (j >= n) {
				t->kind = TK_ERROR;
				t->why = "unterminated string";
				t->len = j - i;
				lx->pos = n;
				return;
			}
			if (s[j] == '"')
				break;
			if (s[j] == '\\') {
				/* `\\.` in the token's regex: any character but a newline. */
				if (j + 1 >= n || s[j + 1] == '\n') {
					t->kind = TK_ERROR;
					t->why = "invalid escape in string";
					t->start = j;
					t->len = 1;
					lx->pos = n;
					return;
				}
				j += 1 + utf8_len((unsigned char)s[j + 1]);
			} else {
				j += utf8_len((unsigned char)s[j]);
			}
		}
		t->kind = TK_STRING;
		t->len = j + 1 - i;
	} else if (c == '?' && i + 1 < n && ident_start(s[i + 1])) {
		uint32_t j = i + 2;
		while (j < n && ident_char(s[j]))
			j++;
		t->kind = TK_SLOT;
		t->len = j - i;
	} else {
		char d = i + 1 < n ? s[i + 1] : 0;
		t->len = 1;
		switch (c) {
		case '@': t->kind = TK_AT; break;
		case '.': t->kind = TK_DOT; break;
		case ',': t->kind = TK_COMMA; break;
		case ';': t->kind = TK_SEMI; break;
		case ':':
			t->kind = d == ':' ? TK_COLON2 : TK_COLON;
			t->len = d == ':' ? 2 : 1;
			break;
		case '(': t->kind = TK_LPAREN; break;
		case ')': t->kind = TK_RPAREN; break;
		case '{': t->kind = TK_LBRACE; break;
		case '}': t->kind = TK_RBRACE; break;
		case '[': t->kind = TK_LBRACKET; break;
		case ']': t->kind = TK_RBRACKET; break;
		case '=':
			t->kind = d == '=' ? TK_EQ2 : TK_EQ;
			t->len = d == '=' ? 2 : 1;
			break;
		case '!':
			t->kind = d == '=' ? TK_NE : TK_BANG;
			t->len = d == '=' ? 2 : 1;
			break;
		case '<':
			t->kind = d == '=' ? TK_LE : TK_LT;
			t->len = d == '=' ? 2 : 1;
			break;
		case '>':
			t->kind = d == '=' ? TK_GE : TK_GT;
			t->len = d == '=' ? 2 : 1;
			break;
		case '|':
			if (d == '|')
				t->kind = TK_OR, t->len = 2;
			else
				t->kind = TK_ERROR, t->why = "invalid token `|` (did you mean `||`?)";
			break;
		case '&':
			if (d == '&')
				t->kind = TK_AND, t->len = 2;
			else
				t->kind = TK_ERROR, t->why = "invalid token `&` (did you mean `&&`?)";
			break;
		case '+': t->kind = TK_PLUS; break;
		case '-': t->kind = TK_MINUS; break;
		case '*': t->kind = TK_STAR; break;
		case '/': t->kind = TK_SLASH; break;
		case '%': t->kind = TK_PERCENT; break;
		default:
			t->kind = TK_ERROR;
			t->why = "invalid token";
			t->len = utf8_len((unsigned char)c);
			break;
		}
	}
	lx->pos = i + t->len;
	if (lx->pos > n)
		lx->pos = n;
}

void cedar_lex_position(const char *src, uint32_t len, uint32_t offset, uint32_t *line,
			uint32_t *column)
{
	uint32_t l = 1, col = 1;
	if (offset > len)
		offset = len;
	for (uint32_t i = 0; i < offset; i++) {
		unsigned char c = (unsigned char)src[i];
		if (c == '\n') {
			l++;
			col = 1;
		} else if ((c & 0xc0) != 0x80) {
			col++;
		}
	}
	*line = l;
	*column = col;
}
