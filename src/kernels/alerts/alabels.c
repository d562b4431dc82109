#define PCRE2_CODE_UNIT_WIDTH 8
#include "kernels/alerts/alabels.h"

#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int key_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

uint64_t al_fingerprint(const json_t *labels)
{
	/* model.LabelSet.Fingerprint: FNV-1a 64 over name, 0xff, value, 0xff
	 * in the order of the sorted names. */
	uint64_t h = 14695981039346656037ULL;
	size_t n = json_object_size(labels);
	if (n == 0)
		return h;
	const char **keys = malloc(n * sizeof *keys);
	if (!keys)
		return 0;
	size_t k = 0;
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)labels, key, v)
		keys[k++] = key;
	qsort(keys, n, sizeof *keys, key_cmp);
	for (size_t i = 0; i < n; i++) {
		const char *parts[2] = { keys[i], json_string_value(json_object_get(labels, keys[i])) };
		for (int j = 0; j < 2; j++) {
			for (const unsigned char *p = (const unsigned char *)(parts[j] ? parts[j] : ""); *p; p++) {
				h ^= *p;
				h *= 1099511628211ULL;
			}
			h ^= 0xff;
			h *= 1099511628211ULL;
		}
	}
	free(keys);
	return h;
}

void al_fingerprint_hex(uint64_t fp, char out[17])
{
	snprintf(out, 17, "%016llx", (unsigned long long)fp);
}

bool al_valid_name(const char *s)
{
	if (!s || !*s || strlen(s) > AL_NAME_MAX)
		return false;
	for (const char *p = s; *p; p++) {
		char c = *p;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
			  (p > s && c >= '0' && c <= '9');
		if (!ok)
			return false;
	}
	return true;
}

int al_check_labels(const json_t *labels, const char *what, sdk_err *err)
{
	if (!json_is_object(labels))
		return sdk_fail(err, SDK_EINVAL, "%s: expected a mapping of names to values", what);
	if (json_object_size(labels) > AL_LABELS_MAX)
		return sdk_fail(err, SDK_EINVAL, "%s: more than %d labels", what, AL_LABELS_MAX);
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)labels, k, v) {
		if (!al_valid_name(k))
			return sdk_fail(err, SDK_EINVAL, "%s: invalid label name \"%s\"", what, k);
		if (!json_is_string(v) || json_string_length(v) > AL_VALUE_MAX)
			return sdk_fail(err, SDK_EINVAL, "%s: label \"%s\" needs a string value", what, k);
	}
	return 0;
}

/* The compiled, anchored pattern, or NULL with the reason in `why`. */
static void *compile(const char *pattern, sdk_err *why)
{
	size_t n = strlen(pattern);
	char *full = malloc(n + 16);
	if (!full) {
		sdk_fail(why, SDK_EIO, "out of memory");
		return NULL;
	}
	snprintf(full, n + 16, "^(?:%s)$", pattern);
	int code;
	PCRE2_SIZE off;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)full, PCRE2_ZERO_TERMINATED,
				       PCRE2_UTF | PCRE2_DOLLAR_ENDONLY, &code, &off, NULL);
	free(full);
	if (!re) {
		PCRE2_UCHAR msg[160];
		pcre2_get_error_message(code, msg, sizeof msg);
		sdk_fail(why, SDK_EINVAL, "%s", (const char *)msg);
	}
	return re;
}

int al_regex_check(const char *pattern, sdk_err *why)
{
	void *re = compile(pattern, why);
	if (!re)
		return SDK_EINVAL;
	pcre2_code_free(re);
	return 0;
}

int al_matcher_make(enum al_match_type type, const char *name, const char *value,
		    al_matcher *out, sdk_err *err)
{
	memset(out, 0, sizeof *out);
	if (!al_valid_name(name))
		return sdk_fail(err, SDK_EINVAL, "invalid label name \"%s\" in a matcher", name ? name : "");
	if (!value || strlen(value) > AL_VALUE_MAX)
		return sdk_fail(err, SDK_EINVAL, "matcher on \"%s\": a value is required", name);
	out->type = type;
	out->name = strdup(name);
	out->value = strdup(value);
	if (!out->name || !out->value) {
		al_matcher_free(out);
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	if (type == AL_RE || type == AL_NRE) {
		sdk_err why;
		out->re = compile(value, &why);
		if (!out->re) {
			int rc = sdk_fail(err, SDK_EINVAL, "matcher on \"%s\": bad regular expression: %s",
					  name, why.msg);
			al_matcher_free(out);
			return rc;
		}
	}
	return 0;
}

int al_matcher_parse(const char *text, al_matcher *out, sdk_err *err)
{
	const char *p = text;
	while (*p == ' ' || *p == '{')
		p++;
	const char *ns = p;
	while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
	       (*p >= '0' && *p <= '9'))
		p++;
	char name[AL_NAME_MAX + 1];
	size_t nl = (size_t)(p - ns);
	if (nl == 0 || nl > AL_NAME_MAX)
		return sdk_fail(err, SDK_EINVAL, "bad matcher \"%s\": expected a label name", text);
	memcpy(name, ns, nl);
	name[nl] = '\0';
	while (*p == ' ')
		p++;
	enum al_match_type t;
	if (!strncmp(p, "=~", 2))
		t = AL_RE, p += 2;
	else if (!strncmp(p, "!~", 2))
		t = AL_NRE, p += 2;
	else if (!strncmp(p, "!=", 2))
		t = AL_NE, p += 2;
	else if (*p == '=')
		t = AL_EQ, p += 1;
	else
		return sdk_fail(err, SDK_EINVAL, "bad matcher \"%s\": expected =, !=, =~ or !~", text);
	while (*p == ' ')
		p++;
	char value[AL_VALUE_MAX + 1];
	size_t o = 0;
	if (*p == '"') {
		p++;
		while (*p && *p != '"') {
			char c = *p++;
			if (c == '\\' && *p) {
				c = *p++;
				if (c == 'n')
					c = '\n';
			}
			if (o < AL_VALUE_MAX)
				value[o++] = c;
		}
		if (*p != '"')
			return sdk_fail(err, SDK_EINVAL, "bad matcher \"%s\": unterminated quote", text);
		p++;
	} else {
		while (*p && *p != '}' && *p != ',')
			if (o < AL_VALUE_MAX)
				value[o++] = *p++;
		while (o && value[o - 1] == ' ')
			o--;
	}
	value[o] = '\0';
	while (*p == ' ' || *p == '}')
		p++;
	if (*p)
		return sdk_fail(err, SDK_EINVAL, "bad matcher \"%s\": unexpected text after the value", text);
	return al_matcher_make(t, name, value, out, err);
}

int al_matcher_from_json(const json_t *j, al_matcher *out, sdk_err *err)
{
	const char *name = json_string_value(json_object_get(j, "name"));
	const char *value = json_string_value(json_object_get(j, "value"));
	json_t *re = json_object_get(j, "isRegex"), *eq = json_object_get(j, "isEqual");
	if (!name || !value || (re && !json_is_boolean(re)) || (eq && !json_is_boolean(eq)))
		return sdk_fail(err, SDK_EINVAL,
				"a matcher is {\"name\": ..., \"value\": ..., \"isRegex\": bool, \"isEqual\": bool}");
	bool is_re = json_is_true(re), is_eq = !eq || json_is_true(eq);
	enum al_match_type t = is_re ? (is_eq ? AL_RE : AL_NRE) : (is_eq ? AL_EQ : AL_NE);
	return al_matcher_make(t, name, value, out, err);
}

void al_matcher_free(al_matcher *m)
{
	free(m->name);
	free(m->value);
	pcre2_code_free(m->re);
	memset(m, 0, sizeof *m);
}

void al_matchers_free(al_matchers *ms)
{
	for (size_t i = 0; i < ms->n; i++)
		al_matcher_free(&ms->m[i]);
	free(ms->m);
	ms->m = NULL;
	ms->n = 0;
}

static bool re_match(void *re, const char *s)
{
	pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
	if (!md)
		return false;
	int rc = pcre2_match(re, (PCRE2_SPTR)s, strlen(s), 0, 0, md, NULL);
	pcre2_match_data_free(md);
	return rc >= 0;
}

bool al_matcher_matches(const al_matcher *m, const json_t *labels)
{
	const char *v = json_string_value(json_object_get(labels, m->name));
	if (!v)
		v = "";
	switch (m->type) {
	case AL_EQ: return !strcmp(v, m->value);
	case AL_NE: return strcmp(v, m->value) != 0;
	case AL_RE: return re_match(m->re, v);
	case AL_NRE: return !re_match(m->re, v);
	}
	return false;
}

bool al_matchers_match(const al_matchers *ms, const json_t *labels)
{
	for (size_t i = 0; i < ms->n; i++)
		if (!al_matcher_matches(&ms->m[i], labels))
			return false;
	return true;
}

json_t *al_matcher_json(const al_matcher *m)
{
	return json_pack("{s:s, s:s, s:b, s:b}", "name", m->name, "value", m->value, "isRegex",
			 m->type == AL_RE || m->type == AL_NRE, "isEqual",
			 m->type == AL_EQ || m->type == AL_RE);
}

void al_matcher_string(const al_matcher *m, char *out, size_t len)
{
	static const char *const ops[] = { "=", "!=", "=~", "!~" };
	snprintf(out, len, "%s%s\"%s\"", m->name, ops[m->type], m->value);
}
