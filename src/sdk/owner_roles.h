/* A user's role reaches the kernels that act later as that user.
 *
 * A scheduler job, a workflow run and a state machine's delayed events act
 * with the role their owner had when they were made. When that role
 * changes in the main process (governance's user.role), the main process
 * tells each such kernel, durably and in order (serve/api/user_roles.h):
 * `PUT /owner-roles {"roles":[{"owner","role","version"}...]}`, the
 * changes it has not had acknowledged yet. The kernel applies each entry
 * newer than the last version it applied for that owner (an older one,
 * retried late, is ignored) to every item of that owner, all in one
 * transaction.
 *
 * Fail closed: a kernel spawned by `grace serve` does not know, when it
 * starts, whether a change happened while it was down; it acts for no one
 * until the main process has sent it the changes still pending (maybe
 * none), which the main process does whenever the kernel becomes ready.
 * A kernel run alone (no main process: no role can change) starts synced. */
#ifndef GRACE_SDK_OWNER_ROLES_H
#define GRACE_SDK_OWNER_ROLES_H

#include "sdk/err.h"
#include "sdk/http.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#define SDK_OWNER_ROLES_PATH "/owner-roles"
#define SDK_OWNER_ROLES_MAX 500 /* entries in one request */
#define SDK_OWNER_NAME_MAX 64

/* Whether the kernel must wait for the main process's first notice before
 * it acts for users: true when spawned by grace serve. */
bool sdk_owner_roles_wait_at_start(void);

/* Checks a `PUT /owner-roles` request: the internal token, the main
 * process as caller and no user (refused 403 otherwise: a user, even an
 * admin through the gateway, never sets roles), and its body (400 naming
 * the field). Returns the "roles" array (borrowed from the request), or
 * NULL after answering. *complete: false when the main process has more
 * to send (the body's "complete", true when absent): the kernel is not
 * synced before the last part. */
const json_t *sdk_owner_roles_take(sdk_req *req, const char *token, bool *complete);

/* Applies `roles` in one transaction: for each entry newer than the
 * version stored for its owner (table owner_roles, made here when
 * missing), runs each of `updates` (SQL with ?1 the role, ?2 the owner)
 * and stores the version. *applied (new array, may be NULL) lists the
 * entries applied; *items sums the rows the updates changed. */
int sdk_owner_roles_apply(sqlite3 *db, const json_t *roles, const char *const *updates,
			  size_t n_updates, json_t **applied, int64_t *items, sdk_err *err);

/* A kernel's `PUT /owner-roles`, whole: takes the request, applies
 * `update` (as sdk_owner_roles_apply), calls each(arg, owner, role) for
 * every entry applied (a kernel that keeps roles in memory too; may be
 * NULL), logs what changed ("NAME: N owners' roles changed (M `what`)")
 * and answers {"applied","items"}. Returns 1 when this request made the
 * kernel synced for the first time (*synced was false and the list is
 * complete: what the kernel held back may go now), 0 otherwise, and -1
 * when it answered an error. */
struct sdk_kernel;
int sdk_owner_roles_serve(sdk_req *req, struct sdk_kernel *k, const char *update, const char *what,
			  bool *synced, void (*each)(void *arg, const char *owner, const char *role),
			  void *arg);

#endif
