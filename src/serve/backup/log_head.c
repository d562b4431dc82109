/* The immutable log's signed tree head, for a backup: log_head.h. */
#include "serve/backup/log_head.h"

#include "sdk/call.h"
#include "serve/gateway/gateway.h"
#include "serve/supervisor/supervisor.h"

#define LOG_HEAD_TIMEOUT_MS 10000

static void on_head(int status, const char *body, size_t len, double ms, const char *error,
		    void *arg)
{
	(void)ms;
	bk_head_ask *ask = arg;
	json_t *head = status == 200 ? json_loadb(body, len, 0, NULL) : NULL;
	if (!json_is_object(head) || !json_is_integer(json_object_get(head, "tree_size"))) {
		json_decref(head);
		ask->cb(NULL, error ? error : status ? "it answered an error" : "no answer", ask->arg);
		return;
	}
	ask->cb(head, NULL, ask->arg);
}

void bk_log_head_ask(api_ctx *api, bk_head_ask *ask)
{
	if (!sup_find(api->sup, "immutable_log")) {
		ask->cb(NULL, NULL, ask->arg);
		return;
	}
	if (sdk_call(gw_caller(api->gw), "immutable_log", "GET", "/sth", NULL, 0, NULL,
		     LOG_HEAD_TIMEOUT_MS, on_head, ask) < 0)
		ask->cb(NULL, "cannot call the immutable log", ask->arg);
}
