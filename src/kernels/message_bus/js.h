/* The message bus on NATS JetStream (engine.h): the state the JetStream
 * files share. js.c: the connection, the stream, publish, the inbox, the
 * kernel hooks; js_stream.c: GET /subscribe; js_groups.c: the consumer
 * groups; js_snapshot.c: GET /snapshot, for backups, and
 * js_snapshot_held.c: the snapshot it took, read in pieces.
 *
 * Threads. The kernel's loop owns everything here except what is marked
 * otherwise. Blocking NATS calls (publish and wait for the ack, fetch,
 * consumer and stream requests) run on three sdk_pool pools, whose `done`
 * callbacks run on the loop; the NATS client's own threads (subscription
 * callbacks, publish acks, errors) only touch the inbox and the publish
 * batch in flight, each under its mutex, and wake the loop through the
 * inbox's pipe. Neither ever touches a request, a stream or an event. */
#ifndef GRACE_MESSAGE_BUS_JS_H
#define GRACE_MESSAGE_BUS_JS_H

#include "kernels/layer.h"

#include "kernels/message_bus/engine.h"
#include "sdk/nats_dl.h"
#include "kernels/message_bus/store.h"
#include "sdk/pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/queue.h>

struct event;
struct evbuffer;
struct bus_js_sub;
struct bus_js_group;
struct bus_js_batch;

/* Headers a Grace message carries in JetStream besides Nats-Msg-Id. */
#define BUS_JS_HDR_TS "Grace-Timestamp"     /* unix ms, set at publish */
#define BUS_JS_HDR_KEY "Grace-Key"
#define BUS_JS_HDR_HEADERS "Grace-Headers" /* the message's headers, compact JSON */

/* One item the NATS client's threads hand to the loop. */
struct bus_js_item {
	uint64_t sub_id;         /* the subscriber it is for */
	int64_t seq;             /* 0: not an event but a failure of `nsub` */
	natsSubscription *nsub;  /* compared, never used: it may be gone */
	struct evbuffer *event;  /* the SSE event, owned by the item */
	TAILQ_ENTRY(bus_js_item) link;
};

typedef struct bus_js_stats {
	uint64_t published, batches, batch_max, publish_failures, publish_retries;
	uint64_t streamed, resubscribes, polled, acked, dead_lettered;
} bus_js_stats;

typedef struct bus_js {
	const bus_engine *engine; /* first: engine.h */
	sdk_kernel *k;
	const grace_message_bus *cfg;
	sdk_nats_dl N;
	natsConnection *nc;
	jsCtx *js;
	char stream[40];     /* PREFIX_BUS */
	char prefix[48];     /* "PREFIX_BUS.": a Grace subject S is PREFIX_BUS.S in NATS */
	size_t prefix_len;
	bool draining;
	bool snapshotting;   /* GET /snapshot under way (one at a time), on the loop */
	LIST_HEAD(, bus_js_held) held; /* snapshots taken, for grace serve to read */
	unsigned n_held;
	atomic_bool stop;    /* long fetches on the pools end early */
	bus_js_stats stats;
	/* pub: publishes (one batch at a time, in order); wait: long polls'
	 * fetches; short: acks, subscriptions, stream and consumer requests. */
	sdk_pool *pub_pool, *wait_pool, *short_pool;
	/* Publishes: those queued since the batch in flight left, and it. */
	struct bus_js_batch *queued, *inflight;
	struct event *commit_ev;
	pthread_mutex_t ack_mu; /* guards inflight's sequence numbers (the ack handler) */
	uint64_t msg_id_next;   /* Nats-Msg-Id = instance "-" counter */
	char instance[40];
	/* The inbox: NATS threads -> loop. */
	pthread_mutex_t in_mu;
	TAILQ_HEAD(, bus_js_item) inbox;
	int in_pipe[2];
	struct event *in_ev;
	/* SSE subscribers (js_stream.c). */
	LIST_HEAD(, bus_js_sub) subs;
	unsigned n_subs;
	uint64_t sub_id_next;
	struct event *drain_ev;
	/* Closures of live NATS subscriptions, freed when they complete. */
	pthread_mutex_t closures_mu;
	LIST_HEAD(, bus_js_closure) closures;
	/* Consumer groups (js_groups.c), guarded by groups_mu. */
	pthread_mutex_t groups_mu;
	LIST_HEAD(, bus_js_group) groups;
	unsigned n_groups;
	unsigned n_polls; /* on the loop */
} bus_js;

/* js.c (a failed call's words: sdk_nats_why) */
/* Pushes an item to the loop (from any thread); takes the item. */
void bus_js_inbox_push(bus_js *b, struct bus_js_item *it);
/* A received message as a bus_msg: the strings point into `msg` or into
 * `hdr_buf`; returns -1 when it is not one of Grace's. */
int bus_js_msg_of(bus_js *b, natsMsg *msg, bus_msg *m, uint64_t *deliveries);
/* Subject for NATS: prefix + Grace subject (or pattern), into buf. */
int bus_js_subject(bus_js *b, const char *grace, char *buf, size_t len);

/* js_stream.c */
void bus_js_on_subscribe(sdk_req *req, void *ctx);
void bus_js_stream_item(bus_js *b, struct bus_js_item *it);
void bus_js_stream_end_all(bus_js *b);
/* A NATS subscription failed (error handler, any thread). */
void bus_js_stream_failed(bus_js *b, natsSubscription *sub);

/* js_snapshot.c */
void bus_js_on_snapshot(sdk_req *req, void *ctx);

/* js_snapshot_held.c */
#define BUS_JS_HELD_ID_LEN 32 /* hex digits */
struct bus_js_held;
/* Holds the snapshot's file (unlinked, `size` bytes) for GET /snapshot/ID
 * (dropping the oldest held past a few); its id into `id`. 0, or -1 (fd
 * closed). */
int bus_js_held_keep(bus_js *b, int fd, int64_t size, char id[BUS_JS_HELD_ID_LEN + 1]);
/* At close, once the pools are freed. */
void bus_js_held_drop_all(bus_js *b);
/* Only grace serve: true, or false after answering 403. */
bool bus_js_snapshot_caller_ok(sdk_req *req, sdk_kernel *k);
void bus_js_on_snapshot_piece(sdk_req *req, void *ctx);
void bus_js_on_snapshot_delete(sdk_req *req, void *ctx);

/* js_groups.c */
void bus_js_on_poll(sdk_req *req, void *ctx);
void bus_js_on_ack(sdk_req *req, void *ctx);
void bus_js_on_group_get(sdk_req *req, void *ctx);
void bus_js_on_group_list(sdk_req *req, void *ctx);
void bus_js_on_group_delete(sdk_req *req, void *ctx);
void bus_js_groups_free(bus_js *b);

/* A closure for a NATS subscription callback: the bus and the subscriber
 * id it feeds. Owned by the closures list; freed on the subscription's
 * completion or at close. */
struct bus_js_closure {
	bus_js *b;
	uint64_t sub_id;
	char pattern[BUS_SUBJECT_MAX + 1];
	LIST_ENTRY(bus_js_closure) link;
};
struct bus_js_closure *bus_js_closure_new(bus_js *b, uint64_t sub_id, const char *pattern);
void bus_js_closure_done(void *closure); /* natsOnCompleteCB */

#endif
