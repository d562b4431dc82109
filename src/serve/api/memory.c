/* /memory: the HTTP face of the memory service (serve/memory/service.h).
 * Each handler reads what it needs from the request on the loop (path,
 * query, a copy of the body) into a mem_call; the service runs it on its
 * worker pool and the answer is sent back on the loop. The store decides
 * who sees what: another user's table is a 404, a table shared read-only
 * refuses writes with a 403. A user with too many requests queued or
 * running gets 429, a full shared queue 503, a quota reached 403. */
#include "serve/api/api.h"
#include "sdk/clock.h"

#include "serve/memory/service.h"
#include "sdk/log.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MEM_THREADS_MIN 2
#define MEM_THREADS_MAX 4

struct api_memory {
	mem_service *svc;
};

api_memory *api_memory_open(const grace_config *cfg, struct event_base *base)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned threads = cpus < MEM_THREADS_MIN   ? MEM_THREADS_MIN
			   : cpus > MEM_THREADS_MAX ? MEM_THREADS_MAX
						    : (unsigned)cpus;
	api_memory *m = calloc(1, sizeof *m);
	if (!m)
		return NULL;
	mem_service_opts o = {
		.threads = threads,
		.user_jobs_max = cfg->memory.jobs_per_user,
		.quota = { .tables = cfg->memory.tables_per_user,
			   .rows = (int64_t)cfg->memory.rows_per_user,
			   .bytes = (int64_t)cfg->memory.bytes_per_user },
		.store = &cfg->store,
	};
	sdk_err e = { "" };
	m->svc = mem_service_open(cfg->data_dir, base, &o, &e);
	if (!m->svc) {
		if (cfg->store.engine == GRACE_STORE_POSTGRESQL)
			sdk_error("memory: cannot open the tables in PostgreSQL: %s", e.msg);
		else
			sdk_error("memory: cannot open %s/memory.db: %s", cfg->data_dir, e.msg);
		free(m);
		return NULL;
	}
	return m;
}

void api_memory_close(api_memory *m)
{
	if (!m)
		return;
	mem_service_close(m->svc); /* answers the requests still queued */
	free(m);
}

mem_service *api_memory_service(api_memory *m) { return m ? m->svc : NULL; }

/* Answers a failure: the sdk/err.h mapping, with the details of a storage
 * failure kept for the log, and 429 for a user at their limit of requests. */
static void reply_status(sdk_req *req, int status, const sdk_err *e)
{
	if (status == SDK_POOL_ECALLER) {
		sdk_req_add_header(req, "Retry-After", "1");
		sdk_reply_error(req, 429, "too_many_requests", "%s; retry when one finishes", e->msg);
		return;
	}
	int http = sdk_status_http(status);
	if (http >= 500 && http != 503 && http != 507) {
		sdk_log(SDK_LOG_WARN, sdk_req_id(req), "memory: %s", e->msg[0] ? e->msg : "no result");
		sdk_err hidden;
		sdk_fail(&hidden, status, "the memory store failed; see the server log");
		sdk_reply_status(req, status, &hidden);
		return;
	}
	sdk_reply_status(req, status, e);
}

/* On the loop, when the service has run the call. */
static void call_done(mem_call *c, void *arg)
{
	sdk_req *req = arg;
	int ok = c->op == MEM_OP_TABLE_CREATE || c->op == MEM_OP_ROWS_INSERT ? 201 : 200;
	if (!c->ran) {
		sdk_req_add_header(req, "Retry-After", "1");
		sdk_reply_error(req, 503, "shutting_down", "the server is stopping");
	} else if (c->status < 0) {
		reply_status(req, c->status, &c->err);
	} else if (c->reply) {
		sdk_reply_json(req, ok, c->reply);
		c->reply = NULL;
	} else if (c->text.len && !c->text.oom) {
		struct evbuffer *b = evbuffer_new();
		if (!b || evbuffer_add(b, c->text.p, c->text.len) < 0 ||
		    evbuffer_add(b, "\n", 1) < 0) {
			if (b)
				evbuffer_free(b);
			sdk_reply_error(req, 500, "internal", "out of memory");
		} else {
			sdk_reply_raw(req, ok, "application/json", b);
			evbuffer_free(b);
		}
	} else {
		sdk_reply_error(req, 500, "internal", "the memory store gave no answer");
	}
	mem_call_free(c);
}

static void call_submit(api_ctx *api, sdk_req *req, mem_call *c)
{
	c->done = call_done;
	c->arg = req;
	sdk_err e = { "" };
	int rc = mem_service_submit(api->mem->svc, c, &e);
	if (rc < 0) {
		reply_status(req, rc, &e);
		mem_call_free(c);
	}
}

static bool copy_query(sdk_req *req, const char *name, char **out)
{
	const char *v = sdk_req_query(req, name);
	if (!v)
		return true;
	*out = strdup(v);
	if (!*out)
		sdk_reply_error(req, 503, "busy", "out of memory");
	return *out != NULL;
}

/* A call for the caller, with the table (and owner) from the request;
 * NULL after answering when something is wrong with them. */
static mem_call *call_new(api_ctx *api, sdk_req *req, enum mem_op op, bool has_table)
{
	if (!api->mem) {
		sdk_reply_error(req, 503, "unavailable", "the memory store is not available");
		return NULL;
	}
	const char *user = sdk_req_user(req, NULL);
	if (!user) {
		sdk_reply_error(req, 401, "unauthorized", "log in first: POST /auth/login");
		return NULL;
	}
	/* A malformed query string must not be read as "no filter". */
	if (!sdk_req_query_ok(req)) {
		sdk_reply_error(req, 400, "bad_query", "the query string is malformed");
		return NULL;
	}
	const char *owner = sdk_req_query(req, "owner");
	if (owner && !auth_name_valid(owner)) {
		sdk_reply_error(req, 400, "invalid", "owner is a user name");
		return NULL;
	}
	const char *table = has_table ? sdk_req_param(req, "table") : NULL;
	if (has_table && !mem_table_name_valid(table)) {
		sdk_reply_error(req, 400, "invalid",
				"a table name is 1 to %d of a-z, 0-9, '_', starting with a letter",
				MEM_NAME_MAX);
		return NULL;
	}
	mem_call *c = mem_call_new(op, user);
	if (!c) {
		sdk_reply_error(req, 503, "busy", "out of memory");
		return NULL;
	}
	c->now_ms = sdk_wall_ms();
	snprintf(c->owner, sizeof c->owner, "%s", owner ? owner : "");
	snprintf(c->table, sizeof c->table, "%s", table ? table : "");
	return c;
}

/* A copy of the body for the worker; frees `c` after answering on failure. */
static bool copy_body(sdk_req *req, mem_call *c)
{
	struct evbuffer *b = sdk_req_body(req);
	c->body_len = evbuffer_get_length(b);
	if (!c->body_len)
		return true;
	c->body = malloc(c->body_len);
	if (!c->body || evbuffer_copyout(b, c->body, c->body_len) != (ev_ssize_t)c->body_len) {
		sdk_reply_error(req, 503, "busy", "out of memory");
		mem_call_free(c);
		return false;
	}
	return true;
}

/* The :id of a row: a positive decimal integer; frees `c` when bad. */
static bool row_id(sdk_req *req, mem_call *c)
{
	const char *s = sdk_req_param(req, "id");
	char *end;
	errno = 0;
	long long v = s && *s >= '1' && *s <= '9' ? strtoll(s, &end, 10) : 0;
	if (v <= 0 || errno || *end) {
		sdk_reply_error(req, 400, "invalid", "a row id is a positive integer");
		mem_call_free(c);
		return false;
	}
	c->id = v;
	return true;
}

static void api_memory_tables_create(sdk_req *req, void *ctx)
{
	mem_call *c = call_new(ctx, req, MEM_OP_TABLE_CREATE, false);
	if (c && copy_body(req, c))
		call_submit(ctx, req, c);
}

static void api_memory_tables_list(sdk_req *req, void *ctx)
{
	mem_call *c = call_new(ctx, req, MEM_OP_TABLE_LIST, false);
	if (c)
		call_submit(ctx, req, c);
}

static void api_memory_table_get(sdk_req *req, void *ctx)
{
	mem_call *c = call_new(ctx, req, MEM_OP_TABLE_GET, true);
	if (c)
		call_submit(ctx, req, c);
}

static void api_memory_table_delete(sdk_req *req, void *ctx)
{
	mem_call *c = call_new(ctx, req, MEM_OP_TABLE_DELETE, true);
	if (c)
		call_submit(ctx, req, c);
}

static void api_memory_rows_insert(sdk_req *req, void *ctx)
{
	mem_call *c = call_new(ctx, req, MEM_OP_ROWS_INSERT, true);
	if (c && copy_body(req, c))
		call_submit(ctx, req, c);
}

static void api_memory_rows_query(sdk_req *req, void *ctx)
{
	mem_call *c = call_new(ctx, req, MEM_OP_ROWS_QUERY, true);
	if (!c)
		return;
	unsigned long long limit;
	if (sdk_req_query_uint(req, "limit", 1, MEM_LIMIT_MAX, MEM_LIMIT_DEFAULT, &limit) < 0) {
		mem_call_free(c);
		return;
	}
	c->limit = (unsigned)limit;
	if (!copy_query(req, "where", &c->where) || !copy_query(req, "order", &c->order) ||
	    !copy_query(req, "cursor", &c->cursor) || !copy_query(req, "q", &c->q)) {
		mem_call_free(c);
		return;
	}
	call_submit(ctx, req, c);
}

static void api_memory_row_get(sdk_req *req, void *ctx)
{
	mem_call *c = call_new(ctx, req, MEM_OP_ROW_GET, true);
	if (c && row_id(req, c))
		call_submit(ctx, req, c);
}

static void api_memory_row_patch(sdk_req *req, void *ctx)
{
	mem_call *c = call_new(ctx, req, MEM_OP_ROW_PATCH, true);
	if (c && row_id(req, c) && copy_body(req, c))
		call_submit(ctx, req, c);
}

static void api_memory_row_delete(sdk_req *req, void *ctx)
{
	mem_call *c = call_new(ctx, req, MEM_OP_ROW_DELETE, true);
	if (c && row_id(req, c))
		call_submit(ctx, req, c);
}

/* Shares: the admin names the owner; every user named must exist. */
static bool admin_only(sdk_req *req)
{
	int role = 0;
	sdk_req_user(req, &role);
	if (role == AUTH_ROLE_ADMIN)
		return true;
	sdk_reply_error(req, 403, "forbidden", "only an admin shares tables");
	return false;
}

static bool users_check(api_ctx *api, sdk_req *req, json_t *users)
{
	if (!json_is_array(users) || json_array_size(users) == 0 ||
	    json_array_size(users) > MEM_SHARES_MAX) {
		sdk_reply_error(req, 400, "invalid", "users is an array of 1 to %d user names",
				MEM_SHARES_MAX);
		return false;
	}
	size_t i;
	json_t *u;
	json_array_foreach(users, i, u) {
		const char *name = json_string_value(u);
		if (!name || !auth_name_valid(name) ||
		    auth_user_get(api->auth->store, name, NULL, NULL) < 0) {
			sdk_reply_error(req, 400, "invalid", "users[%zu] is not a known user", i);
			return false;
		}
	}
	return true;
}

/* The owner, from the body or the query; frees `c` after answering 400
 * when missing. */
static bool owner_required(sdk_req *req, mem_call *c, json_t *body)
{
	const char *o = json_string_value(json_object_get(body, "owner"));
	if (o && auth_name_valid(o))
		snprintf(c->owner, sizeof c->owner, "%s", o);
	if (!c->owner[0]) {
		sdk_reply_error(req, 400, "invalid", "owner (the table's owner) is required");
		mem_call_free(c);
		return false;
	}
	return true;
}

static void api_memory_shares_add(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	if (!admin_only(req))
		return;
	json_t *body = sdk_req_json(req, true);
	if (!body)
		return;
	mem_call *c = call_new(api, req, MEM_OP_SHARES_ADD, true);
	if (!c || !owner_required(req, c, body))
		return;
	json_t *users = json_object_get(body, "users");
	if (!users_check(api, req, users)) {
		mem_call_free(c);
		return;
	}
	c->users = json_deep_copy(users); /* the worker must not share the request's JSON */
	if (!c->users) {
		sdk_reply_error(req, 503, "busy", "out of memory");
		mem_call_free(c);
		return;
	}
	call_submit(api, req, c);
}

static void api_memory_shares_list(sdk_req *req, void *ctx)
{
	if (!admin_only(req))
		return;
	mem_call *c = call_new(ctx, req, MEM_OP_SHARES_LIST, true);
	if (c && owner_required(req, c, NULL))
		call_submit(ctx, req, c);
}

/* DELETE .../shares?owner=O&users=a,b (a DELETE carries no body). */
static void api_memory_shares_remove(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	if (!admin_only(req))
		return;
	mem_call *c = call_new(api, req, MEM_OP_SHARES_REMOVE, true);
	if (!c || !owner_required(req, c, NULL))
		return;
	const char *list = sdk_req_query(req, "users");
	c->users = json_array();
	if (!list || !*list || !c->users || strlen(list) > MEM_SHARES_MAX * (AUTH_NAME_MAX + 1)) {
		sdk_reply_error(req, 400, "invalid", "users=a,b,... names the users to unshare");
		mem_call_free(c);
		return;
	}
	for (const char *p = list; *p;) {
		size_t n = strcspn(p, ",");
		char name[AUTH_NAME_MAX + 1];
		if (n == 0 || n > AUTH_NAME_MAX || json_array_size(c->users) >= MEM_SHARES_MAX) {
			sdk_reply_error(req, 400, "invalid",
					"users=a,b,... names the users to unshare");
			mem_call_free(c);
			return;
		}
		memcpy(name, p, n);
		name[n] = '\0';
		if (!auth_name_valid(name)) {
			sdk_reply_error(req, 400, "invalid", "users: a name is not a user name");
			mem_call_free(c);
			return;
		}
		json_array_append_new(c->users, json_string(name));
		p += n;
		if (*p == ',')
			p++;
	}
	call_submit(api, req, c);
}

/* Memory tables: rows, queries, shares */
static const sdk_route routes[] = {
	API_USER("POST", "/memory/tables", api_memory_tables_create),
	API_USER("GET", "/memory/tables", api_memory_tables_list),
	API_USER("GET", "/memory/tables/:table", api_memory_table_get),
	API_USER("DELETE", "/memory/tables/:table", api_memory_table_delete),
	API_USER("POST", "/memory/tables/:table/rows", api_memory_rows_insert),
	API_USER("GET", "/memory/tables/:table/rows", api_memory_rows_query),
	API_USER("GET", "/memory/tables/:table/rows/:id", api_memory_row_get),
	API_USER("PATCH", "/memory/tables/:table/rows/:id", api_memory_row_patch),
	API_USER("DELETE", "/memory/tables/:table/rows/:id", api_memory_row_delete),
	API_ADMIN("POST", "/memory/tables/:table/shares", api_memory_shares_add),
	API_ADMIN("GET", "/memory/tables/:table/shares", api_memory_shares_list),
	API_ADMIN("DELETE", "/memory/tables/:table/shares", api_memory_shares_remove),
};
const api_family api_memory_family = { "memory", routes, sizeof routes / sizeof routes[0] };
