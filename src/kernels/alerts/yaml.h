/* YAML documents (rule files, the notifier's configuration) read through
 * libyaml into jansson values: mappings become objects, sequences arrays,
 * and every scalar a string (the reader of each field decides what it
 * means: a duration, a number, a boolean), so "5m", "true" and "0.5" are
 * read the way Prometheus's and Alertmanager's loaders read them. Anchors
 * and aliases are resolved; bounds keep a hostile document small. */
#ifndef GRACE_ALERTS_YAML_H
#define GRACE_ALERTS_YAML_H

#include "kernels/layer.h"

#include "sdk/err.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AY_BYTES_MAX (4u << 20)
#define AY_DEPTH_MAX 64
#define AY_NODES_MAX 200000

/* The first document of text (an empty one is an empty object), or NULL
 * with "line L, column C: why" in err (SDK_EINVAL). */
json_t *ay_parse(const char *text, size_t len, sdk_err *err);

/* Scalars as fields mean them; each returns false when s is not one. */
bool ay_bool(const char *s, bool *out);
/* Prometheus's durations ("5m", "1h30m", "0s"); false when bad. */
bool ay_duration(const char *s, int64_t *ms);

#endif
