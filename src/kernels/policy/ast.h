/* The parsed form of a Cedar policy set. The parser desugars as Cedar's
 * own front end does (`!=` is !(==), `a > b` is !(a <= b), `x is T in e`
 * is (x is T) && (x in e), `has a.b` a chain of `has`, `unless` a `!`),
 * so the evaluator has one meaning per node and the same error behaviour
 * as the reference. Literal sets, records and extension calls on literals
 * are folded to values at parse time. All of it lives in the policy set's
 * arena. */
#ifndef GRACE_POLICY_AST_H
#define GRACE_POLICY_AST_H

#include "kernels/layer.h"

#include "kernels/policy/ext.h"
#include "kernels/policy/value.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum cedar_op {
	OP_LIT,     /* lit */
	OP_VAR,     /* var */
	OP_IF,      /* a ? b : c */
	OP_AND,     /* a && b */
	OP_OR,      /* a || b */
	OP_NOT,     /* !a */
	OP_NEG,     /* -a */
	OP_EQ,      /* a == b */
	OP_LT,      /* a < b */
	OP_LE,      /* a <= b */
	OP_ADD,
	OP_SUB,
	OP_MUL,
	OP_IN,           /* a in b */
	OP_CONTAINS,     /* a.contains(b) */
	OP_CONTAINS_ALL, /* a.containsAll(b) */
	OP_CONTAINS_ANY, /* a.containsAny(b) */
	OP_IS_EMPTY,     /* a.isEmpty() */
	OP_GET_TAG,      /* a.getTag(b) */
	OP_HAS_TAG,      /* a.hasTag(b) */
	OP_GET_ATTR,     /* a.attr */
	OP_HAS_ATTR,     /* a has attr */
	OP_LIKE,         /* a like pattern */
	OP_IS,           /* a is type */
	OP_SET,          /* [items] */
	OP_RECORD,       /* {keys: items} */
	OP_CALL,         /* fn(items) */
} cedar_op;

typedef enum cedar_var { VAR_PRINCIPAL, VAR_ACTION, VAR_RESOURCE, VAR_CONTEXT } cedar_var;

/* A `like` pattern: literal runs separated by wildcards. */
typedef struct cedar_pattern {
	uint32_t n;        /* elements */
	struct {
		bool star;     /* a `*`; else the literal text */
		const char *s;
		uint32_t len;
	} *el;
} cedar_pattern;

typedef struct cedar_expr cedar_expr;
struct cedar_expr {
	uint8_t op;
	uint8_t var;
	uint32_t n;      /* items (set, record, call arguments) or the attribute/type length */
	uint32_t offset; /* in the policy text, for messages */
	uint32_t depth;  /* of the tree below, this node included */
	cedar_expr *a, *b, *c;
	union {
		cedar_value lit;
		const char *str;            /* attribute name (GET/HAS_ATTR) or type name (IS) */
		const cedar_pattern *pat;   /* LIKE */
		cedar_expr **items;         /* SET, RECORD, CALL */
	};
	const char **keys;              /* RECORD: key i ... */
	uint32_t *key_lens;             /* ... of this length */
	const cedar_ext_def *fn;        /* CALL */
};

typedef enum cedar_scope_op {
	SCOPE_ANY,
	SCOPE_EQ,    /* == uid */
	SCOPE_IN,    /* in uid; for the action: in [uids] */
	SCOPE_IS,    /* is type */
	SCOPE_IS_IN, /* is type in uid */
} cedar_scope_op;

typedef struct cedar_scope {
	uint8_t op;
	const char *type; /* IS, IS_IN */
	uint32_t type_len;
	const cedar_uid *uid;    /* EQ, IN, IS_IN (principal, resource, action ==) */
	const cedar_uid **uids;  /* the action's `in`: a list */
	uint32_t n_uids;
} cedar_scope;

typedef struct cedar_annotation {
	const char *key, *value; /* value "" when none was given */
	uint32_t key_len, value_len;
} cedar_annotation;

typedef struct cedar_policy {
	const char *id; /* @id("...") or "policyN" */
	uint32_t index; /* position in the set */
	bool forbid;
	cedar_scope principal, action, resource;
	cedar_expr *cond; /* the when/unless conditions, conjoined; NULL: true */
	cedar_annotation *annotations;
	uint32_t n_annotations;
	uint32_t line, column; /* where it starts */
	uint32_t start, end;   /* its text: bytes [start, end) of the set's source */
} cedar_policy;

#endif
