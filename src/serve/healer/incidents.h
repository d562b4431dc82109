/* Heal incidents, kept in the main process's SQLite file: they survive a
 * restart of Grace and feed the per-playbook statistics. */
#ifndef GRACE_HEALER_INCIDENTS_H
#define GRACE_HEALER_INCIDENTS_H

#include "serve/layer.h"

#include <jansson.h>
#include "sdk/err.h"

#include <sqlite3.h>
#include <stdint.h>

#define HL_INCIDENTS_KEEP 10000
#define HL_INCIDENTS_PAGE_MAX 500

int hl_incidents_init(sqlite3 *db, sdk_err *err);
/* Inserts a running incident; returns its id, or -1. */
int64_t hl_incident_begin(sqlite3 *db, int64_t started_ms, const char *component,
			  const char *trigger);
/* Stores the finished incident (its JSON is kept whole). */
int hl_incident_end(sqlite3 *db, int64_t id, json_t *incident);
/* NULL when there is none: a new reference otherwise. */
json_t *hl_incident_get(sqlite3 *db, int64_t id);
/* Newest first; component/outcome may be NULL. A new array or NULL. */
json_t *hl_incident_list(sqlite3 *db, const char *component, const char *outcome,
			 int64_t before_id, unsigned limit);
/* {"playbooks":{NAME:{"runs","healed","failed","refused","success_rate","median_ms"}}} */
json_t *hl_incident_stats(sqlite3 *db);

#endif
