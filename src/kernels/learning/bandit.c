#include "kernels/learning/bandit.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void lrn_rng_seed(lrn_rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t lrn_rng_next(lrn_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

double lrn_rng_uniform(lrn_rng *r) { return (double)(lrn_rng_next(r) >> 11) * 0x1.0p-53; }

static double rng_normal(lrn_rng *r)
{
	double u = 1.0 - lrn_rng_uniform(r), v = lrn_rng_uniform(r);
	return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

/* Marsaglia and Tsang (2000); a shape below 1 is boosted by one and scaled
 * back by U^(1/shape). */
double lrn_rng_gamma(lrn_rng *r, double shape)
{
	if (shape < 1.0) {
		double u = 1.0 - lrn_rng_uniform(r);
		return lrn_rng_gamma(r, shape + 1.0) * pow(u, 1.0 / shape);
	}
	double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
	for (;;) {
		double x, v;
		do {
			x = rng_normal(r);
			v = 1.0 + c * x;
		} while (v <= 0.0);
		v = v * v * v;
		double u = 1.0 - lrn_rng_uniform(r);
		if (u < 1.0 - 0.0331 * x * x * x * x)
			return d * v;
		if (log(u) < 0.5 * x * x + d * (1.0 - v + log(v)))
			return d * v;
	}
}

double lrn_rng_beta(lrn_rng *r, double a, double b)
{
	double x = lrn_rng_gamma(r, a), y = lrn_rng_gamma(r, b);
	return x + y > 0 ? x / (x + y) : 0.5;
}

int lrn_arm_update(lrn_arm *a, double r)
{
	if (!(r >= 0.0 && r <= 1.0))
		return -1;
	a->alpha += r;
	a->beta += 1.0 - r;
	return 0;
}

double lrn_arm_mean(const lrn_arm *a) { return a->alpha / (a->alpha + a->beta); }

static const char *const policy_names[LRN_POLICY_COUNT] = {
	[LRN_STATIC] = "static",
	[LRN_THOMPSON] = "thompson",
	[LRN_EPSILON_GREEDY] = "epsilon_greedy",
};

const char *lrn_policy_name(enum lrn_policy p)
{
	return (unsigned)p < LRN_POLICY_COUNT ? policy_names[p] : "?";
}

int lrn_policy_parse(const char *name)
{
	for (int i = 0; name && i < LRN_POLICY_COUNT; i++)
		if (!strcmp(name, policy_names[i]))
			return i;
	return -1;
}

#define GRID 1024

void lrn_thompson_probs(const lrn_arm *arms, size_t n, double *probs)
{
	if (n == 1) {
		probs[0] = 1.0;
		return;
	}
	/* Midpoint grid: each arm's density and its CDF at each point (the CDF
	 * up to the cell's start plus half the cell). */
	double lnorm[LRN_ARMS_MAX], cdf[LRN_ARMS_MAX], dens[LRN_ARMS_MAX];
	const double dx = 1.0 / GRID;
	for (size_t i = 0; i < n; i++) {
		lnorm[i] = lgamma(arms[i].alpha + arms[i].beta) - lgamma(arms[i].alpha) -
			   lgamma(arms[i].beta);
		cdf[i] = 0.0;
		probs[i] = 0.0;
	}
	for (int g = 0; g < GRID; g++) {
		double x = (g + 0.5) * dx, lx = log(x), l1x = log1p(-x);
		for (size_t i = 0; i < n; i++)
			dens[i] = exp(lnorm[i] + (arms[i].alpha - 1.0) * lx +
				      (arms[i].beta - 1.0) * l1x) * dx;
		for (size_t i = 0; i < n; i++) {
			double others = 1.0;
			for (size_t j = 0; j < n; j++)
				if (j != i)
					others *= cdf[j] + dens[j] / 2.0;
			probs[i] += dens[i] * others;
		}
		for (size_t i = 0; i < n; i++)
			cdf[i] += dens[i];
	}
	double sum = 0.0;
	for (size_t i = 0; i < n; i++)
		sum += probs[i];
	for (size_t i = 0; i < n; i++)
		probs[i] = sum > 0 ? probs[i] / sum : 1.0 / (double)n;
}

static size_t greedy_arm(const lrn_arm *arms, size_t n)
{
	size_t best = 0;
	for (size_t i = 1; i < n; i++)
		if (lrn_arm_mean(&arms[i]) > lrn_arm_mean(&arms[best]))
			best = i;
	return best;
}

void lrn_greedy_probs(const lrn_arm *arms, size_t n, double eps, double *probs)
{
	size_t best = greedy_arm(arms, n);
	for (size_t i = 0; i < n; i++)
		probs[i] = eps / (double)n + (i == best ? 1.0 - eps : 0.0);
}

/* Sorts idx[from..n) by key, largest first, stable (insertion sort: n <= 8). */
static void sort_desc(size_t *idx, size_t from, size_t n, const double *key)
{
	for (size_t i = from + 1; i < n; i++) {
		size_t v = idx[i], j = i;
		while (j > from && key[idx[j - 1]] < key[v]) {
			idx[j] = idx[j - 1];
			j--;
		}
		idx[j] = v;
	}
}

void lrn_policy_probs(enum lrn_policy policy, const lrn_arm *arms, size_t n, double explore,
		      double *probs)
{
	if (policy == LRN_STATIC || n <= 1) {
		for (size_t i = 0; i < n; i++)
			probs[i] = i == 0;
		return;
	}
	if (policy == LRN_EPSILON_GREEDY) {
		lrn_greedy_probs(arms, n, explore, probs);
		return;
	}
	lrn_thompson_probs(arms, n, probs);
	for (size_t i = 0; i < n; i++)
		probs[i] = (1.0 - explore) * probs[i] + explore / (double)n;
}

double lrn_order(enum lrn_policy policy, const lrn_arm *arms, size_t n, double explore,
		 lrn_rng *r, size_t *order)
{
	double key[LRN_ARMS_MAX], probs[LRN_ARMS_MAX];
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	if (n <= 1 || policy == LRN_STATIC)
		return 1.0;
	bool uniform = lrn_rng_uniform(r) < explore;
	size_t first = uniform ? (size_t)(lrn_rng_uniform(r) * (double)n) : 0;
	if (first >= n)
		first = n - 1;
	if (policy == LRN_THOMPSON) {
		for (size_t i = 0; i < n; i++)
			key[i] = lrn_rng_beta(r, arms[i].alpha, arms[i].beta);
	} else {
		for (size_t i = 0; i < n; i++)
			key[i] = lrn_arm_mean(&arms[i]);
	}
	if (!uniform)
		first = policy == LRN_THOMPSON ? 0 : greedy_arm(arms, n);
	if (!uniform && policy == LRN_THOMPSON) {
		sort_desc(order, 0, n, key);
		first = order[0];
	} else {
		order[0] = first;
		for (size_t i = 0, o = 1; i < n; i++)
			if (i != first)
				order[o++] = i;
		sort_desc(order, 1, n, key);
	}
	lrn_policy_probs(policy, arms, n, explore, probs);
	return probs[first];
}
