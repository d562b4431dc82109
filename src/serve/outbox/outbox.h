/* Events from the main process to the message bus and the audit trail:
 * kernel state changes, heal incidents, state-changing API requests. They
 * wait in a bounded queue and are delivered in batches when those kernels
 * are ready, so healing never waits on them; what overflows is dropped and
 * counted in /metrics. */
#ifndef GRACE_OUTBOX_OUTBOX_H
#define GRACE_OUTBOX_OUTBOX_H

#include "serve/layer.h"

#include "sdk/client.h"
#include "serve/supervisor/supervisor.h"

#include <jansson.h>

#define OB_QUEUE_MAX 10000 /* per destination */
#define OB_BATCH_MAX 500
#define OB_BATCH_BYTES (512u << 10) /* half a kernel's default body limit */
#define OB_FLUSH_MS 100
#define OB_FIELD_MAX 256    /* the audit kernel's limits on a field ... */
#define OB_ACTION_MAX 2048  /* ... and on action and resource */

struct evbuffer;
typedef struct outbox outbox;

/* `token` (borrowed): the internal token for the kernels. */
outbox *ob_new(struct event_base *base, supervisor *sup, const char *token);
void ob_free(outbox *ob);

/* Queues a bus message; steals `payload`. */
void ob_publish(outbox *ob, const char *subject, json_t *payload);
/* Queues an audit event; steals `details` (may be NULL). */
void ob_audit(outbox *ob, const char *actor, const char *action, const char *resource,
	      const char *outcome, const char *source_ip, json_t *details);

void ob_metrics(const outbox *ob, struct evbuffer *out);

#endif
