/* Trust scores: a Beta reputation from observed outcomes, decaying with
 * time. alpha and beta are the weights of good and bad outcomes; each
 * loses half its weight every half-life, so old evidence fades and a
 * subject with none left is back at the prior (0.5). The score is the
 * Beta distribution's mean with a uniform prior:
 *
 *     score = (alpha + 1) / (alpha + beta + 2)
 *
 * Pure: time is passed in as now_ms; no I/O. */
#ifndef GRACE_TRUST_SCORE_H
#define GRACE_TRUST_SCORE_H

#include "kernels/layer.h"

#include <stdint.h>

typedef struct tr_score {
	double alpha;  /* good outcomes, decayed to at_ms */
	double beta;   /* bad outcomes, decayed to at_ms */
	int64_t at_ms; /* when alpha and beta were last brought up to date */
} tr_score;

/* `s` as it stands at now_ms: both weights decayed by
 * 2^-((now_ms - at_ms) / half_life_ms). A time before at_ms leaves it as
 * it is (clocks step; evidence never grows by waiting). */
tr_score tr_score_at(const tr_score *s, int64_t now_ms, int64_t half_life_ms);
/* Adds one outcome (good or bad) of weight `w` observed at t_ms: `s` is
 * first brought to max(at_ms, t_ms); an outcome older than at_ms counts
 * as already decayed by its age. */
void tr_score_add(tr_score *s, int good, double w, int64_t t_ms, int64_t half_life_ms);
/* The Beta mean, 0 to 1 (0.5 with no evidence). */
double tr_score_value(const tr_score *s);
/* The same as an integer percent 0 to 100, rounded: what policy reads as
 * resource.trust (Cedar has no floats). */
int tr_score_percent(const tr_score *s);

#endif
