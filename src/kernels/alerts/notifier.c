#include "kernels/alerts/notifier.h"

#include "kernels/alerts/yaml.h"
#include "sdk/rfc3339.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define RESOLVE_TIMEOUT_DEFAULT_MS (5 * 60 * 1000)
#define GROUP_WAIT_DEFAULT_MS (30 * 1000)
#define GROUP_INTERVAL_DEFAULT_MS (5 * 60 * 1000)
#define REPEAT_INTERVAL_DEFAULT_MS (4 * 3600 * 1000)
#define ROUTE_DEPTH_MAX 16
#define LOG_KEEP_MS (120LL * 3600 * 1000) /* Alertmanager's nflog retention */

typedef struct nt_alert {
	uint64_t fp;
	json_t *labels, *annotations;
	int64_t starts, ends, updated;
	bool timeout; /* no end was given: ends = updated + resolve_timeout */
	char generator[256];
} nt_alert;

typedef struct nt_route nt_route;
struct nt_route {
	nt_route *parent;
	char receiver[64];
	al_matchers m;
	char **group_by;
	size_t n_group_by;
	bool group_all;
	int64_t group_wait, group_interval, repeat_interval;
	bool cont;
	nt_route *kids;
	size_t n_kids;
	char key[512];
};

typedef struct nt_receiver {
	char name[64];
	nt_integration *ints;
	size_t n_ints;
} nt_receiver;

typedef struct nt_inhibit {
	al_matchers source, target;
	char **equal;
	size_t n_equal;
} nt_inhibit;

typedef struct nt_group {
	char key[1024];
	nt_route *route;
	json_t *labels;
	uint64_t *fps;
	size_t n, cap;
	int64_t next_flush;
	bool flushed;
} nt_group;

typedef struct nt_log {
	char key[1200];
	uint64_t *firing, *resolved;
	size_t n_firing, n_resolved;
	int64_t at;
} nt_log;

struct ntf {
	bool dirty; /* alerts changed since ntf_alerts_dump */
	char *config_text;
	int64_t resolve_timeout;
	nt_route *root;
	nt_receiver *recv;
	size_t n_recv;
	nt_inhibit *inh;
	size_t n_inh;
	/* alerts by fingerprint (open addressing) */
	nt_alert **a;
	size_t a_slots, n_a;
	nt_group **g;
	size_t n_g, cap_g;
	nt_silence *sil;
	size_t n_sil, cap_sil;
	nt_log *log;
	size_t n_log, cap_log;
};

/* ---- configuration */

static void route_free(nt_route *r)
{
	for (size_t i = 0; i < r->n_kids; i++)
		route_free(&r->kids[i]);
	free(r->kids);
	al_matchers_free(&r->m);
	for (size_t i = 0; i < r->n_group_by; i++)
		free(r->group_by[i]);
	free(r->group_by);
}

static void config_free(nt_route *root, nt_receiver *recv, size_t n_recv, nt_inhibit *inh,
			size_t n_inh)
{
	if (root) {
		route_free(root);
		free(root);
	}
	for (size_t i = 0; i < n_recv; i++)
		free(recv[i].ints);
	free(recv);
	for (size_t i = 0; i < n_inh; i++) {
		al_matchers_free(&inh[i].source);
		al_matchers_free(&inh[i].target);
		for (size_t k = 0; k < inh[i].n_equal; k++)
			free(inh[i].equal[k]);
		free(inh[i].equal);
	}
	free(inh);
}

static int only_fields(const json_t *o, const char *const *allowed, const char *where,
		       sdk_err *err)
{
	if (!json_is_object(o))
		return sdk_fail(err, SDK_EINVAL, "%s: expected a mapping", where);
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)o, k, v) {
		bool ok = false;
		for (const char *const *a = allowed; *a && !ok; a++)
			ok = !strcmp(*a, k);
		if (!ok)
			return sdk_fail(err, SDK_EINVAL, "%s: field %s is not supported", where, k);
	}
	return 0;
}

/* matchers: [...], match: {...}, match_re: {...} into ms. */
static int read_matchers(const json_t *o, const char *list, const char *eq, const char *re,
			 al_matchers *ms, const char *where, sdk_err *err)
{
	json_t *l = json_object_get(o, list), *e = json_object_get(o, eq), *r = json_object_get(o, re);
	size_t n = json_array_size(l) + json_object_size(e) + json_object_size(r);
	if ((l && !json_is_array(l)) || (e && !json_is_object(e)) || (r && !json_is_object(r)))
		return sdk_fail(err, SDK_EINVAL, "%s: %s is a list, %s and %s mappings", where, list, eq, re);
	ms->m = calloc(n + 1, sizeof *ms->m);
	if (!ms->m)
		return sdk_fail(err, SDK_EIO, "out of memory");
	size_t i;
	json_t *v;
	json_array_foreach(l, i, v) {
		sdk_err me;
		if (al_matcher_parse(json_string_value(v) ? json_string_value(v) : "", &ms->m[ms->n], &me))
			return sdk_fail(err, SDK_EINVAL, "%s: %s", where, me.msg);
		ms->n++;
	}
	const char *k;
	for (int pass = 0; pass < 2; pass++)
		json_object_foreach(pass ? r : e, k, v) {
			sdk_err me;
			if (al_matcher_make(pass ? AL_RE : AL_EQ, k, json_string_value(v), &ms->m[ms->n], &me))
				return sdk_fail(err, SDK_EINVAL, "%s: %s", where, me.msg);
			ms->n++;
		}
	return 0;
}

/* Alertmanager allows group_wait 0; group_interval and repeat_interval
 * "cannot be zero". */
static int read_duration(const json_t *o, const char *name, int64_t *out, const char *where,
			 sdk_err *err)
{
	json_t *v = json_object_get(o, name);
	if (!v)
		return 0;
	bool zero_ok = !strcmp(name, "group_wait");
	if (!ay_duration(json_string_value(v), out) || *out < 0)
		return sdk_fail(err, SDK_EINVAL, "%s: %s: not a valid duration", where, name);
	if (!*out && !zero_ok)
		return sdk_fail(err, SDK_EINVAL, "%s: %s cannot be zero", where, name);
	return 0;
}

static void matchers_string(const al_matchers *ms, char *out, size_t len)
{
	size_t o = (size_t)snprintf(out, len, "{");
	for (size_t i = 0; i < ms->n && o < len; i++) {
		char m[600];
		al_matcher_string(&ms->m[i], m, sizeof m);
		o += (size_t)snprintf(out + o, len - o, "%s%s", i ? "," : "", m);
	}
	if (o < len)
		snprintf(out + o, len - o, "}");
}

static int read_route(const json_t *j, nt_route *r, nt_route *parent, int depth,
		      const char *where, sdk_err *err)
{
	static const char *const allowed[] = { "receiver", "group_by", "group_wait", "group_interval",
					       "repeat_interval", "matchers", "match", "match_re",
					       "continue", "routes", NULL };
	if (depth > ROUTE_DEPTH_MAX)
		return sdk_fail(err, SDK_EINVAL, "routes nested more than %d deep", ROUTE_DEPTH_MAX);
	if (only_fields(j, allowed, where, err))
		return SDK_EINVAL;
	r->parent = parent;
	const char *recv = json_string_value(json_object_get(j, "receiver"));
	if (recv)
		snprintf(r->receiver, sizeof r->receiver, "%s", recv);
	else if (parent)
		snprintf(r->receiver, sizeof r->receiver, "%s", parent->receiver);
	r->group_wait = parent ? parent->group_wait : GROUP_WAIT_DEFAULT_MS;
	r->group_interval = parent ? parent->group_interval : GROUP_INTERVAL_DEFAULT_MS;
	r->repeat_interval = parent ? parent->repeat_interval : REPEAT_INTERVAL_DEFAULT_MS;
	if (read_duration(j, "group_wait", &r->group_wait, where, err) ||
	    read_duration(j, "group_interval", &r->group_interval, where, err) ||
	    read_duration(j, "repeat_interval", &r->repeat_interval, where, err) ||
	    read_matchers(j, "matchers", "match", "match_re", &r->m, where, err))
		return SDK_EINVAL;
	if (!parent && r->m.n)
		return sdk_fail(err, SDK_EINVAL, "root route must not have any matchers");
	json_t *c = json_object_get(j, "continue");
	if (c && !ay_bool(json_string_value(c), &r->cont))
		return sdk_fail(err, SDK_EINVAL, "%s: continue: true or false", where);
	if (!parent && r->cont)
		return sdk_fail(err, SDK_EINVAL, "cannot have continue in root route");
	json_t *gb = json_object_get(j, "group_by");
	if (gb) {
		if (!json_is_array(gb))
			return sdk_fail(err, SDK_EINVAL, "%s: group_by is a list", where);
		r->group_by = calloc(json_array_size(gb) + 1, sizeof *r->group_by);
		size_t i;
		json_t *v;
		json_array_foreach(gb, i, v) {
			const char *s = json_string_value(v);
			if (s && !strcmp(s, "...")) {
				r->group_all = true;
				continue;
			}
			if (!al_valid_name(s))
				return sdk_fail(err, SDK_EINVAL, "%s: group_by: invalid label name \"%s\"", where,
						s ? s : "");
			r->group_by[r->n_group_by++] = strdup(s);
		}
		if (r->group_all && r->n_group_by)
			return sdk_fail(err, SDK_EINVAL, "%s: cannot have wildcard group_by (`...`) and other labels at the same time", where);
	} else if (parent) {
		r->group_all = parent->group_all;
		r->group_by = calloc(parent->n_group_by + 1, sizeof *r->group_by);
		for (size_t i = 0; i < parent->n_group_by; i++)
			r->group_by[r->n_group_by++] = strdup(parent->group_by[i]);
	}
	char ms[480];
	matchers_string(&r->m, ms, sizeof ms);
	if (!parent)
		snprintf(r->key, sizeof r->key, "%s", ms);
	else if (snprintf(r->key, sizeof r->key, "%s/%s", parent->key, ms) >= (int)sizeof r->key)
		r->key[sizeof r->key - 1] = '\0'; /* deep trees: a shortened key */
	json_t *kids = json_object_get(j, "routes");
	if (kids && !json_is_array(kids))
		return sdk_fail(err, SDK_EINVAL, "%s: routes is a list", where);
	r->kids = calloc(json_array_size(kids) + 1, sizeof *r->kids);
	if (!r->kids)
		return sdk_fail(err, SDK_EIO, "out of memory");
	size_t i;
	json_t *k;
	json_array_foreach(kids, i, k) {
		char w[200];
		snprintf(w, sizeof w, "%.150s.routes[%zu]", where, i);
		r->n_kids = i + 1;
		if (read_route(k, &r->kids[i], r, depth + 1, w, err))
			return SDK_EINVAL;
	}
	return 0;
}

static bool receiver_known(const nt_receiver *recv, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(recv[i].name, name))
			return true;
	return false;
}

static int check_routes(const nt_route *r, const nt_receiver *recv, size_t n, sdk_err *err)
{
	if (!r->receiver[0])
		return sdk_fail(err, SDK_EINVAL, "root route must specify a default receiver");
	if (!receiver_known(recv, n, r->receiver))
		return sdk_fail(err, SDK_EINVAL, "undefined receiver \"%s\" used in route", r->receiver);
	for (size_t i = 0; i < r->n_kids; i++)
		if (check_routes(&r->kids[i], recv, n, err))
			return SDK_EINVAL;
	return 0;
}

/* http://127.0.0.1:PORT/path (or localhost): the port and the path. */
static int parse_url(const char *url, int *port, char *path, size_t plen, const char *where,
		     sdk_err *err)
{
	const char *p = url;
	if (!p || strncmp(p, "http://", 7))
		return sdk_fail(err, SDK_EINVAL, "%s: url: expected http://127.0.0.1:PORT/..., got \"%s\"",
				where, url ? url : "");
	p += 7;
	if (!strncmp(p, "127.0.0.1:", 10))
		p += 10;
	else if (!strncmp(p, "localhost:", 10))
		p += 10;
	else
		return sdk_fail(err, SDK_EINVAL,
				"%s: url: Grace notifies receivers on this machine only (127.0.0.1 or "
				"localhost), got \"%s\"", where, url);
	char *end;
	long v = strtol(p, &end, 10);
	if (end == p || v < 1 || v > 65535 || (*end && *end != '/'))
		return sdk_fail(err, SDK_EINVAL, "%s: url: bad port in \"%s\"", where, url);
	*port = (int)v;
	snprintf(path, plen, "%s", *end ? end : "/");
	return 0;
}

static int read_receivers(const json_t *list, nt_receiver **out, size_t *n, sdk_err *err)
{
	if (list && !json_is_array(list))
		return sdk_fail(err, SDK_EINVAL, "receivers is a list");
	size_t nr = json_array_size(list);
	nt_receiver *rs = calloc(nr + 1, sizeof *rs);
	if (!rs)
		return sdk_fail(err, SDK_EIO, "out of memory");
	*out = rs;
	*n = 0;
	size_t i;
	json_t *r;
	json_array_foreach(list, i, r) {
		char where[100];
		snprintf(where, sizeof where, "receivers[%zu]", i);
		static const char *const allowed[] = { "name", "webhook_configs", "grace_bus_configs",
						       "alertmanager_configs", NULL };
		if (only_fields(r, allowed, where, err))
			return SDK_EINVAL;
		const char *name = json_string_value(json_object_get(r, "name"));
		if (!name || !*name || strlen(name) >= sizeof rs[i].name)
			return sdk_fail(err, SDK_EINVAL, "%s: missing name in receiver", where);
		if (receiver_known(rs, i, name))
			return sdk_fail(err, SDK_EINVAL, "notification config name \"%s\" is not unique", name);
		snprintf(rs[i].name, sizeof rs[i].name, "%s", name);
		*n = i + 1;
		const char *kinds[] = { "webhook_configs", "grace_bus_configs", "alertmanager_configs" };
		size_t total = 0;
		for (int k = 0; k < 3; k++)
			total += json_array_size(json_object_get(r, kinds[k]));
		rs[i].ints = calloc(total + 1, sizeof *rs[i].ints);
		if (!rs[i].ints)
			return sdk_fail(err, SDK_EIO, "out of memory");
		for (int k = 0; k < 3; k++) {
			json_t *cfgs = json_object_get(r, kinds[k]);
			if (cfgs && !json_is_array(cfgs))
				return sdk_fail(err, SDK_EINVAL, "%s: %s is a list", where, kinds[k]);
			size_t j;
			json_t *c;
			json_array_foreach(cfgs, j, c) {
				char w[200];
				snprintf(w, sizeof w, "%s.%s[%zu]", where, kinds[k], j);
				nt_integration *in = &rs[i].ints[rs[i].n_ints];
				in->kind = (enum nt_kind)k;
				in->send_resolved = true;
				static const char *const wh[] = { "url", "send_resolved", "max_alerts", NULL };
				static const char *const bu[] = { "subject", "send_resolved", NULL };
				static const char *const am[] = { "url", NULL };
				if (only_fields(c, k == 0 ? wh : k == 1 ? bu : am, w, err))
					return SDK_EINVAL;
				json_t *sr = json_object_get(c, "send_resolved");
				if (sr && !ay_bool(json_string_value(sr), &in->send_resolved))
					return sdk_fail(err, SDK_EINVAL, "%s: send_resolved: true or false", w);
				if (k == 1) {
					const char *subj = json_string_value(json_object_get(c, "subject"));
					if (!subj || !*subj || strlen(subj) >= sizeof in->subject ||
					    strpbrk(subj, " *>"))
						return sdk_fail(err, SDK_EINVAL, "%s: subject: a bus subject (no wildcards)", w);
					snprintf(in->subject, sizeof in->subject, "%s", subj);
				} else {
					const char *url = json_string_value(json_object_get(c, "url"));
					if (parse_url(url, &in->port, in->path, sizeof in->path, w, err))
						return SDK_EINVAL;
					snprintf(in->url, sizeof in->url, "%s", url);
					if (k == 2) {
						/* The API's path, under whatever prefix was given. */
						size_t pl = strlen(in->path);
						if (pl && in->path[pl - 1] == '/')
							in->path[--pl] = '\0';
						snprintf(in->path + pl, sizeof in->path - pl, "/api/v2/alerts");
					}
					json_t *ma = json_object_get(c, "max_alerts");
					if (ma)
						in->max_alerts = (unsigned)strtoul(json_string_value(ma) ? json_string_value(ma) : "0", NULL, 10);
				}
				rs[i].n_ints++;
			}
		}
	}
	return 0;
}

static int read_inhibits(const json_t *list, nt_inhibit **out, size_t *n, sdk_err *err)
{
	if (list && !json_is_array(list))
		return sdk_fail(err, SDK_EINVAL, "inhibit_rules is a list");
	nt_inhibit *in = calloc(json_array_size(list) + 1, sizeof *in);
	if (!in)
		return sdk_fail(err, SDK_EIO, "out of memory");
	*out = in;
	*n = 0;
	size_t i;
	json_t *r;
	json_array_foreach(list, i, r) {
		char where[64];
		snprintf(where, sizeof where, "inhibit_rules[%zu]", i);
		static const char *const allowed[] = { "source_matchers", "source_match",
						       "source_match_re", "target_matchers",
						       "target_match", "target_match_re", "equal", NULL };
		*n = i + 1;
		if (only_fields(r, allowed, where, err) ||
		    read_matchers(r, "source_matchers", "source_match", "source_match_re",
				  &in[i].source, where, err) ||
		    read_matchers(r, "target_matchers", "target_match", "target_match_re",
				  &in[i].target, where, err))
			return SDK_EINVAL;
		json_t *eq = json_object_get(r, "equal");
		if (eq && !json_is_array(eq))
			return sdk_fail(err, SDK_EINVAL, "%s: equal is a list", where);
		in[i].equal = calloc(json_array_size(eq) + 1, sizeof *in[i].equal);
		size_t k;
		json_t *v;
		json_array_foreach(eq, k, v) {
			if (!al_valid_name(json_string_value(v)))
				return sdk_fail(err, SDK_EINVAL, "%s: equal: invalid label name", where);
			in[i].equal[in[i].n_equal++] = strdup(json_string_value(v));
		}
	}
	return 0;
}

static void regroup(ntf *n, int64_t now);

int ntf_configure(ntf *n, const char *yaml, size_t len, int64_t now_ms, sdk_err *err)
{
	json_t *doc = ay_parse(yaml, len, err);
	if (!doc)
		return SDK_EINVAL;
	nt_route *root = calloc(1, sizeof *root);
	nt_receiver *recv = NULL;
	nt_inhibit *inh = NULL;
	size_t n_recv = 0, n_inh = 0;
	int64_t resolve = RESOLVE_TIMEOUT_DEFAULT_MS;
	int rc = 0;
	static const char *const top[] = { "global", "route", "receivers", "inhibit_rules", NULL };
	static const char *const glob[] = { "resolve_timeout", NULL };
	json_t *g = json_object_get(doc, "global");
	if (!root)
		rc = sdk_fail(err, SDK_EIO, "out of memory");
	else if (only_fields(doc, top, "notifier configuration", err) ||
		 (g && only_fields(g, glob, "global", err)) ||
		 (g && read_duration(g, "resolve_timeout", &resolve, "global", err)))
		rc = SDK_EINVAL;
	else if (!json_object_get(doc, "route"))
		rc = sdk_fail(err, SDK_EINVAL, "no route provided in config");
	else if (read_receivers(json_object_get(doc, "receivers"), &recv, &n_recv, err) ||
		 read_route(json_object_get(doc, "route"), root, NULL, 0, "route", err) ||
		 check_routes(root, recv, n_recv, err) ||
		 read_inhibits(json_object_get(doc, "inhibit_rules"), &inh, &n_inh, err))
		rc = SDK_EINVAL;
	char *text = rc ? NULL : strndup(yaml, len);
	if (!rc && !text)
		rc = sdk_fail(err, SDK_EIO, "out of memory");
	json_decref(doc);
	if (rc) {
		config_free(root, recv, n_recv, inh, n_inh);
		return rc;
	}
	config_free(n->root, n->recv, n->n_recv, n->inh, n->n_inh);
	free(n->config_text);
	n->root = root;
	n->recv = recv;
	n->n_recv = n_recv;
	n->inh = inh;
	n->n_inh = n_inh;
	n->resolve_timeout = resolve;
	n->config_text = text;
	regroup(n, now_ms);
	return 0;
}

const char *ntf_config_text(const ntf *n) { return n->config_text ? n->config_text : ""; }

/* ---- the alert store */

static nt_alert *alert_get(const ntf *n, uint64_t fp)
{
	if (!n->a_slots)
		return NULL;
	size_t h = fp & (n->a_slots - 1);
	while (n->a[h]) {
		if (n->a[h]->fp == fp)
			return n->a[h];
		h = (h + 1) & (n->a_slots - 1);
	}
	return NULL;
}

static int alert_insert(ntf *n, nt_alert *a)
{
	if ((n->n_a + 1) * 2 > n->a_slots) {
		size_t slots = n->a_slots ? n->a_slots * 2 : 256;
		nt_alert **t = calloc(slots, sizeof *t);
		if (!t)
			return -1;
		for (size_t i = 0; i < n->a_slots; i++)
			if (n->a[i]) {
				size_t h = n->a[i]->fp & (slots - 1);
				while (t[h])
					h = (h + 1) & (slots - 1);
				t[h] = n->a[i];
			}
		free(n->a);
		n->a = t;
		n->a_slots = slots;
	}
	size_t h = a->fp & (n->a_slots - 1);
	while (n->a[h])
		h = (h + 1) & (n->a_slots - 1);
	n->a[h] = a;
	n->n_a++;
	return 0;
}

static void alert_free(nt_alert *a)
{
	json_decref(a->labels);
	json_decref(a->annotations);
	free(a);
}

/* Removes by rebuilding the probe chain after it (open addressing). */
static void alert_remove(ntf *n, uint64_t fp)
{
	size_t h = fp & (n->a_slots - 1);
	while (n->a[h] && n->a[h]->fp != fp)
		h = (h + 1) & (n->a_slots - 1);
	if (!n->a[h])
		return;
	alert_free(n->a[h]);
	n->a[h] = NULL;
	n->n_a--;
	for (size_t k = (h + 1) & (n->a_slots - 1); n->a[k]; k = (k + 1) & (n->a_slots - 1)) {
		nt_alert *x = n->a[k];
		n->a[k] = NULL;
		n->n_a--;
		alert_insert(n, x);
	}
}

static bool resolved(const nt_alert *a, int64_t now) { return a->ends && a->ends <= now; }

/* ---- routing and groups */

static size_t route_match(nt_route *r, const json_t *labels, nt_route **out, size_t max)
{
	if (!al_matchers_match(&r->m, labels))
		return 0;
	size_t n = 0;
	for (size_t i = 0; i < r->n_kids && n < max; i++) {
		size_t got = route_match(&r->kids[i], labels, out + n, max - n);
		n += got;
		if (got && !r->kids[i].cont)
			break;
	}
	if (n == 0 && max > 0)
		out[n++] = r;
	return n;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* model.LabelSet.String(): {a="b", c="d"} in name order. */
static void labels_string(const json_t *l, char *out, size_t len)
{
	size_t n = json_object_size(l), k = 0;
	const char **keys = malloc((n + 1) * sizeof *keys);
	if (!keys) {
		snprintf(out, len, "{}");
		return;
	}
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)l, key, v)
		keys[k++] = key;
	qsort(keys, n, sizeof *keys, cmp_str);
	size_t o = (size_t)snprintf(out, len, "{");
	for (size_t i = 0; i < n && o < len; i++)
		o += (size_t)snprintf(out + o, len - o, "%s%s=\"%s\"", i ? ", " : "", keys[i],
				      json_string_value(json_object_get(l, keys[i])));
	if (o < len)
		snprintf(out + o, len - o, "}");
	free(keys);
}

static json_t *group_labels(const nt_route *r, const json_t *labels)
{
	if (r->group_all)
		return json_deep_copy(labels);
	json_t *g = json_object();
	for (size_t i = 0; i < r->n_group_by; i++) {
		json_t *v = json_object_get(labels, r->group_by[i]);
		if (v)
			json_object_set(g, r->group_by[i], v);
	}
	return g;
}

static nt_group *group_for(ntf *n, nt_route *r, const nt_alert *a, int64_t now)
{
	json_t *gl = group_labels(r, a->labels);
	char ls[600], key[1024];
	labels_string(gl, ls, sizeof ls);
	if (snprintf(key, sizeof key, "%s:%s", r->key, ls) >= (int)sizeof key)
		key[sizeof key - 1] = '\0';
	for (size_t i = 0; i < n->n_g; i++)
		if (!strcmp(n->g[i]->key, key)) {
			json_decref(gl);
			return n->g[i];
		}
	if (n->n_g == n->cap_g) {
		size_t cap = n->cap_g ? n->cap_g * 2 : 16;
		nt_group **ng = realloc(n->g, cap * sizeof *ng);
		if (!ng) {
			json_decref(gl);
			return NULL;
		}
		n->g = ng;
		n->cap_g = cap;
	}
	nt_group *g = calloc(1, sizeof *g);
	if (!g) {
		json_decref(gl);
		return NULL;
	}
	snprintf(g->key, sizeof g->key, "%s", key);
	g->route = r;
	g->labels = gl;
	/* An alert that began long ago is not held back a group_wait. */
	g->next_flush = a->starts + r->group_wait < now ? now : now + r->group_wait;
	n->g[n->n_g++] = g;
	return g;
}

static void group_add(nt_group *g, uint64_t fp)
{
	for (size_t i = 0; i < g->n; i++)
		if (g->fps[i] == fp)
			return;
	if (g->n == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 8;
		uint64_t *nf = realloc(g->fps, cap * sizeof *nf);
		if (!nf)
			return;
		g->fps = nf;
		g->cap = cap;
	}
	g->fps[g->n++] = fp;
}

static void group_free(nt_group *g)
{
	json_decref(g->labels);
	free(g->fps);
	free(g);
}

static void route_alert(ntf *n, nt_alert *a, int64_t now)
{
	n->dirty = true; /* every put ends here */
	if (!n->root)
		return;
	nt_route *routes[64];
	size_t nr = route_match(n->root, a->labels, routes, 64);
	for (size_t i = 0; i < nr; i++) {
		nt_group *g = group_for(n, routes[i], a, now);
		if (g)
			group_add(g, a->fp);
	}
}

static void regroup(ntf *n, int64_t now)
{
	for (size_t i = 0; i < n->n_g; i++)
		group_free(n->g[i]);
	n->n_g = 0;
	for (size_t i = 0; i < n->a_slots; i++)
		if (n->a[i] && !resolved(n->a[i], now))
			route_alert(n, n->a[i], now);
}

int ntf_put(ntf *n, json_t *labels, json_t *annotations, int64_t starts, int64_t ends,
	    const char *generator, int64_t now, sdk_err *err)
{
	if (al_check_labels(labels, "labels", err) < 0)
		return SDK_EINVAL;
	if (!json_object_size(labels))
		return sdk_fail(err, SDK_EINVAL, "an alert needs at least one label");
	if (annotations && al_check_labels(annotations, "annotations", err) < 0)
		return SDK_EINVAL;
	if (!starts)
		starts = now;
	if (ends && ends < starts)
		return sdk_fail(err, SDK_EINVAL, "start time must be before end time");
	uint64_t fp = al_fingerprint(labels);
	nt_alert *old = alert_get(n, fp);
	bool timeout = !ends;
	if (!ends)
		ends = now + n->resolve_timeout;
	if (!old) {
		if (n->n_a >= NT_ALERTS_MAX)
			return sdk_fail(err, SDK_EFULL, "%d alerts held: no room for more", NT_ALERTS_MAX);
		nt_alert *a = calloc(1, sizeof *a);
		if (!a)
			return sdk_fail(err, SDK_EIO, "out of memory");
		a->fp = fp;
		a->labels = json_deep_copy(labels);
		a->annotations = annotations ? json_deep_copy(annotations) : json_object();
		a->starts = starts;
		a->ends = ends;
		a->updated = now;
		a->timeout = timeout;
		snprintf(a->generator, sizeof a->generator, "%s", generator ? generator : "");
		if (alert_insert(n, a) < 0) {
			alert_free(a);
			return sdk_fail(err, SDK_EIO, "out of memory");
		}
		route_alert(n, a, now);
		return 0;
	}
	/* Overlapping: merged as Alertmanager's Alert.Merge; else replaced. */
	bool overlap = (ends > old->starts && ends <= old->ends) ||
		       (starts >= old->starts && starts < old->ends);
	bool was_resolved = resolved(old, now);
	if (overlap) {
		if (old->starts < starts)
			starts = old->starts;
		bool now_resolved = ends <= now;
		if (now_resolved) {
			if (was_resolved && old->ends > ends)
				ends = old->ends;
		} else if (old->ends > ends && !old->timeout) {
			ends = old->ends;
		}
	}
	json_decref(old->annotations);
	old->annotations = annotations ? json_deep_copy(annotations) : json_object();
	old->starts = starts;
	old->ends = ends;
	old->updated = now;
	old->timeout = timeout;
	snprintf(old->generator, sizeof old->generator, "%s", generator ? generator : "");
	route_alert(n, old, now);
	return 0;
}

/* ---- silences */

static const char *sil_state(const nt_silence *s, int64_t now)
{
	if (s->ends_ms <= now)
		return "expired";
	if (s->starts_ms > now)
		return "pending";
	return "active";
}

const char *ntf_silence_state(const nt_silence *s, int64_t now_ms) { return sil_state(s, now_ms); }

static void new_uuid(char out[40])
{
	unsigned char b[16];
	if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b)
		for (size_t i = 0; i < sizeof b; i++)
			b[i] = (unsigned char)rand();
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, 40,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
		 b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
		 b[15]);
}

static nt_silence *sil_find(const ntf *n, const char *id)
{
	for (size_t i = 0; i < n->n_sil; i++)
		if (!strcmp(n->sil[i].id, id))
			return &n->sil[i];
	return NULL;
}

const nt_silence *ntf_silence_get(const ntf *n, const char *id) { return sil_find(n, id); }
size_t ntf_silence_count(const ntf *n) { return n->n_sil; }
const nt_silence *ntf_silence_at(const ntf *n, size_t i) { return i < n->n_sil ? &n->sil[i] : NULL; }

int ntf_silence_set(ntf *n, nt_silence *s, int64_t now, char id_out[40], sdk_err *err)
{
	if (s->m.n == 0)
		return sdk_fail(err, SDK_EINVAL, "silence invalid: at least one matcher required");
	bool all_empty = true;
	json_t *empty = json_object();
	for (size_t i = 0; i < s->m.n; i++)
		all_empty &= al_matcher_matches(&s->m.m[i], empty);
	json_decref(empty);
	if (all_empty)
		return sdk_fail(err, SDK_EINVAL, "silence invalid: at least one matcher must not match the empty string");
	if (s->ends_ms < s->starts_ms)
		return sdk_fail(err, SDK_EINVAL, "silence invalid: end time must not be before start time");
	nt_silence *cur = s->id[0] ? sil_find(n, s->id) : NULL;
	if (s->id[0] && !cur)
		return sdk_fail(err, SDK_ENOTFOUND, "silence %s not found", s->id);
	if (s->ends_ms <= now && !cur)
		return sdk_fail(err, SDK_EINVAL, "silence invalid: end time can't be in the past");
	if (!cur && n->n_sil >= NT_SILENCES_MAX)
		return sdk_fail(err, SDK_EFULL, "%d silences held: expire some first", NT_SILENCES_MAX);
	s->updated_ms = now;
	if (s->starts_ms < now && !cur)
		s->starts_ms = now;
	if (cur) {
		/* An active silence keeps its start; Alertmanager makes a new one
		 * for changed matchers: Grace updates in place. */
		al_matchers_free(&cur->m);
		*cur = *s;
	} else {
		if (n->n_sil == n->cap_sil) {
			size_t cap = n->cap_sil ? n->cap_sil * 2 : 16;
			nt_silence *ns = realloc(n->sil, cap * sizeof *ns);
			if (!ns)
				return sdk_fail(err, SDK_EIO, "out of memory");
			n->sil = ns;
			n->cap_sil = cap;
		}
		if (!s->id[0])
			new_uuid(s->id);
		n->sil[n->n_sil++] = *s;
	}
	snprintf(id_out, 40, "%s", s->id);
	s->m = (al_matchers){ 0 };
	return 0;
}

int ntf_silence_restore(ntf *n, nt_silence *s)
{
	if (sil_find(n, s->id) || n->n_sil >= NT_SILENCES_MAX)
		return -1;
	if (n->n_sil == n->cap_sil) {
		size_t cap = n->cap_sil ? n->cap_sil * 2 : 16;
		nt_silence *ns = realloc(n->sil, cap * sizeof *ns);
		if (!ns)
			return -1;
		n->sil = ns;
		n->cap_sil = cap;
	}
	n->sil[n->n_sil++] = *s;
	s->m = (al_matchers){ 0 };
	return 0;
}

int ntf_silence_expire(ntf *n, const char *id, int64_t now, sdk_err *err)
{
	nt_silence *s = sil_find(n, id);
	if (!s)
		return sdk_fail(err, SDK_ENOTFOUND, "silence %s not found", id);
	if (s->ends_ms <= now)
		return sdk_fail(err, SDK_EINVAL, "silence %s already expired", id);
	s->ends_ms = now;
	if (s->starts_ms > now)
		s->starts_ms = now;
	s->updated_ms = now;
	return 0;
}

json_t *ntf_silence_json(const nt_silence *s, int64_t now)
{
	json_t *ms = json_array();
	for (size_t i = 0; i < s->m.n; i++)
		json_array_append_new(ms, al_matcher_json(&s->m.m[i]));
	char st[40], en[40], up[40];
	sdk_rfc3339_format_ms(s->starts_ms, SDK_RFC3339_MILLIS, st, sizeof st);
	sdk_rfc3339_format_ms(s->ends_ms, SDK_RFC3339_MILLIS, en, sizeof en);
	sdk_rfc3339_format_ms(s->updated_ms, SDK_RFC3339_MILLIS, up, sizeof up);
	return json_pack("{s:s, s:{s:s}, s:s, s:o, s:s, s:s, s:s, s:s}", "id", s->id, "status",
			 "state", sil_state(s, now), "updatedAt", up, "matchers", ms, "startsAt", st,
			 "endsAt", en, "createdBy", s->created_by, "comment", s->comment);
}

/* ---- muting */

static bool silenced(const ntf *n, const nt_alert *a, int64_t now, json_t *by)
{
	bool any = false;
	for (size_t i = 0; i < n->n_sil; i++) {
		const nt_silence *s = &n->sil[i];
		if (strcmp(sil_state(s, now), "active") || !al_matchers_match(&s->m, a->labels))
			continue;
		any = true;
		if (by)
			json_array_append_new(by, json_string(s->id));
	}
	return any;
}

static bool inhibited(const ntf *n, const nt_alert *a, int64_t now, json_t *by)
{
	bool any = false;
	for (size_t r = 0; r < n->n_inh; r++) {
		const nt_inhibit *ih = &n->inh[r];
		if (!al_matchers_match(&ih->target, a->labels))
			continue;
		for (size_t i = 0; i < n->a_slots; i++) {
			const nt_alert *s = n->a[i];
			if (!s || s->fp == a->fp || resolved(s, now) ||
			    !al_matchers_match(&ih->source, s->labels))
				continue;
			bool equal = true;
			for (size_t k = 0; k < ih->n_equal && equal; k++) {
				const char *x = json_string_value(json_object_get(s->labels, ih->equal[k]));
				const char *y = json_string_value(json_object_get(a->labels, ih->equal[k]));
				equal = !strcmp(x ? x : "", y ? y : "");
			}
			if (!equal)
				continue;
			any = true;
			if (by) {
				char hex[17];
				al_fingerprint_hex(s->fp, hex);
				json_array_append_new(by, json_string(hex));
			} else {
				return true;
			}
		}
	}
	return any;
}

/* ---- the notification log */

static nt_log *log_find(const ntf *n, const char *key)
{
	for (size_t i = 0; i < n->n_log; i++)
		if (!strcmp(n->log[i].key, key))
			return &n->log[i];
	return NULL;
}

static json_t *fps_json(const uint64_t *f, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++) {
		char hex[17];
		al_fingerprint_hex(f[i], hex);
		json_array_append_new(a, json_string(hex));
	}
	return a;
}

json_t *ntf_log_json(const ntf *n, const char *key)
{
	nt_log *e = log_find(n, key);
	if (!e)
		return NULL;
	return json_pack("{s:o, s:o, s:I}", "firing", fps_json(e->firing, e->n_firing), "resolved",
			 fps_json(e->resolved, e->n_resolved), "at", (json_int_t)e->at);
}

static size_t fps_read(const json_t *a, uint64_t **out)
{
	size_t n = json_array_size(a), i;
	*out = calloc(n + 1, sizeof **out);
	json_t *v;
	json_array_foreach(a, i, v)
		if (*out && json_string_value(v))
			(*out)[i] = strtoull(json_string_value(v), NULL, 16);
	return *out ? n : 0;
}

static nt_log *log_add(ntf *n, const char *key)
{
	nt_log *e = log_find(n, key);
	if (e)
		return e;
	if (n->n_log == n->cap_log) {
		size_t cap = n->cap_log ? n->cap_log * 2 : 16;
		nt_log *nl = realloc(n->log, cap * sizeof *nl);
		if (!nl)
			return NULL;
		n->log = nl;
		n->cap_log = cap;
	}
	e = &n->log[n->n_log++];
	memset(e, 0, sizeof *e);
	snprintf(e->key, sizeof e->key, "%s", key);
	return e;
}

void ntf_log_key(const nt_out *o, char *out, size_t len)
{
	snprintf(out, len, "%s/%s/%zu", o->group_key, o->receiver, o->integration);
}

static bool subset(const uint64_t *set, size_t n, const uint64_t *sub, size_t m)
{
	for (size_t i = 0; i < m; i++) {
		bool found = false;
		for (size_t k = 0; k < n && !found; k++)
			found = set[k] == sub[i];
		if (!found)
			return false;
	}
	return true;
}

/* Alertmanager's DedupStage.needsUpdate. */
static bool needs_update(const nt_log *e, const uint64_t *firing, size_t nf,
			 const uint64_t *res, size_t nr, bool send_resolved, int64_t repeat,
			 int64_t now)
{
	if (!e)
		return nf > 0;
	if (!subset(e->firing, e->n_firing, firing, nf))
		return true;
	if (nf == 0)
		return e->n_firing > 0;
	if (send_resolved && !subset(e->resolved, e->n_resolved, res, nr))
		return true;
	return e->at < now - repeat;
}

static void group_drop_resolved(ntf *n, const char *key, const uint64_t *fps, size_t nf)
{
	for (size_t i = 0; i < n->n_g; i++) {
		nt_group *g = n->g[i];
		if (strcmp(g->key, key))
			continue;
		size_t k = 0;
		for (size_t j = 0; j < g->n; j++) {
			bool drop = false;
			for (size_t r = 0; r < nf && !drop; r++)
				drop = g->fps[j] == fps[r];
			if (!drop)
				g->fps[k++] = g->fps[j];
		}
		g->n = k;
	}
}

void ntf_sent(ntf *n, const nt_out *o, bool ok)
{
	if (!ok)
		return;
	group_drop_resolved(n, o->group_key, o->resolved, o->n_resolved);
	if (o->to->kind == NT_ALERTMANAGER)
		return;
	char key[1200];
	ntf_log_key(o, key, sizeof key);
	nt_log *e = log_add(n, key);
	if (!e)
		return;
	free(e->firing);
	free(e->resolved);
	e->firing = malloc((o->n_firing + 1) * sizeof *e->firing);
	e->resolved = malloc((o->n_resolved + 1) * sizeof *e->resolved);
	if (e->firing)
		memcpy(e->firing, o->firing, o->n_firing * sizeof *e->firing);
	if (e->resolved)
		memcpy(e->resolved, o->resolved, o->n_resolved * sizeof *e->resolved);
	e->n_firing = e->firing ? o->n_firing : 0;
	e->n_resolved = e->resolved ? o->n_resolved : 0;
	e->at = o->at;
}

int ntf_log_load(ntf *n, const char *key, const json_t *entry)
{
	nt_log *e = log_add(n, key);
	if (!e)
		return -1;
	free(e->firing);
	free(e->resolved);
	e->n_firing = fps_read(json_object_get(entry, "firing"), &e->firing);
	e->n_resolved = fps_read(json_object_get(entry, "resolved"), &e->resolved);
	e->at = json_integer_value(json_object_get(entry, "at"));
	return 0;
}

/* ---- flushing */

static json_t *alert_json_webhook(const nt_alert *a, int64_t now)
{
	char st[40], en[40], hex[17];
	bool done = resolved(a, now);
	/* Go's encoding/json writes these times (template.Alert), not strfmt. */
	sdk_rfc3339_format_ms(a->starts, SDK_RFC3339_GO, st, sizeof st);
	/* types.Alerts(): an end not reached yet is not shown (zero time). */
	sdk_rfc3339_format_ms(done ? a->ends : 0, SDK_RFC3339_GO, en, sizeof en);
	al_fingerprint_hex(a->fp, hex);
	return json_pack("{s:s, s:O, s:O, s:s, s:s, s:s, s:s}", "status",
			 done ? "resolved" : "firing", "labels", a->labels, "annotations",
			 a->annotations, "startsAt", st, "endsAt", en, "generatorURL", a->generator,
			 "fingerprint", hex);
}

/* Labels (or annotations) every alert shares. */
static json_t *common(nt_alert **as, size_t n, bool annotations)
{
	json_t *c = json_object();
	if (!n)
		return c;
	json_t *first = annotations ? as[0]->annotations : as[0]->labels;
	const char *k;
	json_t *v;
	json_object_foreach(first, k, v) {
		bool all = true;
		for (size_t i = 1; i < n && all; i++) {
			json_t *o = json_object_get(annotations ? as[i]->annotations : as[i]->labels, k);
			all = o && json_equal(o, v);
		}
		if (all)
			json_object_set(c, k, v);
	}
	return c;
}

static int alert_cmp(const void *x, const void *y)
{
	const nt_alert *a = *(nt_alert *const *)x, *b = *(nt_alert *const *)y;
	char la[1024], lb[1024];
	labels_string(a->labels, la, sizeof la);
	labels_string(b->labels, lb, sizeof lb);
	return strcmp(la, lb);
}

static bool out_push(nt_out **out, size_t *n, size_t *cap, nt_out *o)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 8;
		nt_out *no = realloc(*out, c * sizeof *no);
		if (!no)
			return false;
		*out = no;
		*cap = c;
	}
	(*out)[(*n)++] = *o;
	return true;
}

void ntf_out_free(nt_out *o)
{
	json_decref(o->payload);
	json_decref(o->posted);
	free(o->firing);
	free(o->resolved);
}

static const nt_receiver *receiver_get(const ntf *n, const char *name)
{
	for (size_t i = 0; i < n->n_recv; i++)
		if (!strcmp(n->recv[i].name, name))
			return &n->recv[i];
	return NULL;
}

static void flush_group(ntf *n, nt_group *g, int64_t now, const char *ext, nt_out **out,
			size_t *nout, size_t *cap)
{
	g->next_flush = now + g->route->group_interval;
	g->flushed = true;
	nt_alert **live = calloc(g->n + 1, sizeof *live);
	uint64_t *firing = calloc(g->n + 1, sizeof *firing), *res = calloc(g->n + 1, sizeof *res);
	if (!live || !firing || !res) {
		free(live);
		free(firing);
		free(res);
		return;
	}
	size_t nl = 0, nf = 0, nr = 0;
	for (size_t i = 0; i < g->n; i++) {
		nt_alert *a = alert_get(n, g->fps[i]);
		if (!a || silenced(n, a, now, NULL) || inhibited(n, a, now, NULL))
			continue;
		live[nl++] = a;
		if (resolved(a, now))
			res[nr++] = a->fp;
		else
			firing[nf++] = a->fp;
	}
	qsort(live, nl, sizeof *live, alert_cmp);
	size_t n_out_before = *nout;
	const nt_receiver *recv = receiver_get(n, g->route->receiver);
	for (size_t k = 0; recv && k < recv->n_ints; k++) {
		const nt_integration *in = &recv->ints[k];
		nt_out o = { .integration = k, .to = in, .at = now };
		snprintf(o.group_key, sizeof o.group_key, "%s", g->key);
		snprintf(o.receiver, sizeof o.receiver, "%s", recv->name);
		if (in->kind == NT_ALERTMANAGER) {
			/* A real Alertmanager does its own grouping and dedup: it
			 * gets the group's alerts at every flush, as Prometheus
			 * sends them. */
			if (!nl)
				continue;
			o.resolved = malloc((nr + 1) * sizeof *o.resolved);
			if (o.resolved)
				memcpy(o.resolved, res, nr * sizeof *res);
			o.n_resolved = o.resolved ? nr : 0;
			o.posted = json_array();
			for (size_t i = 0; i < nl; i++) {
				char st[40], en[40];
				sdk_rfc3339_format_ms(live[i]->starts, SDK_RFC3339_MILLIS, st, sizeof st);
				sdk_rfc3339_format_ms(live[i]->ends, SDK_RFC3339_MILLIS, en, sizeof en);
				json_array_append_new(o.posted,
						      json_pack("{s:O, s:O, s:s, s:s, s:s}", "labels",
								live[i]->labels, "annotations",
								live[i]->annotations, "startsAt", st,
								"endsAt", en, "generatorURL",
								live[i]->generator));
			}
			out_push(out, nout, cap, &o);
			continue;
		}
		char key[1200];
		ntf_log_key(&o, key, sizeof key);
		if (!needs_update(log_find(n, key), firing, nf, res, nr, in->send_resolved,
				  g->route->repeat_interval, now))
			continue;
		o.firing = malloc((nf + 1) * sizeof *o.firing);
		o.resolved = malloc((nr + 1) * sizeof *o.resolved);
		if (!o.firing || !o.resolved) {
			ntf_out_free(&o);
			continue;
		}
		memcpy(o.firing, firing, nf * sizeof *firing);
		memcpy(o.resolved, res, nr * sizeof *res);
		o.n_firing = nf;
		o.n_resolved = nr;
		json_t *alerts = json_array();
		size_t sent = 0, truncated = 0;
		for (size_t i = 0; i < nl; i++) {
			if (!in->send_resolved && resolved(live[i], now))
				continue;
			if (in->max_alerts && sent >= in->max_alerts) {
				truncated++;
				continue;
			}
			json_array_append_new(alerts, alert_json_webhook(live[i], now));
			sent++;
		}
		if (!sent) {
			/* Nothing to tell this receiver (resolved ones it does not
			 * want): the log still learns, as Alertmanager's does. */
			json_decref(alerts);
			ntf_sent(n, &o, true);
			ntf_out_free(&o);
			continue;
		}
		o.payload = json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:s, s:s, s:s, s:I}", "receiver",
				      recv->name, "status", nf ? "firing" : "resolved", "alerts",
				      alerts, "groupLabels", json_deep_copy(g->labels), "commonLabels",
				      common(live, nl, false), "commonAnnotations",
				      common(live, nl, true), "externalURL", ext ? ext : "", "version",
				      "4", "groupKey", g->key, "truncatedAlerts", (json_int_t)truncated);
		out_push(out, nout, cap, &o);
	}
	/* Resolved alerts leave the group once flushed (Alertmanager drops
	 * them after a flush that notified); an empty group goes. When a
	 * notification is on its way, they leave when it is delivered
	 * (ntf_sent), so a failed delivery is retried with them. */
	if (*nout > n_out_before) {
		free(live);
		free(firing);
		free(res);
		return;
	}
	size_t k = 0;
	for (size_t i = 0; i < g->n; i++) {
		nt_alert *a = alert_get(n, g->fps[i]);
		if (a && !resolved(a, now))
			g->fps[k++] = g->fps[i];
	}
	g->n = k;
	free(live);
	free(firing);
	free(res);
}

size_t ntf_flush(ntf *n, int64_t now, const char *ext, nt_out **out)
{
	*out = NULL;
	size_t nout = 0, cap = 0;
	for (size_t i = 0; i < n->n_g; i++)
		if (n->g[i]->next_flush <= now)
			flush_group(n, n->g[i], now, ext, out, &nout, &cap);
	size_t k = 0;
	for (size_t i = 0; i < n->n_g; i++) {
		if (n->g[i]->n == 0 && n->g[i]->flushed)
			group_free(n->g[i]);
		else
			n->g[k++] = n->g[i];
	}
	n->n_g = k;
	return nout;
}

int64_t ntf_next_due(const ntf *n, int64_t now)
{
	int64_t best = -1;
	for (size_t i = 0; i < n->n_g; i++) {
		int64_t d = n->g[i]->next_flush - now;
		if (d < 0)
			d = 0;
		if (best < 0 || d < best)
			best = d;
	}
	return best;
}

void ntf_gc(ntf *n, int64_t now, int64_t keep)
{
	for (size_t i = 0; i < n->a_slots; i++) {
		nt_alert *a = n->a[i];
		if (!a || !resolved(a, now) || now - a->ends < keep)
			continue;
		bool held = false;
		for (size_t g = 0; g < n->n_g && !held; g++)
			for (size_t k = 0; k < n->g[g]->n && !held; k++)
				held = n->g[g]->fps[k] == a->fp;
		if (!held) {
			alert_remove(n, a->fp);
			n->dirty = true;
			i--; /* the slot may hold a moved alert now */
		}
	}
	size_t k = 0;
	for (size_t i = 0; i < n->n_log; i++) {
		if (now - n->log[i].at > LOG_KEEP_MS) {
			free(n->log[i].firing);
			free(n->log[i].resolved);
		} else {
			n->log[k++] = n->log[i];
		}
	}
	n->n_log = k;
}

/* ---- views */

json_t *ntf_alerts_json(ntf *n, int64_t now, const al_matchers *filter, bool want_active,
			bool want_silenced, bool want_inhibited)
{
	json_t *out = json_array();
	nt_alert **all = calloc(n->n_a + 1, sizeof *all);
	size_t na = 0;
	for (size_t i = 0; all && i < n->a_slots; i++)
		if (n->a[i] && !resolved(n->a[i], now) &&
		    (!filter || al_matchers_match(filter, n->a[i]->labels)))
			all[na++] = n->a[i];
	if (all)
		qsort(all, na, sizeof *all, alert_cmp);
	for (size_t i = 0; i < na; i++) {
		nt_alert *a = all[i];
		json_t *sby = json_array(), *iby = json_array();
		bool s = silenced(n, a, now, sby), in = inhibited(n, a, now, iby);
		bool suppressed = s || in;
		if ((suppressed && !((s && want_silenced) || (in && want_inhibited))) ||
		    (!suppressed && !want_active)) {
			json_decref(sby);
			json_decref(iby);
			continue;
		}
		json_t *recv = json_array();
		nt_route *routes[64];
		size_t nr = n->root ? route_match(n->root, a->labels, routes, 64) : 0;
		for (size_t k = 0; k < nr; k++)
			json_array_append_new(recv, json_pack("{s:s}", "name", routes[k]->receiver));
		char st[40], en[40], up[40], hex[17];
		sdk_rfc3339_format_ms(a->starts, SDK_RFC3339_MILLIS, st, sizeof st);
		sdk_rfc3339_format_ms(a->ends, SDK_RFC3339_MILLIS, en, sizeof en);
		sdk_rfc3339_format_ms(a->updated, SDK_RFC3339_MILLIS, up, sizeof up);
		al_fingerprint_hex(a->fp, hex);
		json_array_append_new(
			out, json_pack("{s:O, s:O, s:s, s:s, s:s, s:s, s:o, s:{s:s, s:o, s:o}, s:s}",
				       "labels", a->labels, "annotations", a->annotations, "startsAt",
				       st, "endsAt", en, "updatedAt", up, "fingerprint", hex,
				       "receivers", recv, "status", "state",
				       suppressed ? "suppressed" : "active", "silencedBy", sby,
				       "inhibitedBy", iby, "generatorURL", a->generator));
	}
	free(all);
	return out;
}

json_t *ntf_groups_json(ntf *n, int64_t now)
{
	json_t *out = json_array();
	for (size_t i = 0; i < n->n_g; i++) {
		nt_group *g = n->g[i];
		json_t *alerts = json_array();
		for (size_t k = 0; k < g->n; k++) {
			nt_alert *a = alert_get(n, g->fps[k]);
			if (!a || resolved(a, now))
				continue;
			char st[40], en[40], hex[17];
			sdk_rfc3339_format_ms(a->starts, SDK_RFC3339_MILLIS, st, sizeof st);
			sdk_rfc3339_format_ms(a->ends, SDK_RFC3339_MILLIS, en, sizeof en);
			al_fingerprint_hex(a->fp, hex);
			json_array_append_new(alerts, json_pack("{s:O, s:O, s:s, s:s, s:s}", "labels",
								a->labels, "annotations", a->annotations,
								"startsAt", st, "endsAt", en,
								"fingerprint", hex));
		}
		json_array_append_new(out, json_pack("{s:O, s:{s:s}, s:o}", "labels", g->labels,
						     "receiver", "name", g->route->receiver, "alerts",
						     alerts));
	}
	return out;
}

json_t *ntf_receivers_json(const ntf *n)
{
	json_t *out = json_array();
	for (size_t i = 0; i < n->n_recv; i++)
		json_array_append_new(out, json_pack("{s:s}", "name", n->recv[i].name));
	return out;
}

size_t ntf_alert_count(const ntf *n, int64_t now, bool firing_only)
{
	size_t c = 0;
	for (size_t i = 0; i < n->a_slots; i++)
		if (n->a[i] && (!firing_only || !resolved(n->a[i], now)))
			c++;
	return c;
}

ntf *ntf_new(void)
{
	ntf *n = calloc(1, sizeof *n);
	if (n)
		n->resolve_timeout = RESOLVE_TIMEOUT_DEFAULT_MS;
	return n;
}

void ntf_free(ntf *n)
{
	if (!n)
		return;
	config_free(n->root, n->recv, n->n_recv, n->inh, n->n_inh);
	free(n->config_text);
	for (size_t i = 0; i < n->a_slots; i++)
		if (n->a[i])
			alert_free(n->a[i]);
	free(n->a);
	for (size_t i = 0; i < n->n_g; i++)
		group_free(n->g[i]);
	free(n->g);
	for (size_t i = 0; i < n->n_sil; i++)
		al_matchers_free(&n->sil[i].m);
	free(n->sil);
	for (size_t i = 0; i < n->n_log; i++) {
		free(n->log[i].firing);
		free(n->log[i].resolved);
	}
	free(n->log);
	free(n);
}

/* ---- the alerts across restarts */

json_t *ntf_alerts_dump(ntf *n)
{
	if (!n->dirty)
		return NULL;
	json_t *out = json_array();
	for (size_t i = 0; out && i < n->a_slots; i++) {
		const nt_alert *a = n->a[i];
		if (a)
			json_array_append_new(out, json_pack("{s:O, s:O, s:I, s:I, s:s}", "labels",
							     a->labels, "annotations", a->annotations,
							     "starts", (json_int_t)a->starts, "ends",
							     (json_int_t)a->ends, "generator", a->generator));
	}
	if (out)
		n->dirty = false;
	return out;
}

void ntf_alerts_load(ntf *n, const json_t *list, int64_t now)
{
	size_t i;
	json_t *a;
	json_array_foreach(list, i, a) {
		sdk_err e;
		int64_t ends = json_integer_value(json_object_get(a, "ends"));
		json_t *labels = json_object_get(a, "labels"), *ann = json_object_get(a, "annotations");
		if (!json_is_object(labels))
			continue;
		ntf_put(n, labels, json_is_object(ann) ? ann : NULL,
			json_integer_value(json_object_get(a, "starts")), ends ? ends : now,
			json_string_value(json_object_get(a, "generator")), now, &e);
	}
	n->dirty = false;
}
