/* One HTTP request from this process to a kernel on loopback, on a fresh
 * connection with a timeout: for probes and kernel-to-kernel calls. */
#ifndef GRACE_SDK_CLIENT_H
#define GRACE_SDK_CLIENT_H

#include <stddef.h>

struct event_base;
typedef struct sdk_client sdk_client;

/* status is 0 when there was no answer (then `error` says why); the body is
 * borrowed for the duration of the call. */
typedef void (*sdk_client_cb)(int status, const char *body, size_t len, double latency_ms,
			      const char *error, void *arg);

/* Tracks calls in flight so they can all be ended at shutdown. */
sdk_client *sdk_client_new(struct event_base *base);
/* Every call then carries the internal token (borrowed; must outlive c). */
void sdk_client_set_token(sdk_client *c, const char *token);
/* Ends every call in flight without calling back. */
void sdk_client_free(sdk_client *c);

/* method "GET"/"POST"/...; body may be NULL (sent as application/json).
 * `headers` is NULL or a NULL-terminated list of "Name", "value" pairs.
 * Returns 0, or -1 when the call could not start (cb is then not called). */
int sdk_client_call(sdk_client *c, int port, const char *method, const char *path,
		    const char *body, size_t len, const char *const *headers,
		    unsigned timeout_ms, sdk_client_cb cb, void *arg);

#endif
