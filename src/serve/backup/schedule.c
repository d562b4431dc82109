/* Scheduled backups: schedule.h. */
#include "serve/backup/schedule.h"

#include "kernels/scheduler/cron.h"
#include "kernels/scheduler/tz.h"
#include "sdk/proc.h"
#include "sdk/clock.h"
#include "sdk/log.h"
#include "sdk/pool.h"
#include "serve/backup/bus_snap.h"
#include "serve/backup/log_head.h"
#include "serve/backup/seal.h"
#include "serve/backup/snapshot.h"
#include "serve/outbox/outbox.h"

#include <dirent.h>
#include <event2/event.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PREFIX "grace-backup-"
#define VERIFY_TIMEOUT_MS (10 * 60 * 1000) /* a restore that proves every kernel */
#define REPORT_MAX (1 << 20)               /* the restore's JSON report */
#define ARCHIVES_MAX 10000

extern char **environ;

struct bks_run {
	bk_schedule *s;
	char trigger[16];      /* "schedule" or "api" */
	json_t *log_head;      /* owned, or NULL */
	bk_head_ask head_ask;
	json_t *record;        /* owned: what NAME.json says */
};

struct bk_schedule {
	api_ctx *api;
	const grace_backup *cfg; /* api->cfg->backup */
	char exe[PATH_MAX];
	cron_expr cron;
	tz_zone *tz;       /* owned */
	int64_t anchor_ms; /* @every counts from grace serve's start */
	int64_t next_ms;
	struct event *timer; /* owned */
	sdk_pool *pool;      /* owned: one thread */
	bk_bus_snap *bus;    /* owned: [message_bus] engine = jetstream */
	struct bks_run *running;
	bool closing;
};

/* ---- on the worker: the archive, its proof, the record, retention */

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(p);
	return 0;
}

/* `grace restore PATH --data-dir TMP/data --json`: its exit status and its
 * report (owned; NULL when it printed none). */
static int verify(const bk_schedule *s, const char *path, json_t **report, sdk_err *e)
{
	*report = NULL;
	char tmp[PATH_MAX], data[PATH_MAX + 8];
	if (snprintf(tmp, sizeof tmp, "%s/.verify-XXXXXX", s->cfg->dir) >= (int)sizeof tmp ||
	    !mkdtemp(tmp))
		return sdk_fail(e, SDK_EIO, "cannot make a directory to restore into: %s",
				strerror(errno));
	snprintf(data, sizeof data, "%s/data", tmp);
	const char *argv[12];
	int n = 0;
	argv[n++] = s->exe;
	argv[n++] = "restore";
	argv[n++] = path;
	argv[n++] = "--data-dir";
	argv[n++] = data;
	if (s->cfg->key_file[0]) {
		argv[n++] = "--key-file";
		argv[n++] = s->cfg->key_file;
	}
	/* The proof restores the files into a scratch directory, never the
	 * dump into the live database: the dump's hash is checked and
	 * pg_restore reads it whole (docs/backup.md "PostgreSQL"). */
	argv[n++] = "--no-postgresql";
	/* Nor the bus's stream into the live JetStream: its hash is checked. */
	argv[n++] = "--no-jetstream";
	argv[n++] = "--json";
	argv[n] = NULL;
	int out[2];
	int rc = SDK_EIO;
	if (pipe2(out, O_CLOEXEC) < 0) {
		sdk_fail(e, SDK_EIO, "cannot make a pipe: %s", strerror(errno));
		goto done;
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	/* The restore, and the kernels it starts and stops with SIGTERM, must
	 * not inherit the worker's blocked signals (proc_spawn). */
	pid_t pid;
	int sp = proc_spawn(&pid, s->exe, &fa, false, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(out[1]);
	if (sp != 0) {
		close(out[0]);
		sdk_fail(e, SDK_EIO, "cannot run grace restore: %s", strerror(sp));
		goto done;
	}
	char *buf = malloc(REPORT_MAX + 1);
	size_t have = 0;
	int64_t until = sdk_mono_ms() + VERIFY_TIMEOUT_MS;
	bool timed_out = false;
	for (;;) {
		int64_t left = until - (int64_t)sdk_mono_ms();
		if (left <= 0) {
			timed_out = true;
			kill(pid, SIGKILL);
			break;
		}
		struct pollfd p = { .fd = out[0], .events = POLLIN };
		int pr = poll(&p, 1, (int)(left > 1000 ? 1000 : left));
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr == 0)
			continue;
		char sink[4096];
		char *to = buf && have < REPORT_MAX ? buf + have : sink;
		size_t room = buf && have < REPORT_MAX ? REPORT_MAX - have : sizeof sink;
		ssize_t r = read(out[0], to, room);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (to != sink)
			have += (size_t)r;
	}
	close(out[0]);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (buf) {
		buf[have] = '\0';
		*report = json_loads(buf, 0, NULL);
		free(buf);
	}
	if (timed_out)
		rc = sdk_fail(e, SDK_ETIMEOUT, "grace restore ran past %d minutes",
			      VERIFY_TIMEOUT_MS / 60000);
	else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		rc = sdk_fail(e, SDK_ECORRUPT, "grace restore refused or failed it (exit %d)",
			      WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	else
		rc = 0;
done:
	nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return rc;
}

/* The record beside the archive, written whole or not at all. */
static void write_record(const char *path, json_t *record)
{
	char tmp[PATH_MAX + 400];
	if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
		sdk_warn("scheduled backup: %s: path too long", path);
		return;
	}
	if (json_dump_file(record, tmp, JSON_INDENT(1)) < 0 || rename(tmp, path) < 0) {
		sdk_warn("scheduled backup: cannot write %s: %s", path, strerror(errno));
		unlink(tmp);
	}
}

static int name_cmp_desc(const void *a, const void *b)
{
	return -strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names in dir that start with PREFIX and end with `suffix`, newest first
 * (the names sort by time); owned array of owned strings. */
static size_t list_names(const char *dir, const char *suffix, char ***out)
{
	*out = NULL;
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	size_t n = 0, cap = 0, sl = strlen(suffix);
	char **v = NULL;
	struct dirent *de;
	while ((de = readdir(d)) && n < ARCHIVES_MAX) {
		size_t l = strlen(de->d_name);
		if (strncmp(de->d_name, PREFIX, strlen(PREFIX)) || l < sl ||
		    strcmp(de->d_name + l - sl, suffix))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			char **nv = realloc(v, cap * sizeof *nv);
			if (!nv)
				break;
			v = nv;
		}
		if (!(v[n] = strdup(de->d_name)))
			break;
		n++;
	}
	closedir(d);
	if (n)
		qsort(v, n, sizeof *v, name_cmp_desc);
	*out = v;
	return n;
}

static void free_names(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* keep and max_age_days; the newest archive always stays. Returns the
 * names removed (owned). */
static json_t *retain(const bk_schedule *s, int64_t now_ms)
{
	json_t *removed = json_array();
	static const char *const kinds[] = { ".tar", ".failed.json" };
	for (size_t k = 0; k < 2; k++) {
		char **v;
		size_t n = list_names(s->cfg->dir, kinds[k], &v);
		for (size_t i = 1; i < n; i++) {
			char path[PATH_MAX + 300];
			snprintf(path, sizeof path, "%s/%s", s->cfg->dir, v[i]);
			struct stat sb;
			bool old = s->cfg->max_age_days && stat(path, &sb) == 0 &&
				   (int64_t)sb.st_mtime * 1000 <
					   now_ms - (int64_t)s->cfg->max_age_days * 86400000;
			if (i < s->cfg->keep && !old)
				continue;
			if (unlink(path) == 0)
				json_array_append_new(removed, json_string(v[i]));
			if (k == 0) { /* its record goes with it */
				char rec[PATH_MAX + 310];
				snprintf(rec, sizeof rec, "%s.json", path);
				unlink(rec);
			}
		}
		free_names(v, n);
	}
	return removed;
}

static void work(void *arg)
{
	struct bks_run *run = arg;
	bk_schedule *s = run->s;
	const grace_config *cfg = s->api->cfg;
	int64_t t0 = sdk_wall_ms();
	time_t sec = (time_t)(t0 / 1000);
	struct tm tm;
	gmtime_r(&sec, &tm);
	char stamp[32], name[96], path[PATH_MAX + 100];
	strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%S", &tm);
	snprintf(name, sizeof name, PREFIX "%s.%03dZ.tar", stamp, (int)(t0 % 1000));
	snprintf(path, sizeof path, "%s/%s", s->cfg->dir, name);
	run->record = json_pack("{s:s, s:s, s:I}", "archive", name, "trigger", run->trigger,
				"started_at_ms", (json_int_t)t0);
	sdk_err e = { "" };
	unsigned char key[BK_KEY_BYTES];
	json_t *manifest = NULL, *report = NULL;
	int rc = 0;
	if (mkdir(s->cfg->dir, 0700) < 0 && errno != EEXIST)
		rc = sdk_fail(&e, SDK_EIO, "cannot create %s: %s", s->cfg->dir, strerror(errno));
	sdk_err ke = { "" };
	if (!rc && s->cfg->key_file[0] && bk_master_read(s->cfg->key_file, true, key, &ke) < 0)
		rc = sdk_fail(&e, SDK_EINVAL, "key_file %s: %s", s->cfg->key_file, ke.msg);
	if (!rc) {
		bk_plan plan = { .data_dir = cfg->data_dir, .config_path = cfg->path,
				 .master = s->cfg->key_file[0] ? key : NULL,
				 .no_secrets = !s->cfg->key_file[0], .log_head = run->log_head,
				 .pg = cfg->store.engine == GRACE_STORE_POSTGRESQL ? &cfg->store
										    : NULL,
				 .jetstream = cfg->message_bus.jetstream ? &cfg->message_bus
									   : NULL,
				 .bus = s->bus };
		rc = bk_snapshot_write(&plan, path, &manifest, &e);
	}
	sodium_memzero(key, sizeof key);
	if (!rc) {
		char hex[65];
		long long size = 0;
		sdk_err he;
		if (bk_file_sha256(path, hex, &size, &he) == 0) {
			json_object_set_new(run->record, "sha256", json_string(hex));
			json_object_set_new(run->record, "size", json_integer(size));
		}
		json_object_set_new(run->record, "files",
				    json_integer((json_int_t)json_array_size(
					    json_object_get(manifest, "files"))));
		json_object_set(run->record, "immutable_log", json_object_get(manifest, "immutable_log"));
	}
	if (!rc && s->cfg->verify) {
		int vr = verify(s, path, &report, &e);
		json_object_set_new(run->record, "verified", json_boolean(vr == 0));
		if (report)
			json_object_set_new(run->record, "restore", report);
		rc = vr;
	} else if (!rc) {
		json_object_set_new(run->record, "verified", json_null());
	}
	json_decref(manifest);
	int64_t t1 = sdk_wall_ms();
	json_object_set_new(run->record, "finished_at_ms", json_integer(t1));
	json_object_set_new(run->record, "outcome", json_string(rc ? "failed" : "ok"));
	if (rc)
		json_object_set_new(run->record, "reason", json_string(e.msg));
	char rec[PATH_MAX + 140];
	/* A failed run's archive (made, then refused by its proof) goes: it is
	 * not a backup to count on; its record stays, under its own name. */
	if (rc) {
		unlink(path);
		snprintf(rec, sizeof rec, "%s/" PREFIX "%s.%03dZ.failed.json", s->cfg->dir, stamp,
			 (int)(t0 % 1000));
	} else {
		snprintf(rec, sizeof rec, "%s.json", path);
	}
	write_record(rec, run->record);
	json_object_set_new(run->record, "removed", retain(s, t1));
}

/* ---- on the loop */

static void arm(bk_schedule *s);

static void run_done(void *arg)
{
	struct bks_run *run = arg;
	bk_schedule *s = run->s;
	const char *outcome = json_string_value(json_object_get(run->record, "outcome"));
	const char *archive = json_string_value(json_object_get(run->record, "archive"));
	if (outcome && !strcmp(outcome, "ok"))
		sdk_info("scheduled backup: %s/%s made%s", s->cfg->dir, archive,
			 s->cfg->verify ? " and proven by a restore" : "");
	else
		sdk_error("scheduled backup: %s failed: %s", archive ? archive : "?",
			  json_string_value(json_object_get(run->record, "reason")));
	if (s->api->ob)
		ob_audit_system(s->api->ob, "backup.scheduled", archive ? archive : "backup",
				outcome ? outcome : "failed", json_incref(run->record));
	json_decref(run->record);
	json_decref(run->log_head);
	free(run);
	s->running = NULL;
}

static void submit(struct bks_run *run)
{
	if (sdk_pool_submit(run->s->pool, work, run_done, run) < 0) {
		sdk_error("scheduled backup: cannot start it (the worker is busy or stopping)");
		run->s->running = NULL;
		json_decref(run->log_head);
		free(run);
	}
}

static void on_log_head(json_t *head, const char *why, void *arg)
{
	struct bks_run *run = arg;
	if (!head && why) {
		/* As POST /backup: an archive must name the log's tree head. */
		sdk_error("scheduled backup skipped: the immutable log's signed tree head is needed: "
			  "%s",
			  why);
		run->s->running = NULL;
		free(run);
		return;
	}
	run->log_head = head; /* NULL: no log in this configuration, nothing to pin */
	submit(run);
}

static int start(bk_schedule *s, const char *trigger, sdk_err *err)
{
	if (s->running)
		return sdk_fail(err, SDK_ECONFLICT, "a scheduled backup is under way");
	if (s->closing)
		return sdk_fail(err, SDK_EBUSY, "Grace is stopping");
	struct bks_run *run = calloc(1, sizeof *run);
	if (!run)
		return sdk_fail(err, SDK_EIO, "out of memory");
	run->s = s;
	snprintf(run->trigger, sizeof run->trigger, "%s", trigger);
	s->running = run;
	run->head_ask = (bk_head_ask){ on_log_head, run };
	bk_log_head_ask(s->api, &run->head_ask);
	return 0;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	bk_schedule *s = arg;
	if (sdk_wall_ms() + 500 < s->next_ms) { /* early, or the clock moved back */
		arm(s);
		return;
	}
	sdk_err err = { "" };
	if (start(s, "schedule", &err) < 0)
		sdk_warn("scheduled backup skipped: %s", err.msg);
	arm(s);
}

static void arm(bk_schedule *s)
{
	int64_t now = sdk_wall_ms(), next;
	if (s->cron.every_ms) {
		next = cron_every_next(s->cron.every_ms, s->anchor_ms, now);
	} else {
		int64_t at;
		if (!cron_next(&s->cron, s->tz, now / 1000, &at)) {
			sdk_warn("scheduled backup: the schedule never fires again");
			s->next_ms = 0;
			return;
		}
		next = at * 1000;
	}
	s->next_ms = next;
	struct timeval tv = sdk_ms_tv((uint64_t)(next > now ? next - now : 0));
	evtimer_add(s->timer, &tv);
}

/* The schedule and its zone, read. */
static int parse(const grace_backup *b, cron_expr *cron, tz_zone **tz, sdk_err *err)
{
	sdk_err e = { "" };
	*tz = NULL;
	if (cron_parse(b->schedule, cron, &e) < 0 ||
	    (!cron->every_ms && tz_load(NULL, b->timezone, tz, &e) < 0))
		return sdk_fail(err, SDK_EINVAL, "[backup] schedule \"%s\" (timezone %s): %s",
				b->schedule, b->timezone, e.msg);
	return 0;
}

int bks_check(const grace_backup *b, sdk_err *err)
{
	if (!b->schedule[0])
		return 0;
	cron_expr cron;
	tz_zone *tz;
	int rc = parse(b, &cron, &tz, err);
	tz_free(tz);
	return rc;
}

bk_schedule *bks_new(api_ctx *api, const char *self_exe, sdk_err *err)
{
	err->msg[0] = '\0';
	const grace_backup *b = &api->cfg->backup;
	if (!b->schedule[0])
		return NULL;
	bk_schedule *s = calloc(1, sizeof *s);
	if (!s) {
		sdk_fail(err, SDK_EIO, "out of memory");
		return NULL;
	}
	s->api = api;
	s->cfg = b;
	snprintf(s->exe, sizeof s->exe, "%s", self_exe);
	s->anchor_ms = sdk_wall_ms();
	if (parse(b, &s->cron, &s->tz, err) < 0) {
		free(s);
		return NULL;
	}
	s->timer = evtimer_new(api->base, on_timer, s);
	s->pool = sdk_pool_new(api->base, 1, 1);
	if (api->cfg->message_bus.jetstream)
		s->bus = bk_bus_snap_new(api);
	if (!s->timer || !s->pool || (api->cfg->message_bus.jetstream && !s->bus)) {
		sdk_fail(err, SDK_EIO, "out of memory");
		bks_free(s);
		return NULL;
	}
	arm(s);
	sdk_info("scheduled backups: \"%s\" (%s) into %s, %u kept%s", b->schedule, b->timezone,
		 b->dir, b->keep, b->verify ? ", each proven by a restore" : "");
	return s;
}

void bks_free(bk_schedule *s)
{
	if (!s)
		return;
	s->closing = true;
	bk_bus_snap_cancel(s->bus); /* the loop will not fetch it any more */
	if (s->pool)
		sdk_pool_free(s->pool); /* waits for a backup under way; its done runs */
	bk_bus_snap_free(s->bus);
	if (s->running) {           /* waiting for the log's tree head */
		json_decref(s->running->log_head);
		free(s->running);
	}
	if (s->timer)
		event_free(s->timer);
	tz_free(s->tz);
	free(s);
}

int bks_run_now(bk_schedule *s, sdk_err *err)
{
	return start(s, "api", err);
}

json_t *bks_status(bk_schedule *s)
{
	json_t *archives = json_array();
	char **v;
	size_t n = list_names(s->cfg->dir, ".json", &v);
	for (size_t i = 0; i < n; i++) {
		char path[PATH_MAX + 300];
		snprintf(path, sizeof path, "%s/%s", s->cfg->dir, v[i]);
		json_t *rec = json_load_file(path, 0, NULL);
		if (json_is_object(rec)) {
			json_object_del(rec, "restore"); /* the whole report: in the file */
			json_array_append_new(archives, rec);
		} else {
			json_decref(rec);
		}
	}
	free_names(v, n);
	return json_pack("{s:s, s:s, s:s, s:i, s:i, s:b, s:b, s:o, s:o}", "schedule",
			 s->cfg->schedule, "timezone", s->cfg->timezone, "dir", s->cfg->dir, "keep",
			 (int)s->cfg->keep, "max_age_days", (int)s->cfg->max_age_days, "verify",
			 s->cfg->verify != 0, "running", s->running != NULL, "next_at_ms",
			 s->next_ms ? json_integer(s->next_ms) : json_null(), "runs", archives);
}
