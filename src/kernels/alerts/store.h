/* What the alerts kernel keeps in DATA_DIR/alerts.db: rule files sent
 * through the API, the notifier's configuration when one was sent, the
 * silences and the notification log (so a restart neither forgets a
 * silence nor notifies again what was already notified). Each write is
 * one small row in a WAL file. */
#ifndef GRACE_ALERTS_STORE_H
#define GRACE_ALERTS_STORE_H

#include "kernels/layer.h"

#include "sdk/err.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

int as_init(sqlite3 *db, sdk_err *err);

/* Rule files: [{"name","yaml","paused"}] */
int as_rule_files(sqlite3 *db, json_t **out, sdk_err *err);
int as_rule_file_put(sqlite3 *db, const char *name, const char *yaml, bool paused, int64_t now_ms,
		     sdk_err *err);
/* SDK_ENOTFOUND when there is none. */
int as_rule_file_delete(sqlite3 *db, const char *name, sdk_err *err);

/* The notifier's configuration ("" when none was sent). *out malloc'd. */
int as_notifier_get(sqlite3 *db, char **out, sdk_err *err);
int as_notifier_put(sqlite3 *db, const char *yaml, sdk_err *err);

/* Silences, log entries and the notifier's alerts ("state", key
 * "alerts") as JSON documents by id or key. */
int as_doc_put(sqlite3 *db, const char *table, const char *key, const json_t *doc, sdk_err *err);
int as_doc_delete(sqlite3 *db, const char *table, const char *key, sdk_err *err);
/* {key: doc, ...} */
int as_docs(sqlite3 *db, const char *table, json_t **out, sdk_err *err);

#endif
