/* Ingesting files into the librarian's store: the walk, one file's
 * ingest, the one-shot ingest, and the jobs (ingest.h). */
#include "kernels/librarian/ingest.h"
#include "kernels/librarian/index.h"

#include "sdk/clock.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LIB_SOURCE_MAX PATH_MAX
/* Bounds both the recursion and the number of directory fds held open. */
#define LIB_INGEST_DEPTH_MAX 64

static const char lib_tags_md[] = "[\"ingested\",\"md\"]";
static const char lib_tags_txt[] = "[\"ingested\",\"txt\"]";

static int lib_oom(lib_err *err)
{
	return sdk_fail(err, SDK_EIO, "out of memory");
}

/* ------------------------------------------------------------------ */
/* The walk */

/* The '/' boundary keeps /lib2 from counting as inside /lib. A root that
 * itself ends in '/' can only be "/", which contains everything. */
static bool lib_path_within(const char *root, const char *path)
{
	size_t n = strlen(root);

	if (strncmp(root, path, n) != 0)
		return false;
	return path[n] == '\0' || path[n] == '/' || (n && root[n - 1] == '/');
}

/* Returns "md", "txt" or NULL; the kind doubles as the second tag. */
static const char *lib_ingest_kind(const char *name)
{
	const char *dot = strrchr(name, '.');

	if (!dot)
		return NULL;
	if (strcasecmp(dot, ".md") == 0)
		return "md";
	if (strcasecmp(dot, ".txt") == 0)
		return "txt";
	return NULL;
}

void lib_files_free(lib_files *f)
{
	for (size_t i = 0; i < f->n; i++)
		free(f->v[i].path);
	free(f->v);
	*f = (lib_files){ 0 };
}

struct lib_walk {
	lib_files *out;
	size_t max_files;
	int64_t max_bytes;
	lib_err *err;
};

/* Takes ownership of `path`. */
static int lib_walk_add(struct lib_walk *w, char *path, int64_t size)
{
	lib_files *f = w->out;
	const char *skip = NULL;

	if (w->max_files && f->n >= w->max_files) {
		free(path);
		return sdk_fail(w->err, SDK_ETOOLARGE,
				"more than %zu files in one ingest; ingest a smaller"
				" directory", w->max_files);
	}
	if (strlen(path) > LIB_SOURCE_MAX ||
	    !lib_utf8_valid((const unsigned char *)path, strlen(path)))
		skip = "its name is not UTF-8 or too long";
	else if (size > (int64_t)LIB_INGEST_FILE_MAX)
		skip = "larger than the 4 MiB a file may have";
	else if (size == 0)
		skip = "empty";
	if (!skip && w->max_bytes && f->bytes + size > w->max_bytes) {
		free(path);
		return sdk_fail(w->err, SDK_ETOOLARGE,
				"more than %" PRId64 " bytes in one ingest; ingest"
				" a smaller directory", w->max_bytes);
	}
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 64;
		lib_file *more = realloc(f->v, cap * sizeof *more);
		if (!more) {
			free(path);
			return lib_oom(w->err);
		}
		f->v = more;
		f->cap = cap;
	}
	f->v[f->n++] = (lib_file){ .path = path, .size = size, .skip = skip };
	if (!skip)
		f->bytes += size;
	return SDK_OK;
}

static char *lib_path_join(const char *dir, const char *name)
{
	size_t n = strlen(dir);
	char *p;

	if (asprintf(&p, "%s%s%s", dir, n && dir[n - 1] == '/' ? "" : "/",
		     name) < 0)
		return NULL;
	return p;
}

static int lib_walk_dir(struct lib_walk *w, int dfd, const char *dir, int depth);

static int lib_walk_entry(struct lib_walk *w, int dfd, const char *dir,
			  const char *name, int depth)
{
	struct stat st;
	char *path;
	int fd, rc;

	/* Never followed: a symlink could lead outside the root. */
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return SDK_OK;
	if (S_ISREG(st.st_mode) && !lib_ingest_kind(name))
		return SDK_OK;
	if (!S_ISREG(st.st_mode) && (!S_ISDIR(st.st_mode) || depth >= LIB_INGEST_DEPTH_MAX))
		return SDK_OK;
	path = lib_path_join(dir, name);
	if (!path)
		return lib_oom(w->err);
	if (S_ISREG(st.st_mode))
		return lib_walk_add(w, path, (int64_t)st.st_size);
	/* Unreadable, or replaced by a symlink since the stat: not ours. */
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	rc = fd < 0 ? SDK_OK : lib_walk_dir(w, fd, path, depth + 1);
	if (fd >= 0)
		close(fd);
	free(path);
	return rc;
}

static int lib_dirent_filter(const struct dirent *e)
{
	return strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
}

/* Sorted so ingest order, and thus ids and the report, are reproducible. */
static int lib_walk_dir(struct lib_walk *w, int dfd, const char *dir, int depth)
{
	struct dirent **names;
	int n, i, rc = SDK_OK;

	n = scandirat(dfd, ".", &names, lib_dirent_filter, alphasort);
	if (n < 0)
		return depth ? SDK_OK :
		       sdk_fail(w->err, SDK_EIO, "cannot read directory: %s",
				strerror(errno));
	for (i = 0; i < n; i++) {
		if (!rc)
			rc = lib_walk_entry(w, dfd, dir, names[i]->d_name, depth);
		free(names[i]);
	}
	free(names);
	return rc;
}

int lib_ingest_walk(const char *rpath, size_t max_files, int64_t max_bytes, lib_files *out,
		    lib_err *err)
{
	struct lib_walk w = { .out = out, .max_files = max_files, .max_bytes = max_bytes,
			      .err = err };
	struct stat st;
	char *copy;
	int fd, rc;

	*out = (lib_files){ 0 };
	/* `rpath` is resolved, so it names no symlink itself. */
	if (lstat(rpath, &st) != 0)
		return sdk_fail(err, SDK_EIO, "cannot stat path: %s", strerror(errno));
	if (S_ISREG(st.st_mode)) {
		if (!lib_ingest_kind(rpath))
			return SDK_OK;
		copy = strdup(rpath);
		return copy ? lib_walk_add(&w, copy, (int64_t)st.st_size) : lib_oom(err);
	}
	if (!S_ISDIR(st.st_mode))
		return sdk_fail(err, SDK_EINVAL, "path is not a file or directory");
	fd = open(rpath, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return sdk_fail(err, SDK_EIO, "cannot open directory: %s", strerror(errno));
	rc = lib_walk_dir(&w, fd, rpath, 0);
	close(fd);
	if (rc)
		lib_files_free(out);
	return rc;
}

/* A path that does not resolve gets the same answer as one outside the
 * root: telling them apart would let a client probe which files exist
 * anywhere on the host. */
int lib_ingest_resolve(const char *root, const char *path, char **rpath, lib_err *err)
{
	char *rroot = realpath(root, NULL);
	int rc = SDK_OK;

	*rpath = NULL;
	if (!rroot)
		return sdk_fail(err, SDK_EIO, "cannot resolve library root: %s",
				strerror(errno));
	*rpath = realpath(path, NULL);
	if (!*rpath && errno == ENOMEM)
		rc = lib_oom(err);
	else if (!*rpath || !lib_path_within(rroot, *rpath))
		rc = sdk_fail(err, SDK_EDENIED,
			      "path does not resolve inside the library root");
	if (rc) {
		free(*rpath);
		*rpath = NULL;
	}
	free(rroot);
	return rc;
}

/* ------------------------------------------------------------------ */
/* One file */

static bool lib_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* Cuts at a character boundary so a truncated title stays valid UTF-8. */
static char *lib_strndup_utf8(const char *s, size_t n, size_t max)
{
	if (n > max) {
		n = max;
		while (n && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	return strndup(s, n);
}

/* First line with visible text, markdown heading marks removed; the file
 * name when the file has no such line. */
static char *lib_ingest_title(const char *body, size_t len, bool md,
			      const char *name)
{
	const char *p = body, *end = body + len, *eol, *s, *e;

	/* Editors on some systems start UTF-8 files with a BOM. */
	if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0)
		p += 3;
	while (p < end) {
		eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			eol = end;
		s = p;
		e = eol;
		while (s < e && (lib_space(*s) || (md && *s == '#')))
			s++;
		while (e > s && lib_space(e[-1]))
			e--;
		if (e > s)
			return lib_strndup_utf8(s, (size_t)(e - s), LIB_TITLE_MAX);
		p = eol + 1;
	}
	return strdup(name);
}

/* Reads one byte beyond the size fstat reported, so a file that grew past
 * the limit while we looked is caught instead of silently truncated. */
static char *lib_read_fd(int fd, const struct stat *st, size_t *len_out)
{
	size_t cap = (size_t)st->st_size + 1, len = 0;
	char *buf = malloc(cap + 1);
	ssize_t n = 0;

	if (!buf)
		return NULL;
	while (len < cap) {
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	if (n < 0 || len > (size_t)st->st_size) {
		free(buf);
		return NULL;
	}
	buf[len] = '\0';
	*len_out = len;
	return buf;
}

/* Opens a walked file through no symlink at all: one put into its path
 * since the walk (a directory swapped for a link, say) fails with ELOOP,
 * so nothing outside the root is ever read. openat2 (Linux 5.6) says so
 * for every component; without it, O_NOFOLLOW guards the last one and the
 * path must still resolve to itself. O_NONBLOCK: a FIFO swapped in after
 * the walk must not hang us. */
static int lib_open_nofollow(const char *path)
{
	struct open_how how = { .flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
				.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
	long fd = syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof how);
	char *real;

	if (fd >= 0 || errno != ENOSYS)
		return (int)fd;
	real = realpath(path, NULL);
	if (!real || strcmp(real, path) != 0) {
		free(real);
		errno = ELOOP;
		return -1;
	}
	free(real);
	return open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
}

enum lib_outcome { LIB_INGESTED, LIB_SKIPPED, LIB_FAILED };

/* Reads and checks one walked file; NULL and *why when it cannot be taken. */
static char *lib_file_read(const char *path, size_t *len, const char **why)
{
	struct stat st;
	char *body = NULL;
	int fd = lib_open_nofollow(path);

	if (fd < 0) {
		*why = errno == ELOOP ? "a symlink appeared on its path" : "cannot be opened";
		return NULL;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		*why = "no longer a regular file";
	else if (st.st_size > (off_t)LIB_INGEST_FILE_MAX)
		*why = "larger than the 4 MiB a file may have";
	else if (!(body = lib_read_fd(fd, &st, len)))
		*why = "cannot be read (or grew while read)";
	close(fd);
	if (body && *len == 0)
		*why = "empty";
	else if (body && !lib_utf8_valid((const unsigned char *)body, *len))
		*why = "not UTF-8 text";
	else
		return body;
	free(body);
	return NULL;
}

/* Ingests one walked file inside the caller's transaction, for `who`
 * (whose name becomes the owner of a new document). Returns the outcome,
 * with the document id, or for LIB_SKIPPED and LIB_FAILED the reason in
 * `why`; a negative status, with the reason in `err`, only when the
 * database fails (the caller then rolls back). */
static int lib_file_ingest(sqlite3 *db, lib_ix *ix, const lib_actor *who, const lib_quota *quota,
			   const char *path, int64_t *doc_id, sdk_err *why, lib_err *err)
{
	const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	const char *kind = lib_ingest_kind(name), *skip = NULL;
	char *owner = NULL, *title = NULL, *body;
	int64_t old_size = 0;
	size_t len = 0;
	int rc, found;

	body = kind ? lib_file_read(path, &len, &skip) : NULL;
	if (!body) {
		sdk_fail(why, SDK_EINVAL, "%s", skip ? skip : "not a .md or .txt file");
		return LIB_SKIPPED;
	}
	found = lib_source_owner(db, path, NULL, &owner, &old_size, err);
	if (found < 0) {
		free(body);
		return found;
	}
	/* Updating a document is changing it (lib_may_change). */
	const char *denied = found ? lib_may_change(who, owner) : NULL;
	if (denied) {
		sdk_fail(why, SDK_EDENIED, "%s", denied);
		rc = LIB_FAILED;
		goto out;
	}
	int64_t size = (int64_t)len;
	if (!(title = lib_ingest_title(body, len, !strcmp(kind, "md"), name))) {
		rc = lib_oom(err);
		goto out;
	}
	size += (int64_t)strlen(title);
	/* A quota counts what the owner gains: a new document, or the growth. */
	if (!found || (owner && who->name && !strcmp(owner, who->name))) {
		rc = lib_quota_check(db, found ? owner : who->name, quota, found ? 0 : 1,
				     found ? size - old_size : size, err);
		if (rc == SDK_EQUOTA) {
			sdk_fail(why, SDK_EQUOTA, "%s", err ? err->msg : "quota exceeded");
			rc = LIB_FAILED;
			goto out;
		}
		if (rc)
			goto out;
	}
	rc = lib_doc_upsert(db, ix, found ? owner : who->name, title, body,
			    !strcmp(kind, "md") ? lib_tags_md : lib_tags_txt, path, size, doc_id,
			    err);
	if (rc == SDK_EINVAL) { /* a constraint: this file's fault, not the database's */
		sdk_fail(why, SDK_EINVAL, "%s", err ? err->msg : "rejected");
		rc = LIB_FAILED;
	} else if (!rc) {
		rc = LIB_INGESTED;
	}
out:
	free(title);
	free(owner);
	free(body);
	return rc;
}

/* ------------------------------------------------------------------ */
/* All at once */

static int lib_note(json_t *docs, int64_t id, const char *source)
{
	json_t *doc = json_pack("{s:I, s:s}", "id", (json_int_t)id, "source", source);

	return doc && !json_array_append_new(docs, doc) ? 0 : -1;
}

int lib_ingest(sqlite3 *db, const char *root, const char *path, json_t **out, lib_err *err)
{
	static const lib_actor system = { .name = NULL, .admin = true };
	lib_files files = { 0 };
	json_int_t ingested = 0, skipped = 0;
	json_t *docs = NULL;
	char *rpath = NULL;
	sdk_err why;
	bool nested;
	int rc;

	if (!db || !root || !path || !out)
		return sdk_fail(err, SDK_EINVAL, "missing argument");
	*out = NULL;
	rc = lib_ingest_resolve(root, path, &rpath, err);
	if (!rc)
		rc = lib_ingest_walk(rpath, 0, 0, &files, err);
	free(rpath);
	if (rc)
		return rc;
	docs = json_array();
	rc = docs ? lib_tx_begin(db, &nested, err) : lib_oom(err);
	if (rc) {
		json_decref(docs);
		lib_files_free(&files);
		return rc;
	}
	/* One index for the whole ingest, flushed once before the commit. */
	lib_ix *ix = NULL;
	rc = lib_ix_open(db, &ix, err);
	for (size_t i = 0; !rc && i < files.n; i++) {
		int64_t id = 0;
		int o = files.v[i].skip ? LIB_SKIPPED
					: lib_file_ingest(db, ix, &system, NULL, files.v[i].path, &id,
							  &why, err);
		if (o < 0) {
			rc = o;
		} else if (o == LIB_INGESTED) {
			ingested++;
			if (lib_note(docs, id, files.v[i].path) < 0)
				rc = lib_oom(err);
		} else if (o == LIB_FAILED) {
			/* One transaction, all or nothing: the old behaviour of a
			 * rejected document. */
			rc = sdk_fail(err, SDK_EINVAL, "%s: %s", files.v[i].path, why.msg);
		} else {
			skipped++;
		}
	}
	if (!rc)
		rc = lib_ix_flush(ix, err);
	lib_ix_close(ix);
	/* The report is built before the commit so that running out of memory
	 * for it cannot leave an ingest committed but reported as failed. */
	if (!rc && !(*out = json_pack("{s:I, s:I, s:O}", "ingested", ingested, "skipped",
				      skipped, "documents", docs)))
		rc = lib_oom(err);
	if (!rc)
		rc = lib_tx_commit(db, nested, err);
	else
		lib_tx_rollback(db, nested);
	if (rc) {
		json_decref(*out);
		*out = NULL;
	}
	json_decref(docs);
	lib_files_free(&files);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Jobs */

static int lib_step_done(sqlite3 *db, sqlite3_stmt *st, lib_err *err, const char *what)
{
	int rc = sqlite3_step(st) == SQLITE_DONE ? SDK_OK : lib_fail_sql(db, err, what);

	sqlite3_finalize(st);
	return rc;
}

static int lib_prep(sqlite3 *db, const char *sql, sqlite3_stmt **st, lib_err *err)
{
	if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK)
		return lib_fail_sql(db, err, "prepare");
	return SDK_OK;
}

int lib_job_create(sqlite3 *db, const lib_actor *who, const char *rpath, int64_t now_ms,
		   int64_t *id, lib_err *err)
{
	sqlite3_stmt *st;
	bool nested;
	int rc = lib_tx_begin(db, &nested, err);

	if (rc)
		return rc;
	/* Finished ingests beyond the newest LIB_JOBS_KEPT are forgotten. */
	rc = lib_prep(db, "DELETE FROM ingest_jobs WHERE state IN ('done', 'failed', 'cancelled')"
		      " AND id <= (SELECT id FROM ingest_jobs ORDER BY id DESC LIMIT 1 OFFSET ?1)",
		      &st, err);
	if (!rc) {
		sqlite3_bind_int(st, 1, LIB_JOBS_KEPT);
		rc = lib_step_done(db, st, err, "forget ingests");
	}
	if (!rc)
		rc = lib_prep(db, "INSERT INTO ingest_jobs (owner, admin, path, state, created_ms,"
			      " updated_ms) VALUES (?1, ?2, ?3, 'scanning', ?4, ?4)", &st, err);
	if (!rc) {
		sqlite3_bind_text(st, 1, who->name, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, who->admin);
		sqlite3_bind_text(st, 3, rpath, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, now_ms);
		rc = lib_step_done(db, st, err, "create ingest");
	}
	if (!rc) {
		*id = sqlite3_last_insert_rowid(db);
		rc = lib_tx_commit(db, nested, err);
	} else {
		lib_tx_rollback(db, nested);
	}
	return rc;
}

int lib_job_active(sqlite3 *db, const char *owner, int64_t *n, lib_err *err)
{
	sqlite3_stmt *st;
	int rc = lib_prep(db, "SELECT count(*) FROM ingest_jobs WHERE owner IS ?1"
			  " AND state IN ('scanning', 'running')", &st, err);

	if (rc)
		return rc;
	sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		*n = sqlite3_column_int64(st, 0);
	else
		rc = lib_fail_sql(db, err, "count ingests");
	sqlite3_finalize(st);
	return rc;
}

int lib_job_state(sqlite3 *db, int64_t id, char *state, size_t len, lib_err *err)
{
	sqlite3_stmt *st;
	int rc = lib_prep(db, "SELECT state FROM ingest_jobs WHERE id = ?1", &st, err);

	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW)
		snprintf(state, len, "%s", (const char *)sqlite3_column_text(st, 0));
	else if (step == SQLITE_DONE)
		rc = sdk_fail(err, SDK_ENOTFOUND, "no ingest %" PRId64, id);
	else
		rc = lib_fail_sql(db, err, "read ingest");
	sqlite3_finalize(st);
	return rc;
}

/* The owner and the admin flag of job `id`. */
static int lib_job_actor(sqlite3 *db, int64_t id, char *owner, size_t len, bool *has_owner,
			 bool *admin, char *state, size_t slen, lib_err *err)
{
	sqlite3_stmt *st;
	int rc = lib_prep(db, "SELECT owner, admin, state FROM ingest_jobs WHERE id = ?1", &st,
			  err);

	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		const char *o = (const char *)sqlite3_column_text(st, 0);
		*has_owner = o != NULL;
		snprintf(owner, len, "%s", o ? o : "");
		*admin = sqlite3_column_int(st, 1) != 0;
		snprintf(state, slen, "%s", (const char *)sqlite3_column_text(st, 2));
	} else {
		rc = step == SQLITE_DONE ? sdk_fail(err, SDK_ENOTFOUND, "no ingest %" PRId64, id)
					 : lib_fail_sql(db, err, "read ingest");
	}
	sqlite3_finalize(st);
	return rc;
}

int lib_job_info(sqlite3 *db, int64_t id, char **path, char *owner, size_t len,
		 bool *has_owner, bool *admin, char *state, size_t slen, lib_err *err)
{
	sqlite3_stmt *st;
	int rc = lib_job_actor(db, id, owner, len, has_owner, admin, state, slen, err);

	*path = NULL;
	if (!rc)
		rc = lib_prep(db, "SELECT path FROM ingest_jobs WHERE id = ?1", &st, err);
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) != SQLITE_ROW)
		rc = lib_fail_sql(db, err, "read ingest");
	else if (!(*path = strdup((const char *)sqlite3_column_text(st, 0))))
		rc = lib_oom(err);
	sqlite3_finalize(st);
	return rc;
}

/* What the files of job `id` still to be read would add to its owner. */
static int lib_job_growth(sqlite3 *db, int64_t id, const char *owner, int64_t *docs,
			  int64_t *bytes, lib_err *err)
{
	sqlite3_stmt *st;
	int rc = lib_prep(db,
			  "SELECT count(*) FILTER (WHERE d.id IS NULL),"
			  " coalesce(sum(CASE WHEN d.id IS NULL THEN f.size"
			  "   WHEN d.owner = ?2 THEN f.size - d.size ELSE 0 END), 0)"
			  " FROM ingest_files f LEFT JOIN documents d ON d.source = f.path"
			  " WHERE f.job_id = ?1 AND f.state = 'pending'",
			  &st, err);

	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		*docs = sqlite3_column_int64(st, 0);
		*bytes = sqlite3_column_int64(st, 1);
	} else {
		rc = lib_fail_sql(db, err, "measure ingest");
	}
	sqlite3_finalize(st);
	return rc;
}

int lib_job_scan_store(sqlite3 *db, int64_t id, const lib_files *files, const lib_quota *quota,
		       int64_t now_ms, lib_err *err)
{
	char owner[LIB_OWNER_MAX + 1], state[16];
	bool has_owner = false, admin = false, nested;
	int64_t skipped = 0, docs = 0, bytes = 0;
	sqlite3_stmt *st = NULL;
	int rc = lib_tx_begin(db, &nested, err);

	if (rc)
		return rc;
	rc = lib_job_actor(db, id, owner, sizeof owner, &has_owner, &admin, state, sizeof state,
			   err);
	if (rc || strcmp(state, "scanning"))
		goto out; /* cancelled meanwhile: stays so */
	/* A scan interrupted by a restart may have listed some already. */
	rc = lib_prep(db, "DELETE FROM ingest_files WHERE job_id = ?1", &st, err);
	if (!rc) {
		sqlite3_bind_int64(st, 1, id);
		rc = lib_step_done(db, st, err, "clear ingest files");
	}
	if (!rc)
		rc = lib_prep(db, "INSERT INTO ingest_files (job_id, seq, path, size, state, reason)"
			      " VALUES (?1, ?2, ?3, ?4, ?5, ?6)", &st, err);
	for (size_t i = 0; !rc && i < files->n; i++) {
		const lib_file *f = &files->v[i];
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_int64(st, 2, (int64_t)i);
		sqlite3_bind_text(st, 3, f->path, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, f->size);
		sqlite3_bind_text(st, 5, f->skip ? "skipped" : "pending", -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 6, f->skip, -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = lib_fail_sql(db, err, "list ingest files");
		sqlite3_reset(st);
		skipped += f->skip != NULL;
	}
	sqlite3_finalize(st);
	st = NULL;
	/* Refused whole when it cannot fit: nothing of it is stored. */
	if (!rc && has_owner)
		rc = lib_job_growth(db, id, owner, &docs, &bytes, err);
	if (!rc && has_owner)
		rc = lib_quota_check(db, owner, quota, docs, bytes, err);
	if (!rc)
		rc = lib_prep(db, "UPDATE ingest_jobs SET state = 'running', files_total = ?2,"
			      " bytes_total = ?3, files_done = ?4, skipped = ?4, updated_ms = ?5"
			      " WHERE id = ?1", &st, err);
	if (!rc) {
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_int64(st, 2, (int64_t)files->n);
		sqlite3_bind_int64(st, 3, files->bytes);
		sqlite3_bind_int64(st, 4, skipped);
		sqlite3_bind_int64(st, 5, now_ms);
		rc = lib_step_done(db, st, err, "start ingest");
	}
out:
	if (!rc)
		rc = lib_tx_commit(db, nested, err);
	else
		lib_tx_rollback(db, nested);
	return rc;
}

struct lib_chunk_file {
	int64_t seq, size;
	char *path;
};

/* The next pending files of job `id`, at most `max_files` and `max_bytes`
 * (but at least one). */
static int lib_chunk_pick(sqlite3 *db, int64_t id, unsigned max_files, int64_t max_bytes,
			  struct lib_chunk_file *v, size_t *n, lib_err *err)
{
	sqlite3_stmt *st;
	int64_t bytes = 0;
	int rc = lib_prep(db, "SELECT seq, size, path FROM ingest_files"
			  " WHERE job_id = ?1 AND state = 'pending' ORDER BY seq LIMIT ?2", &st, err);

	*n = 0;
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, max_files);
	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW && (*n == 0 || bytes < max_bytes)) {
		struct lib_chunk_file *f = &v[*n];
		f->seq = sqlite3_column_int64(st, 0);
		f->size = sqlite3_column_int64(st, 1);
		if (!(f->path = strdup((const char *)sqlite3_column_text(st, 2)))) {
			rc = lib_oom(err);
			break;
		}
		bytes += f->size;
		(*n)++;
	}
	if (!rc && step != SQLITE_ROW && step != SQLITE_DONE)
		rc = lib_fail_sql(db, err, "read ingest files");
	sqlite3_finalize(st);
	return rc;
}

static const char *const lib_outcome_names[] = { "ingested", "skipped", "failed" };

int lib_job_chunk(sqlite3 *db, int64_t id, unsigned max_files, int64_t max_bytes,
		  const lib_quota *quota, int64_t now_ms, lib_err *err)
{
	char owner[LIB_OWNER_MAX + 1], state[16];
	sdk_err why;
	bool has_owner = false, admin = false, nested;
	struct lib_chunk_file *v = calloc(max_files ? max_files : 1, sizeof *v);
	int64_t count[3] = { 0 }, bytes = 0;
	sqlite3_stmt *up = NULL, *job = NULL;
	lib_ix *ix = NULL;
	size_t n = 0;
	int rc = v ? lib_tx_begin(db, &nested, err) : lib_oom(err);

	if (rc) {
		free(v);
		return rc;
	}
	rc = lib_job_actor(db, id, owner, sizeof owner, &has_owner, &admin, state, sizeof state,
			   err);
	if (rc || strcmp(state, "running"))
		goto out; /* cancelled meanwhile (its owner deleted, say): no more */
	lib_actor who = { .name = has_owner ? owner : NULL, .admin = admin };
	rc = lib_chunk_pick(db, id, max_files ? max_files : 1, max_bytes, v, &n, err);
	/* One index for the chunk, flushed once before its commit. */
	if (!rc)
		rc = lib_ix_open(db, &ix, err);
	if (!rc)
		rc = lib_prep(db, "UPDATE ingest_files SET state = ?3, doc_id = ?4, reason = ?5"
			      " WHERE job_id = ?1 AND seq = ?2", &up, err);
	for (size_t i = 0; !rc && i < n; i++) {
		int64_t doc = 0;
		int o = lib_file_ingest(db, ix, &who, quota, v[i].path, &doc, &why, err);
		if (o < 0) {
			rc = o;
			break;
		}
		count[o]++;
		bytes += v[i].size;
		sqlite3_bind_int64(up, 1, id);
		sqlite3_bind_int64(up, 2, v[i].seq);
		sqlite3_bind_text(up, 3, lib_outcome_names[o], -1, SQLITE_STATIC);
		if (o == LIB_INGESTED)
			sqlite3_bind_int64(up, 4, doc);
		else
			sqlite3_bind_null(up, 4);
		sqlite3_bind_text(up, 5, o == LIB_INGESTED ? NULL : why.msg, -1, SQLITE_TRANSIENT);
		if (sqlite3_step(up) != SQLITE_DONE)
			rc = lib_fail_sql(db, err, "mark ingest file");
		sqlite3_reset(up);
	}
	if (!rc)
		rc = lib_ix_flush(ix, err);
	if (!rc)
		rc = lib_prep(db, "UPDATE ingest_jobs SET files_done = files_done + ?2,"
			      " bytes_done = bytes_done + ?3, ingested = ingested + ?4,"
			      " skipped = skipped + ?5, failed = failed + ?6, updated_ms = ?7,"
			      " state = CASE WHEN EXISTS (SELECT 1 FROM ingest_files"
			      "   WHERE job_id = ?1 AND state = 'pending') THEN state ELSE 'done' END,"
			      " finished_ms = CASE WHEN EXISTS (SELECT 1 FROM ingest_files"
			      "   WHERE job_id = ?1 AND state = 'pending') THEN NULL ELSE ?7 END"
			      " WHERE id = ?1", &job, err);
	if (!rc) {
		sqlite3_bind_int64(job, 1, id);
		sqlite3_bind_int64(job, 2, (int64_t)n);
		sqlite3_bind_int64(job, 3, bytes);
		sqlite3_bind_int64(job, 4, count[LIB_INGESTED]);
		sqlite3_bind_int64(job, 5, count[LIB_SKIPPED]);
		sqlite3_bind_int64(job, 6, count[LIB_FAILED]);
		sqlite3_bind_int64(job, 7, now_ms);
		rc = lib_step_done(db, job, err, "advance ingest");
		job = NULL;
	}
	if (!rc)
		rc = lib_job_state(db, id, state, sizeof state, err);
out:
	lib_ix_close(ix);
	sqlite3_finalize(up);
	sqlite3_finalize(job);
	for (size_t i = 0; i < n; i++)
		free(v[i].path);
	free(v);
	if (rc) {
		lib_tx_rollback(db, nested);
		return rc;
	}
	rc = lib_tx_commit(db, nested, err);
	return rc ? rc : !strcmp(state, "running");
}

int lib_job_fail(sqlite3 *db, int64_t id, const char *why, int64_t now_ms, lib_err *err)
{
	sqlite3_stmt *st;
	int rc = lib_prep(db, "UPDATE ingest_jobs SET state = 'failed', error = ?2,"
			  " updated_ms = ?3, finished_ms = ?3"
			  " WHERE id = ?1 AND state IN ('scanning', 'running')", &st, err);

	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, why, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 3, now_ms);
	return lib_step_done(db, st, err, "fail ingest");
}

/* Whether `who` may see (and cancel) a job of `owner`. */
static bool lib_job_visible(const lib_actor *who, const char *owner)
{
	if (who->admin || !who->name)
		return who->admin; /* without a caller, nobody's business */
	return owner && !strcmp(owner, who->name);
}

int lib_job_cancel(sqlite3 *db, const lib_actor *who, int64_t id, int64_t now_ms, lib_err *err)
{
	char owner[LIB_OWNER_MAX + 1], state[16];
	bool has_owner = false, admin = false, nested;
	sqlite3_stmt *st;
	int rc = lib_tx_begin(db, &nested, err);

	if (rc)
		return rc;
	rc = lib_job_actor(db, id, owner, sizeof owner, &has_owner, &admin, state, sizeof state,
			   err);
	if (!rc && !lib_job_visible(who, has_owner ? owner : NULL))
		rc = sdk_fail(err, SDK_ENOTFOUND, "no ingest %" PRId64, id);
	else if (!rc && strcmp(state, "scanning") && strcmp(state, "running"))
		rc = sdk_fail(err, SDK_ECONFLICT, "ingest %" PRId64 " is %s already", id, state);
	if (!rc)
		rc = lib_prep(db, "UPDATE ingest_jobs SET state = 'cancelled', error = 'cancelled',"
			      " updated_ms = ?2, finished_ms = ?2 WHERE id = ?1", &st, err);
	if (!rc) {
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_int64(st, 2, now_ms);
		rc = lib_step_done(db, st, err, "cancel ingest");
	}
	if (!rc)
		rc = lib_tx_commit(db, nested, err);
	else
		lib_tx_rollback(db, nested);
	return rc;
}

#define LIB_JOB_COLS \
	"id, state, path, owner, files_total, files_done, ingested, skipped, failed," \
	" bytes_total, bytes_done, error, created_ms, updated_ms, finished_ms"

static json_t *lib_col_text(sqlite3_stmt *st, int col)
{
	const char *s = (const char *)sqlite3_column_text(st, col);

	return s ? json_string(s) : json_null();
}

static json_t *lib_col_int(sqlite3_stmt *st, int col)
{
	return sqlite3_column_type(st, col) == SQLITE_NULL
		       ? json_null()
		       : json_integer(sqlite3_column_int64(st, col));
}

static json_t *lib_job_row(sqlite3_stmt *st)
{
	return json_pack("{s:I, s:o, s:o, s:o, s:{s:I, s:I, s:I, s:I, s:I}, s:{s:I, s:I},"
			 " s:o, s:I, s:I, s:o}",
			 "id", (json_int_t)sqlite3_column_int64(st, 0), "state",
			 lib_col_text(st, 1), "path", lib_col_text(st, 2), "owner",
			 lib_col_text(st, 3), "files", "total",
			 (json_int_t)sqlite3_column_int64(st, 4), "done",
			 (json_int_t)sqlite3_column_int64(st, 5), "ingested",
			 (json_int_t)sqlite3_column_int64(st, 6), "skipped",
			 (json_int_t)sqlite3_column_int64(st, 7), "failed",
			 (json_int_t)sqlite3_column_int64(st, 8), "bytes", "total",
			 (json_int_t)sqlite3_column_int64(st, 9), "done",
			 (json_int_t)sqlite3_column_int64(st, 10), "error", lib_col_text(st, 11),
			 "created_ms", (json_int_t)sqlite3_column_int64(st, 12), "updated_ms",
			 (json_int_t)sqlite3_column_int64(st, 13), "finished_ms",
			 lib_col_int(st, 14));
}

/* The files of a job that were not ingested, with why: the first
 * LIB_JOB_ERRORS_SHOWN of them. */
static int lib_job_errors(sqlite3 *db, int64_t id, json_t *job, lib_err *err)
{
	sqlite3_stmt *st;
	json_t *errors = json_array();
	int rc = errors ? lib_prep(db, "SELECT path, state, reason FROM ingest_files"
				   " WHERE job_id = ?1 AND state IN ('skipped', 'failed')"
				   " ORDER BY seq LIMIT ?2", &st, err)
			: lib_oom(err);

	if (rc) {
		json_decref(errors);
		return rc;
	}
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int(st, 2, LIB_JOB_ERRORS_SHOWN);
	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW)
		if (json_array_append_new(errors, json_pack("{s:o, s:o, s:o}", "path",
							    lib_col_text(st, 0), "state",
							    lib_col_text(st, 1), "reason",
							    lib_col_text(st, 2))) < 0) {
			rc = lib_oom(err);
			break;
		}
	if (!rc && step != SQLITE_DONE)
		rc = lib_fail_sql(db, err, "read ingest errors");
	sqlite3_finalize(st);
	if (!rc && json_object_set_new(job, "errors", errors) < 0)
		rc = lib_oom(err);
	else if (rc)
		json_decref(errors);
	return rc;
}

int lib_job_get(sqlite3 *db, const lib_actor *who, int64_t id, json_t **out, lib_err *err)
{
	sqlite3_stmt *st;
	json_t *job = NULL;
	int rc = lib_prep(db, "SELECT " LIB_JOB_COLS " FROM ingest_jobs WHERE id = ?1", &st, err);

	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW && lib_job_visible(who, (const char *)sqlite3_column_text(st, 3)))
		rc = (job = lib_job_row(st)) ? SDK_OK : lib_oom(err);
	else if (step == SQLITE_ROW || step == SQLITE_DONE)
		rc = sdk_fail(err, SDK_ENOTFOUND, "no ingest %" PRId64, id);
	else
		rc = lib_fail_sql(db, err, "read ingest");
	sqlite3_finalize(st);
	if (!rc)
		rc = lib_job_errors(db, id, job, err);
	if (rc)
		json_decref(job);
	else
		*out = job;
	return rc;
}

int lib_job_list(sqlite3 *db, const lib_actor *who, unsigned limit, json_t **out, lib_err *err)
{
	sqlite3_stmt *st;
	json_t *jobs = json_array();
	int rc = jobs ? lib_prep(db, "SELECT " LIB_JOB_COLS " FROM ingest_jobs"
				 " WHERE ?1 OR owner = ?2 ORDER BY id DESC LIMIT ?3", &st, err)
		      : lib_oom(err);

	if (rc) {
		json_decref(jobs);
		return rc;
	}
	sqlite3_bind_int(st, 1, who->admin);
	sqlite3_bind_text(st, 2, who->name, -1, SQLITE_STATIC); /* NULL matches nothing */
	sqlite3_bind_int(st, 3, (int)limit);
	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW)
		if (json_array_append_new(jobs, lib_job_row(st)) < 0) {
			rc = lib_oom(err);
			break;
		}
	if (!rc && step != SQLITE_DONE)
		rc = lib_fail_sql(db, err, "list ingests");
	sqlite3_finalize(st);
	if (!rc && !(*out = json_pack("{s:O}", "jobs", jobs)))
		rc = lib_oom(err);
	json_decref(jobs);
	return rc;
}

int lib_job_report(sqlite3 *db, int64_t id, json_t **out, lib_err *err)
{
	sqlite3_stmt *st;
	json_t *docs = json_array();
	json_int_t n[3] = { 0 };
	int rc = docs ? lib_prep(db, "SELECT state, doc_id, path FROM ingest_files"
				 " WHERE job_id = ?1 ORDER BY seq", &st, err)
		      : lib_oom(err);

	if (rc) {
		json_decref(docs);
		return rc;
	}
	sqlite3_bind_int64(st, 1, id);
	int step;
	while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
		const char *state = (const char *)sqlite3_column_text(st, 0);
		for (int k = 0; k < 3; k++)
			n[k] += state && !strcmp(state, lib_outcome_names[k]);
		if (state && !strcmp(state, "ingested") &&
		    lib_note(docs, sqlite3_column_int64(st, 1),
			     (const char *)sqlite3_column_text(st, 2)) < 0)
			rc = lib_oom(err);
	}
	if (!rc && step != SQLITE_DONE)
		rc = lib_fail_sql(db, err, "read ingest report");
	sqlite3_finalize(st);
	if (!rc && !(*out = json_pack("{s:I, s:I, s:I, s:O}", "ingested", n[LIB_INGESTED],
				      "skipped", n[LIB_SKIPPED], "failed", n[LIB_FAILED],
				      "documents", docs)))
		rc = lib_oom(err);
	json_decref(docs);
	return rc;
}

static int id_order(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

int lib_jobs_unfinished(sqlite3 *db, int64_t **ids, size_t *n, lib_err *err)
{
	static const char *const states[] = { "scanning", "running" };
	sqlite3_stmt *st;
	size_t cap = 0;
	/* One state at a time, sorted here: `state IN (...) ORDER BY id` puts
	 * the list and the sort in SQLite's temporary database, whose first use
	 * (a file, its random name, its cache) was a third of a standby's
	 * takeover, this running at init. */
	int rc = lib_prep(db, "SELECT id FROM ingest_jobs WHERE state = ?1", &st, err);

	*ids = NULL;
	*n = 0;
	if (rc)
		return rc;
	for (size_t s = 0; !rc && s < sizeof states / sizeof states[0]; s++) {
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, states[s], -1, SQLITE_STATIC);
		int step;
		while ((step = sqlite3_step(st)) == SQLITE_ROW) {
			if (*n == cap) {
				int64_t *more = realloc(*ids, (cap = cap ? cap * 2 : 16) * sizeof *more);
				if (!more) {
					rc = lib_oom(err);
					break;
				}
				*ids = more;
			}
			(*ids)[(*n)++] = sqlite3_column_int64(st, 0);
		}
		if (!rc && step != SQLITE_DONE)
			rc = lib_fail_sql(db, err, "list unfinished ingests");
	}
	sqlite3_finalize(st);
	if (rc) {
		free(*ids);
		*ids = NULL;
		*n = 0;
	} else if (*n > 1) {
		qsort(*ids, *n, sizeof **ids, id_order);
	}
	return rc;
}
