/* The audit trail's events in SQLite: who did what to which resource, when,
 * from where, with what outcome; and the immutable-log index each event was
 * appended at, once it has been. */
#ifndef GRACE_AUDIT_STORE_H
#define GRACE_AUDIT_STORE_H

#include "kernels/layer.h"

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

int aud_store_init(sqlite3 *db, char *err, size_t errlen);
/* Checks one event object; NULL when valid, else a reason. */
const char *aud_event_check(json_t *ev);
/* Inserts checked events (an array) in one transaction; fills `ids`
 * (a new array) with their ids. An event whose uid is stored already is
 * not stored again: its id is the first one's. */
int aud_insert(sqlite3 *db, json_t *events, int64_t now_ms, json_t **ids);
/* A new array of events in id order, or NULL on a storage error. */
json_t *aud_query(sqlite3 *db, const aud_filter *f);
/* NULL when there is no such event. */
json_t *aud_get(sqlite3 *db, int64_t id);
/* Events not yet in the immutable log, oldest first (at most `max`), as
 * the canonical objects that go into the log. */
json_t *aud_unlogged(sqlite3 *db, unsigned max);
int aud_set_log_index(sqlite3 *db, int64_t id, int64_t index);

#endif
