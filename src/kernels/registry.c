#include "kernels/registry.h"

#include <string.h>

/* Kernels whose own routes come in later issues: they run as their own
 * processes with the SDK's standard endpoints, and say so in /health. */
#define PLACEHOLDER(var, n, s) \
	static const sdk_kernel_def var = { .name = n, .summary = s, .complete = false }

PLACEHOLDER(governance_placeholder, "governance", "proposals, votes, quorum, decisions");
PLACEHOLDER(trust_placeholder, "trust", "trust scores from evidence");
PLACEHOLDER(compliance_placeholder, "compliance", "controls checked on a schedule");
PLACEHOLDER(scheduler_placeholder, "scheduler", "cron, interval and one-shot jobs");
PLACEHOLDER(executor_placeholder, "executor", "commands with timeouts and limits");
PLACEHOLDER(workflow_placeholder, "workflow", "durable DAG runs");
PLACEHOLDER(state_machine_placeholder, "state_machine",
	    "machine definitions and guarded transitions");
PLACEHOLDER(self_healing_placeholder, "self_healing", "incidents from alerts and health events");
PLACEHOLDER(coding_agent_placeholder, "coding_agent", "workspaces, patches, build and test runs");
PLACEHOLDER(learning_placeholder, "learning", "outcomes in, recommendations out");
PLACEHOLDER(research_placeholder, "research", "questions answered from the library");
PLACEHOLDER(telemetry_placeholder, "telemetry", "structured events, logs and spans");
PLACEHOLDER(alerts_placeholder, "alerts", "rules over metrics, notifications, silences");

/* One line per kernel: a kernel that lands replaces its placeholder here. */
static const sdk_kernel_def *const kernels[] = {
	&message_bus_kernel,
	&immutable_log_kernel,
	&governance_placeholder,
	&crypto_kernel,
	&trust_placeholder,
	&policy_kernel,
	&compliance_placeholder,
	&audit_kernel,
	&scheduler_placeholder,
	&executor_placeholder,
	&workflow_placeholder,
	&state_machine_placeholder,
	&librarian_kernel,
	&self_healing_placeholder,
	&coding_agent_placeholder,
	&learning_placeholder,
	&research_placeholder,
	&telemetry_placeholder,
	&metrics_kernel,
	&alerts_placeholder,
};

size_t kernel_registry_count(void) { return sizeof kernels / sizeof kernels[0]; }

const sdk_kernel_def *kernel_registry_at(size_t i)
{
	return i < kernel_registry_count() ? kernels[i] : NULL;
}

const sdk_kernel_def *kernel_registry_find(const char *name)
{
	size_t n = strlen(name);
	static const char suffix[] = "_kernel";
	if (n > sizeof suffix - 1 && !strcmp(name + n - (sizeof suffix - 1), suffix))
		n -= sizeof suffix - 1;
	for (size_t i = 0; i < kernel_registry_count(); i++) {
		const sdk_kernel_def *d = kernels[i];
		if (strlen(d->name) == n && !strncmp(d->name, name, n))
			return d;
	}
	return NULL;
}
