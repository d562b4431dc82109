/* Running `systemctl` for the supervisor's kernels run by systemd: each
 * command a child of grace serve's own (reaped by the supervisor's SIGCHLD
 * handler, which hands the exit here), its output collected from a pipe on
 * the event loop, killed past its deadline. Nothing here blocks the loop.
 * Why systemctl and not sd-bus: it is the interface systemd documents
 * for scripts and keeps stable, it works for the system and --user
 * managers alike, and one command line in [systemd] systemctl says which. */
#ifndef GRACE_SUPERVISOR_UNITS_H
#define GRACE_SUPERVISOR_UNITS_H

#include "serve/layer.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define SUP_UNITS_RUNNING_MAX 8    /* systemctl commands at once */
#define SUP_UNITS_OUT_MAX 65536    /* output kept of one command; the rest is read and dropped */
#define SUP_UNITS_ARGS_MAX 48

struct event_base;
typedef struct sup_units sup_units;

/* `status` is a wait status (a kill at the deadline shows as SIGKILL), or
 * -errno when the command could not be run at all; `out` is its stdout and
 * stderr together, NUL-terminated, borrowed for the call. */
typedef void (*sup_units_cb)(int status, const char *out, size_t len, void *arg);

/* `systemctl` is the command line ([systemd] systemctl), split on blanks
 * with quoting; NULL when it cannot be. */
sup_units *sup_units_new(struct event_base *base, const char *systemctl);
/* Kills (SIGKILL) and reaps every command still running, without calling back. */
void sup_units_free(sup_units *u);

/* Runs `systemctl ARGS...` (NULL-terminated). 0, or a negative errno
 * (EAGAIN: SUP_UNITS_RUNNING_MAX already run; the callback is not called). */
int sup_units_run(sup_units *u, const char *const *args, unsigned deadline_ms, sup_units_cb cb,
		  void *arg);

/* From the SIGCHLD handler: true when `pid` is one of ours (then it is
 * already reaped by the caller, and `status` is passed on). */
bool sup_units_owns(const sup_units *u, pid_t pid);
void sup_units_reaped(sup_units *u, pid_t pid, int status);

#endif
