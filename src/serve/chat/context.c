/* The parts of a turn that are plain functions of their inputs: the search
 * query, the passages, the prompt and the answer without a model. */
#include "serve/chat/context.h"

#include "sdk/buf.h"

#include <stdbool.h>

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QUERY_TERMS_MAX 16
#define TERM_MAX 48 /* bytes of one word; longer ones are cut */
#define SNIPPET_MAX 600

/* Words that say nothing about what is asked. */
static const char *const stop_words[] = {
	"a", "about", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be", "been",
	"but", "by", "can", "could", "did", "do", "does", "for", "from", "had", "has", "have",
	"he", "her", "his", "how", "i", "if", "in", "into", "is", "it", "its", "me", "my", "no",
	"not", "of", "on", "or", "our", "please", "she", "so", "tell", "than", "that", "the",
	"their", "them", "then", "there", "these", "they", "this", "to", "us", "was", "we",
	"were", "what", "when", "where", "which", "who", "why", "will", "with", "would", "you",
	"your",
};

static bool is_stop(const char *w)
{
	for (size_t i = 0; i < sizeof stop_words / sizeof *stop_words; i++)
		if (!strcmp(stop_words[i], w))
			return true;
	return false;
}

/* Letters, digits and every byte of a multi-byte UTF-8 character. */
static bool word_byte(unsigned char ch) { return isalnum(ch) || ch >= 0x80; }

/* The length of s[0..n) without a UTF-8 character cut off at its end. */
static size_t utf8_whole(const char *s, size_t n)
{
	size_t i = n, back = 0;
	while (i && back < 4 && ((unsigned char)s[i - 1] & 0xc0) == 0x80)
		i--, back++;
	if (!i)
		return n;
	unsigned char lead = (unsigned char)s[i - 1];
	size_t want = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
	return want > back + 1 ? i - 1 : n;
}

static size_t query_build(const char *q, char *out, size_t len, bool keep_stop)
{
	char terms[QUERY_TERMS_MAX][TERM_MAX + 1];
	size_t nterms = 0, n = 0;
	const unsigned char *p = (const unsigned char *)q;
	while (*p && nterms < QUERY_TERMS_MAX) {
		while (*p && !word_byte(*p))
			p++;
		char w[TERM_MAX + 1];
		size_t wl = 0;
		bool ascii = true;
		for (; *p && word_byte(*p); p++) {
			if (*p >= 0x80)
				ascii = false;
			if (wl < TERM_MAX)
				w[wl++] = (char)tolower(*p);
		}
		wl = utf8_whole(w, wl);
		w[wl] = '\0';
		if (!wl || (ascii && wl < 2) || (!keep_stop && is_stop(w)))
			continue;
		bool dup = false;
		for (size_t i = 0; i < nterms && !dup; i++)
			dup = !strcmp(terms[i], w);
		if (!dup)
			memcpy(terms[nterms++], w, wl + 1);
	}
	out[0] = '\0';
	for (size_t i = 0; i < nterms; i++) {
		/* Each word quoted: FTS5 takes it as a plain string, never as syntax. */
		int k = snprintf(out + n, len - n, "%s\"%s\"", i ? " OR " : "", terms[i]);
		if (k < 0 || (size_t)k >= len - n) {
			out[n] = '\0';
			break;
		}
		n += (size_t)k;
	}
	return n;
}

size_t chat_search_query(const char *question, char *out, size_t len)
{
	if (len == 0)
		return 0;
	size_t n = query_build(question, out, len, false);
	/* A question of nothing but common words still asks for them. */
	return n ? n : query_build(question, out, len, true);
}

/* The snippet without the librarian's <mark> tags, blanks folded. */
static json_t *plain_snippet(const char *s)
{
	char out[SNIPPET_MAX + 4];
	size_t n = 0;
	for (; s && *s && n < SNIPPET_MAX;) {
		if (!strncmp(s, "<mark>", 6)) {
			s += 6;
			continue;
		}
		if (!strncmp(s, "</mark>", 7)) {
			s += 7;
			continue;
		}
		char ch = *s == '\n' || *s == '\r' || *s == '\t' ? ' ' : *s;
		s++;
		if (ch == ' ' && n && out[n - 1] == ' ')
			continue;
		out[n++] = ch;
	}
	n = utf8_whole(out, n);
	out[n] = '\0';
	return json_stringn(out, n);
}

json_t *chat_passages(const json_t *answer, size_t max, size_t first_n)
{
	json_t *out = json_array();
	json_t *results = json_object_get(answer, "results");
	size_t i;
	json_t *hit;
	json_array_foreach(results, i, hit) {
		if (json_array_size(out) >= max)
			break;
		json_t *id = json_object_get(hit, "id");
		json_t *title = json_object_get(hit, "title");
		if (!json_is_integer(id) || !json_is_string(title))
			continue;
		json_t *score = json_object_get(hit, "score");
		json_t *source = json_object_get(hit, "source");
		json_t *p = json_pack("{s:I, s:s, s:O, s:O, s:o, s:f, s:O}", "n",
				      (json_int_t)(first_n + json_array_size(out)), "kind", "document",
				      "id", id, "title", title, "snippet",
				      plain_snippet(json_string_value(json_object_get(hit, "snippet"))),
				      "score", json_is_number(score) ? json_number_value(score) : 0.0,
				      "source", json_is_string(source) ? source : json_null());
		if (p)
			json_array_append_new(out, p);
	}
	return out;
}

json_t *chat_excerpt(const char *text, size_t max)
{
	size_t n = strlen(text);
	if (n <= max)
		return json_string(text);
	n = utf8_whole(text, max);
	char *cut = malloc(n + sizeof "\xe2\x80\xa6");
	if (!cut)
		return NULL;
	memcpy(cut, text, n);
	memcpy(cut + n, "\xe2\x80\xa6", sizeof "\xe2\x80\xa6");
	json_t *j = json_string(cut);
	free(cut);
	return j;
}

/* One source as a line of text: "[n] Title: snippet", or a memory row. */
static void source_line(sdk_buf *b, const json_t *s)
{
	json_int_t n = json_integer_value(json_object_get(s, "n"));
	const char *kind = json_string_value(json_object_get(s, "kind"));
	if (kind && !strcmp(kind, "memory")) {
		const char *owner = json_string_value(json_object_get(s, "owner"));
		sdk_buf_printf(b, "[%lld] memory table %s%s%s, row %lld: %s\n", (long long)n,
			       owner ? owner : "", owner ? "/" : "",
			       json_string_value(json_object_get(s, "table")),
			       (long long)json_integer_value(json_object_get(s, "row_id")),
			       json_string_value(json_object_get(s, "excerpt")));
		return;
	}
	sdk_buf_printf(b, "[%lld] %s: %s\n", (long long)n,
		       json_string_value(json_object_get(s, "title")),
		       json_string_value(json_object_get(s, "snippet")));
}

json_t *chat_prompt(const json_t *sources, const json_t *history, const char *question)
{
	sdk_buf sys = { 0 };
	sdk_buf_printf(&sys, "You are Grace, an assistant that answers from the user's library "
			     "and memory tables. Use the numbered sources below when they are "
			     "relevant and cite them as [n]. When they do not hold the answer, say "
			     "so plainly rather than guess.\n\n");
	if (json_array_size(sources) == 0) {
		sdk_buf_printf(&sys, "No source in the library matches this question.\n");
	} else {
		sdk_buf_printf(&sys, "Sources:\n");
		size_t i;
		json_t *s;
		json_array_foreach(sources, i, s)
			source_line(&sys, s);
	}
	json_t *msgs = json_array();
	if (sys.oom || !msgs) {
		free(sys.p);
		json_decref(msgs);
		return NULL;
	}
	json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "system", "content", sys.p));
	free(sys.p);
	size_t i;
	json_t *m;
	json_array_foreach(history, i, m)
		json_array_append_new(msgs, json_pack("{s:O, s:O}", "role", json_object_get(m, "role"),
						      "content", json_object_get(m, "content")));
	json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "user", "content", question));
	return msgs;
}

char *chat_fallback_text(const json_t *sources, const char *why, const char *librarian_problem)
{
	sdk_buf b = { 0 };
	size_t docs = 0, rows = 0, i;
	json_t *s;
	json_array_foreach(sources, i, s) {
		const char *kind = json_string_value(json_object_get(s, "kind"));
		if (kind && !strcmp(kind, "memory"))
			rows++;
		else
			docs++;
	}
	if (docs + rows == 0) {
		sdk_buf_printf(&b, "No model answered this (%s), and nothing in the library or "
				   "your memory tables matches the question.", why);
	} else {
		sdk_buf_printf(&b, "No model answered this (%s). Here is what %s that matches "
				   "the question:\n", why,
			       docs && rows ? "the library and your memory tables hold"
			       : docs       ? "the library holds"
					    : "your memory tables hold");
		if (docs) {
			sdk_buf_printf(&b, "\n");
			json_array_foreach(sources, i, s) {
				const char *kind = json_string_value(json_object_get(s, "kind"));
				if (!kind || strcmp(kind, "memory"))
					source_line(&b, s);
			}
		}
		if (rows) {
			sdk_buf_printf(&b, "\nFrom your memory tables:\n");
			json_array_foreach(sources, i, s) {
				const char *kind = json_string_value(json_object_get(s, "kind"));
				if (kind && !strcmp(kind, "memory"))
					source_line(&b, s);
			}
		}
		while (b.len && b.p[b.len - 1] == '\n')
			b.p[--b.len] = '\0';
	}
	if (librarian_problem)
		sdk_buf_printf(&b, "\n\nThe library could not be searched: %s.", librarian_problem);
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p;
}
