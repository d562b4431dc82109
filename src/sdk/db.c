#include "sdk/db.h"

#include <limits.h>
#include <stdio.h>

int sdk_db_exec(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK)
		return 0;
	snprintf(err, errlen, "%s", msg ? msg : sqlite3_errmsg(db));
	sqlite3_free(msg);
	return -1;
}

int sdk_db_open(const char *data_dir, const char *name, sqlite3 **out, char *err,
		size_t errlen)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof path, "%s/%s.db", data_dir, name) >= (int)sizeof path) {
		snprintf(err, errlen, "database path too long");
		return -1;
	}
	sqlite3 *db = NULL;
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
	if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return -1;
	}
	sqlite3_busy_timeout(db, SDK_DB_BUSY_TIMEOUT_MS);
	sqlite3_extended_result_codes(db, 1);
	/* WAL with synchronous=NORMAL survives a process crash with nothing lost;
	 * only a power cut can drop the last transactions, never corrupt. */
	if (sdk_db_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
			    "PRAGMA foreign_keys=ON;",
			err, errlen) < 0) {
		sqlite3_close(db);
		return -1;
	}
	*out = db;
	return 0;
}
