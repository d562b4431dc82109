/* The librarian kernel (8130): documents in, ranked full-text search out. */
#include "kernels/librarian/store.h"
#include "kernels/registry.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int status_of(int rc)
{
	switch (rc) {
	case LIB_EINVAL: return 400;
	case LIB_ENOTFOUND: return 404;
	case LIB_EDENIED: return 403;
	default: return 500;
	}
}

static const char *code_of(int rc)
{
	switch (rc) {
	case LIB_EINVAL: return "invalid";
	case LIB_ENOTFOUND: return "not_found";
	case LIB_EDENIED: return "forbidden";
	default: return "storage";
	}
}

static void reply_lib_error(sdk_req *req, int rc, const lib_err *e)
{
	sdk_reply_error(req, status_of(rc), code_of(rc), "%s", e->msg);
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
	int64_t id;
	lib_err e;
	int rc = lib_doc_put(k->db, title, text, json_is_null(tags) ? NULL : tags, source, &id, &e);
	if (rc < 0) {
		reply_lib_error(req, rc, &e);
		return;
	}
	sdk_reply_json(req, 201, json_pack("{s:I}", "id", (json_int_t)id));
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

static void on_delete(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	int64_t id;
	if (doc_id(req, &id) < 0)
		return;
	lib_err e;
	int rc = lib_doc_delete(k->db, id, &e);
	if (rc < 0)
		reply_lib_error(req, rc, &e);
	else
		sdk_reply_json(req, 200, json_pack("{s:I, s:b}", "id", (json_int_t)id, "deleted", 1));
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
	json_t *out;
	lib_err e;
	int rc = lib_ingest(k->db, k->cfg->library_root, path, &out, &e);
	if (rc < 0)
		reply_lib_error(req, rc, &e);
	else
		sdk_reply_json(req, 200, out);
}

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
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	json_t *out;
	lib_err e;
	int rc = lib_search(k->db, query, sdk_req_query(req, "tag"), (unsigned)limit, &out, &e);
	if (rc < 0) {
		reply_lib_error(req, rc, &e);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	json_object_set_new(out, "query_ms", json_real(ms));
	sdk_reply_json(req, 200, out);
}

static int librarian_init(sdk_kernel *k, char *err, size_t errlen)
{
	lib_err e;
	if (lib_store_init(k->db, &e) < 0) {
		snprintf(err, errlen, "%s", e.msg);
		return -1;
	}
	return 0;
}

static const sdk_route librarian_routes[] = {
	SDK_ROUTE("POST", "/documents", on_put),
	SDK_ROUTE("GET", "/documents/:id", on_get),
	SDK_ROUTE("DELETE", "/documents/:id", on_delete),
	SDK_ROUTE("POST", "/ingest", on_ingest),
	SDK_ROUTE("GET", "/search", on_search),
};

const sdk_kernel_def librarian_kernel = {
	.name = "librarian",
	.summary = "documents, ingestion, ranked full-text search with snippets",
	.complete = true,
	.routes = librarian_routes,
	.n_routes = sizeof librarian_routes / sizeof librarian_routes[0],
	.init = librarian_init,
};
