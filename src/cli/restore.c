/* `grace restore FILE`: a backup archive into an empty data directory,
 * offline, proving itself on the way.
 *
 *   1. Read the whole archive once: the manifest first, every file's size
 *      and SHA-256 against it, nothing unlisted, nothing missing, and the
 *      manifest's MAC with the passphrase or key. A tampered, truncated or
 *      wrongly keyed archive stops here, before anything is written; so
 *      does one holding a database with a schema version newer than this
 *      build's (docs/upgrades.md). An older one is restored as it is and
 *      migrated when it is first opened (said in the report).
 *   2. Write every file into a staging directory beside the target (hashes
 *      checked again as written; secrets opened), then run SQLite's
 *      integrity_check on each database.
 *   3. Start each kernel that has a store in the archive alone on the
 *      staging directory, on a free port, and ask its /health: its own
 *      checks run at start. The immutable log also verifies itself in full
 *      (GET /verify), and its root at the manifest's tree size must be the
 *      root the manifest's signed tree head names, under the same key.
 *   4. With a PostgreSQL dump in the archive (restore_pg.h): pg_restore
 *      into the configured database, then its schema version and every
 *      table's row count against the manifest. Refused in step 1, before
 *      anything is written, when no PostgreSQL is configured or the
 *      database is not empty (without --force). Then, with the bus's
 *      JetStream stream in the archive (restore_js.h), the same for the
 *      stream in the configured NATS JetStream.
 *   5. Only then rename the staging directory into place. */
#include "cli/backup.h"

#include "cli/oneshot.h"
#include "cli/restore_js.h"
#include "cli/restore_pg.h"
#include "cli/secret.h"
#include "kernels/registry.h"
#include "serve/backup/archive_dl.h"
#include "serve/backup/bus_snap.h"
#include "serve/backup/pg_dump.h"
#include "serve/backup/seal.h"
#include "serve/backup/snapshot.h"
#include "serve/schema.h"
#include "sdk/listen.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FILES_MAX 256
#define BUF (256 * 1024)
#define MAC_MAX 256
#define KERNEL_START_S 15
#define ANSWER_MAX (1024 * 1024)

struct want {
	const char *name; /* borrowed from the manifest */
	const char *sha256, *kind;
	long long size;
	int schema; /* the manifest's schema_version, -1 when it has none */
	bool sealed, seen;
};

struct restore {
	const archive_dl *A;
	const char *file;
	json_t *manifest;
	char *manifest_text;
	struct want files[FILES_MAX];
	size_t n;
	char mac[MAC_MAX + 1];
	bool have_mac;
	bk_keys keys;
	bool keyed;
	json_t *report; /* {"checks":[...]} */
};

static int refuse(const char *fmt, const char *a, const char *b)
{
	fprintf(stderr, "grace: restore refused: ");
	fprintf(stderr, fmt, a, b);
	fputc('\n', stderr);
	return CLI_BACKUP_FAILED;
}

/* "jetstream/STREAM.tar.s2", STREAM a name NATS allows (restore_js.c
 * checks the manifest names the same stream). */
static bool js_name_ok(const char *n)
{
	size_t dl = strlen(BK_JS_DIR), sl = strlen(BK_JS_SUFFIX), len = strlen(n);
	if (strncmp(n, BK_JS_DIR, dl) || len <= dl + sl || len > dl + sl + 60 ||
	    strcmp(n + len - sl, BK_JS_SUFFIX))
		return false;
	return strspn(n + dl, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") ==
	       len - dl - sl;
}

/* A file's name in the archive: "data/NAME" (one path segment, not hidden),
 * "config/grace.ini", the PostgreSQL dump or the JetStream snapshot.
 * Anything else could write outside the target. */
static bool name_ok(const char *n)
{
	if (!strcmp(n, "config/grace.ini") || !strcmp(n, BK_PG_DUMP_NAME) || js_name_ok(n))
		return true;
	if (strncmp(n, "data/", 5) != 0)
		return false;
	const char *b = n + 5;
	return b[0] && b[0] != '.' && !strchr(b, '/') && strlen(b) <= NAME_MAX;
}

static struct want *find(struct restore *r, const char *name)
{
	for (size_t i = 0; i < r->n; i++)
		if (!strcmp(r->files[i].name, name))
			return &r->files[i];
	return NULL;
}

/* Where the PostgreSQL dump is staged: a hidden name no data directory
 * file has, removed before the staging directory is put in place. */
#define STAGED_PG ".postgresql.dump"
#define STAGED_JS ".jetstream" BK_JS_SUFFIX /* the same, for the JetStream snapshot */

static int load_manifest(struct restore *r, const char *text, size_t len)
{
	json_error_t je;
	r->manifest = json_loadb(text, len, 0, &je);
	const char *fmt = json_string_value(json_object_get(r->manifest, "format"));
	if (!r->manifest || !fmt || strcmp(fmt, BK_FORMAT))
		return refuse("%s: the manifest is not one of %s", r->file, BK_FORMAT);
	r->manifest_text = strndup(text, len);
	json_t *files = json_object_get(r->manifest, "files"), *f;
	size_t i;
	if (!json_is_array(files) || json_array_size(files) > FILES_MAX)
		return refuse("%s: the manifest's file list is not one Grace writes%s", r->file, "");
	json_array_foreach(files, i, f) {
		struct want *w = &r->files[r->n++];
		w->name = json_string_value(json_object_get(f, "name"));
		w->sha256 = json_string_value(json_object_get(f, "sha256"));
		w->kind = json_string_value(json_object_get(f, "kind"));
		w->size = json_integer_value(json_object_get(f, "size"));
		w->sealed = json_is_true(json_object_get(f, "sealed"));
		json_t *sv = json_object_get(f, "schema_version");
		w->schema = json_is_integer(sv) ? (int)json_integer_value(sv) : -1;
		if (!w->name || !name_ok(w->name) || !w->sha256 || strlen(w->sha256) != 64 ||
		    !w->kind || w->size < 0 ||
		    (!strcmp(w->name, BK_PG_DUMP_NAME) != !strcmp(w->kind, BK_PG_KIND)) ||
		    (js_name_ok(w->name) != !strcmp(w->kind, BK_JS_KIND)))
			return refuse("%s: the manifest lists a file it may not: %s", r->file,
				      w->name ? w->name : "(no name)");
		for (size_t k = 0; k + 1 < r->n; k++)
			if (!strcmp(r->files[k].name, w->name))
				return refuse("%s: the manifest lists %s twice", r->file, w->name);
	}
	return 0;
}

/* Streams the current entry through SHA-256 (and into `fd` when >= 0, and
 * into *keep when non-NULL, bounded by BK_SECRET_MAX). */
static int read_entry(struct restore *r, struct archive *a, int fd, char hex[65], long long *size,
		      unsigned char **keep)
{
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	unsigned char *buf = malloc(BUF), *kept = NULL;
	size_t kept_len = 0;
	long long total = 0;
	la_ssize_t n;
	int rc = 0;
	while (buf && (n = r->A->read_data(a, buf, BUF)) > 0) {
		crypto_hash_sha256_update(&st, buf, (size_t)n);
		total += n;
		if (fd >= 0 && write(fd, buf, (size_t)n) != n) {
			rc = -1;
			break;
		}
		if (keep) {
			if (kept_len + (size_t)n > BK_SECRET_MAX + 1024) {
				rc = -1;
				break;
			}
			unsigned char *k2 = realloc(kept, kept_len + (size_t)n);
			if (!k2) {
				rc = -1;
				break;
			}
			kept = k2;
			memcpy(kept + kept_len, buf, (size_t)n);
			kept_len += (size_t)n;
		}
	}
	if (!buf || n < 0)
		rc = -1;
	free(buf);
	unsigned char h[crypto_hash_sha256_BYTES];
	crypto_hash_sha256_final(&st, h);
	sodium_bin2hex(hex, 65, h, sizeof h);
	*size = total;
	if (keep && !rc)
		*keep = kept;
	else
		free(kept);
	return rc;
}

static struct archive *open_archive(struct restore *r)
{
	struct archive *a = r->A->read_new();
	if (a && r->A->read_support_format_tar(a) == ARCHIVE_OK &&
	    r->A->read_open_filename(a, r->file, BUF) == ARCHIVE_OK)
		return a;
	fprintf(stderr, "grace: restore refused: %s: %s\n", r->file,
		a ? r->A->error_string(a) : "out of memory");
	if (a)
		r->A->read_free(a);
	return NULL;
}

static int check_keys(struct restore *r, const char *pass_file, const char *key_file);

/* Step 1: everything checked, nothing written. The manifest is
 * authenticated (check_keys) before any hash in it is trusted. */
static int verify_archive(struct restore *r, const char *pass_file, const char *key_file)
{
	struct archive *a = open_archive(r);
	if (!a)
		return CLI_BACKUP_FAILED;
	struct archive_entry *en;
	int rc = 0, st;
	bool first = true, keys_checked = false;
	while (!rc && (st = r->A->read_next_header(a, &en)) == ARCHIVE_OK) {
		const char *name = r->A->entry_pathname(en);
		if (!name || r->A->entry_filetype(en) != AE_IFREG) {
			rc = refuse("%s: an entry that is not a regular file%s", r->file, "");
			break;
		}
		if (first) {
			first = false;
			long long sz = r->A->entry_size(en);
			if (strcmp(name, "manifest.json") || sz <= 0 || sz > BK_MANIFEST_MAX) {
				rc = refuse("%s: no manifest.json first: not a Grace backup%s", r->file,
					    "");
				break;
			}
			char *text = malloc((size_t)sz);
			la_ssize_t got = text ? r->A->read_data(a, text, (size_t)sz) : -1;
			rc = got == sz ? load_manifest(r, text, (size_t)sz)
				       : refuse("%s: the manifest is cut short%s", r->file, "");
			free(text);
			continue;
		}
		if (!strcmp(name, "manifest.mac")) {
			if (r->have_mac || keys_checked) {
				rc = refuse("%s: manifest.mac not right after the manifest%s", r->file,
					    "");
				break;
			}
			la_ssize_t got = r->A->read_data(a, r->mac, MAC_MAX);
			if (got <= 0) {
				rc = refuse("%s: manifest.mac is empty or damaged%s", r->file, "");
				break;
			}
			r->mac[got] = '\0';
			r->have_mac = true;
			continue;
		}
		if (!keys_checked) {
			keys_checked = true;
			if ((rc = check_keys(r, pass_file, key_file)))
				break;
		}
		struct want *w = find(r, name);
		if (!w) {
			rc = refuse("%s: %s is not in the manifest", r->file, name);
			break;
		}
		if (w->seen) {
			rc = refuse("%s: %s is in the archive twice", r->file, name);
			break;
		}
		w->seen = true;
		char hex[65];
		long long size = 0;
		if (read_entry(r, a, -1, hex, &size, NULL) < 0) {
			rc = refuse("%s: %s cannot be read: truncated or damaged", r->file, name);
			break;
		}
		if (size != w->size || strcmp(hex, w->sha256))
			rc = refuse("%s: %s differs from the manifest (its hash or size): changed "
				    "or damaged",
				    r->file, name);
	}
	if (!rc && st != ARCHIVE_EOF)
		rc = refuse("%s: %s (truncated or damaged)", r->file, r->A->error_string(a));
	r->A->read_free(a);
	if (rc)
		return rc;
	if (!r->manifest)
		return refuse("%s: empty: not a Grace backup%s", r->file, "");
	if (!keys_checked && (rc = check_keys(r, pass_file, key_file)))
		return rc;
	for (size_t i = 0; i < r->n; i++)
		if (!r->files[i].seen)
			return refuse("%s: %s is in the manifest and not in the archive (truncated?)",
				      r->file, r->files[i].name);
	return 0;
}

/* The keys, and the manifest's MAC checked with them. */
static int check_keys(struct restore *r, const char *pass_file, const char *key_file)
{
	const char *secrets = json_string_value(json_object_get(r->manifest, "secrets"));
	if (secrets && !strcmp(secrets, "omitted")) {
		if (r->have_mac)
			return refuse("%s: a MAC on a backup without secrets%s", r->file, "");
		fprintf(stderr, "grace: this backup was made with --no-secrets: its secrets are "
				"not in it, and its manifest is not authenticated (the hashes catch "
				"damage, not a deliberate change)\n");
		return 0;
	}
	if (!r->have_mac)
		return refuse("%s: a keyed backup without its manifest.mac (removed?)%s", r->file, "");
	json_t *kdf = json_object_get(r->manifest, "kdf");
	const char *alg = json_string_value(json_object_get(kdf, "alg"));
	sdk_err e;
	if (alg && !strcmp(alg, "keyfile")) {
		if (!key_file)
			return refuse("%s was made with a key: give --key-file%s", r->file, "");
		unsigned char master[BK_KEY_BYTES];
		if (bk_master_read(key_file, false, master, &e) < 0)
			return refuse("%s: %s", key_file, e.msg);
		bk_keys_from_master(master, &r->keys);
		sodium_memzero(master, sizeof master);
	} else {
		char pass[BK_PASSPHRASE_MAX + 2];
		int got = -1;
		if (pass_file) {
			FILE *f = fopen(pass_file, "re");
			if (f && fgets(pass, sizeof pass, f)) {
				pass[strcspn(pass, "\r\n")] = '\0';
				got = 0;
			}
			if (f)
				fclose(f);
		} else {
			got = cli_password_read("Backup passphrase: ", pass, sizeof pass);
		}
		if (got < 0)
			return refuse("no passphrase was given for %s%s", r->file, "");
		int krc = bk_keys_from_passphrase(pass, kdf, &r->keys, &e);
		sodium_memzero(pass, sizeof pass);
		if (krc < 0)
			return refuse("%s: %s", r->file, e.msg);
	}
	r->keyed = true;
	if (!bk_mac_ok(&r->keys, r->manifest_text, strlen(r->manifest_text), r->mac))
		return refuse("%s: wrong passphrase or key, or the manifest was changed%s", r->file,
			      "");
	return 0;
}

/* Step 2: the files into `staging`, and the configuration to config_out. */
static int extract(struct restore *r, const char *staging, const char *config_out, bool force)
{
	struct archive *a = open_archive(r);
	if (!a)
		return CLI_BACKUP_FAILED;
	struct archive_entry *en;
	int rc = 0;
	while (!rc && r->A->read_next_header(a, &en) == ARCHIVE_OK) {
		const char *name = r->A->entry_pathname(en);
		struct want *w = name ? find(r, name) : NULL;
		if (!w)
			continue; /* the manifest and its MAC */
		bool config = !strcmp(w->kind, "config");
		if (config && !config_out)
			continue;
		char path[PATH_MAX];
		bool pg = !strcmp(w->kind, BK_PG_KIND) && !strcmp(name, BK_PG_DUMP_NAME);
		bool js = !strcmp(w->kind, BK_JS_KIND);
		if (snprintf(path, sizeof path, "%s/%s", staging,
			     pg ? STAGED_PG : js ? STAGED_JS : name + strlen("data/")) >=
		    (int)sizeof path) {
			rc = refuse("%s: a path too long for %s", name, staging);
			break;
		}
		const char *dst = config ? config_out : path;
		char hex[65];
		long long size = 0;
		if (w->sealed) {
			unsigned char *sealed = NULL, *plain = NULL;
			size_t pl = 0;
			sdk_err e;
			if (!r->keyed) {
				rc = refuse("%s: a sealed secret in a backup without keys%s", r->file, "");
			} else if (read_entry(r, a, -1, hex, &size, &sealed) < 0 || size != w->size ||
				   strcmp(hex, w->sha256)) {
				rc = refuse("%s: %s changed while it was restored", r->file, name);
			} else if (bk_open(&r->keys, sealed, (size_t)size, &plain, &pl, &e) < 0) {
				rc = refuse("%s: %s", name, e.msg);
			} else {
				int fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
				if (fd < 0 || write(fd, plain, pl) != (ssize_t)pl)
					rc = refuse("cannot write %s: %s", dst, strerror(errno));
				if (fd >= 0)
					close(fd);
			}
			free(sealed);
			if (plain)
				sodium_memzero(plain, pl);
			free(plain);
			continue;
		}
		int fd = open(dst, O_WRONLY | O_CREAT | (config && force ? O_TRUNC : O_EXCL) | O_CLOEXEC,
			      0600);
		if (fd < 0) {
			rc = refuse("cannot create %s: %s", dst, strerror(errno));
			break;
		}
		if (read_entry(r, a, fd, hex, &size, NULL) < 0)
			rc = refuse("cannot restore %s: %s", name, strerror(errno));
		else if (size != w->size || strcmp(hex, w->sha256))
			rc = refuse("%s: %s changed while it was restored", r->file, name);
		else if (fsync(fd) < 0)
			rc = refuse("cannot sync %s: %s", dst, strerror(errno));
		close(fd);
	}
	r->A->read_free(a);
	return rc;
}

static json_t *check(struct restore *r, const char *what, bool ok, const char *detail)
{
	json_t *c = json_pack("{s:s, s:b, s:s}", "check", what, "ok", ok, "detail", detail);
	json_array_append(json_object_get(r->report, "checks"), c);
	if (!ok)
		fprintf(stderr, "grace: restore refused: %s: %s\n", what, detail);
	return c;
}

/* check() for restore_pg.c. */
static void check_cb(void *ctx, const char *what, bool ok, const char *detail)
{
	json_decref(check(ctx, what, ok, detail));
}

/* Step 1, last: each database's schema version against this build's,
 * before anything is written. Newer: refused. Older: restored as it is;
 * it is migrated when first opened (kernels: by their start in step 3;
 * the main process's: when grace serve starts). */
static int schemas(struct restore *r)
{
	for (size_t i = 0; i < r->n; i++) {
		const struct want *w = &r->files[i];
		char name[NAME_MAX + 1];
		snprintf(name, sizeof name, "%s", w->name + 5);
		char *dot = strstr(name, ".db");
		if (strcmp(w->kind, "sqlite") || !dot || dot[3] || w->schema < 0)
			continue;
		*dot = '\0';
		int mine = schema_version_of(name);
		if (mine <= 0)
			continue; /* a store that keeps its own version */
		char what[NAME_MAX + 32], detail[256];
		snprintf(what, sizeof what, "schema %s", w->name + 5);
		if (w->schema > mine) {
			sdk_err e;
			sdk_mig_refuse_newer(&e, w->name + 5, w->schema, mine);
			json_decref(check(r, what, false, e.msg));
			return CLI_BACKUP_FAILED;
		}
		if (w->schema == mine)
			continue;
		snprintf(detail, sizeof detail,
			 "version %d, older than this Grace's %d: migrated when first opened "
			 "(a copy of the file is kept until that succeeds)",
			 w->schema, mine);
		json_decref(check(r, what, true, detail));
	}
	return 0;
}

static int integrity(struct restore *r, const char *staging)
{
	for (size_t i = 0; i < r->n; i++) {
		if (strcmp(r->files[i].kind, "sqlite"))
			continue;
		char path[PATH_MAX], what[PATH_MAX + 32];
		if (snprintf(path, sizeof path, "%s/%s", staging, r->files[i].name + 5) >=
		    (int)sizeof path)
			return refuse("a path too long in %s%s", staging, "");
		snprintf(what, sizeof what, "integrity_check %s", r->files[i].name + 5);
		sqlite3 *db = NULL;
		sqlite3_stmt *st = NULL;
		const char *res = NULL;
		if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
		    sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK &&
		    sqlite3_step(st) == SQLITE_ROW)
			res = (const char *)sqlite3_column_text(st, 0);
		bool ok = res && !strcmp(res, "ok");
		json_decref(check(r, what, ok, res ? res : sqlite3_errmsg(db)));
		sqlite3_finalize(st);
		sqlite3_close(db);
		if (!ok)
			return CLI_BACKUP_FAILED;
	}
	return 0;
}

struct kproc {
	pid_t pid;
	int port;
	char token[65];
};

/* `grace kernel NAME` on the staging directory, on a free port: its /health
 * answered (0), or not (-1, with why in `why`). The socket is bound here and
 * handed over (LISTEN_FDS, as the supervisor does): a port only tested free
 * could be taken by anyone before the kernel bound it. */
/* The band's width, and the API port the check's configuration keeps
 * (the built-in default): 600 ports hold the 150 Grace uses at 450 offsets. */
#define RESTORE_CHECK_BAND 600
#define RESTORE_API_PORT 8000

static int kernel_start(const char *staging, const char *cfg, const sdk_kernel_def *def,
			struct kproc *k, char *why, size_t wl)
{
	/* The check's ports come from the band just below the ephemeral
	 * range, with an offset that keeps the API port and the whole kernel
	 * range inside that band too: no configured Grace (the default, or a
	 * test's offset of at most 24000) listens there, so a check never takes
	 * a port a running Grace is about to bind again, and the kernel's own
	 * configuration check (no port in the ephemeral range) passes. */
	int top = grace_ephemeral_low() - 1 - GRACE_KERNEL_PORT_MAX; /* largest offset */
	int span = RESTORE_CHECK_BAND - (GRACE_KERNEL_PORT_MAX - RESTORE_API_PORT) - 1;
	int offset = -1, lfd = -1;
	for (int tries = 0; tries < 50 && lfd < 0 && top - span >= 0; tries++) {
		int o = top - (int)randombytes_uniform((uint32_t)span + 1);
		if ((lfd = sdk_listen_tcp(def->port + o)) >= 0)
			offset = o;
	}
	if (lfd < 0) {
		snprintf(why, wl, "no free port to start it on");
		return -1;
	}
	k->port = def->port + offset;
	char off[16], exe[PATH_MAX];
	snprintf(off, sizeof off, "%d", offset);
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0) {
		close(lfd);
		snprintf(why, wl, "cannot find the grace binary");
		return -1;
	}
	exe[n] = '\0';
	k->pid = fork();
	if (k->pid == 0) {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
			dup2(null, 2);
		}
		/* dup2 clears close-on-exec on fd 3; a socket that is fd 3
		 * already keeps it unless cleared. */
		if (chdir(staging) < 0 ||
		    (lfd == SDK_LISTEN_FDS_START ? fcntl(lfd, F_SETFD, 0)
						 : dup2(lfd, SDK_LISTEN_FDS_START)) < 0)
			_exit(127);
		char pid[24];
		snprintf(pid, sizeof pid, "%ld", (long)getpid());
		unsetenv("GRACE_CONFIG");
		unsetenv("NOTIFY_SOCKET");
		unsetenv("LISTEN_FDNAMES");
		setenv("LISTEN_FDS", "1", 1);
		setenv("LISTEN_PID", pid, 1);
		execl(exe, "grace", "kernel", def->name, "--config", cfg, "--data-dir", staging,
		      "--port-offset", off, (char *)NULL);
		_exit(127);
	}
	close(lfd);
	if (k->pid < 0) {
		snprintf(why, wl, "cannot fork: %s", strerror(errno));
		return -1;
	}
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		char body[4096];
		oneshot_buf ob = { body, 0, sizeof body - 1 };
		oneshot_answer a;
		if (oneshot_request(k->port, "GET", "/health", NULL, NULL, 0, 5, oneshot_to_buf, &ob,
				    &a) == 0) {
			body[ob.len] = '\0';
			if (a.status == 200)
				return 0;
			snprintf(why, wl, "/health answered %d: %.400s", a.status, body);
			return -1;
		}
		int status;
		if (waitpid(k->pid, &status, WNOHANG) == k->pid) {
			k->pid = 0;
			snprintf(why, wl, "it exited (%s %d) at start",
				 WIFEXITED(status) ? "status" : "signal",
				 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
			return -1;
		}
		struct timespec t;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec > KERNEL_START_S) {
			snprintf(why, wl, "no /health in %d s", KERNEL_START_S);
			return -1;
		}
		usleep(50 * 1000);
	}
}

static void kernel_stop(struct kproc *k)
{
	if (k->pid <= 0)
		return;
	kill(k->pid, SIGTERM);
	for (int i = 0; i < 100; i++) {
		if (waitpid(k->pid, NULL, WNOHANG) == k->pid) {
			k->pid = 0;
			return;
		}
		usleep(50 * 1000);
	}
	kill(k->pid, SIGKILL);
	waitpid(k->pid, NULL, 0);
	k->pid = 0;
}

/* GET path on the kernel with the staging directory's token: its JSON. */
static json_t *kernel_get(const struct kproc *k, const char *path, int *status)
{
	char headers[160];
	snprintf(headers, sizeof headers, "X-Grace-Internal-Token: %s\r\n", k->token);
	oneshot_buf ob = { malloc(ANSWER_MAX), 0, ANSWER_MAX };
	oneshot_answer a;
	json_t *j = NULL;
	*status = 0;
	if (ob.b && oneshot_request(k->port, "GET", path, headers, NULL, 0, 60, oneshot_to_buf, &ob,
				    &a) == 0) {
		*status = a.status;
		j = json_loadb(ob.b, ob.len, 0, NULL);
	}
	free(ob.b);
	return j;
}

/* The restored log against the manifest's signed tree head. */
static int check_log(struct restore *r, const struct kproc *k)
{
	int st;
	char detail[512];
	json_t *v = kernel_get(k, "/verify", &st);
	bool ok = st == 200 && json_is_true(json_object_get(v, "ok"));
	snprintf(detail, sizeof detail, "%s",
		 ok ? "every entry rehashed, every stored tree head checked"
		    : json_string_value(json_object_get(v, "reason"))
			      ? json_string_value(json_object_get(v, "reason"))
			      : "GET /verify failed");
	json_decref(v);
	json_decref(check(r, "immutable_log verify", ok, detail));
	if (!ok)
		return CLI_BACKUP_FAILED;
	json_t *head = json_object_get(r->manifest, "immutable_log");
	if (!json_is_object(head)) {
		json_decref(check(r, "immutable_log tree head", true,
				  "the backup holds no signed tree head (no log was configured)"));
		return 0;
	}
	json_int_t size = json_integer_value(json_object_get(head, "tree_size"));
	const char *root = json_string_value(json_object_get(head, "root_hash"));
	const char *key_id = json_string_value(json_object_get(head, "key_id"));
	json_t *key = kernel_get(k, "/key", &st);
	const char *kid = json_string_value(json_object_get(key, "key_id"));
	char path[96];
	snprintf(path, sizeof path, "/proof/consistency?first=%lld", (long long)size);
	json_t *proof = size > 0 ? kernel_get(k, path, &st) : NULL;
	const char *first = json_string_value(json_object_get(proof, "first_root_hash"));
	if (size == 0)
		ok = kid && key_id && !strcmp(kid, key_id);
	else
		ok = kid && key_id && !strcmp(kid, key_id) && first && root && !strcmp(first, root);
	snprintf(detail, sizeof detail,
		 ok ? "the restored log's root at size %lld is the manifest's, under key %.16s…"
		    : "the restored log does not hold the manifest's tree (size %lld, key %.16s…)",
		 (long long)size, key_id ? key_id : "?");
	json_decref(key);
	json_decref(proof);
	json_decref(check(r, "immutable_log tree head", ok, detail));
	return ok ? 0 : CLI_BACKUP_FAILED;
}

/* Step 3: each kernel with a store in the archive started on it. */
static int kernels(struct restore *r, const char *staging)
{
	struct kproc k = { 0 };
	unsigned char raw[32];
	randombytes_buf(raw, sizeof raw);
	sodium_bin2hex(k.token, sizeof k.token, raw, sizeof raw);
	char tpath[PATH_MAX];
	if (snprintf(tpath, sizeof tpath, "%s/internal.token", staging) >= (int)sizeof tpath)
		return refuse("a path too long in %s%s", staging, "");
	int fd = open(tpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, k.token, 64) != 64) {
		if (fd >= 0)
			close(fd);
		return refuse("cannot write %s: %s", tpath, strerror(errno));
	}
	close(fd);
	/* The built-in kernels, each checked alone: nothing here issues SVIDs,
	 * and the checks come with the token only (no caller, no SVID). */
	static const char check_ini[] = "; grace restore's check (removed after it)\n"
					"[trust]\nrequire_svid = false\n";
	char cpath[PATH_MAX];
	if (snprintf(cpath, sizeof cpath, "%s/restore-check.ini", staging) >= (int)sizeof cpath) {
		unlink(tpath);
		return refuse("a path too long in %s%s", staging, "");
	}
	fd = open(cpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, check_ini, sizeof check_ini - 1) != (ssize_t)(sizeof check_ini - 1)) {
		if (fd >= 0)
			close(fd);
		unlink(tpath);
		unlink(cpath);
		return refuse("cannot write %s: %s", cpath, strerror(errno));
	}
	close(fd);
	json_t *skipped = json_object_get(r->manifest, "skipped");
	int rc = 0;
	for (size_t i = 0; i < r->n && !rc; i++) {
		const char *base = r->files[i].name + 5;
		char kname[NAME_MAX + 1];
		snprintf(kname, sizeof kname, "%s", base);
		char *dot = strstr(kname, ".db");
		if (strcmp(r->files[i].kind, "sqlite") || !dot || dot[3])
			continue;
		*dot = '\0';
		const sdk_kernel_def *def = kernel_registry_find(kname);
		if (!def || !def->n_routes)
			continue; /* the main process's own stores, or a placeholder */
		char what[NAME_MAX + 32], why[512];
		snprintf(what, sizeof what, "kernel %s starts on it", kname);
		/* A kernel whose secret was left out would make a new one. */
		json_t *s;
		size_t j;
		bool secretless = false;
		json_array_foreach(skipped, j, s) {
			const char *n = json_string_value(json_object_get(s, "name"));
			size_t kl = strlen(kname);
			if (n && !strncmp(n, kname, kl) && n[kl] == '.' && strcmp(n + kl, ".db"))
				secretless = true;
		}
		if (secretless) {
			json_decref(check(r, what, true,
					  "not started: its secret is not in this backup "
					  "(--no-secrets); put the key file back before it runs"));
			continue;
		}
		if (kernel_start(staging, cpath, def, &k, why, sizeof why) < 0) {
			json_decref(check(r, what, false, why));
			rc = CLI_BACKUP_FAILED;
		} else {
			json_decref(check(r, what, true, "/health answered 200"));
			if (!strcmp(kname, "immutable_log"))
				rc = check_log(r, &k);
		}
		kernel_stop(&k);
	}
	unlink(tpath);
	unlink(cpath);
	return rc;
}

static bool dir_empty(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return true;
	struct dirent *de;
	bool empty = true;
	while (empty && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			empty = false;
	closedir(d);
	return empty;
}

static void usage(void)
{
	fprintf(stderr, "usage: grace restore FILE --data-dir DIR [--force] [--passphrase-file F |"
			" --key-file F] [--config-out FILE] [--config FILE] [--no-postgresql]"
			" [--no-jetstream] [--json]\n"
			"  restores a backup into an empty data directory (Grace not running on it),"
			" its PostgreSQL dump, if any, into the database --config's [store]"
			" names, and the bus's JetStream stream, if any, into the JetStream its"
			" [message_bus] names; see docs/backup.md\n");
}

int cli_restore_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "data-dir", required_argument, NULL, 'd' },
		{ "force", no_argument, NULL, 'f' },
		{ "passphrase-file", required_argument, NULL, 'P' },
		{ "key-file", required_argument, NULL, 'k' },
		{ "config-out", required_argument, NULL, 'o' },
		{ "json", no_argument, NULL, 'j' },
		{ "config", required_argument, NULL, 'c' },
		{ "no-postgresql", no_argument, NULL, 'n' },
		{ "no-jetstream", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ 0, 0, 0, 0 },
	};
	const char *dir = NULL, *pass_file = NULL, *key_file = NULL, *config_out = NULL;
	const char *config = NULL;
	bool force = false, as_json = false, no_pg = false, no_js = false;
	int o;
	optind = 2;
	while ((o = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (o) {
		case 'd': dir = optarg; break;
		case 'f': force = true; break;
		case 'P': pass_file = optarg; break;
		case 'k': key_file = optarg; break;
		case 'o': config_out = optarg; break;
		case 'j': as_json = true; break;
		case 'c': config = optarg; break;
		case 'n': no_pg = true; break;
		case 'J': no_js = true; break;
		case 'h': usage(); return 0;
		default: usage(); return CLI_BACKUP_USAGE;
		}
	}
	/* --config names the PostgreSQL and the JetStream to restore into:
	 * meaningless when neither is. */
	if (optind != argc - 1 || !dir || (pass_file && key_file) || (config && no_pg && no_js)) {
		usage();
		return CLI_BACKUP_USAGE;
	}
	if (sodium_init() < 0)
		return refuse("cannot start libsodium%s%s", "", "");
	static struct restore r;
	sdk_err err;
	r.file = argv[optind];
	r.A = archive_dl_load(&err);
	if (!r.A)
		return refuse("%s%s", err.msg, "");
	r.report = json_pack("{s:s, s:[]}", "archive", r.file, "checks");
	/* Refuse a non-empty target before reading anything. */
	if (!force && !dir_empty(dir))
		return refuse("%s is not empty; --force moves it aside and restores%s", dir, "");
	int rc = verify_archive(&r, pass_file, key_file);
	if (rc)
		return rc;
	json_decref(check(&r, "archive", true,
			  "every file's size and SHA-256 match the manifest; nothing unlisted"));
	rc = schemas(&r);
	if (rc)
		return rc;
	static restore_pg pg;
	pg = (restore_pg){ .skip = no_pg, .force = force, .config = config, .check = check_cb,
			   .ctx = &r };
	bool dump_listed = false;
	for (size_t i = 0; i < r.n; i++)
		if (!strcmp(r.files[i].kind, BK_PG_KIND) && !strcmp(r.files[i].name, BK_PG_DUMP_NAME))
			dump_listed = true;
	if (restore_pg_prepare(&pg, r.manifest, dump_listed) < 0) {
		restore_pg_free(&pg);
		return CLI_BACKUP_FAILED;
	}
	static restore_js js;
	js = (restore_js){ .skip = no_js, .force = force, .config = config, .check = check_cb,
			   .ctx = &r };
	const char *js_listed = NULL;
	for (size_t i = 0; i < r.n; i++)
		if (!strcmp(r.files[i].kind, BK_JS_KIND)) {
			if (js_listed) {
				restore_pg_free(&pg);
				return refuse("%s: the manifest lists two JetStream snapshots%s", r.file,
					      "");
			}
			js_listed = r.files[i].name;
		}
	if (restore_js_prepare(&js, r.manifest, js_listed) < 0) {
		restore_pg_free(&pg);
		restore_js_free(&js);
		return CLI_BACKUP_FAILED;
	}
	char parent[PATH_MAX], base[NAME_MAX + 1], staging[PATH_MAX];
	snprintf(parent, sizeof parent, "%s", dir);
	snprintf(base, sizeof base, "%s", basename(parent));
	snprintf(parent, sizeof parent, "%s", dir);
	char *pd = dirname(parent);
	if (snprintf(staging, sizeof staging, "%s/.%s.restore-%ld", pd, base, (long)getpid()) >=
		    (int)sizeof staging ||
	    mkdir(staging, 0700) < 0) {
		restore_pg_free(&pg);
		restore_js_free(&js);
		return refuse("cannot create the staging directory %s: %s", staging, strerror(errno));
	}
	rc = extract(&r, staging, config_out, force);
	if (!rc)
		rc = integrity(&r, staging);
	if (!rc)
		rc = kernels(&r, staging);
	char dump[PATH_MAX + sizeof STAGED_PG + 1];
	snprintf(dump, sizeof dump, "%s/%s", staging, STAGED_PG);
	if (!rc && restore_pg_load(&pg, dump) < 0)
		rc = CLI_BACKUP_FAILED;
	restore_pg_free(&pg);
	unlink(dump); /* in the database now (or only proven): not a data file */
	char snap[PATH_MAX + sizeof STAGED_JS + 1];
	snprintf(snap, sizeof snap, "%s/%s", staging, STAGED_JS);
	if (!rc && restore_js_load(&js, snap) < 0)
		rc = CLI_BACKUP_FAILED;
	unlink(snap); /* in JetStream now (or only proven): not a data file */
	json_t *js_report = json_incref(js.report);
	restore_js_free(&js);
	if (rc) {
		json_decref(js_report);
		bk_remove_dir(staging);
		return rc;
	}
	/* Step 4: into place. */
	char aside[PATH_MAX] = "";
	struct stat sb;
	if (stat(dir, &sb) == 0) {
		if (dir_empty(dir)) {
			rmdir(dir);
		} else {
			snprintf(aside, sizeof aside, "%s.replaced-%ld", dir, (long)time(NULL));
			if (rename(dir, aside) < 0) {
				bk_remove_dir(staging);
				return refuse("cannot move %s aside: %s", dir, strerror(errno));
			}
		}
	}
	if (rename(staging, dir) < 0) {
		bk_remove_dir(staging);
		return refuse("cannot move the restored files to %s: %s", dir, strerror(errno));
	}
	json_object_set_new(r.report, "data_dir", json_string(dir));
	json_object_set_new(r.report, "files", json_integer((json_int_t)r.n));
	json_object_set(r.report, "immutable_log", json_object_get(r.manifest, "immutable_log"));
	json_object_set(r.report, "skipped", json_object_get(r.manifest, "skipped"));
	if (json_object_get(r.manifest, "postgresql"))
		json_object_set(r.report, "postgresql", json_object_get(r.manifest, "postgresql"));
	/* What the restored stream holds; with --no-jetstream, what the
	 * archive says it holds. */
	if (js_report)
		json_object_set_new(r.report, "jetstream", js_report);
	else if (json_object_get(r.manifest, "jetstream"))
		json_object_set_new(r.report, "jetstream",
				    json_pack("{s:O, s:O, s:b}", "stream",
					      json_object_get(json_object_get(r.manifest, "jetstream"),
							      "stream"),
					      "state",
					      json_object_get(json_object_get(r.manifest, "jetstream"),
							      "state"),
					      "restored", 0));
	if (aside[0])
		json_object_set_new(r.report, "replaced_moved_to", json_string(aside));
	if (as_json) {
		char *s = json_dumps(r.report, JSON_INDENT(2));
		if (s)
			puts(s);
		free(s);
	} else {
		printf("restored %zu files from %s into %s\n", r.n, r.file, dir);
		json_t *c;
		size_t i;
		json_array_foreach(json_object_get(r.report, "checks"), i, c)
			printf("  ok  %s: %s\n", json_string_value(json_object_get(c, "check")),
			       json_string_value(json_object_get(c, "detail")));
		if (aside[0])
			printf("the previous %s is now %s\n", dir, aside);
	}
	if (r.keyed)
		bk_keys_wipe(&r.keys);
	return 0;
}
