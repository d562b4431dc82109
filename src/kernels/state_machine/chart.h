/* A statechart definition: an XState v5 machine configuration, as JSON,
 * parsed and checked into a table of state nodes in document order (a
 * node's index is XState's `order`), with its transitions, actions and jq
 * expressions. Pure: no I/O; expressions are compiled by the caller
 * (sc_chart_compile, or the kernel off its loop) and bound to the chart.
 *
 * The subset (docs/state_machine.md): atomic, compound, parallel, final
 * and history (shallow, deep) states; `initial`; `on` with exact, `*` and
 * `prefix.*` descriptors; `always`; `after` (delays in milliseconds);
 * `onDone`; `id`; `tags`, `description`, `meta` (kept, no effect);
 * transitions with `target` (string or array), `guard` (a jq expression
 * over {"context","event"}), `actions`, `reenter`; actions
 *   {"type":"assign","assignment":{"KEY":"<jq>"...}}
 *   {"type":"raise","event":{...}|"<jq>","delay"?:MS,"id"?:"ID"}
 *   {"type":"emit","event":{...}|"<jq>"}
 *   {"type":"cancel","id":"ID"} */
#ifndef GRACE_SM_CHART_H
#define GRACE_SM_CHART_H

#include "kernels/layer.h"

#include "sdk/err.h"
#include "sdk/jq.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define SC_NODES_MAX 2000
#define SC_DEPTH_MAX 32
#define SC_TRANSITIONS_MAX 20000
#define SC_ACTIONS_MAX 20000
#define SC_EXPRS_MAX 5000
#define SC_DELAY_MAX_MS 2592000000LL /* 30 days */
#define SC_KEY_MAX 256               /* bytes of a state key, an id, an event type */

typedef enum { SC_ATOMIC, SC_COMPOUND, SC_PARALLEL, SC_FINAL, SC_HISTORY } sc_type;
typedef enum { SC_ACT_ASSIGN, SC_ACT_RAISE, SC_ACT_EMIT, SC_ACT_CANCEL } sc_act_kind;

typedef struct sc_expr {
	char *text;
	char *path;         /* where the definition holds it (a JSON pointer) */
	sdk_jq_prog *prog;  /* bound by sc_chart_bind; a reference in the cache */
} sc_expr;

typedef struct sc_action {
	sc_act_kind kind;
	size_t n_keys;       /* assign: keys[i] gets exprs[i] */
	char **keys;
	int *exprs;
	json_t *event;       /* raise, emit: a literal event, or NULL */
	int event_expr;      /* raise, emit: the expression making the event, or -1 */
	long long delay;     /* raise: milliseconds, or -1 for none */
	char *id;            /* raise (may be NULL), cancel */
} sc_action;

typedef struct sc_trans {
	int source;
	int *targets; /* node indexes; n_targets 0: targetless */
	size_t n_targets;
	int guard;    /* expression index, or -1 */
	bool reenter;
	sc_action *actions;
	size_t n_actions;
} sc_trans;

/* The transitions of one event descriptor, in definition order. */
typedef struct sc_on {
	char *descriptor;
	int *trans;
	size_t n;
} sc_on;

typedef struct sc_node {
	char *key;          /* "" for the root */
	char *id;
	int parent;         /* -1 for the root */
	int depth;
	sc_type type;
	bool deep;          /* history: deep (else shallow) */
	int *children;      /* every child, history ones too, in document order */
	size_t n_children;
	int initial;        /* compound: its initial child; else -1 */
	int *hist_default;  /* history: the default targets (NULL: the parent's initial) */
	size_t n_hist_default;
	bool hist_has_default;
	sc_action *entry, *exit;
	size_t n_entry, n_exit;
	sc_on *on;          /* in XState's order (see chart.c) */
	size_t n_on;
	int *always;        /* transition indexes */
	size_t n_always;
	json_t *tags;       /* array of strings, or NULL */
} sc_node;

typedef struct sc_chart {
	char *id;           /* the root's id: the configuration's `id` or "(machine)" */
	sc_node *nodes;
	size_t n_nodes;
	sc_trans *trans;
	size_t n_trans;
	sc_expr *exprs;
	size_t n_exprs;
	json_t *context;    /* the initial context (an object) */
	bool bound;
	sdk_jq_cache *cache; /* where the bound programs' references are held */
} sc_chart;

/* Parses and checks `config` (borrowed). SDK_EINVAL with the JSON pointer
 * of the first problem and what it is in err ("/states/a/on/GO/target: no
 * state \"b\" ..."). Expressions are not compiled yet. */
int sc_chart_parse(json_t *config, sc_chart **out, sdk_err *err);
void sc_chart_free(sc_chart *c);

/* Binds every expression to a program from `cache`, compiling (on this
 * thread) those it lacks. SDK_EINVAL naming the expression's path when one
 * does not compile. */
int sc_chart_compile(sc_chart *c, sdk_jq_cache *cache, sdk_err *err);
/* The texts `cache` lacks (for compiling them elsewhere): a JSON array of
 * strings, each once. */
json_t *sc_chart_missing(const sc_chart *c, sdk_jq_cache *cache);
/* Binds once `cache` holds every text; SDK_EINVAL if one is still missing. */
int sc_chart_bind(sc_chart *c, sdk_jq_cache *cache, sdk_err *err);

/* The node with this id, or -1. */
int sc_chart_find_id(const sc_chart *c, const char *id);

#endif
