/* A task's life (docs/coding_agent.md): a fresh git worktree on its own
 * branch made from `base`, the tests run there before (executor jobs),
 * the edits (a given patch, or a model's search/replace blocks turn by
 * turn), the tests after, the grading. The blocking parts (git, files) run
 * on the worker pool; executor jobs and model calls go through the loop.
 * The report, the same document GET /tasks/ID answers, is stored at every
 * step; every command run is in it and is an audit event. */
#ifndef GRACE_CODING_AGENT_TASK_H
#define GRACE_CODING_AGENT_TASK_H

#include "kernels/layer.h"

#include "sdk/kernel.h"
#include "sdk/model.h"
#include "sdk/pool.h"

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#define CA_ID_LEN 18          /* "t_" and 16 hex digits */
#define CA_TEST_IDS_MAX 64    /* fail_to_pass and pass_to_pass together */
#define CA_TEST_ID_MAX 512    /* bytes of one test id */
#define CA_ARGV_MAX 64        /* strings of test_command */
#define CA_INSTRUCTIONS_MAX (64u << 10)
#define CA_OUTPUT_TAIL 4000   /* bytes of a test run's stdout and stderr kept */
#define CA_WAIT_MAX_MS 30000  /* GET /tasks/ID?wait_ms= */

typedef struct ca_task ca_task;
typedef struct ca_waiter ca_waiter;

typedef struct ca {
	sdk_kernel *k;
	const grace_coding_agent *cfg;
	char root[PATH_MAX];    /* the workspace root, resolved; "" = no tasks */
	char wt_root[PATH_MAX]; /* where worktrees go */
	char tmp[PATH_MAX];     /* DATA_DIR/coding_agent-tmp: patches being applied */
	sdk_pool *pool;
	sdk_model *model; /* NULL when no model is configured */
	char model_why[256];
	ca_task *tasks; /* queued and running, in memory */
	unsigned running;
	ca_waiter *waiters;
	bool draining;
	struct {
		uint64_t submitted, done, failed, resolved, edits_failed, model_calls,
			model_failures, model_degraded, executor_jobs, git_commands,
			audit_failures, deleted, cancelled;
	} stats;
} ca;

/* A new task from a checked request body (borrowed) for `owner`: stored
 * queued, and started when a place is free. 0 and its id, or a negative
 * status with the reason. */
int ca_task_submit(ca *c, json_t *body, const char *owner, char id[CA_ID_LEN + 1], sdk_err *err);
/* Starts queued tasks while there is room. */
void ca_task_pump(ca *c);
/* The task in memory (queued or running), or NULL. */
ca_task *ca_task_find(ca *c, const char *id);
/* Removes a finished task's worktree and branch (on the pool), then its
 * row; `done` answers. SDK_ECONFLICT when it is still running. */
typedef void (*ca_delete_cb)(int status, json_t *report, const sdk_err *err, void *arg);
int ca_task_delete(ca *c, const char *id, ca_delete_cb done, void *arg, sdk_err *err);
/* Cancels a task in memory (`by`: who asked, for its report): 0 when it
 * ended at once (it was queued, or waited only for the model), 1 when it
 * ends at its next step (a git command or an executor job is in flight:
 * the job is asked to end); SDK_ECONFLICT when it has ended already,
 * SDK_ENOTFOUND when there is no such task. */
int ca_task_cancel(ca *c, const char *id, const char *by, sdk_err *err);
/* Ends every task in memory (the kernel stops): stored as failed. */
void ca_task_close_all(ca *c);

/* Long polls: called when a task ends (task.c), and answered by routes. */
struct ca_waiter {
	ca *c;
	sdk_req *req;
	char id[CA_ID_LEN + 1];
	struct event *timer;
	ca_waiter *next, *prev;
};
void ca_wake(ca *c, const char *id);

#endif
