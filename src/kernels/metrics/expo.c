#include "kernels/metrics/expo.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Decoded names and values of one line go here; a line needing more is
 * refused (a label value is at most LBL_VALUE_MAX). */
#define SCRATCH_BYTES (LBL_PAIRS_MAX * (LBL_NAME_MAX + LBL_VALUE_MAX + 2) + LBL_NAME_MAX + 2)

enum expo_format expo_format_of(const char *ct)
{
	return ct && !strncasecmp(ct, "application/openmetrics-text", 28) ? EXPO_OPENMETRICS
									  : EXPO_TEXT;
}

bool expo_parse_float(const char *s, size_t n, double *out)
{
	char tmp[64];
	if (n == 0 || n >= sizeof tmp)
		return false;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	const char *p = tmp;
	if (*p == '+' || *p == '-')
		p++;
	/* Go spells the specials Inf, +Inf, -Inf, NaN, any case; "infinity"
	 * too. strtod would also take "nan(...)": refuse anything else. */
	if (!strcasecmp(p, "inf") || !strcasecmp(p, "infinity")) {
		*out = tmp[0] == '-' ? -INFINITY : INFINITY;
		return true;
	}
	if (!strcasecmp(p, "nan")) {
		if (p != tmp)
			return false;
		*out = NAN;
		return true;
	}
	for (const char *q = p; *q; q++)
		if (!isxdigit((unsigned char)*q) && *q != '.' && *q != 'e' && *q != 'E' && *q != 'x' &&
		    *q != 'X' && *q != 'p' && *q != 'P' && *q != '+' && *q != '-')
			return false;
	char *end;
	errno = 0;
	double v = strtod(tmp, &end);
	if (*end || end == tmp)
		return false;
	/* Go answers ±Inf with an error on overflow, and Prometheus refuses
	 * the sample: so do we. Underflow to 0 is accepted by both. */
	if (errno == ERANGE && isinf(v))
		return false;
	*out = v;
	return true;
}

struct parser {
	const char *p, *end;
	enum expo_format fmt;
	unsigned line;
	char *scratch;
	size_t used;
	sdk_err *err;
};

static int fail(struct parser *ps, const char *why)
{
	return sdk_fail(ps->err, SDK_EINVAL, "line %u: %s", ps->line, why);
}

static bool at_end(const struct parser *ps) { return ps->p >= ps->end; }
static char cur(const struct parser *ps) { return at_end(ps) ? '\0' : *ps->p; }

/* Text format: any run of blanks; OpenMetrics: exactly one space. */
static bool skip_ws(struct parser *ps)
{
	if (ps->fmt == EXPO_OPENMETRICS) {
		if (cur(ps) != ' ')
			return false;
		ps->p++;
		return true;
	}
	if (cur(ps) != ' ' && cur(ps) != '\t')
		return false;
	while (cur(ps) == ' ' || cur(ps) == '\t')
		ps->p++;
	return true;
}

static void skip_opt_ws(struct parser *ps)
{
	if (ps->fmt == EXPO_TEXT)
		while (cur(ps) == ' ' || cur(ps) == '\t')
			ps->p++;
}

static const char *line_end(const struct parser *ps)
{
	const char *nl = memchr(ps->p, '\n', (size_t)(ps->end - ps->p));
	return nl ? nl : ps->end;
}

static char *scratch_put(struct parser *ps, const char *s, size_t n)
{
	if (ps->used + n + 1 > SCRATCH_BYTES)
		return NULL;
	char *d = ps->scratch + ps->used;
	memcpy(d, s, n);
	d[n] = '\0';
	ps->used += n + 1;
	return d;
}

static size_t name_len(const struct parser *ps, bool metric)
{
	const char *q = ps->p;
	while (q < ps->end) {
		char c = *q;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
			  (metric && c == ':') || (q > ps->p && c >= '0' && c <= '9');
		if (!ok)
			break;
		q++;
	}
	return (size_t)(q - ps->p);
}

/* A quoted label value, unescaped as Prometheus does: \" \\ \n, and any
 * other backslash pair kept as it is. */
static int label_value(struct parser *ps, const char **out)
{
	if (cur(ps) != '"')
		return fail(ps, "expected '\"' to open a label value");
	ps->p++;
	if (ps->used + LBL_VALUE_MAX + 1 > SCRATCH_BYTES)
		return fail(ps, "too many labels");
	char *d = ps->scratch + ps->used;
	size_t n = 0;
	for (;;) {
		if (at_end(ps))
			return fail(ps, "unterminated label value");
		char c = *ps->p++;
		if (c == '"')
			break;
		if (c == '\n') {
			if (ps->fmt == EXPO_OPENMETRICS)
				return fail(ps, "line break in a label value");
			ps->line++;
		}
		if (c == '\\') {
			if (at_end(ps))
				return fail(ps, "unterminated label value");
			char e = *ps->p++;
			if (e == 'n')
				c = '\n';
			else if (e == '"' || e == '\\')
				c = e;
			else {
				if (n + 2 > LBL_VALUE_MAX)
					return fail(ps, "label value too long");
				d[n++] = '\\';
				c = e;
			}
		}
		if (n + 1 > LBL_VALUE_MAX)
			return fail(ps, "label value too long");
		d[n++] = c;
	}
	if (!lbl_valid_utf8(d, n))
		return fail(ps, "label value is not valid UTF-8");
	d[n] = '\0';
	ps->used += n + 1;
	*out = d;
	return 0;
}

static int label_list(struct parser *ps, lbl_pair *pairs, size_t *np, char close)
{
	ps->p++; /* '{' */
	*np = 0;
	for (;;) {
		skip_opt_ws(ps);
		if (cur(ps) == close) {
			ps->p++;
			return 0;
		}
		size_t n = name_len(ps, false);
		if (n == 0)
			return fail(ps, "expected a label name");
		if (n > LBL_NAME_MAX)
			return fail(ps, "label name too long");
		if (*np >= LBL_PAIRS_MAX)
			return fail(ps, "too many labels");
		const char *name = scratch_put(ps, ps->p, n);
		if (!name)
			return fail(ps, "too many labels");
		ps->p += n;
		skip_opt_ws(ps);
		if (cur(ps) != '=')
			return fail(ps, "expected '=' after a label name");
		ps->p++;
		skip_opt_ws(ps);
		const char *value = NULL;
		int rc = label_value(ps, &value);
		if (rc)
			return rc;
		for (size_t i = 0; i < *np; i++)
			if (!strcmp(pairs[i].name, name))
				return fail(ps, "label name repeated");
		if (!strcmp(name, LBL_METRIC_NAME))
			return fail(ps, "__name__ given as a label");
		pairs[(*np)++] = (lbl_pair){ name, value };
		skip_opt_ws(ps);
		if (cur(ps) == ',') {
			ps->p++;
			continue;
		}
		if (cur(ps) != close)
			return fail(ps, "expected ',' or '}' after a label");
	}
}

/* The next token up to a blank or the line's end. */
static size_t token_len(const struct parser *ps)
{
	const char *q = ps->p;
	while (q < ps->end && *q != ' ' && *q != '\n' && *q != '\t' &&
	       !(ps->fmt == EXPO_TEXT && *q == '{'))
		q++;
	return (size_t)(q - ps->p);
}

static int parse_timestamp(struct parser *ps, int64_t *ts)
{
	size_t n = token_len(ps);
	if (ps->fmt == EXPO_TEXT) {
		/* Integer milliseconds (the format's own example has a
		 * negative one). */
		bool neg = n > 1 && ps->p[0] == '-';
		if (n == 0 || n > 18)
			return fail(ps, "bad timestamp");
		int64_t v = 0;
		for (size_t i = neg; i < n; i++) {
			if (ps->p[i] < '0' || ps->p[i] > '9')
				return fail(ps, "bad timestamp");
			v = v * 10 + (ps->p[i] - '0');
		}
		*ts = neg ? -v : v;
	} else {
		double s;
		if (!expo_parse_float(ps->p, n, &s) || isnan(s) || isinf(s) || fabs(s) > 9.2e15)
			return fail(ps, "bad timestamp");
		/* Seconds with a fraction; Prometheus keeps milliseconds. */
		*ts = (int64_t)(s * 1000.0);
	}
	ps->p += n;
	return 0;
}

/* OpenMetrics: " # {labels} value [timestamp]" after a sample. */
static int exemplar(struct parser *ps)
{
	if (ps->end - ps->p < 4 || memcmp(ps->p, " # {", 4))
		return fail(ps, "expected an exemplar or the end of the line");
	ps->p += 3;
	lbl_pair tmp[LBL_PAIRS_MAX];
	size_t n;
	size_t mark = ps->used;
	int rc = label_list(ps, tmp, &n, '}');
	ps->used = mark;
	if (rc)
		return rc;
	if (!skip_ws(ps))
		return fail(ps, "expected an exemplar value");
	double v;
	size_t len = token_len(ps);
	if (!expo_parse_float(ps->p, len, &v))
		return fail(ps, "bad exemplar value");
	ps->p += len;
	if (cur(ps) == ' ') {
		ps->p++;
		int64_t ts;
		if (parse_timestamp(ps, &ts))
			return -1;
	}
	return 0;
}

static int sample_line(struct parser *ps, expo_sample_fn on_sample, void *arg)
{
	lbl_pair pairs[LBL_PAIRS_MAX];
	size_t n = name_len(ps, true), np = 0;
	if (n == 0)
		return fail(ps, "expected a metric name");
	if (n > LBL_NAME_MAX)
		return fail(ps, "metric name too long");
	ps->used = 0;
	const char *name = scratch_put(ps, ps->p, n);
	ps->p += n;
	const char *after_name = ps->p;
	skip_opt_ws(ps);
	if (cur(ps) != '{')
		ps->p = after_name;
	if (cur(ps) == '{') {
		int rc = label_list(ps, pairs, &np, '}');
		if (rc)
			return rc;
	}
	if (!skip_ws(ps))
		return fail(ps, "expected a blank before the value");
	size_t vlen = token_len(ps);
	expo_sample s = { .name = name, .labels = pairs, .n_labels = np };
	if (!expo_parse_float(ps->p, vlen, &s.value))
		return fail(ps, "bad sample value");
	ps->p += vlen;
	if (ps->fmt == EXPO_TEXT) {
		skip_opt_ws(ps);
		if (!at_end(ps) && cur(ps) != '\n') {
			if (parse_timestamp(ps, &s.ts_ms))
				return -1;
			s.has_ts = true;
			skip_opt_ws(ps);
		}
	} else if (cur(ps) == ' ' && ps->p + 1 < ps->end && ps->p[1] != '#') {
		ps->p++;
		if (parse_timestamp(ps, &s.ts_ms))
			return -1;
		s.has_ts = true;
	}
	if (ps->fmt == EXPO_OPENMETRICS && cur(ps) == ' ') {
		int rc = exemplar(ps);
		if (rc)
			return rc;
	}
	if (!at_end(ps) && cur(ps) != '\n')
		return fail(ps, "unexpected text after the sample");
	return on_sample ? on_sample(arg, &s) : 0;
}

/* "# HELP", "# TYPE", "# UNIT", "# EOF" or (text format only) any other
 * comment. Returns 1 at "# EOF". */
static int comment_line(struct parser *ps, expo_type_fn on_type, void *arg)
{
	const char *le = line_end(ps);
	const char *q = ps->p + 1;
	bool om = ps->fmt == EXPO_OPENMETRICS;
	if (q >= le || (*q != ' ' && *q != '\t')) {
		if (om)
			return fail(ps, "expected a blank after '#'");
		ps->p = le;
		return 0;
	}
	while (q < le && (*q == ' ' || *q == '\t') && !om)
		q++;
	if (om)
		q++;
	size_t rest = (size_t)(le - q);
	if (om && rest == 3 && !memcmp(q, "EOF", 3)) {
		ps->p = le;
		return 1;
	}
	bool help = rest >= 5 && !memcmp(q, "HELP", 4) && (q[4] == ' ' || (!om && q[4] == '\t'));
	bool type = rest >= 5 && !memcmp(q, "TYPE", 4) && (q[4] == ' ' || (!om && q[4] == '\t'));
	bool unit = om && rest >= 5 && !memcmp(q, "UNIT", 4) && q[4] == ' ';
	if (!help && !type && !unit) {
		if (om)
			return fail(ps, "unknown comment: OpenMetrics allows HELP, TYPE, UNIT and EOF");
		ps->p = le;
		return 0;
	}
	q += 5;
	if (!om)
		while (q < le && (*q == ' ' || *q == '\t'))
			q++;
	ps->p = q;
	size_t n = name_len(ps, true);
	if (n == 0)
		return fail(ps, "expected a metric name in a HELP, TYPE or UNIT line");
	char family[LBL_NAME_MAX + 1];
	if (n > LBL_NAME_MAX)
		return fail(ps, "metric name too long");
	memcpy(family, q, n);
	family[n] = '\0';
	q += n;
	if (type) {
		while (q < le && (*q == ' ' || *q == '\t'))
			q++;
		char t[32];
		size_t tl = (size_t)(le - q);
		while (tl && (q[tl - 1] == ' ' || q[tl - 1] == '\t'))
			tl--;
		static const char *const types[] = { "counter",   "gauge",	   "histogram",
						     "summary",   "untyped",	   "unknown",
						     "gaugehistogram", "stateset", "info" };
		bool known = false;
		for (size_t i = 0; i < sizeof types / sizeof types[0] && !known; i++)
			known = tl == strlen(types[i]) && !memcmp(q, types[i], tl);
		if (!known)
			return fail(ps, "unknown metric type");
		memcpy(t, q, tl);
		t[tl] = '\0';
		if (on_type)
			on_type(arg, family, t);
	}
	ps->p = le;
	return 0;
}

int expo_parse(const char *buf, size_t len, enum expo_format fmt, expo_sample_fn on_sample,
	       expo_type_fn on_type, void *arg, sdk_err *err)
{
	char *scratch = malloc(SCRATCH_BYTES);
	if (!scratch)
		return sdk_fail(err, SDK_EIO, "out of memory");
	struct parser ps = { .p = buf, .end = buf + len, .fmt = fmt, .line = 1,
			     .scratch = scratch, .err = err };
	int rc = 0;
	bool eof = false;
	while (!at_end(&ps)) {
		if (eof) {
			rc = fail(&ps, "text after # EOF");
			break;
		}
		char c = cur(&ps);
		if (c == '\n') {
			if (fmt == EXPO_OPENMETRICS) {
				rc = fail(&ps, "empty line");
				break;
			}
		} else if (c == '#') {
			rc = comment_line(&ps, on_type, arg);
			if (rc == 1) {
				eof = true;
				rc = 0;
			}
		} else {
			if (fmt == EXPO_TEXT)
				skip_opt_ws(&ps);
			if (!at_end(&ps) && cur(&ps) != '\n')
				rc = sample_line(&ps, on_sample, arg);
		}
		if (rc)
			break;
		if (!at_end(&ps)) {
			ps.p++; /* the line break */
			ps.line++;
		}
	}
	if (!rc && fmt == EXPO_OPENMETRICS && !eof)
		rc = fail(&ps, "no # EOF at the end");
	free(scratch);
	return rc;
}
