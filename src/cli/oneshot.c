#include "cli/oneshot.h"

#include "sdk/http_parse.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define HEAD_MAX 16384
#define BODY_BUF (256 * 1024)

int oneshot_to_buf(const char *b, size_t n, void *arg)
{
	oneshot_buf *o = arg;
	if (n > o->cap - o->len)
		return -1;
	memcpy(o->b + o->len, b, n);
	o->len += n;
	return 0;
}

static int send_all(int fd, const char *b, size_t n)
{
	while (n) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
		if (w <= 0)
			return -1;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

static int failed(oneshot_answer *a, const char *why, int err)
{
	snprintf(a->error, sizeof a->error, "%s%s%s", why, err ? ": " : "",
		 err == EAGAIN ? "timed out" : err ? strerror(err) : "");
	return -1;
}

int oneshot_request(int port, const char *method, const char *target, const char *headers,
		    const char *body, size_t body_len, unsigned timeout_s, oneshot_sink sink,
		    void *arg, oneshot_answer *a)
{
	*a = (oneshot_answer){ 0 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return failed(a, "no socket", errno);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct timeval tv = { (time_t)timeout_s, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	char *buf = malloc(BODY_BUF);
	char head[HEAD_MAX];
	int rc = -1;
	int hn = snprintf(head, sizeof head,
			  "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n%s"
			  "Content-Length: %zu\r\n\r\n",
			  method, target, port, headers ? headers : "", body_len);
	if (!buf || hn >= (int)sizeof head) {
		failed(a, "the request does not fit", 0);
		goto out;
	}
	if (connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
		failed(a, "cannot connect", errno);
		goto out;
	}
	if (send_all(fd, head, (size_t)hn) < 0 || (body_len && send_all(fd, body, body_len) < 0)) {
		failed(a, "cannot send the request", errno);
		goto out;
	}
	size_t have = 0, scan = 0, end;
	while (!(end = sdk_http_head_end(buf, have, &scan))) {
		ssize_t n = have < HEAD_MAX ? recv(fd, buf + have, HEAD_MAX - have, 0) : -1;
		if (n <= 0) {
			failed(a, n == 0 ? "the connection closed before an answer" : "no answer",
			       n < 0 ? errno : 0);
			goto out;
		}
		have += (size_t)n;
	}
	char copy[HEAD_MAX];
	memcpy(copy, buf, end);
	sdk_http_head h;
	const char *why = NULL;
	if (sdk_http_parse_response(copy, end, 64, false, &h, &why) != 0 ||
	    h.body != SDK_HTTP_BODY_LENGTH) {
		failed(a, why ? why : "an answer without a length", 0);
		goto out;
	}
	a->status = h.status;
	a->length = (long long)h.content_length;
	const char *files = sdk_http_field_get(&h, "X-Grace-Backup-Files");
	if (files)
		snprintf(a->files, sizeof a->files, "%s", files);
	size_t pending = have - end;
	const char *at = buf + end;
	for (;;) {
		if ((long long)pending > a->length - a->received) {
			failed(a, "more bytes than the answer's length", 0);
			goto out;
		}
		if (pending && sink(at, pending, arg) != 0) {
			failed(a, "the answer could not be kept", errno);
			goto out;
		}
		a->received += (long long)pending;
		if (a->received == a->length)
			break;
		ssize_t n = recv(fd, buf, BODY_BUF, 0);
		if (n <= 0) {
			failed(a, n == 0 ? "the answer ended early" : "the answer stopped",
			       n < 0 ? errno : 0);
			goto out;
		}
		pending = (size_t)n;
		at = buf;
	}
	rc = 0;
out:
	free(buf);
	close(fd);
	return rc;
}
