/* The statechart algorithm: W3C SCXML's, with XState v5's choices, step
 * for step as XState 5.19 computes it (its stateUtils), so that the same
 * machine and events give the same state values:
 *
 *   - the configuration is a set of state nodes kept in the order they
 *     were entered (XState's `_nodes`); exit sets run in reverse document
 *     order, entry sets in document order;
 *   - an event selects, per active region, the deepest node's first
 *     transition whose guard holds (falling back to ancestors); conflicts
 *     (intersecting exit sets) are resolved in favour of the transition
 *     whose source is a descendant, else of the one selected first;
 *   - a transition's domain is its source when every target lies inside
 *     it and it does not say `reenter: true` (XState's default), else the
 *     least common ancestor;
 *   - a macrostep takes eventless transitions, then internal events
 *     (raised, done events) in order, until neither is left; eventless
 *     transitions are looked at again only after a microstep that changed
 *     the snapshot (an assign, a history record, other states, done);
 *   - reaching a top-level final state ends the machine: every active
 *     state's exit actions run and what was queued is dropped.
 *
 * Effects for the caller, in the order XState would execute them:
 * {"type":"schedule","id","event","delay"}, {"type":"cancel","id"} and
 * {"type":"emit","event"}. A raise without an id is scheduled with id
 * null (the caller names it). Pure: no clock, no I/O. */
#ifndef GRACE_SM_ENGINE_H
#define GRACE_SM_ENGINE_H

#include "kernels/layer.h"

#include "kernels/state_machine/chart.h"

#define SC_MICROSTEPS_MAX 1000 /* in one macrostep: an eventless loop is an error */
#define SC_QUEUE_MAX 10000      /* internal events waiting in one macrostep */

typedef enum { SC_STATUS_ACTIVE, SC_STATUS_DONE } sc_status;

typedef struct sc_snapshot {
	int *config;       /* active nodes, in the order they were entered */
	size_t n_config;
	int **hist;        /* per node: the states a history node recorded */
	size_t *n_hist;
	bool *hist_set;
	size_t n_nodes;
	json_t *context;   /* an object */
	sc_status status;
} sc_snapshot;

/* The initial snapshot (XState's initialTransition): `context` (borrowed,
 * may be NULL for the chart's) replaces the chart's initial context.
 * Effects are appended to `effects`. SDK_EINVAL when an expression fails
 * (its path and jq's message in err) or a macrostep does not settle. */
int sc_start(const sc_chart *c, json_t *context, sc_snapshot **out, json_t *effects,
	     sdk_err *err);
/* The snapshot after one external event (XState's transition): a new
 * snapshot, `cur` untouched. `event` is an object with a string "type". */
int sc_send(const sc_chart *c, const sc_snapshot *cur, json_t *event, sc_snapshot **out,
	    json_t *effects, sdk_err *err);
void sc_snapshot_free(sc_snapshot *s);

/* XState's state value: "a", {"a":"b"}, {"p":{"r1":"x","r2":"y"}}. */
json_t *sc_value(const sc_chart *c, const sc_snapshot *s);
/* The tags of the active states, each once, sorted. */
json_t *sc_tags(const sc_chart *c, const sc_snapshot *s);

/* A snapshot as JSON and back: {"status","config":[ids],"history":{id:[ids]},
 * "context"}. Loading checks every id against the chart. */
json_t *sc_snapshot_dump(const sc_chart *c, const sc_snapshot *s);
int sc_snapshot_load(const sc_chart *c, json_t *j, sc_snapshot **out, sdk_err *err);

#endif
