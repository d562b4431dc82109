#include "kernels/alerts/tmpl.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARGS_MAX 8

void tmpl_go_float(double v, char *buf, size_t len)
{
	if (isnan(v)) {
		snprintf(buf, len, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(buf, len, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	if (v == 0) {
		snprintf(buf, len, signbit(v) ? "-0" : "0");
		return;
	}
	/* The shortest digits that read back, and their exponent. */
	char e[40];
	int prec;
	for (prec = 1; prec <= 17; prec++) {
		snprintf(e, sizeof e, "%.*e", prec - 1, v);
		if (strtod(e, NULL) == v)
			break;
	}
	const char *ep = strchr(e, 'e');
	int exp = atoi(ep + 1);
	if (exp < -4 || exp >= 6) {
		/* d.ddde+XX with the shortest digits (Go pads the exponent to 2). */
		snprintf(buf, len, "%.*e", prec - 1, v);
		return;
	}
	int decimals = prec - 1 - exp;
	snprintf(buf, len, "%.*f", decimals > 0 ? decimals : 0, v);
}

/* Go's %.Ng for humanize's %.4g: C's %g, with Go's names for the specials. */
static void go_g(double v, int prec, char *buf, size_t len)
{
	if (isnan(v))
		snprintf(buf, len, "NaN");
	else if (isinf(v))
		snprintf(buf, len, v > 0 ? "+Inf" : "-Inf");
	else
		snprintf(buf, len, "%.*g", prec, v);
}

/* ---- values */

enum vkind { V_STR, V_NUM, V_MAP };

typedef struct val {
	enum vkind k;
	char s[TMPL_OUT_MAX];
	double n;
	const json_t *map; /* V_MAP: a label set (NULL: empty) */
} val;

static void val_print(const val *v, char *out, size_t len)
{
	if (v->k == V_NUM)
		tmpl_go_float(v->n, out, len);
	else if (v->k == V_STR)
		snprintf(out, len, "%s", v->s);
	else
		snprintf(out, len, "map[]");
}

static bool val_num(const val *v, double *out)
{
	if (v->k == V_NUM) {
		*out = v->n;
		return true;
	}
	if (v->k == V_STR) {
		char *end;
		*out = strtod(v->s, &end);
		return *v->s && !*end;
	}
	return false;
}

/* ---- functions */

static void humanize(double v, bool base1024, char *out, size_t len)
{
	if (v == 0 || isnan(v) || isinf(v)) {
		go_g(v, 4, out, len);
		return;
	}
	const char *prefix = "";
	if (fabs(v) >= 1) {
		static const char *const big[] = { "k", "M", "G", "T", "P", "E", "Z", "Y" };
		static const char *const bin[] = { "ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi" };
		double base = base1024 ? 1024 : 1000;
		for (int i = 0; i < 8 && fabs(v) >= base; i++) {
			prefix = base1024 ? bin[i] : big[i];
			v /= base;
		}
	} else if (!base1024) {
		static const char *const small[] = { "m", "u", "n", "p", "f", "a", "z", "y" };
		for (int i = 0; i < 8 && fabs(v) < 1; i++) {
			prefix = small[i];
			v *= 1000;
		}
	}
	char n[64];
	go_g(v, 4, n, sizeof n);
	snprintf(out, len, "%s%s", n, prefix);
}

static void humanize_duration(double v, char *out, size_t len)
{
	if (isnan(v) || isinf(v)) {
		go_g(v, 4, out, len);
		return;
	}
	if (v == 0) {
		snprintf(out, len, "0s");
		return;
	}
	if (fabs(v) >= 1) {
		const char *sign = v < 0 ? "-" : "";
		v = fabs(v);
		long long d = (long long)v;
		long long s = d % 60, m = (d / 60) % 60, h = (d / 3600) % 24, days = d / 86400;
		if (days)
			snprintf(out, len, "%s%lldd %lldh %lldm %llds", sign, days, h, m, s);
		else if (h)
			snprintf(out, len, "%s%lldh %lldm %llds", sign, h, m, s);
		else if (m)
			snprintf(out, len, "%s%lldm %llds", sign, m, s);
		else {
			char n[64];
			go_g(v, 4, n, sizeof n);
			snprintf(out, len, "%s%ss", sign, n);
		}
		return;
	}
	const char *prefix = "";
	static const char *const small[] = { "m", "u", "n", "p", "f", "a", "z", "y" };
	for (int i = 0; i < 8 && fabs(v) < 1; i++) {
		prefix = small[i];
		v *= 1000;
	}
	char n[64];
	go_g(v, 4, n, sizeof n);
	snprintf(out, len, "%s%ss", n, prefix);
}

/* Go's printf for the verbs templates use: %s %v %d %f %e %g %q %%,
 * with width and precision. */
static int go_printf(const char *fmt, const val *args, size_t n, char *out, size_t len,
		     sdk_err *err)
{
	size_t o = 0, a = 0;
	for (const char *p = fmt; *p && o + 1 < len;) {
		if (*p != '%') {
			out[o++] = *p++;
			continue;
		}
		p++;
		if (*p == '%') {
			out[o++] = '%';
			p++;
			continue;
		}
		char spec[32] = "%";
		size_t sl = 1;
		while (*p && strchr("+-# 0123456789.", *p) && sl < sizeof spec - 3)
			spec[sl++] = *p++;
		char verb = *p ? *p++ : '\0';
		if (!strchr("svdfeEgGqxX", verb) || !verb)
			return sdk_fail(err, SDK_EINVAL, "template: printf: verb %%%c is not supported", verb);
		char piece[TMPL_OUT_MAX];
		if (a >= n) {
			snprintf(piece, sizeof piece, "%%!%c(MISSING)", verb);
		} else {
			const val *v = &args[a++];
			double d;
			if (verb == 's' || verb == 'v') {
				char s[TMPL_OUT_MAX];
				val_print(v, s, sizeof s);
				spec[sl++] = 's';
				spec[sl] = '\0';
				snprintf(piece, sizeof piece, spec, s);
			} else if (verb == 'q') {
				char s[TMPL_OUT_MAX];
				val_print(v, s, sizeof s);
				if (snprintf(piece, sizeof piece, "\"%s\"", s) >= (int)sizeof piece)
					piece[sizeof piece - 1] = '\0';
			} else if (!val_num(v, &d)) {
				if (snprintf(piece, sizeof piece, "%%!%c(string=%s)", verb, v->s) >=
				    (int)sizeof piece)
					piece[sizeof piece - 1] = '\0';
			} else if (verb == 'd' || verb == 'x' || verb == 'X') {
				spec[sl++] = 'l';
				spec[sl++] = 'l';
				spec[sl++] = verb;
				spec[sl] = '\0';
				if (v->k == V_NUM && d != floor(d))
					snprintf(piece, sizeof piece, "%%!%c(float64=%g)", verb, d);
				else
					snprintf(piece, sizeof piece, spec, (long long)d);
			} else {
				spec[sl++] = verb;
				spec[sl] = '\0';
				if (isnan(d))
					snprintf(piece, sizeof piece, "NaN");
				else if (isinf(d))
					snprintf(piece, sizeof piece, d > 0 ? "+Inf" : "-Inf");
				else
					snprintf(piece, sizeof piece, spec, d);
			}
		}
		for (const char *q = piece; *q && o + 1 < len; q++)
			out[o++] = *q;
	}
	out[o] = '\0';
	return 0;
}

/* ---- parsing and evaluating one action */

typedef struct env {
	const json_t *labels;
	double value;
} env;

typedef struct lex {
	const char *p, *end;
} lex;

static void skip(lex *l)
{
	while (l->p < l->end && isspace((unsigned char)*l->p))
		l->p++;
}

static bool is_ident(char c) { return isalnum((unsigned char)c) || c == '_'; }

/* One operand: a variable or field path, a string, a number. */
static int operand(lex *l, const env *e, val *out, sdk_err *err)
{
	skip(l);
	const char *p = l->p;
	if (p >= l->end)
		return sdk_fail(err, SDK_EINVAL, "template: missing value");
	if (*p == '"' || *p == '`') {
		char q = *p++;
		size_t o = 0;
		while (p < l->end && *p != q) {
			char c = *p++;
			if (q == '"' && c == '\\' && p < l->end) {
				c = *p++;
				c = c == 'n' ? '\n' : c == 't' ? '\t' : c;
			}
			if (o + 1 < sizeof out->s)
				out->s[o++] = c;
		}
		if (p >= l->end)
			return sdk_fail(err, SDK_EINVAL, "template: unterminated string");
		out->s[o] = '\0';
		out->k = V_STR;
		l->p = p + 1;
		return 0;
	}
	if (isdigit((unsigned char)*p) || ((*p == '-' || *p == '+') && p + 1 < l->end &&
					   isdigit((unsigned char)p[1]))) {
		char *end;
		out->n = strtod(p, &end);
		out->k = V_NUM;
		l->p = end;
		return 0;
	}
	/* $var(.field)* or .Field(.field)* */
	const char *start = p;
	if (*p == '$')
		p++;
	while (p < l->end && (is_ident(*p) || *p == '.'))
		p++;
	size_t n = (size_t)(p - start);
	char word[512];
	if (n == 0 || n >= sizeof word)
		return sdk_fail(err, SDK_EINVAL, "template: unexpected \"%c\"", *start);
	memcpy(word, start, n);
	word[n] = '\0';
	l->p = p;
	const char *field = NULL;
	const json_t *map = NULL;
	bool is_map = false;
	if (!strncmp(word, "$labels", 7) || !strncmp(word, ".Labels", 7)) {
		map = e->labels;
		is_map = true;
		field = word + 7;
	} else if (!strncmp(word, "$externalLabels", 15) || !strncmp(word, ".ExternalLabels", 15)) {
		is_map = true;
		field = word + 15;
	} else if (!strcmp(word, "$value") || !strcmp(word, ".Value")) {
		out->k = V_NUM;
		out->n = e->value;
		return 0;
	} else if (!strcmp(word, "$externalURL") || !strcmp(word, ".ExternalURL")) {
		out->k = V_STR;
		out->s[0] = '\0';
		return 0;
	}
	if (!is_map)
		return sdk_fail(err, SDK_EINVAL, "template: undefined variable or field \"%s\"", word);
	if (!*field) {
		out->k = V_MAP;
		out->map = map;
		return 0;
	}
	if (field[0] != '.' || strchr(field + 1, '.') || !field[1])
		return sdk_fail(err, SDK_EINVAL, "template: bad field \"%s\"", word);
	const char *v = map ? json_string_value(json_object_get(map, field + 1)) : NULL;
	out->k = V_STR;
	snprintf(out->s, sizeof out->s, "%s", v ? v : "");
	return 0;
}

static const char *const funcs[] = { "humanize",	   "humanize1024", "humanizePercentage",
				     "humanizeDuration", "printf",	   "toUpper",
				     "toLower",		   "title" };

static int call(const char *fn, val *args, size_t n, val *out, sdk_err *err)
{
	out->k = V_STR;
	double d;
	if (!strcmp(fn, "printf")) {
		if (n < 1 || args[0].k != V_STR)
			return sdk_fail(err, SDK_EINVAL, "template: printf needs a format string");
		return go_printf(args[0].s, args + 1, n - 1, out->s, sizeof out->s, err);
	}
	if (n != 1)
		return sdk_fail(err, SDK_EINVAL, "template: %s takes one argument, got %zu", fn, n);
	if (!strcmp(fn, "toUpper") || !strcmp(fn, "toLower") || !strcmp(fn, "title")) {
		val_print(&args[0], out->s, sizeof out->s);
		bool word_start = true;
		for (char *c = out->s; *c; c++) {
			if (!strcmp(fn, "toUpper"))
				*c = (char)toupper((unsigned char)*c);
			else if (!strcmp(fn, "toLower"))
				*c = (char)tolower((unsigned char)*c);
			else {
				if (word_start && isalpha((unsigned char)*c))
					*c = (char)toupper((unsigned char)*c);
				word_start = !isalnum((unsigned char)*c);
			}
		}
		return 0;
	}
	if (!val_num(&args[0], &d))
		return sdk_fail(err, SDK_EINVAL, "template: %s: \"%s\" is not a number", fn, args[0].s);
	if (!strcmp(fn, "humanize"))
		humanize(d, false, out->s, sizeof out->s);
	else if (!strcmp(fn, "humanize1024"))
		humanize(d, true, out->s, sizeof out->s);
	else if (!strcmp(fn, "humanizePercentage")) {
		char n4[64];
		go_g(d * 100, 4, n4, sizeof n4);
		snprintf(out->s, sizeof out->s, "%s%%", n4);
	} else
		humanize_duration(d, out->s, sizeof out->s);
	return 0;
}

static bool known_func(const char *w)
{
	for (size_t i = 0; i < sizeof funcs / sizeof funcs[0]; i++)
		if (!strcmp(w, funcs[i]))
			return true;
	return false;
}

/* command := operand | FUNC operand* ; `piped` is the previous command's
 * result (NULL for the first). */
static int command(lex *l, const env *e, const val *piped, val *out, sdk_err *err)
{
	skip(l);
	const char *p = l->p;
	char word[64];
	size_t n = 0;
	while (p < l->end && is_ident(*p) && n + 1 < sizeof word)
		word[n++] = *p++;
	word[n] = '\0';
	if (n && isalpha((unsigned char)word[0]) && (p >= l->end || isspace((unsigned char)*p) || *p == '|')) {
		if (!known_func(word))
			return sdk_fail(err, SDK_EINVAL, "template: function \"%s\" not defined", word);
		l->p = p;
		val *args = calloc(ARGS_MAX + 1, sizeof *args);
		if (!args)
			return sdk_fail(err, SDK_EIO, "out of memory");
		size_t na = 0;
		int rc = 0;
		for (;;) {
			skip(l);
			if (l->p >= l->end || *l->p == '|')
				break;
			if (na == ARGS_MAX) {
				rc = sdk_fail(err, SDK_EINVAL, "template: too many arguments");
				break;
			}
			if ((rc = operand(l, e, &args[na++], err)))
				break;
		}
		if (!rc && piped) {
			if (na == ARGS_MAX)
				rc = sdk_fail(err, SDK_EINVAL, "template: too many arguments");
			else
				args[na++] = *piped;
		}
		if (!rc)
			rc = call(word, args, na, out, err);
		free(args);
		return rc;
	}
	if (piped)
		return sdk_fail(err, SDK_EINVAL, "template: a value cannot follow \"|\"");
	int rc = operand(l, e, out, err);
	skip(l);
	if (!rc && l->p < l->end && *l->p != '|')
		return sdk_fail(err, SDK_EINVAL, "template: unexpected \"%.*s\"",
				(int)(l->end - l->p > 20 ? 20 : l->end - l->p), l->p);
	return rc;
}

static int action(const char *s, size_t n, const env *e, char *out, size_t len, sdk_err *err)
{
	lex l = { s, s + n };
	skip(&l);
	if (l.p >= l.end)
		return sdk_fail(err, SDK_EINVAL, "template: missing value for command");
	/* Comments. */
	if (l.end - l.p >= 4 && !strncmp(l.p, "/*", 2)) {
		const char *q = l.end;
		while (q > l.p && isspace((unsigned char)q[-1]))
			q--;
		if (q - l.p >= 4 && !strncmp(q - 2, "*/", 2)) {
			out[0] = '\0';
			return 0;
		}
		return sdk_fail(err, SDK_EINVAL, "template: unclosed comment");
	}
	static const char *const refused[] = { "if", "else", "end", "range", "with", "define",
					       "template", "block", "query" };
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
		size_t rl = strlen(refused[i]);
		if ((size_t)(l.end - l.p) >= rl && !strncmp(l.p, refused[i], rl) &&
		    ((size_t)(l.end - l.p) == rl || !is_ident(l.p[rl])))
			return sdk_fail(err, SDK_EINVAL, "template: \"%s\" is not supported in Grace's templates",
					refused[i]);
	}
	if (memchr(l.p, ':', (size_t)(l.end - l.p)) && memchr(l.p, '=', (size_t)(l.end - l.p)))
		return sdk_fail(err, SDK_EINVAL, "template: variables of one's own are not supported");
	val *cur = malloc(sizeof *cur), *next = malloc(sizeof *next);
	if (!cur || !next) {
		free(cur);
		free(next);
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	int rc = command(&l, e, NULL, cur, err);
	while (!rc) {
		skip(&l);
		if (l.p >= l.end)
			break;
		l.p++; /* '|' */
		rc = command(&l, e, cur, next, err);
		val *t = cur;
		cur = next;
		next = t;
	}
	if (!rc)
		val_print(cur, out, len);
	free(cur);
	free(next);
	return rc;
}

int tmpl_expand(const char *text, const json_t *labels, double value, char **out, sdk_err *err)
{
	*out = NULL;
	env e = { labels, value };
	char *buf = malloc(TMPL_OUT_MAX);
	char *piece = malloc(TMPL_OUT_MAX);
	if (!buf || !piece) {
		free(buf);
		free(piece);
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	size_t o = 0;
	const char *p = text;
	int rc = 0;
	while (*p && !rc) {
		const char *open = strstr(p, "{{");
		const char *lit_end = open ? open : p + strlen(p);
		bool trim_left = open && open[2] == '-' && (open[3] == ' ' || open[3] == '\t' || open[3] == '\n');
		if (trim_left)
			while (lit_end > p && isspace((unsigned char)lit_end[-1]))
				lit_end--;
		for (const char *q = p; q < lit_end && o + 1 < TMPL_OUT_MAX; q++)
			buf[o++] = *q;
		if (!open)
			break;
		const char *a = open + 2 + (trim_left ? 1 : 0);
		const char *close = strstr(a, "}}");
		if (!close) {
			rc = sdk_fail(err, SDK_EINVAL, "template: unclosed action");
			break;
		}
		const char *a_end = close;
		bool trim_right = close - a >= 2 && close[-1] == '-' && isspace((unsigned char)close[-2]);
		if (trim_right)
			a_end--;
		rc = action(a, (size_t)(a_end - a), &e, piece, TMPL_OUT_MAX, err);
		for (const char *q = piece; !rc && *q && o + 1 < TMPL_OUT_MAX; q++)
			buf[o++] = *q;
		p = close + 2;
		if (trim_right)
			while (*p && isspace((unsigned char)*p))
				p++;
	}
	buf[o] = '\0';
	free(piece);
	if (rc) {
		free(buf);
		return rc;
	}
	*out = buf;
	return 0;
}

int tmpl_check(const char *text, sdk_err *err)
{
	json_t *labels = json_object();
	char *out;
	int rc = tmpl_expand(text, labels, 1, &out, err);
	free(out);
	json_decref(labels);
	return rc;
}
