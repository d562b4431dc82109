/* The message bus's tables.
 *
 * `messages` is the log; `subjects` is a summary kept in step with it by
 * the C code (one upsert per run of equal subjects in a batch, not one per
 * message), so GET /subjects never scans the log. `groups` and
 * `deliveries` are the consumer groups; `retention` the rules. */
#include "kernels/message_bus/store.h"

#include "sdk/db.h"
#include "sdk/err.h"
#include "kernels/message_bus/subject.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rows read per statement run while scanning the whole log. */
#define BUS_SCAN_PAGE 512u
/* Due deliveries read per round of a poll: dead-lettered ones do not count
 * towards `max`, so a poll may need more than one round. */
#define BUS_DUE_ROUNDS_MAX 8

/* The tables at message_bus_kernel's .schema_version (bus.c): a change is
 * a new step there and a new fixture directory (docs/upgrades.md); the
 * runtime migrates before init, this runs on every open after it.
 *
 * AUTOINCREMENT keeps the highest seq ever used in sqlite_sequence, so a
 * seq deleted by retention is never handed out again. */
static const char bus_schema[] =
	"CREATE TABLE IF NOT EXISTS messages ("
	"  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  subject TEXT NOT NULL,"
	"  ts INTEGER NOT NULL,"
	"  key TEXT,"
	"  headers TEXT,"
	"  payload TEXT NOT NULL"
	");"
	"CREATE INDEX IF NOT EXISTS messages_by_subject ON messages (subject, seq);"
	"CREATE TABLE IF NOT EXISTS subjects ("
	"  subject TEXT PRIMARY KEY,"
	"  count INTEGER NOT NULL,"
	"  first_seq INTEGER NOT NULL,"
	"  last_seq INTEGER NOT NULL"
	") WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS groups ("
	"  name TEXT PRIMARY KEY,"
	"  pattern TEXT NOT NULL,"
	"  cursor INTEGER NOT NULL,"
	"  visibility_ms INTEGER NOT NULL,"
	"  max_deliveries INTEGER NOT NULL,"
	"  created_at INTEGER NOT NULL"
	") WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS deliveries ("
	"  grp TEXT NOT NULL,"
	"  seq INTEGER NOT NULL,"
	"  count INTEGER NOT NULL,"
	"  visible_at INTEGER NOT NULL,"
	"  PRIMARY KEY (grp, seq)"
	") WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (grp, visible_at);"
	"CREATE TABLE IF NOT EXISTS retention ("
	"  pattern TEXT PRIMARY KEY,"
	"  max_count INTEGER NOT NULL,"
	"  max_age_ms INTEGER NOT NULL,"
	"  updated_at INTEGER NOT NULL"
	") WITHOUT ROWID;";

#define BUS_MSG_COLS "seq, subject, ts, key, headers, payload"

enum bus_stmt_id {
	S_BEGIN,
	S_COMMIT,
	S_ROLLBACK,
	S_SYNC_FULL,
	S_SYNC_NORMAL,
	S_INSERT,
	S_SUBJECT_ADD,
	S_SCAN_ALL,
	S_SCAN_SUBJECT,
	S_GROUP_GET,
	S_GROUP_INSERT,
	S_GROUP_UPDATE,
	S_DUE,
	S_DUE_ONE,
	S_DELIVERY_INSERT,
	S_DELIVERY_UPDATE,
	S_DELIVERY_DELETE,
	S_ACK,
	S_NEXT_DUE,
	S_COUNT
};

/* Prepared once: these run for every publish, poll and ack. */
static const char *const bus_sql[S_COUNT] = {
	[S_BEGIN] = "BEGIN IMMEDIATE",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_SYNC_FULL] = "PRAGMA synchronous = FULL",
	[S_SYNC_NORMAL] = "PRAGMA synchronous = NORMAL",
	[S_INSERT] = "INSERT INTO messages (" BUS_MSG_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[S_SUBJECT_ADD] = "INSERT INTO subjects (subject, count, first_seq, last_seq)"
			  " VALUES (?1, ?2, ?3, ?4) ON CONFLICT (subject) DO UPDATE SET"
			  " count = count + excluded.count, last_seq = excluded.last_seq",
	[S_SCAN_ALL] = "SELECT " BUS_MSG_COLS " FROM messages WHERE seq >= ?1"
		       " ORDER BY seq LIMIT ?2",
	[S_SCAN_SUBJECT] = "SELECT " BUS_MSG_COLS " FROM messages WHERE subject = ?1"
			   " AND seq >= ?2 ORDER BY seq LIMIT ?3",
	[S_GROUP_GET] = "SELECT pattern, cursor, visibility_ms, max_deliveries, created_at"
			" FROM groups WHERE name = ?1",
	[S_GROUP_INSERT] = "INSERT INTO groups (name, pattern, cursor, visibility_ms,"
			   " max_deliveries, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[S_GROUP_UPDATE] = "UPDATE groups SET cursor = ?2, visibility_ms = ?3,"
			   " max_deliveries = ?4 WHERE name = ?1",
	[S_DUE] = "SELECT seq FROM deliveries WHERE grp = ?1 AND visible_at <= ?2"
		  " ORDER BY visible_at, seq LIMIT ?3",
	[S_DUE_ONE] = "SELECT d.count, m.seq, m.subject, m.ts, m.key, m.headers, m.payload"
		      " FROM deliveries AS d LEFT JOIN messages AS m ON m.seq = d.seq"
		      " WHERE d.grp = ?1 AND d.seq = ?2",
	[S_DELIVERY_INSERT] = "INSERT INTO deliveries (grp, seq, count, visible_at)"
			      " VALUES (?1, ?2, 1, ?3)",
	[S_DELIVERY_UPDATE] = "UPDATE deliveries SET count = ?3, visible_at = ?4"
			      " WHERE grp = ?1 AND seq = ?2",
	[S_DELIVERY_DELETE] = "DELETE FROM deliveries WHERE grp = ?1 AND seq = ?2",
	[S_ACK] = "DELETE FROM deliveries WHERE grp = ?1 AND seq = ?2"
		  " AND (?3 = 0 OR count = ?3)",
	[S_NEXT_DUE] = "SELECT min(visible_at) FROM deliveries WHERE grp = ?1",
};

struct bus_store {
	sqlite3 *db;
	sqlite3_stmt *st[S_COUNT];
	int64_t next_seq;
	int64_t last_ts;
};

typedef struct bus_group {
	char pattern[BUS_SUBJECT_MAX + 1];
	int64_t cursor, visibility_ms, created_at;
	int max_deliveries;
} bus_group;

static int bus_fail_sql(bus_store *st, sdk_err *err, const char *what)
{
	return sdk_db_fail(st->db, err, what);
}

/* A statement from the cache, reset and unbound, ready to bind. */
static sqlite3_stmt *bus_stmt(bus_store *st, enum bus_stmt_id id)
{
	sqlite3_stmt *s = st->st[id];
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return s;
}

/* Runs a cached statement that returns no rows. */
static int bus_run(bus_store *st, enum bus_stmt_id id, sdk_err *err, const char *what)
{
	sqlite3_stmt *s = bus_stmt(st, id);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? SDK_OK : bus_fail_sql(st, err, what);
}

static void bus_rollback(bus_store *st)
{
	/* SQLite may have rolled back by itself already (SQLITE_FULL, ...). */
	if (!sqlite3_get_autocommit(st->db))
		bus_run(st, S_ROLLBACK, NULL, "rollback");
}

/* `durable`: the commit is fsynced before it returns. */
static int bus_begin(bus_store *st, bool durable, sdk_err *err)
{
	int rc = bus_run(st, durable ? S_SYNC_FULL : S_SYNC_NORMAL, err, "set synchronous");
	return rc ? rc : bus_run(st, S_BEGIN, err, "begin transaction");
}

static int bus_commit(bus_store *st, sdk_err *err)
{
	int rc = bus_run(st, S_COMMIT, err, "commit");
	if (rc)
		bus_rollback(st);
	return rc;
}

/* One integer from a one-shot query; `def` when it returns no row or NULL. */
static int bus_query_int(bus_store *st, const char *sql, int64_t def, int64_t *out, sdk_err *err)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK)
		return bus_fail_sql(st, err, "prepare");
	int rc = sqlite3_step(s);
	*out = def;
	if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
		*out = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? SDK_OK : bus_fail_sql(st, err, sql);
}

static int bus_schema_create(bus_store *st, sdk_err *err)
{
	int rc = SDK_OK;
	if (sqlite3_exec(st->db, bus_schema, NULL, NULL, NULL) != SQLITE_OK)
		rc = bus_fail_sql(st, err, "create schema");
	return rc;
}

static int bus_load_positions(bus_store *st, sdk_err *err)
{
	int64_t seq_used = 0, seq_max = 0;
	int rc = bus_query_int(st, "SELECT seq FROM sqlite_sequence WHERE name = 'messages'", 0,
			       &seq_used, err);
	if (!rc)
		rc = bus_query_int(st, "SELECT max(seq) FROM messages", 0, &seq_max, err);
	if (!rc)
		rc = bus_query_int(st, "SELECT ts FROM messages ORDER BY seq DESC LIMIT 1", 0,
				   &st->last_ts, err);
	st->next_seq = (seq_used > seq_max ? seq_used : seq_max) + 1;
	return rc;
}

static int bus_prepare_all(bus_store *st, sdk_err *err)
{
	for (int i = 0; i < S_COUNT; i++)
		if (sqlite3_prepare_v3(st->db, bus_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &st->st[i],
				       NULL) != SQLITE_OK)
			return bus_fail_sql(st, err, bus_sql[i]);
	return SDK_OK;
}

int bus_store_open(sqlite3 *db, bus_store **out, sdk_err *err)
{
	bus_store *st = calloc(1, sizeof *st);
	if (!st)
		return sdk_fail(err, SDK_EIO, "out of memory");
	st->db = db;
	/* The schema is created under the write lock so two processes starting
	 * at once cannot both decide to create it. */
	int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK ?
			 SDK_OK :
			 bus_fail_sql(st, err, "begin");
	if (!rc) {
		rc = bus_schema_create(st, err);
		if (!rc && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
			rc = bus_fail_sql(st, err, "commit schema");
		if (rc && !sqlite3_get_autocommit(db))
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	}
	if (!rc)
		rc = bus_prepare_all(st, err);
	if (!rc)
		rc = bus_load_positions(st, err);
	if (rc) {
		bus_store_close(st);
		return rc;
	}
	*out = st;
	return SDK_OK;
}

void bus_store_close(bus_store *st)
{
	if (!st)
		return;
	for (int i = 0; i < S_COUNT; i++)
		sqlite3_finalize(st->st[i]);
	free(st);
}

int64_t bus_store_next_seq(const bus_store *st) { return st->next_seq; }

static int bus_bind_text(sqlite3_stmt *s, int i, const char *v)
{
	return v ? sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC) : sqlite3_bind_null(s, i);
}

static int bus_insert_one(bus_store *st, const bus_msg *m, sdk_err *err)
{
	sqlite3_stmt *s = bus_stmt(st, S_INSERT);
	if (sqlite3_bind_int64(s, 1, m->seq) || bus_bind_text(s, 2, m->subject) ||
	    sqlite3_bind_int64(s, 3, m->ts) || bus_bind_text(s, 4, m->key) ||
	    bus_bind_text(s, 5, m->headers) || bus_bind_text(s, 6, m->payload))
		return bus_fail_sql(st, err, "bind message");
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? SDK_OK : bus_fail_sql(st, err, "insert message");
}

static int bus_subject_add(bus_store *st, const char *subject, int64_t count, int64_t first,
			   int64_t last, sdk_err *err)
{
	sqlite3_stmt *s = bus_stmt(st, S_SUBJECT_ADD);
	if (bus_bind_text(s, 1, subject) || sqlite3_bind_int64(s, 2, count) ||
	    sqlite3_bind_int64(s, 3, first) || sqlite3_bind_int64(s, 4, last))
		return bus_fail_sql(st, err, "bind subject");
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? SDK_OK : bus_fail_sql(st, err, "count subject");
}

/* Inserts inside the caller's transaction; on failure the caller rolls
 * back and st->next_seq/last_ts are restored by the caller. */
static int bus_append_rows(bus_store *st, bus_msg *msgs, size_t n, int64_t now_ms, sdk_err *err)
{
	size_t run = 0; /* start of the current run of one subject */
	for (size_t i = 0; i < n; i++) {
		msgs[i].seq = st->next_seq++;
		if (now_ms > st->last_ts)
			st->last_ts = now_ms;
		msgs[i].ts = st->last_ts;
		int rc = bus_insert_one(st, &msgs[i], err);
		if (rc)
			return rc;
		if (i + 1 == n || strcmp(msgs[i + 1].subject, msgs[run].subject) != 0) {
			rc = bus_subject_add(st, msgs[run].subject, (int64_t)(i + 1 - run),
					     msgs[run].seq, msgs[i].seq, err);
			if (rc)
				return rc;
			run = i + 1;
		}
	}
	return SDK_OK;
}

int bus_store_append(bus_store *st, bus_msg *msgs, size_t n, int64_t now_ms, sdk_err *err)
{
	if (n == 0)
		return SDK_OK;
	int64_t seq0 = st->next_seq, ts0 = st->last_ts;
	int rc = bus_begin(st, true, err);
	if (rc)
		return rc;
	rc = bus_append_rows(st, msgs, n, now_ms, err);
	if (!rc)
		rc = bus_commit(st, err);
	else
		bus_rollback(st);
	if (rc) {
		st->next_seq = seq0;
		st->last_ts = ts0;
	}
	return rc;
}

static const char *bus_col_text(sqlite3_stmt *s, int i)
{
	return (const char *)sqlite3_column_text(s, i);
}

/* Columns in BUS_MSG_COLS order, from column `c`. */
static void bus_row_msg(sqlite3_stmt *s, int c, bus_msg *m)
{
	m->seq = sqlite3_column_int64(s, c);
	m->subject = bus_col_text(s, c + 1);
	m->ts = sqlite3_column_int64(s, c + 2);
	m->key = bus_col_text(s, c + 3);
	m->headers = bus_col_text(s, c + 4);
	m->payload = bus_col_text(s, c + 5);
}

struct bus_scan {
	bus_store *st;
	const char *pattern;
	bus_msg_fn fn;
	void *arg;
	size_t matched, seen;
	int64_t next;
};

/* Steps a prepared page, counting its rows in *rows; SDK_OK, fn's nonzero
 * code, or SDK_EIO. */
static int bus_scan_page(struct bus_scan *sc, sqlite3_stmt *s, bool filter, size_t max,
			 sdk_err *err, size_t *rows)
{
	int rc;
	*rows = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		bus_msg m;
		bus_row_msg(s, 0, &m);
		(*rows)++;
		sc->seen++;
		sc->next = m.seq + 1;
		if (filter && !bus_pattern_match(sc->pattern, m.subject))
			continue;
		sc->matched++;
		int frc = sc->fn(&m, sc->arg);
		if (frc) {
			sqlite3_reset(s);
			return frc;
		}
		if (sc->matched == max)
			break;
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? SDK_OK :
						       bus_fail_sql(sc->st, err, "scan messages");
}

static int bus_scan_literal(struct bus_scan *sc, int64_t from, size_t max, sdk_err *err)
{
	sqlite3_stmt *s = bus_stmt(sc->st, S_SCAN_SUBJECT);
	if (bus_bind_text(s, 1, sc->pattern) || sqlite3_bind_int64(s, 2, from) ||
	    sqlite3_bind_int64(s, 3, (int64_t)max))
		return bus_fail_sql(sc->st, err, "bind scan");
	size_t rows;
	int rc = bus_scan_page(sc, s, false, max, err, &rows);
	/* Fewer rows than asked for: nothing else of this subject exists yet. */
	if (!rc && sc->matched < max)
		sc->next = sc->st->next_seq;
	return rc;
}

static int bus_scan_all(struct bus_scan *sc, int64_t from, size_t max, size_t budget,
			sdk_err *err)
{
	sc->next = from;
	while (sc->matched < max && sc->seen < budget) {
		size_t want = budget - sc->seen;
		if (want > BUS_SCAN_PAGE)
			want = BUS_SCAN_PAGE;
		sqlite3_stmt *s = bus_stmt(sc->st, S_SCAN_ALL);
		if (sqlite3_bind_int64(s, 1, sc->next) || sqlite3_bind_int64(s, 2, (int64_t)want))
			return bus_fail_sql(sc->st, err, "bind scan");
		size_t rows;
		int rc = bus_scan_page(sc, s, true, max, err, &rows);
		if (rc)
			return rc;
		if (rows < want && sc->matched < max) {
			sc->next = sc->st->next_seq; /* reached the end of the log */
			break;
		}
	}
	return SDK_OK;
}

int bus_store_scan(bus_store *st, const char *pattern, int64_t from, size_t max, size_t budget,
		   bus_msg_fn fn, void *arg, int64_t *next_out, sdk_err *err)
{
	struct bus_scan sc = { .st = st, .pattern = pattern, .fn = fn, .arg = arg, .next = from };
	*next_out = from;
	if (max == 0 || from >= st->next_seq)
		return SDK_OK;
	int rc = bus_pattern_literal(pattern) ? bus_scan_literal(&sc, from, max, err) :
						bus_scan_all(&sc, from, max, budget, err);
	if (rc >= 0)
		*next_out = sc.next;
	return rc;
}

/* ------------------------------------------------------------------ groups */

static int bus_group_load(bus_store *st, const char *name, bus_group *g, bool *found,
			  sdk_err *err)
{
	sqlite3_stmt *s = bus_stmt(st, S_GROUP_GET);
	if (bus_bind_text(s, 1, name))
		return bus_fail_sql(st, err, "bind group");
	int rc = sqlite3_step(s);
	*found = rc == SQLITE_ROW;
	if (*found) {
		snprintf(g->pattern, sizeof g->pattern, "%s", bus_col_text(s, 0));
		g->cursor = sqlite3_column_int64(s, 1);
		g->visibility_ms = sqlite3_column_int64(s, 2);
		g->max_deliveries = sqlite3_column_int(s, 3);
		g->created_at = sqlite3_column_int64(s, 4);
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? SDK_OK : bus_fail_sql(st, err, "read group");
}

static int bus_group_create(bus_store *st, const char *name, const bus_poll_opts *o,
			    int64_t now_ms, bus_group *g, sdk_err *err)
{
	snprintf(g->pattern, sizeof g->pattern, "%s", o->pattern);
	g->cursor = o->from == BUS_FROM_LATEST ? st->next_seq :
		    o->from == BUS_FROM_SEQ    ? o->from_seq :
						 1;
	g->visibility_ms = o->visibility_ms ? o->visibility_ms : BUS_VISIBILITY_DEFAULT_MS;
	g->max_deliveries = o->max_deliveries ? o->max_deliveries : BUS_DELIVERIES_DEFAULT;
	g->created_at = now_ms;
	sqlite3_stmt *s = bus_stmt(st, S_GROUP_INSERT);
	if (bus_bind_text(s, 1, name) || bus_bind_text(s, 2, g->pattern) ||
	    sqlite3_bind_int64(s, 3, g->cursor) || sqlite3_bind_int64(s, 4, g->visibility_ms) ||
	    sqlite3_bind_int(s, 5, g->max_deliveries) || sqlite3_bind_int64(s, 6, now_ms))
		return bus_fail_sql(st, err, "bind group");
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? SDK_OK : bus_fail_sql(st, err, "create group");
}

static int bus_group_save(bus_store *st, const char *name, const bus_group *g, sdk_err *err)
{
	sqlite3_stmt *s = bus_stmt(st, S_GROUP_UPDATE);
	if (bus_bind_text(s, 1, name) || sqlite3_bind_int64(s, 2, g->cursor) ||
	    sqlite3_bind_int64(s, 3, g->visibility_ms) || sqlite3_bind_int(s, 4, g->max_deliveries))
		return bus_fail_sql(st, err, "bind group");
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? SDK_OK : bus_fail_sql(st, err, "update group");
}

/* Loads the group, creating it or applying new settings as asked. */
static int bus_group_open(bus_store *st, const char *name, const bus_poll_opts *o,
			  int64_t now_ms, bus_group *g, sdk_err *err)
{
	bool found;
	int rc = bus_group_load(st, name, g, &found, err);
	if (rc)
		return rc;
	if (!found)
		return o->pattern ? bus_group_create(st, name, o, now_ms, g, err) :
				    sdk_fail(err, SDK_ENOTFOUND,
					     "group %s does not exist: the first poll must name "
					     "its subject",
					     name);
	if (o->pattern && strcmp(o->pattern, g->pattern) != 0)
		return sdk_fail(err, SDK_ECONFLICT, "group %s consumes %s, not %s", name,
				g->pattern, o->pattern);
	if (o->visibility_ms)
		g->visibility_ms = o->visibility_ms;
	if (o->max_deliveries)
		g->max_deliveries = o->max_deliveries;
	return SDK_OK;
}

static int bus_delivery_write(bus_store *st, enum bus_stmt_id id, const char *grp, int64_t seq,
			      int count, int64_t visible_at, sdk_err *err)
{
	sqlite3_stmt *s = bus_stmt(st, id);
	int bad = bus_bind_text(s, 1, grp) || sqlite3_bind_int64(s, 2, seq);
	if (id == S_DELIVERY_INSERT)
		bad = bad || sqlite3_bind_int64(s, 3, visible_at);
	else if (id == S_DELIVERY_UPDATE)
		bad = bad || sqlite3_bind_int(s, 3, count) || sqlite3_bind_int64(s, 4, visible_at);
	if (bad)
		return bus_fail_sql(st, err, "bind delivery");
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? SDK_OK : bus_fail_sql(st, err, "write delivery");
}

/* The headers of a dead letter: the original ones plus where it came from. */
static char *bus_dlq_headers(const char *grp, const bus_msg *m, int count)
{
	json_t *h = m->headers ? json_loads(m->headers, 0, NULL) : json_object();
	if (!json_is_object(h)) {
		json_decref(h);
		h = json_object();
	}
	char seq[24], n[16];
	snprintf(seq, sizeof seq, "%" PRId64, m->seq);
	snprintf(n, sizeof n, "%d", count);
	int bad = !h || json_object_set_new(h, "x-dlq-group", json_string(grp)) ||
		  json_object_set_new(h, "x-dlq-subject", json_string(m->subject)) ||
		  json_object_set_new(h, "x-dlq-offset", json_string(seq)) ||
		  json_object_set_new(h, "x-dlq-deliveries", json_string(n));
	char *text = bad ? NULL : json_dumps(h, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(h);
	return text;
}

static int bus_dead_letter(bus_store *st, const char *grp, const bus_msg *m, int count,
			   int64_t now_ms, sdk_err *err)
{
	char *subject = NULL, *headers = bus_dlq_headers(grp, m, count);
	if (!headers || asprintf(&subject, BUS_DLQ_PREFIX ".%s.%s", grp, m->subject) < 0) {
		free(headers);
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	bus_msg dl = { .subject = subject, .key = m->key, .headers = headers, .payload = m->payload };
	int rc = bus_append_rows(st, &dl, 1, now_ms, err);
	free(subject);
	free(headers);
	return rc;
}

static char *bus_copy_str(char **at, const char *s)
{
	if (!s)
		return NULL;
	size_t n = strlen(s) + 1;
	char *d = memcpy(*at, s, n);
	*at += n;
	return d;
}

/* Copies a message read from SQLite into one allocation (*mem, freed by
 * the caller), so it survives the statement it came from being reset. */
static int bus_msg_dup(const bus_msg *src, bus_msg *dst, char **mem)
{
	const char *parts[] = { src->subject, src->key, src->headers, src->payload };
	size_t n = 0;
	for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
		n += parts[i] ? strlen(parts[i]) + 1 : 0;
	char *at = *mem = malloc(n ? n : 1);
	if (!at)
		return -1;
	*dst = (bus_msg){ .seq = src->seq, .ts = src->ts };
	dst->subject = bus_copy_str(&at, src->subject);
	dst->key = bus_copy_str(&at, src->key);
	dst->headers = bus_copy_str(&at, src->headers);
	dst->payload = bus_copy_str(&at, src->payload);
	return 0;
}

struct bus_poll {
	bus_store *st;
	const char *grp;
	bus_group *g;
	int64_t now_ms;
	size_t max;
	bus_delivery_fn fn;
	void *arg;
	bus_poll_result *res;
	sdk_err *err;
};

/* Reads one in-flight delivery: its count and a copy of its message
 * (m->subject NULL when retention has deleted the message). */
static int bus_due_load(struct bus_poll *p, int64_t seq, int *count, bus_msg *m, char **mem)
{
	sqlite3_stmt *s = bus_stmt(p->st, S_DUE_ONE);
	*mem = NULL;
	*m = (bus_msg){ .seq = seq };
	if (bus_bind_text(s, 1, p->grp) || sqlite3_bind_int64(s, 2, seq))
		return bus_fail_sql(p->st, p->err, "bind delivery");
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*count = sqlite3_column_int(s, 0);
		if (sqlite3_column_type(s, 1) != SQLITE_NULL) {
			bus_msg row;
			bus_row_msg(s, 1, &row);
			if (bus_msg_dup(&row, m, mem) < 0)
				rc = SQLITE_NOMEM;
		}
	}
	sqlite3_reset(s);
	if (rc == SQLITE_NOMEM)
		return sdk_fail(p->err, SDK_EIO, "out of memory");
	return rc == SQLITE_ROW ? SDK_OK : bus_fail_sql(p->st, p->err, "read delivery");
}

/* One due delivery: handed out again, dead-lettered, or dropped when
 * retention has deleted its message. */
static int bus_poll_due_one(struct bus_poll *p, int64_t seq)
{
	bus_msg m;
	char *mem;
	int count = 0;
	int rc = bus_due_load(p, seq, &count, &m, &mem);
	if (rc)
		return rc;
	if (!m.subject) {
		rc = bus_delivery_write(p->st, S_DELIVERY_DELETE, p->grp, seq, 0, 0, p->err);
	} else if (count >= p->g->max_deliveries) {
		rc = bus_dead_letter(p->st, p->grp, &m, count, p->now_ms, p->err);
		if (!rc)
			rc = bus_delivery_write(p->st, S_DELIVERY_DELETE, p->grp, seq, 0, 0, p->err);
		if (!rc) {
			p->res->dead_lettered++;
			p->res->appended = true;
		}
	} else {
		rc = bus_delivery_write(p->st, S_DELIVERY_UPDATE, p->grp, seq, count + 1,
					p->now_ms + p->g->visibility_ms, p->err);
		if (!rc && p->fn(&m, count + 1, p->arg))
			rc = sdk_fail(p->err, SDK_EIO, "out of memory");
		if (!rc)
			p->res->delivered++;
	}
	free(mem);
	return rc;
}

/* Due rows are read a page at a time and the page finished before any of
 * them is changed. A handled row is not seen again: it was deleted or now
 * becomes visible later than now_ms. Dead letters do not count towards
 * `max`, hence the rounds. */
static int bus_poll_due(struct bus_poll *p)
{
	for (int round = 0; round < BUS_DUE_ROUNDS_MAX && p->res->delivered < p->max; round++) {
		size_t want = p->max - p->res->delivered, got = 0;
		int64_t *seqs = calloc(want, sizeof *seqs);
		if (!seqs)
			return sdk_fail(p->err, SDK_EIO, "out of memory");
		sqlite3_stmt *s = bus_stmt(p->st, S_DUE);
		int rc = SQLITE_DONE;
		if (bus_bind_text(s, 1, p->grp) || sqlite3_bind_int64(s, 2, p->now_ms) ||
		    sqlite3_bind_int64(s, 3, (int64_t)want))
			rc = SQLITE_ERROR;
		while (rc != SQLITE_ERROR && got < want && (rc = sqlite3_step(s)) == SQLITE_ROW)
			seqs[got++] = sqlite3_column_int64(s, 0);
		sqlite3_reset(s);
		rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SDK_OK :
							     bus_fail_sql(p->st, p->err, "read due");
		for (size_t i = 0; !rc && i < got; i++)
			rc = bus_poll_due_one(p, seqs[i]);
		free(seqs);
		if (rc)
			return rc;
		if (got < want)
			break;
	}
	return SDK_OK;
}

/* Scan callback: a message seen by the group for the first time. */
static int bus_poll_new_one(const bus_msg *m, void *arg)
{
	struct bus_poll *p = arg;
	int rc = bus_delivery_write(p->st, S_DELIVERY_INSERT, p->grp, m->seq, 1,
				    p->now_ms + p->g->visibility_ms, p->err);
	if (rc)
		return rc;
	if (p->fn(m, 1, p->arg))
		return sdk_fail(p->err, SDK_EIO, "out of memory");
	p->res->delivered++;
	return SDK_OK;
}

static int bus_poll_new(struct bus_poll *p, size_t budget)
{
	size_t want = p->max - p->res->delivered;
	if (want == 0) {
		p->res->more = p->g->cursor < p->st->next_seq;
		return SDK_OK;
	}
	int64_t next;
	int rc = bus_store_scan(p->st, p->g->pattern, p->g->cursor, want, budget, bus_poll_new_one,
				p, &next, p->err);
	if (rc)
		return rc;
	p->g->cursor = next;
	p->res->more = next < p->st->next_seq;
	return SDK_OK;
}

static int bus_next_due(bus_store *st, const char *grp, int64_t *out, sdk_err *err)
{
	sqlite3_stmt *s = bus_stmt(st, S_NEXT_DUE);
	if (bus_bind_text(s, 1, grp))
		return bus_fail_sql(st, err, "bind");
	int rc = sqlite3_step(s);
	*out = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0; /* NULL reads as 0 */
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? SDK_OK : bus_fail_sql(st, err, "read next due");
}

int bus_group_poll(bus_store *st, const char *group, const bus_poll_opts *o, int64_t now_ms,
		   bus_delivery_fn fn, void *arg, bus_poll_result *res, sdk_err *err)
{
	*res = (bus_poll_result){ 0 };
	if (o->max == 0)
		return sdk_fail(err, SDK_EINVAL, "max must be at least 1");
	int64_t seq0 = st->next_seq, ts0 = st->last_ts;
	bus_group g;
	struct bus_poll p = { .st = st, .grp = group, .g = &g, .now_ms = now_ms, .max = o->max,
			      .fn = fn, .arg = arg, .res = res, .err = err };
	int rc = bus_begin(st, false, err);
	if (rc)
		return rc;
	rc = bus_group_open(st, group, o, now_ms, &g, err);
	if (!rc)
		rc = bus_poll_due(&p);
	if (!rc)
		rc = bus_poll_new(&p, o->budget > o->max ? o->budget : o->max);
	if (!rc)
		rc = bus_group_save(st, group, &g, err);
	if (!rc)
		rc = bus_next_due(st, group, &res->next_due_ms, err);
	if (!rc)
		snprintf(res->pattern, sizeof res->pattern, "%s", g.pattern);
	if (!rc)
		rc = bus_commit(st, err);
	else
		bus_rollback(st);
	if (rc) {
		st->next_seq = seq0;
		st->last_ts = ts0;
		*res = (bus_poll_result){ 0 };
	}
	return rc;
}

int bus_group_ack(bus_store *st, const char *group, const int64_t *seqs, const int *deliveries,
		  size_t n, bool *acked, sdk_err *err)
{
	bus_group g;
	bool found;
	int rc = bus_begin(st, false, err);
	if (rc)
		return rc;
	rc = bus_group_load(st, group, &g, &found, err);
	if (!rc && !found)
		rc = sdk_fail(err, SDK_ENOTFOUND, "group %s does not exist", group);
	for (size_t i = 0; !rc && i < n; i++) {
		sqlite3_stmt *s = bus_stmt(st, S_ACK);
		if (bus_bind_text(s, 1, group) || sqlite3_bind_int64(s, 2, seqs[i]) ||
		    sqlite3_bind_int(s, 3, deliveries ? deliveries[i] : 0)) {
			rc = bus_fail_sql(st, err, "bind ack");
			break;
		}
		int step = sqlite3_step(s);
		sqlite3_reset(s);
		if (step != SQLITE_DONE)
			rc = bus_fail_sql(st, err, "ack");
		else
			acked[i] = sqlite3_changes(st->db) > 0;
	}
	if (!rc)
		rc = bus_commit(st, err);
	else
		bus_rollback(st);
	return rc;
}

/* ------------------------------------------------------- listings (JSON) */

static json_t *bus_col_json(sqlite3_stmt *s, int i)
{
	switch (sqlite3_column_type(s, i)) {
	case SQLITE_NULL: return json_null();
	case SQLITE_INTEGER: return json_integer(sqlite3_column_int64(s, i));
	default: return json_string(bus_col_text(s, i));
	}
}

/* Runs `sql` with `text` bound to ?1 (when not NULL) and returns its rows
 * as an array of objects keyed by `names` (one per column). Rows for which
 * keep(row) is false are left out. */
static int bus_rows_json(bus_store *st, const char *sql, const char *text,
			 const char *const *names, int ncols,
			 bool (*keep)(sqlite3_stmt *s, const void *arg), const void *arg,
			 json_t **out, sdk_err *err)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK)
		return bus_fail_sql(st, err, "prepare listing");
	json_t *arr = json_array();
	int rc = arr && (!text || bus_bind_text(s, 1, text) == SQLITE_OK) ? SQLITE_OK : SQLITE_NOMEM;
	while (rc == SQLITE_OK || rc == SQLITE_ROW) {
		rc = sqlite3_step(s);
		if (rc != SQLITE_ROW || (keep && !keep(s, arg)))
			continue;
		json_t *row = json_object();
		for (int i = 0; row && i < ncols; i++)
			if (json_object_set_new(row, names[i], bus_col_json(s, i)))
				json_decref(row), row = NULL;
		if (!row || json_array_append_new(arr, row))
			rc = SQLITE_NOMEM;
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		json_decref(arr);
		return rc == SQLITE_NOMEM ? sdk_fail(err, SDK_EIO, "out of memory") :
					    bus_fail_sql(st, err, "listing");
	}
	*out = arr;
	return SDK_OK;
}

#define BUS_GROUP_SELECT \
	"SELECT name, pattern, cursor, visibility_ms, max_deliveries, created_at," \
	" (SELECT count(*) FROM deliveries AS d WHERE d.grp = g.name) FROM groups AS g"

static const char *const bus_group_names[] = { "name", "subject", "cursor", "visibility_ms",
					       "max_deliveries", "created_at", "in_flight" };

static int bus_groups_json(bus_store *st, const char *group, json_t **out, sdk_err *err)
{
	json_t *arr;
	int rc = bus_rows_json(st, group ? BUS_GROUP_SELECT " WHERE name = ?1" :
					   BUS_GROUP_SELECT " ORDER BY name",
			       group, bus_group_names, 7, NULL, NULL, &arr, err);
	if (rc)
		return rc;
	size_t i;
	json_t *g;
	json_array_foreach (arr, i, g)
		json_object_set_new(g, "next_offset", json_integer(st->next_seq));
	*out = arr;
	return SDK_OK;
}

int bus_group_get(bus_store *st, const char *group, json_t **out, sdk_err *err)
{
	json_t *arr;
	int rc = bus_groups_json(st, group, &arr, err);
	if (rc)
		return rc;
	if (json_array_size(arr) == 0) {
		json_decref(arr);
		return sdk_fail(err, SDK_ENOTFOUND, "group %s does not exist", group);
	}
	*out = json_incref(json_array_get(arr, 0));
	json_decref(arr);
	return SDK_OK;
}

int bus_group_list(bus_store *st, json_t **out, sdk_err *err)
{
	return bus_groups_json(st, NULL, out, err);
}

static int bus_exec_bound(bus_store *st, const char *sql, const char *text, int *changes,
			  sdk_err *err)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK)
		return bus_fail_sql(st, err, "prepare");
	int rc = bus_bind_text(s, 1, text) == SQLITE_OK ? sqlite3_step(s) : SQLITE_ERROR;
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return bus_fail_sql(st, err, sql);
	if (changes)
		*changes = sqlite3_changes(st->db);
	return SDK_OK;
}

int bus_group_delete(bus_store *st, const char *group, sdk_err *err)
{
	int changes = 0;
	int rc = bus_begin(st, false, err);
	if (rc)
		return rc;
	rc = bus_exec_bound(st, "DELETE FROM deliveries WHERE grp = ?1", group, NULL, err);
	if (!rc)
		rc = bus_exec_bound(st, "DELETE FROM groups WHERE name = ?1", group, &changes, err);
	if (!rc && changes == 0)
		rc = sdk_fail(err, SDK_ENOTFOUND, "group %s does not exist", group);
	if (!rc)
		return bus_commit(st, err);
	bus_rollback(st);
	return rc;
}

static bool bus_keep_matching(sqlite3_stmt *s, const void *pattern)
{
	return bus_pattern_match(pattern, bus_col_text(s, 0));
}

int bus_subjects_list(bus_store *st, const char *pattern, json_t **out, sdk_err *err)
{
	static const char *const names[] = { "subject", "count", "first_offset", "last_offset" };
	return bus_rows_json(st,
			     "SELECT subject, count, first_seq, last_seq FROM subjects"
			     " ORDER BY subject",
			     NULL, names, 4, pattern ? bus_keep_matching : NULL, pattern, out, err);
}

/* -------------------------------------------------------------- retention */

int bus_retention_set(bus_store *st, const char *pattern, int64_t max_count, int64_t max_age_ms,
		      int64_t now_ms, sdk_err *err)
{
	if (max_count < 0 && max_age_ms < 0)
		return sdk_fail(err, SDK_EINVAL, "set max_count, max_age_ms or both");
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(st->db,
			       "INSERT OR REPLACE INTO retention (pattern, max_count, max_age_ms,"
			       " updated_at) VALUES (?1, ?2, ?3, ?4)",
			       -1, &s, NULL) != SQLITE_OK)
		return bus_fail_sql(st, err, "prepare retention");
	int rc = SQLITE_ERROR;
	if (!bus_bind_text(s, 1, pattern) && !sqlite3_bind_int64(s, 2, max_count) &&
	    !sqlite3_bind_int64(s, 3, max_age_ms) && !sqlite3_bind_int64(s, 4, now_ms))
		rc = sqlite3_step(s);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? SDK_OK : bus_fail_sql(st, err, "set retention");
}

int bus_retention_delete(bus_store *st, const char *pattern, sdk_err *err)
{
	int changes = 0;
	int rc = bus_exec_bound(st, "DELETE FROM retention WHERE pattern = ?1", pattern, &changes,
				err);
	if (!rc && changes == 0)
		rc = sdk_fail(err, SDK_ENOTFOUND, "no retention rule for %s", pattern);
	return rc;
}

int bus_retention_list(bus_store *st, json_t **out, sdk_err *err)
{
	static const char *const names[] = { "pattern", "max_count", "max_age_ms", "updated_at" };
	json_t *arr;
	int rc = bus_rows_json(st,
			       "SELECT pattern, nullif(max_count, -1), nullif(max_age_ms, -1),"
			       " updated_at FROM retention ORDER BY pattern",
			       NULL, names, 4, NULL, NULL, &arr, err);
	if (!rc)
		*out = arr;
	return rc;
}

struct bus_rule {
	char *pattern;
	int64_t max_count, max_age_ms;
};

struct bus_subject_row {
	char *subject;
	int64_t count;
};

struct bus_retention {
	bus_store *st;
	struct bus_rule *rules;
	size_t n_rules;
	struct bus_subject_row *subjects;
	size_t n_subjects;
	int64_t now_ms;
	size_t budget, deleted;
	sdk_err *err;
};

static void bus_retention_free(struct bus_retention *r)
{
	for (size_t i = 0; i < r->n_rules; i++)
		free(r->rules[i].pattern);
	for (size_t i = 0; i < r->n_subjects; i++)
		free(r->subjects[i].subject);
	free(r->rules);
	free(r->subjects);
}

/* Reads a two-or-three column listing into memory, so deleting rows later
 * never happens under an open statement. */
static int bus_retention_load(struct bus_retention *r)
{
	sqlite3_stmt *s;
	sqlite3 *db = r->st->db;
	int rc = sqlite3_prepare_v2(db, "SELECT pattern, max_count, max_age_ms FROM retention", -1,
				    &s, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct bus_rule *n = realloc(r->rules, (r->n_rules + 1) * sizeof *n);
		char *p = n ? strdup(bus_col_text(s, 0)) : NULL;
		if (n)
			r->rules = n;
		if (!p) {
			rc = SQLITE_NOMEM;
			break;
		}
		r->rules[r->n_rules++] = (struct bus_rule){ p, sqlite3_column_int64(s, 1),
							    sqlite3_column_int64(s, 2) };
		rc = SQLITE_OK;
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return bus_fail_sql(r->st, r->err, "read retention");
	if (r->n_rules == 0)
		return SDK_OK;
	rc = sqlite3_prepare_v2(db, "SELECT subject, count FROM subjects", -1, &s, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct bus_subject_row *n = realloc(r->subjects, (r->n_subjects + 1) * sizeof *n);
		char *p = n ? strdup(bus_col_text(s, 0)) : NULL;
		if (n)
			r->subjects = n;
		if (!p) {
			rc = SQLITE_NOMEM;
			break;
		}
		r->subjects[r->n_subjects++] = (struct bus_subject_row){ p, sqlite3_column_int64(s, 1) };
		rc = SQLITE_OK;
	}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? SDK_OK : bus_fail_sql(r->st, r->err, "read subjects");
}

/* The seq of the n-th oldest message of a subject (n >= 1) whose ts is
 * below `before` (INT64_MAX: any), or 0 when there is none: the oldest
 * messages form a prefix, so the walk stops at the first one too young. */
static int bus_cut_point(struct bus_retention *r, const char *subject, int64_t n, int64_t before,
			 int64_t *seq)
{
	sqlite3_stmt *s;
	*seq = 0;
	if (sqlite3_prepare_v2(r->st->db,
			       "SELECT seq, ts FROM messages WHERE subject = ?1 ORDER BY seq LIMIT ?2",
			       -1, &s, NULL) != SQLITE_OK)
		return bus_fail_sql(r->st, r->err, "prepare retention scan");
	int rc = SQLITE_ERROR;
	if (!bus_bind_text(s, 1, subject) && !sqlite3_bind_int64(s, 2, n))
		while ((rc = sqlite3_step(s)) == SQLITE_ROW && sqlite3_column_int64(s, 1) < before)
			*seq = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? SDK_OK :
						       bus_fail_sql(r->st, r->err, "retention scan");
}

/* Deletes a subject's messages up to and including `seq`; keeps the
 * summary row in step. */
static int bus_delete_through(struct bus_retention *r, struct bus_subject_row *sub, int64_t seq)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(r->st->db, "DELETE FROM messages WHERE subject = ?1 AND seq <= ?2",
			       -1, &s, NULL) != SQLITE_OK)
		return bus_fail_sql(r->st, r->err, "prepare delete");
	int rc = SQLITE_ERROR;
	if (!bus_bind_text(s, 1, sub->subject) && !sqlite3_bind_int64(s, 2, seq))
		rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return bus_fail_sql(r->st, r->err, "delete messages");
	int64_t gone = sqlite3_changes(r->st->db);
	r->deleted += (size_t)gone;
	r->budget -= (size_t)gone < r->budget ? (size_t)gone : r->budget;
	sub->count -= gone;
	const char *sql = sub->count > 0 ?
				  "UPDATE subjects SET count = ?2, first_seq = (SELECT min(seq)"
				  " FROM messages WHERE subject = ?1) WHERE subject = ?1" :
				  "DELETE FROM subjects WHERE subject = ?1";
	if (sqlite3_prepare_v2(r->st->db, sql, -1, &s, NULL) != SQLITE_OK)
		return bus_fail_sql(r->st, r->err, "prepare subject update");
	rc = SQLITE_ERROR;
	if (!bus_bind_text(s, 1, sub->subject) &&
	    (sub->count <= 0 || !sqlite3_bind_int64(s, 2, sub->count)))
		rc = sqlite3_step(s);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? SDK_OK : bus_fail_sql(r->st, r->err, "update subject");
}

static int bus_enforce_rule(struct bus_retention *r, struct bus_subject_row *sub,
			    const struct bus_rule *rule)
{
	int64_t seq;
	int rc;
	if (rule->max_count >= 0 && sub->count > rule->max_count && r->budget) {
		int64_t n = sub->count - rule->max_count;
		if (n > (int64_t)r->budget)
			n = (int64_t)r->budget;
		rc = bus_cut_point(r, sub->subject, n, INT64_MAX, &seq);
		if (!rc && seq)
			rc = bus_delete_through(r, sub, seq);
		if (rc)
			return rc;
	}
	if (rule->max_age_ms >= 0 && sub->count > 0 && r->budget) {
		rc = bus_cut_point(r, sub->subject, (int64_t)r->budget,
				   r->now_ms - rule->max_age_ms, &seq);
		if (!rc && seq)
			rc = bus_delete_through(r, sub, seq);
		if (rc)
			return rc;
	}
	return SDK_OK;
}

int bus_retention_enforce(bus_store *st, int64_t now_ms, size_t budget, size_t *deleted,
			  bool *more, sdk_err *err)
{
	struct bus_retention r = { .st = st, .now_ms = now_ms, .budget = budget, .err = err };
	*deleted = 0;
	*more = false;
	int rc = bus_begin(st, false, err);
	if (rc)
		return rc;
	rc = bus_retention_load(&r);
	for (size_t i = 0; !rc && i < r.n_subjects && r.budget; i++)
		for (size_t j = 0; !rc && j < r.n_rules; j++)
			if (bus_pattern_match(r.rules[j].pattern, r.subjects[i].subject))
				rc = bus_enforce_rule(&r, &r.subjects[i], &r.rules[j]);
	if (!rc)
		rc = bus_commit(st, err);
	else
		bus_rollback(st);
	if (!rc) {
		*deleted = r.deleted;
		*more = r.budget == 0;
	}
	bus_retention_free(&r);
	return rc;
}
