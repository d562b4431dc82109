/* A test-only driver of the scheduler's cron and time zone code for the
 * differential test (diff.py). One request per line on stdin, tab-separated,
 * one answer per line on stdout:
 *
 *   N <expr> <zone> <after> <count>  ->  "ok t1 t2 ..." | "error <reason>"
 *       the next `count` fire instants (Unix seconds) after `after`
 *   Z <zone> <t>                     ->  "ok <offset> <next_change> <last_change> <before>"
 *       (TZ_NEVER and INT64_MIN print as "none")
 *   T <expr> <zone> <after> <count>  ->  "ok <last fire> <ns>": the time `count` fires take
 *   L <zone> <other zone> <count>    ->  "ok <ns tz_offset_at> <ns localtime_r> <ns TZ switched>"
 *       per conversion, for bench/scheduler_bench.py
 *
 * Zones are loaded once and kept. */
#include "kernels/scheduler/cron.h"
#include "kernels/scheduler/tz.h"

#include <inttypes.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ZONES_MAX 1024

static struct {
	char name[TZ_NAME_MAX + 1];
	tz_zone *z;
	char err[256];
} zones[ZONES_MAX];
static size_t n_zones;

static tz_zone *zone(const char *name, const char **why)
{
	for (size_t i = 0; i < n_zones; i++)
		if (!strcmp(zones[i].name, name)) {
			*why = zones[i].err;
			return zones[i].z;
		}
	sdk_err e = { "" };
	tz_zone *z = NULL;
	tz_load(NULL, name, &z, &e);
	if (n_zones < ZONES_MAX) {
		snprintf(zones[n_zones].name, sizeof zones[n_zones].name, "%s", name);
		zones[n_zones].z = z;
		snprintf(zones[n_zones].err, sizeof zones[n_zones].err, "%s", e.msg);
		*why = zones[n_zones].err;
		n_zones++;
	}
	return z;
}

static int64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* The ways to learn an offset: ours, glibc's for one zone, and glibc's
 * with TZ switched between two zones at each call (what a scheduler of
 * jobs in many zones would have to do, under a lock, with localtime_r). */
static void bench_zone(tz_zone *z, const char *name, const char *other, long n)
{
	volatile long sink = 0;
	uint64_t x = 88172645463325252ULL;
	int64_t t0 = now_ns();
	for (long i = 0; i < n; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		sink += tz_offset_at(z, (int64_t)(x % 4102444800ULL));
	}
	int64_t ours = now_ns() - t0;
	char tzv[TZ_NAME_MAX + 2];
	snprintf(tzv, sizeof tzv, ":%s", name);
	setenv("TZ", tzv, 1);
	tzset();
	struct tm tm;
	t0 = now_ns();
	for (long i = 0; i < n; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		time_t t = (time_t)(x % 4102444800ULL);
		localtime_r(&t, &tm);
		sink += tm.tm_gmtoff;
	}
	int64_t glibc = now_ns() - t0;
	char otv[TZ_NAME_MAX + 2];
	snprintf(otv, sizeof otv, ":%s", other);
	t0 = now_ns();
	for (long i = 0; i < n; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		setenv("TZ", i & 1 ? otv : tzv, 1);
		tzset();
		time_t t = (time_t)(x % 4102444800ULL);
		localtime_r(&t, &tm);
		sink += tm.tm_gmtoff;
	}
	int64_t switched = now_ns() - t0;
	(void)sink;
	printf("ok %.1f %.1f %.1f\n", (double)ours / n, (double)glibc / n, (double)switched / n);
}

static void print_instant(int64_t t)
{
	if (t == TZ_NEVER || t == INT64_MIN)
		fputs(" none", stdout);
	else
		printf(" %" PRId64, t);
}

int main(void)
{
	char line[4096];
	while (fgets(line, sizeof line, stdin)) {
		line[strcspn(line, "\n")] = '\0';
		char *f[6];
		int n = 0;
		char *save, *tok = strtok_r(line, "\t", &save);
		while (tok && n < 6) {
			f[n++] = tok;
			tok = strtok_r(NULL, "\t", &save);
		}
		const char *why = "";
		if (n == 5 && !strcmp(f[0], "N")) {
			cron_expr e;
			sdk_err err = { "" };
			if (cron_parse(f[1], &e, &err) < 0) {
				printf("error %s\n", err.msg);
				continue;
			}
			tz_zone *z = zone(f[2], &why);
			if (!z) {
				printf("error %s\n", why);
				continue;
			}
			int64_t t = strtoll(f[3], NULL, 10);
			int count = atoi(f[4]);
			fputs("ok", stdout);
			for (int i = 0; i < count; i++) {
				if (!cron_next(&e, z, t, &t))
					break;
				printf(" %" PRId64, t);
			}
			putchar('\n');
		} else if (n == 5 && !strcmp(f[0], "T")) {
			cron_expr e;
			sdk_err err = { "" };
			tz_zone *z = zone(f[2], &why);
			if (cron_parse(f[1], &e, &err) < 0 || !z) {
				printf("error %s\n", z ? err.msg : why);
				continue;
			}
			int64_t t = strtoll(f[3], NULL, 10);
			long count = atol(f[4]);
			int64_t t0 = now_ns();
			for (long i = 0; i < count && cron_next(&e, z, t, &t); i++)
				;
			printf("ok %" PRId64 " %" PRId64 "\n", t, now_ns() - t0);
		} else if (n == 4 && !strcmp(f[0], "L")) {
			tz_zone *z = zone(f[1], &why);
			if (!z) {
				printf("error %s\n", why);
				continue;
			}
			bench_zone(z, f[1], f[2], atol(f[3]));
		} else if (n == 3 && !strcmp(f[0], "Z")) {
			tz_zone *z = zone(f[1], &why);
			if (!z) {
				printf("error %s\n", why);
				continue;
			}
			int64_t t = strtoll(f[2], NULL, 10);
			int32_t before = 0;
			int64_t last = tz_last_change(z, t, &before);
			printf("ok %d", (int)tz_offset_at(z, t));
			print_instant(tz_next_change(z, t));
			print_instant(last);
			printf(" %d\n", last == INT64_MIN ? 0 : (int)before);
		} else {
			printf("error bad request\n");
		}
	}
	for (size_t i = 0; i < n_zones; i++)
		tz_free(zones[i].z);
	return 0;
}
