/* Tasks in SQLite (DATA_DIR/coding_agent.db): one row each, its report as
 * JSON (the same document GET /tasks/ID answers), written at every step. */
#ifndef GRACE_CODING_AGENT_STORE_H
#define GRACE_CODING_AGENT_STORE_H

#include "kernels/layer.h"

#include "sdk/err.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdint.h>

#define CA_PAGE_MAX 200

int ca_store_init(sqlite3 *db, sdk_err *err);
/* Inserts or replaces the task's document (its "id" and "state" read from it). */
int ca_store_put(sqlite3 *db, const json_t *doc, int64_t now_ms, sdk_err *err);
/* SDK_ENOTFOUND when there is none; *doc is a new reference. */
int ca_store_get(sqlite3 *db, const char *id, json_t **doc, sdk_err *err);
/* Newest first, below `cursor` (a seq; 0: from the newest); each with "seq". */
int ca_store_list(sqlite3 *db, int64_t cursor, unsigned limit, json_t **out, sdk_err *err);
int ca_store_delete(sqlite3 *db, const char *id, sdk_err *err);
/* Tasks a previous life left unfinished: failed, with the reason. */
int ca_store_fail_unfinished(sqlite3 *db, const char *why, sdk_err *err);
/* Tasks in all. */
int ca_store_count(sqlite3 *db, int64_t *n, sdk_err *err);

#endif
