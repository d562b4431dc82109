/* decimal: fixed point with four digits after the point, in a signed 64-bit
 * integer (-922337203685477.5808 to 922337203685477.5807). Cedar compares
 * decimals only through the methods; `<` on them is a type error. */
#include "kernels/policy/ext.h"

#include <stdio.h>
#include <string.h>

#define DECIMAL_DIGITS 4

int cedar_decimal_parse(const char *s, size_t n, int64_t *out, sdk_err *err)
{
	size_t i = 0;
	bool neg = false;
	if (i < n && s[i] == '-')
		neg = true, i++;
	size_t int_start = i;
	while (i < n && s[i] >= '0' && s[i] <= '9')
		i++;
	size_t int_end = i;
	if (int_end == int_start || i >= n || s[i] != '.')
		goto malformed;
	i++;
	size_t frac_start = i;
	while (i < n && s[i] >= '0' && s[i] <= '9')
		i++;
	if (i == frac_start || i != n)
		goto malformed;
	/* The integer part, times 10^4, must fit: as Cedar, accumulate with
	 * the sign so that the most negative value is reachable. */
	int64_t v = 0;
	for (size_t k = int_start; k < int_end; k++) {
		int d = s[k] - '0';
		if (__builtin_mul_overflow(v, 10, &v) ||
		    (neg ? __builtin_sub_overflow(v, d, &v) : __builtin_add_overflow(v, d, &v)))
			goto overflow;
	}
	if (__builtin_mul_overflow(v, 10000, &v))
		goto overflow;
	size_t flen = i - frac_start;
	if (flen > DECIMAL_DIGITS) {
		return sdk_fail(err, SDK_EINVAL, "too many digits after the decimal in `%.*s`",
				(int)(n > 60 ? 60 : n), s);
	}
	int64_t frac = 0;
	for (size_t k = frac_start; k < i; k++)
		frac = frac * 10 + (s[k] - '0');
	for (size_t k = flen; k < DECIMAL_DIGITS; k++)
		frac *= 10;
	if (neg ? __builtin_sub_overflow(v, frac, &v) : __builtin_add_overflow(v, frac, &v))
		goto overflow;
	*out = v;
	return 0;
malformed:
	return sdk_fail(err, SDK_EINVAL, "`%.*s` is not a well-formed decimal value",
			(int)(n > 60 ? 60 : n), s);
overflow:
	return sdk_fail(err, SDK_EINVAL, "overflow when converting to decimal");
}

void cedar_decimal_format(int64_t v, char *buf, size_t cap)
{
	unsigned long long a = v < 0 ? (unsigned long long)(-(v + 1)) + 1 : (unsigned long long)v;
	snprintf(buf, cap, "%s%llu.%04llu", v < 0 ? "-" : "", a / 10000, a % 10000);
}

int cedar_ext_type_error(const cedar_value *got, int want_kind, sdk_err *err)
{
	return sdk_fail(err, SDK_EINVAL, "type error: expected %s, got %s",
			cedar_kind_name(want_kind), cedar_kind_name(got->kind));
}

static int make_decimal(cedar_arena *a, const cedar_value *args, cedar_value *out, sdk_err *err)
{
	(void)a;
	if (args[0].kind != CEDAR_STRING)
		return cedar_ext_type_error(&args[0], CEDAR_STRING, err);
	int64_t v;
	if (cedar_decimal_parse(args[0].s, args[0].n, &v, err) < 0)
		return -1;
	*out = (cedar_value){ .kind = CEDAR_DECIMAL, .i = v };
	return 0;
}

static int two_decimals(const cedar_value *args, sdk_err *err)
{
	for (int k = 0; k < 2; k++)
		if (args[k].kind != CEDAR_DECIMAL)
			return cedar_ext_type_error(&args[k], CEDAR_DECIMAL, err);
	return 0;
}

#define DECIMAL_CMP(fn, op)                                                                        \
	static int fn(cedar_arena *a, const cedar_value *args, cedar_value *out, sdk_err *err)     \
	{                                                                                          \
		(void)a;                                                                           \
		if (two_decimals(args, err) < 0)                                                   \
			return -1;                                                                 \
		*out = cedar_bool(args[0].i op args[1].i);                                         \
		return 0;                                                                          \
	}

DECIMAL_CMP(decimal_lt, <)
DECIMAL_CMP(decimal_le, <=)
DECIMAL_CMP(decimal_gt, >)
DECIMAL_CMP(decimal_ge, >=)

const cedar_ext_def cedar_ext_decimal[] = {
	{ "decimal", false, 1, make_decimal },
	{ "lessThan", true, 2, decimal_lt },
	{ "lessThanOrEqual", true, 2, decimal_le },
	{ "greaterThan", true, 2, decimal_gt },
	{ "greaterThanOrEqual", true, 2, decimal_ge },
	{ NULL, false, 0, NULL },
};
