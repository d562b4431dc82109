#include "kernels/learning/estimate.h"

#include <math.h>
#include <string.h>

static double clip01(double x) { return x < 0 ? 0 : x > 1 ? 1 : x; }

int lrn_estimate_value(const lrn_sample *s, size_t n, lrn_estimate *out)
{
	memset(out, 0, sizeof *out);
	if (n == 0)
		return -1;
	double sum_wr = 0, sum_w = 0, sum_w2 = 0;
	for (size_t i = 0; i < n; i++) {
		if (!(s[i].logged_p > 0 && s[i].logged_p <= 1) ||
		    !(s[i].target_p >= 0 && s[i].target_p <= 1) ||
		    !(s[i].reward >= 0 && s[i].reward <= 1))
			return -1;
		double w = s[i].target_p / s[i].logged_p;
		sum_wr += w * s[i].reward;
		sum_w += w;
		sum_w2 += w * w;
		out->matched += s[i].target_p > 0;
	}
	double nn = (double)n;
	out->n = n;
	out->sum_w = sum_w;
	out->ess = sum_w2 > 0 ? sum_w * sum_w / sum_w2 : 0;
	out->ips = sum_wr / nn;
	double var = 0, var_sn = 0;
	out->snips = sum_w > 0 ? sum_wr / sum_w : 0;
	for (size_t i = 0; i < n; i++) {
		double w = s[i].target_p / s[i].logged_p, d = w * s[i].reward - out->ips;
		var += d * d;
		double e = w * (s[i].reward - out->snips);
		var_sn += e * e;
	}
	out->ips_se = n > 1 ? sqrt(var / (nn - 1) / nn) : 0;
	/* Delta method: Var(sum w r / sum w) ~ sum (w (r - V))^2 / (sum w)^2. */
	out->snips_se = sum_w > 0 ? sqrt(var_sn) / sum_w * (n > 1 ? sqrt(nn / (nn - 1)) : 1) : 0;
	out->ips_lo = clip01(out->ips - LRN_Z95 * out->ips_se);
	out->ips_hi = clip01(out->ips + LRN_Z95 * out->ips_se);
	out->snips_lo = clip01(out->snips - LRN_Z95 * out->snips_se);
	out->snips_hi = clip01(out->snips + LRN_Z95 * out->snips_se);
	return 0;
}
