/* The research kernel's hypotheses (pure): what the evidence says, as
 * signals on kernels ("down", "exit_signal_9", "oom", ...), and rules, as
 * data, that turn signals into ranked hypotheses, each naming the ids of
 * the evidence it rests on. Unit-tested in tests/unit/test_research.c. */
#ifndef GRACE_KERNELS_RESEARCH_RULES_H
#define GRACE_KERNELS_RESEARCH_RULES_H

#include "kernels/layer.h"

#include <jansson.h>
#include <stddef.h>

#define RS_DEPS_MAX 4 /* kernels one kernel depends on, at most */

/* The kernels `kernel` needs to do its work (the audit trail appends to
 * the immutable log, ...): NULL-ended, borrowed, never NULL. */
const char *const *rs_deps_of(const char *kernel);

/* Appends to the array `signals` what a supervisor state change says (an
 * audit event "kernel.state": the states it went from and to, and the last
 * exit, e.g. "signal 9 (Killed)", "watchdog: no ping for 5000 ms: signal
 * 9"). `from` may be NULL. */
void rs_signals_of_state(const char *from, const char *to, const char *last_exit,
			 json_t *signals);
/* The same for a healer's "heal" event: its playbook's steps. */
void rs_signals_of_heal(const json_t *details, json_t *signals);

/* Ranks hypotheses from `evidence` (an array of objects with "id",
 * "kernel" (may be absent) and "signals" (an array of strings)) about
 * `asked` (a kernel, or NULL for none): returns a new array, best first,
 * of {"id":"H1","rule","kernel","title","score","evidence":["E1",...]};
 * empty when no rule holds. Ties go to the rule listed first. */
json_t *rs_rank(const json_t *evidence, const char *asked);

/* The rules, for docs and tests: how many, and the id of rule i. */
size_t rs_rule_count(void);
const char *rs_rule_id(size_t i);

#endif
