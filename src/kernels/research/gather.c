/* The research kernel's sources: each is a call through sdk_call (a step
 * of the budget), its answer turned into evidence with a citation and the
 * signals the rules read. A source that is not configured, down or
 * answers an error is noted "unavailable" with why, never a failure. */
#include "kernels/research/inv.h"
#include "kernels/research/redact.h"
#include "kernels/research/rules.h"
#include "sdk/call.h"
#include "sdk/log.h"
#include "sdk/token.h"

#include <sodium.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AUDIT_PAGE 1000       /* audit events of the window read, at most */
#define STATE_EVIDENCE_MAX 8  /* state changes of one kernel kept as evidence */
#define CRASH_LOOP_MIN 3      /* downs in the window that make a crash loop */
#define TRACES_MAX 5          /* error traces kept per kernel */
#define LOGS_MAX 5            /* log records kept per kernel */
#define DOCS_MAX 3            /* librarian documents kept */
#define MEM_TABLES_MAX 5      /* memory tables searched */
#define MEM_ROWS_MAX 3        /* rows kept of each */
#define UNLOGGED_IDS_MAX 20   /* ids cited by the "not in the log yet" evidence */
#define KS_MAX (RS_DEPS_MAX + 1)

typedef enum call_kind {
	C_AUDIT,
	C_LOG_STH,
	C_METRIC,
	C_TRACES,
	C_LOGS,
	C_INCIDENTS,
	C_LIBRARIAN,
	C_PROOF,
	C_ENTRY,
	C_MEM_TABLES,
	C_MEM_ROWS,
} call_kind;

typedef struct rs_call {
	rs_inv *inv;
	call_kind kind;
	const char *source;      /* static */
	char kernel[RS_NAME_MAX]; /* the kernel it is about, or "" */
	char what[512];          /* the PromQL query, or the path called */
	const char *signal;      /* a metric's signal when its sample holds */
	int64_t event_id;        /* a proof's audit event */
	json_t *evidence;        /* a proof's piece of evidence (borrowed) */
	char table[72], owner[72]; /* a memory table searched, and whose */
} rs_call;

/* The kernels an investigation looks at: the one asked about and what it
 * depends on; none when no kernel is named (then every kernel). */
static size_t kernels_of(rs_inv *inv, const char *ks[KS_MAX])
{
	const char *asked = json_string_value(json_object_get(inv->doc, "kernel"));
	if (!asked)
		return 0;
	size_t n = 0;
	ks[n++] = asked;
	for (const char *const *d = rs_deps_of(asked); *d && n < KS_MAX; d++)
		ks[n++] = *d;
	return n;
}

static bool in_set(const char *const *ks, size_t n, const char *name)
{
	if (n == 0)
		return true;
	for (size_t i = 0; i < n; i++)
		if (name && !strcmp(ks[i], name))
			return true;
	return false;
}

/* The log's own entry of a cited audit event: what it holds is that event
 * (the audit trail appends the event as the entry's data). */
static void entry_evidence(rs_call *c, json_t *entry)
{
	json_t *cite = json_object_get(c->evidence, "citation");
	json_t *data = json_object_get(entry, "data");
	if (json_is_object(json_object_get(data, "data")))
		data = json_object_get(data, "data");
	json_t *id = json_object_get(data, "id");
	json_object_set_new(cite, "log_entry",
			    json_pack("{s:O, s:O?, s:b}", "index", json_object_get(entry, "index"),
				      "leaf_hash", json_object_get(entry, "leaf_hash"), "holds_event",
				      json_is_integer(id) && json_integer_value(id) == c->event_id));
}

static void on_answer(int status, const char *body, size_t len, double ms, const char *error,
		      void *arg);

/* One call of the current phase: a step of the budget. */
static void issue(rs_inv *inv, call_kind kind, const char *source, const char *to,
		  const char *target, const char *kernel, rs_call *tmpl)
{
	if (!rs_inv_take_step(inv, source))
		return;
	rs_call *c = calloc(1, sizeof *c);
	if (!c) {
		rs_source_note(inv, source, "unavailable", "out of memory");
		return;
	}
	if (tmpl)
		*c = *tmpl;
	c->inv = inv;
	c->kind = kind;
	c->source = source;
	snprintf(c->kernel, sizeof c->kernel, "%s", kernel ? kernel : "");
	if (!c->what[0])
		snprintf(c->what, sizeof c->what, "%s", target);
	/* To the main process: as the asking user, by their delegation. */
	char bearer[SDK_DELEGATION_MAX + 8];
	const char *h[] = { "Authorization", bearer, NULL };
	bool main = !strcmp(to, SDK_MAIN_NAME);
	if (main)
		snprintf(bearer, sizeof bearer, "Bearer %s", inv->delegation);
	inv->pending++; /* first: an answer may come back before sdk_call returns */
	int rc = sdk_call(inv->rk->k->caller, to, "GET", target, NULL, 0, main ? h : NULL,
			  rs_inv_call_timeout(inv), on_answer, c);
	sodium_memzero(bearer, sizeof bearer);
	if (rc < 0) {
		inv->pending--;
		char why[128];
		snprintf(why, sizeof why, "the %s kernel cannot be called (not configured?)", to);
		rs_source_note(inv, source, "unavailable", why);
		free(c);
	}
}

static json_t *signals_of(const char *a, const char *b)
{
	json_t *s = json_array();
	if (a)
		json_array_append_new(s, json_string(a));
	if (b)
		json_array_append_new(s, json_string(b));
	return s;
}

/* ---- the audit trail ----------------------------------------------------- */

static const char *kernel_of_resource(const char *resource)
{
	return resource && !strncmp(resource, "kernel/", 7) ? resource + 7 : NULL;
}

/* Whether an event speaks of one of the kernels (its action or resource
 * names it). */
static const char *mentions(const char *const *ks, size_t n, const char *action,
			    const char *resource)
{
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(ks[i]);
		if ((action && !strncmp(action, ks[i], len) && action[len] == '.') ||
		    (resource && strstr(resource, ks[i])))
			return ks[i];
	}
	return NULL;
}

static bool failed_outcome(const char *o)
{
	return o && (!strcmp(o, "failed") || !strcmp(o, "error") || !strcmp(o, "denied") ||
		     !strcmp(o, "failure") || !strcmp(o, "unavailable"));
}

static void audit_evidence(rs_call *c, json_t *events)
{
	rs_inv *inv = c->inv;
	const char *ks[KS_MAX];
	size_t nks = kernels_of(inv, ks);
	/* Per kernel: downs counted, their event ids. */
	struct per_kernel {
		const char *kernel;
		unsigned downs, kept;
		json_t *ids;
	} per[32] = { { 0 } };
	size_t nper = 0;
	json_t *unlogged = json_array();
	size_t n_unlogged = 0, i;
	json_t *ev;
	json_array_foreach(events, i, ev) {
		json_int_t id = json_integer_value(json_object_get(ev, "id"));
		json_int_t ts = json_integer_value(json_object_get(ev, "ts_ms"));
		const char *action = json_string_value(json_object_get(ev, "action"));
		const char *resource = json_string_value(json_object_get(ev, "resource"));
		const char *outcome = json_string_value(json_object_get(ev, "outcome"));
		json_t *details = json_object_get(ev, "details");
		json_t *li = json_object_get(ev, "log_index");
		if (json_is_null(li)) {
			if (n_unlogged++ < UNLOGGED_IDS_MAX)
				json_array_append_new(unlogged, json_integer(id));
		}
		json_t *cite = json_pack("{s:I, s:O}", "audit_event", id, "log_index",
					 li ? li : json_null());
		const char *kernel = kernel_of_resource(resource);
		if (action && !strcmp(action, "kernel.state") && kernel && in_set(ks, nks, kernel)) {
			json_t *sig = json_array();
			const char *last = json_string_value(json_object_get(details, "last_exit"));
			rs_signals_of_state(json_string_value(json_object_get(details, "from")),
					    outcome, last, sig);
			if (json_array_size(sig) == 0) {
				json_decref(sig);
				json_decref(cite);
				continue;
			}
			size_t p = 0;
			while (p < nper && strcmp(per[p].kernel, kernel))
				p++;
			if (p == nper && nper < sizeof per / sizeof per[0])
				per[nper++] = (struct per_kernel){ kernel, 0, 0, json_array() };
			if (p < nper) {
				per[p].downs++;
				json_array_append_new(per[p].ids, json_integer(id));
				if (per[p].kept++ >= STATE_EVIDENCE_MAX) {
					json_decref(sig);
					json_decref(cite);
					continue;
				}
			}
			char text[400];
			snprintf(text, sizeof text, "the supervisor reports %s %s (last exit: %s)", kernel,
				 outcome ? outcome : "?", last && *last ? last : "none");
			rs_evidence_add(inv, "audit", kernel, ts, text, cite, sig);
			continue;
		}
		if (action && !strcmp(action, "heal") && kernel && in_set(ks, nks, kernel)) {
			json_t *sig = json_array();
			rs_signals_of_heal(details, sig);
			char *d = json_dumps(details, JSON_COMPACT);
			char text[500];
			snprintf(text, sizeof text, "the healer acted on %s: %s; %.300s", kernel,
				 outcome ? outcome : "?", d ? d : "");
			free(d);
			rs_evidence_add(inv, "audit", kernel, ts, text, cite, sig);
			continue;
		}
		/* Anything else only when it failed: the rest is noise that
		 * would crowd the evidence out. */
		const char *about = nks ? mentions(ks, nks, action, resource) : kernel;
		if (about && failed_outcome(outcome)) {
			char *d = json_dumps(details, JSON_COMPACT);
			char text[500];
			snprintf(text, sizeof text, "%s %s %s: %s; %.300s",
				 json_string_value(json_object_get(ev, "actor")), action ? action : "?",
				 resource ? resource : "?", outcome ? outcome : "?", d ? d : "");
			free(d);
			rs_evidence_add(inv, "audit", about, ts, text, cite, signals_of("errors", NULL));
			continue;
		}
		json_decref(cite);
	}
	for (size_t p = 0; p < nper; p++) {
		if (per[p].downs >= CRASH_LOOP_MIN) {
			char text[200];
			snprintf(text, sizeof text, "%s went down %u times in the window", per[p].kernel,
				 per[p].downs);
			rs_evidence_add(inv, "audit", per[p].kernel, 0, text,
					json_pack("{s:O}", "audit_events", per[p].ids),
					signals_of("crash_loop", "down"));
		}
		json_decref(per[p].ids);
	}
	if (n_unlogged && in_set(ks, nks, "audit")) {
		char text[200];
		snprintf(text, sizeof text,
			 "%zu audit events of the window are not in the immutable log yet: their "
			 "appends have not succeeded",
			 n_unlogged);
		rs_evidence_add(inv, "audit", "audit", 0, text,
				json_pack("{s:O}", "audit_events", unlogged), signals_of("unlogged", NULL));
	}
	json_decref(unlogged);
}

/* ---- the other sources ---------------------------------------------------------- */

static void log_sth_evidence(rs_call *c, json_t *sth)
{
	char text[200];
	snprintf(text, sizeof text, "the immutable log answers now: tree size %lld",
		 (long long)json_integer_value(json_object_get(sth, "tree_size")));
	rs_evidence_add(c->inv, "immutable_log", "immutable_log", 0, text,
			json_pack("{s:O, s:O}", "tree_size", json_object_get(sth, "tree_size"),
				  "root_hash", json_object_get(sth, "root_hash")),
			NULL);
}

static void metric_evidence(rs_call *c, json_t *answer)
{
	json_t *result = json_object_get(json_object_get(answer, "data"), "result");
	size_t i;
	json_t *r;
	json_array_foreach(result, i, r) {
		json_t *metric = json_object_get(r, "metric");
		json_t *value = json_object_get(r, "value");
		const char *kernel = json_string_value(json_object_get(metric, "kernel"));
		if (!kernel)
			kernel = json_string_value(json_object_get(metric, "instance"));
		const char *v = json_string_value(json_array_get(value, 1));
		double x = v ? strtod(v, NULL) : NAN;
		bool holds = !strcmp(c->signal, "down") ? x == 0 : x > 0;
		if (!holds || !kernel)
			continue;
		char text[700];
		snprintf(text, sizeof text, "%s = %s for %s over the window", c->what, v, kernel);
		json_t *sig = signals_of(c->signal, !strcmp(c->signal, "restarts") &&
							    x >= CRASH_LOOP_MIN ? "crash_loop" : NULL);
		double t = json_real_value(json_array_get(value, 0));
		if (json_is_integer(json_array_get(value, 0)))
			t = (double)json_integer_value(json_array_get(value, 0));
		rs_evidence_add(c->inv, "metrics", kernel, (int64_t)(t * 1000), text,
				json_pack("{s:s, s:O, s:O}", "promql", c->what, "labels", metric,
					  "sample", value),
				sig);
	}
}

static void traces_evidence(rs_call *c, json_t *answer)
{
	json_t *traces = json_object_get(answer, "traces");
	if (!json_is_array(traces))
		traces = json_object_get(answer, "spans");
	size_t i;
	json_t *t;
	json_array_foreach(traces, i, t) {
		if (i >= TRACES_MAX)
			break;
		const char *id = json_string_value(json_object_get(t, "traceId"));
		const char *name = json_string_value(json_object_get(t, "name"));
		json_int_t start = json_integer_value(json_object_get(t, "startTimeUnixNano"));
		if (!start && json_is_string(json_object_get(t, "startTimeUnixNano")))
			start = strtoll(json_string_value(json_object_get(t, "startTimeUnixNano")),
					NULL, 10);
		char text[300];
		snprintf(text, sizeof text, "a span of %s ended in error: %s", c->kernel,
			 name ? name : "?");
		rs_evidence_add(c->inv, "traces", c->kernel, start / 1000000, text,
				json_pack("{s:s?, s:s?}", "trace_id", id, "span_id",
					  json_string_value(json_object_get(t, "spanId"))),
				signals_of("errors", NULL));
	}
}

static void logs_evidence(rs_call *c, json_t *answer)
{
	json_t *records = json_object_get(answer, "logs");
	if (!json_is_array(records))
		records = json_object_get(answer, "records");
	size_t i, kept = 0;
	json_t *r;
	json_array_foreach(records, i, r) {
		json_int_t sev = json_integer_value(json_object_get(r, "severityNumber"));
		if (sev && sev < 13) /* below WARN */
			continue;
		if (kept++ >= LOGS_MAX)
			break;
		json_t *body = json_object_get(r, "body");
		const char *text = json_string_value(json_object_get(body, "stringValue"));
		char *dumped = text ? NULL : json_dumps(body, JSON_COMPACT);
		char line[500];
		snprintf(line, sizeof line, "a log record of %s: %.400s", c->kernel,
			 text ? text : dumped ? dumped : "");
		free(dumped);
		rs_evidence_add(c->inv, "logs", c->kernel, 0, line,
				json_pack("{s:s?, s:s?}", "trace_id",
					  json_string_value(json_object_get(r, "traceId")), "span_id",
					  json_string_value(json_object_get(r, "spanId"))),
				signals_of(sev >= 17 ? "errors" : NULL, NULL));
	}
}

static void incidents_evidence(rs_call *c, json_t *answer)
{
	size_t i;
	json_t *in;
	json_array_foreach(json_object_get(answer, "incidents"), i, in) {
		const char *kernel = json_string_value(json_object_get(in, "kernel"));
		json_t *sig = signals_of("incident", NULL);
		json_t *cause = json_object_get(in, "cause");
		rs_signals_of_heal(cause, sig);
		char *cd = json_dumps(cause, JSON_COMPACT);
		if (cd && (strstr(cd, "oom") || strstr(cd, "OOM") || strstr(cd, "out of memory")))
			json_array_append_new(sig, json_string("oom"));
		char text[600];
		snprintf(text, sizeof text, "incident %s on %s (%s): %s; cause %.300s",
			 json_string_value(json_object_get(in, "id")), kernel ? kernel : "?",
			 json_string_value(json_object_get(in, "state")),
			 json_string_value(json_object_get(in, "title")), cd ? cd : "{}");
		free(cd);
		rs_evidence_add(c->inv, "incidents", kernel, json_integer_value(json_object_get(in, "opened_at")),
				text, json_pack("{s:O}", "incident", json_object_get(in, "id")), sig);
	}
}

static void librarian_evidence(rs_call *c, json_t *answer)
{
	json_t *hits = json_object_get(answer, "results");
	if (!json_is_array(hits))
		hits = json_object_get(answer, "documents");
	size_t i;
	json_t *d;
	json_array_foreach(hits, i, d) {
		if (i >= DOCS_MAX)
			break;
		const char *title = json_string_value(json_object_get(d, "title"));
		const char *snippet = json_string_value(json_object_get(d, "snippet"));
		char text[500];
		snprintf(text, sizeof text, "the library holds \"%s\": %.300s", title ? title : "?",
			 snippet ? snippet : "");
		char *clean = rs_redact(title ? title : "", NULL);
		rs_evidence_add(c->inv, "librarian", NULL, 0, text,
				json_pack("{s:O, s:s}", "document", json_object_get(d, "id"), "title",
					  clean ? clean : ""),
				NULL);
		free(clean);
	}
}

/* The asking user's memory tables (their own, and those shared with
 * them): each with full-text columns is searched for the question's
 * words, a step each. */
static void mem_tables(rs_call *c, json_t *answer)
{
	char q[512], enc[1600], target[2200], name[216], owner[216];
	if (rs_memory_query(json_string_value(json_object_get(c->inv->doc, "question")), q,
			    sizeof q) == 0 ||
	    sdk_uri_encode(q, enc, sizeof enc) < 0) {
		rs_source_note(c->inv, "memory", "ok", "the question has no words to search for");
		return;
	}
	size_t i, searched = 0, plain = 0;
	json_t *t;
	json_array_foreach(json_object_get(answer, "tables"), i, t) {
		const char *tn = json_string_value(json_object_get(t, "name"));
		const char *to = json_string_value(json_object_get(t, "owner"));
		if (!tn || !to || strlen(tn) >= sizeof c->table || strlen(to) >= sizeof c->owner)
			continue;
		if (!json_is_true(json_object_get(t, "full_text"))) {
			plain++;
			continue;
		}
		if (searched >= MEM_TABLES_MAX || sdk_uri_encode(tn, name, sizeof name) < 0 ||
		    sdk_uri_encode(to, owner, sizeof owner) < 0)
			continue;
		snprintf(target, sizeof target, "/memory/tables/%s/rows?q=%s&limit=%d%s%s", name, enc,
			 MEM_ROWS_MAX, json_is_true(json_object_get(t, "shared")) ? "&owner=" : "",
			 json_is_true(json_object_get(t, "shared")) ? owner : "");
		rs_call tmpl = { 0 };
		snprintf(tmpl.table, sizeof tmpl.table, "%s", tn);
		snprintf(tmpl.owner, sizeof tmpl.owner, "%s", to);
		snprintf(tmpl.what, sizeof tmpl.what, "GET /memory/tables/%s/rows", tn);
		issue(c->inv, C_MEM_ROWS, "memory", SDK_MAIN_NAME, target, NULL, &tmpl);
		searched++;
	}
	if (plain || !searched) {
		char why[160];
		snprintf(why, sizeof why, "%zu table(s) with full-text columns searched, %zu without "
			 "(not searchable by words)", searched, plain);
		rs_source_note(c->inv, "memory", "ok", why);
	}
}

static void mem_rows(rs_call *c, json_t *answer)
{
	size_t i;
	json_t *row;
	json_array_foreach(json_object_get(answer, "rows"), i, row) {
		if (i >= MEM_ROWS_MAX)
			break;
		char *data = json_dumps(json_object_get(row, "data"), JSON_COMPACT);
		char text[500];
		snprintf(text, sizeof text, "memory table %s (%s's) holds row %lld: %.300s", c->table,
			 c->owner, (long long)json_integer_value(json_object_get(row, "id")),
			 data ? data : "?");
		free(data);
		rs_evidence_add(c->inv, "memory", NULL,
				json_integer_value(json_object_get(row, "updated_ms")), text,
				json_pack("{s:s, s:s, s:O}", "table", c->table, "owner", c->owner,
					  "row", json_object_get(row, "id")),
				NULL);
	}
}

static void proof_evidence(rs_call *c, int status, json_t *answer)
{
	json_t *cite = json_object_get(c->evidence, "citation");
	if (status == 200) {
		json_t *inc = json_object_get(answer, "inclusion");
		json_object_set_new(cite, "log_proof",
				    json_pack("{s:O, s:O, s:O, s:O, s:O}", "log_index",
					      json_object_get(answer, "log_index"), "tree_size",
					      json_object_get(inc, "tree_size"), "leaf_hash",
					      json_object_get(inc, "leaf_hash"), "root_hash",
					      json_object_get(inc, "root_hash"), "audit_path",
					      json_object_get(inc, "audit_path")));
	} else if (status == 409) {
		json_object_set_new(cite, "log_proof", json_string("not in the immutable log yet"));
	}
}

static void on_answer(int status, const char *body, size_t len, double ms, const char *error,
		      void *arg)
{
	(void)ms;
	rs_call *c = arg;
	rs_inv *inv = c->inv;
	json_t *answer = body && len ? json_loadb(body, len, 0, NULL) : NULL;
	bool ok = status >= 200 && status < 300 && answer;
	if (c->kind == C_PROOF && status == 409)
		ok = true;
	if (!ok) {
		char why[320];
		if (status == 0)
			snprintf(why, sizeof why, "%.200s: no answer: %.90s", c->what, error ? error : "");
		else if (status == 404 && c->kind == C_INCIDENTS)
			snprintf(why, sizeof why, "%.200s: 404 (the self_healing kernel has no incidents "
						  "route yet)", c->what);
		else
			snprintf(why, sizeof why, "%.200s: HTTP %d", c->what, status);
		rs_source_note(inv, c->source, "unavailable", why);
		if (c->kind == C_LOG_STH && status == 0)
			rs_evidence_add(inv, "immutable_log", "immutable_log", 0,
					"the immutable log does not answer now", json_pack("{s:s}", "call", "GET /sth"),
					signals_of("down", NULL));
	} else {
		rs_source_note(inv, c->source, "ok", NULL);
		switch (c->kind) {
		case C_AUDIT:
			audit_evidence(c, json_object_get(answer, "events"));
			if (!json_is_null(json_object_get(answer, "next_cursor")) &&
			    json_object_get(answer, "next_cursor"))
				rs_source_note(inv, c->source, "ok",
					       "more events in the window than were read");
			break;
		case C_LOG_STH: log_sth_evidence(c, answer); break;
		case C_METRIC: metric_evidence(c, answer); break;
		case C_TRACES: traces_evidence(c, answer); break;
		case C_LOGS: logs_evidence(c, answer); break;
		case C_INCIDENTS: incidents_evidence(c, answer); break;
		case C_LIBRARIAN: librarian_evidence(c, answer); break;
		case C_PROOF: proof_evidence(c, status, answer); break;
		case C_ENTRY: entry_evidence(c, answer); break;
		case C_MEM_TABLES: mem_tables(c, answer); break;
		case C_MEM_ROWS: mem_rows(c, answer); break;
		}
	}
	json_decref(answer);
	free(c);
	rs_inv_call_done(inv);
}

/* ---- the phases ------------------------------------------------------------------ */

/* `kernel=~"a|b"` for PromQL (names are [a-z_]), or "" for every kernel. */
static void matcher(const char *label, const char *const *ks, size_t n, char *out, size_t len)
{
	out[0] = '\0';
	if (!n)
		return;
	size_t used = (size_t)snprintf(out, len, "%s=~\"", label);
	for (size_t i = 0; i < n && used < len; i++)
		used += (size_t)snprintf(out + used, len - used, "%s%s", i ? "|" : "", ks[i]);
	if (used < len)
		snprintf(out + used, len - used, "\"");
}

static void metric(rs_inv *inv, const char *query, const char *signal, double at_s)
{
	char enc[1024], target[1200];
	if (sdk_uri_encode(query, enc, sizeof enc) < 0)
		return;
	snprintf(target, sizeof target, "/api/v1/query?query=%s&time=%.3f", enc, at_s);
	rs_call tmpl = { .signal = signal };
	snprintf(tmpl.what, sizeof tmpl.what, "%s", query);
	issue(inv, C_METRIC, "metrics", "metrics", target, NULL, &tmpl);
}

void rs_gather_start(rs_inv *inv)
{
	const char *ks[KS_MAX];
	size_t nks = kernels_of(inv, ks);
	long long since = json_integer_value(json_object_get(inv->doc, "since_ms"));
	long long until = json_integer_value(json_object_get(inv->doc, "until_ms"));
	char target[1024];
	snprintf(target, sizeof target, "/events?since=%lld&until=%lld&limit=%d", since, until,
		 AUDIT_PAGE);
	issue(inv, C_AUDIT, "audit", "audit", target, NULL, NULL);
	issue(inv, C_LOG_STH, "immutable_log", "immutable_log", "/sth", NULL, NULL);
	/* Metrics over the window, at its end. */
	long long w = (until - since + 999) / 1000;
	double at = (double)until / 1000.0;
	char m[400], q[700];
	matcher("kernel", ks, nks, m, sizeof m);
	snprintf(q, sizeof q, "min_over_time(grace_kernel_up{%s}[%llds])", m, w > 0 ? w : 1);
	metric(inv, q, "down", at);
	snprintf(q, sizeof q, "increase(grace_kernel_restarts_total{%s}[%llds])", m, w > 0 ? w : 1);
	metric(inv, q, "restarts", at);
	/* The kernels' own error counters: answers of 5xx in the window. */
	snprintf(q, sizeof q,
		 "sum by (kernel) (increase(grace_http_requests_total{%s%sstatus=~\"5..\"}[%llds]))",
		 m, nks ? "," : "", w > 0 ? w : 1);
	metric(inv, q, "errors", at);
	matcher("instance", ks, nks, m, sizeof m);
	snprintf(q, sizeof q, "min_over_time(up{job=\"grace\"%s%s}[%llds])", nks ? "," : "", m,
		 w > 0 ? w : 1);
	metric(inv, q, "down", at);
	/* Traces and logs of each kernel; incidents. */
	for (size_t i = 0; i < (nks ? nks : 1); i++) {
		const char *k = nks ? ks[i] : NULL;
		char svc[RS_NAME_MAX + 16] = "";
		if (k)
			snprintf(svc, sizeof svc, "&service=grace.%s", k);
		snprintf(target, sizeof target, "/traces?status=error&since=%lld&until=%lld&limit=%d%s",
			 since, until, TRACES_MAX, svc);
		issue(inv, C_TRACES, "traces", "telemetry", target, k ? k : "", NULL);
		snprintf(target, sizeof target, "/logs?since=%lld&until=%lld&limit=50%s", since, until,
			 svc);
		issue(inv, C_LOGS, "logs", "telemetry", target, k ? k : "", NULL);
	}
	for (size_t i = 0; i < (nks ? 1 : 1); i++) {
		snprintf(target, sizeof target, "/incidents?since_ms=%lld%s%s", since,
			 nks ? "&kernel=" : "", nks ? ks[0] : "");
		issue(inv, C_INCIDENTS, "incidents", "self_healing", target, NULL, NULL);
	}
	char enc[RS_QUESTION_MAX * 3 + 1];
	if (sdk_uri_encode(json_string_value(json_object_get(inv->doc, "question")), enc,
			   sizeof enc) == 0) {
		char *t = malloc(strlen(enc) + 64);
		if (t) {
			sprintf(t, "/search?query=%s&limit=%d", enc, DOCS_MAX);
			issue(inv, C_LIBRARIAN, "librarian", "librarian", t, NULL, NULL);
			free(t);
		}
	}
	/* The memory tables live in the main process: read as the asking
	 * user, by the delegation the gateway handed over (docs/research.md). */
	if (inv->delegation[0])
		issue(inv, C_MEM_TABLES, "memory", SDK_MAIN_NAME, "/memory/tables", NULL, NULL);
	else
		json_object_set_new(inv->sources, "memory",
				    json_pack("{s:s, s:i, s:s}", "status", "skipped", "calls", 0,
					      "detail",
					      "not asked through the Grace API by a user: no "
					      "delegation to read anyone's memory tables"));
}

void rs_prove_start(rs_inv *inv)
{
	json_t *top = json_array_get(json_object_get(inv->doc, "hypotheses"), 0);
	size_t i, n = 0;
	json_t *id;
	json_array_foreach(json_object_get(top, "evidence"), i, id) {
		if (n >= RS_PROOFS_MAX)
			break;
		size_t j;
		json_t *ev;
		json_array_foreach(inv->evidence, j, ev) {
			if (!json_equal(json_object_get(ev, "id"), id))
				continue;
			json_t *aid = json_object_get(json_object_get(ev, "citation"), "audit_event");
			if (!json_is_integer(aid))
				break;
			char target[64];
			snprintf(target, sizeof target, "/events/%lld/proof",
				 (long long)json_integer_value(aid));
			rs_call tmpl = { .event_id = json_integer_value(aid), .evidence = ev };
			issue(inv, C_PROOF, "audit_proofs", "audit", target, NULL, &tmpl);
			/* And the log's own entry, when the event is in it. */
			json_t *li = json_object_get(json_object_get(ev, "citation"), "log_index");
			if (json_is_integer(li)) {
				snprintf(target, sizeof target, "/entries/%lld",
					 (long long)json_integer_value(li));
				issue(inv, C_ENTRY, "immutable_log", "immutable_log", target, NULL, &tmpl);
			}
			n++;
			break;
		}
	}
}
