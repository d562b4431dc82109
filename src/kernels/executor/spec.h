/* An executor job as its submitter writes it, checked whole before it is
 * stored or run: the program (argv, no shell unless asked for), the
 * environment (an allow-list), optional stdin, the limits, the optional
 * sandbox. Pure, so it is unit-tested alone; every refusal names its field. */
#ifndef GRACE_EXECUTOR_SPEC_H
#define GRACE_EXECUTOR_SPEC_H

#include "kernels/layer.h"

#include "sdk/config.h"
#include "sdk/err.h"

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#define EXE_ARGV_MAX 1024       /* arguments */
#define EXE_ARG_BYTES_MAX (256u << 10) /* all arguments together */
#define EXE_ENV_MAX 256         /* variables a job sets */
#define EXE_ENV_BYTES_MAX (128u << 10)
#define EXE_STDIN_MAX (1u << 20)
#define EXE_NAME_MAX 128
#define EXE_KEY_MAX 200         /* an idempotency key */
#define EXE_FIELD_MAX 64
#define EXE_PRIORITY_MAX 9
#define EXE_KILL_GRACE_MAX_MS 60000
#define EXE_CPU_MAX_S 86400
#define EXE_MEMORY_MIN (4ull << 20)
#define EXE_MEMORY_MAX (1ull << 40)
#define EXE_PIDS_MAX 32768
#define EXE_PIDS_DEFAULT 512
#define EXE_NOFILE_MIN 16
#define EXE_NOFILE_MAX 1048576
#define EXE_NOFILE_DEFAULT 1024
#define EXE_SHELL "/bin/sh"

typedef struct exe_limits {
	uint64_t timeout_ms;
	uint64_t kill_grace_ms;
	uint64_t cpu_s;        /* 0: none */
	uint64_t memory_bytes; /* 0: none */
	uint64_t pids;
	uint64_t nofile;
	uint64_t output_bytes; /* per stream, stored; past it: truncated */
} exe_limits;

typedef struct exe_spec {
	json_t *json;  /* owned: the spec as checked, defaults filled in */
	char name[EXE_NAME_MAX + 1];
	char key[EXE_KEY_MAX + 1]; /* "" when none */
	int priority;
	exe_limits limits;
	bool sandbox;       /* asked for namespaces (bubblewrap) */
	bool net;           /* sandbox: network allowed */
	bool readonly_root; /* sandbox: the file system read-only but the workdir */
	bool seccomp;       /* the system call filter (default on) */
	/* "dir": the directory the job runs in instead of one of its own
	 * (absolute; "" when none). Whether the caller may name it, and that
	 * it is under [executor] dir_root, executor.c decides. */
	char dir[PATH_MAX];
} exe_spec;

/* Checks `body` against the executor's configuration. SDK_EINVAL with the
 * reason in err and the field in `field` ("argv[0]", "limits.pids"). */
int exe_spec_parse(json_t *body, const grace_executor *cfg, exe_spec *out,
		   char field[EXE_FIELD_MAX], sdk_err *err);
/* The same for a spec stored earlier (its JSON is trusted but re-read). */
int exe_spec_load(const char *json_text, const grace_executor *cfg, exe_spec *out,
		  sdk_err *err);
void exe_spec_free(exe_spec *s);

/* Whether a job may set variable `name` (the allow-list: a plain name, and
 * none of those that change how programs load or resolve: LD_*, ...). */
bool exe_env_name_allowed(const char *name);

/* The argv to execute (argv as given, or /bin/sh -c TEXT): a NULL-ended
 * array of strings borrowed from the spec, allocated in *out (free it). */
int exe_spec_argv(const exe_spec *s, const char ***out, size_t *n);

#endif
