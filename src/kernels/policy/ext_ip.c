/* ipaddr: an IPv4 or IPv6 address with a prefix length (a single address
 * has the full length). The text forms are Rust's std::net ones, which
 * Cedar uses: dotted quads without leading zeros, IPv6 with one `::` at
 * most and no embedded IPv4 (Cedar refuses those), and a prefix of plain
 * digits without a leading zero. */
#include "kernels/policy/ext.h"

#include <stdio.h>
#include <string.h>

#define IP_TEXT_MAX 43 /* the longest text Cedar accepts */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool parse_v4(const char *s, size_t n, uint8_t out[4])
{
	size_t i = 0;
	for (int part = 0; part < 4; part++) {
		if (part) {
			if (i >= n || s[i] != '.')
				return false;
			i++;
		}
		size_t start = i;
		unsigned v = 0;
		while (i < n && s[i] >= '0' && s[i] <= '9' && i - start < 3)
			v = v * 10 + (unsigned)(s[i++] - '0');
		size_t len = i - start;
		if (len == 0 || (len > 1 && s[start] == '0') || v > 255)
			return false;
		out[part] = (uint8_t)v;
	}
	return i == n;
}

/* Reads up to `limit` colon-separated hex groups from s[*i]; a separator
 * is consumed only together with the group after it. */
static int read_groups(const char *s, size_t n, size_t *i, uint16_t *groups, int limit)
{
	int count = 0;
	for (; count < limit; count++) {
		size_t j = *i;
		if (count > 0) {
			if (j >= n || s[j] != ':')
				break;
			j++;
		}
		size_t start = j;
		unsigned v = 0;
		while (j < n && j - start < 4 && hexval(s[j]) >= 0)
			v = v * 16 + (unsigned)hexval(s[j++]);
		if (j == start)
			break;
		groups[count] = (uint16_t)v;
		*i = j;
	}
	return count;
}

static bool parse_v6(const char *s, size_t n, uint8_t out[16])
{
	uint16_t head[8] = { 0 }, tail[7] = { 0 };
	size_t i = 0;
	int nh = read_groups(s, n, &i, head, 8);
	int nt = 0;
	if (nh < 8) {
		if (i + 1 >= n || s[i] != ':' || s[i + 1] != ':')
			return false;
		i += 2;
		nt = read_groups(s, n, &i, tail, 8 - (nh + 1));
	}
	if (i != n)
		return false;
	uint16_t g[8] = { 0 };
	for (int k = 0; k < nh; k++)
		g[k] = head[k];
	for (int k = 0; k < nt; k++)
		g[8 - nt + k] = tail[k];
	for (int k = 0; k < 8; k++) {
		out[2 * k] = (uint8_t)(g[k] >> 8);
		out[2 * k + 1] = (uint8_t)g[k];
	}
	return true;
}

static bool count_at_least_two(const char *s, size_t n, char c)
{
	const char *p = memchr(s, c, n);
	return p && memchr(p + 1, c, n - (size_t)(p + 1 - s));
}

int cedar_ip_parse(const char *s, size_t n, cedar_ipaddr *out, sdk_err *err)
{
	int shown = (int)(n > 60 ? 60 : n);
	if (n > IP_TEXT_MAX) {
		return sdk_fail(
			err, SDK_EINVAL,
			"error parsing IP address from string `%.*s`: string length is too large",
			shown, s);
	}
	if (count_at_least_two(s, n, ':') && count_at_least_two(s, n, '.')) {
		return sdk_fail(err, SDK_EINVAL,
				"error parsing IP address from string: We do not accept IPv4 "
				"embedded in IPv6 (e.g., ::ffff:127.0.0.1). Found: `%.*s`",
				shown, s);
	}
	const char *slash = memchr(s, '/', n);
	size_t alen = slash ? (size_t)(slash - s) : n;
	cedar_ipaddr ip = { 0 };
	if (parse_v4(s, alen, ip.addr)) {
		ip.v6 = 0;
		ip.prefix = 32;
	} else if (parse_v6(s, alen, ip.addr)) {
		ip.v6 = 1;
		ip.prefix = 128;
	} else {
		return sdk_fail(err, SDK_EINVAL, "invalid IP address: %.*s", shown, s);
	}
	if (slash) {
		const char *p = slash + 1;
		size_t plen = n - alen - 1;
		unsigned max = ip.v6 ? 128 : 32;
		bool ok = plen >= 1 && plen <= (ip.v6 ? 3u : 2u) && !(p[0] == '0' && plen > 1);
		unsigned v = 0;
		for (size_t k = 0; ok && k < plen; k++) {
			if (p[k] < '0' || p[k] > '9')
				ok = false;
			else
				v = v * 10 + (unsigned)(p[k] - '0');
		}
		if (!ok || v > max) {
			return sdk_fail(err, SDK_EINVAL,
					"error parsing prefix of the IP address `%.*s`", shown, s);
		}
		ip.prefix = (uint8_t)v;
	}
	*out = ip;
	return 0;
}

void cedar_ip_format(const cedar_ipaddr *ip, char *buf, size_t cap)
{
	if (!ip->v6) {
		snprintf(buf, cap, "%u.%u.%u.%u/%u", ip->addr[0], ip->addr[1], ip->addr[2], ip->addr[3],
			 ip->prefix);
		return;
	}
	size_t len = 0;
	for (int k = 0; k < 8 && len < cap; k++)
		len += (size_t)snprintf(buf + len, cap - len, "%s%x", k ? ":" : "",
					(unsigned)(ip->addr[2 * k] << 8 | ip->addr[2 * k + 1]));
	if (len < cap)
		snprintf(buf + len, cap - len, "/%u", ip->prefix);
}

static int make_ip(cedar_arena *a, const cedar_value *args, cedar_value *out, sdk_err *err)
{
	if (args[0].kind != CEDAR_STRING)
		return cedar_ext_type_error(&args[0], CEDAR_STRING, err);
	cedar_ipaddr ip;
	if (cedar_ip_parse(args[0].s, args[0].n, &ip, err) < 0)
		return -1;
	cedar_ipaddr *p = cedar_arena_alloc(a, sizeof *p);
	if (!p) {
		return sdk_fail(err, SDK_EINVAL, "out of memory");
	}
	*p = ip;
	*out = (cedar_value){ .kind = CEDAR_IP, .ip = p };
	return 0;
}

static bool in_range(const cedar_ipaddr *child, const cedar_ipaddr *parent)
{
	if (child->v6 != parent->v6)
		return false;
	int bytes = child->v6 ? 16 : 4;
	/* network(parent) <= network(child) && broadcast(child) <= broadcast(parent),
	 * compared as big-endian numbers one byte at a time. */
	uint8_t cn[16], cb[16], pn[16], pb[16];
	for (int k = 0; k < bytes; k++) {
		int bits_c = child->prefix - 8 * k, bits_p = parent->prefix - 8 * k;
		uint8_t mc = bits_c >= 8 ? 0xff : bits_c <= 0 ? 0 : (uint8_t)(0xff << (8 - bits_c));
		uint8_t mp = bits_p >= 8 ? 0xff : bits_p <= 0 ? 0 : (uint8_t)(0xff << (8 - bits_p));
		cn[k] = child->addr[k] & mc;
		cb[k] = child->addr[k] | (uint8_t)~mc;
		pn[k] = parent->addr[k] & mp;
		pb[k] = parent->addr[k] | (uint8_t)~mp;
	}
	return memcmp(pn, cn, (size_t)bytes) <= 0 && memcmp(cb, pb, (size_t)bytes) <= 0;
}

static int ip_arg(const cedar_value *v, sdk_err *err)
{
	return v->kind == CEDAR_IP ? 0 : cedar_ext_type_error(v, CEDAR_IP, err);
}

static int ip_is_ipv4(cedar_arena *a, const cedar_value *args, cedar_value *out, sdk_err *err)
{
	(void)a;
	if (ip_arg(&args[0], err) < 0)
		return -1;
	*out = cedar_bool(!args[0].ip->v6);
	return 0;
}

static int ip_is_ipv6(cedar_arena *a, const cedar_value *args, cedar_value *out, sdk_err *err)
{
	(void)a;
	if (ip_arg(&args[0], err) < 0)
		return -1;
	*out = cedar_bool(args[0].ip->v6);
	return 0;
}

static int ip_is_loopback(cedar_arena *a, const cedar_value *args, cedar_value *out, sdk_err *err)
{
	(void)a;
	if (ip_arg(&args[0], err) < 0)
		return -1;
	const cedar_ipaddr *ip = args[0].ip;
	bool r;
	if (!ip->v6) {
		r = ip->addr[0] == 127 && ip->prefix >= 8;
	} else {
		static const uint8_t one[16] = { [15] = 1 };
		r = !memcmp(ip->addr, one, 16) && ip->prefix >= 128;
	}
	*out = cedar_bool(r);
	return 0;
}

static int ip_is_multicast(cedar_arena *a, const cedar_value *args, cedar_value *out, sdk_err *err)
{
	(void)a;
	if (ip_arg(&args[0], err) < 0)
		return -1;
	const cedar_ipaddr *ip = args[0].ip;
	bool r = ip->v6 ? ip->addr[0] == 0xff && ip->prefix >= 8
			: ip->addr[0] >= 224 && ip->addr[0] <= 239 && ip->prefix >= 4;
	*out = cedar_bool(r);
	return 0;
}

static int ip_is_in_range(cedar_arena *a, const cedar_value *args, cedar_value *out, sdk_err *err)
{
	(void)a;
	if (ip_arg(&args[0], err) < 0 || ip_arg(&args[1], err) < 0)
		return -1;
	*out = cedar_bool(in_range(args[0].ip, args[1].ip));
	return 0;
}

const cedar_ext_def cedar_ext_ip[] = {
	{ "ip", false, 1, make_ip },
	{ "isIpv4", true, 1, ip_is_ipv4 },
	{ "isIpv6", true, 1, ip_is_ipv6 },
	{ "isLoopback", true, 1, ip_is_loopback },
	{ "isMulticast", true, 1, ip_is_multicast },
	{ "isInRange", true, 2, ip_is_in_range },
	{ NULL, false, 0, NULL },
};
