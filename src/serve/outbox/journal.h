/* The audit journal: security events waiting in grace.db for the audit
 * kernel. Each is written before the request that caused it is answered
 * and deleted only once the audit kernel has stored it, so none is lost to
 * a full queue, an audit kernel that is down, or a restart of Grace.
 *
 * A row is an event, or an aggregate: a row with a key, open until its
 * ready time, to which further occurrences add a count (failed logins per
 * source, user and window). Every event leaves with a "uid" made of the
 * journal's random epoch and the row's id, so the audit kernel stores a
 * resent one only once. */
#ifndef GRACE_OUTBOX_JOURNAL_H
#define GRACE_OUTBOX_JOURNAL_H

#include "serve/layer.h"

#include "sdk/err.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#define OBJ_BATCH_MAX 500
#define OBJ_NEVER INT64_MAX /* the ready time of a row closed only by obj_close_prefix */

typedef struct ob_journal ob_journal;

/* Creates the journal's tables in `db` (borrowed, must outlive it); NULL
 * with the reason in err on failure. */
ob_journal *obj_open(sqlite3 *db, sdk_err *err);
void obj_close(ob_journal *j);
/* Writes one event (borrowed). 0, or a negative status. */
int obj_append(ob_journal *j, const json_t *event);
/* One more occurrence under `key`: adds to the count of the open row with
 * that key (returns 0), or, when there is none and `may_create`, makes one
 * from `event` (borrowed; its details get "count" and "last_ms" when it
 * leaves) that closes at ready_ms (returns 1). SDK_ENOTFOUND: no open row
 * and not `may_create`; another negative status on failure. */
int obj_count(ob_journal *j, const char *key, const json_t *event, int64_t ready_ms,
	      int64_t now_ms, bool may_create);
/* Closes the open rows whose ready time has come; returns how many. */
int obj_close_due(ob_journal *j, int64_t now_ms);
/* Closes the open rows whose key starts with `prefix`; returns how many. */
int obj_close_prefix(ob_journal *j, const char *prefix);
/* The oldest closed events, at most `max` (<= OBJ_BATCH_MAX) and, but for
 * the first, `max_bytes` of JSON: a new array in *out. Returns how many.
 * They stay in the journal until obj_batch_done. */
int obj_batch(ob_journal *j, size_t max, size_t max_bytes, json_t **out);
/* Deletes the events of the last batch (they were stored). */
int obj_batch_done(ob_journal *j);
size_t obj_rows(const ob_journal *j);  /* events and open aggregates */
size_t obj_bytes(const ob_journal *j); /* the JSON they hold */
const char *obj_epoch(const ob_journal *j);

#endif
