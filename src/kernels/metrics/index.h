/* The inverted index of labels: for every label name=value pair, the
 * sorted ids of the series that carry it (a posting list), and for every
 * name its values. Selection by matchers works as in Prometheus
 * (tsdb/querier.go): matchers that cannot match an empty value intersect
 * their postings; those that can ({a!="x"}, {a=~".*"}) subtract the series
 * whose value they reject, so a series without the label is kept. Not
 * thread-safe: the store locks around it. */
#ifndef GRACE_METRICS_INDEX_H
#define GRACE_METRICS_INDEX_H

#include "kernels/layer.h"

#include "kernels/metrics/labels.h"
#include "kernels/metrics/rx.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum idx_match { IDX_EQ, IDX_NEQ, IDX_RE, IDX_NRE };

typedef struct idx_matcher {
	enum idx_match type;
	const char *name;
	const char *value;
	rx *re; /* IDX_RE, IDX_NRE: the compiled value */
} idx_matcher;

/* Whether a label's value ("" when the label is absent) passes. */
bool idx_matcher_matches(const idx_matcher *m, const char *value);

typedef struct idx idx;

idx *idx_new(void);
void idx_free(idx *x);
/* Adds a series; ids must come in ascending order. 0 or -1 (memory). */
int idx_add(idx *x, uint32_t id, const lbl_set *ls);
void idx_remove(idx *x, uint32_t id, const lbl_set *ls);
size_t idx_series(const idx *x);

/* The sorted ids of the series every matcher passes (malloc'd, the
 * caller frees; NULL with *n = 0 when none). -1 when out of memory. */
int idx_select(const idx *x, const idx_matcher *m, size_t nm, uint32_t **ids, size_t *n);

/* Sorted, borrowed strings (valid until the index next changes); the
 * array is malloc'd. */
int idx_names(const idx *x, const char ***names, size_t *n);
int idx_values(const idx *x, const char *name, const char ***values, size_t *n);

#endif
