/* Label sets and matchers as the alerts kernel handles them: a label set
 * is a jansson object of strings; its fingerprint is Alertmanager's
 * (FNV-1a over the sorted names and values), so fingerprints shown by the
 * Alertmanager API are the ones a real Alertmanager would show. Matchers
 * are Alertmanager's: =, !=, =~, !~ (regular expressions anchored, RE2
 * syntax through PCRE2). */
#ifndef GRACE_ALERTS_ALABELS_H
#define GRACE_ALERTS_ALABELS_H

#include "kernels/layer.h"

#include "sdk/err.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define AL_NAME_MAX 256
#define AL_VALUE_MAX 4096
#define AL_LABELS_MAX 64

uint64_t al_fingerprint(const json_t *labels);
/* Sixteen hex digits, as Alertmanager prints a fingerprint. */
void al_fingerprint_hex(uint64_t fp, char out[17]);
bool al_valid_name(const char *s);
/* 0, or SDK_EINVAL naming the bad label (names valid, values strings). */
int al_check_labels(const json_t *labels, const char *what, sdk_err *err);

enum al_match_type { AL_EQ, AL_NE, AL_RE, AL_NRE };

typedef struct al_matcher {
	enum al_match_type type;
	char *name, *value;
	void *re; /* compiled (pcre2_code) for AL_RE / AL_NRE */
} al_matcher;

typedef struct al_matchers {
	al_matcher *m;
	size_t n;
} al_matchers;

/* One matcher in Alertmanager's syntax: name="value", name=~"re", name!=v
 * (quotes optional). */
int al_matcher_parse(const char *text, al_matcher *out, sdk_err *err);
/* From the API's {"name","value","isRegex","isEqual"}. */
int al_matcher_from_json(const json_t *j, al_matcher *out, sdk_err *err);
int al_matcher_make(enum al_match_type type, const char *name, const char *value,
		    al_matcher *out, sdk_err *err);
void al_matcher_free(al_matcher *m);
void al_matchers_free(al_matchers *ms);
bool al_matcher_matches(const al_matcher *m, const json_t *labels);
bool al_matchers_match(const al_matchers *ms, const json_t *labels);
/* {"name","value","isRegex","isEqual"} */
json_t *al_matcher_json(const al_matcher *m);
/* name="value" as Alertmanager prints it. */
void al_matcher_string(const al_matcher *m, char *out, size_t len);

/* Does a regular expression compile? 0, or SDK_EINVAL with the reason
 * (PCRE2's message, or "out of memory") in `why`. */
int al_regex_check(const char *pattern, sdk_err *why);

#endif
