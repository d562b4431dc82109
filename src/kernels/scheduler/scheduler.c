/* The scheduler kernel (8120): cron, @every and manual runs of jobs that
 * publish on the bus, call a kernel route or run an executor job, each as
 * its creator and authorized by policy every time it fires; exactly once
 * per slot across crashes (store.h, act.c); daylight saving as cron.h says.
 *
 * Routes (through :8000 as /scheduler/...; docs/scheduler.md):
 *   POST   /jobs                  create (checked whole; 400 names the field)
 *   GET    /jobs                  yours (an admin: all), ?cursor=&limit=
 *   GET    /jobs/:id              with its next fire times
 *   DELETE /jobs/:id              its open runs become cancelled
 *   POST   /jobs/:id/trigger      a manual run now -> 202 {"run"}
 *   POST   /jobs/:id/pause        no slot fires while paused
 *   POST   /jobs/:id/resume       from the next slot after now
 *   GET    /jobs/:id/runs         history, newest first, ?cursor=&limit=
 *   GET    /jobs/:id/next         ?count= next fire times
 *   GET    /next                  ?schedule=&timezone=&count=&after= (any expression)
 *   DELETE /owners/:name          a deleted user's jobs (admins, the main process)
 *   PUT    /owner-roles           owners' new roles (the main process only)
 *   GET    /stats */
#include "kernels/scheduler/sched.h"

#include "kernels/registry.h"
#include "kernels/scheduler/civil.h"
#include "sdk/call.h"
#include "sdk/clock.h"
#include "sdk/log.h"
#include "sdk/owner_roles.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#define TIMER_MAX_MS 1000 /* the due query runs at least this often (a wall clock that jumps) */
#define DUE_BATCH 100
#define NEXT_COUNT_DEFAULT 10
#define NEXT_COUNT_MAX 1000
#define JOB_NEXT_SHOWN 5
#define PAGE_DEFAULT 100
#define VALIDATE_TIMEOUT_MS 5000

static sched *sched_of(void *ctx)
{
	return ((sdk_kernel *)ctx)->state;
}

/* ---- zones */

const tz_zone *sched_zone(sched *s, const char *name, sdk_err *err)
{
	for (size_t i = 0; i < s->n_zones; i++)
		if (!strcmp(s->zones[i].name, name))
			return s->zones[i].z;
	tz_zone *z;
	if (tz_load(NULL, name, &z, err) < 0)
		return NULL;
	if (s->n_zones == SCH_ZONES_MAX) {
		/* Full: forget the oldest half (jobs reload what they need). */
		for (size_t i = 0; i < SCH_ZONES_MAX / 2; i++)
			tz_free(s->zones[i].z);
		memmove(s->zones, s->zones + SCH_ZONES_MAX / 2,
			sizeof s->zones[0] * (SCH_ZONES_MAX - SCH_ZONES_MAX / 2));
		s->n_zones = SCH_ZONES_MAX - SCH_ZONES_MAX / 2;
	}
	snprintf(s->zones[s->n_zones].name, sizeof s->zones[0].name, "%s", name);
	s->zones[s->n_zones].z = z;
	return s->zones[s->n_zones++].z;
}

int sched_schedule(sched *s, const sch_job *j, sch_schedule *out, sdk_err *err)
{
	const tz_zone *z = j->spec.cron.every_ms ? NULL : sched_zone(s, j->spec.timezone, err);
	if (!j->spec.cron.every_ms && !z)
		return SDK_EIO;
	*out = (sch_schedule){ .cron = &j->spec.cron, .zone = z, .anchor_ms = j->anchor_ms };
	return 0;
}

/* ---- who asks */

typedef struct sch_actor {
	char name[SCH_OWNER_MAX + 1];
	sch_role role;
} sch_actor;

static void actor_of(sdk_req *req, sched *s, sch_actor *a)
{
	int role;
	const char *name = sdk_req_caller(req, s->k->token, &role);
	if (name) {
		snprintf(a->name, sizeof a->name, "%s", name);
		a->role = role == SDK_CALLER_ADMIN ? SCH_ROLE_ADMIN : SCH_ROLE_USER;
		return;
	}
	/* No user: the main process or a kernel, trusted by the token. */
	const char *k = sdk_req_header(req, SDK_CALLER_HEADER);
	bool ok = k && *k && strlen(k) <= 32;
	for (const char *p = k; ok && *p; p++)
		ok = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_';
	snprintf(a->name, sizeof a->name, "kernel:%s", ok ? k : "internal");
	a->role = SCH_ROLE_KERNEL;
}

static bool actor_sees(const sch_actor *a, const sch_job *j)
{
	return a->role != SCH_ROLE_USER || !strcmp(a->name, j->owner);
}

/* ---- answers */

static void reply_invalid(sdk_req *req, int status, const char *code, const char *field,
			  const char *msg)
{
	sdk_reply_json(req, status,
		       json_pack("{s:{s:s, s:s, s:s, s:s}}", "error", "code", code, "message", msg,
				 "request_id", sdk_req_id(req), "field", field));
}

static void fmt_time(int64_t ms, int32_t off, bool utc, char *out, size_t n)
{
	int64_t t = civil_floor_div(ms, 1000) + off;
	int64_t day = civil_floor_div(t, CIVIL_DAY_S), sec = t - day * CIVIL_DAY_S;
	int64_t y;
	unsigned m, d;
	civil_from_days(day, &y, &m, &d);
	int len = snprintf(out, n, "%04lld-%02u-%02uT%02d:%02d:%02d", (long long)y, m, d,
			   (int)(sec / 3600), (int)(sec / 60 % 60), (int)(sec % 60));
	if (len < 0 || (size_t)len >= n)
		return;
	if (utc)
		snprintf(out + len, n - (size_t)len, "Z");
	else
		snprintf(out + len, n - (size_t)len, "%c%02d:%02d", off < 0 ? '-' : '+',
			 abs(off) / 3600, abs(off) / 60 % 60);
}

/* [{"at_ms","utc","local"}...]: the next `count` slots after `after_ms`. */
static json_t *next_fires(const sch_schedule *sc, int64_t after_ms, unsigned count)
{
	json_t *arr = json_array();
	int64_t t = after_ms;
	for (unsigned i = 0; i < count; i++) {
		t = sch_next_slot(sc, t);
		if (t == SCH_NO_SLOT)
			break;
		char utc[40], local[48];
		fmt_time(t, 0, true, utc, sizeof utc);
		int32_t off = sc->zone ? tz_offset_at(sc->zone, civil_floor_div(t, 1000)) : 0;
		fmt_time(t, off, false, local, sizeof local);
		json_array_append_new(arr, json_pack("{s:I, s:s, s:s}", "at_ms", (json_int_t)t, "utc",
						     utc, "local", local));
	}
	return arr;
}

static json_t *job_view(sched *s, const sch_job *j, int64_t now)
{
	json_t *o = sch_job_json(j);
	sch_schedule sc;
	sdk_err e;
	if (sched_schedule(s, j, &sc, &e) == 0)
		json_object_set_new(o, "next", j->spec.paused ? json_array()
							     : next_fires(&sc, now, JOB_NEXT_SHOWN));
	return o;
}

/* ---- the clock */

static void arm(sched *s)
{
	if (s->draining || !s->timer)
		return;
	int64_t due = sch_next_due(s->k->db), now = sdk_wall_ms();
	int64_t wait = due == INT64_MAX ? TIMER_MAX_MS : due - now;
	if (wait < 0)
		wait = 0;
	if (wait > TIMER_MAX_MS)
		wait = TIMER_MAX_MS;
	struct timeval tv = sdk_ms_tv((uint64_t)wait);
	evtimer_add(s->timer, &tv);
}

/* Decides the job's due slots (plan.h) and records them (store.h). */
static void process_job(sched *s, const char *id, int64_t now)
{
	sch_job j;
	sdk_err e;
	if (sch_job_get(s->k->db, id, &j, &e) < 0) {
		s->stats.plan_errors++;
		sdk_warn("scheduler: job %s: %s", id, e.msg);
		return;
	}
	sch_schedule sc;
	sch_plan p = { 0 };
	int rc = sched_schedule(s, &j, &sc, &e);
	if (rc == 0) {
		sch_plan_in in = { .schedule = &sc,
				   .job_id = j.id,
				   .missed = j.spec.missed,
				   .missed_max = j.spec.missed_max,
				   .deadline_ms = j.spec.deadline_ms,
				   .jitter_ms = j.spec.jitter_ms,
				   .tolerance_ms = s->cfg->late_tolerance_ms,
				   .next_slot_ms = j.next_slot_ms,
				   .now_ms = now };
		rc = sch_plan_due(&in, &p);
	}
	if (rc == 0)
		rc = sch_commit_plan(s->k->db, &j, &p, now, &e);
	if (rc < 0) {
		s->stats.plan_errors++;
		sdk_warn("scheduler: job %s: cannot record its due slots: %s", id, e.msg);
	} else {
		bool ran = false;
		for (size_t i = 0; i < p.n; i++) {
			s->stats.slots++;
			s->stats.missed += !p.slots[i].run;
			ran |= p.slots[i].run;
		}
		s->stats.missed += p.missed_unwalked;
		if (ran && sch_runs_prune(s->k->db, j.id, s->cfg->runs_per_job, &e) < 0)
			sdk_warn("scheduler: job %s: %s", id, e.msg);
	}
	sch_plan_free(&p);
	sch_job_free(&j);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	sched *s = arg;
	if (s->draining)
		return;
	if (!sdk_kernel_storage_ok(s->k))
		return; /* the runtime reports it; nothing is decided on a broken file */
	char ids[DUE_BATCH][SCH_ID_LEN + 1];
	size_t n = 0;
	sdk_err e;
	int64_t now = sdk_wall_ms();
	if (sch_due_jobs(s->k->db, now, DUE_BATCH, ids, &n, &e) < 0) {
		s->stats.plan_errors++;
		sdk_warn("scheduler: %s", e.msg);
	}
	for (size_t i = 0; i < n; i++)
		process_job(s, ids[i], now);
	if (n)
		sched_dispatch(s);
	arm(s);
}

/* ---- routes */

struct create {
	sched *s;
	sdk_req *req;
	sch_job job;
};

static void create_finish(struct create *c)
{
	sched *s = c->s;
	sdk_err e;
	int64_t now = sdk_wall_ms();
	int rc = sch_job_insert(s->k->db, &c->job, &e);
	if (rc == SDK_ECONFLICT)
		reply_invalid(c->req, 409, "conflict", "name", e.msg);
	else if (rc < 0)
		sdk_reply_status(c->req, rc, &e);
	else
		sdk_reply_json(c->req, 201, job_view(s, &c->job, now));
	sch_job_free(&c->job);
	free(c);
	arm(s);
}

static void on_validated(int status, const char *body, size_t len, double ms, const char *error,
			 void *arg)
{
	(void)ms;
	struct create *c = arg;
	if (status == 200) {
		create_finish(c);
		return;
	}
	json_t *ans = status ? json_loadb(body, len, 0, NULL) : NULL;
	json_t *err = json_object_get(ans, "error");
	if (status == 400 && err) {
		char field[SCH_FIELD_MAX + 16], msg[300];
		const char *f = json_string_value(json_object_get(err, "field"));
		const char *m = json_string_value(json_object_get(err, "message"));
		size_t fl = f ? strlen(f) : 0;
		if (!m)
			m = "refused by the executor";
		if (fl && !strncmp(m, f, fl) && m[fl] == ':' && m[fl + 1] == ' ')
			m += fl + 2; /* the executor's "field: reason" */
		snprintf(field, sizeof field, "target.job%s%s", fl ? "." : "", fl ? f : "");
		snprintf(msg, sizeof msg, "%s: %s", field, m);
		reply_invalid(c->req, 400, "invalid", field, msg);
	} else if (status == 403) {
		/* The executor's policy: the creator may not run jobs. A refusal,
		 * not an outage (no Retry-After). */
		const char *m = json_string_value(json_object_get(err, "message"));
		reply_invalid(c->req, 403, "forbidden", "target.type",
			      m ? m : "the executor refuses jobs from this creator");
	} else {
		sdk_req_add_header(c->req, "Retry-After", "1");
		sdk_reply_error(c->req, 503, "executor_unavailable",
				"the executor could not check the job (%d %s): nothing was stored",
				status, error ? error : "");
	}
	json_decref(ans);
	sch_job_free(&c->job);
	free(c);
}

static bool kernel_exists(const char *name, void *arg)
{
	sched *s = arg;
	return grace_config_kernel(s->k->cfg, name) != NULL;
}

static void new_job_id(char out[SCH_ID_LEN + 1])
{
	unsigned char r[8];
	randombytes_buf(r, sizeof r);
	snprintf(out, SCH_ID_LEN + 1, "j_%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3],
		 r[4], r[5], r[6], r[7]);
}

static void create_checked(struct create *c);
static void create_decided(void *arg, bool allow, const char *source, const char *reason);

static void on_create(sdk_req *req, void *ctx)
{
	sched *s = sched_of(ctx);
	json_t *body = sdk_req_json(req, true);
	if (!body)
		return;
	sch_actor a;
	actor_of(req, s, &a);
	struct create *c = calloc(1, sizeof *c);
	if (!c) {
		sdk_reply_error(req, 503, "busy", "out of memory");
		return;
	}
	c->s = s;
	c->req = req;
	sch_job *j = &c->job;
	char field[SCH_FIELD_MAX];
	sdk_err e = { "" };
	sch_spec_env env = { .kernel_exists = kernel_exists, .arg = s,
			     .role_table = !grace_config_kernel(s->k->cfg, "policy") };
	int rc = sch_spec_parse(body, a.role, &env, &j->spec, field, &e);
	if (rc < 0) {
		reply_invalid(req, rc == SDK_EDENIED ? 403 : 400,
			      rc == SDK_EDENIED ? "forbidden" : "invalid", field, e.msg);
		free(c);
		return;
	}
	int64_t total = 0, mine = 0;
	if (sch_job_count(s->k->db, NULL, &total, &e) < 0 ||
	    sch_job_count(s->k->db, a.name, &mine, &e) < 0) {
		sdk_reply_status(req, SDK_EIO, &e);
		sch_job_free(j);
		free(c);
		return;
	}
	if (total >= s->cfg->jobs_max || (a.role == SCH_ROLE_USER && mine >= s->cfg->jobs_per_user)) {
		sdk_reply_error(req, 403, "quota_exceeded", "at most %u jobs (%u per user)",
				s->cfg->jobs_max, s->cfg->jobs_per_user);
		sch_job_free(j);
		free(c);
		return;
	}
	int64_t now = sdk_wall_ms();
	new_job_id(j->id);
	snprintf(j->owner, sizeof j->owner, "%s", a.name);
	j->role = a.role;
	j->anchor_ms = now;
	j->created_ms = j->updated_ms = now;
	sch_schedule sc;
	if (sched_schedule(s, j, &sc, &e) < 0) {
		reply_invalid(req, 400, "invalid", "timezone", e.msg);
		sch_job_free(j);
		free(c);
		return;
	}
	j->next_slot_ms = sch_next_slot(&sc, now);
	j->next_due_ms = j->next_slot_ms == SCH_NO_SLOT
				 ? SCH_NO_SLOT
				 : j->next_slot_ms + sch_jitter(j->id, j->next_slot_ms, j->spec.jitter_ms);
	if (env.role_table) {
		create_checked(c);
		return;
	}
	/* The policy kernel decides who may make which job: the question each
	 * fire asks, asked now (act.c). */
	sched_policy_ask(s, j, "create", 0, create_decided, c);
}

static void create_decided(void *arg, bool allow, const char *source, const char *reason)
{
	struct create *c = arg;
	if (allow) {
		create_checked(c);
		return;
	}
	if (!strcmp(source, SCHED_POLICY_UNAVAILABLE)) {
		sdk_req_add_header(c->req, "Retry-After", "1");
		sdk_reply_error(c->req, 503, "policy_unavailable", "%s: nothing was stored", reason);
	} else {
		char msg[400];
		snprintf(msg, sizeof msg, "target.type: %s may not schedule %s targets (%s)",
			 c->job.owner, sch_target_type_name(c->job.spec.target_type), reason);
		reply_invalid(c->req, 403, "forbidden", "target.type", msg);
	}
	sch_job_free(&c->job);
	free(c);
}

/* Allowed: the executor checks an executor job's spec, then it is stored. */
static void create_checked(struct create *c)
{
	sched *s = c->s;
	sch_job *j = &c->job;
	sdk_req *req = c->req;
	if (j->spec.target_type != SCH_TARGET_EXECUTOR) {
		create_finish(c);
		return;
	}
	/* The executor checks its own job spec, so a bad one is refused now. */
	if (!grace_config_kernel(s->k->cfg, "executor")) {
		reply_invalid(req, 400, "invalid", "target.type", "target.type: no executor kernel is configured");
		sch_job_free(j);
		free(c);
		return;
	}
	char *text = json_dumps(json_object_get(j->spec.target, "job"), JSON_COMPACT);
	const char *h[8];
	sched_owner_headers(j, NULL, h);
	if (!text || sdk_call(s->k->caller, "executor", "POST", "/jobs/validate", text, strlen(text),
			      h, VALIDATE_TIMEOUT_MS, on_validated, c) < 0) {
		free(text);
		sdk_reply_error(req, 503, "executor_unavailable", "the executor cannot be called");
		sch_job_free(j);
		free(c);
		return;
	}
	free(text);
}

/* Loads the :id job if the caller may see it; answers 404 and returns -1 otherwise. */
static int job_param(sdk_req *req, sched *s, sch_actor *a, sch_job *j)
{
	actor_of(req, s, a);
	sdk_err e;
	const char *id = sdk_req_param(req, "id");
	int rc = sch_job_get(s->k->db, id, j, &e);
	if (rc == 0 && !actor_sees(a, j)) {
		sch_job_free(j);
		rc = sdk_fail(&e, SDK_ENOTFOUND, "no job %s", id);
	}
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return -1;
	}
	return 0;
}

static void on_get(sdk_req *req, void *ctx)
{
	sched *s = sched_of(ctx);
	sch_actor a;
	sch_job j;
	if (job_param(req, s, &a, &j) < 0)
		return;
	sdk_reply_json(req, 200, job_view(s, &j, sdk_wall_ms()));
	sch_job_free(&j);
}

static void on_list(sdk_req *req, void *ctx)
{
	sched *s = sched_of(ctx);
	sch_actor a;
	actor_of(req, s, &a);
	unsigned long long limit;
	if (sdk_req_query_uint(req, "limit", 1, SCH_PAGE_MAX, PAGE_DEFAULT, &limit) < 0)
		return;
	const char *cursor = sdk_req_query(req, "cursor");
	json_t *jobs;
	sdk_err e;
	int rc = sch_job_list(s->k->db, a.role == SCH_ROLE_USER ? a.name : NULL, cursor,
			      (unsigned)limit, &jobs, &e);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	size_t n = json_array_size(jobs);
	json_t *next = n == limit ? json_object_get(json_array_get(jobs, n - 1), "id") : NULL;
	sdk_reply_json(req, 200, json_pack("{s:o, s:O}", "jobs", jobs, "next_cursor",
					   next ? next : json_null()));
}

static void on_delete(sdk_req *req, void *ctx)
{
	sched *s = sched_of(ctx);
	sch_actor a;
	sch_job j;
	if (job_param(req, s, &a, &j) < 0)
		return;
	sdk_err e;
	int rc = sch_job_delete(s->k->db, j.id, sdk_wall_ms(), &e);
	if (rc < 0)
		sdk_reply_status(req, rc, &e);
	else
		sdk_reply_json(req, 200, json_pack("{s:s}", "deleted", j.id));
	sch_job_free(&j);
	arm(s);
}

/* DELETE /owners/:name: a deleted user's jobs go with the user (the main
 * process calls this when a user is deleted or a name is taken again). */
static void on_owner_delete(sdk_req *req, void *ctx)
{
	sched *s = sched_of(ctx);
	sch_actor a;
	actor_of(req, s, &a);
	if (a.role == SCH_ROLE_USER) {
		sdk_reply_error(req, 403, "forbidden", "only admins remove another owner's jobs");
		return;
	}
	const char *owner = sdk_req_param(req, "name");
	int64_t n = 0;
	sdk_err e;
	int rc = sch_jobs_delete_owner(s->k->db, owner, sdk_wall_ms(), &n, &e);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	if (n)
		sdk_info("scheduler: %lld jobs of '%s' deleted with their owner", (long long)n, owner);
	sdk_reply_json(req, 200, json_pack("{s:s, s:I}", "owner", owner, "deleted", (json_int_t)n));
	arm(s);
}

/* PUT /owner-roles: a user's role changed; their jobs fire with the new
 * one from now on (sdk/owner_roles.h). The first one since start also
 * lets the dispatcher act. */
static void on_owner_roles(sdk_req *req, void *ctx)
{
	sched *s = sched_of(ctx);
	if (sdk_owner_roles_serve(req, s->k,
				  "UPDATE jobs SET role = ?1 WHERE owner = ?2 AND role IN ('user', 'admin')",
				  "jobs", &s->roles_synced, NULL, NULL) == 1)
		sched_dispatch_soon(s);
}

static void on_trigger(sdk_req *req, void *ctx)
{
	sched *s = sched_of(ctx);
	sch_actor a;
	sch_job j;
	if (job_param(req, s, &a, &j) < 0)
		return;
	int64_t run;
	sdk_err e;
	int rc = sch_run_insert_manual(s->k->db, j.id, sdk_wall_ms(), &run, &e);
	if (rc < 0)
		sdk_reply_status(req, rc, &e);
	else
		sdk_reply_json(req, 202, json_pack("{s:s, s:I}", "job_id", j.id, "run", (json_int_t)run));
	sch_job_free(&j);
	sched_dispatch_soon(s);
}

static void set_paused(sdk_req *req, void *ctx, bool paused)
{
	sched *s = sched_of(ctx);
	sch_actor a;
	sch_job j;
	if (job_param(req, s, &a, &j) < 0)
		return;
	int64_t now = sdk_wall_ms();
	sdk_err e;
	sch_schedule sc;
	int rc = sched_schedule(s, &j, &sc, &e);
	if (rc == 0) {
		/* Resumed: from the first slot after now; the paused ones are not
		 * missed, they were not wanted. */
		int64_t next = paused ? j.next_slot_ms : sch_next_slot(&sc, now);
		int64_t due = next == SCH_NO_SLOT ? SCH_NO_SLOT
						  : next + sch_jitter(j.id, next, j.spec.jitter_ms);
		rc = sch_job_set_paused(s->k->db, j.id, paused, j.anchor_ms, next, due, now, &e);
	}
	sch_job_free(&j);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	if (sch_job_get(s->k->db, sdk_req_param(req, "id"), &j, &e) < 0) {
		sdk_reply_status(req, SDK_EIO, &e);
		return;
	}
	sdk_reply_json(req, 200, job_view(s, &j, now));
	sch_job_free(&j);
	arm(s);
}

static void on_pause(sdk_req *req, void *ctx) { set_paused(req, ctx, true); }
static void on_resume(sdk_req *req, void *ctx) { set_paused(req, ctx, false); }

static void on_runs(sdk_req *req, void *ctx)
{
	sched *s = sched_of(ctx);
	sch_actor a;
	sch_job j;
	if (job_param(req, s, &a, &j) < 0)
		return;
	unsigned long long limit, cursor;
	if (sdk_req_query_uint(req, "limit", 1, SCH_PAGE_MAX, PAGE_DEFAULT, &limit) < 0 ||
	    sdk_req_query_uint(req, "cursor", 0, INT64_MAX, 0, &cursor) < 0) {
		sch_job_free(&j);
		return;
	}
	json_t *runs;
	sdk_err e;
	int rc = sch_runs_list(s->k->db, j.id, (int64_t)cursor, (unsigned)limit, &runs, &e);
	sch_job_free(&j);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	size_t n = json_array_size(runs);
	json_t *next = n == limit ? json_object_get(json_array_get(runs, n - 1), "id") : NULL;
	sdk_reply_json(req, 200, json_pack("{s:o, s:O}", "runs", runs, "next_cursor",
					   next ? next : json_null()));
}

static void on_job_next(sdk_req *req, void *ctx)
{
	sched *s = sched_of(ctx);
	sch_actor a;
	sch_job j;
	if (job_param(req, s, &a, &j) < 0)
		return;
	unsigned long long count;
	sch_schedule sc;
	sdk_err e;
	if (sdk_req_query_uint(req, "count", 1, NEXT_COUNT_MAX, NEXT_COUNT_DEFAULT, &count) == 0) {
		if (sched_schedule(s, &j, &sc, &e) < 0)
			sdk_reply_status(req, SDK_EIO, &e);
		else
			sdk_reply_json(req, 200,
				       json_pack("{s:s, s:s, s:s, s:b, s:o}", "job_id", j.id,
						 "schedule", j.spec.schedule, "timezone",
						 j.spec.timezone, "fixed_hours",
						 !j.spec.cron.every_ms && j.spec.cron.fixed_hour, "next",
						 next_fires(&sc, sdk_wall_ms(), (unsigned)count)));
	}
	sch_job_free(&j);
}

static void on_next(sdk_req *req, void *ctx)
{
	sched *s = sched_of(ctx);
	const char *expr = sdk_req_query(req, "schedule");
	const char *tzn = sdk_req_query(req, "timezone");
	unsigned long long count, after;
	if (sdk_req_query_uint(req, "count", 1, NEXT_COUNT_MAX, NEXT_COUNT_DEFAULT, &count) < 0 ||
	    sdk_req_query_uint(req, "after", 0, (unsigned long long)CRON_INSTANT_MAX * 1000,
			       (unsigned long long)sdk_wall_ms(), &after) < 0)
		return;
	if (!expr) {
		reply_invalid(req, 400, "invalid", "schedule",
			      "schedule: a cron expression is required (the schedule query)");
		return;
	}
	cron_expr c;
	sdk_err e = { "" };
	char msg[300];
	if (cron_parse(expr, &c, &e) < 0) {
		snprintf(msg, sizeof msg, "schedule: %s", e.msg);
		reply_invalid(req, 400, "invalid", "schedule", msg);
		return;
	}
	if (!tzn)
		tzn = "UTC";
	const tz_zone *z = sched_zone(s, tzn, &e);
	if (!z) {
		snprintf(msg, sizeof msg, "timezone: %s", e.msg);
		reply_invalid(req, 400, "invalid", "timezone", msg);
		return;
	}
	sch_schedule sc = { .cron = &c, .zone = c.every_ms ? NULL : z, .anchor_ms = (int64_t)after };
	sdk_reply_json(req, 200,
		       json_pack("{s:s, s:s, s:b, s:o}", "schedule", expr, "timezone", tzn,
				 "fixed_hours", !c.every_ms && c.fixed_hour, "next",
				 next_fires(&sc, (int64_t)after, (unsigned)count)));
}

static void on_stats(sdk_req *req, void *ctx)
{
	sched *s = sched_of(ctx);
	int64_t jobs = 0;
	sch_job_count(s->k->db, NULL, &jobs, NULL);
	sdk_reply_json(req, 200,
		       json_pack("{s:I, s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
				 "jobs", (json_int_t)jobs, "active_runs", (int)s->n_acts, "slots",
				 (json_int_t)s->stats.slots, "fired", (json_int_t)s->stats.fired,
				 "missed", (json_int_t)s->stats.missed, "succeeded",
				 (json_int_t)s->stats.succeeded, "failed",
				 (json_int_t)s->stats.failed, "denied", (json_int_t)s->stats.denied,
				 "skipped", (json_int_t)s->stats.skipped, "interrupted",
				 (json_int_t)s->stats.interrupted, "plan_errors",
				 (json_int_t)s->stats.plan_errors, "act_errors",
				 (json_int_t)s->stats.act_errors, "zones_cached",
				 (json_int_t)s->n_zones));
}

/* ---- life */

static int scheduler_init(sdk_kernel *k, sdk_err *err)
{
	sdk_err e;
	if (sch_store_init(k->db, &e) < 0) {
		return sdk_fail(err, SDK_EIO, "%s", e.msg);
	}
	if (sodium_init() < 0) {
		return sdk_fail(err, SDK_EIO, "libsodium cannot start");
	}
	sched *s = calloc(1, sizeof *s);
	if (!s) {
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	s->k = k;
	s->cfg = &k->cfg->scheduler;
	s->roles_synced = !sdk_owner_roles_wait_at_start();
	k->state = s;
	s->timer = evtimer_new(k->base, on_timer, s);
	s->dispatch = sched_dispatch_event(s);
	if (!s->timer || !s->dispatch) {
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	/* Open runs a previous life left are taken up first (act.c). */
	sched_dispatch_soon(s);
	arm(s);
	return 0;
}

static void scheduler_drain(sdk_kernel *k)
{
	sched *s = k->state;
	if (!s)
		return;
	s->draining = true;
	if (s->timer)
		evtimer_del(s->timer);
}

static void scheduler_close(sdk_kernel *k)
{
	sched *s = k->state;
	if (!s)
		return;
	s->draining = true;
	sched_acts_free(s);
	if (s->timer)
		event_free(s->timer);
	for (size_t i = 0; i < s->n_zones; i++)
		tz_free(s->zones[i].z);
	free(s);
	k->state = NULL;
}

static const sdk_route scheduler_routes[] = {
	SDK_ROUTE("POST", "/jobs", on_create),
	SDK_ROUTE("GET", "/jobs", on_list),
	SDK_ROUTE("GET", "/jobs/:id", on_get),
	SDK_ROUTE("DELETE", "/jobs/:id", on_delete),
	SDK_ROUTE("POST", "/jobs/:id/trigger", on_trigger),
	SDK_ROUTE("POST", "/jobs/:id/pause", on_pause),
	SDK_ROUTE("POST", "/jobs/:id/resume", on_resume),
	SDK_ROUTE("GET", "/jobs/:id/runs", on_runs),
	SDK_ROUTE("GET", "/jobs/:id/next", on_job_next),
	SDK_ROUTE("GET", "/next", on_next),
	SDK_ROUTE("DELETE", "/owners/:name", on_owner_delete),
	SDK_ROUTE("PUT", "/owner-roles", on_owner_roles),
	SDK_ROUTE("GET", "/stats", on_stats),
};

const sdk_kernel_def scheduler_kernel = {
	.name = "scheduler",
	.port = 8120, .tier = "execution",
	.summary = "cron, @every and manual jobs that run executor jobs or workflows, publish or call a route",
	/* Complete (issue 13's scheduler section): every target (executor,
	 * workflow, bus, route), exactly once per slot across kill -9, and
	 * the policy kernel deciding each job at creation and at each fire. */
	.complete = true,
	/* Its tables as they are today: a change is a new step in
	 * .migrations and a new fixture directory (docs/upgrades.md). */
	.schema_version = 1,
	.routes = scheduler_routes,
	.n_routes = sizeof scheduler_routes / sizeof scheduler_routes[0],
	.init = scheduler_init,
	.drain = scheduler_drain,
	.close = scheduler_close,
};
