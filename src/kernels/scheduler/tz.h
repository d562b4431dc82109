/* IANA time zones read from the system's tzdata (TZif files, RFC 8536),
 * with the POSIX TZ rule of a file's footer for instants past its table.
 *
 * Why not localtime_r with TZ switched: TZ is process-wide state (setenv
 * and tzset are not thread-safe, and every switch re-reads the file), so
 * each conversion would take a lock and a file read. A zone parsed here is
 * immutable, shared freely between threads, and answers the two questions
 * the scheduler asks (the offset at an instant; the next instant the
 * offset changes) in a binary search. bench/scheduler_bench.py measures
 * both ways. */
#ifndef GRACE_SCHEDULER_TZ_H
#define GRACE_SCHEDULER_TZ_H

#include "kernels/layer.h"

#include "sdk/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TZ_NAME_MAX 64
#define TZ_FILE_MAX (512u << 10) /* the largest TZif file we read */
#define TZ_NEVER INT64_MAX       /* no further change */
#define TZ_DEFAULT_DIR "/usr/share/zoneinfo"

typedef struct tz_zone tz_zone;

/* Whether `name` may name a zone: 1-64 of [A-Za-z0-9_+-./], no empty,
 * "." or ".." component, not starting with '/'. */
bool tz_name_valid(const char *name);

/* Reads zone `name` from `dir` (NULL: $TZDIR, else /usr/share/zoneinfo).
 * SDK_EINVAL for a name that cannot be one, SDK_ENOTFOUND for no such zone
 * (or a file that is no TZif), with the reason in err. Free with tz_free. */
int tz_load(const char *dir, const char *name, tz_zone **out, sdk_err *err);
/* Parses a TZif image (tests; tz_load uses it). */
int tz_parse(const unsigned char *buf, size_t len, const char *name, tz_zone **out,
	     sdk_err *err);
/* A zone of a fixed offset and no changes (UTC is tz_fixed("UTC", 0)). */
tz_zone *tz_fixed(const char *name, int32_t utoff);
void tz_free(tz_zone *z);

const char *tz_name(const tz_zone *z);
/* Seconds east of UTC in effect at instant t (Unix seconds). */
int32_t tz_offset_at(const tz_zone *z, int64_t t);
/* The first instant after t at which the offset differs from the one at
 * t (changes of abbreviation or of the DST flag alone are not changes);
 * TZ_NEVER when there is none. */
int64_t tz_next_change(const tz_zone *z, int64_t t);
/* The instant at which t's offset came into effect (the last change at or
 * before t), and the offset before it; INT64_MIN when it always held. */
int64_t tz_last_change(const tz_zone *z, int64_t t, int32_t *before);

#endif
