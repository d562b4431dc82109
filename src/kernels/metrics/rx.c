#define PCRE2_CODE_UNIT_WIDTH 8
#include "kernels/metrics/rx.h"

#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rx {
	pcre2_code *code;
};

rx *rx_compile(const char *pattern, sdk_err *why)
{
	size_t n = strlen(pattern);
	if (n > RX_PATTERN_MAX) {
		sdk_fail(why, SDK_EINVAL, "regular expression longer than %d bytes",
			 RX_PATTERN_MAX);
		return NULL;
	}
	/* Anchored as Prometheus does: ^(?:pattern)$, with $ at the very end
	 * only (RE2's $ without (?m) never matches before a final newline). */
	char *full = malloc(n + 16);
	if (!full) {
		sdk_fail(why, SDK_EIO, "out of memory");
		return NULL;
	}
	snprintf(full, n + 16, "^(?:%s)$", pattern);
	int errcode;
	PCRE2_SIZE erroff;
	pcre2_code *code = pcre2_compile((PCRE2_SPTR)full, PCRE2_ZERO_TERMINATED,
					 PCRE2_UTF | PCRE2_DOLLAR_ENDONLY,
					 &errcode, &erroff, NULL);
	free(full);
	if (!code) {
		PCRE2_UCHAR msg[160];
		pcre2_get_error_message(errcode, msg, sizeof msg);
		sdk_fail(why, SDK_EINVAL, "error parsing regexp: %s", (const char *)msg);
		return NULL;
	}
	pcre2_jit_compile(code, PCRE2_JIT_COMPLETE); /* when it cannot, the interpreter runs */
	rx *r = malloc(sizeof *r);
	if (!r) {
		pcre2_code_free(code);
		sdk_fail(why, SDK_EIO, "out of memory");
		return NULL;
	}
	r->code = code;
	return r;
}

void rx_free(rx *r)
{
	if (!r)
		return;
	pcre2_code_free(r->code);
	free(r);
}

static pcre2_match_data *run(const rx *r, const char *s)
{
	pcre2_match_data *md = pcre2_match_data_create_from_pattern(r->code, NULL);
	if (!md)
		return NULL;
	int rc = pcre2_match(r->code, (PCRE2_SPTR)s, strlen(s), 0, 0, md, NULL);
	if (rc < 0) {
		pcre2_match_data_free(md);
		return NULL;
	}
	return md;
}

bool rx_match(const rx *r, const char *s)
{
	pcre2_match_data *md = run(r, s);
	if (!md)
		return false;
	pcre2_match_data_free(md);
	return true;
}

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_';
}

bool rx_expand(const rx *r, const char *s, const char *repl, char *out, size_t outlen)
{
	pcre2_match_data *md = run(r, s);
	if (!md)
		return false;
	PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
	uint32_t groups = pcre2_get_ovector_count(md);
	size_t o = 0;
	for (const char *p = repl; *p;) {
		if (*p != '$' || !p[1]) {
			if (o + 1 < outlen)
				out[o++] = *p;
			p++;
			continue;
		}
		p++;
		if (*p == '$') {
			if (o + 1 < outlen)
				out[o++] = '$';
			p++;
			continue;
		}
		char name[64];
		size_t nl = 0;
		bool braced = *p == '{';
		const char *q = braced ? p + 1 : p;
		while (name_char(*q) && nl + 1 < sizeof name)
			name[nl++] = *q++;
		name[nl] = '\0';
		if (nl == 0 || (braced && *q != '}')) {
			/* Not a reference: Go keeps the '$' as it is. */
			if (o + 1 < outlen)
				out[o++] = '$';
			continue;
		}
		p = braced ? q + 1 : q;
		long g = -1;
		char *end;
		long num = strtol(name, &end, 10);
		if (!*end)
			g = num;
		else
			g = pcre2_substring_number_from_name(r->code, (PCRE2_SPTR)name);
		if (g >= 0 && (uint32_t)g < groups && ov[2 * g] != PCRE2_UNSET) {
			for (PCRE2_SIZE i = ov[2 * g]; i < ov[2 * g + 1]; i++)
				if (o + 1 < outlen)
					out[o++] = s[i];
		}
	}
	out[o] = '\0';
	pcre2_match_data_free(md);
	return true;
}

bool rx_literal(const char *pattern)
{
	for (const char *p = pattern; *p; p++)
		if (strchr("\\.+*?()|[]{}^$", *p))
			return false;
	return true;
}
