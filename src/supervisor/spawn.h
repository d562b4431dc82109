/* Starting one kernel process: its own process group, death with the parent,
 * the listening socket as fd 3, the systemd environment, and an exec failure
 * reported at once through a close-on-exec pipe (as libuv's uv_spawn does). */
#ifndef GRACE_SUPERVISOR_SPAWN_H
#define GRACE_SUPERVISOR_SPAWN_H

#include <stdint.h>
#include <sys/types.h>

#define SPAWN_ARGS_MAX 32
#define SPAWN_ENV_MAX 16

typedef struct sup_spawn_opts {
	const char *const *argv; /* argv[0] is looked up in PATH when it has no '/' */
	const char *const *env;  /* extra "KEY=VALUE" pairs, NULL-terminated */
	int listen_fd;           /* becomes fd 3 in the child; -1 for none */
} sup_spawn_opts;

/* Returns the child's pid, or a negative errno when fork or exec failed
 * (an exec failure is known before this returns). */
pid_t sup_spawn(const sup_spawn_opts *o);

/* Splits a command line on blanks, with '...' and "..." quoting, into `buf`.
 * Returns the number of arguments, or -1 when it is empty, too long or
 * has an unterminated quote. */
int sup_split_command(const char *cmd, char *buf, size_t buflen, char **argv, int max);

#endif
