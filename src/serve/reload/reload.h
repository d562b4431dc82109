/* `grace reload`: the configuration file read again while Grace serves
 * (SIGHUP, POST /reload). plan.h says what a reload applies and what it
 * leaves for the next start; this carries the plan out: log_level at once,
 * then the kernels one at a time (stops, starts, restarts), each waited for
 * before the next, so a bad setting takes down one kernel, not all. The
 * rollout halts at the first kernel that does not come back (failed, or not
 * ready within its timeouts) and says so; the rest keep running as they
 * were. */
#ifndef GRACE_SERVE_RELOAD_RELOAD_H
#define GRACE_SERVE_RELOAD_RELOAD_H

#include "serve/layer.h"

#include "sdk/config.h"
#include "sdk/err.h"
#include "serve/supervisor/supervisor.h"

#include <jansson.h>

struct event_base;
typedef struct reloader reloader;

/* cfg: the running configuration, changed in place by a reload (the
 * kernels' entries, log_level); it must outlive the reloader. NULL when
 * out of memory or when the file cannot be read as it was at start. */
reloader *rl_new(struct event_base *base, grace_config *cfg, supervisor *sup);
void rl_free(reloader *r);

/* Reads the file again, applies what can be applied and starts the
 * rollout. 0 with *status (new reference: rl_status's shape), or
 * SDK_EINVAL (the file does not load; nothing changed) or SDK_ECONFLICT
 * (a rollout is under way) with the reason in err. `who` is logged. */
int rl_reload(reloader *r, const char *who, json_t **status, sdk_err *err);

/* The last reload: {"state": "idle"|"rolling"|"done"|"halted", ...}; new
 * reference. */
json_t *rl_status(const reloader *r);

/* The supervisor's observer (serve.c passes every change on). */
void rl_on_change(reloader *r, const sup_change *c);

#endif
