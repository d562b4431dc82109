/* The Cedar policy language in C: the engine behind the policy kernel.
 *
 *   cedar_parse()          policy text -> a policy set (line:column errors)
 *   cedar_entities_*()     Cedar's entity JSON -> an entity set (entities.h)
 *   cedar_authorize()      policy set x request x entities -> decision,
 *                          determining policies and errors (authorize.h)
 *
 * Semantics are Cedar's (4.x): default deny, a satisfied forbid overrides
 * every permit, a policy whose condition errors is skipped and reported.
 * The engine depends on nothing but jansson (for the JSON formats); its
 * files can be built into tests on their own. */
#ifndef GRACE_POLICY_CEDAR_H
#define GRACE_POLICY_CEDAR_H

#include "kernels/layer.h"

#include "kernels/policy/arena.h"
#include "kernels/policy/ast.h"

#include <stddef.h>
#include <stdint.h>

/* Bounds on what one policy set may hold: past them the text is refused
 * with a parse error, never partly used. */
#define CEDAR_TEXT_MAX (1u << 20)   /* bytes of policy text */
#define CEDAR_POLICIES_MAX 10000    /* policies in one set */
#define CEDAR_NEST_MAX 64           /* nested parentheses, brackets, braces */
#define CEDAR_DEPTH_MAX 1000        /* depth of one condition's tree */
#define CEDAR_SET_MAX 10000         /* items of a set, attributes of a record */

typedef struct cedar_policy_set {
	cedar_arena arena; /* owns everything below */
	const char *text;  /* a copy of the source */
	uint32_t text_len;
	cedar_policy *policies;
	uint32_t n;
} cedar_policy_set;

typedef struct cedar_parse_error {
	uint32_t line, column; /* 1-based; column in characters */
	uint32_t offset;       /* in bytes */
	char msg[256];
} cedar_parse_error;

/* Parses a whole policy set. Policies are named by their @id annotation,
 * else "policyN" by position (from 0), as Cedar names them; two with the
 * same name are an error. Returns 0 with *out (free it with
 * cedar_policy_set_free), or -1 with err filled and nothing allocated. */
int cedar_parse(const char *text, size_t len, cedar_policy_set **out, cedar_parse_error *err);
void cedar_policy_set_free(cedar_policy_set *ps);

/* Decodes the escapes of a string literal's body (Rust's rules, which
 * Cedar uses). Returns the length, or -1 when an escape is bad; out must
 * hold `len` bytes (decoding never grows). */
int cedar_unescape(const char *raw, uint32_t len, char *out);

#endif
