/* Off-policy estimates of a candidate policy's value from a decision log
 * (pure): inverse propensity scoring (IPS) and self-normalized IPS (SNIPS),
 * each with a 95 % confidence interval from a normal approximation (the
 * sample standard error; for SNIPS the delta method). Open Bandit
 * Pipeline's estimators of the same names compute the same numbers. */
#ifndef GRACE_KERNELS_LEARNING_ESTIMATE_H
#define GRACE_KERNELS_LEARNING_ESTIMATE_H

#include "kernels/layer.h"

#include <stddef.h>

#define LRN_Z95 1.959963984540054

/* One logged decision seen by the candidate: the reward of the arm the
 * log ran, the probability the logging policy gave that arm, and the
 * probability the candidate gives it in the same context. */
typedef struct lrn_sample {
	double reward, logged_p, target_p;
} lrn_sample;

typedef struct lrn_estimate {
	size_t n;            /* samples used */
	size_t matched;      /* samples where the candidate could have run the logged arm */
	double ips, ips_se, ips_lo, ips_hi;
	double snips, snips_se, snips_lo, snips_hi;
	double sum_w;        /* the importance weights' sum (n when the policies agree) */
	double ess;          /* effective sample size, (sum w)^2 / sum w^2 */
} lrn_estimate;

/* 0, or -1 when a sample is invalid (logged_p not in (0, 1], target_p not
 * in [0, 1], reward not in [0, 1]) or n is 0. The intervals are clipped to
 * [0, 1], where a value of rewards in [0, 1] lies. */
int lrn_estimate_value(const lrn_sample *s, size_t n, lrn_estimate *out);

#endif
