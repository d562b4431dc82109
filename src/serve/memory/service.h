/* The memory service: the store and the worker pool its database work runs
 * on, never on the event loop. The HTTP handlers (serve/api/memory.c) fill
 * a mem_call from the request on the loop and submit it; a worker runs it
 * against the store; its `done` runs back on the loop with the result.
 *
 * Fairness: the pool's queue is shared by every user (the overall bound:
 * SDK_EBUSY), and each user may have at most `user_jobs_max` calls queued
 * or running (SDK_POOL_ECALLER), so one user's burst of slow scans never
 * keeps another user out.
 *
 * Purging a user (their account is gone, or a new account takes the name)
 * waits until none of their calls is queued or running, refuses new ones
 * meanwhile, and then drops everything of theirs (mem_user_purge). */
#ifndef GRACE_MEMORY_SERVICE_H
#define GRACE_MEMORY_SERVICE_H

#include "serve/layer.h"

#include "sdk/pool.h"
#include "serve/memory/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;

#define MEM_USER_MAX 64 /* a user name, as auth allows it */
#define MEM_USER_JOBS_DEFAULT 8
#define MEM_QUEUE_MAX 64 /* calls waiting in all; each may hold a request body */

enum mem_op {
	MEM_OP_TABLE_CREATE,
	MEM_OP_TABLE_LIST,
	MEM_OP_TABLE_GET,
	MEM_OP_TABLE_DELETE,
	MEM_OP_ROWS_INSERT,
	MEM_OP_ROWS_QUERY,
	MEM_OP_ROW_GET,
	MEM_OP_ROW_PATCH,
	MEM_OP_ROW_DELETE,
	MEM_OP_SHARES_ADD,
	MEM_OP_SHARES_LIST,
	MEM_OP_SHARES_REMOVE,
};

typedef struct mem_call mem_call;
typedef void (*mem_call_done_fn)(mem_call *c, void *arg);

/* One request's work: filled on the loop, run on a worker, finished on
 * the loop. Every pointer in it is owned by it (freed by mem_call_free). */
struct mem_call {
	enum mem_op op;
	char user[MEM_USER_MAX + 1];   /* the caller */
	char owner[MEM_USER_MAX + 1];  /* "": the caller's own table */
	char table[MEM_NAME_MAX + 1];
	int64_t id;
	int64_t now_ms;
	char *body; /* a copy of the request body (JSON text) */
	size_t body_len;
	json_t *users; /* shares */
	char *where, *order, *cursor, *q;
	unsigned limit;
	/* results */
	bool ran;      /* false: the service stopped before running it */
	int status;    /* 0, or a negative sdk_status with the reason in err */
	sdk_err err;
	json_t *reply; /* the answer as JSON ... */
	sdk_buf text;  /* ... or as JSON text (pages and rows) */
	/* completion, on the loop */
	mem_call_done_fn done;
	void *arg;
};

typedef struct mem_service_opts {
	unsigned threads;     /* workers and store connections */
	size_t user_jobs_max; /* 0: MEM_USER_JOBS_DEFAULT */
	mem_quota quota;
	const grace_store_cfg *store; /* [store]: the tables in PostgreSQL when it names it */
} mem_service_opts;

typedef struct mem_service mem_service;

/* Opens the store (mem_store_open) and the pool; NULL and why in `e`. */
mem_service *mem_service_open(const char *data_dir, struct event_base *base,
			      const mem_service_opts *o, sdk_err *e);
/* Calls still queued finish with ran = false; purges still waiting are
 * answered with SDK_EBUSY. */
void mem_service_close(mem_service *s);

mem_call *mem_call_new(enum mem_op op, const char *user);
void mem_call_free(mem_call *c);

/* Queues `c` under its user. 0: c->done will run on the loop (the call
 * still belongs to the submitter, who frees it there). SDK_EBUSY: the
 * queue is full or the user's data is being purged; SDK_POOL_ECALLER: the
 * user has user_jobs_max calls queued or running. On failure nothing was
 * queued and `e` says why. */
int mem_service_submit(mem_service *s, mem_call *c, sdk_err *e);
/* Calls of `user` queued or running. */
size_t mem_service_pending(const mem_service *s, const char *user);

/* Drops everything `user` has (see above); `cb` runs on the loop once,
 * with 0 or a status and its reason. */
typedef void (*mem_purge_cb)(int status, const sdk_err *e, void *arg);
void mem_service_purge(mem_service *s, const char *user, mem_purge_cb cb, void *arg);

#endif
