/* Recall: rows of a user's memory tables (src/memory/) that match a
 * question, for the context of an answer. The memory store's calls block,
 * so each lookup runs on a worker thread of recall's own and its answer
 * comes back on the loop. */
#ifndef GRACE_CHAT_RECALL_H
#define GRACE_CHAT_RECALL_H

#include "serve/layer.h"

#include "sdk/config.h"
#include "sdk/err.h"

#include <jansson.h>
#include <stddef.h>

struct event_base;
typedef struct chat_recall chat_recall;
typedef struct chat_recall_job chat_recall_job;

#define RECALL_TABLES_MAX 20 /* searchable tables looked at per question */
#define RECALL_EXCERPT_MAX 600 /* bytes of a row shown to the model */

/* On the loop: `sources` [{"n","kind":"memory","table","owner","row_id",
 * "excerpt"}] (a new reference the callee owns; maybe empty), and
 * `problem` NULL or why the tables could not be searched. */
typedef void (*chat_recall_done_fn)(json_t *sources, const char *problem, void *arg);

/* Opens the memory store (one connection: DATA_DIR/memory.db, or the
 * PostgreSQL database `store` names) and one worker. NULL with the
 * reason in `err`. */
chat_recall *chat_recall_open(struct event_base *base, const char *data_dir,
			      const grace_store_cfg *store, sdk_err *err);
/* Waits for the lookup running; lookups not yet run are dropped. */
void chat_recall_close(chat_recall *r);

/* Looks for `user`'s rows (their tables and those shared with them) whose
 * text columns match `question`, at most `max`, numbered from `first_n`.
 * NULL when it cannot start (no callback). */
chat_recall_job *chat_recall_start(chat_recall *r, const char *user, const char *question,
				   size_t max, size_t first_n, chat_recall_done_fn done, void *arg);
/* `done` will not be called. */
void chat_recall_cancel(chat_recall_job *j);

#endif
