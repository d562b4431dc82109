/* Rule files in Prometheus's format (rulefmt) and what an evaluation does
 * with a rule's query result (rules/alerting.go, recording.go of
 * Prometheus 2.42). A file holds groups; a group, its rules, evaluated in
 * order every `interval`. An alerting rule's alerts move through the
 * states of a table (ar_table in rules.c):
 *
 *              | in the result              | not in the result
 *   -----------+----------------------------+---------------------------------
 *   (none)     | pending (active since now) | -
 *   inactive   | pending, a new alert       | kept 15 min to send it resolved
 *   pending    | firing once `for` has held | gone (never fired: nothing to say)
 *   firing     | firing                     | resolved, unless keep_firing_for
 *                                            | still holds it firing
 *
 * Pure: the caller runs the query and writes the samples. */
#ifndef GRACE_ALERTS_RULES_H
#define GRACE_ALERTS_RULES_H

#include "kernels/layer.h"

#include "sdk/err.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AR_RESOLVED_RETENTION_MS (15 * 60 * 1000)
#define AR_GROUPS_MAX 1000
#define AR_RULES_MAX 10000 /* in one file */

enum ar_state { AR_INACTIVE, AR_PENDING, AR_FIRING };

typedef struct ar_alert {
	uint64_t fp;
	json_t *labels;      /* with alertname */
	json_t *annotations; /* templated */
	double value;
	enum ar_state state;
	int64_t active_at, fired_at, resolved_at, last_sent_at, keep_firing_since, valid_until;
	bool seen; /* in this evaluation's result */
} ar_alert;

typedef struct ar_rule {
	bool alert; /* an alerting rule; else a recording rule */
	char *name;
	char *expr;
	int64_t for_ms, keep_firing_ms;
	json_t *labels;      /* templates */
	json_t *annotations; /* templates (alerting rules) */
	/* state */
	ar_alert **alerts;
	size_t n_alerts, cap_alerts;
	char health[8]; /* "unknown", "ok", "err" */
	char last_error[512];
	int64_t last_eval_ms;
	double eval_seconds;
	json_t *written; /* label sets this rule wrote last time, for staleness */
} ar_rule;

typedef struct ar_group {
	char *file, *name;
	int64_t interval_ms;
	unsigned limit;
	ar_rule *rules;
	size_t n_rules;
	/* evaluation state (the kernel's) */
	int64_t last_eval_ms;
	double eval_seconds;
	int64_t next_ms;
	int64_t created_ms; /* wall clock, when loaded */
	bool busy;
} ar_group;

/* Parses and checks a rule file: 0 with *groups (malloc'd array of n),
 * or SDK_EINVAL with Prometheus's kind of reason ("group \"g\", rule 2,
 * \"X\": ..."). Expressions are not parsed here (the metrics kernel
 * does, at load or at the first evaluation). */
int ar_parse_file(const char *file, const char *yaml, size_t len, int64_t default_interval_ms,
		  ar_group **groups, size_t *n, sdk_err *err);
void ar_groups_free(ar_group *groups, size_t n);
void ar_group_clear(ar_group *g);

/* A sample of a query's result. */
typedef struct ar_sample {
	json_t *labels; /* borrowed; may hold __name__ */
	double value;
} ar_sample;

/* An alerting rule's evaluation at ts: alerts move per the table.
 * Returns 0, or SDK_EINVAL when two results have the same labels once
 * the rule's are applied (then nothing changed). `limit` 0: none. */
int ar_eval_alerting(ar_rule *r, const ar_sample *res, size_t n, int64_t ts, unsigned limit,
		     sdk_err *err);
/* The ALERTS and ALERTS_FOR_STATE series an alerting rule writes at ts:
 * [{"labels":{...},"value":v}, ...] (a new array). */
json_t *ar_alert_series(const ar_rule *r);
/* A recording rule's output: the result renamed and relabelled, as
 * [{"labels":{...},"value":v}]; SDK_EINVAL on repeated label sets. */
int ar_eval_recording(const ar_rule *r, const ar_sample *res, size_t n, json_t **out,
		      sdk_err *err);

/* Whether an alert should go to the notifier now (not pending; newly
 * resolved, or not sent for resend_ms), and marks it sent, valid until
 * ts + 4 * max(resend, interval). */
bool ar_needs_sending(ar_alert *a, int64_t ts, int64_t resend_ms, int64_t interval_ms);

const char *ar_state_name(enum ar_state s);
/* The rule's highest state: firing > pending > inactive. */
enum ar_state ar_rule_state(const ar_rule *r);

#endif
