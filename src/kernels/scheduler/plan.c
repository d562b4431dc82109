#include "kernels/scheduler/plan.h"

#include <stdlib.h>
#include <string.h>

static const char *const trigger_names[] = { "schedule", "catchup", "manual" };

const char *sch_trigger_name(sch_trigger t)
{
	return trigger_names[t];
}

int64_t sch_next_slot(const sch_schedule *s, int64_t after_ms)
{
	if (s->cron->every_ms)
		return cron_every_next(s->cron->every_ms, s->anchor_ms, after_ms);
	/* Cron slots are whole seconds: the first second after after_ms. */
	int64_t after_s = after_ms >= 0 ? after_ms / 1000 : -((-after_ms + 999) / 1000);
	int64_t next;
	if (!cron_next(s->cron, s->zone, after_s, &next))
		return SCH_NO_SLOT;
	return next * 1000;
}

int64_t sch_jitter(const char *job_id, int64_t slot_ms, int64_t jitter_ms)
{
	if (jitter_ms <= 0)
		return 0;
	/* FNV-1a over the id and the slot: stable across restarts. */
	uint64_t h = 1469598103934665603ULL;
	for (const unsigned char *p = (const unsigned char *)job_id; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	for (int i = 0; i < 8; i++)
		h = (h ^ (uint64_t)(slot_ms >> (i * 8) & 0xff)) * 1099511628211ULL;
	return (int64_t)(h % (uint64_t)(jitter_ms + 1));
}

int sch_plan_due(const sch_plan_in *in, sch_plan *out)
{
	*out = (sch_plan){ .next_slot_ms = in->next_slot_ms };
	size_t cap = 0;
	int64_t x = in->next_slot_ms;
	while (x != SCH_NO_SLOT) {
		int64_t due = x + sch_jitter(in->job_id, x, in->jitter_ms);
		if (due > in->now_ms)
			break;
		if (out->n == SCH_WALK_MAX) {
			/* Too many to walk: the rest up to now are missed, uncounted
			 * one by one (at least one is). */
			out->missed_unwalked++;
			x = sch_next_slot(in->schedule, in->now_ms - in->jitter_ms);
			while (x != SCH_NO_SLOT && x + sch_jitter(in->job_id, x, in->jitter_ms) <= in->now_ms)
				x = sch_next_slot(in->schedule, x);
			break;
		}
		if (out->n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			sch_slot *ns = realloc(out->slots, ncap * sizeof *ns);
			if (!ns) {
				sch_plan_free(out);
				return SDK_EIO;
			}
			out->slots = ns;
			cap = ncap;
		}
		out->slots[out->n++] = (sch_slot){ .slot_ms = x, .due_ms = due };
		x = sch_next_slot(in->schedule, x);
	}
	out->next_slot_ms = x;

	/* Decide, newest first: late slots within the deadline are the
	 * candidates for a catch-up, as many as the policy allows. */
	unsigned late_runs = in->missed == SCH_MISSED_SKIP ? 0
			     : in->missed == SCH_MISSED_RUN_ONCE ? 1
								   : in->missed_max;
	for (size_t i = out->n; i-- > 0;) {
		sch_slot *s = &out->slots[i];
		int64_t late = in->now_ms - s->due_ms;
		bool in_deadline = in->deadline_ms < 0 || late <= in->deadline_ms;
		if (late <= in->tolerance_ms && in_deadline) {
			s->run = true;
			s->trigger = SCH_TRIGGER_SCHEDULE;
		} else if (in_deadline && late_runs > 0) {
			s->run = true;
			s->trigger = SCH_TRIGGER_CATCHUP;
			late_runs--;
		}
	}
	return 0;
}

void sch_plan_free(sch_plan *p)
{
	free(p->slots);
	p->slots = NULL;
	p->n = 0;
}
