/* The actions a change request may be for (docs/governance.md): one fixed
 * table, shared by the configuration (which may gate them), the governance
 * kernel (which checks a request's parameters) and the main process (which
 * runs them once approved). */
#ifndef GRACE_SDK_GOVACTION_H
#define GRACE_SDK_GOVACTION_H

#include <stdbool.h>
#include <stddef.h>

#define SDK_GOV_PARAMS_MAX 4

typedef struct sdk_gov_action {
	const char *name;    /* "kernel.stop" */
	const char *summary;
	/* The string parameters it needs; "body" (any JSON) is never required. */
	const char *params[SDK_GOV_PARAMS_MAX];
	/* Gated whatever [governance] gate says (its route always opens a
	 * request), with this rule unless rule.ACTION gives one (NULL:
	 * [governance] default_rule). */
	bool always;
	const char *rule;
} sdk_gov_action;

size_t sdk_gov_action_count(void);
const sdk_gov_action *sdk_gov_action_at(size_t i);
/* NULL when no action has that name. */
const sdk_gov_action *sdk_gov_action_find(const char *name);
/* Whether `name` is a word of the space-separated list `list`. */
bool sdk_gov_listed(const char *list, const char *name);

#endif
