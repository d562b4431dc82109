/* The policy kernel (8113): routes shared by its two files, policy.c
 * (policy sets, entities, the Cedar-shaped /authorize) and authzen.c (the
 * AuthZEN Authorization API 1.0). docs/policy.md describes the API. */
#ifndef GRACE_POLICY_POLICY_H
#define GRACE_POLICY_POLICY_H

#include "kernels/layer.h"

#include "kernels/policy/authorize.h"
#include "kernels/policy/store.h"
#include "sdk/http.h"
#include "sdk/kernel.h"

#define POL_DEFAULT_SET "default"
#define POL_BATCH_MAX 1000          /* requests in one batch */
#define POL_REQUEST_ARENA (256u << 20) /* bytes one request's evaluation may use */

#define POL_WATCH_MAX_MS 30000 /* the longest GET /versions waits */
#define POL_WATCHERS_MAX 4096  /* waiting at once; past it they are answered at once */

struct pol_watcher; /* watch.c: a GET /versions waiting for a change */
struct event;

typedef struct pol_kernel {
	sdk_kernel *k;
	pol_store *store;
	cedar_arena arena; /* per request: reset after each answer */
	/* A new random name at each start: a cache keyed by versions learns
	 * from it that the kernel restarted. */
	char instance[17];
	struct pol_watcher *watchers; /* a list */
	unsigned n_watchers;
	bool draining;
	/* audit_out.c: delivering the store's audit events */
	struct event *audit_timer;
	bool audit_sending;
	int64_t audit_last; /* the last event of the batch being sent */
	unsigned audit_backoff_ms;
	unsigned long long audit_delivered, audit_failures;
} pol_kernel;

pol_kernel *pol_of(void *ctx);

/* The request body as JSON (NULs in strings allowed, duplicate keys
 * refused). Answers 400 and returns NULL when it is not; the caller owns
 * the result. */
json_t *pol_body_json(sdk_req *req, bool want_object);

/* The policy set a decision uses: ?policy_set=NAME, else the body's
 * "policy_set" (may be NULL), else "default". Answers 404 (never created)
 * or 500 (stored but no longer parses) and returns NULL when unusable. A
 * deleted set is usable: it holds no policy, so everything is denied. */
const pol_set *pol_decision_set(sdk_req *req, pol_kernel *pk, json_t *body);

/* Adds "policy_set", "policy_version" and "entities_version" to obj. */
void pol_add_versions(json_t *obj, const pol_kernel *pk, const pol_set *set);

/* The policies' ids (@id or policyN) for a response's indexes. */
json_t *pol_policy_ids(const pol_set *set, const uint32_t *idx, uint32_t n);
json_t *pol_policy_errors(const pol_set *set, const cedar_response *r);

/* Decides with the set's policies (none when deleted). */
int pol_authorize(const pol_set *set, const cedar_request *rq, const cedar_view *v,
		  cedar_arena *a, cedar_response *out);

/* watch.c: GET /versions (a long poll), and waking its waiters after a
 * change; pol_watch_drain answers them all (SIGTERM, close). */
void pol_on_versions(sdk_req *req, void *ctx);
void pol_watch_notify(pol_kernel *pk);
void pol_watch_drain(pol_kernel *pk);

/* audit_out.c: sends the store's waiting audit events to the audit kernel
 * (now, unless a send is under way or a retry is due); stops for good. */
void pol_audit_kick(pol_kernel *pk);
void pol_audit_stop(pol_kernel *pk);

/* calls.c: decides calls from other processes to this kernel itself. */
int pol_decide_call(sdk_kernel *k, const sdk_call_decision *d);
/* Who a change is by: the user the gateway names, else the calling
 * kernel, else "operator" (a caller holding the token and naming none). */
void pol_actor_of(sdk_req *req, const sdk_kernel *k, char *out, size_t len);

/* The built-in default policy set (etc/policy/default.cedar). */
extern const char pol_default_text[];
extern const size_t pol_default_text_len;

void pol_on_evaluation(sdk_req *req, void *ctx);
void pol_on_evaluations(sdk_req *req, void *ctx);
void pol_on_authzen_config(sdk_req *req, void *ctx);

#endif
