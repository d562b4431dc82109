/* A decision's context (pure): the issue, the kernel and the recent
 * failure features a caller sends, checked and encoded as the context
 * bucket a posterior belongs to. docs/learning.md "Context" lists them:
 *
 *   restarts_last_hour  integer >= 0  -> "r0", "r1-2", "r3+"
 *   last_exit           none|clean|error|signal|watchdog|start_failed|other
 *                       (kept as is)
 *   since_last_heal_s   integer >= 0 or null (never) -> "hnever", "h<10m",
 *                       "h<1h", "h1h+"
 *
 * bucket = "ISSUE|KERNEL|rX|EXIT|hY": coarse on purpose, so a bucket
 * gathers enough outcomes to learn from. */
#ifndef GRACE_KERNELS_LEARNING_CONTEXT_H
#define GRACE_KERNELS_LEARNING_CONTEXT_H

#include "kernels/layer.h"
#include "sdk/err.h"

#include "kernels/learning/bandit.h"

#include <jansson.h>
#include <stddef.h>

#define LRN_NAME_MAX 48 /* an issue, kernel or arm name: [a-z0-9_], 1..48 bytes */
#define LRN_BUCKET_MAX 192

typedef struct lrn_context {
	char issue[LRN_NAME_MAX + 1], kernel[LRN_NAME_MAX + 1];
	char arms[LRN_ARMS_MAX][LRN_NAME_MAX + 1]; /* the static order */
	size_t n_arms;
	char bucket[LRN_BUCKET_MAX];
	json_t *features; /* the features as normalized (owned: lrn_context_clear) */
} lrn_context;

/* Reads {issue, kernel, features, arms} (the body of POST /decide; other
 * keys are the caller's to refuse). Returns 0, or SDK_EINVAL with the
 * reason in `err`. */
int lrn_context_parse(json_t *body, lrn_context *c, sdk_err *err);
void lrn_context_clear(lrn_context *c);
/* Whether s is a valid issue, kernel or arm name. */
int lrn_name_ok(const char *s);
/* The index of arm in c's arms, or -1. */
int lrn_context_arm(const lrn_context *c, const char *arm);

#endif
