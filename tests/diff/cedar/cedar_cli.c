/* Test-only driver of the Cedar engine (src/kernels/policy), for the
 * differential harness and the benchmark. Reads one JSON case per line on
 * stdin:
 *
 *   {"policies": TEXT, "entities": [...], "store": [...],
 *    "requests": [{"principal", "action", "resource", "context"}, ...]}
 *
 * ("store" is optional: entities kept with their closure, with "entities"
 * laid over them as a request's are in the kernel) and writes one line:
 *
 *   {"parse_error": {"message", "line", "column"}}            or
 *   {"entities_error": MESSAGE}                                or
 *   {"results": [{"decision": "allow"|"deny", "reasons": [i...],
 *                 "errors": [i...], "messages": [...]}
 *                | {"request_error": MESSAGE}, ...]}
 *
 * Policies are named by position (i), as cedar-wasm names them.
 *
 *   cedar_cli bench FILE ROUNDS   times the same kind of case, read from
 *   FILE, ROUNDS times over: parsing the request and its entities from
 *   JSON and deciding it, as the kernel does per request. */
#include "kernels/policy/authorize.h"
#include "kernels/policy/cedar.h"
#include "kernels/policy/entities.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static json_t *decide(const cedar_policy_set *ps, const cedar_view *v, json_t *rq, cedar_arena *a)
{
	sdk_err err;
	cedar_request r;
	if (cedar_request_parse(a, json_object_get(rq, "principal"), json_object_get(rq, "action"),
				json_object_get(rq, "resource"), json_object_get(rq, "context"), &r,
				&err) < 0)
		return json_pack("{s:s}", "request_error", err.msg);
	cedar_response resp;
	if (cedar_authorize(ps, &r, v, a, &resp) < 0)
		return json_pack("{s:s}", "request_error", "out of memory");
	json_t *reasons = json_array(), *errors = json_array(), *msgs = json_array();
	for (uint32_t i = 0; i < resp.n_determining; i++)
		json_array_append_new(reasons, json_integer(resp.determining[i]));
	for (uint32_t i = 0; i < resp.n_errors; i++) {
		json_array_append_new(errors, json_integer(resp.errors[i].policy));
		json_array_append_new(msgs, json_string(resp.errors[i].msg));
	}
	return json_pack("{s:s, s:o, s:o, s:o}", "decision", resp.allow ? "allow" : "deny", "reasons",
			 reasons, "errors", errors, "messages", msgs);
}

static json_t *run_case(json_t *c)
{
	json_t *text = json_object_get(c, "policies");
	cedar_policy_set *ps;
	cedar_parse_error perr;
	if (cedar_parse(json_string_value(text) ? json_string_value(text) : "", json_string_length(text),
			&ps, &perr) < 0)
		return json_pack("{s:{s:s, s:i, s:i}}", "parse_error", "message", perr.msg, "line",
				 (int)perr.line, "column", (int)perr.column);
	cedar_arena store_arena, a;
	cedar_arena_init(&store_arena, 0);
	cedar_arena_init(&a, 64u << 20);
	sdk_err err;
	json_t *out = NULL;
	cedar_entities *store = NULL, *over = NULL;
	json_t *store_json = json_object_get(c, "store");
	if (store_json &&
	    cedar_entities_parse(&store_arena, store_json, true, false, &store, &err) < 0) {
		out = json_pack("{s:s}", "entities_error", err.msg);
		goto done;
	}
	json_t *ents = json_object_get(c, "entities");
	if (cedar_entities_parse(&a, ents ? ents : json_array(), false, false, &over, &err) < 0) {
		out = json_pack("{s:s}", "entities_error", err.msg);
		goto done;
	}
	cedar_view v = { .over = over, .base = store };
	if (cedar_view_check(&v, &a, &err) < 0) {
		out = json_pack("{s:s}", "entities_error", err.msg);
		goto done;
	}
	json_t *results = json_array();
	size_t i;
	json_t *rq;
	json_array_foreach(json_object_get(c, "requests"), i, rq)
		json_array_append_new(results, decide(ps, &v, rq, &a));
	out = json_pack("{s:o}", "results", results);
done:
	cedar_arena_free(&a);
	cedar_arena_free(&store_arena);
	cedar_policy_set_free(ps);
	return out;
}

static int run_lines(void)
{
	size_t cap = 1 << 16, len = 0;
	char *line = malloc(cap);
	int c;
	if (!line)
		return 1;
	for (;;) {
		c = getchar();
		if (c != EOF && c != '\n') {
			if (len + 1 >= cap) {
				char *more = realloc(line, cap *= 2);
				if (!more)
					return 1;
				line = more;
			}
			line[len++] = (char)c;
			continue;
		}
		if (len) {
			json_error_t jerr;
			json_t *cs = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
			json_t *out = cs ? run_case(cs) : json_pack("{s:s}", "bad_case", jerr.text);
			if (!out) /* a message that is not UTF-8: a bug, and the harness must see it */
				out = json_pack("{s:s}", "bad_case", "the answer could not be encoded as JSON");
			char *s = json_dumps(out, JSON_COMPACT);
			puts(s ? s : "{}");
			free(s);
			json_decref(out);
			json_decref(cs);
			fflush(stdout);
		}
		len = 0;
		if (c == EOF)
			break;
	}
	free(line);
	return 0;
}

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int dcmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* The workload file: {"policies": TEXT, "requests": [{"principal", ...,
 * "context", "entities"}]}; each request is sent as JSON text, parsed,
 * its entities read, decided, as the kernel would. */
static int bench(const char *path, long rounds)
{
	json_error_t jerr;
	json_t *w = json_load_file(path, 0, &jerr);
	if (!w) {
		fprintf(stderr, "%s: %s\n", path, jerr.text);
		return 1;
	}
	cedar_policy_set *ps;
	cedar_parse_error perr;
	json_t *text = json_object_get(w, "policies");
	if (cedar_parse(json_string_value(text), json_string_length(text), &ps, &perr) < 0) {
		fprintf(stderr, "policies: %u:%u: %s\n", perr.line, perr.column, perr.msg);
		return 1;
	}
	json_t *reqs = json_object_get(w, "requests");
	size_t n = json_array_size(reqs);
	char **bodies = calloc(n, sizeof *bodies);
	for (size_t i = 0; i < n; i++)
		bodies[i] = json_dumps(json_array_get(reqs, i), JSON_COMPACT);
	double *lat = malloc(sizeof *lat * n * (size_t)rounds);
	cedar_arena a;
	cedar_arena_init(&a, 64u << 20);
	long allow = 0;
	double t0 = now_us();
	for (long r = 0; r < rounds; r++)
		for (size_t i = 0; i < n; i++) {
			double s = now_us();
			json_t *rq = json_loads(bodies[i], 0, NULL);
			sdk_err err;
			cedar_entities *over;
			cedar_request q;
			cedar_response resp;
			if (!rq ||
			    cedar_entities_parse(&a, json_object_get(rq, "entities"), false, false,
						 &over, &err) < 0 ||
			    cedar_request_parse(&a, json_object_get(rq, "principal"),
						json_object_get(rq, "action"),
						json_object_get(rq, "resource"),
						json_object_get(rq, "context"), &q, &err) < 0) {
				fprintf(stderr, "request %zu: %s\n", i, err.msg);
				return 1;
			}
			cedar_view v = { .over = over };
			if (cedar_view_check(&v, &a, &err) < 0 ||
			    cedar_authorize(ps, &q, &v, &a, &resp) < 0)
				return 1;
			allow += resp.allow;
			json_decref(rq);
			cedar_arena_reset(&a);
			lat[(size_t)r * n + i] = now_us() - s;
		}
	double total = now_us() - t0;
	size_t m = n * (size_t)rounds;
	qsort(lat, m, sizeof *lat, dcmp);
	printf("{\"decisions\": %zu, \"seconds\": %.6f, \"per_second\": %.1f, \"p50_us\": %.2f, "
	       "\"p99_us\": %.2f, \"allow\": %ld}\n",
	       m, total / 1e6, (double)m / (total / 1e6), lat[m / 2], lat[m * 99 / 100], allow);
	for (size_t i = 0; i < n; i++)
		free(bodies[i]);
	free(bodies);
	free(lat);
	cedar_arena_free(&a);
	cedar_policy_set_free(ps);
	json_decref(w);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "bench"))
		return argc == 4 ? bench(argv[2], atol(argv[3])) : 2;
	if (argc == 1 || (argc == 2 && !strcmp(argv[1], "eval")))
		return run_lines();
	fprintf(stderr, "usage: cedar_cli [eval] < cases.jsonl | cedar_cli bench FILE ROUNDS\n");
	return 2;
}
