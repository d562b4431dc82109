#include "kernels/alerts/yaml.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

struct frame {
	json_t *node;
	char *key; /* a mapping's pending key */
};

struct anchor {
	char *name;
	json_t *node;
};

static void anchors_free(struct anchor *a, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(a[i].name);
		json_decref(a[i].node);
	}
	free(a);
}

/* Puts v (a new reference, stolen) where the top frame wants it. */
static int attach(struct frame *st, size_t depth, json_t *v, json_t **root)
{
	if (depth == 0) {
		if (!*root)
			*root = v;
		else
			json_decref(v);
		return 0;
	}
	struct frame *f = &st[depth - 1];
	if (json_is_array(f->node))
		return json_array_append_new(f->node, v);
	/* A mapping: keys are scalars, kept as strings. */
	if (!f->key) {
		const char *k = json_string_value(v);
		if (!k) {
			json_decref(v);
			return -1;
		}
		f->key = strdup(k);
		json_decref(v);
		return f->key ? 0 : -1;
	}
	int rc = json_object_set_new(f->node, f->key, v);
	free(f->key);
	f->key = NULL;
	return rc;
}

json_t *ay_parse(const char *text, size_t len, sdk_err *err)
{
	if (len > AY_BYTES_MAX) {
		sdk_fail(err, SDK_EINVAL, "longer than %u bytes", AY_BYTES_MAX);
		return NULL;
	}
	yaml_parser_t p;
	if (!yaml_parser_initialize(&p)) {
		sdk_fail(err, SDK_EIO, "out of memory");
		return NULL;
	}
	yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
	struct frame st[AY_DEPTH_MAX];
	size_t depth = 0, nodes = 0, n_anchors = 0;
	struct anchor *anchors = NULL;
	json_t *root = NULL;
	bool done = false, failed = false;
	while (!done && !failed) {
		yaml_event_t ev;
		if (!yaml_parser_parse(&p, &ev)) {
			sdk_fail(err, SDK_EINVAL, "line %zu, column %zu: %s",
				 p.problem_mark.line + 1, p.problem_mark.column + 1,
				 p.problem ? p.problem : "syntax error");
			failed = true;
			break;
		}
		size_t line = ev.start_mark.line + 1;
		json_t *v = NULL;
		const char *anchor = NULL;
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
		case YAML_DOCUMENT_END_EVENT:
			done = ev.type == YAML_STREAM_END_EVENT || root;
			break;
		case YAML_MAPPING_START_EVENT:
		case YAML_SEQUENCE_START_EVENT:
			if (depth == AY_DEPTH_MAX || ++nodes > AY_NODES_MAX) {
				sdk_fail(err, SDK_EINVAL, "line %zu: nested too deeply or too large", line);
				failed = true;
				break;
			}
			anchor = ev.type == YAML_MAPPING_START_EVENT
					 ? (const char *)ev.data.mapping_start.anchor
					 : (const char *)ev.data.sequence_start.anchor;
			v = ev.type == YAML_MAPPING_START_EVENT ? json_object() : json_array();
			if (anchor) {
				struct anchor *na = realloc(anchors, (n_anchors + 1) * sizeof *na);
				if (na) {
					anchors = na;
					anchors[n_anchors].name = strdup(anchor);
					anchors[n_anchors++].node = json_incref(v);
				}
			}
			/* Attached now (the container is filled in place). */
			if (attach(st, depth, json_incref(v), &root) < 0) {
				json_decref(v);
				sdk_fail(err, SDK_EINVAL, "line %zu: a mapping key must be a scalar", line);
				failed = true;
				break;
			}
			st[depth++] = (struct frame){ v, NULL };
			break;
		case YAML_MAPPING_END_EVENT:
		case YAML_SEQUENCE_END_EVENT:
			depth--;
			free(st[depth].key);
			json_decref(st[depth].node);
			break;
		case YAML_SCALAR_EVENT:
			if (++nodes > AY_NODES_MAX) {
				sdk_fail(err, SDK_EINVAL, "line %zu: too large", line);
				failed = true;
				break;
			}
			v = json_stringn((const char *)ev.data.scalar.value, ev.data.scalar.length);
			if (!v) {
				sdk_fail(err, SDK_EINVAL, "line %zu: a string that is not UTF-8", line);
				failed = true;
				break;
			}
			if (ev.data.scalar.anchor) {
				struct anchor *na = realloc(anchors, (n_anchors + 1) * sizeof *na);
				if (na) {
					anchors = na;
					anchors[n_anchors].name = strdup((const char *)ev.data.scalar.anchor);
					anchors[n_anchors++].node = json_incref(v);
				}
			}
			/* A null scalar in a mapping is "no value": kept as "". */
			if (attach(st, depth, v, &root) < 0) {
				sdk_fail(err, SDK_EINVAL, "line %zu: a mapping key must be a scalar", line);
				failed = true;
			}
			break;
		case YAML_ALIAS_EVENT: {
			json_t *target = NULL;
			for (size_t i = n_anchors; i-- > 0;)
				if (anchors[i].name && !strcmp(anchors[i].name, (const char *)ev.data.alias.anchor)) {
					target = anchors[i].node;
					break;
				}
			if (!target) {
				sdk_fail(err, SDK_EINVAL, "line %zu: unknown alias", line);
				failed = true;
				break;
			}
			if (attach(st, depth, json_deep_copy(target), &root) < 0) {
				sdk_fail(err, SDK_EINVAL, "line %zu: a mapping key must be a scalar", line);
				failed = true;
			}
			break;
		}
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	while (depth > 0) {
		depth--;
		free(st[depth].key);
		json_decref(st[depth].node);
	}
	yaml_parser_delete(&p);
	anchors_free(anchors, n_anchors);
	if (failed) {
		json_decref(root);
		return NULL;
	}
	if (!root || (json_is_string(root) && !json_string_length(root))) {
		json_decref(root);
		root = json_object();
	}
	return root;
}

bool ay_bool(const char *s, bool *out)
{
	if (!s)
		return false;
	if (!strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcasecmp(s, "on")) {
		*out = true;
		return true;
	}
	if (!strcasecmp(s, "false") || !strcasecmp(s, "no") || !strcasecmp(s, "off")) {
		*out = false;
		return true;
	}
	return false;
}

bool ay_duration(const char *s, int64_t *ms)
{
	/* model.ParseDuration: units in this order, each at most once. */
	static const struct {
		const char *unit;
		int64_t ms;
	} units[] = { { "y", 365LL * 86400000 }, { "w", 7LL * 86400000 }, { "d", 86400000 },
		      { "h", 3600000 },		 { "m", 60000 },		  { "s", 1000 },
		      { "ms", 1 } };
	if (!s || !*s)
		return false;
	if (!strcmp(s, "0")) {
		*ms = 0;
		return true;
	}
	int64_t total = 0;
	size_t next = 0;
	const char *p = s;
	while (*p) {
		if (*p < '0' || *p > '9')
			return false;
		int64_t v = 0;
		while (*p >= '0' && *p <= '9') {
			if (v > INT64_MAX / 10)
				return false;
			v = v * 10 + (*p++ - '0');
		}
		size_t ul = (p[0] == 'm' && p[1] == 's') ? 2 : 1;
		size_t u;
		for (u = next; u < sizeof units / sizeof units[0]; u++)
			if (strlen(units[u].unit) == ul && !strncmp(units[u].unit, p, ul))
				break;
		if (u == sizeof units / sizeof units[0] || v > INT64_MAX / units[u].ms)
			return false;
		total += v * units[u].ms;
		next = u + 1;
		p += ul;
	}
	*ms = total;
	return true;
}
