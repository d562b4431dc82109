/* Trust scores (src/kernels/trust/score.c): the Beta mean, decay by the
 * half-life, evidence that arrives late, and the percent policy reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>

#include "kernels/trust/score.h"

#define HL 10000 /* a 10 s half-life */
#define T0 1700000000000LL

static void close_to(double got, double want)
{
	if (fabs(got - want) > 1e-9)
		fail_msg("got %.12f, want %.12f", got, want);
}

static void test_prior(void **state)
{
	(void)state;
	tr_score s = { 0 };
	close_to(tr_score_value(&s), 0.5);
	assert_int_equal(tr_score_percent(&s), 50);
}

static void test_beta_mean(void **state)
{
	(void)state;
	tr_score s = { .at_ms = T0 };
	for (int i = 0; i < 3; i++)
		tr_score_add(&s, 0, 1.0, T0, HL);
	close_to(s.beta, 3.0);
	close_to(tr_score_value(&s), 1.0 / 5.0); /* (0+1)/(0+3+2) */
	assert_int_equal(tr_score_percent(&s), 20);
	for (int i = 0; i < 7; i++)
		tr_score_add(&s, 1, 1.0, T0, HL);
	close_to(tr_score_value(&s), 8.0 / 12.0);
	assert_int_equal(tr_score_percent(&s), 67);
}

static void test_decay_half_life(void **state)
{
	(void)state;
	tr_score s = { .at_ms = T0 };
	tr_score_add(&s, 0, 4.0, T0, HL);
	tr_score later = tr_score_at(&s, T0 + HL, HL);
	close_to(later.beta, 2.0);
	assert_int_equal(later.at_ms, T0 + HL);
	later = tr_score_at(&s, T0 + 3 * HL, HL);
	close_to(later.beta, 0.5);
	/* Reading does not change what is stored. */
	close_to(s.beta, 4.0);
	/* Long after, back at the prior. */
	later = tr_score_at(&s, T0 + 100 * HL, HL);
	assert_int_equal(tr_score_percent(&later), 50);
	/* A clock that steps back does not make evidence grow. */
	later = tr_score_at(&s, T0 - HL, HL);
	close_to(later.beta, 4.0);
}

static void test_decay_at_update(void **state)
{
	(void)state;
	tr_score s = { .at_ms = T0 };
	tr_score_add(&s, 0, 2.0, T0, HL);
	tr_score_add(&s, 1, 1.0, T0 + HL, HL); /* beta halves, then a good one */
	close_to(s.beta, 1.0);
	close_to(s.alpha, 1.0);
	assert_int_equal(s.at_ms, T0 + HL);
	close_to(tr_score_value(&s), 0.5);
}

static void test_late_evidence(void **state)
{
	(void)state;
	/* An outcome older than the score counts as decayed by its age. */
	tr_score s = { .at_ms = T0 + 2 * HL };
	tr_score_add(&s, 0, 1.0, T0, HL);
	close_to(s.beta, 0.25);
	assert_int_equal(s.at_ms, T0 + 2 * HL);
	/* A bad weight changes nothing. */
	tr_score_add(&s, 0, -1.0, T0 + 2 * HL, HL);
	tr_score_add(&s, 0, NAN, T0 + 2 * HL, HL);
	close_to(s.beta, 0.25);
}

static void test_falls_and_recovers(void **state)
{
	(void)state;
	/* Three crashes, then a good period every second: the score falls
	 * below a third and climbs back above a half within a few
	 * half-lives. */
	tr_score s = { .at_ms = T0 };
	for (int i = 0; i < 3; i++)
		tr_score_add(&s, 0, 1.0, T0 + i * 100, HL);
	assert_true(tr_score_percent(&s) < 34);
	for (int i = 1; i <= 30; i++)
		tr_score_add(&s, 1, 1.0, T0 + i * 1000, HL);
	assert_true(tr_score_percent(&s) > 70);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prior),
		cmocka_unit_test(test_beta_mean),
		cmocka_unit_test(test_decay_half_life),
		cmocka_unit_test(test_decay_at_update),
		cmocka_unit_test(test_late_evidence),
		cmocka_unit_test(test_falls_and_recovers),
	};
	return cmocka_run_group_tests_name("trust_score", tests, NULL, NULL);
}
