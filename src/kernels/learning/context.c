#include "kernels/learning/context.h"

#include <stdio.h>
#include <string.h>

#define RESTARTS_MAX 1000000
#define HEAL_S_MAX (100ll * 365 * 86400)

static const char *const exit_kinds[] = { "none",     "clean",	      "error", "signal",
					  "watchdog", "start_failed", "other", NULL };

int lrn_name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > LRN_NAME_MAX)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
			return 0;
	return 1;
}

int lrn_context_arm(const lrn_context *c, const char *arm)
{
	for (size_t i = 0; i < c->n_arms; i++)
		if (!strcmp(c->arms[i], arm))
			return (int)i;
	return -1;
}

void lrn_context_clear(lrn_context *c)
{
	json_decref(c->features);
	c->features = NULL;
}

#define FAIL(...) (lrn_context_clear(c), sdk_fail(err, SDK_EINVAL, __VA_ARGS__))

int lrn_context_parse(json_t *body, lrn_context *c, sdk_err *err)
{
	memset(c, 0, sizeof *c);
	const char *issue = json_string_value(json_object_get(body, "issue"));
	const char *kernel = json_string_value(json_object_get(body, "kernel"));
	json_t *arms = json_object_get(body, "arms"), *f = json_object_get(body, "features");
	if (!lrn_name_ok(issue))
		return FAIL("issue: a name of 1 to %d of [a-z0-9_]", LRN_NAME_MAX);
	if (!lrn_name_ok(kernel))
		return FAIL("kernel: a name of 1 to %d of [a-z0-9_]", LRN_NAME_MAX);
	snprintf(c->issue, sizeof c->issue, "%s", issue);
	snprintf(c->kernel, sizeof c->kernel, "%s", kernel);
	if (!json_is_array(arms) || json_array_size(arms) == 0 ||
	    json_array_size(arms) > LRN_ARMS_MAX)
		return FAIL("arms: an array of 1 to %d playbook names, in the static order",
			    LRN_ARMS_MAX);
	size_t i;
	json_t *a;
	json_array_foreach (arms, i, a) {
		if (!lrn_name_ok(json_string_value(a)))
			return FAIL("arms[%zu]: a name of 1 to %d of [a-z0-9_]", i, LRN_NAME_MAX);
		if (lrn_context_arm(c, json_string_value(a)) >= 0)
			return FAIL("arms[%zu]: %s is named twice", i, json_string_value(a));
		snprintf(c->arms[c->n_arms++], LRN_NAME_MAX + 1, "%s", json_string_value(a));
	}
	if (f && !json_is_object(f))
		return FAIL("features: an object");
	json_t *restarts = json_object_get(f, "restarts_last_hour");
	json_t *exit = json_object_get(f, "last_exit");
	json_t *heal = json_object_get(f, "since_last_heal_s");
	const char *key;
	json_t *v;
	json_object_foreach (f, key, v)
		if (strcmp(key, "restarts_last_hour") && strcmp(key, "last_exit") &&
		    strcmp(key, "since_last_heal_s"))
			return FAIL("features: unknown field \"%s\"", key);
	long long r = 0, h = -1;
	if (restarts) {
		if (!json_is_integer(restarts) || json_integer_value(restarts) < 0 ||
		    json_integer_value(restarts) > RESTARTS_MAX)
			return FAIL("features.restarts_last_hour: an integer from 0 to %d",
				    RESTARTS_MAX);
		r = json_integer_value(restarts);
	}
	const char *kind = "none";
	if (exit) {
		kind = json_string_value(exit);
		size_t k = 0;
		while (kind && exit_kinds[k] && strcmp(exit_kinds[k], kind))
			k++;
		if (!kind || !exit_kinds[k])
			return FAIL("features.last_exit: one of none, clean, error, signal, watchdog, "
				    "start_failed, other");
	}
	if (heal && !json_is_null(heal)) {
		if (!json_is_integer(heal) || json_integer_value(heal) < 0 ||
		    json_integer_value(heal) > HEAL_S_MAX)
			return FAIL("features.since_last_heal_s: null (never) or an integer of "
				    "seconds >= 0");
		h = json_integer_value(heal);
	}
	c->features = json_pack("{s:I, s:s, s:o}", "restarts_last_hour", (json_int_t)r,
				"last_exit", kind, "since_last_heal_s",
				h < 0 ? json_null() : json_integer(h));
	const char *rb = r == 0 ? "r0" : r <= 2 ? "r1-2" : "r3+";
	const char *hb = h < 0 ? "hnever" : h < 600 ? "h<10m" : h < 3600 ? "h<1h" : "h1h+";
	snprintf(c->bucket, sizeof c->bucket, "%s|%s|%s|%s|%s", c->issue, c->kernel, rb, kind, hb);
	return 0;
}
