/* printf's "%.17g" of a double, without printf, for the numbers of a
 * search answer (a score a hit and query_ms): glibc's exact conversion
 * (multi-precision) was about 2,700 instructions a number, 5% of a
 * medium word's search. Here, for the numbers written in fixed notation
 * (decimal exponent -4 to 16, as %g chooses it for 17 digits), the 17
 * digits come from one 128-bit product: v = m * 2^-s exactly (m < 2^53),
 * so v * 10^k = m * 10^k / 2^s, whose integer part and remainder are
 * exact, and rounded as glibc rounds in the default mode (to nearest,
 * an exact tie to even). Anything else (zero, NaN, infinities, the %e
 * form, a compiler without 128-bit integers) is left to snprintf: 0.
 * test_librarian_search compares it with snprintf on millions of values. */
#ifndef GRACE_LIBRARIAN_G17_H
#define GRACE_LIBRARIAN_G17_H

#include <math.h>
#include <stdint.h>

/* Writes "%.17g" of v to out (32 bytes at least, NUL-ended): its length,
 * or 0 when v is not one this does (the caller asks snprintf). */
static inline int lib_g17(double v, char *out)
{
#ifdef __SIZEOF_INT128__
	typedef unsigned __int128 u128;
	const uint64_t e16 = 10000000000000000u, e17 = 100000000000000000u;
	if (!isfinite(v) || v == 0)
		return 0;
	double a = fabs(v);
	int e2;
	uint64_t m = (uint64_t)ldexp(frexp(a, &e2), 53); /* a = m * 2^(e2 - 53), exactly */
	if (e2 > 53)
		return 0; /* >= 2^53: the %e form from 1e17 on; left to printf */
	unsigned s = (unsigned)(53 - e2); /* a = m / 2^s; s < 128 for a >= 1e-4 */
	int x = (int)floor(log10(a));    /* the decimal exponent, perhaps off by one */
	uint64_t d = 0;
	for (int tries = 0;; tries++) {
		if (x < -4 || x > 16 || s > 127 || tries > 2)
			return 0;
		u128 p = m;
		for (int k = 16 - x; k > 0; k--) /* k <= 20: m * 10^k < 2^120 */
			p *= 10;
		u128 q = s ? p >> s : p;
		if (q < e16) {
			x--;
			continue;
		}
		if (q >= e17) {
			x++;
			continue;
		}
		d = (uint64_t)q;
		if (s) {
			u128 rem = p & (((u128)1 << s) - 1), half = (u128)1 << (s - 1);
			if (rem > half || (rem == half && (d & 1)))
				d++;
		}
		if (d == e17) { /* rounded up to the next power of ten */
			d = e16;
			if (++x > 16)
				return 0;
		}
		break;
	}
	char dg[17];
	for (int i = 16; i >= 0; i--, d /= 10)
		dg[i] = (char)('0' + d % 10);
	int n = 0;
	if (v < 0)
		out[n++] = '-';
	int last = 16; /* the last digit kept: trailing zeros of the fraction go */
	while (last > (x > 0 ? x : 0) && dg[last] == '0')
		last--;
	if (x >= 0) {
		for (int i = 0; i <= x; i++)
			out[n++] = dg[i];
		if (last > x) {
			out[n++] = '.';
			for (int i = x + 1; i <= last; i++)
				out[n++] = dg[i];
		}
	} else {
		out[n++] = '0';
		out[n++] = '.';
		for (int i = 0; i < -x - 1; i++)
			out[n++] = '0';
		for (int i = 0; i <= last; i++)
			out[n++] = dg[i];
	}
	out[n] = '\0';
	return n;
#else
	(void)v, (void)out;
	return 0;
#endif
}

#endif
