/* The guardian's record of kernel state changes, kept in the main
 * process's SQLite file with bounded retention. */
#ifndef GRACE_GUARDIAN_EVENTS_H
#define GRACE_GUARDIAN_EVENTS_H

#include "serve/layer.h"

#include <jansson.h>
#include "sdk/err.h"

#include <sqlite3.h>
#include <stdint.h>

#define GD_EVENTS_KEEP 10000 /* newest rows kept */
#define GD_EVENTS_PAGE_MAX 1000

int gd_events_init(sqlite3 *db, sdk_err *err);
/* Appends one change; returns 0 or -1. */
int gd_events_add(sqlite3 *db, int64_t ts_ms, const char *kernel, const char *from,
		  const char *to, const char *reason);
/* Events with ts_ms >= since_ms (and of `kernel` when not NULL), oldest
 * first, at most `limit`: a new JSON array, or NULL on a storage error. */
json_t *gd_events_list(sqlite3 *db, int64_t since_ms, const char *kernel, unsigned limit);

#endif
