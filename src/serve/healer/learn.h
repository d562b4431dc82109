/* The healer asks the learning kernel (docs/learning.md) for the order of
 * the playbooks that fit an issue when more than one does, and reports how
 * the one it ran did. The healing path never depends on it: when the
 * kernel is not configured, not ready, slow (past [learning]
 * decide_timeout_ms) or answers nonsense, the static order is used at
 * once; rewards are sent without waiting for an answer. */
#ifndef GRACE_HEALER_LEARN_H
#define GRACE_HEALER_LEARN_H

#include "serve/layer.h"

#include "sdk/call.h"
#include "serve/supervisor/supervisor.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct evbuffer;
typedef struct healer healer;
typedef struct hl_learn hl_learn;
typedef struct hl_learn_ask hl_learn_ask;

/* `caller` is borrowed (the gateway's). */
hl_learn *hl_learn_new(sdk_caller *caller, supervisor *sup);
/* After the loop has ended: the calls still out are never called back
 * (sdk_caller_free), so the asks of ended incidents are freed here. */
void hl_learn_free(hl_learn *l);
void hl_learn_set_timeout(hl_learn *l, unsigned decide_timeout_ms);

/* The answer: the playbook to run (one of the arms asked about) and what
 * to record in the incident as "learning" (owned by the callee: the
 * callback takes a reference if it keeps it); decision_id 0 on fallback. */
typedef void (*hl_learn_cb)(const char *playbook, json_t *learning, int64_t decision_id,
			    void *arg);

/* Asks for the order of `arms` (the static order, n > 1) for kernel k's
 * issue. Returns the pending ask (cb comes later, once, unless cancelled),
 * or NULL when it did not ask: then *fallback (owned by the caller, may be
 * NULL when learning is not configured at all) says why, and the static
 * order stands. */
hl_learn_ask *hl_learn_order(hl_learn *l, const sup_kernel *k, const char *issue,
			     const char *const *arms, size_t n, hl_learn_cb cb, void *arg,
			     json_t **fallback);
/* The incident ended before the answer came: cb will not be called. */
void hl_learn_cancel(hl_learn_ask *a);

/* How the decided playbook did: reward 1 when the incident healed, 0 when
 * it failed or was refused (nothing for an interrupted one). */
void hl_learn_reward(hl_learn *l, int64_t decision_id, const char *playbook, json_t *incident);
/* An incident of `kernel` that asked nothing: tells the kernel, which
 * counts it as a relapse of that kernel's last heal. */
void hl_learn_incident(hl_learn *l, const char *kernel, const char *issue);
/* A heal of `kernel` ended (for the since_last_heal_s feature). */
void hl_learn_heal_ended(hl_learn *l, const char *kernel, int64_t now_ms);

/* The healer's learner, for /metrics. */
hl_learn *hl_learner(healer *h);
/* grace_healer_learning_* counters: asks, answers, fallbacks by reason,
 * rewards sent. */
void hl_learn_metrics(hl_learn *l, struct evbuffer *out);

#endif
