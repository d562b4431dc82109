#include "kernels/research/synth.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ANSWER_MAX (64u * 1024) /* bytes of a fallback answer */

static const char system_prompt[] =
	"You are Grace's incident investigator. Answer the operator's question from the "
	"evidence below and nothing else. Cite the evidence each sentence rests on with its "
	"id in square brackets, like [E1] or [E2][E5], at the end of the sentence. Never cite an "
	"id that is not listed. If the evidence does not answer the question, say so in one "
	"sentence citing what you looked at. Be brief: at most six sentences.";

static void add_line(char **buf, size_t *len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void add_line(char **buf, size_t *len, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (n < 0 || !*buf)
		return;
	size_t m = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
	if (*len + m + 1 > ANSWER_MAX)
		return;
	char *b = realloc(*buf, *len + m + 1);
	if (!b) {
		free(*buf);
		*buf = NULL;
		return;
	}
	memcpy(b + *len, line, m + 1);
	*len += m;
	*buf = b;
}

static const char *str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

json_t *rs_synth_prompt(const char *question, const json_t *evidence, const json_t *hypotheses)
{
	char *body = calloc(1, 1);
	size_t len = 0;
	add_line(&body, &len, "Question: %s\n\nEvidence:\n", question ? question : "");
	size_t i;
	json_t *ev;
	json_array_foreach(evidence, i, ev) {
		if (i >= RS_PROMPT_EVIDENCE_MAX)
			break;
		add_line(&body, &len, "[%s] (%s, %lld ms) %.*s\n", str(ev, "id"), str(ev, "source"),
			 (long long)json_integer_value(json_object_get(ev, "ts_ms")), RS_SUMMARY_MAX,
			 str(ev, "summary"));
	}
	if (json_array_size(hypotheses)) {
		add_line(&body, &len, "\nHypotheses ranked by Grace's rules (best first):\n");
		json_t *h;
		json_array_foreach(hypotheses, i, h) {
			if (i >= 5)
				break;
			char cites[256] = "";
			size_t used = 0, j;
			json_t *id;
			json_array_foreach(json_object_get(h, "evidence"), j, id) {
				int n = snprintf(cites + used, sizeof cites - used, "[%s]",
						 json_string_value(id));
				if (n < 0 || (size_t)n >= sizeof cites - used)
					break;
				used += (size_t)n;
			}
			add_line(&body, &len, "%zu. %s (score %lld) %s\n", i + 1, str(h, "title"),
				 (long long)json_integer_value(json_object_get(h, "score")), cites);
		}
	}
	if (!body)
		return NULL;
	json_t *m = json_pack("[{s:s, s:s}, {s:s, s:s}]", "role", "system", "content", system_prompt,
			      "role", "user", "content", body);
	free(body);
	return m;
}

static bool known_id(const json_t *evidence, const char *id, size_t n)
{
	size_t i;
	json_t *ev;
	json_array_foreach(evidence, i, ev) {
		const char *e = str(ev, "id");
		if (strlen(e) == n && !strncmp(e, id, n))
			return true;
	}
	return false;
}

/* Reads the citations of one claim s[0..n): the ids into cites; false when
 * one names no evidence. Citations are "[E1]", "[E1, E2]" or "[E1][E2]". */
static bool read_cites(const char *s, size_t n, const json_t *evidence, json_t *cites)
{
	bool ok = true;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '[' || i + 1 >= n || s[i + 1] != 'E')
			continue;
		size_t j = i + 1;
		while (j < n && s[j] != ']') {
			while (j < n && (s[j] == ' ' || s[j] == ','))
				j++;
			if (j >= n || s[j] != 'E')
				break;
			size_t k = j + 1;
			while (k < n && isdigit((unsigned char)s[k]))
				k++;
			if (k == j + 1)
				break;
			if (!known_id(evidence, s + j, k - j))
				ok = false;
			else
				json_array_append_new(cites, json_stringn(s + j, k - j));
			j = k;
		}
		i = j;
	}
	return ok;
}

/* Whether s[0..n) says anything besides its citations and punctuation. */
static bool has_words(const char *s, size_t n)
{
	size_t letters = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '[') {
			while (i < n && s[i] != ']')
				i++;
			continue;
		}
		letters += isalpha((unsigned char)s[i]) != 0;
	}
	return letters >= 2;
}

json_t *rs_synth_check(const char *text, const json_t *evidence)
{
	json_t *claims = json_array();
	size_t dropped = 0;
	const char *p = text ? text : "";
	json_t *last = NULL; /* the last claim kept, for citations after its full stop */
	bool last_dropped = false;
	while (*p) {
		/* Citations that open a segment close the claim before it ("The
		 * log was down. [E1] Then ..."). */
		size_t lead = 0;
		while (p[lead] == '[' && p[lead + 1] == 'E') {
			while (p[lead] && p[lead] != ']' && p[lead] != '\n')
				lead++;
			if (p[lead] != ']')
				break;
			lead++;
			while (p[lead] == ' ')
				lead++;
		}
		/* A claim ends at a newline, or at ". ", "? ", "! " */
		size_t n = lead;
		while (p[n] && p[n] != '\n' &&
		       !((p[n] == '.' || p[n] == '?' || p[n] == '!') && (p[n + 1] == ' ' || !p[n + 1] || p[n + 1] == '\n')))
			n++;
		size_t end = lead ? lead : p[n] && p[n] != '\n' ? n + 1 : n;
		json_t *cites = json_array();
		bool ok = read_cites(p, end, evidence, cites);
		if (!has_words(p, end)) {
			/* Citations alone belong to the claim before them. */
			if (json_array_size(cites) && last && ok)
				json_array_extend(json_object_get(last, "cites"), cites);
			else if (!ok && last && !last_dropped) {
				json_array_remove(claims, json_array_size(claims) - 1);
				last = NULL;
				dropped++;
			}
		} else if (ok) {
			while (end > 0 && isspace((unsigned char)p[0])) {
				p++;
				end--;
			}
			json_t *c = json_pack("{s:s%, s:O}", "text", p, end, "cites", cites);
			json_array_append_new(claims, c);
			last = c;
			last_dropped = false;
		} else {
			dropped++;
			last = NULL;
			last_dropped = true;
		}
		json_decref(cites);
		p += end;
		while (*p == ' ' || *p == '\n')
			p++;
	}
	/* A claim that still cites nothing is dropped too. */
	for (size_t i = json_array_size(claims); i-- > 0;)
		if (json_array_size(json_object_get(json_array_get(claims, i), "cites")) == 0) {
			json_array_remove(claims, i);
			dropped++;
		}
	char *kept = calloc(1, 1);
	size_t len = 0, i;
	json_t *c;
	json_array_foreach(claims, i, c) add_line(&kept, &len, "%s%s", i ? " " : "", str(c, "text"));
	json_t *out = json_pack("{s:s, s:o, s:I, s:I}", "text", kept ? kept : "", "claims", claims,
				"dropped", (json_int_t)dropped, "kept",
				(json_int_t)json_array_size(claims));
	free(kept);
	return out;
}

char *rs_fallback_text(const char *why, const json_t *evidence, const json_t *hypotheses)
{
	char *b = calloc(1, 1);
	size_t len = 0;
	if (why)
		add_line(&b, &len, "No model wrote this answer (%s). ", why);
	if (!json_array_size(hypotheses)) {
		add_line(&b, &len, "No rule explains the evidence (%zu pieces gathered).",
			 json_array_size(evidence));
		return b;
	}
	add_line(&b, &len, "Hypotheses, best first:");
	size_t i;
	json_t *h;
	json_array_foreach(hypotheses, i, h) {
		if (i >= 5)
			break;
		add_line(&b, &len, "\n%zu. %s (score %lld)", i + 1, str(h, "title"),
			 (long long)json_integer_value(json_object_get(h, "score")));
		size_t j;
		json_t *id;
		json_array_foreach(json_object_get(h, "evidence"), j, id) {
			if (j >= 8)
				break;
			add_line(&b, &len, " [%s]", json_string_value(id));
		}
	}
	add_line(&b, &len, "\nEvidence:");
	json_t *ev;
	json_array_foreach(evidence, i, ev) {
		if (i >= RS_PROMPT_EVIDENCE_MAX)
			break;
		add_line(&b, &len, "\n[%s] %s: %.*s", str(ev, "id"), str(ev, "source"), RS_SUMMARY_MAX,
			 str(ev, "summary"));
	}
	return b;
}
