#include "sdk/db.h"

#include "sdk/tracer.h"

#include "sdk/clock.h"

#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* VM steps between two looks at the clock while quick_check runs. */
#define CHECK_PROGRESS_STEPS 10000
/* Findings of a failed quick_check kept in the reason. */
#define CHECK_FINDINGS_MAX 3

int sdk_db_exec(sqlite3 *db, const char *sql, sdk_err *err)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (rc == SQLITE_OK)
		return 0;
	int status = sdk_status_of_sqlite(sqlite3_extended_errcode(db));
	if (status == SDK_OK)
		status = sdk_status_of_sqlite(rc);
	sdk_fail(err, status < 0 ? status : SDK_EIO, "%s", msg ? msg : sqlite3_errmsg(db));
	sqlite3_free(msg);
	return status < 0 ? status : SDK_EIO;
}

int sdk_db_fail(sqlite3 *db, sdk_err *err, const char *what)
{
	int status = sdk_status_of_sqlite(sqlite3_extended_errcode(db));
	return sdk_fail(err, status < 0 ? status : SDK_EIO, "%s: %s", what, sqlite3_errmsg(db));
}

static int errno_status(int e)
{
	return e == ENOSPC || e == EDQUOT ? SDK_EFULL : SDK_EIO;
}

/* The file is created by us with 0600 before SQLite opens it, so it is
 * never readable by others, not even empty for a moment (SQLite would make
 * it 0644 less the umask). SQLite gives a new -wal and -shm the mode of
 * the database file. Files left looser by an older Grace are narrowed.
 *
 * A file is opened (and closed) here only when O_EXCL created it: closing
 * a descriptor drops every POSIX lock this process holds on the file, so
 * one SQLite may already have open must never be opened and closed. */
static int db_file_prepare(const char *path, sdk_err *err)
{
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, SDK_DB_FILE_MODE);
	if (fd >= 0) {
		close(fd);
		return 0;
	}
	if (errno != EEXIST)
		return sdk_fail(err, errno_status(errno), "cannot create %s: %s", path,
				strerror(errno));
	static const char *const suffixes[] = { "", "-wal", "-shm" };
	for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
		char p[PATH_MAX];
		struct stat st;
		if (snprintf(p, sizeof p, "%s%s", path, suffixes[i]) >= (int)sizeof p ||
		    stat(p, &st) < 0 || (st.st_mode & 077) == 0 || st.st_uid != geteuid())
			continue;
		if (chmod(p, st.st_mode & 0700) < 0)
			return sdk_fail(err, SDK_EIO, "cannot narrow %s to mode 0600: %s", p,
					strerror(errno));
	}
	return 0;
}

static int on_check_progress(void *arg)
{
	return sdk_mono_ms() > *(const int64_t *)arg;
}

/* PRAGMA quick_check: every page, cell and free list is sound (integrity_check
 * also matches indexes with their tables, six times slower). */
static int db_quick_check(sqlite3 *db, const char *path, sdk_db_check *check, sdk_err *err)
{
	int64_t t0 = sdk_mono_ms(), deadline = 0;
	if (check && check->budget_ms) {
		deadline = t0 + check->budget_ms;
		sqlite3_progress_handler(db, CHECK_PROGRESS_STEPS, on_check_progress, &deadline);
	}
	sqlite3_stmt *st;
	char found[sizeof err->msg] = "";
	size_t n = 0, used = 0;
	char sql[32];
	snprintf(sql, sizeof sql, "PRAGMA quick_check(%d)", CHECK_FINDINGS_MAX);
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK) {
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			const char *row = (const char *)sqlite3_column_text(st, 0);
			if (!row || !strcmp(row, "ok"))
				continue;
			int w = snprintf(found + used, sizeof found - used, "%s%s", n++ ? "; " : "",
					 row);
			if (w > 0 && (size_t)w < sizeof found - used)
				used += (size_t)w;
			for (char *c = found; *c; c++)
				if (*c == '\n')
					*c = ' '; /* one log line */
		}
		sqlite3_finalize(st);
	}
	sqlite3_progress_handler(db, 0, NULL, NULL);
	if (check) {
		check->ms = (double)(sdk_mono_ms() - t0);
		check->complete = rc == SQLITE_DONE;
	}
	if ((rc & 0xff) == SQLITE_INTERRUPT && deadline)
		return 0; /* cut short: not known to be damaged */
	if (rc != SQLITE_DONE) {
		int status = sdk_status_of_sqlite(sqlite3_extended_errcode(db));
		return sdk_fail(err, status < 0 ? status : SDK_EIO, "%s: quick_check: %s", path,
				sqlite3_errmsg(db));
	}
	if (n)
		return sdk_fail(err, SDK_ECORRUPT, "%s is damaged (quick_check: %s)", path, found);
	return 0;
}

/* Statements seen by tracing (sdk_db_set_stmt_hook): SQLite calls this
 * as each statement starts and as it ends. Without a hook (a process that
 * does not trace) it costs this one test. */
static _Atomic(sdk_db_stmt_hook) stmt_hook; /* set on the loop, read by pool threads too */
/* The code SQLite's log gave the statement running on this thread when
 * it aborted (sdk_db_log_note), 0 while none did: SQLite says a statement
 * failed nowhere else by the time its profile trace comes (sqlite3_step
 * sets the connection's code after it), and its log comes just before. */
static _Thread_local int stmt_failed;

void sdk_db_set_stmt_hook(sdk_db_stmt_hook hook)
{
	atomic_store_explicit(&stmt_hook, hook, memory_order_relaxed);
}

void sdk_db_log_note(int code, const char *msg)
{
	/* What the VM logs as it gives a statement up: a constraint's halt
	 * ("abort at", "constraint failed at") or any other error. Notices
	 * and warnings (an automatic index, a recovered WAL) are not. */
	static const char *const aborts[] = { "abort at ", "constraint failed at ",
					      "statement aborts at " };
	if (!msg || !code || (code & 0xff) == SQLITE_NOTICE || (code & 0xff) == SQLITE_WARNING)
		return;
	for (size_t i = 0; i < sizeof aborts / sizeof *aborts; i++)
		if (!strncmp(msg, aborts[i], strlen(aborts[i]))) {
			stmt_failed = code;
			return;
		}
}

static void on_log(void *arg, int code, const char *msg)
{
	(void)arg;
	sdk_db_log_note(code, msg);
}

void sdk_db_no_memstatus(void)
{
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

int sdk_db_log_install(void)
{
	return sqlite3_config(SQLITE_CONFIG_LOG, on_log, NULL) == SQLITE_OK ? 0 : -1;
}

static int db_on_trace(unsigned type, void *ctx, void *p, void *x)
{
	(void)ctx, (void)x;
	sdk_db_stmt_hook hook = atomic_load_explicit(&stmt_hook, memory_order_relaxed);
	if (!hook || (type != SQLITE_TRACE_STMT && type != SQLITE_TRACE_PROFILE))
		return 0;
	bool end = type == SQLITE_TRACE_PROFILE;
	int failed = end ? stmt_failed : 0;
	stmt_failed = 0;
	hook(end, p, sqlite3_sql(p), failed);
	return 0;
}

int sdk_db_open_checked(const char *data_dir, const char *name, sdk_db_check *check,
			sqlite3 **out, sdk_err *err)
{
	char path[PATH_MAX];
	*out = NULL;
	if (check) {
		check->ms = 0;
		check->complete = check->skip;
	}
	if (snprintf(path, sizeof path, "%s/%s.db", data_dir, name) >= (int)sizeof path)
		return sdk_fail(err, SDK_EINVAL, "database path too long");
	int rc = db_file_prepare(path, err);
	if (rc < 0)
		return rc;
	sqlite3 *db = NULL;
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
	if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
		rc = db ? sdk_db_fail(db, err, path) : sdk_fail(err, SDK_EIO, "out of memory");
		sqlite3_close(db);
		return rc;
	}
	sqlite3_busy_timeout(db, SDK_DB_BUSY_TIMEOUT_MS);
	sqlite3_extended_result_codes(db, 1);
	sqlite3_trace_v2(db, SQLITE_TRACE_STMT | SQLITE_TRACE_PROFILE, db_on_trace, NULL);
	/* WAL with synchronous=NORMAL survives a process crash with nothing lost;
	 * only a power cut can drop the last transactions, never corrupt. A
	 * file that is not a database fails here (SQLITE_NOTADB). */
	if (sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
			     "PRAGMA foreign_keys=ON;",
			 NULL, NULL, NULL) != SQLITE_OK) {
		rc = sdk_db_fail(db, err, path);
		sqlite3_close(db);
		return rc;
	}
	rc = check && check->skip ? 0 : db_quick_check(db, path, check, err);
	if (rc < 0) {
		sqlite3_close(db);
		return rc;
	}
	*out = db;
	return 0;
}

int sdk_db_open(const char *data_dir, const char *name, sqlite3 **out, sdk_err *err)
{
	return sdk_db_open_checked(data_dir, name, NULL, out, err);
}

int sdk_db_dir(sqlite3 *db, char *out, size_t len)
{
	const char *path = sqlite3_db_filename(db, "main");
	const char *slash = path ? strrchr(path, '/') : NULL;
	if (!slash || (size_t)(slash - path) >= len)
		return -1;
	memcpy(out, path, (size_t)(slash - path));
	out[slash - path] = '\0';
	return 0;
}

void sdk_db_watch_init(sdk_db_watch *w, sqlite3 *db)
{
	const char *path = sqlite3_db_filename(db, "main");
	struct stat st;
	*w = (sdk_db_watch){ .wal_seen = false };
	snprintf(w->wal_path, sizeof w->wal_path, "%s-wal", path ? path : "");
	if (path && *path && stat(w->wal_path, &st) == 0) {
		w->wal_seen = true;
		w->wal_dev = st.st_dev;
		w->wal_ino = st.st_ino;
	}
}

int sdk_db_watch_check(sdk_db_watch *w, sqlite3 *db, sdk_err *err)
{
	const char *path = sqlite3_db_filename(db, "main");
	if (!path || !*path)
		return 0; /* in memory */
	int moved = 0;
	struct stat st;
	if (sqlite3_file_control(db, "main", SQLITE_FCNTL_HAS_MOVED, &moved) == SQLITE_OK && moved)
		return sdk_fail(err, SDK_ECORRUPT,
				"%s was %s while open: what is written now goes to a file no "
				"restart will read",
				path, stat(path, &st) < 0 ? "deleted or renamed" : "replaced");
	/* SQLite keeps the -wal while any connection is open: it vanishing, or
	 * becoming another file, loses every commit not yet checkpointed. */
	if (stat(w->wal_path, &st) < 0) {
		if (errno == ENOENT && w->wal_seen)
			return sdk_fail(err, SDK_ECORRUPT,
					"%s was deleted while open: commits not yet copied into "
					"the database are lost at the next restart",
					w->wal_path);
		return 0;
	}
	if (!w->wal_seen) {
		w->wal_seen = true;
		w->wal_dev = st.st_dev;
		w->wal_ino = st.st_ino;
	} else if (st.st_dev != w->wal_dev || st.st_ino != w->wal_ino) {
		return sdk_fail(err, SDK_ECORRUPT,
				"%s was replaced while open: commits not yet copied into the "
				"database are lost at the next restart",
				w->wal_path);
	}
	return 0;
}

int sdk_db_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, sdk_err *err)
{
	if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, "prepare");
	return 0;
}

const char *sdk_db_text(sqlite3_stmt *st, int col)
{
	const char *s = (const char *)sqlite3_column_text(st, col);
	return s ? s : "";
}

int sdk_db_count(sqlite3 *db, const char *sql, const char *arg, int64_t *out, const char *what,
		 sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sdk_db_prepare(db, sql, &st, err);
	if (rc < 0)
		return rc;
	if (arg)
		sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		*out = sqlite3_column_int64(st, 0);
	else
		rc = sdk_db_fail(db, err, what);
	sqlite3_finalize(st);
	return rc;
}
