/* Git as a child process: posix_spawn of /usr/bin/git with a fixed argv
 * (never a shell; hooks and fsmonitor off, so no program the repository
 * names runs), stdin /dev/null, stdout and stderr read together and
 * kept up to a bound, killed past a deadline. Blocking: called on the
 * worker pool only. Each run is recorded (argv, exit code, output tail,
 * milliseconds) for the task's report and its audit events. */
#ifndef GRACE_CODING_AGENT_RUN_H
#define GRACE_CODING_AGENT_RUN_H

#include "kernels/layer.h"

#include <jansson.h>
#include <stddef.h>

#define CA_GIT "/usr/bin/git"
#define CA_GIT_NO_HOOKS "core.hooksPath=/dev/null"
#define CA_GIT_NO_FSMONITOR "core.fsmonitor=false"
#define CA_RUN_ARGS_MAX 24
#define CA_RUN_KEEP (64u << 10) /* output bytes kept (the end wins) */
#define CA_RUN_TAIL 2000        /* bytes of output in a record */

typedef struct ca_run {
	int exit_code; /* 128+N for a signal; -1 when it did not start */
	char *out;     /* owned, NUL-terminated: the last CA_RUN_KEEP bytes */
	size_t out_len;
	long long ms;
} ca_run;

/* Runs `git -C dir ARGS...` (args NULL-ended), at most timeout_ms. 0 when
 * it ran (look at exit_code), -1 when it could not start. */
int ca_git(const char *dir, const char *const *args, unsigned timeout_ms, ca_run *r);
void ca_run_free(ca_run *r);

/* {"argv": [...], "exit_code", "output_tail", "ms"} for the report. */
json_t *ca_run_json(const char *dir, const char *const *args, const ca_run *r);

/* The last `max` bytes of s, cut at a UTF-8 boundary (a new string). */
json_t *ca_tail_json(const char *s, size_t len, size_t max);

#endif
