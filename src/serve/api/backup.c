/* POST /backup (admin): a snapshot of everything Grace holds, streamed as
 * a tar archive while Grace keeps serving (serve/backup/snapshot.h says
 * what is in it). One at a time: the immutable log's signed tree head is
 * asked first (so the log's copy holds at least that tree), the archive is
 * made on a worker thread in the data directory, then streamed with
 * backpressure and removed. */
#include "serve/api/api.h"

#include "sdk/log.h"
#include "sdk/pool.h"
#include "serve/backup/bus_snap.h"
#include "serve/backup/log_head.h"
#include "serve/backup/schedule.h"
#include "serve/backup/snapshot.h"

#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK (256 * 1024)

struct api_backup {
	api_ctx *api;
	sdk_pool *pool;
	bk_bus_snap *bus; /* [message_bus] engine = jetstream: the stream's snapshot */
	struct backup_job *running; /* one at a time */
	unsigned serial;
	bool closing; /* in api_backup_close: answer, do not stream */
};

struct backup_job {
	struct api_backup *b;
	sdk_req *req; /* NULL once answered or gone */
	char passphrase[BK_PASSPHRASE_MAX + 1];
	unsigned char master[BK_KEY_BYTES];
	bool have_master, no_secrets;
	json_t *log_head; /* owned */
	bk_head_ask head_ask;
	char path[PATH_MAX];
	/* the worker's result */
	json_t *manifest; /* owned */
	sdk_err err;
	int rc;
	/* streaming */
	int fd;
	long long off, size;
};

api_backup *api_backup_open(api_ctx *api)
{
	api_backup *b = calloc(1, sizeof *b);
	if (!b)
		return NULL;
	b->api = api;
	b->pool = sdk_pool_new(api->base, 1, 1);
	if (api->cfg->message_bus.jetstream)
		b->bus = bk_bus_snap_new(api);
	if (!b->pool || (api->cfg->message_bus.jetstream && !b->bus)) {
		if (b->pool)
			sdk_pool_free(b->pool);
		free(b);
		return NULL;
	}
	return b;
}

static void job_free(struct backup_job *j)
{
	if (j->fd >= 0)
		close(j->fd);
	if (j->path[0])
		unlink(j->path);
	json_decref(j->log_head);
	json_decref(j->manifest);
	sodium_memzero(j->passphrase, sizeof j->passphrase);
	sodium_memzero(j->master, sizeof j->master);
	if (j->b->running == j)
		j->b->running = NULL;
	free(j);
}

static void stream_done(struct backup_job *j, sdk_req *req, bool whole);

void api_backup_close(api_backup *b)
{
	if (!b)
		return;
	b->closing = true;
	/* A snapshot waiting for the bus's stream gives up: the loop will not
	 * make that call any more. */
	bk_bus_snap_cancel(b->bus);
	/* Waits for a snapshot under way; a done still owed is called (and,
	 * closing, answers 503). */
	sdk_pool_free(b->pool);
	bk_bus_snap_free(b->bus);
	struct backup_job *j = b->running;
	if (j && j->req) /* streaming: the client gets a broken transfer */
		stream_done(j, j->req, false);
	else if (j)
		job_free(j);
	free(b);
}

static void on_gone(sdk_req *req, void *arg)
{
	struct backup_job *j = arg;
	j->req = NULL;
	sdk_reply_stream_end(req);
	job_free(j);
}

/* Ends a streamed reply, whole or broken, and the job with it. */
static void stream_done(struct backup_job *j, sdk_req *req, bool whole)
{
	sdk_reply_on_drain(req, NULL, NULL);
	sdk_req_on_close(req, NULL, NULL);
	if (whole)
		sdk_reply_end(req);
	else
		sdk_reply_abort(req);
	j->req = NULL;
	job_free(j);
}

static void send_more(sdk_req *req, void *arg)
{
	struct backup_job *j = arg;
	if (j->off >= j->size) {
		stream_done(j, req, true);
		return;
	}
	struct evbuffer *buf = evbuffer_new();
	struct evbuffer_iovec v;
	size_t want = (size_t)(j->size - j->off) < CHUNK ? (size_t)(j->size - j->off) : CHUNK;
	ssize_t n = -1;
	if (buf && evbuffer_reserve_space(buf, (ev_ssize_t)want, &v, 1) == 1) {
		n = pread(j->fd, v.iov_base, want, j->off);
		if (n > 0) {
			v.iov_len = (size_t)n;
			evbuffer_commit_space(buf, &v, 1);
		}
	}
	if (n <= 0) {
		/* The archive shrank or could not be read: the client must see a
		 * broken transfer, never a short archive that looks whole. */
		sdk_error("backup: cannot read %s: %s", j->path, n < 0 ? strerror(errno) : "short");
		evbuffer_free(buf);
		stream_done(j, req, false);
		return;
	}
	j->off += n;
	sdk_reply_write(req, buf);
	evbuffer_free(buf);
}

static void work(void *arg)
{
	struct backup_job *j = arg;
	const grace_config *cfg = j->b->api->cfg;
	bk_plan plan = { .data_dir = cfg->data_dir, .config_path = cfg->path,
			 .passphrase = j->passphrase[0] ? j->passphrase : NULL,
			 .master = j->have_master ? j->master : NULL, .no_secrets = j->no_secrets,
			 .log_head = j->log_head,
			 .pg = cfg->store.engine == GRACE_STORE_POSTGRESQL ? &cfg->store : NULL,
			 .jetstream = cfg->message_bus.jetstream ? &cfg->message_bus : NULL,
			 .bus = j->b->bus };
	j->rc = bk_snapshot_write(&plan, j->path, &j->manifest, &j->err);
	sodium_memzero(j->passphrase, sizeof j->passphrase);
}

static void done(void *arg)
{
	struct backup_job *j = arg;
	sdk_req *req = j->req;
	if (!req) { /* the client left while the archive was made */
		job_free(j);
		return;
	}
	struct stat sb;
	if (!j->rc && j->b->closing)
		j->rc = sdk_fail(&j->err, SDK_EBUSY, "Grace is stopping");
	if (!j->rc && ((j->fd = open(j->path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(j->fd, &sb) < 0))
		j->rc = sdk_fail(&j->err, SDK_EIO, "cannot read the archive: %s", strerror(errno));
	if (j->rc) {
		sdk_req_on_close(req, NULL, NULL);
		sdk_warn("backup: %s", j->err.msg);
		sdk_reply_status(req, j->rc, &j->err);
		j->req = NULL;
		job_free(j);
		return;
	}
	j->size = sb.st_size;
	/* Gone from the directory already: nothing is left behind whatever
	 * happens to this process; the open descriptor keeps the bytes. */
	unlink(j->path);
	j->path[0] = '\0';
	size_t n = json_array_size(json_object_get(j->manifest, "files"));
	char files[24];
	snprintf(files, sizeof files, "%zu", n);
	sdk_req_add_header(req, "Content-Type", "application/x-tar");
	sdk_req_add_header(req, "Content-Disposition", "attachment; filename=\"grace-backup.tar\"");
	sdk_req_add_header(req, "X-Grace-Backup-Files", files);
	sdk_reply_begin(req, 200, j->size);
	sdk_req_on_close(req, on_gone, j);
	sdk_reply_on_drain(req, send_more, j);
	send_more(req, j);
}

static void start_work(struct backup_job *j)
{
	if (sdk_pool_submit(j->b->pool, work, done, j) < 0) {
		sdk_req_on_close(j->req, NULL, NULL);
		sdk_reply_error(j->req, 503, "busy", "cannot start a backup now");
		j->req = NULL;
		job_free(j);
	}
}

static void on_log_head(json_t *head, const char *why, void *arg)
{
	struct backup_job *j = arg;
	if (!j->req) {
		json_decref(head);
		job_free(j);
		return;
	}
	if (!head && why) {
		sdk_req_on_close(j->req, NULL, NULL);
		sdk_req_add_header(j->req, "Retry-After", "5");
		sdk_reply_error(j->req, 503, "log_unavailable",
				"the immutable log's signed tree head is needed for a backup: %s", why);
		j->req = NULL;
		job_free(j);
		return;
	}
	j->log_head = head; /* NULL: no log in this configuration, nothing to pin */
	start_work(j);
}

/* The client left before the archive was ready: the job ends at `done`. */
static void on_gone_early(sdk_req *req, void *arg)
{
	struct backup_job *j = arg;
	j->req = NULL;
	sdk_reply_stream_end(req);
}

static void on_backup(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	api_backup *b = api->backup;
	if (!b) {
		sdk_reply_error(req, 503, "unavailable", "backups are not available");
		return;
	}
	if (b->running) {
		sdk_reply_error(req, 409, "backup_running", "a backup is under way; try again after");
		return;
	}
	json_t *body = sdk_req_json(req, true);
	if (!body)
		return;
	json_t *pass = json_object_get(body, "passphrase"), *key = json_object_get(body, "key"),
	       *none = json_object_get(body, "no_secrets");
	int given = (pass != NULL) + (key != NULL) + json_is_true(none);
	if (given != 1 || (pass && !json_is_string(pass)) || (key && !json_is_string(key)) ||
	    (none && !json_is_boolean(none))) {
		sdk_reply_error(req, 400, "invalid",
				"give exactly one of passphrase (a string), key (64 hex digits) or "
				"no_secrets: true (the secrets are then left out)");
		return;
	}
	struct backup_job *j = calloc(1, sizeof *j);
	if (!j) {
		sdk_reply_error(req, 503, "busy", "out of memory");
		return;
	}
	*j = (struct backup_job){ .b = b, .req = req, .fd = -1, .no_secrets = json_is_true(none) };
	sdk_err e;
	if (pass) {
		size_t n = strlen(json_string_value(pass));
		if (n < BK_PASSPHRASE_MIN || n > BK_PASSPHRASE_MAX) {
			free(j);
			sdk_reply_error(req, 400, "invalid", "a passphrase has %d to %d characters",
					BK_PASSPHRASE_MIN, BK_PASSPHRASE_MAX);
			return;
		}
		memcpy(j->passphrase, json_string_value(pass), n + 1);
	} else if (key) {
		const char *k = json_string_value(key);
		if (bk_master_parse((const unsigned char *)k, strlen(k), j->master, &e) < 0) {
			free(j);
			sdk_reply_status(req, SDK_EINVAL, &e);
			return;
		}
		j->have_master = true;
	}
	if (snprintf(j->path, sizeof j->path, "%s/.backup-%ld-%u.tar", api->cfg->data_dir,
		     (long)getpid(), ++b->serial) >= (int)sizeof j->path) {
		free(j);
		sdk_reply_error(req, 500, "internal", "the data directory's path is too long");
		return;
	}
	b->running = j;
	sdk_req_on_close(req, on_gone_early, j);
	j->head_ask = (bk_head_ask){ on_log_head, j };
	bk_log_head_ask(api, &j->head_ask);
}

/* ---- scheduled backups ([backup] schedule; serve/backup/schedule.h) */

static void on_schedule(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	if (!api->bks) {
		sdk_reply_error(req, 404, "not_found",
				"no scheduled backups: set [backup] schedule and dir in grace.ini");
		return;
	}
	sdk_reply_json(req, 200, bks_status(api->bks));
}

static void on_schedule_run(sdk_req *req, void *ctx)
{
	api_ctx *api = ctx;
	if (!api->bks) {
		sdk_reply_error(req, 404, "not_found",
				"no scheduled backups: set [backup] schedule and dir in grace.ini");
		return;
	}
	sdk_err err = { "" };
	int rc = bks_run_now(api->bks, &err);
	if (rc < 0) {
		sdk_reply_status(req, rc, &err);
		return;
	}
	sdk_reply_json(req, 202, bks_status(api->bks));
}

static const sdk_route routes[] = {
	API_ADMIN("POST", "/backup", on_backup),
	API_ADMIN("GET", "/backup/schedule", on_schedule),
	API_ADMIN("POST", "/backup/schedule/run", on_schedule_run),
};
const api_family api_backup_family = { "backup", routes, sizeof routes / sizeof routes[0] };
