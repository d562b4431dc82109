/* What every harness shares: a property check that aborts (libFuzzer then
 * keeps the input as crash-*), and a small PRNG seeded from the input so
 * that the splits a harness tries are reproducible from the input alone. */
#ifndef GRACE_FUZZ_H
#define GRACE_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* A failed property is a crash, reported with its reason. */
#define FUZZ_CHECK(cond, ...)                                                            \
	do {                                                                             \
		if (!(cond)) {                                                           \
			fprintf(stderr, "%s:%d: property failed: %s: ", __FILE__, __LINE__, \
				#cond);                                                  \
			fprintf(stderr, __VA_ARGS__);                                    \
			fputc('\n', stderr);                                             \
			abort();                                                         \
		}                                                                        \
	} while (0)

/* FNV-1a of the input: the PRNG's seed. */
static inline uint64_t fuzz_seed(const uint8_t *d, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ d[i]) * 1099511628211ull;
	return h | 1;
}

/* xorshift64*: a number in [1, max] (max >= 1). */
static inline size_t fuzz_step(uint64_t *s, size_t max)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return (size_t)((*s * 2685821657736338717ull) % max) + 1;
}

/* A copy of d[0..n) in a buffer of exactly n bytes (and one more when
 * `nul`), so that AddressSanitizer sees any read past the end. */
static inline char *fuzz_copy(const uint8_t *d, size_t n, int nul)
{
	char *p = malloc(n + (nul ? 1 : 0) + (n == 0 && !nul));
	if (!p)
		abort();
	for (size_t i = 0; i < n; i++)
		p[i] = (char)d[i];
	if (nul)
		p[n] = '\0';
	return p;
}

#endif
