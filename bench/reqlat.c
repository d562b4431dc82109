/* reqlat: every request's latency, not a histogram. C keep-alive
 * connections on one epoll loop send GET PATH again as soon as each answer
 * is whole, for SECS seconds, and write one line a request to OUT:
 * "sent_ns done_ns status" (CLOCK_MONOTONIC, the clock perf uses), so
 * that slow requests can be placed in time: when they cluster, and what
 * ran then (`perf sched timehist`). gateway_bench.py --stalls builds and
 * runs it (cc -O2); wrk only reports a distribution.
 *
 *     reqlat PORT PATH CONNS SECS OUT [HEADER ...]
 *
 * Answers must carry Content-Length (Grace's and nginx's do). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CONNS_MAX 1024
#define ANSWER_MAX 65536 /* an answer's head and body, whole */

struct conn {
	int fd;
	uint64_t sent;
	size_t n;
	char buf[ANSWER_MAX + 1];
};

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w <= 0)
			return -1;
		p += w, n -= (size_t)w;
	}
	return 0;
}

/* The length of the first whole answer in c->buf, 0 while incomplete, -1
 * when it has no Content-Length. */
static long answer_len(struct conn *c)
{
	char *he = memmem(c->buf, c->n, "\r\n\r\n", 4);
	if (!he)
		return 0;
	*he = '\0';
	char *cl = strcasestr(c->buf, "\ncontent-length:");
	*he = '\r';
	if (!cl)
		return -1;
	size_t len = (size_t)(he + 4 - c->buf) + strtoul(cl + 16, NULL, 10);
	return len <= c->n ? (long)len : len > ANSWER_MAX ? -1 : 0;
}

int main(int argc, char **argv)
{
	if (argc < 6) {
		fprintf(stderr, "usage: reqlat PORT PATH CONNS SECS OUT [HEADER ...]\n");
		return 2;
	}
	int port = atoi(argv[1]), nconn = atoi(argv[3]);
	double secs = atof(argv[4]);
	if (port <= 0 || port > 65535 || nconn <= 0 || nconn > CONNS_MAX || secs <= 0) {
		fprintf(stderr, "reqlat: bad PORT, CONNS (1-%d) or SECS\n", CONNS_MAX);
		return 2;
	}
	FILE *out = fopen(argv[5], "w");
	if (!out) {
		perror(argv[5]);
		return 1;
	}
	char req[8192];
	int rl = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n", argv[2], port);
	for (int i = 6; i < argc && rl < (int)sizeof req; i++)
		rl += snprintf(req + rl, sizeof req - (size_t)rl, "%s\r\n", argv[i]);
	if (rl + 3 > (int)sizeof req) {
		fprintf(stderr, "reqlat: headers too long\n");
		return 2;
	}
	rl += snprintf(req + rl, sizeof req - (size_t)rl, "\r\n");

	int ep = epoll_create1(0);
	struct conn *cs = calloc((size_t)nconn, sizeof *cs);
	if (ep < 0 || !cs) {
		perror("reqlat");
		return 1;
	}
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (int i = 0; i < nconn; i++) {
		int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
			perror("reqlat: connect");
			return 1;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		cs[i].fd = fd;
		struct epoll_event e = { .events = EPOLLIN, .data.ptr = &cs[i] };
		epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
	}
	for (int i = 0; i < nconn; i++) {
		cs[i].sent = now_ns();
		if (send_all(cs[i].fd, req, (size_t)rl) != 0) {
			perror("reqlat: write");
			return 1;
		}
	}
	uint64_t end = now_ns() + (uint64_t)(secs * 1e9);
	unsigned long done = 0;
	struct epoll_event ev[256];
	while (now_ns() < end) {
		int n = epoll_wait(ep, ev, 256, 100);
		for (int i = 0; i < n; i++) {
			struct conn *c = ev[i].data.ptr;
			ssize_t r = read(c->fd, c->buf + c->n, ANSWER_MAX - c->n);
			if (r <= 0) {
				fprintf(stderr, "reqlat: the server closed a connection\n");
				return 1;
			}
			c->n += (size_t)r;
			long len;
			while ((len = answer_len(c)) > 0) {
				uint64_t t = now_ns();
				fprintf(out, "%llu %llu %d\n", (unsigned long long)c->sent,
					(unsigned long long)t, atoi(c->buf + 9));
				done++;
				memmove(c->buf, c->buf + len, c->n - (size_t)len);
				c->n -= (size_t)len;
				c->sent = now_ns();
				if (send_all(c->fd, req, (size_t)rl) != 0) {
					perror("reqlat: write");
					return 1;
				}
			}
			if (len < 0) {
				fprintf(stderr, "reqlat: an answer without Content-Length or too large\n");
				return 1;
			}
		}
	}
	if (fclose(out) != 0) {
		perror(argv[5]);
		return 1;
	}
	fprintf(stderr, "reqlat: %lu requests\n", done);
	return 0;
}
