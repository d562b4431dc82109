#include "kernels/coding_agent/sr.h"

#include "sdk/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- lines */

typedef struct line {
	const char *p;
	size_t len; /* without the newline */
} line;

/* The length of a line without its trailing "\r" and blanks. */
static size_t rtrim_len(const char *p, size_t len)
{
	while (len && (p[len - 1] == '\r' || p[len - 1] == ' ' || p[len - 1] == '\t'))
		len--;
	return len;
}

/* `c` repeated 5 to 9 times, then `word` (may be ""), then nothing but
 * blanks: Aider's markers. */
static bool marker(const char *p, size_t len, char c, const char *word)
{
	len = rtrim_len(p, len);
	size_t n = 0;
	while (n < len && p[n] == c)
		n++;
	if (n < 5 || n > 9)
		return false;
	size_t wl = strlen(word);
	if (!wl)
		return n == len;
	return len == n + 1 + wl && p[n] == ' ' && !memcmp(p + n + 1, word, wl);
}

static bool is_fence(const char *p, size_t len)
{
	while (len && (*p == ' ' || *p == '\t'))
		p++, len--;
	return len >= 3 && !memcmp(p, "```", 3);
}

static bool blank(const char *p, size_t len)
{
	return rtrim_len(p, len) == 0; /* trailing blanks are all of it */
}

/* Copies a file name line, stripped of blanks, backticks, '#' and ':'. */
static int file_name(const char *p, size_t len, char out[CA_SR_PATH_MAX])
{
	len = rtrim_len(p, len);
	while (len && (*p == ' ' || *p == '\t' || *p == '#' || *p == '`' || *p == '*'))
		p++, len--;
	while (len && (p[len - 1] == '`' || p[len - 1] == ':' || p[len - 1] == '*' ||
		       p[len - 1] == ' '))
		len--;
	if (!len || len >= CA_SR_PATH_MAX)
		return -1;
	memcpy(out, p, len);
	out[len] = '\0';
	return 0;
}

/* ---- parsing */

static char *dup_span(const char *from, const char *to, size_t *len)
{
	size_t n = (size_t)(to - from);
	char *s = malloc(n + 1);
	if (!s)
		return NULL;
	memcpy(s, from, n);
	s[n] = '\0';
	*len = n;
	return s;
}

void ca_sr_list_free(ca_sr_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->blocks[i].search);
		free(l->blocks[i].replace);
	}
	l->n = 0;
}

int ca_sr_parse(const char *text, size_t len, ca_sr_list *out, sdk_err *err)
{
	memset(out, 0, sizeof *out);
	const char *end = text + len, *p = text;
	/* The last non-blank, non-fence line before a block: its file name. */
	const char *cand = NULL;
	size_t cand_len = 0;
	char last_path[CA_SR_PATH_MAX] = "";
	unsigned lineno = 0;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t ll = nl ? (size_t)(nl - p) : (size_t)(end - p);
		lineno++;
		if (!marker(p, ll, '<', "SEARCH")) {
			if (!blank(p, ll) && !is_fence(p, ll) && !marker(p, ll, '=', "") &&
			    !marker(p, ll, '>', "REPLACE")) {
				cand = p;
				cand_len = ll;
			}
			p = nl ? nl + 1 : end;
			continue;
		}
		if (out->n >= CA_SR_BLOCKS_MAX)
			return sdk_fail(err, SDK_EINVAL, "more than %d search/replace blocks",
					CA_SR_BLOCKS_MAX);
		ca_sr_block *b = &out->blocks[out->n];
		b->line_first = lineno;
		if (cand) {
			if (file_name(cand, cand_len, b->path) < 0)
				return sdk_fail(err, SDK_EINVAL,
						"block %zu (line %u): the file name before it is empty "
						"or longer than %d bytes",
						out->n + 1, lineno, CA_SR_PATH_MAX - 1);
		} else if (last_path[0]) {
			memcpy(b->path, last_path, sizeof b->path);
		} else {
			return sdk_fail(err, SDK_EINVAL,
					"block %zu (line %u): no file name on a line before it",
					out->n + 1, lineno);
		}
		cand = NULL;
		/* SEARCH runs to the divider, REPLACE to the end marker. */
		const char *s_from = nl ? nl + 1 : end, *s_to = NULL, *r_from = NULL, *r_to = NULL;
		const char *q = s_from;
		while (q < end) {
			const char *qn = memchr(q, '\n', (size_t)(end - q));
			size_t ql = qn ? (size_t)(qn - q) : (size_t)(end - q);
			lineno++;
			if (!s_to && marker(q, ql, '=', "")) {
				s_to = q;
				r_from = qn ? qn + 1 : end;
			} else if (s_to && marker(q, ql, '>', "REPLACE")) {
				r_to = q;
				q = qn ? qn + 1 : end;
				break;
			} else if (marker(q, ql, '<', "SEARCH")) {
				break; /* a new block before this one ended */
			}
			q = qn ? qn + 1 : end;
		}
		if (!r_to)
			return sdk_fail(err, SDK_EINVAL,
					"block %zu (line %u, %s): no %s line ends it", out->n + 1,
					b->line_first, b->path, s_to ? ">>>>>>> REPLACE" : "=======");
		b->line_last = lineno;
		b->search = dup_span(s_from, s_to, &b->search_len);
		b->replace = dup_span(r_from, r_to, &b->replace_len);
		out->n++;
		if (!b->search || !b->replace)
			return sdk_fail(err, SDK_EINVAL, "out of memory");
		memcpy(last_path, b->path, sizeof last_path);
		p = q;
	}
	return 0;
}

/* ---- applying */

const char *ca_sr_why_label(ca_sr_why w)
{
	switch (w) {
	case CA_SR_OK: return "ok";
	case CA_SR_NOT_FOUND: return "not_found";
	case CA_SR_AMBIGUOUS: return "ambiguous";
	case CA_SR_FILE_MISSING: return "file_missing";
	case CA_SR_FILE_EXISTS: return "file_exists";
	}
	return "unknown";
}

static unsigned line_of(const char *content, const char *at)
{
	unsigned n = 1;
	for (const char *p = content; p < at; p++)
		n += *p == '\n';
	return n;
}

/* Splits into lines (a final line without "\n" counts; a text ending in
 * "\n" has no empty last line). *out malloc'ed. */
static size_t split(const char *s, size_t len, line **out)
{
	size_t n = 0, cap = 16;
	line *v = malloc(cap * sizeof *v);
	const char *p = s, *end = s + len;
	while (v && p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (n == cap) {
			line *w = realloc(v, (cap *= 2) * sizeof *v);
			if (!w) {
				free(v);
				v = NULL;
				break;
			}
			v = w;
		}
		v[n++] = (line){ p, nl ? (size_t)(nl - p) : (size_t)(end - p) };
		p = nl ? nl + 1 : end;
	}
	*out = v;
	return v ? n : 0;
}

static void strip(const char **p, size_t *len)
{
	*len = rtrim_len(*p, *len);
	while (*len && (**p == ' ' || **p == '\t'))
		(*p)++, (*len)--;
}

static size_t indent_len(const char *p, size_t len)
{
	size_t i = 0;
	while (i < len && (p[i] == ' ' || p[i] == '\t'))
		i++;
	return i;
}

static bool lines_equal_stripped(const line *a, const line *b)
{
	const char *pa = a->p, *pb = b->p;
	size_t la = a->len, lb = b->len;
	strip(&pa, &la);
	strip(&pb, &lb);
	return la == lb && !memcmp(pa, pb, la);
}

static int finish(sdk_buf *b, char **out, size_t *out_len, ca_sr_result *res)
{
	sdk_buf_add(b, "", 0); /* an empty result is "", not NULL */
	if (b->oom || !b->p) {
		free(b->p);
		snprintf(res->msg, sizeof res->msg, "out of memory");
		return SDK_EIO;
	}
	*out = b->p;
	*out_len = b->len;
	return 0;
}

static int fail(ca_sr_result *res, ca_sr_why why, const char *fmt, const char *a, unsigned x,
		unsigned y)
{
	res->why = why;
	snprintf(res->msg, sizeof res->msg, fmt, a, x, y);
	return why == CA_SR_FILE_MISSING ? SDK_ENOTFOUND : SDK_ECONFLICT;
}

/* The line-by-line match ignoring leading and trailing whitespace. */
static int apply_fuzzy(const char *content, size_t len, const ca_sr_block *b, char **out,
		       size_t *out_len, ca_sr_result *res)
{
	line *f = NULL, *s = NULL, *r = NULL;
	size_t nf = split(content, len, &f), ns = split(b->search, b->search_len, &s);
	size_t nr = split(b->replace, b->replace_len, &r);
	int rc;
	/* Blank lines at the ends of SEARCH say nothing about where it is. */
	size_t s0 = 0;
	while (s0 < ns && blank(s[s0].p, s[s0].len))
		s0++;
	while (ns > s0 && blank(s[ns - 1].p, s[ns - 1].len))
		ns--;
	size_t found = 0, at = 0, second = 0, want = ns - s0;
	for (size_t i = 0; want && i + want <= nf; i++) {
		size_t j = 0;
		while (j < want && lines_equal_stripped(&f[i + j], &s[s0 + j]))
			j++;
		if (j == want) {
			if (found++ == 0)
				at = i;
			else if (found == 2)
				second = i;
		}
	}
	if (!f || !s || (!r && b->replace_len)) {
		snprintf(res->msg, sizeof res->msg, "out of memory");
		rc = SDK_EIO;
	} else if (found == 0) {
		rc = fail(res, CA_SR_NOT_FOUND,
			  "%s: the SEARCH text is not in the file (not even ignoring leading and "
			  "trailing whitespace)%.0u%.0u",
			  b->path, 0, 0);
	} else if (found > 1) {
		res->file_line = (unsigned)at + 1;
		res->second_line = (unsigned)second + 1;
		rc = fail(res, CA_SR_AMBIGUOUS,
			  "%s: the SEARCH text is found more than once (ignoring whitespace), at "
			  "lines %u and %u: add lines around it to make it unique",
			  b->path, (unsigned)at + 1, (unsigned)second + 1);
	} else {
		/* Re-indent the replacement by what the file adds to SEARCH. */
		const line *fl = &f[at], *sl = &s[s0];
		size_t fi = indent_len(fl->p, fl->len), si = indent_len(sl->p, sl->len);
		const char *extra = fl->p;
		size_t extra_len = fi > si && !memcmp(fl->p + fi - si, sl->p, si) ? fi - si : 0;
		sdk_buf o = { 0 };
		const char *cut_from = f[at].p;
		const char *last_end = f[at + want - 1].p + f[at + want - 1].len;
		bool had_nl = last_end < content + len; /* the last line matched ends in "\n" */
		sdk_buf_add(&o, content, (size_t)(cut_from - content));
		for (size_t i = 0; i < nr; i++) {
			if (!blank(r[i].p, r[i].len))
				sdk_buf_add(&o, extra, extra_len);
			sdk_buf_add(&o, r[i].p, r[i].len);
			if (i + 1 < nr || had_nl)
				sdk_buf_add(&o, "\n", 1);
		}
		const char *rest = had_nl ? last_end + 1 : last_end;
		sdk_buf_add(&o, rest, (size_t)(content + len - rest));
		res->fuzzy = true;
		res->file_line = (unsigned)at + 1;
		rc = finish(&o, out, out_len, res);
	}
	free(f);
	free(s);
	free(r);
	return rc;
}

int ca_sr_apply(const char *content, size_t len, bool exists, const ca_sr_block *b,
		char **out, size_t *out_len, ca_sr_result *res)
{
	memset(res, 0, sizeof *res);
	*out = NULL;
	*out_len = 0;
	bool empty_search = true;
	for (size_t i = 0; i < b->search_len; i++)
		empty_search &= b->search[i] == ' ' || b->search[i] == '\t' ||
				b->search[i] == '\r' || b->search[i] == '\n';
	if (empty_search) {
		if (exists)
			return fail(res, CA_SR_FILE_EXISTS,
				    "%s: the SEARCH part is empty (a new file) but the file exists%.0u%.0u",
				    b->path, 0, 0);
		sdk_buf o = { 0 };
		sdk_buf_add(&o, b->replace, b->replace_len);
		return finish(&o, out, out_len, res);
	}
	if (!exists)
		return fail(res, CA_SR_FILE_MISSING,
			    "%s: no such file (an empty SEARCH part creates one)%.0u%.0u", b->path,
			    0, 0);
	const char *hit = NULL, *second = NULL;
	const char *end = content + len;
	for (const char *p = content; (size_t)(end - p) >= b->search_len;) {
		const char *q = memmem(p, (size_t)(end - p), b->search, b->search_len);
		if (!q)
			break;
		if (!hit)
			hit = q;
		else {
			second = q;
			break;
		}
		p = q + 1;
	}
	if (second) {
		res->file_line = line_of(content, hit);
		res->second_line = line_of(content, second);
		return fail(res, CA_SR_AMBIGUOUS,
			    "%s: the SEARCH text is found more than once, at lines %u and %u: add "
			    "lines around it to make it unique",
			    b->path, res->file_line, res->second_line);
	}
	if (!hit)
		return apply_fuzzy(content, len, b, out, out_len, res);
	res->file_line = line_of(content, hit);
	sdk_buf o = { 0 };
	sdk_buf_add(&o, content, (size_t)(hit - content));
	sdk_buf_add(&o, b->replace, b->replace_len);
	sdk_buf_add(&o, hit + b->search_len, (size_t)(end - hit - b->search_len));
	return finish(&o, out, out_len, res);
}
