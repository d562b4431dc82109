/* OTLP/JSON's 64-bit integers (the specification, "JSON Protobuf
 * Encoding": a JSON number or a decimal string), read once for traces,
 * logs and metrics alike. */
#include "kernels/telemetry/otlp.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>

int otlp_json_u64(const json_t *v, uint64_t *out)
{
	if (!v || json_is_null(v)) {
		*out = 0;
		return 0;
	}
	if (json_is_integer(v)) {
		if (json_integer_value(v) < 0)
			return -1;
		*out = (uint64_t)json_integer_value(v);
		return 0;
	}
	const char *s = json_string_value(v);
	if (!s || !isdigit((unsigned char)*s))
		return -1;
	char *end;
	errno = 0;
	unsigned long long u = strtoull(s, &end, 10);
	if (*end || errno)
		return -1;
	*out = u;
	return 0;
}
