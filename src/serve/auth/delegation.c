/* Delegations (delegation.h): a payload of three lines, user, scope and
 * expiry in Unix ms, MACed with HMAC-SHA-256 under the process's key. */
#include "serve/auth/delegation.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAYLOAD_MAX (AUTH_NAME_MAX + AUTH_SCOPE_MAX + 32)
#define B64(n) sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING)

bool auth_is_delegation(const char *token)
{
	return token && !strncmp(token, AUTH_DELEG_PREFIX, strlen(AUTH_DELEG_PREFIX));
}

int auth_deleg_mint(const unsigned char key[AUTH_DELEG_KEY], const char *user, const char *scope,
		    int64_t expires_ms, char *out)
{
	char payload[PAYLOAD_MAX];
	int n = snprintf(payload, sizeof payload, "%s\n%s\n%lld", user, scope,
			 (long long)expires_ms);
	if (n < 0 || n >= (int)sizeof payload || strlen(user) > AUTH_NAME_MAX ||
	    strlen(scope) > AUTH_SCOPE_MAX || strchr(user, '\n') || strchr(scope, '\n'))
		return -1;
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	crypto_auth_hmacsha256(mac, (const unsigned char *)payload, (size_t)n, key);
	char p64[B64(PAYLOAD_MAX)], m64[B64(sizeof mac)];
	sodium_bin2base64(p64, sizeof p64, (const unsigned char *)payload, (size_t)n,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_bin2base64(m64, sizeof m64, mac, sizeof mac, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	n = snprintf(out, AUTH_DELEG_MAX + 1, "%s%s.%s", AUTH_DELEG_PREFIX, p64, m64);
	return n > 0 && n <= AUTH_DELEG_MAX ? 0 : -1;
}

int auth_deleg_check(const unsigned char key[AUTH_DELEG_KEY], const char *token, int64_t now_ms,
		     auth_api_token *out)
{
	if (!auth_is_delegation(token) || strlen(token) > AUTH_DELEG_MAX)
		return -1;
	const char *p64 = token + strlen(AUTH_DELEG_PREFIX);
	const char *dot = strchr(p64, '.');
	if (!dot)
		return -1;
	unsigned char payload[PAYLOAD_MAX + 1], mac[crypto_auth_hmacsha256_BYTES];
	size_t plen = 0, mlen = 0;
	const char *end;
	if (sodium_base642bin(payload, PAYLOAD_MAX, p64, (size_t)(dot - p64), NULL, &plen, &end,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    end != dot ||
	    sodium_base642bin(mac, sizeof mac, dot + 1, strlen(dot + 1), NULL, &mlen, &end,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    *end || mlen != sizeof mac)
		return -1;
	/* The MAC first: nothing of an altered payload is read. */
	if (crypto_auth_hmacsha256_verify(mac, payload, plen, key) != 0)
		return -1;
	payload[plen] = '\0';
	char *user = (char *)payload, *scope = strchr(user, '\n');
	char *exp = scope ? strchr(scope + 1, '\n') : NULL;
	if (!exp)
		return -1;
	*scope++ = '\0';
	*exp++ = '\0';
	char *tail;
	long long expires = strtoll(exp, &tail, 10);
	if (*tail || tail == exp || expires <= now_ms || !*user || !*scope ||
	    strlen(user) > AUTH_NAME_MAX || strlen(scope) > AUTH_SCOPE_MAX)
		return -1;
	memset(out, 0, sizeof *out);
	snprintf(out->id, sizeof out->id, "%s", AUTH_DELEG_ID);
	snprintf(out->name, sizeof out->name, "delegation");
	memcpy(out->owner, user, strlen(user) + 1); /* at most AUTH_NAME_MAX, checked above */
	memcpy(out->scopes, scope, strlen(scope) + 1);
	out->n_scopes = 1;
	return 0;
}
