/* A test-only driver of the scheduler's cron and time zone code for the
 * differential test (diff.py). One request per line on stdin, tab-separated,
 * one answer per line on stdout:
 *
 *   N <expr> <zone> <after> <count>  ->  "ok t1 t2 ..." | "error <reason>"
 *       the next `count` fire instants (Unix seconds) after `after`
 *   Z <zone> <t>                     ->  "ok <offset> <next_change> <last_change> <before>"
 *       (TZ_NEVER and INT64_MIN print as "none")
 *
 * Zones are loaded once and kept. */
#include "kernels/scheduler/cron.h"
#include "kernels/scheduler/tz.h"

#include <inttypes.h>
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
