/* The index writer: collect, flush, remove, build, check. */
#include "kernels/librarian/index.h"

#include "kernels/librarian/block.h"
#include "kernels/librarian/flushrows.h"

#include "sdk/buf.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
	ST_META_GET,
	ST_META_PUT,
	ST_TERM_GET,
	ST_TERM_UPD,
	ST_TERM_DEL,
	ST_TERM_PUT,
	ST_NEW_POSTS,
	ST_NEW_BLOCKS,
	ST_TAILS_PUT,
	ST_BLOCK_FIND,
	ST_TAIL_FIND,
	ST_TAIL_GET,
	ST_TAIL_PUT,
	ST_TAIL_DEL,
	ST_BLOCK_INS,
	ST_BLOCK_DEL,
	ST_BLOCK_UPD,
	ST_POST_GET,
	ST_POST_INS,
	ST_POST_UPD,
	ST_POST_DEL,
	ST_POST_MAX,
	ST_DOC_GET,
	ST_DOC_INS,
	ST_DOC_DEL,
	ST_TEXT_GET,
	ST_PEND_INS,
	ST_PEND_DEL,
	ST_PEND_LIST,
	ST_COUNT
};

static const char *const sql[ST_COUNT] = {
	[ST_META_GET] = LIB_IX_SQL_META,
	[ST_META_PUT] = "UPDATE ix_meta SET docs = ?1, tokens = ?2, gen = ?3, next_term = ?4,"
			" complete = ?5 WHERE id = 1",
	[ST_TERM_GET] = "SELECT id, df FROM ix_terms WHERE term = ?1",
	[ST_TERM_UPD] = "UPDATE ix_terms SET df = ?2, gen = ?3 WHERE term = ?1",
	[ST_TERM_DEL] = "DELETE FROM ix_terms WHERE term = ?1",
	/* A flush's words in one statement (flushrows.h); WHERE 1 tells the
	 * parser that ON CONFLICT is the upsert's, not a join's ON. */
	[ST_TERM_PUT] = "INSERT INTO ix_terms (term, id, df, gen)"
			" SELECT term, id, df, ?2 FROM lib_term_rows(?1) WHERE 1"
			" ON CONFLICT (term) DO UPDATE SET df = excluded.df, gen = excluded.gen",
	/* The flush's deferred blocks (flushrows.h): the full blocks it made,
	 * their postings then their block rows, and every tail it rewrote,
	 * each in place by its term (an upsert: one row change a word). */
	[ST_NEW_POSTS] = "INSERT INTO ix_posts (id, docs, pos)"
			 " SELECT post, docs, pos FROM lib_tail_rows(?1) WHERE post != 0",
	[ST_NEW_BLOCKS] = "INSERT INTO ix_blocks (term, last, n, bound, post)"
			  " SELECT term, last, n, bound, post FROM lib_tail_rows(?1) WHERE post != 0",
	[ST_TAILS_PUT] = "INSERT INTO ix_tails (term, last, n, bound, docs, pos)"
			 " SELECT term, last, n, bound, docs, pos FROM lib_tail_rows(?1) WHERE post = 0"
			 " ON CONFLICT (term) DO UPDATE SET last = excluded.last, n = excluded.n,"
			 " bound = excluded.bound, docs = excluded.docs, pos = excluded.pos",
	[ST_BLOCK_FIND] = "SELECT last, n, post FROM ix_blocks WHERE term = ?1 AND last >= ?2"
			  " ORDER BY last LIMIT 1",
	[ST_TAIL_FIND] = "SELECT last, n, 0 FROM ix_tails WHERE term = ?1",
	[ST_TAIL_GET] = "SELECT docs FROM ix_tails WHERE term = ?1",
	[ST_TAIL_PUT] = "INSERT INTO ix_tails (term, last, n, bound, docs, pos)"
			" VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (term) DO UPDATE SET"
			" last = excluded.last, n = excluded.n, bound = excluded.bound,"
			" docs = excluded.docs, pos = excluded.pos",
	[ST_TAIL_DEL] = "DELETE FROM ix_tails WHERE term = ?1",
	[ST_BLOCK_INS] = "INSERT INTO ix_blocks (term, last, n, bound, post)"
			 " VALUES (?1, ?2, ?3, ?4, ?5)",
	[ST_BLOCK_DEL] = "DELETE FROM ix_blocks WHERE term = ?1 AND last = ?2",
	[ST_BLOCK_UPD] = "UPDATE ix_blocks SET last = ?3, n = ?4, bound = ?5, post = ?6"
			 " WHERE term = ?1 AND last = ?2",
	[ST_POST_GET] = "SELECT docs, pos FROM ix_posts WHERE id = ?1",
	[ST_POST_INS] = "INSERT INTO ix_posts (id, docs, pos) VALUES (?3, ?1, ?2)",
	[ST_POST_UPD] = "UPDATE ix_posts SET docs = ?2, pos = ?3 WHERE id = ?1",
	[ST_POST_DEL] = "DELETE FROM ix_posts WHERE id = ?1",
	[ST_POST_MAX] = "SELECT coalesce(max(id), 0) FROM ix_posts",
	[ST_DOC_GET] = "SELECT tokens FROM ix_docs WHERE id = ?1",
	[ST_DOC_INS] = "INSERT INTO ix_docs (id, tokens) VALUES (?1, ?2)",
	[ST_DOC_DEL] = "DELETE FROM ix_docs WHERE id = ?1",
	[ST_TEXT_GET] = "SELECT title, body, tags FROM documents WHERE id = ?1",
	[ST_PEND_INS] = "INSERT INTO ix_pending (doc, terms) VALUES (?1, ?2)",
	[ST_PEND_DEL] = "DELETE FROM ix_pending WHERE doc = ?1",
	[ST_PEND_LIST] = "SELECT doc, terms FROM ix_pending ORDER BY doc LIMIT ?1",
};

/* A term with postings waiting: the last one is the document being added. */
struct pterm {
	char *term; /* NULL: a free slot */
	uint32_t len, hash;
	int64_t cur; /* the document of the last posting */
	lib_blk blk;
};

struct lib_ix {
	sqlite3 *db;
	lib_tok *tok;
	sqlite3_stmt *st[ST_COUNT];
	/* The writers' own statements (lib_ix_stmt), by their SQL's address. */
	const char *xsql[LIB_IX_XSTMTS];
	sqlite3_stmt *xst[LIB_IX_XSTMTS];
	struct pterm *tab;
	uint32_t cap, used;
	/* the document being added */
	int64_t doc;
	unsigned field;
	uint32_t field_pos[LIB_FIELDS];
	uint32_t *touched; /* entries with a posting for it */
	uint32_t ntouched;
	size_t touched_cap;
	/* documents collected */
	int64_t *pdoc;
	uint32_t *ptok;
	uint32_t npdoc, pdoc_cap;
	int64_t pmax; /* the largest of pdoc */
	size_t pbytes;
	/* scratch for flushes and removals */
	lib_blk a, b;
	lib_buf docs, pos, bound;
	/* the flush's words to write, pointing into tab (written before it is cleared) */
	lib_term_row *tw;
	uint32_t ntw;
	size_t tw_cap;
	/* the flush's deferred blocks (block_defer), their blobs in the arenas */
	lib_tail_row *tt;
	uint32_t ntt, ntt_tails; /* rows deferred; of them, tails */
	size_t tt_cap;
	lib_buf tdocs, tpos, tbound;
	int fail; /* a status raised inside a tokenizer callback */
	lib_ix_tails *tails; /* the writer's, or NULL */
	/* The next ix_posts id a write of this call takes (post_id); 0: not
	 * read yet. Read once inside each flush or removal, which run in the
	 * caller's write transaction, so nothing else inserts meanwhile. */
	int64_t next_post;
};

/* A term's tail block as the last flush through this cache left it. */
struct tail {
	char *term; /* NULL: a free slot */
	uint32_t len, hash;
	bool stale; /* its term was written another way since: read it from the file */
	int64_t id, df, last;
	lib_blk blk; /* the tail's postings (no positions) */
	/* its docs blob as written and its postings' undominated points,
	 * when enc_ok (tail_grow adds to both) */
	lib_buf enc;
	lib_stair stair;
	bool enc_ok;
};

struct lib_ix_tails {
	struct tail *tab;
	uint32_t cap, used;
	size_t bytes;
	int64_t gen; /* ix_meta.gen that the cache describes */
	bool valid; /* committed: usable while the file's gen is still gen */
	bool ready; /* written by a flush of the transaction still open */
};

static int fail_sql(lib_ix *ix, sdk_err *err, const char *what)
{
	return sdk_fail(err, sdk_status_of_sqlite(sqlite3_extended_errcode(ix->db)), "index: %s: %s",
			what, sqlite3_errmsg(ix->db));
}

static int oom(sdk_err *err) { return sdk_fail(err, SDK_EIO, "out of memory"); }

/* Prepared on first use: a one-document write needs a third of them. A
 * statement that fails to prepare makes its first step fail (misuse), which
 * every caller reports as a SQLite failure. */
static sqlite3_stmt *stmt(lib_ix *ix, int which)
{
	sqlite3_stmt *s = ix->st[which];
	if (!s) {
		int rc = sqlite3_prepare_v3(ix->db, sql[which], -1, SQLITE_PREPARE_PERSISTENT,
					    &ix->st[which], NULL);
		if (rc != SQLITE_OK && which >= ST_TERM_PUT && which <= ST_TAILS_PUT &&
		    lib_flush_rows_register(ix->db) == SQLITE_OK) /* first use on this connection */
			rc = sqlite3_prepare_v3(ix->db, sql[which], -1, SQLITE_PREPARE_PERSISTENT,
						&ix->st[which], NULL);
		return rc == SQLITE_OK ? ix->st[which] : NULL;
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return s;
}

int lib_ix_init(sqlite3 *db, bool complete_if_new, sdk_err *err)
{
	char q[200];
	snprintf(q, sizeof q,
		 "INSERT OR IGNORE INTO ix_meta (id, docs, tokens, gen, next_term, complete)"
		 " VALUES (1, 0, 0, 1, 1, %d)", complete_if_new ? 1 : 0);
	if (sqlite3_exec(db, LIB_IX_SCHEMA LIB_IX_PENDING_SCHEMA LIB_IX_TAILS_SCHEMA, NULL, NULL,
			 NULL) != SQLITE_OK ||
	    sqlite3_exec(db, q, NULL, NULL, NULL) != SQLITE_OK)
		return sdk_fail(err, sdk_status_of_sqlite(sqlite3_extended_errcode(db)),
				"index schema: %s", sqlite3_errmsg(db));
	return SDK_OK;
}

int lib_ix_meta_row(sqlite3_stmt *s, lib_ix_meta *m, sdk_err *err)
{
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*m = (lib_ix_meta){ sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1),
				    sqlite3_column_int64(s, 2), sqlite3_column_int64(s, 3),
				    sqlite3_column_int(s, 4) != 0 };
		rc = SDK_OK;
	} else if (rc == SQLITE_DONE) {
		rc = sdk_fail(err, SDK_ECORRUPT, "index: its meta row is missing");
	} else {
		sqlite3 *db = sqlite3_db_handle(s);
		rc = sdk_fail(err, sdk_status_of_sqlite(sqlite3_extended_errcode(db)),
			      "index: read meta: %s", sqlite3_errmsg(db));
	}
	sqlite3_reset(s);
	return rc;
}

int lib_ix_meta_read(sqlite3 *db, lib_ix_meta *m, sdk_err *err)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(db, LIB_IX_SQL_META, -1, &s, NULL) != SQLITE_OK)
		return sdk_fail(err, sdk_status_of_sqlite(sqlite3_extended_errcode(db)),
				"index: read meta: %s", sqlite3_errmsg(db));
	int rc = lib_ix_meta_row(s, m, err);
	sqlite3_finalize(s);
	return rc;
}

static int meta_get(lib_ix *ix, lib_ix_meta *m, sdk_err *err)
{
	sqlite3_stmt *s = stmt(ix, ST_META_GET);
	return s ? lib_ix_meta_row(s, m, err) : fail_sql(ix, err, "read meta");
}

static int meta_put(lib_ix *ix, const lib_ix_meta *m, sdk_err *err)
{
	sqlite3_stmt *s = stmt(ix, ST_META_PUT);
	sqlite3_bind_int64(s, 1, m->docs);
	sqlite3_bind_int64(s, 2, m->tokens);
	sqlite3_bind_int64(s, 3, m->gen);
	sqlite3_bind_int64(s, 4, m->next_term);
	sqlite3_bind_int(s, 5, m->complete);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? SDK_OK : fail_sql(ix, err, "write meta");
}

int lib_ix_open(sqlite3 *db, lib_ix **out, sdk_err *err)
{
	*out = NULL;
	lib_ix *ix = calloc(1, sizeof *ix);
	if (!ix)
		return oom(err);
	ix->db = db;
	int rc = lib_tok_new(db, &ix->tok, err);
	if (rc) {
		lib_ix_close(ix);
		return rc;
	}
	*out = ix;
	return SDK_OK;
}

static void pending_clear(lib_ix *ix)
{
	for (uint32_t i = 0; i < ix->cap; i++)
		if (ix->tab[i].term) {
			free(ix->tab[i].term);
			lib_blk_free(&ix->tab[i].blk);
			ix->tab[i] = (struct pterm){ 0 };
		}
	ix->used = 0;
	ix->npdoc = 0;
	ix->pmax = 0;
	ix->ntouched = 0;
	ix->pbytes = 0;
	ix->next_post = 0;
}

void lib_ix_close(lib_ix *ix)
{
	if (!ix)
		return;
	pending_clear(ix);
	free(ix->tab);
	free(ix->touched);
	free(ix->pdoc);
	free(ix->ptok);
	free(ix->tw);
	free(ix->tt);
	lib_buf_free(&ix->tdocs);
	lib_buf_free(&ix->tpos);
	lib_buf_free(&ix->tbound);
	lib_blk_free(&ix->a);
	lib_blk_free(&ix->b);
	lib_buf_free(&ix->docs);
	lib_buf_free(&ix->pos);
	lib_buf_free(&ix->bound);
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(ix->st[i]);
	for (int i = 0; i < LIB_IX_XSTMTS; i++)
		sqlite3_finalize(ix->xst[i]);
	lib_tok_free(ix->tok);
	free(ix);
}

sqlite3_stmt *lib_ix_stmt(lib_ix *ix, const char *sql_text)
{
	int i;
	for (i = 0; i < LIB_IX_XSTMTS && ix->xsql[i]; i++)
		if (ix->xsql[i] == sql_text) {
			sqlite3_reset(ix->xst[i]);
			sqlite3_clear_bindings(ix->xst[i]);
			return ix->xst[i];
		}
	if (i == LIB_IX_XSTMTS)
		return NULL;
	if (sqlite3_prepare_v3(ix->db, sql_text, -1, SQLITE_PREPARE_PERSISTENT, &ix->xst[i], NULL) !=
	    SQLITE_OK)
		return NULL;
	ix->xsql[i] = sql_text;
	return ix->xst[i];
}

void lib_ix_discard(lib_ix *ix) { pending_clear(ix); }
uint32_t lib_ix_pending_docs(const lib_ix *ix) { return ix->npdoc; }
size_t lib_ix_pending_bytes(const lib_ix *ix) { return ix->pbytes; }

size_t lib_tag_term(const char *tag, char *out, size_t cap)
{
	size_t n = strlen(tag);
	if (n + 2 > cap)
		n = cap - 2;
	out[0] = LIB_TAG_TERM_MARK;
	memcpy(out + 1, tag, n);
	out[n + 1] = '\0';
	return n + 1;
}

/* ---- collecting */

uint32_t lib_ix_term_hash(const char *s, uint32_t n)
{
	uint32_t h = 2166136261u;
	for (uint32_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)s[i]) * 16777619u;
	return h;
}

static bool tab_grow(lib_ix *ix)
{
	uint32_t cap = ix->cap ? ix->cap * 2 : 1024;
	struct pterm *t = calloc(cap, sizeof *t);
	if (!t)
		return false;
	for (uint32_t i = 0; i < ix->cap; i++) {
		struct pterm *e = &ix->tab[i];
		if (!e->term)
			continue;
		uint32_t j = e->hash & (cap - 1);
		while (t[j].term)
			j = (j + 1) & (cap - 1);
		t[j] = *e;
	}
	/* The entries touched by the document being added moved. */
	for (uint32_t k = 0; k < ix->ntouched; k++) {
		struct pterm *e = &ix->tab[ix->touched[k]];
		uint32_t j = e->hash & (cap - 1);
		while (t[j].term != e->term)
			j = (j + 1) & (cap - 1);
		ix->touched[k] = j;
	}
	free(ix->tab);
	ix->tab = t;
	ix->cap = cap;
	return true;
}

static struct pterm *term_slot(lib_ix *ix, const char *s, uint32_t n, uint32_t *idx)
{
	if ((ix->used + 1) * 2 > ix->cap && !tab_grow(ix))
		return NULL;
	uint32_t h = lib_ix_term_hash(s, n);
	uint32_t j = h & (ix->cap - 1);
	while (ix->tab[j].term) {
		struct pterm *e = &ix->tab[j];
		if (e->hash == h && e->len == n && !memcmp(e->term, s, n)) {
			*idx = j;
			return e;
		}
		j = (j + 1) & (ix->cap - 1);
	}
	char *t = malloc(n + 1);
	if (!t)
		return NULL;
	memcpy(t, s, n);
	t[n] = '\0';
	ix->tab[j] = (struct pterm){ .term = t, .len = n, .hash = h, .cur = 0 };
	ix->used++;
	ix->pbytes += n + sizeof(struct pterm);
	*idx = j;
	return &ix->tab[j];
}

/* A posting of the current document for this term, opened if need be. */
static struct pterm *posting_of(lib_ix *ix, const char *s, uint32_t n)
{
	uint32_t idx;
	struct pterm *e = term_slot(ix, s, n, &idx);
	if (!e)
		return NULL;
	if (e->cur == ix->doc && e->blk.n)
		return e;
	lib_blk *b = &e->blk;
	if (!lib_blk_reserve(b, b->n + 1))
		return NULL;
	if (ix->ntouched == ix->touched_cap) { /* a call a posting would cost */
		uint32_t *t = sdk_grow(ix->touched, &ix->touched_cap, ix->ntouched, sizeof *t, 256);
		if (!t)
			return NULL;
		ix->touched = t;
	}
	ix->touched[ix->ntouched++] = idx;
	b->has_pos = false;
	b->doc[b->n] = ix->doc;
	b->dl[b->n] = 0;
	memset(b->tf[b->n], 0, sizeof b->tf[b->n]);
	b->poff[b->n] = b->npos;
	b->n++;
	b->poff[b->n] = b->npos;
	e->cur = ix->doc;
	ix->pbytes += 24;
	return e;
}

static int on_doc_token(void *arg, const char *tok, int len, int start, int end)
{
	(void)start, (void)end;
	lib_ix *ix = arg;
	uint32_t at = ix->field_pos[ix->field]++;
	if (len <= 0 || len > LIB_TERM_MAX)
		return 0; /* counted in the length, never found */
	(void)at; /* no positions kept: phrases and NEAR are FTS5's (search.h) */
	struct pterm *e = posting_of(ix, tok, (uint32_t)len);
	if (!e)
		return ix->fail = SDK_EIO;
	e->blk.tf[e->blk.n - 1][ix->field]++;
	return 0;
}

static bool pdoc_push(lib_ix *ix, int64_t id, uint32_t tokens)
{
	if (ix->npdoc == ix->pdoc_cap) {
		uint32_t cap = ix->pdoc_cap ? ix->pdoc_cap * 2 : 256;
		int64_t *d = realloc(ix->pdoc, cap * sizeof *d);
		if (d)
			ix->pdoc = d;
		uint32_t *t = realloc(ix->ptok, cap * sizeof *t);
		if (t)
			ix->ptok = t;
		if (!d || !t)
			return false;
		ix->pdoc_cap = cap;
	}
	ix->pdoc[ix->npdoc] = id;
	ix->ptok[ix->npdoc] = tokens;
	if (id > ix->pmax)
		ix->pmax = id;
	ix->npdoc++;
	return true;
}

static bool pending_has(const lib_ix *ix, int64_t id)
{
	if (id > ix->pmax)
		return false; /* the usual case: a new document, past every other */
	for (uint32_t i = 0; i < ix->npdoc; i++)
		if (ix->pdoc[i] == id)
			return true;
	return false;
}

/* Tokenizes a document's fields into the pending postings; *tokens: its
 * length. Tags become their terms too (no positions, no length). */
static int collect(lib_ix *ix, int64_t id, const char *title, const char *body, const char *tags,
		   uint32_t *tokens, sdk_err *err)
{
	const char *text[LIB_FIELDS] = { title, body, tags };
	ix->doc = id;
	ix->ntouched = 0;
	ix->fail = 0;
	uint64_t total = 0;
	for (unsigned f = 0; f < LIB_FIELDS; f++) {
		ix->field = f;
		ix->field_pos[f] = 0;
		int rc = lib_tok_run(ix->tok, LIB_TOK_DOC, text[f], (int)strlen(text[f]), on_doc_token, ix);
		if (rc || ix->fail)
			return ix->fail ? oom(err) : sdk_fail(err, SDK_EIO, "the tokenizer failed");
		total += ix->field_pos[f];
	}
	if (total > UINT32_MAX)
		return sdk_fail(err, SDK_EINVAL, "document %" PRId64 " has too many words", id);
	json_t *arr = json_loads(tags, 0, NULL);
	size_t i;
	json_t *t;
	char term[LIB_TERM_MAX + 2];
	json_array_foreach(arr, i, t) {
		if (!json_is_string(t))
			continue;
		size_t n = lib_tag_term(json_string_value(t), term, sizeof term);
		if (!posting_of(ix, term, (uint32_t)n)) {
			json_decref(arr);
			return oom(err);
		}
	}
	json_decref(arr);
	for (uint32_t k = 0; k < ix->ntouched; k++) {
		lib_blk *b = &ix->tab[ix->touched[k]].blk;
		b->dl[b->n - 1] = (uint32_t)total;
	}
	*tokens = (uint32_t)total;
	return SDK_OK;
}

int lib_ix_add(lib_ix *ix, int64_t id, const char *title, const char *body, const char *tags,
	       sdk_err *err)
{
	if (id <= 0)
		return sdk_fail(err, SDK_EINVAL, "index: bad document id");
	if (pending_has(ix, id))
		return sdk_fail(err, SDK_EINVAL, "index: document %" PRId64 " added twice", id);
	uint32_t tokens = 0;
	int rc = collect(ix, id, title, body, tags ? tags : "[]", &tokens, err);
	if (!rc && !pdoc_push(ix, id, tokens))
		rc = oom(err);
	if (rc) {
		/* Half a document collected cannot be taken back: drop it all. */
		pending_clear(ix);
		return rc;
	}
	return SDK_OK;
}

/* ---- writing blocks */

/* Block `post`'s postings, or (post 0) the tail of term `term`. */
static int post_load(lib_ix *ix, int64_t term, int64_t post, lib_blk *into, sdk_err *err)
{
	sqlite3_stmt *s = stmt(ix, post ? ST_POST_GET : ST_TAIL_GET);
	sqlite3_bind_int64(s, 1, post ? post : term);
	int rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(s);
		return rc == SQLITE_DONE ? sdk_fail(err, SDK_ECORRUPT, "index: postings %" PRId64
						    " of term %" PRId64 " are missing", post, term)
					 : fail_sql(ix, err, "read postings");
	}
	rc = lib_blk_decode(into, sqlite3_column_blob(s, 0), (size_t)sqlite3_column_bytes(s, 0),
			    NULL, 0);
	sqlite3_reset(s);
	if (rc)
		return sdk_fail(err, SDK_ECORRUPT, "index: postings %" PRId64 " of term %" PRId64
				" are damaged", post, term);
	return SDK_OK;
}

static int exec_simple(lib_ix *ix, sqlite3_stmt *s, sdk_err *err, const char *what)
{
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? SDK_OK : fail_sql(ix, err, what);
}

/* The id of a new ix_posts row: past every row, in the order taken, so
 * that the rows one flush writes lie together at the table's end. */
static int post_id(lib_ix *ix, int64_t *id, sdk_err *err)
{
	if (!ix->next_post) {
		sqlite3_stmt *s = stmt(ix, ST_POST_MAX);
		if (!s || sqlite3_step(s) != SQLITE_ROW) {
			if (s)
				sqlite3_reset(s);
			return fail_sql(ix, err, "read postings ids");
		}
		ix->next_post = sqlite3_column_int64(s, 0) + 1;
		sqlite3_reset(s);
	}
	*id = ix->next_post++;
	return SDK_OK;
}

/* A term's last writes of a flush, encoded into the flush's arenas and
 * written with the flush's others (tails_write), three statements for
 * all instead of a few a block: its tail (`tail`: an ix_tails row
 * rewritten in place) or a full block before it (a new ix_blocks row and
 * a new ix_posts row past every other, whose id is chosen here,
 * post_id); *post_out: the block's postings row (0 for the tail). The
 * tails were once among the blocks: each flush moved a tail's block row
 * (its key is its last document) and its postings row, four row changes
 * a word on pages all over both tables; a 1 MiB request of bench
 * documents wrote about 2,400 pages (10 MB of WAL), half of them the
 * tails'. */
/* A deferred row begun: its blobs go to the arenas' ends until
 * row_close (NULL: out of memory). post 0: a tail. */
static lib_tail_row *row_open(lib_ix *ix, int64_t term, int64_t last, int64_t n, int64_t post)
{
	lib_tail_row *v = sdk_grow(ix->tt, &ix->tt_cap, ix->ntt, sizeof *v, 1024);
	if (!v)
		return NULL;
	ix->tt = v;
	lib_tail_row *r = &ix->tt[ix->ntt];
	*r = (lib_tail_row){ .term = term, .last = last, .n = n, .post = post,
			     .docs = ix->tdocs.n, .pos = ix->tpos.n, .bound = ix->tbound.n };
	return r;
}

/* The row's blobs are what the arenas gained since row_open. */
static void row_close(lib_ix *ix, lib_tail_row *r)
{
	r->docs_len = ix->tdocs.n - r->docs;
	r->pos_len = ix->tpos.n - r->pos;
	r->bound_len = ix->tbound.n - r->bound;
	ix->ntt++;
	ix->ntt_tails += r->post == 0;
}

static int block_defer(lib_ix *ix, int64_t term, const lib_blk *b, uint32_t from, uint32_t count,
		       bool tail, double avgdl, int64_t *post_out, sdk_err *err)
{
	int64_t post = 0;
	int rc = tail ? SDK_OK : post_id(ix, &post, err);
	if (rc)
		return rc;
	lib_tail_row *r = row_open(ix, term, b->doc[from + count - 1], count, post);
	*post_out = post;
	if (!r || !lib_blk_encode(b, from, count, avgdl, &ix->tdocs, &ix->tpos, &ix->tbound))
		return oom(err);
	row_close(ix, r);
	return SDK_OK;
}

/* Writes postings [from, from + count) of b as one block of `term`,
 * into the ix_posts row `post` (0: a new row); *post_out: the row. */
static int block_write(lib_ix *ix, int64_t term, int64_t old_last, const lib_blk *b,
		       uint32_t from, uint32_t count, int64_t post, double avgdl, int64_t *post_out,
		       sdk_err *err)
{
	ix->docs.n = ix->pos.n = ix->bound.n = 0;
	if (!lib_blk_encode(b, from, count, avgdl, &ix->docs, &ix->pos, &ix->bound))
		return oom(err);
	sqlite3_stmt *s;
	int rc;
	if (post) {
		s = stmt(ix, ST_POST_UPD);
		sqlite3_bind_int64(s, 1, post);
		sqlite3_bind_blob(s, 2, ix->docs.p, (int)ix->docs.n, SQLITE_STATIC);
		sqlite3_bind_blob(s, 3, ix->pos.p ? (void *)ix->pos.p : (void *)"", (int)ix->pos.n,
				  SQLITE_STATIC);
		rc = exec_simple(ix, s, err, "write postings");
	} else {
		if ((rc = post_id(ix, &post, err)))
			return rc;
		s = stmt(ix, ST_POST_INS);
		sqlite3_bind_blob(s, 1, ix->docs.p, (int)ix->docs.n, SQLITE_STATIC);
		sqlite3_bind_blob(s, 2, ix->pos.p ? (void *)ix->pos.p : (void *)"", (int)ix->pos.n,
				  SQLITE_STATIC);
		sqlite3_bind_int64(s, 3, post);
		rc = exec_simple(ix, s, err, "write postings");
	}
	if (rc)
		return rc;
	*post_out = post;
	if (old_last) { /* the block row rewritten in place, its key moved */
		s = stmt(ix, ST_BLOCK_UPD);
		sqlite3_bind_int64(s, 1, term);
		sqlite3_bind_int64(s, 2, old_last);
		sqlite3_bind_int64(s, 3, b->doc[from + count - 1]);
		sqlite3_bind_int64(s, 4, count);
		sqlite3_bind_blob(s, 5, ix->bound.p, (int)ix->bound.n, SQLITE_STATIC);
		sqlite3_bind_int64(s, 6, post);
		rc = exec_simple(ix, s, err, "write block");
		if (!rc && sqlite3_changes(ix->db) != 1)
			rc = sdk_fail(err, SDK_ECORRUPT, "index: block (%" PRId64 ", %" PRId64
				      ") is missing", term, old_last);
		return rc;
	}
	s = stmt(ix, ST_BLOCK_INS);
	sqlite3_bind_int64(s, 1, term);
	sqlite3_bind_int64(s, 2, b->doc[from + count - 1]);
	sqlite3_bind_int64(s, 3, count);
	sqlite3_bind_blob(s, 4, ix->bound.p, (int)ix->bound.n, SQLITE_STATIC);
	sqlite3_bind_int64(s, 5, post);
	return exec_simple(ix, s, err, "write block");
}

static int block_drop(lib_ix *ix, int64_t term, int64_t last, int64_t post, bool post_too,
		      sdk_err *err)
{
	sqlite3_stmt *s = stmt(ix, ST_BLOCK_DEL);
	sqlite3_bind_int64(s, 1, term);
	sqlite3_bind_int64(s, 2, last);
	int rc = exec_simple(ix, s, err, "delete block");
	if (!rc && post_too) {
		s = stmt(ix, ST_POST_DEL);
		sqlite3_bind_int64(s, 1, post);
		rc = exec_simple(ix, s, err, "delete postings");
	}
	return rc;
}

struct blockref {
	int64_t last, n, post;
};

/* Replaces block (term, last, post) of ix_blocks with the postings of b:
 * nothing (the block goes), one block, or (past LIB_BLK_MAX) several of
 * about LIB_BLK_TARGET, the first in the same ix_posts row. */
static int block_replace(lib_ix *ix, int64_t term, int64_t last, int64_t post, const lib_blk *b,
			 double avgdl, sdk_err *err)
{
	if (b->n == 0)
		return block_drop(ix, term, last, post, true, err);
	int rc = SDK_OK;
	uint32_t chunks = 1;
	if (b->n > LIB_BLK_MAX)
		chunks = (b->n + LIB_BLK_TARGET - 1) / LIB_BLK_TARGET;
	uint32_t from = 0;
	for (uint32_t c = 0; !rc && c < chunks; c++) {
		uint32_t count = (b->n - from) / (chunks - c);
		int64_t wrote = 0;
		rc = block_write(ix, term, c == 0 ? last : 0, b, from, count, c == 0 ? post : 0,
				 avgdl, &wrote, err);
		from += count;
	}
	return rc;
}

/* b's postings (b->n > 0) as the term's tail: full blocks of
 * LIB_BLK_TARGET from the front, the rest (1 to LIB_BLK_TARGET) the
 * tail, all written at the flush's end (block_defer): only a term's last
 * write of a flush, since nothing reads them back before. *tail_from:
 * where the tail begins in b, for the tails cache. */
static int tail_write(lib_ix *ix, int64_t term, const lib_blk *b, double avgdl,
		      struct blockref *tail, uint32_t *tail_from, sdk_err *err)
{
	int rc = SDK_OK;
	uint32_t from = 0;
	while (!rc && from < b->n) {
		uint32_t count = b->n - from < LIB_BLK_TARGET ? b->n - from : LIB_BLK_TARGET;
		bool last = from + count == b->n;
		int64_t wrote = 0;
		rc = block_defer(ix, term, b, from, count, last, avgdl, &wrote, err);
		if (last) {
			*tail = (struct blockref){ b->doc[b->n - 1], count, 0 };
			*tail_from = from;
		}
		from += count;
	}
	return rc;
}

/* The term's tail rewritten now (a removal), or gone when it is empty. */
static int tail_store(lib_ix *ix, int64_t term, const lib_blk *b, double avgdl, sdk_err *err)
{
	sqlite3_stmt *s;
	if (b->n == 0) {
		s = stmt(ix, ST_TAIL_DEL);
		sqlite3_bind_int64(s, 1, term);
		return exec_simple(ix, s, err, "delete tail");
	}
	ix->docs.n = ix->pos.n = ix->bound.n = 0;
	if (!lib_blk_encode(b, 0, b->n, avgdl, &ix->docs, &ix->pos, &ix->bound))
		return oom(err);
	s = stmt(ix, ST_TAIL_PUT);
	sqlite3_bind_int64(s, 1, term);
	sqlite3_bind_int64(s, 2, b->doc[b->n - 1]);
	sqlite3_bind_int64(s, 3, b->n);
	sqlite3_bind_blob(s, 4, ix->bound.p, (int)ix->bound.n, SQLITE_STATIC);
	sqlite3_bind_blob(s, 5, ix->docs.p, (int)ix->docs.n, SQLITE_STATIC);
	sqlite3_bind_blob(s, 6, ix->pos.p ? (void *)ix->pos.p : (void *)"", (int)ix->pos.n,
			  SQLITE_STATIC);
	return exec_simple(ix, s, err, "write tail");
}

static bool blk_push(lib_blk *dst, const lib_blk *src, uint32_t k)
{
	uint32_t np = src->has_pos ? src->poff[k + 1] - src->poff[k] : 0;
	if (!lib_blk_reserve(dst, dst->n + 1) || !lib_blk_pos_reserve(dst, dst->npos + np))
		return false;
	uint32_t j = dst->n;
	if (j == 0)
		dst->poff[0] = 0;
	dst->doc[j] = src->doc[k];
	dst->dl[j] = src->dl[k];
	memcpy(dst->tf[j], src->tf[k], sizeof dst->tf[j]);
	if (np) /* no positions: pos may be NULL */
		memcpy(dst->pos + dst->npos, src->pos + src->poff[k], np * sizeof *dst->pos);
	dst->npos += np;
	dst->n++;
	dst->poff[dst->n] = dst->npos;
	dst->has_pos = src->has_pos;
	return true;
}

/* src[from, to) after dst's postings: copied array by array when neither
 * has positions (the index keeps none), else posting by posting. */
static bool blk_append(lib_blk *dst, const lib_blk *src, uint32_t from, uint32_t to)
{
	uint32_t n = to - from, at = dst->n;
	if (src->has_pos || (at && dst->has_pos)) {
		for (uint32_t k = from; k < to; k++)
			if (!blk_push(dst, src, k))
				return false;
		return true;
	}
	if (!n)
		return true;
	if (!lib_blk_reserve(dst, at + n))
		return false;
	memcpy(dst->doc + at, src->doc + from, n * sizeof *dst->doc);
	memcpy(dst->dl + at, src->dl + from, n * sizeof *dst->dl);
	memcpy(dst->tf + at, src->tf + from, n * sizeof *dst->tf);
	for (uint32_t k = at; k <= at + n; k++)
		dst->poff[k] = 0;
	dst->n += n;
	dst->has_pos = false;
	return true;
}

/* out = old merged with p[from, to): a document in both takes p's posting
 * (*dups counts them). */
static bool merge(const lib_blk *old, const lib_blk *p, uint32_t from, uint32_t to, lib_blk *out,
		  uint32_t *dups)
{
	lib_blk_clear(out);
	/* The usual case, a bulk load's new documents after the tail's. */
	if (from == to || !old->n || old->doc[old->n - 1] < p->doc[from])
		return blk_append(out, old, 0, old->n) && blk_append(out, p, from, to);
	uint32_t i = 0, j = from;
	while (i < old->n || j < to) {
		bool ok;
		if (j >= to || (i < old->n && old->doc[i] < p->doc[j])) {
			ok = blk_push(out, old, i++);
		} else {
			if (i < old->n && old->doc[i] == p->doc[j]) {
				i++;
				(*dups)++;
			}
			ok = blk_push(out, p, j++);
		}
		if (!ok)
			return false;
	}
	return true;
}

static int block_find(lib_ix *ix, int which, int64_t term, int64_t doc, struct blockref *r,
		      bool *found, sdk_err *err)
{
	sqlite3_stmt *s = stmt(ix, which);
	sqlite3_bind_int64(s, 1, term);
	if (which == ST_BLOCK_FIND)
		sqlite3_bind_int64(s, 2, doc);
	int rc = sqlite3_step(s);
	*found = rc == SQLITE_ROW;
	if (*found)
		*r = (struct blockref){ sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1),
					sqlite3_column_int64(s, 2) };
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? SDK_OK : fail_sql(ix, err, "find block");
}

static int cmp_by_doc(const void *a, const void *b, void *arg)
{
	const int64_t *doc = arg;
	int64_t x = doc[*(const uint32_t *)a], y = doc[*(const uint32_t *)b];
	return (x > y) - (x < y);
}

/* Sorts b's postings by document when they came out of order (a document
 * updated in place keeps its old id). */
static bool sort_postings(lib_blk *b, lib_blk *tmp)
{
	uint32_t k;
	for (k = 1; k < b->n && b->doc[k - 1] < b->doc[k]; k++)
		;
	if (k >= b->n)
		return true;
	uint32_t *ord = malloc(b->n * sizeof *ord);
	if (!ord)
		return false;
	for (uint32_t i = 0; i < b->n; i++)
		ord[i] = i;
	qsort_r(ord, b->n, sizeof *ord, cmp_by_doc, b->doc);
	lib_blk_clear(tmp);
	bool ok = true;
	for (uint32_t i = 0; ok && i < b->n; i++)
		ok = blk_push(tmp, b, ord[i]);
	free(ord);
	if (!ok)
		return false;
	lib_blk swap = *b;
	*b = *tmp;
	*tmp = swap;
	return true;
}

/* ---- the writer's tails cache (index.h) */

#define TAILS_BYTES_MAX (64u << 20)

static void tails_clear(lib_ix_tails *t)
{
	for (uint32_t i = 0; i < t->cap; i++)
		if (t->tab[i].term) {
			free(t->tab[i].term);
			lib_blk_free(&t->tab[i].blk);
			lib_buf_free(&t->tab[i].enc);
			lib_stair_free(&t->tab[i].stair);
			t->tab[i] = (struct tail){ 0 };
		}
	t->used = 0;
	t->bytes = 0;
	t->valid = t->ready = false;
}

lib_ix_tails *lib_ix_tails_new(void) { return calloc(1, sizeof(lib_ix_tails)); }

void lib_ix_tails_free(lib_ix_tails *t)
{
	if (!t)
		return;
	tails_clear(t);
	free(t->tab);
	free(t);
}

void lib_ix_use_tails(lib_ix *ix, lib_ix_tails *t) { ix->tails = t; }

void lib_ix_tails_done(lib_ix_tails *t, bool committed)
{
	if (!t)
		return;
	if (committed && t->ready) {
		t->valid = true;
		t->ready = false;
	} else if (!committed || t->ready) {
		tails_clear(t);
	}
}

uint32_t lib_ix_tails_terms(const lib_ix_tails *t) { return t && t->valid ? t->used : 0; }

static struct tail *tail_slot(lib_ix_tails *t, const char *s, uint32_t n, uint32_t h, bool add)
{
	if (!t->cap || (add && (t->used + 1) * 2 > t->cap)) {
		if (!add && !t->cap)
			return NULL;
		uint32_t cap = t->cap ? t->cap * 2 : 1024;
		struct tail *tab = calloc(cap, sizeof *tab);
		if (!tab)
			return NULL;
		for (uint32_t i = 0; i < t->cap; i++) {
			if (!t->tab[i].term)
				continue;
			uint32_t j = t->tab[i].hash & (cap - 1);
			while (tab[j].term)
				j = (j + 1) & (cap - 1);
			tab[j] = t->tab[i];
		}
		free(t->tab);
		t->tab = tab;
		t->cap = cap;
	}
	uint32_t j = h & (t->cap - 1);
	while (t->tab[j].term) {
		struct tail *e = &t->tab[j];
		if (e->hash == h && e->len == n && !memcmp(e->term, s, n))
			return e;
		j = (j + 1) & (t->cap - 1);
	}
	return add ? &t->tab[j] : NULL;
}

/* The docs blob of the tail row r, as written, into the cache's tl. */
static bool tail_enc_keep(struct tail *tl, const lib_ix *ix, const lib_tail_row *r)
{
	tl->enc.n = 0;
	if (!lib_buf_reserve(&tl->enc, r->docs_len))
		return false;
	memcpy(tl->enc.p, ix->tdocs.p + r->docs, r->docs_len);
	tl->enc.n = r->docs_len;
	return true;
}

/* The tail of term e as just written: ix->a's postings [from, end), and
 * its docs blob, the flush's last deferred row (tail_write's last). */
static void tail_keep(lib_ix *ix, const struct pterm *e, int64_t id, int64_t df,
		      const struct blockref *r, uint32_t from)
{
	lib_ix_tails *t = ix->tails;
	struct tail *tl = tail_slot(t, e->term, e->len, e->hash, true);
	if (!tl)
		return; /* out of memory: the term is read from the file next time */
	if (!tl->term) {
		size_t cost = sizeof *tl + e->len + LIB_BLK_TARGET * 32u;
		if (t->bytes + cost > TAILS_BYTES_MAX || !(tl->term = malloc(e->len + 1)))
			return;
		memcpy(tl->term, e->term, e->len + 1);
		tl->len = e->len;
		tl->hash = e->hash;
		t->used++;
		t->bytes += cost;
	}
	tl->id = id;
	tl->df = df;
	tl->last = r->last;
	tl->stale = false;
	lib_blk_clear(&tl->blk);
	if (!blk_append(&tl->blk, &ix->a, from, ix->a.n))
		tl->stale = true;
	tl->stair.n = 0;
	tl->enc_ok = tail_enc_keep(tl, ix, &ix->tt[ix->ntt - 1]) &&
		     lib_stair_add(&tl->stair, &ix->a, from, ix->a.n - from);
}

/* The common case, a cached tail with room for the flush's postings
 * p[i, end) of its term, all past it: they are appended to the cached
 * tail, its docs blob grown in place (lib_blk_encode_more) and its bound
 * made from its points and theirs (lib_stair_add), instead of the whole
 * tail merged, encoded and copied back (the same bytes:
 * test_librarian_bulk's cache test compares the index built without the
 * cache). Its row is deferred with the flush's others. */
static int tail_grow(lib_ix *ix, int64_t term, struct tail *tl, const lib_blk *p, uint32_t i,
		     double avgdl, sdk_err *err)
{
	int64_t prev = tl->last;
	uint32_t old = tl->blk.n;
	tl->stale = true; /* until it is all done (a failed flush empties the cache) */
	if (!blk_append(&tl->blk, p, i, p->n) ||
	    !lib_blk_encode_more(&tl->blk, old, tl->blk.n - old, prev, &tl->enc) ||
	    !lib_stair_add(&tl->stair, &tl->blk, old, tl->blk.n - old))
		return oom(err);
	/* The cache's grown blob is the row's. */
	lib_tail_row *r = row_open(ix, term, p->doc[p->n - 1], tl->blk.n, 0);
	if (!r || !lib_buf_reserve(&ix->tdocs, tl->enc.n) ||
	    !lib_stair_bound(&tl->stair, avgdl, &ix->tbound))
		return oom(err);
	memcpy(ix->tdocs.p + ix->tdocs.n, tl->enc.p, tl->enc.n);
	ix->tdocs.n += tl->enc.n;
	row_close(ix, r);
	tl->last = r->last;
	tl->stale = false;
	return SDK_OK;
}

/* A term's postings of this flush into its blocks. The common case, new
 * documents past every block of the term: with the term's tail in the
 * cache, the tail's postings rewritten (its ix_tails row, and a full
 * block before it when it fills) and the term written, all with the
 * flush's others; without, the term read, its tail found and read first.
 * Documents inside the term's range (a document re-indexed under its old
 * id) merge into their blocks first; a term with no tail (index.h) looks
 * for its block among the blocks. */
static int term_flush(lib_ix *ix, struct pterm *e, lib_ix_meta *m, double avgdl, sdk_err *err)
{
	lib_blk *p = &e->blk;
	if (!sort_postings(p, &ix->a))
		return oom(err);
	struct tail *tl = ix->tails ? tail_slot(ix->tails, e->term, e->len, e->hash, false) : NULL;
	if (tl && (tl->stale || p->doc[0] <= tl->last)) {
		tl->stale = true; /* written below the cache's back: read from the file */
		tl = NULL;
	}
	bool exists;
	int64_t id, df;
	int rc;
	if (tl) {
		exists = true;
		id = tl->id;
		df = tl->df;
	} else {
		/* A read and an update: one UPDATE ... RETURNING costs more than
		 * both (measured with callgrind). */
		sqlite3_stmt *s = stmt(ix, ST_TERM_GET);
		sqlite3_bind_text(s, 1, e->term, (int)e->len, SQLITE_STATIC);
		rc = sqlite3_step(s);
		exists = rc == SQLITE_ROW;
		id = exists ? sqlite3_column_int64(s, 0) : m->next_term;
		df = exists ? sqlite3_column_int64(s, 1) : 0;
		sqlite3_reset(s);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE)
			return fail_sql(ix, err, "read term");
		if (!exists)
			m->next_term++;
	}
	uint32_t dups = 0, i = 0;
	struct blockref tr = { 0 }, kept = { 0 };
	uint32_t kept_from = 0;
	bool tail = tl != NULL, tail_known = !exists || tl, keep = false, grown = false;
	if (tl)
		tr = (struct blockref){ tl->last, tl->blk.n, 0 };
	rc = SDK_OK;
	while (!rc && i < p->n) {
		if (!tail_known) {
			rc = block_find(ix, ST_TAIL_FIND, id, 0, &tr, &tail, err);
			tail_known = true;
			if (rc)
				break;
		}
		struct blockref r;
		bool found = false;
		/* Up to the tail's last document, or with no tail, a document
		 * may fall in a block's range; past it, only the tail's. */
		if (exists && (!tail || p->doc[i] <= tr.last))
			rc = block_find(ix, ST_BLOCK_FIND, id, p->doc[i], &r, &found, err);
		if (!rc && !found) {
			/* Past every block: into the tail (a new one if none). */
			if (tl && tl->enc_ok && tl->blk.n + (p->n - i) <= LIB_BLK_TARGET) {
				rc = tail_grow(ix, id, tl, p, i, avgdl, err);
				grown = !rc;
				i = p->n;
				break;
			}
			if (tail) {
				const lib_blk *old = &ix->b;
				if (tl)
					old = &tl->blk;
				else
					rc = post_load(ix, id, 0, &ix->b, err);
				if (!rc && !merge(old, p, i, p->n, &ix->a, &dups))
					rc = oom(err);
			} else {
				lib_blk_clear(&ix->a);
				if (!blk_append(&ix->a, p, i, p->n))
					return oom(err);
			}
			if (!rc)
				rc = tail_write(ix, id, &ix->a, avgdl, &kept, &kept_from, err);
			keep = !rc;
			i = p->n;
			break;
		}
		if (rc)
			break;
		uint32_t j = i;
		while (j < p->n && p->doc[j] <= r.last)
			j++;
		rc = post_load(ix, id, r.post, &ix->b, err);
		if (!rc && !merge(&ix->b, p, i, j, &ix->a, &dups))
			rc = oom(err);
		if (!rc) /* a block below the tail: what it splits into stays below */
			rc = block_replace(ix, id, r.last, r.post, &ix->a, avgdl, err);
		i = j;
	}
	if (rc)
		return rc;
	df += p->n - dups;
	/* Its row is written with the flush's others (terms_write). */
	lib_term_row *v = sdk_grow(ix->tw, &ix->tw_cap, ix->ntw, sizeof *v, 1024);
	if (!v)
		return oom(err);
	ix->tw = v;
	ix->tw[ix->ntw++] = (lib_term_row){ e->term, e->len, id, df };
	if (keep && ix->tails) /* a failed flush empties the cache (flush_blocks) */
		tail_keep(ix, e, id, df, &kept, kept_from);
	else if (grown)
		tl->df = df;
	return SDK_OK;
}

/* The flush's deferred blocks (block_defer): the new blocks' postings
 * rows and block rows, then every tail, each statement for all. Every
 * row meant must be written. */
static int tails_write(lib_ix *ix, sdk_err *err)
{
	if (!ix->ntt)
		return SDK_OK;
	lib_tail_rows rows = { ix->tt, ix->ntt, ix->tdocs.p, ix->tpos.p, ix->tbound.p };
	int rc = SDK_OK;
	for (int which = ST_NEW_POSTS; !rc && which <= ST_TAILS_PUT; which++) {
		uint32_t want = which == ST_TAILS_PUT ? ix->ntt_tails : ix->ntt - ix->ntt_tails;
		if (!want)
			continue;
		sqlite3_stmt *s = stmt(ix, which);
		if (!s)
			return fail_sql(ix, err, "prepare tails");
		lib_tail_rows_bind(s, 1, &rows);
		const char *what = which == ST_NEW_POSTS ? "postings" : which == ST_NEW_BLOCKS ? "blocks"
											: "tails";
		rc = exec_simple(ix, s, err, what);
		if (!rc && sqlite3_changes(ix->db) != (int)want)
			rc = sdk_fail(err, SDK_ECORRUPT, "index: %d of %" PRIu32 " %s written",
				      sqlite3_changes(ix->db), want, what);
		sqlite3_clear_bindings(s); /* rows is this frame's */
	}
	return rc;
}

/* The flush's words (term_flush), new or not, in one statement. */
static int terms_write(lib_ix *ix, int64_t gen, sdk_err *err)
{
	if (!ix->ntw)
		return SDK_OK;
	sqlite3_stmt *s = stmt(ix, ST_TERM_PUT);
	if (!s)
		return fail_sql(ix, err, "prepare terms");
	lib_term_rows rows = { ix->tw, ix->ntw };
	lib_term_rows_bind(s, 1, &rows);
	sqlite3_bind_int64(s, 2, gen);
	int rc = exec_simple(ix, s, err, "write terms");
	sqlite3_clear_bindings(s); /* rows is this frame's */
	return rc;
}

/* Writes the collected postings into the blocks. merging: they are
 * pending documents (ix_meta and ix_docs count them already; their
 * ix_pending rows go); otherwise new documents (counted here). */
static int flush_blocks(lib_ix *ix, bool merging, sdk_err *err)
{
	if (!ix->npdoc)
		return SDK_OK;
	ix->next_post = 0; /* read again in this transaction */
	lib_ix_meta m;
	int rc = meta_get(ix, &m, err);
	if (rc)
		goto out;
	/* The cache describes the file only if nothing changed the index
	 * since it was written: the generation it left is still the file's
	 * (every change of the index bumps it, in its transaction), and that
	 * write was committed or is of this transaction. */
	lib_ix_tails *t = ix->tails;
	if (t && !((t->valid || t->ready) && t->gen == m.gen))
		tails_clear(t);
	m.gen++;
	int64_t add_tokens = 0, add_docs = merging ? 0 : ix->npdoc;
	for (uint32_t i = 0; !merging && i < ix->npdoc; i++)
		add_tokens += ix->ptok[i];
	double avgdl = m.docs + add_docs > 0 ? (double)(m.tokens + add_tokens) /
						       (double)(m.docs + add_docs)
					     : 1.0;
	ix->ntw = ix->ntt = ix->ntt_tails = 0;
	ix->tdocs.n = ix->tpos.n = ix->tbound.n = 0;
	for (uint32_t i = 0; !rc && i < ix->cap; i++)
		if (ix->tab[i].term)
			rc = term_flush(ix, &ix->tab[i], &m, avgdl, err);
	if (!rc)
		rc = tails_write(ix, err);
	if (!rc)
		rc = terms_write(ix, m.gen, err);
	ix->ntw = ix->ntt = ix->ntt_tails = 0;
	for (uint32_t i = 0; !rc && i < ix->npdoc; i++) {
		sqlite3_stmt *s = stmt(ix, merging ? ST_PEND_DEL : ST_DOC_INS);
		sqlite3_bind_int64(s, 1, ix->pdoc[i]);
		if (!merging)
			sqlite3_bind_int64(s, 2, ix->ptok[i]);
		rc = exec_simple(ix, s, err, merging ? "delete pending" : "write document length");
	}
	if (!rc) {
		m.docs += add_docs;
		m.tokens += add_tokens;
		rc = meta_put(ix, &m, err);
	}
	if (t) {
		if (rc) {
			tails_clear(t);
		} else { /* usable once lib_ix_tails_done says the transaction committed */
			t->gen = m.gen;
			t->valid = false;
			t->ready = true;
		}
	}
out:
	pending_clear(ix);
	return rc;
}

int lib_ix_flush(lib_ix *ix, sdk_err *err) { return flush_blocks(ix, false, err); }

/* ---- pending documents (ix_pending) */

int lib_pend_open(lib_pend_it *it, const void *blob, size_t n, uint32_t *tokens)
{
	uint64_t tok = 0;
	*it = (lib_pend_it){ .p = blob, .n = n };
	if (!blob || !lib_varint(it->p, n, &it->i, &tok) || tok > UINT32_MAX ||
	    !lib_varint(it->p, n, &it->i, &it->left) || it->left > n)
		return SDK_ECORRUPT;
	*tokens = (uint32_t)tok;
	return SDK_OK;
}

int lib_pend_next(lib_pend_it *it, const char **term, uint32_t *len, uint32_t tf[LIB_FIELDS])
{
	if (!it->left)
		return it->i == it->n ? 0 : SDK_ECORRUPT;
	uint64_t l;
	if (!lib_varint(it->p, it->n, &it->i, &l) || l == 0 || l > LIB_TERM_MAX + 1 ||
	    l > it->n - it->i)
		return SDK_ECORRUPT;
	*term = (const char *)it->p + it->i;
	*len = (uint32_t)l;
	it->i += l;
	for (unsigned f = 0; f < LIB_FIELDS; f++) {
		uint64_t v;
		if (!lib_varint(it->p, it->n, &it->i, &v) || v > UINT32_MAX)
			return SDK_ECORRUPT;
		tf[f] = (uint32_t)v;
	}
	it->left--;
	return 1;
}

/* The one collected document's terms as its ix_pending blob, in ix->docs. */
static bool pend_encode(lib_ix *ix)
{
	lib_buf *b = &ix->docs;
	b->n = 0;
	if (!lib_buf_varint(b, ix->ptok[0]) || !lib_buf_varint(b, ix->used))
		return false;
	for (uint32_t i = 0; i < ix->cap; i++) {
		const struct pterm *e = &ix->tab[i];
		if (!e->term)
			continue;
		if (!lib_buf_varint(b, e->len) || !lib_buf_reserve(b, e->len))
			return false;
		memcpy(b->p + b->n, e->term, e->len);
		b->n += e->len;
		for (unsigned f = 0; f < LIB_FIELDS; f++)
			if (!lib_buf_varint(b, e->blk.tf[0][f]))
				return false;
	}
	return true;
}

int lib_ix_stage(lib_ix *ix, sdk_err *err)
{
	if (ix->npdoc != 1)
		return lib_ix_flush(ix, err);
	lib_ix_meta m;
	int rc = meta_get(ix, &m, err);
	if (!rc && !pend_encode(ix))
		rc = oom(err);
	sqlite3_stmt *s;
	if (!rc) {
		s = stmt(ix, ST_PEND_INS);
		sqlite3_bind_int64(s, 1, ix->pdoc[0]);
		sqlite3_bind_blob(s, 2, ix->docs.p, (int)ix->docs.n, SQLITE_STATIC);
		rc = exec_simple(ix, s, err, "write pending document");
	}
	if (!rc) {
		s = stmt(ix, ST_DOC_INS);
		sqlite3_bind_int64(s, 1, ix->pdoc[0]);
		sqlite3_bind_int64(s, 2, ix->ptok[0]);
		rc = exec_simple(ix, s, err, "write document length");
	}
	if (!rc) {
		/* gen stays: the blocks and terms did not change, so the writer's
		 * tails cache (index.h) still holds for the next merge. */
		m.docs++;
		m.tokens += ix->ptok[0];
		rc = meta_put(ix, &m, err);
	}
	pending_clear(ix);
	return rc;
}

/* A pending document's blob into the collected postings, as lib_ix_add
 * would have collected its text. */
static int collect_pending(lib_ix *ix, int64_t id, const void *blob, size_t n, sdk_err *err)
{
	lib_pend_it it;
	uint32_t tokens, len, tf[LIB_FIELDS];
	const char *term;
	if (lib_pend_open(&it, blob, n, &tokens))
		return sdk_fail(err, SDK_ECORRUPT, "index: pending document %" PRId64 " is damaged",
				id);
	ix->doc = id;
	ix->ntouched = 0;
	int r;
	while ((r = lib_pend_next(&it, &term, &len, tf)) == 1) {
		struct pterm *e = posting_of(ix, term, len);
		if (!e)
			return oom(err);
		memcpy(e->blk.tf[e->blk.n - 1], tf, sizeof tf);
	}
	if (r)
		return sdk_fail(err, SDK_ECORRUPT, "index: pending document %" PRId64 " is damaged",
				id);
	for (uint32_t k = 0; k < ix->ntouched; k++) {
		lib_blk *b = &ix->tab[ix->touched[k]].blk;
		b->dl[b->n - 1] = tokens;
	}
	return pdoc_push(ix, id, tokens) ? SDK_OK : oom(err);
}

int lib_ix_merge(lib_ix *ix, unsigned max, unsigned *merged, sdk_err *err)
{
	*merged = 0;
	if (ix->npdoc)
		return sdk_fail(err, SDK_EINVAL, "index: a merge with documents collected");
	sqlite3_stmt *s = stmt(ix, ST_PEND_LIST);
	sqlite3_bind_int64(s, 1, (int64_t)max + 1);
	int rc = SDK_OK, step;
	unsigned seen = 0;
	while (!rc && (step = sqlite3_step(s)) == SQLITE_ROW && ++seen <= max)
		rc = collect_pending(ix, sqlite3_column_int64(s, 0), sqlite3_column_blob(s, 1),
				     (size_t)sqlite3_column_bytes(s, 1), err);
	if (!rc && step != SQLITE_ROW && step != SQLITE_DONE)
		rc = fail_sql(ix, err, "read pending documents");
	sqlite3_reset(s);
	uint32_t n = ix->npdoc;
	if (!rc)
		rc = flush_blocks(ix, true, err);
	pending_clear(ix);
	if (rc)
		return rc;
	*merged = n;
	return seen > max;
}

int lib_ix_merge_all(sqlite3 *db, lib_ix_tails *t, int64_t *merged, sdk_err *err)
{
	lib_ix *ix;
	if (merged)
		*merged = 0;
	int rc = lib_ix_open(db, &ix, err);
	if (rc)
		return rc;
	lib_ix_use_tails(ix, t);
	for (int more = 1; !rc && more;) {
		if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
			rc = fail_sql(ix, err, "begin merge");
			break;
		}
		unsigned n = 0;
		more = lib_ix_merge(ix, LIB_IX_MERGE_STEP, &n, err);
		if (more < 0)
			rc = more;
		else if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
			rc = fail_sql(ix, err, "commit merge");
		if (rc)
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		lib_ix_tails_done(t, !rc);
		if (!rc && merged)
			*merged += n;
	}
	lib_ix_close(ix);
	return rc;
}

/* ---- removing */

struct tset {
	char **v;
	uint32_t n;
	size_t cap;
	uint64_t tokens;
	unsigned field;
	int fail;
};

static int tset_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int tset_add(struct tset *t, const char *s, size_t n)
{
	if (t->n == t->cap) {
		char **v = sdk_grow(t->v, &t->cap, t->n, sizeof *v, 256);
		if (!v)
			return t->fail = SDK_EIO;
		t->v = v;
	}
	char *c = malloc(n + 1);
	if (!c)
		return t->fail = SDK_EIO;
	memcpy(c, s, n);
	c[n] = '\0';
	t->v[t->n++] = c;
	return 0;
}

static int on_old_token(void *arg, const char *tok, int len, int start, int end)
{
	(void)start, (void)end;
	struct tset *t = arg;
	t->tokens++;
	if (len <= 0 || len > LIB_TERM_MAX)
		return 0;
	return tset_add(t, tok, (size_t)len);
}

static void tset_free(struct tset *t)
{
	for (uint32_t i = 0; i < t->n; i++)
		free(t->v[i]);
	free(t->v);
}

/* The distinct terms of a stored document (tag terms included). */
static int doc_terms(lib_ix *ix, int64_t id, struct tset *t, sdk_err *err)
{
	sqlite3_stmt *s = stmt(ix, ST_TEXT_GET);
	sqlite3_bind_int64(s, 1, id);
	int rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(s);
		return rc == SQLITE_DONE ? sdk_fail(err, SDK_ENOTFOUND, "document %" PRId64
						    " not found", id)
					 : fail_sql(ix, err, "read document");
	}
	rc = SDK_OK;
	for (int f = 0; !rc && f < LIB_FIELDS; f++) {
		const char *text = (const char *)sqlite3_column_text(s, f);
		int len = sqlite3_column_bytes(s, f);
		if (!text)
			text = "";
		rc = lib_tok_run(ix->tok, LIB_TOK_DOC, text, len, on_old_token, t);
		if (rc || t->fail)
			rc = t->fail ? oom(err) : sdk_fail(err, SDK_EIO, "the tokenizer failed");
	}
	if (!rc) {
		json_t *arr = json_loads((const char *)sqlite3_column_text(s, 2), 0, NULL);
		size_t i;
		json_t *tag;
		char term[LIB_TERM_MAX + 2];
		json_array_foreach(arr, i, tag) {
			if (json_is_string(tag)) {
				size_t n = lib_tag_term(json_string_value(tag), term, sizeof term);
				if (tset_add(t, term, n))
					rc = oom(err);
			}
		}
		json_decref(arr);
	}
	sqlite3_reset(s);
	if (rc)
		return rc;
	qsort(t->v, t->n, sizeof *t->v, tset_cmp);
	uint32_t w = 0;
	for (uint32_t i = 0; i < t->n; i++) {
		if (w && !strcmp(t->v[w - 1], t->v[i]))
			free(t->v[i]);
		else
			t->v[w++] = t->v[i];
	}
	t->n = w;
	return SDK_OK;
}

static int term_forget(lib_ix *ix, const char *term, int64_t doc, lib_ix_meta *m, double avgdl,
		       sdk_err *err)
{
	sqlite3_stmt *s = stmt(ix, ST_TERM_GET);
	sqlite3_bind_text(s, 1, term, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	int64_t id = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
	int64_t df = rc == SQLITE_ROW ? sqlite3_column_int64(s, 1) : 0;
	sqlite3_reset(s);
	if (rc != SQLITE_ROW)
		return rc == SQLITE_DONE ? sdk_fail(err, SDK_ECORRUPT, "index: document %" PRId64
						    " has a term the index lacks", doc)
					 : fail_sql(ix, err, "read term");
	struct blockref r;
	bool found, in_tail = false;
	rc = block_find(ix, ST_BLOCK_FIND, id, doc, &r, &found, err);
	if (!rc && !found) { /* past every block: the tail's */
		rc = block_find(ix, ST_TAIL_FIND, id, 0, &r, &found, err);
		in_tail = found && doc <= r.last;
	}
	if (!rc && !found)
		rc = sdk_fail(err, SDK_ECORRUPT, "index: document %" PRId64 " is missing from a"
			      " term's postings", doc);
	if (!rc)
		rc = post_load(ix, id, r.post, &ix->b, err);
	if (rc)
		return rc;
	lib_blk_clear(&ix->a);
	bool seen = false;
	for (uint32_t k = 0; k < ix->b.n; k++) {
		if (ix->b.doc[k] == doc)
			seen = true;
		else if (!blk_push(&ix->a, &ix->b, k))
			return oom(err);
	}
	if (!seen)
		return sdk_fail(err, SDK_ECORRUPT, "index: document %" PRId64 " is missing from a"
				" term's postings", doc);
	rc = in_tail ? tail_store(ix, id, &ix->a, avgdl, err)
		     : block_replace(ix, id, r.last, r.post, &ix->a, avgdl, err);
	if (rc)
		return rc;
	if (--df == 0) {
		s = stmt(ix, ST_TERM_DEL);
		sqlite3_bind_text(s, 1, term, -1, SQLITE_STATIC);
	} else {
		s = stmt(ix, ST_TERM_UPD);
		sqlite3_bind_text(s, 1, term, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, df);
		sqlite3_bind_int64(s, 3, m->gen);
	}
	return exec_simple(ix, s, err, "write term");
}

/* A document still in ix_pending leaves with its row: no block to touch.
 * 1 when it was pending (and is gone), 0 when not. */
static int unstage(lib_ix *ix, int64_t id, sdk_err *err)
{
	sqlite3_stmt *s = stmt(ix, ST_PEND_DEL);
	sqlite3_bind_int64(s, 1, id);
	int rc = exec_simple(ix, s, err, "delete pending document");
	if (rc || sqlite3_changes(ix->db) == 0)
		return rc;
	s = stmt(ix, ST_DOC_GET);
	sqlite3_bind_int64(s, 1, id);
	rc = sqlite3_step(s);
	int64_t tokens = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
	sqlite3_reset(s);
	if (rc != SQLITE_ROW)
		return rc == SQLITE_DONE ? sdk_fail(err, SDK_ECORRUPT, "index: pending document %"
						    PRId64 " has no length", id)
					 : fail_sql(ix, err, "read document length");
	s = stmt(ix, ST_DOC_DEL);
	sqlite3_bind_int64(s, 1, id);
	lib_ix_meta m;
	if ((rc = exec_simple(ix, s, err, "delete document length")) ||
	    (rc = meta_get(ix, &m, err)))
		return rc;
	m.docs--; /* gen stays, as for lib_ix_stage */
	m.tokens -= tokens;
	rc = meta_put(ix, &m, err);
	return rc ? rc : 1;
}

int lib_ix_remove(lib_ix *ix, int64_t id, sdk_err *err)
{
	int rc;
	if (pending_has(ix, id) && (rc = lib_ix_flush(ix, err)))
		return rc;
	if ((rc = unstage(ix, id, err)))
		return rc < 0 ? rc : SDK_OK;
	ix->next_post = 0; /* read again in this transaction */
	sqlite3_stmt *s = stmt(ix, ST_DOC_GET);
	sqlite3_bind_int64(s, 1, id);
	rc = sqlite3_step(s);
	int64_t tokens = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
	sqlite3_reset(s);
	if (rc == SQLITE_DONE)
		return SDK_OK; /* never indexed: a build has not reached it */
	if (rc != SQLITE_ROW)
		return fail_sql(ix, err, "read document length");
	struct tset t = { 0 };
	rc = doc_terms(ix, id, &t, err);
	if (!rc && (int64_t)t.tokens != tokens)
		rc = sdk_fail(err, SDK_ECORRUPT, "index: document %" PRId64 " changed behind the"
			      " index's back (%" PRIu64 " words, indexed with %" PRId64 ")", id,
			      t.tokens, tokens);
	lib_ix_meta m;
	if (!rc)
		rc = meta_get(ix, &m, err);
	if (!rc) {
		m.gen++;
		double avgdl = m.docs > 1 ? (double)(m.tokens - tokens) / (double)(m.docs - 1) : 1.0;
		for (uint32_t i = 0; !rc && i < t.n; i++)
			rc = term_forget(ix, t.v[i], id, &m, avgdl, err);
	}
	tset_free(&t);
	if (!rc) {
		s = stmt(ix, ST_DOC_DEL);
		sqlite3_bind_int64(s, 1, id);
		rc = exec_simple(ix, s, err, "delete document length");
	}
	if (!rc) {
		m.docs--;
		m.tokens -= tokens;
		rc = meta_put(ix, &m, err);
	}
	return rc;
}

/* ---- building */

int lib_ix_build_step(lib_ix *ix, int64_t *cursor, unsigned max, sdk_err *err)
{
	sqlite3 *db = ix->db;
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return fail_sql(ix, err, "begin");
	sqlite3_stmt *s;
	int rc = SDK_OK;
	unsigned seen = 0;
	int64_t last = *cursor;
	if (sqlite3_prepare_v2(db, "SELECT d.id, d.title, d.body, d.tags FROM documents AS d"
			       " WHERE d.id > ?1 AND NOT EXISTS"
			       " (SELECT 1 FROM ix_docs AS x WHERE x.id = d.id)"
			       " ORDER BY d.id LIMIT ?2", -1, &s, NULL) != SQLITE_OK) {
		rc = fail_sql(ix, err, "prepare build");
		goto out;
	}
	sqlite3_bind_int64(s, 1, *cursor);
	sqlite3_bind_int(s, 2, (int)max);
	int step;
	while (!rc && (step = sqlite3_step(s)) == SQLITE_ROW) {
		last = sqlite3_column_int64(s, 0);
		seen++;
		const char *t = (const char *)sqlite3_column_text(s, 1);
		const char *b = (const char *)sqlite3_column_text(s, 2);
		const char *g = (const char *)sqlite3_column_text(s, 3);
		rc = lib_ix_add(ix, last, t ? t : "", b ? b : "", g ? g : "[]", err);
	}
	if (!rc && step != SQLITE_DONE)
		rc = fail_sql(ix, err, "read documents");
	sqlite3_finalize(s);
	if (!rc)
		rc = lib_ix_flush(ix, err);
	lib_ix_meta m;
	if (!rc && seen < max) {
		rc = meta_get(ix, &m, err);
		if (!rc && !m.complete) {
			m.complete = true;
			m.gen++;
			rc = meta_put(ix, &m, err);
		}
	}
out:
	if (rc) {
		lib_ix_discard(ix);
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return rc;
	}
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		rc = fail_sql(ix, err, "commit");
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return rc;
	}
	*cursor = last;
	return seen < max ? 0 : 1;
}

int lib_ix_reset(sqlite3 *db, sdk_err *err)
{
	if (sqlite3_exec(db, "DELETE FROM ix_terms; DELETE FROM ix_blocks; DELETE FROM ix_posts;"
			 " DELETE FROM ix_tails;"
			 "DELETE FROM ix_docs; DELETE FROM ix_pending;"
			 " UPDATE ix_meta SET docs = 0, tokens = 0,"
			 " gen = gen + 1, complete = 0 WHERE id = 1;", NULL, NULL, NULL) != SQLITE_OK)
		return sdk_fail(err, sdk_status_of_sqlite(sqlite3_extended_errcode(db)),
				"index: reset: %s", sqlite3_errmsg(db));
	return SDK_OK;
}
