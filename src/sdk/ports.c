#include "sdk/ports.h"

#include "sdk/call.h"
#include "sdk/err.h"
#include "sdk/log.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

struct sdk_ports {
	const grace_config *cfg;
	int ifd; /* inotify, -1 without */
	struct event *ev;
	bool stale; /* re-read before the next answer */
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

static void on_inotify(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	sdk_ports *p = arg;
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;
	while ((n = read(fd, buf, sizeof buf)) > 0) {
		for (char *q = buf; q < buf + n;) {
			const struct inotify_event *ie = (const struct inotify_event *)q;
			if (ie->len && !strcmp(ie->name, SDK_PORTS_FILE))
				p->stale = true;
			if (ie->mask & IN_Q_OVERFLOW)
				p->stale = true;
			q += sizeof *ie + ie->len;
		}
	}
}

static void reload(sdk_ports *p)
{
	char path[PATH_MAX + 32];
	snprintf(path, sizeof path, "%s/%s", p->cfg->data_dir, SDK_PORTS_FILE);
	json_error_t e;
	json_t *doc = json_load_file(path, 0, &e);
	json_t *k = json_object_get(doc, "kernels");
	json_decref(p->table);
	p->table = json_is_object(k) ? json_incref(k) : NULL;
	json_decref(doc);
	p->stale = false;
}

sdk_ports *sdk_ports_open(struct event_base *base, const grace_config *cfg)
{
	sdk_ports *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->cfg = cfg;
	p->stale = true;
	p->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (p->ifd >= 0 &&
	    inotify_add_watch(p->ifd, cfg->data_dir, IN_MOVED_TO | IN_CLOSE_WRITE | IN_DELETE) >= 0) {
		p->ev = event_new(base, p->ifd, EV_READ | EV_PERSIST, on_inotify, p);
		if (p->ev)
			event_add(p->ev, NULL);
	}
	if (!p->ev && p->ifd >= 0) {
		close(p->ifd);
		p->ifd = -1;
	}
	return p;
}

void sdk_ports_close(sdk_ports *p)
{
	if (!p)
		return;
	if (p->ev)
		event_free(p->ev);
	if (p->ifd >= 0)
		close(p->ifd);
	json_decref(p->table);
	free(p);
}

int sdk_ports_resolve(const char *name, void *arg)
{
	sdk_ports *p = arg;
	/* Without inotify every call re-reads: correct, only slower. */
	if (p->stale || p->ifd < 0)
		reload(p);
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
