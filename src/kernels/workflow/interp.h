/* The workflow interpreter: a state table over a tree of frames.
 *
 * A run's state is a JSON document {"root": FRAME, "context": ...}; a
 * frame is one task (or one task list) in progress: its position (a path
 * of task names with loop indexes and try attempts: the key of everything
 * the frame does outside), its phase and what its phase needs. wf_pump
 * advances every frame as far as it can go without waiting: it stops when
 * each active leaf waits on an effect (a call, a job, an emitted or awaited
 * event: the frame holds the effect's description in "eff"), a timer
 * ("due") or the budget of steps for this turn, or when the run ends. The
 * driver (wf.c) commits the state with the history events the pump
 * appended, then carries out the effects and puts their results in the
 * frames ("res"), and pumps again. Nothing here does I/O or reads a clock:
 * the same state, results and now_ms give the same next state, so a state
 * committed after each step is a run that resumes exactly where it was. */
#ifndef GRACE_WORKFLOW_INTERP_H
#define GRACE_WORKFLOW_INTERP_H

#include "kernels/layer.h"

#include "kernels/workflow/expr.h"

#include <jansson.h>
#include <stdint.h>

#define WF_ERR_BASE "https://serverlessworkflow.io/spec/1.0.0/errors/"

typedef struct wf_rt {
	wfx_env x;
	const json_t *doc;   /* the definition (borrowed) */
	json_t *workflow;    /* $workflow (borrowed) */
	json_t *input;       /* $input: the run's input (borrowed) */
	json_t *events;      /* history events appended by the pump (borrowed) */
	int64_t now_ms;
	int64_t next_due;    /* out: the earliest timer a frame waits on, 0 none */
	unsigned budget;     /* task steps allowed in this pump */
	uint64_t (*random)(void); /* jitter */
	json_t *context;     /* $context during a pump (owned by the state) */
} wf_rt;

typedef enum wf_step {
	WF_ST_DONE,    /* the run completed: *result the output */
	WF_ST_FAULT,   /* the run faulted: *result the error */
	WF_ST_BLOCKED, /* waiting on effects or timers */
	WF_ST_YIELD,   /* the budget ran out: pump again soon */
} wf_step;

/* The initial state for `input` (the workflow's input.from applied);
 * NULL with the error object in *error. */
json_t *wf_state_new(wf_rt *rt, json_t *input, json_t **error);
/* Advances the run; *result gets a new reference for DONE and FAULT. */
wf_step wf_pump(wf_rt *rt, json_t *state, json_t **result);
/* The frames waiting on an effect with no result yet (borrowed). */
void wf_pending(json_t *state, json_t *out_frames);
/* The frame at pos (borrowed), or NULL. */
json_t *wf_frame(json_t *state, const char *pos);
/* A faulted run made ready to go on from the task that failed: that task
 * starts again (with its attempt counted: a new idempotency key). 0, or -1
 * when the state holds no failed task. */
int wf_state_retry(json_t *state);
/* The error object for a fault (a new reference). */
json_t *wf_error(const char *type, int status, const char *title, const char *detail,
		 const char *instance);

#endif
