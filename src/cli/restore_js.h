/* `grace restore`'s JetStream part (docs/backup.md "JetStream"): an
 * archive that holds the bus's stream (jetstream/PREFIX_BUS.tar.s2, taken
 * by the bus kernel's GET /snapshot) puts it back into the NATS JetStream
 * the configuration names, and checks it there.
 *
 *   - restore_js_prepare, in step 1 (nothing written yet): the manifest's
 *     facts, a configuration whose [message_bus] engine is jetstream with
 *     the same stream name, NATS reachable, and no stream by that name (or
 *     --force, which deletes it in restore_js_load);
 *   - restore_js_load, after every local check passed: the stream deleted
 *     with --force, then $JS.API.STREAM.RESTORE.<stream> with the
 *     manifest's config and state, the snapshot sent as requests on the
 *     subject it answers (each acknowledged, then an empty one to end),
 *     then the restored stream's messages, first and last sequence and its
 *     consumers' positions against the manifest.
 *
 * --no-jetstream (the scheduled backups' proof, which must not touch the
 * live cluster) restores the files only: the snapshot's hash is checked
 * with every other file's.
 *
 * libnats is loaded at run time (sdk/nats_dl.h), only when a stream is to
 * be restored. */
#ifndef GRACE_CLI_RESTORE_JS_H
#define GRACE_CLI_RESTORE_JS_H

#include "serve/layer.h"

#include "cli/restore_pg.h" /* restore_check_fn */
#include "sdk/config.h"
#include "sdk/nats_dl.h"

#include <jansson.h>
#include <stdbool.h>

typedef struct restore_js {
	bool skip;          /* --no-jetstream */
	bool force;         /* --force: an existing stream is deleted first */
	const char *config; /* --config, or NULL ($GRACE_CONFIG, etc/grace.ini) */
	const json_t *info; /* the manifest's "jetstream" (borrowed), NULL: none */
	restore_check_fn check;
	void *ctx;
	/* What the report says of it (owned), set by restore_js_load. */
	json_t *report;
	/* Internal. */
	char stream[64];
	bool exists;
	grace_config *cfg; /* owned */
	sdk_nats_dl N;
	natsConnection *nc;
	jsCtx *js;
} restore_js;

/* Step 1. `listed`: the archive's name of the snapshot, NULL when the
 * manifest lists none. 0, or -1 after a failed check saying why. */
int restore_js_prepare(restore_js *p, const json_t *manifest, const char *listed);

/* After the local checks: the snapshot at `path` restored and checked (a
 * no-op with skip or without a stream). 0, or -1 after a failed check. */
int restore_js_load(restore_js *p, const char *path);

void restore_js_free(restore_js *p);

#endif
