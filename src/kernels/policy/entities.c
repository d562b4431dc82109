#include "kernels/policy/entities.h"

#include "kernels/policy/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a set of uids: open addressing by hash, in an arena */

typedef struct uidset {
	const cedar_uid **slot;
	uint32_t cap, n; /* cap a power of two */
} uidset;

static int uidset_init(uidset *s, cedar_arena *a, uint32_t hint)
{
	uint32_t cap = 8;
	while (cap < hint * 2 + 2)
		cap *= 2;
	s->slot = cedar_arena_alloc(a, sizeof *s->slot * cap);
	s->cap = cap;
	s->n = 0;
	return s->slot ? 0 : -1;
}

static bool table_has(const cedar_uid *const *slot, uint32_t cap, const cedar_uid *u)
{
	if (!cap)
		return false;
	for (uint32_t i = (uint32_t)u->hash & (cap - 1);; i = (i + 1) & (cap - 1)) {
		if (!slot[i])
			return false;
		if (cedar_uid_eq(slot[i], u))
			return true;
	}
}

/* 1 when added, 0 when there already, -1 when out of memory. */
static int uidset_add(uidset *s, cedar_arena *a, const cedar_uid *u)
{
	if ((s->n + 1) * 2 > s->cap) {
		uidset bigger;
		if (uidset_init(&bigger, a, s->cap) < 0)
			return -1;
		for (uint32_t i = 0; i < s->cap; i++)
			if (s->slot[i])
				uidset_add(&bigger, a, s->slot[i]);
		*s = bigger;
	}
	for (uint32_t i = (uint32_t)u->hash & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
		if (!s->slot[i]) {
			s->slot[i] = u;
			s->n++;
			return 1;
		}
		if (cedar_uid_eq(s->slot[i], u))
			return 0;
	}
}

/* ---- the entity table */

const cedar_entity *cedar_entities_get(const cedar_entities *es, const cedar_uid *uid)
{
	if (!es->cap)
		return NULL;
	for (uint32_t i = (uint32_t)uid->hash & (es->cap - 1);; i = (i + 1) & (es->cap - 1)) {
		cedar_entity *e = es->table[i];
		if (!e)
			return NULL;
		if (cedar_uid_eq(e->uid, uid))
			return e;
	}
}

static int uid_ptr_cmp(const void *a, const void *b)
{
	return cedar_uid_cmp(*(const cedar_uid *const *)a, *(const cedar_uid *const *)b);
}

/* Cedar merges an exact duplicate and refuses any other: same attributes,
 * tags and parents (as sets). */
static bool same_entity(cedar_arena *a, const cedar_entity *x, const cedar_entity *y)
{
	if (!cedar_value_eq(&x->attrs, &y->attrs) || !cedar_value_eq(&x->tags, &y->tags))
		return false;
	const cedar_uid **px = cedar_arena_alloc(a, sizeof *px * (x->n_parents + 1));
	const cedar_uid **py = cedar_arena_alloc(a, sizeof *py * (y->n_parents + 1));
	if (!px || !py)
		return false;
	memcpy(px, x->parents, sizeof *px * x->n_parents);
	memcpy(py, y->parents, sizeof *py * y->n_parents);
	qsort(px, x->n_parents, sizeof *px, uid_ptr_cmp);
	qsort(py, y->n_parents, sizeof *py, uid_ptr_cmp);
	uint32_t i = 0, j = 0;
	while (i < x->n_parents || j < y->n_parents) {
		if (i < x->n_parents && i > 0 && cedar_uid_eq(px[i], px[i - 1])) {
			i++;
			continue;
		}
		if (j < y->n_parents && j > 0 && cedar_uid_eq(py[j], py[j - 1])) {
			j++;
			continue;
		}
		if (i == x->n_parents || j == y->n_parents || !cedar_uid_eq(px[i], py[j]))
			return false;
		i++, j++;
	}
	return true;
}

static int entity_ptr_cmp(const void *a, const void *b)
{
	return cedar_uid_cmp((*(cedar_entity *const *)a)->uid, (*(cedar_entity *const *)b)->uid);
}

static int label(const cedar_uid *u, char *buf, size_t cap)
{
	cedar_value v = cedar_uid_value(u);
	cedar_value_format(&v, buf, cap);
	return 0;
}

static int entity_of(cedar_arena *a, json_t *obj, cedar_entity *e, sdk_err *err)
{
	sdk_err why;
	if (!json_is_object(obj)) {
		return sdk_fail(err, SDK_EINVAL,
				"an entity must be an object with uid, attrs and parents");
	}
	json_t *uid = json_object_get(obj, "uid"), *attrs = json_object_get(obj, "attrs");
	json_t *parents = json_object_get(obj, "parents"), *tags = json_object_get(obj, "tags");
	if (!uid || !attrs || !parents) {
		return sdk_fail(
			err, SDK_EINVAL,
			"an entity needs the fields `uid`, `attrs` and `parents` (missing `%s`)",
			!uid	 ? "uid"
			: !attrs ? "attrs"
				 : "parents");
	}
	if (cedar_json_uid_strict(a, uid, &e->uid, &why) < 0) {
		return sdk_fail(err, SDK_EINVAL, "entity uid: %s", why.msg);
	}
	char name[128];
	label(e->uid, name, sizeof name);
	if (!json_is_object(attrs) || cedar_json_record(a, attrs, &e->attrs, &why) < 0) {
		return sdk_fail(err, SDK_EINVAL, "attributes of %s: %s", name,
				json_is_object(attrs) ? why.msg : "`attrs` must be an object");
	}
	e->tags = (cedar_value){ .kind = CEDAR_RECORD };
	if (tags && (!json_is_object(tags) || cedar_json_record(a, tags, &e->tags, &why) < 0)) {
		return sdk_fail(err, SDK_EINVAL, "tags of %s: %s", name,
				json_is_object(tags) ? why.msg : "`tags` must be an object");
	}
	if (!json_is_array(parents)) {
		return sdk_fail(err, SDK_EINVAL, "parents of %s: `parents` must be an array", name);
	}
	size_t np = json_array_size(parents);
	if (np > CEDAR_PARENTS_MAX) {
		return sdk_fail(err, SDK_EINVAL, "%s has more than %d parents", name,
				CEDAR_PARENTS_MAX);
	}
	e->parents = cedar_arena_alloc(a, sizeof *e->parents * (np ? np : 1));
	if (!e->parents) {
		return sdk_fail(err, SDK_EINVAL, "out of memory");
	}
	for (size_t i = 0; i < np; i++)
		if (cedar_json_uid_strict(a, json_array_get(parents, i), &e->parents[i], &why) <
		    0) {
			return sdk_fail(err, SDK_EINVAL, "parents of %s: %s", name, why.msg);
		}
	e->n_parents = (uint32_t)np;
	return 0;
}

/* Depth-first over the parent edges with colours, iteratively: a grey
 * entity met again closes a cycle. On success `order` lists the entities
 * so that each comes after all of its ancestors. */
enum { WHITE, GREY, BLACK };

typedef struct frame {
	const cedar_entity *e;
	uint32_t next; /* parent to look at next */
} frame;

static int colour_index(const cedar_entities *es, const cedar_entity *e)
{
	/* The entity's slot in the table serves as its index. */
	for (uint32_t i = (uint32_t)e->uid->hash & (es->cap - 1);; i = (i + 1) & (es->cap - 1))
		if (es->table[i] == e)
			return (int)i;
}

static int check_acyclic(const cedar_entities *es, cedar_arena *a, const cedar_entity **order,
			 sdk_err *err)
{
	uint8_t *colour = cedar_arena_alloc(a, es->cap);
	frame *stack = cedar_arena_alloc(a, sizeof *stack * (es->n + 1));
	if (!colour || !stack) {
		return sdk_fail(err, SDK_EINVAL, "out of memory");
	}
	uint32_t done = 0;
	for (uint32_t k = 0; k < es->n; k++) {
		const cedar_entity *root = es->list[k];
		if (colour[colour_index(es, root)] != WHITE)
			continue;
		uint32_t top = 0;
		stack[top++] = (frame){ root, 0 };
		colour[colour_index(es, root)] = GREY;
		while (top) {
			frame *f = &stack[top - 1];
			if (f->next == f->e->n_parents) {
				colour[colour_index(es, f->e)] = BLACK;
				if (order)
					order[done++] = f->e;
				top--;
				continue;
			}
			const cedar_entity *p = cedar_entities_get(es, f->e->parents[f->next++]);
			if (!p)
				continue;
			int c = colour[colour_index(es, p)];
			if (c == GREY) {
				char name[128];
				label(p->uid, name, sizeof name);
				return sdk_fail(err, SDK_EINVAL,
						"the entity hierarchy has a cycle containing %s",
						name);
			}
			if (c == WHITE) {
				colour[colour_index(es, p)] = GREY;
				stack[top++] = (frame){ p, 0 };
			}
		}
	}
	return 0;
}

static int table_set(const cedar_uid ***slot, uint32_t *cap, cedar_arena *a, const uidset *s)
{
	uint32_t c = 4;
	while (c < s->n * 2 + 2)
		c *= 2;
	const cedar_uid **t = cedar_arena_alloc(a, sizeof *t * c);
	if (!t)
		return -1;
	for (uint32_t i = 0; i < s->cap; i++) {
		const cedar_uid *u = s->slot[i];
		if (!u)
			continue;
		uint32_t j = (uint32_t)u->hash & (c - 1);
		while (t[j])
			j = (j + 1) & (c - 1);
		t[j] = u;
	}
	*slot = t;
	*cap = c;
	return 0;
}

/* Every entity's ancestors: its parents and their ancestors, taken in an
 * order where parents come first. */
static int compute_closure(cedar_entities *es, const cedar_entity **order, sdk_err *err)
{
	cedar_arena *a = es->arena;
	uint64_t links = 0;
	for (uint32_t k = 0; k < es->n; k++) {
		cedar_entity *e = (cedar_entity *)order[k];
		uidset s;
		uint32_t hint = e->n_parents;
		for (uint32_t i = 0; i < e->n_parents; i++) {
			const cedar_entity *p = cedar_entities_get(es, e->parents[i]);
			if (p)
				hint += p->n_anc;
		}
		if (uidset_init(&s, a, hint) < 0)
			goto oom;
		for (uint32_t i = 0; i < e->n_parents; i++) {
			if (uidset_add(&s, a, e->parents[i]) < 0)
				goto oom;
			const cedar_entity *p = cedar_entities_get(es, e->parents[i]);
			links += p ? p->anc_cap / 8 : 0; /* scanning counts too, at a discount */
			for (uint32_t j = 0; p && j < p->anc_cap; j++)
				if (p->anc[j] && uidset_add(&s, a, p->anc[j]) < 0)
					goto oom;
		}
		/* The set is sized for its contents already: it is the table. */
		e->anc = s.slot;
		e->anc_cap = s.cap;
		e->n_anc = s.n;
		/* A long chain makes the closure quadratic: bound the work. */
		links += s.n;
		if (links > CEDAR_CLOSURE_MAX) {
			return sdk_fail(
				err, SDK_EINVAL,
				"the entity hierarchy is too large: more than %d ancestor links "
				"in all (a chain of some thousands of entities)",
				CEDAR_CLOSURE_MAX);
		}
	}
	/* Every uid some entity names as a parent, for over_touches_base. */
	uidset refs;
	if (uidset_init(&refs, a, es->n) < 0)
		goto oom;
	for (uint32_t k = 0; k < es->n; k++)
		for (uint32_t i = 0; i < es->list[k]->n_parents; i++)
			if (uidset_add(&refs, a, es->list[k]->parents[i]) < 0)
				goto oom;
	if (table_set(&es->refs, &es->refs_cap, a, &refs) < 0)
		goto oom;
	es->closure = true;
	return 0;
oom:
	return sdk_fail(err, SDK_EINVAL, "out of memory computing the entity hierarchy");
}

int cedar_entities_parse(cedar_arena *a, json_t *arr, bool closure, bool keep_json,
			 cedar_entities **out, sdk_err *err)
{
	if (!json_is_array(arr)) {
		return sdk_fail(err, SDK_EINVAL, "entities must be a JSON array");
	}
	size_t n = json_array_size(arr);
	if (n > CEDAR_ENTITIES_MAX) {
		return sdk_fail(err, SDK_EINVAL, "more than %d entities", CEDAR_ENTITIES_MAX);
	}
	cedar_entities *es = cedar_arena_alloc(a, sizeof *es);
	uint32_t cap = 8;
	while (cap < n * 2 + 2)
		cap *= 2;
	if (!es || !(es->table = cedar_arena_alloc(a, sizeof *es->table * cap)) ||
	    !(es->list = cedar_arena_alloc(a, sizeof *es->list * (n ? n : 1)))) {
		return sdk_fail(err, SDK_EINVAL, "out of memory");
	}
	es->arena = a;
	es->cap = cap;
	for (size_t k = 0; k < n; k++) {
		cedar_entity *e = cedar_arena_alloc(a, sizeof *e);
		if (!e) {
			sdk_fail(err, SDK_EINVAL, "out of memory");
			goto fail;
		}
		if (entity_of(a, json_array_get(arr, k), e, err) < 0)
			goto fail;
		uint32_t i = (uint32_t)e->uid->hash & (cap - 1);
		while (es->table[i] && !cedar_uid_eq(es->table[i]->uid, e->uid))
			i = (i + 1) & (cap - 1);
		if (es->table[i]) {
			if (!same_entity(a, es->table[i], e)) {
				char name[128];
				label(e->uid, name, sizeof name);
				sdk_fail(err, SDK_EINVAL, "duplicate entity entry %s", name);
				goto fail;
			}
			continue;
		}
		if (keep_json)
			e->json = json_incref(json_array_get(arr, k));
		es->table[i] = e;
		es->list[es->n++] = e;
	}
	/* A kept set lists its entities by uid, as its file does: one order
	 * whatever the order of the writes that made it. */
	if (closure)
		qsort(es->list, es->n, sizeof *es->list, entity_ptr_cmp);
	const cedar_entity **order = closure ? cedar_arena_alloc(a, sizeof *order * (es->n + 1)) : NULL;
	if (closure && !order) {
		sdk_fail(err, SDK_EINVAL, "out of memory");
		goto fail;
	}
	if (check_acyclic(es, a, order, err) < 0)
		goto fail;
	if (closure && compute_closure(es, order, err) < 0)
		goto fail;
	*out = es;
	return 0;
fail:
	if (err)
		cedar_utf8_sanitize(err->msg);
	cedar_entities_release(es);
	return -1;
}

void cedar_entities_release(cedar_entities *es)
{
	for (uint32_t i = 0; es && i < es->n; i++) {
		json_decref(es->list[i]->json);
		es->list[i]->json = NULL;
	}
}

/* ---- views: a request's entities over the store's */

/* Whether the request's entities could change what the store's closure
 * says: one of them replaces a stored entity or is a stored entity's
 * parent. Without that, a stored entity's ancestors are still its closure. */
static bool over_touches_base(const cedar_view *v)
{
	if (!v->over || !v->base)
		return false;
	for (uint32_t i = 0; i < v->over->n; i++) {
		const cedar_uid *u = v->over->list[i]->uid;
		if (cedar_entities_get(v->base, u) || table_has(v->base->refs, v->base->refs_cap, u))
			return true;
	}
	return false;
}

int cedar_view_in(const cedar_view *v, cedar_arena *scratch, const cedar_uid *a,
		  const cedar_uid *b)
{
	if (cedar_uid_eq(a, b))
		return 1;
	const cedar_entity *e = v->over ? cedar_entities_get(v->over, a) : NULL;
	bool from_over = e != NULL;
	if (!e && v->base)
		e = cedar_entities_get(v->base, a);
	if (!e)
		return 0;
	if (!from_over && e->anc_cap && !v->mixed)
		return table_has(e->anc, e->anc_cap, b);
	/* Walk the merged graph breadth-first; stored entities whose closure
	 * still holds answer for everything above them. */
	uidset seen;
	if (uidset_init(&seen, scratch, 16) < 0)
		return -1;
	const cedar_entity *queue_small[32], **queue = queue_small;
	uint32_t head = 0, tail = 0, qcap = 32;
	queue[tail++] = e;
	while (head < tail) {
		const cedar_entity *x = queue[head++];
		for (uint32_t i = 0; i < x->n_parents; i++) {
			const cedar_uid *p = x->parents[i];
			if (cedar_uid_eq(p, b))
				return 1;
			int added = uidset_add(&seen, scratch, p);
			if (added < 0)
				return -1;
			if (!added)
				continue;
			const cedar_entity *pe = v->over ? cedar_entities_get(v->over, p) : NULL;
			bool p_over = pe != NULL;
			if (!pe && v->base)
				pe = cedar_entities_get(v->base, p);
			if (!pe)
				continue;
			if (!p_over && pe->anc_cap && !v->mixed) {
				if (table_has(pe->anc, pe->anc_cap, b))
					return 1;
				continue;
			}
			if (tail == qcap) {
				const cedar_entity **more = cedar_arena_alloc(scratch, sizeof *more * qcap * 2);
				if (!more)
					return -1;
				memcpy(more, queue, sizeof *more * qcap);
				queue = more;
				qcap *= 2;
			}
			queue[tail++] = pe;
		}
	}
	return 0;
}

int cedar_view_check(cedar_view *v, cedar_arena *scratch, sdk_err *err)
{
	v->mixed = over_touches_base(v);
	if (!v->mixed)
		return 0; /* each layer is acyclic and edges only go from over to base */
	/* A cycle through both layers: depth-first from each request entity
	 * over the merged graph, grey marks in a set of uids on the path. */
	uidset done;
	if (uidset_init(&done, scratch, v->over->n * 2) < 0)
		goto oom;
	for (uint32_t k = 0; k < v->over->n; k++) {
		const cedar_entity *root = v->over->list[k];
		if (table_has(done.slot, done.cap, root->uid))
			continue;
		uidset path;
		if (uidset_init(&path, scratch, 16) < 0)
			goto oom;
		uint32_t cap = 64, top = 0;
		frame *stack = cedar_arena_alloc(scratch, sizeof *stack * cap);
		if (!stack)
			goto oom;
		stack[top++] = (frame){ root, 0 };
		uidset_add(&path, scratch, root->uid);
		while (top) {
			frame *f = &stack[top - 1];
			if (f->next == f->e->n_parents) {
				if (uidset_add(&done, scratch, f->e->uid) < 0)
					goto oom;
				/* Off the path: a tombstone-free removal is not possible in this
				 * set, so rebuild it from the stack below. */
				top--;
				if (uidset_init(&path, scratch, top + 8) < 0)
					goto oom;
				for (uint32_t i = 0; i < top; i++)
					uidset_add(&path, scratch, stack[i].e->uid);
				continue;
			}
			const cedar_uid *pu = f->e->parents[f->next++];
			const cedar_entity *p = cedar_view_get(v, pu);
			if (!p)
				continue;
			if (table_has(path.slot, path.cap, pu)) {
				char name[128];
				label(pu, name, sizeof name);
				sdk_fail(err, SDK_EINVAL,
					 "the entity hierarchy has a cycle containing %s", name);
				if (err)
					cedar_utf8_sanitize(err->msg);
				return -1;
			}
			if (table_has(done.slot, done.cap, pu))
				continue;
			if (top == cap) {
				frame *more = cedar_arena_alloc(scratch, sizeof *more * cap * 2);
				if (!more)
					goto oom;
				memcpy(more, stack, sizeof *more * cap);
				stack = more;
				cap *= 2;
			}
			stack[top++] = (frame){ p, 0 };
			if (uidset_add(&path, scratch, pu) < 0)
				goto oom;
		}
	}
	return 0;
oom:
	return sdk_fail(err, SDK_EINVAL, "out of memory checking the entity hierarchy");
}
