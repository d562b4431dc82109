/* The scheduler kernel's state, shared by its routes (scheduler.c) and the
 * code that acts on runs (act.c). */
#ifndef GRACE_SCHEDULER_SCHED_H
#define GRACE_SCHEDULER_SCHED_H

#include "kernels/layer.h"

#include "kernels/scheduler/plan.h"
#include "kernels/scheduler/store.h"
#include "sdk/kernel.h"

#include <stdbool.h>
#include <stdint.h>

#define SCH_ZONES_MAX 512 /* distinct time zones kept parsed */

typedef struct sch_act sch_act;

typedef struct sched {
	sdk_kernel *k;
	const grace_scheduler *cfg;
	struct event *timer;    /* at the earliest due slot (at most a second away) */
	struct event *dispatch; /* runs the dispatcher on the next loop turn */
	bool draining;
	/* The main process has told us of every role change of a job's owner
	 * (sdk/owner_roles.h): until then no run is acted on. */
	bool roles_synced;
	struct {
		char name[TZ_NAME_MAX + 1];
		tz_zone *z;
	} zones[SCH_ZONES_MAX];
	size_t n_zones;
	sch_act *acts; /* runs being acted on (a list) */
	unsigned n_acts;
	int64_t dispatched_upto; /* the highest run id handed to an act */
	bool dispatch_more;      /* open runs above dispatched_upto may wait */
	struct {
		uint64_t slots, fired, missed, denied, skipped, failed, succeeded, interrupted;
		uint64_t plan_errors, act_errors;
	} stats;
} sched;

/* The zone by name, parsed once and kept; NULL with the reason in err. */
const tz_zone *sched_zone(sched *s, const char *name, sdk_err *err);
/* The job's schedule (its zone from the cache); -1 when the zone is gone. */
int sched_schedule(sched *s, const sch_job *j, sch_schedule *out, sdk_err *err);

/* act.c: acting on open runs. */
struct event *sched_dispatch_event(sched *s); /* the dispatcher's event (owned by s) */
void sched_dispatch_soon(sched *s);
void sched_dispatch(sched *s);
/* Ends every act without answers (drain/close): they stay open in the
 * store and a restart takes them up. */
void sched_acts_free(sched *s);
/* Identity headers for a call made on behalf of a job's owner: a NULL-
 * terminated name/value list in `out` (at least 7 slots). */
void sched_owner_headers(const sch_job *j, const char *idem_key, const char **out);

/* Whether `j`'s creator may do what its target does, now (act.c): the
 * policy kernel's answer (the role table without one); `source` is
 * "policy" or "builtin", or SCHED_POLICY_UNAVAILABLE when nothing could be
 * decided (then allow is false), `reason` names the determining policies. `j` must
 * live until cb, which may run before this returns. Fails closed. */
#define SCHED_POLICY_UNAVAILABLE "unavailable"
typedef void (*sched_policy_cb)(void *arg, bool allow, const char *source, const char *reason);
void sched_policy_ask(sched *s, const sch_job *j, const char *trigger, int64_t slot_ms,
		      sched_policy_cb cb, void *arg);

#endif
