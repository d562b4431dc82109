#include "serve/outbox/classify.h"

#include <stdio.h>
#include <string.h>

#define CLIP_MARKER_MAX 24 /* "...[+" 20 digits " bytes]" fits with room */

bool ob_changes_state(const char *method)
{
	return strcmp(method, "GET") && strcmp(method, "HEAD") && strcmp(method, "OPTIONS");
}

/* In this order, the first rule that applies decides:
 *   a read                                   -> none (changes nothing)
 *   a logged-in caller                       -> security (accountable, and
 *                                               it may have acted)
 *   POST /auth/login answered 200 or 401     -> none (the login records
 *                                               itself as auth.login)
 *   anything else not refused (< 400)        -> security (it acted with no
 *                                               session: a registration)
 *   anything else                            -> noise (refused before any
 *                                               authentication: 400, 401,
 *                                               404, 405, 421, 429, 503 ...)
 */
enum ob_class ob_classify_request(const char *method, const char *path, int status,
				  bool authenticated)
{
	if (!ob_changes_state(method))
		return OB_NONE;
	if (authenticated)
		return OB_SECURITY;
	if (!strcmp(path, "/auth/login") && !strcmp(method, "POST") &&
	    (status == 200 || status == 401))
		return OB_NONE;
	return status < 400 ? OB_SECURITY : OB_NOISE;
}

bool ob_admit_always(const char *method, const char *path)
{
	static const char *const paths[] = {
		"/auth/login",
		"/kernel-ports/audit/start",
		"/kernel-ports/audit/restart",
		"/kernel-ports/audit_kernel/start",
		"/kernel-ports/audit_kernel/restart",
	};
	if (strcmp(method, "POST"))
		return false;
	for (size_t i = 0; i < sizeof paths / sizeof *paths; i++)
		if (!strcmp(path, paths[i]))
			return true;
	return false;
}

bool ob_is_failed_login(const char *action, const char *outcome)
{
	return action && outcome && !strcmp(action, "auth.login") && !strcmp(outcome, "failed");
}

void ob_noise_kind(const char *method, int status, char out[OB_KIND_MAX])
{
	static const char *const known[] = { "POST", "PUT", "PATCH", "DELETE", "GET",
					     "HEAD", "OPTIONS", "CONNECT", "TRACE" };
	const char *m = "OTHER";
	for (size_t i = 0; i < sizeof known / sizeof *known; i++)
		if (!strcmp(method, known[i]))
			m = known[i];
	if (status < 0 || status > 999)
		status = 0;
	snprintf(out, OB_KIND_MAX, "%s %d", m, status);
}

/* The length of the valid UTF-8 sequence (RFC 3629: no overlong forms, no
 * surrogates, nothing past U+10FFFF) at s, or 0 when there is none. */
static size_t utf8_len(const unsigned char *s)
{
	unsigned char c = s[0];
	if (c < 0x80)
		return 1;
	size_t n;
	unsigned char lo = 0x80, hi = 0xBF;
	if (c >= 0xC2 && c <= 0xDF)
		n = 2;
	else if (c >= 0xE0 && c <= 0xEF) {
		n = 3;
		if (c == 0xE0)
			lo = 0xA0;
		else if (c == 0xED)
			hi = 0x9F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 4;
		if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F;
	} else
		return 0;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xBF)
			return 0;
	return n;
}

/* One unit of the clipped form at s: how many input bytes it takes and how
 * many output bytes it makes. */
static void unit(const unsigned char *s, size_t *in, size_t *out)
{
	size_t n = utf8_len(s);
	if (n == 1 && (s[0] < 0x20 || s[0] == 0x7F))
		n = 0;
	*in = n ? n : 1;
	*out = n ? n : 3; /* %XX */
}

char *ob_path_clip(const char *path, size_t max, char *out)
{
	const unsigned char *s = (const unsigned char *)(path ? path : "");
	size_t in, o, total = 0;
	for (size_t i = 0; s[i]; i += in) {
		unit(s + i, &in, &o);
		total += o;
	}
	size_t room = total <= max ? max : max - CLIP_MARKER_MAX;
	size_t i = 0, w = 0;
	for (; s[i]; i += in) {
		unit(s + i, &in, &o);
		if (w + o > room)
			break;
		if (o == 3 && in == 1)
			snprintf(out + w, 4, "%%%02X", s[i]);
		else
			memcpy(out + w, s + i, in);
		w += o;
	}
	out[w] = '\0';
	if (s[i])
		snprintf(out + w, max + 1 - w, "...[+%zu bytes]", strlen((const char *)s + i));
	return out;
}
