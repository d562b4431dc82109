/* The compliance kernel's SQLite tables: profiles (the default one is
 * shipped in the binary and written at first start), scans with their
 * results and where the immutable log put them, waivers, and small
 * settings (the scan interval). Calls return 0 or a negative sdk_status
 * with the reason in err (may be NULL). */
#ifndef GRACE_COMPLIANCE_STORE_H
#define GRACE_COMPLIANCE_STORE_H

#include "kernels/layer.h"

#include "sdk/err.h"
#include "sdk/migrate.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdint.h>

/* The store's schema version and its steps, declared in compliance_kernel:
 * a change is a new step and a new fixture directory (docs/upgrades.md). */
#define CMP_SCHEMA_VERSION 2
extern const sdk_mig_step cmp_migrations[CMP_SCHEMA_VERSION];

int cmp_store_init(sqlite3 *db, sdk_err *err);

/* Profiles: `body` a checked profile. */
int cmp_profile_put(sqlite3 *db, const char *name, const json_t *body, int64_t now_ms,
		    sdk_err *err);
/* *out: a new profile object; SDK_ENOTFOUND when none. */
int cmp_profile_get(sqlite3 *db, const char *name, json_t **out, sdk_err *err);
int cmp_profile_list(sqlite3 *db, json_t **out, sdk_err *err);
int cmp_profile_delete(sqlite3 *db, const char *name, sdk_err *err);

/* Scans: `scan` has uuid, report_uuid, profile, profile_title,
 * profile_version, trigger, started_ms, ended_ms, results and record (the
 * text appended to the log); *id gets its id. Keeps the newest `keep`. */
int cmp_scan_insert(sqlite3 *db, const json_t *scan, const char *record, unsigned keep,
		    int64_t *id, sdk_err *err);
int cmp_scan_set_logged(sqlite3 *db, int64_t id, int64_t index, const char *leaf_hash,
			sdk_err *err);
/* id 0: the newest. *out: the scan with its results; SDK_ENOTFOUND. */
int cmp_scan_get(sqlite3 *db, int64_t id, json_t **out, sdk_err *err);
/* The newest scans (summaries, newest first), at most `limit`, before
 * `before_id` (0: no bound). */
int cmp_scan_list(sqlite3 *db, unsigned limit, int64_t before_id, json_t **out, sdk_err *err);
/* The newest scan of `profile` before `before_id` (its results), or
 * SDK_ENOTFOUND. */
int cmp_scan_previous(sqlite3 *db, const char *profile, int64_t before_id, json_t **out,
		      sdk_err *err);
/* The oldest scan not yet in the log: *id and *record (malloc'd), or
 * SDK_ENOTFOUND. */
int cmp_scan_unlogged(sqlite3 *db, int64_t *id, char **record, sdk_err *err);
/* The time the newest scan started (0 when none). */
int64_t cmp_scan_last_ms(sqlite3 *db);

/* Waivers: each one taken when its change request in governance was
 * approved; the approvals it had are kept as its evidence. */
typedef struct cmp_waiver_new {
	const char *control_id, *reason;
	const char *approver;     /* who approved ("a, b" when several) */
	const char *requested_by; /* may be NULL */
	int64_t created_ms, expires_ms;
	int64_t change_request;   /* 0: none */
	const json_t *approvals;  /* may be NULL */
} cmp_waiver_new;

/* SDK_ECONFLICT when the change request has its waiver already. */
int cmp_waiver_insert(sqlite3 *db, const cmp_waiver_new *w, int64_t *id, sdk_err *err);
/* The waiver a change request made; SDK_ENOTFOUND when none. */
int cmp_waiver_of_request(sqlite3 *db, int64_t change_request, json_t **out, sdk_err *err);
/* All waivers (expired ones too), oldest first: {id, control_id, reason,
 * approver, requested_by, created_ms, expires_ms, change_request,
 * approvals}. */
int cmp_waiver_list(sqlite3 *db, json_t **out, sdk_err *err);
int cmp_waiver_delete(sqlite3 *db, int64_t id, sdk_err *err);

/* Settings: an integer by name; `def` when unset. */
int64_t cmp_setting_get(sqlite3 *db, const char *name, int64_t def);
int cmp_setting_set(sqlite3 *db, const char *name, int64_t value, sdk_err *err);

#endif
