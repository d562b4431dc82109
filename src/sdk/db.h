/* Every kernel's state lives in DATA_DIR/NAME.db, opened here and only here so
 * that all of them get the same journal mode, timeouts and safety settings. */
#ifndef GRACE_SDK_DB_H
#define GRACE_SDK_DB_H

#include <sqlite3.h>
#include <stddef.h>

#define SDK_DB_BUSY_TIMEOUT_MS 5000

/* Opens (creating) DATA_DIR/NAME.db in WAL mode. On success *out is a handle
 * the caller closes with sqlite3_close; on failure returns -1 and writes the
 * reason into `err`. */
int sdk_db_open(const char *data_dir, const char *name, sqlite3 **out, char *err,
		size_t errlen);

/* Runs a script of statements that return no rows; -1 with the reason on error. */
int sdk_db_exec(sqlite3 *db, const char *sql, char *err, size_t errlen);

#endif
