/* The Cedar policy parser (src/kernels/policy/lexer.c, parser.c), fed any
 * bytes as the text of a policy set (what PUT /policies takes), and the
 * evaluator (eval.c, value.c, the extensions) on every set it accepts,
 * against fixed entities and three fixed requests.
 *
 * Properties (a failure aborts):
 *  - a refusal has a message that is non-empty valid UTF-8, and a position
 *    inside the text whose line and column are those of its byte offset
 *    (column in characters); the text with a newline in front is refused
 *    the same way one line further down;
 *  - an accepted set holds at most CEDAR_POLICIES_MAX policies with
 *    distinct names, each a run of the text in order whose line and column
 *    are those of its start; the text with a newline in front is accepted
 *    with the same policies one line further down;
 *  - each policy's own run of text parses alone to one policy of the same
 *    effect, annotations and (with @id) name;
 *  - a decision is Cedar's combination of the policies' own: deciding each
 *    policy alone and combining (a satisfied forbid denies and names the
 *    satisfied forbids, else the satisfied permits allow, errors listed
 *    with their messages) gives the set's decision; every error message
 *    is valid UTF-8; deciding again gives the same answer. */
#include "kernels/policy/authorize.h"
#include "kernels/policy/cedar.h"
#include "kernels/policy/entities.h"

#include "fuzz.h"

#include <jansson.h>
#include <stdbool.h>
#include <string.h>

#define SPLIT_MAX 32 /* policies checked one by one, per input */

/* The entities of tests/diff/cedar/corpus/parser.json, which its cases
 * (this harness's seeds) were written against. */
static const char entities_json[] =
	"[{\"uid\":{\"type\":\"User\",\"id\":\"alice\"},\"attrs\":{\"name\":\"Alice\",\"level\":3,"
	"\"tags\":[\"a\",\"b\"],\"flag\":true,\"info\":{\"level\":2,\"name\":\"x\",\"nested\":"
	"{\"level\":1}},\"owner\":{\"__entity\":{\"type\":\"User\",\"id\":\"bob\"}},\"d\":"
	"{\"__extn\":{\"fn\":\"decimal\",\"arg\":\"1.5\"}},\"ip\":{\"__extn\":{\"fn\":\"ip\","
	"\"arg\":\"10.1.2.3\"}},\"when\":{\"__extn\":{\"fn\":\"datetime\",\"arg\":"
	"\"2024-06-15T12:00:00Z\"}},\"n\":1},\"parents\":[{\"type\":\"Group\",\"id\":\"g\"}],"
	"\"tags\":{\"t\":1,\"u\":\"tag\"}},"
	"{\"uid\":{\"type\":\"User\",\"id\":\"bob\"},\"attrs\":{\"level\":5},\"parents\":[]},"
	"{\"uid\":{\"type\":\"Group\",\"id\":\"g\"},\"attrs\":{},\"parents\":[{\"type\":\"Group\","
	"\"id\":\"top\"}]},"
	"{\"uid\":{\"type\":\"Doc\",\"id\":\"d1\"},\"attrs\":{\"owner\":{\"__entity\":{\"type\":"
	"\"User\",\"id\":\"alice\"}},\"level\":1},\"parents\":[{\"type\":\"Folder\",\"id\":\"f\"}]},"
	"{\"uid\":{\"type\":\"Folder\",\"id\":\"f\"},\"attrs\":{},\"parents\":[{\"type\":\"Folder\","
	"\"id\":\"root\"}]},"
	"{\"uid\":{\"type\":\"Action\",\"id\":\"view\"},\"attrs\":{},\"parents\":[{\"type\":"
	"\"Action\",\"id\":\"all\"}]}]";

/* The corpus's request; one with extension values and extremes in its
 * context; one naming entities that do not exist. */
static const char *const requests_json[] = {
	("{\"principal\":{\"type\":\"User\",\"id\":\"alice\"},\"action\":{\"type\":\"Action\","
	"\"id\":\"view\"},\"resource\":{\"type\":\"Doc\",\"id\":\"d1\"},\"context\":{\"n\":2,"
	"\"flag\":true,\"name\":\"hello\",\"tags\":[\"x\"]}}"),
	("{\"principal\":{\"type\":\"User\",\"id\":\"bob\"},\"action\":{\"type\":\"Action\","
	"\"id\":\"all\"},\"resource\":{\"type\":\"Folder\",\"id\":\"f\"},\"context\":{\"n\":"
	"9223372036854775807,\"m\":-9223372036854775808,\"s\":\"caf\\u00e9 *\",\"ip\":"
	"{\"__extn\":{\"fn\":\"ip\",\"arg\":\"192.168.0.0/16\"}},\"d\":{\"__extn\":{\"fn\":"
	"\"decimal\",\"arg\":\"-0.0001\"}},\"dur\":{\"__extn\":{\"fn\":\"duration\",\"arg\":"
	"\"1h30m\"}},\"who\":{\"__entity\":{\"type\":\"User\",\"id\":\"alice\"}},\"rec\":{\"a\":"
	"{\"b\":[1,[2]]}}}}"),
	("{\"principal\":{\"type\":\"User\",\"id\":\"nobody\"},\"action\":{\"type\":\"Action\","
	"\"id\":\"edit\"},\"resource\":{\"type\":\"Doc\",\"id\":\"gone\"},\"context\":{}}"),
};

#define N_REQUESTS (sizeof requests_json / sizeof *requests_json)

static cedar_arena fx_arena, eval_arena;
static cedar_view fx_view;
static cedar_request fx_req[N_REQUESTS];

static json_t *fx_load(const char *text)
{
	json_error_t je;
	json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &je);
	FUZZ_CHECK(j, "fixture JSON: %s", je.text);
	return j;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	sdk_err err = { "" };
	cedar_arena_init(&fx_arena, 0);
	cedar_arena_init(&eval_arena, 64u << 20);
	json_t *ents = fx_load(entities_json);
	cedar_entities *es;
	FUZZ_CHECK(cedar_entities_parse(&fx_arena, ents, true, false, &es, &err) == 0,
		   "fixture entities: %s", err.msg);
	json_decref(ents);
	fx_view = (cedar_view){ .base = es };
	for (size_t i = 0; i < N_REQUESTS; i++) {
		json_t *r = fx_load(requests_json[i]);
		FUZZ_CHECK(cedar_request_parse(
				   &fx_arena, json_object_get(r, "principal"),
				   json_object_get(r, "action"), json_object_get(r, "resource"),
				   json_object_get(r, "context"), &fx_req[i], &err) == 0,
			   "fixture request %zu: %s", i, err.msg);
		json_decref(r);
	}
	return 0;
}

static bool utf8_valid(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
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

/* Line and column of byte `off`, counted from scratch. */
static void position_of(const char *t, size_t off, uint32_t *line, uint32_t *col)
{
	*line = *col = 1;
	for (size_t i = 0; i < off; i++) {
		if (t[i] == '\n')
			++*line, *col = 1;
		else if (((unsigned char)t[i] & 0xc0) != 0x80)
			++*col;
	}
}

/* One policy decided alone: satisfied, erred (with its message), or neither. */
struct alone {
	bool satisfied, erred;
	char msg[CEDAR_ERR_MAX];
};

static void decide_alone(const char *text, const cedar_policy *pol, const cedar_request *rq,
			 struct alone *out)
{
	cedar_policy_set *one;
	cedar_parse_error perr;
	FUZZ_CHECK(cedar_parse(text + pol->start, pol->end - pol->start, &one, &perr) == 0,
		   "policy %u's own text [%u, %u) is refused: %s", pol->index, pol->start, pol->end,
		   perr.msg);
	FUZZ_CHECK(one->n == 1, "policy %u's own text holds %u policies", pol->index, one->n);
	const cedar_policy *p = &one->policies[0];
	FUZZ_CHECK(p->forbid == pol->forbid && p->n_annotations == pol->n_annotations,
		   "policy %u alone has another effect or other annotations", pol->index);
	for (uint32_t k = 0; k < pol->n_annotations; k++)
		if (pol->annotations[k].key_len == 2 && !memcmp(pol->annotations[k].key, "id", 2))
			FUZZ_CHECK(!strcmp(p->id, pol->id), "policy %u alone is named %s, not %s",
				   pol->index, p->id, pol->id);
	cedar_arena_reset(&eval_arena);
	cedar_response r;
	FUZZ_CHECK(cedar_authorize(one, rq, &fx_view, &eval_arena, &r) == 0, "out of memory");
	*out = (struct alone){ .satisfied = r.n_determining == 1, .erred = r.n_errors == 1 };
	FUZZ_CHECK(r.n_determining + r.n_errors <= 1 && r.allow == (out->satisfied && !p->forbid),
		   "policy %u alone: allow %d, %u determining, %u errors", pol->index, r.allow,
		   r.n_determining, r.n_errors);
	if (out->erred)
		snprintf(out->msg, sizeof out->msg, "%s", r.errors[0].msg);
	cedar_policy_set_free(one);
}

/* The set's decision of request `rq` against the policies' own. */
static void check_decision(const char *text, const cedar_policy_set *ps, const cedar_request *rq)
{
	cedar_arena_reset(&eval_arena);
	cedar_response r;
	FUZZ_CHECK(cedar_authorize(ps, rq, &fx_view, &eval_arena, &r) == 0, "out of memory");
	static uint32_t det[CEDAR_POLICIES_MAX], errs[CEDAR_POLICIES_MAX];
	static char msgs[SPLIT_MAX][CEDAR_ERR_MAX];
	bool allow = r.allow;
	uint32_t n_det = r.n_determining, n_err = r.n_errors;
	memcpy(det, r.determining, n_det * sizeof *det);
	for (uint32_t i = 0; i < n_err; i++) {
		FUZZ_CHECK(utf8_valid(r.errors[i].msg) && *r.errors[i].msg,
			   "policy %u's error message is not UTF-8 text", r.errors[i].policy);
		errs[i] = r.errors[i].policy;
		if (i < SPLIT_MAX)
			snprintf(msgs[i], sizeof msgs[i], "%s", r.errors[i].msg);
	}

	/* Again: the same answer. */
	cedar_arena_reset(&eval_arena);
	FUZZ_CHECK(cedar_authorize(ps, rq, &fx_view, &eval_arena, &r) == 0, "out of memory");
	FUZZ_CHECK(r.allow == allow && r.n_determining == n_det && r.n_errors == n_err &&
			   !memcmp(r.determining, det, n_det * sizeof *det),
		   "deciding again gives another answer");

	if (ps->n > SPLIT_MAX)
		return;
	static struct alone one[SPLIT_MAX];
	bool any_forbid = false, any_permit = false;
	for (uint32_t i = 0; i < ps->n; i++) {
		decide_alone(text, &ps->policies[i], rq, &one[i]);
		any_forbid |= one[i].satisfied && ps->policies[i].forbid;
		any_permit |= one[i].satisfied && !ps->policies[i].forbid;
	}
	FUZZ_CHECK(allow == (!any_forbid && any_permit), "the set %s, its policies say otherwise",
		   allow ? "allows" : "denies");
	uint32_t d = 0, e = 0;
	for (uint32_t i = 0; i < ps->n; i++) {
		if (one[i].satisfied && ps->policies[i].forbid == any_forbid) {
			FUZZ_CHECK(d < n_det && det[d] == i, "policy %u determines alone, not in the set",
				   i);
			d++;
		}
		if (one[i].erred) {
			FUZZ_CHECK(e < n_err && errs[e] == i && !strcmp(msgs[e], one[i].msg),
				   "policy %u errs alone (%s), not so in the set", i, one[i].msg);
			e++;
		}
	}
	FUZZ_CHECK(d == n_det && e == n_err, "the set names %u determining and %u erring policies, "
		   "its policies alone %u and %u", n_det, n_err, d, e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 64 * 1024)
		return 0;
	char *text = fuzz_copy(data, size, 0);
	cedar_policy_set *ps;
	cedar_parse_error perr;
	int rc = cedar_parse(text, size, &ps, &perr);

	/* The same text one line down. */
	char *down = malloc(size + 1);
	FUZZ_CHECK(down, "out of memory");
	down[0] = '\n';
	memcpy(down + 1, text, size);
	cedar_policy_set *ps2;
	cedar_parse_error perr2;
	int rc2 = cedar_parse(down, size + 1, &ps2, &perr2);
	FUZZ_CHECK(rc == rc2, "a newline in front changes the verdict (%d, %d: %s)", rc, rc2,
		   rc ? perr.msg : perr2.msg);

	if (rc < 0) {
		FUZZ_CHECK(*perr.msg && utf8_valid(perr.msg), "the message is not UTF-8 text");
		FUZZ_CHECK(perr.offset <= size, "the error is at %u, past the %zu bytes", perr.offset,
			   size);
		uint32_t line, col;
		position_of(text, perr.offset, &line, &col);
		FUZZ_CHECK(perr.line == line && perr.column == col,
			   "the error at byte %u is said to be at %u:%u, not %u:%u", perr.offset,
			   perr.line, perr.column, line, col);
		FUZZ_CHECK(perr2.offset == perr.offset + 1 && perr2.line == perr.line + 1 &&
				   perr2.column == perr.column && !strcmp(perr2.msg, perr.msg),
			   "one line down, the error %u:%u %s is %u:%u %s", perr.line, perr.column,
			   perr.msg, perr2.line, perr2.column, perr2.msg);
		goto out;
	}

	FUZZ_CHECK(ps->n <= CEDAR_POLICIES_MAX && ps2->n == ps->n, "%u policies, then %u", ps->n,
		   ps2->n);
	for (uint32_t i = 0; i < ps->n; i++) {
		const cedar_policy *p = &ps->policies[i], *q = &ps2->policies[i];
		FUZZ_CHECK(p->index == i && p->start < p->end && p->end <= size &&
				   (i == 0 || ps->policies[i - 1].end <= p->start),
			   "policy %u's text [%u, %u) is out of order or place", i, p->start, p->end);
		FUZZ_CHECK(text[p->end - 1] == ';', "policy %u's text does not end with ;", i);
		uint32_t line, col;
		position_of(text, p->start, &line, &col);
		FUZZ_CHECK(p->line == line && p->column == col, "policy %u is at %u:%u, not %u:%u", i,
			   p->line, p->column, line, col);
		FUZZ_CHECK(q->start == p->start + 1 && q->end == p->end + 1 && q->line == p->line + 1 &&
				   q->column == p->column && q->forbid == p->forbid &&
				   !strcmp(q->id, p->id),
			   "policy %u one line down differs", i);
		for (uint32_t k = 0; k < i && i < SPLIT_MAX; k++)
			FUZZ_CHECK(strcmp(ps->policies[k].id, p->id), "policies %u and %u are both %s", k,
				   i, p->id);
	}
	for (size_t i = 0; i < N_REQUESTS; i++)
		check_decision(text, ps, &fx_req[i]);
	cedar_policy_set_free(ps);
	cedar_policy_set_free(ps2);
out:
	free(down);
	free(text);
	return 0;
}
