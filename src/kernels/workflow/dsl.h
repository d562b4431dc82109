/* Definitions in the CNCF Serverless Workflow DSL 1.0 (JSON, or YAML read
 * into JSON): the validator every definition passes before it is stored,
 * and the shapes the interpreter relies on (docs/workflow.md lists the
 * tasks and fields implemented). */
#ifndef GRACE_WORKFLOW_DSL_H
#define GRACE_WORKFLOW_DSL_H

#include "kernels/layer.h"

#include "sdk/err.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WF_NAME_MAX 64    /* document.name, a task's name, document.version */
#define WF_DEPTH_MAX 32   /* tasks nested in tasks */

/* The task types, in the order of the DSL's reference. */
typedef enum wf_kind {
	WF_DO, WF_SET, WF_SWITCH, WF_FOR, WF_FORK, WF_TRY, WF_WAIT, WF_RAISE, WF_CALL, WF_RUN,
	WF_EMIT, WF_LISTEN, WF_KIND_N
} wf_kind;

/* The type of a task body, or -1. */
int wf_kind_of(const json_t *task);
const char *wf_kind_name(int kind);

/* The variables every expression sees (null values: only the names count
 * for the program's text). A new object. */
json_t *wf_base_vars(void);

/* Validates `doc`; on success *programs gets [[program, path], ...] (every
 * expression's jq program, for compiling) and *tasks the count of tasks.
 * SDK_EINVAL with "PATH: why" in err. */
int wf_validate(const json_t *doc, unsigned tasks_max, json_t **programs, unsigned *tasks,
		sdk_err *err);

/* A duration: an ISO 8601 string ("PT1M30S", "P1D") or an object of days,
 * hours, minutes, seconds, milliseconds. -1 when bad. */
int64_t wf_duration_ms(const json_t *d);

/* The JSON pointer's target in doc (borrowed), or NULL. */
json_t *wf_ref(const json_t *doc, const char *pointer);

/* YAML text to JSON (core schema: null, booleans, integers and floats in
 * plain scalars; everything else a string). NULL with "line L: why". */
json_t *wf_yaml_parse(const char *text, size_t len, sdk_err *err);

#endif
