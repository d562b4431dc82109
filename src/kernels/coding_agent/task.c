#include "kernels/coding_agent/task.h"

#include "kernels/coding_agent/edits.h"
#include "kernels/coding_agent/paths.h"
#include "kernels/coding_agent/run.h"
#include "kernels/coding_agent/scratch.h"
#include "kernels/coding_agent/store.h"
#include "sdk/call.h"
#include "sdk/clock.h"
#include "sdk/log.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CALL_TIMEOUT_MS 10000
#define JOB_WAIT_MS 20000 /* each long poll of an executor job */
#define AUDIT_TIMEOUT_MS 5000
#define FILE_CONTEXT_MAX (16u << 10) /* one file shown to the model */

/* The steps of a task, in order; a step's work ends by calling next(). */
typedef enum step {
	STEP_PREPARE,     /* pool: the worktree and branch from base */
	STEP_TEST_BEFORE, /* executor: the tests on base */
	STEP_EDIT,        /* pool: the patch, or the model's blocks (model first) */
	STEP_TEST_AFTER,  /* executor: the tests with the edits */
	STEP_END,
} step;

static const struct {
	const char *state; /* what GET /tasks/ID says meanwhile */
} steps[] = {
	[STEP_PREPARE] = { "preparing" },
	[STEP_TEST_BEFORE] = { "testing_before" },
	[STEP_EDIT] = { "editing" },
	[STEP_TEST_AFTER] = { "testing_after" },
	[STEP_END] = { "done" },
};

struct ca_task {
	ca *c;
	ca_task *next, *prev;
	char id[CA_ID_LEN + 1];
	json_t *doc; /* owned: the report */
	step at;
	bool started;
	int64_t deadline_ms; /* monotonic */
	/* Inputs (resolved). */
	char repo[PATH_MAX], wt[PATH_MAX], branch[64], base[256], base_sha[64];
	char scratch[PATH_MAX]; /* the tests' copy of wt (scratch.h) */
	char *patch; /* owned, may be NULL */
	size_t patch_len;
	unsigned max_turns, turn;
	bool use_model;
	/* The test runs of the current phase: [{test, argv}], and their results. */
	json_t *runs, *results;
	size_t run_i;
	char job[64];
	json_t *job_doc; /* the finished job (owned) while its output is read */
	char *job_stdout; /* owned */
	size_t job_stdout_len;
	/* Pool work: in and out. */
	json_t *cmds;   /* commands the work ran (owned until merged) */
	json_t *report; /* an edit's report (owned until merged) */
	char *diff;     /* owned */
	char *context;  /* owned: the repository's files, for the model */
	char *answer;   /* owned: the model's answer being applied */
	int work_rc;
	sdk_err work_err;
	/* The model. */
	json_t *messages;
	sdk_model_call *mc;
	/* POST /tasks/ID/cancel: who asked; "" when nobody did. The task ends
	 * at its next step, job answer or model answer (nothing of it may be
	 * in flight when it is freed). */
	char cancel_by[96];
};

static void next(ca_task *t);
static void finish(ca_task *t, const char *state, const char *error);
static void advance_from_phase(ca_task *t);

/* A cancelled task ends here, at a point where nothing of it is in flight;
 * true when it did. */
static bool cancelled(ca_task *t)
{
	if (!t->cancel_by[0])
		return false;
	char why[160];
	snprintf(why, sizeof why, "cancelled by %s", t->cancel_by);
	finish(t, "cancelled", why);
	return true;
}

static const char *str_or(json_t *v, const char *def)
{
	const char *s = json_string_value(v);
	return s ? s : def;
}

/* ---- small helpers */

static void new_id(char out[CA_ID_LEN + 1])
{
	unsigned char r[8];
	randombytes_buf(r, sizeof r);
	snprintf(out, CA_ID_LEN + 1, "t_%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3],
		 r[4], r[5], r[6], r[7]);
}

static void save(ca_task *t)
{
	sdk_err e;
	json_object_set_new(t->doc, "updated_ms", json_integer(sdk_wall_ms()));
	if (ca_store_put(t->c->k->db, t->doc, sdk_wall_ms(), &e) < 0)
		sdk_warn("coding_agent: task %s: cannot store its report: %s", t->id, e.msg);
}

static void set_state(ca_task *t, const char *state)
{
	json_object_set_new(t->doc, "state", json_string(state));
	save(t);
}

static void notice(ca_task *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void notice(ca_task *t, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	json_array_append_new(json_object_get(t->doc, "notices"), json_string(msg));
}

/* ---- audit: every command run, every job, every edit (fire and forget;
 * a refusal is counted in /metrics and logged, never fatal to the task). */

static void on_audited(int status, const char *body, size_t len, double ms, const char *error,
		       void *arg)
{
	(void)body, (void)len, (void)ms;
	ca *c = arg;
	if (status < 200 || status >= 300) {
		if (c->stats.audit_failures++ % 50 == 0)
			sdk_warn("coding_agent: the audit trail refused an event (%d %s)", status,
				 error ? error : "");
	}
}

static void audit(ca_task *t, const char *action, const char *outcome, json_t *details)
{
	json_t *d = details ? details : json_object();
	json_object_set_new(d, "task", json_string(t->id));
	char resource[64];
	snprintf(resource, sizeof resource, "task/%s", t->id);
	json_t *ev = json_pack("{s:s, s:s, s:s, s:s, s:o}", "actor", "coding_agent", "action", action,
			       "resource", resource, "outcome", outcome, "details", d);
	char *body = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
	json_decref(ev);
	if (!body || sdk_call(t->c->k->caller, "audit", "POST", "/events", body, strlen(body), NULL,
			      AUDIT_TIMEOUT_MS, on_audited, t->c) < 0)
		t->c->stats.audit_failures++;
	free(body);
}

/* Commands a pool work ran: into the report, each an audit event. */
static void merge_cmds(ca_task *t)
{
	size_t i;
	json_t *cmd;
	json_array_foreach(t->cmds, i, cmd) {
		json_int_t code = json_integer_value(json_object_get(cmd, "exit_code"));
		bool copy = !strcmp(json_string_value(json_object_get(cmd, "kind")) ?: "", "copy");
		json_object_set_new(cmd, "turn", json_integer(t->turn));
		json_array_append(json_object_get(t->doc, "commands"), cmd);
		if (!copy)
			t->c->stats.git_commands++;
		audit(t, copy ? "coding_agent.copy" : "coding_agent.git", code == 0 ? "ok" : "failed",
		      json_pack("{s:O, s:I}", "argv", json_object_get(cmd, "argv"), "exit_code",
				code));
	}
	json_decref(t->cmds);
	t->cmds = json_array();
}

/* Runs git on the pool (the caller is a pool work), recording it. */
static int git(ca_task *t, const char *dir, const char *const *args, ca_run *r)
{
	int rc = ca_git(dir, args, t->c->cfg->git_timeout_ms, r);
	json_array_append_new(t->cmds, ca_run_json(dir, args, r));
	return rc < 0 ? -1 : r->exit_code;
}

static int git_simple(ca_task *t, const char *dir, const char *const *args)
{
	ca_run r;
	int rc = git(t, dir, args, &r);
	if (rc != 0)
		sdk_fail(&t->work_err, SDK_EIO, "git %s: %.160s", args[0],
			 r.out_len ? r.out : "it could not start");
	ca_run_free(&r);
	return rc;
}

/* ---- the pool's works */

static void work_done_prepare(void *arg);

static void mkdirs(const char *path, mode_t mode)
{
	char p[PATH_MAX];
	snprintf(p, sizeof p, "%s", path);
	for (char *s = p + 1; *s; s++)
		if (*s == '/') {
			*s = '\0';
			mkdir(p, mode);
			*s = '/';
		}
	mkdir(p, mode);
}

/* The repository's tracked files, for the model: names, and the text of
 * the small ones until context_max_bytes. */
static void gather_context(ca_task *t)
{
	const char *args[] = { "ls-files", "-z", NULL };
	ca_run r;
	if (git(t, t->wt, args, &r) != 0) {
		ca_run_free(&r);
		return;
	}
	size_t max = t->c->cfg->context_max_bytes, len = 0;
	char *ctx = malloc(max + 1);
	if (!ctx) {
		ca_run_free(&r);
		return;
	}
	ctx[0] = '\0';
	for (size_t off = 0; off < r.out_len;) {
		const char *name = r.out + off;
		size_t nl = strnlen(name, r.out_len - off);
		off += nl + 1;
		char path[PATH_MAX];
		struct stat st;
		if (snprintf(path, sizeof path, "%s/%s", t->wt, name) >= (int)sizeof path ||
		    lstat(path, &st) < 0 || !S_ISREG(st.st_mode) ||
		    (size_t)st.st_size > FILE_CONTEXT_MAX ||
		    len + nl + (size_t)st.st_size + 16 > max)
			continue;
		int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			continue;
		len += (size_t)snprintf(ctx + len, max + 1 - len, "%s\n```\n", name);
		ssize_t got = read(fd, ctx + len, (size_t)st.st_size);
		close(fd);
		if (got > 0)
			len += (size_t)got;
		if (len + 5 <= max)
			len += (size_t)snprintf(ctx + len, max + 1 - len, "```\n\n");
		ctx[len] = '\0';
	}
	ca_run_free(&r);
	t->context = ctx;
}

static void work_prepare(void *arg)
{
	ca_task *t = arg;
	char spec[300];
	snprintf(spec, sizeof spec, "%s^{commit}", t->base);
	const char *rev[] = { "rev-parse", "--verify", "--quiet", "--end-of-options", spec, NULL };
	ca_run r;
	int rc = git(t, t->repo, rev, &r);
	if (rc != 0 || r.out_len < 40) {
		sdk_fail(&t->work_err, SDK_EINVAL, "base: %.200s is not a commit of the repository",
			 t->base);
		ca_run_free(&r);
		t->work_rc = SDK_EINVAL;
		return;
	}
	snprintf(t->base_sha, sizeof t->base_sha, "%.40s", r.out);
	ca_run_free(&r);
	mkdirs(t->c->wt_root, 0755);
	const char *add[] = { "worktree", "add", "--quiet", "-b", t->branch, t->wt, t->base_sha, NULL };
	if (git_simple(t, t->repo, add) != 0) {
		t->work_rc = SDK_EIO;
		return;
	}
	if (t->use_model)
		gather_context(t);
	t->work_rc = 0;
}

/* git apply's "error: patch failed: FILE:LINE" and "error: FILE: ..."
 * lines, as the failed hunks of the report. */
static json_t *apply_failures(const char *out)
{
	json_t *a = json_array();
	for (const char *p = out; p && *p;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		static const char pf[] = "error: patch failed: ";
		if (n > sizeof pf - 1 && !strncmp(p, pf, sizeof pf - 1)) {
			const char *f = p + sizeof pf - 1, *colon = NULL;
			for (const char *q = f; q < p + n; q++)
				if (*q == ':')
					colon = q;
			json_t *o = json_pack("{s:s, s:s%}", "why", "does_not_apply", "message", p, n);
			if (colon) {
				json_object_set_new(o, "file", json_stringn(f, (size_t)(colon - f)));
				json_object_set_new(o, "file_line", json_integer(atoi(colon + 1)));
			}
			json_array_append_new(a, o);
		} else if (n > 7 && !strncmp(p, "error: ", 7) &&
			   strncmp(p, "error: while searching for", 26)) {
			json_t *o = json_pack("{s:s, s:s%}", "why", "refused", "message", p, n);
			const char *colon = memchr(p + 7, ':', n - 7);
			if (colon)
				json_object_set_new(o, "file", json_stringn(p + 7, (size_t)(colon - p - 7)));
			json_array_append_new(a, o);
		}
		p = nl ? nl + 1 : NULL;
	}
	return a;
}

static int apply_diff(ca_task *t, const char *text, size_t len)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof path, "%s/%s-%u.patch", t->c->tmp, t->id, t->turn) >=
	    (int)sizeof path)
		return sdk_fail(&t->work_err, SDK_EIO, "the data directory's path is too long");
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	size_t off = 0;
	while (fd >= 0 && off < len) {
		ssize_t n = write(fd, text + off, len - off);
		if (n <= 0 && errno != EINTR)
			break;
		if (n > 0)
			off += (size_t)n;
	}
	if (fd < 0 || off < len || close(fd) < 0) {
		if (fd >= 0)
			close(fd);
		unlink(path);
		return sdk_fail(&t->work_err, SDK_EIO, "cannot write the patch: %s", strerror(errno));
	}
	t->report = json_pack("{s:s, s:[], s:[]}", "format", "unified_diff", "applied", "failed");
	const char *check[] = { "apply", "--check", "--verbose", path, NULL };
	ca_run r;
	int rc = git(t, t->wt, check, &r);
	if (rc != 0) {
		json_t *f = apply_failures(r.out);
		if (!json_array_size(f))
			json_array_append_new(f, json_pack("{s:s, s:O}", "why", "does_not_apply",
							   "message", json_object_get(json_array_get(t->cmds, json_array_size(t->cmds) - 1), "output_tail")));
		json_object_set_new(t->report, "failed", f);
		ca_run_free(&r);
		unlink(path);
		return sdk_fail(&t->work_err, SDK_ECONFLICT,
				"the patch does not apply (git apply --check); nothing was written");
	}
	ca_run_free(&r);
	const char *apply[] = { "apply", path, NULL };
	rc = git_simple(t, t->wt, apply);
	unlink(path);
	return rc == 0 ? 0 : SDK_EIO;
}

static void work_edit(void *arg)
{
	ca_task *t = arg;
	const char *text = t->answer ? t->answer : t->patch;
	size_t len = strlen(text);
	json_decref(t->report);
	t->report = NULL;
	/* A model answers in blocks (its prompt says so); a patch may be either. */
	if (t->answer || ca_edits_is_sr(text, len)) {
		t->work_rc = ca_edits_apply(t->wt, text, len, &t->report, &t->work_err);
	} else {
		t->work_rc = apply_diff(t, text, len);
	}
	if (t->work_rc < 0)
		return;
	/* The diff against base, new files included. */
	const char *add[] = { "add", "--all", NULL };
	const char *diff[] = { "diff", "--cached", "--no-color", "--no-ext-diff", t->base_sha, NULL };
	ca_run r;
	if (git_simple(t, t->wt, add) != 0 || git(t, t->wt, diff, &r) != 0) {
		t->work_rc = SDK_EIO;
		return;
	}
	free(t->diff);
	t->diff = strndup(r.out, r.out_len);
	ca_run_free(&r);
}

/* ---- executor jobs: one per test run of a phase */

static bool job_over(const char *state)
{
	return state && strcmp(state, "queued") && strcmp(state, "running");
}

static void run_next(ca_task *t);

static json_t *tail_of(const char *s, size_t len)
{
	return ca_tail_json(s, len, CA_OUTPUT_TAIL);
}

static void on_job_stderr(int status, const char *body, size_t len, double ms, const char *error,
			  void *arg)
{
	(void)ms, (void)error;
	ca_task *t = arg;
	json_t *run = json_array_get(t->runs, t->run_i);
	json_t *j = t->job_doc;
	const char *state = json_string_value(json_object_get(j, "state"));
	json_t *code = json_object_get(j, "exit_code");
	json_t *res = json_pack("{s:O, s:O, s:s, s:s, s:O, s:b, s:o, s:o}", "test",
				json_object_get(run, "test"), "argv", json_object_get(run, "argv"),
				"job", t->job, "state", state ? state : "unknown", "exit_code",
				code ? code : json_null(), "passed",
				state && !strcmp(state, "succeeded"), "stdout_tail",
				tail_of(t->job_stdout, t->job_stdout_len), "stderr_tail",
				status == 200 ? tail_of(body, len) : json_string(""));
	const char *err = json_string_value(json_object_get(j, "error"));
	if (err)
		json_object_set_new(res, "error", json_string(err));
	json_array_append_new(t->results, res);
	json_t *cmd = json_pack("{s:s, s:O, s:s, s:s, s:O, s:i}", "kind", "executor_job", "argv",
				json_object_get(run, "argv"), "job", t->job, "state",
				state ? state : "unknown", "exit_code", code ? code : json_null(),
				"turn", t->turn);
	json_array_append_new(json_object_get(t->doc, "commands"), cmd);
	audit(t, "coding_agent.job", state ? state : "unknown",
	      json_pack("{s:s, s:O, s:O}", "job", t->job, "argv", json_object_get(run, "argv"),
			"exit_code", code ? code : json_null()));
	json_decref(t->job_doc);
	t->job_doc = NULL;
	free(t->job_stdout);
	t->job_stdout = NULL;
	t->run_i++;
	run_next(t);
}

static void on_job_stdout(int status, const char *body, size_t len, double ms, const char *error,
			  void *arg)
{
	(void)ms, (void)error;
	ca_task *t = arg;
	free(t->job_stdout);
	t->job_stdout = status == 200 && body ? strndup(body, len) : NULL;
	t->job_stdout_len = t->job_stdout ? len : 0;
	char target[160];
	snprintf(target, sizeof target, "/jobs/%s/output?format=raw&stream=stderr", t->job);
	if (sdk_call(t->c->k->caller, "executor", "GET", target, NULL, 0, NULL, CALL_TIMEOUT_MS,
		     on_job_stderr, t) < 0)
		on_job_stderr(0, NULL, 0, 0, "cannot call", t);
}

static void wait_job(ca_task *t);

static void on_job_cancelled(int status, const char *body, size_t len, double ms,
			     const char *error, void *arg)
{
	(void)body, (void)len, (void)ms, (void)arg;
	if (status != 200 && status != 409) /* 409: it had ended already */
		sdk_warn("coding_agent: cancelling an executor job: %d %s", status,
			 error ? error : "");
}

/* Asks the executor to end the task's current job (its answer is not
 * waited for: the job's own end is, through wait_job). */
static void cancel_job(ca_task *t)
{
	char target[160];
	snprintf(target, sizeof target, "/jobs/%s/cancel", t->job);
	sdk_call(t->c->k->caller, "executor", "POST", target, "{}", 2, NULL, CALL_TIMEOUT_MS,
		 on_job_cancelled, NULL);
}

static void on_job_state(int status, const char *body, size_t len, double ms, const char *error,
			 void *arg)
{
	(void)ms;
	ca_task *t = arg;
	json_t *j = status == 200 && body ? json_loadb(body, len, 0, NULL) : NULL;
	const char *state = json_string_value(json_object_get(j, "state"));
	if (t->cancel_by[0] && job_over(state)) {
		json_decref(j);
		cancelled(t);
		return;
	}
	if (!j) {
		json_decref(j);
		finish(t, "failed", error ? error : "the executor did not answer for its job");
		return;
	}
	if (!job_over(state)) {
		json_decref(j);
		if (t->cancel_by[0]) /* asked to cancel it: its end comes soon */
			cancel_job(t);
		if (sdk_mono_ms() > t->deadline_ms) {
			finish(t, "failed", "task_timeout_ms passed while the tests ran");
			return;
		}
		wait_job(t);
		return;
	}
	t->job_doc = j;
	char target[160];
	snprintf(target, sizeof target, "/jobs/%s/output?format=raw&stream=stdout", t->job);
	if (sdk_call(t->c->k->caller, "executor", "GET", target, NULL, 0, NULL, CALL_TIMEOUT_MS,
		     on_job_stdout, t) < 0)
		on_job_stdout(0, NULL, 0, 0, "cannot call", t);
}

static void wait_job(ca_task *t)
{
	char target[160];
	snprintf(target, sizeof target, "/jobs/%s?wait_ms=%u", t->job, JOB_WAIT_MS);
	if (sdk_call(t->c->k->caller, "executor", "GET", target, NULL, 0, NULL,
		     JOB_WAIT_MS + CALL_TIMEOUT_MS, on_job_state, t) < 0)
		finish(t, "failed", "cannot call the executor");
}

static void on_job_submitted(int status, const char *body, size_t len, double ms,
			     const char *error, void *arg)
{
	(void)ms;
	ca_task *t = arg;
	json_t *j = body ? json_loadb(body, len, 0, NULL) : NULL;
	const char *id = json_string_value(json_object_get(j, "id"));
	if ((status != 201 && status != 200) || !id || strlen(id) >= sizeof t->job) {
		char why[400];
		const char *msg = json_string_value(
			json_object_get(json_object_get(j, "error"), "message"));
		snprintf(why, sizeof why, "the executor refused the test job (%d): %.300s", status,
			 msg ? msg : error ? error : "no answer");
		json_decref(j);
		finish(t, "failed", why);
		return;
	}
	snprintf(t->job, sizeof t->job, "%s", id);
	t->c->stats.executor_jobs++;
	json_decref(j);
	if (t->cancel_by[0]) /* asked while the job was being submitted */
		cancel_job(t);
	wait_job(t);
}

/* The phase's results into the report, then the next step. */
static void phase_done(ca_task *t)
{
	const char *key = t->at == STEP_TEST_BEFORE ? "tests_before" : "tests_after";
	json_t *first = json_array_get(t->results, 0);
	json_t *tests = json_object();
	size_t i;
	json_t *r;
	json_array_foreach(t->results, i, r) {
		const char *id = json_string_value(json_object_get(r, "test"));
		if (id)
			json_object_set(tests, id, json_object_get(r, "passed"));
	}
	json_t *phase = json_pack("{s:O, s:O, s:O, s:o, s:O}", "exit_code",
				  json_object_get(first, "exit_code"), "passed",
				  json_object_get(first, "passed"), "state",
				  json_object_get(first, "state"), "tests", tests, "runs", t->results);
	if (t->at == STEP_TEST_AFTER)
		json_object_set_new(phase, "turn", json_integer(t->turn));
	json_object_set_new(t->doc, key, phase);
	if (t->at == STEP_TEST_AFTER) {
		/* Every turn's results, for the model's loop. */
		json_array_append(json_object_get(t->doc, "turns_log"), phase);
	}
	json_decref(t->results);
	t->results = NULL;
	json_decref(t->runs);
	t->runs = NULL;
	save(t);
	advance_from_phase(t);
	next(t);
}

static void run_next(ca_task *t)
{
	if (t->c->draining)
		return;
	if (cancelled(t))
		return;
	if (t->run_i >= json_array_size(t->runs)) {
		phase_done(t);
		return;
	}
	json_t *run = json_array_get(t->runs, t->run_i);
	char name[128];
	snprintf(name, sizeof name, "coding_agent %s %s", t->id,
		 t->at == STEP_TEST_BEFORE ? "before" : "after");
	json_t *job = json_pack("{s:O, s:s, s:I, s:s, s:{s:s}, s:{s:I}}", "argv",
				json_object_get(run, "argv"), "dir", t->scratch, "timeout_ms",
				(json_int_t)t->c->cfg->test_timeout_ms, "name", name, "env",
				"PYTHONDONTWRITEBYTECODE", "1", "limits", "output_bytes",
				(json_int_t)(256 << 10));
	char *body = job ? json_dumps(job, JSON_COMPACT) : NULL;
	json_decref(job);
	int rc = body ? sdk_call(t->c->k->caller, "executor", "POST", "/jobs", body, strlen(body),
				 NULL, CALL_TIMEOUT_MS, on_job_submitted, t)
		      : -1;
	free(body);
	if (rc < 0)
		finish(t, "failed", "cannot call the executor");
}

/* On the pool: the phase's copy of the worktree, made afresh (the last
 * phase's removed), given to the executor's jobs user when jobs run as
 * another user than this kernel's (docs/coding_agent.md "The tests'
 * copy"). The job writes there; nothing it writes is read back. */
static void work_scratch(void *arg)
{
	ca_task *t = arg;
	int64_t t0 = sdk_mono_ms();
	uid_t uid = 0;
	gid_t gid = 0;
	bool handover = false;
	/* WORKTREE_ROOT/.runs: the copy's path less its last part. */
	char runs[PATH_MAX];
	snprintf(runs, sizeof runs, "%s", t->scratch);
	char *slash = strrchr(runs, '/');
	if (slash)
		*slash = 0;
	if (mkdir(runs, 0755) == 0)
		(void)chmod(runs, 0755); /* past the umask: the jobs user walks through */
	t->work_rc = ca_scratch_owner(t->c->k->cfg->executor.jobs_user, &uid, &gid, &handover,
				      &t->work_err);
	if (t->work_rc == 0)
		t->work_rc = ca_scratch_remove(t->scratch, &t->work_err);
	if (t->work_rc == 0)
		t->work_rc = ca_scratch_copy(t->wt, t->scratch, handover, uid, gid, &t->work_err);
	/* One entry among the commands run (and audited): what was copied
	 * where, and for whom. */
	json_t *cmd = json_pack("{s:s, s:[s, s, s], s:i, s:s, s:I, s:o}", "kind", "copy", "argv",
				"copy", t->wt, t->scratch, "exit_code", t->work_rc == 0 ? 0 : 1,
				"output_tail", t->work_rc == 0 ? "" : t->work_err.msg, "ms",
				(json_int_t)(sdk_mono_ms() - t0), "owner",
				handover ? json_pack("{s:I, s:I}", "uid", (json_int_t)uid, "gid",
						     (json_int_t)gid)
					 : json_null());
	if (!t->cmds)
		t->cmds = json_array();
	if (cmd)
		json_array_append_new(t->cmds, cmd);
}

static void on_scratch_done(void *arg)
{
	ca_task *t = arg;
	merge_cmds(t);
	if (t->c->draining)
		return;
	if (t->work_rc < 0) {
		char why[400];
		snprintf(why, sizeof why, "the tests' copy of the worktree: %s", t->work_err.msg);
		finish(t, "failed", why);
		return;
	}
	run_next(t);
}

/* The runs of a test phase: the whole command, then one per test id
 * (the command with the id as its last argument: docs/coding_agent.md,
 * "How tests are matched"). */
static void phase_start(ca_task *t)
{
	json_t *argv = json_object_get(t->doc, "test_command");
	t->runs = json_array();
	t->results = json_array();
	t->run_i = 0;
	json_array_append_new(t->runs, json_pack("{s:n, s:O}", "test", "argv", argv));
	static const char *const lists[] = { "fail_to_pass", "pass_to_pass" };
	for (size_t l = 0; l < 2; l++) {
		size_t i;
		json_t *id;
		json_array_foreach(json_object_get(t->doc, lists[l]), i, id) {
			json_t *a = json_copy(argv);
			json_array_append(a, id);
			json_array_append_new(t->runs, json_pack("{s:O, s:o}", "test", id, "argv", a));
		}
	}
	/* The phase's copy of the worktree first (on the pool), then the runs. */
	if (sdk_pool_submit(t->c->pool, work_scratch, on_scratch_done, t) < 0)
		finish(t, "failed", "the worker pool is full");
}

/* ---- grading (SWE-bench's): resolved when every fail_to_pass test now
 * passes and every pass_to_pass test still passes; with neither, when the
 * whole command passes after and failed before... or simply passes after. */
static bool grade(ca_task *t)
{
	json_t *after = json_object_get(json_object_get(t->doc, "tests_after"), "tests");
	json_t *before = json_object_get(json_object_get(t->doc, "tests_before"), "tests");
	json_t *f2p = json_object_get(t->doc, "fail_to_pass");
	json_t *p2p = json_object_get(t->doc, "pass_to_pass");
	json_t *g = json_object();
	bool ok = true;
	static const char *const lists[] = { "fail_to_pass", "pass_to_pass" };
	json_t *ls[] = { f2p, p2p };
	for (size_t l = 0; l < 2; l++) {
		json_t *o = json_object();
		size_t i;
		json_t *id;
		json_array_foreach(ls[l], i, id) {
			const char *s = json_string_value(id);
			bool a = json_is_true(json_object_get(after, s));
			ok &= a;
			json_object_set_new(o, s, json_pack("{s:b, s:b}", "before",
							    json_is_true(json_object_get(before, s)),
							    "after", a));
		}
		json_object_set_new(g, lists[l], o);
	}
	if (!json_array_size(f2p) && !json_array_size(p2p))
		ok = json_is_true(json_object_get(json_object_get(t->doc, "tests_after"), "passed"));
	json_object_set_new(g, "rule",
			    json_string(json_array_size(f2p) || json_array_size(p2p)
						? "every fail_to_pass test passes after, and every "
						  "pass_to_pass test still passes"
						: "the test command passes after"));
	json_object_set_new(t->doc, "grading", g);
	json_object_set_new(t->doc, "resolved", json_boolean(ok));
	return ok;
}

/* ---- the model */

static const char system_prompt[] =
	"You are a coding agent working in a git repository. You are shown the task, the "
	"repository's files and the output of its tests. Answer ONLY with search/replace blocks in "
	"this exact format, one per change, and nothing else:\n\n"
	"path/to/file.py\n"
	"<<<<<<< SEARCH\n"
	"the exact lines that are in the file now\n"
	"=======\n"
	"the lines to put in their place\n"
	">>>>>>> REPLACE\n\n"
	"The SEARCH part must match the file exactly, once; include enough lines to make it unique. "
	"An empty SEARCH part creates a new file. Paths are relative to the repository's root. "
	"All blocks of an answer are applied together or not at all. After your edits the tests "
	"are run again and you are told the result.";

static void on_model_done(const char *text, size_t len, sdk_model_failure failure,
			  const char *error, void *arg);

static void tests_text(json_t *phase, char *out, size_t n)
{
	json_t *first = json_array_get(json_object_get(phase, "runs"), 0);
	json_t *code = json_object_get(phase, "exit_code");
	snprintf(out, n, "exit code %lld\nstdout (its end):\n%s\nstderr (its end):\n%s",
		 json_is_integer(code) ? (long long)json_integer_value(code) : -1LL,
		 str_or(json_object_get(first, "stdout_tail"), ""),
		 str_or(json_object_get(first, "stderr_tail"), ""));
}

static void ask_model(ca_task *t, const char *user_text)
{
	json_array_append_new(t->messages, json_pack("{s:s, s:s}", "role", "user", "content",
						      user_text));
	t->turn++;
	json_object_set_new(t->doc, "turns", json_integer(t->turn));
	save(t);
	t->c->stats.model_calls++;
	t->mc = sdk_model_chat(t->c->model, t->messages, false, NULL, on_model_done, t);
	if (!t->mc)
		on_model_done(NULL, 0, SDK_MODEL_FAIL_UNREACHABLE, "the call could not start", t);
}

static void first_question(ca_task *t)
{
	t->messages = json_pack("[{s:s, s:s}]", "role", "system", "content", system_prompt);
	const char *instr = json_string_value(json_object_get(t->doc, "instructions"));
	char tests[CA_OUTPUT_TAIL * 2 + 200];
	tests_text(json_object_get(t->doc, "tests_before"), tests, sizeof tests);
	char *q = NULL, *cmd = json_dumps(json_object_get(t->doc, "test_command"), JSON_COMPACT);
	if (asprintf(&q,
		     "Task: %s\n\nThe repository's files:\n\n%s\nThe test command %s, run now:\n%s\n",
		     instr ? instr : "make the tests pass", t->context ? t->context : "(none shown)",
		     cmd ? cmd : "", tests) < 0)
		q = NULL;
	free(cmd);
	ask_model(t, q ? q : "Make the tests pass.");
	free(q);
}

/* The model failed: the model-free path, with a notice. */
static void degrade(ca_task *t, const char *why)
{
	t->c->stats.model_failures++;
	t->c->stats.model_degraded++;
	notice(t, "the model failed (%s): %s", why,
	       t->patch ? "went on without it, with the task's patch"
			: "no patch was given to go on with");
	json_object_set_new(t->doc, "model_degraded", json_true());
	t->use_model = false;
	if (!t->patch) {
		finish(t, "failed", "the model failed and the task has no patch to test");
		return;
	}
	free(t->answer);
	t->answer = NULL;
	t->at = STEP_EDIT;
	set_state(t, steps[STEP_EDIT].state);
	next(t);
}

static void on_edit_done(void *arg);

static void on_model_done(const char *text, size_t len, sdk_model_failure failure,
			  const char *error, void *arg)
{
	ca_task *t = arg;
	t->mc = NULL;
	if (failure != SDK_MODEL_OK) {
		char why[300];
		snprintf(why, sizeof why, "%s: %.250s", sdk_model_failure_label(failure),
			 error ? error : "");
		degrade(t, why);
		return;
	}
	if (len > t->c->cfg->patch_max_bytes) {
		degrade(t, "its answer is longer than patch_max_bytes");
		return;
	}
	json_array_append_new(t->messages, json_pack("{s:s, s:s%}", "role", "assistant", "content",
						      text, len));
	free(t->answer);
	t->answer = strndup(text, len);
	if (!t->answer || sdk_pool_submit(t->c->pool, work_edit, on_edit_done, t) < 0) {
		finish(t, "failed", "the worker pool is full");
		return;
	}
}

/* ---- steps */

static void on_prepare_done(void *arg)
{
	ca_task *t = arg;
	merge_cmds(t);
	json_object_set_new(t->doc, "base_sha", json_string(t->base_sha));
	if (t->work_rc < 0) {
		finish(t, "failed", t->work_err.msg);
		return;
	}
	json_object_set_new(t->doc, "worktree", json_string(t->wt));
	json_object_set_new(t->doc, "branch", json_string(t->branch));
	t->at = STEP_TEST_BEFORE;
	next(t);
}

static void work_done_prepare(void *arg)
{
	on_prepare_done(arg);
}

static void on_edit_done(void *arg)
{
	ca_task *t = arg;
	merge_cmds(t);
	json_t *none = json_null();
	json_t *rep = t->report ? t->report : json_object();
	t->report = NULL;
	json_object_set_new(rep, "turn", json_integer(t->turn));
	json_object_set_new(rep, "source", json_string(t->answer ? "model" : "patch"));
	json_object_set_new(rep, "applied_all", json_boolean(t->work_rc == 0));
	if (t->work_rc < 0)
		json_object_set_new(rep, "error", json_string(t->work_err.msg));
	json_array_append(json_object_get(t->doc, "edits"), rep);
	audit(t, "coding_agent.edit", t->work_rc == 0 ? "applied" : "refused",
	      json_pack("{s:O, s:O, s:O}", "format",
			json_object_get(rep, "format") ? json_object_get(rep, "format") : none,
			"applied",
			json_object_get(rep, "applied") ? json_object_get(rep, "applied") : none,
			"failed", json_object_get(rep, "failed") ? json_object_get(rep, "failed") : none));
	if (t->work_rc < 0) {
		t->c->stats.edits_failed++;
		/* Blocks that do not apply, or an answer without any: the model
		 * is told precisely and answers again while turns are left. */
		if (t->answer && t->turn < t->max_turns &&
		    (t->work_rc == SDK_ECONFLICT || t->work_rc == SDK_EINVAL)) {
			char *dump = json_dumps(json_object_get(rep, "failed"), JSON_INDENT(1));
			char *q = NULL;
			if (asprintf(&q,
				     "Your edits did not apply, and nothing of them was written: %s\n%s\n"
				     "Answer again with search/replace blocks whose SEARCH parts match "
				     "the files exactly.",
				     t->work_err.msg, dump ? dump : "") < 0)
				q = NULL;
			free(dump);
			json_decref(rep);
			save(t);
			ask_model(t, q ? q : "Your edits did not apply. Try again.");
			free(q);
			return;
		}
		json_decref(rep);
		finish(t, "failed", t->work_err.msg);
		return;
	}
	json_decref(rep);
	if (t->diff)
		json_object_set_new(t->doc, "diff", json_string(t->diff));
	if (!json_string_value(json_object_get(t->doc, "diff")))
		json_object_set_new(t->doc, "diff", ca_tail_json(t->diff, t->diff ? strlen(t->diff) : 0,
							       (size_t)1 << 20));
	t->at = STEP_TEST_AFTER;
	next(t);
}

/* Enters step t->at. */
static void next(ca_task *t)
{
	ca *c = t->c;
	if (c->draining)
		return;
	if (cancelled(t))
		return;
	if (t->at != STEP_END && sdk_mono_ms() > t->deadline_ms) {
		finish(t, "failed", "task_timeout_ms passed");
		return;
	}
	set_state(t, steps[t->at].state);
	switch (t->at) {
	case STEP_PREPARE:
		if (sdk_pool_submit(c->pool, work_prepare, work_done_prepare, t) < 0)
			finish(t, "failed", "the worker pool is full");
		return;
	case STEP_TEST_BEFORE:
	case STEP_TEST_AFTER:
		phase_start(t);
		return;
	case STEP_EDIT:
		if (t->use_model) {
			first_question(t);
			return;
		}
		if (!t->turn)
			t->turn = 1;
		json_object_set_new(t->doc, "turns", json_integer(t->turn));
		if (sdk_pool_submit(c->pool, work_edit, on_edit_done, t) < 0)
			finish(t, "failed", "the worker pool is full");
		return;
	case STEP_END:
		break;
	}
	/* After the tests with the edits: graded; the model may go on. */
	bool ok = grade(t);
	if (t->use_model && !ok && t->turn < t->max_turns) {
		char tests[CA_OUTPUT_TAIL * 2 + 200];
		tests_text(json_object_get(t->doc, "tests_after"), tests, sizeof tests);
		char *q = NULL;
		if (asprintf(&q,
			     "Your edits were applied, but the tests do not pass yet:\n%s\n"
			     "Answer with further search/replace blocks against the files as they "
			     "are now.",
			     tests) < 0)
			q = NULL;
		t->at = STEP_EDIT;
		set_state(t, steps[STEP_EDIT].state);
		ask_model(t, q ? q : "The tests still fail. Try again.");
		free(q);
		return;
	}
	finish(t, "done", NULL);
}

/* The step after a test phase. */
static step after_phase(const ca_task *t)
{
	return t->at == STEP_TEST_BEFORE ? STEP_EDIT : STEP_END;
}

/* ---- life */

static void task_free(ca_task *t)
{
	if (t->mc)
		sdk_model_call_cancel(t->mc);
	json_decref(t->doc);
	json_decref(t->runs);
	json_decref(t->results);
	json_decref(t->job_doc);
	json_decref(t->cmds);
	json_decref(t->report);
	json_decref(t->messages);
	free(t->job_stdout);
	free(t->patch);
	free(t->diff);
	free(t->context);
	free(t->answer);
	free(t);
}

static void unlink_task(ca_task *t)
{
	ca *c = t->c;
	if (t->prev)
		t->prev->next = t->next;
	else
		c->tasks = t->next;
	if (t->next)
		t->next->prev = t->prev;
}

static void finish(ca_task *t, const char *state, const char *error)
{
	ca *c = t->c;
	if (error)
		json_object_set_new(t->doc, "error", json_string(error));
	if (!json_object_get(t->doc, "resolved"))
		json_object_set_new(t->doc, "resolved", json_false());
	json_object_set_new(t->doc, "finished_ms", json_integer(sdk_wall_ms()));
	set_state(t, state);
	if (!strcmp(state, "done"))
		c->stats.done++;
	else if (!strcmp(state, "cancelled"))
		c->stats.cancelled++;
	else
		c->stats.failed++;
	if (json_is_true(json_object_get(t->doc, "resolved")))
		c->stats.resolved++;
	audit(t, "coding_agent.task", state,
	      json_pack("{s:O, s:s?}", "resolved", json_object_get(t->doc, "resolved"), "error",
			error));
	char id[CA_ID_LEN + 1];
	snprintf(id, sizeof id, "%s", t->id);
	unlink_task(t);
	if (t->started)
		c->running--;
	task_free(t);
	ca_wake(c, id);
	ca_task_pump(c);
}

/* A phase's last run is in: phase_done calls next(), which must enter the
 * step after the phase. */
static void advance_from_phase(ca_task *t)
{
	t->at = after_phase(t);
}

void ca_task_pump(ca *c)
{
	if (c->draining)
		return;
	/* The oldest queued first: the list is newest first. */
	while (c->running < c->cfg->running_max) {
		ca_task *pick = NULL;
		for (ca_task *t = c->tasks; t; t = t->next)
			if (!t->started)
				pick = t;
		if (!pick)
			return;
		pick->started = true;
		c->running++;
		pick->deadline_ms = sdk_mono_ms() + c->cfg->task_timeout_ms;
		pick->at = STEP_PREPARE;
		next(pick);
	}
}

ca_task *ca_task_find(ca *c, const char *id)
{
	for (ca_task *t = c->tasks; t; t = t->next)
		if (!strcmp(t->id, id))
			return t;
	return NULL;
}

int ca_task_cancel(ca *c, const char *id, const char *by, sdk_err *err)
{
	ca_task *t = ca_task_find(c, id);
	if (!t) {
		json_t *doc;
		int rc = ca_store_get(c->k->db, id, &doc, err);
		if (rc < 0)
			return rc;
		json_decref(doc);
		return sdk_fail(err, SDK_ECONFLICT, "task %s has ended: there is nothing to cancel", id);
	}
	if (t->cancel_by[0])
		return 1; /* asked already: it ends at its next step */
	snprintf(t->cancel_by, sizeof t->cancel_by, "%s", by && *by ? by : "an operator");
	notice(t, "cancel asked by %s", t->cancel_by);
	if (!t->started) { /* queued: nothing of it runs */
		cancelled(t);
		return 0;
	}
	if (t->mc) { /* the model's answer is all it waits for: dropped, unanswered */
		sdk_model_call_cancel(t->mc);
		t->mc = NULL;
		cancelled(t);
		return 0;
	}
	if (t->job[0] && t->at != STEP_PREPARE && t->at != STEP_EDIT)
		cancel_job(t); /* the job's end comes back through wait_job */
	return 1;
}

/* ---- submission */

static int bad(sdk_err *err, const char *fmt, const char *a)
{
	return sdk_fail(err, SDK_EINVAL, fmt, a);
}

static int check_strings(json_t *a, const char *field, size_t max_n, size_t max_len,
			 bool absolute_first, sdk_err *err)
{
	if (!json_is_array(a) || json_array_size(a) > max_n)
		return sdk_fail(err, SDK_EINVAL, "%s: an array of at most %zu strings", field, max_n);
	size_t i;
	json_t *v;
	json_array_foreach(a, i, v) {
		const char *s = json_string_value(v);
		if (!s || !*s || strlen(s) != json_string_length(v) || strlen(s) > max_len)
			return sdk_fail(err, SDK_EINVAL,
					"%s[%zu]: a non-empty string of at most %zu bytes", field, i,
					max_len);
		if (absolute_first && i == 0 && s[0] != '/')
			return sdk_fail(err, SDK_EINVAL,
					"%s[0]: \"%.100s\" is a relative path: give the program's "
					"absolute path (the executor does no PATH search)",
					field, s);
	}
	return 0;
}

int ca_task_submit(ca *c, json_t *body, const char *owner, char id[CA_ID_LEN + 1], sdk_err *err)
{
	if (!c->root[0])
		return sdk_fail(err, SDK_EBUSY,
				"no tasks: [coding_agent] workspace_root is not configured");
	json_t *repo = json_object_get(body, "repo"), *base = json_object_get(body, "base");
	json_t *cmd = json_object_get(body, "test_command");
	json_t *instr = json_object_get(body, "instructions"), *patch = json_object_get(body, "patch");
	json_t *f2p = json_object_get(body, "fail_to_pass"), *p2p = json_object_get(body, "pass_to_pass");
	json_t *turns = json_object_get(body, "max_turns");
	if (!json_is_string(repo))
		return bad(err, "repo: a path under the workspace root is required%s", "");
	if (base && !json_is_null(base) &&
	    (!json_is_string(base) || !json_string_length(base) || json_string_length(base) > 200 ||
	     json_string_value(base)[0] == '-'))
		return bad(err, "base: a commit-ish of at most 200 bytes, not starting with '-'%s", "");
	int rc;
	if (!cmd)
		return bad(err, "test_command: an argv (an array of strings) is required%s", "");
	if ((rc = check_strings(cmd, "test_command", CA_ARGV_MAX, 4096, true, err)) < 0)
		return rc;
	if (!json_array_size(cmd))
		return bad(err, "test_command: at least the program%s", "");
	if (f2p && !json_is_null(f2p) &&
	    (rc = check_strings(f2p, "fail_to_pass", CA_TEST_IDS_MAX, CA_TEST_ID_MAX, false, err)) < 0)
		return rc;
	if (p2p && !json_is_null(p2p) &&
	    (rc = check_strings(p2p, "pass_to_pass", CA_TEST_IDS_MAX, CA_TEST_ID_MAX, false, err)) < 0)
		return rc;
	if (json_array_size(f2p) + json_array_size(p2p) > CA_TEST_IDS_MAX)
		return sdk_fail(err, SDK_EINVAL, "fail_to_pass and pass_to_pass: at most %d test ids "
						 "together", CA_TEST_IDS_MAX);
	if (instr && !json_is_null(instr) &&
	    (!json_is_string(instr) || json_string_length(instr) > CA_INSTRUCTIONS_MAX))
		return sdk_fail(err, SDK_EINVAL, "instructions: a string of at most %u bytes",
				CA_INSTRUCTIONS_MAX);
	if (patch && !json_is_null(patch) &&
	    (!json_is_string(patch) || !json_string_length(patch) ||
	     strlen(json_string_value(patch)) != json_string_length(patch)))
		return bad(err, "patch: a non-empty string (a unified diff or search/replace blocks)%s", "");
	if (patch && json_string_length(patch) > c->cfg->patch_max_bytes)
		return sdk_fail(err, SDK_ETOOLARGE, "patch: longer than patch_max_bytes (%zu)",
				c->cfg->patch_max_bytes);
	unsigned max_turns = c->cfg->turns_default;
	if (turns && !json_is_null(turns)) {
		if (!json_is_integer(turns) || json_integer_value(turns) < 1 ||
		    json_integer_value(turns) > c->cfg->turns_max)
			return sdk_fail(err, SDK_EINVAL, "max_turns: an integer from 1 to %u (turns_max)",
					c->cfg->turns_max);
		max_turns = (unsigned)json_integer_value(turns);
	}
	bool has_patch = json_is_string(patch);
	bool has_instr = json_is_string(instr) && json_string_length(instr);
	if (!has_patch && !c->model)
		return bad(err, "patch: required when no model is configured (%s)",
			   c->model_why[0] ? c->model_why : "[model] base_url is not set");
	if (!has_patch && !has_instr)
		return bad(err, "instructions or patch: a task needs one%s", "");
	char real[PATH_MAX];
	if ((rc = ca_path_repo(c->root, json_string_value(repo), real, err)) < 0)
		return rc;
	char gitdir[PATH_MAX + 8];
	struct stat st;
	snprintf(gitdir, sizeof gitdir, "%s/.git", real);
	if (stat(gitdir, &st) < 0)
		return sdk_fail(err, SDK_EINVAL, "repo: %.200s is not a git repository (no .git)",
				json_string_value(repo));
	if (ca_path_under(c->wt_root, real))
		return sdk_fail(err, SDK_EDENIED, "repo: %.200s is a task's worktree",
				json_string_value(repo));
	int64_t n = 0;
	if (ca_store_count(c->k->db, &n, err) < 0)
		return SDK_EIO;
	if (n >= c->cfg->tasks_max)
		return sdk_fail(err, SDK_EBUSY, "%lld tasks are kept (tasks_max): delete some first",
				(long long)n);

	ca_task *t = calloc(1, sizeof *t);
	if (!t)
		return sdk_fail(err, SDK_EIO, "out of memory");
	t->c = c;
	new_id(t->id);
	snprintf(t->repo, sizeof t->repo, "%s", real);
	if (snprintf(t->wt, sizeof t->wt, "%s/%s", c->wt_root, t->id) >= (int)sizeof t->wt) {
		free(t);
		return sdk_fail(err, SDK_EINVAL, "worktree_root is too long");
	}
	if (snprintf(t->scratch, sizeof t->scratch, "%s/" CA_SCRATCH_DIR "/%s", c->wt_root,
		     t->id) >= (int)sizeof t->scratch) {
		free(t);
		return sdk_fail(err, SDK_EINVAL, "worktree_root is too long");
	}
	snprintf(t->branch, sizeof t->branch, "grace/task-%s", t->id);
	snprintf(t->base, sizeof t->base, "%s", json_is_string(base) ? json_string_value(base) : "HEAD");
	t->max_turns = max_turns;
	t->use_model = c->model && has_instr;
	if (has_patch) {
		t->patch = strdup(json_string_value(patch));
		t->patch_len = json_string_length(patch);
	}
	t->cmds = json_array();
	t->doc = json_pack(
		"{s:s, s:s, s:s, s:s, s:s, s:O, s:o, s:o, s:o, s:I, s:i, s:I, s:b, s:[], s:[], s:[],"
		" s:[], s:s}",
		"id", t->id, "state", "queued", "owner", owner, "repo", json_string_value(repo), "base",
		t->base, "test_command", cmd, "fail_to_pass", f2p ? json_copy(f2p) : json_array(),
		"pass_to_pass", p2p ? json_copy(p2p) : json_array(), "instructions",
		has_instr ? json_copy(instr) : json_null(), "max_turns", (json_int_t)max_turns,
		"turns", 0, "created_ms", (json_int_t)sdk_wall_ms(), "model", t->use_model,
		"commands", "edits", "notices", "turns_log", "mode",
		t->use_model ? "model" : "patch");
	if (!t->doc || (has_patch && !t->patch)) {
		task_free(t);
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	if (has_patch)
		json_object_set_new(t->doc, "patch", json_string(t->patch));
	if (has_patch && c->model && has_instr)
		notice(t, "a model is configured and instructions given: the model edits; the patch "
			  "is used only if the model fails");
	else if (has_patch && c->model)
		notice(t, "no instructions: the patch is tested without the model");
	if (ca_store_put(c->k->db, t->doc, sdk_wall_ms(), err) < 0) {
		task_free(t);
		return SDK_EIO;
	}
	t->next = c->tasks;
	if (c->tasks)
		c->tasks->prev = t;
	c->tasks = t;
	c->stats.submitted++;
	snprintf(id, CA_ID_LEN + 1, "%s", t->id);
	audit(t, "coding_agent.submit", "queued",
	      json_pack("{s:s, s:s, s:s, s:O}", "owner", owner, "repo", json_string_value(repo),
			"base", t->base, "test_command", cmd));
	ca_task_pump(c);
	return 0;
}

/* ---- deletion */

typedef struct del_job {
	ca *c;
	char id[CA_ID_LEN + 1];
	char repo[PATH_MAX], wt[PATH_MAX], branch[64];
	ca_task shadow; /* for git(): its cmds and c */
	ca_delete_cb done;
	void *arg;
	int rc;
	sdk_err err;
} del_job;

static void work_delete(void *arg)
{
	del_job *d = arg;
	d->rc = 0;
	/* The tests' copy (scratch.h): what the jobs user left there goes too. */
	char scratch[PATH_MAX];
	if (snprintf(scratch, sizeof scratch, "%s/" CA_SCRATCH_DIR "/%s", d->c->wt_root, d->id) <
		    (int)sizeof scratch &&
	    ca_scratch_remove(scratch, &d->err) < 0) {
		d->rc = SDK_EIO;
		return;
	}
	if (d->wt[0]) {
		const char *rm[] = { "worktree", "remove", "--force", d->wt, NULL };
		ca_run r;
		git(&d->shadow, d->repo, rm, &r);
		ca_run_free(&r);
		const char *prune[] = { "worktree", "prune", NULL };
		git(&d->shadow, d->repo, prune, &r);
		ca_run_free(&r);
	}
	if (d->branch[0]) {
		const char *br[] = { "branch", "-D", "--", d->branch, NULL };
		ca_run r;
		git(&d->shadow, d->repo, br, &r);
		ca_run_free(&r);
	}
	struct stat st;
	if (d->wt[0] && lstat(d->wt, &st) == 0)
		d->rc = sdk_fail(&d->err, SDK_EIO, "the worktree %.200s could not be removed", d->wt);
}

static void on_deleted(void *arg)
{
	del_job *d = arg;
	ca_task *t = &d->shadow;
	snprintf(t->id, sizeof t->id, "%s", d->id);
	json_t *cmds = t->cmds;
	size_t i;
	json_t *cmd;
	json_array_foreach(cmds, i, cmd) {
		d->c->stats.git_commands++;
		audit(t, "coding_agent.git",
		      json_integer_value(json_object_get(cmd, "exit_code")) == 0 ? "ok" : "failed",
		      json_pack("{s:O, s:O}", "argv", json_object_get(cmd, "argv"), "exit_code",
				json_object_get(cmd, "exit_code")));
	}
	if (d->rc == 0 && ca_store_delete(d->c->k->db, d->id, &d->err) < 0)
		d->rc = SDK_EIO;
	if (d->rc == 0) {
		d->c->stats.deleted++;
		audit(t, "coding_agent.delete", "ok", NULL);
	}
	json_t *rep = json_pack("{s:s, s:b, s:O}", "id", d->id, "deleted", d->rc == 0, "commands",
				cmds);
	d->done(d->rc, rep, &d->err, d->arg);
	json_decref(cmds);
	free(d);
}

int ca_task_delete(ca *c, const char *id, ca_delete_cb done, void *arg, sdk_err *err)
{
	if (ca_task_find(c, id))
		return sdk_fail(err, SDK_ECONFLICT,
				"task %s is still being worked on: delete it once it has ended", id);
	json_t *doc;
	int rc = ca_store_get(c->k->db, id, &doc, err);
	if (rc < 0)
		return rc;
	del_job *d = calloc(1, sizeof *d);
	if (!d) {
		json_decref(doc);
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	d->c = c;
	d->shadow.c = c;
	d->shadow.cmds = json_array();
	d->done = done;
	d->arg = arg;
	snprintf(d->id, sizeof d->id, "%s", id);
	/* The repository again, resolved and confined as at submission. */
	const char *repo = json_string_value(json_object_get(doc, "repo"));
	const char *wt = json_string_value(json_object_get(doc, "worktree"));
	const char *br = json_string_value(json_object_get(doc, "branch"));
	sdk_err pe;
	if (repo && c->root[0] && ca_path_repo(c->root, repo, d->repo, &pe) == 0) {
		if (wt && ca_path_under(c->wt_root, wt))
			snprintf(d->wt, sizeof d->wt, "%s", wt);
		if (br && !strncmp(br, "grace/task-", 11))
			snprintf(d->branch, sizeof d->branch, "%s", br);
	}
	json_decref(doc);
	if (sdk_pool_submit(c->pool, work_delete, on_deleted, d) < 0) {
		json_decref(d->shadow.cmds);
		free(d);
		return sdk_fail(err, SDK_EBUSY, "the worker pool is full: try again");
	}
	return 0;
}

void ca_task_close_all(ca *c)
{
	while (c->tasks) {
		ca_task *t = c->tasks;
		json_object_set_new(t->doc, "error", json_string("the kernel stopped while it worked"));
		json_object_set_new(t->doc, "state", json_string("failed"));
		save(t);
		unlink_task(t);
		task_free(t);
	}
}
