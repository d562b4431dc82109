/* Entity sets in Cedar's entity JSON format: an array of
 *   {"uid": {"type": T, "id": I}, "attrs": {...}, "parents": [uid...],
 *    "tags": {...}}
 * (a uid may also be written {"__entity": {"type": T, "id": I}}). The
 * hierarchy must be acyclic, as Cedar requires; `in` is its transitive
 * closure. A set is either kept (the kernel's store: its closure is
 * computed once, when it is built) or passed with a request and then laid
 * over the store for that request only: a request's entity wins over a
 * stored one with the same uid, and `in` then walks the merged graph. */
#ifndef GRACE_POLICY_ENTITIES_H
#define GRACE_POLICY_ENTITIES_H

#include "kernels/layer.h"

#include "kernels/policy/arena.h"
#include "kernels/policy/value.h"
#include "sdk/err.h"

#include <jansson.h>
#include <stdbool.h>

#define CEDAR_ENTITIES_MAX 100000 /* entities in one set */
#define CEDAR_PARENTS_MAX 10000   /* parents of one entity */
#define CEDAR_CLOSURE_MAX 2000000 /* ancestor links of a kept set, all entities together */
#define CEDAR_ERR_MAX 256

typedef struct cedar_entity {
	const cedar_uid *uid;
	cedar_value attrs; /* a record */
	cedar_value tags;  /* a record (empty without tags) */
	const cedar_uid **parents;
	uint32_t n_parents;
	/* The transitive ancestors, an open-addressing table by uid hash
	 * (anc_cap a power of two; 0 when the closure was not computed). */
	const cedar_uid **anc;
	uint32_t anc_cap, n_anc;
	json_t *json; /* the entity as given (kept sets only; owned), or NULL */
} cedar_entity;

typedef struct cedar_entities {
	cedar_arena *arena; /* where everything lives; the caller's */
	cedar_entity **table; /* open addressing by uid hash */
	uint32_t cap;
	cedar_entity **list; /* in the order given */
	uint32_t n;
	bool closure; /* ancestors computed */
	const cedar_uid **refs; /* with closure: every uid named as a parent */
	uint32_t refs_cap;
} cedar_entities;

/* Builds an entity set from a JSON array, allocating from `a`. With
 * `closure`, computes every entity's ancestors (for a kept set) and with
 * `keep_json` keeps a reference to each entity's JSON object. Identical
 * duplicates are merged and different ones refused, as in Cedar; so are
 * bad uids, bad values and cycles. Returns 0, or -1 with the reason. */
int cedar_entities_parse(cedar_arena *a, json_t *arr, bool closure, bool keep_json,
			 cedar_entities **out, sdk_err *err);
/* Drops the JSON references a kept set holds (its memory is the arena's). */
void cedar_entities_release(cedar_entities *es);
const cedar_entity *cedar_entities_get(const cedar_entities *es, const cedar_uid *uid);

/* The entities one request sees: its own over the store's (either may be
 * NULL). */
typedef struct cedar_view {
	const cedar_entities *over, *base;
	bool mixed; /* over changes what base's closure says (cedar_view_check) */
} cedar_view;

static inline const cedar_entity *cedar_view_get(const cedar_view *v, const cedar_uid *uid)
{
	const cedar_entity *e = v->over ? cedar_entities_get(v->over, uid) : NULL;
	return e ? e : v->base ? cedar_entities_get(v->base, uid) : NULL;
}

/* Cedar's `a in b` on uids: equal, or b an ancestor of a. `scratch` is
 * for the walk when the view has two layers. -1 when out of memory. */
int cedar_view_in(const cedar_view *v, cedar_arena *scratch, const cedar_uid *a,
		  const cedar_uid *b);
/* Checks that laying `over` on `base` makes no cycle, and sets `mixed`.
 * Call it once per request before cedar_view_in. */
int cedar_view_check(cedar_view *v, cedar_arena *scratch, sdk_err *err);

#endif
