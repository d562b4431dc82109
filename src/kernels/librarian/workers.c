#include "kernels/librarian/workers.h"

#include "kernels/librarian/bulk.h"
#include "kernels/librarian/ckpt.h"
#include "kernels/librarian/index.h"
#include "kernels/librarian/search.h"
#include "kernels/librarian/store.h"
#include "kernels/librarian/tok.h"
#include "sdk/clock.h"
#include "sdk/db.h"
#include "sdk/log.h"
#include "sdk/pool.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* A connection, a tokenizer and the pending documents' cache
 * (search.h); one worker uses it at a time. */
struct conn {
	sqlite3 *db;
	lib_tok *tok;
	lib_sq_cache *pc; /* NULL (no memory): read per search */
	struct conn *next;
};

struct lib_workers {
	sdk_kernel *k;
	sdk_pool *pool;
	pthread_mutex_t mu; /* guards idle */
	struct conn *idle;
	sdk_pool *writer; /* one thread */
	sqlite3 *wdb;     /* the writer's connection: only its thread uses it */
	lib_ix_tails *tails; /* the writer's tails cache (index.h): its thread's too */
	lib_ix *single;   /* single writes' index on wdb: its thread's too */
	lib_ckpt *ckpt;   /* wdb's WAL checkpoints (ckpt.h) */
	unsigned bulks;   /* bulk loads queued or running; on the loop */
	/* Bulk loads queued and not yet run, in the order they came: a
	 * bulk job takes the ones of its owner behind it into its group
	 * (bulk_work). Appended on the loop, taken on the writer. */
	pthread_mutex_t bmu;
	struct bulk *waiting, *waiting_tail;
	/* Bulk requests stored and the transactions they took (/metrics);
	 * on the loop. */
	uint64_t bulk_written, bulk_tx;
	/* The pending documents' merge (lib_workers_staged); on the loop. */
	struct event *merge_timer;
	unsigned staged;   /* written since the last merge was queued */
	bool merging;      /* a merge queued or running */
	bool idle_run;     /* the merge queued by the idle timer: the WAL may shrink too */
	bool fts_worked;   /* its FTS5 step merged something (its thread's until done) */
	bool fts_chain;    /* FTS5's steps follow each other while the writer is free */
	bool stopping;
	sdk_err merge_err; /* the last merge's failure (its thread's until done) */
	int merge_rc;
};

/* A bulk request. It is its own job's; a group's leader that takes it
 * (bulk_work) holds a second reference, and answers it. */
struct bulk {
	lib_workers *w;
	sdk_req *req;
	char *owner;
	bool admin;
	lib_quota quota;
	bool has_quota;
	char *body;
	size_t len;
	bool ran;
	int rc;
	sdk_err err;
	json_t *out;
	unsigned refs;             /* on the loop, but for a leader's taking */
	bool taken;                /* run in a leader's group: its job does nothing */
	struct bulk *prev, *next;  /* in lib_workers.waiting, under bmu */
	struct bulk **group;       /* a leader's: the requests it took, in order */
	size_t ngroup;
	unsigned tx;               /* a leader's: the transactions its run committed */
};

struct job {
	lib_workers *r;
	sdk_req *req;
	char *query, *tag;
	unsigned limit;
	bool ran;
	int rc;
	sdk_err err;
	sdk_buf out; /* the answer's JSON text (lib_search_cached) */
};

static void conn_free(struct conn *c)
{
	if (!c)
		return;
	lib_tok_free(c->tok);
	lib_sq_cache_free(c->pc);
	sqlite3_close(c->db);
	free(c);
}

/* A search connection reads the database file through a mapping of it
 * (up to this many bytes) instead of a read call into its own page cache
 * a page: the pages are the kernel's page cache, shared by every reader
 * and by the file's other users, with no copy and no system call. A word
 * no earlier search read costs its pages' faults, not a pread each and
 * the cache's churn: one client's p50 for a medium word through :8000
 * went from 0.59-0.63 of bare Xapian's to 0.73-0.98 (bench/README.md
 * section 4). Only reads are
 * mapped (SQLite writes with write calls); pages the WAL holds are still
 * read from the WAL. The mapping is address space, not memory: the file
 * is 330 MB at 100,000 documents. */
#define LIB_READ_MMAP_BYTES "1073741824"

/* The file was checked when the kernel opened it first: no second check. */
static struct conn *conn_open(lib_workers *r, sdk_err *err)
{
	struct conn *c = calloc(1, sizeof *c);
	if (!c) {
		sdk_fail(err, SDK_EIO, "out of memory");
		return NULL;
	}
	sdk_db_check check = { .skip = true };
	if (sdk_db_open_checked(r->k->cfg->data_dir, r->k->def->name, &check, &c->db, err) < 0 ||
	    sdk_db_exec(c->db, "PRAGMA query_only = 1", err) < 0 ||
	    sdk_db_exec(c->db, "PRAGMA mmap_size = " LIB_READ_MMAP_BYTES, err) < 0 ||
	    lib_tok_new(c->db, &c->tok, err) < 0) {
		conn_free(c);
		return NULL;
	}
	c->pc = lib_sq_cache_new();
	return c;
}

static struct conn *conn_take(lib_workers *r, sdk_err *err)
{
	pthread_mutex_lock(&r->mu);
	struct conn *c = r->idle;
	if (c)
		r->idle = c->next;
	pthread_mutex_unlock(&r->mu);
	return c ? c : conn_open(r, err);
}

static void conn_give(lib_workers *r, struct conn *c)
{
	pthread_mutex_lock(&r->mu);
	c->next = r->idle;
	r->idle = c;
	pthread_mutex_unlock(&r->mu);
}

/* On a worker. */
static void search_work(void *arg)
{
	struct job *j = arg;
	struct timespec t0 = sdk_mono_now();
	j->ran = true;
	struct conn *c = conn_take(j->r, &j->err);
	if (!c) {
		j->rc = SDK_EIO;
		return;
	}
	/* One snapshot for the ranking and the page. */
	sqlite3_stmt *begin = lib_sq_stmt_take(c->pc, c->db, "BEGIN");
	if (!begin || sqlite3_step(begin) != SQLITE_DONE) {
		j->rc = sdk_db_fail(c->db, &j->err, "begin search");
	} else {
		j->rc = lib_search_cached(c->db, c->tok, c->pc, j->query, j->tag, j->limit, &j->out,
					  &j->err);
		sqlite3_stmt *commit = lib_sq_stmt_take(c->pc, c->db, "COMMIT");
		if (!commit || sqlite3_step(commit) != SQLITE_DONE)
			sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
		lib_sq_stmt_give(c->pc, commit);
	}
	lib_sq_stmt_give(c->pc, begin);
	conn_give(j->r, c);
	if (!j->rc)
		j->rc = lib_search_end(&j->out, sdk_ms_since(&t0));
	if (j->rc == SDK_EIO && !j->err.msg[0])
		sdk_fail(&j->err, SDK_EIO, "out of memory");
}

static void job_free(struct job *j)
{
	sdk_buf_free(&j->out);
	free(j->query);
	free(j->tag);
	free(j);
}

/* On the loop: a job's failure answered (true), or nothing answered
 * (false: it ran and succeeded, the caller answers). `unrun`: what a job
 * dropped unrun at shutdown says. */
static bool replied_failure(sdk_req *req, bool ran, int rc, const sdk_err *err, const char *what,
			    const char *unrun)
{
	if (!ran) {
		sdk_req_add_header(req, "Retry-After", "1");
		sdk_reply_error(req, 503, "stopping", "%s", unrun);
		return true;
	}
	if (!rc)
		return false;
	if (rc == SDK_EIO || rc == SDK_ECORRUPT)
		sdk_log(SDK_LOG_WARN, sdk_req_id(req), "%s: %s", what, err->msg);
	sdk_reply_status(req, rc, err);
	return true;
}

/* On the loop. A queued job dropped at shutdown comes here unrun. */
static void search_done(void *arg)
{
	struct job *j = arg;
	if (replied_failure(j->req, j->ran, j->rc, &j->err, "search", "the librarian is stopping")) {
		job_free(j);
		return;
	}
	struct evbuffer *b = evbuffer_new();
	if (!b || evbuffer_add(b, j->out.p, j->out.len) || evbuffer_add(b, "\n", 1)) {
		sdk_reply_error(j->req, 500, "internal", "out of memory");
	} else {
		/* as sdk_reply_json sends it: the text, a newline, JSON's type */
		sdk_reply_raw(j->req, 200, NULL, b);
	}
	if (b)
		evbuffer_free(b);
	job_free(j);
}

void lib_workers_search(lib_workers *r, sdk_req *req, const char *user, const char *query,
			const char *tag, unsigned limit)
{
	struct job *j = calloc(1, sizeof *j);
	if (j) {
		j->r = r;
		j->req = req;
		j->limit = limit;
		j->query = strdup(query);
		j->tag = tag ? strdup(tag) : NULL;
	}
	if (!j || !j->query || (tag && !j->tag)) {
		if (j)
			job_free(j);
		sdk_reply_error(req, 500, "internal", "out of memory");
		return;
	}
	int rc = sdk_pool_submit_as(r->pool, user, search_work, search_done, j);
	if (rc == 0)
		return;
	job_free(j);
	sdk_req_add_header(req, "Retry-After", "1");
	if (rc == SDK_POOL_ECALLER)
		sdk_reply_error(req, 429, "too_many", "you have %d searches in flight; try again",
				LIB_WORKERS_CALLER_MAX);
	else
		sdk_reply_error(req, 503, "busy", "too many searches queued; try again");
}

/* On the writer: its connection and tails cache, opened at first use. */
static int writer_ready(lib_workers *w, sdk_err *err)
{
	if (!w->wdb) {
		if (sdk_db_open_checked(w->k->cfg->data_dir, w->k->def->name,
					&(sdk_db_check){ .skip = true }, &w->wdb, err) < 0)
			return SDK_EIO;
		/* A bulk request's flush touches the tail pages of thousands
		 * of words all over the index: with SQLite's default 2 MiB
		 * cache most were read from the file again at every request
		 * (5.3 reads a document against 2.3 with 64 MiB, 12,000 bench
		 * documents, bench/ingest_bench.py). Pages are taken as used,
		 * up to this; a failure only leaves the default. */
		sqlite3_exec(w->wdb, "PRAGMA cache_size = -65536", NULL, NULL, NULL);
		/* Its checkpoints run on a thread of their own, past
		 * LIB_CKPT_FRAMES pages (64 MiB) of WAL: ckpt.h. */
		lib_ckpt_watch(w->ckpt, w->wdb);
	}
	if (!w->tails)
		w->tails = lib_ix_tails_new(); /* NULL (no memory): no cache */
	return SDK_OK;
}

/* The writer's queue refused a job (sdk_pool_submit_as's rc). */
static void write_refused(sdk_req *req, int rc, const char *busy)
{
	sdk_req_add_header(req, "Retry-After", "1");
	if (rc == SDK_POOL_ECALLER)
		sdk_reply_error(req, 429, "too_many", "you have %d writes waiting; try again",
				LIB_WORKERS_WRITE_CALLER_MAX);
	else
		sdk_reply_error(req, 503, "busy", "%s", busy);
}

struct write {
	lib_workers *w;
	sdk_req *req;
	lib_write_fn fn;
	void *arg;
	void (*arg_free)(void *arg);
	int ok_status;
	bool ran;
	int rc;
	sdk_err err;
	lib_write_res res;
};

/* On the writer. */
static void write_work(void *arg)
{
	struct write *x = arg;
	lib_workers *w = x->w;
	x->ran = true;
	if ((x->rc = writer_ready(w, &x->err)))
		return;
	if (!w->single && lib_ix_open(w->wdb, &w->single, &x->err) < 0)
		w->single = NULL; /* each write opens its own: slower, the same */
	x->rc = x->fn(w->wdb, w->single, x->arg, &x->res, &x->err);
}

/* On the loop; also for a write dropped unrun at shutdown. */
static void write_done(void *arg)
{
	struct write *x = arg;
	if (!replied_failure(x->req, x->ran, x->rc, &x->err, "write",
			     "the librarian is stopping; nothing written")) {
		lib_ckpt_poke(x->w->ckpt);
		if (x->res.staged)
			lib_workers_staged(x->w, x->res.staged);
		sdk_reply_json(x->req, x->ok_status, x->res.out);
		x->res.out = NULL;
	}
	json_decref(x->res.out);
	x->arg_free(x->arg);
	free(x);
}

void lib_workers_write(lib_workers *w, sdk_req *req, const char *user, lib_write_fn fn, void *arg,
		       void (*arg_free)(void *arg), int ok_status)
{
	struct write *x = calloc(1, sizeof *x);
	if (!x) {
		arg_free(arg);
		sdk_reply_error(req, 500, "internal", "out of memory");
		return;
	}
	*x = (struct write){ .w = w, .req = req, .fn = fn, .arg = arg, .arg_free = arg_free,
			     .ok_status = ok_status };
	int rc = sdk_pool_submit_as(w->writer, user, write_work, write_done, x);
	if (rc == 0)
		return;
	arg_free(arg);
	free(x);
	write_refused(req, rc, "too many writes queued; try again");
}

/* Under bmu. */
static void waiting_unlink(lib_workers *w, struct bulk *b)
{
	*(b->prev ? &b->prev->next : &w->waiting) = b->next;
	*(b->next ? &b->next->prev : &w->waiting_tail) = b->prev;
	b->prev = b->next = NULL;
}

static bool same_owner(const struct bulk *a, const struct bulk *b)
{
	return (a->owner ? b->owner && !strcmp(a->owner, b->owner) : !b->owner) &&
	       a->admin == b->admin && a->has_quota == b->has_quota &&
	       a->quota.docs == b->quota.docs && a->quota.bytes == b->quota.bytes;
}

/* On the writer: b's job. It takes the requests of its owner waiting
 * behind it (in order, up to LIB_BULK_BODY_MAX in all, stopping at
 * the first that does not fit so that none passes another of its owner)
 * and runs them in one transaction (lib_bulk_load_group). Other owners'
 * requests may be passed: they were not ordered with these. */
static void bulk_work(void *arg)
{
	struct bulk *b = arg;
	lib_workers *w = b->w;
	pthread_mutex_lock(&w->bmu);
	if (b->taken) { /* run in its leader's group, which answers it */
		pthread_mutex_unlock(&w->bmu);
		return;
	}
	waiting_unlink(w, b);
	size_t bytes = b->len, n = 0;
	for (struct bulk *x = w->waiting; x && n < LIB_WORKERS_GROUP_MAX; x = x->next)
		if (same_owner(b, x)) {
			if (bytes + x->len > LIB_BULK_BODY_MAX)
				break;
			bytes += x->len;
			n++;
		}
	b->group = n ? calloc(n, sizeof *b->group) : NULL;
	for (struct bulk *x = w->waiting, *next; b->group && b->ngroup < n && x; x = next) {
		next = x->next;
		if (!same_owner(b, x))
			continue;
		waiting_unlink(w, x);
		x->taken = true;
		x->refs++;
		b->group[b->ngroup++] = x;
	}
	pthread_mutex_unlock(&w->bmu);
	lib_bulk_req one[1 + LIB_WORKERS_GROUP_MAX];
	sdk_err err = { 0 };
	int rc = writer_ready(w, &err);
	for (size_t i = 0; i <= b->ngroup; i++) {
		struct bulk *x = i ? b->group[i - 1] : b;
		x->ran = true;
		one[i] = (lib_bulk_req){ .owner = x->owner, .admin = x->admin,
					 .quota = x->has_quota ? &x->quota : NULL,
					 .body = x->body, .len = x->len, .rc = rc, .err = err };
	}
	if (!rc)
		b->tx = lib_bulk_load_group(w->wdb, w->tails, one, 1 + b->ngroup);
	for (size_t i = 0; i <= b->ngroup; i++) {
		struct bulk *x = i ? b->group[i - 1] : b;
		x->rc = one[i].rc;
		x->out = one[i].out;
		x->err = one[i].err;
	}
}

static void bulk_unref(struct bulk *b)
{
	if (--b->refs)
		return;
	json_decref(b->out);
	free(b->group);
	free(b->owner);
	free(b->body);
	free(b);
}

static void bulk_answer(struct bulk *b)
{
	if (!replied_failure(b->req, b->ran, b->rc, &b->err, "bulk",
			     "the librarian is stopping; nothing stored"))
		sdk_reply_json(b->req, 200, json_incref(b->out));
}

/* On the loop; also for a job dropped unrun at shutdown (one that was
 * never taken: a leader that took it ran, and answers it). */
static void bulk_done(void *arg)
{
	struct bulk *b = arg;
	lib_workers *w = b->w;
	w->bulks--;
	if (b->taken) {
		bulk_unref(b);
		return;
	}
	if (!b->ran) { /* never ran: no longer waiting either */
		pthread_mutex_lock(&w->bmu);
		waiting_unlink(w, b);
		pthread_mutex_unlock(&w->bmu);
	}
	if (b->tx) {
		lib_ckpt_poke(w->ckpt);
		lib_workers_staged(w, 0); /* the idle merge shrinks the WAL a load grew */
	}
	w->bulk_tx += b->tx;
	w->bulk_written += b->ran && !b->rc;
	bulk_answer(b);
	for (size_t i = 0; i < b->ngroup; i++) {
		w->bulk_written += !b->group[i]->rc;
		bulk_answer(b->group[i]);
		bulk_unref(b->group[i]);
	}
	bulk_unref(b);
}

void lib_workers_bulk(lib_workers *w, sdk_req *req, const char *owner, bool admin,
		      const struct lib_quota *quota)
{
	struct evbuffer *in = sdk_req_body(req);
	size_t len = in ? evbuffer_get_length(in) : 0;
	struct bulk *b = calloc(1, sizeof *b);
	if (b) {
		b->w = w;
		b->req = req;
		b->refs = 1;
		b->len = len;
		b->body = malloc(len + 1);
		b->owner = owner ? strdup(owner) : NULL;
		b->admin = admin;
		if (quota) {
			b->quota = *quota;
			b->has_quota = true;
		}
	}
	if (!b || !b->body || (owner && !b->owner) ||
	    (len && evbuffer_copyout(in, b->body, len) != (ev_ssize_t)len)) {
		if (b)
			bulk_unref(b);
		sdk_reply_error(req, 500, "internal", "out of memory");
		return;
	}
	b->body[len] = '\0';
	/* Bulk loads have a bound of their own in the writer's queue: each
	 * holds its body in memory. It is waiting (for a leader to take)
	 * from before its job can run: bulk_work looks under the same lock. */
	pthread_mutex_lock(&w->bmu);
	int rc = w->bulks < LIB_WORKERS_BULK_QUEUE_MAX
			 ? sdk_pool_submit_as(w->writer, owner, bulk_work, bulk_done, b)
			 : SDK_EBUSY;
	if (rc == 0) {
		b->prev = w->waiting_tail;
		*(w->waiting_tail ? &w->waiting_tail->next : &w->waiting) = b;
		w->waiting_tail = b;
	}
	pthread_mutex_unlock(&w->bmu);
	if (rc == 0) {
		w->bulks++;
		return;
	}
	bulk_unref(b);
	write_refused(req, rc, "too many bulk loads queued; try again");
}

/* On the writer: every pending document into the blocks, and a step of
 * FTS5's merging (lib_fts_merge); the WAL shrinks once both are done. */
static void merge_work(void *arg)
{
	lib_workers *w = arg;
	bool idle = w->idle_run;
	w->idle_run = false;
	w->fts_worked = false;
	w->merge_rc = writer_ready(w, &w->merge_err);
	if (!w->merge_rc)
		w->merge_rc = lib_ix_merge_all(w->wdb, w->tails, NULL, &w->merge_err);
	if (!w->merge_rc)
		w->merge_rc = lib_fts_merge(w->wdb, &w->fts_worked, &w->merge_err);
	if (!w->merge_rc && idle && !w->fts_worked)
		lib_ckpt_shrink(w->ckpt, w->wdb);
}

static void merge_arm(lib_workers *w)
{
	struct timeval tv = { LIB_IX_MERGE_IDLE_MS / 1000, (LIB_IX_MERGE_IDLE_MS % 1000) * 1000 };
	if (w->merge_timer && !w->stopping)
		evtimer_add(w->merge_timer, &tv);
}

static void merge_queue(lib_workers *w);

/* On the loop; also for a merge dropped unrun at shutdown. */
static void merge_done(void *arg)
{
	lib_workers *w = arg;
	w->merging = false;
	lib_ckpt_poke(w->ckpt);
	if (w->merge_rc) {
		/* Left pending, still searchable: tried again after the next idle
		 * moment, not at once (a busy file would make it spin). */
		sdk_log(SDK_LOG_WARN, NULL, "index merge: %s", w->merge_err.msg);
		w->merge_rc = 0;
		merge_arm(w);
	} else if (w->staged >= LIB_IX_PENDING_MERGE) {
		merge_queue(w); /* more came while it ran */
	} else if (w->fts_worked) {
		/* FTS5 may have more to merge: its next step at once if the
		 * writer is free, else once it is idle again. */
		w->fts_chain = true;
		if (sdk_pool_pending(w->writer) == 0)
			merge_queue(w);
		else
			merge_arm(w);
	} else if (w->fts_chain) {
		/* The steps are done: an idle run gives back the WAL they grew. */
		w->fts_chain = false;
		merge_arm(w);
	}
}

static void merge_queue(lib_workers *w)
{
	if (w->merging || w->stopping)
		return;
	w->merging = true;
	w->staged = 0;
	if (sdk_pool_submit(w->writer, merge_work, merge_done, w) != 0) {
		w->merging = false; /* the writer's queue is full of bulk loads: later */
		merge_arm(w);
	}
}

static void on_merge_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	lib_workers *w = arg;
	if (w->merging) {
		merge_arm(w); /* one at a time: look again after it */
	} else {
		/* Idle only if nothing is queued or running: a bulk request of
		 * 10 MB runs for more than the timer, which counts from the last
		 * answer, and a load would otherwise copy its whole WAL into the
		 * file after each request; and no truncation while a checkpoint
		 * runs (ckpt_idle looks again after it). Read by merge_work,
		 * after the pool's handover. */
		w->idle_run = sdk_pool_pending(w->writer) == 0 && !lib_ckpt_busy(w->ckpt);
		merge_queue(w);
	}
}

/* A checkpoint copied the whole WAL: if nothing else is queued, the idle
 * timer may truncate it now (ckpt.h). */
static void ckpt_idle(void *arg)
{
	lib_workers *w = arg;
	if (!w->merging && sdk_pool_pending(w->writer) == 0)
		merge_arm(w);
}

void lib_workers_staged(lib_workers *w, unsigned docs)
{
	w->staged += docs;
	if (w->staged >= LIB_IX_PENDING_MERGE && !w->merging)
		merge_queue(w);
	else
		merge_arm(w);
}

void lib_workers_metrics(const lib_workers *w, const char *kernel, struct evbuffer *out)
{
	evbuffer_add_printf(
		out,
		"# HELP grace_librarian_bulk_requests_total Bulk requests stored.\n"
		"# TYPE grace_librarian_bulk_requests_total counter\n"
		"grace_librarian_bulk_requests_total{kernel=\"%s\"} %" PRIu64 "\n"
		"# HELP grace_librarian_bulk_transactions_total Transactions the stored bulk"
		" requests took: fewer than the requests when an owner's waiting requests were"
		" written together.\n"
		"# TYPE grace_librarian_bulk_transactions_total counter\n"
		"grace_librarian_bulk_transactions_total{kernel=\"%s\"} %" PRIu64 "\n"
		"# HELP grace_librarian_bulk_queued Bulk requests queued or being written.\n"
		"# TYPE grace_librarian_bulk_queued gauge\n"
		"grace_librarian_bulk_queued{kernel=\"%s\"} %u\n",
		kernel, w->bulk_written, kernel, w->bulk_tx, kernel, w->bulks);
}

lib_workers *lib_workers_new(sdk_kernel *k, sdk_err *err)
{
	lib_workers *r = calloc(1, sizeof *r);
	if (!r) {
		sdk_fail(err, SDK_EIO, "out of memory");
		return NULL;
	}
	r->k = k;
	pthread_mutex_init(&r->mu, NULL);
	pthread_mutex_init(&r->bmu, NULL);
	r->pool = sdk_pool_new(k->base, LIB_WORKERS_THREADS, LIB_WORKERS_QUEUE_MAX);
	if (!r->pool) {
		sdk_fail(err, SDK_EIO, "cannot start the search workers");
		lib_workers_free(r);
		return NULL;
	}
	sdk_pool_set_caller_max(r->pool, LIB_WORKERS_CALLER_MAX);
	sdk_pool_name(r->pool, "lib-search");
	r->writer = sdk_pool_new(k->base, 1, LIB_WORKERS_WRITE_QUEUE_MAX);
	if (!r->writer) {
		sdk_fail(err, SDK_EIO, "cannot start the writer");
		lib_workers_free(r);
		return NULL;
	}
	sdk_pool_set_caller_max(r->writer, LIB_WORKERS_WRITE_CALLER_MAX);
	sdk_pool_name(r->writer, "lib-writer");
	r->ckpt = lib_ckpt_new(k, err);
	if (!r->ckpt) {
		lib_workers_free(r);
		return NULL;
	}
	lib_ckpt_on_done(r->ckpt, ckpt_idle, r);
	r->merge_timer = evtimer_new(k->base, on_merge_timer, r);
	if (!r->merge_timer) {
		sdk_fail(err, SDK_EIO, "out of memory");
		lib_workers_free(r);
		return NULL;
	}
	return r;
}

void lib_workers_free(lib_workers *r)
{
	if (!r)
		return;
	r->stopping = true; /* merge_done must not arm the timer freed here */
	if (r->merge_timer)
		event_free(r->merge_timer);
	r->merge_timer = NULL;
	sdk_pool_free(r->pool);
	sdk_pool_free(r->writer);
	if (r->wdb)
		sqlite3_wal_hook(r->wdb, NULL, NULL); /* its hook's argument goes next */
	lib_ckpt_free(r->ckpt); /* after the writer, whose commits it watches */
	lib_ix_close(r->single); /* before its connection */
	if (r->wdb)
		sqlite3_close(r->wdb);
	lib_ix_tails_free(r->tails);
	while (r->idle) {
		struct conn *c = r->idle;
		r->idle = c->next;
		conn_free(c);
	}
	pthread_mutex_destroy(&r->mu);
	pthread_mutex_destroy(&r->bmu);
	free(r);
}
