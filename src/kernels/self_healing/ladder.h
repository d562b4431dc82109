/* The escalation ladder per kernel, and the global remediation budget
 * (docs/self_healing.md "The ladder"). Pure: the time passed in as now_ms.
 *
 * The ladder is data: steps in order, each a playbook of the healer's (or
 * "stop": stop the kernel and page a person) and the cooldown that must
 * pass since the kernel's previous action (its end, once reported) before
 * this step runs. Each
 * heal asked for while the previous action is recent climbs one step; a
 * kernel quiet for stable_ms since its last action starts again at the
 * bottom (the backoff resets). The budget is a token bucket shared by all
 * kernels: budget_per_hour actions, refilled evenly; an action without a
 * token is held. */
#ifndef GRACE_SELF_HEALING_LADDER_H
#define GRACE_SELF_HEALING_LADDER_H

#include "kernels/layer.h"

#include "kernels/self_healing/correlate.h"
#include "sdk/bucket.h"
#include "sdk/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SH_STEPS_MAX 8
#define SH_STEP_NAME_MAX 32
#define SH_LADDER_KERNELS_MAX 128
#define SH_STOP "stop" /* the ladder's last word: stop the kernel, page a person */

typedef struct sh_step {
	char playbook[SH_STEP_NAME_MAX]; /* a healer playbook, or "stop" */
	int64_t cooldown_ms;
} sh_step;

typedef struct sh_ladder {
	sh_step steps[SH_STEPS_MAX];
	size_t n;
} sh_ladder;

typedef struct sh_kstate {
	char name[SH_NAME_MAX];
	int step;               /* the step last taken; -1 none since the last reset */
	int64_t last_action_ms; /* when it was advised, then when it ended */
	unsigned actions, holds;
	bool stopped;           /* the last step ran: a person decides now */
} sh_kstate;

typedef struct sh_budget {
	sdk_bucket bucket; /* per_hour tokens, refilled over the hour */
	unsigned long long spent, refused;
} sh_budget;

enum sh_verdict { SH_ACT, SH_HOLD_COOLDOWN, SH_HOLD_BUDGET, SH_HOLD_STOPPED, SH_VERDICT_COUNT };

typedef struct sh_advice {
	enum sh_verdict verdict;
	int step;                /* the step taken (SH_ACT), or the one that would be */
	const char *playbook;    /* that step's playbook (in the ladder) */
	int64_t retry_after_ms;  /* when held: how long until it could act */
	bool reset;              /* the backoff had reset (stable since the last action) */
} sh_advice;

/* "restart_component:0,reset_port:5000,rebind_port:10000,stop:30000":
 * PLAYBOOK:COOLDOWN_MS steps, bottom first. `known(name)` says whether a
 * playbook exists (may be NULL: any name). 0, or -1 with err. */
int sh_ladder_parse(const char *spec, bool (*known)(const char *), sh_ladder *out, sdk_err *err);

void sh_budget_init(sh_budget *b, unsigned per_hour, int64_t now_ms);
/* Refills for the time since the last call, then takes a token if there
 * is one (true). */
bool sh_budget_take(sh_budget *b, int64_t now_ms);
/* Tokens there are now (refilled), and how long until the next one. */
double sh_budget_tokens(sh_budget *b, int64_t now_ms, int64_t *next_ms);

/* The next step for a kernel in state ks: climbs, resets, or holds, and
 * takes a budget token when it acts. */
void sh_ladder_advise(const sh_ladder *l, sh_kstate *ks, sh_budget *b, int64_t stable_ms,
		      int64_t now_ms, sh_advice *out);
/* The kernel's last action ended at now_ms: its cooldown and the stable
 * period count from then (a slow heal does not eat its own cooldown). */
void sh_ladder_done(sh_kstate *ks, int64_t now_ms);
/* A person started the kernel again (or it was stable): back to the bottom. */
void sh_kstate_reset(sh_kstate *ks);

const char *sh_verdict_name(enum sh_verdict v);

#endif
