#include "kernels/coding_agent/edits.h"

#include "kernels/coding_agent/paths.h"
#include "kernels/coding_agent/sr.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int ca_edits_is_sr(const char *text, size_t len)
{
	ca_sr_list l;
	int rc = ca_sr_parse(text, len, &l, NULL);
	int n = (int)l.n;
	ca_sr_list_free(&l);
	/* A text whose block is broken is still meant as blocks. */
	return n > 0 || (rc < 0 && memmem(text, len, "<<<<<<< SEARCH", 14));
}

/* One file as the blocks so far leave it. */
typedef struct ca_file {
	char rel[CA_SR_PATH_MAX];
	char abs[PATH_MAX];
	bool existed, exists, changed;
	char *data; /* owned */
	size_t len;
} ca_file;

static int read_all(const char *path, char **out, size_t *len, sdk_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return sdk_fail(err, SDK_EIO, "%.200s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0 || (size_t)st.st_size > CA_EDIT_FILE_MAX) {
		close(fd);
		return sdk_fail(err, SDK_ETOOLARGE, "%.200s: larger than %u bytes", path,
				CA_EDIT_FILE_MAX);
	}
	char *b = malloc((size_t)st.st_size + 1);
	size_t got = 0;
	while (b && got < (size_t)st.st_size) {
		ssize_t n = read(fd, b + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (!b)
		return sdk_fail(err, SDK_EIO, "out of memory");
	b[got] = '\0';
	*out = b;
	*len = got;
	return 0;
}

static int mkdirs(char *path)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		int rc = mkdir(path, 0755);
		*p = '/';
		if (rc < 0 && errno != EEXIST)
			return -1;
	}
	return 0;
}

/* Written beside, then renamed over: a reader sees the old or the new. */
static int write_file(ca_file *f, sdk_err *err)
{
	char tmp[PATH_MAX + 16];
	snprintf(tmp, sizeof tmp, "%s", f->abs);
	if (mkdirs(tmp) < 0)
		return sdk_fail(err, SDK_EIO, "%.200s: %s", f->rel, strerror(errno));
	snprintf(tmp, sizeof tmp, "%s.grace-tmp", f->abs);
	struct stat st;
	mode_t mode = f->existed && stat(f->abs, &st) == 0 ? (st.st_mode & 07777) : 0644;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return sdk_fail(err, SDK_EIO, "%.200s: %s", f->rel, strerror(errno));
	size_t off = 0;
	while (off < f->len) {
		ssize_t n = write(fd, f->data + off, f->len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	if (off < f->len || fchmod(fd, mode) < 0 || close(fd) < 0 || rename(tmp, f->abs) < 0) {
		unlink(tmp);
		return sdk_fail(err, SDK_EIO, "%.200s: %s", f->rel, strerror(errno));
	}
	return 0;
}

static json_t *failure(size_t i, const ca_sr_block *b, const char *why, const char *msg,
		       unsigned file_line)
{
	json_t *o = json_pack("{s:I, s:s, s:[I, I], s:s, s:s}", "block", (json_int_t)i + 1, "file",
			      b->path, "lines", (json_int_t)b->line_first,
			      (json_int_t)b->line_last, "why", why, "message", msg);
	if (o && file_line)
		json_object_set_new(o, "file_line", json_integer(file_line));
	return o;
}

int ca_edits_apply(const char *wt, const char *text, size_t len, json_t **report, sdk_err *err)
{
	json_t *applied = json_array(), *failed = json_array();
	*report = json_pack("{s:s, s:i, s:o, s:o}", "format", "search_replace", "blocks", 0,
			    "applied", applied, "failed", failed);
	ca_sr_list l;
	int rc = ca_sr_parse(text, len, &l, err);
	if (rc < 0) {
		ca_sr_list_free(&l);
		json_object_set_new(*report, "error", json_string(err ? err->msg : "does not parse"));
		return rc;
	}
	json_object_set_new(*report, "blocks", json_integer((json_int_t)l.n));
	if (l.n == 0) {
		ca_sr_list_free(&l);
		json_object_set_new(*report, "error", json_string("no search/replace block"));
		return sdk_fail(err, SDK_EINVAL, "no search/replace block in the text");
	}
	ca_file *files = calloc(l.n, sizeof *files);
	size_t nf = 0;
	if (!files) {
		ca_sr_list_free(&l);
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	rc = 0;
	for (size_t i = 0; i < l.n && rc != SDK_EIO; i++) {
		const ca_sr_block *b = &l.blocks[i];
		ca_file *f = NULL;
		for (size_t j = 0; j < nf; j++)
			if (!strcmp(files[j].rel, b->path))
				f = &files[j];
		if (!f) {
			f = &files[nf];
			snprintf(f->rel, sizeof f->rel, "%s", b->path);
			sdk_err pe = { "" };
			int prc = ca_path_edit(wt, b->path, f->abs, &f->existed, &pe);
			if (prc == 0 && f->existed)
				prc = read_all(f->abs, &f->data, &f->len, &pe);
			if (prc < 0) {
				json_array_append_new(failed, failure(i, b, prc == SDK_EDENIED ? "path_refused"
										: "unreadable",
								      pe.msg, 0));
				continue; /* not kept: a later block of it is refused the same */
			}
			f->exists = f->existed;
			nf++;
		}
		char *out;
		size_t out_len;
		ca_sr_result res;
		int arc = ca_sr_apply(f->data, f->len, f->exists, b, &out, &out_len, &res);
		if (arc == SDK_EIO) {
			rc = sdk_fail(err, SDK_EIO, "out of memory");
			break;
		}
		if (arc < 0) {
			json_array_append_new(failed, failure(i, b, ca_sr_why_label(res.why), res.msg,
							      res.file_line));
			continue;
		}
		free(f->data);
		f->data = out;
		f->len = out_len;
		f->exists = f->changed = true;
		json_array_append_new(applied, json_pack("{s:I, s:s, s:i, s:b}", "block",
							 (json_int_t)i + 1, "file", b->path,
							 "file_line", res.file_line, "fuzzy",
							 res.fuzzy));
	}
	if (rc == 0 && json_array_size(failed))
		rc = sdk_fail(err, SDK_ECONFLICT, "%zu of %zu blocks do not apply; nothing was written",
			      json_array_size(failed), l.n);
	for (size_t j = 0; rc == 0 && j < nf; j++)
		if (files[j].changed)
			rc = write_file(&files[j], err);
	for (size_t j = 0; j < nf; j++)
		free(files[j].data);
	free(files);
	ca_sr_list_free(&l);
	return rc;
}
