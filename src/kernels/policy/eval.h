/* Evaluation of one condition for one request, with Cedar's semantics:
 * && || and if-then-else short-circuit; every other operator evaluates all
 * its operands and then checks their types; any error ends the whole
 * condition (the authorizer then skips the policy and reports it). */
#ifndef GRACE_POLICY_EVAL_H
#define GRACE_POLICY_EVAL_H

#include "kernels/layer.h"

#include "kernels/policy/ast.h"
#include "kernels/policy/entities.h"

typedef struct cedar_eval {
	cedar_arena *arena; /* for values made while evaluating */
	const cedar_uid *principal, *action, *resource;
	cedar_value context; /* a record */
	cedar_view view;
	char err[CEDAR_ERR_MAX]; /* the reason of the last error */
} cedar_eval;

/* Returns 0 with *out, or -1 with ev->err set. */
int cedar_eval_expr(cedar_eval *ev, const cedar_expr *e, cedar_value *out);
/* Whether a `like` pattern matches s. */
bool cedar_like(const cedar_pattern *pat, const char *s, uint32_t n);

#endif
