/* What the main process publishes, mapped to incident events (state.h):
 * one function per subject family, as the trust kernel's feed does, and
 * the facts for root-cause hints (the supervisor's last exit, the cgroup's
 * OOM kills, DATA_DIR's free space, the healer's diagnosis). */
#include "kernels/self_healing/hints.h"
#include "kernels/self_healing/state.h"
#include "sdk/clock.h"
#include "sdk/config.h"
#include "sdk/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

static const char *str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static bool in(const char *s, const char *const *list)
{
	for (; s && *list; list++)
		if (!strcmp(s, *list))
			return true;
	return false;
}

/* The oom_kill count of this process's cgroup (v2 memory.events): the
 * kernels run in the same cgroup as Grace unless systemd gives each its
 * own. -1 when it cannot be read. */
static int64_t cgroup_oom_kills(void)
{
	FILE *f = fopen("/proc/self/cgroup", "r");
	char line[512], path[700];
	int64_t n = -1;
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, "0::", 3))
			continue;
		line[strcspn(line, "\n")] = 0;
		snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.events", line + 3);
		FILE *m = fopen(path, "r");
		if (!m)
			break;
		char key[64];
		long long v;
		while (fscanf(m, "%63s %lld", key, &v) == 2)
			if (!strcmp(key, "oom_kill"))
				n = v;
		fclose(m);
		break;
	}
	fclose(f);
	return n;
}

/* Facts only a look at the machine gives; the rest the caller fills. */
static void machine_facts(sh_state *s, sh_facts *f)
{
	int64_t oom = cgroup_oom_kills();
	f->oom_kills = oom >= 0 && s->oom_seen >= 0 ? oom - s->oom_seen : -1;
	if (oom >= 0)
		s->oom_seen = oom;
	struct statvfs v;
	f->disk_total = -1;
	if (statvfs(s->k->cfg->data_dir, &v) == 0) {
		f->disk_free = (int64_t)v.f_bavail * (int64_t)v.f_frsize;
		f->disk_total = (int64_t)v.f_blocks * (int64_t)v.f_frsize;
	}
}

int sh_apply(sh_state *s, sh_batch *b, const char *kernel, enum sh_ev_kind kind,
	     const char *subject, json_t *detail, json_t *hints, int64_t now_ms,
	     int64_t *incident_id, sdk_err *err)
{
	sh_corr_result r;
	sh_event ev = { .kernel = kernel, .kind = kind, .ts_ms = now_ms };
	if (incident_id)
		*incident_id = 0;
	if (sh_corr_apply(&s->corr, &ev, now_ms, &r) < 0)
		return sdk_fail(err, SDK_EINVAL, "not an event of a kernel");
	s->events[kind]++;
	if (!r.inc)
		return 0;
	s->opened += r.opened;
	s->folded += r.folded;
	s->flapping += r.became_flapping;
	/* Recorded now, written by the worker in this order (batch.h). */
	int rc = sh_batch_save(b, r.inc);
	for (size_t i = 0; rc == 0 && i < r.n_merged; i++) {
		rc = sh_batch_merge(b, r.merged[i], r.inc->id, now_ms);
		if (rc == 0)
			sdk_info("self_healing: incident %lld merged into %lld (%s): its kernel "
				 "depends on %s", (long long)r.merged[i], (long long)r.inc->id,
				 r.inc->title, r.inc->kernel);
	}
	s->folded += r.n_merged;
	if (rc == 0)
		rc = sh_batch_event(b, r.inc->id, now_ms, kernel, sh_ev_kind_name(kind), subject,
				    detail);
	if (rc == 0 && hints && json_array_size(hints)) {
		size_t i;
		json_t *h;
		json_array_foreach(hints, i, h)
			json_object_set_new(h, "kernel", json_string(kernel));
		rc = sh_batch_hints(b, r.inc->id, hints);
	}
	if (rc < 0)
		rc = sdk_fail(err, rc, "out of memory recording an event");
	if (r.opened || r.became_flapping || r.folded)
		sdk_info("self_healing: incident %lld (%s)%s%s%s", (long long)r.inc->id, r.inc->title,
			 r.opened ? " opened" : "", r.folded ? ", a dependent kernel folded in" : "",
			 r.became_flapping ? ", flapping" : "");
	if (incident_id)
		*incident_id = r.inc->id;
	return rc;
}

/* grace.kernel.NAME.state {kernel, from, to, last_exit}: a process that
 * ended on its own (from ready or starting to starting, restarting or
 * failed; a stop asked for goes through stopping) is a crash; ready is up. */
static int kernel_state(sh_state *s, sh_batch *b, const char *subject, json_t *p, int64_t now, sdk_err *e)
{
	static const char *const up[] = { "ready", "starting", NULL };
	static const char *const down[] = { "starting", "restarting", "failed", NULL };
	const char *name = str(p, "kernel"), *from = str(p, "from"), *to = str(p, "to");
	if (!name || !to || !grace_config_kernel(s->k->cfg, name))
		return 0;
	sh_kfacts *kf = NULL;
	sh_kstate *ks = sh_kstate_of(s, name, &kf);
	if (!strcmp(to, "ready")) {
		if (ks && ks->stopped) { /* a person started it again */
			sh_kstate_reset(ks);
			sh_batch_ladder(b, ks);
		}
		return sh_apply(s, b, name, SH_EV_UP, subject, p, NULL, now, NULL, e);
	}
	if (!strcmp(to, "stopped") && ks && ks->stopped) /* the ladder's stop, not an operator's */
		return sh_apply(s, b, name, SH_EV_STOPPED, subject, p, NULL, now, NULL, e);
	if (!(in(from, up) && in(to, down) && strcmp(from, to)))
		return 0;
	const char *le = str(p, "last_exit");
	if (kf && le)
		snprintf(kf->last_exit, sizeof kf->last_exit, "%s", le);
	sh_facts f = { .last_exit = le };
	machine_facts(s, &f);
	json_t *hints = json_array();
	sh_hints_classify(&f, hints);
	int rc = sh_apply(s, b, name, SH_EV_CRASH, subject, p, hints, now, NULL, e);
	json_decref(hints);
	return rc;
}

/* grace.guardian.NAME.state {kernel, from, to, reason}. */
static int guardian_state(sh_state *s, sh_batch *b, const char *subject, json_t *p, int64_t now, sdk_err *e)
{
	static const char *const bad[] = { "degraded", "unhealthy", "storage_failed", NULL };
	const char *name = str(p, "kernel"), *from = str(p, "from"), *to = str(p, "to");
	if (!name || !to || !grace_config_kernel(s->k->cfg, name))
		return 0;
	enum sh_ev_kind kind;
	if (!strcmp(to, "storage_failed"))
		kind = SH_EV_STORAGE;
	else if (in(to, bad) && !in(from, bad))
		kind = SH_EV_PROBE_BAD;
	else if (!strcmp(to, "ready") && in(from, bad))
		kind = SH_EV_PROBE_OK;
	else
		return 0;
	sh_facts f = { .guardian_reason = str(p, "reason"),
		       .storage_error = kind == SH_EV_STORAGE ? str(p, "reason") : NULL };
	machine_facts(s, &f);
	json_t *hints = json_array();
	if (kind != SH_EV_PROBE_OK)
		sh_hints_classify(&f, hints);
	int rc = sh_apply(s, b, name, kind, subject, p, hints, now, NULL, e);
	json_decref(hints);
	return rc;
}

/* grace.healer.incident: the healer's run, with its diagnosis. */
static int healer_incident(sh_state *s, sh_batch *b, const char *subject, json_t *p, int64_t now, sdk_err *e)
{
	const char *name = str(p, "component"), *outcome = str(p, "outcome");
	if (!name || !outcome || !grace_config_kernel(s->k->cfg, name))
		return 0;
	enum sh_ev_kind kind;
	if (!strcmp(outcome, "healed"))
		kind = SH_EV_HEALED;
	else if (!strcmp(outcome, "failed"))
		kind = SH_EV_HEAL_FAILED;
	else if (!strcmp(outcome, "needs_operator"))
		kind = SH_EV_STORAGE;
	else
		return 0;
	json_t *diag = json_object_get(p, "diagnosis"), *holder = json_object_get(diag, "port_holder");
	json_t *pid = json_object_get(holder, "pid");
	sh_facts f = { .issue_type = str(p, "issue_type"),
		       .holder_kind = str(holder, "kind"),
		       .holder_pid = json_is_integer(pid) ? json_integer_value(pid) : 0,
		       .holder_cmdline = str(holder, "cmdline"),
		       .storage_error = str(json_object_get(p, "storage"), "error"),
		       .oom_kills = -1,
		       .disk_total = -1 };
	json_t *hints = json_array();
	if (kind != SH_EV_HEALED)
		sh_hints_classify(&f, hints);
	/* The incident's summary, not the whole run: the healer keeps that. */
	json_t *d = json_pack("{s:O, s:O, s:O, s:O}", "healer_incident", json_object_get(p, "id"),
			      "playbook", json_object_get(p, "playbook"), "outcome",
			      json_object_get(p, "outcome"), "issue_type",
			      json_object_get(p, "issue_type"));
	int rc = sh_apply(s, b, name, kind, subject, d, hints, now, NULL, e);
	json_decref(d);
	json_decref(hints);
	return rc;
}

/* grace.alerts (Alertmanager's webhook shape): a firing alert labelled
 * with a kernel (label kernel, else job) joins that kernel's incident. */
static int alerts(sh_state *s, sh_batch *b, const char *subject, json_t *p, int64_t now, sdk_err *e)
{
	size_t i;
	json_t *a;
	json_array_foreach(json_object_get(p, "alerts"), i, a) {
		json_t *labels = json_object_get(a, "labels");
		const char *name = str(labels, "kernel");
		if (!name)
			name = str(labels, "job");
		const char *status = str(a, "status");
		if (!name || (status && strcmp(status, "firing")) ||
		    !grace_config_kernel(s->k->cfg, name))
			continue;
		json_t *d = json_pack("{s:O}", "labels", labels);
		int rc = sh_apply(s, b, name, SH_EV_ALERT, subject, d, NULL, now, NULL, e);
		json_decref(d);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static const struct {
	const char *prefix, *suffix; /* the subject is PREFIX...SUFFIX */
	bool exact;
	int (*fn)(sh_state *, sh_batch *, const char *, json_t *, int64_t, sdk_err *);
} feeds[] = {
	{ "grace.kernel.", ".state", false, kernel_state },
	{ "grace.guardian.", ".state", false, guardian_state },
	{ "grace.healer.incident", "", true, healer_incident },
	{ "grace.alerts", "", false, alerts },
};

int sh_ingest(sh_state *s, sh_batch *b, const char *subject, json_t *payload, int64_t now_ms,
	      sdk_err *err)
{
	if (!subject || !json_is_object(payload))
		return 0;
	size_t n = strlen(subject);
	for (size_t i = 0; i < sizeof feeds / sizeof feeds[0]; i++) {
		size_t p = strlen(feeds[i].prefix), x = strlen(feeds[i].suffix);
		if (n < p + x || strncmp(subject, feeds[i].prefix, p) ||
		    strcmp(subject + n - x, feeds[i].suffix) || (feeds[i].exact && n != p))
			continue;
		json_t *ts = json_object_get(payload, "ts_ms");
		int64_t t = json_is_integer(ts) ? json_integer_value(ts) : now_ms;
		/* A late delivery (the kernel was down) is correlated at its own
		 * time, never in the future. */
		return feeds[i].fn(s, b, subject, payload, t > now_ms ? now_ms : t, err);
	}
	s->ignored++;
	return 0;
}
