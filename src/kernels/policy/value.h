/* Cedar values: booleans, longs, strings, entity uids, sets, records and the
 * extension types (decimal, ipaddr, datetime, duration). A value is 16
 * bytes passed by value; what it points to lives in an arena. Sets are kept
 * sorted and without duplicates and records sorted by key, under one total
 * order, so equality is a walk, `contains` a binary search and an attribute
 * lookup a binary search too. */
#ifndef GRACE_POLICY_VALUE_H
#define GRACE_POLICY_VALUE_H

#include "kernels/layer.h"

#include "kernels/policy/arena.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef enum cedar_kind {
	CEDAR_BOOL,
	CEDAR_LONG,
	CEDAR_STRING,
	CEDAR_ENTITY,
	CEDAR_SET,
	CEDAR_RECORD,
	CEDAR_DECIMAL,  /* i: the value times 10^4 */
	CEDAR_IP,       /* ip */
	CEDAR_DATETIME, /* i: milliseconds since the epoch, UTC */
	CEDAR_DURATION, /* i: milliseconds */
	CEDAR_KINDS
} cedar_kind;

/* An entity uid: a type name ("NS::User") and an id (any bytes). Both are
 * NUL-terminated for convenience but may hold NULs; the lengths rule. */
typedef struct cedar_uid {
	const char *type;
	const char *id;
	uint32_t type_len, id_len;
	uint64_t hash;
} cedar_uid;

typedef struct cedar_ipaddr {
	uint8_t v6;     /* 0: IPv4 in addr[0..3]; 1: IPv6 in addr[0..15] */
	uint8_t prefix; /* 0..32 or 0..128 */
	uint8_t addr[16];
} cedar_ipaddr;

typedef struct cedar_attr cedar_attr;
typedef struct cedar_value cedar_value;

struct cedar_value {
	uint8_t kind;
	uint32_t n; /* string bytes, set items or record attributes */
	union {
		bool b;
		int64_t i;
		const char *s;
		const cedar_uid *uid;
		const cedar_value *items;
		const cedar_attr *attrs;
		const cedar_ipaddr *ip;
	};
};

struct cedar_attr {
	const char *key;
	uint32_t key_len;
	cedar_value val;
};

static inline cedar_value cedar_bool(bool b)
{
	return (cedar_value){ .kind = CEDAR_BOOL, .b = b };
}

static inline cedar_value cedar_long(int64_t i)
{
	return (cedar_value){ .kind = CEDAR_LONG, .i = i };
}

static inline cedar_value cedar_string(const char *s, uint32_t n)
{
	return (cedar_value){ .kind = CEDAR_STRING, .n = n, .s = s };
}

static inline cedar_value cedar_uid_value(const cedar_uid *uid)
{
	return (cedar_value){ .kind = CEDAR_ENTITY, .uid = uid };
}

uint64_t cedar_uid_hash(const char *type, uint32_t tlen, const char *id, uint32_t ilen);
/* A uid with its own copies of type and id; NULL when out of memory. */
cedar_uid *cedar_uid_new(cedar_arena *a, const char *type, uint32_t tlen, const char *id,
			 uint32_t ilen);

static inline bool cedar_uid_eq(const cedar_uid *a, const cedar_uid *b)
{
	return a == b || (a->hash == b->hash && a->type_len == b->type_len &&
			  a->id_len == b->id_len && !memcmp(a->type, b->type, a->type_len) &&
			  !memcmp(a->id, b->id, a->id_len));
}

static inline bool cedar_bytes_eq(const char *a, uint32_t an, const char *b, uint32_t bn)
{
	return an == bn && (an == 0 || !memcmp(a, b, an));
}

/* Byte-wise order (shorter first on a common prefix), as Rust orders strings. */
int cedar_bytes_cmp(const char *a, uint32_t an, const char *b, uint32_t bn);
int cedar_uid_cmp(const cedar_uid *a, const cedar_uid *b);

/* The total order of values: kind first, then within the kind. */
int cedar_value_cmp(const cedar_value *a, const cedar_value *b);
bool cedar_value_eq(const cedar_value *a, const cedar_value *b);

/* Makes a set of `items` (which the set takes: they are sorted in place and
 * deduplicated). Never fails. */
cedar_value cedar_set_of(cedar_value *items, uint32_t n);
bool cedar_set_contains(const cedar_value *set, const cedar_value *v);
/* Makes a record of `attrs` (taken and sorted in place). Returns 0, or -1
 * with *dup naming a key given twice. */
int cedar_record_of(cedar_attr *attrs, uint32_t n, cedar_value *out, const cedar_attr **dup);
/* The attribute, or NULL. */
const cedar_value *cedar_record_get(const cedar_value *rec, const char *key, uint32_t len);

/* Makes a message valid UTF-8 in place: a byte that starts no complete
 * character (a cut in the middle of one, or bad input quoted back)
 * becomes '?'. Messages quote input and are cut to fit their buffers. */
void cedar_utf8_sanitize(char *msg);

/* The type name a message uses for a kind ("long", "decimal", ...). */
const char *cedar_kind_name(int kind);
/* Writes v in Cedar syntax into buf (truncated with "..." past cap). */
void cedar_value_format(const cedar_value *v, char *buf, size_t cap);

#endif
