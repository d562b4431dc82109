/* The kernels' trust scores for policy (trust_cache.h). */
#include "serve/api/trust_cache.h"

#include "sdk/clock.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

struct tc_entry {
	char name[GRACE_NAME_MAX];
	int percent;
};

struct trust_cache {
	const grace_config *cfg;
	sdk_caller *caller;
	struct event *timer;
	bool asking;
	int64_t read_ms; /* when the entries were read; 0: never */
	struct tc_entry entries[TC_KERNELS_MAX];
	size_t n;
};

static void on_scores(int status, const char *body, size_t len, double ms, const char *error,
		      void *arg)
{
	(void)ms, (void)error;
	trust_cache *tc = arg;
	tc->asking = false;
	json_t *doc = status == 200 && body ? json_loadb(body, len, 0, NULL) : NULL;
	json_t *list = json_object_get(doc, "scores");
	if (json_is_array(list)) {
		size_t i, n = 0;
		json_t *s;
		json_array_foreach(list, i, s) {
			const char *name = json_string_value(json_object_get(s, "name"));
			json_t *p = json_object_get(s, "percent");
			if (n == TC_KERNELS_MAX || !name || strlen(name) >= GRACE_NAME_MAX ||
			    !json_is_integer(p) || json_integer_value(p) < 0 ||
			    json_integer_value(p) > 100)
				continue;
			snprintf(tc->entries[n].name, sizeof tc->entries[n].name, "%s", name);
			tc->entries[n++].percent = (int)json_integer_value(p);
		}
		tc->n = n;
		tc->read_ms = sdk_wall_ms();
	}
	json_decref(doc);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	trust_cache *tc = arg;
	if (tc->asking || !grace_config_kernel(tc->cfg, "trust"))
		return;
	tc->asking = sdk_call(tc->caller, "trust", "GET", "/scores?kind=kernel&limit=256", NULL, 0,
			      NULL, tc->cfg->trust.score_refresh_ms, on_scores, tc) == 0;
}

trust_cache *tc_new(struct event_base *base, sdk_caller *caller, const grace_config *cfg)
{
	trust_cache *tc = calloc(1, sizeof *tc);
	if (!tc)
		return NULL;
	tc->cfg = cfg;
	tc->caller = caller;
	tc->timer = event_new(base, -1, EV_PERSIST, on_timer, tc);
	if (!tc->timer) {
		free(tc);
		return NULL;
	}
	struct timeval tv = sdk_ms_tv(cfg->trust.score_refresh_ms);
	event_add(tc->timer, &tv);
	on_timer(-1, 0, tc);
	return tc;
}

void tc_free(trust_cache *tc)
{
	if (!tc)
		return;
	event_free(tc->timer);
	/* A call in flight is ended, without calling back, when the caller is
	 * freed (the gateway's, after this). */
	free(tc);
}

int tc_percent(const trust_cache *tc, const char *kernel, int64_t now_ms)
{
	if (!tc || !tc->read_ms || now_ms - tc->read_ms > TC_STALE_MS)
		return -1;
	for (size_t i = 0; i < tc->n; i++)
		if (!strcmp(tc->entries[i].name, kernel))
			return tc->entries[i].percent;
	return -1;
}
