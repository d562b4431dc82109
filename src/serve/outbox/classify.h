/* What the main process's audit events are (docs/audit.md): a security
 * event, kept one by one and never dropped, or noise, a request refused
 * before any authentication, only counted; and the bounded, valid UTF-8
 * form in which an event quotes a request's path. Pure: no I/O. */
#ifndef GRACE_OUTBOX_CLASSIFY_H
#define GRACE_OUTBOX_CLASSIFY_H

#include "serve/layer.h"

#include <stdbool.h>
#include <stddef.h>

#define OB_PATH_MAX 512    /* bytes of a path an event quotes, marker included */
#define OB_SAMPLE_MAX 128  /* bytes of the sample path an aggregate quotes */
#define OB_KIND_MAX 24     /* "PATCH 405": a noise kind, with its NUL */

enum ob_class {
	OB_NONE,     /* not recorded here: a read, or recorded by its handler */
	OB_SECURITY, /* one event each, never dropped */
	OB_NOISE,    /* counted per source, kind and window */
};

/* What a request answered on :8000 is to the audit trail. `authenticated`:
 * the caller presented a valid session. */
enum ob_class ob_classify_request(const char *method, const char *path, int status,
				  bool authenticated);
/* Whether a request with this method may change state (everything but
 * GET, HEAD and OPTIONS). */
bool ob_changes_state(const char *method);
/* Requests let through even while the audit journal is near its bound,
 * because they are how an operator gets the audit trail going again:
 * logging in, and starting or restarting the audit kernel. Their events
 * go into the journal's reserve. */
bool ob_admit_always(const char *method, const char *path);
/* True for the event a failed login makes: those are counted per source,
 * user name and window rather than kept one by one. */
bool ob_is_failed_login(const char *action, const char *outcome);
/* The kind a refused request is counted under: "POST 401". The method is
 * one of the standard ones or "OTHER", so kinds are few. */
void ob_noise_kind(const char *method, int status, char out[OB_KIND_MAX]);
/* Writes `path` into `out` as valid UTF-8 of at most `max` bytes (out has
 * max + 1): bytes that are not UTF-8, and control characters, as %XX; a
 * longer path is cut on a character boundary and ends "...[+N bytes]", N
 * being how many bytes of the path were left out. `max` >= 32. Returns out. */
char *ob_path_clip(const char *path, size_t max, char *out);

#endif
