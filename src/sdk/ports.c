#include "sdk/ports.h"

#include "sdk/call.h"
#include "sdk/err.h"
#include "sdk/log.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Twenty kernels take about 900 bytes; a file this large is not ours. */
#define SDK_PORTS_MAX_BYTES 65536

/* The file is checked with one stat(2) before each answer and read again
 * when it is another file (every write renames a new one over it) or gone.
 * Not inotify: a process that dies holding an inotify instance waits in
 * the kernel for an SRCU grace period (1.5-2 ms measured here) before its
 * parent hears of the death, and that wait was a third of a kernel's
 * crash-to-answering-again. A stat is about a microsecond beside a call. */
struct sdk_ports {
	const grace_config *cfg;
	char path[PATH_MAX + 32];
	bool read;	    /* `seen` describes the file `table` came from */
	struct stat seen; /* st_ino 0: there was no file */
	json_t *table; /* {"NAME": {"port": N, "running": bool}}, or NULL: the config's */
};

int sdk_ports_write(const char *data_dir, const sdk_ports_entry *e, size_t n)
{
	json_t *kernels = json_object();
	for (size_t i = 0; kernels && i < n; i++)
		json_object_set_new(kernels, e[i].name,
				    json_pack("{s:i, s:b}", "port", e[i].port, "running", e[i].running));
	json_t *doc = kernels ? json_pack("{s:i, s:o}", "version", 1, "kernels", kernels) : NULL;
	char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	json_decref(doc);
	if (!text)
		return -ENOMEM;
	char path[PATH_MAX + 32], tmp[PATH_MAX + 32];
	snprintf(path, sizeof path, "%s/%s", data_dir, SDK_PORTS_FILE);
	snprintf(tmp, sizeof tmp, "%s/.%s.tmp", data_dir, SDK_PORTS_FILE);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int rc = 0;
	size_t len = strlen(text);
	if (fd < 0 || write(fd, text, len) != (ssize_t)len || fsync(fd) < 0)
		rc = -errno;
	if (fd >= 0)
		close(fd);
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc)
		unlink(tmp);
	free(text);
	return rc;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Reads the file if it is not the one read last. The stat of what was
 * read comes from the open file, so a rewrite between the check and the
 * read is read again at the next check, never missed. */
static void refresh(sdk_ports *p)
{
	struct stat st;
	if (stat(p->path, &st) < 0)
		memset(&st, 0, sizeof st);
	if (p->read && same_file(&st, &p->seen))
		return;
	json_decref(p->table);
	p->table = NULL;
	memset(&p->seen, 0, sizeof p->seen);
	p->read = true;
	int fd = open(p->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	/* One read: jansson's json_loadfd reads a byte per system call. */
	char *buf = NULL;
	ssize_t n = -1;
	if (fstat(fd, &p->seen) == 0 && p->seen.st_size > 0 &&
	    p->seen.st_size < SDK_PORTS_MAX_BYTES && (buf = malloc((size_t)p->seen.st_size)))
		n = read(fd, buf, (size_t)p->seen.st_size);
	close(fd);
	json_error_t e;
	json_t *doc = n == p->seen.st_size ? json_loadb(buf, (size_t)n, 0, &e) : NULL;
	free(buf);
	json_t *k = json_object_get(doc, "kernels");
	p->table = json_is_object(k) ? json_incref(k) : NULL;
	json_decref(doc);
}

sdk_ports *sdk_ports_open(const grace_config *cfg)
{
	sdk_ports *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->cfg = cfg;
	snprintf(p->path, sizeof p->path, "%s/%s", cfg->data_dir, SDK_PORTS_FILE);
	return p;
}

void sdk_ports_close(sdk_ports *p)
{
	if (!p)
		return;
	json_decref(p->table);
	free(p);
}

int sdk_ports_resolve(const char *name, void *arg)
{
	sdk_ports *p = arg;
	refresh(p);
	if (!strcmp(name, SDK_MAIN_NAME)) /* its API never moves */
		return p->cfg->api_port + p->cfg->port_offset;
	const grace_kernel_cfg *k = grace_config_kernel(p->cfg, name);
	if (!k)
		return SDK_ENOTFOUND;
	json_t *e = p->table ? json_object_get(p->table, k->name) : NULL;
	if (!e)
		return grace_kernel_port(p->cfg, k);
	if (!json_is_true(json_object_get(e, "running")))
		return SDK_EBUSY;
	return (int)json_integer_value(json_object_get(e, "port"));
}
