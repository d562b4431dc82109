/* Events from the main process to the message bus and the audit trail
 * (docs/audit.md says what is recorded and what is guaranteed).
 *
 * Bus messages (kernel state changes, heal incidents) wait in a bounded
 * queue in memory and are delivered in batches when the bus is ready:
 * best-effort, what overflows is dropped and counted in /metrics.
 *
 * Audit events are of two classes (serve/outbox/classify.h):
 * - security events are written to a journal in grace.db before the
 *   request that caused them is answered, and leave it only once the
 *   audit kernel has stored them: never dropped, not even by a restart.
 *   Failed logins are counted per source, user name and window in one
 *   journal row each. When the journal nears its bounds, ob_admit refuses
 *   state-changing requests (503) before they act;
 * - noise, requests refused before any authentication, is only counted in
 *   memory per source, kind and window, and each window becomes one
 *   aggregate event per key (best-effort, counted).
 * Healing never waits on any of it. */
#ifndef GRACE_OUTBOX_OUTBOX_H
#define GRACE_OUTBOX_OUTBOX_H

#include "serve/layer.h"

#include "sdk/call.h"
#include "sdk/config.h"
#include "sdk/err.h"
#include "sdk/http.h"
#include "serve/supervisor/supervisor.h"

#include <jansson.h>
#include <sqlite3.h>

#define OB_QUEUE_MAX 10000 /* bus messages waiting */
#define OB_NOISE_QUEUE_MAX 4096 /* noise aggregates waiting */
#define OB_HELD_MAX 10000  /* security events held in memory while the journal fails */
#define OB_BATCH_MAX 500
#define OB_BATCH_BYTES (512u << 10) /* half a kernel's default body limit */
#define OB_FLUSH_MS 100
#define OB_FIELD_MAX 256    /* the audit kernel's limits on a field ... */
#define OB_ACTION_MAX 2048  /* ... and on action and resource */
#define OB_DETAILS_MAX 60000 /* details past this are replaced by their size */

struct evbuffer;
typedef struct outbox outbox;

typedef struct ob_opts {
	struct event_base *base;
	supervisor *sup;
	sqlite3 *db;              /* grace.db, the journal's home (borrowed) */
	const char *token;        /* the internal token for the kernels (borrowed) */
	const grace_audit *audit; /* windows and journal bounds (copied) */
} ob_opts;

/* NULL, with the reason in err, when the journal cannot be opened. */
outbox *ob_new(const ob_opts *o, sdk_err *err);
/* Events still in the journal stay there for the next start. */
void ob_free(outbox *ob);

/* Queues a bus message; steals `payload`. */
void ob_publish(outbox *ob, const char *subject, json_t *payload);
/* Records a security event caused by a request, before the request is
 * answered: journaled, never dropped. A failed login (auth.login, failed)
 * is added to its source's and user's count for the window instead.
 * Steals `details` (may be NULL). */
void ob_audit(outbox *ob, const char *actor, const char *action, const char *resource,
	      const char *outcome, const char *source_ip, json_t *details);
/* Records a security event of Grace's own (actor "grace": a kernel state
 * change, a heal): journaled, or, while the journal is at its bound,
 * counted in one overflow aggregate per action and resource. Steals
 * `details` (may be NULL). */
void ob_audit_system(outbox *ob, const char *action, const char *resource, const char *outcome,
		     json_t *details);
/* Counts one request refused before authentication in its window. */
void ob_noise(outbox *ob, const char *source, const char *method, int status, const char *path,
	      const char *request_id);
/* Whether a state-changing request may run: false, after answering it
 * 503, while its audit event might not be journaled (the journal is near
 * its bounds, or failing). */
bool ob_admit(outbox *ob, sdk_req *req);
/* True while ob_admit is answering a request: that answer, which changed
 * nothing, is not recorded (it would need the room that is missing). */
bool ob_refusing(const outbox *ob);

void ob_metrics(const outbox *ob, struct evbuffer *out);

#endif
