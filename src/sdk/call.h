/* The one way a process calls a kernel: by kernel name, resolved at each
 * attempt to wherever that kernel listens now (see sdk/ports.h; the main
 * process resolves through its supervisor), over pooled keep-alive
 * connections, with upstream.h's safe-retry rules and a deadline, carrying
 * the caller's credentials: the internal token and the caller's own name
 * (X-Grace-Caller), which the policy issue authorizes. Kernels, the main
 * process's services, probes and the CLI all call through here. */
#ifndef GRACE_SDK_CALL_H
#define GRACE_SDK_CALL_H

#include "sdk/upstream.h"

#include <stdbool.h>
#include <stddef.h>

#define SDK_CALLER_HEADER "X-Grace-Caller"
/* The caller name of the main process's gateway, forwarding a request it
 * decided for the user it names (X-Grace-User): a kernel does not decide
 * it again. The main process's own calls are "grace". */
#define SDK_GATEWAY_CALLER "gateway"
/* The main process by name: a kernel calls its API (:8000, loopback) as it
 * calls a kernel, with a credential of a user's in `headers` (a delegation,
 * serve/auth/delegation.h); it is sent neither the internal token nor an
 * SVID, which are for kernels. sdk_ports_resolve finds its port. */
#define SDK_MAIN_NAME "grace"

typedef struct sdk_caller sdk_caller;

/* status is 0 when there was no answer (then `error` says why); the body is
 * borrowed for the duration of the call. */
typedef void (*sdk_call_cb)(int status, const char *body, size_t len, double latency_ms,
			    const char *error, void *arg);

/* `self` names the caller ("grace" for the main process); `token` is the
 * internal token (borrowed, may be NULL or "" for none); `resolve` maps a
 * kernel's name to its port now. */
sdk_caller *sdk_caller_new(struct event_base *base, const char *self, const char *token,
			   sdk_resolve_fn resolve, void *arg);
/* Ends every call in flight without calling back (never from inside a
 * call's callback). */
void sdk_caller_free(sdk_caller *c);
/* The event loop its calls run on. */
struct event_base *sdk_caller_base(const sdk_caller *c);
/* The attestation the trust kernel gave this process when it joined
 * (docs/trust.md): sent as SDK_ATTESTATION_HEADER on calls to the trust
 * kernel only, so no other kernel ever sees it. Copied; "" or NULL clears. */
#define SDK_ATTESTATION_HEADER "X-Grace-Attestation"
void sdk_caller_set_attestation(sdk_caller *c, const char *attestation);
/* "" or the attestation set (borrowed): for a caller that sends requests
 * of its own to the trust kernel (the gateway's forwards). */
const char *sdk_caller_attestation(const sdk_caller *c);
/* From now on, calls to a kernel (by name; not to the trust kernel) carry
 * this process's JWT-SVID for that callee (SDK_SVID_HEADER in sdk/svid.h),
 * asked of the trust kernel at the first call to it, which waits for it
 * at most 2 s (without one when it cannot be had), and renewed at half its
 * life. `held`: the process is attesting; calls wait (2 to 3 s at most)
 * until sdk_caller_svids_release. 0, or -1 on ENOMEM. */
int sdk_caller_use_svids(sdk_caller *c, const char *domain, unsigned ttl_s, bool held);
void sdk_caller_svids_release(sdk_caller *c);
/* For a caller that sends requests of its own (the gateway's upstream):
 * c's SVID for `kernel` now, SDK_SVID_HAVE with *tok (borrowed until the
 * next call into c); SDK_SVID_NONE (go without one: none can be had now,
 * or c carries none); or SDK_SVID_PENDING, and ready(arg) is called once
 * the fetch is over (then ask again), unless sdk_caller_svid_cancel(c,
 * arg) is called first, or c is freed (then never). A NULL `ready` only
 * asks: nothing is called back. */
int sdk_caller_svid(sdk_caller *c, const char *kernel, const char **tok, void (*ready)(void *),
		    void *arg);
void sdk_caller_svid_cancel(sdk_caller *c, void *arg);
/* The main process's identity (docs/trust.md): every caller made after
 * this sends `attestation` to the trust kernel (as sdk_caller_set_attestation)
 * and, when `domain` is not empty, carries its SVIDs (as
 * sdk_caller_use_svids, never held). Copied. */
void sdk_call_identity(const char *attestation, const char *domain, unsigned ttl_s);

/* method "GET"/"POST"/...; `target` is the path and query, encoded; body
 * may be NULL (sent as application/json). `headers` is NULL or a
 * NULL-terminated list of "Name", "value" pairs. `timeout_ms` bounds the
 * wait for the answer and, with retries, the whole call. Returns 0, or -1
 * when the call could not start (cb is then not called). */
int sdk_call(sdk_caller *c, const char *kernel, const char *method, const char *target,
	     const char *body, size_t len, const char *const *headers, unsigned timeout_ms,
	     sdk_call_cb cb, void *arg);
/* The same to a port, on a connection of its own (probes: they must see
 * what a new client sees), or to a server that is not a kernel (the CLI). */
int sdk_call_port(sdk_caller *c, int port, const char *method, const char *target,
		  const char *body, size_t len, const char *const *headers, unsigned timeout_ms,
		  sdk_call_cb cb, void *arg);

/* Percent-encodes `in` for a path segment or a query value into out
 * (len bytes with the NUL). -1 when it does not fit. */
int sdk_uri_encode(const char *in, char *out, size_t len);

#endif
