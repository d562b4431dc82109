/* The policy kernel's state in its SQLite file, and its parsed form in
 * memory: named policy sets with every version kept (a deletion is a
 * version too), and one entity store with a version number that moves on
 * every change. A change is parsed and checked in full before anything is
 * written, written in one transaction, and only then swapped into memory:
 * a refused change leaves both the file and the memory as they were.
 *
 * Writes run on the event loop: each is bounded by the request body limit
 * (1 MiB: at most some thousands of rows), and rebuilding the entity
 * store's closure is linear in its size (CEDAR_ENTITIES_MAX at most). */
#ifndef GRACE_POLICY_STORE_H
#define GRACE_POLICY_STORE_H

#include "kernels/layer.h"

#include "kernels/policy/cedar.h"
#include "kernels/policy/entities.h"
#include "sdk/err.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#define POL_NAME_MAX 64   /* policy set names: [A-Za-z0-9_.-]{1,64} */
#define POL_SETS_MAX 1000 /* policy sets in one store */
/* Audit events of changes waiting for the audit kernel: past this many the
 * oldest go (the versions table still holds every change). */
#define POL_EVENTS_MAX 100000
#define POL_ACTOR_MAX 96

/* Statuses of this module (sdk/err.h's convention). */
enum { POL_ESYNTAX = SDK_E_MODULE }; /* the policy text does not parse: see the parse error */

typedef struct pol_set {
	char name[POL_NAME_MAX + 1];
	int64_t version;     /* of the newest version, deleted or not */
	int64_t updated_ms;
	cedar_policy_set *ps; /* NULL when the newest version is a deletion or broken */
	char *broken;         /* set when a stored text no longer parses (owned) */
} pol_set;

typedef struct pol_store {
	sqlite3 *db;
	pol_set *sets; /* owned, sorted by name */
	size_t n, cap;
	cedar_arena *ent_arena; /* owns ents */
	cedar_entities *ents;
	int64_t ents_version, ents_updated_ms;
	/* Who the next change is by, for its audit event: the kernel sets it
	 * before each write (pol_store_actor). */
	char actor[POL_ACTOR_MAX + 1];
} pol_store;

/* Creates the schema and loads every set's newest version and the entities. */
int pol_store_open(sqlite3 *db, pol_store **out, sdk_err *err);
void pol_store_close(pol_store *s);

bool pol_name_valid(const char *name);
/* NULL when no set has ever had that name. */
const pol_set *pol_store_set(const pol_store *s, const char *name);

/* Writes a new version of `name` (creating it). expected_version -1 skips
 * the check; else it must be the set's current version (0: not created
 * yet), or SDK_ECONFLICT. POL_ESYNTAX with *perr when the text does not
 * parse; nothing is written then. *created says whether it is new. */
int pol_store_put(pol_store *s, const char *name, const char *text, size_t len,
		  int64_t expected_version, int64_t now_ms, const pol_set **out, bool *created,
		  cedar_parse_error *perr, sdk_err *err);
/* pol_store_put of a text that is Grace's own (the built-in default set),
 * remembering in the same transaction that this version is it: a later
 * Grace replaces that version with its own built-in text only while it is
 * still the newest (nobody changed the set since). */
int pol_store_put_builtin(pol_store *s, const char *name, const char *text, size_t len,
			  int64_t expected_version, int64_t now_ms, const pol_set **out,
			  bool *created, cedar_parse_error *perr, sdk_err *err);
/* The version of `name` last written by pol_store_put_builtin; 0 when none
 * (or the store is older than the mark). */
int pol_store_builtin_version(pol_store *s, const char *name, int64_t *out, sdk_err *err);
/* Writes a deletion as the set's next version (SDK_ENOTFOUND when there is
 * no live set by that name). */
int pol_store_delete(pol_store *s, const char *name, int64_t expected_version, int64_t now_ms,
		     const pol_set **out, sdk_err *err);
/* [{"version", "created_ms", "deleted", "policies"}...], newest first. */
int pol_store_versions(pol_store *s, const char *name, json_t **out, sdk_err *err);
/* {"version", "created_ms", "deleted", "text"} of one version. */
int pol_store_version(pol_store *s, const char *name, int64_t version, json_t **out,
		      sdk_err *err);

/* Names who the following changes are by ("" or NULL: "policy"). Every
 * change writes, in its own transaction, an audit event (action
 * policy.set.put, policy.set.delete, policy.entities.put or
 * policy.entities.delete) to an outbox in the same file, which the kernel
 * delivers to the audit kernel (audit_out.c): so a change made offline
 * (`grace policy reset`) is recorded at the next start. */
void pol_store_actor(pol_store *s, const char *actor);
/* Up to `max` waiting events, oldest first, as a JSON array of audit
 * events; *last is the sequence number of the last one (0: none). */
int pol_store_events(pol_store *s, size_t max, json_t **out, int64_t *last, sdk_err *err);
/* The events up to `last` were delivered: they go. */
int pol_store_events_done(pol_store *s, int64_t last, sdk_err *err);

/* Entities: replace all (`replace`) or add and replace the given ones;
 * delete one. expected_version as above, against ents_version. */
int pol_store_put_entities(pol_store *s, json_t *arr, bool replace, int64_t expected_version,
			   int64_t now_ms, sdk_err *err);
int pol_store_delete_entity(pol_store *s, const char *type, const char *id, size_t id_len,
			    int64_t expected_version, int64_t now_ms, sdk_err *err);

#endif
