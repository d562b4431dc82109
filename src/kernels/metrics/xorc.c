#include "kernels/metrics/xorc.h"

#include <stdlib.h>
#include <string.h>

#define NO_WINDOW 0xff

static uint64_t dbits(double v)
{
	uint64_t u;
	memcpy(&u, &v, sizeof u);
	return u;
}

static double dval(uint64_t u)
{
	double v;
	memcpy(&v, &u, sizeof v);
	return v;
}

/* ---- writing */

static int reserve(xorc_app *a, size_t more_bits)
{
	size_t need = XORC_HEADER + (a->bits + more_bits + 7) / 8;
	if (need <= a->cap)
		return 0;
	size_t cap = a->cap ? a->cap : 32;
	while (cap < need)
		cap *= 2;
	uint8_t *b = realloc(a->buf, cap);
	if (!b)
		return -1;
	memset(b + a->cap, 0, cap - a->cap);
	a->buf = b;
	a->cap = cap;
	return 0;
}

static void put_bits(xorc_app *a, uint64_t v, unsigned n)
{
	uint8_t *s = a->buf + XORC_HEADER;
	while (n > 0) {
		size_t byte = a->bits / 8;
		unsigned used = (unsigned)(a->bits % 8), room = 8 - used;
		unsigned take = n < room ? n : room;
		uint8_t part = (uint8_t)((v >> (n - take)) & ((1u << take) - 1));
		s[byte] |= (uint8_t)(part << (room - take));
		a->bits += take;
		n -= take;
	}
}

static void put_uvarint(xorc_app *a, uint64_t x)
{
	while (x >= 0x80) {
		put_bits(a, (x & 0x7f) | 0x80, 8);
		x >>= 7;
	}
	put_bits(a, x, 8);
}

static void put_varint(xorc_app *a, int64_t x)
{
	uint64_t ux = (uint64_t)x << 1;
	if (x < 0)
		ux = ~ux;
	put_uvarint(a, ux);
}

static bool in_range(int64_t x, unsigned nbits)
{
	return -((1LL << (nbits - 1)) - 1) <= x && x <= (1LL << (nbits - 1));
}

static void put_value(xorc_app *a, uint64_t v)
{
	uint64_t delta = v ^ a->v;
	if (delta == 0) {
		put_bits(a, 0, 1);
		return;
	}
	put_bits(a, 1, 1);
	uint8_t lead = (uint8_t)__builtin_clzll(delta), trail = (uint8_t)__builtin_ctzll(delta);
	if (lead >= 32)
		lead = 31; /* 5 bits hold it */
	if (a->leading != NO_WINDOW && lead >= a->leading && trail >= a->trailing) {
		put_bits(a, 0, 1);
		put_bits(a, delta >> a->trailing, 64u - a->leading - a->trailing);
		return;
	}
	a->leading = lead;
	a->trailing = trail;
	put_bits(a, 1, 1);
	put_bits(a, lead, 5);
	unsigned sig = 64u - lead - trail;
	put_bits(a, sig & 0x3f, 6); /* 64 is written as 0 */
	put_bits(a, delta >> trail, sig);
}

void xorc_app_init(xorc_app *a)
{
	memset(a, 0, sizeof *a);
	a->leading = NO_WINDOW;
}

void xorc_app_free(xorc_app *a)
{
	free(a->buf);
	xorc_app_init(a);
}

int xorc_append(xorc_app *a, int64_t t, double v)
{
	if (a->n == XORC_SAMPLES_MAX)
		return -1;
	/* The longest sample: 4 + 64 bits of time, 2 + 5 + 6 + 64 of value. */
	if (reserve(a, 160) < 0)
		return -1;
	uint64_t vb = dbits(v);
	if (a->n == 0) {
		put_varint(a, t);
		put_bits(a, vb, 64);
	} else if (a->n == 1) {
		a->t_delta = (uint64_t)(t - a->t);
		put_uvarint(a, a->t_delta);
		put_value(a, vb);
	} else {
		uint64_t delta = (uint64_t)(t - a->t);
		int64_t dod = (int64_t)(delta - a->t_delta);
		if (dod == 0) {
			put_bits(a, 0, 1);
		} else if (in_range(dod, 14)) {
			put_bits(a, 0x2, 2);
			put_bits(a, (uint64_t)dod, 14);
		} else if (in_range(dod, 17)) {
			put_bits(a, 0x6, 3);
			put_bits(a, (uint64_t)dod, 17);
		} else if (in_range(dod, 20)) {
			put_bits(a, 0xe, 4);
			put_bits(a, (uint64_t)dod, 20);
		} else {
			put_bits(a, 0xf, 4);
			put_bits(a, (uint64_t)dod, 64);
		}
		a->t_delta = delta;
		put_value(a, vb);
	}
	a->t = t;
	a->v = vb;
	a->n++;
	a->buf[0] = (uint8_t)(a->n >> 8);
	a->buf[1] = (uint8_t)a->n;
	return 0;
}

size_t xorc_bytes(const xorc_app *a)
{
	return a->n ? XORC_HEADER + (a->bits + 7) / 8 : 0;
}

int xorc_app_load(xorc_app *a, const uint8_t *data, size_t len)
{
	xorc_app_init(a);
	xorc_it it;
	xorc_it_init(&it, data, len);
	int64_t t;
	double v;
	while (xorc_next(&it, &t, &v))
		;
	if (it.bad || it.i != it.n)
		return -1;
	if (it.n == 0)
		return 0;
	a->cap = len + 32;
	a->buf = calloc(1, a->cap);
	if (!a->buf)
		return -1;
	memcpy(a->buf, data, len);
	a->bits = it.pos;
	a->n = it.n;
	a->t = it.t;
	a->t_delta = it.t_delta;
	a->v = it.v;
	a->leading = it.leading;
	a->trailing = it.trailing;
	/* Bits past the stream's end must be zero for put_bits to OR into. */
	size_t full = XORC_HEADER + a->bits / 8;
	if (a->bits % 8)
		a->buf[full] &= (uint8_t)(0xff << (8 - a->bits % 8));
	memset(a->buf + full + (a->bits % 8 ? 1 : 0), 0,
	       a->cap - full - (a->bits % 8 ? 1 : 0));
	return 0;
}

/* ---- reading */

unsigned xorc_count(const uint8_t *data, size_t len)
{
	return len >= XORC_HEADER ? ((unsigned)data[0] << 8) | data[1] : 0;
}

void xorc_it_init(xorc_it *it, const uint8_t *data, size_t len)
{
	memset(it, 0, sizeof *it);
	it->leading = NO_WINDOW;
	if (len < XORC_HEADER) {
		it->bad = len != 0;
		return;
	}
	it->buf = data + XORC_HEADER;
	it->len_bits = (len - XORC_HEADER) * 8;
	it->n = (uint16_t)xorc_count(data, len);
}

static bool get_bits(xorc_it *it, unsigned n, uint64_t *out)
{
	if (it->pos + n > it->len_bits) {
		it->bad = true;
		return false;
	}
	uint64_t v = 0;
	while (n > 0) {
		size_t byte = it->pos / 8;
		unsigned used = (unsigned)(it->pos % 8), room = 8 - used;
		unsigned take = n < room ? n : room;
		uint8_t b = it->buf[byte];
		uint64_t part = (uint64_t)(b >> (room - take)) & ((1u << take) - 1);
		v = (v << take) | part;
		it->pos += take;
		n -= take;
	}
	*out = v;
	return true;
}

static bool get_uvarint(xorc_it *it, uint64_t *out)
{
	uint64_t x = 0;
	for (unsigned shift = 0; shift < 70; shift += 7) {
		uint64_t b;
		if (!get_bits(it, 8, &b))
			return false;
		x |= (b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*out = x;
			return true;
		}
	}
	it->bad = true;
	return false;
}

static bool get_value(xorc_it *it)
{
	uint64_t bit;
	if (!get_bits(it, 1, &bit))
		return false;
	if (!bit)
		return true;
	if (!get_bits(it, 1, &bit))
		return false;
	if (bit) {
		uint64_t lead, sig;
		if (!get_bits(it, 5, &lead) || !get_bits(it, 6, &sig))
			return false;
		if (sig == 0)
			sig = 64;
		if (lead + sig > 64) {
			it->bad = true;
			return false;
		}
		it->leading = (uint8_t)lead;
		it->trailing = (uint8_t)(64 - lead - sig);
	} else if (it->leading == NO_WINDOW) {
		it->bad = true;
		return false;
	}
	unsigned sig = 64u - it->leading - it->trailing;
	uint64_t bits;
	if (!get_bits(it, sig, &bits))
		return false;
	it->v ^= bits << it->trailing;
	return true;
}

static int64_t sign_extend(uint64_t v, unsigned nbits)
{
	/* The writer put -x as its two's complement in nbits; values above
	 * 2^(nbits-1) are negative. */
	if (nbits < 64 && v > (1ULL << (nbits - 1)))
		return (int64_t)v - (int64_t)(1ULL << nbits);
	return (int64_t)v;
}

bool xorc_next(xorc_it *it, int64_t *t, double *v)
{
	if (it->bad || it->i >= it->n)
		return false;
	if (it->i == 0) {
		uint64_t ux;
		if (!get_uvarint(it, &ux) || !get_bits(it, 64, &it->v))
			return false;
		int64_t x = (int64_t)(ux >> 1);
		if (ux & 1)
			x = ~x;
		it->t = x;
	} else if (it->i == 1) {
		if (!get_uvarint(it, &it->t_delta) || !get_value(it))
			return false;
		it->t += (int64_t)it->t_delta;
	} else {
		unsigned prefix = 0;
		uint64_t bit;
		while (prefix < 4) {
			if (!get_bits(it, 1, &bit))
				return false;
			if (!bit)
				break;
			prefix++;
		}
		int64_t dod = 0;
		static const unsigned widths[] = { 0, 14, 17, 20, 64 };
		if (prefix > 0) {
			uint64_t raw;
			if (!get_bits(it, widths[prefix], &raw))
				return false;
			dod = sign_extend(raw, widths[prefix]);
		}
		it->t_delta = (uint64_t)((int64_t)it->t_delta + dod);
		it->t += (int64_t)it->t_delta;
		if (!get_value(it))
			return false;
	}
	it->i++;
	*t = it->t;
	*v = dval(it->v);
	return true;
}
