/* What a reload changes (pure: no I/O but reading the file, no clock).
 *
 * `grace reload` (SIGHUP, POST /reload) reads the configuration file again
 * and compares it with the one running, two ways: the loaded settings of
 * each kernel (grace_kernel_cfg, [defaults] folded in) and the file's raw
 * keys, section by section. From that comes a plan:
 *
 *   - a kernel whose supervision settings or own section ([NAME]) changed
 *     is restarted, one kernel at a time, so it reads the new file;
 *   - a kernel now disabled is stopped, one now enabled is started;
 *   - [grace] log_level is applied to the main process at once;
 *   - everything the main process reads only at its start (the API's port,
 *     the data directory, [limits], [auth], the set of kernels and their
 *     ports, ...) is reported as waiting for the next start of grace serve,
 *     key by key, and left as it is: a reload never half-applies them. */
#ifndef GRACE_SERVE_RELOAD_PLAN_H
#define GRACE_SERVE_RELOAD_PLAN_H

#include "serve/layer.h"

#include "sdk/config.h"
#include "sdk/err.h"

#include <stdbool.h>
#include <stddef.h>

/* One key of an INI file, as written (the value trimmed by inih). */
typedef struct rl_kv {
	char *section, *key, *value; /* owned, one allocation each */
	size_t order;                /* its place in the file */
} rl_kv;

/* A file's keys, sorted by section then key (a key given twice: the last). */
typedef struct rl_ini {
	rl_kv *kv; /* owned */
	size_t n, cap;
} rl_ini;

/* Reads path ("" gives no keys). 0, or SDK_EINVAL with the line in err. */
int rl_ini_read(const char *path, rl_ini *out, sdk_err *err);
void rl_ini_free(rl_ini *ini);

#define RL_LATER_MAX 64

enum rl_kernel_action { RL_KEEP, RL_RESTART, RL_STOP, RL_START };

typedef struct rl_plan {
	/* per kernel of the running configuration, by its index there */
	enum rl_kernel_action act[GRACE_KERNELS_MAX];
	int new_index[GRACE_KERNELS_MAX]; /* its index in the new one */
	size_t n_restart, n_stop, n_start;
	bool log_level; /* [grace] log_level changed: applied now */
	/* "[section] key" that only the next start of grace serve applies */
	char later[RL_LATER_MAX][160];
	size_t n_later, n_later_more; /* more: those past RL_LATER_MAX */
} rl_plan;

/* Compares the running configuration (old, read from old_ini) with the
 * new one (new, from new_ini). */
void rl_plan_make(const grace_config *old, const rl_ini *old_ini, const grace_config *new_cfg,
		  const rl_ini *new_ini, rl_plan *plan);

/* True when the plan changes nothing at all. */
bool rl_plan_empty(const rl_plan *p);

#endif
