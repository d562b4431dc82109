/* The state_machine kernel (8123): statecharts shaped like XState v5
 * machine configurations, with XState's semantics (chart.h, engine.h);
 * definitions by name and version, instances persisted with an optimistic
 * version, the history of their transitions, delayed events that survive
 * a restart, and emitted events on the bus (docs/state_machine.md).
 *
 * The engine is pure and fast (microseconds an event): it runs on the
 * loop. jq programs compile slowly (jq.h): a chart's missing programs are
 * compiled on the pool, then the chart is kept, bound, in memory. */
#include "kernels/registry.h"
#include "kernels/state_machine/authz.h"
#include "kernels/state_machine/engine.h"
#include "kernels/state_machine/store.h"
#include "sdk/clock.h"
#include "sdk/log.h"
#include "sdk/owner_roles.h"
#include "sdk/pool.h"
#include "sdk/token.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SM_CHARTS_MAX 256          /* bound charts kept in memory */
#define SM_JQ_KEEP 1024            /* compiled programs kept when no chart holds them */
#define SM_TIMER_BATCH 100         /* delayed events fired in one loop turn */
#define SM_BUS_TIMEOUT_MS 5000
#define SM_EMIT_SUBJECT "grace.state_machine.emitted"
/* A user's instance publishes as its owner, and subjects under grace. are
 * Grace's and admins' own (the bus refuses a user there). */
#define SM_EMIT_SUBJECT_USER "state_machine.emitted"
#define SM_POLICY_RETRY_MS 1000 /* a delayed event waiting for the policy kernel */

typedef struct chart_slot {
	char name[SM_NAME_MAX + 1];
	int64_t version;
	sc_chart *chart;
} chart_slot;

typedef struct sm {
	sdk_kernel *k;
	sdk_jq_cache *cache;
	sdk_pool *pool;
	chart_slot charts[SM_CHARTS_MAX];
	size_t n_charts;
	struct event *timer;
	bool firing;   /* a delayed event is being delivered (maybe waiting for its chart) */
	bool closing;
	bool have_bus;
	bool roles_synced; /* told of every owner's role change (sdk/owner_roles.h) */
	grace_state_machine lim; /* [state_machine] */
	unsigned long long events, timers_fired, emitted, emit_failures;
	unsigned long long denied, timers_denied, policy_waits;
} sm;

/* ---- charts ---- */

static sc_chart *chart_cached(sm *s, const char *name, int64_t version)
{
	for (size_t i = 0; i < s->n_charts; i++)
		if (s->charts[i].version == version && !strcmp(s->charts[i].name, name))
			return s->charts[i].chart;
	return NULL;
}

/* Keeps `c` (bound); the oldest slot goes when full. Only called from the
 * loop, between requests: no chart is in use then. */
static void chart_keep(sm *s, const char *name, int64_t version, sc_chart *c)
{
	if (s->n_charts == SM_CHARTS_MAX) {
		sc_chart_free(s->charts[0].chart);
		memmove(&s->charts[0], &s->charts[1], (SM_CHARTS_MAX - 1) * sizeof s->charts[0]);
		s->n_charts--;
	}
	chart_slot *sl = &s->charts[s->n_charts++];
	snprintf(sl->name, sizeof sl->name, "%s", name);
	sl->version = version;
	sl->chart = c;
}

/* c: the bound chart, or NULL with status < 0 and the reason in err. */
typedef void (*chart_cb)(sm *s, sc_chart *c, int status, sdk_err *err, void *arg);

/* Compiling a chart's missing programs on the pool. */
typedef struct compile_job {
	sm *s;
	sc_chart *chart;   /* parsed, not bound; owned until handed on */
	json_t *texts;     /* the programs to compile */
	sdk_jq_prog **progs;
	sdk_err *errs;
	chart_cb cb;
	void *arg;
} compile_job;

static void compile_work(void *arg)
{
	compile_job *j = arg;
	size_t i;
	json_t *t;
	json_array_foreach(j->texts, i, t) j->progs[i] = sdk_jq_compile(json_string_value(t), &j->errs[i]);
}

static void compile_done(void *arg)
{
	compile_job *j = arg;
	sm *s = j->s;
	sdk_err e = { 0 };
	int rc = 0;
	size_t i;
	json_t *t;
	json_array_foreach(j->texts, i, t) {
		if (!j->progs[i]) {
			if (rc == 0) {
				/* the first expression, in document order, with this text */
				const char *path = "";
				for (size_t x = 0; x < j->chart->n_exprs; x++)
					if (!strcmp(j->chart->exprs[x].text, json_string_value(t))) {
						path = j->chart->exprs[x].path;
						break;
					}
				rc = sdk_fail(&e, SDK_EINVAL, "%s: %s", path, j->errs[i].msg);
			}
			continue;
		}
		/* held until the chart is bound: an unused program may be evicted */
		j->progs[i] = sdk_jq_cache_adopt(s->cache, j->progs[i]);
	}
	if (rc == 0 && !s->closing)
		rc = sc_chart_bind(j->chart, s->cache, &e);
	else if (rc == 0)
		rc = sdk_fail(&e, SDK_EBUSY, "the kernel is stopping");
	for (i = 0; i < json_array_size(j->texts); i++)
		sdk_jq_cache_release(s->cache, j->progs[i]); /* NULL-safe; the chart holds its own */
	if (rc < 0) {
		sc_chart_free(j->chart);
		j->cb(s, NULL, rc, &e, j->arg);
	} else {
		j->cb(s, j->chart, 0, NULL, j->arg);
	}
	json_decref(j->texts);
	free(j->progs);
	free(j->errs);
	free(j);
}

/* Binds `c` (parsed, owned: handed to cb, or freed) and calls cb, now or
 * after the pool compiled what the cache lacks. */
static void chart_bind_async(sm *s, sc_chart *c, chart_cb cb, void *arg)
{
	sdk_err e;
	json_t *texts = sc_chart_missing(c, s->cache);
	if (json_array_size(texts) == 0) {
		json_decref(texts);
		int rc = sc_chart_bind(c, s->cache, &e);
		if (rc < 0) {
			sc_chart_free(c);
			cb(s, NULL, rc, &e, arg);
			return;
		}
		cb(s, c, 0, NULL, arg);
		return;
	}
	compile_job *j = calloc(1, sizeof *j);
	size_t n = json_array_size(texts);
	if (j) {
		*j = (compile_job){ .s = s, .chart = c, .texts = texts, .cb = cb, .arg = arg };
		j->progs = calloc(n, sizeof *j->progs);
		j->errs = calloc(n, sizeof *j->errs);
	}
	int rc = j && j->progs && j->errs ? sdk_pool_submit(s->pool, compile_work, compile_done, j)
					  : SDK_EBUSY;
	if (rc < 0) {
		if (j) {
			free(j->progs);
			free(j->errs);
			free(j);
		}
		json_decref(texts);
		sc_chart_free(c);
		cb(s, NULL, sdk_fail(&e, SDK_EBUSY, "too much work queued; retry shortly"), &e, arg);
	}
}

/* Loading a stored chart: cb gets the cached chart (borrowed). */
typedef struct load_job {
	char name[SM_NAME_MAX + 1];
	int64_t version;
	chart_cb cb;
	void *arg;
} load_job;

static void load_done(sm *s, sc_chart *c, int status, sdk_err *err, void *arg)
{
	load_job *l = arg;
	if (c) {
		sc_chart *have = chart_cached(s, l->name, l->version);
		if (have) {
			sc_chart_free(c); /* loaded twice meanwhile */
			c = have;
		} else {
			chart_keep(s, l->name, l->version, c);
		}
	}
	l->cb(s, c, status, err, l->arg);
	free(l);
}

static void chart_get(sm *s, const char *name, int64_t version, chart_cb cb, void *arg)
{
	sc_chart *c = chart_cached(s, name, version);
	if (c) {
		cb(s, c, 0, NULL, arg);
		return;
	}
	sdk_err e;
	json_t *config;
	int64_t v;
	int rc = sm_machine_get(s->k->db, name, version, &config, &v, NULL, &e);
	if (rc == 0) {
		rc = sc_chart_parse(config, &c, &e);
		json_decref(config);
		if (rc < 0)
			rc = sdk_fail(&e, SDK_ECORRUPT, "stored machine %s v%lld: %s", name, (long long)version,
				      e.msg);
	}
	load_job *l = rc == 0 ? calloc(1, sizeof *l) : NULL;
	if (rc == 0 && !l) {
		sc_chart_free(c);
		rc = sdk_fail(&e, SDK_EBUSY, "out of memory");
	}
	if (rc < 0 || !l) {
		cb(s, NULL, rc < 0 ? rc : SDK_EBUSY, &e, arg);
		return;
	}
	snprintf(l->name, sizeof l->name, "%s", name);
	l->version = version;
	l->cb = cb;
	l->arg = arg;
	chart_bind_async(s, c, load_done, l);
}

/* ---- identity ---- */

/* The caller: *owner gets the user ("" for a kernel); true when it may
 * reach everything (an admin, or another kernel). */
static bool caller_of(sdk_req *req, sdk_kernel *k, const char **owner)
{
	int role;
	const char *u = sdk_req_caller(req, k->token, &role);
	*owner = u ? u : "";
	return !u || role == SDK_CALLER_ADMIN;
}

static bool good_name(const char *n)
{
	size_t len = n ? strlen(n) : 0;
	if (len == 0 || len > SM_NAME_MAX)
		return false;
	for (const char *p = n; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '-' || *p == '_' || *p == '.'))
			return false;
	return true;
}

static size_t json_size(json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	size_t n = s ? strlen(s) : SIZE_MAX;
	free(s);
	return n;
}

/* ---- effects ---- */

static void on_emitted(int status, const char *body, size_t len, double ms, const char *error,
		       void *arg)
{
	(void)body, (void)len, (void)ms;
	sm *s = arg;
	if (status >= 200 && status < 300) {
		s->emitted++;
		return;
	}
	if (s->emit_failures++ % 50 == 0)
		sdk_warn("state_machine: an emitted event did not reach the bus (%d %s)", status,
			 error ? error : "");
}

/* Publishes the emit effects (after the step is committed: at most once),
 * as the instance's owner: a user's (admin's) instance with their name and
 * role, so the bus and the policy kernel decide the publication as theirs;
 * a kernel's with no user. */
static void publish_emits(sm *s, const sm_instance *in, json_t *effects)
{
	bool user = !strcmp(in->owner_role, "user"), admin = !strcmp(in->owner_role, "admin");
	const char *h[] = { SDK_USER_HEADER, in->owner, SDK_ROLE_HEADER, in->owner_role, NULL };
	size_t i;
	json_t *e;
	json_array_foreach(effects, i, e) {
		if (strcmp(json_string_value(json_object_get(e, "type")), "emit") != 0)
			continue;
		if (!s->have_bus) {
			s->emit_failures++;
			continue;
		}
		json_t *msg = json_pack("{s:s, s:{s:s, s:s, s:I, s:s, s:O}}", "subject",
					user ? SM_EMIT_SUBJECT_USER : SM_EMIT_SUBJECT,
					"payload", "instance", in->id, "machine", in->machine,
					"machine_version", (json_int_t)in->machine_version, "owner",
					in->owner, "event", json_object_get(e, "event"));
		char *body = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
		json_decref(msg);
		if (!body || sdk_call(s->k->caller, "message_bus", "POST", "/publish", body, strlen(body),
				      user || admin ? h : NULL, SM_BUS_TIMEOUT_MS, on_emitted, s) < 0)
			s->emit_failures++;
		free(body);
	}
}

static void arm_timer(sm *s);

/* The stored form of a snapshot: the engine's dump plus what readers want
 * without the chart (value, tags). */
static json_t *stored_snapshot(const sc_chart *c, const sc_snapshot *snap)
{
	json_t *d = sc_snapshot_dump(c, snap);
	if (d) {
		json_object_set_new(d, "value", sc_value(c, snap));
		json_object_set_new(d, "tags", sc_tags(c, snap));
	}
	return d;
}

static json_t *instance_view(const sm_instance *in)
{
	json_t *sn = in->snapshot;
	return json_pack("{s:s, s:s, s:I, s:I, s:O, s:O, s:O, s:O, s:s, s:I, s:I}", "id", in->id,
			 "machine", in->machine, "machine_version", (json_int_t)in->machine_version,
			 "version", (json_int_t)in->version, "status", json_object_get(sn, "status"),
			 "value", json_object_get(sn, "value"), "context", json_object_get(sn, "context"),
			 "tags", json_object_get(sn, "tags"), "owner", in->owner, "created_ms",
			 (json_int_t)in->created_ms, "updated_ms", (json_int_t)in->updated_ms);
}

/* One event to a stored instance, synchronously (the chart is bound):
 * stores the step (with the timer it came from, if any) and publishes its
 * emits. *view gets the new state. `expect`: the version the caller saw
 * (0: any). */
static int deliver(sm *s, sc_chart *c, const char *id, json_t *event, int64_t expect,
		   const char *source, int64_t timer_seq, json_t **view, sdk_err *err)
{
	sm_instance in;
	int rc = sm_instance_get(s->k->db, id, &in, err);
	if (rc < 0)
		return rc;
	if (expect > 0 && in.version != expect) {
		rc = sdk_fail(err, SDK_ECONFLICT, "instance \"%s\" is at version %lld, not %lld", id,
			      (long long)in.version, (long long)expect);
		sm_instance_clear(&in);
		return rc;
	}
	sc_snapshot *cur = NULL, *next = NULL;
	json_t *effects = json_array();
	if ((rc = sc_snapshot_load(c, in.snapshot, &cur, err)) == 0)
		rc = sc_send(c, cur, event, &next, effects, err);
	json_t *stored = rc == 0 ? stored_snapshot(c, next) : NULL;
	if (rc == 0 && json_size(json_object_get(stored, "context")) > s->lim.context_max_bytes)
		rc = sdk_fail(err, SDK_ETOOLARGE, "the context would grow past %zu bytes",
			      s->lim.context_max_bytes);
	int64_t now = sdk_wall_ms();
	if (rc == 0)
		rc = sm_instance_step(s->k->db, id, in.version, stored,
				      json_string_value(json_object_get(stored, "status")), event,
				      json_object_get(stored, "value"), source, effects, timer_seq,
				      NULL, s->lim.history_keep, now, err);
	if (rc == 0) {
		s->events++;
		json_decref(in.snapshot);
		in.snapshot = json_incref(stored);
		in.version++;
		in.updated_ms = now;
		publish_emits(s, &in, effects);
		if (view)
			*view = instance_view(&in);
		arm_timer(s);
	}
	json_decref(stored);
	json_decref(effects);
	sc_snapshot_free(cur);
	sc_snapshot_free(next);
	sm_instance_clear(&in);
	return rc;
}

/* ---- delayed events ---- */

typedef struct fire_job {
	sm *s;
	int64_t seq;
	char instance[SM_NAME_MAX + 1];
	char machine[SM_NAME_MAX + 1];
	int64_t machine_version;
	json_t *event;
} fire_job;

static void fire_job_free(fire_job *f)
{
	json_decref(f->event);
	free(f);
}

static void fire_next(sm *s, int budget);

static void fire_with_chart(sm *s, sc_chart *c, int status, sdk_err *err, void *arg)
{
	fire_job *f = arg;
	sdk_err e;
	int rc;
	(void)status;
	if (!c) {
		sdk_warn("state_machine: a delayed event for %s is dropped: %s", f->instance, err->msg);
		sm_timer_drop(s->k->db, f->seq, &e);
	} else if ((rc = deliver(s, c, f->instance, f->event, 0, "timer", f->seq, NULL, &e)) < 0) {
		/* a conflict cannot happen (one thread); an expression error or
		 * a finished machine: the event is dropped, not retried for ever */
		if (rc != SDK_EIO && rc != SDK_EBUSY && rc != SDK_EFULL) {
			sdk_warn("state_machine: a delayed event for %s is dropped: %s", f->instance, e.msg);
			sm_timer_drop(s->k->db, f->seq, &e);
		} else {
			sdk_warn("state_machine: a delayed event for %s waits: %s", f->instance, e.msg);
		}
	} else {
		s->timers_fired++;
	}
	fire_job_free(f);
	s->firing = false;
	if (!s->closing)
		arm_timer(s);
}

/* A delayed event its owner may no longer send: recorded in the history
 * as a denial (a new version, the state unchanged), its timer done. */
static void record_denial(sm *s, const fire_job *f, const char *why)
{
	sdk_err e;
	sm_instance in;
	int rc = sm_instance_get(s->k->db, f->instance, &in, &e);
	if (rc == 0) {
		json_t *fx = json_array();
		json_t *sn = in.snapshot;
		char reason[300];
		snprintf(reason, sizeof reason, "policy: %s", why);
		rc = sm_instance_step(s->k->db, in.id, in.version, sn,
				      json_string_value(json_object_get(sn, "status")), f->event,
				      json_object_get(sn, "value"), "timer", fx, f->seq, reason,
				      s->lim.history_keep, sdk_wall_ms(), &e);
		json_decref(fx);
		sm_instance_clear(&in);
	}
	if (rc == 0) {
		s->timers_denied++;
		return;
	}
	sdk_warn("state_machine: a denied delayed event for %s could not be recorded: %s",
		 f->instance, e.msg);
	if (rc != SDK_EIO && rc != SDK_EBUSY && rc != SDK_EFULL)
		sm_timer_drop(s->k->db, f->seq, &e);
}

static void fire_decided(int result, const char *why, void *arg)
{
	fire_job *f = arg;
	sm *s = f->s;
	if (result == SM_AUTHZ_ALLOW) {
		chart_get(s, f->machine, f->machine_version, fire_with_chart, f);
		return;
	}
	if (result == SM_AUTHZ_DENY) {
		record_denial(s, f, why);
		fire_job_free(f);
		s->firing = false;
		if (!s->closing)
			arm_timer(s);
		return;
	}
	/* Undecidable: it does not act, and is not lost either; it waits. */
	if (s->policy_waits++ % 50 == 0)
		sdk_warn("state_machine: a delayed event for %s waits for the policy kernel: %s",
			 f->instance, why);
	fire_job_free(f);
	s->firing = false;
	if (!s->closing) {
		struct timeval tv = sdk_ms_tv(SM_POLICY_RETRY_MS);
		evtimer_add(s->timer, &tv);
	}
}

/* Delivers due delayed events, earliest first, one at a time. */
static void fire_next(sm *s, int budget)
{
	if (s->firing || s->closing || !s->roles_synced) /* an owner's role may be stale */
		return;
	sdk_err e;
	int64_t seq, due;
	char inst[SM_NAME_MAX + 1];
	json_t *ev;
	int rc = sm_timer_next(s->k->db, &seq, inst, sizeof inst, &ev, &due, &e);
	if (rc <= 0) {
		if (rc < 0)
			sdk_warn("state_machine: cannot read delayed events: %s", e.msg);
		return;
	}
	int64_t now = sdk_wall_ms();
	if (due > now || budget <= 0) {
		json_decref(ev);
		struct timeval tv = sdk_ms_tv(due > now ? (unsigned)(due - now) : 0);
		evtimer_add(s->timer, &tv);
		return;
	}
	sm_instance in;
	if (!ev || sm_instance_get(s->k->db, inst, &in, &e) < 0) {
		json_decref(ev);
		sm_timer_drop(s->k->db, seq, &e); /* its instance is gone */
		fire_next(s, budget - 1);
		return;
	}
	fire_job *f = calloc(1, sizeof *f);
	if (!f) {
		json_decref(ev);
		sm_instance_clear(&in);
		struct timeval tv = sdk_ms_tv(100);
		evtimer_add(s->timer, &tv);
		return;
	}
	f->s = s;
	f->seq = seq;
	snprintf(f->instance, sizeof f->instance, "%s", inst);
	snprintf(f->machine, sizeof f->machine, "%s", in.machine);
	f->machine_version = in.machine_version;
	f->event = ev;
	s->firing = true;
	/* It acts as the instance's owner, decided now, when it fires. */
	sm_actor owner;
	sm_actor_of_instance(&in, &owner);
	const char *type = json_string_value(json_object_get(ev, "type"));
	sm_authz_send(s->k, &owner, &in, type ? type : "", "timer", fire_decided, f);
	sm_instance_clear(&in);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	fire_next(arg, SM_TIMER_BATCH);
}

/* Looks again at the earliest delayed event (after any change to them). */
static void arm_timer(sm *s)
{
	if (s->firing || s->closing)
		return;
	struct timeval tv = { 0, 0 };
	evtimer_add(s->timer, &tv);
}

/* ---- machines ---- */

typedef struct put_job {
	sdk_req *req;
	char name[SM_NAME_MAX + 1];
	char owner[SDK_CALLER_NAME_MAX + 1];
	bool admin;
	char *text; /* the config as stored */
} put_job;

static void put_with_chart(sm *s, sc_chart *c, int status, sdk_err *err, void *arg)
{
	put_job *p = arg;
	sdk_err e;
	int64_t version;
	if (!c) {
		if (status == SDK_EINVAL)
			sdk_reply_error(p->req, 400, "invalid", "machine%s", err->msg);
		else
			sdk_reply_status(p->req, status, err);
	} else {
		/* a throwaway start: an initial state that cannot be computed
		 * (an entry expression failing on the initial context, an
		 * eventless loop) is refused now, not at every instance */
		sc_snapshot *snap = NULL;
		json_t *fx = json_array();
		int rc = sc_start(c, NULL, &snap, fx, &e);
		json_decref(fx);
		sc_snapshot_free(snap);
		if (rc < 0)
			sdk_reply_error(p->req, 400, "invalid", "machine: the initial state: %s", e.msg);
		else if ((rc = sm_machine_put(s->k->db, p->name, p->text, p->owner, p->admin,
					      sdk_wall_ms(), &version, &e)) < 0)
			sdk_reply_status(p->req, rc, &e);
		else {
			chart_keep(s, p->name, version, c);
			c = NULL;
			sdk_reply_json(p->req, 201, json_pack("{s:s, s:I}", "name", p->name, "version",
							      (json_int_t)version));
		}
		sc_chart_free(c);
	}
	free(p->text);
	free(p);
}

static void on_machine_put(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	sm *s = k->state;
	json_t *body = sdk_req_json(req, true);
	if (!body)
		return;
	const char *name = json_string_value(json_object_get(body, "name"));
	json_t *config = json_object_get(body, "machine");
	if (!good_name(name)) {
		sdk_reply_error(req, 400, "invalid", "name: 1 to %d of A-Z a-z 0-9 . _ -", SM_NAME_MAX);
		return;
	}
	const char *bad = NULL, *key;
	json_t *v;
	json_object_foreach(body, key, v) if (strcmp(key, "name") && strcmp(key, "machine")) bad = key;
	if (bad) {
		sdk_reply_error(req, 400, "invalid", "%s: unknown field (name, machine)", bad);
		return;
	}
	sc_chart *c;
	sdk_err e;
	if (!config) {
		sdk_reply_error(req, 400, "invalid", "machine: required (an XState machine configuration)");
		return;
	}
	if (sc_chart_parse(config, &c, &e) < 0) {
		sdk_reply_error(req, 400, "invalid", "machine%s", e.msg);
		return;
	}
	put_job *p = calloc(1, sizeof *p);
	if (!p || !(p->text = json_dumps(config, JSON_COMPACT))) {
		free(p);
		sc_chart_free(c);
		sdk_reply_error(req, 503, "busy", "out of memory");
		return;
	}
	p->req = req;
	snprintf(p->name, sizeof p->name, "%s", name);
	const char *owner;
	p->admin = caller_of(req, k, &owner);
	snprintf(p->owner, sizeof p->owner, "%s", owner);
	chart_bind_async(s, c, put_with_chart, p);
}

static void on_machine_list(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	unsigned long long limit;
	if (sdk_req_query_uint(req, "limit", 1, SM_PAGE_MAX, 100, &limit) < 0)
		return;
	json_t *out;
	sdk_err e;
	int rc = sm_machine_list(k->db, sdk_req_query(req, "after"), (unsigned)limit, &out, &e);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	size_t n = json_array_size(out);
	json_t *next = n == limit ? json_object_get(json_array_get(out, n - 1), "name") : NULL;
	sdk_reply_json(req, 200, json_pack("{s:o, s:O}", "machines", out, "next", next ? next : json_null()));
}

static void on_machine_get(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	unsigned long long version;
	if (sdk_req_query_uint(req, "version", 1, 1ULL << 53, 0, &version) < 0)
		return;
	json_t *config, *meta;
	int64_t v;
	sdk_err e;
	int rc = sm_machine_get(k->db, sdk_req_param(req, "name"), (int64_t)version, &config, &v, &meta, &e);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	json_object_set_new(meta, "machine", config);
	sdk_reply_json(req, 200, meta);
}

/* ---- instances ---- */

typedef struct start_job {
	sdk_req *req;
	sm_instance in;
	json_t *context; /* or NULL: the machine's */
} start_job;

static void start_with_chart(sm *s, sc_chart *c, int status, sdk_err *err, void *arg)
{
	start_job *j = arg;
	sdk_err e;
	if (!c) {
		sdk_reply_status(j->req, status, err);
		goto out;
	}
	sc_snapshot *snap = NULL;
	json_t *fx = json_array();
	int rc = sc_start(c, j->context, &snap, fx, &e);
	if (rc < 0) {
		sdk_reply_error(j->req, 400, "invalid", "the initial state: %s", e.msg);
		json_decref(fx);
		goto out;
	}
	j->in.snapshot = stored_snapshot(c, snap);
	sc_snapshot_free(snap);
	int64_t now = sdk_wall_ms();
	j->in.created_ms = j->in.updated_ms = now;
	char *value = json_dumps(json_object_get(j->in.snapshot, "value"), JSON_COMPACT | JSON_ENCODE_ANY);
	if (json_size(json_object_get(j->in.snapshot, "context")) > s->lim.context_max_bytes)
		rc = sdk_fail(&e, SDK_ETOOLARGE, "the context is over %zu bytes", s->lim.context_max_bytes);
	else if (!value)
		rc = sdk_fail(&e, SDK_EBUSY, "out of memory");
	else if ((rc = sm_begin(s->k->db, &e)) == 0) {
		if ((rc = sm_instance_insert(s->k->db, &j->in, value, &e)) == 0 &&
		    (rc = sm_timers_apply(s->k->db, j->in.id, fx, now, &e)) == 0)
			rc = sm_commit(s->k->db, &e);
		else
			sm_rollback(s->k->db);
	}
	free(value);
	if (rc < 0) {
		sdk_reply_status(j->req, rc, &e);
	} else {
		publish_emits(s, &j->in, fx);
		arm_timer(s);
		sdk_reply_json(j->req, 201, instance_view(&j->in));
	}
	json_decref(fx);
out:
	sm_instance_clear(&j->in);
	json_decref(j->context);
	free(j);
}

static void on_instance_create(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	sm *s = k->state;
	if (!s->roles_synced) { /* the instance's owner_role may be stale (its emits use it) */
		sdk_err e;
		sdk_fail(&e, SDK_EBUSY, "the kernel has just started and waits for the main process");
		sdk_reply_status(req, SDK_EBUSY, &e);
		return;
	}
	json_t *body = sdk_req_json(req, true);
	if (!body)
		return;
	const char *key, *bad = NULL;
	json_t *v;
	json_object_foreach(body, key, v) if (strcmp(key, "machine") && strcmp(key, "version") &&
					      strcmp(key, "context") && strcmp(key, "id")) bad = key;
	if (bad) {
		sdk_reply_error(req, 400, "invalid", "%s: unknown field (machine, version, context, id)", bad);
		return;
	}
	const char *machine = json_string_value(json_object_get(body, "machine"));
	json_t *ver = json_object_get(body, "version"), *context = json_object_get(body, "context");
	json_t *id = json_object_get(body, "id");
	if (!good_name(machine)) {
		sdk_reply_error(req, 400, "invalid", "machine: the name of a stored machine");
		return;
	}
	if (ver && (!json_is_integer(ver) || json_integer_value(ver) < 1)) {
		sdk_reply_error(req, 400, "invalid", "version: a positive integer");
		return;
	}
	if (context && !json_is_object(context)) {
		sdk_reply_error(req, 400, "invalid", "context: an object");
		return;
	}
	if (context && json_size(context) > s->lim.context_max_bytes) {
		sdk_reply_error(req, 413, "too_large", "context: at most %zu bytes", s->lim.context_max_bytes);
		return;
	}
	if (id && !good_name(json_string_value(id))) {
		sdk_reply_error(req, 400, "invalid", "id: 1 to %d of A-Z a-z 0-9 . _ -", SM_NAME_MAX);
		return;
	}
	/* the quota binds users; admins and kernels have none */
	const char *owner;
	bool all = caller_of(req, k, &owner);
	sdk_err e;
	int rc = all ? 0 : sm_instance_count(k->db, owner, &e);
	if (rc >= 0 && !all && (unsigned)rc >= s->lim.instances_per_user)
		rc = sdk_fail(&e, SDK_EQUOTA, "%s owns %d instances, the most allowed", owner, rc);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	/* the version: the one asked for, or the latest (kept by the instance) */
	json_t *config;
	int64_t mv;
	rc = sm_machine_get(k->db, machine, ver ? json_integer_value(ver) : 0, &config, &mv, NULL, &e);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	json_decref(config);
	start_job *j = calloc(1, sizeof *j);
	if (!j) {
		sdk_reply_error(req, 503, "busy", "out of memory");
		return;
	}
	j->req = req;
	j->context = context ? json_deep_copy(context) : NULL;
	if (id) {
		snprintf(j->in.id, sizeof j->in.id, "%s", json_string_value(id));
	} else {
		unsigned char rnd[12];
		FILE *f = fopen("/dev/urandom", "rb");
		size_t got = f ? fread(rnd, 1, sizeof rnd, f) : 0;
		if (f)
			fclose(f);
		if (got != sizeof rnd) {
			free(j);
			sdk_reply_error(req, 503, "busy", "no randomness for an id");
			return;
		}
		for (size_t i = 0; i < sizeof rnd; i++)
			snprintf(j->in.id + 2 * i, 3, "%02x", rnd[i]);
	}
	snprintf(j->in.machine, sizeof j->in.machine, "%s", machine);
	j->in.machine_version = mv;
	j->in.version = 1;
	sm_actor who;
	sm_actor_of_req(req, k->token, &who);
	sm_actor_to_owner(&who, &j->in);
	chart_get(s, machine, mv, start_with_chart, j);
}

/* Reads the instance named in the path, if the caller may see it;
 * otherwise answers (404 for another user's: its existence is not told). */
static int instance_for(sdk_req *req, sdk_kernel *k, sm_instance *in)
{
	const char *owner;
	bool all = caller_of(req, k, &owner);
	sdk_err e;
	const char *id = sdk_req_param(req, "id");
	int rc = sm_instance_get(k->db, id, in, &e);
	if (rc == 0 && !all && strcmp(in->owner, owner) != 0) {
		sm_instance_clear(in);
		rc = sdk_fail(&e, SDK_ENOTFOUND, "no instance \"%s\"", id);
	}
	if (rc < 0)
		sdk_reply_status(req, rc, &e);
	return rc;
}

static void on_instance_get(sdk_req *req, void *ctx)
{
	sm_instance in;
	if (instance_for(req, ctx, &in) < 0)
		return;
	sdk_reply_json(req, 200, instance_view(&in));
	sm_instance_clear(&in);
}

static void on_instance_delete(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	sm_instance in;
	if (instance_for(req, k, &in) < 0)
		return;
	sdk_err e;
	int rc = sm_instance_delete(k->db, in.id, &e);
	sm_instance_clear(&in);
	if (rc < 0)
		sdk_reply_status(req, rc, &e);
	else
		sdk_reply_json(req, 200, json_pack("{s:b}", "deleted", 1));
}

static void on_instance_list(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	unsigned long long limit;
	if (sdk_req_query_uint(req, "limit", 1, SM_PAGE_MAX, 100, &limit) < 0)
		return;
	const char *owner;
	bool all = caller_of(req, k, &owner);
	json_t *out;
	sdk_err e;
	int rc = sm_instance_list(k->db, all ? sdk_req_query(req, "owner") : owner,
				  sdk_req_query(req, "machine"), sdk_req_query(req, "after"),
				  (unsigned)limit, &out, &e);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	size_t n = json_array_size(out);
	json_t *next = n == limit ? json_object_get(json_array_get(out, n - 1), "id") : NULL;
	sdk_reply_json(req, 200, json_pack("{s:o, s:O}", "instances", out, "next", next ? next : json_null()));
}

static void on_history(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	unsigned long long after, limit;
	if (sdk_req_query_uint(req, "after", 0, 1ULL << 53, 0, &after) < 0 ||
	    sdk_req_query_uint(req, "limit", 1, SM_PAGE_MAX, 100, &limit) < 0)
		return;
	sm_instance in;
	if (instance_for(req, k, &in) < 0)
		return;
	json_t *out;
	sdk_err e;
	int rc = sm_history(k->db, in.id, (int64_t)after, (unsigned)limit, &out, &e);
	sm_instance_clear(&in);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	sdk_reply_json(req, 200, json_pack("{s:o}", "transitions", out));
}

typedef struct send_job {
	sdk_req *req;
	sm *s;
	char id[SM_NAME_MAX + 1];
	char machine[SM_NAME_MAX + 1];
	int64_t machine_version;
	sm_actor who;
	json_t *event;
	int64_t expect;
} send_job;

static void send_with_chart(sm *s, sc_chart *c, int status, sdk_err *err, void *arg)
{
	send_job *j = arg;
	sdk_err e;
	json_t *view = NULL;
	if (!c) {
		sdk_reply_status(j->req, status, err);
	} else {
		int rc = deliver(s, c, j->id, j->event, j->expect, "api", 0, &view, &e);
		if (rc == 0)
			sdk_reply_json(j->req, 200, view);
		else if (rc == SDK_EINVAL)
			sdk_reply_error(j->req, 400, "invalid", "the event could not be processed: %s", e.msg);
		else
			sdk_reply_status(j->req, rc, &e);
	}
	json_decref(j->event);
	free(j);
}

static void send_decided(int result, const char *why, void *arg)
{
	send_job *j = arg;
	if (result == SM_AUTHZ_ALLOW) {
		chart_get(j->s, j->machine, j->machine_version, send_with_chart, j);
		return;
	}
	if (result == SM_AUTHZ_DENY) {
		j->s->denied++;
		sdk_reply_error(j->req, 403, "forbidden",
				"policy does not let %s \"%s\" send %s to instance \"%s\" (%s)",
				j->who.type, j->who.name,
				json_string_value(json_object_get(j->event, "type")), j->id, why);
	} else {
		sdk_req_add_header(j->req, "Retry-After", "1");
		sdk_reply_error(j->req, 503, "policy_unavailable",
				"each event is decided by the policy kernel, and %s", why);
	}
	json_decref(j->event);
	free(j);
}

static void on_send(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	sm *s = k->state;
	if (!s->roles_synced) { /* the instance's owner_role may be stale (its emits use it) */
		sdk_err e;
		sdk_fail(&e, SDK_EBUSY, "the kernel has just started and waits for the main process");
		sdk_reply_status(req, SDK_EBUSY, &e);
		return;
	}
	json_t *body = sdk_req_json(req, true);
	if (!body)
		return;
	const char *key, *bad = NULL;
	json_t *v;
	json_object_foreach(body, key, v) if (strcmp(key, "event") && strcmp(key, "version")) bad = key;
	if (bad) {
		sdk_reply_error(req, 400, "invalid", "%s: unknown field (event, version)", bad);
		return;
	}
	json_t *ev = json_object_get(body, "event"), *ver = json_object_get(body, "version");
	const char *type = json_string_value(json_object_get(ev, "type"));
	if (!json_is_object(ev) || !type || !*type || strlen(type) > SC_KEY_MAX) {
		sdk_reply_error(req, 400, "invalid", "event: an object with a \"type\" of 1 to %d bytes",
				SC_KEY_MAX);
		return;
	}
	if (!strncmp(type, "xstate.", 7)) {
		sdk_reply_error(req, 400, "invalid", "event/type: names under xstate. are the machine's own");
		return;
	}
	if (json_size(ev) > s->lim.event_max_bytes) {
		sdk_reply_error(req, 413, "too_large", "event: at most %zu bytes", s->lim.event_max_bytes);
		return;
	}
	if (ver && (!json_is_integer(ver) || json_integer_value(ver) < 1)) {
		sdk_reply_error(req, 400, "invalid", "version: a positive integer");
		return;
	}
	sm_instance in;
	if (instance_for(req, k, &in) < 0)
		return;
	sdk_err e;
	if (ver && json_integer_value(ver) != in.version) {
		sdk_fail(&e, SDK_ECONFLICT, "instance \"%s\" is at version %lld, not %lld", in.id,
			 (long long)in.version, (long long)json_integer_value(ver));
		sm_instance_clear(&in);
		sdk_reply_status(req, SDK_ECONFLICT, &e);
		return;
	}
	send_job *j = calloc(1, sizeof *j);
	if (!j) {
		sm_instance_clear(&in);
		sdk_reply_error(req, 503, "busy", "out of memory");
		return;
	}
	j->req = req;
	j->s = s;
	snprintf(j->id, sizeof j->id, "%s", in.id);
	snprintf(j->machine, sizeof j->machine, "%s", in.machine);
	j->machine_version = in.machine_version;
	j->event = json_deep_copy(ev);
	j->expect = ver ? json_integer_value(ver) : 0;
	sm_actor_of_req(req, k->token, &j->who);
	sm_authz_send(k, &j->who, &in, type, "api", send_decided, j);
	sm_instance_clear(&in);
}

/* ---- life ---- */

/* PUT /owner-roles: a user's role changed; their instances' delayed events
 * and emits act with the new one from now on (sdk/owner_roles.h). */
static void on_owner_roles(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	sm *s = k->state;
	if (sdk_owner_roles_serve(req, k,
				  "UPDATE instances SET owner_role = ?1 WHERE owner = ?2"
				  " AND owner_role IN ('user', 'admin')",
				  "instances", &s->roles_synced, NULL, NULL) == 1)
		arm_timer(s); /* the delayed events held back since start */
}

/* DELETE /owners/:name: a deleted user's instances go with the user (the
 * main process calls this when a user is deleted or a name is taken
 * again): their delayed events never fire, and a new user of the name
 * sees none. */
static void on_owner_delete(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	sm *s = k->state;
	int role;
	if (sdk_req_caller(req, k->token, &role)) {
		sdk_reply_error(req, 403, "forbidden", "only the main process removes a user's instances");
		return;
	}
	const char *owner = sdk_req_param(req, "name");
	int64_t n = 0;
	sdk_err e;
	int rc = sm_owner_purge(k->db, owner, &n, &e);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	if (n)
		sdk_info("state_machine: %lld instances of '%s' deleted with their owner", (long long)n,
			 owner);
	sdk_reply_json(req, 200, json_pack("{s:s, s:I}", "owner", owner, "deleted", (json_int_t)n));
	arm_timer(s);
}

static int sm_init(sdk_kernel *k, sdk_err *err)
{
	sdk_err e;
	if (sm_store_init(k->db, &e) < 0) {
		return sdk_fail(err, SDK_EIO, "%s", e.msg);
	}
	sm *s = calloc(1, sizeof *s);
	if (!s) {
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	k->state = s;
	s->k = k;
	s->cache = sdk_jq_cache_new(SM_JQ_KEEP);
	s->pool = sdk_pool_new(k->base, 1, 256);
	s->timer = evtimer_new(k->base, on_timer, s);
	s->have_bus = grace_config_kernel(k->cfg, "message_bus") != NULL;
	s->lim = k->cfg->state_machine;
	s->roles_synced = !sdk_owner_roles_wait_at_start();
	if (!s->cache || !s->pool || !s->timer) {
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	arm_timer(s); /* delayed events due while we were down fire now */
	return 0;
}

static void sm_close(sdk_kernel *k)
{
	sm *s = k->state;
	if (!s)
		return;
	s->closing = true;
	if (s->pool)
		sdk_pool_free(s->pool); /* compile jobs finish or are dropped, their callbacks run */
	for (size_t i = 0; i < s->n_charts; i++)
		sc_chart_free(s->charts[i].chart);
	sdk_jq_cache_free(s->cache);
	if (s->timer)
		event_free(s->timer);
	free(s);
	k->state = NULL;
}

static const sdk_route sm_routes[] = {
	SDK_ROUTE("POST", "/machines", on_machine_put),
	SDK_ROUTE("GET", "/machines", on_machine_list),
	SDK_ROUTE("GET", "/machines/:name", on_machine_get),
	SDK_ROUTE("POST", "/instances", on_instance_create),
	SDK_ROUTE("GET", "/instances", on_instance_list),
	SDK_ROUTE("GET", "/instances/:id", on_instance_get),
	SDK_ROUTE("DELETE", "/instances/:id", on_instance_delete),
	SDK_ROUTE("POST", "/instances/:id/events", on_send),
	SDK_ROUTE("GET", "/instances/:id/history", on_history),
	SDK_ROUTE("PUT", "/owner-roles", on_owner_roles),
	SDK_ROUTE("DELETE", "/owners/:name", on_owner_delete),
};

const sdk_kernel_def state_machine_kernel = {
	.name = "state_machine",
	.port = 8123, .tier = "execution",
	.summary = "statecharts with XState's semantics: instances, guarded transitions, delayed events",
	/* Complete (issue 14's state machine section): XState's semantics
	 * (the differential test), instances with optimistic versions,
	 * delayed events across restarts, and each event decided by policy
	 * when it happens, as its sender or, delayed, as the owner. */
	.complete = true,
	/* Its tables as they are today: a change is a new step in
	 * .migrations and a new fixture directory (docs/upgrades.md). */
	.schema_version = SM_SCHEMA_VERSION,
	.migrations = sm_migrations,
	.n_migrations = SM_SCHEMA_VERSION,
	.routes = sm_routes,
	.n_routes = sizeof sm_routes / sizeof sm_routes[0],
	.init = sm_init,
	.close = sm_close,
};
