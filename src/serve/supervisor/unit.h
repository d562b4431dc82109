/* Kernels run by systemd ([kernel.NAME] manager = systemd), the pure part:
 * unit names from their patterns, `systemctl show` read into a status, and
 * the table from systemd's (ActiveState, SubState) to the supervisor's
 * states, so the API, the guardian and the healer see a unit's kernel as
 * they see one the supervisor forks. units.h runs systemctl;
 * supervisor.c applies what it reads (docs/supervisor.md). */
#ifndef GRACE_SUPERVISOR_UNIT_H
#define GRACE_SUPERVISOR_UNIT_H

#include "serve/layer.h"

#include "sdk/config.h"
#include "serve/supervisor/table.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The properties asked of every unit, in one `systemctl show -p`. */
#define SUP_UNIT_PROPS                                                                    \
	"Id,LoadState,ActiveState,SubState,MainPID,NRestarts,ExecMainCode,ExecMainStatus," \
	"ExecMainStartTimestampMonotonic,Result"

typedef struct sup_unit_status {
	char id[GRACE_UNIT_MAX];
	char load[24];   /* LoadState: loaded, not-found, masked, error */
	char active[24]; /* ActiveState */
	char sub[32];    /* SubState */
	char result[32]; /* Result: success, exit-code, signal, timeout, watchdog... */
	pid_t main_pid;  /* 0: none */
	unsigned n_restarts;
	int exec_code;   /* of the last main process: CLD_EXITED, CLD_KILLED, CLD_DUMPED; 0 none */
	int exec_status; /* its exit status or signal */
	uint64_t exec_start_mono_us; /* CLOCK_MONOTONIC when it started; 0 unknown */
} sup_unit_status;

/* `pattern` with %p the port and %n the kernel's name. -1 when it does not fit. */
int sup_unit_name(const char *pattern, const char *kernel, int port, char *out, size_t n);

/* `systemctl show` output: one block of KEY=VALUE lines per unit, blocks
 * apart by an empty line. Fills at most `max` statuses, in the order of
 * the blocks; returns how many, or -1 when a block has no Id. Unknown keys
 * and values too long for their field are left out. */
int sup_unit_parse_show(const char *text, size_t len, sup_unit_status *out, size_t max);

/* The supervisor's state for a unit's status (the table in unit.c). */
enum sup_state sup_unit_state(const sup_unit_status *st);

/* How the last main process ended, as the supervisor words an exit:
 * "exit 3", "signal 9 (Killed)", or "" when systemd knows of none. */
void sup_unit_describe_exit(const sup_unit_status *st, char *out, size_t n);

#endif
