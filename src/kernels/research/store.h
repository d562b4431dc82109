/* The research kernel's investigations in SQLite (DATA_DIR/research.db):
 * one row each, its whole document as JSON. Called on the worker pool. */
#ifndef GRACE_KERNELS_RESEARCH_STORE_H
#define GRACE_KERNELS_RESEARCH_STORE_H

#include "kernels/layer.h"
#include "sdk/err.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdint.h>

#define RS_LIST_MAX 100 /* investigations one list answers */

/* Creates the table; marks investigations a previous run left running as
 * "interrupted"; *max_id gets the highest id kept (0: none). */
int rs_store_init(sqlite3 *db, int64_t *max_id, sdk_err *err);
/* Inserts or replaces investigation `id` (its document `doc`, borrowed),
 * then keeps the newest `keep`. */
int rs_store_put(sqlite3 *db, int64_t id, const json_t *doc, unsigned keep, sdk_err *err);
/* The document of `id` (new), or SDK_ENOTFOUND. */
int rs_store_get(sqlite3 *db, int64_t id, json_t **doc, sdk_err *err);
/* The newest `limit` with an id below `before` (0: any), newest first, as
 * summaries {id, state, question, kernel, created_ms, top}: a new array. */
int rs_store_list(sqlite3 *db, int64_t before, unsigned limit, json_t **out, sdk_err *err);

#endif
