/* Test-only driver of the statechart engine (src/kernels/state_machine),
 * for the differential test against XState and the benchmark. Reads one
 * JSON case per line on stdin:
 *
 *   {"machine": CONFIG, "steps": [{"event": {...}} | {"advance": MS}, ...]}
 *
 * and writes one line:
 *
 *   {"parse_error": MESSAGE}                                   or
 *   {"steps": [STATE, ...]}   (the initial state first, then one per step)
 *
 * where STATE is {"value","context","status","emitted":[events]} or
 * {"error": MESSAGE} (the case stops there). Delayed events are kept as
 * the kernel keeps them, as XState's scheduler does: a second schedule
 * with a pending event's id leaves the first pending but no longer
 * cancellable (the id names the newest), a cancel removes the event its
 * id names, and an event that fires clears its id (so a newer one of that
 * id can no longer be cancelled either); when time advances, due events are
 * sent one at a time, earliest first, ties in the order they were
 * scheduled, each at its own due time. A machine that is done drops what
 * is pending and takes no more events.
 *
 *   sc_cli bench CASEFILE ROUNDS   sends the case's events ROUNDS times
 *   over (a fresh instance each round) and prints events/s and the 99th
 *   percentile of one event's latency, as the kernel computes one. */
#include "kernels/state_machine/engine.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct timer {
	char *id;
	json_t *event;
	long long due;
	unsigned long long seq;
	bool current; /* the one its id names (see above) */
} timer;

typedef struct timers {
	timer *v;
	size_t n, cap;
	unsigned long long seq, auto_id;
} timers;

static void t_cancel(timers *t, const char *id)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i].current && !strcmp(t->v[i].id, id)) {
			free(t->v[i].id);
			json_decref(t->v[i].event);
			t->v[i] = t->v[--t->n];
			return;
		}
}

/* The id no longer names any pending event. */
static void t_forget(timers *t, const char *id)
{
	for (size_t i = 0; i < t->n; i++)
		if (!strcmp(t->v[i].id, id))
			t->v[i].current = false;
}

static void t_clear(timers *t)
{
	for (size_t i = 0; i < t->n; i++) {
		free(t->v[i].id);
		json_decref(t->v[i].event);
	}
	t->n = 0;
}

/* Applies effects: schedules, cancels; emitted events go to `emitted`. */
static void apply(timers *t, json_t *fx, long long now, json_t *emitted)
{
	size_t i;
	json_t *e;
	json_array_foreach(fx, i, e) {
		const char *type = json_string_value(json_object_get(e, "type"));
		if (!strcmp(type, "emit")) {
			json_array_append(emitted, json_object_get(e, "event"));
		} else if (!strcmp(type, "cancel")) {
			t_cancel(t, json_string_value(json_object_get(e, "id")));
		} else if (!strcmp(type, "schedule")) {
			char auto_id[32];
			const char *id = json_string_value(json_object_get(e, "id"));
			if (!id) {
				snprintf(auto_id, sizeof auto_id, "\x01auto.%llu", t->auto_id++);
				id = auto_id;
			}
			t_forget(t, id);
			if (t->n == t->cap) {
				t->cap = t->cap ? t->cap * 2 : 16;
				t->v = realloc(t->v, t->cap * sizeof *t->v);
			}
			t->v[t->n++] = (timer){ strdup(id), json_incref(json_object_get(e, "event")),
						now + json_integer_value(json_object_get(e, "delay")), t->seq++,
						true };
		}
	}
}

static json_t *state_json(const sc_chart *c, const sc_snapshot *s, json_t *emitted)
{
	return json_pack("{s:o, s:O, s:s, s:O}", "value", sc_value(c, s), "context", s->context,
			 "status", s->status == SC_STATUS_DONE ? "done" : "active", "emitted", emitted);
}

/* One event to the machine: 0, or -1 with the error appended to out. */
static int send(const sc_chart *c, sc_snapshot **s, json_t *ev, timers *t, long long now,
		json_t *emitted)
{
	sc_snapshot *next;
	json_t *fx = json_array();
	sdk_err e;
	if (sc_send(c, *s, ev, &next, fx, &e) < 0) {
		json_decref(fx);
		json_array_append_new(emitted, json_pack("{s:s}", "\x01error", e.msg));
		return -1;
	}
	sc_snapshot_free(*s);
	*s = next;
	apply(t, fx, now, emitted);
	json_decref(fx);
	if ((*s)->status == SC_STATUS_DONE)
		t_clear(t);
	return 0;
}

static json_t *error_of(json_t *emitted)
{
	size_t n = json_array_size(emitted);
	json_t *last = n ? json_array_get(emitted, n - 1) : NULL;
	json_t *m = last ? json_object_get(last, "\x01error") : NULL;
	return m ? json_pack("{s:O}", "error", m) : NULL;
}

static json_t *run_case(json_t *cs, sdk_jq_cache *cache)
{
	sc_chart *c;
	sdk_err e;
	if (sc_chart_parse(json_object_get(cs, "machine"), &c, &e) < 0 ||
	    (sc_chart_compile(c, cache, &e) < 0 && (sc_chart_free(c), 1)))
		return json_pack("{s:s}", "parse_error", e.msg);
	json_t *out = json_array();
	timers t = { 0 };
	long long now = 0;
	sc_snapshot *s;
	json_t *fx = json_array(), *emitted = json_array();
	if (sc_start(c, NULL, &s, fx, &e) < 0) {
		json_array_append_new(out, json_pack("{s:s}", "error", e.msg));
		goto done;
	}
	apply(&t, fx, now, emitted);
	if (s->status == SC_STATUS_DONE)
		t_clear(&t);
	json_array_append_new(out, state_json(c, s, emitted));
	size_t i;
	json_t *step;
	json_array_foreach(json_object_get(cs, "steps"), i, step) {
		if (s->status == SC_STATUS_DONE)
			break;
		json_decref(emitted);
		emitted = json_array();
		int rc = 0;
		json_t *ev = json_object_get(step, "event");
		if (ev) {
			rc = send(c, &s, ev, &t, now, emitted);
		} else {
			long long target = now + json_integer_value(json_object_get(step, "advance"));
			while (rc == 0 && s->status != SC_STATUS_DONE) {
				size_t best = t.n;
				for (size_t k = 0; k < t.n; k++)
					if (t.v[k].due <= target &&
					    (best == t.n || t.v[k].due < t.v[best].due ||
					     (t.v[k].due == t.v[best].due && t.v[k].seq < t.v[best].seq)))
						best = k;
				if (best == t.n)
					break;
				timer fire = t.v[best];
				t.v[best] = t.v[--t.n];
				t_forget(&t, fire.id);
				now = fire.due;
				rc = send(c, &s, fire.event, &t, now, emitted);
				free(fire.id);
				json_decref(fire.event);
			}
			now = target;
		}
		if (rc < 0) {
			json_array_append_new(out, error_of(emitted));
			break;
		}
		json_array_append_new(out, state_json(c, s, emitted));
	}
	sc_snapshot_free(s);
done:
	json_decref(fx);
	json_decref(emitted);
	t_clear(&t);
	free(t.v);
	sc_chart_free(c);
	return json_pack("{s:o}", "steps", out);
}

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* The case's events (advances ignored) ROUNDS times, a fresh instance
 * each round; each event as the kernel handles one: the snapshot loaded
 * from its JSON, the event sent, the new snapshot dumped to JSON. */
static int bench(const char *file, long rounds)
{
	json_error_t je;
	json_t *cs = json_load_file(file, 0, &je);
	if (!cs) {
		fprintf(stderr, "%s: %s\n", file, je.text);
		return 1;
	}
	sdk_jq_cache *cache = sdk_jq_cache_new(1024);
	sc_chart *c;
	sdk_err e;
	if (sc_chart_parse(json_object_get(cs, "machine"), &c, &e) < 0 ||
	    sc_chart_compile(c, cache, &e) < 0) {
		fprintf(stderr, "%s\n", e.msg);
		return 1;
	}
	json_t *steps = json_object_get(cs, "steps");
	size_t per = 0, i;
	json_t *st;
	json_array_foreach(steps, i, st) per += json_object_get(st, "event") != NULL;
	double *lat = malloc((size_t)rounds * per * sizeof *lat);
	size_t nl = 0;
	double t0 = now_us();
	for (long r = 0; r < rounds; r++) {
		sc_snapshot *s;
		json_t *fx = json_array();
		if (sc_start(c, NULL, &s, fx, &e) < 0) {
			fprintf(stderr, "%s\n", e.msg);
			return 1;
		}
		json_t *dump = sc_snapshot_dump(c, s);
		sc_snapshot_free(s);
		json_array_foreach(steps, i, st) {
			json_t *ev = json_object_get(st, "event");
			if (!ev)
				continue;
			double a = now_us();
			sc_snapshot *cur, *next;
			if (sc_snapshot_load(c, dump, &cur, &e) < 0 || sc_send(c, cur, ev, &next, fx, &e) < 0) {
				fprintf(stderr, "%s\n", e.msg);
				return 1;
			}
			json_decref(dump);
			dump = sc_snapshot_dump(c, next);
			json_t *value = sc_value(c, next);
			json_decref(value);
			sc_snapshot_free(cur);
			sc_snapshot_free(next);
			json_array_clear(fx);
			lat[nl++] = now_us() - a;
			if (json_is_string(json_object_get(dump, "status")) &&
			    !strcmp(json_string_value(json_object_get(dump, "status")), "done"))
				break;
		}
		json_decref(dump);
		json_decref(fx);
	}
	double total = now_us() - t0;
	qsort(lat, nl, sizeof *lat, cmp_d);
	printf("{\"events\": %zu, \"seconds\": %.6f, \"events_per_s\": %.1f, \"p99_us\": %.2f, "
	       "\"p50_us\": %.2f}\n", nl, total / 1e6, nl / (total / 1e6), nl ? lat[nl * 99 / 100] : 0,
	       nl ? lat[nl / 2] : 0);
	free(lat);
	sc_chart_free(c);
	sdk_jq_cache_free(cache);
	json_decref(cs);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "bench"))
		return bench(argv[2], atol(argv[3]));
	sdk_jq_cache *cache = sdk_jq_cache_new(4096);
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, stdin)) > 0) {
		json_error_t je;
		json_t *cs = json_loadb(line, (size_t)n, 0, &je);
		json_t *out = cs ? run_case(cs, cache) : json_pack("{s:s}", "parse_error", je.text);
		char *s = json_dumps(out, JSON_COMPACT);
		puts(s);
		fflush(stdout);
		free(s);
		json_decref(out);
		json_decref(cs);
	}
	free(line);
	sdk_jq_cache_free(cache);
	return 0;
}
