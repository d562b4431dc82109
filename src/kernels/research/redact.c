#include "kernels/research/redact.h"

#include "sdk/buf.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define KEY_RUN_MIN 32 /* characters of a hex or base64 run that look like a key */

/* Parts of a key's name that say its value is a secret. */
static const char *const secret_words[] = { "password", "passwd", "pwd",        "secret",
					    "token",    "api_key", "apikey",    "api-key",
					    "access_key", "private_key", "credential", "authorization",
					    "cookie",   "session", NULL };

static bool name_char(int c) { return isalnum((unsigned char)c) || c == '_' || c == '-'; }

/* A character of a token: base64, base64url, hex, and the dots of a JWT. */
static bool tok_char(int c)
{
	return isalnum((unsigned char)c) || c == '+' || c == '/' || c == '=' || c == '_' ||
	       c == '-' || c == '.';
}

static bool contains_ci(const char *s, size_t n, const char *w)
{
	size_t m = strlen(w);
	for (size_t i = 0; i + m <= n; i++)
		if (!strncasecmp(s + i, w, m))
			return true;
	return false;
}

static bool secret_name(const char *s, size_t n)
{
	for (size_t i = 0; secret_words[i]; i++)
		if (contains_ci(s, n, secret_words[i]))
			return true;
	return false;
}

/* Whether the token s[0..n) looks like a secret by its shape alone. */
static bool secret_shape(const char *s, size_t n)
{
	static const char *const prefixes[] = { "sk-", "ghp_", "gho_", "ghs_", "github_pat_",
						"xoxb-", "xoxp-", "AKIA", "glpat-", NULL };
	for (size_t i = 0; prefixes[i]; i++) {
		size_t m = strlen(prefixes[i]);
		if (n >= m + 12 && !strncmp(s, prefixes[i], m))
			return true;
	}
	/* A JWT: header.payload[.signature], the header's JSON starts "{"" ->
	 * "eyJ". */
	if (n > 20 && !strncmp(s, "eyJ", 3) && memchr(s, '.', n))
		return true;
	/* The longest run of hex digits, and of base64 characters. */
	size_t hex = 0, b64 = 0, best_hex = 0;
	bool up = false, low = false, dig = false, best_mixed = false;
	for (size_t i = 0; i <= n; i++) {
		int c = i < n ? (unsigned char)s[i] : 0;
		hex = i < n && isxdigit(c) ? hex + 1 : 0;
		if (hex > best_hex)
			best_hex = hex;
		if (i < n && (isalnum(c) || c == '+' || c == '/' || c == '=' || c == '_' || c == '-')) {
			b64++;
			up |= isupper(c) != 0;
			low |= islower(c) != 0;
			dig |= isdigit(c) != 0;
		} else {
			if (b64 >= KEY_RUN_MIN && up && low && dig)
				best_mixed = true;
			b64 = 0;
			up = low = dig = false;
		}
	}
	return best_hex >= KEY_RUN_MIN || best_mixed;
}

/* The end of a value starting at p: up to its closing quote when quoted,
 * else to a space, a comma, a semicolon, an ampersand or a brace. */
static size_t value_len(const char *p, char quote)
{
	size_t n = 0;
	if (quote) {
		while (p[n] && p[n] != quote) {
			if (p[n] == '\\' && p[n + 1])
				n++;
			n++;
		}
		return n;
	}
	while (p[n] && !isspace((unsigned char)p[n]) && !strchr(",;&}\"'", p[n]))
		n++;
	return n;
}

char *rs_redact(const char *in, size_t *count)
{
	sdk_buf o = { 0 };
	size_t redacted = 0;
	sdk_buf_add(&o, "", 0);
	const char *p = in ? in : "";
	while (*p) {
		/* An Authorization scheme and its credentials. */
		if ((p == in || !name_char((unsigned char)p[-1])) &&
		    (!strncasecmp(p, "bearer ", 7) || !strncasecmp(p, "basic ", 6))) {
			size_t w = p[1] == 'e' || p[1] == 'E' ? 7 : 6;
			const char *v = p + w;
			while (*v == ' ')
				v++;
			size_t n = 0;
			while (tok_char((unsigned char)v[n]))
				n++;
			if (n >= 8) {
				sdk_buf_add(&o, p, w);
				sdk_buf_add(&o, RS_REDACTED, strlen(RS_REDACTED));
				redacted++;
				p = v + n;
				continue;
			}
		}
		if (name_char((unsigned char)*p) && (p == in || !name_char((unsigned char)p[-1]))) {
			size_t n = 0;
			while (name_char((unsigned char)p[n]))
				n++;
			/* key=value, key: value, "key": "value" */
			const char *s = p + n;
			if (*s == '"' || *s == '\'')
				s++;
			while (*s == ' ')
				s++;
			if ((*s == '=' || *s == ':') && secret_name(p, n)) {
				s++;
				while (*s == ' ')
					s++;
				char quote = *s == '"' || *s == '\'' ? *s : 0;
				const char *v = quote ? s + 1 : s;
				size_t vn = value_len(v, quote);
				/* "Authorization: Bearer X" is the scheme's case above. */
				bool scheme = !strncasecmp(v, "bearer ", 7) || !strncasecmp(v, "basic ", 6);
				if (vn > 0 && !scheme) {
					sdk_buf_add(&o, p, (size_t)(v - p));
					sdk_buf_add(&o, RS_REDACTED, strlen(RS_REDACTED));
					redacted++;
					p = v + vn;
					continue;
				}
			}
			if (tok_char((unsigned char)*p)) {
				size_t t = 0;
				while (tok_char((unsigned char)p[t]))
					t++;
				if (secret_shape(p, t)) {
					sdk_buf_add(&o, RS_REDACTED, strlen(RS_REDACTED));
					redacted++;
					p += t;
					continue;
				}
			}
			sdk_buf_add(&o, p, n);
			p += n;
			continue;
		}
		if (tok_char((unsigned char)*p) && (p == in || !tok_char((unsigned char)p[-1]))) {
			size_t t = 0;
			while (tok_char((unsigned char)p[t]))
				t++;
			if (secret_shape(p, t)) {
				sdk_buf_add(&o, RS_REDACTED, strlen(RS_REDACTED));
				redacted++;
				p += t;
				continue;
			}
		}
		sdk_buf_add(&o, p, 1);
		p++;
	}
	if (o.oom) {
		sdk_buf_free(&o);
		return NULL;
	}
	if (count)
		*count = redacted;
	return o.p; /* the caller's */
}

size_t rs_redact_json(json_t *v)
{
	size_t n = 0;
	if (json_is_string(v)) {
		size_t c = 0;
		char *r = rs_redact(json_string_value(v), &c);
		if (r && c)
			json_string_set(v, r);
		free(r);
		return c;
	}
	if (json_is_array(v)) {
		size_t i;
		json_t *x;
		json_array_foreach(v, i, x) n += rs_redact_json(x);
		return n;
	}
	if (json_is_object(v)) {
		const char *key;
		json_t *x;
		void *tmp;
		json_object_foreach_safe(v, tmp, key, x) {
			if (secret_name(key, strlen(key)) && !json_is_null(x) && !json_is_boolean(x)) {
				json_object_set_new(v, key, json_string(RS_REDACTED));
				n++;
			} else {
				n += rs_redact_json(x);
			}
		}
	}
	return n;
}
