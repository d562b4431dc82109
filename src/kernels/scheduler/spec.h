/* A scheduler job as its creator writes it: checked whole, field by field,
 * before anything is stored (each refusal names its field). Pure: no I/O
 * beyond reading the time zone, so it is unit-tested on its own. */
#ifndef GRACE_SCHEDULER_SPEC_H
#define GRACE_SCHEDULER_SPEC_H

#include "kernels/layer.h"

#include "kernels/scheduler/cron.h"
#include "kernels/scheduler/tz.h"
#include "sdk/err.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define SCH_NAME_MAX 128
#define SCH_FIELD_MAX 64         /* a field's name in an error */
#define SCH_TARGET_MAX (64u << 10) /* the target's JSON text */
#define SCH_MISSED_MAX_LIMIT 1000  /* runs of one catch-up */
#define SCH_DEADLINE_MAX_S (366u * 86400)
#define SCH_JITTER_MAX_S 86400
#define SCH_PATH_MAX 1024
#define SCH_WF_NAME_MAX 64 /* a workflow definition's name or version (the workflow kernel's) */
#define SCH_CALL_TIMEOUT_MIN_MS 100
#define SCH_CALL_TIMEOUT_MAX_MS 60000
#define SCH_CALL_TIMEOUT_DEFAULT_MS 10000

typedef enum {
	SCH_TARGET_EXECUTOR,
	SCH_TARGET_BUS,
	SCH_TARGET_ROUTE,
	SCH_TARGET_WORKFLOW,
} sch_target_type;
typedef enum { SCH_MISSED_SKIP, SCH_MISSED_RUN_ONCE, SCH_MISSED_RUN_ALL } sch_missed;
typedef enum { SCH_OVERLAP_ALLOW, SCH_OVERLAP_FORBID, SCH_OVERLAP_REPLACE } sch_overlap;

/* Who made a job, as the kernel that received the request knows it. */
typedef enum { SCH_ROLE_USER, SCH_ROLE_ADMIN, SCH_ROLE_KERNEL } sch_role;

typedef struct sch_spec {
	char name[SCH_NAME_MAX + 1];
	char schedule[CRON_TEXT_MAX + 1];
	char timezone[TZ_NAME_MAX + 1];
	cron_expr cron;
	json_t *target; /* owned: the target object as checked (defaults filled in) */
	sch_target_type target_type;
	bool idempotent;    /* a resend after a crash is recognised by the target */
	sch_missed missed;
	unsigned missed_max; /* run_all: at most this many late slots run */
	int64_t deadline_ms; /* a slot later than this never runs; -1: no deadline */
	sch_overlap overlap;
	int64_t jitter_ms;
	bool paused;
} sch_spec;

/* What the checker may need from the running kernel: whether a kernel by
 * that name is configured (route targets), and the zone directory. */
typedef struct sch_spec_env {
	bool (*kernel_exists)(const char *name, void *arg);
	void *arg;
	const char *tz_dir; /* NULL: the system's */
	/* True: the role table decides who may make which target (users: bus
	 * and workflow targets only), as without a policy kernel; false: the
	 * policy kernel does, when the job is created and each time it fires. */
	bool role_table;
} sch_spec_env;

/* Checks `body` into `out` (free with sch_spec_free). SDK_EINVAL with the
 * reason in err and the offending field's name in `field` (a JSON path
 * like "target.subject"); SDK_EDENIED when the creator's role may not
 * create such a target (users: bus targets only). */
int sch_spec_parse(json_t *body, sch_role role, const sch_spec_env *env, sch_spec *out,
		   char field[SCH_FIELD_MAX], sdk_err *err);
void sch_spec_free(sch_spec *s);

const char *sch_target_type_name(sch_target_type t);
const char *sch_missed_name(sch_missed m);
const char *sch_overlap_name(sch_overlap o);
const char *sch_role_name(sch_role r);
int sch_role_parse(const char *s, sch_role *out);
int sch_missed_parse(const char *s, sch_missed *out);
int sch_overlap_parse(const char *s, sch_overlap *out);

#endif
