/* Label sets: the identity of a series. A set is one immutable block
 * (header, pairs sorted by name, then the strings), hashed once when it is
 * made, so comparing, hashing and copying one is cheap. A label with an
 * empty value is the same as no label (as in Prometheus), so sets never
 * hold one. Reference counts are plain integers: a set is shared only
 * within one thread (a query, the loop); the store hands out copies. */
#ifndef GRACE_METRICS_LABELS_H
#define GRACE_METRICS_LABELS_H

#include "kernels/layer.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LBL_METRIC_NAME "__name__"
#define LBL_NAME_MAX 256    /* bytes of a label name */
#define LBL_VALUE_MAX 4096  /* bytes of a label value */
#define LBL_PAIRS_MAX 64    /* labels in one set */

typedef struct lbl_pair {
	const char *name;
	const char *value;
} lbl_pair;

typedef struct lbl_set {
	uint64_t hash;
	uint32_t n;
	uint32_t refs;
	size_t bytes; /* of the whole block */
	lbl_pair p[]; /* sorted by name; strings follow */
} lbl_set;

/* A copy of `pairs` (any order; empty values dropped), or NULL when out of
 * memory or a name repeats (then *dup, if given, is set). */
lbl_set *lbl_new(const lbl_pair *pairs, size_t n, bool *dup);
/* The empty set (a new reference). */
lbl_set *lbl_empty(void);
lbl_set *lbl_ref(lbl_set *ls);
void lbl_unref(lbl_set *ls);
/* A deep copy with a reference count of 1 (for another thread). */
lbl_set *lbl_dup(const lbl_set *ls);

/* The value of `name`, or NULL. */
const char *lbl_get(const lbl_set *ls, const char *name);
bool lbl_eq(const lbl_set *a, const lbl_set *b);
/* Prometheus's order of label sets: pair by pair, name then value. */
int lbl_cmp(const lbl_set *a, const lbl_set *b);

/* Hashes of a subset, for grouping and vector matching: the labels named
 * (on / by) or all but those named and __name__ (ignoring / without). */
uint64_t lbl_hash_pairs(const lbl_pair *p, size_t n);
bool lbl_valid_name(const char *s, size_t n);        /* [a-zA-Z_][a-zA-Z0-9_]* */
bool lbl_valid_metric_name(const char *s, size_t n); /* [a-zA-Z_:][a-zA-Z0-9_:]* */
bool lbl_valid_utf8(const char *s, size_t n);

/* Writes `{a="b", c="d"}` (Prometheus's String()) into buf; returns the
 * length it needed (like snprintf). */
size_t lbl_format(const lbl_set *ls, char *buf, size_t len);

/* A set under construction, borrowing its strings (from a base set or the
 * caller) until lbl_b_finish copies them. */
typedef struct lbl_builder {
	lbl_pair p[LBL_PAIRS_MAX + 1];
	size_t n;
	bool overflow;
} lbl_builder;

void lbl_b_init(lbl_builder *b, const lbl_set *base); /* base may be NULL */
/* An empty value deletes. */
void lbl_b_set(lbl_builder *b, const char *name, const char *value);
void lbl_b_del(lbl_builder *b, const char *name);
/* Keeps only the names given. */
void lbl_b_keep(lbl_builder *b, const char *const *names, size_t n);
/* Deletes the names given. */
void lbl_b_del_all(lbl_builder *b, const char *const *names, size_t n);
/* A new set (reference count 1), or NULL when out of memory or over
 * LBL_PAIRS_MAX. */
lbl_set *lbl_b_finish(const lbl_builder *b);

#endif
