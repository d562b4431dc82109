#include "kernels/governance/fsm.h"

#include <string.h>

static const char *const state_names[GOV_STATE_COUNT] = {
	[GOV_OPEN] = "open",
	[GOV_APPROVED] = "approved",
	[GOV_RUNNING] = "running",
	[GOV_DONE] = "done",
	[GOV_FAILED] = "failed",
	[GOV_DENIED] = "denied",
	[GOV_EXPIRED] = "expired",
	[GOV_WITHDRAWN] = "withdrawn",
	[GOV_BROKE_GLASS] = "broke_glass",
	[GOV_REVIEW_PENDING] = "review_pending",
	[GOV_REVIEWED] = "reviewed",
};

static const char *const event_names[GOV_EVENT_COUNT] = {
	[GOV_EV_APPROVE] = "approve", [GOV_EV_QUORUM] = "quorum",   [GOV_EV_VETO] = "veto",
	[GOV_EV_CHANGE] = "change",   [GOV_EV_WITHDRAW] = "withdraw", [GOV_EV_EXPIRE] = "expire",
	[GOV_EV_CLAIM] = "claim",     [GOV_EV_SUCCEED] = "succeed", [GOV_EV_FAIL] = "fail",
	[GOV_EV_REVIEW] = "review",
};

/* 0 in a cell means "not allowed" (the states are stored +1). A claim is
 * allowed again while running: the main process asks again after the
 * governance kernel restarted mid-run, and its own record keeps the action
 * from running twice. A result may come without a claim (the claim's
 * answer was lost). */
#define TO(s) ((s) + 1)
static const signed char table[GOV_STATE_COUNT][GOV_EVENT_COUNT] = {
	[GOV_OPEN] = { [GOV_EV_APPROVE] = TO(GOV_OPEN),
		       [GOV_EV_QUORUM] = TO(GOV_APPROVED),
		       [GOV_EV_VETO] = TO(GOV_DENIED),
		       [GOV_EV_CHANGE] = TO(GOV_OPEN),
		       [GOV_EV_WITHDRAW] = TO(GOV_WITHDRAWN),
		       [GOV_EV_EXPIRE] = TO(GOV_EXPIRED) },
	[GOV_APPROVED] = { [GOV_EV_CLAIM] = TO(GOV_RUNNING),
			   [GOV_EV_SUCCEED] = TO(GOV_DONE),
			   [GOV_EV_FAIL] = TO(GOV_FAILED) },
	[GOV_RUNNING] = { [GOV_EV_CLAIM] = TO(GOV_RUNNING),
			  [GOV_EV_SUCCEED] = TO(GOV_DONE),
			  [GOV_EV_FAIL] = TO(GOV_FAILED) },
	[GOV_BROKE_GLASS] = { [GOV_EV_CLAIM] = TO(GOV_BROKE_GLASS),
			      [GOV_EV_SUCCEED] = TO(GOV_REVIEW_PENDING),
			      [GOV_EV_FAIL] = TO(GOV_REVIEW_PENDING) },
	[GOV_REVIEW_PENDING] = { [GOV_EV_REVIEW] = TO(GOV_REVIEWED) },
};

int gov_fsm_next(int from, int ev)
{
	if (from < 0 || from >= GOV_STATE_COUNT || ev < 0 || ev >= GOV_EVENT_COUNT)
		return -1;
	return table[from][ev] - 1;
}

const char *gov_state_name(int s)
{
	return s >= 0 && s < GOV_STATE_COUNT ? state_names[s] : "unknown";
}

const char *gov_event_name(int ev)
{
	return ev >= 0 && ev < GOV_EVENT_COUNT ? event_names[ev] : "unknown";
}

int gov_state_parse(const char *name)
{
	for (int i = 0; name && i < GOV_STATE_COUNT; i++)
		if (!strcmp(name, state_names[i]))
			return i;
	return -1;
}

int gov_state_final(int s)
{
	for (int ev = 0; ev < GOV_EVENT_COUNT; ev++)
		if (gov_fsm_next(s, ev) >= 0)
			return 0;
	return 1;
}
