#include "kernels/research/rules.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Which kernels a rule speaks of: the one asked about (or any, with no
 * kernel asked), or a kernel the asked one depends on. */
typedef enum rs_scope { RS_SELF = 1, RS_DEP = 2, RS_ANY = 3 } rs_scope;

typedef struct rs_add {
	const char *signal;
	int weight;
	bool on_asked; /* the signal is on the kernel asked about, not the rule's */
} rs_add;

typedef struct rs_rule {
	const char *id;
	/* The first %s is the rule's kernel, the second the one asked about. */
	const char *title;
	rs_scope scope;
	const char *needs[3]; /* every one of these, on the rule's kernel */
	rs_add adds[4];       /* each one present adds its weight */
	int base;
} rs_rule;

#define EV_BONUS_MAX 5 /* a point per further piece of evidence, at most */

static const rs_rule rules[] = {
	{ "dependency_down",
	  "%s was down during the window, and %s depends on it",
	  RS_DEP, { "down" },
	  { { "exit_signal", 10, false }, { "restarts", 10, false }, { "unlogged", 20, true },
	    { "errors", 5, true } },
	  60 },
	{ "oom", "%s was killed for lack of memory (signal 9 with an out-of-memory hint)",
	  RS_ANY, { "exit_signal_9", "oom" }, { { "restarts", 5, false } }, 70 },
	{ "port_taken", "%s could not bind its port: another process holds it", RS_ANY,
	  { "port_taken" }, { { "rebind", 15, false } }, 65 },
	{ "disk_full", "%s ran out of disk space", RS_ANY, { "disk_full" }, { { NULL, 0, false } },
	  65 },
	{ "storage_failed", "%s's database failed (damaged or replaced)", RS_ANY,
	  { "storage_failed" }, { { NULL, 0, false } }, 65 },
	{ "hung", "%s stopped answering and was killed by its watchdog", RS_ANY, { "hung" },
	  { { "restarts", 5, false } }, 55 },
	{ "crash_loop", "%s crashed again and again (a crash loop)", RS_ANY, { "crash_loop" },
	  { { "exit_signal", 5, false }, { "down", 5, false } }, 45 },
	{ "killed", "%s was killed by a signal it did not ask for", RS_ANY, { "exit_signal" },
	  { { "down", 5, false }, { "restarts", 5, false } }, 40 },
	{ "exited", "%s exited with an error status", RS_ANY, { "exit_code" },
	  { { "down", 5, false } }, 40 },
	{ "down", "%s itself was down during the window", RS_SELF, { "down" },
	  { { "restarts", 5, false }, { "exit_signal", 5, false } }, 35 },
	{ "incident", "self_healing holds an incident for %s", RS_ANY, { "incident" },
	  { { NULL, 0, false } }, 30 },
	{ "errors", "%s answered requests with errors", RS_ANY, { "errors" }, { { NULL, 0, false } },
	  20 },
};

#define N_RULES (sizeof rules / sizeof rules[0])

size_t rs_rule_count(void) { return N_RULES; }
const char *rs_rule_id(size_t i) { return i < N_RULES ? rules[i].id : NULL; }

static const struct {
	const char *kernel;
	const char *deps[RS_DEPS_MAX + 1];
} deps_table[] = {
	{ "audit", { "immutable_log", NULL } },
	{ "compliance", { "immutable_log", "crypto", "trust", NULL } },
	{ "alerts", { "metrics", "message_bus", NULL } },
	{ "scheduler", { "message_bus", "executor", "workflow", NULL } },
	{ "workflow", { "message_bus", NULL } },
	{ "governance", { "audit", "message_bus", NULL } },
	{ "state_machine", { "message_bus", NULL } },
	{ "trust", { "message_bus", NULL } },
	{ "metrics", { "immutable_log", NULL } },
};

const char *const *rs_deps_of(const char *kernel)
{
	static const char *const none[] = { NULL };
	for (size_t i = 0; kernel && i < sizeof deps_table / sizeof deps_table[0]; i++)
		if (!strcmp(deps_table[i].kernel, kernel))
			return deps_table[i].deps;
	return none;
}

static void add_signal(json_t *signals, const char *s)
{
	size_t i;
	json_t *v;
	json_array_foreach(signals, i, v) if (!strcmp(json_string_value(v), s)) return;
	json_array_append_new(signals, json_string(s));
}

static bool has_ci(const char *s, const char *w)
{
	size_t n = strlen(w);
	for (; s && *s; s++)
		if (!strncasecmp(s, w, n))
			return true;
	return false;
}

void rs_signals_of_state(const char *from, const char *to, const char *last_exit,
			 json_t *signals)
{
	if (!to)
		return;
	/* Down: restarting, failed, unable to bind, stopped; or straight from
	 * ready to starting (a standby took over after an exit). */
	bool down = !strcmp(to, "restarting") || !strcmp(to, "failed") ||
		    !strcmp(to, "port_unavailable") || !strcmp(to, "stopped") ||
		    (!strcmp(to, "starting") && from && !strcmp(from, "ready"));
	if (down)
		add_signal(signals, "down");
	if (!strcmp(to, "port_unavailable"))
		add_signal(signals, "port_taken");
	if (!strcmp(to, "failed"))
		add_signal(signals, "crash_loop");
	/* The last exit is told with every change; it is this change's news
	 * only when the kernel went down. */
	if (!down || !last_exit)
		return;
	const char *sig = strstr(last_exit, "signal ");
	if (sig) {
		add_signal(signals, "exit_signal");
		char name[32];
		snprintf(name, sizeof name, "exit_signal_%d", atoi(sig + 7));
		add_signal(signals, name);
	} else {
		const char *ex = strstr(last_exit, "exit ");
		if (ex && atoi(ex + 5) != 0)
			add_signal(signals, "exit_code");
	}
	if (has_ci(last_exit, "oom") || has_ci(last_exit, "out of memory") ||
	    has_ci(last_exit, "memory"))
		add_signal(signals, "oom");
	if (has_ci(last_exit, "watchdog") || has_ci(last_exit, "hung") ||
	    has_ci(last_exit, "not answering"))
		add_signal(signals, "hung");
	if (has_ci(last_exit, "no space") || has_ci(last_exit, "disk full"))
		add_signal(signals, "disk_full");
	if (has_ci(last_exit, "corrupt") || has_ci(last_exit, "malformed"))
		add_signal(signals, "storage_failed");
}

void rs_signals_of_heal(const json_t *details, json_t *signals)
{
	char *text = json_dumps(details, JSON_COMPACT);
	if (!text)
		return;
	if (has_ci(text, "rebind") || has_ci(text, "port_move") || has_ci(text, "reset_port"))
		add_signal(signals, "rebind");
	if (has_ci(text, "address already in use") || has_ci(text, "port_unavailable"))
		add_signal(signals, "port_taken");
	if (has_ci(text, "disk") && has_ci(text, "full"))
		add_signal(signals, "disk_full");
	if (has_ci(text, "hung") || has_ci(text, "watchdog"))
		add_signal(signals, "hung");
	free(text);
}

static bool ev_has(const json_t *ev, const char *kernel, const char *signal)
{
	const char *k = json_string_value(json_object_get(ev, "kernel"));
	if (!k || strcmp(k, kernel))
		return false;
	size_t i;
	json_t *s;
	json_array_foreach(json_object_get(ev, "signals"), i, s)
		if (!strcmp(json_string_value(s), signal))
			return true;
	return false;
}

/* The ids of the evidence showing `signal` on `kernel`, appended to ids
 * (once each); how many there are. */
static size_t cite(const json_t *evidence, const char *kernel, const char *signal, json_t *ids)
{
	size_t n = 0, i;
	json_t *ev;
	json_array_foreach(evidence, i, ev) {
		if (!ev_has(ev, kernel, signal))
			continue;
		n++;
		json_t *id = json_object_get(ev, "id");
		size_t j;
		json_t *have;
		bool dup = false;
		json_array_foreach(ids, j, have) dup |= json_equal(have, id);
		if (!dup && json_is_string(id))
			json_array_append(ids, id);
	}
	return n;
}

/* One rule on one kernel: a hypothesis, or NULL when it does not hold. */
static json_t *try_rule(const rs_rule *r, const json_t *evidence, const char *kernel,
			const char *asked, bool is_dep)
{
	if (is_dep ? !(r->scope & RS_DEP) : !(r->scope & RS_SELF))
		return NULL;
	json_t *ids = json_array();
	size_t count = 0;
	for (size_t i = 0; i < 3 && r->needs[i]; i++) {
		size_t n = cite(evidence, kernel, r->needs[i], ids);
		if (n == 0) {
			json_decref(ids);
			return NULL;
		}
		count += n;
	}
	int score = r->base;
	for (size_t i = 0; i < 4 && r->adds[i].signal; i++) {
		const char *on = r->adds[i].on_asked ? asked : kernel;
		if (on && cite(evidence, on, r->adds[i].signal, ids) > 0)
			score += r->adds[i].weight;
	}
	score += (int)(count - 1 < EV_BONUS_MAX ? count - 1 : EV_BONUS_MAX);
	/* A dependency's own trouble explains less than the asked kernel's. */
	if (is_dep && r->scope != RS_DEP)
		score = score * 4 / 5;
	char title[256];
	snprintf(title, sizeof title, r->title, kernel, asked ? asked : "", kernel);
	return json_pack("{s:s, s:s, s:s, s:i, s:o}", "rule", r->id, "kernel", kernel, "title", title,
			 "score", score, "evidence", ids);
}

static int by_score(const void *a, const void *b)
{
	const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	json_int_t sx = json_integer_value(json_object_get(x, "score"));
	json_int_t sy = json_integer_value(json_object_get(y, "score"));
	if (sx != sy)
		return sx > sy ? -1 : 1;
	json_int_t ox = json_integer_value(json_object_get(x, "order"));
	json_int_t oy = json_integer_value(json_object_get(y, "order"));
	return ox < oy ? -1 : ox > oy;
}

json_t *rs_rank(const json_t *evidence, const char *asked)
{
	/* The kernels the evidence speaks of, each once, and whether each is
	 * a dependency of the asked one. */
	json_t *kernels = json_array();
	size_t i;
	json_t *ev;
	json_array_foreach(evidence, i, ev) {
		json_t *k = json_object_get(ev, "kernel");
		if (!json_is_string(k))
			continue;
		size_t j;
		json_t *have;
		bool dup = false;
		json_array_foreach(kernels, j, have) dup |= json_equal(have, k);
		if (!dup)
			json_array_append(kernels, k);
	}
	const char *const *deps = rs_deps_of(asked);
	size_t cap = json_array_size(kernels) * N_RULES;
	json_t **found = calloc(cap ? cap : 1, sizeof *found);
	size_t n = 0, order = 0;
	json_t *k;
	json_array_foreach(kernels, i, k) {
		const char *name = json_string_value(k);
		bool is_dep = false, is_asked = !asked || !strcmp(asked, name);
		for (size_t d = 0; deps[d]; d++)
			is_dep |= !strcmp(deps[d], name);
		if (!is_asked && !is_dep)
			continue;
		for (size_t r = 0; r < N_RULES && found; r++) {
			json_t *h = try_rule(&rules[r], evidence, name, asked, is_dep && !is_asked);
			if (!h)
				continue;
			json_object_set_new(h, "order", json_integer((json_int_t)(r * 1000 + order)));
			found[n++] = h;
		}
		order++;
	}
	if (n)
		qsort(found, n, sizeof *found, by_score);
	json_t *out = json_array();
	for (size_t h = 0; h < n; h++) {
		char id[24];
		snprintf(id, sizeof id, "H%zu", h + 1);
		json_object_del(found[h], "order");
		json_object_set_new(found[h], "id", json_string(id));
		json_array_append_new(out, found[h]);
	}
	free(found);
	json_decref(kernels);
	return out;
}
