#include "kernels/message_bus/subject.h"

#include <string.h>

static bool bus_token_char(char c)
{
	return c > ' ' && c < 0x7f && c != '.' && c != '*' && c != '>' && c != '"' &&
	       c != '\\';
}

/* Checks a whole subject or pattern in one pass over its tokens. */
static const char *bus_tokens_check(const char *s, bool pattern)
{
	if (!s || !*s)
		return "must not be empty";
	if (strnlen(s, BUS_SUBJECT_MAX + 1) > BUS_SUBJECT_MAX)
		return "longer than 255 bytes";
	for (const char *t = s;; t++) {
		size_t n = strcspn(t, ".");
		if (n == 0)
			return "has an empty token (leading, trailing or double '.')";
		bool star = n == 1 && *t == '*', rest = n == 1 && *t == '>';
		if ((star || rest) && !pattern)
			return "contains a wildcard ('*' or '>'): only patterns may";
		if (rest && t[n])
			return "uses '>' before the last token";
		if (!star && !rest) {
			for (size_t i = 0; i < n; i++) {
				if (t[i] == '*' || t[i] == '>')
					return "has a wildcard inside a token: '*' and '>' must "
					       "stand alone";
				if (!bus_token_char(t[i]))
					return "has a character other than printable ASCII "
					       "(no space, '\"' or '\\')";
			}
		}
		t += n;
		if (!*t)
			return NULL;
	}
}

const char *bus_subject_check(const char *subject) { return bus_tokens_check(subject, false); }

const char *bus_pattern_check(const char *pattern) { return bus_tokens_check(pattern, true); }

const char *bus_token_check(const char *token)
{
	if (!token || !*token)
		return "must not be empty";
	if (strnlen(token, BUS_TOKEN_MAX + 1) > BUS_TOKEN_MAX)
		return "longer than 64 bytes";
	if (strchr(token, '.'))
		return "must be a single token (no '.')";
	return bus_tokens_check(token, false);
}

bool bus_subject_reserved(const char *subject) { return subject[0] == '$'; }

bool bus_pattern_literal(const char *pattern)
{
	for (const char *t = pattern;; t++) {
		size_t n = strcspn(t, ".");
		if (n == 1 && (*t == '*' || *t == '>'))
			return false;
		t += n;
		if (!*t)
			return true;
	}
}

/* Walks both strings a token at a time; neither is copied or split. */
bool bus_pattern_match(const char *pattern, const char *subject)
{
	const char *p = pattern, *s = subject;
	for (bool first = true;; first = false) {
		size_t pn = strcspn(p, "."), sn = strcspn(s, ".");
		bool star = pn == 1 && *p == '*', rest = pn == 1 && *p == '>';
		if ((star || rest) && first && *s == '$')
			return false;
		if (rest)
			return true; /* s is at a token, so at least one remains */
		if (!star && (pn != sn || memcmp(p, s, pn) != 0))
			return false;
		p += pn;
		s += sn;
		if (!*p || !*s)
			return !*p && !*s;
		p++;
		s++;
	}
}
