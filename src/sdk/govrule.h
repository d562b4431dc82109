/* A governance rule: who must approve a change request. Written in
 * grace.ini as text ("2 admin", "all_of(1 admin, any_of(2 user, 1 admin))")
 * and kept, parsed, as JSON with the request ({"n":2,"role":"admin"},
 * {"all_of":[...]}, {"any_of":[...]}), so a later configuration change
 * never moves an open request's goalposts. Pure: no I/O. In the SDK so
 * that the configuration refuses a bad rule when it is read. */
#ifndef GRACE_SDK_GOVRULE_H
#define GRACE_SDK_GOVRULE_H

#include "sdk/err.h"

#include <jansson.h>
#include <stdbool.h>

#define SDK_GOV_RULE_TEXT_MAX 192 /* what one grace.ini line can hold */
#define SDK_GOV_RULE_DEPTH_MAX 4
#define SDK_GOV_RULE_CHILDREN_MAX 8
#define SDK_GOV_RULE_N_MAX 32

/* Parses rule text into its JSON (a new reference); NULL with the reason. */
json_t *sdk_gov_rule_parse(const char *text, sdk_err *err);
/* Checks a rule in its JSON form: 0, or SDK_EINVAL with the reason. */
int sdk_gov_rule_check(const json_t *rule, sdk_err *err);

/* Whether `role` ("admin" or "user") holds `needed`: an admin holds every
 * role, a user only "user". */
bool sdk_gov_role_holds(const char *role, const char *needed);
/* Whether someone with `role` may approve or veto under `rule`: they hold
 * a role one of its leaves names. */
bool sdk_gov_rule_eligible(const json_t *rule, const char *role);

/* Evaluates `rule` against `approvals` ([{"user","role"}, ...]: the
 * current revision's approvals), never counting `requester` and counting
 * each user once. A new object: {"satisfied": bool, "rule": the rule
 * annotated per node (a leaf gets "have", "missing", "approvers"),
 * "waiting_on": ["2 more approvals from role admin", ...]} (empty when
 * satisfied). NULL when out of memory. */
json_t *sdk_gov_rule_eval(const json_t *rule, const json_t *approvals, const char *requester);

#endif
