#include "kernels/research/question.h"
#include "sdk/rfc3339.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY_MS (86400LL * 1000)

/* The folded form of a character for name matching: lower case, and a
 * space or hyphen the same as an underscore. */
static int fold(int c)
{
	if (c == ' ' || c == '-')
		return '_';
	return tolower((unsigned char)c);
}

static bool word_char(int c) { return isalnum((unsigned char)c) || c == '_'; }

/* Whether `name` occurs in text at i as a whole word. */
static bool name_at(const char *text, size_t i, const char *name)
{
	if (i > 0 && word_char((unsigned char)text[i - 1]))
		return false;
	size_t n = strlen(name);
	for (size_t j = 0; j < n; j++)
		if (!text[i + j] || fold(text[i + j]) != fold(name[j]))
			return false;
	return !word_char((unsigned char)text[i + n]);
}

static void find_kernel(const char *text, const char *const *names, char *out)
{
	size_t best = 0;
	out[0] = '\0';
	for (size_t k = 0; names && names[k]; k++) {
		size_t n = strlen(names[k]);
		if (n <= best || n >= RS_NAME_MAX)
			continue;
		for (size_t i = 0; text[i]; i++)
			if (name_at(text, i, names[k])) {
				memcpy(out, names[k], n + 1);
				best = n;
				break;
			}
	}
}

/* A clock time "H:MM" or "HH:MM[:SS]" at p: its ms after midnight, or -1. */
static int64_t clock_at(const char *p, size_t *used)
{
	int h = 0, m = 0, s = 0, n = 0;
	if (!isdigit((unsigned char)p[0]))
		return -1;
	if (sscanf(p, "%2d:%2d%n", &h, &m, &n) != 2 || h > 23 || m > 59 || p[n - 3] != ':')
		return -1;
	if (p[n] == ':' && isdigit((unsigned char)p[n + 1])) {
		int n2 = 0;
		if (sscanf(p + n + 1, "%2d%n", &s, &n2) != 1 || s > 59)
			return -1;
		n += 1 + n2;
	}
	if (isdigit((unsigned char)p[n]))
		return -1;
	*used = (size_t)n;
	return ((int64_t)h * 3600 + m * 60 + s) * 1000;
}

/* An RFC 3339 time at p (a token up to a space): unix ms, or -1. */
static int64_t rfc3339_at(const char *p, size_t *used)
{
	char tok[64];
	size_t n = 0;
	while (p[n] && !isspace((unsigned char)p[n]) && n < sizeof tok - 1)
		n++;
	/* A sentence's full stop, comma or question mark is not the time's
	 * (an RFC 3339 time ends in a digit or a Z). */
	size_t t = n;
	while (t > 0 && strchr("?,;!).", p[t - 1]))
		t--;
	memcpy(tok, p, t);
	tok[t] = '\0';
	int64_t ms;
	if (t < 20 || !sdk_rfc3339_parse_ms(tok, &ms))
		return -1;
	*used = n;
	return ms;
}

/* A duration "5 minutes", "2h", "an hour", "90 s" at p: ms, or -1. */
static int64_t duration_at(const char *p)
{
	static const struct {
		const char *unit;
		int64_t ms;
	} units[] = {
		{ "seconds", 1000 }, { "second", 1000 }, { "secs", 1000 },    { "sec", 1000 },
		{ "s", 1000 },       { "minutes", 60000 }, { "minute", 60000 }, { "mins", 60000 },
		{ "min", 60000 },    { "m", 60000 },      { "hours", 3600000 }, { "hour", 3600000 },
		{ "h", 3600000 },    { "days", DAY_MS },  { "day", DAY_MS },    { "d", DAY_MS },
	};
	long long n = 1;
	if (!strncasecmp(p, "an ", 3) || !strncasecmp(p, "a ", 2)) {
		p += p[1] == ' ' ? 2 : 3;
	} else if (isdigit((unsigned char)*p)) {
		char *end;
		n = strtoll(p, &end, 10);
		if (n <= 0 || n > 100000)
			return -1;
		p = end;
	} else if (!word_char((unsigned char)*p)) {
		return -1;
	}
	while (*p == ' ')
		p++;
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		size_t len = strlen(units[i].unit);
		if (!strncasecmp(p, units[i].unit, len) && !word_char((unsigned char)p[len]))
			return n * units[i].ms;
	}
	return -1;
}

/* A moment at p: an RFC 3339 time or a clock time, in unix ms, or -1. */
static int64_t moment_at(const char *p, int64_t now_ms)
{
	size_t used;
	int64_t t = rfc3339_at(p, &used);
	if (t >= 0)
		return t;
	int64_t c = clock_at(p, &used);
	if (c < 0)
		return -1;
	int64_t day = now_ms - now_ms % DAY_MS;
	t = day + c;
	return t > now_ms ? t - DAY_MS : t;
}

static bool word_is(const char *text, size_t i, const char *w)
{
	size_t n = strlen(w);
	return (i == 0 || !word_char((unsigned char)text[i - 1])) && !strncasecmp(text + i, w, n) &&
	       !word_char((unsigned char)text[i + n]);
}

static const char *skip_spaces(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

void rs_question_parse(const char *text, const char *const *names, int64_t now_ms,
		       int64_t default_window_ms, rs_question *out)
{
	memset(out, 0, sizeof *out);
	out->since_ms = now_ms - default_window_ms;
	out->until_ms = now_ms;
	if (!text)
		return;
	find_kernel(text, names, out->kernel);
	for (size_t i = 0; text[i]; i++) {
		static const char *const since_words[] = { "since", "in the last", "in the past",
							   "during the last", "for the last",
							   "last", "past" };
		for (size_t w = 0; w < sizeof since_words / sizeof *since_words; w++) {
			if (!word_is(text, i, since_words[w]))
				continue;
			const char *p = skip_spaces(text + i + strlen(since_words[w]));
			int64_t d = duration_at(p);
			int64_t t = d < 0 && w == 0 ? moment_at(p, now_ms) : -1;
			if (d > 0 || t >= 0) {
				out->time = RS_TIME_SINCE;
				out->since_ms = d > 0 ? now_ms - d : t;
				out->until_ms = now_ms;
				return;
			}
		}
		if (word_is(text, i, "at") || word_is(text, i, "around")) {
			const char *p = skip_spaces(text + i + (word_is(text, i, "at") ? 2 : 6));
			int64_t t = moment_at(p, now_ms);
			if (t >= 0) {
				out->time = RS_TIME_AT;
				out->since_ms = t - RS_AT_BEFORE_MS;
				out->until_ms = t + RS_AT_AFTER_MS;
				return;
			}
		}
	}
	/* A bare RFC 3339 time anywhere is a moment too. */
	for (size_t i = 0; text[i]; i++) {
		size_t used;
		if ((i == 0 || text[i - 1] == ' ') && isdigit((unsigned char)text[i])) {
			int64_t t = rfc3339_at(text + i, &used);
			if (t >= 0) {
				out->time = RS_TIME_AT;
				out->since_ms = t - RS_AT_BEFORE_MS;
				out->until_ms = t + RS_AT_AFTER_MS;
				return;
			}
		}
	}
}

/* Words a question is made of that find nothing by themselves. */
static const char *const stop_words[] = {
	"why", "did", "the", "and", "what", "when", "how", "was", "were", "for", "with", "from",
	"that", "this", "has", "have", "not", "are", "its", "into", "after", "before", "since",
	"about", "who", "which", "there", "then", "than", "but", "out", "all", "any", "our",
	"you", "your", "can", "could", "would", "should", "does", "doing", "been", "being",
	NULL,
};

static bool stop_word(const char *w)
{
	for (const char *const *s = stop_words; *s; s++)
		if (!strcmp(*s, w))
			return true;
	return false;
}

int rs_memory_query(const char *question, char *out, size_t len)
{
	char words[RS_MEMORY_WORDS][32];
	int n = 0;
	size_t used = 0;
	out[0] = '\0';
	for (const char *p = question; p && *p && n < RS_MEMORY_WORDS;) {
		while (*p && !isalnum((unsigned char)*p))
			p++;
		char w[32];
		size_t wl = 0;
		while (isalnum((unsigned char)*p)) {
			if (wl < sizeof w - 1)
				w[wl++] = (char)tolower((unsigned char)*p);
			p++;
		}
		w[wl] = '\0';
		if (wl < 3 || stop_word(w))
			continue;
		bool seen = false;
		for (int i = 0; i < n && !seen; i++)
			seen = !strcmp(words[i], w);
		if (seen)
			continue;
		int m = snprintf(out + used, len - used, "%s\"%s\"", n ? " OR " : "", w);
		if (m < 0 || (size_t)m >= len - used) {
			out[used] = '\0';
			break;
		}
		used += (size_t)m;
		memcpy(words[n++], w, wl + 1);
	}
	return n;
}
