/* Expressions in jq (libjq from Debian) for the kernels that let users
 * write them: the workflow kernel's runtime expressions, the state
 * machine's guards and assignments.
 *
 * libjq 1.6 compiles slowly (about 20 ms per program, its builtins are
 * parsed each time) and runs fast (microseconds), so programs are compiled
 * once, off the loop (sdk_jq_compile may run on any thread), and shared
 * through a cache owned by the loop (sdk_jq_cache): a definition holds a
 * reference to each of its programs. A program is used by one thread at
 * a time.
 *
 * Every program runs with `env` and `$ENV` empty, so an expression cannot
 * read the kernel's environment, and cannot include modules from disk (a
 * module directive is a syntax error after the prefix that does this).
 * jq 1.6 has no step limit: an expression that loops for ever holds its
 * thread (docs/state_machine.md says so). */
#ifndef GRACE_SDK_JQ_H
#define GRACE_SDK_JQ_H

#include "sdk/err.h"

#include <jansson.h>
#include <stddef.h>

#define SDK_JQ_TEXT_MAX 16384      /* bytes of one expression */
#define SDK_JQ_DEPTH_MAX 256       /* nesting of a value crossing to or from jq */
#define SDK_JQ_NODES_MAX 1000000   /* values in one result */

typedef struct sdk_jq_prog sdk_jq_prog;
typedef struct sdk_jq_cache sdk_jq_cache;

/* Compiles `text` (any thread). NULL with jq's first message in err. The
 * program starts with no reference: sdk_jq_cache_adopt takes it, or
 * sdk_jq_prog_free frees it. */
sdk_jq_prog *sdk_jq_compile(const char *text, sdk_err *err);
void sdk_jq_prog_free(sdk_jq_prog *p);
const char *sdk_jq_prog_text(const sdk_jq_prog *p);

/* Runs `p` on `input` (borrowed). 1 with the first output in *out (a new
 * reference), 0 when the program gives no output (`empty`), or SDK_EINVAL
 * with jq's error (a runtime error, halt, a result too deep or too large,
 * a number JSON cannot hold) in err. */
int sdk_jq_eval(sdk_jq_prog *p, json_t *input, json_t **out, sdk_err *err);

/* jq's truthiness: everything but false and null. */
int sdk_jq_truthy(const json_t *v);

/* The cache (one thread): programs by text, each with a count of
 * references; up to `keep_unused` programs nobody holds are kept, the
 * least recently released going first. */
sdk_jq_cache *sdk_jq_cache_new(size_t keep_unused);
/* Frees every program; references still held become dangling. */
void sdk_jq_cache_free(sdk_jq_cache *c);
/* The cached program for `text` with a new reference, or NULL. */
sdk_jq_prog *sdk_jq_cache_get(sdk_jq_cache *c, const char *text);
/* Takes `p` (compiled elsewhere) and returns the cached program for its
 * text with a new reference: `p` itself, or the one cached meanwhile (then
 * `p` is freed). NULL only when out of memory (then `p` is freed). */
sdk_jq_prog *sdk_jq_cache_adopt(sdk_jq_cache *c, sdk_jq_prog *p);
/* Drops a reference taken by get or adopt (p may be NULL). */
void sdk_jq_cache_release(sdk_jq_cache *c, sdk_jq_prog *p);
/* Programs in the cache, held or not. */
size_t sdk_jq_cache_size(const sdk_jq_cache *c);

#endif
