/* grace serve's log files: logfile.h. */
#include "serve/logfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CHUNK 65536
#define STOP_WAIT_S 2

struct logfile {
	pthread_t thread;
	int rd;       /* the pipe's read end (the thread's) */
	int old_err;  /* standard error as it was */
	int file;     /* DATA_DIR/log/grace.log, -1 once given up */
	uint64_t size, rotate_bytes;
	unsigned keep;
	char dir[PATH_MAX];
	char path[PATH_MAX + 16];
};

int lf_under_journal(void)
{
	/* "DEVICE:INODE" of the journal's socket: ours only if fd 2 is it. */
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat sb;
	if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(2, &sb) < 0)
		return 0;
	return (unsigned long long)sb.st_dev == dev && (unsigned long long)sb.st_ino == ino;
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static void say(const logfile *lf, const char *msg)
{
	char line[PATH_MAX + 256];
	int n = snprintf(line, sizeof line,
			 "{\"level\":\"warn\",\"kernel\":\"grace\",\"msg\":\"log file %s: %s: "
			 "standard error only from now on\"}\n",
			 lf->path, msg);
	if (n > 0)
		write_all(lf->old_err, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static int open_log(logfile *lf)
{
	lf->file = open(lf->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (lf->file < 0)
		return -1;
	struct stat sb;
	lf->size = fstat(lf->file, &sb) == 0 ? (uint64_t)sb.st_size : 0;
	return 0;
}

/* grace.log.K-1 -> grace.log.K, ..., grace.log -> grace.log.1, a new grace.log. */
static void rotate(logfile *lf)
{
	char from[PATH_MAX + 32], to[PATH_MAX + 32];
	for (unsigned k = lf->keep; k >= 1; k--) {
		if (k == 1)
			snprintf(from, sizeof from, "%s", lf->path);
		else
			snprintf(from, sizeof from, "%s.%u", lf->path, k - 1);
		snprintf(to, sizeof to, "%s.%u", lf->path, k);
		if (rename(from, to) < 0 && errno != ENOENT)
			break;
	}
	close(lf->file);
	if (open_log(lf) < 0)
		say(lf, strerror(errno));
}

static void *copy_lines(void *arg)
{
	logfile *lf = arg;
	char *buf = malloc(CHUNK);
	if (!buf)
		return NULL;
	pthread_cleanup_push(free, buf); /* lf_stop may cancel it in read() */
	for (;;) {
		ssize_t n = read(lf->rd, buf, CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* every writer gone: lf_stop */
		write_all(lf->old_err, buf, (size_t)n);
		if (lf->file < 0)
			continue;
		ssize_t w = write(lf->file, buf, (size_t)n);
		if (w != n) {
			say(lf, w < 0 ? strerror(errno) : "short write (disk full?)");
			close(lf->file);
			lf->file = -1;
			continue;
		}
		lf->size += (uint64_t)n;
		if (lf->size >= lf->rotate_bytes && buf[n - 1] == '\n')
			rotate(lf);
	}
	pthread_cleanup_pop(1);
	return NULL;
}

logfile *lf_start(const char *data_dir, uint64_t rotate_bytes, unsigned keep, sdk_err *err)
{
	if (err)
		err->msg[0] = '\0';
	if (!rotate_bytes || lf_under_journal())
		return NULL;
	logfile *lf = calloc(1, sizeof *lf);
	if (!lf) {
		sdk_fail(err, SDK_EIO, "out of memory");
		return NULL;
	}
	lf->rotate_bytes = rotate_bytes;
	lf->keep = keep ? keep : 1;
	lf->rd = lf->old_err = lf->file = -1;
	int fds[2] = { -1, -1 };
	if (snprintf(lf->dir, sizeof lf->dir, "%s/log", data_dir) >= (int)sizeof lf->dir) {
		sdk_fail(err, SDK_EINVAL, "%s/log: path too long", data_dir);
		goto fail;
	}
	snprintf(lf->path, sizeof lf->path, "%s/grace.log", lf->dir);
	if (mkdir(lf->dir, 0700) < 0 && errno != EEXIST) {
		sdk_fail(err, SDK_EIO, "cannot create %s: %s", lf->dir, strerror(errno));
		goto fail;
	}
	if (open_log(lf) < 0) {
		sdk_fail(err, SDK_EIO, "cannot open %s: %s", lf->path, strerror(errno));
		goto fail;
	}
	/* The read end and our copy of the old stderr stay out of children;
	 * fd 2, the write end, goes to every one of them. */
	if (pipe2(fds, O_CLOEXEC) < 0 || (lf->old_err = fcntl(2, F_DUPFD_CLOEXEC, 3)) < 0) {
		sdk_fail(err, SDK_EIO, "cannot make the log pipe: %s", strerror(errno));
		goto fail;
	}
	lf->rd = fds[0];
	/* The thread takes no signal: they are the event loop's. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int trc = pthread_create(&lf->thread, NULL, copy_lines, lf);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (trc != 0) {
		sdk_fail(err, SDK_EIO, "cannot start the log thread");
		goto fail;
	}
	fflush(stderr);
	if (dup2(fds[1], 2) < 0) { /* dup2 clears FD_CLOEXEC on 2 */
		sdk_fail(err, SDK_EIO, "cannot redirect standard error: %s", strerror(errno));
		close(fds[1]);
		fds[1] = -1;
		pthread_join(lf->thread, NULL); /* reads EOF: no writer left */
		goto fail;
	}
	close(fds[1]);
	return lf;
fail:
	if (fds[1] >= 0)
		close(fds[1]);
	if (lf->rd >= 0)
		close(lf->rd);
	else if (fds[0] >= 0)
		close(fds[0]);
	if (lf->old_err >= 0)
		close(lf->old_err);
	if (lf->file >= 0)
		close(lf->file);
	free(lf);
	return NULL;
}

void lf_stop(logfile *lf)
{
	if (!lf)
		return;
	fflush(stderr);
	dup2(lf->old_err, 2); /* the last write end of ours: the thread reads EOF */
	/* ... unless a process we did not reap (a job's orphan) still holds
	 * one: then the lines so far are copied and the thread is ended. */
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += STOP_WAIT_S;
	if (pthread_timedjoin_np(lf->thread, NULL, &until) != 0) {
		pthread_cancel(lf->thread); /* it waits in read(): a cancellation point */
		pthread_join(lf->thread, NULL);
	}
	close(lf->old_err);
	close(lf->rd);
	if (lf->file >= 0)
		close(lf->file);
	free(lf);
}
