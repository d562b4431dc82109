/* The research kernel's question parser (pure: no I/O, the clock passed
 * in): which kernel a question is about and which time window it means
 * ("at 10:02", "since 5 minutes", "in the last 2 hours", an RFC 3339
 * time). Unit-tested in tests/unit/test_research.c. */
#ifndef GRACE_KERNELS_RESEARCH_QUESTION_H
#define GRACE_KERNELS_RESEARCH_QUESTION_H

#include "kernels/layer.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RS_NAME_MAX 48 /* bytes of a kernel's name, with the NUL */
/* "at T" means the window [T - RS_AT_BEFORE_MS, T + RS_AT_AFTER_MS]: a
 * cause comes before what it caused, and clocks drift a little. */
#define RS_AT_BEFORE_MS (10 * 60 * 1000)
#define RS_AT_AFTER_MS (2 * 60 * 1000)

typedef enum rs_time_kind {
	RS_TIME_NONE = 0, /* no time in the question: the default window */
	RS_TIME_AT,       /* a moment ("at 10:02", an RFC 3339 time) */
	RS_TIME_SINCE,    /* "since 10:02", "since 5 minutes", "in the last hour" */
} rs_time_kind;

typedef struct rs_question {
	char kernel[RS_NAME_MAX]; /* "" when no known kernel is named */
	rs_time_kind time;
	int64_t since_ms, until_ms; /* the window, always set */
} rs_question;

/* Reads `text` against the kernel names `names` (NULL-ended; the longest
 * one named wins, "immutable log" and "immutable-log" name immutable_log)
 * at `now_ms` (unix ms); with no time in the question the window is the
 * last `default_window_ms`. A clock time ("10:02") is today's in UTC, or
 * yesterday's when today's is still to come. Never fails. */
void rs_question_parse(const char *text, const char *const *names, int64_t now_ms,
		       int64_t default_window_ms, rs_question *out);

/* The full-text query (FTS5 syntax, as the memory tables' `q` takes it)
 * that finds rows about the question: its words of three or more letters
 * or digits, lower-cased, but for common English ones, each quoted, ORed,
 * at most RS_MEMORY_WORDS of them, into out. Returns how many words it
 * holds (0: nothing worth searching); never more than len - 1 bytes. */
#define RS_MEMORY_WORDS 8
int rs_memory_query(const char *question, char *out, size_t len);

#endif
