/* SPIFFE IDs, as https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md
 * defines them. The parser is strict on purpose: an ID that two verifiers
 * could read differently must not name a workload. */
#include "kernels/trust/spiffe.h"

#include "sdk/svid.h"

#include <stdio.h>
#include <string.h>

#define SCHEME "spiffe://"

static int td_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
	       c == '_';
}

static int path_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '-' || c == '_';
}

int tr_trust_domain_valid(const char *td)
{
	size_t n = strlen(td);
	if (n == 0 || n > TR_TRUST_DOMAIN_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!td_char(td[i]))
			return 0;
	return 1;
}

int tr_spiffe_id_parse(const char *s, tr_spiffe_id *out, sdk_err *err)
{
	size_t n = strlen(s);
	if (n > TR_SPIFFE_ID_MAX)
		return sdk_fail(err, SDK_EINVAL, "a SPIFFE ID is at most %d bytes", TR_SPIFFE_ID_MAX);
	if (strncmp(s, SCHEME, strlen(SCHEME)))
		return sdk_fail(err, SDK_EINVAL, "a SPIFFE ID starts with \"spiffe://\"");
	const char *td = s + strlen(SCHEME);
	size_t tdlen = strcspn(td, "/");
	if (tdlen == 0)
		return sdk_fail(err, SDK_EINVAL, "the trust domain is missing");
	if (tdlen > TR_TRUST_DOMAIN_MAX)
		return sdk_fail(err, SDK_EINVAL, "the trust domain is longer than %d",
				TR_TRUST_DOMAIN_MAX);
	for (size_t i = 0; i < tdlen; i++) {
		char c = td[i];
		if (c == ':' || c == '@' || c == '?' || c == '#')
			return sdk_fail(err, SDK_EINVAL,
					"a SPIFFE ID has no port, user info, query or fragment");
		if (!td_char(c))
			return sdk_fail(err, SDK_EINVAL,
					"the trust domain may hold only a-z, 0-9, '.', '-' and '_'");
	}
	const char *path = td + tdlen;
	if (*path) {
		if (path[strlen(path) - 1] == '/')
			return sdk_fail(err, SDK_EINVAL, "the path has a trailing '/'");
		const char *seg = path + 1;
		for (;;) {
			size_t len = strcspn(seg, "/");
			if (len == 0)
				return sdk_fail(err, SDK_EINVAL, "the path has an empty segment");
			if ((len == 1 && seg[0] == '.') || (len == 2 && !strncmp(seg, "..", 2)))
				return sdk_fail(err, SDK_EINVAL,
						"the path has a '.' or '..' segment");
			for (size_t i = 0; i < len; i++)
				if (!path_char(seg[i]))
					return sdk_fail(err, SDK_EINVAL,
							"a path segment may hold only a-z, A-Z, 0-9,"
							" '.', '-' and '_'");
			if (!seg[len])
				break;
			seg += len + 1;
		}
	}
	if (out) {
		memcpy(out->trust_domain, td, tdlen);
		out->trust_domain[tdlen] = '\0';
		snprintf(out->path, sizeof out->path, "%s", path);
	}
	return 0;
}

int tr_workload_id(const char *td, const char *name, char *out, size_t outlen, sdk_err *err)
{
	if (!tr_trust_domain_valid(td))
		return sdk_fail(err, SDK_EINVAL, "bad trust domain");
	/* A node ("node/NAME") is named as a kernel is. */
	const char *n = name && !strncmp(name, SDK_SVID_NODE_PREFIX, strlen(SDK_SVID_NODE_PREFIX))
				? name + strlen(SDK_SVID_NODE_PREFIX)
				: name;
	if (n) {
		size_t len = strlen(n);
		if (len == 0 || len > 32)
			return sdk_fail(err, SDK_EINVAL, "a kernel or node name is 1 to 32 characters");
		for (size_t i = 0; i < len; i++) {
			char c = n[i];
			if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
				return sdk_fail(err, SDK_EINVAL,
						"a kernel or node name holds only a-z, 0-9 and '_'");
		}
	}
	int w;
	if (!name)
		w = snprintf(out, outlen, "spiffe://%s/grace", td);
	else if (n != name)
		w = snprintf(out, outlen, "spiffe://%s/node/%s", td, n);
	else
		w = snprintf(out, outlen, "spiffe://%s/kernel/%s", td, n);
	if (w < 0 || (size_t)w >= outlen)
		return sdk_fail(err, SDK_EINVAL, "SPIFFE ID too long");
	return 0;
}
