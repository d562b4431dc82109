/* When to restart a kernel that exited: a pure function of its start
 * history, the run that just ended and the time, so it is tested without a
 * clock or a process (s6's death tally, in spirit). */
#ifndef GRACE_SUPERVISOR_POLICY_H
#define GRACE_SUPERVISOR_POLICY_H

#include "serve/layer.h"

#include "sdk/config.h"

#include <stdbool.h>
#include <stdint.h>

#define SUP_HISTORY_MAX 1024 /* starts remembered: above restart_burst's limit (1000) */

typedef struct sup_history {
	uint64_t starts_ms[SUP_HISTORY_MAX]; /* ring, newest at (head - 1) */
	unsigned head, n;
	unsigned quick_crashes; /* consecutive exits before stable_ms */
} sup_history;

enum sup_verdict {
	SUP_RESTART_NOW,
	SUP_RESTART_AFTER, /* after delay_ms */
	SUP_GIVE_UP,       /* burst limit reached or a permanent error */
};

typedef struct sup_decision {
	enum sup_verdict verdict;
	uint64_t delay_ms;
	const char *why; /* static text for logs and the API */
	unsigned streak; /* the history's quick_crashes after this decision */
} sup_decision;

void sup_history_reset(sup_history *h);
void sup_history_add_start(sup_history *h, uint64_t now_ms);
/* Starts within (now - window_ms, now]. */
unsigned sup_history_starts_within(const sup_history *h, uint64_t now_ms, uint64_t window_ms);

/* Decides for a run that started at started_ms and ended at now_ms;
 * `permanent` is an exit the kernel declared final (exit code 100). Pure:
 * the new crash streak is in the answer's `streak`. */
sup_decision sup_policy_judge(const grace_restart *r, const sup_history *h, uint64_t started_ms,
			      uint64_t now_ms, bool permanent);
/* sup_policy_judge, then the crash streak stored into `h`. */
sup_decision sup_policy_decide(const grace_restart *r, sup_history *h, uint64_t started_ms,
			       uint64_t now_ms, bool permanent);

#endif
