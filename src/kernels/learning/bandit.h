/* The learning kernel's pure statistics (no I/O, no clock): a seeded random
 * generator, Beta posteriors per arm, Thompson sampling and epsilon-greedy
 * orders, and the probability of the arm each puts first (the propensity an
 * offline evaluation divides by). Unit-tested in tests/unit/test_learning.c. */
#ifndef GRACE_KERNELS_LEARNING_BANDIT_H
#define GRACE_KERNELS_LEARNING_BANDIT_H

#include "kernels/layer.h"

#include <stddef.h>
#include <stdint.h>

#define LRN_ARMS_MAX 8

/* xoshiro256**, seeded through splitmix64: a test fixes the seed and gets
 * the same decisions every run. */
typedef struct lrn_rng {
	uint64_t s[4];
} lrn_rng;

void lrn_rng_seed(lrn_rng *r, uint64_t seed);
uint64_t lrn_rng_next(lrn_rng *r);
double lrn_rng_uniform(lrn_rng *r); /* in [0, 1) */
double lrn_rng_gamma(lrn_rng *r, double shape); /* shape > 0, scale 1 */
double lrn_rng_beta(lrn_rng *r, double a, double b);

/* A Beta(alpha, beta) posterior over an arm's success probability, from a
 * Beta(1, 1) prior. A reward r in [0, 1] adds r to alpha and 1 - r to beta
 * (the usual fractional update: a binary reward is the exact conjugate one). */
typedef struct lrn_arm {
	double alpha, beta;
} lrn_arm;

#define LRN_PRIOR ((lrn_arm){ 1.0, 1.0 })

/* 0, or -1 when r is not in [0, 1]. */
int lrn_arm_update(lrn_arm *a, double r);
double lrn_arm_mean(const lrn_arm *a);

enum lrn_policy { LRN_STATIC, LRN_THOMPSON, LRN_EPSILON_GREEDY, LRN_POLICY_COUNT };
const char *lrn_policy_name(enum lrn_policy p);
int lrn_policy_parse(const char *name); /* -1 when unknown */

/* The probability that each arm's draw is the largest, for Thompson
 * sampling over n Beta posteriors: the integral over x of arm i's density
 * times every other arm's CDF, on a fixed grid (deterministic, accurate to
 * about 1e-4 for posteriors of up to ~10^4 observations). Sums to 1. */
void lrn_thompson_probs(const lrn_arm *arms, size_t n, double *probs);

/* Epsilon-greedy's probability of each arm coming first: 1 - eps + eps/n
 * for the greedy arm (the highest posterior mean, ties to the earliest in
 * the static order), eps/n for every other. */
void lrn_greedy_probs(const lrn_arm *arms, size_t n, double eps, double *probs);

/* Each arm's probability of coming first under `policy` with exploration
 * `explore`: with that probability the first arm is drawn uniformly, else
 * by the policy (Thompson's draws, or the greedy arm). For Thompson it is
 * a floor under every arm's propensity (explore / n), which inverse
 * propensity scoring needs: an arm the log almost never runs would
 * otherwise carry weights no interval can describe. Static: the first. */
void lrn_policy_probs(enum lrn_policy policy, const lrn_arm *arms, size_t n, double explore,
		      double *probs);

/* Orders n arms (indexes into the static order, which is arms[0..n)) under
 * `policy`: order[0] is the arm to run first. With probability `explore`
 * the first arm is uniformly drawn, else Thompson's largest draw or the
 * greedy arm; the rest follow by their draws (Thompson) or posterior means
 * (epsilon-greedy). Static: the static order. Returns the probability that
 * order[0] came first (lrn_policy_probs; 1 for static). */
double lrn_order(enum lrn_policy policy, const lrn_arm *arms, size_t n, double explore,
		 lrn_rng *r, size_t *order);

#endif
