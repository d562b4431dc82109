/* The message bus kernel's shared state, for its three HTTP files:
 * bus.c (the kernel, publish with group commit, subjects, retention),
 * stream.c (GET /subscribe, Server-Sent Events) and groups.c (consumer
 * groups: long polls and acks). Everything runs on the kernel's one event
 * loop; nothing here is thread-safe or needs to be. */
#ifndef GRACE_MESSAGE_BUS_BUS_H
#define GRACE_MESSAGE_BUS_BUS_H

#include "kernels/layer.h"

#include "kernels/message_bus/store.h"
#include "sdk/kernel.h"

#include <stdint.h>
#include <sys/queue.h>

struct event;
struct evbuffer;
struct bus_sub;
struct bus_poller;

typedef struct bus_stats {
	uint64_t published, batches, batch_max, commit_failures;
	uint64_t streamed, polled, polls_abandoned, acked, dead_lettered, retention_deleted;
} bus_stats;

typedef struct bus {
	const struct bus_engine *engine; /* first: engine.h */
	sdk_kernel *k;
	bus_store *store;
	bool draining;
	bus_stats stats;
	/* Publishes waiting for the next group commit (bus.c). */
	struct bus_batch *batch;
	struct event *commit_ev;
	struct event *retention_ev;
	struct event *drain_ev;
	/* Server-Sent Events subscribers (stream.c). */
	LIST_HEAD(, bus_sub) subs;
	unsigned n_subs;
	/* Long polls waiting for messages, oldest first (groups.c). */
	TAILQ_HEAD(, bus_poller) pollers;
	unsigned n_pollers;
	struct event *wake_ev, *sweep_ev;
} bus;

#define BUS_WAIT_MAX_MS 30000u /* a group poll's longest wait_ms */

/* Microseconds on the monotonic clock, for durations finer than sdk_mono_ms. */
int64_t bus_mono_us(void);

/* stream.c */
int bus_stream_init(bus *b);
void bus_on_subscribe(sdk_req *req, void *ctx);
/* Newly committed messages, seq-contiguous, in order. */
void bus_stream_publish(bus *b, const bus_msg *msgs, size_t n);
/* Messages were appended without a batch (dead letters): live subscribers
 * catch up from the store. */
void bus_stream_kick(bus *b);
/* Ends every stream (drain and close). */
void bus_stream_end_all(bus *b);

/* groups.c */
int bus_groups_init(bus *b);
void bus_groups_free(bus *b);
void bus_on_poll(sdk_req *req, void *ctx);
void bus_on_ack(sdk_req *req, void *ctx);
void bus_on_group_get(sdk_req *req, void *ctx);
void bus_on_group_list(sdk_req *req, void *ctx);
void bus_on_group_delete(sdk_req *req, void *ctx);
/* Wakes the long polls that these newly committed messages may serve;
 * NULL/0: all of them. The polls run later in the loop, not inside. */
void bus_groups_wake(bus *b, const bus_msg *msgs, size_t n);
/* Answers every waiting long poll now (drain and close). */
void bus_groups_answer_all(bus *b);

#endif
