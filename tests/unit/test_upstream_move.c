/* The upstream client's retries when a kernel moves (src/sdk/upstream.c):
 * a GET whose attempt and retry both meet a listener that resets them is
 * sent once more after a pause only if the kernel is then found at another
 * port; found at the same port, it fails, sent twice in all. Two loopback
 * listeners on ports the system picks: "old" resets every connection it
 * accepts (a kernel's old socket closing with requests in its backlog),
 * "new" answers 200. */
#include "sdk/upstream.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

struct server {
	int fd, port;
	bool answers; /* else every connection is reset once its request is in */
	unsigned accepted;
	struct event *ev;
	struct event *client[8]; /* its connections */
	unsigned nclient;
};

struct world {
	struct event_base *base;
	struct server old, new_;
	unsigned resolves, old_resolves; /* the first old_resolves answer old's port */
	int status, err;
	bool done;
};

static int resolve(const char *name, void *arg)
{
	(void)name;
	struct world *w = arg;
	return w->resolves++ < w->old_resolves ? w->old.port : w->new_.port;
}

/* A request arrived: answered, or the connection reset with it unread
 * (the event stays, for the end of the test to free). */
static void on_client(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct server *s = arg;
	char buf[4096];
	ssize_t n = read(fd, buf, sizeof buf);
	if (n <= 0 || !memmem(buf, (size_t)n, "\r\n\r\n", 4))
		return;
	if (s->answers) {
		static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
		assert_int_equal(write(fd, ok, sizeof ok - 1), (ssize_t)(sizeof ok - 1));
		return;
	}
	struct linger l = { 1, 0 }; /* close with a reset */
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
	shutdown(fd, SHUT_RDWR);
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct server *s = arg;
	int c = accept(fd, NULL, NULL);
	if (c < 0)
		return;
	s->accepted++;
	if (s->nclient == sizeof s->client / sizeof *s->client) {
		close(c);
		return;
	}
	struct event *e = event_new(event_get_base(s->ev), c, EV_READ | EV_PERSIST, on_client, s);
	s->client[s->nclient++] = e;
	event_add(e, NULL);
}

static void listen_on(struct world *w, struct server *s, bool answers)
{
	s->answers = answers;
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	assert_true(s->fd >= 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(s->fd, 16), 0);
	socklen_t len = sizeof a;
	assert_int_equal(getsockname(s->fd, (struct sockaddr *)&a, &len), 0);
	s->port = ntohs(a.sin_port);
	s->ev = event_new(w->base, s->fd, EV_READ | EV_PERSIST, on_accept, s);
	event_add(s->ev, NULL);
}

static void on_head(sdk_ureq *u, const sdk_http_head *h, void *arg)
{
	(void)u;
	((struct world *)arg)->status = h->status;
}
static void on_body(sdk_ureq *u, struct evbuffer *d, bool last, void *arg)
{
	(void)u;
	evbuffer_drain(d, evbuffer_get_length(d));
	if (last) {
		struct world *w = arg;
		w->done = true;
		event_base_loopbreak(w->base);
	}
}
static void on_error(sdk_ureq *u, int err, const char *why, void *arg)
{
	(void)u, (void)why;
	struct world *w = arg;
	w->err = err;
	w->done = true;
	event_base_loopbreak(w->base);
}
static const sdk_ureq_cbs cbs = { on_head, on_body, on_error, NULL };

/* A GET to kernel "k", old's port for the first `old_resolves` look-ups. */
static void run(struct world *w, unsigned old_resolves)
{
	memset(w, 0, sizeof *w);
	w->base = event_base_new();
	w->old_resolves = old_resolves;
	listen_on(w, &w->old, false);
	listen_on(w, &w->new_, true);
	sdk_upstream *up = sdk_upstream_new(w->base, resolve, w, 4, 16);
	assert_non_null(up);
	sdk_ureq_opts o = { .kernel = "k", .method = "GET", .target = "/health",
			    .head_timeout_ms = 2000, .deadline_ms = 5000 };
	assert_non_null(sdk_upstream_request(up, &o, &cbs, w));
	struct timeval guard = { 10, 0 };
	event_base_loopexit(w->base, &guard);
	event_base_dispatch(w->base);
	assert_true(w->done);
	sdk_upstream_free(up);
	struct server *both[] = { &w->old, &w->new_ };
	for (unsigned k = 0; k < 2; k++)
		for (unsigned i = 0; i < both[k]->nclient; i++) {
			close(event_get_fd(both[k]->client[i]));
			event_free(both[k]->client[i]);
		}
	event_free(w->old.ev);
	event_free(w->new_.ev);
	close(w->old.fd);
	close(w->new_.fd);
	event_base_free(w->base);
}

static void test_a_kernel_that_moved_is_found(void **state)
{
	(void)state;
	struct world w;
	run(&w, 2); /* the attempt and its retry meet the old listener */
	assert_int_equal(w.err, 0);
	assert_int_equal(w.status, 200);
	assert_int_equal(w.old.accepted, 2);
	assert_int_equal(w.new_.accepted, 1);
}

static void test_a_kernel_that_stayed_is_not_asked_again(void **state)
{
	(void)state;
	struct world w;
	run(&w, 1000); /* always the old port: the resets are the kernel's own */
	assert_int_equal(w.err, SDK_UP_RESET);
	assert_int_equal(w.old.accepted, 2);
	assert_int_equal(w.new_.accepted, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_kernel_that_moved_is_found),
		cmocka_unit_test(test_a_kernel_that_stayed_is_not_asked_again),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
