#include "kernels/policy/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* The entity store may hold CEDAR_ENTITIES_MAX entities; its arena is
 * bounded so that a pathological set fails cleanly instead of swapping. */
#define ENT_ARENA_BUDGET (1u << 30)

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS policy_versions ("
	"  name TEXT NOT NULL, version INTEGER NOT NULL,"
	"  text TEXT,"                        /* NULL: deleted at this version */
	"  policies INTEGER NOT NULL DEFAULT 0,"
	"  created_ms INTEGER NOT NULL,"
	"  PRIMARY KEY (name, version)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS entities ("
	"  type TEXT NOT NULL, id BLOB NOT NULL, json TEXT NOT NULL,"
	"  PRIMARY KEY (type, id)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
	/* Audit events of changes, written with them, until delivered. */
	"CREATE TABLE IF NOT EXISTS audit_outbox ("
	"  seq INTEGER PRIMARY KEY AUTOINCREMENT, event TEXT NOT NULL);";

static int db_fail(sqlite3 *db, int rc, sdk_err *err, const char *what)
{
	return sdk_fail(err, sdk_status_of_sqlite(rc), "%s: %s", what, sqlite3_errmsg(db));
}

static int exec(sqlite3 *db, const char *sql, sdk_err *err)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		int st = sdk_fail(err, sdk_status_of_sqlite(rc), "%s", msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return st;
	}
	return 0;
}

bool pol_name_valid(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > POL_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.'))
			return false;
	}
	return true;
}

static int set_cmp(const void *a, const void *b)
{
	return strcmp(((const pol_set *)a)->name, ((const pol_set *)b)->name);
}

const pol_set *pol_store_set(const pol_store *s, const char *name)
{
	pol_set key;
	if (strlen(name) > POL_NAME_MAX)
		return NULL;
	snprintf(key.name, sizeof key.name, "%s", name);
	return s->n ? bsearch(&key, s->sets, s->n, sizeof *s->sets, set_cmp) : NULL;
}

/* The set's slot, added (empty, sorted in) when missing. */
static pol_set *set_slot(pol_store *s, const char *name, sdk_err *err)
{
	pol_set *found = (pol_set *)pol_store_set(s, name);
	if (found)
		return found;
	if (s->n == POL_SETS_MAX) {
		sdk_fail(err, SDK_EQUOTA, "a store holds at most %d policy sets", POL_SETS_MAX);
		return NULL;
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		pol_set *more = realloc(s->sets, sizeof *more * cap);
		if (!more) {
			sdk_fail(err, SDK_EIO, "out of memory");
			return NULL;
		}
		s->sets = more;
		s->cap = cap;
	}
	pol_set *slot = &s->sets[s->n++];
	*slot = (pol_set){ 0 };
	snprintf(slot->name, sizeof slot->name, "%s", name);
	qsort(s->sets, s->n, sizeof *s->sets, set_cmp);
	return (pol_set *)pol_store_set(s, name);
}

static void set_install(pol_set *set, int64_t version, int64_t now_ms, cedar_policy_set *ps,
			char *broken)
{
	cedar_policy_set_free(set->ps);
	free(set->broken);
	set->ps = ps;
	set->broken = broken;
	set->version = version;
	set->updated_ms = now_ms;
}

static int load_sets(pol_store *s, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db,
				    "SELECT v.name, v.version, v.text, v.created_ms FROM policy_versions v"
				    " JOIN (SELECT name, MAX(version) AS version FROM policy_versions"
				    "       GROUP BY name) m ON m.name = v.name AND m.version = v.version",
				    -1, &st, NULL);
	if (rc != SQLITE_OK)
		return db_fail(s->db, rc, err, "reading the policy sets");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		pol_set *set = name && pol_name_valid(name) ? set_slot(s, name, err) : NULL;
		if (!set) {
			sqlite3_finalize(st);
			return name && pol_name_valid(name) ? SDK_EIO
				: sdk_fail(err, SDK_ECORRUPT, "a stored policy set has an invalid name");
		}
		cedar_policy_set *ps = NULL;
		char *broken = NULL;
		if (sqlite3_column_type(st, 2) != SQLITE_NULL) {
			cedar_parse_error perr;
			const char *text = (const char *)sqlite3_column_text(st, 2);
			size_t len = (size_t)sqlite3_column_bytes(st, 2);
			/* A text stored by an older engine that no longer parses is
			 * kept out of every decision (they fail) until replaced. */
			if (cedar_parse(text ? text : "", len, &ps, &perr) < 0) {
				char msg[400];
				snprintf(msg, sizeof msg, "version %lld no longer parses: %u:%u: %s",
					 (long long)sqlite3_column_int64(st, 1), perr.line, perr.column, perr.msg);
				broken = strdup(msg);
			}
		}
		set_install(set, sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 3), ps, broken);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : db_fail(s->db, rc, err, "reading the policy sets");
}

static int meta_get(sqlite3 *db, const char *key, int64_t *out, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = ?", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return db_fail(db, rc, err, "reading meta");
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	*out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_fail(db, rc, err, "reading meta");
}

static int meta_set(sqlite3 *db, const char *key, int64_t value, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", -1, &st,
				    NULL);
	if (rc != SQLITE_OK)
		return db_fail(db, rc, err, "writing meta");
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, value);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : db_fail(db, rc, err, "writing meta");
}

/* Builds a kept entity set (closure computed) from a JSON array, in a new
 * arena that *arena_out then owns. */
static int build_entities(json_t *arr, cedar_arena **arena_out, cedar_entities **out, sdk_err *err)
{
	cedar_arena *a = malloc(sizeof *a);
	if (!a)
		return sdk_fail(err, SDK_EIO, "out of memory");
	cedar_arena_init(a, ENT_ARENA_BUDGET);
	int rc = cedar_entities_parse(a, arr, true, true, out, err);
	if (rc < 0) {
		cedar_arena_free(a);
		free(a);
		return rc;
	}
	*arena_out = a;
	return 0;
}

static void drop_entities(cedar_arena *a, cedar_entities *es)
{
	if (es)
		cedar_entities_release(es);
	if (a) {
		cedar_arena_free(a);
		free(a);
	}
}

static int load_entities(pol_store *s, sdk_err *err)
{
	int st_rc = meta_get(s->db, "entities_version", &s->ents_version, err);
	if (st_rc < 0)
		return st_rc;
	if ((st_rc = meta_get(s->db, "entities_updated_ms", &s->ents_updated_ms, err)) < 0)
		return st_rc;
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db, "SELECT json FROM entities", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return db_fail(s->db, rc, err, "reading the entities");
	json_t *arr = json_array();
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *e = json_loadb((const char *)sqlite3_column_text(st, 0),
				       (size_t)sqlite3_column_bytes(st, 0), JSON_ALLOW_NUL, NULL);
		if (!e) {
			sqlite3_finalize(st);
			json_decref(arr);
			return sdk_fail(err, SDK_ECORRUPT, "a stored entity is not JSON");
		}
		json_array_append_new(arr, e);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		json_decref(arr);
		return db_fail(s->db, rc, err, "reading the entities");
	}
	int r = build_entities(arr, &s->ent_arena, &s->ents, err);
	json_decref(arr);
	if (r < 0)
		return sdk_fail(err, SDK_ECORRUPT, "the stored entities are not valid: %s", err ? err->msg : "");
	return 0;
}

int pol_store_open(sqlite3 *db, pol_store **out, sdk_err *err)
{
	int rc = exec(db, schema, err);
	if (rc < 0)
		return rc;
	pol_store *s = calloc(1, sizeof *s);
	if (!s)
		return sdk_fail(err, SDK_EIO, "out of memory");
	s->db = db;
	pol_store_actor(s, NULL);
	if ((rc = load_sets(s, err)) < 0 || (rc = load_entities(s, err)) < 0) {
		pol_store_close(s);
		return rc;
	}
	*out = s;
	return 0;
}

void pol_store_close(pol_store *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++) {
		cedar_policy_set_free(s->sets[i].ps);
		free(s->sets[i].broken);
	}
	free(s->sets);
	drop_entities(s->ent_arena, s->ents);
	free(s);
}

/* ---- audit events of changes */

void pol_store_actor(pol_store *s, const char *actor)
{
	snprintf(s->actor, sizeof s->actor, "%s", actor && *actor ? actor : "policy");
}

/* Writes the audit event of a change, inside the change's transaction.
 * Steals `details`. A uid lets the audit kernel store a resent event once. */
static int record_event(pol_store *s, const char *action, const char *resource, json_t *details,
			int64_t now_ms, sdk_err *err)
{
	unsigned char raw[8];
	if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
		memcpy(raw, &now_ms, sizeof raw);
	char uid[32];
	int n = snprintf(uid, sizeof uid, "policy-");
	for (size_t i = 0; i < sizeof raw; i++)
		n += snprintf(uid + n, sizeof uid - (size_t)n, "%02x", raw[i]);
	json_t *ev = json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:o}", "uid", uid, "ts_ms",
			       (json_int_t)now_ms, "actor", s->actor[0] ? s->actor : "policy",
			       "action", action, "resource", resource, "outcome", "ok", "details",
			       details ? details : json_object());
	char *text = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
	json_decref(ev);
	if (!text)
		return sdk_fail(err, SDK_EIO, "out of memory");
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db, "INSERT INTO audit_outbox (event) VALUES (?)", -1, &st,
				    NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
	}
	free(text);
	if (rc != SQLITE_DONE)
		return db_fail(s->db, rc, err, "recording the change's audit event");
	/* Bounded: an audit kernel that never comes costs at most this much. */
	char sql[160];
	snprintf(sql, sizeof sql,
		 "DELETE FROM audit_outbox WHERE seq <= (SELECT MAX(seq) FROM audit_outbox) - %d",
		 POL_EVENTS_MAX);
	return exec(s->db, sql, err);
}

int pol_store_events(pol_store *s, size_t max, json_t **out, int64_t *last, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db, "SELECT seq, event FROM audit_outbox ORDER BY seq LIMIT ?",
				    -1, &st, NULL);
	if (rc != SQLITE_OK)
		return db_fail(s->db, rc, err, "reading the audit outbox");
	sqlite3_bind_int64(st, 1, (sqlite3_int64)max);
	json_t *arr = json_array();
	*last = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *ev = json_loadb((const char *)sqlite3_column_text(st, 1),
					(size_t)sqlite3_column_bytes(st, 1), 0, NULL);
		*last = sqlite3_column_int64(st, 0);
		if (ev) /* a row that is not JSON is skipped (and deleted with the batch) */
			json_array_append_new(arr, ev);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		json_decref(arr);
		return db_fail(s->db, rc, err, "reading the audit outbox");
	}
	*out = arr;
	return 0;
}

int pol_store_events_done(pol_store *s, int64_t last, sdk_err *err)
{
	char sql[96];
	snprintf(sql, sizeof sql, "DELETE FROM audit_outbox WHERE seq <= %lld", (long long)last);
	return exec(s->db, sql, err);
}

/* ---- policy sets */

static int check_expected(int64_t expected, int64_t current, const char *what, sdk_err *err)
{
	if (expected >= 0 && expected != current)
		return sdk_fail(err, SDK_ECONFLICT, "%s is at version %lld, not %lld", what,
				(long long)current, (long long)expected);
	return 0;
}

static int insert_version(pol_store *s, const char *name, int64_t version, const char *text,
			  size_t len, uint32_t policies, int64_t now_ms, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db,
				    "INSERT INTO policy_versions (name, version, text, policies, created_ms)"
				    " VALUES (?, ?, ?, ?, ?)", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return db_fail(s->db, rc, err, "writing the policy set");
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, version);
	if (text)
		sqlite3_bind_text(st, 3, text, (int)len, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 3);
	sqlite3_bind_int64(st, 4, policies);
	sqlite3_bind_int64(st, 5, now_ms);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : db_fail(s->db, rc, err, "writing the policy set");
}

/* The meta key naming the version of a set that holds Grace's built-in
 * text as Grace wrote it (pol_store_put_builtin). */
#define BUILTIN_KEY_FMT "builtin_version:%s"

static int put_version(pol_store *s, const char *name, const char *text, size_t len,
		       int64_t expected_version, int64_t now_ms, bool builtin, const pol_set **out,
		       bool *created, cedar_parse_error *perr, sdk_err *err);

int pol_store_put(pol_store *s, const char *name, const char *text, size_t len,
		  int64_t expected_version, int64_t now_ms, const pol_set **out, bool *created,
		  cedar_parse_error *perr, sdk_err *err)
{
	return put_version(s, name, text, len, expected_version, now_ms, false, out, created, perr,
			   err);
}

int pol_store_put_builtin(pol_store *s, const char *name, const char *text, size_t len,
			  int64_t expected_version, int64_t now_ms, const pol_set **out,
			  bool *created, cedar_parse_error *perr, sdk_err *err)
{
	return put_version(s, name, text, len, expected_version, now_ms, true, out, created, perr,
			   err);
}

int pol_store_builtin_version(pol_store *s, const char *name, int64_t *out, sdk_err *err)
{
	char key[POL_NAME_MAX + 32];
	snprintf(key, sizeof key, BUILTIN_KEY_FMT, name);
	return meta_get(s->db, key, out, err);
}

static int put_version(pol_store *s, const char *name, const char *text, size_t len,
		       int64_t expected_version, int64_t now_ms, bool builtin, const pol_set **out,
		       bool *created, cedar_parse_error *perr, sdk_err *err)
{
	if (!pol_name_valid(name))
		return sdk_fail(err, SDK_EINVAL, "a policy set name is 1 to %d of A-Z a-z 0-9 _ - .",
				POL_NAME_MAX);
	const pol_set *cur = pol_store_set(s, name);
	int64_t version = cur ? cur->version : 0;
	int rc = check_expected(expected_version, version, "the policy set", err);
	if (rc < 0)
		return rc;
	cedar_policy_set *ps;
	if (cedar_parse(text, len, &ps, perr) < 0)
		return sdk_fail(err, POL_ESYNTAX, "%u:%u: %s", perr->line, perr->column, perr->msg);
	char resource[POL_NAME_MAX + 16], key[POL_NAME_MAX + 32];
	snprintf(resource, sizeof resource, "policy-set/%s", name);
	snprintf(key, sizeof key, BUILTIN_KEY_FMT, name);
	/* The mark is written with the version, so a crash cannot leave a
	 * built-in text unmarked (and then never upgraded) or the reverse. */
	if ((rc = exec(s->db, "BEGIN IMMEDIATE", err)) < 0 ||
	    (rc = insert_version(s, name, version + 1, text, len, ps->n, now_ms, err)) < 0 ||
	    (builtin && (rc = meta_set(s->db, key, version + 1, err)) < 0) ||
	    (rc = record_event(s, "policy.set.put", resource,
			       json_pack("{s:s, s:I, s:i}", "policy_set", name, "version",
					 (json_int_t)(version + 1), "policies", (int)ps->n),
			       now_ms, err)) < 0 ||
	    (rc = exec(s->db, "COMMIT", err)) < 0) {
		if (!sqlite3_get_autocommit(s->db))
			exec(s->db, "ROLLBACK", NULL);
		cedar_policy_set_free(ps);
		return rc;
	}
	bool was_live = cur && (cur->ps || cur->broken);
	pol_set *set = set_slot(s, name, err);
	if (!set) {
		/* Written but not loaded: the memory no longer says what the file does. */
		cedar_policy_set_free(ps);
		return SDK_EIO;
	}
	set_install(set, version + 1, now_ms, ps, NULL);
	*created = !was_live;
	*out = set;
	return 0;
}

int pol_store_delete(pol_store *s, const char *name, int64_t expected_version, int64_t now_ms,
		     const pol_set **out, sdk_err *err)
{
	pol_set *set = (pol_set *)pol_store_set(s, name);
	if (!set || (!set->ps && !set->broken))
		return sdk_fail(err, SDK_ENOTFOUND, "no policy set named \"%s\"", name);
	int rc = check_expected(expected_version, set->version, "the policy set", err);
	if (rc < 0)
		return rc;
	char resource[POL_NAME_MAX + 16];
	snprintf(resource, sizeof resource, "policy-set/%s", name);
	if ((rc = exec(s->db, "BEGIN IMMEDIATE", err)) < 0 ||
	    (rc = insert_version(s, name, set->version + 1, NULL, 0, 0, now_ms, err)) < 0 ||
	    (rc = record_event(s, "policy.set.delete", resource,
			       json_pack("{s:s, s:I}", "policy_set", name, "version",
					 (json_int_t)(set->version + 1)),
			       now_ms, err)) < 0 ||
	    (rc = exec(s->db, "COMMIT", err)) < 0) {
		if (!sqlite3_get_autocommit(s->db))
			exec(s->db, "ROLLBACK", NULL);
		return rc;
	}
	set_install(set, set->version + 1, now_ms, NULL, NULL);
	*out = set;
	return 0;
}

int pol_store_versions(pol_store *s, const char *name, json_t **out, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db,
				    "SELECT version, created_ms, text IS NULL, policies FROM policy_versions"
				    " WHERE name = ? ORDER BY version DESC", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return db_fail(s->db, rc, err, "reading the versions");
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	json_t *arr = json_array();
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(arr, json_pack("{s:I, s:I, s:b, s:I}", "version",
						     (json_int_t)sqlite3_column_int64(st, 0), "created_ms",
						     (json_int_t)sqlite3_column_int64(st, 1), "deleted",
						     sqlite3_column_int(st, 2), "policies",
						     (json_int_t)sqlite3_column_int64(st, 3)));
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		json_decref(arr);
		return db_fail(s->db, rc, err, "reading the versions");
	}
	if (json_array_size(arr) == 0) {
		json_decref(arr);
		return sdk_fail(err, SDK_ENOTFOUND, "no policy set named \"%s\"", name);
	}
	*out = arr;
	return 0;
}

int pol_store_version(pol_store *s, const char *name, int64_t version, json_t **out, sdk_err *err)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db,
				    "SELECT created_ms, text, policies FROM policy_versions"
				    " WHERE name = ? AND version = ?", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return db_fail(s->db, rc, err, "reading the version");
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, version);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		bool deleted = sqlite3_column_type(st, 1) == SQLITE_NULL;
		json_t *text = deleted ? json_null()
				       : json_stringn((const char *)sqlite3_column_text(st, 1),
						      (size_t)sqlite3_column_bytes(st, 1));
		*out = json_pack("{s:s, s:I, s:I, s:b, s:I, s:o}", "name", name, "version",
				 (json_int_t)version, "created_ms", (json_int_t)sqlite3_column_int64(st, 0),
				 "deleted", deleted, "policies", (json_int_t)sqlite3_column_int64(st, 2),
				 "text", text ? text : json_null());
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return sdk_fail(err, SDK_ENOTFOUND, "policy set \"%s\" has no version %lld", name,
				(long long)version);
	return rc == SQLITE_ROW ? 0 : db_fail(s->db, rc, err, "reading the version");
}

/* ---- entities */

static int write_entity(sqlite3_stmt *ins, const cedar_entity *e, sdk_err *err, sqlite3 *db)
{
	char *text = json_dumps(e->json, JSON_COMPACT);
	if (!text)
		return sdk_fail(err, SDK_EIO, "out of memory");
	sqlite3_reset(ins);
	sqlite3_bind_text(ins, 1, e->uid->type, (int)e->uid->type_len, SQLITE_STATIC);
	sqlite3_bind_blob(ins, 2, e->uid->id, (int)e->uid->id_len, SQLITE_STATIC);
	sqlite3_bind_text(ins, 3, text, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(ins);
	free(text);
	return rc == SQLITE_DONE ? 0 : db_fail(db, rc, err, "writing an entity");
}

#define EVENT_UIDS_MAX 100 /* uids named in one entities event; the count says the rest */

static json_t *uid_json(const cedar_uid *u)
{
	return json_pack("{s:s%, s:s%}", "type", u->type, (size_t)u->type_len, "id", u->id,
			 (size_t)u->id_len);
}

/* The details of an entities change: the new version and the uids written
 * (or deleted). */
static json_t *entities_event(const cedar_entities *given, bool replace, const cedar_uid *gone,
			      int64_t version)
{
	json_t *uids = json_array();
	uint32_t n = gone ? 1 : given ? given->n : 0;
	if (gone)
		json_array_append_new(uids, uid_json(gone));
	for (uint32_t i = 0; !gone && i < n && i < EVENT_UIDS_MAX; i++)
		json_array_append_new(uids, uid_json(given->list[i]->uid));
	return json_pack("{s:I, s:b, s:I, s:o}", "version", (json_int_t)version, "replace", replace,
			 "count", (json_int_t)n, "uids", uids);
}

/* Writes the rows that change (all of `next` when `replace`, else the
 * entities of `given`), the deletion of `gone` (NULL for none) and the
 * new version, in one transaction. */
static int write_entities(pol_store *s, const cedar_entities *next, const cedar_entities *given,
			  bool replace, const cedar_uid *gone, int64_t version, int64_t now_ms,
			  sdk_err *err)
{
	int rc = exec(s->db, "BEGIN IMMEDIATE", err);
	if (rc < 0)
		return rc;
	sqlite3_stmt *ins = NULL, *del = NULL;
	int r = sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO entities (type, id, json) VALUES (?, ?, ?)",
				   -1, &ins, NULL);
	if (r != SQLITE_OK) {
		rc = db_fail(s->db, r, err, "writing the entities");
		goto rollback;
	}
	if (replace && (rc = exec(s->db, "DELETE FROM entities", err)) < 0)
		goto rollback;
	const cedar_entities *rows = replace ? next : given;
	for (uint32_t i = 0; rows && i < rows->n; i++) {
		/* Write what the merged set holds for that uid (one JSON each). */
		const cedar_entity *e = cedar_entities_get(next, rows->list[i]->uid);
		if (e && (rc = write_entity(ins, e, err, s->db)) < 0)
			goto rollback;
	}
	if (gone) {
		r = sqlite3_prepare_v2(s->db, "DELETE FROM entities WHERE type = ? AND id = ?", -1, &del, NULL);
		if (r != SQLITE_OK) {
			rc = db_fail(s->db, r, err, "deleting the entity");
			goto rollback;
		}
		sqlite3_bind_text(del, 1, gone->type, (int)gone->type_len, SQLITE_STATIC);
		sqlite3_bind_blob(del, 2, gone->id, (int)gone->id_len, SQLITE_STATIC);
		if ((r = sqlite3_step(del)) != SQLITE_DONE) {
			rc = db_fail(s->db, r, err, "deleting the entity");
			goto rollback;
		}
	}
	if ((rc = meta_set(s->db, "entities_version", version, err)) < 0 ||
	    (rc = meta_set(s->db, "entities_updated_ms", now_ms, err)) < 0 ||
	    (rc = record_event(s, gone ? "policy.entities.delete" : "policy.entities.put",
			       "policy-entities", entities_event(given, replace, gone, version),
			       now_ms, err)) < 0)
		goto rollback;
	sqlite3_finalize(ins);
	sqlite3_finalize(del);
	return exec(s->db, "COMMIT", err);
rollback:
	sqlite3_finalize(ins);
	sqlite3_finalize(del);
	exec(s->db, "ROLLBACK", NULL);
	return rc;
}

static void install_entities(pol_store *s, cedar_arena *a, cedar_entities *es, int64_t version,
			     int64_t now_ms)
{
	drop_entities(s->ent_arena, s->ents);
	s->ent_arena = a;
	s->ents = es;
	s->ents_version = version;
	s->ents_updated_ms = now_ms;
}

int pol_store_put_entities(pol_store *s, json_t *arr, bool replace, int64_t expected_version,
			   int64_t now_ms, sdk_err *err)
{
	int rc = check_expected(expected_version, s->ents_version, "the entity store", err);
	if (rc < 0)
		return rc;
	if (!json_is_array(arr))
		return sdk_fail(err, SDK_EINVAL, "entities must be a JSON array");
	/* Read the given entities on their own first: their uids decide which
	 * stored ones they replace, and their errors are theirs. */
	cedar_arena scratch;
	cedar_arena_init(&scratch, ENT_ARENA_BUDGET);
	cedar_entities *given = NULL;
	json_t *all = NULL;
	cedar_arena *a = NULL;
	cedar_entities *next = NULL;
	if ((rc = cedar_entities_parse(&scratch, arr, false, false, &given, err)) < 0)
		goto out;
	all = json_array();
	if (!replace)
		for (uint32_t i = 0; s->ents && i < s->ents->n; i++)
			if (!cedar_entities_get(given, s->ents->list[i]->uid))
				json_array_append(all, s->ents->list[i]->json);
	json_array_extend(all, arr);
	if (json_array_size(all) > CEDAR_ENTITIES_MAX) {
		rc = sdk_fail(err, SDK_ETOOLARGE, "the entity store holds at most %d entities",
			      CEDAR_ENTITIES_MAX);
		goto out;
	}
	if ((rc = build_entities(all, &a, &next, err)) < 0)
		goto out;
	if ((rc = write_entities(s, next, given, replace, NULL, s->ents_version + 1, now_ms, err)) < 0) {
		drop_entities(a, next);
		goto out;
	}
	install_entities(s, a, next, s->ents_version + 1, now_ms);
out:
	json_decref(all);
	cedar_arena_free(&scratch);
	return rc;
}

int pol_store_delete_entity(pol_store *s, const char *type, const char *id, size_t id_len,
			    int64_t expected_version, int64_t now_ms, sdk_err *err)
{
	cedar_uid key = { .type = type, .type_len = (uint32_t)strlen(type), .id = id,
			  .id_len = (uint32_t)id_len };
	key.hash = cedar_uid_hash(key.type, key.type_len, key.id, key.id_len);
	const cedar_entity *e = s->ents ? cedar_entities_get(s->ents, &key) : NULL;
	if (!e)
		return sdk_fail(err, SDK_ENOTFOUND, "no entity %s::\"%.*s\"", type, (int)(id_len > 100 ? 100 : id_len), id);
	int rc = check_expected(expected_version, s->ents_version, "the entity store", err);
	if (rc < 0)
		return rc;
	json_t *all = json_array();
	for (uint32_t i = 0; i < s->ents->n; i++)
		if (s->ents->list[i] != e)
			json_array_append(all, s->ents->list[i]->json);
	cedar_arena *a = NULL;
	cedar_entities *next = NULL;
	rc = build_entities(all, &a, &next, err);
	json_decref(all);
	if (rc < 0)
		return rc;
	if ((rc = write_entities(s, next, NULL, false, &key, s->ents_version + 1, now_ms, err)) < 0) {
		drop_entities(a, next);
		return rc;
	}
	install_entities(s, a, next, s->ents_version + 1, now_ms);
	return 0;
}
