/* A user's data goes with the user. When a user is deleted, and again
 * when a user is created (a new account may take the name of one whose
 * purge a crash interrupted), everything kept under that name is removed:
 *
 *   - memory: their tables with every row, the shares of those tables,
 *     and the shares of other users' tables given to them;
 *   - chat: their sessions with every message;
 *   - librarian: their documents are kept (the library is shared and chat
 *     cites it) but lose their owner, so only an admin changes them; their
 *     ingests still queued or running are cancelled;
 *   - scheduler: their jobs, with their open runs cancelled (a job acts
 *     as its creator: never for a deleted one, nor for a new user who
 *     takes the name);
 *   - workflow: their runs with their history, active ones stopped where
 *     they are (their definitions lose their owner: admins' only then);
 *   - state_machine: their instances with their history and delayed
 *     events.
 *
 * Each purge is written to a journal (DATA_DIR/grace.db, user_purges)
 * before it starts and struck out when every part is done, so a restart
 * finishes what a crash interrupted; a part that fails (a kernel down) is
 * retried. Until a part is done, the user of that name is refused (503,
 * Retry-After) on the routes that would show its data: nothing of an
 * earlier user is ever shown to a new one. */
#ifndef GRACE_API_USER_DATA_H
#define GRACE_API_USER_DATA_H

#include "serve/layer.h"

#include "sdk/http.h"

#include <stdbool.h>

struct api_ctx;
typedef struct user_data user_data;

/* Opens the journal and resumes the purges it lists. `token` (borrowed,
 * must outlive it) is the internal token for the librarian. NULL (logged)
 * on failure. */
user_data *user_data_new(struct api_ctx *api, const char *token);
/* Ends calls in flight without waiting; the journal keeps what is left. */
void user_data_free(user_data *u);

/* The hook of user deletion and creation: purges everything kept under
 * `name` (see above), now and in the background. */
void api_user_data_purge(struct api_ctx *api, const char *name);
/* The same, then `ready(arg)` once nothing of `name` is left in this
 * process (memory, chat) and every kernel's part has been tried once
 * (a part that failed, its kernel down, is retried in the background,
 * its routes refused meanwhile), or after 5 s when that takes longer, or
 * at shutdown: exactly once, perhaps before this returns. So a user
 * created is answered when it can use what it was given. */
typedef void (*user_data_ready_cb)(void *arg);
void api_user_data_purge_wait(struct api_ctx *api, const char *name, user_data_ready_cb ready,
			      void *arg);
/* The hook of authorization: false, after answering 503, while data of
 * an earlier user of this name is still being removed from what `req`
 * reaches. */
bool api_user_data_ready(struct api_ctx *api, sdk_req *req, const char *user);

#endif
