/* A decision: every policy whose scope matches the request has its
 * condition evaluated; any satisfied forbid denies (and names the
 * forbids), else any satisfied permit allows (and names the permits), else
 * the answer is deny with no determining policy. A policy whose condition
 * errors is skipped and reported with its error. */
#ifndef GRACE_POLICY_AUTHORIZE_H
#define GRACE_POLICY_AUTHORIZE_H

#include "kernels/layer.h"

#include "kernels/policy/cedar.h"
#include "kernels/policy/entities.h"
#include "sdk/err.h"

#include <jansson.h>

typedef struct cedar_request {
	const cedar_uid *principal, *action, *resource;
	cedar_value context; /* a record */
} cedar_request;

typedef struct cedar_policy_error {
	uint32_t policy; /* index in the set */
	const char *msg;
} cedar_policy_error;

typedef struct cedar_response {
	bool allow;
	uint32_t *determining; /* policy indexes, in set order */
	uint32_t n_determining;
	cedar_policy_error *errors; /* in set order */
	uint32_t n_errors;
} cedar_response;

/* Reads a request's principal, action and resource (entity uids in JSON)
 * and its context (an object; NULL means empty). 0, or -1 with a reason. */
int cedar_request_parse(cedar_arena *a, json_t *principal, json_t *action, json_t *resource,
			json_t *context, cedar_request *out, sdk_err *err);

/* Decides one request. Everything in *out comes from `a`. Returns 0, or
 * -1 only when out of memory. */
int cedar_authorize(const cedar_policy_set *ps, const cedar_request *rq, const cedar_view *v,
		    cedar_arena *a, cedar_response *out);

#endif
