/* Where the bus keeps its messages: the engine behind the routes.
 *
 * The kernel's routes (bus.c) are the same whatever the engine; each one
 * calls the engine's handler of the same name. Two engines:
 *   - embedded (bus.c, stream.c, groups.c, store.c): SQLite in
 *     DATA_DIR/message_bus.db, group commit, the default;
 *   - jetstream (js*.c): a NATS JetStream cluster, one stream, durable
 *     consumers for the groups ([message_bus] engine = jetstream).
 * k->state points to the engine's own state, whose first member is the
 * `const bus_engine *` it runs with. */
#ifndef GRACE_MESSAGE_BUS_ENGINE_H
#define GRACE_MESSAGE_BUS_ENGINE_H

#include "kernels/layer.h"

#include "sdk/kernel.h"

struct evbuffer;

typedef struct bus_engine {
	const char *name;
	sdk_handler_fn publish, subscribe, subjects, group_list, group_get, group_delete, poll, ack,
		retention_list, retention_set, retention_delete, stats, snapshot, snapshot_piece,
		snapshot_delete;
	void (*drain)(sdk_kernel *k);
	void (*close)(sdk_kernel *k);
	void (*metrics)(sdk_kernel *k, struct evbuffer *out);
} bus_engine;

/* The engine k->state runs with. */
static inline const bus_engine *bus_engine_of(sdk_kernel *k)
{
	return *(const bus_engine *const *)k->state;
}

/* js.c: connects, makes or updates the stream, sets k->state. 0, or -1
 * with why in err. */
int bus_js_init(sdk_kernel *k, sdk_err *err);

/* bus.c: POST /publish's body, read and checked, shared by the engines: a
 * message or an array of them (borrowed from req), with the message count
 * in *n; NULL after answering 400 (403 for a subject under grace. from a
 * user) naming the first bad message. */
struct json_t;
struct json_t *bus_publish_body(sdk_req *req, size_t *n);

#endif
