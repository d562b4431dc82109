/* The ladder and the budget (ladder.h). */
#include "kernels/self_healing/ladder.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOUR_MS 3600000.0

static const char *const verdict_names[SH_VERDICT_COUNT] = { "act", "hold_cooldown", "hold_budget",
							     "hold_stopped" };

const char *sh_verdict_name(enum sh_verdict v)
{
	return v < SH_VERDICT_COUNT ? verdict_names[v] : "unknown";
}

int sh_ladder_parse(const char *spec, bool (*known)(const char *), sh_ladder *out, sdk_err *err)
{
	out->n = 0;
	const char *p = spec ? spec : "";
	while (*p) {
		while (*p == ',' || *p == ' ')
			p++;
		if (!*p)
			break;
		size_t n = strcspn(p, ",");
		const char *colon = memchr(p, ':', n);
		size_t a = colon ? (size_t)(colon - p) : 0;
		char num[24] = "";
		if (colon && n - a - 1 < sizeof num)
			snprintf(num, sizeof num, "%.*s", (int)(n - a - 1), colon + 1);
		char *end = NULL;
		errno = 0;
		long long ms = num[0] ? strtoll(num, &end, 10) : -1;
		if (!colon || !a || a >= SH_STEP_NAME_MAX || !end || *end || errno || ms < 0 ||
		    ms > 86400000LL) {
			return sdk_fail(
				err, SDK_EINVAL,
				"ladder: PLAYBOOK:COOLDOWN_MS steps (0..86400000) separated by "
				"commas, got '%.*s'",
				(int)n, p);
		}
		if (out->n == SH_STEPS_MAX) {
			return sdk_fail(err, SDK_EINVAL, "ladder: at most %d steps", SH_STEPS_MAX);
		}
		sh_step *s = &out->steps[out->n];
		snprintf(s->playbook, sizeof s->playbook, "%.*s", (int)a, p);
		s->cooldown_ms = ms;
		if (strcmp(s->playbook, SH_STOP) && known && !known(s->playbook)) {
			return sdk_fail(err, SDK_EINVAL,
					"ladder: '%s' is not a playbook of the healer",
					s->playbook);
		}
		if (!strcmp(s->playbook, SH_STOP) && p[n]) {
			return sdk_fail(err, SDK_EINVAL, "ladder: stop can only be the last step");
		}
		out->n++;
		p += n;
	}
	if (!out->n) {
		return sdk_fail(err, SDK_EINVAL, "ladder: at least one step");
	}
	return 0;
}

void sh_budget_init(sh_budget *b, unsigned per_hour, int64_t now_ms)
{
	*b = (sh_budget){ 0 };
	sdk_bucket_init(&b->bucket, per_hour, per_hour / HOUR_MS, now_ms);
}

double sh_budget_tokens(sh_budget *b, int64_t now_ms, int64_t *next_ms)
{
	if (next_ms)
		*next_ms = sdk_bucket_wait_ms(&b->bucket, now_ms);
	return sdk_bucket_tokens(&b->bucket, now_ms);
}

bool sh_budget_take(sh_budget *b, int64_t now_ms)
{
	bool took = sdk_bucket_take(&b->bucket, now_ms);
	if (took)
		b->spent++;
	else
		b->refused++;
	return took;
}

void sh_ladder_done(sh_kstate *ks, int64_t now_ms)
{
	if (ks->step >= 0 && now_ms > ks->last_action_ms)
		ks->last_action_ms = now_ms;
}

void sh_kstate_reset(sh_kstate *ks)
{
	ks->step = -1;
	ks->stopped = false;
}

void sh_ladder_advise(const sh_ladder *l, sh_kstate *ks, sh_budget *b, int64_t stable_ms,
		      int64_t now_ms, sh_advice *out)
{
	*out = (sh_advice){ .verdict = SH_ACT };
	int64_t since = now_ms - ks->last_action_ms;
	if (ks->step >= 0 && since >= stable_ms) {
		sh_kstate_reset(ks);
		out->reset = true;
	}
	int next = ks->step < 0 ? 0 : ks->step + 1 < (int)l->n ? ks->step + 1 : (int)l->n - 1;
	out->step = next;
	out->playbook = l->steps[next].playbook;
	if (ks->stopped) {
		out->verdict = SH_HOLD_STOPPED;
		out->retry_after_ms = -1;
	} else if (ks->step >= 0 && since < l->steps[next].cooldown_ms) {
		out->verdict = SH_HOLD_COOLDOWN;
		out->retry_after_ms = l->steps[next].cooldown_ms - since;
	} else if (!sh_budget_take(b, now_ms)) {
		out->verdict = SH_HOLD_BUDGET;
		sh_budget_tokens(b, now_ms, &out->retry_after_ms);
	}
	if (out->verdict != SH_ACT) {
		ks->holds++;
		return;
	}
	ks->step = next;
	ks->last_action_ms = now_ms;
	ks->actions++;
	if (!strcmp(l->steps[next].playbook, SH_STOP))
		ks->stopped = true;
}
