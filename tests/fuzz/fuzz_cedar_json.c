/* The policy kernel's JSON bodies (POST /authorize: principal, action,
 * resource, context, entities; the same readers serve the batch, AuthZEN
 * and PUT /entities): Cedar's entity and value JSON
 * (src/kernels/policy/json.c, entities.c), read as the kernel reads them
 * (jansson, duplicate keys refused), and the decision they lead to, over a
 * fixed store of entities and a fixed policy set.
 *
 * Properties (a failure aborts):
 *  - entities are accepted as a request's (no closure) exactly when they
 *    are accepted as a kept set (closure computed); a refusal has a
 *    non-empty UTF-8 reason;
 *  - `in` agrees three ways on every pair of the uids they name: walking
 *    the request's set, the kept set's closure, and the request's set laid
 *    over the kept one (the same graph twice);
 *  - every value read (attributes, tags, the context) written back as JSON
 *    reads again to an equal value;
 *  - a request that parses is decided over the entities laid on the store
 *    (unless that makes a cycle, refused with a reason): every error
 *    message is UTF-8 text, and deciding again gives the same answer. */
#include "kernels/policy/authorize.h"
#include "kernels/policy/cedar.h"
#include "kernels/policy/entities.h"
#include "kernels/policy/json.h"

#include "fuzz.h"

#include <jansson.h>
#include <stdbool.h>
#include <string.h>

#define PAIRS_UIDS_MAX 24 /* uids whose pairs are checked, per input */

/* The store's entities: those of tests/diff/cedar/corpus/parser.json. */
static const char store_json[] =
	"[{\"uid\":{\"type\":\"User\",\"id\":\"alice\"},\"attrs\":{\"name\":\"Alice\",\"level\":3,"
	"\"tags\":[\"a\",\"b\"],\"flag\":true,\"owner\":{\"__entity\":{\"type\":\"User\",\"id\":"
	"\"bob\"}},\"d\":{\"__extn\":{\"fn\":\"decimal\",\"arg\":\"1.5\"}}},\"parents\":[{\"type\":"
	"\"Group\",\"id\":\"g\"}],\"tags\":{\"t\":1,\"u\":\"tag\"}},"
	"{\"uid\":{\"type\":\"User\",\"id\":\"bob\"},\"attrs\":{\"level\":5},\"parents\":[]},"
	"{\"uid\":{\"type\":\"Group\",\"id\":\"g\"},\"attrs\":{},\"parents\":[{\"type\":\"Group\","
	"\"id\":\"top\"}]},"
	"{\"uid\":{\"type\":\"Doc\",\"id\":\"d1\"},\"attrs\":{\"owner\":{\"__entity\":{\"type\":"
	"\"User\",\"id\":\"alice\"}},\"level\":1},\"parents\":[{\"type\":\"Folder\",\"id\":\"f\"}]},"
	"{\"uid\":{\"type\":\"Folder\",\"id\":\"f\"},\"attrs\":{},\"parents\":[{\"type\":\"Folder\","
	"\"id\":\"root\"}]}]";

/* Policies that read what a request brings: hierarchy, attributes, tags,
 * the context, each extension type; conditions that can err.msg. */
static const char policies[] =
	"permit(principal in Group::\"top\", action, resource)\n"
	"  when { resource has owner && resource.owner == principal };\n"
	"permit(principal, action == Action::\"view\", resource is Doc)\n"
	"  when { context has n && context.n > 1 && principal.level >= 3 };\n"
	"forbid(principal, action, resource in Folder::\"root\") when { context.flag };\n"
	"permit(principal, action in [Action::\"read\", Action::\"all\"], resource)\n"
	"  when { principal has tags && principal.tags.contains(\"a\") && principal.name like \"A*\" };\n"
	"permit(principal, action, resource)\n"
	"  when { context has ip && context.ip.isInRange(ip(\"10.0.0.0/8\")) };\n"
	"permit(principal, action, resource)\n"
	"  when { context has d && context.d.lessThan(decimal(\"2.0\")) };\n"
	"permit(principal, action, resource)\n"
	"  when { principal.hasTag(\"t\") && principal.getTag(\"t\") == 1 };\n"
	"forbid(principal == User::\"mallory\", action, resource);\n"
	"permit(principal, action, resource)\n"
	"  when { context has when && context.when < datetime(\"2030-01-01\") };\n"
	"permit(principal, action, resource)\n"
	"  when { context has dur && context.dur.toMilliseconds() > 1000 };\n"
	"permit(principal is User, action, resource is Doc in Folder::\"root\")\n"
	"  unless { context.tags.containsAny(principal.tags) };\n";

static cedar_arena fx_arena, a_over, a_kept, a_eval;
static cedar_entities *fx_store;
static cedar_policy_set *fx_ps;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	sdk_err err = { "" };
	cedar_arena_init(&fx_arena, 0);
	cedar_arena_init(&a_over, 64u << 20);
	cedar_arena_init(&a_kept, 64u << 20);
	cedar_arena_init(&a_eval, 64u << 20);
	json_t *j = json_loads(store_json, JSON_REJECT_DUPLICATES, NULL);
	FUZZ_CHECK(j && cedar_entities_parse(&fx_arena, j, true, false, &fx_store, &err) == 0,
		   "fixture store: %s", err.msg);
	json_decref(j);
	cedar_parse_error perr;
	FUZZ_CHECK(cedar_parse(policies, strlen(policies), &fx_ps, &perr) == 0,
		   "fixture policies: %u:%u %s", perr.line, perr.column, perr.msg);
	return 0;
}

static bool utf8_text(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
	if (!*u)
		return false;
	while (*u) {
		size_t len = *u < 0x80 ? 1 : (*u & 0xe0) == 0xc0 ? 2 : (*u & 0xf0) == 0xe0 ? 3
				     : (*u & 0xf8) == 0xf0 ? 4 : 0;
		if (!len)
			return false;
		for (size_t k = 1; k < len; k++)
			if ((u[k] & 0xc0) != 0x80)
				return false;
		u += len;
	}
	return true;
}

/* A value written as JSON reads back equal. */
static void check_round_trip(const cedar_value *v, const char *what)
{
	json_t *j = cedar_value_json(v);
	FUZZ_CHECK(j, "%s: out of memory", what);
	cedar_value back;
	sdk_err err = { "" };
	int rc = v->kind == CEDAR_RECORD ? cedar_json_record(&a_eval, j, &back, &err)
					 : cedar_json_value(&a_eval, j, &back, &err);
	char *text = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
	FUZZ_CHECK(rc == 0, "%s written as %.300s does not read back: %s", what, text, err.msg);
	FUZZ_CHECK(cedar_value_eq(v, &back), "%s written as %.300s reads back different", what,
		   text);
	free(text);
	json_decref(j);
}

static void check_entities(json_t *ents, cedar_entities **over_out)
{
	sdk_err err = { "" }, err2 = { "" };
	cedar_entities *over, *kept;
	int rc = cedar_entities_parse(&a_over, ents, false, false, &over, &err);
	int rc2 = cedar_entities_parse(&a_kept, ents, true, true, &kept, &err2);
	FUZZ_CHECK(rc == rc2, "entities %s for a request, %s kept (%s)", rc ? "refused" : "taken",
		   rc2 ? "refused" : "taken", rc ? err.msg : err2.msg);
	*over_out = NULL;
	if (rc < 0) {
		FUZZ_CHECK(utf8_text(err.msg) && utf8_text(err2.msg),
			   "the reason is not UTF-8 text");
		return;
	}
	*over_out = over;
	FUZZ_CHECK(over->n == kept->n, "%u entities, %u kept", over->n, kept->n);

	const cedar_uid *uids[PAIRS_UIDS_MAX];
	size_t n = 0;
	for (uint32_t i = 0; i < over->n; i++) {
		const cedar_entity *e = over->list[i];
		check_round_trip(&e->attrs, "attributes");
		check_round_trip(&e->tags, "tags");
		if (n < PAIRS_UIDS_MAX)
			uids[n++] = e->uid;
		for (uint32_t k = 0; k < e->n_parents && n < PAIRS_UIDS_MAX; k++)
			uids[n++] = e->parents[k];
	}
	cedar_view walk = { .over = over }, closure = { .base = kept },
		   both = { .over = over, .base = kept };
	FUZZ_CHECK(cedar_view_check(&walk, &a_eval, &err) == 0, "walk: %s", err.msg);
	FUZZ_CHECK(cedar_view_check(&closure, &a_eval, &err) == 0, "closure: %s", err.msg);
	FUZZ_CHECK(cedar_view_check(&both, &a_eval, &err) == 0,
		   "a set laid over itself makes a cycle: %s", err.msg);
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < n; k++) {
			int x = cedar_view_in(&walk, &a_eval, uids[i], uids[k]),
			    y = cedar_view_in(&closure, &a_eval, uids[i], uids[k]),
			    z = cedar_view_in(&both, &a_eval, uids[i], uids[k]);
			FUZZ_CHECK(x >= 0 && x == y && y == z,
				   "%.*s::\"%.*s\" in %.*s::\"%.*s\": walk %d, closure %d, both %d",
				   (int)uids[i]->type_len, uids[i]->type, (int)uids[i]->id_len,
				   uids[i]->id, (int)uids[k]->type_len, uids[k]->type,
				   (int)uids[k]->id_len, uids[k]->id, x, y, z);
		}
	cedar_entities_release(kept);
}

static void check_decision(json_t *body, cedar_entities *over)
{
	sdk_err err = { "" };
	cedar_request rq;
	json_t *ctx = json_object_get(body, "context");
	if (cedar_request_parse(&a_over, json_object_get(body, "principal"),
				json_object_get(body, "action"), json_object_get(body, "resource"),
				ctx, &rq, &err) < 0) {
		FUZZ_CHECK(utf8_text(err.msg), "the reason is not UTF-8 text");
		return;
	}
	check_round_trip(&rq.context, "the context");
	cedar_view v = { .over = over, .base = fx_store };
	if (cedar_view_check(&v, &a_eval, &err) < 0) {
		FUZZ_CHECK(utf8_text(err.msg), "the reason is not UTF-8 text");
		return;
	}
	cedar_response r;
	FUZZ_CHECK(cedar_authorize(fx_ps, &rq, &v, &a_eval, &r) == 0, "out of memory");
	bool allow = r.allow;
	uint32_t n_det = r.n_determining, n_err = r.n_errors;
	uint32_t det[64], errs[64];
	FUZZ_CHECK(n_det <= fx_ps->n && n_err <= fx_ps->n, "more policies named than there are");
	memcpy(det, r.determining, n_det * sizeof *det);
	for (uint32_t i = 0; i < n_err; i++) {
		FUZZ_CHECK(utf8_text(r.errors[i].msg), "policy %u's error is not UTF-8 text",
			   r.errors[i].policy);
		errs[i] = r.errors[i].policy;
	}
	FUZZ_CHECK(allow == (n_det > 0 && !fx_ps->policies[det[0]].forbid),
		   "allowed without a permit, or with a forbid");
	FUZZ_CHECK(cedar_authorize(fx_ps, &rq, &v, &a_eval, &r) == 0, "out of memory");
	FUZZ_CHECK(r.allow == allow && r.n_determining == n_det && r.n_errors == n_err &&
			   !memcmp(r.determining, det, n_det * sizeof *det),
		   "deciding again gives another answer");
	for (uint32_t i = 0; i < n_err; i++)
		FUZZ_CHECK(r.errors[i].policy == errs[i], "deciding again errs elsewhere");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 64 * 1024)
		return 0;
	json_t *body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(body)) {
		json_decref(body); /* sdk_req_json answers 400 */
		return 0;
	}
	cedar_entities *over = NULL;
	json_t *ents = json_object_get(body, "entities");
	if (ents)
		check_entities(ents, &over);
	if (!ents || over)
		check_decision(body, over);
	cedar_arena_reset(&a_over);
	cedar_arena_reset(&a_kept);
	cedar_arena_reset(&a_eval);
	json_decref(body);
	return 0;
}
