/* An investigation of the research kernel as it runs: its budget, the
 * calls it has out, what it gathered, and who waits for its end. Phases,
 * in order (a table in inv.c): gather (every source at once), prove
 * (inclusion proofs of the audit events the best hypothesis cites),
 * synthesize (the model, when one is configured), save (on the pool). */
#ifndef GRACE_KERNELS_RESEARCH_INV_H
#define GRACE_KERNELS_RESEARCH_INV_H

#include "kernels/layer.h"
#include "kernels/research/question.h"
#include "sdk/config.h"
#include "sdk/kernel.h"
#include "sdk/model.h"
#include "sdk/pool.h"
#include "sdk/token.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define RS_QUESTION_MAX 2000 /* bytes of a question */
#define RS_EVIDENCE_MAX 60   /* pieces of evidence one investigation keeps */
#define RS_PROOFS_MAX 3      /* audit events whose log proof is fetched */
#define RS_WAIT_MAX_MS 60000 /* the longest long poll (?wait_ms=) */

/* Why a model's answer was not used, for /metrics: sdk_model_failure's
 * kinds, then the research kernel's own. */
enum { RS_FAIL_UNCITED = SDK_MODEL_FAILURE_KINDS, RS_FAIL_BUDGET, RS_FAIL_KINDS };

typedef struct rs_kernel {
	sdk_kernel *k;
	grace_research cfg;
	sdk_model *model; /* NULL without a [model] */
	sdk_pool *pool;   /* SQLite, off the loop */
	int64_t last_id;
	struct rs_inv *running; /* a list, newest first */
	unsigned n_running;
	unsigned n_waiters; /* long polls held */
	bool closing;
	bool draining; /* SIGTERM came: no new long polls (drain answers the ones held) */
	const char *const *names; /* the kernels' names, for the question parser */
	unsigned long long started, by_model, by_rules, budget_exhausted,
		model_failures[RS_FAIL_KINDS], unavailable, redactions, dropped_claims;
} rs_kernel;

typedef struct rs_waiter {
	sdk_req *req;
	struct event *timer;
	struct rs_inv *inv;
	struct rs_waiter *next;
} rs_waiter;

typedef enum rs_phase { RS_GATHER, RS_PROVE, RS_SYNTH, RS_SAVE, RS_DONE } rs_phase;

typedef struct rs_inv {
	rs_kernel *rk;
	struct rs_inv *next;
	int64_t id;
	rs_question q;
	rs_phase phase;
	unsigned steps, steps_max;
	int64_t started_mono, deadline_mono;
	unsigned pending;          /* calls out in this phase */
	json_t *doc;               /* the document answered and stored */
	json_t *evidence;          /* doc's "evidence", borrowed from doc */
	json_t *sources;           /* doc's "sources", borrowed from doc */
	sdk_model_call *call;      /* the model's, while it runs */
	struct event *deadline_ev; /* the time budget */
	rs_waiter *waiters;
	bool saving;
	bool issuing; /* inside a phase's start: a call back already is counted, not acted on */
	/* The asking user's delegation to read their memory tables (from the
	 * gateway, SDK_DELEGATION_HEADER; "" without one): kept in memory
	 * only, zeroed with the investigation, never stored or shown. */
	char delegation[SDK_DELEGATION_MAX + 1];
} rs_inv;

/* Starts investigation `doc` (new, owned by it now: {"question", "kernel",
 * "since_ms", "until_ms", budget...} already checked). */
rs_inv *rs_inv_start(rs_kernel *rk, json_t *doc, const rs_question *q, unsigned steps_max,
		     unsigned time_ms);
/* Runs its phases (after the POST that made it is answered). */
void rs_inv_run(rs_inv *inv);
/* The running investigation `id`, or NULL. */
rs_inv *rs_inv_find(rs_kernel *rk, int64_t id);
/* Adds a long poll on `inv`: answered with the document when it ends, or
 * after wait_ms. */
void rs_inv_wait(rs_inv *inv, sdk_req *req, unsigned wait_ms);
/* Answers every long poll with the state as it is (the drain). */
void rs_inv_reply_waiters_all(rs_kernel *rk);
/* Frees every investigation (close: the pool and calls are gone). */
void rs_inv_close_all(rs_kernel *rk);

/* The evidence gathered so far: adds one piece (redacting it) and gives
 * it its id; NULL past RS_EVIDENCE_MAX. Borrowed: it lives in the doc. */
json_t *rs_evidence_add(rs_inv *inv, const char *source, const char *kernel, int64_t ts_ms,
			const char *summary, json_t *citation, json_t *signals);
/* Records a source's outcome: "ok", "unavailable" (with why), "skipped". */
void rs_source_note(rs_inv *inv, const char *source, const char *status, const char *detail);

/* The phase's calls (gather.c): issue them, counting inv->pending. */
void rs_gather_start(rs_inv *inv);
void rs_prove_start(rs_inv *inv);
/* Called by gather.c when one call of the phase is back. */
void rs_inv_call_done(rs_inv *inv);
/* A step of the budget, if any is left: true and counted, or false (the
 * source noted as cut by the budget). */
bool rs_inv_take_step(rs_inv *inv, const char *source);
/* The time a call may take now, within the budget: 0 when none is left. */
unsigned rs_inv_call_timeout(rs_inv *inv);

#endif
