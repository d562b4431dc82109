/* W3C Trace Context parsing (tracecontext.h). */
#include "sdk/tracecontext.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* A lowercase hex digit's value with bit 0x10 set; 0 for any other byte
 * (upper case is invalid: the specification says lowercase). A table, as
 * every kernel parses a traceparent on every request from :8000: with a
 * branch per digit sdk_traceparent_parse took 754 instructions, with the
 * table 468 (callgrind, a proxied /health). */
#define H(c, v) [c] = 0x10 | (v)
static const uint8_t hexdigit[256] = {
	H('0', 0),  H('1', 1),  H('2', 2),  H('3', 3),  H('4', 4),  H('5', 5),
	H('6', 6),  H('7', 7),  H('8', 8),  H('9', 9),  H('a', 10), H('b', 11),
	H('c', 12), H('d', 13), H('e', 14), H('f', 15),
};
#undef H

static int hex_bytes(const char *s, uint8_t *out, size_t n)
{
	unsigned all = 0x10;
	for (size_t i = 0; i < n; i++) {
		unsigned hi = hexdigit[(uint8_t)s[2 * i]], lo = hexdigit[(uint8_t)s[2 * i + 1]];
		all &= hi & lo;
		out[i] = (uint8_t)((hi & 15) << 4 | (lo & 15));
	}
	return all ? 0 : -1;
}

bool sdk_trace_id_valid(const uint8_t *id, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (id[i])
			return true;
	return false;
}

static bool ows(char c) { return c == ' ' || c == '\t'; }

int sdk_traceparent_parse(const char *value, sdk_trace_ctx *out)
{
	if (!value)
		return -1;
	while (ows(*value))
		value++;
	size_t n = strlen(value);
	while (n && ows(value[n - 1]))
		n--;
	if (n < SDK_TRACEPARENT_LEN)
		return -1;
	const char *v = value;
	uint8_t version;
	if (hex_bytes(v, &version, 1) < 0 || version == 0xff)
		return -1;
	/* Version 00 is exactly this long; a later version may add fields
	 * after a '-', which a version-00 reader ignores. */
	if (version == 0 ? n != SDK_TRACEPARENT_LEN
			 : n > SDK_TRACEPARENT_LEN && v[SDK_TRACEPARENT_LEN] != '-')
		return -1;
	if (v[2] != '-' || v[35] != '-' || v[52] != '-')
		return -1;
	sdk_trace_ctx c;
	if (hex_bytes(v + 3, c.trace_id, 16) < 0 || hex_bytes(v + 36, c.span_id, 8) < 0 ||
	    hex_bytes(v + 53, &c.flags, 1) < 0)
		return -1;
	if (!sdk_trace_id_valid(c.trace_id, 16) || !sdk_trace_id_valid(c.span_id, 8))
		return -1;
	*out = c;
	return 0;
}

void sdk_traceparent_format(const sdk_trace_ctx *c, char *out)
{
	static const char d[] = "0123456789abcdef";
	char *p = out;
	*p++ = '0', *p++ = '0', *p++ = '-';
	for (int i = 0; i < 16; i++)
		*p++ = d[c->trace_id[i] >> 4], *p++ = d[c->trace_id[i] & 15];
	*p++ = '-';
	for (int i = 0; i < 8; i++)
		*p++ = d[c->span_id[i] >> 4], *p++ = d[c->span_id[i] & 15];
	*p++ = '-';
	*p++ = d[c->flags >> 4], *p++ = d[c->flags & 15];
	*p = '\0';
}

static bool key_chr(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
	       c == '*' || c == '/';
}

/* key = simple-key / multi-tenant-key (Trace Context, "Key"):
 * simple-key = lcalpha 0*255(key chars); multi-tenant-key = tenant-id "@"
 * system-id, tenant-id = (lcalpha / DIGIT) 0*240(key chars), system-id =
 * lcalpha 0*13(key chars). */
static bool key_valid(const char *k, size_t n)
{
	const char *at = memchr(k, '@', n);
	if (!at) {
		if (n < 1 || n > 256 || !(k[0] >= 'a' && k[0] <= 'z'))
			return false;
		for (size_t i = 1; i < n; i++)
			if (!key_chr(k[i]))
				return false;
		return true;
	}
	size_t tn = (size_t)(at - k), sn = n - tn - 1;
	if (tn < 1 || tn > 241 || sn < 1 || sn > 14)
		return false;
	if (!((k[0] >= 'a' && k[0] <= 'z') || (k[0] >= '0' && k[0] <= '9')))
		return false;
	for (size_t i = 1; i < tn; i++)
		if (!key_chr(k[i]))
			return false;
	if (!(at[1] >= 'a' && at[1] <= 'z'))
		return false;
	for (size_t i = 2; i <= sn; i++)
		if (!key_chr(at[i]))
			return false;
	return true;
}

/* value = 0*255(chr) nblk-chr; chr = %x20 / nblk-chr; nblk-chr =
 * %x21-2B / %x2D-3C / %x3E-7E (no ',' or '='). */
static bool value_valid(const char *v, size_t n)
{
	if (n < 1 || n > 256 || v[n - 1] == ' ')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c < 0x20 || c > 0x7e || c == ',' || c == '=')
			return false;
	}
	return true;
}

#define TRACESTATE_MEMBERS_MAX 32

int sdk_tracestate_parse(const char *value, char *out, size_t len)
{
	size_t o = 0, members = 0;
	struct { const char *k; size_t n; } keys[TRACESTATE_MEMBERS_MAX];
	if (len)
		out[0] = '\0';
	const char *p = value ? value : "";
	for (;;) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		const char *m = p;
		while (n && ows(*m))
			m++, n--;
		while (n && ows(m[n - 1]))
			n--;
		if (n) { /* an empty member (only OWS) is allowed and dropped */
			const char *eq = memchr(m, '=', n);
			if (!eq || members == TRACESTATE_MEMBERS_MAX)
				return -1;
			size_t kn = (size_t)(eq - m);
			if (!key_valid(m, kn) || !value_valid(eq + 1, n - kn - 1))
				return -1;
			for (size_t i = 0; i < members; i++)
				if (keys[i].n == kn && !memcmp(keys[i].k, m, kn))
					return -1; /* a key twice: the whole header is invalid */
			keys[members].k = m, keys[members].n = kn;
			members++;
			if (o + n + 2 > len)
				return -1; /* longer than we keep: discarded, not cut */
			if (o)
				out[o++] = ',';
			memcpy(out + o, m, n);
			o += n;
			out[o] = '\0';
		}
		if (!end)
			break;
		p = end + 1;
	}
	return 0;
}

/* xoshiro256** per thread, seeded once from getrandom: a span id per hop
 * of every request must not cost a system call each (the gateway's
 * throughput), and W3C Trace Context asks ids be random, not secret.
 * Every process that makes ids was exec'd, so none shares a parent's state. */
static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t next_u64(void)
{
	static _Thread_local uint64_t st[4];
	static _Thread_local bool seeded;
	if (!seeded) {
		if (getrandom(st, sizeof st, GRND_NONBLOCK) != (ssize_t)sizeof st) {
			/* No entropy yet (early boot): unique, not secret. */
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^
				     (uint64_t)(uintptr_t)&seeded ^ (uint64_t)getpid() << 40;
			for (int i = 0; i < 4; i++) { /* splitmix64 */
				uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
				z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
				z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
				st[i] = z ^ (z >> 31);
			}
		}
		seeded = true;
	}
	uint64_t r = rotl(st[1] * 5, 7) * 9, t = st[1] << 17;
	st[2] ^= st[0], st[3] ^= st[1], st[1] ^= st[2], st[0] ^= st[3];
	st[2] ^= t, st[3] = rotl(st[3], 45);
	return r;
}

void sdk_trace_random(uint8_t *out, size_t n)
{
	do {
		for (size_t i = 0; i < n; i += 8) {
			uint64_t r = next_u64();
			memcpy(out + i, &r, n - i < 8 ? n - i : 8);
		}
	} while (!sdk_trace_id_valid(out, n));
}
