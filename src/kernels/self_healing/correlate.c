/* Incidents from kernel events (correlate.h). */
#include "kernels/self_healing/correlate.h"

#include <stdio.h>
#include <string.h>

static const char *const family_names[SH_FAM_COUNT] = { "availability", "storage", "alert" };
static const char *const kind_names[SH_EV_COUNT] = { "crash",	   "up",     "probe_bad",
						     "probe_ok",   "heal_failed", "healed",
						     "storage",	   "alert",	  "heal_asked",
						     "stopped",	   "metric" };

/* What each kind of event is: bad or good, and for a bad one its family. */
static const struct {
	bool bad;
	enum sh_family family;
} kinds[SH_EV_COUNT] = {
	[SH_EV_CRASH] = { true, SH_FAM_AVAILABILITY },
	[SH_EV_UP] = { false, SH_FAM_AVAILABILITY },
	[SH_EV_PROBE_BAD] = { true, SH_FAM_AVAILABILITY },
	[SH_EV_PROBE_OK] = { false, SH_FAM_AVAILABILITY },
	[SH_EV_HEAL_FAILED] = { true, SH_FAM_AVAILABILITY },
	[SH_EV_HEALED] = { false, SH_FAM_AVAILABILITY },
	[SH_EV_STORAGE] = { true, SH_FAM_STORAGE },
	[SH_EV_ALERT] = { true, SH_FAM_ALERT },
	[SH_EV_HEAL_ASKED] = { true, SH_FAM_AVAILABILITY },
	[SH_EV_STOPPED] = { true, SH_FAM_AVAILABILITY },
	/* A metrics condition is an alert of Grace's own: it joins what is open. */
	[SH_EV_METRIC] = { true, SH_FAM_ALERT },
};

const char *sh_family_name(enum sh_family f)
{
	return f < SH_FAM_COUNT ? family_names[f] : "unknown";
}

const char *sh_ev_kind_name(enum sh_ev_kind k) { return k < SH_EV_COUNT ? kind_names[k] : "unknown"; }

void sh_corr_init(sh_corr *c, const sh_corr_cfg *cfg, int64_t next_id)
{
	memset(c, 0, sizeof *c);
	c->cfg = *cfg;
	c->next_id = next_id > 0 ? next_id : 1;
}

int sh_corr_restore(sh_corr *c, const sh_incident *inc)
{
	if (c->n_open == SH_OPEN_MAX)
		return -1;
	c->open[c->n_open++] = *inc;
	if (inc->id >= c->next_id)
		c->next_id = inc->id + 1;
	return 0;
}

int sh_deps_parse(const char *spec, sh_corr_cfg *cfg, sdk_err *err)
{
	cfg->n_deps = 0;
	const char *p = spec ? spec : "";
	while (*p) {
		while (*p == ',' || *p == ' ')
			p++;
		if (!*p)
			break;
		size_t n = strcspn(p, ",");
		const char *colon = memchr(p, ':', n);
		size_t a = colon ? (size_t)(colon - p) : 0, b = colon ? n - a - 1 : 0;
		if (!colon || !a || !b || a >= SH_NAME_MAX || b >= SH_NAME_MAX) {
			return sdk_fail(
				err, SDK_EINVAL,
				"dependencies: KERNEL:ON pairs separated by commas, got '%.*s'",
				(int)n, p);
		}
		if (cfg->n_deps == SH_DEPS_MAX) {
			return sdk_fail(err, SDK_EINVAL, "dependencies: at most %d pairs",
					SH_DEPS_MAX);
		}
		sh_dep *d = &cfg->deps[cfg->n_deps++];
		snprintf(d->kernel, sizeof d->kernel, "%.*s", (int)a, p);
		snprintf(d->on, sizeof d->on, "%.*s", (int)b, colon + 1);
		p += n;
	}
	return 0;
}

static sh_track *track_of(sh_corr *c, const char *name, bool add)
{
	for (size_t i = 0; i < c->n_track; i++)
		if (!strcmp(c->track[i].name, name))
			return &c->track[i];
	if (!add || c->n_track == SH_TRACK_MAX)
		return NULL;
	sh_track *t = &c->track[c->n_track++];
	memset(t, 0, sizeof *t);
	snprintf(t->name, sizeof t->name, "%s", name);
	return t;
}

static unsigned crashes_in_window(const sh_corr *c, const sh_track *t, int64_t now_ms)
{
	unsigned n = 0;
	for (unsigned i = 0; t && i < t->n; i++) {
		int64_t at = t->crashes[(t->head + SH_FLAP_RING - 1 - i) % SH_FLAP_RING];
		if (now_ms - at > c->cfg.flap_window_ms)
			break;
		n++;
	}
	return n;
}

unsigned sh_corr_crashes_in_window(const sh_corr *c, const char *kernel, int64_t now_ms)
{
	for (size_t i = 0; i < c->n_track; i++)
		if (!strcmp(c->track[i].name, kernel))
			return crashes_in_window(c, &c->track[i], now_ms);
	return 0;
}

static bool has_kernel(const sh_incident *inc, const char *kernel)
{
	for (size_t i = 0; i < inc->n_kernels; i++)
		if (!strcmp(inc->kernels[i], kernel))
			return true;
	return false;
}

sh_incident *sh_corr_find(sh_corr *c, const char *kernel, enum sh_family family)
{
	for (size_t i = 0; i < c->n_open; i++)
		if ((family == SH_FAM_COUNT || c->open[i].family == family) &&
		    has_kernel(&c->open[i], kernel))
			return &c->open[i];
	return NULL;
}

/* The open availability incident of a kernel `kernel` depends on, when
 * that dependency is down or failed within stable_ms. */
static sh_incident *dependency_incident(sh_corr *c, const char *kernel, int64_t now_ms)
{
	for (size_t i = 0; i < c->cfg.n_deps; i++) {
		if (strcmp(c->cfg.deps[i].kernel, kernel))
			continue;
		const char *on = c->cfg.deps[i].on;
		sh_track *t = track_of(c, on, false);
		if (!t || !(t->down || now_ms - t->last_bad_ms < c->cfg.stable_ms))
			continue;
		sh_incident *inc = sh_corr_find(c, on, SH_FAM_AVAILABILITY);
		if (inc)
			return inc;
	}
	return NULL;
}

static const char *title_of(enum sh_ev_kind k)
{
	switch (k) {
	case SH_EV_CRASH: return "the process keeps ending";
	case SH_EV_PROBE_BAD: return "its health probes fail";
	case SH_EV_HEAL_FAILED: return "a heal failed";
	case SH_EV_STORAGE: return "its storage failed";
	case SH_EV_ALERT: return "an alert fires";
	case SH_EV_HEAL_ASKED: return "a heal was asked for";
	case SH_EV_STOPPED: return "stopped for a person";
	case SH_EV_METRIC: return "a watched metric condition holds";
	default: return "failing";
	}
}

/* Room for a new incident: when full, the oldest open one is dropped
 * (it stays in the store as it was last written). */
static sh_incident *open_incident(sh_corr *c, const sh_event *ev, enum sh_family fam,
				  int64_t now_ms)
{
	if (c->n_open == SH_OPEN_MAX) {
		memmove(&c->open[0], &c->open[1], (SH_OPEN_MAX - 1) * sizeof c->open[0]);
		c->n_open--;
	}
	sh_incident *inc = &c->open[c->n_open++];
	memset(inc, 0, sizeof *inc);
	inc->id = c->next_id++;
	inc->family = fam;
	snprintf(inc->kernel, sizeof inc->kernel, "%s", ev->kernel);
	snprintf(inc->kernels[0], sizeof inc->kernels[0], "%s", ev->kernel);
	inc->n_kernels = 1;
	inc->opened_at = now_ms;
	snprintf(inc->title, sizeof inc->title, "%s: %s", ev->kernel, title_of(ev->kind));
	return inc;
}

/* A dependency's new availability incident (c->open's last) absorbs the
 * open availability incidents its dependents opened on their own before
 * it failed, while they are still down or failed within stable_ms: their
 * failures were its, one incident and not two. Returns the incident,
 * which may have moved in c->open. */
static sh_incident *absorb_dependents(sh_corr *c, int64_t now_ms, sh_corr_result *out)
{
	size_t at = c->n_open - 1;
	for (size_t d = 0; d < c->cfg.n_deps; d++) {
		sh_incident *inc = &c->open[at];
		if (strcmp(c->cfg.deps[d].on, inc->kernel) || inc->n_kernels >= SH_INC_KERNELS_MAX)
			continue;
		const char *dep = c->cfg.deps[d].kernel;
		sh_track *t = track_of(c, dep, false);
		if (!t || !(t->down || now_ms - t->last_bad_ms < c->cfg.stable_ms))
			continue;
		for (size_t j = 0; j < at; j++) {
			sh_incident *o = &c->open[j];
			if (o->family != SH_FAM_AVAILABILITY || strcmp(o->kernel, dep) ||
			    o->n_kernels != 1)
				continue;
			snprintf(inc->kernels[inc->n_kernels++], sizeof inc->kernels[0], "%s", dep);
			inc->events += o->events;
			inc->crashes += o->crashes;
			inc->flapping = inc->flapping || o->flapping;
			if (o->opened_at < inc->opened_at)
				inc->opened_at = o->opened_at; /* it began with the first symptom */
			out->merged[out->n_merged++] = o->id;
			memmove(&c->open[j], &c->open[j + 1], (c->n_open - j - 1) * sizeof c->open[0]);
			c->n_open--;
			at--;
			break;
		}
	}
	return &c->open[at];
}

int sh_corr_apply(sh_corr *c, const sh_event *ev, int64_t now_ms, sh_corr_result *out)
{
	*out = (sh_corr_result){ 0 };
	if (!ev->kernel || !ev->kernel[0] || strlen(ev->kernel) >= SH_NAME_MAX ||
	    ev->kind >= SH_EV_COUNT)
		return -1;
	sh_track *t = track_of(c, ev->kernel, true);
	if (!t)
		return -1;
	int64_t at = ev->ts_ms ? ev->ts_ms : now_ms;
	if (!kinds[ev->kind].bad) {
		if (ev->kind == SH_EV_UP || ev->kind == SH_EV_HEALED || ev->kind == SH_EV_PROBE_OK) {
			t->down = false;
			t->last_up_ms = at;
		}
		sh_incident *inc = sh_corr_find(c, ev->kernel, SH_FAM_COUNT);
		if (inc) {
			inc->events++;
			inc->updated_at = now_ms;
		}
		out->inc = inc;
		return 0;
	}
	enum sh_family fam = kinds[ev->kind].family;
	/* Down is the process's state: what a crash, failing probes, a failed
	 * store or a stop for a person say; a failed or asked-for heal and an
	 * alert are facts about it, and do not hold the incident open once
	 * the kernel has been quiet for stable_ms. */
	if (ev->kind == SH_EV_CRASH || ev->kind == SH_EV_PROBE_BAD || ev->kind == SH_EV_STORAGE ||
	    ev->kind == SH_EV_STOPPED)
		t->down = true;
	t->last_bad_ms = at;
	if (ev->kind == SH_EV_CRASH) {
		t->crashes[t->head] = at;
		t->head = (t->head + 1) % SH_FLAP_RING;
		if (t->n < SH_FLAP_RING)
			t->n++;
	}
	/* An alert joins whatever is open for its kernel. */
	sh_incident *inc = sh_corr_find(c, ev->kernel, fam == SH_FAM_ALERT ? SH_FAM_COUNT : fam);
	if (!inc && fam == SH_FAM_AVAILABILITY) {
		inc = dependency_incident(c, ev->kernel, at);
		if (inc && inc->n_kernels < SH_INC_KERNELS_MAX) {
			snprintf(inc->kernels[inc->n_kernels++], sizeof inc->kernels[0], "%s",
				 ev->kernel);
			out->folded = true;
		} else if (inc) {
			out->folded = true; /* counted, not named: the list is full */
		}
	}
	if (!inc) {
		inc = open_incident(c, ev, fam, now_ms);
		out->opened = true;
		if (fam == SH_FAM_AVAILABILITY)
			inc = absorb_dependents(c, now_ms, out);
	}
	inc->events++;
	inc->updated_at = now_ms;
	if (ev->kind == SH_EV_CRASH)
		inc->crashes++;
	if (!inc->flapping && ev->kind == SH_EV_CRASH &&
	    crashes_in_window(c, t, at) >= c->cfg.flap_threshold) {
		inc->flapping = true;
		out->became_flapping = true;
	}
	out->inc = inc;
	return 0;
}

/* Every kernel of the incident up and quiet for stable_ms. */
static bool stable(sh_corr *c, const sh_incident *inc, int64_t now_ms)
{
	if (now_ms - inc->updated_at < c->cfg.stable_ms && inc->family == SH_FAM_ALERT)
		return false;
	for (size_t i = 0; i < inc->n_kernels; i++) {
		sh_track *t = track_of(c, inc->kernels[i], false);
		if (!t)
			continue;
		if ((t->down && inc->family != SH_FAM_ALERT) || now_ms - t->last_bad_ms < c->cfg.stable_ms)
			return false;
	}
	return true;
}

size_t sh_corr_tick(sh_corr *c, int64_t now_ms, sh_incident *resolved, size_t max)
{
	size_t n = 0, i = 0;
	while (i < c->n_open && n < max) {
		if (!stable(c, &c->open[i], now_ms)) {
			i++;
			continue;
		}
		c->open[i].resolved_at = now_ms;
		c->open[i].updated_at = now_ms;
		resolved[n++] = c->open[i];
		memmove(&c->open[i], &c->open[i + 1], (c->n_open - i - 1) * sizeof c->open[0]);
		c->n_open--;
	}
	return n;
}
