/* The executor kernel (8121): runs commands as jobs, queued by priority,
 * at most `concurrency` at once, each in the containment this machine
 * offers (contain.h), under a shim that owns its process tree (shim.h),
 * with its output streamed and stored (output.h).
 *
 * Routes (through :8000 as /executor/..., admins only; docs/executor.md):
 *   POST /jobs                 submit -> 201 (200 for a known idempotency_key)
 *   POST /jobs/validate        check a job without storing it
 *   GET  /jobs                 ?state=&cursor=&limit=, newest first
 *   GET  /jobs/:id             ?wait_ms= waits (<= 30 s) for it to finish
 *   POST /jobs/:id/cancel      SIGTERM the tree, SIGKILL after the grace
 *   GET  /jobs/:id/output      SSE, live then stored; ?format=raw&stream=stdout|stderr
 *   GET  /containment          what this machine offers
 *   GET  /stats
 *
 * A restart finds jobs it was running: their processes are killed (the
 * shims already did, on seeing us die) and they are marked lost. Queued
 * jobs stay queued and start. */
#include "kernels/executor/contain.h"
#include "kernels/executor/output.h"
#include "kernels/executor/sandbox.h"
#include "kernels/executor/shim.h"
#include "kernels/executor/store.h"
#include "kernels/registry.h"

#include "sdk/call.h"
#include "sdk/clock.h"
#include "sdk/log.h"
#include "sdk/pdp.h"
#include "sdk/pool.h"
#include "sdk/proc.h"

#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <ftw.h>
#include <pwd.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define WAIT_MAX_MS 30000
#define PAGE_DEFAULT 100
#define READ_BURST (64u << 10) /* bytes read from one pipe per loop turn */
#define EOF_GRACE_MS 2000      /* after the shim's report, the pipes' ends wait this long */
#define PRUNE_EVERY 100        /* finished jobs between history prunes */
#define ENV_MAX (EXE_ENV_MAX + 16)
#define CLOSE_WAIT_MS 2000     /* at close: shims to finish killing */

typedef struct exe exe;
typedef struct exe_run exe_run;

typedef struct exe_waiter {
	exe *x;
	sdk_req *req;
	char id[EXE_ID_LEN + 1];
	struct event *timer;
	struct exe_waiter *next, *prev;
} exe_waiter;

struct exe_run {
	exe *x;
	exe_run *next, *prev;
	char id[EXE_ID_LEN + 1];
	exe_spec spec;
	exe_plan plan;
	exe_cg_job cg;
	exe_shim shim;
	struct event *ev_status, *ev_out[2], *ev_grace;
	exe_out *out;
	char msg_buf[sizeof(exe_shim_msg)];
	size_t msg_got;
	bool reported; /* the shim's final report (exited, or exec failed) arrived */
	exe_shim_msg end;
	bool started, exited, eof[2], shim_reaped, done;
	char error[256];
	char workdir[PATH_MAX];
	int64_t started_ms;
};

struct exe {
	sdk_kernel *k;
	const grace_executor *cfg;
	exe_host host;
	exe_seccomp seccomp;
	char instance[EXE_INSTANCE_LEN + 1];
	char work_root[PATH_MAX];
	exe_run *runs;
	unsigned n_running;
	exe_waiter *waiters;
	struct event *sigchld, *kick;
	sdk_pool *pool;
	bool draining;
	char *inherit[16]; /* allow-listed variables of our own environment (owned) */
	size_t n_inherit;
	unsigned finished_since_prune;
	struct {
		uint64_t submitted, started, succeeded, failed, timed_out, cancelled, lost;
		uint64_t spawn_failures, duplicates, refused_full;
	} stats;
};

static exe *exe_of(void *ctx)
{
	return ((sdk_kernel *)ctx)->state;
}

static void try_start(exe *x);

/* "dir" resolved (realpath) into `out`: a directory at or below
 * [executor] dir_root (resolved too). 0, or a negative status with why. */
static int resolve_dir(const exe *x, const char *dir, char out[PATH_MAX], sdk_err *e)
{
	char root[PATH_MAX];
	if (!x->cfg->dir_root[0])
		return sdk_fail(e, SDK_EDENIED, "dir: no job may name a directory here "
						"([executor] dir_root is not set)");
	if (!realpath(x->cfg->dir_root, root))
		return sdk_fail(e, SDK_EINVAL, "dir: [executor] dir_root %.200s: %s",
				x->cfg->dir_root, strerror(errno));
	struct stat st;
	if (!realpath(dir, out) || stat(out, &st) < 0 || !S_ISDIR(st.st_mode))
		return sdk_fail(e, SDK_EINVAL, "dir: %.200s is not a directory", dir);
	size_t n = strlen(root);
	if (strcmp(root, "/") && (strncmp(out, root, n) || (out[n] && out[n] != '/')))
		return sdk_fail(e, SDK_EDENIED, "dir: %.200s is not under [executor] dir_root", dir);
	return 0;
}

/* Where the job runs: its "dir", else its own directory. */
static const char *job_dir(const exe_run *r)
{
	return r->spec.dir[0] ? r->spec.dir : r->workdir;
}


/* ---- small helpers */

static void reply_invalid(sdk_req *req, int status, const char *code, const char *field,
			  const char *msg)
{
	sdk_reply_json(req, status,
		       json_pack("{s:{s:s, s:s, s:s, s:s}}", "error", "code", code, "message", msg,
				 "request_id", sdk_req_id(req), "field", field));
}

static void new_id(char out[EXE_ID_LEN + 1])
{
	unsigned char r[8];
	randombytes_buf(r, sizeof r);
	snprintf(out, EXE_ID_LEN + 1, "x_%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3],
		 r[4], r[5], r[6], r[7]);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st, (void)flag, (void)f;
	remove(path);
	return 0;
}

/* Removes a directory tree without following links (nftw FTW_PHYS). */
static void rm_tree(const char *path)
{
	if (path[0])
		nftw(path, rm_entry, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

struct rm_job {
	char path[PATH_MAX];
};

static void rm_work(void *arg)
{
	rm_tree(((struct rm_job *)arg)->path);
}

static void rm_done(void *arg)
{
	free(arg);
}

/* A job's directory goes on the pool: it may hold anything the job wrote. */
static void rm_later(exe *x, const char *path)
{
	struct rm_job *j = calloc(1, sizeof *j);
	if (!j)
		return;
	snprintf(j->path, sizeof j->path, "%s", path);
	if (!x->pool || sdk_pool_submit(x->pool, rm_work, rm_done, j) < 0) {
		rm_tree(j->path);
		free(j);
	}
}

/* Who asks: a user through the gateway, or a kernel (trusted by the token). */
static void caller_of(sdk_req *req, exe *x, char *name, size_t n, const char **role)
{
	int r;
	const char *user = sdk_req_caller(req, x->k->token, &r);
	if (user) {
		snprintf(name, n, "%s", user);
		*role = r == SDK_CALLER_ADMIN ? "admin" : "user";
		return;
	}
	const char *k = sdk_req_header(req, SDK_CALLER_HEADER);
	bool ok = k && *k && strlen(k) <= 32;
	for (const char *p = k; ok && *p; p++)
		ok = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_';
	snprintf(name, n, "kernel:%s", ok ? k : "internal");
	*role = "kernel";
}

/* ---- who may run jobs: decided by policy (docs/executor.md "Who may run
 * jobs"). Principal the user the request is for (User::"NAME" under its
 * Role), else the calling kernel on its own account (Kernel::"NAME");
 * action Action::"executor.run"; resource Kernel::"executor"; context
 * {route: "POST /jobs" | "POST /jobs/validate" | "POST /jobs/:id/cancel"}.
 * The default set: admins, and kernels on their own account (a kernel
 * acting for a user carries the user, and is decided as that user). With
 * [policy] authorizer = table: the role table (admins and kernels). The
 * operator (the token, no caller name) is not asked, as calls are not. */

typedef void (*exe_go)(sdk_req *req, exe *x);

typedef struct run_wait {
	sdk_req *req;
	exe *x;
	exe_go go;
	char who[SDK_CALLER_NAME_MAX + 16];
} run_wait;

static void run_refused(sdk_req *req, const char *who)
{
	sdk_reply_error(req, 403, "forbidden", "policy does not let %s run jobs", who);
}

static void run_unavailable(sdk_req *req, const char *why)
{
	sdk_req_add_header(req, "Retry-After", "1");
	sdk_reply_error(req, 503, "policy_unavailable",
			"running jobs is decided by the policy kernel, and %s", why);
}

static void on_run_decided(int result, const char *why, void *arg)
{
	run_wait *w = arg;
	if (result == SDK_PDP_ALLOW)
		w->go(w->req, w->x);
	else if (result == SDK_PDP_DENY)
		run_refused(w->req, w->who);
	else
		run_unavailable(w->req, why ? why : "it cannot decide now");
	free(w);
}

/* Runs `go` once the caller may run jobs (now, or when decided); else
 * answers 403, or 503 when undecidable (fail closed). */
static void may_run(sdk_req *req, exe *x, const char *route, exe_go go)
{
	int r = SDK_CALLER_NONE;
	const char *user = sdk_req_caller(req, x->k->token, &r);
	const char *caller = sdk_req_header(req, SDK_CALLER_HEADER);
	if (x->k->cfg->policy.authorizer != GRACE_AUTHORIZER_KERNEL) {
		if (user && r != SDK_CALLER_ADMIN)
			sdk_reply_error(req, 403, "forbidden", "running jobs is for admins");
		else
			go(req, x);
		return;
	}
	if (!user && (!caller || !*caller)) {
		go(req, x); /* the operator */
		return;
	}
	const char *role = r == SDK_CALLER_ADMIN ? "admin" : "user";
	char who[SDK_CALLER_NAME_MAX + 16];
	snprintf(who, sizeof who, "%s \"%s\"", user ? "user" : "kernel", user ? user : caller);
	sdk_pdp *pdp = sdk_kernel_pdp(x->k);
	char key[SDK_CALLER_NAME_MAX * 2 + 64];
	int n = snprintf(key, sizeof key, "exe.run\x1f%s\x1f%s\x1f%s\x1f%s", user ? "User" : "Kernel",
			 user ? user : caller, user ? role : "", route);
	if (!pdp || n < 0 || (size_t)n >= sizeof key) {
		run_unavailable(req, pdp ? "the question is too long" : "there is no memory to ask it");
		return;
	}
	switch (sdk_pdp_lookup(pdp, key, (size_t)n)) {
	case SDK_PDP_ALLOW: go(req, x); return;
	case SDK_PDP_DENY: run_refused(req, who); return;
	case SDK_PDP_UNAVAILABLE: run_unavailable(req, sdk_pdp_why(pdp)); return;
	default: break;
	}
	json_t *ents = json_array();
	if (user)
		json_array_append_new(ents, sdk_pdp_user_entity(user, role));
	json_t *q = json_pack("{s:{s:s, s:s}, s:{s:s, s:s}, s:{s:s, s:s}, s:{s:s}}", "principal",
			      "type", user ? "User" : "Kernel", "id", user ? user : caller, "action",
			      "type", "Action", "id", "executor.run", "resource", "type", "Kernel",
			      "id", "executor", "context", "route", route);
	run_wait *w = calloc(1, sizeof *w);
	if (!w || !q || !ents) {
		free(w);
		json_decref(q);
		json_decref(ents);
		run_unavailable(req, "there is no memory to ask it");
		return;
	}
	*w = (run_wait){ .req = req, .x = x, .go = go };
	snprintf(w->who, sizeof w->who, "%s", who);
	sdk_pdp_ask(pdp, key, (size_t)n, q, ents, on_run_decided, w);
}

/* A user sees and cancels only the jobs they started (admins and kernels:
 * every job). False when answered (404: another's is not told). */
static bool may_see(sdk_req *req, exe *x, const char *id)
{
	int r;
	const char *user = sdk_req_caller(req, x->k->token, &r);
	if (!user || r == SDK_CALLER_ADMIN)
		return true;
	json_t *job = NULL;
	sdk_err e;
	int rc = exe_job_get(x->k->db, id, &job, &e);
	const char *owner = json_string_value(json_object_get(job, "owner"));
	bool mine = rc == 0 && owner && !strcmp(owner, user);
	json_decref(job);
	if (rc < 0 && rc != SDK_ENOTFOUND) {
		sdk_reply_status(req, rc, &e);
		return false;
	}
	if (!mine)
		sdk_reply_error(req, 404, "not_found", "no job %s", id);
	return mine;
}

/* ---- waiters: GET /jobs/:id?wait_ms= */

static void waiter_free(exe_waiter *w)
{
	exe *x = w->x;
	if (w->prev)
		w->prev->next = w->next;
	else
		x->waiters = w->next;
	if (w->next)
		w->next->prev = w->prev;
	if (w->timer)
		event_free(w->timer);
	free(w);
}

static void waiter_answer(exe_waiter *w)
{
	json_t *job;
	sdk_err e;
	int rc = exe_job_get(w->x->k->db, w->id, &job, &e);
	sdk_req_on_close(w->req, NULL, NULL);
	if (rc < 0)
		sdk_reply_status(w->req, rc, &e);
	else
		sdk_reply_json(w->req, 200, job);
	waiter_free(w);
}

static void on_waiter_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	waiter_answer(arg);
}

static void on_waiter_close(sdk_req *req, void *arg)
{
	exe_waiter *w = arg;
	sdk_reply_error(req, 499, "client_closed", "gone");
	waiter_free(w);
}

static void wake_waiters(exe *x, const char *id)
{
	for (exe_waiter *w = x->waiters, *next; w; w = next) {
		next = w->next;
		if (!strcmp(w->id, id))
			waiter_answer(w);
	}
}

/* ---- finishing a run */

static json_t *usage_json(const exe_run *r, const exe_cg_usage *u)
{
	json_t *o = json_pack("{s:I, s:I, s:I, s:i, s:i}", "cpu_user_ms",
			      (json_int_t)(r->end.user_usec / 1000), "cpu_system_ms",
			      (json_int_t)(r->end.sys_usec / 1000), "max_rss_kb",
			      (json_int_t)r->end.maxrss_kb, "stragglers_killed",
			      (int)r->end.stragglers, "processes_left", (int)r->end.leftover);
	if (u->memory_peak_bytes >= 0)
		json_object_set_new(o, "memory_peak_bytes", json_integer(u->memory_peak_bytes));
	if (u->pids_peak >= 0)
		json_object_set_new(o, "pids_peak", json_integer(u->pids_peak));
	if (u->cpu_usec >= 0)
		json_object_set_new(o, "cpu_tree_ms", json_integer(u->cpu_usec / 1000));
	return o;
}

static void run_free(exe_run *r)
{
	exe *x = r->x;
	if (r->prev)
		r->prev->next = r->next;
	else
		x->runs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	struct event *evs[] = { r->ev_status, r->ev_out[0], r->ev_out[1], r->ev_grace };
	for (size_t i = 0; i < 4; i++)
		if (evs[i])
			event_free(evs[i]);
	int fds[] = { r->shim.status_fd, r->shim.ctl_fd, r->shim.out_fd, r->shim.err_fd };
	for (size_t i = 0; i < 4; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	exe_out_unref(r->out);
	exe_spec_free(&r->spec);
	free(r);
}

/* Records the outcome and lets the next job in. */
static void run_complete(exe_run *r)
{
	exe *x = r->x;
	if (r->done)
		return;
	r->done = true;
	exe_cg_usage u;
	exe_cg_job_usage(&r->cg, &u);
	int ws = r->end.wait_status, sig = 0, code = -1;
	if (r->started) {
		if (WIFEXITED(ws))
			code = WEXITSTATUS(ws);
		else if (WIFSIGNALED(ws)) {
			sig = WTERMSIG(ws);
			code = 128 + sig;
		}
	}
	exe_result res = { .exit_code = code, .signal = sig, .finished_ms = sdk_wall_ms() };
	res.oom_killed = u.oom_kills > 0;
	res.cpu_limit_hit = r->end.cpu_exceeded || sig == SIGXCPU;
	res.timed_out = r->end.timed_out;
	res.cancelled = r->end.cancelled && !r->end.timed_out;
	if (r->error[0]) {
		res.state = "failed";
		res.error = r->error;
	} else if (res.timed_out) {
		res.state = "timed_out";
		res.exit_code = 124; /* as coreutils timeout: whichever signal it took */
	} else if (res.cancelled) {
		res.state = "cancelled";
	} else {
		res.state = code == 0 ? "succeeded" : "failed";
		if (r->end.cpu_exceeded)
			res.error = "the tree's CPU time limit was reached";
		else if (res.oom_killed)
			res.error = "killed for memory (the cgroup's OOM killer)";
	}
	json_t *usage = usage_json(r, &u);
	res.usage = usage;
	res.out = exe_out_data(r->out, 0, &res.out_len);
	res.err = exe_out_data(r->out, 1, &res.err_len);
	res.out_total = exe_out_total(r->out, 0);
	res.err_total = exe_out_total(r->out, 1);
	res.out_truncated = exe_out_truncated(r->out, 0);
	res.err_truncated = exe_out_truncated(r->out, 1);
	sdk_err e;
	if (exe_job_finish(x->k->db, r->id, &res, &e) < 0)
		sdk_error("executor: job %s: cannot record its end: %s", r->id, e.msg);
	json_decref(usage);
	if (!strcmp(res.state, "succeeded"))
		x->stats.succeeded++;
	else if (!strcmp(res.state, "timed_out"))
		x->stats.timed_out++;
	else if (!strcmp(res.state, "cancelled"))
		x->stats.cancelled++;
	else
		x->stats.failed++;
	/* The shim emptied the groups; this catches anything it could not. */
	if (exe_cg_job_kill(&r->cg) || exe_cg_job_remove(&r->cg) < 0)
		sdk_warn("executor: job %s: its cgroups could not be removed", r->id);
	rm_later(x, r->workdir);
	json_t *job = NULL;
	if (exe_job_get(x->k->db, r->id, &job, &e) < 0)
		job = json_pack("{s:s, s:s}", "id", r->id, "state", res.state);
	exe_out_finish(r->out, job);
	wake_waiters(x, r->id);
	x->n_running--;
	run_free(r);
	if (++x->finished_since_prune >= PRUNE_EVERY) {
		x->finished_since_prune = 0;
		if (exe_job_prune(x->k->db, x->cfg->history_max, &e) < 0)
			sdk_warn("executor: %s", e.msg);
	}
	try_start(x);
}

/* True when the run completed: r is freed then. */
static bool maybe_complete(exe_run *r)
{
	if (!(r->exited && r->eof[0] && r->eof[1]))
		return false;
	run_complete(r);
	return true;
}

static void on_grace(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	run_complete(arg); /* something still holds the pipes: do not wait for it */
}

/* True when the run completed (and r is freed). */
static bool mark_exited(exe_run *r)
{
	if (r->exited)
		return false;
	r->exited = true;
	struct timeval tv = sdk_ms_tv(EOF_GRACE_MS);
	evtimer_add(r->ev_grace, &tv);
	return maybe_complete(r);
}

/* ---- the shim's reports, and the job's output */

/* True when the message completed the run (r is freed then). */
static bool on_msg(exe_run *r, const exe_shim_msg *m)
{
	exe *x = r->x;
	switch (m->type) {
	case EXE_MSG_STARTED: {
		r->started = true;
		char st;
		uint64_t ticks = 0;
		proc_stat(m->pid, &st, &ticks);
		sdk_err e;
		if (exe_job_set_pid(x->k->db, r->id, m->pid, ticks, &e) < 0)
			sdk_warn("executor: job %s: %s", r->id, e.msg);
		break;
	}
	case EXE_MSG_EXEC_FAILED:
		snprintf(r->error, sizeof r->error, "%s failed: %s", exe_stage_name(m->stage),
			 strerror(m->err));
		r->end = *m;
		r->reported = true;
		return mark_exited(r);
	case EXE_MSG_EXITED:
		r->end = *m;
		r->reported = true;
		return mark_exited(r);
	}
	return false;
}

/* Reads what the shim reported so far. True when that completed the run
 * (r is freed then). */
static bool status_read(exe_run *r)
{
	int fd = r->shim.status_fd;
	for (;;) {
		ssize_t n = read(fd, r->msg_buf + r->msg_got, sizeof r->msg_buf - r->msg_got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return false;
		if (n <= 0) {
			event_del(r->ev_status);
			if (!r->exited) {
				snprintf(r->error, sizeof r->error,
					 "the job's shim ended without a report");
				return mark_exited(r);
			}
			return false;
		}
		r->msg_got += (size_t)n;
		if (r->msg_got == sizeof r->msg_buf) {
			exe_shim_msg m;
			memcpy(&m, r->msg_buf, sizeof m);
			r->msg_got = 0;
			if (on_msg(r, &m))
				return true; /* the job's output had ended before its report */
		}
	}
}

static void on_status(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	status_read(arg);
}

static void on_output(exe_run *r, int stream, int fd)
{
	char buf[16384];
	size_t burst = 0;
	while (burst < READ_BURST) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			event_del(r->ev_out[stream]);
			r->eof[stream] = true;
			maybe_complete(r);
			return;
		}
		exe_out_append(r->out, stream, buf, (size_t)n);
		burst += (size_t)n;
	}
}

static void on_stdout(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	on_output(arg, 0, fd);
}

static void on_stderr(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	on_output(arg, 1, fd);
}

/* ---- starting a job */

/* Processes of `uid` now (RLIMIT_NPROC counts them all). */
static unsigned long processes_of(uid_t uid)
{
	DIR *d = opendir("/proc");
	unsigned long n = 0;
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		char path[64];
		struct stat st;
		snprintf(path, sizeof path, "/proc/%.20s", e->d_name);
		if (stat(path, &st) == 0 && st.st_uid == uid)
			n++;
	}
	if (d)
		closedir(d);
	return n;
}

/* Everything a launch needs that must outlive the fork call. */
struct prepared {
	const char *argv[EXE_BWRAP_ARGS + EXE_ARGV_MAX + 4];
	char *env_store[ENV_MAX];
	const char *envp[ENV_MAX + 1];
	char cg_join[EXE_CG_FILES_MAX][EXE_CG_PATH_MAX + 32];
	char cg_procs[EXE_CG_FILES_MAX][EXE_CG_PATH_MAX + 32];
	char cg_kill[EXE_CG_PATH_MAX + 32], cpu_stat[EXE_CG_PATH_MAX + 32];
	char reopen[48];
	const char **job_argv;
};

static void prepared_free(struct prepared *p)
{
	for (size_t i = 0; i < ENV_MAX; i++)
		free(p->env_store[i]);
	free(p->job_argv);
}

static int env_add(struct prepared *p, size_t *n, const char *name, const char *value)
{
	/* A later value for a name replaces an earlier one. */
	size_t len = strlen(name);
	for (size_t i = 0; i < *n; i++)
		if (!strncmp(p->env_store[i], name, len) && p->env_store[i][len] == '=') {
			free(p->env_store[i]);
			p->env_store[i] = NULL;
			if (asprintf(&p->env_store[i], "%s=%s", name, value) < 0)
				return -1;
			return 0;
		}
	if (*n >= ENV_MAX || asprintf(&p->env_store[*n], "%s=%s", name, value) < 0)
		return -1;
	(*n)++;
	return 0;
}

static int build_env(exe *x, exe_run *r, struct prepared *p)
{
	size_t n = 0;
	int rc = env_add(p, &n, "PATH", "/usr/local/bin:/usr/bin:/bin") |
		 env_add(p, &n, "LANG", "C.UTF-8") | env_add(p, &n, "HOME", job_dir(r)) |
		 env_add(p, &n, "TMPDIR", job_dir(r)) | env_add(p, &n, "PWD", job_dir(r)) |
		 env_add(p, &n, "USER", x->host.user) | env_add(p, &n, "LOGNAME", x->host.user) |
		 env_add(p, &n, "GRACE_JOB_ID", r->id);
	for (size_t i = 0; i < x->n_inherit; i++) {
		char *eq = strchr(x->inherit[i], '=');
		char name[128];
		snprintf(name, sizeof name, "%.*s", (int)(eq - x->inherit[i]), x->inherit[i]);
		rc |= env_add(p, &n, name, eq + 1);
	}
	json_t *env = json_object_get(r->spec.json, "env");
	const char *k;
	json_t *v;
	json_object_foreach(env, k, v)
		rc |= env_add(p, &n, k, json_string_value(v));
	for (size_t i = 0; i < n; i++)
		p->envp[i] = p->env_store[i];
	p->envp[n] = NULL;
	return rc;
}

static int stdin_fd(exe_run *r)
{
	const char *data = json_string_value(json_object_get(r->spec.json, "stdin"));
	if (!data || !*data)
		return open("/dev/null", O_RDONLY | O_CLOEXEC);
	int fd = memfd_create("grace-job-stdin", MFD_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t len = strlen(data), off = 0;
	while (off < len) {
		ssize_t w = write(fd, data + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			close(fd);
			return -1;
		}
		off += (size_t)w;
	}
	lseek(fd, 0, SEEK_SET);
	return fd;
}

static json_t *cgroups_json(const exe_cg_job *cg)
{
	json_t *o = json_object();
	if (cg->v2[0])
		json_object_set_new(o, "v2", json_string(cg->v2));
	if (cg->memory[0])
		json_object_set_new(o, "memory", json_string(cg->memory));
	if (cg->pids[0])
		json_object_set_new(o, "pids", json_string(cg->pids));
	return o;
}

/* Marks a job that could not start failed, with why. */
static void fail_unstarted(exe *x, const char *id, const char *why)
{
	exe_result res = { .state = "failed", .exit_code = -1, .error = why,
			   .finished_ms = sdk_wall_ms() };
	sdk_err e;
	if (exe_job_finish(x->k->db, id, &res, &e) < 0)
		sdk_error("executor: job %s: %s", id, e.msg);
	x->stats.failed++;
	x->stats.spawn_failures++;
	wake_waiters(x, id);
}

/* Starts the job under its shim: 0, or -1 with why (SDK_EIO). */
static int launch(exe *x, exe_run *r, sdk_err *why)
{
	const exe_plan *pl = &r->plan;
	const exe_limits *lim = &r->spec.limits;
	struct prepared *p = calloc(1, sizeof *p);
	if (!p)
		return sdk_fail(why, SDK_EIO, "out of memory");
	int rc = -1, in = -1;
	size_t argc = 0, n_job = 0;
	if (exe_spec_argv(&r->spec, &p->job_argv, &n_job) < 0) {
		sdk_fail(why, SDK_EIO, "out of memory");
		goto out;
	}
	if (pl->bwrap)
		argc = (size_t)exe_bwrap_args(x->host.bwrap, job_dir(r), r->spec.net,
					      r->spec.readonly_root, pl->seccomp_bwrap, p->argv);
	for (size_t i = 0; i < n_job; i++)
		p->argv[argc++] = p->job_argv[i];
	p->argv[argc] = NULL;
	if (build_env(x, r, p) < 0) {
		sdk_fail(why, SDK_EIO, "out of memory");
		goto out;
	}
	if ((in = stdin_fd(r)) < 0) {
		sdk_fail(why, SDK_EIO, "stdin: %s", strerror(errno));
		goto out;
	}
	exe_launch l = { .argv = p->argv, .envp = p->envp, .workdir = job_dir(r),
			 .stdin_fd = in, .seccomp_memfd = -1, .drop = pl->drop, .uid = pl->uid,
			 .gid = pl->gid, .no_new_privs = pl->drop || pl->seccomp_inproc,
			 .timeout_ms = lim->timeout_ms, .kill_grace_ms = lim->kill_grace_ms };
	if (pl->seccomp_bwrap) {
		l.seccomp_memfd = x->seccomp.memfd;
		snprintf(p->reopen, sizeof p->reopen, "/proc/self/fd/%d", x->seccomp.memfd);
		l.seccomp_reopen = p->reopen;
	}
	if (pl->seccomp_inproc)
		l.seccomp_prog = &x->seccomp.prog;
	exe_rlimit *rl = l.rlimits;
	int nrl = 0;
	struct rlimit cur;
	uint64_t nofile = lim->nofile;
	if (!x->host.root && getrlimit(RLIMIT_NOFILE, &cur) == 0 && cur.rlim_max != RLIM_INFINITY &&
	    nofile > cur.rlim_max)
		nofile = cur.rlim_max; /* not root: the hard limit cannot rise */
	rl[nrl++] = (exe_rlimit){ RLIMIT_NOFILE, { nofile, nofile } };
	rl[nrl++] = (exe_rlimit){ RLIMIT_CORE, { 0, 0 } };
	if (pl->rl_cpu)
		rl[nrl++] = (exe_rlimit){ RLIMIT_CPU, { lim->cpu_s, lim->cpu_s + 1 } };
	if (pl->rl_as)
		rl[nrl++] = (exe_rlimit){ RLIMIT_AS, { lim->memory_bytes, lim->memory_bytes } };
	if (pl->rl_nproc) {
		/* Per user: what the user runs already plus the job's allowance. */
		rlim_t np = processes_of(pl->drop ? pl->uid : geteuid()) + lim->pids;
		rl[nrl++] = (exe_rlimit){ RLIMIT_NPROC, { np, np } };
	}
	l.n_rlimits = nrl;
	const char *groups[] = { r->cg.v2, r->cg.memory, r->cg.pids };
	int nj = 0, np = 0;
	for (int i = 0; i < 3; i++) {
		if (!groups[i][0])
			continue;
		snprintf(p->cg_join[nj], sizeof p->cg_join[0], "%s/cgroup.procs", groups[i]);
		l.cg_join[nj] = p->cg_join[nj];
		nj++;
		/* The tracking group lists the tree: v2, else the v1 pids group. */
		if ((i == 0 || (i == 2 && !r->cg.v2[0])) && np < EXE_CG_FILES_MAX) {
			snprintf(p->cg_procs[np], sizeof p->cg_procs[0], "%s/cgroup.procs", groups[i]);
			l.cg_procs[np] = p->cg_procs[np];
			np++;
		}
	}
	if (r->cg.v2[0] && x->host.cg.v2_kill) {
		snprintf(p->cg_kill, sizeof p->cg_kill, "%s/cgroup.kill", r->cg.v2);
		l.cg_kill = p->cg_kill;
	}
	if (pl->cpu_watch && r->cg.v2[0]) {
		snprintf(p->cpu_stat, sizeof p->cpu_stat, "%s/cpu.stat", r->cg.v2);
		l.cg_cpu_stat = p->cpu_stat;
		l.cpu_limit_usec = lim->cpu_s * 1000000;
	}
	if (exe_shim_spawn(&l, &r->shim, why) == 0)
		rc = 0;
out:
	if (in >= 0)
		close(in);
	prepared_free(p);
	free(p);
	return rc;
}

static void start_job(exe *x, const char *id)
{
	char *text = NULL;
	sdk_err e = { "" };
	exe_run *r = calloc(1, sizeof *r);
	if (!r || exe_job_spec(x->k->db, id, &text, &e) < 0 ||
	    exe_spec_load(text, x->cfg, &r->spec, &e) < 0) {
		fail_unstarted(x, id, r ? e.msg : "out of memory");
		free(text);
		if (r)
			exe_spec_free(&r->spec);
		free(r);
		return;
	}
	free(text);
	r->x = x;
	snprintf(r->id, sizeof r->id, "%s", id);
	r->shim = (exe_shim){ .pid = 0, .status_fd = -1, .ctl_fd = -1, .out_fd = -1, .err_fd = -1 };
	exe_plan_select(&x->host, &r->spec, &r->plan);
	sdk_err why = { "" };
	if (r->plan.refuse[0]) {
		sdk_fail(&why, SDK_EINVAL, "%s", r->plan.refuse);
		goto fail;
	}
	/* Its own directory, its user's. */
	if (snprintf(r->workdir, sizeof r->workdir, "%s/job-%s", x->work_root, id) >=
		    (int)sizeof r->workdir ||
	    (mkdir(r->workdir, 0700) < 0 && errno != EEXIST) ||
	    (r->plan.drop && chown(r->workdir, r->plan.uid, r->plan.gid) < 0)) {
		sdk_fail(&why, SDK_EIO, "working directory %.200s: %s", r->workdir,
			 strerror(errno));
		r->workdir[0] = '\0';
		goto fail;
	}
	/* A named directory is checked again: it may have moved since. */
	char real[PATH_MAX];
	if (r->spec.dir[0] && (resolve_dir(x, r->spec.dir, real, &e) < 0 || strcmp(real, r->spec.dir))) {
		sdk_fail(&why, SDK_EINVAL, "%s",
			 e.msg[0] ? e.msg : "dir: it moved since it was checked");
		goto fail;
	}
	exe_cg_want want = { .v2 = r->plan.cg_v2, .v2_memory = r->plan.v2_memory,
			     .v2_pids = r->plan.v2_pids, .v1_memory = r->plan.v1_memory,
			     .v1_pids = r->plan.v1_pids,
			     .memory_bytes = r->spec.limits.memory_bytes,
			     .pids = r->plan.v1_pids || r->plan.v2_pids ? r->spec.limits.pids : 0 };
	if (want.v1_pids && !want.pids)
		want.pids = EXE_PIDS_MAX; /* a tracking group only */
	sdk_err cgwhy;
	if (exe_cg_job_create(&x->host.cg, id, &want, &r->cg, &cgwhy) < 0) {
		sdk_fail(&why, SDK_EIO, "containment: %s", cgwhy.msg);
		goto fail;
	}
	r->out = exe_out_new(x->k->base, r->spec.limits.output_bytes);
	if (!r->out) {
		sdk_fail(&why, SDK_EIO, "out of memory");
		goto fail;
	}
	if (launch(x, r, &why) < 0)
		goto fail;
	r->ev_status = event_new(x->k->base, r->shim.status_fd, EV_READ | EV_PERSIST, on_status, r);
	r->ev_out[0] = event_new(x->k->base, r->shim.out_fd, EV_READ | EV_PERSIST, on_stdout, r);
	r->ev_out[1] = event_new(x->k->base, r->shim.err_fd, EV_READ | EV_PERSIST, on_stderr, r);
	r->ev_grace = evtimer_new(x->k->base, on_grace, r);
	r->started_ms = sdk_wall_ms();
	char st;
	uint64_t shim_start = 0;
	proc_stat(r->shim.pid, &st, &shim_start);
	json_t *contain = exe_plan_json(&r->plan, &r->spec, &x->host);
	json_t *cgs = cgroups_json(&r->cg);
	if (exe_job_set_running(x->k->db, id, r->started_ms, r->shim.pid, shim_start, contain, cgs,
				r->workdir, &e) < 0)
		sdk_error("executor: job %s: cannot record its start: %s", id, e.msg);
	json_decref(contain);
	json_decref(cgs);
	r->next = x->runs;
	if (x->runs)
		x->runs->prev = r;
	x->runs = r;
	x->n_running++;
	x->stats.started++;
	if (!r->ev_status || !r->ev_out[0] || !r->ev_out[1] || !r->ev_grace) {
		/* Cannot watch it: stop it (closing the control pipe kills the tree). */
		snprintf(r->error, sizeof r->error, "out of memory watching the job");
		close(r->shim.ctl_fd);
		r->shim.ctl_fd = -1;
		r->exited = r->eof[0] = r->eof[1] = true;
		run_complete(r);
		return;
	}
	event_add(r->ev_status, NULL);
	event_add(r->ev_out[0], NULL);
	event_add(r->ev_out[1], NULL);
	return;
fail:
	exe_cg_job_remove(&r->cg);
	if (r->workdir[0])
		rm_later(x, r->workdir);
	fail_unstarted(x, id, why.msg);
	exe_out_unref(r->out);
	exe_spec_free(&r->spec);
	free(r);
}

static void try_start(exe *x)
{
	while (!x->draining && x->n_running < x->cfg->concurrency) {
		char id[EXE_ID_LEN + 1];
		sdk_err e;
		int rc = exe_job_next_queued(x->k->db, id, &e);
		if (rc == SDK_ENOTFOUND)
			return;
		if (rc < 0) {
			sdk_warn("executor: %s", e.msg);
			return;
		}
		start_job(x, id);
	}
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	try_start(arg);
}

/* ---- children: shims, and orphans that reach us if a shim dies */

static exe_run *run_of_shim(exe *x, pid_t pid)
{
	for (exe_run *r = x->runs; r; r = r->next)
		if (r->shim.pid == pid)
			return r;
	return NULL;
}

/* Kills our children that are no shim: a job's processes whose shim died
 * come to us (we are a subreaper too). */
static void kill_strays(exe *x)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char path[96], buf[8192];
		snprintf(path, sizeof path, "/proc/self/task/%.20s/children", e->d_name);
		if (exe_read_small(path, buf, sizeof buf) <= 0)
			continue;
		for (char *p = buf; *p;) {
			char *end;
			long pid = strtol(p, &end, 10);
			if (end == p)
				break;
			if (pid > 1 && !run_of_shim(x, (pid_t)pid))
				kill((pid_t)pid, SIGKILL);
			p = end;
			while (*p == ' ' || *p == '\n')
				p++;
		}
	}
	if (d)
		closedir(d);
}

static void on_sigchld(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	exe *x = arg;
	bool strays = false;
	for (;;) {
		int st;
		pid_t pid = waitpid(-1, &st, WNOHANG);
		if (pid <= 0)
			break;
		exe_run *r = run_of_shim(x, pid);
		if (!r)
			continue; /* an orphan that came to us and ended */
		r->shim_reaped = true;
		if (r->exited)
			continue;
		/* Its report may be in the pipe still: SIGCHLD can come first. */
		if (status_read(r))
			continue; /* the report completed the run (r is freed) */
		if (!r->reported) {
			snprintf(r->error, sizeof r->error, "the job's shim died (%s %d)",
				 WIFSIGNALED(st) ? "signal" : "exit",
				 WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
			exe_cg_job_kill(&r->cg);
			strays = true;
			mark_exited(r);
		}
	}
	if (strays)
		kill_strays(x);
}

/* ---- routes */

static void reply_job(sdk_req *req, exe *x, const char *id, int status, bool duplicate)
{
	json_t *job;
	sdk_err e;
	int rc = exe_job_get(x->k->db, id, &job, &e);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	if (duplicate)
		json_object_set_new(job, "duplicate", json_true());
	sdk_reply_json(req, status, job);
}

/* Checks a job spec; answers 400 (naming the field) and returns -1 when bad. */
/* A job naming "dir" is a kernel's on its own account (no user, a caller
 * name: a coding_agent task's worktree), under dir_root; the resolved path
 * replaces the one given. */
static int check_dir(sdk_req *req, exe *x, exe_spec *spec)
{
	if (!spec->dir[0])
		return 0;
	int role;
	const char *user = sdk_req_caller(req, x->k->token, &role);
	const char *caller = sdk_req_header(req, SDK_CALLER_HEADER);
	sdk_err e = { "" };
	char real[PATH_MAX];
	int rc = SDK_EDENIED;
	if (user || !caller || !*caller || !strcmp(caller, SDK_GATEWAY_CALLER))
		sdk_fail(&e, SDK_EDENIED, "dir: only a kernel, on its own account, may name the "
					  "directory a job runs in");
	else
		rc = resolve_dir(x, spec->dir, real, &e);
	if (rc < 0) {
		reply_invalid(req, rc == SDK_EDENIED ? 403 : 400,
			      rc == SDK_EDENIED ? "forbidden" : "invalid", "dir", e.msg);
		exe_spec_free(spec);
		return -1;
	}
	snprintf(spec->dir, sizeof spec->dir, "%s", real);
	json_object_set_new(spec->json, "dir", json_string(real));
	return 0;
}

static int check_spec(sdk_req *req, exe *x, json_t *body, exe_spec *spec, exe_plan *plan)
{
	char field[EXE_FIELD_MAX];
	sdk_err e = { "" };
	if (exe_spec_parse(body, x->cfg, spec, field, &e) < 0) {
		reply_invalid(req, 400, "invalid", field, e.msg);
		return -1;
	}
	if (check_dir(req, x, spec) < 0)
		return -1;
	exe_plan_select(&x->host, spec, plan);
	if (plan->refuse[0]) {
		const char *f = !strncmp(plan->refuse, "sandbox", 7)   ? "sandbox"
				: !strncmp(plan->refuse, "seccomp", 7) ? "seccomp"
								       : "";
		reply_invalid(req, 400, "unsupported", f, plan->refuse);
		exe_spec_free(spec);
		return -1;
	}
	return 0;
}

static void submit_go(sdk_req *req, exe *x)
{
	json_t *body = sdk_req_json(req, true);
	if (!body)
		return;
	exe_spec spec;
	exe_plan plan;
	if (check_spec(req, x, body, &spec, &plan) < 0)
		return;
	sdk_err e;
	char id[EXE_ID_LEN + 1];
	if (spec.key[0]) {
		/* A resend (a scheduler restarting, a retried request) is
		 * recognised: the same job answers; another job's key is a 409. */
		char *stored = NULL;
		int rc = exe_job_by_key(x->k->db, spec.key, id, &stored, &e);
		if (rc == 0) {
			json_t *old = json_loads(stored, 0, NULL);
			bool same = old && json_equal(old, spec.json);
			json_decref(old);
			free(stored);
			exe_spec_free(&spec);
			if (!same) {
				reply_invalid(req, 409, "conflict", "idempotency_key",
					      "idempotency_key: another job holds this key");
				return;
			}
			x->stats.duplicates++;
			reply_job(req, x, id, 200, true);
			return;
		}
		if (rc != SDK_ENOTFOUND) {
			exe_spec_free(&spec);
			sdk_reply_status(req, rc, &e);
			return;
		}
	}
	int64_t queued = 0;
	if (exe_job_count(x->k->db, "queued", &queued, &e) < 0) {
		exe_spec_free(&spec);
		sdk_reply_status(req, SDK_EIO, &e);
		return;
	}
	if (queued >= x->cfg->queue_max) {
		exe_spec_free(&spec);
		x->stats.refused_full++;
		sdk_req_add_header(req, "Retry-After", "1");
		sdk_reply_error(req, 503, "queue_full", "%lld jobs are waiting (queue_max): try later",
				(long long)queued);
		return;
	}
	char owner[EXE_OWNER_MAX + 1];
	const char *role;
	caller_of(req, x, owner, sizeof owner, &role);
	new_id(id);
	char *text = json_dumps(spec.json, JSON_COMPACT);
	int rc = text ? exe_job_insert(x->k->db, id, owner, role, spec.name, text, spec.key,
				       spec.priority, sdk_wall_ms(), &e)
		      : sdk_fail(&e, SDK_EIO, "out of memory");
	free(text);
	exe_spec_free(&spec);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	x->stats.submitted++;
	try_start(x);
	reply_job(req, x, id, 201, false);
}

static void on_submit(sdk_req *req, void *ctx)
{
	may_run(req, exe_of(ctx), "POST /jobs", submit_go);
}

static void validate_go(sdk_req *req, exe *x)
{
	json_t *body = sdk_req_json(req, true);
	if (!body)
		return;
	exe_spec spec;
	exe_plan plan;
	if (check_spec(req, x, body, &spec, &plan) < 0)
		return;
	sdk_reply_json(req, 200, json_pack("{s:b, s:O, s:o}", "valid", 1, "job", spec.json,
					   "containment", exe_plan_json(&plan, &spec, &x->host)));
	exe_spec_free(&spec);
}

static void on_validate(sdk_req *req, void *ctx)
{
	may_run(req, exe_of(ctx), "POST /jobs/validate", validate_go);
}

static void on_get(sdk_req *req, void *ctx)
{
	exe *x = exe_of(ctx);
	const char *id = sdk_req_param(req, "id");
	if (!may_see(req, x, id))
		return;
	unsigned long long wait;
	if (sdk_req_query_uint(req, "wait_ms", 0, WAIT_MAX_MS, 0, &wait) < 0)
		return;
	char state[32];
	sdk_err e;
	if (exe_job_state(x->k->db, id, state, sizeof state, &e) < 0) {
		sdk_reply_status(req, SDK_EIO, &e);
		return;
	}
	if (!state[0]) {
		sdk_reply_error(req, 404, "not_found", "no job %s", id);
		return;
	}
	bool open = !strcmp(state, "queued") || !strcmp(state, "running");
	if (!wait || !open || x->draining) {
		reply_job(req, x, id, 200, false);
		return;
	}
	exe_waiter *w = calloc(1, sizeof *w);
	if (!w || !(w->timer = evtimer_new(x->k->base, on_waiter_timer, w))) {
		free(w);
		reply_job(req, x, id, 200, false);
		return;
	}
	w->x = x;
	w->req = req;
	snprintf(w->id, sizeof w->id, "%s", id);
	w->next = x->waiters;
	if (x->waiters)
		x->waiters->prev = w;
	x->waiters = w;
	struct timeval tv = sdk_ms_tv(wait);
	evtimer_add(w->timer, &tv);
	sdk_req_on_close(req, on_waiter_close, w);
}

static void on_list(sdk_req *req, void *ctx)
{
	exe *x = exe_of(ctx);
	unsigned long long limit, cursor;
	if (sdk_req_query_uint(req, "limit", 1, EXE_PAGE_MAX, PAGE_DEFAULT, &limit) < 0 ||
	    sdk_req_query_uint(req, "cursor", 0, INT64_MAX, 0, &cursor) < 0)
		return;
	json_t *jobs;
	sdk_err e;
	int rc = exe_job_list(x->k->db, sdk_req_query(req, "state"), (int64_t)cursor,
			      (unsigned)limit, &jobs, &e);
	if (rc < 0) {
		sdk_reply_status(req, rc, &e);
		return;
	}
	size_t n = json_array_size(jobs);
	json_t *next = n == limit ? json_incref(json_object_get(json_array_get(jobs, n - 1), "seq"))
				  : NULL;
	/* A user's page holds their own jobs only (the cursor still walks
	 * every job: a page may be short, never a job skipped). */
	int r;
	const char *user = sdk_req_caller(req, x->k->token, &r);
	for (size_t i = n; user && r != SDK_CALLER_ADMIN && i-- > 0;) {
		const char *o = json_string_value(json_object_get(json_array_get(jobs, i), "owner"));
		if (!o || strcmp(o, user))
			json_array_remove(jobs, i);
	}
	sdk_reply_json(req, 200, json_pack("{s:o, s:o}", "jobs", jobs, "next_cursor",
					   next ? next : json_null()));
}

static exe_run *run_of(exe *x, const char *id)
{
	for (exe_run *r = x->runs; r; r = r->next)
		if (!strcmp(r->id, id))
			return r;
	return NULL;
}

static void cancel_go(sdk_req *req, exe *x)
{
	const char *id = sdk_req_param(req, "id");
	if (!may_see(req, x, id))
		return;
	char state[32];
	sdk_err e;
	if (exe_job_state(x->k->db, id, state, sizeof state, &e) < 0) {
		sdk_reply_status(req, SDK_EIO, &e);
		return;
	}
	if (!state[0]) {
		sdk_reply_error(req, 404, "not_found", "no job %s", id);
		return;
	}
	if (!strcmp(state, "queued")) {
		exe_result res = { .state = "cancelled", .exit_code = -1, .cancelled = true,
				   .finished_ms = sdk_wall_ms() };
		if (exe_job_finish(x->k->db, id, &res, &e) < 0) {
			sdk_reply_status(req, SDK_EIO, &e);
			return;
		}
		x->stats.cancelled++;
		wake_waiters(x, id);
		reply_job(req, x, id, 200, false);
		return;
	}
	exe_run *r = run_of(x, id);
	if (!r || r->exited) {
		sdk_reply_error(req, 409, "conflict", "job %s has ended (%s)", id, state);
		return;
	}
	char c = EXE_CTL_CANCEL;
	if (write(r->shim.ctl_fd, &c, 1) != 1)
		sdk_warn("executor: job %s: cannot reach its shim", id);
	reply_job(req, x, id, 202, false);
}

static void on_cancel(sdk_req *req, void *ctx)
{
	may_run(req, exe_of(ctx), "POST /jobs/:id/cancel", cancel_go);
}

static void on_job_output(sdk_req *req, void *ctx)
{
	exe *x = exe_of(ctx);
	const char *id = sdk_req_param(req, "id");
	if (!may_see(req, x, id))
		return;
	const char *format = sdk_req_query(req, "format");
	const char *stream = sdk_req_query(req, "stream");
	char state[32];
	sdk_err e;
	if (exe_job_state(x->k->db, id, state, sizeof state, &e) < 0) {
		sdk_reply_status(req, SDK_EIO, &e);
		return;
	}
	if (!state[0]) {
		sdk_reply_error(req, 404, "not_found", "no job %s", id);
		return;
	}
	exe_run *r = run_of(x, id);
	if (format && !strcmp(format, "raw")) {
		int s = stream && !strcmp(stream, "stderr") ? 1 : 0;
		if (stream && strcmp(stream, "stdout") && strcmp(stream, "stderr")) {
			reply_invalid(req, 400, "invalid", "stream", "stream: stdout or stderr");
			return;
		}
		struct evbuffer *b = evbuffer_new();
		if (r) {
			size_t len;
			const char *d = exe_out_data(r->out, s, &len);
			evbuffer_add(b, d, len);
		} else {
			char *buf = NULL;
			size_t len = 0;
			if (exe_job_output(x->k->db, id, s, &buf, &len, &e) < 0) {
				evbuffer_free(b);
				sdk_reply_status(req, SDK_EIO, &e);
				return;
			}
			evbuffer_add(b, buf, len);
			free(buf);
		}
		sdk_reply_raw(req, 200, "application/octet-stream", b);
		evbuffer_free(b);
		return;
	}
	if (format && strcmp(format, "sse")) {
		reply_invalid(req, 400, "invalid", "format", "format: sse (the default) or raw");
		return;
	}
	exe_out *o = r ? r->out : NULL;
	if (o) {
		exe_out_ref(o);
	} else {
		/* Ended or queued: what is stored, then the end (queued: after it runs,
		 * which this stream does not wait for). */
		o = exe_out_new(x->k->base, UINT64_MAX);
		for (int s = 0; o && s < 2; s++) {
			char *buf = NULL;
			size_t len = 0;
			if (exe_job_output(x->k->db, id, s, &buf, &len, &e) == 0)
				exe_out_append(o, s, buf, len);
			free(buf);
		}
		json_t *job = NULL;
		if (o && exe_job_get(x->k->db, id, &job, &e) == 0)
			exe_out_finish(o, job);
	}
	if (!o || exe_out_subscribe(o, req) < 0)
		sdk_reply_error(req, 503, "busy", "too many subscribers to this job's output");
	exe_out_unref(o);
}

static void on_containment(sdk_req *req, void *ctx)
{
	exe *x = exe_of(ctx);
	json_t *o = exe_host_json(&x->host);
	json_object_set_new(o, "work_root", json_string(x->work_root));
	json_object_set_new(o, "instance", json_string(x->instance));
	json_object_set_new(o, "seccomp_refused", json_integer(x->host.seccomp_refused));
	sdk_reply_json(req, 200, o);
}

static void on_stats(sdk_req *req, void *ctx)
{
	exe *x = exe_of(ctx);
	int64_t queued = 0;
	exe_job_count(x->k->db, "queued", &queued, NULL);
	sdk_reply_json(req, 200,
		       json_pack("{s:i, s:I, s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
				 "running", (int)x->n_running, "queued", (json_int_t)queued,
				 "concurrency", (int)x->cfg->concurrency, "submitted",
				 (json_int_t)x->stats.submitted, "started",
				 (json_int_t)x->stats.started, "succeeded",
				 (json_int_t)x->stats.succeeded, "failed", (json_int_t)x->stats.failed,
				 "timed_out", (json_int_t)x->stats.timed_out, "cancelled",
				 (json_int_t)x->stats.cancelled, "lost", (json_int_t)x->stats.lost,
				 "spawn_failures", (json_int_t)x->stats.spawn_failures, "duplicates",
				 (json_int_t)x->stats.duplicates, "refused_full",
				 (json_int_t)x->stats.refused_full));
}

/* ---- life */

/* A job a previous life was running: kill what may be left, mark it lost. */
static void recover_one(const char *id, pid_t shim, uint64_t shim_start, pid_t pid,
			uint64_t pid_start, json_t *cgroups, const char *workdir, void *arg)
{
	exe *x = arg;
	char st;
	uint64_t ticks;
	if (shim > 1 && proc_stat(shim, &st, &ticks) == 0 && ticks == shim_start)
		kill(shim, SIGKILL);
	if (pid > 1 && proc_stat(pid, &st, &ticks) == 0 && ticks == pid_start) {
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
	}
	exe_cg_job cg;
	memset(&cg, 0, sizeof cg);
	const char *v;
	if ((v = json_string_value(json_object_get(cgroups, "v2"))))
		snprintf(cg.v2, sizeof cg.v2, "%s", v);
	if ((v = json_string_value(json_object_get(cgroups, "memory"))))
		snprintf(cg.memory, sizeof cg.memory, "%s", v);
	if ((v = json_string_value(json_object_get(cgroups, "pids"))))
		snprintf(cg.pids, sizeof cg.pids, "%s", v);
	int left = exe_cg_job_kill(&cg);
	exe_cg_job_remove(&cg);
	rm_tree(workdir);
	char why[200];
	snprintf(why, sizeof why, "the executor stopped while the job ran; its processes were "
		 "killed%s", left ? " (some would not die)" : "");
	exe_result res = { .state = "lost", .exit_code = -1, .error = why,
			   .finished_ms = sdk_wall_ms() };
	sdk_err e;
	if (exe_job_finish(x->k->db, id, &res, &e) < 0)
		sdk_warn("executor: job %s: %s", id, e.msg);
	x->stats.lost++;
	sdk_warn("executor: job %s was running when the executor stopped: marked lost", id);
}

static void host_setup(exe *x)
{
	exe_host *h = &x->host;
	h->root = geteuid() == 0;
	if (x->cfg->cgroups)
		exe_cg_detect(x->instance, &h->cg);
	else
		snprintf(h->cg.notes, sizeof h->cg.notes, "cgroups off by configuration ([executor] cgroups = 0)");
	char buf[4096];
	struct passwd pw, *res = NULL;
	if (h->root) {
		const char *want = x->cfg->jobs_user[0] ? x->cfg->jobs_user : "grace-jobs";
		if (getpwnam_r(want, &pw, buf, sizeof buf, &res) == 0 && res && res->pw_uid != 0) {
			h->user_found = true;
		} else {
			sdk_warn("executor: no user %s (scripts/bootstrap.sh creates it): jobs run as "
				 "nobody", want);
			res = NULL;
			if (getpwnam_r("nobody", &pw, buf, sizeof buf, &res) != 0)
				res = NULL;
		}
		if (res) {
			h->uid = res->pw_uid;
			h->gid = res->pw_gid;
			snprintf(h->user, sizeof h->user, "%s", res->pw_name);
		}
	} else {
		h->uid = geteuid();
		h->gid = getegid();
		if (getpwuid_r(h->uid, &pw, buf, sizeof buf, &res) == 0 && res)
			snprintf(h->user, sizeof h->user, "%s", res->pw_name);
		else
			snprintf(h->user, sizeof h->user, "%u", (unsigned)h->uid);
	}
	exe_bwrap_find(h->bwrap, sizeof h->bwrap);
	sdk_err why;
	if (exe_seccomp_build(&x->seccomp, &why) == 0) {
		h->seccomp = true;
		h->seccomp_refused = x->seccomp.refused;
	} else {
		sdk_warn("executor: no seccomp filter: %s", why.msg);
	}
	sdk_info("executor: cgroup2 %s (kill %s, memory %s, pids %s); cgroup1 memory %s, pids %s; "
		 "jobs as %s (uid %u); bubblewrap %s; seccomp %s%s%s",
		 h->cg.v2 ? "yes" : "no", h->cg.v2_kill ? "yes" : "no",
		 h->cg.v2_memory ? "yes" : "no", h->cg.v2_pids ? "yes" : "no",
		 h->cg.v1_memory ? "yes" : "no", h->cg.v1_pids ? "yes" : "no", h->user,
		 (unsigned)h->uid, h->bwrap[0] ? h->bwrap : "no", h->seccomp ? "yes" : "no",
		 h->cg.notes[0] ? "; " : "", h->cg.notes);
}

static int work_root_setup(exe *x, sdk_err *err)
{
	if (x->cfg->work_root[0])
		snprintf(x->work_root, sizeof x->work_root, "%s", x->cfg->work_root);
	else
		snprintf(x->work_root, sizeof x->work_root, "/tmp/grace-executor-%s", x->instance);
	if (mkdir(x->work_root, 0711) < 0 && errno != EEXIST)
		return sdk_fail(err, SDK_EIO, "cannot create %s: %s", x->work_root,
				strerror(errno));
	struct stat st;
	if (lstat(x->work_root, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid())
		return sdk_fail(err, SDK_EDENIED, "%s is not a directory of ours", x->work_root);
	chmod(x->work_root, 0711);
	/* Directories a previous life left: nothing runs yet, so none is in use. */
	DIR *d = opendir(x->work_root);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (strncmp(e->d_name, "job-", 4))
			continue;
		char path[PATH_MAX];
		if (snprintf(path, sizeof path, "%.3000s/%.200s", x->work_root, e->d_name) >= (int)sizeof path)
			continue;
		rm_tree(path);
	}
	if (d)
		closedir(d);
	return 0;
}

static void inherit_setup(exe *x)
{
	extern char **environ;
	for (char **e = environ; *e && x->n_inherit < sizeof x->inherit / sizeof x->inherit[0]; e++)
		if (!strncmp(*e, "TZ=", 3) || !strncmp(*e, "LANG=", 5) ||
		    !strncmp(*e, "LANGUAGE=", 9) || !strncmp(*e, "LC_", 3))
			if (strchr(*e, '=') && (x->inherit[x->n_inherit] = strdup(*e)))
				x->n_inherit++;
}

static int executor_init(sdk_kernel *k, sdk_err *err)
{
	if (sodium_init() < 0) {
		return sdk_fail(err, SDK_EIO, "libsodium cannot start");
	}
	exe *x = calloc(1, sizeof *x);
	if (!x) {
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	x->k = k;
	x->cfg = &k->cfg->executor;
	x->seccomp.memfd = -1;
	k->state = x;
	sdk_err e;
	if (exe_store_init(k->db, x->instance, &e) < 0) {
		return sdk_fail(err, SDK_EIO, "%s", e.msg);
	}
	/* Orphans of our jobs come to us, not to init: nothing escapes. */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		sdk_warn("executor: cannot be a child subreaper: %s", strerror(errno));
	host_setup(x);
	if (work_root_setup(x, &e) < 0) {
		return sdk_fail(err, SDK_EIO, "%s", e.msg);
	}
	inherit_setup(x);
	if (exe_jobs_running(k->db, recover_one, x, &e) < 0)
		sdk_warn("executor: cannot read the jobs a previous life ran: %s", e.msg);
	int swept = exe_cg_sweep(&x->host.cg);
	if (swept)
		sdk_info("executor: removed %d cgroups a previous life left", swept);
	x->pool = sdk_pool_new(k->base, 1, 1024);
	x->sigchld = evsignal_new(k->base, SIGCHLD, on_sigchld, x);
	x->kick = evtimer_new(k->base, on_kick, x);
	if (!x->pool || !x->sigchld || !x->kick || evsignal_add(x->sigchld, NULL) < 0) {
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	struct timeval now = { 0, 0 };
	evtimer_add(x->kick, &now); /* queued jobs of a previous life start */
	return 0;
}

static void executor_drain(sdk_kernel *k)
{
	exe *x = k->state;
	if (!x)
		return;
	x->draining = true;
	for (exe_run *r = x->runs; r; r = r->next)
		exe_out_end_subscribers(r->out);
	while (x->waiters)
		waiter_answer(x->waiters);
}

static void executor_close(sdk_kernel *k)
{
	exe *x = k->state;
	if (!x)
		return;
	x->draining = true;
	/* Jobs still running die with us: their shims kill their trees when
	 * the control pipe closes; wait for that, then record them as lost. */
	for (exe_run *r = x->runs; r; r = r->next) {
		exe_out_end_subscribers(r->out);
		if (r->shim.ctl_fd >= 0) {
			close(r->shim.ctl_fd);
			r->shim.ctl_fd = -1;
		}
	}
	int64_t deadline = sdk_mono_ms() + CLOSE_WAIT_MS;
	while (x->runs) {
		exe_run *r = x->runs;
		while (!r->shim_reaped && r->shim.pid > 0 && sdk_mono_ms() < deadline) {
			if (waitpid(r->shim.pid, NULL, WNOHANG) == r->shim.pid)
				r->shim_reaped = true;
			else
				usleep(5000);
		}
		if (!r->shim_reaped && r->shim.pid > 0)
			kill(r->shim.pid, SIGKILL);
		exe_cg_job_kill(&r->cg);
		exe_cg_job_remove(&r->cg);
		rm_tree(r->workdir);
		exe_result res = { .state = "lost", .exit_code = -1,
				   .error = "the executor stopped while the job ran; its processes "
					    "were killed",
				   .finished_ms = sdk_wall_ms() };
		exe_job_finish(k->db, r->id, &res, NULL);
		x->n_running--;
		run_free(r);
	}
	while (x->waiters)
		waiter_answer(x->waiters);
	sdk_pool_free(x->pool);
	if (x->sigchld)
		event_free(x->sigchld);
	if (x->kick)
		event_free(x->kick);
	exe_cg_host_release(&x->host.cg);
	rmdir(x->work_root);
	exe_seccomp_free(&x->seccomp);
	for (size_t i = 0; i < x->n_inherit; i++)
		free(x->inherit[i]);
	free(x);
	k->state = NULL;
}

static const sdk_route executor_routes[] = {
	SDK_ROUTE("POST", "/jobs", on_submit),
	SDK_ROUTE("POST", "/jobs/validate", on_validate),
	SDK_ROUTE("GET", "/jobs", on_list),
	SDK_ROUTE("GET", "/jobs/:id", on_get),
	SDK_ROUTE("POST", "/jobs/:id/cancel", on_cancel),
	SDK_ROUTE("GET", "/jobs/:id/output", on_job_output),
	SDK_ROUTE("GET", "/containment", on_containment),
	SDK_ROUTE("GET", "/stats", on_stats),
};

const sdk_kernel_def executor_kernel = {
	.name = "executor",
	.port = 8121, .tier = "execution",
	.summary = "commands as jobs: queue, limits, containment, streamed output",
	/* Not complete (issue 13): who may run jobs is decided by policy
	 * (executor.run), but memory and pids through cgroup v2 in a delegated
	 * subtree as systemd lays it out (Grace's processes inside the
	 * delegated group) are not done, nor exercised by a test here
	 * (docs/executor.md "Not implemented"). */
	.complete = false,
	.long_poll_max_ms = WAIT_MAX_MS,
	/* Its tables as they are today: a change is a new step in
	 * .migrations and a new fixture directory (docs/upgrades.md). */
	.schema_version = 1,
	.routes = executor_routes,
	.n_routes = sizeof executor_routes / sizeof executor_routes[0],
	.init = executor_init,
	.drain = executor_drain,
	.close = executor_close,
};
