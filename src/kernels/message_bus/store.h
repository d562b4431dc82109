/* The message bus's durable state: SQLite, no HTTP, no event loop.
 *
 * Messages carry one global sequence number, `seq` (the "offset" clients
 * see): it increases with every message on any subject and is never reused,
 * not even after retention deletes the newest messages. Timestamps are unix
 * milliseconds, never decreasing along seq, so "older than" is a prefix.
 *
 * A consumer group has one subscription pattern, a cursor (the next seq it
 * has not looked at) and a row per message delivered and not yet acked:
 * (seq, deliveries, visible_at). A poll first hands out the in-flight
 * messages whose visibility timeout has run out, then new ones from the
 * cursor. A message delivered max_deliveries times and still not acked when
 * it comes due again is moved to the subject "$dlq.GROUP.SUBJECT" (a new
 * message, same payload, key and headers plus "x-dlq-*" headers naming the
 * group, the original subject, offset and delivery count) and leaves the
 * group.
 *
 * Durability: appends are committed with synchronous=FULL (fsynced before
 * the call returns); group state commits use synchronous=NORMAL, which
 * survives the process being killed but may lose the newest acks and
 * deliveries on a power cut, which at-least-once delivery tolerates (they
 * are delivered again).
 *
 * Every call returns 0 or a negative sdk_status (sdk/err.h) with the reason
 * in `err` (which may be NULL): SDK_EINVAL, SDK_ENOTFOUND, SDK_ECONFLICT,
 * and for SQLite's failures the status sdk_status_of_sqlite gives
 * (SDK_EFULL when the disk is full). */
#ifndef GRACE_MESSAGE_BUS_STORE_H
#define GRACE_MESSAGE_BUS_STORE_H

#include "kernels/layer.h"

#include "sdk/err.h"
#include "kernels/message_bus/subject.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BUS_VISIBILITY_DEFAULT_MS 30000
#define BUS_VISIBILITY_MIN_MS 10
#define BUS_VISIBILITY_MAX_MS (12 * 3600 * 1000)
#define BUS_DELIVERIES_DEFAULT 5
#define BUS_DELIVERIES_MAX 1000
#define BUS_DLQ_PREFIX "$dlq"

/* One message. The strings are borrowed: from the caller on append, from
 * SQLite during a callback (valid only until it returns). `headers` is the
 * compact JSON text of an object of strings, `payload` any JSON text;
 * `key` and `headers` may be NULL. */
typedef struct bus_msg {
	int64_t seq, ts;
	const char *subject, *key, *headers, *payload;
} bus_msg;

typedef struct bus_store bus_store;

/* Creates the schema if missing and prepares statements. `db` stays the
 * caller's and must outlive the store. */
int bus_store_open(sqlite3 *db, bus_store **out, sdk_err *err);
void bus_store_close(bus_store *st);

/* The seq the next appended message will get. */
int64_t bus_store_next_seq(const bus_store *st);

/* Appends `n` messages in one fsynced transaction, filling in seq and ts
 * (ts = max(now_ms, the last timestamp)). On failure nothing is stored and
 * the seq/ts fields are unspecified. */
int bus_store_append(bus_store *st, bus_msg *msgs, size_t n, int64_t now_ms, sdk_err *err);

/* Calls fn on each message with seq >= from matching `pattern`, in seq
 * order, until `max` matched or `budget` rows were looked at (a literal
 * pattern is read through the subject index and costs only its matches).
 * *next_out is where a later scan should resume. fn returning nonzero
 * stops the scan with that code (the message it saw counts as looked at). */
typedef int (*bus_msg_fn)(const bus_msg *m, void *arg);
int bus_store_scan(bus_store *st, const char *pattern, int64_t from, size_t max, size_t budget,
		   bus_msg_fn fn, void *arg, int64_t *next_out, sdk_err *err);

/* Where a new group starts reading. */
enum bus_from { BUS_FROM_EARLIEST, BUS_FROM_LATEST, BUS_FROM_SEQ };

typedef struct bus_poll_opts {
	const char *pattern;  /* required to create; else must equal the group's or be NULL */
	enum bus_from from;   /* only when creating */
	int64_t from_seq;
	int64_t visibility_ms; /* 0: keep (or the default when creating) */
	int max_deliveries;    /* 0: keep (or the default when creating) */
	size_t max;            /* messages to hand out, >= 1 */
	size_t budget;         /* new rows to look at, >= max */
} bus_poll_opts;

typedef struct bus_poll_result {
	size_t delivered, dead_lettered;
	bool more;           /* the cursor stopped before the end of the log */
	int64_t next_due_ms; /* earliest visible_at still in flight, or 0 */
	bool appended;       /* dead letters were appended: new messages exist */
	char pattern[BUS_SUBJECT_MAX + 1]; /* the group's */
} bus_poll_result;

/* Called once per message handed out, with its delivery count (1 on the
 * first delivery). */
typedef int (*bus_delivery_fn)(const bus_msg *m, int deliveries, void *arg);

/* One poll of group `group` at now_ms, in one transaction. SDK_ENOTFOUND
 * when the group does not exist and no pattern was given; SDK_ECONFLICT
 * when the pattern differs from the group's. If fn fails, or the commit
 * does, nothing of the poll is kept. */
int bus_group_poll(bus_store *st, const char *group, const bus_poll_opts *o, int64_t now_ms,
		   bus_delivery_fn fn, void *arg, bus_poll_result *res, sdk_err *err);

/* Acks in one transaction. deliveries[i] >= 1 acks seqs[i] only if it is
 * still that delivery (a receipt); 0 acks it whatever the count. acked[i]
 * tells which were in flight and are now done. SDK_ENOTFOUND for an
 * unknown group. */
int bus_group_ack(bus_store *st, const char *group, const int64_t *seqs, const int *deliveries,
		  size_t n, bool *acked, sdk_err *err);

/* {"name","subject","cursor","visibility_ms","max_deliveries","created_at",
 *  "in_flight","next_offset"}: cursor is the first offset the group has not
 * looked at, next_offset the one the next message will get. */
int bus_group_get(bus_store *st, const char *group, json_t **out, sdk_err *err);
/* [{...}] as above, by name. */
int bus_group_list(bus_store *st, json_t **out, sdk_err *err);
int bus_group_delete(bus_store *st, const char *group, sdk_err *err);

/* Per subject: [{"subject","count","first_offset","last_offset"}] by
 * subject, only those matching `pattern` when it is not NULL. */
int bus_subjects_list(bus_store *st, const char *pattern, json_t **out, sdk_err *err);

/* Retention rules: each applies to every subject matching its pattern
 * separately: at most max_count messages per subject, none older than
 * max_age_ms. -1 means no limit of that kind; at least one must be set.
 * Setting a pattern again replaces its rule. */
int bus_retention_set(bus_store *st, const char *pattern, int64_t max_count, int64_t max_age_ms,
		      int64_t now_ms, sdk_err *err);
int bus_retention_delete(bus_store *st, const char *pattern, sdk_err *err);
int bus_retention_list(bus_store *st, json_t **out, sdk_err *err);
/* Deletes at most `budget` messages the rules no longer allow, oldest first,
 * in one transaction. *more when it stopped at the budget. */
int bus_retention_enforce(bus_store *st, int64_t now_ms, size_t budget, size_t *deleted,
			  bool *more, sdk_err *err);

#endif
