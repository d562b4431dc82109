#include "serve/supervisor/policy.h"

#include <string.h>

void sup_history_reset(sup_history *h) { memset(h, 0, sizeof *h); }

void sup_history_add_start(sup_history *h, uint64_t now_ms)
{
	h->starts_ms[h->head] = now_ms;
	h->head = (h->head + 1) % SUP_HISTORY_MAX;
	if (h->n < SUP_HISTORY_MAX)
		h->n++;
}

unsigned sup_history_starts_within(const sup_history *h, uint64_t now_ms, uint64_t window_ms)
{
	unsigned count = 0;
	for (unsigned i = 0; i < h->n; i++) {
		uint64_t t = h->starts_ms[(h->head + SUP_HISTORY_MAX - 1 - i) % SUP_HISTORY_MAX];
		if (now_ms - t < window_ms)
			count++;
	}
	return count;
}

sup_decision sup_policy_judge(const grace_restart *r, const sup_history *h, uint64_t started_ms,
			      uint64_t now_ms, bool permanent)
{
	if (permanent)
		return (sup_decision){ SUP_GIVE_UP, 0, "the kernel reported a permanent error",
				       h->quick_crashes };
	unsigned burst = r->burst_max < SUP_HISTORY_MAX ? r->burst_max : SUP_HISTORY_MAX - 1;
	if (sup_history_starts_within(h, now_ms, r->burst_window_ms) >= burst)
		return (sup_decision){ SUP_GIVE_UP, 0, "restart burst limit reached",
				       h->quick_crashes };

	if (now_ms - started_ms >= r->stable_ms)
		return (sup_decision){ SUP_RESTART_NOW, 0, "exit after a stable run", 0 };
	unsigned streak = h->quick_crashes + 1;
	uint64_t delay = r->backoff_initial_ms;
	for (unsigned i = 1; i < streak && delay < r->backoff_max_ms; i++)
		delay *= 2;
	if (delay > r->backoff_max_ms)
		delay = r->backoff_max_ms;
	return (sup_decision){ delay ? SUP_RESTART_AFTER : SUP_RESTART_NOW, delay,
			       "repeated crash: backing off", streak };
}

sup_decision sup_policy_decide(const grace_restart *r, sup_history *h, uint64_t started_ms,
			       uint64_t now_ms, bool permanent)
{
	sup_decision d = sup_policy_judge(r, h, started_ms, now_ms, permanent);
	h->quick_crashes = d.streak;
	return d;
}
