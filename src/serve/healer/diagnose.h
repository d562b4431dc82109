/* Diagnosis of one kernel: who holds its port, is its process alive and in
 * what state, how fast a TCP connect and a /health answer come, its accept
 * queue, descriptors and memory; then one issue type that names what is
 * wrong. Asynchronous: the connect and /health probes run on the loop. */
#ifndef GRACE_HEALER_DIAGNOSE_H
#define GRACE_HEALER_DIAGNOSE_H

#include "serve/layer.h"

#include "serve/gateway/gateway.h"
#include "serve/supervisor/supervisor.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

enum hl_issue {
	HL_HEALTHY,
	HL_PORT_NOT_LISTENING,
	HL_PROCESS_DEAD,
	HL_PROCESS_HUNG,
	HL_PORT_HELD_BY_STALE_KERNEL,
	HL_PORT_HELD_BY_FOREIGN_PROCESS,
	HL_SLOW_RESPONSE,
	HL_STORAGE_FAILED, /* answers /health 503 "storage_failed": its database failed */
	HL_ISSUE_COUNT,
};

enum hl_holder_kind { HL_HOLDER_NONE, HL_HOLDER_OURS, HL_HOLDER_STALE_KERNEL, HL_HOLDER_FOREIGN };

/* The facts, kept as data so playbooks can act on them (the holder's pid
 * and start time identify the process to end, and nothing else). */
typedef struct hl_findings {
	int port;
	bool listening;
	enum hl_holder_kind holder_kind;
	pid_t holder_pid;
	uint64_t holder_start_ticks;
	char holder_cmdline[256];
	unsigned accept_queue;
	pid_t pid;
	char proc_state; /* '\0' when no process */
	int health_status; /* 0: no answer */
	double connect_ms, health_ms; /* < 0: not measured */
	char health_error[128];
	bool storage_failed;     /* /health said so */
	char storage_error[256]; /* and why */
	enum hl_issue issue;
	json_t *json; /* owned: the full report */
} hl_findings;

typedef void (*hl_diagnose_cb)(hl_findings *f, void *arg);

typedef struct hl_diag hl_diag;

/* Starts a diagnosis; `cb` gets findings it does not own (valid during the
 * call only). *running points at the diagnosis while it runs and is set to
 * NULL before `cb` is called (which may happen before this returns).
 * Returns 0, or -1 when it could not start. */
int hl_diagnose(struct event_base *base, gateway *gw, sup_kernel *k, hl_diagnose_cb cb,
		void *arg, hl_diag **running);
/* Frees a diagnosis still running without calling back. Only at shutdown:
 * once the loop no longer runs and before the gateway ends its probes
 * (which it does without calling back). */
void hl_diag_discard(hl_diag *d);

const char *hl_issue_name(enum hl_issue i);
/* -1 when unknown. */
int hl_issue_parse(const char *s);

/* The pure part, for tests: an issue from the facts. slow_ms is the latency
 * past which an answer counts as slow. */
enum hl_issue hl_classify(const hl_findings *f, double slow_ms);

/* Whether `cmdline` is `grace kernel NAME` (any path to grace; NAME or
 * NAME_kernel): the only foreign-looking process the healer may end. */
bool hl_is_grace_kernel_cmdline(const char *cmdline, const char *name);

#endif
