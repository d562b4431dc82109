/* The one clock every module reads. Logic that depends on time takes
 * `now_ms` as a parameter (so tests can drive a fake clock); these read the
 * real one at the edges. Monotonic for durations and deadlines, wall time
 * only for what is shown to people or stored. */
#ifndef GRACE_SDK_CLOCK_H
#define GRACE_SDK_CLOCK_H

#include <stdint.h>
#include <sys/time.h>
#include <time.h>

/* Milliseconds on the monotonic clock (since boot). */
static inline int64_t sdk_mono_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Milliseconds since the Unix epoch. */
static inline int64_t sdk_wall_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* A monotonic instant, for durations measured finer than a millisecond. */
static inline struct timespec sdk_mono_now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t;
}

/* Milliseconds (fractional) from `t0` to now, on the monotonic clock. */
static inline double sdk_ms_since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

/* A duration in milliseconds as the timeval libevent takes. */
static inline struct timeval sdk_ms_tv(uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
	return tv;
}

#endif
