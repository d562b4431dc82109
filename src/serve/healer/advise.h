/* The healer asks the self_healing kernel (docs/self_healing.md) before it
 * heals a kernel on its own choice: which step of the escalation ladder to
 * take (a playbook), or to hold (cooldown, budget spent, waiting for a
 * person), or to stop the kernel; and reports the outcome afterwards. The
 * healing path never depends on it: when self_healing is not configured,
 * not ready, slow (past [self_healing] advice_timeout_ms) or answers
 * nonsense, the healer heals exactly as before (asking the learning kernel
 * itself where more than one playbook fits). */
#ifndef GRACE_HEALER_ADVISE_H
#define GRACE_HEALER_ADVISE_H

#include "serve/layer.h"

#include "sdk/call.h"
#include "serve/supervisor/supervisor.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct evbuffer;
typedef struct healer healer;
typedef struct hl_advise hl_advise;
typedef struct hl_advise_ask hl_advise_ask;

enum hl_advice { HL_ADVICE_NONE, HL_ADVICE_HEAL, HL_ADVICE_HOLD, HL_ADVICE_STOP };

/* `caller` is borrowed (the gateway's). */
hl_advise *hl_advise_new(sdk_caller *caller, supervisor *sup);
void hl_advise_free(hl_advise *a);
void hl_advise_set_timeout(hl_advise *a, unsigned advice_timeout_ms);

/* The answer: what to do, the playbook for HL_ADVICE_HEAL (a known one),
 * what to record in the incident as "self_healing" (borrowed: take a
 * reference to keep it) and the advice id to report the outcome to (0 for
 * HL_ADVICE_NONE: heal as before). */
typedef void (*hl_advise_cb)(enum hl_advice what, const char *playbook, json_t *record,
			     int64_t advice_id, void *arg);

/* Asks about kernel k's issue, `fits` being the healer's playbooks for it
 * in its static order. Returns the pending ask (cb comes later, once,
 * unless cancelled), or NULL when it did not ask: then *fallback (owned by
 * the caller; NULL when self_healing is not configured) says why. */
hl_advise_ask *hl_advise_ask_for(hl_advise *a, const sup_kernel *k, int64_t healer_incident,
				 const char *issue, const char *const *fits, size_t n,
				 hl_advise_cb cb, void *arg, json_t **fallback);
void hl_advise_cancel(hl_advise_ask *ask);

/* How the advised heal went (the healer's incident, ended). */
void hl_advise_outcome(hl_advise *a, int64_t advice_id, json_t *incident);

hl_advise *hl_adviser(healer *h);
/* grace_healer_advice_* counters: asks, answers by decision, fallbacks. */
void hl_advise_metrics(hl_advise *a, struct evbuffer *out);

#endif
