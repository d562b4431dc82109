/* The compliance kernel (8114): controls as data, grouped in profiles,
 * checked on demand and on a schedule, each result with its evidence (what
 * was read, its SHA-256); waivers with an approver and an expiry; every
 * scan appended to the immutable log, so a report (NIST OSCAL 1.0.4
 * assessment results) can be proven unaltered. A result that changes is a
 * bus event and, when the alerts kernel runs, an alert. See
 * docs/compliance.md. */
#include "kernels/compliance/checks.h"
#include "kernels/compliance/oscal.h"
#include "kernels/compliance/profile.h"
#include "kernels/compliance/store.h"
#include "kernels/registry.h"
#include "sdk/call.h"
#include "sdk/clock.h"
#include "sdk/json_keys.h"
#include "sdk/log.h"
#include "sdk/pool.h"
#include "sdk/rfc3339.h"
#include "sdk/token.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const char cmp_default_profile_json[]; /* etc/compliance/default.json, built in */

#define CMP_DEFAULT_PROFILE "default"
#define CMP_BUS_SUBJECT "grace.compliance.changed"
#define CMP_CALL_TIMEOUT_MS 5000 /* bus, alerts, log appends */
#define CMP_LOG_RETRY_MS 2000    /* a scan not yet in the log is sent again this often */
#define CMP_SCHEDULE_BUSY_RETRY_MS 5000
#define CMP_BODY_MAX (256u << 10)
#define CMP_KEYS_MAX 256 /* keys whose versions a key_age check reads */
#define CMP_PAGE_MAX 100
#define CMP_WAIVER_ACTION "compliance.waiver" /* its governance action (sdk/govaction.c) */
#define CMP_EXECUTOR_CALLER "grace"           /* the main process runs approved actions */

struct scan;

typedef struct cmp {
	sdk_kernel *k;
	sdk_pool *pool;
	struct event *sched_timer, *log_timer;
	struct scan *running; /* one scan at a time */
	/* The log append in flight, or NULL; freed at close, when its
	 * callback no longer comes (calls end without calling back). */
	struct log_job *logging;
	bool closing;
	int64_t next_ms; /* the next scheduled scan, 0: none */
	unsigned long long scans, log_failures, bus_failures, alert_failures;
} cmp;

typedef struct scan {
	cmp *c;
	sdk_req *req; /* answered when the scan is stored and logged; NULL: scheduled */
	char profile[CMP_PROFILE_NAME_MAX + 1];
	char trigger[16];
	json_t *prof;    /* the profile, borrowed by the worker while it runs */
	json_t *results; /* one per control, in order */
	size_t n, next;  /* controls; the next one a remote check may be for */
	int64_t started_ms;
	char data_dir[PATH_MAX];
	/* key_age in progress */
	json_t *keys;
	size_t key_i;
	char *key_lines;
	size_t key_len;
	FILE *key_mem;
	unsigned key_old;
	/* once stored */
	int64_t id;
} scan;

static cmp *cmp_of(void *ctx) { return ((sdk_kernel *)ctx)->state; }

static bool kernel_configured(cmp *c, const char *name)
{
	const grace_kernel_cfg *kc = grace_config_kernel(c->k->cfg, name);
	return kc && kc->enabled;
}

static void scan_free(scan *s)
{
	if (!s)
		return;
	if (s->key_mem)
		fclose(s->key_mem);
	free(s->key_lines);
	json_decref(s->prof);
	json_decref(s->results);
	json_decref(s->keys);
	free(s);
}

static const json_t *control_at(scan *s, size_t i)
{
	return json_array_get(json_object_get(s->prof, "controls"), i);
}

static const json_t *check_at(scan *s, size_t i)
{
	return json_object_get(control_at(s, i), "check");
}

static void scan_next_remote(scan *s);
static void scan_finish(scan *s);

/* ---- local checks, on the worker pool */

static void scan_local_work(void *arg)
{
	scan *s = arg;
	cmp_env env = { .cfg = s->c->k->cfg, .data_dir = s->data_dir, .proc_net_dir = "/proc/net",
			.now_ms = s->started_ms };
	for (size_t i = 0; i < s->n; i++) {
		const json_t *check = check_at(s, i);
		const cmp_kind *kind = cmp_kind_find(json_string_value(json_object_get(check, "kind")));
		if (kind && kind->where == CMP_LOCAL)
			json_array_set_new(s->results, i, cmp_check_local(check, &env));
	}
}

static void scan_local_done(void *arg)
{
	scan *s = arg;
	if (s->c->closing)
		return; /* the close frees it */
	s->next = 0;
	scan_next_remote(s);
}

/* ---- remote checks: one at a time, each answer moves to the next */

static void remote_result(scan *s, json_t *r)
{
	json_array_set_new(s->results, s->next, r);
	s->next++;
	scan_next_remote(s);
}

static json_t *answer_result(const char *result, const char *message, const char *read,
			     const char *body, size_t len)
{
	json_t *r = cmp_result_new(result, message);
	cmp_result_evidence(r, read, body ? body : "", body ? len : 0);
	return r;
}

static void on_verify(int status, const char *body, size_t len, double ms, const char *error,
		      void *arg)
{
	(void)ms;
	scan *s = arg;
	json_t *j = body ? json_loadb(body, len, 0, NULL) : NULL;
	json_t *r;
	char msg[300];
	if (status != 200 || !json_is_object(j)) {
		snprintf(msg, sizeof msg, "the immutable log did not verify: %d %s", status,
			 error ? error : "");
		r = answer_result("error", msg, "immutable_log GET /verify", body, len);
	} else if (json_is_true(json_object_get(j, "ok"))) {
		snprintf(msg, sizeof msg, "the immutable log verifies (%lld entries)",
			 (long long)json_integer_value(json_object_get(j, "tree_size")));
		r = answer_result("pass", msg, "immutable_log GET /verify", body, len);
	} else {
		snprintf(msg, sizeof msg, "the immutable log does not verify: %.200s",
			 json_string_value(json_object_get(j, "reason"))
				 ? json_string_value(json_object_get(j, "reason"))
				 : "no reason given");
		r = answer_result("fail", msg, "immutable_log GET /verify", body, len);
	}
	json_decref(j);
	remote_result(s, r);
}

#define CMP_SVID_AUDIENCE "grace-compliance"

/* kernel_identity: the trust bundle has keys, then this kernel asks for
 * its own JWT-SVID and has it validated: the identity path works end to
 * end for a kernel. The token itself is kept out of the evidence. */
static void identity_end(scan *s, const char *result, const char *message, const char *read2,
			 const char *body2, size_t len2)
{
	json_t *r = cmp_result_new(result, message);
	cmp_result_evidence(r, "trust GET /bundle", s->key_lines ? s->key_lines : "",
			    s->key_lines ? s->key_len : 0);
	if (read2)
		cmp_result_evidence(r, read2, body2 ? body2 : "", body2 ? len2 : 0);
	free(s->key_lines);
	s->key_lines = NULL;
	s->key_len = 0;
	remote_result(s, r);
}

/* Which process holds each kernel's identity, against the kernels this
 * Grace runs (cmp_identity_verdict). */
static void on_workloads_seen(int status, const char *body, size_t len, double ms,
			      const char *error, void *arg)
{
	(void)ms;
	scan *s = arg;
	json_t *j = body ? json_loadb(body, len, 0, NULL) : NULL;
	char msg[600];
	if (status != 200 || !json_is_array(json_object_get(j, "workloads"))) {
		snprintf(msg, sizeof msg, "the trust kernel did not list its workloads: %d %s",
			 status, error ? error : "");
		identity_end(s, "error", msg, "trust GET /workloads", body, len);
	} else {
		bool ok = cmp_identity_verdict(s->c->k->cfg, j, cmp_kernel_alive, NULL, msg,
					       sizeof msg);
		identity_end(s, ok ? "pass" : "fail", msg, "trust GET /workloads", body, len);
	}
	json_decref(j);
}

static void on_svid_valid(int status, const char *body, size_t len, double ms,
			  const char *error, void *arg)
{
	(void)ms;
	scan *s = arg;
	json_t *j = body ? json_loadb(body, len, 0, NULL) : NULL;
	const char *id = json_string_value(json_object_get(j, "spiffe_id"));
	char want[128], msg[400];
	snprintf(want, sizeof want, "spiffe://grace.local/kernel/%s", s->c->k->def->name);
	if (status == 200 && id && !strcmp(id, want)) {
		/* The path works for this kernel; now every kernel, one by one. */
		if (sdk_call(s->c->k->caller, "trust", "GET", "/workloads", NULL, 0, NULL,
			     s->c->k->cfg->compliance.check_timeout_ms, on_workloads_seen, s) < 0)
			identity_end(s, "error", "cannot call the trust kernel", NULL, NULL, 0);
	} else {
		snprintf(msg, sizeof msg, "this kernel's SVID did not validate: %d %s", status,
			 error ? error : "");
		identity_end(s, status == 200 || status == 400 ? "fail" : "error", msg,
			     "trust POST /jwt-svid/validate", body, len);
	}
	json_decref(j);
}

static void on_svid(int status, const char *body, size_t len, double ms, const char *error,
		    void *arg)
{
	(void)ms;
	scan *s = arg;
	json_t *j = body ? json_loadb(body, len, 0, NULL) : NULL;
	const char *svid = json_string_value(
		json_object_get(json_array_get(json_object_get(j, "svids"), 0), "svid"));
	char msg[300];
	if (status != 200 || !svid) {
		json_decref(j);
		snprintf(msg, sizeof msg, "the trust kernel issued this kernel no SVID: %d %s", status,
			 error ? error : "");
		identity_end(s, status == 0 || status >= 500 ? "error" : "fail", msg, NULL, NULL, 0);
		return;
	}
	json_t *req = json_pack("{s:s, s:s}", "svid", svid, "audience", CMP_SVID_AUDIENCE);
	json_decref(j);
	char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	if (!text || sdk_call(s->c->k->caller, "trust", "POST", "/jwt-svid/validate", text,
			      strlen(text), NULL, s->c->k->cfg->compliance.check_timeout_ms,
			      on_svid_valid, s) < 0)
		identity_end(s, "error", "cannot call the trust kernel", NULL, NULL, 0);
	free(text);
}

static void on_bundle(int status, const char *body, size_t len, double ms, const char *error,
		      void *arg)
{
	(void)ms;
	scan *s = arg;
	json_t *j = body ? json_loadb(body, len, 0, NULL) : NULL;
	size_t keys = json_array_size(json_object_get(j, "keys"));
	bool parsed = json_is_object(j);
	json_decref(j);
	s->key_lines = malloc(len + 1);
	if (s->key_lines) {
		memcpy(s->key_lines, body ? body : "", body ? len : 0);
		s->key_lines[body ? len : 0] = '\0';
		s->key_len = body ? len : 0;
	}
	char msg[300];
	if (status != 200 || !parsed) {
		snprintf(msg, sizeof msg, "the trust kernel did not answer: %d %s", status,
			 error ? error : "");
		identity_end(s, "error", msg, NULL, NULL, 0);
	} else if (keys == 0) {
		identity_end(s, "fail", "the trust kernel publishes no signing key", NULL, NULL, 0);
	} else {
		static const char ask[] = "{\"audience\":\"" CMP_SVID_AUDIENCE "\"}";
		if (sdk_call(s->c->k->caller, "trust", "POST", "/jwt-svid", ask, sizeof ask - 1,
			     NULL, s->c->k->cfg->compliance.check_timeout_ms, on_svid, s) < 0)
			identity_end(s, "error", "cannot call the trust kernel", NULL, NULL, 0);
	}
}

static void key_next(scan *s);

static void key_age_end(scan *s, const char *result, const char *message)
{
	fclose(s->key_mem);
	s->key_mem = NULL;
	json_t *r = answer_result(result, message, "crypto GET /keys and GET /keys/NAME",
				  s->key_lines, s->key_len);
	free(s->key_lines);
	s->key_lines = NULL;
	s->key_len = 0;
	json_decref(s->keys);
	s->keys = NULL;
	remote_result(s, r);
}

static void on_key(int status, const char *body, size_t len, double ms, const char *error,
		   void *arg)
{
	(void)ms;
	scan *s = arg;
	json_t *j = body ? json_loadb(body, len, 0, NULL) : NULL;
	if (status != 200 || !json_is_object(j)) {
		json_decref(j);
		char msg[300];
		snprintf(msg, sizeof msg, "the crypto kernel did not answer for a key: %d %s", status,
			 error ? error : "");
		key_age_end(s, "error", msg);
		return;
	}
	/* The newest version's time: when the key was last rotated. */
	json_t *versions = json_object_get(j, "versions");
	json_t *last = json_array_get(versions, json_array_size(versions) - 1);
	int64_t at = json_integer_value(json_object_get(last ? last : j, "created_at"));
	int64_t max_days =
		json_integer_value(json_object_get(check_at(s, s->next), "max_age_days"));
	int64_t age_days = (s->started_ms - at) / (86400LL * 1000);
	bool old = s->started_ms - at > max_days * 86400LL * 1000;
	s->key_old += old;
	fprintf(s->key_mem, "%s version=%lld rotated_ms=%lld age_days=%lld%s\n",
		json_string_value(json_object_get(j, "name")),
		(long long)json_integer_value(json_object_get(j, "latest_version")), (long long)at,
		(long long)age_days, old ? " OLD" : "");
	json_decref(j);
	s->key_i++;
	key_next(s);
}

static void key_next(scan *s)
{
	size_t n = json_array_size(s->keys);
	if (s->key_i < n && s->key_i < CMP_KEYS_MAX) {
		const char *name = json_string_value(
			json_object_get(json_array_get(s->keys, s->key_i), "name"));
		char enc[512], path[600];
		if (!name || sdk_uri_encode(name, enc, sizeof enc) < 0) {
			key_age_end(s, "error", "a key's name cannot be asked for");
			return;
		}
		snprintf(path, sizeof path, "/keys/%s", enc);
		if (sdk_call(s->c->k->caller, "crypto", "GET", path, NULL, 0, NULL,
			     s->c->k->cfg->compliance.check_timeout_ms, on_key, s) < 0)
			key_age_end(s, "error", "cannot call the crypto kernel");
		return;
	}
	char msg[200];
	int64_t max_days = json_integer_value(json_object_get(check_at(s, s->next), "max_age_days"));
	if (n == 0) {
		key_age_end(s, "not_applicable", "the crypto kernel holds no keys");
	} else if (s->key_old) {
		snprintf(msg, sizeof msg, "%u of %zu keys not rotated within %lld days", s->key_old, n,
			 (long long)max_days);
		key_age_end(s, "fail", msg);
	} else {
		snprintf(msg, sizeof msg, "%zu keys%s, each rotated within %lld days", n,
			 n > CMP_KEYS_MAX ? " (the first checked)" : "", (long long)max_days);
		key_age_end(s, "pass", msg);
	}
}

static void on_keys(int status, const char *body, size_t len, double ms, const char *error,
		    void *arg)
{
	(void)ms;
	scan *s = arg;
	json_t *j = body ? json_loadb(body, len, 0, NULL) : NULL;
	if (status != 200 || !json_is_array(json_object_get(j, "keys"))) {
		json_decref(j);
		char msg[300];
		snprintf(msg, sizeof msg, "the crypto kernel did not list its keys: %d %s", status,
			 error ? error : "");
		remote_result(s, answer_result("error", msg, "crypto GET /keys", body, len));
		return;
	}
	s->keys = json_incref(json_object_get(j, "keys"));
	json_decref(j);
	s->key_i = 0;
	s->key_old = 0;
	s->key_mem = open_memstream(&s->key_lines, &s->key_len);
	if (!s->key_mem) {
		json_decref(s->keys);
		s->keys = NULL;
		remote_result(s, cmp_result_new("error", "out of memory"));
		return;
	}
	key_next(s);
}

/* Starts the remote check of control s->next, or moves on; the scan
 * finishes when none is left. */
static void scan_next_remote(scan *s)
{
	unsigned t = s->c->k->cfg->compliance.check_timeout_ms;
	for (; s->next < s->n; s->next++) {
		const char *kind = json_string_value(json_object_get(check_at(s, s->next), "kind"));
		const cmp_kind *kd = cmp_kind_find(kind ? kind : "");
		if (!kd || kd->where != CMP_REMOTE)
			continue;
		const char *callee = !strcmp(kind, "log_verify") ? "immutable_log"
				     : !strcmp(kind, "key_age")  ? "crypto"
								 : "trust";
		if (!kernel_configured(s->c, callee)) {
			char msg[120];
			snprintf(msg, sizeof msg, "the %s kernel is not configured", callee);
			/* No trust kernel: kernels run without identities (a failure);
			 * no log or no keys: nothing to check. */
			json_array_set_new(s->results, s->next,
					   answer_result(!strcmp(callee, "trust") ? "fail"
										  : "not_applicable",
							 msg, "the configuration", msg, strlen(msg)));
			continue;
		}
		sdk_call_cb cb = !strcmp(kind, "log_verify") ? on_verify
				 : !strcmp(kind, "key_age")  ? on_keys
							     : on_bundle;
		const char *path = !strcmp(kind, "log_verify") ? "/verify"
				   : !strcmp(kind, "key_age")  ? "/keys"
							       : "/bundle";
		if (sdk_call(s->c->k->caller, callee, "GET", path, NULL, 0, NULL, t, cb, s) < 0) {
			json_array_set_new(s->results, s->next,
					   cmp_result_new("error", "cannot call the kernel"));
			continue;
		}
		return;
	}
	scan_finish(s);
}

/* ---- the end of a scan: waivers, changes, store, events, the log */

static void on_published(int status, const char *body, size_t len, double ms,
			 const char *error, void *arg)
{
	(void)body, (void)len, (void)ms;
	cmp *c = arg;
	if ((status < 200 || status >= 300) && c->bus_failures++ % 50 == 0)
		sdk_warn("compliance: a change did not reach the bus (%d %s)", status,
			 error ? error : "");
}

static void on_alerted(int status, const char *body, size_t len, double ms, const char *error,
		       void *arg)
{
	(void)body, (void)len, (void)ms;
	cmp *c = arg;
	if ((status < 200 || status >= 300) && c->alert_failures++ % 50 == 0)
		sdk_warn("compliance: alerts were not taken (%d %s)", status, error ? error : "");
}

static void publish_changes(cmp *c, const json_t *changes)
{
	if (!kernel_configured(c, "message_bus"))
		return;
	size_t i;
	json_t *ch;
	json_array_foreach(changes, i, ch) {
		json_t *msg = json_pack("{s:s, s:O}", "subject", CMP_BUS_SUBJECT, "payload", ch);
		char *body = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
		json_decref(msg);
		if (!body || sdk_call(c->k->caller, "message_bus", "POST", "/publish", body,
				      strlen(body), NULL, CMP_CALL_TIMEOUT_MS, on_published, c) < 0)
			c->bus_failures++;
		free(body);
	}
}

/* Every bad control fires (sent again each scan, so it stays active); a
 * control that came back good is resolved. Alertmanager's wire format. */
static void post_alerts(cmp *c, const scan *s, const json_t *results, const json_t *changes,
			int64_t now_ms)
{
	if (!kernel_configured(c, "alerts"))
		return;
	char now[40];
	sdk_rfc3339_format_ms(now_ms, SDK_RFC3339_MILLIS, now, sizeof now);
	json_t *list = json_array();
	size_t i;
	json_t *r;
	json_array_foreach(results, i, r) {
		const char *res = json_string_value(json_object_get(r, "result"));
		const char *prev = NULL;
		size_t j;
		json_t *ch;
		json_array_foreach(changes, j, ch)
			if (!strcmp(json_string_value(json_object_get(ch, "control_id")),
				    json_string_value(json_object_get(r, "control_id"))))
				prev = json_string_value(json_object_get(ch, "previous"));
		bool bad = cmp_result_bad(res);
		if (!bad && !cmp_result_bad(prev))
			continue;
		json_t *al = json_pack("{s:{s:s, s:s, s:s, s:s, s:s}, s:{s:s, s:s}, s:s}", "labels",
				       "alertname", "GraceComplianceControl", "control",
				       json_string_value(json_object_get(r, "control_id")), "profile",
				       s->profile, "result", res, "severity", "warning",
				       "annotations", "summary",
				       json_string_value(json_object_get(r, "title")), "description",
				       json_string_value(json_object_get(r, "message")), "startsAt",
				       now);
		if (!al)
			continue;
		if (!bad)
			json_object_set_new(al, "endsAt", json_string(now));
		json_array_append_new(list, al);
	}
	char *body = json_array_size(list) ? json_dumps(list, JSON_COMPACT) : NULL;
	json_decref(list);
	if (body && sdk_call(c->k->caller, "alerts", "POST", "/api/v2/alerts", body, strlen(body),
			     NULL, CMP_CALL_TIMEOUT_MS, on_alerted, c) < 0)
		c->alert_failures++;
	free(body);
}

static void reply_scan(cmp *c, sdk_req *req, int64_t id, int code)
{
	json_t *out = NULL;
	sdk_err e;
	int rc = cmp_scan_get(c->k->db, id, &out, &e);
	if (rc < 0)
		sdk_reply_status(req, rc, &e);
	else
		sdk_reply_json(req, code, out);
}

static void log_arm(cmp *c);

/* The scan that was being logged when the answer came: c->running while
 * it waits (its request is answered then), else the retry's. */
struct log_job {
	cmp *c;
	int64_t id;
};

static void on_logged(int status, const char *body, size_t len, double ms, const char *error,
		      void *arg)
{
	(void)ms;
	struct log_job *lj = arg;
	cmp *c = lj->c;
	int64_t id = lj->id;
	free(lj);
	c->logging = NULL;
	json_t *j = body ? json_loadb(body, len, 0, NULL) : NULL;
	json_t *idx = json_object_get(j, "index");
	const char *leaf = json_string_value(json_object_get(j, "leaf_hash"));
	sdk_err e;
	if (status != 201 || !json_is_integer(idx) || !leaf) {
		if (c->log_failures++ % 50 == 0)
			sdk_warn("compliance: scan %lld not appended to the immutable log (%d %s); "
				 "will retry",
				 (long long)id, status, error ? error : "");
	} else if (cmp_scan_set_logged(c->k->db, id, json_integer_value(idx), leaf, &e) < 0) {
		sdk_error("compliance: scan %lld is at log index %lld but that cannot be stored "
			  "(%s): it will be appended again",
			  (long long)id, (long long)json_integer_value(idx), e.msg);
	}
	json_decref(j);
	scan *s = c->running;
	if (s && s->id == id) {
		c->running = NULL;
		if (s->req)
			reply_scan(c, s->req, id, 201);
		scan_free(s);
	}
	log_arm(c);
}

/* Appends a stored scan's record to the log. */
static int log_append(cmp *c, int64_t id, const char *record)
{
	if (!kernel_configured(c, "immutable_log"))
		return -1;
	json_t *data = json_loads(record, 0, NULL);
	json_t *entry = data ? json_pack("{s:o}", "data", data) : NULL;
	char *body = entry ? json_dumps(entry, JSON_COMPACT) : NULL;
	json_decref(entry);
	struct log_job *lj = body ? malloc(sizeof *lj) : NULL;
	int rc = -1;
	if (lj) {
		*lj = (struct log_job){ c, id };
		c->logging = lj; /* before: were on_logged ever called at once, it clears it */
		rc = sdk_call(c->k->caller, "immutable_log", "POST", "/entries", body, strlen(body),
			      NULL, CMP_CALL_TIMEOUT_MS, on_logged, lj);
		if (rc < 0) {
			c->logging = NULL;
			free(lj);
		}
	}
	free(body);
	return rc;
}

static void on_log_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	cmp *c = arg;
	if (c->logging || c->closing)
		return;
	int64_t id;
	char *record = NULL;
	if (cmp_scan_unlogged(c->k->db, &id, &record, NULL) == 0 &&
	    (!c->running || c->running->id != id))
		if (log_append(c, id, record) < 0)
			log_arm(c);
	free(record);
}

static void log_arm(cmp *c)
{
	struct timeval tv = { CMP_LOG_RETRY_MS / 1000, 0 };
	if (!c->closing)
		evtimer_add(c->log_timer, &tv);
}

/* The text appended to the log: the scan and each control's result with
 * the hashes of its evidence (canonical: compact, keys sorted). */
static char *scan_record(const json_t *scan_obj)
{
	json_t *rs = json_array();
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(scan_obj, "results"), i, r) {
		json_t *hashes = json_array();
		size_t j;
		json_t *e;
		json_array_foreach(json_object_get(r, "evidence"), j, e)
			json_array_append(hashes, json_object_get(e, "sha256"));
		json_t *one = json_pack("{s:O, s:O, s:o}", "control_id",
					json_object_get(r, "control_id"), "result",
					json_object_get(r, "result"), "evidence_sha256", hashes);
		if (one && json_object_get(r, "raw_result"))
			json_object_set(one, "raw_result", json_object_get(r, "raw_result"));
		if (one && json_object_get(r, "waiver"))
			json_object_set(one, "waiver", json_object_get(r, "waiver"));
		json_array_append_new(rs, one ? one : json_null());
	}
	json_t *rec = json_pack("{s:s, s:O, s:O, s:O, s:O, s:O, s:o}", "type",
				"grace.compliance.scan", "scan_uuid", json_object_get(scan_obj, "uuid"),
				"profile", json_object_get(scan_obj, "profile"), "trigger",
				json_object_get(scan_obj, "trigger"), "started_ms",
				json_object_get(scan_obj, "started_ms"), "ended_ms",
				json_object_get(scan_obj, "ended_ms"), "results", rs);
	char *text = rec ? json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(rec);
	return text;
}

static void scan_fail(scan *s, int rc, const sdk_err *e)
{
	cmp *c = s->c;
	sdk_warn("compliance: scan of %s not stored: %s", s->profile, e->msg);
	if (s->req)
		sdk_reply_status(s->req, rc, e);
	c->running = NULL;
	scan_free(s);
}

static void scan_finish(scan *s)
{
	cmp *c = s->c;
	int64_t now = sdk_wall_ms();
	json_t *waivers = NULL, *prev = NULL;
	sdk_err e;
	int rc = cmp_waiver_list(c->k->db, &waivers, &e);
	if (rc < 0) {
		scan_fail(s, rc, &e);
		return;
	}
	rc = cmp_scan_previous(c->k->db, s->profile, 0, &prev, &e);
	if (rc < 0 && rc != SDK_ENOTFOUND) {
		json_decref(waivers);
		scan_fail(s, rc, &e);
		return;
	}
	json_t *changes = json_array();
	json_t *summary = json_object();
	for (size_t i = 0; i < s->n; i++) {
		json_t *r = json_array_get(s->results, i);
		if (!json_is_object(r)) {
			r = cmp_result_new("error", "the check gave no result");
			json_array_set_new(s->results, i, r);
		}
		const json_t *ctl = control_at(s, i);
		const char *cid = json_string_value(json_object_get(ctl, "id"));
		char ou[37], fu[37];
		cmp_uuid4(ou);
		cmp_uuid4(fu);
		json_object_set(r, "control_id", json_object_get(ctl, "id"));
		json_object_set(r, "title", json_object_get(ctl, "title"));
		json_object_set(r, "kind", json_object_get(json_object_get(ctl, "check"), "kind"));
		json_object_set_new(r, "observation_uuid", json_string(ou));
		json_object_set_new(r, "finding_uuid", json_string(fu));
		cmp_waiver_apply(r, cid, waivers, now);
		const char *res = json_string_value(json_object_get(r, "result"));
		json_object_set_new(summary, res,
				    json_integer(json_integer_value(json_object_get(summary, res)) + 1));
		const char *before = NULL;
		size_t j;
		json_t *pr;
		json_array_foreach(json_object_get(prev, "results"), j, pr)
			if (!strcmp(json_string_value(json_object_get(pr, "control_id")), cid))
				before = json_string_value(json_object_get(pr, "result"));
		if (cmp_result_changed(before, res))
			json_array_append_new(changes,
					      json_pack("{s:s, s:s, s:s, s:o, s:s}", "profile",
							s->profile, "control_id", cid, "title",
							json_string_value(json_object_get(ctl, "title")),
							"previous", before ? json_string(before) : json_null(),
							"result", res));
	}
	json_decref(waivers);
	json_decref(prev);
	char su[37], ru[37];
	cmp_uuid4(su);
	cmp_uuid4(ru);
	json_t *title = json_object_get(s->prof, "title"), *ver = json_object_get(s->prof, "version");
	json_t *obj = json_pack("{s:s, s:s, s:s, s:O, s:s, s:s, s:I, s:I, s:O, s:o}", "uuid", su,
				"report_uuid", ru, "profile", s->profile, "profile_title", title,
				"profile_version", ver ? json_string_value(ver) : "1", "trigger",
				s->trigger, "started_ms", (json_int_t)s->started_ms, "ended_ms",
				(json_int_t)now, "results", s->results, "summary", summary);
	char *record = obj ? scan_record(obj) : NULL;
	if (!record) {
		json_decref(obj);
		json_decref(changes);
		sdk_fail(&e, SDK_EIO, "out of memory");
		scan_fail(s, SDK_EIO, &e);
		return;
	}
	rc = cmp_scan_insert(c->k->db, obj, record, c->k->cfg->compliance.scans_keep, &s->id, &e);
	if (rc < 0) {
		free(record);
		json_decref(obj);
		json_decref(changes);
		scan_fail(s, rc, &e);
		return;
	}
	c->scans++;
	size_t ci;
	json_t *ch;
	json_array_foreach(changes, ci, ch)
		json_object_set_new(ch, "scan_id", json_integer(s->id));
	publish_changes(c, changes);
	post_alerts(c, s, s->results, changes, now);
	json_decref(changes);
	json_decref(obj);
	/* The answer waits for the log, so the scan it returns cites its
	 * index; without the log it is answered now and appended later. */
	if (c->logging || log_append(c, s->id, record) < 0) {
		c->running = NULL;
		if (s->req)
			reply_scan(c, s->req, s->id, 201);
		scan_free(s);
		log_arm(c);
	}
	free(record);
}

/* Starts a scan of `profile`: 0, or a negative status with err. */
static int scan_start(cmp *c, const char *profile, const char *trigger, sdk_req *req,
		      sdk_err *err)
{
	if (c->running)
		return sdk_fail(err, SDK_EBUSY, "a scan is running; try again when it ends");
	json_t *prof = NULL;
	int rc = cmp_profile_get(c->k->db, profile, &prof, err);
	if (rc < 0)
		return rc;
	scan *s = calloc(1, sizeof *s);
	if (!s) {
		json_decref(prof);
		return sdk_fail(err, SDK_EBUSY, "out of memory");
	}
	s->c = c;
	s->req = req;
	s->prof = prof;
	s->n = json_array_size(json_object_get(prof, "controls"));
	s->results = json_array();
	for (size_t i = 0; i < s->n; i++)
		json_array_append_new(s->results, json_null());
	snprintf(s->profile, sizeof s->profile, "%s", profile);
	snprintf(s->trigger, sizeof s->trigger, "%s", trigger);
	snprintf(s->data_dir, sizeof s->data_dir, "%s", c->k->cfg->data_dir);
	s->started_ms = sdk_wall_ms();
	rc = sdk_pool_submit(c->pool, scan_local_work, scan_local_done, s);
	if (rc < 0) {
		scan_free(s);
		return sdk_fail(err, SDK_EBUSY, "the worker pool is full");
	}
	c->running = s;
	return 0;
}

/* ---- the schedule: the next scan's time is stored, so a restart keeps it */

static unsigned interval_s(cmp *c)
{
	return (unsigned)cmp_setting_get(c->k->db, "interval_s", c->k->cfg->compliance.scan_interval_s);
}

static void sched_arm(cmp *c, int64_t now_ms)
{
	evtimer_del(c->sched_timer);
	unsigned iv = interval_s(c);
	if (iv == 0 || c->closing) {
		c->next_ms = 0;
		return;
	}
	int64_t next = cmp_setting_get(c->k->db, "next_ms", 0);
	if (next <= 0 || next > now_ms + (int64_t)iv * 1000) {
		next = now_ms + (int64_t)iv * 1000;
		cmp_setting_set(c->k->db, "next_ms", next, NULL);
	}
	c->next_ms = next;
	int64_t wait = next > now_ms ? next - now_ms : 0;
	struct timeval tv = { (time_t)(wait / 1000), (suseconds_t)(wait % 1000) * 1000 };
	evtimer_add(c->sched_timer, &tv);
}

static void on_sched_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	cmp *c = arg;
	int64_t now = sdk_wall_ms();
	sdk_err e;
	if (scan_start(c, CMP_DEFAULT_PROFILE, "schedule", NULL, &e) < 0) {
		sdk_warn("compliance: the scheduled scan did not start: %s", e.msg);
		struct timeval tv = { CMP_SCHEDULE_BUSY_RETRY_MS / 1000, 0 };
		evtimer_add(c->sched_timer, &tv);
		return;
	}
	cmp_setting_set(c->k->db, "next_ms", now + (int64_t)interval_s(c) * 1000, NULL);
	sched_arm(c, now);
}

/* ---- routes */

static json_t *body_object(sdk_req *req)
{
	if (sdk_req_body_len(req) > CMP_BODY_MAX) {
		sdk_reply_error(req, 413, "too_large", "the body is over %u bytes", CMP_BODY_MAX);
		return NULL;
	}
	return sdk_req_json(req, true);
}

static void on_checks(sdk_req *req, void *ctx)
{
	(void)ctx;
	size_t n;
	const cmp_kind *k = cmp_kinds(&n);
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_pack("{s:s, s:s, s:s}", "kind", k[i].name, "runs",
						   k[i].where == CMP_LOCAL ? "local" : "remote",
						   "summary", k[i].summary));
	sdk_reply_json(req, 200, json_pack("{s:o}", "kinds", a));
}

static void on_profiles(sdk_req *req, void *ctx)
{
	json_t *out;
	sdk_err e;
	int rc = cmp_profile_list(cmp_of(ctx)->k->db, &out, &e);
	if (rc < 0)
		sdk_reply_status(req, rc, &e);
	else
		sdk_reply_json(req, 200, json_pack("{s:o}", "profiles", out));
}

static bool profile_name(sdk_req *req, const char **name)
{
	*name = sdk_req_param(req, "name");
	if (!cmp_name_valid(*name, CMP_PROFILE_NAME_MAX)) {
		sdk_reply_error(req, 400, "invalid",
				"name: 1 to %d of A-Z a-z 0-9 _ - ., a letter or _ first",
				CMP_PROFILE_NAME_MAX);
		return false;
	}
	return true;
}

static void on_profile_get(sdk_req *req, void *ctx)
{
	const char *name;
	if (!profile_name(req, &name))
		return;
	json_t *out;
	sdk_err e;
	int rc = cmp_profile_get(cmp_of(ctx)->k->db, name, &out, &e);
	if (rc < 0)
		sdk_reply_status(req, rc, &e);
	else
		sdk_reply_json(req, 200, out);
}

static void on_profile_put(sdk_req *req, void *ctx)
{
	const char *name;
	if (!profile_name(req, &name))
		return;
	json_t *body = body_object(req);
	if (!body)
		return;
	sdk_err e;
	int rc = cmp_profile_check(body, &e);
	if (rc < 0) {
		sdk_reply_error(req, 400, "invalid", "%s", e.msg);
		return;
	}
	rc = cmp_profile_put(cmp_of(ctx)->k->db, name, body, sdk_wall_ms(), &e);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	json_t *out = json_deep_copy(body);
	json_object_set_new(out, "name", json_string(name));
	sdk_reply_json(req, 200, out);
}

static void on_profile_delete(sdk_req *req, void *ctx)
{
	const char *name;
	if (!profile_name(req, &name))
		return;
	if (!strcmp(name, CMP_DEFAULT_PROFILE)) {
		sdk_reply_error(req, 409, "conflict",
				"the default profile is scanned on the schedule: replace it instead");
		return;
	}
	sdk_err e;
	int rc = cmp_profile_delete(cmp_of(ctx)->k->db, name, &e);
	if (rc < 0)
		sdk_reply_status(req, rc, &e);
	else
		sdk_reply_json(req, 200, json_pack("{s:s}", "deleted", name));
}

static void on_scan_post(sdk_req *req, void *ctx)
{
	cmp *c = cmp_of(ctx);
	const char *profile = CMP_DEFAULT_PROFILE;
	if (sdk_req_body_len(req)) {
		json_t *body = body_object(req);
		if (!body)
			return;
		static const char *const fields[] = { "profile", NULL };
		if (sdk_req_fields_only(req, body, fields) < 0)
			return;
		json_t *p = json_object_get(body, "profile");
		if (p && (!json_is_string(p) ||
			  !cmp_name_valid(json_string_value(p), CMP_PROFILE_NAME_MAX))) {
			sdk_reply_error(req, 400, "invalid", "profile: a profile's name");
			return;
		}
		if (p)
			profile = json_string_value(p);
	}
	sdk_err e;
	int rc = scan_start(c, profile, "request", req, &e);
	if (rc == SDK_EBUSY) {
		sdk_req_add_header(req, "Retry-After", "1");
		sdk_reply_error(req, 409, "scan_running", "%s", e.msg);
	} else if (rc < 0) {
		sdk_reply_status(req, rc, &e);
	}
}

/* ":id": a scan's number or "latest"; answers and returns -1 when bad. */
static int scan_id(sdk_req *req, int64_t *id)
{
	const char *s = sdk_req_param(req, "id");
	if (!strcmp(s, "latest")) {
		*id = 0;
		return 0;
	}
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (!*s || *end || errno || v <= 0) {
		sdk_reply_error(req, 400, "bad_id", "a scan id is a positive integer or \"latest\"");
		return -1;
	}
	*id = v;
	return 0;
}

static void on_scans(sdk_req *req, void *ctx)
{
	unsigned long long limit, before;
	if (sdk_req_query_uint(req, "limit", 1, CMP_PAGE_MAX, 20, &limit) < 0 ||
	    sdk_req_query_uint(req, "before", 0, 1ULL << 62, 0, &before) < 0)
		return;
	json_t *out;
	sdk_err e;
	int rc = cmp_scan_list(cmp_of(ctx)->k->db, (unsigned)limit, (int64_t)before, &out, &e);
	if (rc < 0)
		sdk_reply_status(req, rc, &e);
	else
		sdk_reply_json(req, 200, json_pack("{s:o}", "scans", out));
}

static void on_scan_get(sdk_req *req, void *ctx)
{
	int64_t id;
	if (scan_id(req, &id) == 0)
		reply_scan(cmp_of(ctx), req, id, 200);
}

/* The scan the path names (ID or latest), or NULL once the request is
 * answered with why not. A new reference. */
static json_t *scan_of_path(sdk_req *req, void *ctx)
{
	int64_t id;
	if (scan_id(req, &id) < 0)
		return NULL;
	json_t *s;
	sdk_err e;
	int rc = cmp_scan_get(cmp_of(ctx)->k->db, id, &s, &e);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return NULL;
	}
	return s;
}

static void on_report(sdk_req *req, void *ctx)
{
	json_t *s = scan_of_path(req, ctx);
	if (!s)
		return;
	json_t *doc = cmp_oscal_build(s);
	json_decref(s);
	if (!doc)
		sdk_reply_error(req, 500, "internal", "the report could not be built");
	else
		sdk_reply_json(req, 200, doc);
}

static void on_summary(sdk_req *req, void *ctx)
{
	json_t *s = scan_of_path(req, ctx);
	if (!s)
		return;
	struct evbuffer *b = evbuffer_new();
	char t0[40], t1[40];
	evbuffer_add_printf(
		b, "Compliance scan %lld of profile %s (%s)\nstarted %s, ended %s\n",
		(long long)json_integer_value(json_object_get(s, "id")),
		json_string_value(json_object_get(s, "profile")),
		json_string_value(json_object_get(s, "profile_title")),
		sdk_rfc3339_format_ms(json_integer_value(json_object_get(s, "started_ms")),
				      SDK_RFC3339_MILLIS, t0, sizeof t0),
		sdk_rfc3339_format_ms(json_integer_value(json_object_get(s, "ended_ms")),
				      SDK_RFC3339_MILLIS, t1, sizeof t1));
	json_t *li = json_object_get(s, "log_index");
	if (json_is_integer(li))
		evbuffer_add_printf(b, "immutable log index %lld, leaf hash %s\n",
				    (long long)json_integer_value(li),
				    json_string_value(json_object_get(s, "leaf_hash")));
	else
		evbuffer_add_printf(b, "not yet in the immutable log\n");
	static const char *const order[] = { "pass", "fail", "waived", "error", "not_applicable",
					     "info" };
	json_t *sum = json_object_get(s, "summary");
	for (size_t i = 0; i < sizeof order / sizeof *order; i++)
		evbuffer_add_printf(b, "%s%s %lld", i ? ", " : "", order[i],
				    (long long)json_integer_value(json_object_get(sum, order[i])));
	evbuffer_add_printf(b, "\n\n");
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(s, "results"), i, r) {
		char up[20];
		const char *res = json_string_value(json_object_get(r, "result"));
		size_t k = 0;
		for (; res && res[k] && k < sizeof up - 1; k++)
			up[k] = (char)(res[k] >= 'a' && res[k] <= 'z' ? res[k] - 32 : res[k]);
		up[k] = '\0';
		evbuffer_add_printf(b, "%-15s %-24s %s\n", up,
				    json_string_value(json_object_get(r, "control_id")),
				    json_string_value(json_object_get(r, "message")));
	}
	json_decref(s);
	sdk_reply_raw(req, 200, "text/plain; charset=utf-8", b);
	evbuffer_free(b);
}

static void on_waivers(sdk_req *req, void *ctx)
{
	json_t *out;
	sdk_err e;
	int rc = cmp_waiver_list(cmp_of(ctx)->k->db, &out, &e);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	int64_t now = sdk_wall_ms();
	size_t i;
	json_t *w;
	json_array_foreach(out, i, w)
		json_object_set_new(w, "expired",
				    json_boolean(json_integer_value(json_object_get(w, "expires_ms")) <=
						 now));
	sdk_reply_json(req, 200, json_pack("{s:o}", "waivers", out));
}

static bool text_field(sdk_req *req, json_t *body, const char *name, size_t max, bool ident,
		       const char **out)
{
	json_t *v = json_object_get(body, name);
	const char *s = json_string_value(v);
	if (!s || !*s || json_string_length(v) > max || (ident && !cmp_name_valid(s, max))) {
		sdk_reply_error(req, 400, "invalid", "%s: required, %s of 1 to %zu bytes", name,
				ident ? "a name (A-Z a-z 0-9 _ - ., a letter or _ first)"
				      : "a string",
				max);
		return false;
	}
	*out = s;
	return true;
}

/* A waiver's fields (control_id, reason, expires_at or expires_in_s), as
 * POST /waivers takes them and as the approved request carries them: 0,
 * or answers 400 and returns -1. An expires_in_s counts from now_ms: from
 * the approval, when the waiver is taken. */
static int waiver_fields(sdk_req *req, cmp *c, json_t *body, int64_t now, const char **control,
			 const char **reason, int64_t *expires)
{
	if (json_object_get(body, "approver")) {
		sdk_reply_error(req, 400, "invalid",
				"approver: not given by the requester: the approver is the admin who"
				" approves the waiver's change request in governance");
		return -1;
	}
	static const char *const fields[] = { "control_id", "reason", "expires_at", "expires_in_s",
					      NULL };
	if (sdk_req_fields_only(req, body, fields) < 0)
		return -1;
	if (!text_field(req, body, "control_id", CMP_ID_MAX, true, control) ||
	    !text_field(req, body, "reason", CMP_TEXT_MAX, false, reason))
		return -1;
	json_t *at = json_object_get(body, "expires_at"), *in = json_object_get(body, "expires_in_s");
	if (!at == !in) {
		sdk_reply_error(req, 400, "invalid",
				"expires_at: give exactly one of expires_at (RFC 3339) and expires_in_s");
		return -1;
	}
	if (at && (!json_is_string(at) || !sdk_rfc3339_parse_ms(json_string_value(at), expires))) {
		sdk_reply_error(req, 400, "invalid", "expires_at: an RFC 3339 time");
		return -1;
	}
	if (in) {
		if (!json_is_integer(in) || json_integer_value(in) < 1 ||
		    json_integer_value(in) > 3650LL * 86400) {
			sdk_reply_error(req, 400, "invalid", "expires_in_s: a positive integer");
			return -1;
		}
		*expires = now + json_integer_value(in) * 1000;
	}
	int64_t max_ms = (int64_t)c->k->cfg->compliance.waiver_max_days * 86400 * 1000;
	if (*expires <= now || *expires - now > max_ms) {
		sdk_reply_error(req, 400, "invalid",
				"expires_at: in the future, and at most %u days away ([compliance] "
				"waiver_max_days)",
				c->k->cfg->compliance.waiver_max_days);
		return -1;
	}
	return 0;
}

/* The governance kernel opened the waiver's change request (or not). */
static void on_waiver_opened(int status, const char *body, size_t len, double ms,
			     const char *error, void *arg)
{
	(void)ms;
	sdk_req *req = arg;
	json_t *j = body ? json_loadb(body, len, 0, NULL) : NULL;
	if (status == 201 && json_is_object(j)) {
		char loc[64];
		snprintf(loc, sizeof loc, "/governance/requests/%lld",
			 (long long)json_integer_value(json_object_get(j, "id")));
		sdk_req_add_header(req, "Location", loc);
		sdk_reply_json(req, 202, json_pack("{s:s, s:o}", "status", "pending_approval",
						   "change_request", j));
		return;
	}
	if (status >= 400 && status < 500 && json_is_object(json_object_get(j, "error"))) {
		sdk_reply_json(req, status, j);
		return;
	}
	json_decref(j);
	sdk_reply_error(req, 503, "governance_unavailable",
			"a waiver needs approval, and the governance kernel cannot take the "
			"request now (%d %s)", status, error ? error : "");
}

/* POST /waivers: a waiver is never taken on the requester's word. It is
 * opened as a change request (compliance.waiver, gated always) in the
 * governance kernel for the requesting user, and taken only once approved
 * (POST /waivers/approved, by the governance executor). */
static void on_waiver_post(sdk_req *req, void *ctx)
{
	cmp *c = cmp_of(ctx);
	json_t *body = body_object(req);
	if (!body)
		return;
	const char *control, *reason;
	int64_t expires;
	if (waiver_fields(req, c, body, sdk_wall_ms(), &control, &reason, &expires) < 0)
		return;
	int role;
	const char *user = sdk_req_caller(req, c->k->token, &role);
	if (!user) {
		sdk_reply_error(req, 403, "forbidden",
				"a waiver is requested by a user (through :8000), who needs another"
				" admin's approval");
		return;
	}
	if (!kernel_configured(c, "governance")) {
		sdk_reply_error(req, 503, "governance_unavailable",
				"a waiver needs approval through governance, and no governance kernel"
				" is configured");
		return;
	}
	json_t *rb = json_pack("{s:s, s:{s:s, s:O}, s:s}", "action", CMP_WAIVER_ACTION, "params",
			       "control_id", control, "body", body, "reason", reason);
	char *text = rb ? json_dumps(rb, JSON_COMPACT) : NULL;
	json_decref(rb);
	const char *h[] = { SDK_USER_HEADER, user, SDK_ROLE_HEADER,
			    role == SDK_CALLER_ADMIN ? "admin" : "user", NULL };
	if (!text || sdk_call(c->k->caller, "governance", "POST", "/requests", text, strlen(text), h,
			      CMP_CALL_TIMEOUT_MS, on_waiver_opened, req) < 0)
		sdk_reply_error(req, 503, "governance_unavailable",
				"cannot reach the governance kernel");
	free(text);
}

typedef struct waiver_take {
	cmp *c;
	sdk_req *req;
	int64_t request_id;
} waiver_take;

/* Joins the approvers' names: "ann" or "ann, bob". */
static char *approvers_of(const json_t *approvals)
{
	size_t n = 0, i;
	const json_t *a;
	json_array_foreach(approvals, i, a)
		n += json_string_length(json_object_get(a, "user")) + 2;
	char *out = calloc(1, n + 1);
	if (!out)
		return NULL;
	json_array_foreach(approvals, i, a) {
		const char *u = json_string_value(json_object_get(a, "user"));
		if (!u)
			continue;
		if (*out)
			strcat(out, ", ");
		strcat(out, u);
	}
	return out;
}

/* The change request, as the governance kernel has it: the waiver is taken
 * only from an approved request being run, with the approvals it had. */
static void on_waiver_record(int status, const char *body, size_t len, double ms,
			     const char *error, void *arg)
{
	(void)ms;
	waiver_take *t = arg;
	cmp *c = t->c;
	sdk_req *req = t->req;
	int64_t id = t->request_id;
	free(t);
	json_t *r = status == 200 && body ? json_loadb(body, len, 0, NULL) : NULL;
	if (!json_is_object(r)) {
		json_decref(r);
		if (status == 404)
			sdk_reply_error(req, 404, "not_found", "governance has no change request %lld",
					(long long)id);
		else
			sdk_reply_error(req, 503, "governance_unavailable",
					"cannot read change request %lld from governance (%d %s)",
					(long long)id, status, error ? error : "");
		return;
	}
	const char *action = json_string_value(json_object_get(r, "action"));
	const char *state = json_string_value(json_object_get(r, "state"));
	json_t *approvals = json_object_get(r, "approvals");
	json_t *params = json_object_get(r, "params");
	json_t *wbody = json_object_get(params, "body");
	const char *requester = json_string_value(json_object_get(r, "requester"));
	if (!action || strcmp(action, CMP_WAIVER_ACTION)) {
		sdk_reply_error(req, 409, "not_a_waiver", "change request %lld is %s, not a waiver",
				(long long)id, action ? action : "(none)");
	} else if (!state || strcmp(state, "running") || json_array_size(approvals) == 0) {
		/* Break-glass runs an action without approval: not a waiver's. */
		sdk_reply_error(req, 409, "not_approved",
				"change request %lld is %s%s: a waiver is taken only once approved",
				(long long)id, state ? state : "(no state)",
				json_array_size(approvals) ? "" : ", with no approval");
	} else if (!json_is_object(wbody) ||
		   !json_equal(json_object_get(wbody, "control_id"),
			       json_object_get(params, "control_id"))) {
		sdk_reply_error(req, 400, "invalid",
				"change request %lld carries no waiver (params.body, with the"
				" control_id of params); request one with POST /compliance/waivers",
				(long long)id);
	} else {
		json_t *have = NULL;
		sdk_err e;
		int64_t now = sdk_wall_ms(), expires, wid;
		const char *control, *reason;
		if (cmp_waiver_of_request(c->k->db, id, &have, NULL) == 0) {
			json_object_set_new(have, "expired",
					    json_boolean(json_integer_value(json_object_get(
								 have, "expires_ms")) <= now));
			sdk_reply_json(req, 200, have); /* the executor asked again */
		} else if (waiver_fields(req, c, wbody, now, &control, &reason, &expires) == 0) {
			char *approver = approvers_of(approvals);
			cmp_waiver_new w = { .control_id = control,
					     .reason = reason,
					     .approver = approver ? approver : "",
					     .requested_by = requester,
					     .created_ms = now,
					     .expires_ms = expires,
					     .change_request = id,
					     .approvals = approvals };
			int rc = approver ? cmp_waiver_insert(c->k->db, &w, &wid, &e)
					  : sdk_fail(&e, SDK_EIO, "out of memory");
			free(approver);
			if (rc == 0)
				rc = cmp_waiver_of_request(c->k->db, id, &have, &e);
			if (rc < 0) {
				sdk_reply_status(req, rc, &e);
			} else {
				json_object_set_new(have, "expired", json_false());
				sdk_reply_json(req, 201, have);
			}
		}
	}
	json_decref(r);
}

/* POST /waivers/approved {"request_id"}: the governance executor's (the
 * main process, caller "grace", no user) once the waiver's request is
 * approved. A user, even an admin through /kernels/compliance, cannot
 * reach it: the gateway always names itself and the user. And the request
 * id alone is taken: the waiver, its state and its approvals are read from
 * the governance kernel. */
static void on_waiver_approved(sdk_req *req, void *ctx)
{
	cmp *c = cmp_of(ctx);
	const char *caller = sdk_req_header(req, SDK_CALLER_HEADER);
	int role;
	if (!caller || strcmp(caller, CMP_EXECUTOR_CALLER) || sdk_req_caller(req, c->k->token, &role)) {
		sdk_reply_error(req, 403, "forbidden",
				"a waiver is taken only by the governance executor once its change"
				" request is approved; request one with POST /compliance/waivers");
		return;
	}
	json_t *body = body_object(req);
	if (!body)
		return;
	static const char *const fields[] = { "request_id", NULL };
	if (sdk_req_fields_only(req, body, fields) < 0)
		return;
	json_t *idv = json_object_get(body, "request_id");
	if (!json_is_integer(idv) || json_integer_value(idv) < 1) {
		sdk_reply_error(req, 400, "invalid", "request_id: a positive integer");
		return;
	}
	waiver_take *t = calloc(1, sizeof *t);
	if (!t) {
		sdk_reply_error(req, 503, "out_of_memory", "cannot take the waiver now");
		return;
	}
	*t = (waiver_take){ .c = c, .req = req, .request_id = json_integer_value(idv) };
	char path[64];
	snprintf(path, sizeof path, "/requests/%lld", (long long)t->request_id);
	if (sdk_call(c->k->caller, "governance", "GET", path, NULL, 0, NULL, CMP_CALL_TIMEOUT_MS,
		     on_waiver_record, t) < 0) {
		free(t);
		sdk_reply_error(req, 503, "governance_unavailable",
				"cannot reach the governance kernel");
	}
}

static void on_waiver_delete(sdk_req *req, void *ctx)
{
	const char *s = sdk_req_param(req, "id");
	char *end;
	errno = 0;
	long long id = strtoll(s, &end, 10);
	if (!*s || *end || errno || id <= 0) {
		sdk_reply_error(req, 400, "bad_id", "a waiver id is a positive integer");
		return;
	}
	sdk_err e;
	int rc = cmp_waiver_delete(cmp_of(ctx)->k->db, id, &e);
	if (rc < 0)
		sdk_reply_status(req, rc, &e);
	else
		sdk_reply_json(req, 200, json_pack("{s:I}", "deleted", (json_int_t)id));
}

static json_t *schedule_json(cmp *c)
{
	return json_pack("{s:s, s:I, s:o}", "profile", CMP_DEFAULT_PROFILE, "interval_s",
			 (json_int_t)interval_s(c), "next_ms",
			 c->next_ms ? json_integer(c->next_ms) : json_null());
}

static void on_schedule_get(sdk_req *req, void *ctx)
{
	sdk_reply_json(req, 200, schedule_json(cmp_of(ctx)));
}

static void on_schedule_put(sdk_req *req, void *ctx)
{
	cmp *c = cmp_of(ctx);
	json_t *body = body_object(req);
	if (!body)
		return;
	json_t *iv = json_object_get(body, "interval_s");
	if (json_object_size(body) != 1 || !json_is_integer(iv) || json_integer_value(iv) < 0 ||
	    json_integer_value(iv) > 30LL * 86400) {
		sdk_reply_error(req, 400, "invalid",
				"interval_s: required (and alone), an integer from 0 (no schedule) "
				"to 2592000");
		return;
	}
	sdk_err e;
	int64_t now = sdk_wall_ms();
	int rc = cmp_setting_set(c->k->db, "interval_s", json_integer_value(iv), &e);
	if (rc == 0)
		rc = cmp_setting_set(c->k->db, "next_ms", now + json_integer_value(iv) * 1000, &e);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	sched_arm(c, now);
	sdk_reply_json(req, 200, schedule_json(c));
}

/* ---- life */

static int cmp_init(sdk_kernel *k, sdk_err *err)
{
	sdk_err e;
	if (cmp_store_init(k->db, &e) < 0) {
		return sdk_fail(err, SDK_EIO, "%s", e.msg);
	}
	/* The built-in default profile, written at first start (an admin may
	 * replace it; it is not overwritten). */
	json_t *have = NULL;
	if (cmp_profile_get(k->db, CMP_DEFAULT_PROFILE, &have, NULL) < 0) {
		json_error_t je;
		json_t *def = json_loads(cmp_default_profile_json, 0, &je);
		if (!def || cmp_profile_check(def, &e) < 0 ||
		    cmp_profile_put(k->db, CMP_DEFAULT_PROFILE, def, sdk_wall_ms(), &e) < 0) {
			sdk_fail(err, SDK_EIO, "the default profile: %s", def ? e.msg : je.text);
			json_decref(def);
			return SDK_EIO;
		}
		json_decref(def);
	}
	json_decref(have);
	cmp *c = calloc(1, sizeof *c);
	if (!c) {
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	c->k = k;
	k->state = c;
	c->pool = sdk_pool_new(k->base, 1, 16);
	c->sched_timer = evtimer_new(k->base, on_sched_timer, c);
	c->log_timer = evtimer_new(k->base, on_log_timer, c);
	if (!c->pool || !c->sched_timer || !c->log_timer) {
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	sched_arm(c, sdk_wall_ms());
	log_arm(c);
	return 0;
}

static void cmp_close(sdk_kernel *k)
{
	cmp *c = k->state;
	if (!c)
		return;
	c->closing = true;
	if (c->pool)
		sdk_pool_free(c->pool);
	if (c->sched_timer)
		event_free(c->sched_timer);
	if (c->log_timer)
		event_free(c->log_timer);
	/* Calls in flight end without calling back (the runtime frees the
	 * caller after this); a scan in progress is dropped. */
	scan_free(c->running);
	free(c->logging);
	free(c);
	k->state = NULL;
}

static void cmp_metrics(sdk_kernel *k, struct evbuffer *out)
{
	cmp *c = k->state;
	if (!c)
		return;
	const char *n = k->def->name;
	evbuffer_add_printf(out,
			    "# HELP grace_compliance_scans_total Scans stored.\n"
			    "# TYPE grace_compliance_scans_total counter\n"
			    "grace_compliance_scans_total{kernel=\"%s\"} %llu\n"
			    "# HELP grace_compliance_log_failures_total Appends to the immutable log that failed.\n"
			    "# TYPE grace_compliance_log_failures_total counter\n"
			    "grace_compliance_log_failures_total{kernel=\"%s\"} %llu\n",
			    n, c->scans, n, c->log_failures);
}

static const sdk_route cmp_routes[] = {
	SDK_ROUTE("GET", "/checks", on_checks),
	SDK_ROUTE("GET", "/profiles", on_profiles),
	SDK_ROUTE("GET", "/profiles/:name", on_profile_get),
	SDK_ROUTE("PUT", "/profiles/:name", on_profile_put),
	SDK_ROUTE("DELETE", "/profiles/:name", on_profile_delete),
	SDK_ROUTE("POST", "/scans", on_scan_post),
	SDK_ROUTE("GET", "/scans", on_scans),
	SDK_ROUTE("GET", "/scans/:id", on_scan_get),
	SDK_ROUTE("GET", "/scans/:id/report", on_report),
	SDK_ROUTE("GET", "/scans/:id/summary", on_summary),
	SDK_ROUTE("GET", "/waivers", on_waivers),
	SDK_ROUTE("POST", "/waivers", on_waiver_post),
	SDK_ROUTE("POST", "/waivers/approved", on_waiver_approved),
	SDK_ROUTE("DELETE", "/waivers/:id", on_waiver_delete),
	SDK_ROUTE("GET", "/schedule", on_schedule_get),
	SDK_ROUTE("PUT", "/schedule", on_schedule_put),
};

const sdk_kernel_def compliance_kernel = {
	.name = "compliance",
	.port = 8114, .tier = "governance",
	.summary = "controls as data, scans with evidence, waivers, OSCAL reports",
	.complete = true,
	/* Its tables as they are today: a change is a new step in
	 * .migrations and a new fixture directory (docs/upgrades.md). */
	.schema_version = CMP_SCHEMA_VERSION,
	.migrations = cmp_migrations,
	.n_migrations = CMP_SCHEMA_VERSION,
	.routes = cmp_routes,
	.n_routes = sizeof cmp_routes / sizeof cmp_routes[0],
	.init = cmp_init,
	.close = cmp_close,
	.metrics = cmp_metrics,
};
