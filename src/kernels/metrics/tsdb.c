#include "kernels/metrics/tsdb.h"

#include "kernels/metrics/xorc.h"
#include "sdk/db.h"

#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define READERS_KEPT 8
#define HASH_MIN 4096
/* Rows deleted per statement when retention by size trims the oldest. */
#define TRIM_BATCH 2000

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS tsdb_series("
	"  id INTEGER PRIMARY KEY, labels TEXT NOT NULL, chunk_max_t INTEGER);"
	"CREATE TABLE IF NOT EXISTS tsdb_chunks("
	"  series INTEGER NOT NULL, min_t INTEGER NOT NULL, max_t INTEGER NOT NULL,"
	"  n INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY(series, min_t)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS tsdb_chunks_age ON tsdb_chunks(max_t);"
	"CREATE TABLE IF NOT EXISTS tsdb_heads("
	"  series INTEGER PRIMARY KEY, min_t INTEGER NOT NULL, max_t INTEGER NOT NULL,"
	"  data BLOB NOT NULL);"
	"CREATE TABLE IF NOT EXISTS tsdb_meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);";

bool tsdb_is_stale(double v)
{
	uint64_t u;
	memcpy(&u, &v, sizeof u);
	return u == TSDB_STALE_NAN_BITS;
}

double tsdb_stale_nan(void)
{
	uint64_t u = TSDB_STALE_NAN_BITS;
	double v;
	memcpy(&v, &u, sizeof v);
	return v;
}

static uint64_t vbits(double v)
{
	uint64_t u;
	memcpy(&u, &v, sizeof u);
	return u;
}

/* A sealed chunk waiting for a flush. */
typedef struct chunk {
	struct chunk *next;
	int64_t min_t, max_t;
	uint8_t *data;
	size_t len;
	unsigned n;
} chunk;

typedef struct series {
	uint32_t id;
	lbl_set *ls;
	struct series *hnext;
	xorc_app head;
	int64_t head_min_t;
	int64_t last_t;
	uint64_t last_v;
	bool has_last, last_known;
	bool persisted;  /* its row is in tsdb_series */
	bool head_dirty; /* changed since the last flush copied it */
	bool head_saved; /* a tsdb_heads row exists */
	chunk *sealed, *sealed_tail;
	/* Chunks on disk end at or before this (tsdb_select reads only those:
	 * a chunk written but not yet forgotten is read from memory). */
	int64_t persisted_max_t;
} series;

struct tsdb {
	pthread_mutex_t mu;
	tsdb_opts o;
	char data_dir[PATH_MAX];
	char name[64];
	sqlite3 *writer;
	pthread_mutex_t rmu;
	sqlite3 *readers[READERS_KEPT];
	size_t n_readers;
	series **by_id; /* index = id; NULL when removed */
	size_t cap_id;
	uint32_t next_id;
	series **hash;
	size_t n_hash;
	size_t n_series;
	idx *ix;
	bool flushing;
	uint32_t *dead; /* removed series whose rows the next flush deletes */
	size_t n_dead, cap_dead;
	tsdb_stats st;
};

/* ---- series table in memory */

static series *find_locked(const tsdb *db, const lbl_set *ls)
{
	for (series *s = db->hash[ls->hash % db->n_hash]; s; s = s->hnext)
		if (lbl_eq(s->ls, ls))
			return s;
	return NULL;
}

static void hash_grow(tsdb *db)
{
	size_t n = db->n_hash * 2;
	series **h = calloc(n, sizeof *h);
	if (!h)
		return;
	for (size_t i = 0; i < db->n_hash; i++)
		for (series *s = db->hash[i], *nx; s; s = nx) {
			nx = s->hnext;
			s->hnext = h[s->ls->hash % n];
			h[s->ls->hash % n] = s;
		}
	free(db->hash);
	db->hash = h;
	db->n_hash = n;
}

/* Takes ownership of `ls`. */
static series *series_add(tsdb *db, uint32_t id, lbl_set *ls)
{
	if (id >= db->cap_id) {
		size_t cap = db->cap_id ? db->cap_id : 1024;
		while (cap <= id)
			cap *= 2;
		series **n = realloc(db->by_id, cap * sizeof *n);
		if (!n)
			return NULL;
		memset(n + db->cap_id, 0, (cap - db->cap_id) * sizeof *n);
		db->by_id = n;
		db->cap_id = cap;
	}
	series *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->id = id;
	s->ls = ls;
	s->persisted_max_t = INT64_MIN;
	xorc_app_init(&s->head);
	if (idx_add(db->ix, id, ls) < 0) {
		free(s);
		return NULL;
	}
	db->by_id[id] = s;
	s->hnext = db->hash[ls->hash % db->n_hash];
	db->hash[ls->hash % db->n_hash] = s;
	if (++db->n_series > db->n_hash)
		hash_grow(db);
	if (id >= db->next_id)
		db->next_id = id + 1;
	return s;
}

static void series_free(series *s)
{
	for (chunk *c = s->sealed, *nx; c; c = nx) {
		nx = c->next;
		free(c->data);
		free(c);
	}
	xorc_app_free(&s->head);
	lbl_unref(s->ls);
	free(s);
}

static void series_remove(tsdb *db, series *s)
{
	series **pp = &db->hash[s->ls->hash % db->n_hash];
	while (*pp && *pp != s)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = s->hnext;
	idx_remove(db->ix, s->id, s->ls);
	db->by_id[s->id] = NULL;
	db->n_series--;
	db->st.series_removed++;
	if (s->persisted) {
		if (db->n_dead == db->cap_dead) {
			size_t cap = db->cap_dead ? db->cap_dead * 2 : 64;
			uint32_t *n = realloc(db->dead, cap * sizeof *n);
			if (n) {
				db->dead = n;
				db->cap_dead = cap;
			}
		}
		if (db->n_dead < db->cap_dead)
			db->dead[db->n_dead++] = s->id;
	}
	series_free(s);
}

/* The head becomes a sealed chunk; a new head starts. */
static void seal(series *s)
{
	chunk *c = calloc(1, sizeof *c);
	if (!c)
		return; /* the head just grows: a longer chunk, nothing lost */
	c->min_t = s->head_min_t;
	c->max_t = s->head.t;
	c->len = xorc_bytes(&s->head);
	c->n = s->head.n;
	c->data = s->head.buf;
	uint8_t *shrunk = realloc(c->data, c->len);
	if (shrunk)
		c->data = shrunk;
	s->head.buf = NULL;
	xorc_app_init(&s->head);
	if (s->sealed_tail)
		s->sealed_tail->next = c;
	else
		s->sealed = c;
	s->sealed_tail = c;
	s->head_dirty = true;
}

static int append_locked(tsdb *db, const lbl_set *ls, int64_t t, double v)
{
	series *s = find_locked(db, ls);
	if (!s) {
		if (db->n_series >= db->o.max_series) {
			db->st.series_refused++;
			return TSDB_SERIES_LIMIT;
		}
		lbl_set *copy = lbl_dup(ls);
		if (!copy)
			return TSDB_NOMEM;
		s = series_add(db, db->next_id, copy);
		if (!s) {
			lbl_unref(copy);
			return TSDB_NOMEM;
		}
	}
	uint64_t vb = vbits(v);
	if (s->has_last) {
		if (t < s->last_t) {
			db->st.out_of_order++;
			return TSDB_OUT_OF_ORDER;
		}
		if (t == s->last_t) {
			if (!s->last_known || vb == s->last_v)
				return TSDB_DUPLICATE;
			db->st.duplicate_ts++;
			return TSDB_DUPLICATE_TS;
		}
	}
	if (s->head.n && (s->head.n >= db->o.chunk_samples || t - s->head_min_t > TSDB_CHUNK_SPAN_MS))
		seal(s);
	if (xorc_append(&s->head, t, v) < 0)
		return TSDB_NOMEM;
	if (s->head.n == 1)
		s->head_min_t = t;
	s->last_t = t;
	s->last_v = vb;
	s->has_last = s->last_known = true;
	s->head_dirty = true;
	db->st.appended++;
	if (t > db->st.max_t)
		db->st.max_t = t;
	if (t < db->st.min_t)
		db->st.min_t = t;
	return TSDB_APPENDED;
}

int tsdb_append(tsdb *db, const lbl_set *ls, int64_t t, double v)
{
	pthread_mutex_lock(&db->mu);
	int rc = append_locked(db, ls, t, v);
	pthread_mutex_unlock(&db->mu);
	return rc;
}

size_t tsdb_append_many(tsdb *db, lbl_set *const *ls, const int64_t *t, const double *v,
			size_t n, int *results)
{
	size_t ok = 0;
	pthread_mutex_lock(&db->mu);
	for (size_t i = 0; i < n; i++) {
		int rc = append_locked(db, ls[i], t[i], v[i]);
		if (results)
			results[i] = rc;
		ok += rc == TSDB_APPENDED;
	}
	pthread_mutex_unlock(&db->mu);
	return ok;
}

/* ---- open and close */

static char *labels_json(const lbl_set *ls)
{
	json_t *o = json_object();
	for (uint32_t i = 0; i < ls->n; i++)
		json_object_set_new(o, ls->p[i].name, json_string(ls->p[i].value));
	char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	return s;
}

static lbl_set *labels_parse(const char *text)
{
	json_t *o = json_loads(text, 0, NULL);
	if (!json_is_object(o) || json_object_size(o) > LBL_PAIRS_MAX) {
		json_decref(o);
		return NULL;
	}
	lbl_pair p[LBL_PAIRS_MAX];
	size_t n = 0;
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v) {
		p[n].name = k;
		p[n++].value = json_string_value(v) ? json_string_value(v) : "";
	}
	lbl_set *ls = lbl_new(p, n, NULL);
	json_decref(o);
	return ls;
}

static int open_conn(tsdb *db, sqlite3 **out, sdk_err *err)
{
	sdk_db_check check = { .skip = true };
	return sdk_db_open_checked(db->data_dir, db->name, &check, out, err);
}

static int64_t meta_get(sqlite3 *w, const char *key)
{
	sqlite3_stmt *st;
	int64_t v = 0;
	if (sqlite3_prepare_v2(w, "SELECT value FROM tsdb_meta WHERE key=?", -1, &st, NULL) !=
	    SQLITE_OK)
		return 0;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static int load(tsdb *db, sdk_err *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db->writer, "SELECT id, labels, chunk_max_t FROM tsdb_series ORDER BY id",
			       -1, &st, NULL) != SQLITE_OK)
		return sdk_db_fail(db->writer, err, "reading series");
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		uint32_t id = (uint32_t)sqlite3_column_int64(st, 0);
		lbl_set *ls = labels_parse((const char *)sqlite3_column_text(st, 1));
		if (!ls) {
			sqlite3_finalize(st);
			return sdk_fail(err, SDK_ECORRUPT, "series %u: labels unreadable", id);
		}
		series *s = series_add(db, id, ls);
		if (!s) {
			lbl_unref(ls);
			sqlite3_finalize(st);
			return sdk_fail(err, SDK_EIO, "out of memory");
		}
		s->persisted = true;
		if (sqlite3_column_type(st, 2) != SQLITE_NULL) {
			s->persisted_max_t = sqlite3_column_int64(st, 2);
			s->last_t = s->persisted_max_t;
			s->has_last = true;
			s->last_known = false;
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return sdk_db_fail(db->writer, err, "reading series");
	if (sqlite3_prepare_v2(db->writer, "SELECT series, min_t, data FROM tsdb_heads", -1, &st,
			       NULL) != SQLITE_OK)
		return sdk_db_fail(db->writer, err, "reading heads");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		uint32_t id = (uint32_t)sqlite3_column_int64(st, 0);
		series *s = id < db->cap_id ? db->by_id[id] : NULL;
		if (!s)
			continue;
		const uint8_t *d = sqlite3_column_blob(st, 2);
		size_t len = (size_t)sqlite3_column_bytes(st, 2);
		if (xorc_app_load(&s->head, d, len) < 0) {
			sqlite3_finalize(st);
			return sdk_fail(err, SDK_ECORRUPT, "series %u: head chunk unreadable", id);
		}
		s->head_saved = true;
		if (s->head.n) {
			s->head_min_t = sqlite3_column_int64(st, 1);
			s->last_t = s->head.t;
			s->last_v = s->head.v;
			s->has_last = s->last_known = true;
			db->st.head_samples += s->head.n;
		}
		if (s->last_t > db->st.max_t)
			db->st.max_t = s->last_t;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return sdk_db_fail(db->writer, err, "reading heads");
	db->st.disk_bytes = (uint64_t)meta_get(db->writer, "bytes");
	db->st.disk_samples = (uint64_t)meta_get(db->writer, "samples");
	db->st.disk_chunks = (uint64_t)meta_get(db->writer, "chunks");
	if (db->st.disk_chunks) {
		if (sqlite3_prepare_v2(db->writer, "SELECT min(min_t), max(max_t) FROM tsdb_chunks",
				       -1, &st, NULL) == SQLITE_OK) {
			if (sqlite3_step(st) == SQLITE_ROW) {
				int64_t lo = sqlite3_column_int64(st, 0), hi = sqlite3_column_int64(st, 1);
				if (lo < db->st.min_t)
					db->st.min_t = lo;
				if (hi > db->st.max_t)
					db->st.max_t = hi;
			}
			sqlite3_finalize(st);
		}
	}
	for (size_t i = 0; i < db->cap_id; i++)
		if (db->by_id[i] && db->by_id[i]->head.n && db->by_id[i]->head_min_t < db->st.min_t)
			db->st.min_t = db->by_id[i]->head_min_t;
	return 0;
}

tsdb *tsdb_open(const char *data_dir, const char *name, const tsdb_opts *o, sdk_err *err)
{
	tsdb *db = calloc(1, sizeof *db);
	if (!db) {
		sdk_fail(err, SDK_EIO, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&db->mu, NULL);
	pthread_mutex_init(&db->rmu, NULL);
	db->o = *o;
	if (!db->o.chunk_samples)
		db->o.chunk_samples = TSDB_CHUNK_SAMPLES_DEFAULT;
	if (db->o.chunk_samples > XORC_SAMPLES_MAX)
		db->o.chunk_samples = XORC_SAMPLES_MAX;
	if (!db->o.max_series)
		db->o.max_series = SIZE_MAX;
	db->next_id = 1;
	db->st.min_t = INT64_MAX;
	db->st.max_t = INT64_MIN;
	snprintf(db->data_dir, sizeof db->data_dir, "%s", data_dir);
	snprintf(db->name, sizeof db->name, "%s", name);
	db->n_hash = HASH_MIN;
	db->hash = calloc(db->n_hash, sizeof *db->hash);
	db->ix = idx_new();
	if (!db->hash || !db->ix) {
		sdk_fail(err, SDK_EIO, "out of memory");
		tsdb_close(db);
		return NULL;
	}
	sdk_err why;
	if (open_conn(db, &db->writer, err) < 0 ||
	    (sdk_db_exec(db->writer, schema, &why) < 0 &&
	     sdk_fail(err, SDK_EIO, "creating the series tables: %s", why.msg)) ||
	    load(db, err) < 0) {
		tsdb_close(db);
		return NULL;
	}
	return db;
}

void tsdb_close(tsdb *db)
{
	if (!db)
		return;
	for (size_t i = 0; i < db->cap_id; i++)
		if (db->by_id[i])
			series_free(db->by_id[i]);
	free(db->by_id);
	free(db->hash);
	free(db->dead);
	idx_free(db->ix);
	for (size_t i = 0; i < db->n_readers; i++)
		sqlite3_close(db->readers[i]);
	if (db->writer)
		sqlite3_close(db->writer);
	pthread_mutex_destroy(&db->mu);
	pthread_mutex_destroy(&db->rmu);
	free(db);
}

/* ---- flush */

struct fl_new {
	uint32_t id;
	char *json;
};

struct fl_chunk {
	uint32_t id;
	chunk *c; /* owned by the series until done */
};

struct fl_head {
	uint32_t id;
	uint8_t *data; /* a copy; NULL: delete the row (the head was sealed empty) */
	size_t len;
	int64_t min_t, max_t;
};

struct tsdb_flush {
	tsdb *db;
	struct fl_new *nw;
	size_t n_nw;
	struct fl_chunk *ch;
	size_t n_ch;
	struct fl_head *hd;
	size_t n_hd;
	uint32_t *del;
	size_t n_del;
	bool retention;
	int64_t cutoff;
	uint64_t max_bytes;
	/* results */
	int rc;
	sdk_err err;
	uint64_t add_bytes, add_samples, add_chunks;
	uint64_t del_bytes, del_samples, del_chunks;
	uint64_t store_bytes;
};

static void flush_free(tsdb_flush *f)
{
	for (size_t i = 0; i < f->n_nw; i++)
		free(f->nw[i].json);
	for (size_t i = 0; i < f->n_hd; i++)
		free(f->hd[i].data);
	free(f->nw);
	free(f->ch);
	free(f->hd);
	free(f->del);
	free(f);
}

tsdb_flush *tsdb_flush_prepare(tsdb *db, int64_t now_ms, bool retention)
{
	pthread_mutex_lock(&db->mu);
	if (db->flushing) {
		pthread_mutex_unlock(&db->mu);
		return NULL;
	}
	tsdb_flush *f = calloc(1, sizeof *f);
	if (!f) {
		pthread_mutex_unlock(&db->mu);
		return NULL;
	}
	f->db = db;
	f->retention = retention && (db->o.retention_ms > 0 || db->o.retention_bytes > 0);
	f->cutoff = db->o.retention_ms > 0 ? now_ms - db->o.retention_ms : INT64_MIN;
	f->max_bytes = db->o.retention_bytes;
	/* Series with nothing left inside retention go now. */
	if (f->retention && db->o.retention_ms > 0)
		for (size_t i = 0; i < db->cap_id; i++) {
			series *s = db->by_id[i];
			if (s && s->has_last && s->last_t < f->cutoff)
				series_remove(db, s);
		}
	size_t n_new = 0, n_ch = 0, n_hd = 0;
	for (size_t i = 0; i < db->cap_id; i++) {
		series *s = db->by_id[i];
		if (!s)
			continue;
		n_new += !s->persisted;
		for (chunk *c = s->sealed; c; c = c->next)
			n_ch++;
		n_hd += s->head_dirty;
	}
	f->nw = calloc(n_new + 1, sizeof *f->nw);
	f->ch = calloc(n_ch + 1, sizeof *f->ch);
	f->hd = calloc(n_hd + 1, sizeof *f->hd);
	f->del = calloc(db->n_dead + 1, sizeof *f->del);
	if (!f->nw || !f->ch || !f->hd || !f->del) {
		pthread_mutex_unlock(&db->mu);
		flush_free(f);
		return NULL;
	}
	if (db->n_dead)
		memcpy(f->del, db->dead, db->n_dead * sizeof *f->del);
	f->n_del = db->n_dead;
	for (size_t i = 0; i < db->cap_id; i++) {
		series *s = db->by_id[i];
		if (!s)
			continue;
		if (!s->persisted) {
			f->nw[f->n_nw].id = s->id;
			if (!(f->nw[f->n_nw].json = labels_json(s->ls)))
				continue; /* out of memory: its chunks wait too */
			f->n_nw++;
		}
		for (chunk *c = s->sealed; c; c = c->next)
			f->ch[f->n_ch++] = (struct fl_chunk){ s->id, c };
		if (s->head_dirty) {
			struct fl_head *h = &f->hd[f->n_hd];
			h->id = s->id;
			size_t len = xorc_bytes(&s->head);
			if (len) {
				h->data = malloc(len);
				if (!h->data)
					continue;
				memcpy(h->data, s->head.buf, len);
				h->len = len;
				h->min_t = s->head_min_t;
				h->max_t = s->head.t;
			}
			s->head_dirty = false;
			f->n_hd++;
		}
	}
	if (!f->n_nw && !f->n_ch && !f->n_hd && !f->n_del && !f->retention) {
		pthread_mutex_unlock(&db->mu);
		flush_free(f);
		return NULL;
	}
	db->flushing = true;
	pthread_mutex_unlock(&db->mu);
	return f;
}

static int step_done(sqlite3 *w, sqlite3_stmt *st, tsdb_flush *f, const char *what)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE)
		return f->rc = sdk_db_fail(w, &f->err, what);
	return 0;
}

/* Deletes chunks matching `where` (bound to x), counting what goes. */
static int delete_chunks(sqlite3 *w, tsdb_flush *f, const char *count_sql, const char *del_sql,
			 int64_t x)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(w, count_sql, -1, &st, NULL) != SQLITE_OK)
		return f->rc = sdk_db_fail(w, &f->err, "retention");
	sqlite3_bind_int64(st, 1, x);
	if (sqlite3_step(st) == SQLITE_ROW) {
		f->del_bytes += (uint64_t)sqlite3_column_int64(st, 0);
		f->del_samples += (uint64_t)sqlite3_column_int64(st, 1);
		f->del_chunks += (uint64_t)sqlite3_column_int64(st, 2);
	}
	sqlite3_finalize(st);
	if (sqlite3_prepare_v2(w, del_sql, -1, &st, NULL) != SQLITE_OK)
		return f->rc = sdk_db_fail(w, &f->err, "retention");
	sqlite3_bind_int64(st, 1, x);
	int rc = step_done(w, st, f, "retention");
	sqlite3_finalize(st); /* step_done only resets: a statement left open keeps the connection */
	return rc;
}

static uint64_t store_bytes(sqlite3 *w)
{
	int64_t pages = 0, free_pages = 0, size = 0;
	sqlite3_stmt *st;
	const char *q[] = { "PRAGMA page_count", "PRAGMA freelist_count", "PRAGMA page_size" };
	int64_t *out[] = { &pages, &free_pages, &size };
	for (int i = 0; i < 3; i++)
		if (sqlite3_prepare_v2(w, q[i], -1, &st, NULL) == SQLITE_OK) {
			if (sqlite3_step(st) == SQLITE_ROW)
				*out[i] = sqlite3_column_int64(st, 0);
			sqlite3_finalize(st);
		}
	return (uint64_t)((pages - free_pages) * size);
}

static int write_all(tsdb_flush *f, sqlite3 *w)
{
	sqlite3_stmt *ins_s = NULL, *ins_c = NULL, *upd_s = NULL, *put_h = NULL, *del_h = NULL;
	int rc = 0;
	if (sqlite3_prepare_v2(w, "INSERT OR REPLACE INTO tsdb_series(id, labels) VALUES(?,?)", -1,
			       &ins_s, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(w,
			       "INSERT OR REPLACE INTO tsdb_chunks(series, min_t, max_t, n, data) "
			       "VALUES(?,?,?,?,?)",
			       -1, &ins_c, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(w, "UPDATE tsdb_series SET chunk_max_t=max(coalesce(chunk_max_t,?),?) "
				  "WHERE id=?",
			       -1, &upd_s, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(w, "INSERT OR REPLACE INTO tsdb_heads(series, min_t, max_t, data) "
				  "VALUES(?,?,?,?)",
			       -1, &put_h, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(w, "DELETE FROM tsdb_heads WHERE series=?", -1, &del_h, NULL) !=
		    SQLITE_OK) {
		rc = f->rc = sdk_db_fail(w, &f->err, "flush");
		goto out;
	}
	for (size_t i = 0; i < f->n_nw && !rc; i++) {
		sqlite3_bind_int64(ins_s, 1, f->nw[i].id);
		sqlite3_bind_text(ins_s, 2, f->nw[i].json, -1, SQLITE_STATIC);
		rc = step_done(w, ins_s, f, "writing a series");
	}
	for (size_t i = 0; i < f->n_ch && !rc; i++) {
		chunk *c = f->ch[i].c;
		sqlite3_bind_int64(ins_c, 1, f->ch[i].id);
		sqlite3_bind_int64(ins_c, 2, c->min_t);
		sqlite3_bind_int64(ins_c, 3, c->max_t);
		sqlite3_bind_int64(ins_c, 4, c->n);
		sqlite3_bind_blob(ins_c, 5, c->data, (int)c->len, SQLITE_STATIC);
		rc = step_done(w, ins_c, f, "writing a chunk");
		if (!rc) {
			sqlite3_bind_int64(upd_s, 1, c->max_t);
			sqlite3_bind_int64(upd_s, 2, c->max_t);
			sqlite3_bind_int64(upd_s, 3, f->ch[i].id);
			rc = step_done(w, upd_s, f, "writing a series");
		}
		f->add_bytes += c->len;
		f->add_samples += c->n;
		f->add_chunks++;
	}
	for (size_t i = 0; i < f->n_hd && !rc; i++) {
		struct fl_head *h = &f->hd[i];
		if (h->data) {
			sqlite3_bind_int64(put_h, 1, h->id);
			sqlite3_bind_int64(put_h, 2, h->min_t);
			sqlite3_bind_int64(put_h, 3, h->max_t);
			sqlite3_bind_blob(put_h, 4, h->data, (int)h->len, SQLITE_STATIC);
			rc = step_done(w, put_h, f, "writing a head");
		} else {
			sqlite3_bind_int64(del_h, 1, h->id);
			rc = step_done(w, del_h, f, "writing a head");
		}
	}
	for (size_t i = 0; i < f->n_del && !rc; i++) {
		rc = delete_chunks(w, f,
				   "SELECT coalesce(sum(length(data)),0), coalesce(sum(n),0), count(*) "
				   "FROM tsdb_chunks WHERE series=?",
				   "DELETE FROM tsdb_chunks WHERE series=?", f->del[i]);
		if (!rc) {
			sqlite3_bind_int64(del_h, 1, f->del[i]);
			rc = step_done(w, del_h, f, "removing a series");
		}
		if (!rc) {
			char sql[96];
			snprintf(sql, sizeof sql, "DELETE FROM tsdb_series WHERE id=%u", f->del[i]);
			sdk_err why;
			if (sdk_db_exec(w, sql, &why) < 0)
				rc = f->rc = sdk_fail(&f->err, SDK_EIO, "removing a series: %s",
						      why.msg);
		}
	}
	if (!rc && f->retention && f->cutoff != INT64_MIN)
		rc = delete_chunks(w, f,
				   "SELECT coalesce(sum(length(data)),0), coalesce(sum(n),0), count(*) "
				   "FROM tsdb_chunks WHERE max_t < ?",
				   "DELETE FROM tsdb_chunks WHERE max_t < ?", f->cutoff);
	if (!rc && f->retention && f->max_bytes) {
		/* The oldest chunks go until the compressed bytes fit (SQLite's
		 * pages are larger by its overhead; docs/metrics.md measures it). */
		tsdb *db = f->db;
		for (int round = 0; round < 1000 && !rc; round++) {
			uint64_t chunks = db->st.disk_chunks + f->add_chunks - f->del_chunks;
			uint64_t bytes = db->st.disk_bytes + f->add_bytes - f->del_bytes;
			if (bytes <= f->max_bytes || chunks == 0)
				break;
			uint64_t avg = bytes / chunks + 1;
			uint64_t n = (bytes - f->max_bytes + avg - 1) / avg;
			if (n > TRIM_BATCH)
				n = TRIM_BATCH;
			if (n == 0)
				n = 1;
			int64_t before = INT64_MIN;
			sqlite3_stmt *st;
			if (sqlite3_prepare_v2(w, "SELECT max_t FROM tsdb_chunks ORDER BY max_t LIMIT 1 "
						  "OFFSET ?",
					       -1, &st, NULL) != SQLITE_OK) {
				rc = f->rc = sdk_db_fail(w, &f->err, "retention");
				break;
			}
			sqlite3_bind_int64(st, 1, (int64_t)n - 1);
			if (sqlite3_step(st) == SQLITE_ROW)
				before = sqlite3_column_int64(st, 0);
			sqlite3_finalize(st);
			if (before == INT64_MIN)
				break;
			rc = delete_chunks(w, f,
					   "SELECT coalesce(sum(length(data)),0), coalesce(sum(n),0), "
					   "count(*) FROM tsdb_chunks WHERE max_t <= ?",
					   "DELETE FROM tsdb_chunks WHERE max_t <= ?", before);
		}
	}
out:
	sqlite3_finalize(ins_s);
	sqlite3_finalize(ins_c);
	sqlite3_finalize(upd_s);
	sqlite3_finalize(put_h);
	sqlite3_finalize(del_h);
	return rc;
}

void tsdb_flush_write(tsdb_flush *f)
{
	sqlite3 *w = f->db->writer;
	sdk_err why;
	if (sdk_db_exec(w, "BEGIN IMMEDIATE", &why) < 0) {
		f->rc = sdk_fail(&f->err, sdk_status_of_sqlite(sqlite3_extended_errcode(w)),
				 "flush: %s", why.msg);
		return;
	}
	if (write_all(f, w) == 0) {
		tsdb *db = f->db;
		/* The totals move with the chunks, in the same transaction. */
		int64_t bytes = (int64_t)(db->st.disk_bytes + f->add_bytes - f->del_bytes);
		int64_t samples = (int64_t)(db->st.disk_samples + f->add_samples - f->del_samples);
		int64_t chunks = (int64_t)(db->st.disk_chunks + f->add_chunks - f->del_chunks);
		char sql[256];
		snprintf(sql, sizeof sql,
			 "INSERT OR REPLACE INTO tsdb_meta VALUES('bytes',%lld),('samples',%lld),"
			 "('chunks',%lld)",
			 (long long)bytes, (long long)samples, (long long)chunks);
		if (sdk_db_exec(w, sql, &why) < 0 || sdk_db_exec(w, "COMMIT", &why) < 0)
			f->rc = sdk_fail(&f->err, sdk_status_of_sqlite(sqlite3_extended_errcode(w)),
					 "flush: %s", why.msg);
	}
	if (f->rc) {
		sdk_db_exec(w, "ROLLBACK", NULL);
		return;
	}
	f->store_bytes = store_bytes(w);
}

int tsdb_flush_done(tsdb *db, tsdb_flush *f, sdk_err *err)
{
	pthread_mutex_lock(&db->mu);
	int rc = f->rc;
	if (rc) {
		/* Nothing was written: what was copied is written next time. */
		for (size_t i = 0; i < f->n_hd; i++) {
			series *s = f->hd[i].id < db->cap_id ? db->by_id[f->hd[i].id] : NULL;
			if (s)
				s->head_dirty = true;
		}
		db->st.flush_failures++;
		if (err)
			*err = f->err;
	} else {
		for (size_t i = 0; i < f->n_nw; i++) {
			series *s = db->by_id[f->nw[i].id];
			if (s)
				s->persisted = true;
		}
		/* The chunks written were each series' oldest sealed ones. */
		for (size_t i = 0; i < f->n_ch; i++) {
			series *s = db->by_id[f->ch[i].id];
			chunk *c = f->ch[i].c;
			if (!s || s->sealed != c)
				continue; /* cannot happen: sealed lists only grow at the tail */
			s->sealed = c->next;
			if (!s->sealed)
				s->sealed_tail = NULL;
			if (c->max_t > s->persisted_max_t)
				s->persisted_max_t = c->max_t;
			free(c->data);
			free(c);
		}
		/* Removed series whose rows are gone now. */
		size_t k = 0;
		for (size_t i = 0; i < db->n_dead; i++) {
			bool done = false;
			for (size_t j = 0; j < f->n_del && !done; j++)
				done = f->del[j] == db->dead[i];
			if (!done)
				db->dead[k++] = db->dead[i];
		}
		db->n_dead = k;
		db->st.disk_bytes += f->add_bytes - f->del_bytes;
		db->st.disk_samples += f->add_samples - f->del_samples;
		db->st.disk_chunks += f->add_chunks - f->del_chunks;
		db->st.retention_deleted_chunks += f->del_chunks;
		db->st.store_bytes = f->store_bytes;
		db->st.flushes++;
		if (f->del_chunks && f->cutoff != INT64_MIN && db->st.min_t < f->cutoff)
			db->st.min_t = f->cutoff;
	}
	db->flushing = false;
	pthread_mutex_unlock(&db->mu);
	flush_free(f);
	return rc;
}

void tsdb_flush_cancel(tsdb *db, tsdb_flush *f)
{
	f->rc = sdk_fail(&f->err, SDK_EBUSY, "the flush did not run");
	tsdb_flush_done(db, f, NULL);
	db->st.flush_failures--; /* not a failure of the store */
}

int tsdb_flush_now(tsdb *db, int64_t now_ms, bool retention, sdk_err *err)
{
	tsdb_flush *f = tsdb_flush_prepare(db, now_ms, retention);
	if (!f)
		return 0;
	tsdb_flush_write(f);
	return tsdb_flush_done(db, f, err);
}

/* ---- queries */

static sqlite3 *reader_get(tsdb *db, sdk_err *err)
{
	pthread_mutex_lock(&db->rmu);
	sqlite3 *r = db->n_readers ? db->readers[--db->n_readers] : NULL;
	pthread_mutex_unlock(&db->rmu);
	if (!r && open_conn(db, &r, err) < 0)
		return NULL;
	return r;
}

static void reader_put(tsdb *db, sqlite3 *r)
{
	pthread_mutex_lock(&db->rmu);
	if (db->n_readers < READERS_KEPT) {
		db->readers[db->n_readers++] = r;
		r = NULL;
	}
	pthread_mutex_unlock(&db->rmu);
	if (r)
		sqlite3_close(r);
}

static int chunk_push(tsdb_series_copy *s, size_t *cap, int64_t min_t, int64_t max_t,
		      const void *data, size_t len)
{
	if (s->n == *cap) {
		size_t c = *cap ? *cap * 2 : 4;
		tsdb_chunk_copy *n = realloc(s->c, c * sizeof *n);
		if (!n)
			return -1;
		s->c = n;
		*cap = c;
	}
	uint8_t *d = malloc(len ? len : 1);
	if (!d)
		return -1;
	memcpy(d, data, len);
	s->c[s->n++] = (tsdb_chunk_copy){ min_t, max_t, d, len };
	return 0;
}

static int series_cmp(const void *a, const void *b)
{
	return lbl_cmp(((const tsdb_series_copy *)a)->ls, ((const tsdb_series_copy *)b)->ls);
}

void tsdb_selection_free(tsdb_selection *sel)
{
	for (size_t i = 0; i < sel->n; i++) {
		lbl_unref(sel->s[i].ls);
		for (size_t j = 0; j < sel->s[i].n; j++)
			free(sel->s[i].c[j].data);
		free(sel->s[i].c);
	}
	free(sel->s);
	sel->s = NULL;
	sel->n = 0;
}

int tsdb_select(tsdb *db, const idx_matcher *m, size_t nm, int64_t mint, int64_t maxt,
		bool labels_only, tsdb_selection *out, sdk_err *err)
{
	out->s = NULL;
	out->n = 0;
	uint32_t *ids = NULL;
	size_t n = 0;
	int64_t *persisted = NULL;
	size_t *caps = NULL;
	uint32_t *sids = NULL;
	int status = SDK_EIO;
	pthread_mutex_lock(&db->mu);
	if (idx_select(db->ix, m, nm, &ids, &n) < 0) {
		pthread_mutex_unlock(&db->mu);
		return sdk_fail(err, SDK_EIO, "out of memory");
	}
	out->s = calloc(n + 1, sizeof *out->s);
	persisted = calloc(n + 1, sizeof *persisted);
	caps = calloc(n + 1, sizeof *caps);
	sids = calloc(n + 1, sizeof *sids);
	if (!out->s || !persisted || !caps || !sids)
		goto oom_locked;
	for (size_t i = 0; i < n; i++) {
		series *s = db->by_id[ids[i]];
		if (!s || (s->has_last && s->last_t < mint))
			continue;
		tsdb_series_copy *c = &out->s[out->n];
		c->ls = lbl_dup(s->ls);
		if (!c->ls)
			goto oom_locked;
		out->n++;
		persisted[out->n - 1] = s->persisted_max_t;
		sids[out->n - 1] = s->id;
		if (labels_only)
			continue;
		for (chunk *k = s->sealed; k; k = k->next)
			if (k->max_t >= mint && k->min_t <= maxt &&
			    chunk_push(c, &caps[out->n - 1], k->min_t, k->max_t, k->data, k->len) < 0)
				goto oom_locked;
		if (s->head.n && s->head.t >= mint && s->head_min_t <= maxt &&
		    chunk_push(c, &caps[out->n - 1], s->head_min_t, s->head.t, s->head.buf,
			       xorc_bytes(&s->head)) < 0)
			goto oom_locked;
	}
	pthread_mutex_unlock(&db->mu);
	free(ids);
	ids = NULL;
	if (!labels_only) {
		sqlite3 *r = reader_get(db, err);
		if (!r) {
			status = SDK_EIO;
			goto fail;
		}
		sqlite3_stmt *st;
		if (sqlite3_prepare_v2(r,
				       "SELECT min_t, max_t, data FROM tsdb_chunks WHERE series=? AND "
				       "min_t BETWEEN ? AND ? AND max_t >= ? AND max_t <= ? ORDER BY min_t",
				       -1, &st, NULL) != SQLITE_OK) {
			status = sdk_db_fail(r, err, "reading chunks");
			reader_put(db, r);
			goto fail;
		}
		int rc = 0;
		for (size_t i = 0; i < out->n && !rc; i++) {
			tsdb_series_copy *c = &out->s[i];
			if (persisted[i] < mint)
				continue;
			/* The memory copies first in the list: disk chunks are older
			 * and go in front of them. */
			tsdb_chunk_copy *mem = c->c;
			size_t n_mem = c->n, cap = 0;
			c->c = NULL;
			c->n = 0;
			sqlite3_bind_int64(st, 1, sids[i]);
			sqlite3_bind_int64(st, 2, mint - TSDB_CHUNK_SPAN_MS);
			sqlite3_bind_int64(st, 3, maxt);
			sqlite3_bind_int64(st, 4, mint);
			sqlite3_bind_int64(st, 5, persisted[i]);
			int s;
			while ((s = sqlite3_step(st)) == SQLITE_ROW)
				if (chunk_push(c, &cap, sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1),
					       sqlite3_column_blob(st, 2),
					       (size_t)sqlite3_column_bytes(st, 2)) < 0) {
					s = SQLITE_NOMEM;
					break;
				}
			if (s != SQLITE_DONE)
				rc = sdk_db_fail(r, err, "reading chunks");
			sqlite3_reset(st);
			for (size_t j = 0; j < n_mem && !rc; j++) {
				if (c->n == cap) {
					size_t nc = cap ? cap * 2 : 4;
					tsdb_chunk_copy *nn = realloc(c->c, nc * sizeof *nn);
					if (!nn) {
						rc = sdk_fail(err, SDK_EIO, "out of memory");
						break;
					}
					c->c = nn;
					cap = nc;
				}
				c->c[c->n++] = mem[j];
				mem[j].data = NULL;
			}
			for (size_t j = 0; j < n_mem; j++)
				free(mem[j].data);
			free(mem);
		}
		sqlite3_finalize(st);
		reader_put(db, r);
		if (rc) {
			status = rc;
			goto fail;
		}
	}
	free(persisted);
	free(caps);
	free(sids);
	qsort(out->s, out->n, sizeof *out->s, series_cmp);
	return 0;
oom_locked:
	pthread_mutex_unlock(&db->mu);
	sdk_fail(err, SDK_EIO, "out of memory");
fail:
	free(ids);
	free(persisted);
	free(caps);
	free(sids);
	tsdb_selection_free(out);
	return status;
}

int tsdb_series_points(const tsdb_series_copy *s, int64_t mint, int64_t maxt, tsdb_point **pts,
		       size_t *n, size_t *cap)
{
	*n = 0;
	int64_t last = INT64_MIN;
	for (size_t i = 0; i < s->n; i++) {
		const tsdb_chunk_copy *c = &s->c[i];
		if (c->max_t < mint || c->min_t > maxt)
			continue;
		xorc_it it;
		xorc_it_init(&it, c->data, c->len);
		int64_t t;
		double v;
		while (xorc_next(&it, &t, &v)) {
			if (t > maxt)
				break;
			if (t < mint || t <= last)
				continue; /* overlapping chunks never repeat a sample */
			if (*n == *cap) {
				size_t nc = *cap ? *cap * 2 : 256;
				tsdb_point *np = realloc(*pts, nc * sizeof *np);
				if (!np)
					return SDK_EIO;
				*pts = np;
				*cap = nc;
			}
			(*pts)[(*n)++] = (tsdb_point){ t, v };
			last = t;
		}
		if (it.bad)
			return SDK_ECORRUPT;
	}
	return 0;
}

static int strings_copy(const char **in, size_t n, char ***out)
{
	*out = calloc(n + 1, sizeof **out);
	if (!*out)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!((*out)[i] = strdup(in[i]))) {
			tsdb_strings_free(*out, i);
			*out = NULL;
			return -1;
		}
	return 0;
}

int tsdb_label_names(tsdb *db, char ***out, size_t *n)
{
	const char **names;
	pthread_mutex_lock(&db->mu);
	int rc = idx_names(db->ix, &names, n);
	if (rc == 0)
		rc = strings_copy(names, *n, out);
	pthread_mutex_unlock(&db->mu);
	free(names);
	return rc;
}

int tsdb_label_values(tsdb *db, const char *name, char ***out, size_t *n)
{
	const char **vals;
	pthread_mutex_lock(&db->mu);
	int rc = idx_values(db->ix, name, &vals, n);
	if (rc == 0)
		rc = strings_copy(vals, *n, out);
	pthread_mutex_unlock(&db->mu);
	free(vals);
	return rc;
}

void tsdb_strings_free(char **s, size_t n)
{
	if (!s)
		return;
	for (size_t i = 0; i < n; i++)
		free(s[i]);
	free(s);
}

void tsdb_get_stats(tsdb *db, tsdb_stats *st)
{
	pthread_mutex_lock(&db->mu);
	*st = db->st;
	st->series = db->n_series;
	st->head_samples = st->head_bytes = st->head_chunks = 0;
	for (size_t i = 0; i < db->cap_id; i++) {
		series *s = db->by_id[i];
		if (!s)
			continue;
		if (s->head.n) {
			st->head_samples += s->head.n;
			st->head_bytes += xorc_bytes(&s->head);
			st->head_chunks++;
		}
		for (chunk *c = s->sealed; c; c = c->next) {
			st->head_samples += c->n;
			st->head_bytes += c->len;
			st->head_chunks++;
		}
	}
	pthread_mutex_unlock(&db->mu);
}
