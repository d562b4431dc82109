/* Unit tests of the learning kernel's pure statistics
 * (src/kernels/learning/{bandit,estimate,context}.c): the seeded generator,
 * Beta sampling and updates, Thompson and epsilon-greedy orders and their
 * propensities, IPS and SNIPS with their intervals, the context buckets,
 * and the proof: a simulated fault where one playbook heals 90 %
 * and the other 20 %, on which Thompson sampling's regret flattens and the
 * IPS estimates of known policies hold their true values within their
 * intervals. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/learning/bandit.h"
#include "kernels/learning/context.h"
#include "kernels/learning/estimate.h"

/* The sanitizer pass of CI (GRACE_SANITIZED=1) runs smaller samples. */
static bool sanitized(void)
{
	const char *e = getenv("GRACE_SANITIZED");
	return e && *e && strcmp(e, "0") != 0;
}

static int draws(void) { return sanitized() ? 5000 : 20000; }
static double draw_tol(void) { return sanitized() ? 0.02 : 0.01; }

static void test_rng_seeded(void **state)
{
	(void)state;
	lrn_rng a, b, c;
	lrn_rng_seed(&a, 42);
	lrn_rng_seed(&b, 42);
	lrn_rng_seed(&c, 43);
	int differ = 0;
	for (int i = 0; i < 100; i++) {
		uint64_t x = lrn_rng_next(&a);
		assert_true(x == lrn_rng_next(&b));
		differ += x != lrn_rng_next(&c);
	}
	assert_true(differ > 95);
	for (int i = 0; i < 10000; i++) {
		double u = lrn_rng_uniform(&a);
		assert_true(u >= 0.0 && u < 1.0);
	}
}

static void test_beta_sampling(void **state)
{
	(void)state;
	lrn_rng r;
	lrn_rng_seed(&r, 7);
	const double cases[][2] = { { 3, 7 }, { 1, 1 }, { 0.5, 0.5 }, { 90, 10 } };
	for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
		double a = cases[c][0], b = cases[c][1], sum = 0, sq = 0;
		const int n = 2 * draws();
		for (int i = 0; i < n; i++) {
			double x = lrn_rng_beta(&r, a, b);
			assert_true(x >= 0.0 && x <= 1.0);
			sum += x;
			sq += x * x;
		}
		double mean = sum / n, var = sq / n - mean * mean;
		double want_var = a * b / ((a + b) * (a + b) * (a + b + 1));
		assert_true(fabs(mean - a / (a + b)) < 0.01);
		assert_true(fabs(var - want_var) < 0.1 * want_var + 1e-4);
	}
}

static void test_arm_update(void **state)
{
	(void)state;
	lrn_arm a = LRN_PRIOR;
	assert_int_equal(lrn_arm_update(&a, 1), 0);
	assert_int_equal(lrn_arm_update(&a, 0), 0);
	assert_int_equal(lrn_arm_update(&a, 0.25), 0);
	assert_true(fabs(a.alpha - 2.25) < 1e-12 && fabs(a.beta - 2.75) < 1e-12);
	assert_int_equal(lrn_arm_update(&a, 1.5), -1);
	assert_int_equal(lrn_arm_update(&a, -0.1), -1);
	assert_int_equal(lrn_arm_update(&a, NAN), -1);
	assert_true(fabs(a.alpha - 2.25) < 1e-12 && fabs(a.beta - 2.75) < 1e-12);
	assert_true(fabs(lrn_arm_mean(&a) - 0.45) < 1e-12);
}

static void test_policy_names(void **state)
{
	(void)state;
	for (int p = 0; p < LRN_POLICY_COUNT; p++)
		assert_int_equal(lrn_policy_parse(lrn_policy_name((enum lrn_policy)p)), p);
	assert_int_equal(lrn_policy_parse("greedy"), -1);
	assert_int_equal(lrn_policy_parse(NULL), -1);
}

/* The propensity Thompson sampling reports is the frequency with which its
 * draws put each arm first. */
static void test_thompson_probs(void **state)
{
	(void)state;
	double p[LRN_ARMS_MAX];
	lrn_arm same[3] = { LRN_PRIOR, LRN_PRIOR, LRN_PRIOR };
	lrn_thompson_probs(same, 3, p);
	for (int i = 0; i < 3; i++)
		assert_true(fabs(p[i] - 1.0 / 3) < 1e-3);
	/* Beta(2,1) against Beta(1,1): P(X > Y) = 2/3 exactly. */
	lrn_arm two[2] = { { 2, 1 }, { 1, 1 } };
	lrn_thompson_probs(two, 2, p);
	assert_true(fabs(p[0] - 2.0 / 3) < 1e-3);
	lrn_arm arms[3] = { { 10, 2 }, { 5, 5 }, { 30, 25 } };
	lrn_thompson_probs(arms, 3, p);
	assert_true(fabs(p[0] + p[1] + p[2] - 1.0) < 1e-9);
	lrn_rng r;
	lrn_rng_seed(&r, 11);
	size_t order[LRN_ARMS_MAX];
	int first[3] = { 0 };
	const int n = draws();
	for (int i = 0; i < n; i++) {
		double q = lrn_order(LRN_THOMPSON, arms, 3, 0, &r, order);
		assert_true(fabs(q - p[order[0]]) < 1e-12);
		first[order[0]]++;
		/* The order is a permutation. */
		assert_true(order[0] != order[1] && order[1] != order[2] && order[0] != order[2]);
	}
	for (int i = 0; i < 3; i++)
		assert_true(fabs((double)first[i] / n - p[i]) < draw_tol());
	/* Sharp posteriors (thousands of outcomes) stay accurate. */
	lrn_arm sharp[2] = { { 901, 101 }, { 881, 121 } };
	lrn_thompson_probs(sharp, 2, p);
	int wins = 0;
	for (int i = 0; i < n; i++)
		wins += lrn_order(LRN_THOMPSON, sharp, 2, 0, &r, order) > 0 && order[0] == 0;
	assert_true(fabs((double)wins / n - p[0]) < draw_tol());
}

/* The exploration floor: every arm keeps at least explore / n. */
static void test_thompson_floor(void **state)
{
	(void)state;
	lrn_arm arms[2] = { { 1, 500 }, { 500, 1 } };
	double p[LRN_ARMS_MAX];
	lrn_policy_probs(LRN_THOMPSON, arms, 2, 0.1, p);
	assert_true(fabs(p[0] - 0.05) < 1e-6 && fabs(p[1] - 0.95) < 1e-6);
	lrn_rng r;
	lrn_rng_seed(&r, 3);
	size_t order[LRN_ARMS_MAX];
	int low = 0;
	const int n = draws();
	for (int i = 0; i < n; i++) {
		double q = lrn_order(LRN_THOMPSON, arms, 2, 0.1, &r, order);
		assert_true(fabs(q - p[order[0]]) < 1e-12);
		low += order[0] == 0;
	}
	assert_true(fabs((double)low / n - 0.05) < draw_tol());
	lrn_policy_probs(LRN_STATIC, arms, 2, 0.1, p);
	assert_true(p[0] == 1.0 && p[1] == 0.0);
}

static void test_epsilon_greedy(void **state)
{
	(void)state;
	lrn_arm arms[3] = { { 2, 8 }, { 8, 2 }, { 5, 5 } };
	double p[LRN_ARMS_MAX];
	lrn_greedy_probs(arms, 3, 0.3, p);
	assert_true(fabs(p[1] - (0.7 + 0.1)) < 1e-12);
	assert_true(fabs(p[0] - 0.1) < 1e-12 && fabs(p[2] - 0.1) < 1e-12);
	lrn_rng r;
	lrn_rng_seed(&r, 5);
	size_t order[LRN_ARMS_MAX];
	int first[3] = { 0 };
	const int n = draws();
	for (int i = 0; i < n; i++) {
		double q = lrn_order(LRN_EPSILON_GREEDY, arms, 3, 0.3, &r, order);
		assert_true(fabs(q - p[order[0]]) < 1e-12);
		first[order[0]]++;
		/* The rest by posterior mean. */
		if (order[0] == 1)
			assert_true(order[1] == 2 && order[2] == 0);
	}
	for (int i = 0; i < 3; i++)
		assert_true(fabs((double)first[i] / n - p[i]) < draw_tol());
	/* Ties go to the static order; epsilon 0 is greedy. */
	lrn_arm tie[2] = { LRN_PRIOR, LRN_PRIOR };
	assert_true(lrn_order(LRN_EPSILON_GREEDY, tie, 2, 0, &r, order) == 1.0);
	assert_int_equal(order[0], 0);
}

static void test_static_order(void **state)
{
	(void)state;
	lrn_arm arms[3] = { { 1, 9 }, { 9, 1 }, { 5, 5 } };
	size_t order[LRN_ARMS_MAX];
	lrn_rng r;
	lrn_rng_seed(&r, 1);
	assert_true(lrn_order(LRN_STATIC, arms, 3, 0.5, &r, order) == 1.0);
	assert_true(order[0] == 0 && order[1] == 1 && order[2] == 2);
	assert_true(lrn_order(LRN_THOMPSON, arms, 1, 0, &r, order) == 1.0);
}

static void test_estimator(void **state)
{
	(void)state;
	lrn_estimate e;
	assert_int_equal(lrn_estimate_value(NULL, 0, &e), -1);
	/* The candidate is the logging policy: weights 1, IPS = SNIPS = mean. */
	lrn_sample same[4] = { { 1, 0.5, 0.5 }, { 0, 0.5, 0.5 }, { 1, 0.25, 0.25 }, { 1, 1, 1 } };
	assert_int_equal(lrn_estimate_value(same, 4, &e), 0);
	assert_true(fabs(e.ips - 0.75) < 1e-12 && fabs(e.snips - 0.75) < 1e-12);
	assert_true(fabs(e.sum_w - 4) < 1e-12 && fabs(e.ess - 4) < 1e-12);
	/* By hand: weights 2, 0, 4, 0 -> IPS (2 + 4) / 4 = 1.5 (clipped CI),
	 * SNIPS 6 / 6 = 1. */
	lrn_sample s[4] = { { 1, 0.5, 1 }, { 0, 0.5, 0 }, { 1, 0.25, 1 }, { 1, 1, 0 } };
	assert_int_equal(lrn_estimate_value(s, 4, &e), 0);
	assert_true(fabs(e.ips - 1.5) < 1e-12);
	assert_true(fabs(e.snips - 1.0) < 1e-12);
	assert_int_equal(e.matched, 2);
	/* sd of w r = {2, 0, 4, 0}: mean 1.5, sample variance 11/3. */
	assert_true(fabs(e.ips_se - sqrt(11.0 / 3 / 4)) < 1e-12);
	assert_true(e.ips_hi <= 1.0 && e.ips_lo >= 0.0);
	lrn_sample bad[1] = { { 1, 0, 1 } };
	assert_int_equal(lrn_estimate_value(bad, 1, &e), -1);
	lrn_sample bad2[1] = { { 2, 0.5, 1 } };
	assert_int_equal(lrn_estimate_value(bad2, 1, &e), -1);
}

static void test_context(void **state)
{
	(void)state;
	sdk_err why;
	lrn_context c;
	json_t *b = json_loads("{\"issue\":\"process_hung\",\"kernel\":\"audit\",\"arms\":"
			       "[\"restart_component\",\"reset_port\"],\"features\":"
			       "{\"restarts_last_hour\":2,\"last_exit\":\"signal\","
			       "\"since_last_heal_s\":120}}", 0, NULL);
	assert_int_equal(lrn_context_parse(b, &c, &why), 0);
	assert_string_equal(c.bucket, "process_hung|audit|r1-2|signal|h<10m");
	assert_int_equal(c.n_arms, 2);
	assert_int_equal(lrn_context_arm(&c, "reset_port"), 1);
	assert_int_equal(lrn_context_arm(&c, "clear_port"), -1);
	lrn_context_clear(&c);
	json_decref(b);
	/* No features: the defaults. */
	b = json_loads("{\"issue\":\"x\",\"kernel\":\"k\",\"arms\":[\"a\"]}", 0, NULL);
	assert_int_equal(lrn_context_parse(b, &c, &why), 0);
	assert_string_equal(c.bucket, "x|k|r0|none|hnever");
	lrn_context_clear(&c);
	json_decref(b);
	const char *bad[] = {
		"{\"kernel\":\"k\",\"arms\":[\"a\"]}",
		"{\"issue\":\"X\",\"kernel\":\"k\",\"arms\":[\"a\"]}",
		"{\"issue\":\"x\",\"kernel\":\"k\",\"arms\":[]}",
		"{\"issue\":\"x\",\"kernel\":\"k\",\"arms\":[\"a\",\"a\"]}",
		"{\"issue\":\"x\",\"kernel\":\"k\",\"arms\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\","
		"\"h\",\"i\"]}",
		"{\"issue\":\"x\",\"kernel\":\"k\",\"arms\":[1]}",
		"{\"issue\":\"x\",\"kernel\":\"k\",\"arms\":[\"a\"],\"features\":[]}",
		"{\"issue\":\"x\",\"kernel\":\"k\",\"arms\":[\"a\"],\"features\":{\"cpu\":1}}",
		"{\"issue\":\"x\",\"kernel\":\"k\",\"arms\":[\"a\"],\"features\":"
		"{\"restarts_last_hour\":-1}}",
		"{\"issue\":\"x\",\"kernel\":\"k\",\"arms\":[\"a\"],\"features\":"
		"{\"last_exit\":\"boom\"}}",
		"{\"issue\":\"x\",\"kernel\":\"k\",\"arms\":[\"a\"],\"features\":"
		"{\"since_last_heal_s\":1.5}}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		b = json_loads(bad[i], 0, NULL);
		assert_non_null(b);
		why.msg[0] = 0;
		assert_int_equal(lrn_context_parse(b, &c, &why), SDK_EINVAL);
		assert_true(why.msg[0] != 0);
		assert_null(c.features);
		json_decref(b);
	}
}

/* ---- the proof: a fault one playbook heals 90 % of the time, the other
 * 20 %, the worse one first in the static order ---- */

#define SIM_ROUNDS 1500
#define SIM_RUNS 20
#define SIM_RUNS_SANITIZED 6 /* the first 6 of the 20 */
#define SIM_EXPLORE 0.05 /* the kernel's default explore_floor_percent */
static const double heal_p[2] = { 0.2, 0.9 };

struct sim {
	lrn_sample good[SIM_ROUNDS], bad[SIM_ROUNDS], uniform[SIM_ROUNDS];
	int picks[SIM_ROUNDS];
	double regret[SIM_ROUNDS]; /* cumulative, against always running the 90 % arm */
};

static void simulate(struct sim *s, uint64_t seed)
{
	lrn_rng r, env;
	lrn_rng_seed(&r, seed);
	lrn_rng_seed(&env, seed ^ 0x5eedull);
	lrn_arm arms[2] = { LRN_PRIOR, LRN_PRIOR };
	size_t order[LRN_ARMS_MAX];
	double regret = 0;
	for (int t = 0; t < SIM_ROUNDS; t++) {
		double p = lrn_order(LRN_THOMPSON, arms, 2, SIM_EXPLORE, &r, order);
		int a = (int)order[0];
		double reward = lrn_rng_uniform(&env) < heal_p[a] ? 1.0 : 0.0;
		assert_int_equal(lrn_arm_update(&arms[a], reward), 0);
		s->picks[t] = a;
		regret += heal_p[1] - heal_p[a];
		s->regret[t] = regret;
		/* Known policies: always the 90 % arm, always the 20 % arm (the
		 * static order), uniformly random. */
		s->good[t] = (lrn_sample){ reward, p, a == 1 ? 1.0 : 0.0 };
		s->bad[t] = (lrn_sample){ reward, p, a == 0 ? 1.0 : 0.0 };
		s->uniform[t] = (lrn_sample){ reward, p, 0.5 };
	}
}

static void test_simulation(void **state)
{
	(void)state;
	static struct sim s;
	int covered_good = 0, covered_bad = 0, covered_uniform = 0, covered_snips = 0;
	double sum_good = 0, sum_bad = 0, sum_uniform = 0;
	const int runs = sanitized() ? SIM_RUNS_SANITIZED : SIM_RUNS;
	for (uint64_t seed = 1; seed <= (uint64_t)runs; seed++) {
		simulate(&s, seed);
		/* It picks the 90 % arm in most of the last 200 decisions. */
		int good = 0;
		for (int t = SIM_ROUNDS - 200; t < SIM_ROUNDS; t++)
			good += s.picks[t] == 1;
		assert_true(good >= 175);
		/* The regret curve flattens: the last 500 decisions add little
		 * (what remains is the exploration floor, 0.05 x 0.7 / 2 = 0.0175
		 * a decision; the static order's regret is 0.7 a decision). */
		double late = (s.regret[SIM_ROUNDS - 1] - s.regret[SIM_ROUNDS - 501]) / 500;
		assert_true(late < 0.04);
		/* And in all, a small fraction of the static order's regret. */
		assert_true(s.regret[SIM_ROUNDS - 1] < 0.05 * (heal_p[1] - heal_p[0]) * SIM_ROUNDS);
		lrn_estimate e;
		assert_int_equal(lrn_estimate_value(s.good, SIM_ROUNDS, &e), 0);
		covered_good += e.ips_lo <= 0.9 && 0.9 <= e.ips_hi;
		sum_good += e.ips;
		covered_snips += e.snips_lo <= 0.9 && 0.9 <= e.snips_hi;
		assert_int_equal(lrn_estimate_value(s.bad, SIM_ROUNDS, &e), 0);
		covered_bad += e.ips_lo <= 0.2 && 0.2 <= e.ips_hi;
		sum_bad += e.ips;
		assert_int_equal(lrn_estimate_value(s.uniform, SIM_ROUNDS, &e), 0);
		covered_uniform += e.ips_lo <= 0.55 && 0.55 <= e.ips_hi;
		sum_uniform += e.ips;
	}
	printf("# %d runs of %d decisions: the 95 %% IPS interval held the true value in "
	       "%d (always 90 %%), %d (always 20 %%), %d (uniform) runs; SNIPS %d (always 90 %%); "
	       "mean IPS %.3f, %.3f, %.3f\n",
	       runs, SIM_ROUNDS, covered_good, covered_bad, covered_uniform, covered_snips,
	       sum_good / runs, sum_bad / runs, sum_uniform / runs);
	/* A 95 % interval misses now and then: at least 16 of the 20 seeded
	 * runs (19, 17, 17 and 18 today); under the sanitizers at least 4 of the
	 * first 6. */
	int need = sanitized() ? 4 : 16;
	assert_true(covered_good >= need && covered_bad >= need && covered_uniform >= need &&
		    covered_snips >= need);
	/* And IPS is unbiased: the mean of the 20 estimates is close to the
	 * true value. */
	/* (The bounds widen as the square root of fewer runs.) */
	double widen = sqrt((double)SIM_RUNS / runs);
	assert_true(fabs(sum_good / runs - 0.9) < 0.02 * widen);
	assert_true(fabs(sum_bad / runs - 0.2) < 0.04 * widen); /* the log has fewest of these */
	assert_true(fabs(sum_uniform / runs - 0.55) < 0.02 * widen);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rng_seeded),     cmocka_unit_test(test_beta_sampling),
		cmocka_unit_test(test_arm_update),     cmocka_unit_test(test_policy_names),
		cmocka_unit_test(test_thompson_probs), cmocka_unit_test(test_thompson_floor), cmocka_unit_test(test_epsilon_greedy),
		cmocka_unit_test(test_static_order),   cmocka_unit_test(test_estimator),
		cmocka_unit_test(test_context),        cmocka_unit_test(test_simulation),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
