/* A client of the policy kernel as a decision point: what the main process
 * (every request on :8000) and each kernel (every call from another
 * process) ask it, through the call path by name.
 *
 * - Decisions are cached, keyed by the caller's key (who, with the data
 *   the decision reads about them; the action; the resource) and stamped
 *   with the versions the policy kernel says they read: the policy set's
 *   and the entity store's. A cached decision is used only while those
 *   are still the current versions, so a change to either takes effect at
 *   once, and an unchanged decision costs no round trip.
 * - The current versions come from a long poll on GET /versions, which
 *   returns the moment either moves, and otherwise every PDP_WATCH_WAIT_MS:
 *   an answer overdue by PDP_WATCH_GRACE_MS means the kernel hangs.
 * - While the policy kernel is not ready (the `ready` hook says so, it
 *   hangs, or it did not answer), nothing is decided and the cache is not
 *   used either: the asker refuses (fail closed).
 * - Decisions not in the cache are batched: every question asked in one
 *   turn of the loop goes in one POST /authorize/batch (up to
 *   PDP_BATCH_MAX), and one question asked twice meanwhile is asked once.
 */
#ifndef GRACE_SDK_PDP_H
#define GRACE_SDK_PDP_H

#include "sdk/call.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PDP_WATCH_WAIT_MS 1000  /* the long poll's wait */
#define PDP_WATCH_GRACE_MS 1000 /* beyond it: the kernel hangs */
#define PDP_WATCH_RETRY_MS 250  /* after a failed poll */
#define PDP_BATCH_MAX 256       /* questions in one POST /authorize/batch */
#define PDP_BATCHES_MAX 4       /* batches in flight at once */
#define PDP_QUESTIONS_MAX 8192  /* questions waiting or in flight; past it: unavailable */
#define PDP_KEY_MAX 4096        /* bytes of a key */

struct event_base;
struct evbuffer;

typedef struct sdk_pdp sdk_pdp;

typedef struct sdk_pdp_opts {
	struct event_base *base;
	sdk_caller *caller;     /* borrowed: reaches the kernel named "policy" */
	const char *policy_set; /* copied */
	unsigned timeout_ms;    /* a batch's wait for its answer */
	unsigned cache_entries; /* rounded up to a power of two */
	/* Whether the policy kernel may be asked at all now (the main process:
	 * its supervisor has it ready). NULL: always. */
	bool (*ready)(void *arg);
	void *ready_arg;
} sdk_pdp_opts;

enum {
	SDK_PDP_DENY = 0,
	SDK_PDP_ALLOW = 1,
	SDK_PDP_MISS = 2,        /* not cached: ask */
	SDK_PDP_UNAVAILABLE = 3, /* nothing can be decided now */
};

/* NULL when out of memory. */
sdk_pdp *sdk_pdp_new(const sdk_pdp_opts *o);
/* Answers every question still waiting with SDK_PDP_UNAVAILABLE, then
 * frees. Call before the caller is freed, and not from a callback. */
void sdk_pdp_free(sdk_pdp *p);

/* Forgets what is cached until the watch has the versions again: after a
 * change this process made and wants in force before it answers. */
void sdk_pdp_invalidate(sdk_pdp *p);

/* Whether decisions can be had now (see above). */
bool sdk_pdp_ready(sdk_pdp *p);
/* Why not, when not ready (a static string). */
const char *sdk_pdp_why(const sdk_pdp *p);

/* The cached decision for `key`: SDK_PDP_ALLOW or SDK_PDP_DENY, else
 * SDK_PDP_MISS, or SDK_PDP_UNAVAILABLE when not ready. */
int sdk_pdp_lookup(sdk_pdp *p, const char *key, size_t len);

/* `result` is SDK_PDP_ALLOW, SDK_PDP_DENY or SDK_PDP_UNAVAILABLE (then
 * `why` says why; else NULL). */
typedef void (*sdk_pdp_cb)(int result, const char *why, void *arg);

/* Asks the policy kernel: `request` is {"principal", "action", "resource",
 * "context"} in the policy kernel's /authorize form and `entities` the
 * entities it needs (a JSON array, may be NULL); both stolen. `cb` is
 * called exactly once, from the loop (never from inside this call), within
 * the timeout. */
void sdk_pdp_ask(sdk_pdp *p, const char *key, size_t len, json_t *request, json_t *entities,
		 sdk_pdp_cb cb, void *arg);

/* The entity of a user as :8000 sends it: User::"NAME" with attributes
 * name and role, parent Role::"ROLE" ("admin" or "user"). NULL when out
 * of memory. */
json_t *sdk_pdp_user_entity(const char *name, const char *role);

/* Prometheus lines, each metric named PREFIX_... */
void sdk_pdp_metrics(const sdk_pdp *p, struct evbuffer *out, const char *prefix);

#endif
