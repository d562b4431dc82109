/* What the scheduler does with the slots that have come due: a pure
 * function of the job's schedule, its policies and the time now, so that
 * the missed-run rules are tested without a clock.
 *
 *   - A slot's due time is the slot plus its jitter (the same every time:
 *     a hash of the job and the slot, below jitter_ms).
 *   - A slot is on time when it is at most `tolerance_ms` late; it runs.
 *   - A later slot was missed (the scheduler was down, or paused by the
 *     machine): `skip` runs none, `run_once` the latest, `run_all` the
 *     latest `missed_max`, oldest first; the rest are recorded as missed.
 *   - No slot later than the starting deadline runs, whatever the policy.
 *
 * Slots are walked from the job's next unprocessed slot; past
 * SCH_WALK_MAX of them (a per-second job after a week down), the rest are
 * counted as missed without being walked and the walk resumes from now. */
#ifndef GRACE_SCHEDULER_PLAN_H
#define GRACE_SCHEDULER_PLAN_H

#include "kernels/layer.h"

#include "kernels/scheduler/cron.h"
#include "kernels/scheduler/spec.h"
#include "kernels/scheduler/tz.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SCH_WALK_MAX 100000
#define SCH_NO_SLOT INT64_MIN /* the schedule has no further slot */

/* A job's schedule: the cron fields (in its zone) or @every (from anchor). */
typedef struct sch_schedule {
	const cron_expr *cron;
	const tz_zone *zone;
	int64_t anchor_ms; /* @every: slots are anchor + k * every */
} sch_schedule;

/* The first slot strictly after after_ms, or SCH_NO_SLOT. */
int64_t sch_next_slot(const sch_schedule *s, int64_t after_ms);

/* The slot's jitter: [0, jitter_ms], from a hash of the job id and slot. */
int64_t sch_jitter(const char *job_id, int64_t slot_ms, int64_t jitter_ms);

typedef enum { SCH_TRIGGER_SCHEDULE, SCH_TRIGGER_CATCHUP, SCH_TRIGGER_MANUAL } sch_trigger;
const char *sch_trigger_name(sch_trigger t);

typedef struct sch_slot {
	int64_t slot_ms, due_ms;
	bool run;            /* false: recorded as missed */
	sch_trigger trigger; /* schedule (on time) or catchup */
} sch_slot;

typedef struct sch_plan_in {
	const sch_schedule *schedule;
	const char *job_id;
	sch_missed missed;
	unsigned missed_max;
	int64_t deadline_ms; /* -1: none */
	int64_t jitter_ms;
	int64_t tolerance_ms;
	int64_t next_slot_ms; /* the job's first unprocessed slot */
	int64_t now_ms;
} sch_plan_in;

typedef struct sch_plan {
	sch_slot *slots; /* owned (free with sch_plan_free): every slot walked, oldest first */
	size_t n;
	uint64_t missed_unwalked; /* slots past SCH_WALK_MAX, missed without a record */
	int64_t next_slot_ms;     /* the first slot not yet due, or SCH_NO_SLOT */
} sch_plan;

/* Plans the slots due by now_ms. 0, or SDK_EIO when out of memory. */
int sch_plan_due(const sch_plan_in *in, sch_plan *out);
void sch_plan_free(sch_plan *p);

#endif
