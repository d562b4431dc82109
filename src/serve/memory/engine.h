/* What the memory store's two engines share: SQLite (conn.c, tables.c,
 * rows.c, shares.c) and PostgreSQL (pg_*.c). The checks, the quota
 * messages and the JSON every answer is made of live here once, so both
 * engines give the same answers and the same errors by construction; an
 * engine only reads and writes its database. Not for callers: store.h. */
#ifndef GRACE_MEMORY_ENGINE_H
#define GRACE_MEMORY_ENGINE_H

#include "serve/layer.h"

#include "serve/memory/filter.h"
#include "serve/memory/store.h"

#include <stdbool.h>
#include <stdint.h>

#define MEM_DROP_MS_MAX 120000 /* dropping a large table takes longer than a query */

/* What a request resolved its table to. */
typedef struct mem_tinfo {
	int64_t id;
	char owner[MEM_NAME_MAX + 1];
	char name[MEM_NAME_MAX + 1];
	mem_columns cols;
	bool shared; /* reached through a share, not owned by the caller */
	bool fts;
} mem_tinfo;

/* A table as stored: what mem_table_render shows (strings borrowed). */
typedef struct mem_table_row {
	int64_t id;
	const char *owner, *name, *description, *columns; /* columns: JSON text */
	int64_t created_ms, rows, bytes;
} mem_table_row;

/* The table a call names: `owner` or, when NULL or "", the caller. */
const char *mem_owner_of(const char *user, const char *owner);

int mem_oom(sdk_err *e);
/* A database failure with status `st` (an sdk_status), with a reason fit
 * for the client for the statuses a client can act on; `detail` is the
 * engine's own message, kept for the others (the server log). */
int mem_fail_as(int st, sdk_err *e, const char *what, const char *detail);

/* An engine's resolve is its lookup between these two. Start: the name
 * checked, *t cleared, *own the owner meant; 1 when that is another user
 * (the table must be shared with the caller), 0 when it is the caller,
 * or a status. End: `found` is the lookup's 0 (t filled), 1 (no such
 * row) or status; a table reached through a share is read only. */
int mem_resolve_start(const char *user, const char *owner, const char *name, mem_tinfo *t,
		      const char **own, sdk_err *e);
int mem_resolve_end(int found, mem_tinfo *t, const char *name, const char *own, bool other,
		    bool write, sdk_err *e);
/* Fills `t` from a stored table; its columns from their JSON text. */
int mem_tinfo_fill(mem_tinfo *t, const mem_table_row *r, sdk_err *e);

/* A create's body: *name and *desc borrow from spec; *ctext (malloc'd)
 * is the declaration as stored; *cols the parsed columns. */
int mem_spec_parse(json_t *spec, const char **name, const char **desc, mem_columns *cols,
		   char **ctext, sdk_err *e);
int mem_table_taken(const char *name, sdk_err *e);
struct mem_engine;
/* One table as shown to `user` (a new object in *out); with_shares adds,
 * for its owner, who it is shared with (read through engine `en`'s
 * connection `c`). */
int mem_table_render(const struct mem_engine *en, void *c, const mem_table_row *r,
		     const char *user, bool with_shares, json_t **out, sdk_err *e);
/* {"tables": [...], "count"}: *out a new object; `tables` is borrowed. */
int mem_tables_answer(json_t *tables, json_t **out, sdk_err *e);
int mem_table_deleted(const char *name, json_t **out, sdk_err *e);

/* Quotas: 0, or SDK_EQUOTA naming the quota and its limit. */
int mem_quota_tables(const mem_quota *q, int64_t have, sdk_err *e);
int mem_quota_rows(const mem_quota *q, int64_t table_rows, int64_t user_rows, size_t n,
		   sdk_err *e);
int mem_quota_bytes(const mem_quota *q, int64_t have, sdk_err *e);

/* An insert's body: one row or an array; *n the number of rows. */
int mem_batch_check(json_t *rows, size_t *n, sdk_err *e);
/* Row i of the batch checked and encoded: 0 and *text, malloc'd compact
 * JSON of *len bytes, or a status with the reason (naming rows[i]). */
int mem_batch_encode(const mem_columns *cols, json_t *rows, size_t i, char **text, size_t *len,
		     sdk_err *e);
int mem_ids_answer(json_t *ids, size_t n, json_t **out, sdk_err *e);

/* {"id", "data", "created_ms", "updated_ms"}: `data` is the stored JSON. */
void mem_row_render(sdk_buf *out, int64_t id, const char *data, size_t len, int64_t created_ms,
		    int64_t updated_ms);
int mem_no_row(int64_t id, const char *table, sdk_err *e);
int mem_patch_check(json_t *patch, sdk_err *e);
/* The stored row with `patch` merged (null removes a key), checked:
 * *text malloc'd compact JSON of *len bytes. */
int mem_row_merge(const mem_columns *cols, const char *stored, size_t stored_len, int64_t id,
		  json_t *patch, char **text, size_t *len, sdk_err *e);
int mem_row_deleted(int64_t id, json_t **out, sdk_err *e);

/* A page of rows being written: the header, the rows, the cursor. */
typedef struct mem_page {
	const mem_order *order;
	const mem_cursor *cursor;
	const mem_filter *filter;
	const char *q; /* the full-text query, or NULL */
	unsigned limit;
	const mem_tinfo *t;
	/* filled as rows are read */
	unsigned got;
	char *next; /* malloc'd: the cursor after the last row shown */
	bool stop;  /* a row past the page was seen: there is more */
} mem_page;

/* The checks of a query that need no database: *limit and *fq (the
 * full-text query, NULL for none). */
int mem_query_check(const mem_query *q, unsigned *limit, const char **fq, sdk_err *e);
/* Parses where, order and cursor against the table: the caller clears
 * f and cur either way. */
int mem_query_parse(const mem_query *q, const mem_tinfo *t, const char *fq, mem_filter *f,
		    mem_order *ord, mem_cursor *cur, sdk_err *e);
void mem_page_head(sdk_buf *out, const mem_tinfo *t, const mem_order *o);
/* One row read by a pass: 1 when the page is full (p->stop), 0 when it
 * was added, or a status. `key` (stolen) is its sort key, unused by id. */
int mem_page_row(mem_page *p, sdk_buf *out, int64_t id, const char *data, size_t len,
		 int64_t created_ms, int64_t updated_ms, json_t *key, sdk_err *e);
int mem_page_end(mem_page *p, sdk_buf *out, sdk_err *e);
/* The passes of mem_keyset_passes to run, in order, with `pass_fn`. */
int mem_page_run(mem_page *p, sdk_buf *out, int (*pass_fn)(void *c, mem_page *p, int pass,
							   sdk_buf *out, sdk_err *e),
		 void *c, sdk_err *e);
int mem_bad_fts(const char *why, sdk_err *e);

/* A stored row as read back. */
typedef struct mem_row {
	int64_t id, created_ms, updated_ms;
	int64_t size; /* the bytes it counts for in the quota */
	char *data;   /* malloc'd JSON text of `len` bytes */
	size_t len;
} mem_row;

void mem_row_clear(mem_row *r);

/* An engine: the database steps every call of store.h is made of
 * (calls.c writes each call once over them). `c` is the engine's own
 * connection, held for one call. Each step returns 0 (or what it says)
 * or a negative sdk_status with the reason in `e`. */
typedef struct mem_engine {
	/* A connection (*c) for one call; put gives it back, rolling back
	 * what is left open. */
	int (*get)(mem_store *s, void **c, sdk_err *e);
	void (*put)(void *c);
	/* A read sees one snapshot; a write is all or nothing. `drop`: the
	 * transaction drops tables and may take MEM_DROP_MS_MAX. */
	int (*begin)(void *c, bool write, bool drop, sdk_err *e);
	int (*commit)(void *c, sdk_err *e);
	/* The table a call names, as the caller may reach it: SDK_ENOTFOUND
	 * (mem_no_table), SDK_EDENIED (a write to a shared table). */
	int (*resolve)(void *c, const char *user, const char *owner, const char *name, bool write,
		       mem_tinfo *t, sdk_err *e);

	/* Tables `user` owns, in a write transaction about to add one. */
	int (*tables_owned)(void *c, const char *user, int64_t *n, sdk_err *e);
	/* A new table (its row and its relations): *id; SDK_ECONFLICT when
	 * `user` has one of that name. `columns` is cols as stored JSON. */
	int (*table_add)(void *c, const char *user, const char *name, const char *desc,
			 const char *columns, const mem_columns *cols, int64_t now_ms, int64_t *id,
			 sdk_err *e);
	/* Table `id` as `user` sees it (with shared_with for its owner). */
	int (*table_show)(void *c, int64_t id, const char *user, json_t **out, sdk_err *e);
	/* Appends `user`'s tables, then those shared with them. */
	int (*table_list)(void *c, const char *user, json_t *tables, sdk_err *e);
	/* Drops table `id`: rows, indexes, shares. */
	int (*table_drop)(void *c, int64_t id, sdk_err *e);
	/* One table `user` owns, in a write transaction: 1 and *id, or 0. */
	int (*table_first)(void *c, const char *user, int64_t *id, sdk_err *e);
	/* After tables were dropped, outside a transaction: the space given
	 * back (or nothing); a failure loses nothing. */
	void (*reclaim)(void *c);

	/* Rows in the table, and in all its owner's tables (with bytes). */
	int (*usage)(void *c, const mem_tinfo *t, int64_t *table_rows, int64_t *user_rows,
		     int64_t *user_bytes, sdk_err *e);
	int (*counts_add)(void *c, int64_t table_id, int64_t rows, int64_t bytes, sdk_err *e);
	/* Stores n checked rows (text[i] of len[i] bytes); appends their ids
	 * to `ids` in the same order. */
	int (*rows_add)(void *c, const mem_tinfo *t, char *const *text, const size_t *len, size_t n,
			int64_t now_ms, json_t *ids, sdk_err *e);
	/* Row `id` (SDK_ENOTFOUND: mem_no_row); clear *r after. */
	int (*row_read)(void *c, const mem_tinfo *t, int64_t id, mem_row *r, sdk_err *e);
	int (*row_write)(void *c, const mem_tinfo *t, int64_t id, const char *text, size_t len,
			 int64_t now_ms, sdk_err *e);
	int (*row_remove)(void *c, const mem_tinfo *t, int64_t id, sdk_err *e);
	/* One keyset pass of a page (mem_page_run). */
	int (*page_pass)(void *c, mem_page *p, int pass, sdk_buf *out, sdk_err *e);

	/* Who table `table_id` is shared with: a new array. */
	int (*shares_json)(void *c, int64_t table_id, json_t **out, sdk_err *e);
	/* Grants (add) or takes back table `table_id` to `user`. */
	int (*share_set)(void *c, int64_t table_id, const char *user, bool add, int64_t now_ms,
			 sdk_err *e);
	int (*shares_count)(void *c, int64_t table_id, int64_t *n, sdk_err *e);
	/* Takes back every share given to `user`. */
	int (*shares_drop_user)(void *c, const char *user, sdk_err *e);
} mem_engine;

/* The steps of an engine as functions PREFIX_get, PREFIX_resolve, ...
 * (declared by MEM_ENGINE_DECLARE, gathered by MEM_ENGINE_INIT), so both
 * engines spell the interface the same way, from this one list. */
#define MEM_ENGINE_DECLARE(P)                                                                   \
	int P##_get(mem_store *s, void **c, sdk_err *e);                                         \
	void P##_put(void *c);                                                                   \
	int P##_begin(void *c, bool write, bool drop, sdk_err *e);                               \
	int P##_commit(void *c, sdk_err *e);                                                     \
	int P##_resolve(void *c, const char *user, const char *owner, const char *name,          \
			bool write, mem_tinfo *t, sdk_err *e);                                   \
	int P##_tables_owned(void *c, const char *user, int64_t *n, sdk_err *e);                 \
	int P##_table_add(void *c, const char *user, const char *name, const char *desc,         \
			  const char *columns, const mem_columns *cols, int64_t now_ms,          \
			  int64_t *id, sdk_err *e);                                              \
	int P##_table_show(void *c, int64_t id, const char *user, json_t **out, sdk_err *e);     \
	int P##_table_list(void *c, const char *user, json_t *tables, sdk_err *e);               \
	int P##_table_drop(void *c, int64_t id, sdk_err *e);                                     \
	int P##_table_first(void *c, const char *user, int64_t *id, sdk_err *e);                 \
	void P##_reclaim(void *c);                                                               \
	int P##_usage(void *c, const mem_tinfo *t, int64_t *table_rows, int64_t *user_rows,      \
		      int64_t *user_bytes, sdk_err *e);                                          \
	int P##_counts_add(void *c, int64_t table_id, int64_t rows, int64_t bytes, sdk_err *e);  \
	int P##_rows_add(void *c, const mem_tinfo *t, char *const *text, const size_t *len,      \
			 size_t n, int64_t now_ms, json_t *ids, sdk_err *e);                     \
	int P##_row_read(void *c, const mem_tinfo *t, int64_t id, mem_row *r, sdk_err *e);       \
	int P##_row_write(void *c, const mem_tinfo *t, int64_t id, const char *text, size_t len, \
			  int64_t now_ms, sdk_err *e);                                           \
	int P##_row_remove(void *c, const mem_tinfo *t, int64_t id, sdk_err *e);                 \
	int P##_page_pass(void *c, mem_page *p, int pass, sdk_buf *out, sdk_err *e);             \
	int P##_shares_json(void *c, int64_t table_id, json_t **out, sdk_err *e);                \
	int P##_share_set(void *c, int64_t table_id, const char *user, bool add, int64_t now_ms, \
			  sdk_err *e);                                                           \
	int P##_shares_count(void *c, int64_t table_id, int64_t *n, sdk_err *e);                 \
	int P##_shares_drop_user(void *c, const char *user, sdk_err *e)

#define MEM_ENGINE_INIT(P)                                                                      \
	{                                                                                        \
		.get = P##_get, .put = P##_put, .begin = P##_begin, .commit = P##_commit,        \
		.resolve = P##_resolve, .tables_owned = P##_tables_owned,                        \
		.table_add = P##_table_add, .table_show = P##_table_show,                        \
		.table_list = P##_table_list, .table_drop = P##_table_drop,                      \
		.table_first = P##_table_first, .reclaim = P##_reclaim, .usage = P##_usage,      \
		.counts_add = P##_counts_add, .rows_add = P##_rows_add,                          \
		.row_read = P##_row_read, .row_write = P##_row_write,                            \
		.row_remove = P##_row_remove, .page_pass = P##_page_pass,                        \
		.shares_json = P##_shares_json, .share_set = P##_share_set,                      \
		.shares_count = P##_shares_count, .shares_drop_user = P##_shares_drop_user,      \
	}

/* Shares: a user in a share request, the cap, and the answer (`sh`, a
 * new array, is stolen). */
int mem_share_user_check(json_t *u, size_t i, const char *owner, sdk_err *e);
int mem_shares_cap(int64_t n, sdk_err *e);
int mem_shares_answer(const mem_tinfo *t, json_t *sh, json_t **out, sdk_err *e);

#endif
