#include "sdk/proc.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define TCP_LISTEN_STATE 0x0A

static int proc_path(char *buf, size_t len, pid_t pid, const char *leaf)
{
	int n = pid ? snprintf(buf, len, "/proc/%d/%s", (int)pid, leaf)
		    : snprintf(buf, len, "/proc/self/%s", leaf);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Reads a small /proc file whole; returns bytes read or a negative errno. */
static ssize_t read_small(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, len - 1);
	int e = errno;
	close(fd);
	if (n < 0)
		return -e;
	buf[n] = '\0';
	return n;
}

int proc_mem_bytes(pid_t pid, uint64_t *rss, uint64_t *own)
{
	char path[64], buf[256];
	if (proc_path(path, sizeof path, pid, "statm") < 0)
		return -EINVAL;
	ssize_t n = read_small(path, buf, sizeof buf);
	if (n < 0)
		return (int)n;
	unsigned long long size, resident, shared;
	if (sscanf(buf, "%llu %llu %llu", &size, &resident, &shared) != 3)
		return -EIO;
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	*rss = (uint64_t)resident * page;
	*own = (uint64_t)(resident > shared ? resident - shared : 0) * page;
	return 0;
}

int proc_rss_bytes(pid_t pid, uint64_t *out)
{
	uint64_t own;
	return proc_mem_bytes(pid, out, &own);
}

int proc_open_fds(pid_t pid, unsigned *out)
{
	char path[64];
	if (proc_path(path, sizeof path, pid, "fd") < 0)
		return -EINVAL;
	DIR *d = opendir(path);
	if (!d)
		return -errno;
	unsigned n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	/* Our own count includes the DIR's fd. */
	*out = pid == 0 || pid == getpid() ? n - 1 : n;
	return 0;
}

int proc_listen_overflows(uint64_t *out)
{
	FILE *f = fopen("/proc/net/netstat", "re");
	if (!f)
		return -errno;
	/* Pairs of lines: "TcpExt: names..." then "TcpExt: values...". */
	char names[4096], values[4096];
	int rc = -ENOENT;
	while (fgets(names, sizeof names, f) && fgets(values, sizeof values, f)) {
		if (strncmp(names, "TcpExt:", 7))
			continue;
		char *sn, *sv;
		char *n = strtok_r(names, " \n", &sn), *v = strtok_r(values, " \n", &sv);
		while (n && v) {
			if (!strcmp(n, "ListenOverflows")) {
				*out = strtoull(v, NULL, 10);
				rc = 0;
				break;
			}
			n = strtok_r(NULL, " \n", &sn);
			v = strtok_r(NULL, " \n", &sv);
		}
		break;
	}
	fclose(f);
	return rc;
}

int proc_max_fds(pid_t pid, uint64_t *out)
{
	struct rlimit rl;
	if (prlimit(pid, RLIMIT_NOFILE, NULL, &rl) < 0)
		return -errno;
	*out = rl.rlim_cur;
	return 0;
}

int proc_cmdline(pid_t pid, char *buf, size_t len)
{
	char path[64];
	if (len == 0 || proc_path(path, sizeof path, pid, "cmdline") < 0)
		return -EINVAL;
	ssize_t n = read_small(path, buf, len);
	if (n < 0)
		return (int)n;
	while (n > 0 && buf[n - 1] == '\0')
		n--;
	for (ssize_t i = 0; i < n; i++)
		if (buf[i] == '\0')
			buf[i] = ' ';
	buf[n] = '\0';
	return 0;
}

int proc_stat(pid_t pid, char *state, uint64_t *start_ticks)
{
	char path[64], buf[1024];
	if (proc_path(path, sizeof path, pid, "stat") < 0)
		return -EINVAL;
	ssize_t n = read_small(path, buf, sizeof buf);
	if (n < 0)
		return (int)n;
	/* comm may hold spaces and parentheses: fields resume after the last ')'. */
	char *p = strrchr(buf, ')');
	if (!p)
		return -EIO;
	char st;
	unsigned long long start;
	/* state is field 3, starttime field 22: 19 fields between them. */
	if (sscanf(p + 2, "%c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s "
			  "%*s %*s %*s %*s %llu",
		   &st, &start) != 2)
		return -EIO;
	if (state)
		*state = st;
	if (start_ticks)
		*start_ticks = start;
	return 0;
}

/* Finds a listening socket on `port` in one /proc/net/tcp file. */
static int find_listen(const char *file, int port, proc_listen_info *out)
{
	FILE *f = fopen(file, "re");
	if (!f)
		return -errno;
	char line[512];
	int rc = -ENOENT;
	if (!fgets(line, sizeof line, f)) { /* header */
		fclose(f);
		return rc;
	}
	while (fgets(line, sizeof line, f)) {
		char local[128];
		unsigned st, rxq;
		unsigned long ino;
		if (sscanf(line, " %*d: %127s %*s %x %*x:%x %*s %*s %*s %*s %lu", local, &st, &rxq,
			   &ino) != 4)
			continue;
		char *colon = strrchr(local, ':');
		if (!colon || st != TCP_LISTEN_STATE)
			continue;
		if ((int)strtol(colon + 1, NULL, 16) == port) {
			*out = (proc_listen_info){ .inode = ino, .accept_queue = rxq };
			rc = 0;
			break;
		}
	}
	fclose(f);
	return rc;
}

int proc_listen_info_get(int port, proc_listen_info *out)
{
	if (find_listen("/proc/net/tcp", port, out) == 0 ||
	    find_listen("/proc/net/tcp6", port, out) == 0)
		return 0;
	return -ENOENT;
}

static int pid_has_socket(const char *pid_dir, const char *want)
{
	char path[300];
	snprintf(path, sizeof path, "/proc/%s/fd", pid_dir);
	DIR *d = opendir(path);
	if (!d)
		return 0;
	int found = 0;
	struct dirent *de;
	while (!found && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char link[600], target[64];
		snprintf(link, sizeof link, "%s/%s", path, de->d_name);
		ssize_t n = readlink(link, target, sizeof target - 1);
		if (n > 0) {
			target[n] = '\0';
			found = strcmp(target, want) == 0;
		}
	}
	closedir(d);
	return found;
}

size_t proc_socket_holders(unsigned long inode, pid_t *pids, size_t max)
{
	char want[64];
	snprintf(want, sizeof want, "socket:[%lu]", inode);
	DIR *d = opendir("/proc");
	if (!d)
		return 0;
	size_t n = 0;
	struct dirent *de;
	/* procfs lists pids in ascending order. */
	while (n < max && (de = readdir(d))) {
		if (!isdigit((unsigned char)de->d_name[0]) || !pid_has_socket(de->d_name, want))
			continue;
		pids[n++] = (pid_t)strtol(de->d_name, NULL, 10);
	}
	closedir(d);
	return n;
}

int proc_port_holder(int port, pid_t *pid_out)
{
	proc_listen_info li;
	if (proc_listen_info_get(port, &li) < 0)
		return -ENOENT;
	/* Several processes may share the socket (our kernels share the
	 * supervisor's); the lowest pid is reported, which is the one that
	 * created it in the common case. */
	pid_t pid = 0;
	*pid_out = proc_socket_holders(li.inode, &pid, 1) ? pid : 0;
	return 0;
}

int proc_spawn(pid_t *pid, const char *exe, const posix_spawn_file_actions_t *fa, bool own_group,
	       char *const argv[], char *const envp[])
{
	posix_spawnattr_t at;
	sigset_t none, all;
	sigemptyset(&none);
	sigfillset(&all);
	int rc = posix_spawnattr_init(&at);
	if (rc)
		return rc;
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &all);
	short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
	if (own_group) {
		posix_spawnattr_setpgroup(&at, 0);
		flags |= POSIX_SPAWN_SETPGROUP;
	}
	posix_spawnattr_setflags(&at, flags);
	rc = posix_spawn(pid, exe, fa, &at, argv, envp);
	posix_spawnattr_destroy(&at);
	return rc;
}
