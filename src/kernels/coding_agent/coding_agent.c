/* The coding_agent kernel (8132): patches tested before anyone sees them.
 * A task works in a fresh git worktree of a repository under the
 * configured workspace root, applies a given patch (unified diff or
 * search/replace blocks) or a model's edits turn by turn, runs the
 * repository's tests through the executor's sandbox before and after, and
 * reports the diff, the results (graded as SWE-bench grades) and every
 * command run, each an audit event. docs/coding_agent.md. */
#include "kernels/coding_agent/store.h"
#include "kernels/coding_agent/task.h"
#include "kernels/registry.h"
#include "sdk/clock.h"
#include "sdk/json_keys.h"
#include "sdk/log.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PAGE_DEFAULT 50

static ca *ca_of(void *ctx)
{
	return ((sdk_kernel *)ctx)->state;
}

/* Admins (through the gateway) and kernels; a user is refused (the
 * gateway's /coding-agent is admin-only; this holds on the kernel's own
 * port too). False when answered. */
static bool admin_or_kernel(sdk_req *req, ca *c, char *owner, size_t n)
{
	int role;
	const char *user = sdk_req_caller(req, c->k->token, &role);
	if (user) {
		if (role != SDK_CALLER_ADMIN) {
			sdk_reply_error(req, 403, "forbidden", "coding_agent tasks are for admins");
			return false;
		}
		snprintf(owner, n, "%s", user);
		return true;
	}
	const char *k = sdk_req_header(req, SDK_CALLER_HEADER);
	snprintf(owner, n, "kernel:%.40s", k && *k ? k : "internal");
	return true;
}

static void reply_task(sdk_req *req, ca *c, const char *id, int status)
{
	json_t *doc;
	sdk_err e;
	int rc = ca_store_get(c->k->db, id, &doc, &e);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	sdk_reply_json(req, status, doc);
}

/* ---- long polls */

static void waiter_free(ca_waiter *w)
{
	ca *c = w->c;
	if (w->prev)
		w->prev->next = w->next;
	else
		c->waiters = w->next;
	if (w->next)
		w->next->prev = w->prev;
	if (w->timer)
		event_free(w->timer);
	free(w);
}

static void waiter_answer(ca_waiter *w)
{
	sdk_req *req = w->req;
	ca *c = w->c;
	char id[CA_ID_LEN + 1];
	snprintf(id, sizeof id, "%s", w->id);
	sdk_req_on_close(req, NULL, NULL);
	waiter_free(w);
	reply_task(req, c, id, 200);
}

static void on_waiter_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	waiter_answer(arg);
}

static void on_waiter_close(sdk_req *req, void *arg)
{
	(void)req;
	waiter_free(arg);
}

void ca_wake(ca *c, const char *id)
{
	for (ca_waiter *w = c->waiters, *n; w; w = n) {
		n = w->next;
		if (!strcmp(w->id, id))
			waiter_answer(w);
	}
}

/* ---- routes */

static void on_submit(sdk_req *req, void *ctx)
{
	ca *c = ca_of(ctx);
	char owner[SDK_CALLER_NAME_MAX + 16];
	if (!admin_or_kernel(req, c, owner, sizeof owner))
		return;
	json_t *body = sdk_req_json(req, true);
	if (!body)
		return;
	static const char *const keys[] = { "repo",	    "base",	    "test_command",
					    "instructions", "patch",	    "fail_to_pass",
					    "pass_to_pass", "max_turns", NULL };
	if (sdk_req_fields_only(req, body, keys) < 0)
		return;
	char id[CA_ID_LEN + 1];
	sdk_err e = { "" };
	int rc = ca_task_submit(c, body, owner, id, &e);
	if (rc < 0) {
		if (rc == SDK_EBUSY)
			sdk_req_add_header(req, "Retry-After", "5");
		sdk_reply_status(req, rc, &e);
		return;
	}
	reply_task(req, c, id, 202);
}

static void on_get(sdk_req *req, void *ctx)
{
	ca *c = ca_of(ctx);
	char owner[SDK_CALLER_NAME_MAX + 16];
	if (!admin_or_kernel(req, c, owner, sizeof owner))
		return;
	const char *id = sdk_req_param(req, "id");
	unsigned long long wait;
	if (sdk_req_query_uint(req, "wait_ms", 0, CA_WAIT_MAX_MS, 0, &wait) < 0)
		return;
	if (!wait || !ca_task_find(c, id) || c->draining) {
		reply_task(req, c, id, 200);
		return;
	}
	ca_waiter *w = calloc(1, sizeof *w);
	if (!w || !(w->timer = evtimer_new(c->k->base, on_waiter_timer, w))) {
		free(w);
		reply_task(req, c, id, 200);
		return;
	}
	w->c = c;
	w->req = req;
	snprintf(w->id, sizeof w->id, "%s", id);
	w->next = c->waiters;
	if (c->waiters)
		c->waiters->prev = w;
	c->waiters = w;
	struct timeval tv = sdk_ms_tv(wait);
	evtimer_add(w->timer, &tv);
	sdk_req_on_close(req, on_waiter_close, w);
}

static void on_list(sdk_req *req, void *ctx)
{
	ca *c = ca_of(ctx);
	char owner[SDK_CALLER_NAME_MAX + 16];
	if (!admin_or_kernel(req, c, owner, sizeof owner))
		return;
	unsigned long long limit, cursor;
	if (sdk_req_query_uint(req, "limit", 1, CA_PAGE_MAX, PAGE_DEFAULT, &limit) < 0 ||
	    sdk_req_query_uint(req, "cursor", 0, INT64_MAX, 0, &cursor) < 0)
		return;
	json_t *tasks;
	sdk_err e;
	int rc = ca_store_list(c->k->db, (int64_t)cursor, (unsigned)limit, &tasks, &e);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	size_t n = json_array_size(tasks);
	json_t *next = n == limit ? json_incref(json_object_get(json_array_get(tasks, n - 1), "seq"))
				  : json_null();
	sdk_reply_json(req, 200, json_pack("{s:o, s:o}", "tasks", tasks, "next_cursor", next));
}

static void on_deleted(int status, json_t *report, const sdk_err *err, void *arg)
{
	sdk_req *req = arg;
	if (status < 0) {
		json_decref(report);
		sdk_reply_status(req, status, err);
		return;
	}
	sdk_reply_json(req, 200, report);
}

static void on_delete(sdk_req *req, void *ctx)
{
	ca *c = ca_of(ctx);
	char owner[SDK_CALLER_NAME_MAX + 16];
	if (!admin_or_kernel(req, c, owner, sizeof owner))
		return;
	sdk_err e = { "" };
	int rc = ca_task_delete(c, sdk_req_param(req, "id"), on_deleted, req, &e);
	if (rc < 0)
		sdk_reply_status(req, rc, &e);
}

/* POST /tasks/ID/cancel: 200 with the report when it ended at once, 202
 * when it ends at its next step (GET /tasks/ID?wait_ms= waits for it). */
static void on_cancel(sdk_req *req, void *ctx)
{
	ca *c = ca_of(ctx);
	char by[SDK_CALLER_NAME_MAX + 16];
	if (!admin_or_kernel(req, c, by, sizeof by))
		return;
	const char *id = sdk_req_param(req, "id");
	sdk_err e = { "" };
	int rc = ca_task_cancel(c, id, by, &e);
	if (rc < 0)
		sdk_reply_status(req, rc, &e);
	else if (rc == 0)
		reply_task(req, c, id, 200);
	else
		sdk_reply_json(req, 202, json_pack("{s:s, s:s}", "id", id, "state", "cancelling"));
}

/* ---- life */

static void ca_metrics(sdk_kernel *k, struct evbuffer *out)
{
	ca *c = k->state;
	if (!c)
		return;
	const char *kl = k->def->name;
	const struct {
		const char *name, *help;
		uint64_t v;
	} counters[] = {
		{ "grace_coding_agent_tasks_submitted_total", "Tasks accepted.", c->stats.submitted },
		{ "grace_coding_agent_tasks_done_total", "Tasks that ran to their end.", c->stats.done },
		{ "grace_coding_agent_tasks_failed_total", "Tasks that failed (setup, a refused edit, the executor).", c->stats.failed },
		{ "grace_coding_agent_tasks_cancelled_total", "Tasks cancelled while queued or worked on.", c->stats.cancelled },
		{ "grace_coding_agent_tasks_resolved_total", "Tasks whose tests passed as graded.", c->stats.resolved },
		{ "grace_coding_agent_edits_refused_total", "Turns whose edits did not apply (nothing written).", c->stats.edits_failed },
		{ "grace_coding_agent_model_calls_total", "Calls to the model.", c->stats.model_calls },
		{ "grace_coding_agent_model_failures_total", "Model calls that failed; the task degraded to the model-free path.", c->stats.model_failures },
		{ "grace_coding_agent_executor_jobs_total", "Test runs submitted to the executor.", c->stats.executor_jobs },
		{ "grace_coding_agent_git_commands_total", "Git commands run.", c->stats.git_commands },
		{ "grace_coding_agent_audit_failures_total", "Audit events the audit kernel did not take.", c->stats.audit_failures },
		{ "grace_coding_agent_tasks_deleted_total", "Tasks deleted with their worktrees and branches.", c->stats.deleted },
	};
	for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++)
		evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s{kernel=\"%s\"} %llu\n",
				    counters[i].name, counters[i].help, counters[i].name,
				    counters[i].name, kl, (unsigned long long)counters[i].v);
	evbuffer_add_printf(out,
			    "# HELP grace_coding_agent_tasks_running Tasks being worked on.\n"
			    "# TYPE grace_coding_agent_tasks_running gauge\n"
			    "grace_coding_agent_tasks_running{kernel=\"%s\"} %u\n"
			    "# HELP grace_coding_agent_model_configured Whether a model is configured and loaded.\n"
			    "# TYPE grace_coding_agent_model_configured gauge\n"
			    "grace_coding_agent_model_configured{kernel=\"%s\"} %d\n",
			    kl, c->running, kl, c->model != NULL);
}

static int ca_init(sdk_kernel *k, sdk_err *err)
{
	if (sodium_init() < 0) {
		return sdk_fail(err, SDK_EIO, "libsodium did not initialise");
	}
	ca *c = calloc(1, sizeof *c);
	if (!c) {
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	k->state = c;
	c->k = k;
	c->cfg = &k->cfg->coding_agent;
	sdk_err e;
	if (ca_store_init(k->db, &e) < 0 ||
	    ca_store_fail_unfinished(k->db, "the kernel stopped while it worked", &e) < 0) {
		return sdk_fail(err, SDK_EIO, "%s", e.msg);
	}
	if (c->cfg->workspace_root[0] && !realpath(c->cfg->workspace_root, c->root)) {
		sdk_warn("coding_agent: workspace_root %s: %s: no tasks until it exists",
			 c->cfg->workspace_root, strerror(errno));
		c->root[0] = '\0';
	}
	if (c->root[0]) {
		char real[PATH_MAX];
		if (c->cfg->worktree_root[0])
			snprintf(c->wt_root, sizeof c->wt_root, "%s",
				 realpath(c->cfg->worktree_root, real) ? real : c->cfg->worktree_root);
		else if (snprintf(c->wt_root, sizeof c->wt_root, "%s/.grace-worktrees", c->root) >=
			 (int)sizeof c->wt_root)
			c->root[0] = '\0'; /* no room for worktrees: no tasks */
	}
	if (snprintf(c->tmp, sizeof c->tmp, "%s/coding_agent-tmp", k->cfg->data_dir) >=
		    (int)sizeof c->tmp ||
	    (mkdir(c->tmp, 0700) < 0 && errno != EEXIST)) {
		return sdk_fail(err, SDK_EIO, "%s: %s", c->tmp, strerror(errno));
	}
	if (k->cfg->model.base_url[0]) {
		sdk_err me = { "" };
		c->model = sdk_model_new(k->base, &k->cfg->model, &me);
		snprintf(c->model_why, sizeof c->model_why, "%s", c->model ? "" : me.msg);
		if (!c->model)
			sdk_warn("coding_agent: no model (%s): tasks need a patch", c->model_why);
	}
	c->pool = sdk_pool_new(k->base, 2, 256);
	if (!c->pool) {
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	return 0;
}

static void ca_drain(sdk_kernel *k)
{
	ca *c = k->state;
	if (!c)
		return;
	c->draining = true;
	while (c->waiters)
		waiter_answer(c->waiters);
}

static void ca_close(sdk_kernel *k)
{
	ca *c = k->state;
	if (!c)
		return;
	c->draining = true;
	while (c->waiters)
		waiter_answer(c->waiters);
	sdk_pool_free(c->pool); /* pending works call back: their tasks stay in memory */
	ca_task_close_all(c);
	while (c->waiters)
		waiter_answer(c->waiters);
	if (c->model)
		sdk_model_free(c->model);
	free(c);
	k->state = NULL;
}

static const sdk_route ca_routes[] = {
	SDK_ROUTE("POST", "/tasks", on_submit),
	SDK_ROUTE("GET", "/tasks", on_list),
	SDK_ROUTE("GET", "/tasks/:id", on_get),
	SDK_ROUTE("DELETE", "/tasks/:id", on_delete),
	SDK_ROUTE("POST", "/tasks/:id/cancel", on_cancel),
};

const sdk_kernel_def coding_agent_kernel = {
	.name = "coding_agent",
	.port = 8132, .tier = "agentic",
	.summary = "workspaces, patches, build and test runs",
	.complete = true,
	.long_poll_max_ms = CA_WAIT_MAX_MS,
	.schema_version = 1,
	.routes = ca_routes,
	.n_routes = sizeof ca_routes / sizeof ca_routes[0],
	.init = ca_init,
	.drain = ca_drain,
	.close = ca_close,
	.metrics = ca_metrics,
};
