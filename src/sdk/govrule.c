#include "sdk/govrule.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct parser {
	const char *s;
	sdk_err *err;
};

static void skip_space(struct parser *p)
{
	while (isspace((unsigned char)*p->s))
		p->s++;
}

static bool role_valid(const char *r) { return !strcmp(r, "admin") || !strcmp(r, "user"); }

static json_t *parse_node(struct parser *p, int depth);

/* all_of( rule , rule ... ) after the word. */
static json_t *parse_list(struct parser *p, const char *kind, int depth)
{
	skip_space(p);
	if (*p->s != '(') {
		sdk_fail(p->err, SDK_EINVAL, "%s must be followed by '('", kind);
		return NULL;
	}
	p->s++;
	json_t *kids = json_array();
	for (;;) {
		json_t *k = parse_node(p, depth + 1);
		if (!k) {
			json_decref(kids);
			return NULL;
		}
		json_array_append_new(kids, k);
		if (json_array_size(kids) > SDK_GOV_RULE_CHILDREN_MAX) {
			json_decref(kids);
			sdk_fail(p->err, SDK_EINVAL, "%s takes at most %d rules", kind,
				 SDK_GOV_RULE_CHILDREN_MAX);
			return NULL;
		}
		skip_space(p);
		if (*p->s == ',') {
			p->s++;
			continue;
		}
		if (*p->s == ')') {
			p->s++;
			return json_pack("{s:o}", kind, kids);
		}
		json_decref(kids);
		sdk_fail(p->err, SDK_EINVAL, "expected ',' or ')' in %s", kind);
		return NULL;
	}
}

static json_t *parse_node(struct parser *p, int depth)
{
	if (depth >= SDK_GOV_RULE_DEPTH_MAX) {
		sdk_fail(p->err, SDK_EINVAL, "rules nest at most %d deep", SDK_GOV_RULE_DEPTH_MAX);
		return NULL;
	}
	skip_space(p);
	if (isdigit((unsigned char)*p->s)) {
		char *end;
		long n = strtol(p->s, &end, 10);
		if (n < 1 || n > SDK_GOV_RULE_N_MAX) {
			sdk_fail(p->err, SDK_EINVAL, "an approval count is 1 to %d", SDK_GOV_RULE_N_MAX);
			return NULL;
		}
		p->s = end;
		skip_space(p);
		char role[16];
		size_t i = 0;
		while (isalpha((unsigned char)*p->s) && i < sizeof role - 1)
			role[i++] = *p->s++;
		role[i] = '\0';
		if (!role_valid(role)) {
			sdk_fail(p->err, SDK_EINVAL, "a count is followed by a role: admin or user");
			return NULL;
		}
		return json_pack("{s:i, s:s}", "n", (int)n, "role", role);
	}
	if (!strncmp(p->s, "all_of", 6))
		return p->s += 6, parse_list(p, "all_of", depth);
	if (!strncmp(p->s, "any_of", 6))
		return p->s += 6, parse_list(p, "any_of", depth);
	sdk_fail(p->err, SDK_EINVAL, "a rule is 'N ROLE', all_of(...) or any_of(...)");
	return NULL;
}

json_t *sdk_gov_rule_parse(const char *text, sdk_err *err)
{
	if (!text || strlen(text) > SDK_GOV_RULE_TEXT_MAX) {
		sdk_fail(err, SDK_EINVAL, "a rule is at most %d bytes", SDK_GOV_RULE_TEXT_MAX);
		return NULL;
	}
	struct parser p = { text, err };
	json_t *r = parse_node(&p, 0);
	if (!r)
		return NULL;
	skip_space(&p);
	if (*p.s) {
		json_decref(r);
		sdk_fail(err, SDK_EINVAL, "unexpected '%.16s' after the rule", p.s);
		return NULL;
	}
	return r;
}

static int check_node(const json_t *r, int depth, sdk_err *err)
{
	if (depth >= SDK_GOV_RULE_DEPTH_MAX)
		return sdk_fail(err, SDK_EINVAL, "rules nest at most %d deep", SDK_GOV_RULE_DEPTH_MAX);
	if (!json_is_object(r))
		return sdk_fail(err, SDK_EINVAL, "a rule is an object");
	const json_t *kids = json_object_get(r, "all_of");
	if (!kids)
		kids = json_object_get(r, "any_of");
	if (kids) {
		if (!json_is_array(kids) || json_array_size(kids) == 0 ||
		    json_array_size(kids) > SDK_GOV_RULE_CHILDREN_MAX)
			return sdk_fail(err, SDK_EINVAL, "all_of/any_of hold 1 to %d rules",
					SDK_GOV_RULE_CHILDREN_MAX);
		for (size_t i = 0; i < json_array_size(kids); i++)
			if (check_node(json_array_get(kids, i), depth + 1, err) < 0)
				return SDK_EINVAL;
		return 0;
	}
	const json_t *n = json_object_get(r, "n"), *role = json_object_get(r, "role");
	if (!json_is_integer(n) || json_integer_value(n) < 1 ||
	    json_integer_value(n) > SDK_GOV_RULE_N_MAX || !json_is_string(role) ||
	    !role_valid(json_string_value(role)))
		return sdk_fail(err, SDK_EINVAL, "a leaf is {\"n\": 1..%d, \"role\": admin|user}",
				SDK_GOV_RULE_N_MAX);
	return 0;
}

int sdk_gov_rule_check(const json_t *rule, sdk_err *err) { return check_node(rule, 0, err); }

bool sdk_gov_role_holds(const char *role, const char *needed)
{
	if (!role || !needed)
		return false;
	return !strcmp(role, "admin") || !strcmp(role, needed);
}

bool sdk_gov_rule_eligible(const json_t *rule, const char *role)
{
	const json_t *kids = json_object_get(rule, "all_of");
	if (!kids)
		kids = json_object_get(rule, "any_of");
	if (kids) {
		for (size_t i = 0; i < json_array_size(kids); i++)
			if (sdk_gov_rule_eligible(json_array_get(kids, i), role))
				return true;
		return false;
	}
	return sdk_gov_role_holds(role, json_string_value(json_object_get(rule, "role")));
}

/* Annotates a copy of node r; appends what is missing to waiting. */
static json_t *eval_node(const json_t *r, const json_t *approvals, const char *requester,
			 json_t *waiting, bool *ok)
{
	bool all = json_object_get(r, "all_of") != NULL;
	const json_t *kids = all ? json_object_get(r, "all_of") : json_object_get(r, "any_of");
	if (kids) {
		json_t *out = json_array();
		json_t *sub_wait = json_array();
		bool sat = all;
		for (size_t i = 0; i < json_array_size(kids); i++) {
			bool k_ok = false;
			json_array_append_new(out, eval_node(json_array_get(kids, i), approvals,
							     requester, sub_wait, &k_ok));
			sat = all ? sat && k_ok : sat || k_ok;
		}
		if (!sat) {
			if (all || json_array_size(sub_wait) <= 1) {
				json_array_extend(waiting, sub_wait);
			} else { /* any_of: one of the alternatives */
				char *alts = NULL;
				size_t len = 0;
				FILE *f = open_memstream(&alts, &len);
				if (f) {
					fputs("one of: ", f);
					for (size_t i = 0; i < json_array_size(sub_wait); i++)
						fprintf(f, "%s%s", i ? " | " : "",
							json_string_value(json_array_get(sub_wait, i)));
					fclose(f);
					json_array_append_new(waiting, json_string(alts));
					free(alts);
				}
			}
		}
		json_decref(sub_wait);
		*ok = sat;
		return json_pack("{s:o, s:b}", all ? "all_of" : "any_of", out, "satisfied", sat);
	}
	const char *needed = json_string_value(json_object_get(r, "role"));
	json_int_t n = json_integer_value(json_object_get(r, "n"));
	json_t *who = json_array();
	for (size_t i = 0; i < json_array_size(approvals); i++) {
		const json_t *a = json_array_get(approvals, i);
		const char *user = json_string_value(json_object_get(a, "user"));
		const char *role = json_string_value(json_object_get(a, "role"));
		if (!user || (requester && !strcmp(user, requester)) || !sdk_gov_role_holds(role, needed))
			continue;
		bool seen = false;
		for (size_t j = 0; j < json_array_size(who) && !seen; j++)
			seen = !strcmp(json_string_value(json_array_get(who, j)), user);
		if (!seen)
			json_array_append_new(who, json_string(user));
	}
	json_int_t have = (json_int_t)json_array_size(who);
	json_int_t missing = have >= n ? 0 : n - have;
	*ok = missing == 0;
	if (missing) {
		char line[96];
		snprintf(line, sizeof line, "%lld more approval%s from role %s", (long long)missing,
			 missing == 1 ? "" : "s", needed);
		json_array_append_new(waiting, json_string(line));
	}
	return json_pack("{s:I, s:s, s:I, s:I, s:o, s:b}", "n", n, "role", needed, "have", have,
			 "missing", missing, "approvers", who, "satisfied", *ok);
}

json_t *sdk_gov_rule_eval(const json_t *rule, const json_t *approvals, const char *requester)
{
	json_t *waiting = json_array();
	bool ok = false;
	json_t *tree = eval_node(rule, approvals, requester, waiting, &ok);
	if (!tree || !waiting) {
		json_decref(tree);
		json_decref(waiting);
		return NULL;
	}
	return json_pack("{s:b, s:o, s:o}", "satisfied", ok, "rule", tree, "waiting_on", waiting);
}
