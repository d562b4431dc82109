#include "kernels/executor/cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MOUNTINFO_MAX (512u << 10)
#define KILL_ROUNDS 200 /* x 5 ms: a second for a tree to go */

ssize_t exe_read_small(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t got = 0;
	while (got + 1 < len) {
		ssize_t r = read(fd, buf + got, len - 1 - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			close(fd);
			return -e;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	buf[got] = '\0';
	close(fd);
	return (ssize_t)got;
}

int exe_write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t n = strlen(text);
	ssize_t w = write(fd, text, n);
	int e = w < 0 ? errno : 0;
	close(fd);
	if (w < 0)
		return -e;
	return (size_t)w == n ? 0 : -EIO;
}

/* ---- parsing */

static bool has_word(const char *list, const char *word)
{
	size_t n = strlen(word);
	for (const char *p = list; p && *p;) {
		const char *c = strchr(p, ',');
		size_t len = c ? (size_t)(c - p) : strlen(p);
		if (len == n && !strncmp(p, word, n))
			return true;
		p = c ? c + 1 : NULL;
	}
	return false;
}

static void copy_field(char *dst, size_t n, const char *s, size_t len)
{
	if (len >= n)
		len = n - 1;
	memcpy(dst, s, len);
	dst[len] = '\0';
}

void exe_cg_mounts_parse(const char *text, exe_cg_mounts *out)
{
	memset(out, 0, sizeof *out);
	for (const char *line = text; line && *line;) {
		const char *eol = strchr(line, '\n');
		size_t len = eol ? (size_t)(eol - line) : strlen(line);
		/* id parent maj:min root mountpoint opts [optional...] - fstype source superopts */
		const char *f[6];
		size_t fl[6];
		int n = 0;
		const char *p = line, *end = line + len;
		while (n < 5 && p < end) {
			while (p < end && *p == ' ')
				p++;
			const char *s = p;
			while (p < end && *p != ' ')
				p++;
			f[n] = s;
			fl[n++] = (size_t)(p - s);
		}
		const char *dash = n == 5 ? strstr(p, " - ") : NULL;
		if (dash && dash < end) {
			const char *q = dash + 3;
			const char *fs = q;
			while (q < end && *q != ' ')
				q++;
			size_t fslen = (size_t)(q - fs);
			while (q < end && *q == ' ')
				q++;
			while (q < end && *q != ' ') /* source */
				q++;
			while (q < end && *q == ' ')
				q++;
			char super[256];
			copy_field(super, sizeof super, q, (size_t)(end - q));
			if (fslen == 7 && !strncmp(fs, "cgroup2", 7) && !out->v2[0]) {
				copy_field(out->v2, sizeof out->v2, f[4], fl[4]);
				copy_field(out->v2_root, sizeof out->v2_root, f[3], fl[3]);
			} else if (fslen == 6 && !strncmp(fs, "cgroup", 6)) {
				if (has_word(super, "memory") && !out->memory[0]) {
					copy_field(out->memory, sizeof out->memory, f[4], fl[4]);
					copy_field(out->memory_root, sizeof out->memory_root, f[3], fl[3]);
				}
				if (has_word(super, "pids") && !out->pids[0]) {
					copy_field(out->pids, sizeof out->pids, f[4], fl[4]);
					copy_field(out->pids_root, sizeof out->pids_root, f[3], fl[3]);
				}
			}
		}
		line = eol ? eol + 1 : NULL;
	}
}

void exe_cg_self_parse(const char *text, exe_cg_self *out)
{
	memset(out, 0, sizeof *out);
	for (const char *line = text; line && *line;) {
		const char *eol = strchr(line, '\n');
		size_t len = eol ? (size_t)(eol - line) : strlen(line);
		/* hierarchy-id:controller-list:path */
		const char *c1 = memchr(line, ':', len);
		const char *c2 = c1 ? memchr(c1 + 1, ':', len - (size_t)(c1 + 1 - line)) : NULL;
		if (c2) {
			char ctl[256];
			copy_field(ctl, sizeof ctl, c1 + 1, (size_t)(c2 - c1 - 1));
			const char *path = c2 + 1;
			size_t plen = len - (size_t)(path - line);
			if (c1 - line == 1 && line[0] == '0' && ctl[0] == '\0') {
				copy_field(out->v2, sizeof out->v2, path, plen);
				out->has_v2 = true;
			}
			if (has_word(ctl, "memory"))
				copy_field(out->memory, sizeof out->memory, path, plen);
			if (has_word(ctl, "pids"))
				copy_field(out->pids, sizeof out->pids, path, plen);
		}
		line = eol ? eol + 1 : NULL;
	}
}

bool exe_cg_join(const char *mount, const char *root, const char *own, char *out, size_t n)
{
	if (!mount[0] || own[0] != '/')
		return false;
	size_t rl = strlen(root);
	const char *rest = own;
	if (rl > 1) { /* a mount of a subtree (a cgroup namespace's view) */
		if (strncmp(own, root, rl) || (own[rl] != '/' && own[rl] != '\0'))
			return false;
		rest = own + rl;
	}
	if (!strcmp(rest, "/"))
		rest = "";
	int w = snprintf(out, n, "%s%s", mount, rest);
	return w > 0 && (size_t)w < n;
}

/* ---- detection */

static void note(exe_cg_host *h, const char *fmt, const char *arg)
{
	size_t used = strlen(h->notes);
	if (used + 2 >= sizeof h->notes)
		return;
	snprintf(h->notes + used, sizeof h->notes - used, "%s", used ? "; " : "");
	used = strlen(h->notes);
	snprintf(h->notes + used, sizeof h->notes - used, fmt, arg);
}

static bool path_join(char *out, size_t n, const char *a, const char *b)
{
	int w = snprintf(out, n, "%s/%s", a, b);
	return w > 0 && (size_t)w < n;
}

static bool exists(const char *dir, const char *file)
{
	char p[EXE_CG_PATH_MAX + 64];
	return path_join(p, sizeof p, dir, file) && access(p, F_OK) == 0;
}

/* Makes `base` and checks a group can be made under it holding `file`. */
static bool probe_base(const char *base, const char *file)
{
	if (mkdir(base, 0755) < 0 && errno != EEXIST)
		return false;
	char probe[EXE_CG_PATH_MAX + 16];
	if (!path_join(probe, sizeof probe, base, "probe"))
		return false;
	if (mkdir(probe, 0755) < 0 && errno != EEXIST)
		return false;
	bool ok = exists(probe, file);
	rmdir(probe);
	return ok;
}

static bool in_list(const char *list, const char *word)
{
	size_t n = strlen(word);
	for (const char *p = list; (p = strstr(p, word)); p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\n' || p[n] == '\0'))
			return true;
	return false;
}

bool exe_cg_sole_process(const char *procs, pid_t self)
{
	bool found = false;
	for (const char *p = procs; p && *p;) {
		char *end;
		long v = strtol(p, &end, 10);
		if (end == p)
			return false; /* not a pid list */
		if (v != (long)self)
			return false;
		found = true;
		p = end;
		while (*p == '\n' || *p == ' ')
			p++;
	}
	return found;
}

/* Controllers for the jobs' groups: enabled in our instance's
 * subtree_control, which needs them in our own group's (allowed there
 * only in the root group, or in a delegated group without processes). */
static void enable_controllers(const char *own, exe_cg_host *h)
{
	static const char *const ctl[] = { "memory", "pids", "cpu" };
	char path[EXE_CG_PATH_MAX + 64], list[1024];
	for (int i = 0; i < 3; i++) {
		char cmd[16];
		snprintf(cmd, sizeof cmd, "+%s", ctl[i]);
		if (path_join(path, sizeof path, own, "cgroup.subtree_control") &&
		    exe_read_small(path, list, sizeof list) >= 0 && !in_list(list, ctl[i]))
			exe_write_file(path, cmd); /* may fail: then not available */
		if (path_join(path, sizeof path, h->v2_base, "cgroup.subtree_control"))
			exe_write_file(path, cmd);
	}
	if (path_join(path, sizeof path, h->v2_base, "cgroup.subtree_control") &&
	    exe_read_small(path, list, sizeof list) >= 0) {
		h->v2_memory = in_list(list, "memory");
		h->v2_pids = in_list(list, "pids");
		h->v2_cpu = in_list(list, "cpu");
	}
}

/* A group delegated to the executor alone (a systemd unit of its own with
 * Delegate=yes: grace-kernel@PORT.service, contrib/systemd) holds the
 * executor's process, so cgroup v2's "no internal processes" rule keeps
 * its controllers from its children. When the group offers memory and
 * pids and the executor is its only process, the executor moves into a
 * leaf of its own (OWN/grace-exec-main, as systemd's DelegateSubgroup
 * does), which empties the group so its controllers can be enabled for
 * the jobs' groups. Never with another process in the group (grace serve
 * and its other kernels, under grace.service). */
static bool leave_own_group(const char *own, exe_cg_host *h)
{
	char path[EXE_CG_PATH_MAX + 64], list[1024], leaf[EXE_CG_PATH_MAX + 32];
	if (!path_join(path, sizeof path, own, "cgroup.controllers") ||
	    exe_read_small(path, list, sizeof list) < 0 || !in_list(list, "memory") ||
	    !in_list(list, "pids"))
		return false;
	if (!path_join(path, sizeof path, own, "cgroup.procs") ||
	    exe_read_small(path, list, sizeof list) < 0 || !exe_cg_sole_process(list, getpid()))
		return false;
	if (!path_join(leaf, sizeof leaf, own, "grace-exec-main") ||
	    (mkdir(leaf, 0755) < 0 && errno != EEXIST) ||
	    !path_join(path, sizeof path, leaf, "cgroup.procs"))
		return false;
	char pid[24];
	snprintf(pid, sizeof pid, "%d", (int)getpid());
	if (exe_write_file(path, pid) < 0) {
		rmdir(leaf);
		return false;
	}
	note(h, "cgroup v2: the executor moved into %s (its delegated group then holds the jobs' "
		"controllers)", leaf);
	return true;
}

static void detect_v2(const exe_cg_mounts *m, const exe_cg_self *self, const char *instance,
		      exe_cg_host *h)
{
	char own[EXE_CG_PATH_MAX];
	if (!m->v2[0] || !self->has_v2) {
		note(h, "%s", "no cgroup v2 hierarchy");
		return;
	}
	if (!exe_cg_join(m->v2, m->v2_root, self->v2, own, sizeof own) ||
	    snprintf(h->v2_base, sizeof h->v2_base, "%s/grace-exec-%s", own, instance) >=
		    (int)sizeof h->v2_base) {
		note(h, "%s", "cgroup v2: our group is outside the mount");
		return;
	}
	if (!probe_base(h->v2_base, "cgroup.procs")) {
		note(h, "cgroup v2: cannot create groups under %s (not delegated)", own);
		h->v2_base[0] = '\0';
		return;
	}
	h->v2 = true;
	char probe[EXE_CG_PATH_MAX + 16];
	if (path_join(probe, sizeof probe, h->v2_base, "probe") && mkdir(probe, 0755) == 0) {
		h->v2_kill = exists(probe, "cgroup.kill");
		rmdir(probe);
	}
	enable_controllers(own, h);
	/* not the root group (exempt from the rule: nothing to gain) */
	if ((!h->v2_memory || !h->v2_pids) && strcmp(self->v2, "/") != 0 && leave_own_group(own, h))
		enable_controllers(own, h);
	if (!h->v2_memory || !h->v2_pids)
		note(h, "%s", "cgroup v2: memory or pids controller not delegated to us");
}

static void detect_v1(const char *mount, const char *root, const char *own, const char *instance,
		      const char *what, const char *file, bool *ok, char *base, size_t n,
		      exe_cg_host *h)
{
	char dir[EXE_CG_PATH_MAX];
	if (!mount[0]) {
		note(h, "no cgroup v1 %s controller", what);
		return;
	}
	if (!own[0] || !exe_cg_join(mount, root, own, dir, sizeof dir) ||
	    snprintf(base, n, "%s/grace-exec-%s", dir, instance) >= (int)n) {
		note(h, "cgroup v1 %s: our group is outside the mount", what);
		base[0] = '\0';
		return;
	}
	if (!probe_base(base, file)) {
		note(h, "cgroup v1 %s: cannot create groups (read-only or not ours)", what);
		base[0] = '\0';
		return;
	}
	*ok = true;
}

void exe_cg_detect(const char *instance, exe_cg_host *out)
{
	memset(out, 0, sizeof *out);
	char *buf = malloc(MOUNTINFO_MAX);
	if (!buf) {
		note(out, "%s", "out of memory");
		return;
	}
	exe_cg_mounts m;
	exe_cg_self self;
	if (exe_read_small("/proc/self/mountinfo", buf, MOUNTINFO_MAX) < 0)
		buf[0] = '\0';
	exe_cg_mounts_parse(buf, &m);
	if (exe_read_small("/proc/self/cgroup", buf, MOUNTINFO_MAX) < 0)
		buf[0] = '\0';
	exe_cg_self_parse(buf, &self);
	free(buf);
	detect_v2(&m, &self, instance, out);
	if (!out->v2_memory)
		detect_v1(m.memory, m.memory_root, self.memory, instance, "memory",
			  "memory.limit_in_bytes", &out->v1_memory, out->memory_base,
			  sizeof out->memory_base, out);
	if (!out->v2_pids)
		detect_v1(m.pids, m.pids_root, self.pids, instance, "pids", "pids.max",
			  &out->v1_pids, out->pids_base, sizeof out->pids_base, out);
}

/* ---- a job's groups */

static int make_group(const char *base, const char *job_id, char *out, size_t n)
{
	if (snprintf(out, n, "%s/job-%s", base, job_id) >= (int)n)
		return -ENAMETOOLONG;
	if (mkdir(out, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int set_value(const char *dir, const char *file, uint64_t v, sdk_err *why)
{
	char path[EXE_CG_PATH_MAX + 64], text[32];
	snprintf(text, sizeof text, "%llu", (unsigned long long)v);
	int rc = path_join(path, sizeof path, dir, file) ? exe_write_file(path, text) : -ENAMETOOLONG;
	if (rc < 0)
		return sdk_fail(why, SDK_EIO, "cannot write %s to %s: %s", text, path, strerror(-rc));
	return 0;
}

int exe_cg_job_create(const exe_cg_host *h, const char *job_id, const exe_cg_want *w,
		      exe_cg_job *out, sdk_err *why)
{
	memset(out, 0, sizeof *out);
	int rc = 0;
	if (w->v2 && (rc = make_group(h->v2_base, job_id, out->v2, sizeof out->v2)) < 0) {
		rc = sdk_fail(why, SDK_EIO, "cannot create %s: %s", out->v2, strerror(-rc));
		out->v2[0] = '\0';
		goto fail;
	}
	if (w->v2 && w->v2_memory && w->memory_bytes) {
		if ((rc = set_value(out->v2, "memory.max", w->memory_bytes, why)) < 0)
			goto fail;
		char path[EXE_CG_PATH_MAX + 64];
		if (path_join(path, sizeof path, out->v2, "memory.swap.max"))
			exe_write_file(path, "0"); /* no swap: the limit bites as an OOM kill */
		out->v2_memory = true;
	}
	if (w->v2 && w->v2_pids && w->pids) {
		if ((rc = set_value(out->v2, "pids.max", w->pids, why)) < 0)
			goto fail;
		out->v2_pids = true;
	}
	if (w->v1_memory) {
		if ((rc = make_group(h->memory_base, job_id, out->memory, sizeof out->memory)) < 0) {
			rc = sdk_fail(why, SDK_EIO, "cannot create %s: %s", out->memory,
				      strerror(-rc));
			out->memory[0] = '\0';
			goto fail;
		}
		if ((rc = set_value(out->memory, "memory.limit_in_bytes", w->memory_bytes, why)) <
		    0)
			goto fail;
		/* With swap accounting, swap counts too: the limit is a limit. */
		set_value(out->memory, "memory.memsw.limit_in_bytes", w->memory_bytes, NULL);
	}
	if (w->v1_pids) {
		if ((rc = make_group(h->pids_base, job_id, out->pids, sizeof out->pids)) < 0) {
			rc = sdk_fail(why, SDK_EIO, "cannot create %s: %s", out->pids, strerror(-rc));
			out->pids[0] = '\0';
			goto fail;
		}
		if ((rc = set_value(out->pids, "pids.max", w->pids, why)) < 0)
			goto fail;
	}
	return 0;
fail:
	exe_cg_job_remove(out);
	return rc;
}

/* "key value" lines: the value of `key`, or -1. */
static int64_t keyed(const char *dir, const char *file, const char *key)
{
	char path[EXE_CG_PATH_MAX + 64], buf[4096];
	if (!dir[0] || !path_join(path, sizeof path, dir, file) ||
	    exe_read_small(path, buf, sizeof buf) < 0)
		return -1;
	size_t n = strlen(key);
	for (char *p = buf; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (!strncmp(p, key, n) && p[n] == ' ')
			return strtoll(p + n + 1, NULL, 10);
	return -1;
}

static int64_t single(const char *dir, const char *file)
{
	char path[EXE_CG_PATH_MAX + 64], buf[64];
	if (!dir[0] || !path_join(path, sizeof path, dir, file) ||
	    exe_read_small(path, buf, sizeof buf) < 0 || !buf[0] || buf[0] == 'm')
		return -1; /* "max" */
	return strtoll(buf, NULL, 10);
}

void exe_cg_job_usage(const exe_cg_job *j, exe_cg_usage *out)
{
	*out = (exe_cg_usage){ -1, -1, -1, -1 };
	if (j->v2_memory) {
		out->memory_peak_bytes = single(j->v2, "memory.peak");
		out->oom_kills = keyed(j->v2, "memory.events", "oom_kill");
	} else if (j->memory[0]) {
		out->memory_peak_bytes = single(j->memory, "memory.max_usage_in_bytes");
		out->oom_kills = keyed(j->memory, "memory.oom_control", "oom_kill");
	}
	out->pids_peak = j->v2_pids ? single(j->v2, "pids.peak") : single(j->pids, "pids.peak");
	if (j->v2[0])
		out->cpu_usec = keyed(j->v2, "cpu.stat", "usage_usec");
}

/* Sends SIGKILL to each pid listed in dir/cgroup.procs; how many. */
static int kill_listed(const char *dir)
{
	char path[EXE_CG_PATH_MAX + 64], buf[16384];
	if (!dir[0] || !path_join(path, sizeof path, dir, "cgroup.procs") ||
	    exe_read_small(path, buf, sizeof buf) < 0)
		return 0;
	int n = 0;
	for (char *p = buf; *p;) {
		char *end;
		long pid = strtol(p, &end, 10);
		if (end == p)
			break;
		if (pid > 1) {
			kill((pid_t)pid, SIGKILL);
			n++;
		}
		p = end;
		while (*p == '\n')
			p++;
	}
	return n;
}

int exe_cg_job_kill(const exe_cg_job *j)
{
	char path[EXE_CG_PATH_MAX + 64];
	if (j->v2[0] && path_join(path, sizeof path, j->v2, "cgroup.kill"))
		exe_write_file(path, "1");
	int left = 0;
	for (int round = 0; round < KILL_ROUNDS; round++) {
		left = kill_listed(j->v2) + kill_listed(j->memory) + kill_listed(j->pids);
		if (!left)
			return 0;
		struct timespec ts = { 0, 5 * 1000000 };
		nanosleep(&ts, NULL);
	}
	return left;
}

int exe_cg_job_remove(const exe_cg_job *j)
{
	int rc = 0;
	const char *dirs[] = { j->v2, j->memory, j->pids };
	for (int i = 0; i < 3; i++)
		if (dirs[i][0] && rmdir(dirs[i]) < 0 && errno != ENOENT)
			rc = -errno;
	return rc;
}

static int sweep_base(const char *base, int which)
{
	DIR *d = base[0] ? opendir(base) : NULL;
	if (!d)
		return 0;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, "job-", 4) && strcmp(e->d_name, "probe"))
			continue;
		exe_cg_job j;
		memset(&j, 0, sizeof j);
		char *dst = which == 0 ? j.v2 : which == 1 ? j.memory : j.pids;
		if (snprintf(dst, EXE_CG_PATH_MAX, "%s/%s", base, e->d_name) >= EXE_CG_PATH_MAX)
			continue;
		exe_cg_job_kill(&j);
		if (exe_cg_job_remove(&j) == 0)
			n++;
	}
	closedir(d);
	return n;
}

int exe_cg_sweep(const exe_cg_host *h)
{
	return sweep_base(h->v2 ? h->v2_base : "", 0) +
	       sweep_base(h->v1_memory ? h->memory_base : "", 1) +
	       sweep_base(h->v1_pids ? h->pids_base : "", 2);
}

void exe_cg_host_release(const exe_cg_host *h)
{
	const char *dirs[] = { h->v2_base, h->memory_base, h->pids_base };
	for (int i = 0; i < 3; i++)
		if (dirs[i][0])
			rmdir(dirs[i]);
}
