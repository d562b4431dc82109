/* The bus's JetStream stream in a backup (docs/backup.md "JetStream"):
 * only the bus kernel talks to NATS, so grace serve asks it for the
 * snapshot (GET /snapshot, sdk/call.h by kernel name), which the kernel
 * takes and holds; reads it in pieces (GET /snapshot/ID?offset=N, each
 * within what the call path buffers), drops it (DELETE), and stages the
 * bytes like any other file of the archive.
 *
 * The archive is made on a worker thread (snapshot.h) and the snapshot is
 * taken in the middle of it, after the other stores and before the audit
 * trail; the call path runs on the loop. So the worker asks the loop
 * through this bridge (a pipe the loop watches) and waits for each answer:
 * made on the loop by whoever owns the backups' pool, cancelled before
 * that pool is freed (a worker waiting then gives up at once: the loop
 * will not answer it any more), freed after. */
#ifndef GRACE_BACKUP_BUS_SNAP_H
#define GRACE_BACKUP_BUS_SNAP_H

#include "serve/layer.h"

#include "sdk/err.h"
#include "serve/api/api.h"

#include <jansson.h>

/* The snapshot's name in the archive is "jetstream/STREAM.tar.s2"; its kind
 * in the manifest. */
#define BK_JS_DIR "jetstream/"
#define BK_JS_SUFFIX ".tar.s2"
#define BK_JS_KIND "jetstream"

typedef struct bk_bus_snap bk_bus_snap;

/* On the loop. NULL on ENOMEM. */
bk_bus_snap *bk_bus_snap_new(api_ctx *api);
void bk_bus_snap_cancel(bk_bus_snap *s);
void bk_bus_snap_free(bk_bus_snap *s);

/* On a worker: the snapshot's bytes into out_path (created 0600) and what
 * the kernel says of it (stream, config, state, consumers, bytes, chunks)
 * in *info (owned by the caller). 0; SDK_ENOTFOUND when no message_bus kernel is in
 * this configuration; another negative sdk_status with why. */
int bk_bus_snap_fetch(bk_bus_snap *s, const char *out_path, json_t **info, sdk_err *e);

#endif
