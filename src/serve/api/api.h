/* The main API on :8000: aggregate health, kernel control and the gateway's
 * prefixes. Handlers get the api_ctx as their ctx. */
#ifndef GRACE_API_API_H
#define GRACE_API_API_H

#include "serve/layer.h"

#include "serve/auth/auth.h"
#include "serve/chat/chat.h"
#include "serve/gateway/gateway.h"
#include "serve/guardian/guardian.h"
#include "serve/healer/healer.h"
#include "serve/outbox/outbox.h"
#include "sdk/http.h"
#include "serve/supervisor/supervisor.h"
#include "serve/api/user_data.h"

typedef struct api_memory api_memory; /* /memory: its store and worker pool */
typedef struct mem_service mem_service;

typedef struct api_ctx {
	const grace_config *cfg;
	struct event_base *base;
	supervisor *sup;
	gateway *gw;
	guardian *gd;
	healer *hl;
	outbox *ob;
	auth_ctx *auth;
	chat *chat;
	api_memory *mem; /* NULL when memory.db cannot be opened: /memory answers 503 */
	user_data *ud;   /* purges a user's data with the user (user_data.h) */
	sdk_server *server;
} api_ctx;

/* Route access levels. 0, the default, is admin-only: fail closed. */
enum { ACCESS_ADMIN = 0, ACCESS_PUBLIC = 1, ACCESS_USER = 2 };

bool api_authorize(sdk_req *req, const sdk_route *route, void *ctx);
void api_auth_login(sdk_req *req, void *ctx);
void api_auth_logout(sdk_req *req, void *ctx);
void api_auth_me(sdk_req *req, void *ctx);
void api_auth_register(sdk_req *req, void *ctx);
void api_auth_users_create(sdk_req *req, void *ctx);
void api_auth_users_list(sdk_req *req, void *ctx);
void api_auth_users_delete(sdk_req *req, void *ctx);
void api_auth_users_password(sdk_req *req, void *ctx);

void api_chat_sessions_create(sdk_req *req, void *ctx);
void api_chat_sessions_list(sdk_req *req, void *ctx);
void api_chat_session_get(sdk_req *req, void *ctx);
void api_chat_session_delete(sdk_req *req, void *ctx);
void api_chat_messages_post(sdk_req *req, void *ctx);

/* Opens DATA_DIR/memory.db and the memory worker pool; NULL (logged) on failure. */
api_memory *api_memory_open(const grace_config *cfg, struct event_base *base);
/* Answers the requests still queued: call before the server is freed. */
void api_memory_close(api_memory *m);
/* The memory service behind /memory (NULL when it could not open). */
mem_service *api_memory_service(api_memory *m);
void api_memory_tables_create(sdk_req *req, void *ctx);
void api_memory_tables_list(sdk_req *req, void *ctx);
void api_memory_table_get(sdk_req *req, void *ctx);
void api_memory_table_delete(sdk_req *req, void *ctx);
void api_memory_rows_insert(sdk_req *req, void *ctx);
void api_memory_rows_query(sdk_req *req, void *ctx);
void api_memory_row_get(sdk_req *req, void *ctx);
void api_memory_row_patch(sdk_req *req, void *ctx);
void api_memory_row_delete(sdk_req *req, void *ctx);
void api_memory_shares_add(sdk_req *req, void *ctx);
void api_memory_shares_list(sdk_req *req, void *ctx);
void api_memory_shares_remove(sdk_req *req, void *ctx);

extern const sdk_route api_routes[];
extern const size_t api_n_routes;

/* Process and kernel-state metrics added to the API's /metrics. */
void api_metrics_extra(struct evbuffer *out, void *ctx);
/* The audit trail's hooks (audit_hook.c): every state-changing request is
 * recorded as it is answered, and refused before it runs when its record
 * could not be kept. */
void api_on_reply(sdk_req *req, int status, void *ctx);
bool api_audit_authorize(sdk_req *req, const sdk_route *route, void *ctx);

/* A kernel as the API reports it: a new reference. */
json_t *api_kernel_json(const sup_kernel *k);
/* Looks up :name; answers 404 and returns NULL when there is no such kernel. */
sup_kernel *api_kernel_param(api_ctx *api, sdk_req *req);

void api_health(sdk_req *req, void *ctx);
void api_metrics(sdk_req *req, void *ctx);
void api_kernel_ports_list(sdk_req *req, void *ctx);
void api_kernel_ports_get(sdk_req *req, void *ctx);
void api_kernel_ports_health_check(sdk_req *req, void *ctx);
void api_kernel_ports_action(sdk_req *req, void *ctx);
void api_guardian_status(sdk_req *req, void *ctx);
void api_guardian_events(sdk_req *req, void *ctx);
void api_guardian_config(sdk_req *req, void *ctx);
void api_healer_heal(sdk_req *req, void *ctx);
void api_healer_diagnose(sdk_req *req, void *ctx);
void api_healer_playbooks(sdk_req *req, void *ctx);
void api_healer_incidents(sdk_req *req, void *ctx);
void api_healer_incident(sdk_req *req, void *ctx);
void api_healer_stats(sdk_req *req, void *ctx);
/* Runs `action` on `k` and answers `req` with the incident when it ends. */
void api_heal_and_reply(api_ctx *api, sdk_req *req, sup_kernel *k, const hl_request *hr);

#endif
