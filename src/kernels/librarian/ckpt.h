/* The writer's WAL checkpoints, on a thread of their own.
 *
 * SQLite's automatic checkpoint runs inside the commit that crosses its
 * threshold, on the committing thread: a bulk load of 10 MB requests
 * waited 160-280 ms at every other commit while 64 MiB of WAL were copied
 * into the file and synced, a fifth of the load's wall clock
 * (docs/librarian.md, "Ingest: where the time goes"). Here the writer's
 * connection only counts its WAL (a wal hook instead of the automatic
 * checkpoint), and past LIB_CKPT_FRAMES the loop hands a PASSIVE
 * checkpoint to a thread with a connection of its own, as SQLite's
 * documentation suggests for applications that would rather not wait.
 * A passive checkpoint takes no lock a writer or a reader waits on: the
 * writer goes on appending to the WAL while it copies, and the WAL
 * starts again from its beginning at the first write after it, once no
 * reader still reads what it copied. Should the checkpoints fall behind
 * by LIB_CKPT_FRAMES_HARD (a reader holding a snapshot for long, a disk
 * slower than the writer), the writer checkpoints at its commit itself,
 * as before: the WAL's size stays bounded either way.
 *
 * What is durable does not change: a commit is in the WAL either way
 * (synchronous=NORMAL: a process's crash loses nothing). */
#ifndef GRACE_LIBRARIAN_CKPT_H
#define GRACE_LIBRARIAN_CKPT_H

#include "kernels/layer.h"

#include "sdk/err.h"
#include "sdk/kernel.h"

#include <sqlite3.h>
#include <stdbool.h>

/* WAL pages (4 KiB) past which a checkpoint is queued: 64 MiB. A 1 MiB
 * request writes more than SQLite's default of 1,000 (its documents,
 * FTS5's segment, thousands of words' tails), so every commit copied its
 * pages into the file, the same tail pages again at each; at 16,384 a page
 * rewritten by several requests is copied once: 12.6 kB written a
 * document instead of 19.1 kB, 0.66 reads instead of 2.25 (12,000 bench
 * documents). */
#define LIB_CKPT_FRAMES 16384
/* ... and past which the writer checkpoints at its commit itself. */
#define LIB_CKPT_FRAMES_HARD (4 * LIB_CKPT_FRAMES)

typedef struct lib_ckpt lib_ckpt;

/* On the loop. NULL with err set: no memory or no thread. */
lib_ckpt *lib_ckpt_new(sdk_kernel *k, sdk_err *err);
/* Waits for a checkpoint running; closes its connection. On the loop. */
void lib_ckpt_free(lib_ckpt *c);
/* Puts the writer's connection under c (its wal hook): on the writer's
 * thread, once, before its first write. */
void lib_ckpt_watch(lib_ckpt *c, sqlite3 *wdb);
/* After a write was answered: queues a checkpoint when the WAL is past
 * LIB_CKPT_FRAMES and none is queued or running. On the loop. */
void lib_ckpt_poke(lib_ckpt *c);
/* A checkpoint is queued or running. On the loop. */
bool lib_ckpt_busy(const lib_ckpt *c);
/* On the writer's thread, once no write came for a while: the WAL grows
 * to about 64 MiB under a bulk load and SQLite keeps the file at its
 * largest, so a library loaded once kept 64 MiB it no longer used
 * (grace_bench.py: 139 MiB on disk for a 75 MiB database). Past 4 MiB it
 * is checkpointed and truncated; that waits for the searches reading the
 * WAL, a few milliseconds, and a failure (a reader holding a snapshot
 * longer, a checkpoint running) leaves it for the next idle moment. */
void lib_ckpt_shrink(lib_ckpt *c, sqlite3 *wdb);
/* fn(arg) on the loop when a checkpoint copied every page: the writer's
 * owner looks for an idle moment again, since a truncation tried while
 * it ran found the WAL busy. */
void lib_ckpt_on_done(lib_ckpt *c, void (*fn)(void *arg), void *arg);

#endif
