#include "kernels/registry.h"

#include <string.h>

/* Kernels whose own routes come in later issues: they run as their own
 * processes with the SDK's standard endpoints, and say so in /health. */
#define PLACEHOLDER(n, s) { .name = n, .summary = s, .complete = false }

static const sdk_kernel_def placeholders[] = {
	PLACEHOLDER("message_bus", "durable topics, publish, subscribe, consumer groups"),
	PLACEHOLDER("immutable_log", "append-only Merkle log with signed tree heads"),
	PLACEHOLDER("governance", "proposals, votes, quorum, decisions"),
	PLACEHOLDER("crypto", "keys, signatures, encryption, hashes"),
	PLACEHOLDER("trust", "trust scores from evidence"),
	PLACEHOLDER("policy", "allow/deny decisions, default deny"),
	PLACEHOLDER("compliance", "controls checked on a schedule"),
	PLACEHOLDER("audit", "tamper-evident record of who did what"),
	PLACEHOLDER("scheduler", "cron, interval and one-shot jobs"),
	PLACEHOLDER("executor", "commands with timeouts and limits"),
	PLACEHOLDER("workflow", "durable DAG runs"),
	PLACEHOLDER("state_machine", "machine definitions and guarded transitions"),
	PLACEHOLDER("self_healing", "incidents from alerts and health events"),
	PLACEHOLDER("coding_agent", "workspaces, patches, build and test runs"),
	PLACEHOLDER("learning", "outcomes in, recommendations out"),
	PLACEHOLDER("research", "questions answered from the library"),
	PLACEHOLDER("telemetry", "structured events, logs and spans"),
	PLACEHOLDER("metrics", "scrapes every /metrics and keeps series"),
	PLACEHOLDER("alerts", "rules over metrics, notifications, silences"),
};
#define N_PLACEHOLDERS (sizeof placeholders / sizeof placeholders[0])

size_t kernel_registry_count(void) { return N_PLACEHOLDERS + 1; }

const sdk_kernel_def *kernel_registry_at(size_t i)
{
	if (i == 0)
		return &librarian_kernel;
	return i <= N_PLACEHOLDERS ? &placeholders[i - 1] : NULL;
}

const sdk_kernel_def *kernel_registry_find(const char *name)
{
	size_t n = strlen(name);
	static const char suffix[] = "_kernel";
	if (n > sizeof suffix - 1 && !strcmp(name + n - (sizeof suffix - 1), suffix))
		n -= sizeof suffix - 1;
	for (size_t i = 0; i < kernel_registry_count(); i++) {
		const sdk_kernel_def *d = kernel_registry_at(i);
		if (strlen(d->name) == n && !strncmp(d->name, name, n))
			return d;
	}
	return NULL;
}
