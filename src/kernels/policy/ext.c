#include "kernels/policy/ext.h"

#include <stdio.h>
#include <string.h>

static const cedar_ext_def *const tables[] = { cedar_ext_decimal, cedar_ext_ip, cedar_ext_datetime };

const cedar_ext_def *cedar_ext_find(const char *name, size_t len)
{
	for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
		for (const cedar_ext_def *d = tables[t]; d->name; d++)
			if (strlen(d->name) == len && !memcmp(d->name, name, len))
				return d;
	return NULL;
}

int cedar_ext_call(const cedar_ext_def *f, cedar_arena *a, const cedar_value *args, unsigned n,
		   cedar_value *out, sdk_err *err)
{
	if (n != f->arity) {
		return sdk_fail(
			err, SDK_EINVAL,
			"wrong number of arguments provided to extension function `%s`: expected %u, got %u",
			f->name, f->arity, n);
	}
	return f->call(a, args, out, err);
}
