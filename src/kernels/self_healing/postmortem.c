/* Postmortems (postmortem.h). */
#include "kernels/self_healing/postmortem.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

static json_int_t num(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

/* A new reference to v, or null when absent (json_pack's O refuses NULL). */
static json_t *or_null(json_t *v) { return v ? json_incref(v) : json_null(); }

static int by_time(const void *a, const void *b)
{
	json_int_t x = num(*(json_t *const *)a, "ts_ms"), y = num(*(json_t *const *)b, "ts_ms");
	return x < y ? -1 : x > y;
}

/* Timeline entries: the incident's own events and actions, and the audit
 * trail's events (with their place in the immutable log when they have
 * one: the proof is at the audit kernel's /events/ID/proof). */
static json_t *timeline(json_t *inc, json_t *audit)
{
	size_t n = 0, i;
	json_t *e, *all = json_array();
	json_array_foreach(json_object_get(inc, "event_list"), i, e)
		json_array_append_new(all, json_pack("{s:I, s:s, s:s, s:s, s:o}", "ts_ms",
						     num(e, "ts_ms"), "source", "self_healing",
						     "kernel", str(e, "kernel"), "what", str(e, "kind"),
						     "detail", or_null(json_object_get(e, "detail"))));
	json_array_foreach(json_object_get(inc, "actions"), i, e) {
		char what[160];
		snprintf(what, sizeof what, "advised %s (step %d): %s", str(e, "playbook"),
			 (int)num(e, "step"), str(e, "verdict"));
		json_array_append_new(all, json_pack("{s:I, s:s, s:s, s:s, s:o}", "ts_ms",
						     num(e, "at_ms"), "source", "self_healing",
						     "kernel", str(e, "kernel"), "what", what, "detail",
						     or_null(json_object_get(e, "outcome"))));
	}
	json_array_foreach(audit, i, e) {
		json_t *li = json_object_get(e, "log_index");
		char what[300];
		snprintf(what, sizeof what, "%s %s: %s", str(e, "action"), str(e, "resource"),
			 str(e, "outcome"));
		json_t *entry = json_pack("{s:I, s:s, s:s, s:s, s:I}", "ts_ms", num(e, "ts_ms"),
					  "source", "audit", "kernel", str(e, "resource"), "what", what,
					  "audit_id", num(e, "id"));
		if (json_is_integer(li)) {
			char href[96];
			snprintf(href, sizeof href, "/kernels/audit/events/%lld/proof",
				 (long long)num(e, "id"));
			json_t *proof = json_pack("{s:O, s:s}", "log_index", li, "href", href);
			/* The inclusion proof itself, when the audit kernel gave it. */
			if (json_object_get(e, "inclusion")) {
				json_object_set(proof, "sth", json_object_get(e, "sth"));
				json_object_set(proof, "inclusion", json_object_get(e, "inclusion"));
			}
			json_object_set_new(entry, "proof", proof);
		}
		json_array_append_new(all, entry);
	}
	n = json_array_size(all);
	json_t **v = calloc(n ? n : 1, sizeof *v);
	for (i = 0; v && i < n; i++)
		v[i] = json_incref(json_array_get(all, i));
	if (v)
		qsort(v, n, sizeof *v, by_time);
	json_t *sorted = json_array();
	for (i = 0; v && i < n; i++)
		json_array_append_new(sorted, v[i]);
	free(v);
	json_decref(all);
	return sorted;
}

json_t *sh_postmortem_build(json_t *incident, json_t *audit, const char *audit_error)
{
	json_t *actions = json_array(), *a;
	size_t i, verified = 0, acted = 0;
	json_array_foreach(json_object_get(incident, "actions"), i, a) {
		bool ok = json_is_true(json_object_get(a, "verified"));
		if (!strcmp(str(a, "verdict"), "act"))
			acted++;
		verified += ok;
		json_array_append_new(actions,
				      json_pack("{s:I, s:s, s:i, s:s, s:s, s:o, s:b, s:o}", "at_ms",
						num(a, "at_ms"), "kernel", str(a, "kernel"), "step",
						(int)num(a, "step"), "playbook", str(a, "playbook"),
						"verdict", str(a, "verdict"), "outcome",
						or_null(json_object_get(a, "outcome")), "verified", ok,
						"healer_incident",
						or_null(json_object_get(a, "healer_incident"))));
	}
	char summary[512];
	snprintf(summary, sizeof summary,
		 "%s. Cause: %s (%s). Kernels: %zu. Events: %lld%s. Actions: %zu, %zu verified "
		 "(the kernel answered /health after). State: %s.",
		 str(incident, "title"), str(incident, "kernel"), str(incident, "family"),
		 json_array_size(json_object_get(incident, "kernels")),
		 (long long)num(incident, "events"),
		 json_is_true(json_object_get(incident, "flapping")) ? ", flapping" : "", acted,
		 verified, str(incident, "state"));
	json_t *inc = json_deep_copy(incident);
	json_object_del(inc, "event_list");
	json_object_del(inc, "actions");
	json_t *audit_info = audit ? json_pack("{s:b, s:I}", "available", 1, "events",
					       (json_int_t)json_array_size(audit))
				   : json_pack("{s:b, s:s}", "available", 0, "error",
					       audit_error ? audit_error : "not asked");
	json_t *cause = json_object_get(incident, "cause");
	json_t *hints = json_object_get(cause, "hints");
	return json_pack("{s:o, s:s, s:o, s:{s:o, s:o, s:o, s:o}, s:o, s:o, s:I, s:o}", "incident",
			 inc, "summary", summary, "cause", or_null(cause), "evidence", "hints",
			 hints ? json_incref(hints) : json_array(), "flapping",
			 or_null(json_object_get(incident, "flapping")), "crashes",
			 or_null(json_object_get(incident, "crashes")), "kernels",
			 or_null(json_object_get(incident, "kernels")), "timeline",
			 timeline(incident, audit),
			 "actions", actions, "verified_heals", (json_int_t)verified, "audit",
			 audit_info);
}

/* ---- Markdown */

struct md {
	char *p;
	size_t len, cap;
};

static void md_add(struct md *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void md_add(struct md *m, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !m->p)
		return;
	if (m->len + (size_t)n + 1 > m->cap) {
		size_t cap = (m->len + (size_t)n + 1) * 2;
		char *p = realloc(m->p, cap);
		if (!p) {
			free(m->p);
			m->p = NULL;
			return;
		}
		m->p = p;
		m->cap = cap;
	}
	va_start(ap, fmt);
	vsnprintf(m->p + m->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	m->len += (size_t)n;
}

/* A table cell: no newline, no pipe. */
static const char *cell(const char *s, char *buf, size_t n)
{
	size_t j = 0;
	for (size_t i = 0; s && s[i] && j + 2 < n; i++)
		buf[j++] = s[i] == '|' ? '/' : (s[i] == '\n' || s[i] == '\r') ? ' ' : s[i];
	buf[j] = 0;
	return buf;
}

static const char *when(json_int_t ms, char *buf, size_t n)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	size_t l = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + l, n - l, ".%03dZ", (int)(ms % 1000));
	return buf;
}

char *sh_postmortem_markdown(json_t *pm)
{
	struct md m = { .p = malloc(4096), .cap = 4096 };
	if (!m.p)
		return NULL;
	m.p[0] = 0;
	json_t *inc = json_object_get(pm, "incident");
	char t1[40], c1[400], c2[400];
	md_add(&m, "# Postmortem: incident %lld\n\n", (long long)num(inc, "id"));
	md_add(&m, "%s\n\n", str(pm, "summary"));
	md_add(&m, "- Opened: %s\n", when(num(inc, "opened_at"), t1, sizeof t1));
	if (json_is_integer(json_object_get(inc, "resolved_at")))
		md_add(&m, "- Resolved: %s\n", when(num(inc, "resolved_at"), t1, sizeof t1));
	else
		md_add(&m, "- Resolved: not yet\n");
	md_add(&m, "- Cause: `%s` (%s)\n", str(inc, "kernel"), str(inc, "family"));
	md_add(&m, "- Flapping: %s\n\n", json_is_true(json_object_get(inc, "flapping")) ? "yes" : "no");
	md_add(&m, "## Evidence\n\n");
	json_t *hints = json_object_get(json_object_get(pm, "evidence"), "hints"), *h;
	size_t i;
	if (!json_array_size(hints))
		md_add(&m, "No root-cause hint was found.\n");
	json_array_foreach(hints, i, h)
		md_add(&m, "- **%s**: %s\n", str(h, "kind"), cell(str(h, "detail"), c1, sizeof c1));
	md_add(&m, "\n## Actions\n\n");
	json_t *acts = json_object_get(pm, "actions");
	if (!json_array_size(acts))
		md_add(&m, "None.\n");
	else
		md_add(&m, "| time | kernel | step | playbook | verdict | outcome | verified |\n"
			   "|---|---|---|---|---|---|---|\n");
	json_array_foreach(acts, i, h) {
		const char *out = json_string_value(json_object_get(h, "outcome"));
		md_add(&m, "| %s | %s | %d | %s | %s | %s | %s |\n",
		       when(num(h, "at_ms"), t1, sizeof t1), str(h, "kernel"), (int)num(h, "step"),
		       str(h, "playbook"), str(h, "verdict"), out ? out : "-",
		       json_is_true(json_object_get(h, "verified")) ? "yes" : "no");
	}
	md_add(&m, "\n## Timeline\n\n| time | source | kernel | what | proof |\n|---|---|---|---|---|\n");
	json_array_foreach(json_object_get(pm, "timeline"), i, h) {
		json_t *proof = json_object_get(h, "proof");
		char pr[120] = "-";
		if (proof)
			snprintf(pr, sizeof pr, "log index %lld%s, %s",
				 (long long)num(proof, "log_index"),
				 json_object_get(proof, "inclusion") ? " (proved)" : "",
				 str(proof, "href"));
		md_add(&m, "| %s | %s | %s | %s | %s |\n", when(num(h, "ts_ms"), t1, sizeof t1),
		       str(h, "source"), cell(str(h, "kernel"), c1, sizeof c1),
		       cell(str(h, "what"), c2, sizeof c2), pr);
	}
	json_t *audit = json_object_get(pm, "audit");
	if (!json_is_true(json_object_get(audit, "available")))
		md_add(&m, "\nThe audit trail could not be read: %s.\n", str(audit, "error"));
	return m.p;
}
