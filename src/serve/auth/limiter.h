/* Login throttling per account and per client address: failures within a
 * window make each next answer wait longer, and past a limit are refused
 * with 429 until the window has passed. Time is a parameter. */
#ifndef GRACE_AUTH_LIMITER_H
#define GRACE_AUTH_LIMITER_H

#include "serve/layer.h"

#include <stdint.h>

#define LIMITER_SLOTS 4096
#define LIMITER_FREE_FAILURES 3   /* answered at once */
#define LIMITER_DELAY_BASE_MS 250 /* then 250, 500, 1000 ... */
#define LIMITER_DELAY_MAX_MS 4000

typedef struct limiter limiter;

limiter *limiter_new(unsigned max_failures, unsigned window_s);
void limiter_free(limiter *l);
/* 0 when an attempt may go ahead, else the ms to wait before retrying. */
uint64_t limiter_blocked_ms(limiter *l, const char *key, uint64_t now_ms);
/* Records a failure; returns how long its answer should be held back. */
uint64_t limiter_fail(limiter *l, const char *key, uint64_t now_ms);
void limiter_reset(limiter *l, const char *key, uint64_t now_ms);

#endif
