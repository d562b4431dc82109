/* A change request's life as a table: (state, event) -> next state. Every
 * change of a request goes through gov_fsm_next; a pair the table does not
 * hold is refused (409), so no route can move a request where it may not
 * go. Pure. */
#ifndef GRACE_KERNELS_GOVERNANCE_FSM_H
#define GRACE_KERNELS_GOVERNANCE_FSM_H

#include "kernels/layer.h"

enum gov_state {
	GOV_OPEN,           /* waiting for approvals */
	GOV_APPROVED,       /* the rule is met: the action is due (its intent is written) */
	GOV_RUNNING,        /* the main process has claimed the action */
	GOV_DONE,           /* it ran; the result is attached */
	GOV_FAILED,         /* it ran and failed (or could not run); the result says why */
	GOV_DENIED,         /* vetoed */
	GOV_EXPIRED,        /* not approved in time */
	GOV_WITHDRAWN,      /* its requester took it back */
	GOV_BROKE_GLASS,    /* break-glass: runs at once, without approvals */
	GOV_REVIEW_PENDING, /* break-glass ran: a review is mandatory */
	GOV_REVIEWED,       /* break-glass reviewed */
	GOV_STATE_COUNT
};

enum gov_event {
	GOV_EV_APPROVE,  /* an approval that does not yet meet the rule */
	GOV_EV_QUORUM,   /* the approval that meets it */
	GOV_EV_VETO,     /* deny and veto are the same event */
	GOV_EV_CHANGE,   /* parameters changed: earlier approvals void */
	GOV_EV_WITHDRAW,
	GOV_EV_EXPIRE,
	GOV_EV_CLAIM,    /* the main process starts the action */
	GOV_EV_SUCCEED,  /* the result, ok */
	GOV_EV_FAIL,     /* the result, failed */
	GOV_EV_REVIEW,
	GOV_EVENT_COUNT
};

/* The next state, or -1 when the event is not allowed in `from`. */
int gov_fsm_next(int from, int ev);
const char *gov_state_name(int s);
const char *gov_event_name(int ev);
/* -1 for an unknown name. */
int gov_state_parse(const char *name);
/* True for states no event leaves. */
int gov_state_final(int s);

#endif
