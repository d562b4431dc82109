/* A backup archive of everything Grace holds, made while it serves.
 *
 * The archive is a POSIX tar (libarchive): `manifest.json` first, then
 * `manifest.mac` when the backup is keyed, then the files it lists. Each SQLite
 * database is copied with SQLite's online backup API (one read transaction:
 * the copy is the database at one instant, every write acknowledged before
 * it included), checked with quick_check, and hashed. Databases are copied
 * in an order that keeps references between kernels whole: every other
 * store first, then the audit trail, then the immutable log, so every log
 * index an audit event names exists in the log's copy. Secret files (mode
 * 0600 and not a database: the crypto master key, the log's signing key)
 * are sealed (seal.h) or, with no key, left out when the caller allows it.
 * With [store] engine = postgresql the shared database is dumped too
 * (pg_dump.h), after the audit trail and before the immutable log: the
 * SQLite stores and audit events that name users come first. With
 * [message_bus] engine = jetstream the bus's stream is asked of the bus
 * kernel (bus_snap.h) after the other stores and before the audit trail,
 * so it holds every message acknowledged before the backup began, and
 * every message a store's copy says it sent.
 * Everything in this file blocks: run it on a worker pool. */
#ifndef GRACE_BACKUP_SNAPSHOT_H
#define GRACE_BACKUP_SNAPSHOT_H

#include "serve/layer.h"

#include "sdk/config.h"
#include "sdk/err.h"
#include "serve/backup/seal.h"

#include <jansson.h>
#include <stdbool.h>

#define BK_FORMAT "grace-backup/1"
/* The manifest is read whole by a restore: bounded. */
#define BK_MANIFEST_MAX (4 * 1024 * 1024)

typedef struct bk_plan {
	const char *data_dir;    /* what is backed up */
	const char *config_path; /* the configuration file in use, or "" */
	const char *passphrase;  /* one of passphrase, master or no_secrets */
	const unsigned char *master;
	bool no_secrets;
	json_t *log_head; /* borrowed: the immutable log's signed tree head, or NULL */
	/* [store] when its engine is PostgreSQL (pg_dump.h), else NULL. */
	const grace_store_cfg *pg;
	/* [message_bus] when its engine is JetStream, else NULL; then `bus`
	 * asks the bus kernel for the stream's snapshot (bus_snap.h). */
	const grace_message_bus *jetstream;
	struct bk_bus_snap *bus;
} bk_plan;

/* Writes the archive to `path` (through path.tmp, fsync'd, then renamed)
 * and returns its manifest in *manifest (owned by the caller). Stages the
 * copies in a directory of its own under the data directory, removed
 * after. */
int bk_snapshot_write(const bk_plan *plan, const char *path, json_t **manifest, sdk_err *e);

/* Removes a staging directory and the files in it (one level, no more). */
void bk_remove_dir(const char *dir);

/* SHA-256 of a file, as 64 hex digits; its size in *size. */
int bk_file_sha256(const char *path, char hex[65], long long *size, sdk_err *e);

#endif
