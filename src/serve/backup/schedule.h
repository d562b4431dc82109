/* Scheduled backups ([backup] in grace.ini, docs/backup.md): grace serve
 * makes the same archive as `grace backup` at the times of a cron schedule,
 * writes it into a directory of its own (through NAME.tmp, then renamed),
 * proves it by restoring it into a temporary directory with `grace restore`
 * (every hash, each kernel started on it, the log against the manifest's
 * tree head), records the outcome beside it (NAME.json), and removes the
 * oldest past `keep` and `max_age_days`. One at a time: a fire that comes
 * while one runs is skipped and logged.
 *
 * The schedule is read by the scheduler kernel's cron code (the same
 * syntax and daylight-saving rules), in this process: a backup is grace
 * serve's own action, and must not wait on a kernel being up. */
#ifndef GRACE_BACKUP_SCHEDULE_H
#define GRACE_BACKUP_SCHEDULE_H

#include "serve/layer.h"

#include "sdk/err.h"
#include "serve/api/api.h"

#include <jansson.h>

typedef struct bk_schedule bk_schedule;

/* Whether the configured schedule and zone can be read: 0, or SDK_EINVAL
 * with the reason in err. grace serve asks before it binds anything. */
int bks_check(const grace_backup *b, sdk_err *err);

/* NULL with err->msg empty when no schedule is configured; NULL with the
 * reason in err when one is but cannot start (a bad cron expression, an
 * unknown zone). self_exe runs `grace restore`. err must not be NULL. */
bk_schedule *bks_new(api_ctx *api, const char *self_exe, sdk_err *err);
/* Waits for a backup under way. */
void bks_free(bk_schedule *s);

/* Starts one now (as a fire would): 0, or SDK_ECONFLICT while one runs. */
int bks_run_now(bk_schedule *s, sdk_err *err);
/* {schedule, timezone, dir, keep, max_age_days, verify, next_at, running,
 * archives: [the sidecars, newest first]}; new reference. */
json_t *bks_status(bk_schedule *s);

#endif
