/* Every SQLite file Grace keeps (each kernel's DATA_DIR/NAME.db, and the
 * main process's grace.db, chat.db and memory.db) is opened here and only
 * here, so that all of them get the same file mode (0600), journal mode,
 * timeouts, safety settings and integrity check at open. */
#ifndef GRACE_SDK_DB_H
#define GRACE_SDK_DB_H

#include "sdk/err.h"

#include <limits.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define SDK_DB_BUSY_TIMEOUT_MS 5000
/* Owner only: the files hold password hashes, sealed keys, the audit trail. */
#define SDK_DB_FILE_MODE 0600

/* PRAGMA quick_check at open reads the whole file once: 0.47 s for a
 * 283 MB database in the page cache on an idle machine, 1.3 to 1.8 s with
 * both CPUs busy (docs/errors.md). */
typedef struct sdk_db_check {
	unsigned budget_ms; /* in: the longest it may run; 0: no limit */
	bool skip;          /* in: no check (a pool's further connections to a
			     * file its first one checked) */
	double ms;          /* out: how long it ran */
	bool complete;      /* out: false when the budget cut it short (not checked) */
} sdk_db_check;

/* Opens (creating, mode 0600) DATA_DIR/NAME.db in WAL mode and runs PRAGMA
 * quick_check on it. `check` may be NULL (no budget). Returns 0 with a
 * handle in *out that the caller closes with sqlite3_close, or a negative
 * sdk_status with the reason in `err`: SDK_ECORRUPT when the file is not a
 * database or the check finds damage (the reason holds its first findings),
 * SDK_EFULL, SDK_EBUSY, SDK_EIO. An existing file with looser permissions,
 * and its -wal and -shm, are narrowed to 0600. */
int sdk_db_open_checked(const char *data_dir, const char *name, sdk_db_check *check,
			sqlite3 **out, sdk_err *err);

/* sdk_db_open_checked without a budget. */
int sdk_db_open(const char *data_dir, const char *name, sqlite3 **out, sdk_err *err);

/* Runs a script of statements that return no rows: 0, or the status of
 * SQLite's failure (as sdk_db_fail: never 0) with SQLite's message in
 * `err` (may be NULL). */
int sdk_db_exec(sqlite3 *db, const char *sql, sdk_err *err);

/* Called as each statement of a database opened here starts (`end`
 * false) and ends (true), with the statement (an identity only) and its
 * SQL, on the thread that runs it (SQLite's statement and profile
 * traces): the tracer's way to a span per statement (sdk/tracer.c sets
 * it). At the end, `failed` is the SQLite code it aborted with (known from
 * SQLite's log: see sdk_db_log_note), 0 when it did not. NULL: none. */
typedef void (*sdk_db_stmt_hook)(bool end, const void *stmt, const char *sql, int failed);
void sdk_db_set_stmt_hook(sdk_db_stmt_hook hook);

/* SQLite tells that a statement failed only in its error log (a process
 * has one, set before SQLite starts): whichever callback a process
 * installs passes each line here, so the statement hook above learns of
 * the failure (a constraint, an I/O error, corruption; not SQLITE_BUSY,
 * which SQLite does not log). Thread-safe: it notes the code for this
 * thread's running statement only. */
void sdk_db_log_note(int code, const char *msg);
/* Before SQLite's first use in a process: no memory statistics. With
 * them (SQLite's default) every sqlite3_malloc and sqlite3_free takes one
 * mutex for the whole process, which the librarian's search threads
 * fought over: 7 % of a search's CPU in that mutex and its futex calls
 * (perf, 16 clients). Grace reads none of those statistics. Ignored
 * once SQLite has started. */
void sdk_db_no_memstatus(void);

/* For a process with no log callback of its own: installs one that only
 * does the above. Call it before the first SQLite use; -1 when SQLite
 * has started already (then failed statements are not told apart). */
int sdk_db_log_install(void);

/* The status of `db`'s last failure (sdk_status_of_sqlite of its extended
 * code; never 0: a failure with no code is SDK_EIO), with "what: SQLite's
 * message" written into `err`. Every store reports its SQLite failures
 * through this, so SQLITE_FULL is SDK_EFULL everywhere. */
int sdk_db_fail(sqlite3 *db, sdk_err *err, const char *what);

/* sqlite3_prepare_v2 reported as sdk_db_fail does: 0, or the status. */
int sdk_db_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, sdk_err *err);
/* A text column, "" for NULL (never NULL); valid until the next step. */
const char *sdk_db_text(sqlite3_stmt *st, int col);
/* The one integer a query like "SELECT count(*) ... WHERE x = ?" answers,
 * with `arg` bound to its first parameter when not NULL. `what` names it
 * in the error. */
int sdk_db_count(sqlite3 *db, const char *sql, const char *arg, int64_t *out, const char *what,
		 sdk_err *err);

/* The directory holding `db`'s main file (where sdk_db_open put it). */
int sdk_db_dir(sqlite3 *db, char *out, size_t len);

/* Watches that the files an open handle writes to are still the ones its
 * path names. A database file deleted, renamed or replaced while open goes
 * on taking commits that no later open will see: a restart loses them. */
typedef struct sdk_db_watch {
	char wal_path[PATH_MAX];
	bool wal_seen;
	dev_t wal_dev;
	ino_t wal_ino;
} sdk_db_watch;

void sdk_db_watch_init(sdk_db_watch *w, sqlite3 *db);
/* 0 while the main file (the one SQLite holds open: SQLITE_FCNTL_HAS_MOVED
 * compares its inode with the path's) and the -wal are where they were;
 * SDK_ECORRUPT with the reason once one is gone or replaced. One stat(2)
 * each: cheap enough for every request. */
int sdk_db_watch_check(sdk_db_watch *w, sqlite3 *db, sdk_err *err);

#endif
