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
#include "serve/node/door.h"
#include "serve/node/nodes.h"
#include "serve/outbox/outbox.h"
#include "sdk/http.h"
#include "serve/supervisor/supervisor.h"
#include "serve/api/user_data.h"
#include "serve/api/user_roles.h"

typedef struct api_memory api_memory; /* /memory: its store and worker pool */
typedef struct gv gv;                 /* governance: the gate and executor (serve/govern) */
typedef struct api_backup api_backup; /* /backup: its worker and the one under way */
typedef struct reloader reloader;     /* /reload, SIGHUP (serve/reload/reload.h) */
typedef struct bk_schedule bk_schedule; /* [backup] schedule (serve/backup/schedule.h) */
typedef struct mem_service mem_service;
typedef struct sdk_pdp sdk_pdp;
typedef struct api_dash api_dash; /* the dashboard's live feeds (dashboard.h) */

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
	user_roles *ur;  /* a user's new role told to the kernels (user_roles.h) */
	struct sdk_tracer *tracer; /* grace serve's own (serve.c's; NULL: not tracing) */
	api_backup *backup; /* NULL when it could not start: /backup answers 503 */
	reloader *rl;       /* NULL when it could not start: /reload answers 503 */
	bk_schedule *bks;   /* NULL when no [backup] schedule is configured */
	sdk_server *server;
	sdk_pdp *pdp; /* decisions by the policy kernel (decide.c); made at the first */
	struct trust_cache *trust; /* kernels' trust for policy (trust_cache.h); with pdp */
	gv *gov;      /* NULL without a governance kernel: gated actions answer 503 */
	api_dash *dash; /* made at the first feed; NULL before */
	door *door;   /* :8000's TLS door; NULL without [grace] tls_address */
	nodes *nodes; /* NULL on one host (no [node.*] sections) */
} api_ctx;

/* Route access levels: the role table. 0, the default, is admin-only: fail
 * closed. PUBLIC routes are never decided (/health, /metrics, /auth/login,
 * ...); ANON ones are open to anyone in the role table, and decided by
 * policy for Anonymous (docs/policy.md). */
enum { ACCESS_ADMIN = 0, ACCESS_PUBLIC = 1, ACCESS_USER = 2, ACCESS_ANON = 3 };

/* Who may call what (access.c): authentication, then the role table or
 * the policy ([policy] authorizer). May decide later (sdk/http.h). */
bool api_authorize(sdk_req *req, const sdk_route *route, void *ctx);
/* sdk_server_opts.body_limit (access.c): past [limits] max_body_bytes only
 * where the route (a kernel's, behind its prefix) takes more, and only for
 * a caller with a valid session or token. */
size_t api_body_limit(sdk_req *req, const sdk_route *route, const char *method, const char *path,
		      void *ctx);


/* Opens DATA_DIR/memory.db and the memory worker pool; NULL (logged) on failure. */
api_memory *api_memory_open(const grace_config *cfg, struct event_base *base);
/* Answers the requests still queued: call before the server is freed. */
void api_memory_close(api_memory *m);
/* The memory service behind /memory (NULL when it could not open). */
mem_service *api_memory_service(api_memory *m);

/* The backup worker (backup.c); NULL (logged) on failure. */
api_backup *api_backup_open(api_ctx *api);
/* Answers or breaks a backup under way: call before the server is freed. */
void api_backup_close(api_backup *b);

/* A family of routes: each route file registers its own table. */
typedef struct api_family {
	const char *name;
	const sdk_route *routes;
	size_t n_routes;
} api_family;

#define API_PUBLIC(m, p, h) SDK_ROUTE_ACCESS(m, p, h, ACCESS_PUBLIC)
#define API_USER(m, p, h) SDK_ROUTE_ACCESS(m, p, h, ACCESS_USER)
#define API_ADMIN(m, p, h) SDK_ROUTE_ACCESS(m, p, h, ACCESS_ADMIN)
#define API_ANON(m, p, h) SDK_ROUTE_ACCESS(m, p, h, ACCESS_ANON)

extern const api_family api_health_family, api_auth_family, api_kernel_ports_family,
	api_guardian_family, api_healer_family, api_chat_family, api_memory_family,
	api_prefixes_family, api_openapi_family, api_tokens_family, api_backup_family,
	api_dashboard_family, api_reload_family;

/* Every family, in the order they are matched (server.c). */
size_t api_family_count(void);
const api_family *api_family_at(size_t i);
/* One table of every family's routes: a new array (*n entries), owned by
 * the caller. NULL when out of memory. */
sdk_route *api_routes_build(size_t *n);

/* Which kernel a gateway prefix reaches (prefixes.c), so that the routes
 * it forwards can be listed one by one (`grace routes`, /openapi.json). A
 * route of the prefixes family is PATH followed by the kernel's own path:
 * a final "*" segment (every route of the kernel), or one route of it
 * ("/subscribe"). */
typedef struct api_prefix {
	const char *path;   /* "/librarian", "/kernels/:name" */
	const char *kernel; /* the kernel reached; NULL: the one the :name segment names */
} api_prefix;
size_t api_prefix_count(void);
const api_prefix *api_prefix_at(size_t i);
/* The prefix a route pattern forwards under (PATH then "/"), or NULL. */
const api_prefix *api_prefix_of(const char *pattern);

/* Forwards req to `kernel` with `prefix` taken off its path (prefixes.c). */
void api_forward_prefix(api_ctx *api, sdk_req *req, const char *kernel, const char *prefix);

/* Process and kernel-state metrics added to the API's /metrics. */
void api_metrics_extra(struct evbuffer *out, void *ctx);
/* The audit trail's hooks (audit_hook.c): every state-changing request is
 * recorded as it is answered, and refused before it runs when its record
 * could not be kept. */
void api_on_reply(sdk_req *req, int status, void *ctx);
bool api_audit_authorize(sdk_req *req, const sdk_route *route, void *ctx);
/* The audit trail's say alone, for a request allowed after a wait: false
 * after answering it 503. */
bool api_audit_admit(sdk_req *req, void *ctx);

/* A kernel as the API reports it: a new reference. */
json_t *api_kernel_json(const sup_kernel *k);
/* api_kernel_json with what the API adds to it: the kernel's trust score
 * (0..1) when one is fresh. A new reference. */
json_t *api_kernel_view(api_ctx *api, const sup_kernel *k);
/* Looks up :name; answers 404 and returns NULL when there is no such kernel. */
sup_kernel *api_kernel_param(api_ctx *api, sdk_req *req);

/* Runs `action` on `k` and answers `req` with the incident when it ends. */
void api_heal_and_reply(api_ctx *api, sdk_req *req, sup_kernel *k, const hl_request *hr);

#endif
