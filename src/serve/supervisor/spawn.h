/* Starting one kernel process: its own process group, death with the parent,
 * the listening socket as fd 3, the systemd environment, and an exec failure
 * reported at once through a close-on-exec pipe (as libuv's uv_spawn does). */
#ifndef GRACE_SUPERVISOR_SPAWN_H
#define GRACE_SUPERVISOR_SPAWN_H

#include "serve/layer.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define SPAWN_ARGS_MAX 32
#define SPAWN_ENV_MAX 16

typedef struct sup_spawn_opts {
	const char *const *argv; /* argv[0] is looked up in PATH when it has no '/' */
	const char *const *env;  /* extra "KEY=VALUE" pairs, NULL-terminated; a bare
				  * "KEY" removes KEY from the inherited environment */
	int listen_fd;           /* becomes fd 3 in the child; -1 for none */
	bool watchdog_pid;       /* set WATCHDOG_PID to the child's pid */
	int stdout_fd;           /* > 2: becomes the child's stdout and stderr; else inherited */
	int nice;                /* 1-19: the child's niceness; 0 keeps the parent's */
} sup_spawn_opts;

/* Returns the child's pid, or a negative errno when fork failed.
 *
 * With `exec_fd` NULL it waits for the exec and returns a negative errno when
 * exec failed (the child is reaped here). Otherwise it returns at once and
 * *exec_fd (the caller owns it) becomes readable when the exec is done: EOF
 * on success, or an int errno on failure, after which the child exits 127
 * and is reaped by the caller like any other exit. */
pid_t sup_spawn(const sup_spawn_opts *o, int *exec_fd);

/* Reads an exec result from a sup_spawn exec_fd without blocking: the errno
 * the exec failed with, 0 when it succeeded, -EAGAIN when not known yet. */
int sup_spawn_exec_result(int exec_fd);

/* Splits a command line on blanks, with '...' and "..." quoting, into `buf`.
 * Returns the number of arguments, or -1 when it is empty, too long or
 * has an unterminated quote. */
int sup_split_command(const char *cmd, char *buf, size_t buflen, char **argv, int max);

#endif
