/* Grace's configuration: one INI file (etc/grace.ini), overridden by
 * GRACE_* environment variables and then by command-line flags. The main
 * process and every kernel read the same file, so a kernel run alone sees
 * the same ports and data directory as one run by the supervisor. */
#ifndef GRACE_SDK_CONFIG_H
#define GRACE_SDK_CONFIG_H

#include "sdk/err.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GRACE_KERNELS_MAX 50
#define GRACE_NAME_MAX 32
#define GRACE_UNIT_MAX 128
#define GRACE_MANAGER_GRACE 0
#define GRACE_MANAGER_SYSTEMD 1
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

/* [policy]: who decides each request on :8000 and each call between
 * kernels (docs/policy.md). */
enum { GRACE_AUTHORIZER_KERNEL = 0, GRACE_AUTHORIZER_TABLE = 1 };
#define GRACE_POLICY_SET_MAX 64
typedef struct grace_policy {
	int authorizer;      /* GRACE_AUTHORIZER_*: the policy kernel (default) or the role table */
	char policy_set[GRACE_POLICY_SET_MAX + 1]; /* the set decisions use */
	unsigned decision_timeout_ms; /* a request waits this long for its decision */
	unsigned cache_entries;       /* decisions kept by each process that asks */
} grace_policy;

/* [state_machine]: limits of the state_machine kernel. */
typedef struct grace_state_machine {
	unsigned instances_per_user; /* instances a user may own at once */
	unsigned history_keep;       /* transitions kept per instance */
	size_t context_max_bytes;    /* an instance's context as JSON */
	size_t event_max_bytes;      /* one event as JSON */
} grace_state_machine;

/* [workflow]: limits of the workflow kernel. */
typedef struct grace_workflow {
	size_t definition_max_bytes; /* one definition as stored */
	unsigned tasks_max;          /* tasks in one definition, nested ones counted */
	unsigned runs_max;           /* runs active (running, waiting, suspended) at once */
	unsigned history_max;        /* events in one run's history; past it the run faults */
	size_t data_max_bytes;       /* a run's input, context or output as JSON */
} grace_workflow;

/* [metrics]: the metrics kernel's scrapes, store and queries
 * (docs/metrics.md). */
#define GRACE_METRICS_TARGETS_MAX 32
#define GRACE_METRICS_TARGET_MAX 160 /* "JOB HOST:PORT [PATH]" */
typedef struct grace_metrics {
	unsigned scrape_interval_ms;
	unsigned scrape_timeout_ms;
	unsigned flush_interval_ms; /* the store's checkpoint: a crash loses at most this */
	unsigned retention_s;       /* 0: no limit by age */
	size_t retention_bytes;     /* of compressed samples; 0: no limit by size */
	unsigned max_series;
	unsigned sample_limit;      /* samples in one scrape; 0: no limit */
	unsigned query_timeout_ms;
	unsigned query_threads, query_queue;
	size_t query_max_samples;
	unsigned log_verify_interval_s; /* the immutable log's /verify as a probe; 0: never */
	char targets[GRACE_METRICS_TARGETS_MAX][GRACE_METRICS_TARGET_MAX];
	size_t n_targets;
} grace_metrics;

/* [alerts]: the alerts kernel's rules and notifications (docs/alerts.md). */
typedef struct grace_alerts {
	unsigned evaluation_interval_ms;
	unsigned resend_delay_ms;  /* alerts re-sent to an Alertmanager receiver this often */
	unsigned incident_alert_s; /* how long a finished heal incident stays an alert */
	unsigned notify_timeout_ms;
	bool default_rules; /* Grace's own rule set (alerts.c) */
	char rule_files[PATH_MAX];    /* a glob; relative to the configuration file */
	char notifier_file[PATH_MAX]; /* Alertmanager's format; relative likewise */
} grace_alerts;
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
	/* A kernel's job may run in a directory of its own naming ("dir")
	 * only below this one; "" = no job may name one. */
	char dir_root[PATH_MAX];
} grace_executor;

/* [coding_agent]: the coding_agent kernel's workspaces and limits
 * (docs/coding_agent.md). */
typedef struct grace_coding_agent {
	char workspace_root[PATH_MAX]; /* repositories of tasks resolve under it; "" = no tasks */
	char worktree_root[PATH_MAX];  /* tasks' worktrees; "" = WORKSPACE_ROOT/.grace-worktrees */
	unsigned running_max;     /* tasks worked on at once; the rest wait */
	unsigned tasks_max;       /* tasks kept; past it 503 until some are deleted */
	unsigned turns_max;       /* the most max_turns a task may ask for */
	unsigned turns_default;   /* a task's max_turns when it names none */
	unsigned test_timeout_ms; /* each executor job running the tests */
	unsigned git_timeout_ms;  /* each git command */
	unsigned task_timeout_ms; /* a whole task */
	size_t patch_max_bytes;   /* a task's patch, and a model's answer applied */
	size_t context_max_bytes; /* the repository's files shown to the model */
} grace_coding_agent;

/* [telemetry]: the telemetry kernel's retention and limits (docs/telemetry.md). */
typedef struct grace_telemetry {
	unsigned retention_age_s;      /* spans and log records older than this are deleted */
	size_t retention_max_bytes;    /* the store's size past which the oldest go */
	unsigned retention_interval_ms; /* how often retention runs */
	unsigned request_items_max;    /* spans or log records in one request; past it 413 */
	unsigned queue_max;            /* requests waiting for the writer; past it 503 + Retry-After */
	unsigned caller_requests_max;  /* one caller's writes queued at once; past it 429 */
	unsigned self_trace;           /* 1: Grace's own requests are traced (sdk/tracer.h) */
	unsigned sample_percent;       /* of the traces :8000 starts, this many are recorded */
	unsigned sample_rate_max;      /* and at most this many a second; 0: no cap */
	unsigned store_idle;           /* 1: the store's writer thread runs at SCHED_IDLE */
} grace_telemetry;

/* [learning]: the learning kernel's bandit and the healer's use of it
 * (docs/learning.md). */
typedef struct grace_learning {
	char policy[16];            /* the initial policy: thompson, epsilon_greedy or static */
	unsigned epsilon_percent;   /* epsilon-greedy's exploration, in percent */
	unsigned explore_floor_percent; /* Thompson's: a uniformly drawn first arm this often */
	size_t seed;                /* the random generator's seed; 0: from getrandom */
	unsigned relapse_window_ms; /* a heal's reward is final when no new incident came this long */
	unsigned heal_bound_ms;     /* a heal slower than this earns 0 */
	unsigned decisions_max;     /* decisions kept, newest */
	unsigned evaluate_max;      /* decisions an offline evaluation reads, newest */
	unsigned decide_timeout_ms; /* how long the healer waits for an order */
} grace_learning;

/* [self_healing]: incidents, the escalation ladder and the remediation
 * budget (docs/self_healing.md). */
#define GRACE_SH_SPEC_MAX 200
#define GRACE_SH_WATCHES_MAX 16
#define GRACE_SH_WATCH_MAX 190 /* a PromQL expression, as a grace.ini line holds it */
typedef struct grace_self_healing {
	char ladder[GRACE_SH_SPEC_MAX];       /* PLAYBOOK:COOLDOWN_MS,... bottom first; "stop" last */
	char dependencies[GRACE_SH_SPEC_MAX]; /* KERNEL:ON,...: KERNEL cannot work without ON */
	unsigned stable_ms;         /* quiet this long: the ladder resets, an incident resolves */
	unsigned flap_window_ms;    /* crashes counted within this window ... */
	unsigned flap_threshold;    /* ... this many make a kernel flapping */
	unsigned budget_per_hour;   /* heal actions for all kernels together, a token bucket */
	unsigned advice_timeout_ms; /* how long the healer waits for advice, then heals as before */
	unsigned approve_destructive; /* 1: the ladder's stop needs a person (governance) */
	/* watch.KERNEL = PROMQL: a condition on the metrics kernel's store,
	 * asked every watch_interval_ms; a non-empty answer is an event of
	 * KERNEL's (docs/self_healing.md "Metrics as events"). */
	unsigned watch_interval_ms;
	struct {
		char kernel[GRACE_NAME_MAX];
		char expr[GRACE_SH_WATCH_MAX + 1];
	} watches[GRACE_SH_WATCHES_MAX];
	size_t n_watches;
} grace_self_healing;

/* [research]: the research kernel's investigations (docs/research.md). */
typedef struct grace_research {
	unsigned steps_default;   /* calls to sources an investigation may make, unless it asks */
	unsigned steps_max;       /* the most one may ask for */
	unsigned time_ms_default; /* an investigation's time, unless it asks */
	unsigned time_ms_max;     /* the most one may ask for */
	unsigned call_timeout_ms; /* one call to a source, at most */
	unsigned window_ms;       /* the window of a question that names no time */
	unsigned running_max;     /* investigations running at once */
	unsigned keep;            /* investigations kept, newest */
} grace_research;

/* [governance]: change requests before dangerous actions (docs/governance.md). */
#define GRACE_GOV_RULES_MAX 16
#define GRACE_GOV_RULE_MAX 192 /* a rule's text, as a grace.ini line holds it */
typedef struct grace_governance {
	unsigned expiry_s;       /* an open request expires this long after it was opened */
	unsigned requests_max;   /* requests kept in all (closed ones are dropped oldest first) */
	unsigned poll_ms;        /* the main process asks for approved actions this often */
	unsigned run_delay_ms;   /* tests only: an approved action waits this long before it runs */
	char gate[256];          /* the actions gated, space-separated ("" : none) */
	char default_rule[GRACE_GOV_RULE_MAX + 1]; /* every action's rule unless it has its own */
	struct {
		char action[GRACE_NAME_MAX];
		char rule[GRACE_GOV_RULE_MAX + 1];
	} rules[GRACE_GOV_RULES_MAX]; /* rule.ACTION = ... */
	size_t n_rules;
} grace_governance;

/* [backup]: scheduled backups by grace serve (docs/backup.md). */
typedef struct grace_backup {
	char schedule[256];     /* cron (5 or 6 fields, @daily, @every 6h); "" = none */
	char timezone[64];      /* IANA zone the schedule reads its hours in */
	char dir[PATH_MAX];     /* where the archives go (absolute) */
	char key_file[PATH_MAX]; /* 64 hex digits, mode 0600: seals the secrets */
	unsigned no_secrets;    /* 1: no key_file, the secrets left out */
	unsigned keep;          /* the newest archives kept */
	unsigned max_age_days;  /* and none older (0: no age limit) */
	unsigned verify;        /* 1: each one restored into a temporary directory */
} grace_backup;

/* [systemd]: how grace serve reaches systemd for kernels run as units. */
typedef struct grace_systemd {
	char systemctl[GRACE_COMMAND_MAX]; /* the command, split on blanks */
	unsigned poll_ms;                  /* how often the units' states are read */
} grace_systemd;

/* [compliance]: the compliance kernel's scans and limits (docs/compliance.md). */
typedef struct grace_compliance {
	unsigned scan_interval_s;  /* the scheduled scan of the default profile; 0: none */
	unsigned scans_keep;       /* scans kept, newest first (each is in the log besides) */
	unsigned waiver_max_days;  /* the longest a waiver may run */
	unsigned check_timeout_ms; /* a check that asks another kernel waits this long */
} grace_compliance;

/* [crypto]: key deletion's waiting period (docs/crypto.md). */
typedef struct grace_crypto {
	unsigned deletion_window_s;     /* a deletion that names no window waits this long */
	unsigned deletion_window_min_s; /* the shortest window a deletion may ask for */
	unsigned deletion_window_max_s; /* the longest */
} grace_crypto;

/* [store]: where users, sessions, API tokens and login failures live
 * (docs/operations.md "Shared state in PostgreSQL"). */
enum { GRACE_STORE_SQLITE = 0, GRACE_STORE_POSTGRESQL = 1 };
#define GRACE_STORE_URL_MAX 190 /* a config line holds at most 198 bytes */
typedef struct grace_store_cfg {
	int engine;                         /* GRACE_STORE_* (sqlite: the default) */
	char postgresql_url[GRACE_STORE_URL_MAX + 1]; /* a libpq connection string, no password */
	char password_file[PATH_MAX];       /* the password's file; "" for none */
	unsigned pool_size;                 /* connections kept open */
	unsigned statement_timeout_ms;      /* PostgreSQL cancels a statement past it */
	unsigned connect_timeout_s;         /* a connection attempt gives up past it */
} grace_store_cfg;
/* [message_bus]: where the message bus keeps its messages
 * (docs/message_bus.md "On NATS JetStream"). */
#define GRACE_BUS_NATS_URLS_MAX 8
#define GRACE_BUS_NATS_URL_MAX 128
typedef struct grace_message_bus {
	bool jetstream;              /* engine = jetstream; else embedded (SQLite) */
	char nats_urls[GRACE_BUS_NATS_URLS_MAX][GRACE_BUS_NATS_URL_MAX];
	unsigned n_nats_urls;
	char stream_prefix[32];      /* the stream is PREFIX_BUS, its subjects PREFIX_BUS.> */
	unsigned replicas;           /* the stream's and the groups' consumers' */
	unsigned max_age_s;          /* the stream's MaxAge; 0: none */
	size_t max_bytes;            /* the stream's MaxBytes; 0: none */
	unsigned publish_timeout_ms; /* a publish waits this long for JetStream's ack, retries included */
	unsigned connect_timeout_ms;
} grace_message_bus;

/* [trust]: the trust kernel's identities and trust scores (docs/trust.md). */
typedef struct grace_trust {
	char domain[256];            /* the SPIFFE trust domain: [a-z0-9._-], 1 to 255 */
	unsigned jwt_ttl_default_s;  /* a JWT-SVID's lifetime when none is asked */
	unsigned jwt_ttl_max_s;      /* the longest asked; also a retired key's overlap */
	unsigned x509_ttl_default_s;
	unsigned x509_ttl_max_s;
	unsigned jwt_rotate_s;       /* a JWT signing key signs this long */
	unsigned x509_rotate_s;      /* the X.509 CA signs this long */
	unsigned score_half_life_s;  /* trust-score evidence loses half its weight */
	unsigned score_refresh_ms;   /* the main process reads the scores this often */
	unsigned score_period_s;     /* a kernel up this long without a fault: one good outcome */
	/* Calls to a kernel must carry a valid SVID (docs/trust.md): one
	 * without is refused 401. require_svid_set: the file says; unless it
	 * does, the kernel's runtime turns it on where SVIDs are sure to be had
	 * (spawned by grace serve, with a trust kernel configured). */
	bool require_svid, require_svid_set;
	unsigned svid_ttl_s;         /* the lifetime the runtime asks for its own JWT-SVIDs */
} grace_trust;

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
	unsigned nice;    /* 0-19: its processes' niceness, as systemd's Nice= */
	/* Who runs the process: GRACE_MANAGER_GRACE (the supervisor forks it)
	 * or GRACE_MANAGER_SYSTEMD (its unit, through [systemd] systemctl;
	 * docs/supervisor.md). Units are patterns: %p is the kernel's port
	 * (offset applied), %n its name; socket_unit "" for none. */
	unsigned manager;
	char unit[GRACE_UNIT_MAX];
	char socket_unit[GRACE_UNIT_MAX];
	/* The node it runs on ([kernel.NAME] node, or [defaults] node); with
	 * nodes configured and neither set, the first [node.*] section's. ""
	 * when no nodes are configured (one host). */
	char node[GRACE_NAME_MAX];
} grace_kernel_cfg;

/* Several hosts (docs/deployment.md "Kernels on several hosts"): each
 * [node.NAME] section is one host running `grace serve`, `address` where
 * its link listens (mutual TLS only, serve/node/link.h); which node this
 * process is comes from [grace] node or GRACE_NODE. No [node.*] section:
 * one host, every kernel local, nothing listens off loopback. */
#define GRACE_NODES_MAX 16
#define GRACE_NODE_ADDR_MAX 128 /* HOST:PORT */
typedef struct grace_node_cfg {
	char name[GRACE_NAME_MAX];
	char address[GRACE_NODE_ADDR_MAX];
} grace_node_cfg;

/* :8000's TLS door ([grace] tls_address): the API for clients on other
 * hosts, over TLS only, with the certificate from files (reloaded when
 * they change) or, with nodes, the node's own from the trust kernel. */
typedef struct grace_tls_door {
	char address[GRACE_NODE_ADDR_MAX]; /* HOST:PORT; "" for none */
	char cert_file[PATH_MAX];          /* PEM chain; "" = the node's certificate */
	char key_file[PATH_MAX];
} grace_tls_door;

typedef struct grace_nodes {
	grace_node_cfg at[GRACE_NODES_MAX];
	size_t n;
	char self[GRACE_NAME_MAX]; /* this process's node; "" when n is 0 */
	unsigned poll_ms; /* [grace] node_poll_ms: how often a peer's kernels are read */
	unsigned down_ms; /* [grace] node_down_ms: a peer unanswered this long is unreachable */
} grace_nodes;

typedef struct grace_config {
	char path[PATH_MAX];     /* the file read ("" when none) */
	char data_dir[PATH_MAX]; /* absolute once loaded */
	char library_root[PATH_MAX];
	char log_level[16];
	/* grace serve's log files, DATA_DIR/log/grace.log and its rotations,
	 * when not under systemd (serve/logfile.h): rotated past this size (0:
	 * no files), this many old ones kept */
	uint64_t log_file_bytes;
	unsigned log_files;
	int api_port; /* before port_offset */
	int port_offset;
	grace_limits limits;
	grace_auth auth;
	grace_audit audit;
	grace_model model;
	grace_memory memory;
	grace_librarian librarian;
	grace_policy policy;
	grace_state_machine state_machine;
	grace_workflow workflow;
	grace_metrics metrics;
	grace_alerts alerts;
	grace_scheduler scheduler;
	grace_executor executor;
	grace_coding_agent coding_agent;
	grace_telemetry telemetry;
	grace_learning learning;
	grace_research research;
	grace_self_healing self_healing;
	grace_governance governance;
	grace_backup backup;
	grace_systemd systemd;
	grace_compliance compliance;
	grace_crypto crypto;
	grace_trust trust;
	grace_store_cfg store;
	grace_message_bus message_bus;
	grace_nodes nodes;
	grace_tls_door tls;
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
 * definition's. On error returns SDK_EINVAL and writes one line naming the
 * file, line and key into `err`. Relative paths are resolved against the
 * current directory. */
int grace_config_read(grace_config *cfg, const struct sdk_kernel_def *const *builtins,
		      size_t n_builtins, const grace_config_overrides *ov, sdk_err *err);

/* For `grace serve`: decisions by a policy kernel that is not configured
 * would refuse everything for ever (a disabled one can be started by an
 * admin). SDK_EINVAL with the reason when [policy] authorizer = kernel and
 * there is no [kernel.policy]. */
int grace_config_check_authorizer(const grace_config *cfg, sdk_err *err);

/* Accepts "librarian" and "librarian_kernel"; NULL when unknown. */
const grace_kernel_cfg *grace_config_kernel(const grace_config *cfg, const char *name);
/* Whether this process should trace its requests: [telemetry] self_trace
 * and a telemetry kernel configured and enabled to send them to. */
bool grace_config_self_trace(const grace_config *cfg);
int grace_config_kernel_index(const grace_config *cfg, const char *name);

/* The port a kernel listens on, offset applied. */
int grace_kernel_port(const grace_config *cfg, const grace_kernel_cfg *k);
/* The first port of the ephemeral range (ip_local_port_range; 32768 when
 * it cannot be read): every port Grace listens on stays below it. */
int grace_ephemeral_low(void);
/* Whether k runs on this process's node (always, with no nodes). */
bool grace_kernel_local(const grace_config *cfg, const grace_kernel_cfg *k);
/* Node `name`, or NULL. */
const grace_node_cfg *grace_config_node(const grace_config *cfg, const char *name);

#endif
