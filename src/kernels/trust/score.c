/* Trust scores: a decaying Beta reputation (score.h). */
#include "kernels/trust/score.h"

#include <math.h>

static double factor(int64_t dt_ms, int64_t half_life_ms)
{
	if (dt_ms <= 0 || half_life_ms <= 0)
		return 1.0;
	return exp2(-(double)dt_ms / (double)half_life_ms);
}

tr_score tr_score_at(const tr_score *s, int64_t now_ms, int64_t half_life_ms)
{
	tr_score out = *s;
	if (now_ms > s->at_ms) {
		double f = factor(now_ms - s->at_ms, half_life_ms);
		out.alpha *= f;
		out.beta *= f;
		out.at_ms = now_ms;
	}
	return out;
}

void tr_score_add(tr_score *s, int good, double w, int64_t t_ms, int64_t half_life_ms)
{
	*s = tr_score_at(s, t_ms, half_life_ms);
	if (w <= 0 || !isfinite(w))
		return;
	double v = w * factor(s->at_ms - t_ms, half_life_ms);
	if (good)
		s->alpha += v;
	else
		s->beta += v;
}

double tr_score_value(const tr_score *s)
{
	double a = s->alpha > 0 && isfinite(s->alpha) ? s->alpha : 0;
	double b = s->beta > 0 && isfinite(s->beta) ? s->beta : 0;
	return (a + 1.0) / (a + b + 2.0);
}

int tr_score_percent(const tr_score *s)
{
	return (int)lround(tr_score_value(s) * 100.0);
}
