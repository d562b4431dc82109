#include "kernels/librarian/ckpt.h"

#include "sdk/db.h"
#include "sdk/log.h"
#include "sdk/pool.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

struct lib_ckpt {
	sdk_kernel *k;
	sdk_pool *pool;  /* one thread */
	sqlite3 *db;     /* the checkpoints' connection: only the pool's thread uses it */
	atomic_int wal;  /* the WAL's pages after the writer's last commit */
	bool queued;     /* a checkpoint queued or running; on the loop */
	bool all;        /* it copied every page (its thread's until done) */
	int rc;          /* its failure (its thread's until done) */
	sdk_err err;
	void (*on_done)(void *arg);
	void *on_done_arg;
};

/* The writer's connection's wal hook, on its thread after each commit. */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
	lib_ckpt *c = arg;
	atomic_store_explicit(&c->wal, pages, memory_order_relaxed);
	if (pages >= LIB_CKPT_FRAMES_HARD)
		/* BUSY when the thread is copying already: it will be done
		 * soon, and this is asked again at the next commit. */
		sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	return SQLITE_OK;
}

void lib_ckpt_watch(lib_ckpt *c, sqlite3 *wdb)
{
	sqlite3_wal_hook(wdb, wal_hook, c); /* replaces the automatic checkpoint */
}

/* On the pool's thread. */
static void ckpt_work(void *arg)
{
	lib_ckpt *c = arg;
	c->rc = 0;
	c->all = false;
	if (!c->db && sdk_db_open_checked(c->k->cfg->data_dir, c->k->def->name,
					  &(sdk_db_check){ .skip = true }, &c->db, &c->err) < 0) {
		c->db = NULL;
		c->rc = SDK_EIO;
		return;
	}
	int seen = atomic_load_explicit(&c->wal, memory_order_relaxed);
	int log = 0, done = 0;
	int rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
	/* BUSY: the writer checkpointed past the hard bound meanwhile. */
	if (rc != SQLITE_OK && rc != SQLITE_BUSY)
		c->rc = sdk_db_fail(c->db, &c->err, "checkpoint");
	/* Nothing left to copy: no second checkpoint for the same pages,
	 * unless the writer committed more meanwhile. Less than all (a
	 * reader still reads older pages): the next write asks again. */
	c->all = rc == SQLITE_OK && done >= log;
	if (c->all)
		atomic_compare_exchange_strong(&c->wal, &seen, 0);
}

/* On the loop; also for a checkpoint dropped unrun at shutdown. */
static void ckpt_done(void *arg)
{
	lib_ckpt *c = arg;
	c->queued = false;
	if (c->rc)
		sdk_log(SDK_LOG_WARN, NULL, "WAL checkpoint: %s", c->err.msg);
	if (c->all && c->on_done)
		c->on_done(c->on_done_arg);
}

void lib_ckpt_poke(lib_ckpt *c)
{
	if (c->queued || atomic_load_explicit(&c->wal, memory_order_relaxed) < LIB_CKPT_FRAMES)
		return;
	c->queued = sdk_pool_submit(c->pool, ckpt_work, ckpt_done, c) == 0;
}

bool lib_ckpt_busy(const lib_ckpt *c)
{
	return c->queued;
}

/* The WAL past which an idle writer gives the file's space back. */
#define WAL_KEEP_BYTES (4 << 20)

void lib_ckpt_shrink(lib_ckpt *c, sqlite3 *wdb)
{
	const char *db = sqlite3_db_filename(wdb, "main");
	char wal[4096];
	struct stat st;
	if (!db || !*db || (size_t)snprintf(wal, sizeof wal, "%s-wal", db) >= sizeof wal ||
	    stat(wal, &st) != 0 || st.st_size <= WAL_KEEP_BYTES)
		return;
	int rc = sqlite3_wal_checkpoint_v2(wdb, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	if (rc == SQLITE_OK)
		atomic_store_explicit(&c->wal, 0, memory_order_relaxed);
	else
		sdk_log(SDK_LOG_INFO, NULL, "WAL of %lld bytes not truncated now: %s",
			(long long)st.st_size, sqlite3_errmsg(wdb));
}

void lib_ckpt_on_done(lib_ckpt *c, void (*fn)(void *arg), void *arg)
{
	c->on_done = fn;
	c->on_done_arg = arg;
}

lib_ckpt *lib_ckpt_new(sdk_kernel *k, sdk_err *err)
{
	lib_ckpt *c = calloc(1, sizeof *c);
	if (!c) {
		sdk_fail(err, SDK_EIO, "out of memory");
		return NULL;
	}
	c->k = k;
	atomic_init(&c->wal, 0);
	c->pool = sdk_pool_new(k->base, 1, 1);
	if (!c->pool) {
		sdk_fail(err, SDK_EIO, "cannot start the checkpoints' thread");
		free(c);
		return NULL;
	}
	sdk_pool_name(c->pool, "lib-ckpt");
	return c;
}

void lib_ckpt_free(lib_ckpt *c)
{
	if (!c)
		return;
	c->on_done = NULL; /* its owner is going too */
	sdk_pool_free(c->pool);
	if (c->db)
		sqlite3_close(c->db);
	free(c);
}
