/* A user's role reaches the kernels that act later as that user.
 *
 * A scheduler job, a workflow run and a state machine's delayed events and
 * emits act with the role their owner had when they were made. When a
 * role changes (governance's user.role, the only way), each of those
 * kernels is told with `PUT /owner-roles` (sdk/owner_roles.h): the
 * notice is written to a journal (DATA_DIR/grace.db, user_role_notices)
 * before the role changes, with a version that only grows, and struck out
 * per kernel once that kernel has acknowledged it; a kernel that cannot
 * be reached is tried again every 2 s, and after a restart of this
 * process. The role sent is read from the user store when it is sent (a
 * deleted user's: "user"), so a retry never carries an older role than
 * the store's, and a kernel ignores a version older than one it applied.
 *
 * Fail closed: every such kernel, when grace serve starts it, acts for no
 * one until it has been sent the notices still pending for it (maybe
 * none); this module sends them whenever the kernel becomes ready. */
#ifndef GRACE_API_USER_ROLES_H
#define GRACE_API_USER_ROLES_H

#include "serve/layer.h"

#include "serve/supervisor/supervisor.h"

#include <jansson.h>

struct api_ctx;
typedef struct user_roles user_roles;

/* Opens the journal and starts telling the kernels what it lists. `token`
 * (borrowed, must outlive it) is the internal token. NULL (logged) on
 * failure: then no role changes (api_user_role_begin fails). */
user_roles *user_roles_new(struct api_ctx *api, const char *token);
void user_roles_free(user_roles *r);

/* Before the role of `name` changes: journals a notice for every kernel.
 * -1 (logged) when it cannot be journaled: the role must not change then. */
int api_user_role_begin(struct api_ctx *api, const char *name);
/* After the change: sends the notices, then `ready(arg, pending)` once
 * every kernel has acknowledged (pending NULL), or after 5 s (pending: a
 * new array of the kernels still to acknowledge, which keep trying in the
 * background), or at shutdown: exactly once, perhaps before this returns. */
typedef void (*user_roles_ready_cb)(void *arg, json_t *pending);
void api_user_role_wait(struct api_ctx *api, const char *name, user_roles_ready_cb ready,
			void *arg);
/* The supervisor's hook: a kernel that became ready is told again. */
void api_user_roles_on_change(struct api_ctx *api, const sup_change *c);

#endif
