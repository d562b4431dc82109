/* The statechart algorithm (engine.h). Function names follow XState's
 * (stateUtils): microstep, macrostep, computeExitSet, computeEntrySet,
 * addDescendantStatesToEnter, removeConflictingTransitions, ... so the two
 * can be read side by side. A node's index is its document order. */
#include "kernels/state_machine/engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A domain above the root (XState's `undefined` domain): every node is
 * its descendant, the root included. */
#define ALL (-1)
#define NONE (-2)

/* A list of node or transition indexes, in order. */
typedef struct ilist {
	int *v;
	size_t n, cap;
} ilist;

static int il_push(ilist *l, int x)
{
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 16;
		int *nv = realloc(l->v, nc * sizeof *nv);
		if (!nv)
			return -1;
		l->v = nv;
		l->cap = nc;
	}
	l->v[l->n++] = x;
	return 0;
}

static bool il_has(const ilist *l, int x)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i] == x)
			return true;
	return false;
}

static int il_add(ilist *l, int x) { return il_has(l, x) ? 0 : il_push(l, x); }

static void il_free(ilist *l)
{
	free(l->v);
	*l = (ilist){ 0 };
}

/* A macrostep in progress. Transitions are pointers: the initial one is
 * not in the chart. */
typedef struct run {
	const sc_chart *c;
	sc_snapshot *s;
	bool *in;         /* membership of s->config */
	json_t *queue;    /* internal events */
	json_t *effects;
	json_t *event;    /* the event being processed (borrowed from queue or caller) */
	sdk_err *err;
	bool failed;
	bool changed;     /* this microstep changed the snapshot (see engine.h) */
	unsigned steps;
} run;

static int oom(run *r)
{
	r->failed = true;
	return sdk_fail(r->err, SDK_EBUSY, "out of memory");
}

static const sc_node *N(const run *r, int i) { return &r->c->nodes[i]; }

static bool is_atomic(const run *r, int i)
{
	return N(r, i)->type == SC_ATOMIC || N(r, i)->type == SC_FINAL;
}

static bool is_desc(const run *r, int child, int anc)
{
	if (anc == ALL)
		return true;
	for (int m = N(r, child)->parent; m >= 0; m = N(r, m)->parent)
		if (m == anc)
			return true;
	return false;
}

/* getProperAncestors(node, to): parents from the nearest up, stopping
 * before `to` (or past the root). */
static int proper_ancestors(const run *r, int node, int to, ilist *out)
{
	out->n = 0;
	if (to == node)
		return 0;
	for (int m = N(r, node)->parent; m >= 0 && m != to; m = N(r, m)->parent)
		if (il_push(out, m) < 0)
			return -1;
	return 0;
}

/* ---- expressions ---- */

static int eval(run *r, int expr, json_t **out)
{
	const sc_expr *e = &r->c->exprs[expr];
	json_t *in = json_pack("{s:O, s:O}", "context", r->s->context, "event", r->event);
	if (!in)
		return oom(r);
	sdk_err je;
	int rc = e->prog ? sdk_jq_eval(e->prog, in, out, &je) : sdk_fail(&je, SDK_EINVAL, "not compiled");
	json_decref(in);
	if (rc < 0) {
		r->failed = true;
		return sdk_fail(r->err, SDK_EINVAL, "%s: %s", e->path, je.msg);
	}
	return rc; /* 1: *out holds a value; 0: no output */
}

/* -1 on error, else whether the guard holds (no guard: holds). */
static int guard_ok(run *r, const sc_trans *t)
{
	if (t->guard < 0)
		return 1;
	json_t *v = NULL;
	int rc = eval(r, t->guard, &v);
	if (rc < 0)
		return -1;
	int ok = rc == 1 && sdk_jq_truthy(v);
	json_decref(v);
	return ok;
}

/* ---- actions ---- */

static json_t *action_event(run *r, const sc_action *a)
{
	if (a->event)
		return json_incref(a->event);
	json_t *v = NULL;
	int rc = eval(r, a->event_expr, &v);
	if (rc < 0)
		return NULL;
	if (rc == 0 || !json_is_object(v) || !json_is_string(json_object_get(v, "type"))) {
		json_decref(v);
		r->failed = true;
		sdk_fail(r->err, SDK_EINVAL, "%s: the expression must give an event object with a string "
			 "\"type\"", r->c->exprs[a->event_expr].path);
		return NULL;
	}
	return v;
}

static int exec_actions(run *r, const sc_action *acts, size_t n)
{
	for (size_t i = 0; i < n && !r->failed; i++) {
		const sc_action *a = &acts[i];
		switch (a->kind) {
		case SC_ACT_ASSIGN: {
			/* Every key from the same (old) context, then merged; a key
			 * whose expression gives no output is undefined in XState,
			 * which JSON drops: it is removed. */
			json_t *ctx = json_copy(r->s->context);
			json_t **vals = calloc(a->n_keys, sizeof *vals);
			if (!ctx || !vals) {
				json_decref(ctx);
				free(vals);
				return oom(r);
			}
			int rc = 0;
			for (size_t k = 0; k < a->n_keys && rc >= 0; k++)
				rc = eval(r, a->exprs[k], &vals[k]);
			for (size_t k = 0; k < a->n_keys; k++) {
				if (rc < 0)
					json_decref(vals[k]);
				else if (vals[k])
					json_object_set_new(ctx, a->keys[k], vals[k]);
				else
					json_object_del(ctx, a->keys[k]);
			}
			free(vals);
			if (rc < 0) {
				json_decref(ctx);
				return -1;
			}
			json_decref(r->s->context);
			r->s->context = ctx;
			r->changed = true;
			break;
		}
		case SC_ACT_RAISE: {
			json_t *ev = action_event(r, a);
			if (!ev)
				return -1;
			if (a->delay < 0) {
				if (json_array_size(r->queue) >= SC_QUEUE_MAX) {
					json_decref(ev);
					r->failed = true;
					return sdk_fail(r->err, SDK_EINVAL, "more than %d internal events queued",
							SC_QUEUE_MAX);
				}
				json_array_append_new(r->queue, ev);
			} else {
				json_array_append_new(r->effects,
						      json_pack("{s:s, s:o, s:o, s:I}", "type", "schedule", "id",
								a->id ? json_string(a->id) : json_null(),
								"event", ev, "delay", (json_int_t)a->delay));
			}
			break;
		}
		case SC_ACT_EMIT: {
			json_t *ev = action_event(r, a);
			if (!ev)
				return -1;
			json_array_append_new(r->effects, json_pack("{s:s, s:o}", "type", "emit", "event", ev));
			break;
		}
		case SC_ACT_CANCEL:
			json_array_append_new(r->effects, json_pack("{s:s, s:s}", "type", "cancel", "id", a->id));
			break;
		}
	}
	return r->failed ? -1 : 0;
}

/* ---- the configuration ---- */

static int config_add(run *r, int n)
{
	if (r->in[n])
		return 0;
	r->in[n] = true;
	r->s->config[r->s->n_config++] = n; /* sized n_nodes: never overflows */
	return 0;
}

static void config_remove(run *r, int n)
{
	if (!r->in[n])
		return;
	r->in[n] = false;
	size_t o = 0;
	for (size_t i = 0; i < r->s->n_config; i++)
		if (r->s->config[i] != n)
			r->s->config[o++] = r->s->config[i];
	r->s->n_config = o;
}

/* isInFinalState over the current membership. */
static bool in_final(const run *r, int n)
{
	const sc_node *nd = N(r, n);
	if (nd->type == SC_COMPOUND) {
		for (size_t i = 0; i < nd->n_children; i++) {
			int k = nd->children[i];
			if (N(r, k)->type == SC_FINAL && r->in[k])
				return true;
		}
		return false;
	}
	if (nd->type == SC_PARALLEL) {
		for (size_t i = 0; i < nd->n_children; i++) {
			int k = nd->children[i];
			if (N(r, k)->type != SC_HISTORY && !in_final(r, k))
				return false;
		}
		return true;
	}
	return nd->type == SC_FINAL;
}

/* ---- targets and domains ---- */

/* The default transition of a history node with nothing recorded. */
static void history_default(const run *r, int h, const int **t, size_t *n)
{
	const sc_node *nd = N(r, h);
	if (nd->hist_has_default) {
		*t = nd->hist_default;
		*n = nd->n_hist_default;
		return;
	}
	const sc_node *p = N(r, nd->parent);
	*t = p->type == SC_COMPOUND ? &p->initial : NULL;
	*n = p->type == SC_COMPOUND ? 1 : 0;
}

/* getEffectiveTargetStates: history nodes replaced by what they stand for. */
static int effective_targets(const run *r, const int *t, size_t n, ilist *out)
{
	for (size_t i = 0; i < n; i++) {
		int x = t[i];
		if (N(r, x)->type != SC_HISTORY) {
			if (il_add(out, x) < 0)
				return -1;
			continue;
		}
		if (r->s->hist_set[x]) {
			for (size_t k = 0; k < r->s->n_hist[x]; k++)
				if (il_add(out, r->s->hist[x][k]) < 0)
					return -1;
			continue;
		}
		const int *d;
		size_t dn;
		history_default(r, x, &d, &dn);
		if (effective_targets(r, d, dn, out) < 0)
			return -1;
	}
	return 0;
}

/* getTransitionDomain: a node, or ALL. */
static int domain_of(run *r, const sc_trans *t)
{
	ilist tg = { 0 }, anc = { 0 };
	if (effective_targets(r, t->targets, t->n_targets, &tg) < 0) {
		oom(r);
		return 0;
	}
	int d = NONE;
	if (!t->reenter) {
		bool inside = true;
		for (size_t i = 0; i < tg.n && inside; i++)
			inside = tg.v[i] == t->source || is_desc(r, tg.v[i], t->source);
		if (inside)
			d = t->source;
	}
	if (d == NONE) {
		/* findLeastCommonAncestor(targets ++ [source]) */
		if (il_push(&tg, t->source) < 0) {
			oom(r);
			d = 0;
		} else if (proper_ancestors(r, tg.v[0], ALL, &anc) < 0) {
			oom(r);
			d = 0;
		} else {
			for (size_t a = 0; a < anc.n && d == NONE; a++) {
				bool all = true;
				for (size_t i = 1; i < tg.n && all; i++)
					all = is_desc(r, tg.v[i], anc.v[a]);
				if (all)
					d = anc.v[a];
			}
		}
		if (d == NONE)
			d = t->reenter ? ALL : 0;
	}
	il_free(&tg);
	il_free(&anc);
	return d;
}

/* computeExitSet into `out` (a flag per node). */
static void exit_set(run *r, const sc_trans *const *ts, size_t n, bool *out)
{
	memset(out, 0, r->c->n_nodes * sizeof *out);
	for (size_t i = 0; i < n; i++) {
		const sc_trans *t = ts[i];
		if (t->n_targets == 0)
			continue;
		int d = domain_of(r, t);
		if (t->reenter && t->source == d)
			out[d] = true;
		for (size_t k = 0; k < r->s->n_config; k++) {
			int s = r->s->config[k];
			if (is_desc(r, s, d))
				out[s] = true;
		}
	}
}

/* removeConflictingTransitions: `ts` (n) filtered in place; returns the
 * count kept. */
static size_t remove_conflicting(run *r, const sc_trans **ts, size_t n)
{
	size_t nn = r->c->n_nodes;
	const sc_trans **kept = calloc(n ? n : 1, sizeof *kept);
	bool *x1 = calloc(nn, 1), *x2 = calloc(nn, 1), *drop = calloc(n ? n : 1, 1);
	size_t nk = 0;
	if (!kept || !x1 || !x2 || !drop) {
		oom(r);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const sc_trans *t1 = ts[i];
		bool pre = false;
		memset(drop, 0, n);
		exit_set(r, &t1, 1, x1);
		for (size_t j = 0; j < nk && !pre; j++) {
			exit_set(r, &kept[j], 1, x2);
			bool meet = false;
			for (size_t s = 0; s < nn && !meet; s++)
				meet = x1[s] && x2[s];
			if (!meet)
				continue;
			if (is_desc(r, t1->source, kept[j]->source))
				drop[j] = true;
			else
				pre = true;
		}
		if (pre)
			continue;
		size_t o = 0;
		for (size_t j = 0; j < nk; j++)
			if (!drop[j])
				kept[o++] = kept[j];
		nk = o;
		bool have = false;
		for (size_t j = 0; j < nk && !have; j++)
			have = kept[j] == t1;
		if (!have)
			kept[nk++] = t1;
	}
	if (nk)
		memcpy(ts, kept, nk * sizeof *ts);
out:
	free(kept);
	free(x1);
	free(x2);
	free(drop);
	return nk;
}

/* ---- entering ---- */

typedef struct entry_ctx {
	run *r;
	bool *enter; /* statesToEnter */
} entry_ctx;

static bool enter_has_desc_of(const entry_ctx *e, int child)
{
	for (size_t s = 0; s < e->r->c->n_nodes; s++)
		if (e->enter[s] && is_desc(e->r, (int)s, child))
			return true;
	return false;
}

static void add_descendants(entry_ctx *e, int s);

/* addAncestorStatesToEnter over `anc` (copied: recursion reuses tmp). */
static void add_ancestors(entry_ctx *e, const int *anc_in, size_t n, int reentry)
{
	if (n == 0)
		return;
	int *anc = malloc(n * sizeof *anc);
	if (!anc) {
		oom(e->r);
		return;
	}
	memcpy(anc, anc_in, n * sizeof *anc);
	for (size_t i = 0; i < n; i++) {
		int a = anc[i];
		if (is_desc(e->r, a, reentry))
			e->enter[a] = true;
		const sc_node *nd = N(e->r, a);
		if (nd->type != SC_PARALLEL)
			continue;
		for (size_t k = 0; k < nd->n_children; k++) {
			int child = nd->children[k];
			if (N(e->r, child)->type == SC_HISTORY || enter_has_desc_of(e, child))
				continue;
			e->enter[child] = true;
			add_descendants(e, child);
		}
	}
	free(anc);
}

static void add_proper_ancestors(entry_ctx *e, int s, int to)
{
	ilist l = { 0 };
	if (proper_ancestors(e->r, s, to, &l) < 0)
		oom(e->r);
	else
		add_ancestors(e, l.v, l.n, ALL);
	il_free(&l);
}

/* addDescendantStatesToEnter */
static void add_descendants(entry_ctx *e, int s)
{
	run *r = e->r;
	const sc_node *nd = N(r, s);
	if (nd->type == SC_HISTORY) {
		const int *t;
		size_t n;
		if (r->s->hist_set[s]) {
			t = r->s->hist[s];
			n = r->s->n_hist[s];
		} else {
			history_default(r, s, &t, &n);
		}
		for (size_t i = 0; i < n; i++) {
			e->enter[t[i]] = true;
			add_descendants(e, t[i]);
		}
		for (size_t i = 0; i < n; i++)
			add_proper_ancestors(e, t[i], nd->parent);
		return;
	}
	if (nd->type == SC_COMPOUND) {
		int init = nd->initial;
		if (N(r, init)->type != SC_HISTORY)
			e->enter[init] = true;
		add_descendants(e, init);
		add_proper_ancestors(e, init, s);
		return;
	}
	if (nd->type == SC_PARALLEL) {
		for (size_t k = 0; k < nd->n_children; k++) {
			int child = nd->children[k];
			if (N(r, child)->type == SC_HISTORY || enter_has_desc_of(e, child))
				continue;
			e->enter[child] = true;
			add_descendants(e, child);
		}
	}
}

/* computeEntrySet */
static void entry_set(run *r, const sc_trans *const *ts, size_t n, bool *enter)
{
	entry_ctx e = { .r = r, .enter = enter };
	memset(enter, 0, r->c->n_nodes * sizeof *enter);
	for (size_t i = 0; i < n && !r->failed; i++) {
		const sc_trans *t = ts[i];
		int d = domain_of(r, t);
		for (size_t k = 0; k < t->n_targets; k++) {
			int s = t->targets[k];
			if (N(r, s)->type != SC_HISTORY && (t->source != s || t->source != d || t->reenter))
				enter[s] = true;
			add_descendants(&e, s);
		}
		ilist eff = { 0 }, anc = { 0 };
		if (effective_targets(r, t->targets, t->n_targets, &eff) < 0) {
			oom(r);
			break;
		}
		for (size_t k = 0; k < eff.n; k++) {
			if (proper_ancestors(r, eff.v[k], d, &anc) < 0) {
				oom(r);
				break;
			}
			if (d != ALL && N(r, d)->type == SC_PARALLEL && il_push(&anc, d) < 0) {
				oom(r);
				break;
			}
			int reentry = (N(r, t->source)->parent < 0 && t->reenter) ? ALL : d;
			add_ancestors(&e, anc.v, anc.n, reentry);
		}
		il_free(&eff);
		il_free(&anc);
	}
}

static int push_done(run *r, int node)
{
	if (json_array_size(r->queue) >= SC_QUEUE_MAX) {
		r->failed = true;
		return sdk_fail(r->err, SDK_EINVAL, "more than %d internal events queued", SC_QUEUE_MAX);
	}
	char type[SC_KEY_MAX + 32];
	snprintf(type, sizeof type, "xstate.done.state.%s", N(r, node)->id);
	json_array_append_new(r->queue, json_pack("{s:s}", "type", type));
	return 0;
}

/* enterStates */
static void enter_states(run *r, const sc_trans *const *ts, size_t n)
{
	size_t nn = r->c->n_nodes;
	bool *enter = calloc(nn, 1), *completed = calloc(nn, 1);
	if (!enter || !completed) {
		oom(r);
		goto out;
	}
	entry_set(r, ts, n, enter);
	for (size_t s = 0; s < nn && !r->failed; s++) {
		if (!enter[s])
			continue;
		config_add(r, (int)s);
		const sc_node *nd = N(r, (int)s);
		if (exec_actions(r, nd->entry, nd->n_entry) < 0)
			break;
		if (nd->type != SC_FINAL)
			continue;
		int parent = nd->parent;
		const sc_node *pn = N(r, parent);
		int marker = pn->type == SC_PARALLEL ? parent : pn->parent;
		if (pn->type == SC_COMPOUND && push_done(r, parent) < 0)
			break;
		while (marker >= 0 && N(r, marker)->type == SC_PARALLEL && !completed[marker] &&
		       in_final(r, marker)) {
			completed[marker] = true;
			if (push_done(r, marker) < 0)
				break;
			marker = N(r, marker)->parent;
		}
		if (marker >= 0)
			continue;
		if (r->s->status != SC_STATUS_DONE)
			r->changed = true;
		r->s->status = SC_STATUS_DONE;
	}
out:
	free(enter);
	free(completed);
}

/* ---- exiting ---- */

static int set_history(run *r, int h, const ilist *l)
{
	int *v = l->n ? malloc(l->n * sizeof *v) : NULL;
	if (l->n && !v)
		return oom(r);
	if (l->n)
		memcpy(v, l->v, l->n * sizeof *v);
	free(r->s->hist[h]);
	r->s->hist[h] = v;
	r->s->n_hist[h] = l->n;
	r->s->hist_set[h] = true;
	return 0;
}

/* exitStates; sets *hist_changed when a history node recorded. */
static void exit_states(run *r, const sc_trans *const *ts, size_t n, bool *hist_changed)
{
	size_t nn = r->c->n_nodes;
	bool *x = calloc(nn, 1);
	if (!x) {
		oom(r);
		return;
	}
	exit_set(r, ts, n, x);
	/* Record histories from the whole configuration first. */
	for (size_t i = nn; i-- > 0 && !r->failed;) {
		if (!x[i])
			continue;
		const sc_node *nd = N(r, (int)i);
		for (size_t k = 0; k < nd->n_children; k++) {
			int h = nd->children[k];
			if (N(r, h)->type != SC_HISTORY)
				continue;
			ilist l = { 0 };
			for (size_t c = 0; c < r->s->n_config; c++) {
				int s = r->s->config[c];
				bool take = N(r, h)->deep ? is_atomic(r, s) && is_desc(r, s, (int)i)
							  : N(r, s)->parent == (int)i;
				if (take && il_push(&l, s) < 0)
					oom(r);
			}
			if (!r->failed)
				set_history(r, h, &l);
			il_free(&l);
			*hist_changed = true;
		}
	}
	for (size_t i = nn; i-- > 0 && !r->failed;) {
		if (!x[i])
			continue;
		const sc_node *nd = N(r, (int)i);
		if (exec_actions(r, nd->exit, nd->n_exit) < 0)
			break;
		config_remove(r, (int)i);
	}
	free(x);
}

/* ---- microstep, macrostep ---- */

/* microstep: false/true in r->changed; -1 on failure. `ts` may be
 * reordered (filtered in place). */
static int microstep(run *r, const sc_trans **ts, size_t n, bool initial)
{
	r->changed = false;
	if (n == 0)
		return 0;
	if (++r->steps > SC_MICROSTEPS_MAX) {
		r->failed = true;
		return sdk_fail(r->err, SDK_EINVAL, "more than %d microsteps in one macrostep (an "
			       "eventless loop?)", SC_MICROSTEPS_MAX);
	}
	size_t nn = r->c->n_nodes;
	n = remove_conflicting(r, ts, n);
	if (r->failed)
		return -1;
	bool *old_in = malloc(nn);
	int *old_config = malloc(nn * sizeof *old_config);
	if (!old_in || !old_config) {
		free(old_in);
		free(old_config);
		return oom(r);
	}
	memcpy(old_in, r->in, nn);
	size_t old_n = r->s->n_config;
	memcpy(old_config, r->s->config, old_n * sizeof *old_config);
	bool hist_changed = false;
	if (!initial)
		exit_states(r, ts, n, &hist_changed);
	for (size_t i = 0; i < n && !r->failed; i++)
		exec_actions(r, ts[i]->actions, ts[i]->n_actions);
	if (!r->failed)
		enter_states(r, ts, n);
	if (!r->failed && r->s->status == SC_STATUS_DONE) {
		for (size_t i = nn; i-- > 0 && !r->failed;)
			if (r->in[i])
				exec_actions(r, N(r, (int)i)->exit, N(r, (int)i)->n_exit);
	}
	if (r->failed) {
		free(old_in);
		free(old_config);
		return -1;
	}
	bool same = memcmp(old_in, r->in, nn) == 0;
	if (!hist_changed && same) {
		/* XState keeps the previous node list when the set is the same */
		memcpy(r->s->config, old_config, old_n * sizeof *old_config);
		r->s->n_config = old_n;
	} else {
		r->changed = true;
	}
	free(old_in);
	free(old_config);
	return 0;
}

static bool descriptor_matches(const char *desc, const char *type)
{
	if (!strcmp(desc, "*"))
		return true;
	size_t dl = strlen(desc);
	if (dl < 2 || strcmp(desc + dl - 2, ".*") != 0)
		return false;
	/* token by token; a "*" token matches the rest only when it is last */
	const char *d = desc, *t = type;
	for (;;) {
		size_t dn = strcspn(d, ".");
		if (dn == 1 && d[0] == '*')
			return d[1] == '\0';
		size_t tn = t ? strcspn(t, ".") : 0;
		if (!t || dn != tn || strncmp(d, t, dn) != 0)
			return false;
		if (d[dn] == '\0')
			return true;
		d += dn + 1;
		t = t[tn] ? t + tn + 1 : NULL;
	}
}

/* StateNode#next: the first candidate whose guard holds, or NULL. -1 on
 * failure. */
static int node_next(run *r, int node, const char *type, const sc_trans **out)
{
	*out = NULL;
	const sc_node *nd = N(r, node);
	const sc_on *exact = NULL;
	for (size_t i = 0; i < nd->n_on && !exact; i++)
		if (!strcmp(nd->on[i].descriptor, type))
			exact = &nd->on[i];
	if (exact) {
		for (size_t i = 0; i < exact->n; i++) {
			const sc_trans *t = &r->c->trans[exact->trans[i]];
			int ok = guard_ok(r, t);
			if (ok < 0)
				return -1;
			if (ok) {
				*out = t;
				return 0;
			}
		}
		return 0;
	}
	/* wildcard descriptors: the longest first, ties as written */
	const sc_on *m[64];
	size_t nm = 0;
	for (size_t i = 0; i < nd->n_on && nm < 64; i++)
		if (descriptor_matches(nd->on[i].descriptor, type))
			m[nm++] = &nd->on[i];
	for (size_t i = 1; i < nm; i++) /* stable insertion sort by length, longest first */
		for (size_t j = i; j > 0 && strlen(m[j]->descriptor) > strlen(m[j - 1]->descriptor); j--) {
			const sc_on *x = m[j];
			m[j] = m[j - 1];
			m[j - 1] = x;
		}
	for (size_t k = 0; k < nm; k++)
		for (size_t i = 0; i < m[k]->n; i++) {
			const sc_trans *t = &r->c->trans[m[k]->trans[i]];
			int ok = guard_ok(r, t);
			if (ok < 0)
				return -1;
			if (ok) {
				*out = t;
				return 0;
			}
		}
	return 0;
}

typedef struct tlist {
	const sc_trans **v;
	size_t n, cap;
} tlist;

static int tl_push(tlist *l, const sc_trans *t)
{
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 16;
		const sc_trans **nv = realloc(l->v, nc * sizeof *nv);
		if (!nv)
			return -1;
		l->v = nv;
		l->cap = nc;
	}
	l->v[l->n++] = t;
	return 0;
}

/* transitionNode over the active configuration, children in the order the
 * state value lists them (the configuration's). */
static int select_node(run *r, int node, const char *type, tlist *out)
{
	size_t before = out->n;
	bool kids = false;
	for (size_t i = 0; i < r->s->n_config; i++) {
		int k = r->s->config[i];
		if (N(r, k)->parent != node)
			continue;
		kids = true;
		if (select_node(r, k, type, out) < 0)
			return -1;
	}
	if (kids && out->n > before)
		return 0;
	const sc_trans *t;
	if (node_next(r, node, type, &t) < 0)
		return -1;
	if (t && tl_push(out, t) < 0)
		return oom(r);
	return 0;
}

/* selectEventlessTransitions */
static int select_eventless(run *r, tlist *out)
{
	for (size_t i = 0; i < r->s->n_config; i++) {
		int a = r->s->config[i];
		if (!is_atomic(r, a))
			continue;
		for (int s = a; s >= 0; s = N(r, s)->parent) {
			const sc_node *nd = N(r, s);
			const sc_trans *chosen = NULL;
			for (size_t k = 0; k < nd->n_always && !chosen; k++) {
				const sc_trans *t = &r->c->trans[nd->always[k]];
				int ok = guard_ok(r, t);
				if (ok < 0)
					return -1;
				if (ok)
					chosen = t;
			}
			if (!chosen)
				continue;
			bool have = false;
			for (size_t k = 0; k < out->n && !have; k++)
				have = out->v[k] == chosen;
			if (!have && tl_push(out, chosen) < 0)
				return oom(r);
			break;
		}
	}
	out->n = remove_conflicting(r, out->v, out->n);
	return r->failed ? -1 : 0;
}

/* macrostep; `initial`: the initial event (no transition selected for it). */
static int macrostep(run *r, json_t *event, bool initial)
{
	r->event = event;
	json_t *held = NULL; /* the internal event being processed */
	tlist tl = { 0 };
	int rc = 0;
	if (!initial) {
		if (select_node(r, 0, json_string_value(json_object_get(event, "type")), &tl) < 0 ||
		    microstep(r, tl.v, tl.n, false) < 0) {
			rc = -1;
			goto out;
		}
	}
	bool eventless = true;
	while (r->s->status == SC_STATUS_ACTIVE) {
		tl.n = 0;
		if (eventless && select_eventless(r, &tl) < 0) {
			rc = -1;
			goto out;
		}
		bool took_eventless = tl.n > 0;
		if (!took_eventless) {
			if (json_array_size(r->queue) == 0)
				break;
			json_decref(held);
			held = json_incref(json_array_get(r->queue, 0));
			json_array_remove(r->queue, 0);
			r->event = held;
			if (select_node(r, 0, json_string_value(json_object_get(held, "type")), &tl) < 0) {
				rc = -1;
				goto out;
			}
		}
		if (microstep(r, tl.v, tl.n, false) < 0) {
			rc = -1;
			goto out;
		}
		eventless = took_eventless ? r->changed : true;
	}
out:
	r->event = NULL;
	json_decref(held);
	free(tl.v);
	return rc < 0 || r->failed ? SDK_EINVAL : 0;
}

/* ---- snapshots ---- */

static sc_snapshot *snap_new(size_t nn)
{
	sc_snapshot *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->n_nodes = nn;
	s->config = calloc(nn, sizeof *s->config);
	s->hist = calloc(nn, sizeof *s->hist);
	s->n_hist = calloc(nn, sizeof *s->n_hist);
	s->hist_set = calloc(nn, sizeof *s->hist_set);
	if (!s->config || !s->hist || !s->n_hist || !s->hist_set) {
		sc_snapshot_free(s);
		return NULL;
	}
	return s;
}

void sc_snapshot_free(sc_snapshot *s)
{
	if (!s)
		return;
	if (s->hist)
		for (size_t i = 0; i < s->n_nodes; i++)
			free(s->hist[i]);
	free(s->hist);
	free(s->n_hist);
	free(s->hist_set);
	free(s->config);
	json_decref(s->context);
	free(s);
}

static sc_snapshot *snap_copy(const sc_snapshot *o)
{
	sc_snapshot *s = snap_new(o->n_nodes);
	if (!s)
		return NULL;
	memcpy(s->config, o->config, o->n_config * sizeof *s->config);
	s->n_config = o->n_config;
	for (size_t i = 0; i < o->n_nodes; i++) {
		s->hist_set[i] = o->hist_set[i];
		s->n_hist[i] = o->n_hist[i];
		if (o->n_hist[i]) {
			s->hist[i] = malloc(o->n_hist[i] * sizeof *s->hist[i]);
			if (!s->hist[i]) {
				sc_snapshot_free(s);
				return NULL;
			}
			memcpy(s->hist[i], o->hist[i], o->n_hist[i] * sizeof *s->hist[i]);
		}
	}
	s->context = json_incref(o->context);
	s->status = o->status;
	return s;
}

static int run_init(run *r, const sc_chart *c, sc_snapshot *s, json_t *effects, sdk_err *err)
{
	*r = (run){ .c = c, .s = s, .effects = effects, .err = err };
	r->in = calloc(c->n_nodes, 1);
	r->queue = json_array();
	if (!r->in || !r->queue) {
		free(r->in);
		json_decref(r->queue);
		return sdk_fail(err, SDK_EBUSY, "out of memory");
	}
	for (size_t i = 0; i < s->n_config; i++)
		r->in[s->config[i]] = true;
	return 0;
}

static void run_done(run *r)
{
	free(r->in);
	json_decref(r->queue);
}

int sc_start(const sc_chart *c, json_t *context, sc_snapshot **out, json_t *effects, sdk_err *err)
{
	*out = NULL;
	if (!c->bound)
		return sdk_fail(err, SDK_EINVAL, "the machine's expressions are not compiled");
	sc_snapshot *s = snap_new(c->n_nodes);
	if (!s)
		return sdk_fail(err, SDK_EBUSY, "out of memory");
	s->context = json_deep_copy(context ? context : c->context);
	s->config[s->n_config++] = 0;
	json_t *fx = json_array();
	run r;
	if (!s->context || !fx || run_init(&r, c, s, fx, err) < 0) {
		json_decref(fx);
		sc_snapshot_free(s);
		return sdk_fail(err, SDK_EBUSY, "out of memory");
	}
	/* the initial transition: from the root to every initial state */
	ilist init = { 0 };
	bool bad = false;
	/* getInitialStateNodes: a walk from the root */
	ilist todo = { 0 };
	bad |= il_push(&todo, 0) < 0;
	while (todo.n && !bad) {
		int x = todo.v[--todo.n];
		if (il_has(&init, x))
			continue;
		bad |= il_push(&init, x) < 0;
		const sc_node *nd = &c->nodes[x];
		if (nd->type == SC_COMPOUND) {
			bad |= il_push(&todo, nd->initial) < 0;
		} else if (nd->type == SC_PARALLEL) {
			for (size_t k = nd->n_children; k-- > 0;)
				if (c->nodes[nd->children[k]].type != SC_HISTORY)
					bad |= il_push(&todo, nd->children[k]) < 0;
		}
	}
	il_free(&todo);
	int rc = bad ? sdk_fail(err, SDK_EBUSY, "out of memory") : 0;
	json_t *ev = json_pack("{s:s}", "type", "xstate.init");
	if (rc == 0) {
		sc_trans t = { .source = 0, .targets = init.v, .n_targets = init.n, .guard = -1,
			       .reenter = true };
		const sc_trans *ts[1] = { &t };
		r.event = ev;
		rc = microstep(&r, ts, 1, true) < 0 ? SDK_EINVAL : 0;
		if (rc == 0)
			rc = macrostep(&r, ev, true);
	}
	json_decref(ev);
	il_free(&init);
	run_done(&r);
	if (rc < 0) {
		json_decref(fx);
		sc_snapshot_free(s);
		return rc;
	}
	json_array_extend(effects, fx);
	json_decref(fx);
	*out = s;
	return 0;
}

int sc_send(const sc_chart *c, const sc_snapshot *cur, json_t *event, sc_snapshot **out,
	    json_t *effects, sdk_err *err)
{
	*out = NULL;
	if (!c->bound)
		return sdk_fail(err, SDK_EINVAL, "the machine's expressions are not compiled");
	if (!json_is_object(event) || !json_is_string(json_object_get(event, "type")))
		return sdk_fail(err, SDK_EINVAL, "an event is an object with a string \"type\"");
	if (cur->status == SC_STATUS_DONE)
		return sdk_fail(err, SDK_ECONFLICT, "the machine has reached its final state");
	sc_snapshot *s = snap_copy(cur);
	json_t *fx = json_array();
	run r;
	if (!s || !fx || run_init(&r, c, s, fx, err) < 0) {
		json_decref(fx);
		sc_snapshot_free(s);
		return sdk_fail(err, SDK_EBUSY, "out of memory");
	}
	int rc = macrostep(&r, event, false);
	run_done(&r);
	if (rc < 0) {
		json_decref(fx);
		sc_snapshot_free(s);
		return rc;
	}
	json_array_extend(effects, fx);
	json_decref(fx);
	*out = s;
	return 0;
}

/* ---- values ---- */

static json_t *value_of(const sc_chart *c, const sc_snapshot *s, int node)
{
	const sc_node *nd = &c->nodes[node];
	int first = -1;
	for (size_t i = 0; i < s->n_config && first < 0; i++)
		if (c->nodes[s->config[i]].parent == node)
			first = s->config[i];
	if (nd->type == SC_COMPOUND) {
		if (first < 0)
			return json_object();
		if (c->nodes[first].type == SC_ATOMIC || c->nodes[first].type == SC_FINAL)
			return json_string(c->nodes[first].key);
	}
	json_t *o = json_object();
	for (size_t i = 0; i < s->n_config; i++) {
		int k = s->config[i];
		if (c->nodes[k].parent == node)
			json_object_set_new(o, c->nodes[k].key, value_of(c, s, k));
	}
	return o;
}

json_t *sc_value(const sc_chart *c, const sc_snapshot *s) { return value_of(c, s, 0); }

json_t *sc_tags(const sc_chart *c, const sc_snapshot *s)
{
	json_t *set = json_object();
	for (size_t i = 0; i < s->n_config; i++) {
		json_t *tags = c->nodes[s->config[i]].tags;
		size_t k;
		json_t *t;
		json_array_foreach(tags, k, t) json_object_set(set, json_string_value(t), json_true());
	}
	json_t *out = json_array();
	const char *key;
	json_t *v;
	json_object_foreach(set, key, v) json_array_append_new(out, json_string(key));
	json_decref(set);
	/* sorted, so that two equal sets print the same */
	size_t n = json_array_size(out);
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && strcmp(json_string_value(json_array_get(out, j - 1)),
						   json_string_value(json_array_get(out, j))) > 0; j--) {
			json_t *a = json_incref(json_array_get(out, j - 1));
			json_array_set(out, j - 1, json_array_get(out, j));
			json_array_set_new(out, j, a);
		}
	return out;
}

json_t *sc_snapshot_dump(const sc_chart *c, const sc_snapshot *s)
{
	json_t *config = json_array(), *hist = json_object();
	for (size_t i = 0; i < s->n_config; i++)
		json_array_append_new(config, json_string(c->nodes[s->config[i]].id));
	for (size_t h = 0; h < s->n_nodes; h++) {
		if (!s->hist_set[h])
			continue;
		json_t *l = json_array();
		for (size_t k = 0; k < s->n_hist[h]; k++)
			json_array_append_new(l, json_string(c->nodes[s->hist[h][k]].id));
		json_object_set_new(hist, c->nodes[h].id, l);
	}
	return json_pack("{s:s, s:o, s:o, s:O}", "status",
			 s->status == SC_STATUS_DONE ? "done" : "active", "config", config, "history",
			 hist, "context", s->context);
}

int sc_snapshot_load(const sc_chart *c, json_t *j, sc_snapshot **out, sdk_err *err)
{
	*out = NULL;
	json_t *config = json_object_get(j, "config"), *hist = json_object_get(j, "history");
	json_t *ctx = json_object_get(j, "context");
	const char *status = json_string_value(json_object_get(j, "status"));
	if (!json_is_array(config) || !json_is_object(hist) || !json_is_object(ctx) || !status)
		return sdk_fail(err, SDK_ECORRUPT, "a stored snapshot lacks its fields");
	sc_snapshot *s = snap_new(c->n_nodes);
	if (!s)
		return sdk_fail(err, SDK_EBUSY, "out of memory");
	s->status = !strcmp(status, "done") ? SC_STATUS_DONE : SC_STATUS_ACTIVE;
	s->context = json_deep_copy(ctx);
	size_t i;
	json_t *v;
	json_array_foreach(config, i, v) {
		int n = json_is_string(v) ? sc_chart_find_id(c, json_string_value(v)) : -1;
		if (n < 0 || s->n_config >= c->n_nodes) {
			sc_snapshot_free(s);
			return sdk_fail(err, SDK_ECORRUPT, "a stored snapshot names a state the machine "
				       "does not have");
		}
		s->config[s->n_config++] = n;
	}
	const char *key;
	json_object_foreach(hist, key, v) {
		int h = sc_chart_find_id(c, key);
		if (h < 0 || !json_is_array(v)) {
			sc_snapshot_free(s);
			return sdk_fail(err, SDK_ECORRUPT, "a stored history names a state the machine "
				       "does not have");
		}
		s->hist_set[h] = true;
		s->n_hist[h] = json_array_size(v);
		s->hist[h] = s->n_hist[h] ? calloc(s->n_hist[h], sizeof *s->hist[h]) : NULL;
		size_t k;
		json_t *x;
		json_array_foreach(v, k, x) {
			int n = json_is_string(x) ? sc_chart_find_id(c, json_string_value(x)) : -1;
			if (n < 0 || !s->hist[h]) {
				sc_snapshot_free(s);
				return sdk_fail(err, SDK_ECORRUPT, "a stored history names a state the "
					       "machine does not have");
			}
			s->hist[h][k] = n;
		}
	}
	*out = s;
	return 0;
}
