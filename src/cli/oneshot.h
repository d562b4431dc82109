/* One HTTP/1.1 request to a port on 127.0.0.1, blocking, its answer's body
 * handed to a sink as it arrives: for the commands that move more than fits
 * in memory (`grace backup`) or talk to a kernel they started themselves
 * (`grace restore`). The API's other commands use sdk_call_port. */
#ifndef GRACE_CLI_ONESHOT_H
#define GRACE_CLI_ONESHOT_H

#include "serve/layer.h"

#include <stddef.h>

/* Takes `n` bytes of the body; non-zero stops the transfer. */
typedef int (*oneshot_sink)(const char *b, size_t n, void *arg);

typedef struct oneshot_answer {
	int status;
	long long length;   /* Content-Length */
	long long received; /* body bytes given to the sink */
	char files[24];     /* X-Grace-Backup-Files, "" when absent */
	char error[160];    /* why, when the call returns -1 */
} oneshot_answer;

/* `headers` is "Name: value\r\n..." or NULL. Returns 0 once the whole body
 * has reached the sink (whatever the status), or -1 with a reason in
 * a->error (a->status is 0 when nothing answered). */
int oneshot_request(int port, const char *method, const char *target, const char *headers,
		    const char *body, size_t body_len, unsigned timeout_s, oneshot_sink sink,
		    void *arg, oneshot_answer *a);

/* A sink into a buffer of `cap` bytes (a struct oneshot_buf); more fails. */
typedef struct oneshot_buf {
	char *b;
	size_t len, cap;
} oneshot_buf;
int oneshot_to_buf(const char *b, size_t n, void *arg);

#endif
