/* The librarian kernel (8130): documents in, ranked full-text search out.
 *
 * Routes (behind the API's /librarian prefix; the caller is who the
 * gateway says, sdk_req_caller):
 *   POST   /documents             {"title","body","tags"?,"source"?} -> 201 {"id"}
 *   POST   /documents/_bulk       NDJSON, one such document a line (bulk.h)
 *   GET    /documents/:id         anyone
 *   DELETE /documents/:id         its owner or an admin (403 otherwise)
 *   GET    /search?query=&tag=&limit=
 *   POST   /ingest                {"path"} -> 200 report (small) or 202 job
 *   GET    /ingest/jobs           your ingests (an admin: all), newest first
 *   GET    /ingest/jobs/:id       one, with progress and errors by file
 *   DELETE /ingest/jobs/:id       cancel (its owner or an admin)
 *   DELETE /owners/:name          admin: the user is gone (see store.h)
 *
 * Reads run on the loop's connection (WAL: a reader never waits for the
 * writer), searches on the readers, and every write on the writer's
 * thread (workers.h), so the loop never waits for the write lock. */
#include "kernels/librarian/bulk.h"
#include "kernels/librarian/index.h"
#include "kernels/librarian/jobs.h"
#include "kernels/librarian/workers.h"
#include "kernels/librarian/store.h"
#include "kernels/registry.h"

#include "sdk/clock.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define LIB_JOBS_LIST_DEFAULT 50
#define LIB_JOBS_LIST_MAX 1000

/* k->state: the ingests' worker and the searches' workers. */
struct lib_state {
	lib_jobs *jobs;
	lib_workers *workers;
};

static lib_jobs *jobs_of(sdk_kernel *k)
{
	return ((struct lib_state *)k->state)->jobs;
}

static void reply_lib_error(sdk_req *req, int rc, const lib_err *e)
{
	sdk_reply_status(req, rc, e);
}

/* Who asks: the caller the gateway vouches for, or nobody. */
static lib_actor actor_of(sdk_req *req, const sdk_kernel *k)
{
	int role;
	const char *name = sdk_req_caller(req, k->token, &role);
	return (lib_actor){ .name = name, .admin = name && role == SDK_CALLER_ADMIN };
}

/* Parses the :id path parameter; answers 400 and returns -1 when bad. */
static int doc_id(sdk_req *req, int64_t *id)
{
	const char *s = sdk_req_param(req, "id");
	char *end;
	errno = 0;
	long long v = s ? strtoll(s, &end, 10) : 0;
	if (!s || !*s || *end || errno || v <= 0) {
		sdk_reply_error(req, 400, "bad_id", "document id must be a positive integer");
		return -1;
	}
	*id = v;
	return 0;
}

static const char *opt_string(json_t *body, const char *key, bool *bad)
{
	json_t *v = json_object_get(body, key);
	if (!v || json_is_null(v))
		return NULL;
	if (!json_is_string(v))
		*bad = true;
	return json_string_value(v);
}

/* A handler's write, run on the writer (lib_workers_write): what it
 * needs, copied off the request. Strings malloc'd, freed by write_arg_free. */
struct write_arg {
	int64_t id;
	char *name; /* the caller (NULL: none), or the owner released */
	bool admin;
	lib_quota quota;
	char *title, *body, *tags, *source;
};

static void write_arg_free(void *arg)
{
	struct write_arg *a = arg;
	free(a->name);
	free(a->title);
	free(a->body);
	free(a->tags);
	free(a->source);
	free(a);
}

/* A copy of s (NULL stays NULL); false when memory ran out. */
static bool dup_opt(char **out, const char *s)
{
	*out = s ? strdup(s) : NULL;
	return !s || *out;
}

/* A write_arg for `who`, or NULL after answering 500. */
static struct write_arg *write_arg_new(sdk_req *req, const lib_actor *who, const char *name)
{
	struct write_arg *a = calloc(1, sizeof *a);
	if (a && dup_opt(&a->name, name)) {
		a->admin = who->admin;
		return a;
	}
	free(a);
	sdk_reply_error(req, 500, "internal", "out of memory");
	return NULL;
}

static void writes(sdk_kernel *k, sdk_req *req, const lib_actor *who, lib_write_fn fn,
		   struct write_arg *a, int ok_status)
{
	lib_workers_write(((struct lib_state *)k->state)->workers, req, who->name, fn, a,
			  write_arg_free, ok_status);
}

/* On the writer. */
static int put_write(sqlite3 *db, lib_ix *single, void *arg, lib_write_res *res, sdk_err *err)
{
	struct write_arg *a = arg;
	int64_t id;
	int rc = lib_doc_put_checked(db, single, a->name, &a->quota, a->title, a->body, a->tags,
				     a->source, &id, err);
	if (rc)
		return rc;
	/* Its postings are pending (index.h): the writer merges them later. */
	res->staged = 1;
	res->out = json_pack("{s:I}", "id", (json_int_t)id);
	return res->out ? SDK_OK : sdk_fail(err, SDK_EIO, "out of memory");
}

/* Checked here, written on the writer: a bad document is answered at once. */
static void on_put(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	json_t *body = sdk_req_json(req, true);
	if (!body)
		return;
	bool bad = false;
	const char *title = opt_string(body, "title", &bad);
	const char *text = opt_string(body, "body", &bad);
	const char *source = opt_string(body, "source", &bad);
	json_t *tags = json_object_get(body, "tags");
	if (bad || !title || !text) {
		sdk_reply_error(req, 400, "invalid",
				"title and body are required strings; source is a string");
		return;
	}
	lib_err e;
	char *tags_text = NULL;
	int rc = lib_check_doc(title, text, source, &e);
	if (!rc)
		rc = lib_tags_text(json_is_null(tags) ? NULL : tags, &tags_text, &e);
	if (rc) {
		free(tags_text);
		reply_lib_error(req, rc, &e);
		return;
	}
	lib_actor who = actor_of(req, k);
	struct write_arg *a = write_arg_new(req, &who, who.name);
	if (!a) {
		free(tags_text);
		return;
	}
	a->quota = lib_jobs_quota(jobs_of(k));
	a->tags = tags_text;
	if (!dup_opt(&a->title, title) || !dup_opt(&a->body, text) ||
	    !dup_opt(&a->source, source)) {
		write_arg_free(a);
		sdk_reply_error(req, 500, "internal", "out of memory");
		return;
	}
	writes(k, req, &who, put_write, a, 201);
}

/* NDJSON, one document a line (bulk.h); run on the writer thread. */
static void on_bulk(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	lib_actor who = actor_of(req, k);
	lib_quota quota = lib_jobs_quota(jobs_of(k));
	lib_workers_bulk(((struct lib_state *)k->state)->workers, req, who.name, who.admin, &quota);
}

static void on_get(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	int64_t id;
	if (doc_id(req, &id) < 0)
		return;
	json_t *doc;
	lib_err e;
	int rc = lib_doc_get(k->db, id, &doc, &e);
	if (rc < 0)
		reply_lib_error(req, rc, &e);
	else
		sdk_reply_json(req, 200, doc);
}

static int delete_write(sqlite3 *db, lib_ix *single, void *arg, lib_write_res *res,
			sdk_err *err)
{
	(void)single;
	struct write_arg *a = arg;
	lib_actor who = { .name = a->name, .admin = a->admin };
	int rc = lib_doc_delete_as(db, &who, a->id, err);
	if (rc)
		return rc;
	res->out = json_pack("{s:I, s:b}", "id", (json_int_t)a->id, "deleted", 1);
	return res->out ? SDK_OK : sdk_fail(err, SDK_EIO, "out of memory");
}

static void on_delete(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	int64_t id;
	if (doc_id(req, &id) < 0)
		return;
	lib_actor who = actor_of(req, k);
	struct write_arg *a = write_arg_new(req, &who, who.name);
	if (!a)
		return;
	a->id = id;
	writes(k, req, &who, delete_write, a, 200);
}

static void on_ingest(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	json_t *body = sdk_req_json(req, true);
	if (!body)
		return;
	bool bad = false;
	const char *path = opt_string(body, "path", &bad);
	if (bad || !path || !*path) {
		sdk_reply_error(req, 400, "invalid", "path is a required string");
		return;
	}
	lib_actor who = actor_of(req, k);
	lib_jobs_start(jobs_of(k), req, &who, path);
}

static void on_jobs_list(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	unsigned long long limit;
	if (sdk_req_query_uint(req, "limit", 1, LIB_JOBS_LIST_MAX, LIB_JOBS_LIST_DEFAULT,
			       &limit) < 0)
		return;
	lib_actor who = actor_of(req, k);
	json_t *out;
	lib_err e;
	int rc = lib_job_list(k->db, &who, (unsigned)limit, &out, &e);
	if (rc < 0)
		reply_lib_error(req, rc, &e);
	else
		sdk_reply_json(req, 200, out);
}

static void on_job_get(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	int64_t id;
	if (doc_id(req, &id) < 0)
		return;
	lib_actor who = actor_of(req, k);
	json_t *out;
	lib_err e;
	int rc = lib_job_get(k->db, &who, id, &out, &e);
	if (rc < 0)
		reply_lib_error(req, rc, &e);
	else
		sdk_reply_json(req, 200, out);
}

static int cancel_write(sqlite3 *db, lib_ix *single, void *arg, lib_write_res *res,
			sdk_err *err)
{
	(void)single;
	struct write_arg *a = arg;
	lib_actor who = { .name = a->name, .admin = a->admin };
	int rc = lib_job_cancel(db, &who, a->id, sdk_wall_ms(), err);
	return rc ? rc : lib_job_get(db, &who, a->id, &res->out, err);
}

static void on_job_cancel(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	int64_t id;
	if (doc_id(req, &id) < 0)
		return;
	lib_actor who = actor_of(req, k);
	struct write_arg *a = write_arg_new(req, &who, who.name);
	if (!a)
		return;
	a->id = id;
	writes(k, req, &who, cancel_write, a, 200);
}

static int release_write(sqlite3 *db, lib_ix *single, void *arg, lib_write_res *res,
			 sdk_err *err)
{
	(void)single;
	struct write_arg *a = arg;
	return lib_owner_release(db, a->name, sdk_wall_ms(), &res->out, err);
}

/* A user was deleted in the main process: their documents lose their
 * owner, their ingests stop. Admin only (the purge calls it as admin). */
static void on_owner_release(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	lib_actor who = actor_of(req, k);
	const char *name = sdk_req_param(req, "name");
	lib_err e;
	if (!who.admin) {
		sdk_fail(&e, SDK_EDENIED, "only an admin releases a user's documents");
		reply_lib_error(req, SDK_EDENIED, &e);
		return;
	}
	if (!name || !*name || strlen(name) > LIB_OWNER_MAX) {
		sdk_reply_error(req, 400, "invalid", "a user name is 1 to %u bytes", LIB_OWNER_MAX);
		return;
	}
	/* Every document of theirs is changed: off the loop like any write. */
	struct write_arg *a = write_arg_new(req, &who, name);
	if (a)
		writes(k, req, &who, release_write, a, 200);
}

/* Parsed here, run on a reader (workers.h): never on the loop. */
static void on_search(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	const char *query = sdk_req_query(req, "query");
	if (!query)
		query = sdk_req_query(req, "q");
	if (!query || !*query) {
		sdk_reply_error(req, 400, "invalid", "query is required");
		return;
	}
	unsigned long long limit;
	if (sdk_req_query_uint(req, "limit", 1, LIB_SEARCH_LIMIT_MAX, 10, &limit) < 0)
		return;
	lib_actor who = actor_of(req, k);
	lib_workers_search(((struct lib_state *)k->state)->workers, req, who.name, query,
			   sdk_req_query(req, "tag"), (unsigned)limit);
}

/* The writer's connection and its thread, and the search workers' threads:
 * in a standby, while it waits. The workers open their connections at
 * their first search, after init (and so after the migration). */
static int librarian_prepare(sdk_kernel *k, sdk_err *err)
{
	lib_err e;
	struct lib_state *st = calloc(1, sizeof *st);
	if (!st) {
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	k->state = st;
	if (!(st->jobs = lib_jobs_new(k, &e)) || !(st->workers = lib_workers_new(k, &e))) {
		return sdk_fail(err, SDK_EIO, "%s", e.msg);
	}
	return 0;
}

static int librarian_init(sdk_kernel *k, sdk_err *err)
{
	lib_err e;
	struct lib_state *st = k->state;
	if (lib_store_init(k->db, &e) < 0 || lib_jobs_resume(st->jobs, &e) < 0) {
		return sdk_fail(err, SDK_EIO, "%s", e.msg);
	}
	lib_workers_staged(st->workers, 0); /* what a crash left pending, merged once idle */
	return 0;
}

static void librarian_drain(sdk_kernel *k)
{
	if (k->state && jobs_of(k))
		lib_jobs_drain(jobs_of(k));
}

static void librarian_close(sdk_kernel *k)
{
	struct lib_state *st = k->state;
	if (!st)
		return;
	lib_workers_free(st->workers);
	lib_jobs_free(st->jobs);
	free(st);
	k->state = NULL;
}

static const sdk_route librarian_routes[] = {
	SDK_ROUTE("POST", "/documents", on_put),
	SDK_ROUTE_BODY("POST", "/documents/_bulk", on_bulk, LIB_BULK_BODY_MAX),
	SDK_ROUTE_READS("GET", "/documents/:id", on_get),
	SDK_ROUTE("DELETE", "/documents/:id", on_delete),
	SDK_ROUTE("POST", "/ingest", on_ingest),
	SDK_ROUTE("GET", "/ingest/jobs", on_jobs_list),
	SDK_ROUTE("GET", "/ingest/jobs/:id", on_job_get),
	SDK_ROUTE("DELETE", "/ingest/jobs/:id", on_job_cancel),
	SDK_ROUTE("DELETE", "/owners/:name", on_owner_release),
	SDK_ROUTE_READS("GET", "/search", on_search),
};

static void librarian_metrics(sdk_kernel *k, struct evbuffer *out)
{
	struct lib_state *st = k->state;
	if (!st || !st->workers)
		return; /* not started yet */
	char name[64];
	sdk_metrics_escape(k->def->name, name, sizeof name);
	lib_workers_metrics(st->workers, name, out);
}

const sdk_kernel_def librarian_kernel = {
	.name = "librarian",
	.port = 8130, .tier = "agentic",
	.summary = "documents, ingestion, ranked full-text search with snippets",
	.complete = true,
	.schema_version = LIB_SCHEMA_VERSION,
	.migrations = lib_migrations,
	.n_migrations = LIB_SCHEMA_VERSION,
	.routes = librarian_routes,
	.n_routes = sizeof librarian_routes / sizeof librarian_routes[0],
	.prepare = librarian_prepare,
	.init = librarian_init,
	.drain = librarian_drain,
	.close = librarian_close,
	.metrics = librarian_metrics,
};
