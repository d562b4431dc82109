#include "serve/auth/source.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

void auth_source_key(const char *peer, char out[AUTH_SOURCE_KEY_MAX])
{
	struct in_addr v4;
	struct in6_addr v6;
	if (inet_pton(AF_INET, peer, &v4) == 1) {
		if ((ntohl(v4.s_addr) >> 24) == 127) {
			snprintf(out, AUTH_SOURCE_KEY_MAX, "loopback");
			return;
		}
		inet_ntop(AF_INET, &v4, out, AUTH_SOURCE_KEY_MAX);
		return;
	}
	if (inet_pton(AF_INET6, peer, &v6) == 1) {
		static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
		if (IN6_IS_ADDR_LOOPBACK(&v6)) {
			snprintf(out, AUTH_SOURCE_KEY_MAX, "loopback");
			return;
		}
		if (!memcmp(v6.s6_addr, mapped, sizeof mapped)) {
			char v4text[INET_ADDRSTRLEN];
			inet_ntop(AF_INET, v6.s6_addr + 12, v4text, sizeof v4text);
			auth_source_key(v4text, out);
			return;
		}
		memset(v6.s6_addr + 8, 0, 8); /* the host's /64 */
		char text[INET6_ADDRSTRLEN];
		inet_ntop(AF_INET6, &v6, text, sizeof text);
		snprintf(out, AUTH_SOURCE_KEY_MAX, "%s/64", text);
		return;
	}
	/* Not an address: the kind, never the text (it could be anything). */
	snprintf(out, AUTH_SOURCE_KEY_MAX, "%s", peer[0] == '\0' ? "local" : "other");
}

int64_t auth_source_delay_ms(const limiter *sources, const char *key, int64_t now_ms)
{
	limiter_count c;
	if (limiter_get(sources, key, now_ms, &c) < 0)
		return AUTH_SOURCE_DELAY_MAX_MS;
	return limiter_delay_ms(c.failures, AUTH_SOURCE_FREE_FAILURES, AUTH_SOURCE_DELAY_BASE_MS,
				AUTH_SOURCE_DELAY_MAX_MS);
}
