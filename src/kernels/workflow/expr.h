/* Runtime expressions of the Serverless Workflow DSL in jq (sdk/jq.h).
 *
 * A string "${ EXPR }" in a task's arguments is an expression; a field
 * that is an expression by definition (if, when, while, for.in,
 * input.from, output.as, export.as) may also be written bare. Arguments
 * reach jq as variables ($context, $input, $workflow, $task, $runtime,
 * $secrets and the names a for loop or a catch declares), so the program
 * compiled for an expression depends on the names in scope: it is the
 * expression behind a prefix that binds them. The validator and the
 * interpreter build that prefix from the same sorted set of names, so a
 * program compiled when the definition is stored is the one found when
 * the run evaluates it. */
#ifndef GRACE_WORKFLOW_EXPR_H
#define GRACE_WORKFLOW_EXPR_H

#include "kernels/layer.h"

#include "sdk/err.h"
#include "sdk/jq.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define WFX_NAME_MAX 64 /* a variable's name */

/* True when s is "${ ... }": *expr and *len get the inside. */
bool wfx_is_expr(const char *s, const char **expr, size_t *len);
/* A field that is an expression by definition: "${ ... }" or bare. */
void wfx_field_expr(const char *s, const char **expr, size_t *len);
/* A jq identifier (a variable a definition declares). */
bool wfx_good_name(const char *s);

/* snprintf for JSON paths and positions: one too long is cut (they
 * are bounded by WF_DEPTH_MAX nestings of names of WF_NAME_MAX bytes,
 * which fit the callers' buffers). */
void wfx_path(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The program text (malloc'd) for expr in the scope of vars' keys. */
char *wfx_program(const char *expr, size_t len, const json_t *vars);

/* Appends [program, path] to `out` for every expression in `tmpl` (a
 * task's arguments: strings "${...}" anywhere inside); path is the JSON
 * path of tmpl. */
void wfx_collect(const json_t *tmpl, const char *path, const json_t *vars, json_t *out);
/* The same for one field that is an expression by definition. */
void wfx_collect_field(const char *s, const char *path, const json_t *vars, json_t *out);

/* Evaluation: programs come from `cache` (compiled beforehand). */
typedef struct wfx_env {
	sdk_jq_cache *cache;
} wfx_env;

/* tmpl with each "${...}" string replaced by its value over input (a new
 * reference in *out). SDK_EINVAL with jq's message. */
int wfx_eval_value(wfx_env *e, const json_t *tmpl, json_t *input, json_t *vars, json_t **out,
		   sdk_err *err);
/* One field that is an expression by definition (a string), or any other
 * value evaluated as arguments. `empty` gives null. */
int wfx_eval_field(wfx_env *e, const json_t *field, json_t *input, json_t *vars, json_t **out,
		   sdk_err *err);

#endif
