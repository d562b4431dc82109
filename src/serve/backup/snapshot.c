#include "serve/backup/snapshot.h"

#include "sdk/clock.h"
#include "sdk/db.h"
#include "sdk/log.h"
#include "serve/backup/archive_dl.h"
#include "serve/backup/bus_snap.h"
#include "serve/backup/pg_dump.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define COPY_BUF (256 * 1024)
#define FILES_MAX 256

enum kind { K_SQLITE, K_SECRET, K_FILE, K_CONFIG };
static const char *const kind_names[] = { "sqlite", "secret", "file", "config" };

struct item {
	enum kind kind;
	char name[NAME_MAX + 1]; /* in the data directory */
	int rank;		 /* copy order: lower first */
};

static int io_fail(sdk_err *e, const char *what, const char *path)
{
	int code = errno == ENOSPC || errno == EDQUOT ? SDK_EFULL : SDK_EIO;
	return sdk_fail(e, code, "%s %s: %s", what, path, strerror(errno));
}

int bk_file_sha256(const char *path, char hex[65], long long *size, sdk_err *e)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return io_fail(e, "cannot read", path);
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	unsigned char *buf = malloc(COPY_BUF);
	long long total = 0;
	ssize_t n = 0;
	while (buf && (n = read(fd, buf, COPY_BUF)) > 0) {
		crypto_hash_sha256_update(&st, buf, (size_t)n);
		total += n;
	}
	int saved = errno;
	free(buf);
	close(fd);
	if (!buf || n < 0) {
		errno = buf ? saved : ENOMEM;
		return io_fail(e, "cannot read", path);
	}
	unsigned char h[crypto_hash_sha256_BYTES];
	crypto_hash_sha256_final(&st, h);
	sodium_bin2hex(hex, 65, h, sizeof h);
	*size = total;
	return 0;
}

/* Which stores refer to which: a store is copied after those that name
 * its entries, so every reference in a copy resolves in the later copies. */
static int rank_of(const char *name)
{
	if (!strcmp(name, "immutable_log.db"))
		return 3; /* the audit trail names its indexes */
	if (!strcmp(name, "audit.db"))
		return 2; /* every store's outbox and every kernel send it events */
	return 1;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && !strcmp(s + n - k, suffix);
}

static int cmp_items(const void *a, const void *b)
{
	const struct item *x = a, *y = b;
	return x->rank != y->rank ? x->rank - y->rank : strcmp(x->name, y->name);
}

/* What the data directory holds, in copy order; what is not backed up goes
 * to `skipped` with why. */
static int survey(const char *dir, struct item *items, size_t *n, json_t *skipped, sdk_err *e)
{
	DIR *d = opendir(dir);
	if (!d)
		return io_fail(e, "cannot list", dir);
	*n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		const char *nm = de->d_name;
		if (nm[0] == '.')
			continue; /* ".", "..", and staging directories like ours */
		if (ends_with(nm, "-wal") || ends_with(nm, "-shm") || ends_with(nm, "-journal"))
			continue; /* part of their database, which the copy reads whole */
		char path[PATH_MAX];
		struct stat sb;
		if (snprintf(path, sizeof path, "%s/%s", dir, nm) >= (int)sizeof path ||
		    lstat(path, &sb) < 0)
			continue;
		const char *why = NULL;
		if (!strcmp(nm, "internal.token") || !strcmp(nm, "ports.json"))
			why = "made anew at every start";
		else if (!strcmp(nm, "log") && S_ISDIR(sb.st_mode))
			why = "log files (serve/logfile.h): a record, not state";
		else if (S_ISDIR(sb.st_mode))
			why = "a directory: no kernel declares a snapshot of it";
		else if (!S_ISREG(sb.st_mode))
			why = "not a regular file";
		if (why) {
			json_array_append_new(skipped, json_pack("{s:s, s:s}", "name", nm, "reason", why));
			continue;
		}
		if (*n == FILES_MAX) {
			closedir(d);
			return sdk_fail(e, SDK_ETOOLARGE, "more than %d files in %s", FILES_MAX, dir);
		}
		struct item *it = &items[(*n)++];
		snprintf(it->name, sizeof it->name, "%s", nm);
		it->kind = ends_with(nm, ".db")		? K_SQLITE
			   : (sb.st_mode & 077) == 0 ? K_SECRET
						      : K_FILE;
		it->rank = rank_of(nm);
	}
	closedir(d);
	qsort(items, *n, sizeof *items, cmp_items);
	return 0;
}

static int sqlite_fail(sdk_err *e, sqlite3 *db, int rc, const char *what, const char *path)
{
	return sdk_fail(e, sdk_status_of_sqlite(rc), "%s %s: %s", what, path,
			db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

/* The database at `src` as it is at one instant, into `dst`; then checks
 * the copy and reads its schema version. */
static int copy_sqlite(const char *src, const char *dst, int *schema, sdk_err *e)
{
	sqlite3 *s = NULL, *d = NULL;
	int rc = sqlite3_open_v2(src, &s, SQLITE_OPEN_READWRITE, NULL);
	if (rc != SQLITE_OK) {
		int r = sqlite_fail(e, s, rc, "cannot open", src);
		sqlite3_close(s);
		return r;
	}
	sqlite3_busy_timeout(s, 10000);
	rc = sqlite3_open_v2(dst, &d, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	int r = 0;
	if (rc != SQLITE_OK) {
		r = sqlite_fail(e, d, rc, "cannot create", dst);
		goto out;
	}
	sqlite3_busy_timeout(d, 10000);
	/* The staging copy is scratch: the archive is what is synced. */
	sqlite3_exec(d, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF", NULL, NULL, NULL);
	sqlite3_backup *b = sqlite3_backup_init(d, "main", s, "main");
	if (!b) {
		r = sqlite_fail(e, d, sqlite3_errcode(d), "cannot back up", src);
		goto out;
	}
	/* -1: every page in one step, so one read transaction: one instant. */
	rc = sqlite3_backup_step(b, -1);
	sqlite3_backup_finish(b);
	if (rc != SQLITE_DONE) {
		r = sqlite_fail(e, NULL, rc, "cannot back up", src);
		goto out;
	}
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(d, "PRAGMA quick_check", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW ||
	    strcmp((const char *)sqlite3_column_text(st, 0), "ok") != 0) {
		r = sdk_fail(e, SDK_ECORRUPT, "the copy of %s fails quick_check: %s", src,
			     st ? (const char *)sqlite3_column_text(st, 0) : sqlite3_errmsg(d));
		sqlite3_finalize(st);
		goto out;
	}
	sqlite3_finalize(st);
	*schema = 0;
	if (sqlite3_prepare_v2(d, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		*schema = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	/* One file, no -wal beside it, and a restore opens it in the mode the
	 * kernel sets (WAL). */
	sqlite3_exec(d, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL);
out:
	sqlite3_close(d);
	sqlite3_close(s);
	return r;
}

static int read_small(const char *path, unsigned char **out, size_t *len, sdk_err *e)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return io_fail(e, "cannot read", path);
	struct stat sb;
	if (fstat(fd, &sb) < 0 || sb.st_size > BK_SECRET_MAX) {
		close(fd);
		return sdk_fail(e, SDK_ETOOLARGE, "%s is not a key: %lld bytes", path,
				(long long)sb.st_size);
	}
	unsigned char *b = malloc((size_t)sb.st_size + 1);
	ssize_t n = b ? read(fd, b, (size_t)sb.st_size) : -1;
	close(fd);
	if (n != sb.st_size) {
		free(b);
		return sdk_fail(e, SDK_EIO, "cannot read %s", path);
	}
	*out = b;
	*len = (size_t)n;
	return 0;
}

static int write_file(const char *path, const unsigned char *b, size_t n, mode_t mode, sdk_err *e)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0)
		return io_fail(e, "cannot create", path);
	ssize_t w = write(fd, b, n);
	int saved = errno;
	close(fd);
	if (w != (ssize_t)n) {
		errno = w < 0 ? saved : ENOSPC;
		return io_fail(e, "cannot write", path);
	}
	return 0;
}

static int copy_file(const char *src, const char *dst, sdk_err *e)
{
	int in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return io_fail(e, "cannot read", src);
	int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0) {
		close(in);
		return io_fail(e, "cannot create", dst);
	}
	unsigned char *buf = malloc(COPY_BUF);
	ssize_t n = 0;
	int r = 0;
	while (buf && (n = read(in, buf, COPY_BUF)) > 0)
		if (write(out, buf, (size_t)n) != n) {
			r = io_fail(e, "cannot write", dst);
			break;
		}
	if (!r && (!buf || n < 0))
		r = io_fail(e, "cannot read", src);
	free(buf);
	close(in);
	close(out);
	return r;
}

void bk_remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char p[PATH_MAX];
		if (snprintf(p, sizeof p, "%s/%s", dir, de->d_name) < (int)sizeof p)
			unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

static int add_entry(const archive_dl *A, struct archive *a, const char *name, const char *path, sdk_err *e)
{
	struct stat sb;
	if (stat(path, &sb) < 0)
		return io_fail(e, "cannot read", path);
	struct archive_entry *en = A->entry_new();
	A->entry_set_pathname(en, name);
	A->entry_set_size(en, sb.st_size);
	A->entry_set_filetype(en, AE_IFREG);
	A->entry_set_perm(en, 0600);
	A->entry_set_mtime(en, sb.st_mtime, 0);
	int r = 0;
	if (A->write_header(a, en) != ARCHIVE_OK)
		r = sdk_fail(e, SDK_EIO, "archive: %s", A->error_string(a));
	int fd = r ? -1 : open(path, O_RDONLY | O_CLOEXEC);
	if (!r && fd < 0)
		r = io_fail(e, "cannot read", path);
	unsigned char *buf = r ? NULL : malloc(COPY_BUF);
	ssize_t n = 0;
	while (buf && (n = read(fd, buf, COPY_BUF)) > 0)
		if (A->write_data(a, buf, (size_t)n) != n) {
			r = sdk_fail(e, SDK_EIO, "archive: %s", A->error_string(a));
			break;
		}
	if (!r && (!buf || n < 0))
		r = io_fail(e, "cannot read", path);
	free(buf);
	if (fd >= 0)
		close(fd);
	A->entry_free(en);
	return r;
}

static int add_bytes(const archive_dl *A, struct archive *a, const char *name, const char *b, size_t n, sdk_err *e)
{
	struct archive_entry *en = A->entry_new();
	A->entry_set_pathname(en, name);
	A->entry_set_size(en, (la_int64_t)n);
	A->entry_set_filetype(en, AE_IFREG);
	A->entry_set_perm(en, 0600);
	A->entry_set_mtime(en, time(NULL), 0);
	int r = 0;
	if (A->write_header(a, en) != ARCHIVE_OK || A->write_data(a, b, n) != (la_ssize_t)n)
		r = sdk_fail(e, SDK_EIO, "archive: %s", A->error_string(a));
	A->entry_free(en);
	return r;
}

/* Where a file of the archive is staged: the data directory's files by
 * their names, the configuration, the PostgreSQL dump and the JetStream
 * snapshot by names no data directory file has (survey() skips names that
 * start with a dot). */
#define STAGED_PG ".postgresql.dump"
#define STAGED_JS ".jetstream" BK_JS_SUFFIX
static const char *staged_name(const char *archive_name)
{
	if (!strcmp(archive_name, "config/grace.ini"))
		return "config.ini";
	if (!strcmp(archive_name, BK_PG_DUMP_NAME))
		return STAGED_PG;
	if (!strncmp(archive_name, BK_JS_DIR, strlen(BK_JS_DIR)))
		return STAGED_JS;
	return archive_name + strlen("data/");
}

/* The PostgreSQL dump, staged and listed; its snapshot's facts go to
 * *pg_info for the manifest. */
static int stage_pg(const bk_plan *plan, const char *staging, json_t *files, json_t **pg_info,
		    sdk_err *e)
{
	char dst[PATH_MAX];
	if (snprintf(dst, sizeof dst, "%s/%s", staging, STAGED_PG) >= (int)sizeof dst)
		return sdk_fail(e, SDK_EINVAL, "the staging path is too long");
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int r = bk_pg_dump(plan->pg, dst, pg_info, e);
	char hex[65];
	long long size = 0;
	if (r || (r = bk_file_sha256(dst, hex, &size, e)))
		return r;
	sdk_info("backup: PostgreSQL database %s dumped (%lld bytes, %zu tables) in %.0f ms",
		 json_string_value(json_object_get(*pg_info, "database")), size,
		 json_object_size(json_object_get(*pg_info, "tables")), sdk_ms_since(&t0));
	json_array_append_new(files, json_pack("{s:s, s:s, s:I, s:s}", "name", BK_PG_DUMP_NAME,
					       "kind", BK_PG_KIND, "size", (json_int_t)size,
					       "sha256", hex));
	return 0;
}

/* The bus's JetStream stream, asked of the bus kernel, staged and listed;
 * what the kernel says of it (config, state, consumers) goes to *js_info
 * for the manifest. No message_bus kernel in this configuration: listed
 * as skipped, with why. */
static int stage_js(const bk_plan *plan, const char *staging, json_t *files, json_t *skipped,
		    json_t **js_info, sdk_err *e)
{
	char stream[sizeof plan->jetstream->stream_prefix + 8], what[sizeof stream + 32];
	char dst[PATH_MAX], name[sizeof stream + 32];
	snprintf(stream, sizeof stream, "%s_BUS", plan->jetstream->stream_prefix);
	snprintf(what, sizeof what, "jetstream stream %s", stream);
	snprintf(name, sizeof name, "%s%s%s", BK_JS_DIR, stream, BK_JS_SUFFIX);
	if (snprintf(dst, sizeof dst, "%s/%s", staging, STAGED_JS) >= (int)sizeof dst)
		return sdk_fail(e, SDK_EINVAL, "the staging path is too long");
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	json_t *info = NULL;
	int r = plan->bus ? bk_bus_snap_fetch(plan->bus, dst, &info, e)
			  : sdk_fail(e, SDK_ENOTFOUND, "no bus kernel to ask in this process");
	if (r == SDK_ENOTFOUND) {
		json_array_append_new(skipped, json_pack("{s:s, s:s}", "name", what, "reason", e->msg));
		sdk_warn("backup: %s is not in the archive: %s", what, e->msg);
		return 0;
	}
	if (r)
		return r;
	if (strcmp(json_string_value(json_object_get(info, "stream")), stream)) {
		json_decref(info);
		return sdk_fail(e, SDK_EIO, "the bus kernel's snapshot is of %s, not %s",
				json_string_value(json_object_get(info, "stream")), stream);
	}
	char hex[65];
	long long size = 0;
	if ((r = bk_file_sha256(dst, hex, &size, e))) {
		json_decref(info);
		return r;
	}
	json_object_set_new(info, "file", json_string(name));
	sdk_info("backup: JetStream stream %s: %lld bytes, %" JSON_INTEGER_FORMAT
		 " messages, %zu consumers, in %.0f ms",
		 stream, size,
		 json_integer_value(json_object_get(json_object_get(info, "state"), "messages")),
		 json_array_size(json_object_get(info, "consumers")), sdk_ms_since(&t0));
	json_array_append_new(files, json_pack("{s:s, s:s, s:I, s:s}", "name", name, "kind",
					       BK_JS_KIND, "size", (json_int_t)size, "sha256", hex));
	*js_info = info;
	return 0;
}

/* Stages every item, filling the manifest's file list. */
static int stage(const bk_plan *plan, const bk_keys *keys, const char *staging,
		 const struct item *items, size_t n, json_t *files, json_t *skipped,
		 json_t **pg_info, json_t **js_info, sdk_err *e)
{
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	bool js_done = !plan->jetstream;
	for (size_t i = 0; i < n; i++) {
		const struct item *it = &items[i];
		/* The bus's stream after the other stores, before the audit
		 * trail: see snapshot.h. */
		if (!js_done && it->rank >= 2) {
			js_done = true;
			int r = stage_js(plan, staging, files, skipped, js_info, e);
			if (r)
				return r;
		}
		/* PostgreSQL after the audit trail, before the log: see
		 * snapshot.h. */
		if (plan->pg && !*pg_info && it->rank >= 3) {
			int r = stage_pg(plan, staging, files, pg_info, e);
			if (r)
				return r;
		}
		char src[PATH_MAX], dst[PATH_MAX];
		if (snprintf(src, sizeof src, "%s/%s", plan->data_dir, it->name) >= (int)sizeof src ||
		    snprintf(dst, sizeof dst, "%s/%s", staging, it->name) >= (int)sizeof dst)
			return sdk_fail(e, SDK_EINVAL, "a path in %s is too long", plan->data_dir);
		int schema = -1, r = 0;
		if (it->kind == K_SQLITE) {
			r = copy_sqlite(src, dst, &schema, e);
		} else if (it->kind == K_SECRET) {
			if (!keys) {
				json_array_append_new(skipped,
						      json_pack("{s:s, s:s}", "name", it->name, "reason",
								"a secret, and --no-secrets was given"));
				continue;
			}
			unsigned char *plain = NULL, *sealed = NULL;
			size_t pl = 0, sl = 0;
			r = read_small(src, &plain, &pl, e);
			if (!r)
				r = bk_seal(keys, plain, pl, &sealed, &sl, e);
			if (plain)
				sodium_memzero(plain, pl);
			free(plain);
			if (!r)
				r = write_file(dst, sealed, sl, 0600, e);
			free(sealed);
		} else {
			r = copy_file(src, dst, e);
		}
		if (r)
			return r;
		char hex[65];
		long long size = 0;
		if ((r = bk_file_sha256(dst, hex, &size, e)))
			return r;
		sdk_debug("backup: %s staged (%lld bytes) at %.0f ms", it->name, size,
			  sdk_ms_since(&t0));
		char name[NAME_MAX + 8];
		snprintf(name, sizeof name, "data/%s", it->name);
		json_t *f = json_pack("{s:s, s:s, s:I, s:s}", "name", name, "kind",
				      kind_names[it->kind], "size", (json_int_t)size, "sha256", hex);
		if (schema >= 0)
			json_object_set_new(f, "schema_version", json_integer(schema));
		if (it->kind == K_SECRET)
			json_object_set_new(f, "sealed", json_true());
		json_array_append_new(files, f);
	}
	if (!js_done) {
		int r = stage_js(plan, staging, files, skipped, js_info, e);
		if (r)
			return r;
	}
	if (plan->pg && !*pg_info) {
		int r = stage_pg(plan, staging, files, pg_info, e);
		if (r)
			return r;
	}
	if (plan->config_path && plan->config_path[0]) {
		char dst[PATH_MAX];
		if (snprintf(dst, sizeof dst, "%s/config.ini", staging) >= (int)sizeof dst)
			return sdk_fail(e, SDK_EINVAL, "the staging path is too long");
		int r = copy_file(plan->config_path, dst, e);
		char hex[65];
		long long size = 0;
		if (r || (r = bk_file_sha256(dst, hex, &size, e)))
			return r;
		json_array_append_new(files, json_pack("{s:s, s:s, s:I, s:s, s:s}", "name",
						       "config/grace.ini", "kind", "config", "size",
						       (json_int_t)size, "sha256", hex, "source",
						       plan->config_path));
	}
	return 0;
}

static int write_archive(const char *path, const char *staging, json_t *manifest,
			 const bk_keys *keys, sdk_err *e)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
		return sdk_fail(e, SDK_EINVAL, "the archive's path is too long");
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return io_fail(e, "cannot create", tmp);
	const archive_dl *A = archive_dl_load(e);
	if (!A) {
		close(fd);
		unlink(tmp);
		return SDK_EIO;
	}
	char *text = json_dumps(manifest, JSON_INDENT(1) | JSON_SORT_KEYS);
	struct archive *a = A->write_new();
	int r = 0;
	if (!text || !a || A->write_set_format_pax_restricted(a) != ARCHIVE_OK ||
	    A->write_open_fd(a, fd) != ARCHIVE_OK)
		r = sdk_fail(e, SDK_EIO, "cannot start the archive: %s",
			     a ? A->error_string(a) : "out of memory");
	if (!r)
		r = add_bytes(A, a, "manifest.json", text, strlen(text), e);
	/* The MAC right after: a restore authenticates the manifest before it
	 * trusts a single hash in it. */
	if (!r && keys) {
		char mac[2 * crypto_auth_BYTES + 1];
		bk_mac(keys, text, strlen(text), mac);
		r = add_bytes(A, a, "manifest.mac", mac, strlen(mac), e);
	}
	json_t *f;
	size_t i;
	json_array_foreach(json_object_get(manifest, "files"), i, f) {
		if (r)
			break;
		const char *name = json_string_value(json_object_get(f, "name"));
		char src[PATH_MAX];
		if (snprintf(src, sizeof src, "%s/%s", staging, staged_name(name)) >=
		    (int)sizeof src)
			r = sdk_fail(e, SDK_EINVAL, "the staging path is too long");
		else
			r = add_entry(A, a, name, src, e);
	}
	if (a) {
		if (!r && A->write_close(a) != ARCHIVE_OK)
			r = sdk_fail(e, SDK_EIO, "cannot finish the archive: %s",
				     A->error_string(a));
		A->write_free(a);
	}
	free(text);
	if (!r && fsync(fd) < 0)
		r = io_fail(e, "cannot sync", tmp);
	close(fd);
	if (!r && rename(tmp, path) < 0)
		r = io_fail(e, "cannot rename to", path);
	if (r) {
		unlink(tmp);
		return r;
	}
	/* The rename itself survives a crash once the directory is synced. */
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = '\0';
	int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

int bk_snapshot_write(const bk_plan *plan, const char *path, json_t **manifest, sdk_err *e)
{
	bk_keys keys;
	bool keyed = !plan->no_secrets;
	json_t *kdf = keyed ? bk_kdf_new(plan->passphrase != NULL) : json_null();
	int r = 0;
	if (keyed && plan->passphrase)
		r = bk_keys_from_passphrase(plan->passphrase, kdf, &keys, e);
	else if (keyed && plan->master)
		bk_keys_from_master(plan->master, &keys);
	else if (keyed)
		r = sdk_fail(e, SDK_EINVAL, "a backup needs a passphrase or a key, or no_secrets");
	if (r) {
		json_decref(kdf);
		return r;
	}
	char staging[PATH_MAX];
	if (snprintf(staging, sizeof staging, "%s/.backup-XXXXXX", plan->data_dir) >=
		    (int)sizeof staging ||
	    !mkdtemp(staging)) {
		json_decref(kdf);
		bk_keys_wipe(&keys);
		return io_fail(e, "cannot stage the backup in", plan->data_dir);
	}
	struct item *items = calloc(FILES_MAX, sizeof *items);
	json_t *files = json_array(), *skipped = json_array(), *pg_info = NULL, *js_info = NULL;
	size_t n = 0;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	char when[32];
	struct tm tm;
	gmtime_r(&now.tv_sec, &tm);
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
	r = items ? survey(plan->data_dir, items, &n, skipped, e)
		  : sdk_fail(e, SDK_EIO, "out of memory");
	if (!r)
		r = stage(plan, keyed ? &keys : NULL, staging, items, n, files, skipped, &pg_info,
			  &js_info, e);
	json_t *m = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:o, s:O, s:o, s:o}", "format",
			      BK_FORMAT, "grace_version", GRACE_VERSION, "created", when,
			      "created_ms",
			      (json_int_t)now.tv_sec * 1000 + now.tv_nsec / 1000000, "data_dir",
			      plan->data_dir, "secrets", keyed ? "sealed" : "omitted", "kdf", kdf,
			      "immutable_log", plan->log_head ? plan->log_head : json_null(),
			      "files", files, "skipped", skipped);
	if (pg_info)
		json_object_set_new(m, "postgresql", pg_info);
	if (js_info)
		json_object_set_new(m, "jetstream", js_info);
	if (!r)
		r = write_archive(path, staging, m, keyed ? &keys : NULL, e);
	bk_remove_dir(staging);
	free(items);
	if (keyed)
		bk_keys_wipe(&keys);
	if (r) {
		json_decref(m);
		return r;
	}
	*manifest = m;
	return 0;
}
