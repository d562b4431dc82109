#include "kernels/alerts/rules.h"

#include "kernels/alerts/alabels.h"
#include "kernels/alerts/tmpl.h"
#include "kernels/alerts/yaml.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *ar_state_name(enum ar_state s)
{
	return s == AR_FIRING ? "firing" : s == AR_PENDING ? "pending" : "inactive";
}

/* ---- parsing */

static void rule_free(ar_rule *r)
{
	free(r->name);
	free(r->expr);
	json_decref(r->labels);
	json_decref(r->annotations);
	json_decref(r->written);
	for (size_t i = 0; i < r->n_alerts; i++) {
		json_decref(r->alerts[i]->labels);
		json_decref(r->alerts[i]->annotations);
		free(r->alerts[i]);
	}
	free(r->alerts);
	memset(r, 0, sizeof *r);
}

void ar_group_clear(ar_group *g)
{
	for (size_t i = 0; i < g->n_rules; i++)
		rule_free(&g->rules[i]);
	free(g->rules);
	free(g->file);
	free(g->name);
	memset(g, 0, sizeof *g);
}

void ar_groups_free(ar_group *groups, size_t n)
{
	for (size_t i = 0; i < n; i++)
		ar_group_clear(&groups[i]);
	free(groups);
}

static bool valid_metric_name(const char *s)
{
	if (!s || !*s)
		return false;
	for (const char *p = s; *p; p++) {
		char c = *p;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
			  (p > s && c >= '0' && c <= '9');
		if (!ok)
			return false;
	}
	return true;
}

/* Fields a mapping may have; the first other one is named in err. */
static int only_fields(const json_t *o, const char *const *allowed, const char *where,
		       sdk_err *err)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)o, k, v) {
		bool ok = false;
		for (const char *const *a = allowed; *a && !ok; a++)
			ok = !strcmp(*a, k);
		if (!ok)
			return sdk_fail(err, SDK_EINVAL, "%s: field %s not found", where, k);
	}
	return 0;
}

static int templates_ok(const json_t *m, const char *what, const char *where, sdk_err *err)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)m, k, v) {
		sdk_err te;
		if (tmpl_check(json_string_value(v), &te) < 0)
			return sdk_fail(err, SDK_EINVAL, "%s: %s %s: %s", where, what, k, te.msg);
	}
	return 0;
}

static int parse_rule(const json_t *j, const char *gname, size_t idx, ar_rule *r, sdk_err *err)
{
	char where[400];
	const char *rec = json_string_value(json_object_get(j, "record"));
	const char *alert = json_string_value(json_object_get(j, "alert"));
	snprintf(where, sizeof where, "group \"%.100s\", rule %zu, \"%.100s\"", gname, idx + 1,
		 alert ? alert : rec ? rec : "");
	if (!json_is_object(j))
		return sdk_fail(err, SDK_EINVAL, "%s: a rule is a mapping", where);
	static const char *const allowed[] = { "record", "alert", "expr", "for", "keep_firing_for",
					       "labels", "annotations", NULL };
	if (only_fields(j, allowed, where, err))
		return SDK_EINVAL;
	if ((rec && alert) || (!rec && !alert) || (rec && !*rec) || (alert && !*alert))
		return sdk_fail(err, SDK_EINVAL, "%s: one of 'record' or 'alert' must be set", where);
	const char *expr = json_string_value(json_object_get(j, "expr"));
	if (!expr || !*expr)
		return sdk_fail(err, SDK_EINVAL, "%s: field 'expr' must be set in rule", where);
	if (rec && !valid_metric_name(rec))
		return sdk_fail(err, SDK_EINVAL, "%s: invalid recording rule name: %s", where, rec);
	r->alert = alert != NULL;
	r->name = strdup(alert ? alert : rec);
	r->expr = strdup(expr);
	snprintf(r->health, sizeof r->health, "unknown");
	r->written = json_array();
	if (!r->name || !r->expr || !r->written)
		return sdk_fail(err, SDK_EIO, "out of memory");
	const char *durs[] = { "for", "keep_firing_for" };
	int64_t *dst[] = { &r->for_ms, &r->keep_firing_ms };
	for (int i = 0; i < 2; i++) {
		json_t *d = json_object_get(j, durs[i]);
		if (!d)
			continue;
		if (rec)
			return sdk_fail(err, SDK_EINVAL, "%s: invalid field '%s' in recording rule", where,
					durs[i]);
		if (!ay_duration(json_string_value(d), dst[i]))
			return sdk_fail(err, SDK_EINVAL, "%s: %s: not a valid duration: \"%s\"", where,
					durs[i], json_string_value(d) ? json_string_value(d) : "");
	}
	json_t *labels = json_object_get(j, "labels");
	json_t *ann = json_object_get(j, "annotations");
	if (rec && ann)
		return sdk_fail(err, SDK_EINVAL, "%s: invalid field 'annotations' in recording rule", where);
	if (labels && al_check_labels(labels, where, err) < 0)
		return SDK_EINVAL;
	if (labels && json_object_get(labels, "__name__"))
		return sdk_fail(err, SDK_EINVAL, "%s: invalid label name: __name__", where);
	if (ann && al_check_labels(ann, where, err) < 0)
		return SDK_EINVAL;
	r->labels = labels ? json_deep_copy(labels) : json_object();
	r->annotations = ann ? json_deep_copy(ann) : json_object();
	if (templates_ok(r->labels, "label", where, err) ||
	    templates_ok(r->annotations, "annotation", where, err))
		return SDK_EINVAL;
	return 0;
}

int ar_parse_file(const char *file, const char *yaml, size_t len, int64_t default_interval_ms,
		  ar_group **out, size_t *nout, sdk_err *err)
{
	*out = NULL;
	*nout = 0;
	json_t *doc = ay_parse(yaml, len, err);
	if (!doc)
		return SDK_EINVAL;
	int rc = 0;
	json_t *groups = json_object_get(doc, "groups");
	static const char *const top[] = { "groups", NULL };
	if (!json_is_object(doc) || only_fields(doc, top, "rule file", err)) {
		if (!json_is_object(doc))
			sdk_fail(err, SDK_EINVAL, "a rule file is a mapping with \"groups\"");
		json_decref(doc);
		return SDK_EINVAL;
	}
	if (groups && !json_is_array(groups)) {
		json_decref(doc);
		return sdk_fail(err, SDK_EINVAL, "\"groups\" is a list");
	}
	size_t ng = json_array_size(groups), total = 0;
	if (ng > AR_GROUPS_MAX) {
		json_decref(doc);
		return sdk_fail(err, SDK_EINVAL, "more than %d groups", AR_GROUPS_MAX);
	}
	ar_group *gs = calloc(ng + 1, sizeof *gs);
	if (!gs) {
		json_decref(doc);
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	for (size_t i = 0; i < ng && !rc; i++) {
		json_t *g = json_array_get(groups, i);
		ar_group *ag = &gs[i];
		const char *name = json_string_value(json_object_get(g, "name"));
		static const char *const allowed[] = { "name", "interval", "limit", "rules", NULL };
		char where[160];
		snprintf(where, sizeof where, "group %zu \"%.100s\"", i + 1, name ? name : "");
		if (!json_is_object(g)) {
			rc = sdk_fail(err, SDK_EINVAL, "%s: a group is a mapping", where);
			break;
		}
		if ((rc = only_fields(g, allowed, where, err)))
			break;
		if (!name || !*name) {
			rc = sdk_fail(err, SDK_EINVAL, "%s: Groupname must not be empty", where);
			break;
		}
		for (size_t k = 0; k < i; k++)
			if (!strcmp(gs[k].name, name)) {
				rc = sdk_fail(err, SDK_EINVAL, "%d:%d: groupname: \"%s\" is repeated in the same file",
					      0, 0, name);
				break;
			}
		if (rc)
			break;
		ag->name = strdup(name);
		ag->file = strdup(file);
		ag->interval_ms = default_interval_ms;
		json_t *iv = json_object_get(g, "interval");
		if (iv && (!ay_duration(json_string_value(iv), &ag->interval_ms) || ag->interval_ms <= 0)) {
			rc = sdk_fail(err, SDK_EINVAL, "%s: interval: not a valid positive duration", where);
			break;
		}
		json_t *lim = json_object_get(g, "limit");
		if (lim) {
			char *end;
			unsigned long v = strtoul(json_string_value(lim) ? json_string_value(lim) : "x", &end, 10);
			if (*end || v > 1000000) {
				rc = sdk_fail(err, SDK_EINVAL, "%s: limit: expected a number", where);
				break;
			}
			ag->limit = (unsigned)v;
		}
		json_t *rules = json_object_get(g, "rules");
		if (rules && !json_is_array(rules)) {
			rc = sdk_fail(err, SDK_EINVAL, "%s: rules: a list", where);
			break;
		}
		size_t nr = json_array_size(rules);
		total += nr;
		if (total > AR_RULES_MAX) {
			rc = sdk_fail(err, SDK_EINVAL, "more than %d rules in one file", AR_RULES_MAX);
			break;
		}
		ag->rules = calloc(nr + 1, sizeof *ag->rules);
		if (!ag->name || !ag->file || !ag->rules) {
			rc = sdk_fail(err, SDK_EIO, "out of memory");
			break;
		}
		for (size_t k = 0; k < nr && !rc; k++) {
			rc = parse_rule(json_array_get(rules, k), name, k, &ag->rules[k], err);
			ag->n_rules = k + 1;
		}
	}
	json_decref(doc);
	if (rc) {
		ar_groups_free(gs, ng);
		return rc;
	}
	*out = gs;
	*nout = ng;
	return 0;
}

/* ---- evaluation */

/* The labels of an alert for a result sample: the sample's without
 * __name__, the rule's (templated) over them, and alertname. */
static json_t *alert_labels(const ar_rule *r, const ar_sample *s, sdk_err *err)
{
	json_t *l = json_deep_copy(s->labels);
	json_object_del(l, "__name__");
	const char *k;
	json_t *v;
	json_object_foreach(r->labels, k, v) {
		char *x;
		if (tmpl_expand(json_string_value(v), s->labels, s->value, &x, err) < 0) {
			/* Prometheus puts the error in the value rather than fail. */
			char msg[400];
			snprintf(msg, sizeof msg, "<error expanding template: %s>", err->msg);
			x = strdup(msg);
		}
		if (x && *x)
			json_object_set_new(l, k, json_string(x));
		else
			json_object_del(l, k);
		free(x);
	}
	json_object_set_new(l, "alertname", json_string(r->name));
	return l;
}

static json_t *alert_annotations(const ar_rule *r, const ar_sample *s)
{
	json_t *a = json_object();
	const char *k;
	json_t *v;
	json_object_foreach(r->annotations, k, v) {
		char *x;
		sdk_err e;
		if (tmpl_expand(json_string_value(v), s->labels, s->value, &x, &e) < 0) {
			char msg[400];
			snprintf(msg, sizeof msg, "<error expanding template: %s>", e.msg);
			x = strdup(msg);
		}
		json_object_set_new(a, k, json_string(x ? x : ""));
		free(x);
	}
	return a;
}

static ar_alert *find_alert(const ar_rule *r, uint64_t fp)
{
	for (size_t i = 0; i < r->n_alerts; i++)
		if (r->alerts[i]->fp == fp)
			return r->alerts[i];
	return NULL;
}

static void drop_alert(ar_rule *r, size_t i)
{
	json_decref(r->alerts[i]->labels);
	json_decref(r->alerts[i]->annotations);
	free(r->alerts[i]);
	r->alerts[i] = r->alerts[--r->n_alerts];
}

enum ar_event { AR_PRESENT, AR_ABSENT };
enum ar_action {
	ACT_START,           /* a new pending alert; it may fire at once */
	ACT_UPDATE_HOLD,     /* new value and annotations; fire once `for` has held */
	ACT_UPDATE,          /* new value and annotations; no longer kept firing */
	ACT_DELETE,          /* a pending alert gone: forgotten */
	ACT_RESOLVE_OR_KEEP, /* resolved, unless keep_firing_for holds it */
	ACT_RETAIN,          /* resolved: kept to be sent so, then forgotten */
};

/* state x event -> the state to be in, and what to do. */
static const struct {
	enum ar_state next;
	enum ar_action act;
} ar_table[3][2] = {
	[AR_INACTIVE] = { [AR_PRESENT] = { AR_PENDING, ACT_START },
			  [AR_ABSENT] = { AR_INACTIVE, ACT_RETAIN } },
	[AR_PENDING] = { [AR_PRESENT] = { AR_PENDING, ACT_UPDATE_HOLD },
			 [AR_ABSENT] = { AR_INACTIVE, ACT_DELETE } },
	[AR_FIRING] = { [AR_PRESENT] = { AR_FIRING, ACT_UPDATE },
			[AR_ABSENT] = { AR_INACTIVE, ACT_RESOLVE_OR_KEEP } },
};

int ar_eval_alerting(ar_rule *r, const ar_sample *res, size_t n, int64_t ts, unsigned limit,
		     sdk_err *err)
{
	/* The alerts this result names, first (all or nothing). */
	ar_alert *fresh = calloc(n + 1, sizeof *fresh);
	if (!fresh)
		return sdk_fail(err, SDK_EIO, "out of memory");
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		sdk_err te;
		fresh[i].labels = alert_labels(r, &res[i], &te);
		fresh[i].annotations = alert_annotations(r, &res[i]);
		fresh[i].value = res[i].value;
		fresh[i].fp = al_fingerprint(fresh[i].labels);
		for (size_t k = 0; k < i; k++)
			if (fresh[k].fp == fresh[i].fp)
				rc = sdk_fail(err, SDK_EINVAL, "vector contains metrics with the same labelset "
							       "after applying alert labels");
	}
	if (rc) {
		for (size_t i = 0; i < n; i++) {
			json_decref(fresh[i].labels);
			json_decref(fresh[i].annotations);
		}
		free(fresh);
		return rc;
	}
	for (size_t i = 0; i < r->n_alerts; i++)
		r->alerts[i]->seen = false;
	for (size_t i = 0; i < n; i++) {
		ar_alert *a = find_alert(r, fresh[i].fp);
		enum ar_state from = a ? a->state : AR_INACTIVE;
		enum ar_action act = ar_table[from][AR_PRESENT].act;
		if (!a || act == ACT_START) {
			/* (Re)started: a new alert in place of an inactive one. */
			if (!a) {
				if (r->n_alerts == r->cap_alerts) {
					size_t cap = r->cap_alerts ? r->cap_alerts * 2 : 8;
					ar_alert **na = realloc(r->alerts, cap * sizeof *na);
					if (!na)
						break;
					r->alerts = na;
					r->cap_alerts = cap;
				}
				a = calloc(1, sizeof *a);
				if (!a)
					break;
				r->alerts[r->n_alerts++] = a;
			} else {
				json_decref(a->labels);
				json_decref(a->annotations);
				memset(a, 0, sizeof *a);
			}
			a->fp = fresh[i].fp;
			a->labels = fresh[i].labels;
			a->active_at = ts;
		} else {
			json_decref(fresh[i].labels);
			json_decref(a->annotations);
		}
		fresh[i].labels = NULL;
		a->annotations = fresh[i].annotations;
		fresh[i].annotations = NULL;
		a->value = fresh[i].value;
		a->state = ar_table[from][AR_PRESENT].next;
		a->seen = true;
		if (act == ACT_UPDATE)
			a->keep_firing_since = 0;
	}
	for (size_t i = 0; i < n; i++) {
		json_decref(fresh[i].labels);
		json_decref(fresh[i].annotations);
	}
	free(fresh);
	/* Everything not in the result, and the holds. */
	size_t active = 0;
	for (size_t i = 0; i < r->n_alerts;) {
		ar_alert *a = r->alerts[i];
		if (!a->seen) {
			enum ar_action act = ar_table[a->state][AR_ABSENT].act;
			bool keep = false;
			switch (act) {
			case ACT_DELETE:
				drop_alert(r, i);
				continue;
			case ACT_RETAIN:
				if (ts - a->resolved_at > AR_RESOLVED_RETENTION_MS) {
					drop_alert(r, i);
					continue;
				}
				break;
			case ACT_RESOLVE_OR_KEEP:
				if (r->keep_firing_ms > 0) {
					if (!a->keep_firing_since)
						a->keep_firing_since = ts;
					keep = ts - a->keep_firing_since < r->keep_firing_ms;
				}
				if (!keep) {
					a->state = ar_table[a->state][AR_ABSENT].next;
					a->resolved_at = ts;
				}
				break;
			default:
				break;
			}
			if (!keep) {
				i++;
				continue;
			}
		}
		active++;
		/* The hold: a pending alert fires once `for` has passed. */
		if (a->state == AR_PENDING && ts - a->active_at >= r->for_ms) {
			a->state = AR_FIRING;
			a->fired_at = ts;
		}
		i++;
	}
	if (limit && active > limit) {
		while (r->n_alerts)
			drop_alert(r, 0);
		return sdk_fail(err, SDK_EINVAL, "exceeded limit of %u with %zu alerts", limit, active);
	}
	return 0;
}

json_t *ar_alert_series(const ar_rule *r)
{
	json_t *out = json_array();
	for (size_t i = 0; i < r->n_alerts; i++) {
		const ar_alert *a = r->alerts[i];
		if (a->state == AR_INACTIVE)
			continue;
		json_t *l = json_deep_copy(a->labels);
		json_object_set_new(l, "__name__", json_string("ALERTS"));
		json_object_set_new(l, "alertstate", json_string(ar_state_name(a->state)));
		json_array_append_new(out, json_pack("{s:o, s:f}", "labels", l, "value", 1.0));
		json_t *f = json_deep_copy(a->labels);
		json_object_set_new(f, "__name__", json_string("ALERTS_FOR_STATE"));
		json_array_append_new(out, json_pack("{s:o, s:f}", "labels", f, "value",
						     (double)(a->active_at / 1000)));
	}
	return out;
}

int ar_eval_recording(const ar_rule *r, const ar_sample *res, size_t n, json_t **out,
		      sdk_err *err)
{
	json_t *o = json_array();
	uint64_t *fps = calloc(n + 1, sizeof *fps);
	if (!o || !fps) {
		json_decref(o);
		free(fps);
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		json_t *l = json_deep_copy(res[i].labels);
		json_object_set_new(l, "__name__", json_string(r->name));
		const char *k;
		json_t *v;
		json_object_foreach(r->labels, k, v) {
			if (json_string_length(v))
				json_object_set(l, k, v);
			else
				json_object_del(l, k);
		}
		fps[i] = al_fingerprint(l);
		for (size_t j = 0; j < i; j++)
			if (fps[j] == fps[i]) {
				json_decref(l);
				json_decref(o);
				free(fps);
				return sdk_fail(err, SDK_EINVAL,
						"vector contains metrics with the same labelset after applying rule labels");
			}
		json_array_append_new(o, json_pack("{s:o, s:f}", "labels", l, "value", res[i].value));
	}
	free(fps);
	*out = o;
	return 0;
}

bool ar_needs_sending(ar_alert *a, int64_t ts, int64_t resend_ms, int64_t interval_ms)
{
	if (a->state == AR_PENDING)
		return false;
	bool send = (a->resolved_at && a->resolved_at > a->last_sent_at) ||
		    a->last_sent_at + resend_ms < ts;
	if (!send)
		return false;
	a->last_sent_at = ts;
	int64_t delta = interval_ms > resend_ms ? interval_ms : resend_ms;
	a->valid_until = ts + 4 * delta;
	return true;
}

enum ar_state ar_rule_state(const ar_rule *r)
{
	enum ar_state s = AR_INACTIVE;
	for (size_t i = 0; i < r->n_alerts; i++)
		if (r->alerts[i]->state > s)
			s = r->alerts[i]->state;
	return s;
}
