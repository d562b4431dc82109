/* What a reload changes: plan.h. */
#include "serve/reload/plan.h"

#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the file's keys */

static int kv_cmp(const void *a, const void *b)
{
	const rl_kv *x = a, *y = b;
	int c = strcmp(x->section, y->section);
	return c ? c : strcmp(x->key, y->key);
}

/* Then by place: of a key given twice, the last one wins, as config.c reads it. */
static int kv_cmp_order(const void *a, const void *b)
{
	int c = kv_cmp(a, b);
	if (c)
		return c;
	const rl_kv *x = a, *y = b;
	return x->order < y->order ? -1 : x->order > y->order;
}

static int on_key(void *user, const char *section, const char *key, const char *value)
{
	rl_ini *ini = user;
	if (ini->n == ini->cap) {
		size_t cap = ini->cap ? ini->cap * 2 : 64;
		rl_kv *kv = realloc(ini->kv, cap * sizeof *kv);
		if (!kv)
			return 0;
		ini->kv = kv;
		ini->cap = cap;
	}
	rl_kv *e = &ini->kv[ini->n];
	e->section = strdup(section);
	e->key = strdup(key);
	e->value = strdup(value ? value : "");
	e->order = ini->n;
	if (!e->section || !e->key || !e->value) {
		free(e->section);
		free(e->key);
		free(e->value);
		return 0;
	}
	ini->n++;
	return 1;
}

void rl_ini_free(rl_ini *ini)
{
	for (size_t i = 0; i < ini->n; i++) {
		free(ini->kv[i].section);
		free(ini->kv[i].key);
		free(ini->kv[i].value);
	}
	free(ini->kv);
	memset(ini, 0, sizeof *ini);
}

int rl_ini_read(const char *path, rl_ini *out, sdk_err *err)
{
	memset(out, 0, sizeof *out);
	if (!path[0])
		return 0;
	int line = ini_parse(path, on_key, out);
	if (line) {
		if (line < 0)
			sdk_fail(err, SDK_EINVAL, "%s: cannot read it", path);
		else
			sdk_fail(err, SDK_EINVAL, "%s:%d: cannot parse this line", path, line);
		rl_ini_free(out);
		return -1;
	}
	qsort(out->kv, out->n, sizeof *out->kv, kv_cmp_order);
	size_t k = 0;
	for (size_t i = 0; i < out->n; i++) {
		if (k && !kv_cmp(&out->kv[k - 1], &out->kv[i])) {
			free(out->kv[k - 1].section);
			free(out->kv[k - 1].key);
			free(out->kv[k - 1].value);
			out->kv[k - 1] = out->kv[i];
			continue;
		}
		out->kv[k++] = out->kv[i];
	}
	out->n = k;
	return 0;
}

/* ---- the plan */

static int kernel_index(const grace_config *c, const char *name)
{
	for (size_t i = 0; i < c->n_kernels; i++)
		if (!strcmp(c->kernels[i].name, name))
			return (int)i;
	return -1;
}

/* What the supervisor and the kernel read of a kernel's entry, its port
 * and enabled flag aside (those have their own handling). */
static bool kcfg_same(const grace_kernel_cfg *a, const grace_kernel_cfg *b)
{
	return !strcmp(a->tier, b->tier) && !strcmp(a->command, b->command) &&
	       !memcmp(&a->restart, &b->restart, sizeof a->restart) &&
	       a->watchdog_ms == b->watchdog_ms && a->ready_timeout_ms == b->ready_timeout_ms &&
	       a->stop_timeout_ms == b->stop_timeout_ms &&
	       a->health_interval_ms == b->health_interval_ms &&
	       a->health_timeout_ms == b->health_timeout_ms &&
	       a->health_failures == b->health_failures && a->max_body_bytes == b->max_body_bytes &&
	       a->standby == b->standby && a->nice == b->nice;
}

/* Keys of a kernel's own section that the main process reads too: they
 * restart the kernel and wait for grace serve's next start as well. NULL
 * key: the whole section. */
static const struct {
	const char *section, *key;
} main_reads[] = {
	{ "audit", NULL },	    /* the outbox's windows and journal limits */
	{ "policy", "authorizer" }, /* who decides the API's requests */
	{ "governance", "gate" },   /* which actions the API gates */
	{ "governance", "poll_ms" }, /* how often it looks for approved ones */
};

static bool main_reads_key(const char *section, const char *key)
{
	for (size_t i = 0; i < sizeof main_reads / sizeof *main_reads; i++)
		if (!strcmp(main_reads[i].section, section) &&
		    (!main_reads[i].key || !strcmp(main_reads[i].key, key)))
			return true;
	return false;
}

static void later(rl_plan *p, const char *what)
{
	for (size_t i = 0; i < p->n_later; i++)
		if (!strcmp(p->later[i], what))
			return;
	if (p->n_later == RL_LATER_MAX) {
		p->n_later_more++;
		return;
	}
	snprintf(p->later[p->n_later++], sizeof p->later[0], "%s", what);
}

static void later_key(rl_plan *p, const char *section, const char *key)
{
	char what[160];
	snprintf(what, sizeof what, "[%s] %s", section, key);
	later(p, what);
}

static void later_kernel(rl_plan *p, const char *name, const char *what)
{
	char w[160];
	snprintf(w, sizeof w, "[kernel.%s] %s", name, what);
	later(p, w);
}

static void restart(rl_plan *p, int i)
{
	if (i >= 0 && p->act[i] == RL_KEEP)
		p->act[i] = RL_RESTART;
}

/* One key that differs between the files (present in either or both). */
static void key_changed(const grace_config *old, const char *section, const char *key,
			rl_plan *p)
{
	/* A kernel's entry, [defaults] folded in, is compared as loaded
	 * (rl_plan_make): its port, enabled flag and presence included. */
	if (!strncmp(section, "kernel.", 7) || !strcmp(section, "defaults"))
		return;
	int i = kernel_index(old, section);
	if (i >= 0) {
		restart(p, i);
		if (main_reads_key(section, key))
			later_key(p, section, key);
		return;
	}
	if (!strcmp(section, "grace") && !strcmp(key, "log_level")) {
		p->log_level = true;
		return;
	}
	later_key(p, section, key);
}

void rl_plan_make(const grace_config *old, const rl_ini *old_ini, const grace_config *new_cfg,
		  const rl_ini *new_ini, rl_plan *p)
{
	memset(p, 0, sizeof *p);
	for (size_t i = 0; i < GRACE_KERNELS_MAX; i++)
		p->new_index[i] = -1;
	/* The kernels, as loaded. */
	for (size_t i = 0; i < old->n_kernels; i++) {
		const grace_kernel_cfg *a = &old->kernels[i];
		int j = kernel_index(new_cfg, a->name);
		p->new_index[i] = j;
		if (j < 0) {
			later_kernel(p, a->name, "removed");
			continue;
		}
		const grace_kernel_cfg *b = &new_cfg->kernels[j];
		if (a->port != b->port)
			later_kernel(p, a->name, "port");
		/* Who runs the process changes only with grace serve. */
		if (a->manager != b->manager || strcmp(a->unit, b->unit) ||
		    strcmp(a->socket_unit, b->socket_unit))
			later_kernel(p, a->name, "manager");
		if (a->enabled != b->enabled)
			p->act[i] = b->enabled ? RL_START : RL_STOP;
		else if (b->enabled && !kcfg_same(a, b))
			p->act[i] = RL_RESTART;
	}
	for (size_t j = 0; j < new_cfg->n_kernels; j++)
		if (kernel_index(old, new_cfg->kernels[j].name) < 0)
			later_kernel(p, new_cfg->kernels[j].name, "added");
	/* The files, key by key (both sorted: a merge). */
	size_t a = 0, b = 0;
	while (a < old_ini->n || b < new_ini->n) {
		int c = a == old_ini->n	  ? 1
			: b == new_ini->n ? -1
					  : kv_cmp(&old_ini->kv[a], &new_ini->kv[b]);
		if (c < 0) {
			key_changed(old, old_ini->kv[a].section, old_ini->kv[a].key, p);
			a++;
		} else if (c > 0) {
			key_changed(old, new_ini->kv[b].section, new_ini->kv[b].key, p);
			b++;
		} else {
			if (strcmp(old_ini->kv[a].value, new_ini->kv[b].value))
				key_changed(old, old_ini->kv[a].section, old_ini->kv[a].key, p);
			a++;
			b++;
		}
	}
	/* A disabled kernel's own section changing restarts nothing. */
	for (size_t i = 0; i < old->n_kernels; i++) {
		if (p->act[i] == RL_RESTART && !old->kernels[i].enabled)
			p->act[i] = RL_KEEP;
		p->n_restart += p->act[i] == RL_RESTART;
		p->n_stop += p->act[i] == RL_STOP;
		p->n_start += p->act[i] == RL_START;
	}
}

bool rl_plan_empty(const rl_plan *p)
{
	return !p->n_restart && !p->n_stop && !p->n_start && !p->log_level && !p->n_later;
}
