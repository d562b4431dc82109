/* The alerts kernel's routes: Prometheus's /api/v1/rules and /api/v1/alerts,
 * Alertmanager's API v2 (alerts, groups, silences, receivers, status) with
 * its shapes and its errors (a JSON string with 400, as go-swagger answers),
 * and Grace's own routes for rule files and the notifier's configuration.
 * Times: sdk/rfc3339, in the style each peer's JSON encoder writes. */
#include "kernels/alerts/alerts.h"

#include "kernels/alerts/alabels.h"
#include "kernels/alerts/store.h"
#include "sdk/rfc3339.h"
#include "sdk/clock.h"
#include "sdk/log.h"

#include <ctype.h>
#include <event2/buffer.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FILTERS_MAX 32
#define FILTER_TEXT_MAX 1024
#define SILENCE_MATCHERS_MAX 64

static ak *ak_of(void *ctx) { return ((sdk_kernel *)ctx)->state; }

/* ---- error shapes */

/* Alertmanager v2's: the status with the reason as a JSON string. */
static void am_error(sdk_req *req, int status, const char *msg)
{
	sdk_reply_json(req, status, json_string(msg));
}

static void am_status_error(sdk_req *req, int rc, const sdk_err *e)
{
	int st = rc == SDK_ENOTFOUND ? 404 : rc == SDK_EFULL ? 507 : rc == SDK_EIO ? 500 : 400;
	am_error(req, st, e->msg);
}

/* Prometheus's: {"status":"error","errorType","error"}. */
static void prom_error(sdk_req *req, int status, const char *type, const char *msg)
{
	sdk_reply_json(req, status,
		       json_pack("{s:s, s:s, s:s}", "status", "error", "errorType", type, "error", msg));
}

static void prom_ok(sdk_req *req, json_t *data)
{
	sdk_reply_json(req, 200, json_pack("{s:s, s:o}", "status", "success", "data", data));
}

/* ---- query strings: Alertmanager repeats `filter` */

static int hexval(int c)
{
	return isdigit(c) ? c - '0' : isxdigit(c) ? (tolower(c) - 'a' + 10) : -1;
}

/* Every value of `name` in the raw query string, decoded into out[i]
 * (each FILTER_TEXT_MAX + 1 bytes). Returns how many, or -1 when too many
 * or too long. */
static int query_all(sdk_req *req, const char *name, char out[][FILTER_TEXT_MAX + 1], int max)
{
	const char *qs = sdk_req_query_string(req);
	int n = 0;
	size_t nl = strlen(name);
	while (qs && *qs) {
		const char *amp = strchr(qs, '&');
		size_t len = amp ? (size_t)(amp - qs) : strlen(qs);
		if (len > nl && !strncmp(qs, name, nl) && qs[nl] == '=') {
			if (n == max)
				return -1;
			size_t o = 0;
			for (size_t i = nl + 1; i < len; i++) {
				if (o == FILTER_TEXT_MAX)
					return -1;
				int c = qs[i];
				if (c == '+')
					c = ' ';
				else if (c == '%' && i + 2 < len + 1 && hexval(qs[i + 1]) >= 0 &&
					 hexval(qs[i + 2]) >= 0) {
					c = hexval(qs[i + 1]) * 16 + hexval(qs[i + 2]);
					i += 2;
				}
				out[n][o++] = (char)c;
			}
			out[n][o] = '\0';
			n++;
		}
		qs = amp ? amp + 1 : NULL;
	}
	return n;
}

/* A boolean query parameter with Alertmanager's default. */
static int query_bool(sdk_req *req, const char *name, bool def, bool *out)
{
	const char *v = sdk_req_query(req, name);
	if (!v) {
		*out = def;
		return 0;
	}
	if (!strcmp(v, "true") || !strcmp(v, "1"))
		*out = true;
	else if (!strcmp(v, "false") || !strcmp(v, "0"))
		*out = false;
	else
		return -1;
	return 0;
}

/* ---- Prometheus: rules and alerts */

/* Prometheus writes its times through Go's encoding/json. */
static const char *rfc3339(int64_t ms, char *buf, size_t len)
{
	return sdk_rfc3339_format_ms(ms, SDK_RFC3339_GO, buf, len);
}

static void value_text(double v, char *buf, size_t len)
{
	if (isnan(v))
		snprintf(buf, len, "NaN");
	else if (isinf(v))
		snprintf(buf, len, v > 0 ? "+Inf" : "-Inf");
	else
		snprintf(buf, len, "%.17g", v);
	/* shortest exact form, as Go's FormatFloat(v, 'e', -1, 64) would be read back */
	if (!isnan(v) && !isinf(v))
		for (int p = 1; p <= 17; p++) {
			char t[64];
			snprintf(t, sizeof t, "%.*g", p, v);
			if (strtod(t, NULL) == v) {
				snprintf(buf, len, "%s", t);
				break;
			}
		}
}

static json_t *alert_json(const ar_alert *al)
{
	char at[40], v[64];
	value_text(al->value, v, sizeof v);
	json_t *j = json_pack("{s:O, s:O, s:s, s:s, s:s}", "labels", al->labels, "annotations",
			      al->annotations, "state", ar_state_name(al->state), "activeAt",
			      rfc3339(al->active_at, at, sizeof at), "value", v);
	if (al->keep_firing_since) {
		char kf[40];
		json_object_set_new(j, "keepFiringSince",
				    json_string(rfc3339(al->keep_firing_since, kf, sizeof kf)));
	}
	return j;
}

static json_t *rule_json(const ar_rule *r, bool with_alerts)
{
	char le[40];
	json_t *j = json_pack("{s:s, s:s, s:O, s:s, s:s, s:f, s:s}", "name", r->name, "query",
			      r->expr, "labels", r->labels ? r->labels : json_object(), "health",
			      r->health, "lastError", r->last_error, "evaluationTime",
			      r->eval_seconds, "lastEvaluation",
			      rfc3339(r->last_eval_ms, le, sizeof le));
	if (!r->labels)
		json_object_set_new(j, "labels", json_object());
	if (r->alert) {
		json_t *alerts = json_array();
		for (size_t i = 0; with_alerts && i < r->n_alerts; i++)
			if (r->alerts[i]->state != AR_INACTIVE)
				json_array_append_new(alerts, alert_json(r->alerts[i]));
		json_object_set_new(j, "type", json_string("alerting"));
		json_object_set_new(j, "state", json_string(ar_state_name(ar_rule_state(r))));
		json_object_set_new(j, "duration", json_real((double)r->for_ms / 1000.0));
		json_object_set_new(j, "keepFiringFor", json_real((double)r->keep_firing_ms / 1000.0));
		json_object_set_new(j, "annotations",
				    r->annotations ? json_incref(r->annotations) : json_object());
		json_object_set_new(j, "alerts", alerts);
	} else {
		json_object_set_new(j, "type", json_string("recording"));
	}
	return j;
}

/* GET /api/v1/rules?type=alert|record */
void ak_on_rules(sdk_req *req, void *ctx)
{
	ak *a = ak_of(ctx);
	const char *type = sdk_req_query(req, "type");
	if (type && strcmp(type, "alert") && strcmp(type, "record")) {
		prom_error(req, 400, "bad_data", "type is alert or record");
		return;
	}
	json_t *groups = json_array();
	for (size_t i = 0; i < a->n_groups; i++) {
		const ar_group *g = a->groups[i];
		json_t *rules = json_array();
		for (size_t r = 0; r < g->n_rules; r++) {
			const ar_rule *ru = &g->rules[r];
			if (type && (!strcmp(type, "alert")) != ru->alert)
				continue;
			json_array_append_new(rules, rule_json(ru, true));
		}
		char le[40];
		json_array_append_new(groups,
				      json_pack("{s:s, s:s, s:o, s:f, s:I, s:f, s:s}", "name", g->name,
						"file", g->file, "rules", rules, "interval",
						(double)g->interval_ms / 1000.0, "limit",
						(json_int_t)g->limit, "evaluationTime", g->eval_seconds,
						"lastEvaluation", rfc3339(g->last_eval_ms, le, sizeof le)));
	}
	prom_ok(req, json_pack("{s:o}", "groups", groups));
}

/* GET /api/v1/alerts: every pending and firing alert of the rules. */
void ak_on_prom_alerts(sdk_req *req, void *ctx)
{
	ak *a = ak_of(ctx);
	json_t *alerts = json_array();
	for (size_t i = 0; i < a->n_groups; i++)
		for (size_t r = 0; r < a->groups[i]->n_rules; r++) {
			const ar_rule *ru = &a->groups[i]->rules[r];
			for (size_t k = 0; k < ru->n_alerts; k++)
				if (ru->alerts[k]->state != AR_INACTIVE)
					json_array_append_new(alerts, alert_json(ru->alerts[k]));
		}
	prom_ok(req, json_pack("{s:o}", "alerts", alerts));
}

/* ---- Alertmanager API v2 */

void ak_on_am_status(sdk_req *req, void *ctx)
{
	ak *a = ak_of(ctx);
	static int64_t started;
	if (!started)
		started = sdk_wall_ms();
	char up[40];
	sdk_rfc3339_format_ms(started, SDK_RFC3339_MILLIS, up, sizeof up);
	sdk_reply_json(req, 200,
		       json_pack("{s:{s:s, s:[]}, s:{s:s, s:s, s:s, s:s, s:s, s:s}, s:{s:s}, s:s}",
				 "cluster", "status", "disabled", "peers", "versionInfo", "version",
				 GRACE_VERSION, "revision", "", "branch", "", "buildUser", "",
				 "buildDate", "", "goVersion", "", "config", "original",
				 ntf_config_text(a->ntf), "uptime", up));
}

void ak_on_am_receivers(sdk_req *req, void *ctx)
{
	sdk_reply_json(req, 200, ntf_receivers_json(ak_of(ctx)->ntf));
}

/* The `filter` matchers of a request; false when one is bad (answered). */
static bool filters_read(sdk_req *req, al_matchers *out)
{
	static char texts[FILTERS_MAX][FILTER_TEXT_MAX + 1];
	memset(out, 0, sizeof *out);
	int n = query_all(req, "filter", texts, FILTERS_MAX);
	if (n < 0) {
		am_error(req, 400, "too many filters, or one too long");
		return false;
	}
	out->m = calloc((size_t)n + 1, sizeof *out->m);
	if (!out->m) {
		am_error(req, 500, "out of memory");
		return false;
	}
	for (int i = 0; i < n; i++) {
		sdk_err e;
		if (al_matcher_parse(texts[i], &out->m[out->n], &e) < 0) {
			al_matchers_free(out);
			am_error(req, 400, e.msg);
			return false;
		}
		out->n++;
	}
	return true;
}

/* GET /api/v2/alerts?filter=&active=&silenced=&inhibited=&receiver= */
void ak_on_am_alerts_get(sdk_req *req, void *ctx)
{
	ak *a = ak_of(ctx);
	bool active, silenced, inhibited, unprocessed;
	if (query_bool(req, "active", true, &active) < 0 ||
	    query_bool(req, "silenced", true, &silenced) < 0 ||
	    query_bool(req, "inhibited", true, &inhibited) < 0 ||
	    query_bool(req, "unprocessed", true, &unprocessed) < 0) {
		am_error(req, 400, "active, silenced, inhibited and unprocessed are true or false");
		return;
	}
	al_matchers f;
	if (!filters_read(req, &f))
		return;
	json_t *all = ntf_alerts_json(a->ntf, sdk_wall_ms(), &f, active, silenced, inhibited);
	al_matchers_free(&f);
	const char *receiver = sdk_req_query(req, "receiver");
	if (receiver && all) {
		sdk_err why;
		if (al_regex_check(receiver, &why) < 0) {
			json_decref(all);
			am_error(req, 400, why.msg);
			return;
		}
		al_matcher m;
		sdk_err e;
		if (al_matcher_make(AL_RE, "receiver", receiver, &m, &e) == 0) {
			json_t *kept = json_array();
			size_t i;
			json_t *al;
			json_array_foreach(all, i, al) {
				size_t k;
				json_t *r;
				bool hit = false;
				json_array_foreach(json_object_get(al, "receivers"), k, r) {
					json_t *l = json_pack("{s:O}", "receiver", json_object_get(r, "name"));
					hit |= al_matcher_matches(&m, l);
					json_decref(l);
				}
				if (hit)
					json_array_append(kept, al);
			}
			al_matcher_free(&m);
			json_decref(all);
			all = kept;
		}
	}
	sdk_reply_json(req, 200, all ? all : json_array());
}

/* The time in field `name` (0 when absent or null), or SDK_EINVAL. */
static int parse_time_field(json_t *j, const char *name, int64_t *ms, sdk_err *why)
{
	json_t *v = json_object_get(j, name);
	*ms = 0;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v) || !sdk_rfc3339_parse_ms(json_string_value(v), ms))
		return sdk_fail(why, SDK_EINVAL, "%s: not an RFC 3339 time", name);
	return 0;
}

/* POST /api/v2/alerts: [PostableAlert], as a real Alertmanager takes
 * them; all checked before any is taken. */
void ak_on_am_alerts_post(sdk_req *req, void *ctx)
{
	ak *a = ak_of(ctx);
	struct evbuffer *b = sdk_req_body(req);
	size_t len = evbuffer_get_length(b);
	json_error_t je;
	json_t *list = json_loadb((const char *)evbuffer_pullup(b, -1), len, 0, &je);
	if (!json_is_array(list)) {
		json_decref(list);
		am_error(req, 400, "expected an array of alerts");
		return;
	}
	int64_t now = sdk_wall_ms();
	size_t i;
	json_t *al;
	sdk_err why;
	json_array_foreach(list, i, al) {
		int64_t st, en;
		json_t *labels = json_object_get(al, "labels");
		json_t *ann = json_object_get(al, "annotations");
		if (!json_is_object(al) || !json_is_object(labels)) {
			sdk_fail(&why, SDK_EINVAL, "alert %zu: labels in body is required", i);
			goto bad;
		}
		if (parse_time_field(al, "startsAt", &st, &why) < 0 ||
		    parse_time_field(al, "endsAt", &en, &why) < 0)
			goto bad;
		if (al_check_labels(labels, "labels", &why) < 0 ||
		    (ann && !json_is_null(ann) && al_check_labels(ann, "annotations", &why) < 0))
			goto bad;
		if (!json_object_size(labels)) {
			sdk_fail(&why, SDK_EINVAL, "at least one label pair required");
			goto bad;
		}
		if (st && en && en < st) {
			sdk_fail(&why, SDK_EINVAL, "start time must be before end time");
			goto bad;
		}
	}
	json_array_foreach(list, i, al) {
		sdk_err e;
		int64_t st, en;
		parse_time_field(al, "startsAt", &st, NULL);
		parse_time_field(al, "endsAt", &en, NULL);
		json_t *ann = json_object_get(al, "annotations");
		const char *gen = json_string_value(json_object_get(al, "generatorURL"));
		if (ntf_put(a->ntf, json_object_get(al, "labels"), json_is_object(ann) ? ann : NULL, st,
			    en, gen, now, &e) < 0) {
			json_decref(list);
			am_status_error(req, SDK_EFULL, &e);
			return;
		}
		a->st.alerts_received++;
	}
	json_decref(list);
	sdk_reply_json(req, 200, json_object());
	return;
bad:
	json_decref(list);
	am_error(req, 400, why.msg);
}

void ak_on_am_groups(sdk_req *req, void *ctx)
{
	sdk_reply_json(req, 200, ntf_groups_json(ak_of(ctx)->ntf, sdk_wall_ms()));
}

void ak_on_am_silences_get(sdk_req *req, void *ctx)
{
	ak *a = ak_of(ctx);
	al_matchers f;
	if (!filters_read(req, &f))
		return;
	int64_t now = sdk_wall_ms();
	json_t *out = json_array();
	for (size_t i = 0; i < ntf_silence_count(a->ntf); i++) {
		const nt_silence *s = ntf_silence_at(a->ntf, i);
		/* A filter keeps the silences whose matchers are all matched
		 * by an equal matcher of the filter (Alertmanager's rule). */
		bool keep = true;
		for (size_t k = 0; k < f.n && keep; k++) {
			bool found = false;
			for (size_t j = 0; j < s->m.n; j++)
				found |= !strcmp(s->m.m[j].name, f.m[k].name) &&
					 !strcmp(s->m.m[j].value, f.m[k].value) &&
					 s->m.m[j].type == f.m[k].type;
			keep = found;
		}
		if (keep)
			json_array_append_new(out, ntf_silence_json(s, now));
	}
	al_matchers_free(&f);
	sdk_reply_json(req, 200, out);
}

/* POST /api/v2/silences: a PostableSilence; with an id, an update. */
void ak_on_am_silences_post(sdk_req *req, void *ctx)
{
	ak *a = ak_of(ctx);
	struct evbuffer *b = sdk_req_body(req);
	json_t *j = json_loadb((const char *)evbuffer_pullup(b, -1), evbuffer_get_length(b), 0,
			       NULL);
	if (!json_is_object(j)) {
		json_decref(j);
		am_error(req, 400, "expected a silence (a JSON object)");
		return;
	}
	nt_silence s = { 0 };
	sdk_err why = { "" };
	json_t *ms = json_object_get(j, "matchers");
	const char *id = json_string_value(json_object_get(j, "id"));
	const char *by = json_string_value(json_object_get(j, "createdBy"));
	const char *comment = json_string_value(json_object_get(j, "comment"));
	if (!json_is_array(ms) || json_array_size(ms) > SILENCE_MATCHERS_MAX)
		sdk_fail(&why, SDK_EINVAL, "matchers in body is required (at most %d)",
			 SILENCE_MATCHERS_MAX);
	else if (!by || !*by)
		sdk_fail(&why, SDK_EINVAL, "createdBy in body is required");
	else if (!comment || !*comment)
		sdk_fail(&why, SDK_EINVAL, "comment in body is required");
	else if (strlen(by) >= sizeof s.created_by || strlen(comment) >= sizeof s.comment ||
		 (id && strlen(id) >= sizeof s.id))
		sdk_fail(&why, SDK_EINVAL, "createdBy, comment or id too long");
	else if (parse_time_field(j, "startsAt", &s.starts_ms, &why) < 0 ||
		 parse_time_field(j, "endsAt", &s.ends_ms, &why) < 0)
		;
	else if (!json_object_get(j, "startsAt") || !json_object_get(j, "endsAt"))
		sdk_fail(&why, SDK_EINVAL, "startsAt and endsAt in body are required");
	if (why.msg[0]) {
		json_decref(j);
		am_error(req, 400, why.msg);
		return;
	}
	s.m.m = calloc(json_array_size(ms) + 1, sizeof *s.m.m);
	size_t i;
	json_t *m;
	sdk_err e = { "out of memory" };
	int rc = s.m.m ? 0 : SDK_EIO;
	json_array_foreach(ms, i, m) {
		if (rc < 0)
			break;
		rc = al_matcher_from_json(m, &s.m.m[s.m.n], &e);
		if (rc == 0)
			s.m.n++;
	}
	snprintf(s.id, sizeof s.id, "%s", id ? id : "");
	snprintf(s.created_by, sizeof s.created_by, "%s", by);
	snprintf(s.comment, sizeof s.comment, "%s", comment);
	json_decref(j);
	char out_id[40];
	if (rc == 0)
		rc = ntf_silence_set(a->ntf, &s, sdk_wall_ms(), out_id, &e);
	if (rc < 0) {
		al_matchers_free(&s.m);
		am_status_error(req, rc, &e);
		return;
	}
	ak_persist_silence(a, out_id);
	sdk_reply_json(req, 200, json_pack("{s:s}", "silenceID", out_id));
}

void ak_on_am_silence_get(sdk_req *req, void *ctx)
{
	ak *a = ak_of(ctx);
	const nt_silence *s = ntf_silence_get(a->ntf, sdk_req_param(req, "id"));
	if (!s) {
		am_error(req, 404, "silence not found");
		return;
	}
	sdk_reply_json(req, 200, ntf_silence_json(s, sdk_wall_ms()));
}

void ak_on_am_silence_delete(sdk_req *req, void *ctx)
{
	ak *a = ak_of(ctx);
	const char *id = sdk_req_param(req, "id");
	sdk_err e;
	int rc = ntf_silence_expire(a->ntf, id, sdk_wall_ms(), &e);
	if (rc < 0) {
		am_status_error(req, rc, &e);
		return;
	}
	ak_persist_silence(a, id);
	sdk_reply_json(req, 200, json_object());
}

/* ---- Grace's routes: rule files, evaluation, the notifier */

static bool file_name_ok(const char *n)
{
	size_t len = strlen(n);
	if (!len || len > AK_FILE_NAME_MAX || n[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)n[i]) && !strchr("._-", n[i]))
			return false;
	return true;
}

static json_t *file_json(const ak *a, const ak_file *f, bool with_text)
{
	json_t *j = json_pack("{s:s, s:b, s:b, s:I}", "name", f->name, "paused", f->paused,
			      "from_config", f->from_config, "groups", (json_int_t)f->n_groups);
	if (f->error[0])
		json_object_set_new(j, "error", json_string(f->error));
	if (with_text)
		json_object_set_new(j, "yaml", json_string(f->yaml ? f->yaml : ""));
	(void)a;
	return j;
}

void ak_on_files_list(sdk_req *req, void *ctx)
{
	ak *a = ak_of(ctx);
	json_t *out = json_array();
	for (size_t i = 0; i < a->n_files; i++)
		json_array_append_new(out, file_json(a, &a->files[i], false));
	sdk_reply_json(req, 200, json_pack("{s:o}", "files", out));
}

void ak_on_file_get(sdk_req *req, void *ctx)
{
	ak *a = ak_of(ctx);
	ak_file *f = ak_file_find(a, sdk_req_param(req, "name"));
	if (!f) {
		sdk_reply_error(req, 404, "not_found", "no rule file named \"%s\"",
				sdk_req_param(req, "name"));
		return;
	}
	sdk_reply_json(req, 200, file_json(a, f, true));
}

/* PUT /rules/files/NAME: the body is the YAML (or {"yaml","paused"}). */
void ak_on_file_put(sdk_req *req, void *ctx)
{
	ak *a = ak_of(ctx);
	const char *name = sdk_req_param(req, "name");
	if (!file_name_ok(name)) {
		sdk_reply_error(req, 400, "invalid",
				"a rule file's name is 1 to %d letters, digits, '.', '_' or '-'",
				AK_FILE_NAME_MAX);
		return;
	}
	ak_file *cur = ak_file_find(a, name);
	if (cur && cur->from_config) {
		sdk_reply_error(req, 409, "conflict", "%s comes from the configuration", name);
		return;
	}
	struct evbuffer *b = sdk_req_body(req);
	size_t len = evbuffer_get_length(b);
	char *text = malloc(len + 1);
	if (!text) {
		sdk_reply_error(req, 500, "internal", "out of memory");
		return;
	}
	if (len)
		memcpy(text, evbuffer_pullup(b, -1), len);
	text[len] = '\0';
	bool paused = false;
	const char *ct = sdk_req_header(req, "Content-Type");
	if (ct && !strncmp(ct, "application/json", 16)) {
		json_t *j = json_loads(text, 0, NULL);
		const char *y = json_string_value(json_object_get(j, "yaml"));
		if (!y) {
			json_decref(j);
			free(text);
			sdk_reply_error(req, 400, "invalid", "expected {\"yaml\": \"...\", \"paused\": false}");
			return;
		}
		paused = json_is_true(json_object_get(j, "paused"));
		free(text);
		text = strdup(y);
		json_decref(j);
		if (!text) {
			sdk_reply_error(req, 500, "internal", "out of memory");
			return;
		}
	}
	if (strlen(text) != len && !(ct && !strncmp(ct, "application/json", 16))) {
		free(text);
		sdk_reply_error(req, 400, "invalid", "a rule file is text without NUL bytes");
		return;
	}
	sdk_err e;
	int rc = ak_file_set(a, name, text, paused, false, &e);
	if (rc == 0)
		rc = as_rule_file_put(a->k->db, name, text, paused, sdk_wall_ms(), &e);
	free(text);
	if (rc < 0) {
		/* Prometheus's shape for a rule file that does not load. */
		if (rc == SDK_EINVAL)
			prom_error(req, 400, "bad_data", e.msg);
		else
			sdk_reply_status(req, rc, &e);
		return;
	}
	sdk_reply_json(req, 200, file_json(a, ak_file_find(a, name), false));
}

void ak_on_file_delete(sdk_req *req, void *ctx)
{
	ak *a = ak_of(ctx);
	const char *name = sdk_req_param(req, "name");
	ak_file *f = ak_file_find(a, name);
	if (f && f->from_config) {
		sdk_reply_error(req, 409, "conflict", "%s comes from the configuration", name);
		return;
	}
	sdk_err e;
	int rc = ak_file_remove(a, name, &e);
	if (rc == 0)
		rc = as_rule_file_delete(a->k->db, name, &e);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	sdk_reply_json(req, 200, json_pack("{s:s}", "deleted", name));
}

static void on_evaluated(void *arg, int failures)
{
	sdk_req *req = arg;
	sdk_reply_json(req, 200, json_pack("{s:i}", "failures", failures));
}

/* POST /rules/evaluate?file=NAME&time=MS: every group (of one file) once,
 * now or at an instant, answered when done. For operators and tests that
 * cannot wait for the interval. */
void ak_on_evaluate(sdk_req *req, void *ctx)
{
	ak *a = ak_of(ctx);
	const char *file = sdk_req_query(req, "file");
	if (file && !ak_file_find(a, file)) {
		sdk_reply_error(req, 404, "not_found", "no rule file named \"%s\"", file);
		return;
	}
	unsigned long long t;
	if (sdk_req_query_uint(req, "time", 0, 1ull << 53, 0, &t) < 0)
		return;
	if (ak_evaluate_now(a, file, t ? (int64_t)t : sdk_wall_ms(), on_evaluated, req) < 0)
		sdk_reply_error(req, 409, "busy", "a group is being evaluated; try again");
}

void ak_on_notifier_get(sdk_req *req, void *ctx)
{
	ak *a = ak_of(ctx);
	json_t *j = json_pack("{s:s, s:b}", "yaml", ntf_config_text(a->ntf), "from_api",
			      a->notifier_from_api);
	if (a->notifier_error[0])
		json_object_set_new(j, "error", json_string(a->notifier_error));
	sdk_reply_json(req, 200, j);
}

/* PUT /notifier/config: Alertmanager's configuration (YAML); checked, then
 * in force and kept. */
void ak_on_notifier_put(sdk_req *req, void *ctx)
{
	ak *a = ak_of(ctx);
	struct evbuffer *b = sdk_req_body(req);
	size_t len = evbuffer_get_length(b);
	char *text = malloc(len + 1);
	if (!text) {
		sdk_reply_error(req, 500, "internal", "out of memory");
		return;
	}
	if (len)
		memcpy(text, evbuffer_pullup(b, -1), len);
	text[len] = '\0';
	sdk_err e;
	int rc = strlen(text) != len ? sdk_fail(&e, SDK_EINVAL, "the configuration is text without NUL bytes")
				     : ntf_configure(a->ntf, text, len, sdk_wall_ms(), &e);
	if (rc == 0)
		rc = as_notifier_put(a->k->db, text, &e);
	free(text);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	a->notifier_from_api = true;
	a->notifier_error[0] = '\0';
	sdk_reply_json(req, 200, json_pack("{s:b}", "ok", 1));
}
