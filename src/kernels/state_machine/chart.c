/* Parsing an XState v5 machine configuration (chart.h). Where XState
 * would build a machine, this builds the same table of nodes:
 *
 *   - document order is a pre-order walk, children in JavaScript's key
 *     order (integer-like keys first, ascending, then the others as
 *     written), which is the order of Object.keys that XState walks;
 *   - a node's type is its `type`, else compound when it has states, else
 *     history when it has `history`, else atomic;
 *   - a node's transitions are keyed by descriptor in the order XState's
 *     map has them: `on` (key order), then onDone
 *     ("xstate.done.state.ID", replacing an `on` entry of that name), then
 *     `after` (key order; "xstate.after.DELAY.ID", added to an entry of
 *     that name); each `after` delay also appends to the node's entry a
 *     raise of its event with that delay, and to its exit a cancel;
 *   - targets: "#id" (and "#id.child"), ".child" (a child of the source),
 *     "sibling" or "sibling.child" (from the source's parent), with "\."
 *     escaping a dot; "" or no target: targetless. */
#include "kernels/state_machine/chart.h"
#include "sdk/json_keys.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_MAX_LEN 1024

typedef struct parser {
	sc_chart *c;
	size_t cap_nodes, cap_trans, cap_exprs;
	size_t n_actions;
	sdk_err *err;
	char path[PATH_MAX_LEN];
	size_t plen;
} parser;

static int fail(parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(parser *p, const char *fmt, ...)
{
	char why[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	return sdk_fail(p->err, SDK_EINVAL, "%s: %s", p->plen ? p->path : "/", why);
}

/* Appends "/seg" (JSON pointer escaping) to the path; returns the old
 * length for path_pop. A path too long for the buffer is cut (it is only
 * for messages). */
static size_t path_push(parser *p, const char *seg)
{
	size_t old = p->plen;
	char buf[PATH_MAX_LEN];
	size_t o = 0;
	buf[o++] = '/';
	for (const char *s = seg; *s && o + 3 < sizeof buf; s++) {
		if (*s == '~') {
			buf[o++] = '~';
			buf[o++] = '0';
		} else if (*s == '/') {
			buf[o++] = '~';
			buf[o++] = '1';
		} else {
			buf[o++] = *s;
		}
	}
	if (p->plen + o + 1 < sizeof p->path) {
		memcpy(p->path + p->plen, buf, o);
		p->plen += o;
		p->path[p->plen] = '\0';
	}
	return old;
}

static size_t path_push_i(parser *p, size_t i)
{
	char b[24];
	snprintf(b, sizeof b, "%zu", i);
	return path_push(p, b);
}

static void path_pop(parser *p, size_t old)
{
	p->plen = old;
	p->path[old] = '\0';
}

/* JavaScript's order of an object's own keys: array indexes (canonical
 * decimal integers below 2^32 - 1) ascending, then the rest as written. */
static bool is_array_index(const char *k, uint32_t *v)
{
	size_t n = strlen(k);
	if (n == 0 || n > 10 || (k[0] == '0' && n > 1))
		return false;
	uint64_t x = 0;
	for (size_t i = 0; i < n; i++) {
		if (k[i] < '0' || k[i] > '9')
			return false;
		x = x * 10 + (uint64_t)(k[i] - '0');
	}
	if (x >= 4294967295ULL)
		return false;
	*v = (uint32_t)x;
	return true;
}

struct idx_key {
	uint32_t v;
	const char *k;
};

static int cmp_idx(const void *a, const void *b)
{
	uint32_t x = ((const struct idx_key *)a)->v, y = ((const struct idx_key *)b)->v;
	return x < y ? -1 : x > y;
}

/* The keys of `obj` in JavaScript's order (borrowed strings; the array is
 * malloc'd). NULL when out of memory or empty. */
static const char **js_keys(json_t *obj, size_t *n)
{
	*n = json_object_size(obj);
	if (*n == 0)
		return NULL;
	const char **out = malloc(*n * sizeof *out);
	struct idx_key *idx = malloc(*n * sizeof *idx);
	if (!out || !idx) {
		free(out);
		free(idx);
		*n = 0;
		return NULL;
	}
	size_t ni = 0, o = 0;
	const char *k;
	json_t *v;
	json_object_foreach(obj, k, v) {
		uint32_t x;
		if (is_array_index(k, &x))
			idx[ni++] = (struct idx_key){ x, k };
	}
	qsort(idx, ni, sizeof *idx, cmp_idx);
	for (size_t i = 0; i < ni; i++)
		out[o++] = idx[i].k;
	json_object_foreach(obj, k, v) {
		uint32_t x;
		if (!is_array_index(k, &x))
			out[o++] = k;
	}
	free(idx);
	return out;
}

static int grow(void **arr, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return 0;
	size_t nc = *cap ? *cap * 2 : 16;
	while (nc < need)
		nc *= 2;
	void *a = realloc(*arr, nc * size);
	if (!a)
		return -1;
	memset((char *)a + *cap * size, 0, (nc - *cap) * size);
	*arr = a;
	*cap = nc;
	return 0;
}

static int add_expr(parser *p, json_t *v, int *out)
{
	if (!json_is_string(v) || json_string_length(v) == 0)
		return fail(p, "a jq expression (a non-empty string) is expected");
	if (json_string_length(v) > SDK_JQ_TEXT_MAX)
		return fail(p, "an expression is at most %d bytes", SDK_JQ_TEXT_MAX);
	if (p->c->n_exprs >= SC_EXPRS_MAX)
		return fail(p, "more than %d expressions", SC_EXPRS_MAX);
	if (grow((void **)&p->c->exprs, &p->cap_exprs, p->c->n_exprs + 1, sizeof *p->c->exprs) < 0)
		return sdk_fail(p->err, SDK_EBUSY, "out of memory");
	sc_expr *e = &p->c->exprs[p->c->n_exprs];
	e->text = strdup(json_string_value(v));
	e->path = strdup(p->path);
	if (!e->text || !e->path)
		return sdk_fail(p->err, SDK_EBUSY, "out of memory");
	*out = (int)p->c->n_exprs++;
	return 0;
}

static bool only_keys(json_t *obj, const char *const *allowed, const char **bad)
{
	return !(*bad = sdk_json_unknown_key(obj, allowed));
}

/* ---- actions ---- */

static int parse_event_field(parser *p, json_t *a, sc_action *act)
{
	json_t *ev = json_object_get(a, "event");
	size_t old = path_push(p, "event");
	int rc = 0;
	if (json_is_object(ev)) {
		json_t *t = json_object_get(ev, "type");
		if (!json_is_string(t) || json_string_length(t) == 0 || json_string_length(t) > SC_KEY_MAX)
			rc = fail(p, "an event has a \"type\": a string of 1 to %d bytes", SC_KEY_MAX);
		else
			act->event = json_deep_copy(ev);
	} else if (json_is_string(ev)) {
		rc = add_expr(p, ev, &act->event_expr);
	} else {
		rc = fail(p, "an event object, or a jq expression making one, is required");
	}
	path_pop(p, old);
	return rc;
}

static int parse_action(parser *p, json_t *a, sc_action *act)
{
	*act = (sc_action){ .event_expr = -1, .delay = -1 };
	if (json_is_string(a))
		return fail(p, "\"%s\": named actions are not supported; use an action object "
			       "(assign, raise, emit or cancel)", json_string_value(a));
	if (!json_is_object(a))
		return fail(p, "an action is an object with a \"type\"");
	const char *type = json_string_value(json_object_get(a, "type"));
	if (!type)
		return fail(p, "an action has a \"type\": assign, raise, emit or cancel");
	const char *bad = NULL;
	if (!strcmp(type, "assign")) {
		static const char *const keys[] = { "type", "assignment", NULL };
		if (!only_keys(a, keys, &bad))
			return fail(p, "unknown field \"%s\" in an assign action", bad);
		act->kind = SC_ACT_ASSIGN;
		json_t *as = json_object_get(a, "assignment");
		if (!json_is_object(as) || json_object_size(as) == 0)
			return fail(p, "assign needs \"assignment\": {\"KEY\": \"<jq>\", ...}");
		size_t n;
		const char **keys_js = js_keys(as, &n);
		act->keys = calloc(n, sizeof *act->keys);
		act->exprs = calloc(n, sizeof *act->exprs);
		if (!keys_js || !act->keys || !act->exprs) {
			free(keys_js);
			return sdk_fail(p->err, SDK_EBUSY, "out of memory");
		}
		size_t old = path_push(p, "assignment");
		int rc = 0;
		for (size_t i = 0; i < n && rc == 0; i++) {
			size_t o2 = path_push(p, keys_js[i]);
			act->keys[i] = strdup(keys_js[i]);
			act->n_keys++;
			rc = act->keys[i] ? add_expr(p, json_object_get(as, keys_js[i]), &act->exprs[i])
					  : sdk_fail(p->err, SDK_EBUSY, "out of memory");
			path_pop(p, o2);
		}
		path_pop(p, old);
		free(keys_js);
		return rc;
	}
	if (!strcmp(type, "raise")) {
		static const char *const keys[] = { "type", "event", "delay", "id", NULL };
		if (!only_keys(a, keys, &bad))
			return fail(p, "unknown field \"%s\" in a raise action", bad);
		act->kind = SC_ACT_RAISE;
		json_t *d = json_object_get(a, "delay");
		if (d) {
			if (!json_is_integer(d) || json_integer_value(d) < 0 ||
			    json_integer_value(d) > SC_DELAY_MAX_MS)
				return fail(p, "delay is a number of milliseconds, 0 to %lld",
					    SC_DELAY_MAX_MS);
			act->delay = json_integer_value(d);
		}
		json_t *id = json_object_get(a, "id");
		if (id) {
			if (!json_is_string(id) || json_string_length(id) == 0 ||
			    json_string_length(id) > SC_KEY_MAX)
				return fail(p, "id is a string of 1 to %d bytes", SC_KEY_MAX);
			act->id = strdup(json_string_value(id));
		}
		return parse_event_field(p, a, act);
	}
	if (!strcmp(type, "emit")) {
		static const char *const keys[] = { "type", "event", NULL };
		if (!only_keys(a, keys, &bad))
			return fail(p, "unknown field \"%s\" in an emit action", bad);
		act->kind = SC_ACT_EMIT;
		return parse_event_field(p, a, act);
	}
	if (!strcmp(type, "cancel")) {
		static const char *const keys[] = { "type", "id", NULL };
		if (!only_keys(a, keys, &bad))
			return fail(p, "unknown field \"%s\" in a cancel action", bad);
		act->kind = SC_ACT_CANCEL;
		json_t *id = json_object_get(a, "id");
		if (!json_is_string(id) || json_string_length(id) == 0 || json_string_length(id) > SC_KEY_MAX)
			return fail(p, "cancel needs \"id\": a string of 1 to %d bytes", SC_KEY_MAX);
		act->id = strdup(json_string_value(id));
		return 0;
	}
	return fail(p, "unknown action type \"%s\" (assign, raise, emit or cancel)", type);
}

/* An action or an array of them, appended to *list. */
static int parse_actions(parser *p, json_t *v, sc_action **list, size_t *n)
{
	if (!v)
		return 0;
	json_t *arr = json_is_array(v) ? json_incref(v) : json_pack("[O]", v);
	size_t i;
	json_t *a;
	int rc = 0;
	json_array_foreach(arr, i, a) {
		if (++p->n_actions > SC_ACTIONS_MAX) {
			rc = fail(p, "more than %d actions", SC_ACTIONS_MAX);
			break;
		}
		sc_action *nl = realloc(*list, (*n + 1) * sizeof **list);
		if (!nl) {
			rc = sdk_fail(p->err, SDK_EBUSY, "out of memory");
			break;
		}
		*list = nl;
		size_t old = json_is_array(v) ? path_push_i(p, i) : p->plen;
		rc = parse_action(p, a, &(*list)[*n]);
		(*n)++; /* counted even when bad, so that it is freed */
		path_pop(p, old);
		if (rc < 0)
			break;
	}
	json_decref(arr);
	return rc;
}

static void free_actions(sc_action *a, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k < a[i].n_keys; k++)
			free(a[i].keys[k]);
		free(a[i].keys);
		free(a[i].exprs);
		json_decref(a[i].event);
		free(a[i].id);
	}
	free(a);
}

/* ---- nodes ---- */

static const char *const NODE_KEYS[] = { "id", "type", "initial", "states", "on", "entry", "exit",
					  "always", "after", "onDone", "history", "target", "tags",
					  "description", "meta", "context", "version", NULL };

/* Creates node records for `cfg` and its descendants in document order. */
static int make_nodes(parser *p, json_t *cfg, const char *key, int parent, int depth)
{
	if (!json_is_object(cfg))
		return fail(p, "a state node is an object");
	if (depth > SC_DEPTH_MAX)
		return fail(p, "states nested deeper than %d", SC_DEPTH_MAX);
	if (p->c->n_nodes >= SC_NODES_MAX)
		return fail(p, "more than %d state nodes", SC_NODES_MAX);
	const char *bad = NULL;
	if (!only_keys(cfg, NODE_KEYS, &bad)) {
		if (!strcmp(bad, "invoke") || !strcmp(bad, "output") || !strcmp(bad, "entry_actions"))
			return fail(p, "\"%s\" is not supported", bad);
		return fail(p, "unknown field \"%s\"", bad);
	}
	if (parent >= 0 && (json_object_get(cfg, "context") || json_object_get(cfg, "version")))
		return fail(p, "\"context\" and \"version\" belong to the machine (the root)");
	if (grow((void **)&p->c->nodes, &p->cap_nodes, p->c->n_nodes + 1, sizeof *p->c->nodes) < 0)
		return sdk_fail(p->err, SDK_EBUSY, "out of memory");
	int me = (int)p->c->n_nodes++;
	sc_node *n = &p->c->nodes[me];
	n->key = strdup(key);
	n->parent = parent;
	n->depth = depth;
	n->initial = -1;
	if (!n->key)
		return sdk_fail(p->err, SDK_EBUSY, "out of memory");
	if (strlen(key) > SC_KEY_MAX)
		return fail(p, "a state key is at most %d bytes", SC_KEY_MAX);
	json_t *states = json_object_get(cfg, "states");
	if (states && !json_is_object(states))
		return fail(p, "\"states\" is an object of state nodes");
	json_t *type = json_object_get(cfg, "type");
	json_t *hist = json_object_get(cfg, "history");
	if (type) {
		const char *t = json_string_value(type);
		if (!t)
			return fail(p, "\"type\" is a string");
		if (!strcmp(t, "atomic"))
			n->type = SC_ATOMIC;
		else if (!strcmp(t, "compound"))
			n->type = SC_COMPOUND;
		else if (!strcmp(t, "parallel"))
			n->type = SC_PARALLEL;
		else if (!strcmp(t, "final"))
			n->type = SC_FINAL;
		else if (!strcmp(t, "history"))
			n->type = SC_HISTORY;
		else
			return fail(p, "unknown state type \"%s\" (atomic, compound, parallel, final, history)", t);
	} else {
		n->type = json_object_size(states) ? SC_COMPOUND : hist ? SC_HISTORY : SC_ATOMIC;
	}
	if (hist) {
		if (json_is_true(hist) || (json_is_string(hist) && !strcmp(json_string_value(hist), "shallow")))
			n->deep = false;
		else if (json_is_string(hist) && !strcmp(json_string_value(hist), "deep"))
			n->deep = true;
		else if (!json_is_false(hist))
			return fail(p, "\"history\" is \"shallow\", \"deep\" or true");
	}
	if (n->type == SC_HISTORY && parent < 0)
		return fail(p, "the root cannot be a history state");
	json_t *id = json_object_get(cfg, "id");
	if (id && (!json_is_string(id) || json_string_length(id) == 0 ||
		   json_string_length(id) > SC_KEY_MAX))
		return fail(p, "\"id\" is a string of 1 to %d bytes", SC_KEY_MAX);
	if (id) {
		n->id = strdup(json_string_value(id));
	} else if (parent < 0) {
		n->id = strdup("(machine)");
	} else {
		/* The machine's id and the path from the root, joined by dots. */
		size_t len = strlen(p->c->nodes[0].id) + 1;
		for (int a = me; a > 0; a = p->c->nodes[a].parent)
			len += strlen(p->c->nodes[a].key) + 1;
		char *s = malloc(len);
		if (s) {
			size_t o = len - 1;
			s[o] = '\0';
			for (int a = me; a > 0; a = p->c->nodes[a].parent) {
				size_t kl = strlen(p->c->nodes[a].key);
				o -= kl;
				memcpy(s + o, p->c->nodes[a].key, kl);
				s[--o] = '.';
			}
			memcpy(s, p->c->nodes[0].id, o);
		}
		n->id = s;
	}
	if (!n->id)
		return sdk_fail(p->err, SDK_EBUSY, "out of memory");
	for (size_t i = 0; i < (size_t)me; i++)
		if (!strcmp(p->c->nodes[i].id, n->id))
			return fail(p, "the id \"%s\" is used by another state", n->id);
	json_t *tags = json_object_get(cfg, "tags");
	if (tags) {
		json_t *arr = json_is_array(tags) ? json_incref(tags) : json_pack("[O]", tags);
		size_t i;
		json_t *t;
		json_array_foreach(arr, i, t) if (!json_is_string(t)) {
			json_decref(arr);
			return fail(p, "\"tags\" is a string or an array of strings");
		}
		n = &p->c->nodes[me];
		n->tags = arr;
	}
	if (!states)
		return 0;
	size_t nk;
	const char **keys = js_keys(states, &nk);
	if (nk && !keys)
		return sdk_fail(p->err, SDK_EBUSY, "out of memory");
	int *kids = nk ? calloc(nk, sizeof *kids) : NULL;
	if (nk && !kids) {
		free(keys);
		return sdk_fail(p->err, SDK_EBUSY, "out of memory");
	}
	p->c->nodes[me].children = kids;
	size_t old = path_push(p, "states");
	int rc = 0;
	for (size_t i = 0; i < nk && rc == 0; i++) {
		size_t o2 = path_push(p, keys[i]);
		if (strchr(keys[i], '.') || keys[i][0] == '#' || keys[i][0] == '\0')
			rc = fail(p, "a state key is not empty and holds no '.' and no leading '#'");
		else {
			p->c->nodes[me].children[p->c->nodes[me].n_children++] = (int)p->c->n_nodes;
			rc = make_nodes(p, json_object_get(states, keys[i]), keys[i], me, depth + 1);
		}
		path_pop(p, o2);
	}
	path_pop(p, old);
	free(keys);
	return rc;
}

/* The child of `n` with `key`, or -1. */
static int child_by_key(const sc_chart *c, int n, const char *key)
{
	const sc_node *nd = &c->nodes[n];
	for (size_t i = 0; i < nd->n_children; i++)
		if (!strcmp(c->nodes[nd->children[i]].key, key))
			return nd->children[i];
	return -1;
}

int sc_chart_find_id(const sc_chart *c, const char *id)
{
	for (size_t i = 0; i < c->n_nodes; i++)
		if (!strcmp(c->nodes[i].id, id))
			return (int)i;
	return -1;
}

/* Splits `s` at unescaped dots ("\." is a dot): the segments into segs
 * (each malloc'd); -1 on too many or out of memory. */
static int split_path(const char *s, char **segs, size_t max, size_t *n)
{
	*n = 0;
	size_t len = strlen(s);
	char *cur = malloc(len + 1);
	if (!cur)
		return -1;
	size_t o = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && s[i] == '\\' && i + 1 < len) {
			cur[o++] = s[++i];
			continue;
		}
		if (i == len || s[i] == '.') {
			if (*n >= max) {
				free(cur);
				return -1;
			}
			cur[o] = '\0';
			segs[(*n)++] = strdup(cur);
			o = 0;
			continue;
		}
		cur[o++] = s[i];
	}
	free(cur);
	return 0;
}

/* Walks `segs` from node `from` (XState's getStateNodeByPath): a segment
 * "#id" jumps to that id, "" stops. The node, or SDK_EINVAL with the
 * reason in why. */
static int walk(const sc_chart *c, int from, char **segs, size_t n, sdk_err *why)
{
	int cur = from;
	for (size_t i = 0; i < n; i++) {
		if (segs[i][0] == '\0')
			break;
		if (segs[i][0] == '#') {
			int t = sc_chart_find_id(c, segs[i] + 1);
			if (t < 0)
				return sdk_fail(why, SDK_EINVAL, "no state has the id \"%s\"",
						segs[i] + 1);
			cur = t;
			continue;
		}
		int t = child_by_key(c, cur, segs[i]);
		if (t < 0)
			return sdk_fail(why, SDK_EINVAL, "state \"%s\" has no child \"%s\"",
					c->nodes[cur].id, segs[i]);
		cur = t;
	}
	return cur;
}

#define SEGS_MAX (SC_DEPTH_MAX + 2)

static void free_segs(char **segs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(segs[i]);
}

/* A target string of a transition from `src` (XState's resolveTarget). */
static int resolve_target(parser *p, int src, const char *t, int *out)
{
	const sc_chart *c = p->c;
	char *segs[SEGS_MAX];
	size_t n;
	sdk_err why;
	int r;
	if (t[0] == '#') {
		if (split_path(t, segs, SEGS_MAX, &n) < 0)
			return fail(p, "target \"%s\" is too deep", t);
		int start = sc_chart_find_id(c, segs[0] + 1);
		if (start < 0) {
			free_segs(segs, n);
			return fail(p, "target \"%s\": no state has the id \"%s\"", t, segs[0] + 1);
		}
		r = walk(c, start, segs + 1, n - 1, &why);
	} else if (t[0] == '.') {
		if (split_path(t + 1, segs, SEGS_MAX, &n) < 0)
			return fail(p, "target \"%s\" is too deep", t);
		r = walk(c, src, segs, n, &why);
	} else {
		if (c->nodes[src].parent < 0)
			return fail(p, "target \"%s\" from the root: write \".%s\" for a child", t, t);
		if (split_path(t, segs, SEGS_MAX, &n) < 0)
			return fail(p, "target \"%s\" is too deep", t);
		r = walk(c, c->nodes[src].parent, segs, n, &why);
	}
	free_segs(segs, n);
	if (r < 0)
		return fail(p, "target \"%s\": %s", t, why.msg);
	*out = r;
	return 0;
}

/* Targets as XState normalizes them: absent or "": none. */
static int parse_targets(parser *p, int src, json_t *target, int **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (!target || (json_is_string(target) && json_string_length(target) == 0))
		return 0;
	json_t *arr = json_is_array(target) ? json_incref(target) : json_pack("[O]", target);
	size_t cnt = json_array_size(arr);
	*out = cnt ? calloc(cnt, sizeof **out) : NULL;
	if (cnt && !*out) {
		json_decref(arr);
		return sdk_fail(p->err, SDK_EBUSY, "out of memory");
	}
	size_t i;
	json_t *t;
	int rc = 0;
	size_t old = path_push(p, "target");
	json_array_foreach(arr, i, t) {
		if (!json_is_string(t) || json_string_length(t) == 0) {
			rc = fail(p, "a target is a non-empty string");
			break;
		}
		if ((rc = resolve_target(p, src, json_string_value(t), &(*out)[i])) < 0)
			break;
		(*n)++;
	}
	path_pop(p, old);
	json_decref(arr);
	return rc;
}

/* One transition config (a target string or an object) from `src`. */
static int parse_transition(parser *p, int src, json_t *cfg, int *out)
{
	if (p->c->n_trans >= SC_TRANSITIONS_MAX)
		return fail(p, "more than %d transitions", SC_TRANSITIONS_MAX);
	if (grow((void **)&p->c->trans, &p->cap_trans, p->c->n_trans + 1, sizeof *p->c->trans) < 0)
		return sdk_fail(p->err, SDK_EBUSY, "out of memory");
	int me = (int)p->c->n_trans++;
	sc_trans *t = &p->c->trans[me];
	*t = (sc_trans){ .source = src, .guard = -1 };
	*out = me;
	json_t *target = NULL;
	if (json_is_string(cfg)) {
		target = cfg;
	} else if (json_is_object(cfg)) {
		static const char *const keys[] = { "target", "guard", "actions", "reenter",
						    "description", "meta", NULL };
		const char *bad;
		if (!only_keys(cfg, keys, &bad)) {
			if (!strcmp(bad, "cond"))
				return fail(p, "\"cond\" is XState v4's: write \"guard\"");
			if (!strcmp(bad, "internal"))
				return fail(p, "\"internal\" is XState v4's: write \"reenter\"");
			return fail(p, "unknown field \"%s\" in a transition", bad);
		}
		target = json_object_get(cfg, "target");
		json_t *re = json_object_get(cfg, "reenter");
		if (re && !json_is_boolean(re))
			return fail(p, "\"reenter\" is true or false");
		json_t *g = json_object_get(cfg, "guard");
		if (g) {
			size_t old = path_push(p, "guard");
			int guard;
			int rc = add_expr(p, g, &guard);
			path_pop(p, old);
			if (rc < 0)
				return rc;
			p->c->trans[me].guard = guard;
		}
		p->c->trans[me].reenter = json_is_true(re);
		size_t old = path_push(p, "actions");
		int rc = parse_actions(p, json_object_get(cfg, "actions"), &p->c->trans[me].actions,
				       &p->c->trans[me].n_actions);
		path_pop(p, old);
		if (rc < 0)
			return rc;
	} else if (!json_is_null(cfg)) {
		return fail(p, "a transition is a target string or an object");
	}
	if (target && !json_is_string(target) && !json_is_array(target))
		return fail(p, "\"target\" is a string or an array of strings");
	int *targets;
	size_t nt;
	int rc = parse_targets(p, src, target, &targets, &nt);
	p->c->trans[me].targets = targets;
	p->c->trans[me].n_targets = nt;
	return rc;
}

/* A transition config, or an array of them, as a list of indexes. */
static int parse_transitions(parser *p, int src, json_t *v, int **list, size_t *n)
{
	json_t *arr = json_is_array(v) ? json_incref(v) : json_pack("[O]", v);
	size_t cnt = json_array_size(arr);
	int *l = cnt ? realloc(*list, (*n + cnt) * sizeof *l) : *list;
	if (cnt && !l) {
		json_decref(arr);
		return sdk_fail(p->err, SDK_EBUSY, "out of memory");
	}
	*list = l;
	size_t i;
	json_t *t;
	int rc = 0;
	json_array_foreach(arr, i, t) {
		size_t old = json_is_array(v) ? path_push_i(p, i) : p->plen;
		rc = parse_transition(p, src, t, &l[*n]);
		path_pop(p, old);
		if (rc < 0)
			break;
		(*n)++;
	}
	json_decref(arr);
	return rc;
}

/* The entry of `descriptor` in the node's map, created at the end if new;
 * `replace` empties an existing one (JavaScript's Map#set). */
static sc_on *on_entry(parser *p, int node, const char *descriptor, bool replace)
{
	sc_node *nd = &p->c->nodes[node];
	for (size_t i = 0; i < nd->n_on; i++)
		if (!strcmp(nd->on[i].descriptor, descriptor)) {
			if (replace)
				nd->on[i].n = 0;
			return &nd->on[i];
		}
	sc_on *no = realloc(nd->on, (nd->n_on + 1) * sizeof *no);
	if (!no)
		return NULL;
	nd->on = no;
	sc_on *e = &nd->on[nd->n_on];
	*e = (sc_on){ .descriptor = strdup(descriptor) };
	if (!e->descriptor)
		return NULL;
	nd->n_on++;
	return e;
}

static bool is_canonical_delay(const char *k, long long *ms)
{
	uint32_t v;
	if (!is_array_index(k, &v))
		return false;
	*ms = v;
	return *ms <= SC_DELAY_MAX_MS;
}

/* Everything of a node but its children: transitions, actions, initial,
 * history defaults. Runs after every node exists (targets name any). */
static int fill_node(parser *p, json_t *cfg, int me)
{
	sc_node *n = &p->c->nodes[me];
	const char *bad;
	size_t old;
	int rc;

	json_t *initial = json_object_get(cfg, "initial");
	if (n->type == SC_COMPOUND) {
		if (!initial)
			return fail(p, "a compound state needs \"initial\"");
		const char *ik = json_string_value(initial);
		if (json_is_object(initial)) {
			static const char *const keys[] = { "target", NULL };
			if (!only_keys(initial, keys, &bad))
				return fail(p, "\"initial\" as an object holds only \"target\" (initial "
					       "actions are not supported)");
			ik = json_string_value(json_object_get(initial, "target"));
		}
		if (!ik)
			return fail(p, "\"initial\" names a child state");
		n->initial = child_by_key(p->c, me, ik);
		if (n->initial < 0)
			return fail(p, "initial state \"%s\" is not a child of \"%s\"", ik, n->id);
	}
	if (n->type == SC_HISTORY) {
		json_t *t = json_object_get(cfg, "target");
		if (t && !(json_is_string(t) && json_string_length(t) == 0)) {
			json_t *arr = json_is_array(t) ? json_incref(t) : json_pack("[O]", t);
			size_t cnt = json_array_size(arr), i;
			n->hist_default = cnt ? calloc(cnt, sizeof *n->hist_default) : NULL;
			n->hist_has_default = true;
			json_t *x;
			old = path_push(p, "target");
			rc = 0;
			json_array_foreach(arr, i, x) {
				char *segs[SEGS_MAX];
				size_t ns;
				sdk_err why;
				if (!json_is_string(x) || !n->hist_default) {
					rc = fail(p, "a history target is a string");
					break;
				}
				const char *s = json_string_value(x);
				if (split_path(s, segs, SEGS_MAX, &ns) < 0) {
					rc = fail(p, "target \"%s\" is too deep", s);
					break;
				}
				int r = walk(p->c, n->parent, segs, ns, &why);
				free_segs(segs, ns);
				if (r < 0) {
					rc = fail(p, "history target \"%s\": %s", s, why.msg);
					break;
				}
				n->hist_default[n->n_hist_default++] = r;
			}
			path_pop(p, old);
			json_decref(arr);
			if (rc < 0)
				return rc;
		}
	} else if (json_object_get(cfg, "target")) {
		return fail(p, "\"target\" belongs to history states (transitions go in \"on\")");
	}

	old = path_push(p, "entry");
	rc = parse_actions(p, json_object_get(cfg, "entry"), &p->c->nodes[me].entry,
			   &p->c->nodes[me].n_entry);
	path_pop(p, old);
	if (rc < 0)
		return rc;
	old = path_push(p, "exit");
	rc = parse_actions(p, json_object_get(cfg, "exit"), &p->c->nodes[me].exit,
			   &p->c->nodes[me].n_exit);
	path_pop(p, old);
	if (rc < 0)
		return rc;

	json_t *on = json_object_get(cfg, "on");
	if (on && !json_is_object(on))
		return fail(p, "\"on\" is an object of event descriptors");
	size_t nk;
	const char **keys = on ? js_keys(on, &nk) : NULL;
	if (!on)
		nk = 0;
	old = path_push(p, "on");
	rc = 0;
	for (size_t i = 0; i < nk && rc == 0; i++) {
		size_t o2 = path_push(p, keys[i]);
		if (keys[i][0] == '\0')
			rc = fail(p, "the empty event is not allowed: use \"always\"");
		else if (strlen(keys[i]) > SC_KEY_MAX)
			rc = fail(p, "an event descriptor is at most %d bytes", SC_KEY_MAX);
		else {
			sc_on *e = on_entry(p, me, keys[i], true);
			if (!e)
				rc = sdk_fail(p->err, SDK_EBUSY, "out of memory");
			else {
				size_t idx = (size_t)(e - p->c->nodes[me].on);
				int *list = NULL;
				size_t cnt = 0;
				rc = parse_transitions(p, me, json_object_get(on, keys[i]), &list, &cnt);
				sc_on *e2 = &p->c->nodes[me].on[idx];
				free(e2->trans);
				e2->trans = list;
				e2->n = cnt;
			}
		}
		path_pop(p, o2);
	}
	path_pop(p, old);
	free(keys);
	if (rc < 0)
		return rc;

	json_t *done = json_object_get(cfg, "onDone");
	if (done) {
		if (n->type != SC_COMPOUND && n->type != SC_PARALLEL)
			return fail(p, "\"onDone\" belongs to compound and parallel states");
		char desc[SC_KEY_MAX + 32];
		snprintf(desc, sizeof desc, "xstate.done.state.%s", p->c->nodes[me].id);
		sc_on *e = on_entry(p, me, desc, true);
		if (!e)
			return sdk_fail(p->err, SDK_EBUSY, "out of memory");
		size_t idx = (size_t)(e - p->c->nodes[me].on);
		int *list = NULL;
		size_t cnt = 0;
		old = path_push(p, "onDone");
		rc = parse_transitions(p, me, done, &list, &cnt);
		path_pop(p, old);
		sc_on *e2 = &p->c->nodes[me].on[idx];
		free(e2->trans);
		e2->trans = list;
		e2->n = cnt;
		if (rc < 0)
			return rc;
	}

	json_t *after = json_object_get(cfg, "after");
	if (after) {
		if (!json_is_object(after))
			return fail(p, "\"after\" is an object of delays in milliseconds");
		keys = js_keys(after, &nk);
		old = path_push(p, "after");
		rc = 0;
		for (size_t i = 0; i < nk && rc == 0; i++) {
			size_t o2 = path_push(p, keys[i]);
			long long ms;
			if (!is_canonical_delay(keys[i], &ms)) {
				rc = fail(p, "a delay is a whole number of milliseconds, 0 to %lld, "
					     "written plainly (named delays are not supported)",
					  SC_DELAY_MAX_MS);
				path_pop(p, o2);
				break;
			}
			char desc[SC_KEY_MAX + 48];
			snprintf(desc, sizeof desc, "xstate.after.%lld.%s", ms, p->c->nodes[me].id);
			/* entry: raise the after event with its delay and id; exit: cancel it */
			sc_node *nd = &p->c->nodes[me];
			sc_action *ne = realloc(nd->entry, (nd->n_entry + 1) * sizeof *ne);
			if (ne)
				nd->entry = ne;
			sc_action *nx = realloc(nd->exit, (nd->n_exit + 1) * sizeof *nx);
			if (nx)
				nd->exit = nx;
			if (!ne || !nx) {
				rc = sdk_fail(p->err, SDK_EBUSY, "out of memory");
				path_pop(p, o2);
				break;
			}
			nd->entry[nd->n_entry++] = (sc_action){ .kind = SC_ACT_RAISE,
								.event = json_pack("{s:s}", "type", desc),
								.event_expr = -1,
								.delay = ms,
								.id = strdup(desc) };
			nd->exit[nd->n_exit++] = (sc_action){ .kind = SC_ACT_CANCEL, .event_expr = -1,
							      .delay = -1, .id = strdup(desc) };
			sc_on *e = on_entry(p, me, desc, false);
			if (!e) {
				rc = sdk_fail(p->err, SDK_EBUSY, "out of memory");
				path_pop(p, o2);
				break;
			}
			size_t idx = (size_t)(e - p->c->nodes[me].on);
			int *list = p->c->nodes[me].on[idx].trans;
			size_t cnt = p->c->nodes[me].on[idx].n;
			rc = parse_transitions(p, me, json_object_get(after, keys[i]), &list, &cnt);
			p->c->nodes[me].on[idx].trans = list;
			p->c->nodes[me].on[idx].n = cnt;
			path_pop(p, o2);
		}
		path_pop(p, old);
		free(keys);
		if (rc < 0)
			return rc;
	}

	json_t *always = json_object_get(cfg, "always");
	if (always) {
		old = path_push(p, "always");
		rc = parse_transitions(p, me, always, &p->c->nodes[me].always,
				       &p->c->nodes[me].n_always);
		path_pop(p, old);
		if (rc < 0)
			return rc;
	}

	/* the children, in document order */
	json_t *states = json_object_get(cfg, "states");
	n = &p->c->nodes[me];
	size_t nkids = n->n_children;
	for (size_t i = 0; i < nkids; i++) {
		int kid = p->c->nodes[me].children[i];
		old = path_push(p, "states");
		size_t o2 = path_push(p, p->c->nodes[kid].key);
		rc = fill_node(p, json_object_get(states, p->c->nodes[kid].key), kid);
		path_pop(p, o2);
		path_pop(p, old);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int sc_chart_parse(json_t *config, sc_chart **out, sdk_err *err)
{
	*out = NULL;
	parser p = { .err = err };
	p.c = calloc(1, sizeof *p.c);
	if (!p.c)
		return sdk_fail(err, SDK_EBUSY, "out of memory");
	int rc;
	if (!json_is_object(config)) {
		rc = fail(&p, "a machine configuration is a JSON object");
		goto bad;
	}
	json_t *ctx = json_object_get(config, "context");
	if (ctx && !json_is_object(ctx)) {
		rc = fail(&p, "\"context\" is an object (a function of input is not supported)");
		goto bad;
	}
	json_t *version = json_object_get(config, "version");
	if (version && !json_is_string(version)) {
		rc = fail(&p, "\"version\" is a string");
		goto bad;
	}
	p.c->context = ctx ? json_deep_copy(ctx) : json_object();
	if ((rc = make_nodes(&p, config, "", -1, 0)) < 0)
		goto bad;
	if (p.c->nodes[0].type == SC_FINAL) {
		rc = fail(&p, "the root cannot be a final state");
		goto bad;
	}
	p.c->id = strdup(p.c->nodes[0].id);
	if (!p.c->id) {
		rc = sdk_fail(err, SDK_EBUSY, "out of memory");
		goto bad;
	}
	if ((rc = fill_node(&p, config, 0)) < 0)
		goto bad;
	*out = p.c;
	return 0;
bad:
	sc_chart_free(p.c);
	return rc;
}

void sc_chart_free(sc_chart *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_nodes; i++) {
		sc_node *n = &c->nodes[i];
		free(n->key);
		free(n->id);
		free(n->children);
		free(n->hist_default);
		free_actions(n->entry, n->n_entry);
		free_actions(n->exit, n->n_exit);
		for (size_t k = 0; k < n->n_on; k++) {
			free(n->on[k].descriptor);
			free(n->on[k].trans);
		}
		free(n->on);
		free(n->always);
		json_decref(n->tags);
	}
	free(c->nodes);
	for (size_t i = 0; i < c->n_trans; i++) {
		free(c->trans[i].targets);
		free_actions(c->trans[i].actions, c->trans[i].n_actions);
	}
	free(c->trans);
	for (size_t i = 0; i < c->n_exprs; i++) {
		if (c->cache)
			sdk_jq_cache_release(c->cache, c->exprs[i].prog);
		free(c->exprs[i].text);
		free(c->exprs[i].path);
	}
	free(c->exprs);
	json_decref(c->context);
	free(c->id);
	free(c);
}

json_t *sc_chart_missing(const sc_chart *c, sdk_jq_cache *cache)
{
	json_t *out = json_array();
	json_t *seen = json_object();
	for (size_t i = 0; i < c->n_exprs; i++) {
		const char *t = c->exprs[i].text;
		if (json_object_get(seen, t))
			continue;
		sdk_jq_prog *p = sdk_jq_cache_get(cache, t);
		if (p) {
			sdk_jq_cache_release(cache, p);
			continue;
		}
		json_object_set_new(seen, t, json_true());
		json_array_append_new(out, json_string(t));
	}
	json_decref(seen);
	return out;
}

int sc_chart_bind(sc_chart *c, sdk_jq_cache *cache, sdk_err *err)
{
	c->cache = cache;
	for (size_t i = 0; i < c->n_exprs; i++) {
		if (c->exprs[i].prog)
			continue;
		c->exprs[i].prog = sdk_jq_cache_get(cache, c->exprs[i].text);
		if (!c->exprs[i].prog)
			return sdk_fail(err, SDK_EINVAL, "%s: the expression is not compiled",
					c->exprs[i].path);
	}
	c->bound = true;
	return 0;
}

int sc_chart_compile(sc_chart *c, sdk_jq_cache *cache, sdk_err *err)
{
	c->cache = cache;
	for (size_t i = 0; i < c->n_exprs; i++) {
		if (c->exprs[i].prog)
			continue;
		sdk_jq_prog *p = sdk_jq_cache_get(cache, c->exprs[i].text);
		if (!p) {
			sdk_err e;
			sdk_jq_prog *np = sdk_jq_compile(c->exprs[i].text, &e);
			if (!np)
				return sdk_fail(err, SDK_EINVAL, "%s: %s", c->exprs[i].path, e.msg);
			p = sdk_jq_cache_adopt(cache, np);
			if (!p)
				return sdk_fail(err, SDK_EBUSY, "out of memory");
		}
		c->exprs[i].prog = p;
	}
	c->bound = true;
	return 0;
}
