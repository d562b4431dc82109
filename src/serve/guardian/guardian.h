/* The guardian: one health state per kernel, from the supervisor's process
 * state and periodic asynchronous /health probes. A kernel that fails its
 * probes `health_failures` times in a row is unhealthy and is handed to the
 * healer (the same path as a manual heal). When the trust kernel is failing
 * too, it goes first: the others' heals wait until its own is over (or it
 * recovers), as their SVIDs come from it (docs/trust.md). */
#ifndef GRACE_GUARDIAN_GUARDIAN_H
#define GRACE_GUARDIAN_GUARDIAN_H

#include "serve/layer.h"
#include "sdk/err.h"

#include "serve/gateway/gateway.h"
#include "serve/supervisor/supervisor.h"

#include <jansson.h>
#include <sqlite3.h>
#include <limits.h>
#include <stdbool.h>

enum gd_state {
	GD_STARTING,
	GD_READY,
	GD_DEGRADED,  /* some probes failed, fewer than health_failures */
	GD_UNHEALTHY, /* health_failures probes failed in a row */
	GD_RESTARTING,
	GD_FAILED,
	GD_STOPPED,
	GD_PORT_UNAVAILABLE,
	GD_STORAGE_FAILED, /* the process runs, but /health says its database failed */
	GD_UNREACHABLE,    /* on another node, which does not answer */
};

typedef struct gd_kernel {
	sup_kernel *k;
	enum gd_state state;
	int64_t since_ms;
	int64_t last_probe_ms; /* 0: never probed */
	int last_status;       /* HTTP status of the last probe; 0 none */
	double last_latency_ms;
	char last_error[128];
	unsigned failures; /* consecutive */
	/* The last probe answered 503 "storage_failed": not a probe failure
	 * (restarting cannot repair a file), a condition of its own. */
	bool storage_failed;
	char storage_error[256];
	unsigned probes, probe_failures;
	bool probing, healing;
	/* Unhealthy while the trust kernel was failing too: healed once
	 * trust's own heal is over (every kernel's identity comes from it). */
	bool heal_postponed;
	struct event *timer;
	/* Still unhealthy after a heal that did not heal it: healed again
	 * when this fires (gd_heal_done); the backoff for failed heals. */
	struct event *reheal;
	unsigned reheal_backoff_ms;
	struct guardian *g;
} gd_kernel;

typedef struct guardian guardian;

/* Asks for a heal of an unhealthy kernel, or a report on one whose storage
 * failed (once each time it enters that state); the healer calls
 * gd_heal_done when it has finished, saying whether and when a kernel the
 * heal left unhealthy is healed again. */
typedef void (*gd_heal_fn)(sup_kernel *k, const char *reason, void *arg);

guardian *gd_new(struct event_base *base, supervisor *sup, gateway *gw, sqlite3 *db);
void gd_free(guardian *g);
void gd_set_healer(guardian *g, gd_heal_fn heal, void *arg);
/* Told every change of a kernel's health state (for the bus). */
typedef void (*gd_change_fn)(sup_kernel *k, const char *from, const char *to, const char *reason,
			     void *arg);
void gd_set_observer(guardian *g, gd_change_fn fn, void *arg);
void gd_start(guardian *g);

/* Inputs: every supervisor state change, and the end of a heal. */
void gd_on_sup_change(guardian *g, sup_kernel *k, enum sup_state old);
void gd_heal_started(guardian *g, sup_kernel *k);
/* retry_ms: a kernel still unhealthy after this heal is healed again
 * after that long (a heal held for a cooldown or the budget: the time the
 * advice gave); GD_RETRY_BACKOFF: after the guardian's backoff for heals
 * that fail (5 s doubling to 5 min, reset once the kernel is ready); 0:
 * not by itself (healed, or a person decides now). */
#define GD_RETRY_BACKOFF UINT_MAX
#define GD_REHEAL_FIRST_MS 5000
#define GD_REHEAL_MAX_MS 300000
void gd_heal_done(guardian *g, sup_kernel *k, unsigned retry_ms);

gd_kernel *gd_kernel_of(guardian *g, const sup_kernel *k);
const char *gd_state_name(enum gd_state st);
/* The pure part: a kernel's health state from its process state, whether
 * a restart is under way (a restart or a heal), its run of failed probes,
 * and whether its last answer said its storage failed. */
enum gd_state gd_state_derive(enum sup_state sup, bool restart_pending, unsigned failures,
			      unsigned threshold, bool storage_failed);
/* Whether a /health answer (status and body) says the kernel's storage
 * failed. A check, not a function that fails: when it says yes, the
 * kernel's reason ("storage failed" when it gives none) goes into `why`
 * (may be NULL), which is left alone otherwise. */
bool gd_answer_storage_failed(int status, const char *body, size_t len, sdk_err *why);

json_t *gd_kernel_json(const gd_kernel *gk);
json_t *gd_status_json(guardian *g);
json_t *gd_config_json(guardian *g);
sqlite3 *gd_db(guardian *g);

#endif
