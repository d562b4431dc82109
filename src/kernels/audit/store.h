/* The audit trail's events in SQLite: who did what to which resource, when,
 * from where, with what outcome; and the immutable-log index each event was
 * appended at, once it has been. */
#ifndef GRACE_AUDIT_STORE_H
#define GRACE_AUDIT_STORE_H

#include "kernels/layer.h"

#include "sdk/err.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdint.h>

#define AUD_FIELD_MAX 256
#define AUD_ACTION_MAX 2048
#define AUD_DETAILS_MAX 65536
#define AUD_UID_MAX 64 /* an event's optional unique name: a resent one is stored once */
#define AUD_BATCH_MAX 1000
#define AUD_PAGE_MAX 1000

typedef struct aud_filter {
	const char *actor, *action, *resource;
	int64_t since_ms, until_ms; /* until 0: no bound */
	int64_t after_id;           /* the cursor */
	unsigned limit;
} aud_filter;

/* Every call returns 0 or a negative sdk_status with the reason in `err`
 * (which may be NULL): SDK_ENOTFOUND, or SQLite's failures as
 * sdk_status_of_sqlite maps them (SDK_EFULL when the disk is full). */
int aud_store_init(sqlite3 *db, sdk_err *err);
/* Checks one event object; NULL when valid, else a reason. */
const char *aud_event_check(json_t *ev);
/* Inserts checked events (an array) in one transaction, or none; *ids is
 * a new array of their ids. An event whose uid is stored already is not
 * stored again: its id is the first one's. */
int aud_insert(sqlite3 *db, json_t *events, int64_t now_ms, json_t **ids, sdk_err *err);
/* *out: a new array of events in id order. */
int aud_query(sqlite3 *db, const aud_filter *f, json_t **out, sdk_err *err);
/* *out: a new event object; SDK_ENOTFOUND when there is no such event. */
int aud_get(sqlite3 *db, int64_t id, json_t **out, sdk_err *err);
/* Events not yet in the immutable log, oldest first (at most `max`), as
 * the canonical objects that go into the log: a new array in *out. */
int aud_unlogged(sqlite3 *db, unsigned max, json_t **out, sdk_err *err);
/* Records where each event went in the log: `pairs` is [[id, index], ...],
 * written in one transaction, or none. */
int aud_set_log_indexes(sqlite3 *db, json_t *pairs, sdk_err *err);

/* ---- Archival (docs/audit.md "Archival"). */
typedef struct aud_archive_rec {
	int64_t first_id, last_id; /* the events [first_id, last_id] */
	int64_t events;            /* how many: the ids in between that were there */
	int64_t tree_size;         /* of the log's signed head the proofs are against */
	const char *sha256, *file;
} aud_archive_rec;

/* The oldest events with id < before_id and ts_ms < before_ms, at most
 * `max`, up to the first one not yet in the immutable log (never
 * archived): a new array of events with their log_index in *out. */
int aud_archivable(sqlite3 *db, int64_t before_id, int64_t before_ms, unsigned max,
		   json_t **out, sdk_err *err);
/* {"archives","events","last_id","last_file","last_sha256"}: what has been
 * archived so far (zeros when nothing). A new object. */
int aud_archived(sqlite3 *db, json_t **out, sdk_err *err);
/* In one transaction: records the archive and deletes its events (exactly
 * a->events of them, else SDK_ECONFLICT and nothing changes). */
int aud_remove(sqlite3 *db, const aud_archive_rec *a, int64_t now_ms, sdk_err *err);

#endif
