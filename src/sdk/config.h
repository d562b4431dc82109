/* Grace's configuration: one INI file (etc/grace.ini), overridden by
 * GRACE_* environment variables and then by command-line flags. The main
 * process and every kernel read the same file, so a kernel run alone sees
 * the same ports and data directory as one run by the supervisor. */
#ifndef GRACE_SDK_CONFIG_H
#define GRACE_SDK_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#define GRACE_KERNELS_MAX 50
#define GRACE_NAME_MAX 32
#define GRACE_COMMAND_MAX 256 /* and a config line is at most 198 bytes */
#define GRACE_KERNEL_PORT_MIN 8100
#define GRACE_KERNEL_PORT_MAX 8149

typedef struct grace_limits {
	size_t max_header_bytes; /* request line + headers */
	unsigned max_headers;
	size_t max_body_bytes;
	unsigned timeout_ms;      /* between reads of a body, and a stalled write */
	unsigned head_timeout_ms; /* the whole request head, from its first byte */
	unsigned keepalive_ms;    /* an idle connection between requests */
	unsigned max_connections; /* open at once, in all (idle ones are closed first) */
	unsigned max_connections_per_address;
	unsigned drain_ms;   /* SIGTERM: longest wait for in-flight requests */
} grace_limits;

typedef struct grace_restart {
	unsigned burst_max;       /* starts allowed within burst_window_ms ... */
	unsigned burst_window_ms; /* ... before the kernel is marked failed */
	unsigned backoff_initial_ms;
	unsigned backoff_max_ms;
	unsigned stable_ms; /* a crash after this long up restarts at once */
} grace_restart;

typedef struct grace_auth {
	bool self_registration;
	unsigned session_idle_s, session_max_s;
	char allowed_hosts[200]; /* comma-separated; "" means the defaults */
	unsigned hash_threads, hash_queue;
	unsigned argon2_ops, argon2_mem_kib;
	unsigned login_failures_max; /* within login_window_s, then 429 */
	unsigned login_window_s;
} grace_auth;

/* [audit]: how the main process feeds the audit trail (docs/audit.md). */
typedef struct grace_audit {
	unsigned window_s;     /* noise and failed logins are counted per window */
	unsigned windows_max;  /* keys counted per window; the rest as "other" */
	unsigned journal_max_events; /* security events waiting in grace.db ... */
	size_t journal_max_bytes;    /* ... before state-changing requests get 503 */
} grace_audit;

/* [model]: an OpenAI-compatible chat server (llama.cpp, Ollama, vLLM). */
typedef struct grace_model {
	char base_url[200]; /* http(s)://host:port/v1; "" when no model is configured */
	char model[128];    /* sent as "model"; "" leaves it to the server */
	char key_file[PATH_MAX]; /* a file holding an API key; "" for none */
	unsigned timeout_ms; /* the whole answer, streamed or not */
	unsigned max_tokens; /* 0: not sent */
	/* A streamed answer sends an SSE comment after this long without
	 * other output, so no idle proxy cuts it while the model thinks. */
	unsigned heartbeat_ms;
} grace_model;

#define GRACE_MODEL_HEARTBEAT_MS 10000     /* the default */
#define GRACE_MODEL_HEARTBEAT_MAX_MS 15000 /* the promise: a comment at least this often */

/* [memory]: per-user quotas and fairness of the memory tables. */
typedef struct grace_memory {
	unsigned tables_per_user;
	unsigned jobs_per_user; /* requests queued or running at once; past it 429 */
	size_t rows_per_user;
	size_t bytes_per_user; /* rows' JSON */
} grace_memory;

/* [librarian]: per-user quotas and ingest limits of the librarian kernel. */
typedef struct grace_librarian {
	unsigned documents_per_user;
	unsigned ingests_per_user;   /* ingests queued or running at once */
	unsigned ingest_files_max;   /* files in one ingest */
	unsigned ingest_chunk_files; /* files per transaction */
	size_t document_bytes_per_user;
	size_t ingest_bytes_max;     /* bytes in one ingest */
} grace_librarian;

/* [scheduler]: the scheduler kernel's limits (docs/scheduler.md). */
typedef struct grace_scheduler {
	unsigned late_tolerance_ms; /* a slot later than this is missed (the missed-run policy) */
	unsigned jobs_max;          /* jobs in all */
	unsigned jobs_per_user;
	unsigned runs_per_job;      /* closed runs kept per job, newest first */
	unsigned active_runs_max;   /* runs acted on at once; the rest wait, recorded */
} grace_scheduler;

/* [executor]: the executor kernel's queue and limits (docs/executor.md). */
typedef struct grace_executor {
	unsigned concurrency;  /* jobs running at once */
	unsigned queue_max;    /* jobs waiting; past it 503 queue_full */
	unsigned history_max;  /* finished jobs kept (with their output) */
	unsigned timeout_default_ms, timeout_max_ms;
	unsigned kill_grace_ms; /* SIGTERM, then SIGKILL after this */
	unsigned cgroups;       /* 0: no cgroups even where usable (rlimits and the subreaper) */
	size_t output_default_bytes, output_max_bytes; /* per stream, stored */
	char jobs_user[32];    /* jobs run as this user when Grace runs as root */
	char work_root[PATH_MAX]; /* jobs' working directories; "" = a directory in /tmp */
} grace_executor;

typedef struct grace_kernel_cfg {
	char name[GRACE_NAME_MAX];
	char tier[GRACE_NAME_MAX];
	int port; /* before port_offset */
	bool enabled;
	char command[GRACE_COMMAND_MAX]; /* empty: `grace kernel NAME` */
	grace_restart restart;
	unsigned watchdog_ms;   /* 0 disables hang detection */
	unsigned ready_timeout_ms;
	unsigned stop_timeout_ms;
	unsigned health_interval_ms;
	unsigned health_timeout_ms;
	unsigned health_failures;
	size_t max_body_bytes;
	unsigned standby; /* 1: a pre-started process takes over at a crash */
} grace_kernel_cfg;

typedef struct grace_config {
	char path[PATH_MAX];     /* the file read ("" when none) */
	char data_dir[PATH_MAX]; /* absolute once loaded */
	char library_root[PATH_MAX];
	char log_level[16];
	int api_port; /* before port_offset */
	int port_offset;
	grace_limits limits;
	grace_auth auth;
	grace_audit audit;
	grace_model model;
	grace_memory memory;
	grace_librarian librarian;
	grace_scheduler scheduler;
	grace_executor executor;
	grace_kernel_cfg kernels[GRACE_KERNELS_MAX];
	size_t n_kernels;
} grace_config;

typedef struct grace_config_overrides {
	const char *config_path; /* NULL: $GRACE_CONFIG, else etc/grace.ini if present */
	const char *data_dir;
	const char *port_offset;
} grace_config_overrides;

struct sdk_kernel_def; /* sdk/kernel.h */

/* Loads defaults, the file, the environment and then `ov` (may be NULL).
 * `builtins` (n_builtins of them, in port order) are the kernels this
 * binary can run (main.c passes kernels/registry.h's): with no
 * [kernel.NAME] section in the file they are the kernels, with the port
 * and tier of their definitions; a file with [kernel.NAME] sections runs
 * exactly those, a built-in one's port and tier defaulting to its
 * definition's. On error returns -1 and writes one line naming the file,
 * line and key into `err`. Relative paths are resolved against the
 * current directory. */
int grace_config_load(grace_config *cfg, const struct sdk_kernel_def *const *builtins,
		      size_t n_builtins, const grace_config_overrides *ov, char *err,
		      size_t errlen);

/* Accepts "librarian" and "librarian_kernel"; NULL when unknown. */
const grace_kernel_cfg *grace_config_kernel(const grace_config *cfg, const char *name);
int grace_config_kernel_index(const grace_config *cfg, const char *name);

/* The port a kernel listens on, offset applied. */
int grace_kernel_port(const grace_config *cfg, const grace_kernel_cfg *k);

#endif
