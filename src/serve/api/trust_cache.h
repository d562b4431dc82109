/* The kernels' trust scores as the main process knows them, for policy
 * (resource.trust on a Kernel, an integer percent 0 to 100): read from
 * the trust kernel every [trust] score_refresh_ms, in the background. A
 * request never waits for it and never fails because of it: a kernel
 * with no score (no evidence yet, the trust kernel down or not
 * configured, or the last answer older than TC_STALE_MS) has none, so a
 * policy asks `resource has trust` first. docs/trust.md. */
#ifndef GRACE_API_TRUST_CACHE_H
#define GRACE_API_TRUST_CACHE_H

#include "serve/layer.h"

#include "sdk/call.h"
#include "sdk/config.h"

#include <event2/event.h>

#define TC_KERNELS_MAX 256
#define TC_STALE_MS 60000

typedef struct trust_cache trust_cache;

/* Starts refreshing at once; NULL when out of memory. `cfg` and `caller`
 * outlive it. */
trust_cache *tc_new(struct event_base *base, sdk_caller *caller, const grace_config *cfg);
void tc_free(trust_cache *tc);
/* The kernel's trust in percent, or -1 when there is none now. */
int tc_percent(const trust_cache *tc, const char *kernel, int64_t now_ms);

#endif
