#include "sdk/migrate.h"

#include "sdk/db.h"
#include "sdk/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int sdk_mig_version(sqlite3 *db, int *out, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db, "PRAGMA user_version", &st, err);
	if (rc < 0)
		return rc;
	if (sqlite3_step(st) == SQLITE_ROW)
		*out = sqlite3_column_int(st, 0);
	else
		rc = sdk_db_fail(db, err, "reading the schema version");
	sqlite3_finalize(st);
	return rc;
}

int sdk_mig_refuse_newer(sdk_err *err, const char *path, int file_version, int this_version)
{
	return sdk_fail(err, SDK_EIO,
			"%s has schema version %d, this Grace knows up to %d: this data "
			"directory was written by a newer Grace; run that version or restore "
			"a backup made for this one",
			path, file_version, this_version);
}

int sdk_mig_refuse_if_newer(const char *path, int version, sdk_err *err)
{
	if (access(path, F_OK) < 0)
		return 0;
	sqlite3 *db = NULL;
	int v = -1;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
		sqlite3_busy_timeout(db, SDK_DB_BUSY_TIMEOUT_MS);
		sdk_err ignored;
		if (sdk_mig_version(db, &v, &ignored) < 0)
			v = -1;
	}
	sqlite3_close(db);
	return v > version ? sdk_mig_refuse_newer(err, path, v, version) : 0;
}

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

/* fsync(2) of a file or a directory by path. */
static int fsync_path(const char *path, int flags, sdk_err *err)
{
	int fd = open(path, flags | O_CLOEXEC);
	if (fd < 0)
		return sdk_fail(err, SDK_EIO, "cannot open %s: %s", path, strerror(errno));
	int rc = fsync(fd) < 0 ? sdk_fail(err, errno == ENOSPC ? SDK_EFULL : SDK_EIO,
					  "cannot fsync %s: %s", path, strerror(errno))
			       : 0;
	close(fd);
	return rc;
}

static int fsync_dir_of(const char *path, sdk_err *err)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	if (!slash)
		return fsync_path(".", O_RDONLY | O_DIRECTORY, err);
	snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
	return fsync_path(*dir ? dir : "/", O_RDONLY | O_DIRECTORY, err);
}

/* The whole file as it is now, through the online backup API (a
 * consistent copy, the -wal included), written to COPY.tmp, fsynced and
 * renamed to COPY: a copy that exists is always complete. Mode 0600 like
 * the file. */
static int copy_aside(sqlite3 *db, const char *copy, sdk_err *err)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof tmp, "%s.tmp", copy) >= (int)sizeof tmp)
		return sdk_fail(err, SDK_EINVAL, "path too long: %s", copy);
	unlink(tmp); /* a copy an earlier attempt did not finish */
	int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, SDK_DB_FILE_MODE);
	if (fd < 0)
		return sdk_fail(err, errno == ENOSPC ? SDK_EFULL : SDK_EIO, "cannot create %s: %s",
				tmp, strerror(errno));
	close(fd);
	sqlite3 *dst = NULL;
	int rc = 0;
	if (sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		rc = dst ? sdk_db_fail(dst, err, tmp) : sdk_fail(err, SDK_EIO, "out of memory");
	} else {
		sqlite3_backup *b = sqlite3_backup_init(dst, "main", db, "main");
		if (!b) {
			rc = sdk_db_fail(dst, err, "copying the file aside");
		} else {
			int s = sqlite3_backup_step(b, -1);
			sqlite3_backup_finish(b);
			if (s != SQLITE_DONE)
				rc = sdk_fail(err, sdk_status_of_sqlite(s) < 0 ? sdk_status_of_sqlite(s)
									      : SDK_EIO,
					      "copying %s aside: %s", tmp, sqlite3_errstr(s));
		}
	}
	/* The last connection to the copy closes: SQLite folds its -wal in. */
	sqlite3_close(dst);
	if (!rc)
		rc = fsync_path(tmp, O_RDONLY, err);
	if (!rc && rename(tmp, copy) < 0)
		rc = sdk_fail(err, SDK_EIO, "cannot rename %s: %s", tmp, strerror(errno));
	if (!rc)
		rc = fsync_dir_of(copy, err);
	if (rc)
		unlink(tmp);
	return rc;
}

/* True when the file holds no table, index, view or trigger yet. */
static int is_empty(sqlite3 *db, bool *out, sdk_err *err)
{
	int64_t n = 0;
	int rc = sdk_db_count(db, "SELECT count(*) FROM sqlite_master", NULL, &n,
			      "reading the schema", err);
	*out = n == 0;
	return rc;
}

static int exec_in_tx(sqlite3 *db, const char *sql, sdk_err *err, const char *what)
{
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, what);
	return 0;
}

static void rollback(sqlite3 *db)
{
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

/* One step: BEGIN IMMEDIATE; the step; user_version = to; COMMIT. */
static int run_step(sqlite3 *db, const sdk_mig_step *s, int to, sdk_err *err)
{
	int rc = exec_in_tx(db, "BEGIN IMMEDIATE", err, "BEGIN");
	if (rc < 0)
		return rc;
	if (s && s->sql)
		rc = exec_in_tx(db, s->sql, err, "SQL");
	if (!rc && s && s->fn) {
		rc = s->fn(db, err);
		if (rc > 0)
			rc = SDK_EIO; /* a step's contract is 0 or negative */
	}
	char pragma[48];
	snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", to);
	if (!rc)
		rc = exec_in_tx(db, pragma, err, "stamping the version");
	if (!rc)
		rc = exec_in_tx(db, "COMMIT", err, "COMMIT");
	if (rc)
		rollback(db);
	return rc;
}

static int check_def(const sdk_mig_def *def, sdk_err *err)
{
	if (!def || def->version < 1 || def->version > SDK_MIG_VERSION_MAX ||
	    (def->steps && def->n_steps != (size_t)def->version))
		return sdk_fail(err, SDK_EINVAL,
				"%s: bad schema declaration (version %d, %zu steps)",
				def && def->store ? def->store : "?", def ? def->version : 0,
				def ? def->n_steps : 0);
	return 0;
}

/* Under the write lock: the version read and the stamp of a new file
 * cannot interleave with another process doing the same. */
static int stamp_if_new(sqlite3 *db, const sdk_mig_def *def, int *version, bool *created,
			sdk_err *err)
{
	*created = false;
	int rc = exec_in_tx(db, "BEGIN IMMEDIATE", err, "BEGIN");
	if (rc < 0)
		return rc;
	bool empty = false;
	rc = sdk_mig_version(db, version, err);
	if (!rc && *version == 0)
		rc = is_empty(db, &empty, err);
	if (!rc && empty) {
		char pragma[48];
		snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", def->version);
		rc = exec_in_tx(db, pragma, err, "stamping the version");
		if (!rc) {
			*version = def->version;
			*created = true;
		}
	}
	if (!rc)
		rc = exec_in_tx(db, "COMMIT", err, "COMMIT");
	if (rc)
		rollback(db);
	return rc;
}

/* The file is at its current version, so every step succeeded: a copy
 * left by a run killed between its last COMMIT and the removal (a ready
 * timeout, a power cut) is not needed any more. */
static void remove_stale_copies(const char *path, int version)
{
	bool removed = false;
	for (int v = 0; v < version; v++) {
		char copy[PATH_MAX], tmp[PATH_MAX + 8];
		if (snprintf(copy, sizeof copy, "%s.pre-v%d", path, v) >= (int)sizeof copy)
			return;
		snprintf(tmp, sizeof tmp, "%s.tmp", copy);
		if (unlink(copy) == 0) {
			sdk_info("%s is at version %d: removed %s, left by an interrupted "
				 "migration",
				 path, version, copy);
			removed = true;
		}
		removed |= unlink(tmp) == 0;
	}
	if (removed)
		fsync_dir_of(path, &(sdk_err){ "" });
}

int sdk_mig_run(sqlite3 *db, const sdk_mig_def *def, sdk_mig_report *report, sdk_err *err)
{
	sdk_mig_report r = { 0 };
	int rc = check_def(def, err);
	if (rc < 0)
		return rc;
	const char *file = sqlite3_db_filename(db, "main");
	bool on_disk = file && *file; /* in memory: nothing to copy */
	const char *path = on_disk ? file : def->store;
	int version = 0;
	/* Every start but the first and an upgrade: the file is at this
	 * version already, which a read says without the write lock that
	 * stamping a new file needs (a kernel taking over after a crash is
	 * waiting on this). */
	if (sdk_mig_version(db, &version, &(sdk_err){ "" }) == 0 && version == def->version &&
	    version > 0) {
		r.from = r.to = version;
		if (report)
			*report = r;
		if (on_disk)
			remove_stale_copies(path, version);
		return 0;
	}
	version = 0;
	rc = stamp_if_new(db, def, &version, &r.created, err);
	if (rc < 0)
		return rc;
	r.from = r.to = version;
	if (report)
		*report = r;
	if (version < 0 || version > def->version)
		return sdk_mig_refuse_newer(err, path, version, def->version);
	if (version == def->version) {
		if (on_disk)
			remove_stale_copies(path, version);
		return 0;
	}

	char copy[PATH_MAX];
	if (snprintf(copy, sizeof copy, "%s.pre-v%d", path, version) >= (int)sizeof copy)
		return sdk_fail(err, SDK_EINVAL, "path too long: %s", path);
	if (on_disk) {
		rc = copy_aside(db, copy, err);
		if (rc < 0)
			return rc;
	}
	for (int v = version; v < def->version; v++) {
		const sdk_mig_step *s = def->steps ? &def->steps[v] : NULL;
		sdk_err why = { "" };
		rc = run_step(db, s, v + 1, &why);
		if (rc < 0) {
			if (report)
				*report = r;
			return sdk_fail(err, rc,
					"%s: migration %d->%d%s%s failed: %s; the file stays at "
					"version %d, the file as it was is kept as %s",
					path, v, v + 1, s && s->what ? " " : "",
					s && s->what ? s->what : "", why.msg, v,
					on_disk ? base_name(copy) : "(none: in memory)");
		}
		r.to = v + 1;
		r.steps++;
	}
	if (report)
		*report = r;
	if (on_disk) {
		if (unlink(copy) < 0)
			sdk_warn("%s: migrated to version %d, but cannot remove %s: %s", path,
				 def->version, copy, strerror(errno));
		else
			fsync_dir_of(copy, &(sdk_err){ "" });
	}
	return 0;
}
