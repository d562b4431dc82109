/* The workflow kernel (8122): definitions in the CNCF Serverless Workflow
 * DSL 1.0, runs that survive a crash of the kernel at any point
 * (docs/workflow.md).
 *
 * A run lives in memory while it is active and in workflow.db always:
 * each turn of its interpreter (interp.h: pure, microseconds a task) is
 * committed with the history events it made, in one transaction of a few
 * small rows, before anything it asked for is done (a call, a job, an
 * event): so a kill -9 at any point leaves either the turn or nothing,
 * and after a restart each effect the committed state waits on is made
 * again with the same idempotency key. The commits run on the loop: they
 * are short (one UPDATE and a few INSERTs in WAL mode), like the state
 * machine's steps. jq programs compile slowly: a definition's programs are
 * compiled on the pool when it is stored or first loaded, then kept. */
#include "kernels/registry.h"
#include "kernels/workflow/dsl.h"
#include "kernels/workflow/interp.h"
#include "kernels/workflow/store.h"
#include "sdk/clock.h"
#include "sdk/json_keys.h"
#include "sdk/log.h"
#include "sdk/owner_roles.h"
#include "sdk/pool.h"
#include "sdk/ports.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <ctype.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define WF_DEFS_MAX 256        /* bound definitions kept in memory */
#define WF_JQ_KEEP 2048
#define WF_STEP_BUDGET 2000    /* tasks a run advances in one turn of the loop */
#define WF_CALL_TIMEOUT_MS 30000
#define WF_POLL_MS 20000       /* long polls on the executor and the bus */
#define WF_BUS_TIMEOUT_MS 5000
#define WF_RELOAD_MS 1000      /* a run whose commit failed is read again after this */
#define WF_HEADERS_MAX 32
#define WF_EFFECTS_MAX 256     /* effects in flight at once (a wide fork waits its turn) */

typedef struct def_slot {
	char name[WF_NAME_MAX + 1], version[WF_NAME_MAX + 1];
	json_t *doc;
	json_t *programs;   /* [[text, path], ...] */
	sdk_jq_prog **progs; /* held references */
	size_t n;
} def_slot;

typedef struct wf wf;

typedef struct run {
	wf *w;
	wfs_run r;
	def_slot *def;
	json_t *wfvar;      /* $workflow */
	json_t *inflight;   /* pos -> true: effects being carried out now */
	struct event *timer;
	bool loading;       /* waiting for its definition */
	struct run *next;
} run;

struct wf {
	sdk_kernel *k;
	sdk_jq_cache *cache;
	sdk_pool *pool;
	sdk_caller *ext;    /* loopback URLs: no internal token */
	def_slot **defs;    /* WF_DEFS_MAX kept, more while runs hold them */
	size_t n_defs, cap_defs;
	run *runs;
	size_t n_runs;
	bool closing;
	grace_workflow lim;
	struct event *reload;
	struct event *kick; /* issues effects that waited for a slot */
	unsigned inflight;  /* effects in flight, all runs */
	struct effect_job *jobs;
	json_t *bus_queue;  /* [[outbox seq, body], ...] oldest first (the head in flight) */
	bool bus_busy, outbox_more;
	struct event *bus_retry;
	bool starved;       /* an effect waits for a free slot */
	bool roles_synced;  /* told of every owner's role change (sdk/owner_roles.h) */
	unsigned long long steps, commits, effects, bus_failures;
};

static uint64_t rnd64(void)
{
	uint64_t v = 0;
	if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v)
		v = (uint64_t)sdk_mono_ms() * 2654435761u;
	return v;
}

/* ---- definitions ---- */

static void def_free(wf *w, def_slot *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		sdk_jq_cache_release(w->cache, d->progs[i]);
	free(d->progs);
	json_decref(d->doc);
	json_decref(d->programs);
	free(d);
}

static def_slot *def_cached(wf *w, const char *name, const char *version)
{
	for (size_t i = 0; i < w->n_defs; i++)
		if (!strcmp(w->defs[i]->name, name) && !strcmp(w->defs[i]->version, version))
			return w->defs[i];
	return NULL;
}

static bool def_in_use(wf *w, def_slot *d)
{
	for (run *r = w->runs; r; r = r->next)
		if (r->def == d)
			return true;
	return false;
}

/* Keeps d (owned from now on); the oldest definition no run holds goes
 * when WF_DEFS_MAX are kept. False when out of memory (d is then freed). */
static bool def_keep(wf *w, def_slot *d)
{
	if (w->n_defs >= WF_DEFS_MAX) {
		for (size_t i = 0; i < w->n_defs; i++)
			if (!def_in_use(w, w->defs[i])) {
				def_free(w, w->defs[i]);
				memmove(&w->defs[i], &w->defs[i + 1], (w->n_defs - i - 1) * sizeof w->defs[0]);
				w->n_defs--;
				break;
			}
	}
	if (w->n_defs == w->cap_defs) {
		size_t cap = w->cap_defs ? 2 * w->cap_defs : 16;
		def_slot **n = realloc(w->defs, cap * sizeof *n);
		if (!n) {
			def_free(w, d);
			return false;
		}
		w->defs = n;
		w->cap_defs = cap;
	}
	w->defs[w->n_defs++] = d;
	return true;
}

typedef void (*def_cb)(wf *w, def_slot *d, int status, sdk_err *err, void *arg);

typedef struct compile_job {
	wf *w;
	def_slot *d;
	sdk_jq_prog **made;
	sdk_err *errs;
	def_cb cb;
	void *arg;
} compile_job;

static void compile_work(void *arg)
{
	compile_job *j = arg;
	for (size_t i = 0; i < j->d->n; i++)
		if (!j->d->progs[i])
			j->made[i] = sdk_jq_compile(json_string_value(json_array_get(json_array_get(j->d->programs, i), 0)),
						   &j->errs[i]);
}

static void compile_done(void *arg)
{
	compile_job *j = arg;
	wf *w = j->w;
	def_slot *d = j->d;
	sdk_err e = { 0 };
	int rc = 0;
	for (size_t i = 0; i < d->n; i++) {
		if (d->progs[i])
			continue;
		if (!j->made[i]) {
			if (rc == 0)
				rc = sdk_fail(&e, SDK_EINVAL, "%s: %s",
					      json_string_value(json_array_get(json_array_get(d->programs, i), 1)),
					      j->errs[i].msg);
			continue;
		}
		d->progs[i] = sdk_jq_cache_adopt(w->cache, j->made[i]);
	}
	if (rc == 0 && w->closing)
		rc = sdk_fail(&e, SDK_EBUSY, "the kernel is stopping");
	free(j->made);
	free(j->errs);
	if (rc < 0) {
		def_free(w, d);
		j->cb(w, NULL, rc, &e, j->arg);
	} else {
		j->cb(w, d, 0, NULL, j->arg);
	}
	free(j);
}

/* Validates doc (taken) and binds its programs; cb gets the slot (owned). */
static void def_bind(wf *w, json_t *doc, def_cb cb, void *arg)
{
	sdk_err e;
	json_t *programs;
	unsigned tasks;
	int rc = wf_validate(doc, w->lim.tasks_max, &programs, &tasks, &e);
	if (rc < 0) {
		json_decref(doc);
		cb(w, NULL, rc, &e, arg);
		return;
	}
	/* the same text twice is compiled once */
	json_t *uniq = json_array(), *seen = json_object();
	size_t i;
	json_t *p;
	json_array_foreach(programs, i, p) {
		const char *t = json_string_value(json_array_get(p, 0));
		if (!json_object_get(seen, t)) {
			json_object_set_new(seen, t, json_true());
			json_array_append(uniq, p);
		}
	}
	json_decref(seen);
	json_decref(programs);
	def_slot *d = calloc(1, sizeof *d);
	size_t n = json_array_size(uniq);
	if (d)
		d->progs = calloc(n ? n : 1, sizeof *d->progs);
	if (!d || !d->progs) {
		free(d);
		json_decref(uniq);
		json_decref(doc);
		cb(w, NULL, sdk_fail(&e, SDK_EBUSY, "out of memory"), &e, arg);
		return;
	}
	json_t *document = json_object_get(doc, "document");
	snprintf(d->name, sizeof d->name, "%s", json_string_value(json_object_get(document, "name")));
	snprintf(d->version, sizeof d->version, "%s", json_string_value(json_object_get(document, "version")));
	d->doc = doc;
	d->programs = uniq;
	d->n = n;
	bool missing = false;
	for (i = 0; i < n; i++) {
		d->progs[i] = sdk_jq_cache_get(w->cache, json_string_value(json_array_get(json_array_get(uniq, i), 0)));
		missing |= d->progs[i] == NULL;
	}
	if (!missing) {
		cb(w, d, 0, NULL, arg);
		return;
	}
	compile_job *j = calloc(1, sizeof *j);
	if (j) {
		*j = (compile_job){ .w = w, .d = d, .cb = cb, .arg = arg };
		j->made = calloc(n, sizeof *j->made);
		j->errs = calloc(n, sizeof *j->errs);
	}
	if (!j || !j->made || !j->errs || sdk_pool_submit(w->pool, compile_work, compile_done, j) < 0) {
		if (j) {
			free(j->made);
			free(j->errs);
		}
		free(j);
		def_free(w, d);
		cb(w, NULL, sdk_fail(&e, SDK_EBUSY, "too much work queued; retry shortly"), &e, arg);
	}
}

typedef struct load_job {
	def_cb cb;
	void *arg;
} load_job;

static void load_done(wf *w, def_slot *d, int status, sdk_err *err, void *arg)
{
	load_job *l = arg;
	if (d) {
		def_slot *have = def_cached(w, d->name, d->version);
		if (have) {
			def_free(w, d);
			d = have;
		} else if (!def_keep(w, d)) {
			d = NULL;
			status = SDK_EBUSY;
		}
	}
	sdk_err e;
	if (!d && !err)
		sdk_fail(err = &e, SDK_EBUSY, "out of memory");
	l->cb(w, d, d ? 0 : (status < 0 ? status : SDK_EBUSY), err, l->arg);
	free(l);
}

/* The stored definition, bound (borrowed from the cache). */
static void def_get(wf *w, const char *name, const char *version, def_cb cb, void *arg)
{
	def_slot *d = def_cached(w, name, version);
	if (d) {
		cb(w, d, 0, NULL, arg);
		return;
	}
	sdk_err e;
	char *text = NULL, v[65], owner[65];
	int rc = wfs_def_get(w->k->db, name, version, &text, v, owner, &e);
	json_t *doc = rc == 0 ? json_loads(text, 0, NULL) : NULL;
	free(text);
	load_job *l = doc ? calloc(1, sizeof *l) : NULL;
	if (!l) {
		json_decref(doc);
		if (rc == 0)
			rc = sdk_fail(&e, SDK_ECORRUPT, "the stored definition %s %s cannot be read", name, version);
		cb(w, NULL, rc, &e, arg);
		return;
	}
	l->cb = cb;
	l->arg = arg;
	def_bind(w, doc, load_done, l);
}

/* ---- identity ---- */

static bool caller_of(sdk_req *req, sdk_kernel *k, const char **user, int *role)
{
	const char *u = sdk_req_caller(req, k->token, role);
	*user = u ? u : "";
	if (!u)
		*role = SDK_CALLER_ADMIN; /* another kernel, or the operator */
	return *role == SDK_CALLER_ADMIN;
}

static size_t json_size(const json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	size_t n = s ? strlen(s) : SIZE_MAX;
	free(s);
	return n;
}

/* ---- runs in memory ---- */

static run *run_find(wf *w, const char *id)
{
	for (run *r = w->runs; r; r = r->next)
		if (!strcmp(r->r.id, id))
			return r;
	return NULL;
}

static void run_free(run *r)
{
	wf *w = r->w;
	run **pp = &w->runs;
	while (*pp && *pp != r)
		pp = &(*pp)->next;
	if (*pp) {
		*pp = r->next;
		w->n_runs--;
	}
	if (r->timer)
		event_free(r->timer);
	wfs_run_clear(&r->r);
	json_decref(r->wfvar);
	json_decref(r->inflight);
	free(r);
}

static json_t *run_view(const wfs_run *r)
{
	json_t *v = json_pack("{s:s, s:{s:s, s:s}, s:s, s:s, s:O, s:O, s:O, s:I, s:I, s:I}", "id", r->id,
			      "definition", "name", r->name, "version", r->version, "owner", r->owner,
			      "status", r->status, "input", r->input ? r->input : json_null(), "output",
			      r->output ? r->output : json_null(), "error", r->error ? r->error : json_null(),
			      "created_ms", (json_int_t)r->created_ms, "updated_ms",
			      (json_int_t)r->updated_ms, "events", (json_int_t)r->events);
	if (r->state) {
		json_t *pend = json_array(), *waiting = json_array();
		wf_pending(r->state, pend);
		size_t i;
		json_t *f;
		json_array_foreach(pend, i, f)
			json_array_append_new(waiting, json_pack("{s:O, s:O}", "pos", json_object_get(f, "p"),
								 "kind", json_object_get(json_object_get(f, "eff"), "kind")));
		json_decref(pend);
		json_object_set_new(v, "waiting_on", waiting);
		json_object_set(v, "context", json_object_get(r->state, "context"));
		if (r->due_ms)
			json_object_set_new(v, "due_ms", json_integer((json_int_t)r->due_ms));
	}
	return v;
}

#define WF_OUTBOX_BATCH 1000 /* outbox rows read into memory at once */
#define WF_BUS_RETRY_MS 1000

/* Status events go through an outbox table written in the same
 * transaction as the change, so a crash between the commit and the
 * publish loses none: the next process publishes what is left. One at a
 * time, so the bus holds a run's changes in the order they were committed
 * (at least once: a crash after the publish and before the row is dropped
 * publishes it again). */
static void bus_next(wf *w);

static void on_bus_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	bus_next(arg);
}

static void on_bus_sent(int status, const char *body, size_t len, double ms, const char *error, void *arg)
{
	(void)body, (void)len, (void)ms;
	wf *w = arg;
	w->bus_busy = false;
	if (status == 0 || status >= 500) { /* the bus is away: the same event again later */
		if (w->bus_failures++ % 50 == 0)
			sdk_warn("workflow: a run's event did not reach the bus (%d %s); will retry", status,
				 error ? error : "");
		struct timeval tv = sdk_ms_tv(WF_BUS_RETRY_MS);
		evtimer_add(w->bus_retry, &tv);
		return;
	}
	if (status >= 300 && w->bus_failures++ % 50 == 0)
		sdk_warn("workflow: the bus refused a run's event (%d); dropped", status);
	sdk_err e;
	json_int_t seq = json_integer_value(json_array_get(json_array_get(w->bus_queue, 0), 0));
	if (wfs_outbox_drop(w->k->db, seq, &e) < 0)
		sdk_warn("workflow: %s", e.msg); /* published again later: at least once */
	json_array_remove(w->bus_queue, 0);
	bus_next(w);
}

static void bus_next(wf *w)
{
	if (w->bus_busy || w->closing)
		return;
	if (json_array_size(w->bus_queue) == 0 && w->outbox_more) {
		/* rows not in memory yet (a backlog from a long outage) */
		json_t *rows;
		sdk_err e;
		if (wfs_outbox_list(w->k->db, WF_OUTBOX_BATCH, &rows, &e) == 0) {
			json_decref(w->bus_queue);
			w->bus_queue = rows;
			w->outbox_more = json_array_size(rows) == WF_OUTBOX_BATCH;
		}
	}
	if (json_array_size(w->bus_queue) == 0)
		return;
	const char *body = json_string_value(json_array_get(json_array_get(w->bus_queue, 0), 1));
	w->bus_busy = true;
	if (sdk_call(w->k->caller, "message_bus", "POST", "/publish", body, strlen(body), NULL,
		     WF_BUS_TIMEOUT_MS, on_bus_sent, w) < 0) {
		w->bus_busy = false;
		struct timeval tv = sdk_ms_tv(WF_BUS_RETRY_MS);
		evtimer_add(w->bus_retry, &tv);
	}
}

/* The event of r's status now, grace.workflow.run.ID.STATUS (malloc'd), or
 * NULL when there is no bus. */
static char *status_body(wf *w, const wfs_run *r)
{
	if (!grace_config_kernel(w->k->cfg, "message_bus"))
		return NULL;
	char subject[128];
	snprintf(subject, sizeof subject, "grace.workflow.run.%s.%s", r->id, r->status);
	json_t *msg = json_pack("{s:s, s:s, s:o}", "subject", subject, "key", r->id, "payload", run_view(r));
	json_object_del(json_object_get(msg, "payload"), "context");
	json_object_del(json_object_get(msg, "payload"), "waiting_on");
	char *body = json_dumps(msg, JSON_COMPACT);
	json_decref(msg);
	return body;
}

/* After the commit that wrote it to the outbox as `seq`. */
static void publish_status(wf *w, int64_t seq, char *body)
{
	if (!body)
		return;
	if (json_array_size(w->bus_queue) < WF_OUTBOX_BATCH && !w->outbox_more)
		json_array_append_new(w->bus_queue, json_pack("[I, s]", (json_int_t)seq, body));
	else
		w->outbox_more = true; /* read from the table when the queue drains */
	free(body);
	bus_next(w);
}

static void run_schedule(run *r, int64_t delay_ms)
{
	struct timeval tv = sdk_ms_tv(delay_ms > 0 ? (unsigned)(delay_ms > 86400000 ? 86400000 : delay_ms) : 0);
	evtimer_add(r->timer, &tv);
}

static void issue_effects(run *r);
static void run_pump(run *r);

static void reload_later(wf *w)
{
	struct timeval tv = sdk_ms_tv(WF_RELOAD_MS);
	evtimer_add(w->reload, &tv);
}

/* Commits r's state, status and events; on failure the run leaves memory
 * and is read again from the store later (what it did since the last
 * commit is done again: nothing of it was acknowledged). */
static int run_commit(run *r, json_t *events, const char *old_status)
{
	wf *w = r->w;
	sdk_err e;
	r->r.updated_ms = sdk_wall_ms();
	char *body = strcmp(old_status, r->r.status) != 0 ? status_body(w, &r->r) : NULL;
	int64_t seq = 0;
	if (wfs_run_save(w->k->db, &r->r, events, body, &seq, &e) < 0) {
		sdk_warn("workflow: run %s cannot be saved (%s); it will be read again", r->r.id, e.msg);
		free(body);
		run_free(r);
		reload_later(w);
		return -1;
	}
	w->commits++;
	publish_status(w, seq, body);
	return 0;
}

static json_t *run_event(const char *type, json_t *data)
{
	json_t *e = json_pack("{s:s, s:I}", "type", type, "at_ms", (json_int_t)sdk_wall_ms());
	if (data)
		json_object_set_new(e, "data", data);
	return e;
}

static void run_pump(run *r)
{
	wf *w = r->w;
	if (strcmp(r->r.status, "running") != 0 || r->loading || !r->def)
		return;
	char old[16];
	snprintf(old, sizeof old, "%s", r->r.status);
	json_t *events = json_array();
	wf_rt rt = { .x = { w->cache },
		     .doc = r->def->doc,
		     .workflow = r->wfvar,
		     .input = r->r.input,
		     .events = events,
		     .now_ms = sdk_wall_ms(),
		     .budget = WF_STEP_BUDGET,
		     .random = rnd64 };
	json_t *result = NULL;
	wf_step st = wf_pump(&rt, r->r.state, &result);
	w->steps += WF_STEP_BUDGET - rt.budget;
	if (st == WF_ST_DONE) {
		snprintf(r->r.status, sizeof r->r.status, "completed");
		json_decref(r->r.output);
		r->r.output = result;
		json_array_append_new(events, run_event("run.completed", json_pack("{s:O}", "output", result)));
	} else if (st == WF_ST_FAULT) {
		snprintf(r->r.status, sizeof r->r.status, "faulted");
		json_decref(r->r.error);
		r->r.error = result;
		json_array_append_new(events, run_event("run.faulted", json_pack("{s:O}", "error", result)));
	}
	const char *over = NULL;
	if (r->r.events + (int64_t)json_array_size(events) > (int64_t)w->lim.history_max)
		over = "the run's history is full ([workflow] history_max events)";
	else if (json_size(json_object_get(r->r.state, "context")) > w->lim.data_max_bytes)
		over = "the context is over [workflow] data_max_bytes";
	else if (st == WF_ST_DONE && json_size(r->r.output) > w->lim.data_max_bytes)
		over = "the output is over [workflow] data_max_bytes";
	if (over && st != WF_ST_FAULT) {
		/* a limit: the run stops here, faulted, its turn undone */
		json_decref(r->r.output);
		r->r.output = NULL;
		json_t *err = wf_error("runtime", 500, "a limit of the run was reached", over, NULL);
		wfs_run st0;
		sdk_err e;
		if (wfs_run_get(w->k->db, r->r.id, &st0, &e) == 0) {
			json_decref(r->r.state);
			r->r.state = st0.state;
			st0.state = NULL;
			wfs_run_clear(&st0);
		}
		json_array_clear(events);
		snprintf(r->r.status, sizeof r->r.status, "faulted");
		json_decref(r->r.error);
		r->r.error = err;
		json_array_append_new(events, run_event("run.faulted", json_pack("{s:O}", "error", err)));
		st = WF_ST_FAULT;
	}
	r->r.due_ms = st == WF_ST_BLOCKED ? rt.next_due : 0;
	if (run_commit(r, events, old) < 0) {
		json_decref(events);
		return;
	}
	json_decref(events);
	if (st == WF_ST_DONE || st == WF_ST_FAULT) {
		run_free(r); /* it lives in the store only (a retry reads it back) */
		return;
	}
	issue_effects(r);
	if (st == WF_ST_YIELD)
		run_schedule(r, 0);
	else if (rt.next_due)
		run_schedule(r, rt.next_due - sdk_wall_ms());
}

static void on_run_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	run_pump(arg);
}

/* ---- effects ---- */

typedef struct effect_job {
	wf *w;
	char id[33];
	char pos[2048];
	char key[2200];
	json_t *eff;        /* the effect (a copy) */
	char user[65], role[8];
	char job[128];      /* run: the executor's job id */
	int step;           /* run: 0 submit, 1 wait, 2 output; listen: 0 poll, 1 ack */
	json_t *res;        /* listen: the event while acking */
	struct effect_job *prev, *next; /* every job in flight, freed at close */
} effect_job;

static void effect_free(effect_job *j)
{
	j->w->inflight--;
	if (j->prev)
		j->prev->next = j->next;
	else
		j->w->jobs = j->next;
	if (j->next)
		j->next->prev = j->prev;
	if (j->w->starved && !j->w->closing) { /* from the loop, not from inside a callback */
		struct timeval tv = { 0, 0 };
		evtimer_add(j->w->kick, &tv);
	}
	json_decref(j->eff);
	json_decref(j->res);
	free(j);
}

/* The result reaches the frame, if the run and the frame still wait on it. */
static void effect_result(effect_job *j, json_t *res)
{
	wf *w = j->w;
	run *r = w->closing ? NULL : run_find(w, j->id);
	if (r) {
		json_object_del(r->inflight, j->pos);
		json_t *f = r->r.state ? wf_frame(r->r.state, j->pos) : NULL;
		json_t *eff = json_object_get(f, "eff");
		if (f && eff && json_equal(eff, j->eff) && !json_object_get(f, "res")) {
			json_object_set(f, "res", res);
			w->effects++;
			run_pump(r);
		}
	}
	json_decref(res);
	effect_free(j);
}

static json_t *parse_body(const char *body, size_t len)
{
	if (!body || len == 0)
		return json_null();
	json_t *v = json_loadb(body, len, JSON_DECODE_ANY, NULL);
	return v ? v : json_stringn_nocheck(body, len);
}

static void on_http_done(int status, const char *body, size_t len, double ms, const char *error, void *arg)
{
	(void)ms;
	effect_job *j = arg;
	json_t *res = json_pack("{s:i, s:o}", "status", status, "content", parse_body(body, len));
	if (error && status == 0)
		json_object_set_new(res, "error", json_string(error));
	effect_result(j, res);
}

static int header_list(effect_job *j, const json_t *extra, bool kernel, const char **h, size_t max)
{
	size_t n = 0;
	h[n++] = "Idempotency-Key";
	h[n++] = j->key;
	if (kernel && j->user[0]) {
		h[n++] = SDK_USER_HEADER;
		h[n++] = j->user;
		h[n++] = SDK_ROLE_HEADER;
		h[n++] = j->role;
	}
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)extra, k, v) {
		if (n + 3 > max || !json_is_string(v))
			break;
		/* the identity and the key are the run's, never the definition's */
		if (!strcasecmp(k, SDK_USER_HEADER) || !strcasecmp(k, SDK_ROLE_HEADER) ||
		    !strcasecmp(k, SDK_CALLER_HEADER) || !strcasecmp(k, "Idempotency-Key") ||
		    !strncasecmp(k, "X-Grace-", 8) || !strcasecmp(k, "Authorization"))
			continue;
		/* a line break would forge headers (an identity, with the token) */
		const char *val = json_string_value(v);
		if (!*k || strpbrk(k, " \t\r\n:") || strpbrk(val, "\r\n") ||
		    json_string_length(v) != strlen(val))
			return -1;
		h[n++] = k;
		h[n++] = val;
	}
	h[n] = NULL;
	return 0;
}

static int append_query(char *target, size_t cap, const json_t *query)
{
	const char *k;
	json_t *v;
	bool first = strchr(target, '?') == NULL;
	json_object_foreach((json_t *)query, k, v) {
		char ek[512], ev[1024], num[64];
		const char *s = json_string_value(v);
		if (!s) {
			if (!json_is_number(v) && !json_is_boolean(v))
				continue;
			char *d = json_dumps(v, JSON_ENCODE_ANY);
			snprintf(num, sizeof num, "%s", d ? d : "");
			free(d);
			s = num;
		}
		if (sdk_uri_encode(k, ek, sizeof ek) < 0 || sdk_uri_encode(s, ev, sizeof ev) < 0)
			return -1;
		size_t at = strlen(target);
		if ((size_t)snprintf(target + at, cap - at, "%c%s=%s", first ? '?' : '&', ek, ev) >= cap - at)
			return -1;
		first = false;
	}
	return 0;
}

static void effect_fail(effect_job *j, const char *why)
{
	effect_result(j, json_pack("{s:i, s:s}", "status", 0, "error", why));
}

static void do_http(effect_job *j)
{
	wf *w = j->w;
	json_t *e = j->eff;
	const char *ep = json_string_value(json_object_get(e, "endpoint"));
	char method[17];
	snprintf(method, sizeof method, "%s", json_string_value(json_object_get(e, "method")) ?: "GET");
	for (char *c = method; *c; c++)
		*c = (char)toupper((unsigned char)*c);
	char target[4096], kernel[64];
	int port = 0;
	bool is_kernel = false;
	if (!strncmp(ep, "grace://", 8)) {
		const char *p = ep + 8;
		size_t n = strcspn(p, "/");
		if (n == 0 || n >= sizeof kernel)
			return effect_fail(j, "grace://KERNEL/path: no kernel");
		snprintf(kernel, sizeof kernel, "%.*s", (int)n, p);
		snprintf(target, sizeof target, "%s", p[n] ? p + n : "/");
		is_kernel = true;
	} else {
		const char *p = NULL;
		static const char *const hosts[] = { "http://127.0.0.1", "http://localhost", "http://[::1]" };
		for (size_t i = 0; i < 3 && !p; i++)
			if (!strncmp(ep, hosts[i], strlen(hosts[i])))
				p = ep + strlen(hosts[i]);
		if (!p)
			return effect_fail(j, "the endpoint is not a loopback URL nor grace://KERNEL/path");
		port = 80;
		if (*p == ':') {
			char *end;
			long v = strtol(p + 1, &end, 10);
			if (v <= 0 || v > 65535)
				return effect_fail(j, "the endpoint's port is not a port");
			port = (int)v;
			p = end;
		}
		if (*p && *p != '/')
			return effect_fail(j, "the endpoint is not a loopback URL");
		snprintf(target, sizeof target, "%s", *p ? p : "/");
	}
	if (append_query(target, sizeof target, json_object_get(e, "query")) < 0)
		return effect_fail(j, "the query is too long");
	json_t *b = json_object_get(e, "body");
	char *body = b ? json_dumps(b, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	const char *h[2 * WF_HEADERS_MAX + 8];
	if (header_list(j, json_object_get(e, "headers"), is_kernel, h, sizeof h / sizeof h[0] - 1) < 0) {
		free(body);
		return effect_fail(j, "a header's name or value is not one line");
	}
	int rc = is_kernel ? sdk_call(w->k->caller, kernel, method, target, body, body ? strlen(body) : 0, h,
				      WF_CALL_TIMEOUT_MS, on_http_done, j)
			   : sdk_call_port(w->ext, port, method, target, body, body ? strlen(body) : 0, h,
					   WF_CALL_TIMEOUT_MS, on_http_done, j);
	free(body);
	if (rc < 0)
		effect_fail(j, "the call could not start");
}

static void do_run(effect_job *j);

static void on_run_step(int status, const char *body, size_t len, double ms, const char *error, void *arg)
{
	(void)ms;
	effect_job *j = arg;
	json_t *v = body ? json_loadb(body, len, JSON_DECODE_ANY, NULL) : NULL;
	if (j->step == 2) { /* stdout */
		json_t *res = json_pack("{s:i, s:o, s:o}", "status", 200, "job", j->res ? j->res : json_null(),
					"stdout", status == 200 ? json_stringn_nocheck(body ? body : "", len)
							       : json_null());
		j->res = NULL;
		json_decref(v);
		effect_result(j, res);
		return;
	}
	if (status < 200 || status >= 300 || !json_is_object(v)) {
		json_t *res = json_pack("{s:i, s:s, s:o}", "status", status,
					"error", error ? error : "the executor refused the job", "job",
					v ? v : json_null());
		effect_result(j, res);
		return;
	}
	const char *state = json_string_value(json_object_get(v, "state"));
	snprintf(j->job, sizeof j->job, "%s", json_string_value(json_object_get(v, "id")) ?: "");
	if (state && strcmp(state, "queued") && strcmp(state, "running")) {
		json_decref(j->res);
		j->res = v;
		j->step = 2;
	} else {
		json_decref(v);
		j->step = 1;
	}
	do_run(j);
}

static void do_run(effect_job *j)
{
	wf *w = j->w;
	if (w->closing || !run_find(w, j->id)) {
		effect_free(j);
		return;
	}
	const char *h[8];
	header_list(j, NULL, true, h, 7);
	char target[512];
	int rc;
	if (j->step == 0) {
		json_t *job = json_pack("{s:O, s:s}", "argv", json_object_get(j->eff, "argv"), "idempotency_key",
					j->key);
		char *body = json_dumps(job, JSON_COMPACT);
		json_decref(job);
		rc = body ? sdk_call(w->k->caller, "executor", "POST", "/jobs", body, strlen(body), h,
				     WF_CALL_TIMEOUT_MS, on_run_step, j)
			  : -1;
		free(body);
	} else {
		char id[256];
		if (sdk_uri_encode(j->job, id, sizeof id) < 0)
			return effect_fail(j, "a job id too long");
		if (j->step == 1)
			snprintf(target, sizeof target, "/jobs/%s?wait_ms=%d", id, WF_POLL_MS);
		else
			snprintf(target, sizeof target, "/jobs/%s/output?format=raw&stream=stdout", id);
		rc = sdk_call(w->k->caller, "executor", "GET", target, NULL, 0, h,
			      WF_POLL_MS + WF_CALL_TIMEOUT_MS, on_run_step, j);
	}
	if (rc < 0)
		effect_fail(j, "the executor could not be called");
}

static void on_emitted(int status, const char *body, size_t len, double ms, const char *error, void *arg)
{
	(void)ms;
	effect_job *j = arg;
	json_t *res = json_pack("{s:i, s:o}", "status", status, "content", parse_body(body, len));
	if (error && !status)
		json_object_set_new(res, "error", json_string(error));
	effect_result(j, res);
}

static void do_emit(effect_job *j)
{
	wf *w = j->w;
	json_t *ev = json_object_get(j->eff, "event");
	const char *type = json_string_value(json_object_get(ev, "type"));
	/* a CloudEvent whose id is the idempotency key: a consumer drops a
	 * second copy published again after a crash */
	json_t *ce = json_pack("{s:s, s:s, s:s, s:s}", "specversion", "1.0", "id", j->key, "type",
			       type ? type : "", "source",
			       json_string_value(json_object_get(ev, "source")) ?: "grace.workflow");
	const char *k;
	json_t *v;
	json_object_foreach(ev, k, v) if (strcmp(k, "type") && strcmp(k, "source")) json_object_set(ce, k, v);
	json_t *msg = json_pack("{s:s, s:s, s:o}", "subject", type ? type : "", "key", j->key, "payload", ce);
	char *body = json_dumps(msg, JSON_COMPACT);
	json_decref(msg);
	const char *h[8];
	header_list(j, NULL, true, h, 7);
	if (!body || sdk_call(w->k->caller, "message_bus", "POST", "/publish", body, strlen(body), h,
			      WF_BUS_TIMEOUT_MS, on_emitted, j) < 0)
		effect_fail(j, "the bus could not be called");
	free(body);
}

static void do_listen(effect_job *j);

static void group_of(effect_job *j, char *out, size_t len)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a of the key */
	for (const char *p = j->key; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	snprintf(out, len, "wf_%s_%016llx", j->id, (unsigned long long)h);
}

static void on_listen_step(int status, const char *body, size_t len, double ms, const char *error, void *arg)
{
	(void)ms, (void)error;
	effect_job *j = arg;
	if (j->step == 1) { /* acked (or not: the event is ours either way) */
		json_t *res = json_pack("{s:i, s:O}", "status", 200, "event", j->res);
		effect_result(j, res);
		return;
	}
	json_t *v = body && status == 200 ? json_loadb(body, len, 0, NULL) : NULL;
	json_t *m = json_array_get(json_object_get(v, "messages"), 0);
	if (m) {
		j->res = json_incref(json_object_get(m, "payload"));
		j->step = 1;
		char group[128], target[256];
		group_of(j, group, sizeof group);
		snprintf(target, sizeof target, "/groups/%s/ack", group);
		json_t *ack = json_pack("{s:[O]}", "receipts", json_object_get(m, "receipt"));
		char *b = json_dumps(ack, JSON_COMPACT);
		json_decref(ack);
		json_decref(v);
		const char *h[8];
		header_list(j, NULL, true, h, 7);
		if (!b || sdk_call(j->w->k->caller, "message_bus", "POST", target, b, strlen(b), h,
				   WF_BUS_TIMEOUT_MS, on_listen_step, j) < 0)
			on_listen_step(0, NULL, 0, 0, NULL, j);
		free(b);
		return;
	}
	json_decref(v);
	if (status != 200 && status != 0) {
		effect_result(j, json_pack("{s:i, s:o}", "status", status, "content", parse_body(body, len)));
		return;
	}
	do_listen(j); /* nothing yet: poll again */
}

static void do_listen(effect_job *j)
{
	wf *w = j->w;
	run *r = w->closing ? NULL : run_find(w, j->id);
	if (!r || strcmp(r->r.status, "running") != 0) {
		if (r)
			json_object_del(r->inflight, j->pos);
		effect_free(j);
		return;
	}
	char group[128], subj[512], target[1024];
	group_of(j, group, sizeof group);
	if (sdk_uri_encode(json_string_value(json_object_get(j->eff, "type")) ?: "", subj, sizeof subj) < 0)
		return effect_fail(j, "the event type is too long");
	snprintf(target, sizeof target, "/groups/%s/poll?subject=%s&from=latest&max=1&wait_ms=%d", group, subj,
		 WF_POLL_MS);
	const char *h[8];
	header_list(j, NULL, true, h, 7);
	if (sdk_call(w->k->caller, "message_bus", "GET", target, NULL, 0, h, WF_POLL_MS + WF_CALL_TIMEOUT_MS,
		     on_listen_step, j) < 0)
		effect_fail(j, "the bus could not be called");
}

static void issue_effects(run *r)
{
	if (!r->w->roles_synced) /* its role may be stale: on_kick issues them once told */
		return;
	json_t *pend = json_array();
	wf_pending(r->r.state, pend);
	size_t i;
	json_t *f;
	json_array_foreach(pend, i, f) {
		const char *pos = json_string_value(json_object_get(f, "p"));
		if (json_object_get(r->inflight, pos))
			continue;
		if (r->w->inflight >= WF_EFFECTS_MAX) {
			r->w->starved = true;
			break;
		}
		json_t *eff = json_object_get(f, "eff");
		effect_job *j = calloc(1, sizeof *j);
		if (!j)
			break;
		j->w = r->w;
		snprintf(j->id, sizeof j->id, "%s", r->r.id);
		snprintf(j->pos, sizeof j->pos, "%s", pos);
		snprintf(j->key, sizeof j->key, "%s:%s:%s", r->r.id, pos,
			 json_string_value(json_object_get(eff, "attempt")));
		snprintf(j->user, sizeof j->user, "%s", r->r.owner);
		snprintf(j->role, sizeof j->role, "%s", r->r.role);
		j->eff = json_deep_copy(eff);
		r->w->inflight++;
		j->next = r->w->jobs;
		if (j->next)
			j->next->prev = j;
		r->w->jobs = j;
		json_object_set_new(r->inflight, pos, json_true());
		const char *kind = json_string_value(json_object_get(eff, "kind"));
		if (!strcmp(kind, "http"))
			do_http(j);
		else if (!strcmp(kind, "run"))
			do_run(j);
		else if (!strcmp(kind, "emit"))
			do_emit(j);
		else
			do_listen(j);
	}
	json_decref(pend);
}

/* Effects that waited for a slot go out. */
static void on_kick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	wf *w = arg;
	w->starved = false;
	/* by id: an effect failing at once may end (and free) its run */
	json_t *ids = json_array();
	for (run *r = w->runs; r; r = r->next)
		json_array_append_new(ids, json_string(r->r.id));
	size_t i;
	json_t *id;
	json_array_foreach(ids, i, id) {
		run *r = run_find(w, json_string_value(id));
		if (w->starved)
			break;
		if (r && !strcmp(r->r.status, "running") && r->def && r->r.state)
			issue_effects(r);
	}
	json_decref(ids);
}

/* ---- loading runs ---- */

static void run_with_def(wf *w, def_slot *d, int status, sdk_err *err, void *arg)
{
	(void)status;
	char *id = arg;
	run *r = run_find(w, id);
	free(id);
	if (!r)
		return;
	r->loading = false;
	if (!d) {
		sdk_warn("workflow: run %s cannot load its definition (%s); retrying", r->r.id, err->msg);
		run_free(r);
		reload_later(w);
		return;
	}
	r->def = d;
	run_pump(r);
}

/* Puts a stored run in memory and lets it go on (a run not yet in memory). */
static run *run_load(wf *w, wfs_run *st)
{
	run *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->w = w;
	r->r = *st;
	memset(st, 0, sizeof *st);
	r->inflight = json_object();
	r->timer = evtimer_new(w->k->base, on_run_timer, r);
	r->wfvar = json_pack("{s:s, s:O, s:{s:s, s:s}, s:I}", "id", r->r.id, "input",
			     r->r.input ? r->r.input : json_null(), "definition", "name", r->r.name, "version",
			     r->r.version, "startedAt", (json_int_t)r->r.created_ms);
	r->next = w->runs;
	w->runs = r;
	w->n_runs++;
	r->loading = true;
	char *id = strdup(r->r.id);
	if (!id || !r->timer) {
		free(id);
		run_free(r);
		return NULL;
	}
	def_get(w, r->r.name, r->r.version, run_with_def, id);
	return r;
}

static void load_active(wf *w)
{
	json_t *ids;
	sdk_err e;
	if (wfs_run_active(w->k->db, &ids, &e) < 0) {
		sdk_warn("workflow: cannot list active runs (%s)", e.msg);
		reload_later(w);
		return;
	}
	size_t i;
	json_t *id;
	json_array_foreach(ids, i, id) {
		if (run_find(w, json_string_value(id)))
			continue;
		wfs_run st;
		if (wfs_run_get(w->k->db, json_string_value(id), &st, &e) < 0)
			continue;
		run_load(w, &st);
		wfs_run_clear(&st);
	}
	json_decref(ids);
}

static void on_reload(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	load_active(arg);
}

/* ---- routes: definitions ---- */

static bool good_name(const char *n)
{
	size_t len = n ? strlen(n) : 0;
	if (len == 0 || len > WF_NAME_MAX)
		return false;
	for (const char *p = n; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '-' || *p == '_' || *p == '.'))
			return false;
	return true;
}

typedef struct put_job {
	sdk_req *req;
	char owner[65];
	bool admin;
	unsigned tasks;
} put_job;

static void put_bound(wf *w, def_slot *d, int status, sdk_err *err, void *arg)
{
	put_job *p = arg;
	if (!d) {
		if (status == SDK_EINVAL)
			sdk_reply_error(p->req, 400, "invalid", "%s", err->msg);
		else
			sdk_reply_status(p->req, status, err);
		free(p);
		return;
	}
	sdk_err e;
	char *text = json_dumps(d->doc, JSON_COMPACT | JSON_SORT_KEYS);
	int rc = text ? wfs_def_put(w->k->db, d->name, d->version, text, p->owner, p->admin, sdk_wall_ms(), &e)
		      : sdk_fail(&e, SDK_EBUSY, "out of memory");
	free(text);
	if (rc < 0) {
		sdk_reply_status(p->req, rc, &e);
		def_free(w, d);
	} else {
		sdk_reply_json(p->req, rc == 1 ? 200 : 201,
			       json_pack("{s:s, s:s, s:b}", "name", d->name, "version", d->version, "created",
					 rc == 0));
		if (!def_cached(w, d->name, d->version))
			def_keep(w, d); /* or freed: loaded again when a run needs it */
		else
			def_free(w, d);
	}
	free(p);
}

static void on_def_put(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	wf *w = k->state;
	size_t len = sdk_req_body_len(req);
	if (len > w->lim.definition_max_bytes) {
		sdk_reply_error(req, 413, "too_large", "a definition: at most %zu bytes",
				w->lim.definition_max_bytes);
		return;
	}
	const char *ct = sdk_req_header(req, "Content-Type");
	json_t *doc;
	if (ct && strstr(ct, "yaml")) {
		struct evbuffer *b = sdk_req_body(req);
		const char *text = b ? (const char *)evbuffer_pullup(b, -1) : NULL;
		sdk_err e;
		doc = wf_yaml_parse(text ? text : "", text ? evbuffer_get_length(b) : 0, &e);
		if (!doc) {
			sdk_reply_error(req, 400, "bad_yaml", "%s", e.msg);
			return;
		}
	} else {
		json_t *body = sdk_req_json(req, true);
		if (!body)
			return;
		doc = json_incref(body);
	}
	put_job *p = calloc(1, sizeof *p);
	if (!p) {
		json_decref(doc);
		sdk_reply_error(req, 503, "busy", "out of memory");
		return;
	}
	p->req = req;
	const char *user;
	int role;
	p->admin = caller_of(req, k, &user, &role);
	snprintf(p->owner, sizeof p->owner, "%s", user);
	def_bind(w, doc, put_bound, p);
}

static void on_def_list(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	const char *user;
	int role;
	bool all = caller_of(req, k, &user, &role);
	json_t *out;
	sdk_err e;
	int rc = wfs_def_list(k->db, all ? sdk_req_query(req, "owner") : user, sdk_req_query(req, "name"), &out, &e);
	if (rc < 0)
		sdk_reply_status(req, rc, &e);
	else
		sdk_reply_json(req, 200, json_pack("{s:o}", "definitions", out));
}

static void on_def_get(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	const char *user;
	int role;
	bool all = caller_of(req, k, &user, &role);
	const char *name = sdk_req_param(req, "name"), *version = sdk_req_query(req, "version");
	char *text = NULL, v[65], owner[65];
	sdk_err e;
	int rc = wfs_def_get(k->db, name, version, &text, v, owner, &e);
	if (rc == 0 && !all && strcmp(owner, user) != 0)
		rc = sdk_fail(&e, SDK_ENOTFOUND, "no definition \"%s\"", name);
	json_t *doc = rc == 0 ? json_loads(text, 0, NULL) : NULL;
	free(text);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	sdk_reply_json(req, 200, json_pack("{s:s, s:s, s:s, s:o}", "name", name, "version", v, "owner", owner,
					   "definition", doc ? doc : json_null()));
}

/* ---- routes: runs ---- */

#define WF_IDEM_KEY_MAX 200 /* bytes of a start's Idempotency-Key */

typedef struct start_job {
	sdk_req *req;
	wfs_run r;
	char key[WF_IDEM_KEY_MAX + 1]; /* "": none */
} start_job;

/* A start whose Idempotency-Key the caller used before: 200 with that run
 * (a resend after a crash, e.g. the scheduler's: each slot starts one run).
 * False when there is none. */
static bool start_again(sdk_req *req, sdk_kernel *k, const char *owner, const char *key)
{
	char id[33];
	sdk_err e;
	wfs_run r;
	int rc = wfs_run_by_key(k->db, owner, key, id, &e);
	if (rc == 0)
		return false;
	if (rc > 0 && (rc = wfs_run_get(k->db, id, &r, &e)) == 0) {
		sdk_reply_json(req, 200, run_view(&r));
		wfs_run_clear(&r);
		return true;
	}
	sdk_reply_status(req, rc, &e);
	return true;
}

static void new_id(char out[33])
{
	unsigned char b[16];
	uint64_t a = rnd64(), c = rnd64();
	memcpy(b, &a, 8);
	memcpy(b + 8, &c, 8);
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static void start_bound(wf *w, def_slot *d, int status, sdk_err *err, void *arg)
{
	start_job *j = arg;
	if (!d) {
		sdk_reply_status(j->req, status, err);
		wfs_run_clear(&j->r);
		free(j);
		return;
	}
	json_t *wfvar = json_pack("{s:s, s:O, s:{s:s, s:s}, s:I}", "id", j->r.id, "input", j->r.input,
				  "definition", "name", d->name, "version", d->version, "startedAt",
				  (json_int_t)j->r.created_ms);
	json_t *events = json_array(), *error = NULL;
	wf_rt rt = { .x = { w->cache }, .doc = d->doc, .workflow = wfvar, .input = j->r.input,
		     .events = events, .now_ms = sdk_wall_ms() };
	j->r.state = wf_state_new(&rt, j->r.input, &error);
	json_decref(wfvar);
	if (!j->r.state) {
		sdk_reply_error(j->req, 400, "invalid", "input: the workflow's input.from failed: %s",
				json_string_value(json_object_get(error, "detail")) ?: "");
		json_decref(error);
		json_decref(events);
		wfs_run_clear(&j->r);
		free(j);
		return;
	}
	json_array_append_new(events, run_event("run.started", json_pack("{s:O, s:s, s:s, s:s}", "input",
									   j->r.input, "definition", d->name,
									   "version", d->version, "owner", j->r.owner)));
	sdk_err e;
	char *body = status_body(w, &j->r);
	int64_t seq = 0;
	int rc = wfs_run_insert(w->k->db, &j->r, j->key[0] ? j->key : NULL, events, body, &seq, &e);
	json_decref(events);
	if (rc < 0) {
		free(body);
		/* the same key started meanwhile: that run is the answer */
		if (rc != SDK_ECONFLICT || !j->key[0] || !start_again(j->req, w->k, j->r.owner, j->key))
			sdk_reply_status(j->req, rc, &e);
		wfs_run_clear(&j->r);
		free(j);
		return;
	}
	j->r.events = 1;
	json_t *view = run_view(&j->r);
	publish_status(w, seq, body);
	if (!run_load(w, &j->r)) /* takes j->r */
		reload_later(w);
	sdk_reply_json(j->req, 201, view);
	wfs_run_clear(&j->r);
	free(j);
}

static void on_run_start(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	wf *w = k->state;
	json_t *body = sdk_req_json(req, true);
	if (!body)
		return;
	static const char *const fields[] = { "definition", "version", "input", NULL };
	if (sdk_req_fields_only(req, body, fields) < 0)
		return;
	const char *name = json_string_value(json_object_get(body, "definition"));
	json_t *ver = json_object_get(body, "version");
	json_t *input = json_object_get(body, "input");
	if (!good_name(name)) {
		sdk_reply_error(req, 400, "invalid", "definition: the name of a stored definition");
		return;
	}
	if (ver && !good_name(json_string_value(ver))) {
		sdk_reply_error(req, 400, "invalid", "version: a stored version (a string)");
		return;
	}
	if (input && json_size(input) > w->lim.data_max_bytes) {
		sdk_reply_error(req, 413, "too_large", "input: at most %zu bytes", w->lim.data_max_bytes);
		return;
	}
	if (w->n_runs >= w->lim.runs_max) {
		sdk_req_add_header(req, "Retry-After", "1");
		sdk_reply_error(req, 429, "too_many_runs", "%zu runs are active, the most allowed ([workflow] runs_max)",
				w->n_runs);
		return;
	}
	const char *user;
	int role;
	bool all = caller_of(req, k, &user, &role);
	const char *key = sdk_req_header(req, "Idempotency-Key");
	if (key && (!*key || strlen(key) > WF_IDEM_KEY_MAX)) {
		sdk_reply_error(req, 400, "invalid", "Idempotency-Key: 1 to %d bytes", WF_IDEM_KEY_MAX);
		return;
	}
	if (key && start_again(req, k, user, key))
		return;
	char *text = NULL, version[65], owner[65];
	sdk_err e;
	int rc = wfs_def_get(k->db, name, ver ? json_string_value(ver) : NULL, &text, version, owner, &e);
	free(text);
	if (rc == 0 && !all && strcmp(owner, user) != 0)
		rc = sdk_fail(&e, SDK_ENOTFOUND, "no definition \"%s\"", name);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	start_job *j = calloc(1, sizeof *j);
	if (!j) {
		sdk_reply_error(req, 503, "busy", "out of memory");
		return;
	}
	j->req = req;
	snprintf(j->key, sizeof j->key, "%s", key ? key : "");
	new_id(j->r.id);
	snprintf(j->r.name, sizeof j->r.name, "%s", name);
	snprintf(j->r.version, sizeof j->r.version, "%s", version);
	snprintf(j->r.owner, sizeof j->r.owner, "%s", user);
	snprintf(j->r.role, sizeof j->r.role, "%s", role == SDK_CALLER_ADMIN ? "admin" : "user");
	snprintf(j->r.status, sizeof j->r.status, "running");
	j->r.input = input ? json_deep_copy(input) : json_object();
	j->r.created_ms = j->r.updated_ms = sdk_wall_ms();
	def_get(w, name, version, start_bound, j);
}

/* The run named in the path if the caller may see it (404 otherwise). */
static int run_for(sdk_req *req, sdk_kernel *k, wfs_run *r)
{
	const char *user;
	int role;
	bool all = caller_of(req, k, &user, &role);
	sdk_err e;
	const char *id = sdk_req_param(req, "id");
	int rc = wfs_run_get(k->db, id, r, &e);
	if (rc == 0 && !all && strcmp(r->owner, user) != 0) {
		wfs_run_clear(r);
		rc = sdk_fail(&e, SDK_ENOTFOUND, "no run \"%s\"", id);
	}
	if (rc < 0)
		sdk_reply_status(req, rc, &e);
	return rc;
}

static void on_run_get(sdk_req *req, void *ctx)
{
	wfs_run r;
	if (run_for(req, ctx, &r) < 0)
		return;
	sdk_reply_json(req, 200, run_view(&r));
	wfs_run_clear(&r);
}

static void on_run_list(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	unsigned long long limit, since, until;
	if (sdk_req_query_uint(req, "limit", 1, WFS_PAGE_MAX, 100, &limit) < 0 ||
	    sdk_req_query_uint(req, "since_ms", 0, 1ULL << 53, 0, &since) < 0 ||
	    sdk_req_query_uint(req, "until_ms", 0, 1ULL << 53, 0, &until) < 0)
		return;
	const char *status = sdk_req_query(req, "status");
	static const char *const statuses[] = { "running", "suspended", "completed", "faulted", "cancelled" };
	bool ok = !status;
	for (size_t i = 0; i < 5 && !ok; i++)
		ok = !strcmp(status, statuses[i]);
	if (!ok) {
		sdk_reply_error(req, 400, "bad_query", "status: running, suspended, completed, faulted or cancelled");
		return;
	}
	const char *user;
	int role;
	bool all = caller_of(req, k, &user, &role);
	json_t *out;
	sdk_err e;
	int rc = wfs_run_list(k->db, all ? sdk_req_query(req, "owner") : user, status,
			      sdk_req_query(req, "definition"), (int64_t)since, (int64_t)until,
			      sdk_req_query(req, "before"), (unsigned)limit, &out, &e);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	size_t n = json_array_size(out);
	json_t *next = n == limit ? json_object_get(json_array_get(out, n - 1), "id") : NULL;
	sdk_reply_json(req, 200, json_pack("{s:o, s:O}", "runs", out, "next", next ? next : json_null()));
}

static void on_history(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	unsigned long long after, limit;
	if (sdk_req_query_uint(req, "after", 0, 1ULL << 53, 0, &after) < 0 ||
	    sdk_req_query_uint(req, "limit", 1, 10000, 1000, &limit) < 0)
		return;
	wfs_run r;
	if (run_for(req, k, &r) < 0)
		return;
	json_t *out;
	sdk_err e;
	int rc = wfs_history(k->db, r.id, (int64_t)after, (unsigned)limit, &out, &e);
	wfs_run_clear(&r);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	size_t n = json_array_size(out);
	json_t *next = n == limit ? json_object_get(json_array_get(out, n - 1), "seq") : NULL;
	sdk_reply_json(req, 200, json_pack("{s:o, s:O}", "events", out, "next", next ? next : json_null()));
}

/* The operations on a run: which statuses each accepts, and what it becomes. */
typedef struct op_row {
	const char *op, *from[3], *to, *event;
} op_row;

static const op_row ops[] = {
	{ "cancel", { "running", "suspended", "faulted" }, "cancelled", "run.cancelled" },
	{ "suspend", { "running" }, "suspended", "run.suspended" },
	{ "resume", { "suspended" }, "running", "run.resumed" },
	{ "retry", { "faulted" }, "running", "run.retried" },
};

static void run_op(sdk_req *req, sdk_kernel *k, const char *op)
{
	wf *w = k->state;
	const op_row *row = NULL;
	for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
		if (!strcmp(ops[i].op, op))
			row = &ops[i];
	wfs_run st;
	if (run_for(req, k, &st) < 0)
		return;
	bool ok = false;
	for (int i = 0; i < 3 && row->from[i]; i++)
		ok |= !strcmp(row->from[i], st.status);
	if (!ok) {
		sdk_reply_error(req, 409, "conflict", "run \"%s\" is %s: it cannot be %s", st.id, st.status,
				!strcmp(op, "retry") ? "retried" : !strcmp(op, "cancel") ? "cancelled"
				: !strcmp(op, "suspend") ? "suspended" : "resumed");
		wfs_run_clear(&st);
		return;
	}
	if (!strcmp(op, "retry") && (!st.state || wf_state_retry(st.state) < 0)) {
		sdk_reply_error(req, 409, "conflict", "run \"%s\" has no failed task to retry from", st.id);
		wfs_run_clear(&st);
		return;
	}
	const char *user;
	int role;
	caller_of(req, k, &user, &role);
	run *r = run_find(w, st.id);
	char old[16];
	snprintf(old, sizeof old, "%s", st.status);
	wfs_run *target = r ? &r->r : &st;
	if (r && !strcmp(op, "retry")) {
		json_decref(r->r.state);
		r->r.state = json_incref(st.state);
	}
	snprintf(target->status, sizeof target->status, "%s", row->to);
	if (!strcmp(op, "retry")) {
		json_decref(target->error);
		target->error = NULL;
	}
	json_t *events = json_array();
	json_array_append_new(events, run_event(row->event, json_pack("{s:s}", "by", *user ? user : "kernel")));
	sdk_err e;
	target->updated_ms = sdk_wall_ms();
	char *body = status_body(w, target);
	int64_t seq = 0;
	int rc = wfs_run_save(k->db, target, events, body, &seq, &e);
	json_decref(events);
	if (rc < 0) {
		free(body);
		sdk_reply_status(req, rc, &e);
		if (r) {
			run_free(r);
			reload_later(w);
		}
		wfs_run_clear(&st);
		return;
	}
	publish_status(w, seq, body);
	json_t *view = run_view(target);
	if (!strcmp(row->to, "cancelled") && r)
		run_free(r);
	else if (!strcmp(row->to, "running")) {
		if (!r)
			r = run_load(w, &st);
		else
			run_schedule(r, 0);
	}
	sdk_reply_json(req, 200, view);
	wfs_run_clear(&st);
}

/* A role applied: the runs in memory and the effects in flight of that
 * owner carry it too. */
static void runs_take_role(void *arg, const char *owner, const char *role)
{
	wf *w = arg;
	for (run *r = w->runs; r; r = r->next)
		if (!strcmp(r->r.owner, owner))
			snprintf(r->r.role, sizeof r->r.role, "%s", role);
	for (effect_job *j = w->jobs; j; j = j->next)
		if (!strcmp(j->user, owner))
			snprintf(j->role, sizeof j->role, "%s", role);
}

/* PUT /owner-roles: a user's role changed; their runs act with the new one
 * from now on, the effects in flight included (sdk/owner_roles.h). */
static void on_owner_roles(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	wf *w = k->state;
	if (sdk_owner_roles_serve(req, k,
				  "UPDATE runs SET role = ?1 WHERE owner = ?2 AND role IN ('user', 'admin')",
				  "runs", &w->roles_synced, runs_take_role, w) == 1) {
		/* the effects held back since start go out */
		struct timeval now = { 0, 0 };
		evtimer_add(w->kick, &now);
	}
}

/* DELETE /owners/:name: a deleted user's runs go with the user (the main
 * process calls this when a user is deleted or a name is taken again):
 * they stop where they are, and a new user of the name sees none. */
static void on_owner_delete(sdk_req *req, void *ctx)
{
	sdk_kernel *k = ctx;
	wf *w = k->state;
	const char *user;
	int role;
	if (!caller_of(req, k, &user, &role) || *user) {
		sdk_reply_error(req, 403, "forbidden", "only the main process removes a user's runs");
		return;
	}
	const char *owner = sdk_req_param(req, "name");
	int64_t n = 0;
	sdk_err e;
	int rc = wfs_owner_purge(k->db, owner, &n, &e);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	for (run *r = w->runs, *next; r; r = next) {
		next = r->next;
		if (!strcmp(r->r.owner, owner))
			run_free(r); /* its effects in flight find no run when they end */
	}
	if (n)
		sdk_info("workflow: %lld runs of '%s' deleted with their owner", (long long)n, owner);
	sdk_reply_json(req, 200, json_pack("{s:s, s:I}", "owner", owner, "deleted", (json_int_t)n));
}

static void on_cancel(sdk_req *req, void *ctx) { run_op(req, ctx, "cancel"); }
static void on_suspend(sdk_req *req, void *ctx) { run_op(req, ctx, "suspend"); }
static void on_resume(sdk_req *req, void *ctx) { run_op(req, ctx, "resume"); }
static void on_retry(sdk_req *req, void *ctx) { run_op(req, ctx, "retry"); }

/* ---- life ---- */

static int wf_init(sdk_kernel *k, sdk_err *err)
{
	sdk_err e;
	if (wfs_init(k->db, &e) < 0) {
		return sdk_fail(err, SDK_EIO, "%s", e.msg);
	}
	wf *w = calloc(1, sizeof *w);
	if (!w) {
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	k->state = w;
	w->k = k;
	w->lim = k->cfg->workflow;
	w->cache = sdk_jq_cache_new(WF_JQ_KEEP);
	w->pool = sdk_pool_new(k->base, 1, 256);
	w->ext = sdk_caller_new(k->base, "workflow", NULL, sdk_ports_resolve, k->ports);
	w->reload = evtimer_new(k->base, on_reload, w);
	w->kick = evtimer_new(k->base, on_kick, w);
	w->bus_retry = evtimer_new(k->base, on_bus_retry, w);
	w->bus_queue = json_array();
	w->outbox_more = true; /* what the last process left */
	w->roles_synced = !sdk_owner_roles_wait_at_start();
	if (!w->cache || !w->pool || !w->ext || !w->reload || !w->kick || !w->bus_retry) {
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	load_active(w); /* runs the last process left go on where they were */
	bus_next(w);    /* and their status events still in the outbox go out */
	return 0;
}

static void wf_close(sdk_kernel *k)
{
	wf *w = k->state;
	if (!w)
		return;
	w->closing = true;
	if (w->pool)
		sdk_pool_free(w->pool);
	if (w->ext)
		sdk_caller_free(w->ext);
	while (w->runs)
		run_free(w->runs);
	while (w->jobs) /* their calls end without calling back */
		effect_free(w->jobs);
	for (size_t i = 0; i < w->n_defs; i++)
		def_free(w, w->defs[i]);
	free(w->defs);
	sdk_jq_cache_free(w->cache);
	if (w->reload)
		event_free(w->reload);
	if (w->kick)
		event_free(w->kick);
	json_decref(w->bus_queue);
	if (w->bus_retry)
		event_free(w->bus_retry);
	free(w);
	k->state = NULL;
}

static void wf_metrics(sdk_kernel *k, struct evbuffer *out)
{
	wf *w = k->state;
	if (!w)
		return;
	evbuffer_add_printf(out,
			    "# TYPE grace_workflow_runs_active gauge\ngrace_workflow_runs_active{kernel=\"workflow\"} %zu\n"
			    "# TYPE grace_workflow_steps_total counter\ngrace_workflow_steps_total{kernel=\"workflow\"} %llu\n"
			    "# TYPE grace_workflow_commits_total counter\ngrace_workflow_commits_total{kernel=\"workflow\"} %llu\n"
			    "# TYPE grace_workflow_effects_total counter\ngrace_workflow_effects_total{kernel=\"workflow\"} %llu\n",
			    w->n_runs, w->steps, w->commits, w->effects);
}

static const sdk_route wf_routes[] = {
	SDK_ROUTE("POST", "/definitions", on_def_put),
	SDK_ROUTE("GET", "/definitions", on_def_list),
	SDK_ROUTE("GET", "/definitions/:name", on_def_get),
	SDK_ROUTE("POST", "/runs", on_run_start),
	SDK_ROUTE("GET", "/runs", on_run_list),
	SDK_ROUTE("GET", "/runs/:id", on_run_get),
	SDK_ROUTE("GET", "/runs/:id/history", on_history),
	SDK_ROUTE("POST", "/runs/:id/cancel", on_cancel),
	SDK_ROUTE("POST", "/runs/:id/suspend", on_suspend),
	SDK_ROUTE("POST", "/runs/:id/resume", on_resume),
	SDK_ROUTE("POST", "/runs/:id/retry", on_retry),
	SDK_ROUTE("PUT", "/owner-roles", on_owner_roles),
	SDK_ROUTE("DELETE", "/owners/:name", on_owner_delete),
};

const sdk_kernel_def workflow_kernel = {
	.name = "workflow",
	.port = 8122, .tier = "execution",
	.summary = "durable runs of Serverless Workflow DSL 1.0 definitions that resume after a crash",
	.complete = true,
	/* Its tables as they are today: a change is a new step in
	 * .migrations and a new fixture directory (docs/upgrades.md). */
	.schema_version = WFS_SCHEMA_VERSION,
	.migrations = wfs_migrations,
	.n_migrations = WFS_SCHEMA_VERSION,
	.routes = wf_routes,
	.n_routes = sizeof wf_routes / sizeof wf_routes[0],
	.init = wf_init,
	.close = wf_close,
	.metrics = wf_metrics,
};
