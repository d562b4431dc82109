/* /memory: users' tables of JSON rows. Each handler reads what it needs
 * from the request on the loop (path, query, a copy of the body), the
 * store does the SQLite work on the memory worker pool, and the answer is
 * sent back on the loop. The store decides who sees what: another user's
 * table is a 404, a table shared read-only refuses writes with a 403. */
#include "serve/api/api.h"
#include "sdk/clock.h"

#include "serve/memory/store.h"
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
#define MEM_QUEUE_MAX 64 /* jobs waiting; each may hold a body of up to max_body_bytes */

struct api_memory {
	mem_store *store;
	sdk_pool *pool;
};

enum job_kind {
	JOB_TABLE_CREATE,
	JOB_TABLE_LIST,
	JOB_TABLE_GET,
	JOB_TABLE_DELETE,
	JOB_ROWS_INSERT,
	JOB_ROWS_QUERY,
	JOB_ROW_GET,
	JOB_ROW_PATCH,
	JOB_ROW_DELETE,
	JOB_SHARES_ADD,
	JOB_SHARES_LIST,
	JOB_SHARES_REMOVE,
};

/* One request's work: filled on the loop, run on a worker, answered and
 * freed on the loop. */
struct mem_job {
	api_memory *m;
	sdk_req *req;
	enum job_kind kind;
	char user[AUTH_NAME_MAX + 1];
	char owner[AUTH_NAME_MAX + 1]; /* "" : the caller's own */
	char table[MEM_NAME_MAX + 1];
	int64_t id;
	int64_t now_ms;
	char *body; /* a copy of the request body */
	size_t body_len;
	json_t *users; /* shares */
	char *where, *order, *cursor, *q;
	unsigned limit;
	/* results */
	bool ran;
	int ok_status;
	mem_error err;
	json_t *reply;
	mem_buf text;
};

api_memory *api_memory_open(const grace_config *cfg, struct event_base *base)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned threads = cpus < MEM_THREADS_MIN   ? MEM_THREADS_MIN
			   : cpus > MEM_THREADS_MAX ? MEM_THREADS_MAX
						    : (unsigned)cpus;
	api_memory *m = calloc(1, sizeof *m);
	char err[512];
	if (!m)
		return NULL;
	m->store = mem_store_open(cfg->data_dir, threads, err, sizeof err);
	if (!m->store) {
		sdk_error("memory: cannot open %s/memory.db: %s", cfg->data_dir, err);
		free(m);
		return NULL;
	}
	m->pool = sdk_pool_new(base, threads, MEM_QUEUE_MAX);
	if (!m->pool) {
		sdk_error("memory: cannot start the worker pool");
		mem_store_close(m->store);
		free(m);
		return NULL;
	}
	return m;
}

void api_memory_close(api_memory *m)
{
	if (!m)
		return;
	sdk_pool_free(m->pool); /* answers the jobs still queued */
	mem_store_close(m->store);
	free(m);
}

static void job_free(struct mem_job *j)
{
	free(j->body);
	free(j->where);
	free(j->order);
	free(j->cursor);
	free(j->q);
	json_decref(j->users);
	json_decref(j->reply);
	mem_buf_free(&j->text);
	free(j);
}

static json_t *body_json(struct mem_job *j)
{
	json_error_t je;
	json_t *b =
		j->body_len ? json_loadb(j->body, j->body_len, JSON_REJECT_DUPLICATES, &je) : NULL;
	if (!b) {
		j->err.status = MEM_E_INVALID;
		if (j->body_len)
			snprintf(j->err.msg, sizeof j->err.msg,
				 "invalid JSON at line %d column %d: %s", je.line, je.column,
				 je.text);
		else
			snprintf(j->err.msg, sizeof j->err.msg, "a JSON body is required");
	}
	return b;
}

/* On a worker thread: touches only the job and the store. */
static void job_work(void *arg)
{
	struct mem_job *j = arg;
	mem_store *s = j->m->store;
	mem_error *e = &j->err;
	const char *owner = j->owner[0] ? j->owner : NULL;
	json_t *body = NULL;
	j->ran = true;
	switch (j->kind) {
	case JOB_TABLE_CREATE:
		if ((body = body_json(j)))
			j->reply = mem_table_create(s, j->user, body, j->now_ms, e);
		break;
	case JOB_TABLE_LIST: j->reply = mem_table_list(s, j->user, e); break;
	case JOB_TABLE_GET: j->reply = mem_table_get(s, j->user, owner, j->table, e); break;
	case JOB_TABLE_DELETE: j->reply = mem_table_delete(s, j->user, owner, j->table, e); break;
	case JOB_ROWS_INSERT:
		if ((body = body_json(j)))
			j->reply = mem_rows_insert(s, j->user, owner, j->table, body, j->now_ms, e);
		break;
	case JOB_ROWS_QUERY: {
		mem_query q = { .where = j->where,
				.order = j->order,
				.cursor = j->cursor,
				.q = j->q,
				.limit = j->limit };
		mem_rows_query(s, j->user, owner, j->table, &q, &j->text, e);
		break;
	}
	case JOB_ROW_GET: mem_row_get(s, j->user, owner, j->table, j->id, &j->text, e); break;
	case JOB_ROW_PATCH:
		if ((body = body_json(j)))
			mem_row_patch(s, j->user, owner, j->table, j->id, body, j->now_ms, &j->text,
				      e);
		break;
	case JOB_ROW_DELETE:
		j->reply = mem_row_delete(s, j->user, owner, j->table, j->id, e);
		break;
	case JOB_SHARES_ADD:
		j->reply = mem_shares_add(s, j->owner, j->table, j->users, j->now_ms, e);
		break;
	case JOB_SHARES_LIST: j->reply = mem_shares_list(s, j->owner, j->table, e); break;
	case JOB_SHARES_REMOVE:
		j->reply = mem_shares_remove(s, j->owner, j->table, j->users, e);
		break;
	}
	json_decref(body);
}

static void reply_error(sdk_req *req, const mem_error *e)
{
	static const struct {
		int status;
		const char *code;
	} map[] = {
		[MEM_OK] = { 500, "internal" },
		[MEM_E_INVALID] = { 400, "invalid" },
		[MEM_E_NOT_FOUND] = { 404, "not_found" },
		[MEM_E_EXISTS] = { 409, "exists" },
		[MEM_E_READ_ONLY] = { 403, "read_only" },
		[MEM_E_LIMIT] = { 409, "limit_reached" },
		[MEM_E_TOO_LARGE] = { 413, "too_large" },
		[MEM_E_BUSY] = { 503, "busy" },
		[MEM_E_TIMEOUT] = { 503, "timeout" },
		[MEM_E_IO] = { 500, "storage" },
	};
	unsigned k = (unsigned)e->status < sizeof map / sizeof *map ? (unsigned)e->status : MEM_OK;
	int status = map[k].status;
	if (status >= 500) {
		/* The details are for the log, not for the client. */
		sdk_log(SDK_LOG_WARN, sdk_req_id(req), "memory: %s",
			e->msg[0] ? e->msg : "no result");
		if (status == 503)
			sdk_req_add_header(req, "Retry-After", "1");
		sdk_reply_error(req, status, map[k].code, "%s",
				status == 503 ? e->msg
					      : "the memory store failed; see the server log");
		return;
	}
	sdk_reply_error(req, status, map[k].code, "%s", e->msg);
}

/* On the loop. */
static void job_done(void *arg)
{
	struct mem_job *j = arg;
	if (!j->ran) {
		sdk_req_add_header(j->req, "Retry-After", "1");
		sdk_reply_error(j->req, 503, "shutting_down", "the server is stopping");
	} else if (j->reply) {
		sdk_reply_json(j->req, j->ok_status, j->reply);
		j->reply = NULL;
	} else if (j->text.len && j->err.status == MEM_OK && !j->text.oom) {
		struct evbuffer *b = evbuffer_new();
		if (!b || evbuffer_add(b, j->text.p, j->text.len) < 0 ||
		    evbuffer_add(b, "\n", 1) < 0) {
			if (b)
				evbuffer_free(b);
			sdk_reply_error(j->req, 500, "internal", "out of memory");
		} else {
			sdk_reply_raw(j->req, j->ok_status, "application/json", b);
			evbuffer_free(b);
		}
	} else {
		reply_error(j->req, &j->err);
	}
	job_free(j);
}

static void job_submit(struct mem_job *j)
{
	if (sdk_pool_submit(j->m->pool, job_work, job_done, j) < 0) {
		sdk_req_add_header(j->req, "Retry-After", "1");
		sdk_reply_error(j->req, 503, "busy", "too many memory requests waiting");
		job_free(j);
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

/* A job for the caller, with the table (and owner) from the request; NULL
 * after answering when something is wrong with them. */
static struct mem_job *job_new(api_ctx *api, sdk_req *req, enum job_kind kind, bool has_table)
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
	struct mem_job *j = calloc(1, sizeof *j);
	if (!j) {
		sdk_reply_error(req, 503, "busy", "out of memory");
		return NULL;
	}
	j->m = api->mem;
	j->req = req;
	j->kind = kind;
	j->ok_status = 200;
	j->now_ms = sdk_wall_ms();
	snprintf(j->user, sizeof j->user, "%s", user);
	snprintf(j->owner, sizeof j->owner, "%s", owner ? owner : "");
	snprintf(j->table, sizeof j->table, "%s", table ? table : "");
	return j;
}

static bool copy_body(struct mem_job *j)
{
	struct evbuffer *b = sdk_req_body(j->req);
	j->body_len = evbuffer_get_length(b);
	if (!j->body_len)
		return true;
	j->body = malloc(j->body_len);
	if (!j->body || evbuffer_copyout(b, j->body, j->body_len) != (ev_ssize_t)j->body_len) {
		sdk_reply_error(j->req, 503, "busy", "out of memory");
		job_free(j);
		return false;
	}
	return true;
}

/* The :id of a row: a positive decimal integer. */
static bool row_id(struct mem_job *j)
{
	const char *s = sdk_req_param(j->req, "id");
	char *end;
	errno = 0;
	long long v = s && *s >= '1' && *s <= '9' ? strtoll(s, &end, 10) : 0;
	if (v <= 0 || errno || *end) {
		sdk_reply_error(j->req, 400, "invalid", "a row id is a positive integer");
		job_free(j);
		return false;
	}
	j->id = v;
	return true;
}

void api_memory_tables_create(sdk_req *req, void *ctx)
{
	struct mem_job *j = job_new(ctx, req, JOB_TABLE_CREATE, false);
	if (!j || !copy_body(j))
		return;
	j->ok_status = 201;
	job_submit(j);
}

void api_memory_tables_list(sdk_req *req, void *ctx)
{
	struct mem_job *j = job_new(ctx, req, JOB_TABLE_LIST, false);
	if (j)
		job_submit(j);
}

void api_memory_table_get(sdk_req *req, void *ctx)
{
	struct mem_job *j = job_new(ctx, req, JOB_TABLE_GET, true);
	if (j)
		job_submit(j);
}

void api_memory_table_delete(sdk_req *req, void *ctx)
{
	struct mem_job *j = job_new(ctx, req, JOB_TABLE_DELETE, true);
	if (j)
		job_submit(j);
}

void api_memory_rows_insert(sdk_req *req, void *ctx)
{
	struct mem_job *j = job_new(ctx, req, JOB_ROWS_INSERT, true);
	if (!j || !copy_body(j))
		return;
	j->ok_status = 201;
	job_submit(j);
}

void api_memory_rows_query(sdk_req *req, void *ctx)
{
	struct mem_job *j = job_new(ctx, req, JOB_ROWS_QUERY, true);
	if (!j)
		return;
	unsigned long long limit;
	if (sdk_req_query_uint(req, "limit", 1, MEM_LIMIT_MAX, MEM_LIMIT_DEFAULT, &limit) < 0) {
		job_free(j);
		return;
	}
	j->limit = (unsigned)limit;
	if (!copy_query(req, "where", &j->where) || !copy_query(req, "order", &j->order) ||
	    !copy_query(req, "cursor", &j->cursor) || !copy_query(req, "q", &j->q)) {
		job_free(j);
		return;
	}
	job_submit(j);
}

void api_memory_row_get(sdk_req *req, void *ctx)
{
	struct mem_job *j = job_new(ctx, req, JOB_ROW_GET, true);
	if (j && row_id(j))
		job_submit(j);
}

void api_memory_row_patch(sdk_req *req, void *ctx)
{
	struct mem_job *j = job_new(ctx, req, JOB_ROW_PATCH, true);
	if (j && row_id(j) && copy_body(j))
		job_submit(j);
}

void api_memory_row_delete(sdk_req *req, void *ctx)
{
	struct mem_job *j = job_new(ctx, req, JOB_ROW_DELETE, true);
	if (j && row_id(j))
		job_submit(j);
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
		    auth_user_get(api->auth->db, name, NULL, NULL) < 0) {
			sdk_reply_error(req, 400, "invalid", "users[%zu] is not a known user", i);
			return false;
		}
	}
	return true;
}

/* The owner, from the body or the query; answers 400 when missing. */
static bool owner_required(struct mem_job *j, json_t *body)
{
	const char *o = json_string_value(json_object_get(body, "owner"));
	if (o && auth_name_valid(o))
		snprintf(j->owner, sizeof j->owner, "%s", o);
	if (!j->owner[0]) {
		sdk_reply_error(j->req, 400, "invalid", "owner (the table's owner) is required");
		job_free(j);
		return false;
	}
	return true;
}

void api_memory_shares_add(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	if (!admin_only(req))
		return;
	json_t *body = sdk_req_json(req, true);
	if (!body)
		return;
	struct mem_job *j = job_new(api, req, JOB_SHARES_ADD, true);
	if (!j || !owner_required(j, body))
		return;
	json_t *users = json_object_get(body, "users");
	if (!users_check(api, req, users)) {
		job_free(j);
		return;
	}
	j->users = json_deep_copy(users); /* the worker must not share the request's JSON */
	if (!j->users) {
		sdk_reply_error(req, 503, "busy", "out of memory");
		job_free(j);
		return;
	}
	job_submit(j);
}

void api_memory_shares_list(sdk_req *req, void *ctx)
{
	if (!admin_only(req))
		return;
	struct mem_job *j = job_new(ctx, req, JOB_SHARES_LIST, true);
	if (j && owner_required(j, NULL))
		job_submit(j);
}

/* DELETE .../shares?owner=O&users=a,b (a DELETE carries no body). */
void api_memory_shares_remove(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	if (!admin_only(req))
		return;
	struct mem_job *j = job_new(api, req, JOB_SHARES_REMOVE, true);
	if (!j || !owner_required(j, NULL))
		return;
	const char *list = sdk_req_query(req, "users");
	j->users = json_array();
	if (!list || !*list || !j->users || strlen(list) > MEM_SHARES_MAX * (AUTH_NAME_MAX + 1)) {
		sdk_reply_error(req, 400, "invalid", "users=a,b,... names the users to unshare");
		job_free(j);
		return;
	}
	for (const char *p = list; *p;) {
		size_t n = strcspn(p, ",");
		char name[AUTH_NAME_MAX + 1];
		if (n == 0 || n > AUTH_NAME_MAX || json_array_size(j->users) >= MEM_SHARES_MAX) {
			sdk_reply_error(req, 400, "invalid",
					"users=a,b,... names the users to unshare");
			job_free(j);
			return;
		}
		memcpy(name, p, n);
		name[n] = '\0';
		if (!auth_name_valid(name)) {
			sdk_reply_error(req, 400, "invalid", "users: a name is not a user name");
			job_free(j);
			return;
		}
		json_array_append_new(j->users, json_string(name));
		p += n;
		if (*p == ',')
			p++;
	}
	job_submit(j);
}
