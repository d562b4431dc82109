#include "kernels/policy/authorize.h"

#include "kernels/policy/eval.h"
#include "kernels/policy/json.h"

#include <stdio.h>
#include <string.h>

static int request_parse(cedar_arena *a, json_t *principal, json_t *action, json_t *resource,
			 json_t *context, cedar_request *out, sdk_err *err);

int cedar_request_parse(cedar_arena *a, json_t *principal, json_t *action, json_t *resource,
			json_t *context, cedar_request *out, sdk_err *err)
{
	int rc = request_parse(a, principal, action, resource, context, out, err);
	if (rc < 0 && err)
		cedar_utf8_sanitize(err->msg);
	return rc;
}

static int request_parse(cedar_arena *a, json_t *principal, json_t *action, json_t *resource,
			 json_t *context, cedar_request *out, sdk_err *err)
{
	sdk_err why;
	static const char *const names[] = { "principal", "action", "resource" };
	json_t *in[3] = { principal, action, resource };
	const cedar_uid **dst[3] = { &out->principal, &out->action, &out->resource };
	for (int i = 0; i < 3; i++) {
		if (!in[i]) {
			return sdk_fail(err, SDK_EINVAL, "`%s` is required", names[i]);
		}
		if (cedar_json_uid(a, in[i], dst[i], &why) < 0) {
			return sdk_fail(err, SDK_EINVAL, "%s: %s", names[i], why.msg);
		}
	}
	if (!context || json_is_null(context)) {
		out->context = (cedar_value){ .kind = CEDAR_RECORD };
		return 0;
	}
	if (!json_is_object(context)) {
		return sdk_fail(err, SDK_EINVAL, "context: must be a JSON object");
	}
	if (cedar_json_record(a, context, &out->context, &why) < 0) {
		return sdk_fail(err, SDK_EINVAL, "context: %s", why.msg);
	}
	return 0;
}

static bool scope_match(const cedar_scope *s, const cedar_uid *u, const cedar_view *v,
			cedar_arena *a, int *oom)
{
	int r;
	switch (s->op) {
	case SCOPE_ANY: return true;
	case SCOPE_EQ: return cedar_uid_eq(u, s->uid);
	case SCOPE_IS: return cedar_bytes_eq(u->type, u->type_len, s->type, s->type_len);
	case SCOPE_IS_IN:
		if (!cedar_bytes_eq(u->type, u->type_len, s->type, s->type_len))
			return false;
		/* fall through */
	case SCOPE_IN:
		if (s->uids) {
			for (uint32_t i = 0; i < s->n_uids; i++) {
				r = cedar_view_in(v, a, u, s->uids[i]);
				if (r < 0)
					*oom = 1;
				if (r > 0)
					return true;
			}
			return false;
		}
		r = cedar_view_in(v, a, u, s->uid);
		if (r < 0)
			*oom = 1;
		return r > 0;
	}
	return false;
}

int cedar_authorize(const cedar_policy_set *ps, const cedar_request *rq, const cedar_view *v,
		    cedar_arena *a, cedar_response *out)
{
	*out = (cedar_response){ 0 };
	uint32_t *permits = cedar_arena_alloc(a, sizeof *permits * (ps->n + 1));
	uint32_t *forbids = cedar_arena_alloc(a, sizeof *forbids * (ps->n + 1));
	if (!permits || !forbids)
		return -1;
	uint32_t np = 0, nf = 0, ne = 0, ecap = 0;
	cedar_eval ev = { .arena = a, .principal = rq->principal, .action = rq->action,
			  .resource = rq->resource, .context = rq->context, .view = *v };
	int oom = 0;
	for (uint32_t i = 0; i < ps->n; i++) {
		const cedar_policy *pol = &ps->policies[i];
		if (!scope_match(&pol->principal, rq->principal, v, a, &oom) ||
		    !scope_match(&pol->action, rq->action, v, a, &oom) ||
		    !scope_match(&pol->resource, rq->resource, v, a, &oom)) {
			if (oom)
				return -1;
			continue;
		}
		bool satisfied = true;
		if (pol->cond) {
			cedar_value r;
			const char *msg = NULL;
			if (cedar_eval_expr(&ev, pol->cond, &r) < 0)
				msg = ev.err;
			else if (r.kind != CEDAR_BOOL)
				msg = "type error: the condition is not a boolean";
			if (msg) {
				if (ne == ecap) {
					ecap = ecap ? ecap * 2 : 4;
					cedar_policy_error *more = cedar_arena_alloc(a, sizeof *more * ecap);
					if (!more)
						return -1;
					if (ne)
						memcpy(more, out->errors, sizeof *more * ne);
					out->errors = more;
				}
				out->errors[ne].policy = i;
				out->errors[ne].msg = cedar_arena_strndup(a, msg, strlen(msg));
				if (!out->errors[ne].msg)
					return -1;
				ne++;
				continue;
			}
			satisfied = r.b;
		}
		if (!satisfied)
			continue;
		if (pol->forbid)
			forbids[nf++] = i;
		else
			permits[np++] = i;
	}
	out->n_errors = ne;
	if (nf) {
		out->allow = false;
		out->determining = forbids;
		out->n_determining = nf;
	} else {
		out->allow = np > 0;
		out->determining = permits;
		out->n_determining = np;
	}
	return 0;
}
