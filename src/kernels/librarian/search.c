/* Top-k over the block index (search.h). */
#include "kernels/librarian/search.h"

#include "kernels/librarian/block.h"
#include "kernels/librarian/index.h"

#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DOC_END INT64_MAX

/* ---- parsing */

static bool bareword(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!((unsigned char)*s >= 0x80 || isalnum((unsigned char)*s)))
			return false;
	return true;
}

struct one_tok {
	char *text;
	int n;
	int fail;
};

static int on_one(void *arg, const char *tok, int len, int start, int end)
{
	(void)start, (void)end;
	struct one_tok *o = arg;
	if (++o->n > 1 || len <= 0 || len > LIB_TERM_MAX)
		return 1; /* not one indexable token: FTS5's business */
	o->text = strndup(tok, (size_t)len);
	if (!o->text)
		o->fail = SDK_EIO;
	return 0;
}

/* The one term a bareword stands for: 1 and *out, 0 when it is not one. */
static int one_term(lib_tok *tok, const char *w, char **out, sdk_err *err)
{
	struct one_tok o = { 0 };
	*out = NULL;
	if (!bareword(w))
		return 0;
	int rc = lib_tok_run(tok, LIB_TOK_QUERY, w, (int)strlen(w), on_one, &o);
	if (o.fail || rc < 0) {
		free(o.text);
		return sdk_fail(err, SDK_EIO, o.fail ? "out of memory" : "the tokenizer failed");
	}
	if (rc || o.n != 1 || !o.text) {
		free(o.text);
		return 0;
	}
	*out = o.text;
	return 1;
}

void lib_sq_clear(lib_sq *sq)
{
	for (unsigned i = 0; i < sq->nword; i++)
		free(sq->word[i]);
	for (unsigned i = 0; i < sq->nexcl; i++)
		free(sq->excl[i]);
	for (unsigned i = 0; i < sq->ntag; i++)
		free(sq->tag[i]);
	*sq = (lib_sq){ 0 };
}

int lib_sq_parse(lib_tok *tok, const char *const *pos, unsigned npos, const char *const *excl,
		 unsigned nexcl, const char *const *tags, unsigned ntag, lib_sq *sq, sdk_err *err)
{
	*sq = (lib_sq){ 0 };
	if (nexcl > LIB_SQ_WORDS_MAX || ntag > LIB_SQ_TAGS_MAX)
		return 0;
	bool saw_or = false, saw_and = false, want_word = true;
	int rc = 1;
	for (unsigned i = 0; rc == 1 && i < npos; i++) {
		bool is_or = !strcmp(pos[i], "OR"), is_and = !strcmp(pos[i], "AND");
		if (is_or || is_and) {
			/* an operator between two words, never first, last or twice */
			if (want_word || i + 1 == npos)
				rc = 0;
			saw_or |= is_or;
			saw_and |= is_and;
			want_word = true;
			continue;
		}
		if (!strcmp(pos[i], "NOT") || !strcmp(pos[i], "NEAR"))
			rc = 0; /* FTS5's keywords: its business */
		if (!want_word && saw_or)
			rc = 0; /* "a OR b c": precedence FTS5 decides */
		if (rc == 1 && sq->nword == LIB_SQ_WORDS_MAX)
			rc = 0;
		if (rc == 1)
			rc = one_term(tok, pos[i], &sq->word[sq->nword], err);
		if (rc == 1)
			sq->nword++;
		want_word = false;
	}
	if (rc == 1 && (saw_or && (saw_and || npos != 2 * sq->nword - 1)))
		rc = 0;
	for (unsigned i = 0; rc == 1 && i < nexcl; i++) {
		rc = one_term(tok, excl[i], &sq->excl[sq->nexcl], err);
		if (rc == 1)
			sq->nexcl++;
	}
	for (unsigned i = 0; rc == 1 && i < ntag; i++) {
		if (!(sq->tag[sq->ntag] = strdup(tags[i])))
			rc = sdk_fail(err, SDK_EIO, "out of memory");
		else
			sq->ntag++;
	}
	if (rc == 1 && !sq->nword)
		rc = 0;
	sq->or_mode = saw_or;
	return rc;
}

/* ---- one term's postings */

/* A term's postings among the pending documents (ix_pending, index.h):
 * not in its blocks yet, scored one by one (there are few), ascending. */
struct pend {
	int64_t *doc;
	uint32_t *dl;
	uint32_t (*tf)[LIB_FIELDS];
	uint32_t n, cap;
};

/* A term's postings: its blocks and its pending postings, two ascending
 * streams with no document in both (a document is pending or merged). */
struct cur {
	struct pend p;
	bool p_borrowed; /* p is the cache's */
	uint32_t pk;     /* the current pending posting */
	double pub;  /* the best score a pending posting gives (with slack) */
	int64_t df;
	double idf;
	uint32_t nb, bi; /* blocks, the current one */
	int64_t *last;   /* per block: its last document */
	int64_t *post;   /* per block: its ix_posts row */
	double *ub;      /* per block: the best score a posting of it can give */
	double maxub;
	bool loaded; /* block bi is in blk */
	uint32_t k;  /* the current posting of blk */
	lib_blk blk;
};

struct ctx {
	sqlite3 *db;
	sqlite3_stmt *term, *blocks, *docs, *tail, *tail_docs;
	int64_t ndocs;
	double avgdl;
	int64_t cap; /* count exactly up to here */
	lib_ranked *r;
	sdk_err *err;
};

static int fail_sql(struct ctx *c, const char *what)
{
	return sdk_fail(c->err, sdk_status_of_sqlite(sqlite3_extended_errcode(c->db)),
			"search: %s: %s", what, sqlite3_errmsg(c->db));
}

static void pend_free(struct pend *p)
{
	free(p->doc);
	free(p->dl);
	free(p->tf);
	*p = (struct pend){ 0 };
}

static void cur_free(struct cur *u)
{
	if (!u->p_borrowed)
		pend_free(&u->p);
	free(u->last);
	free(u->post);
	free(u->ub);
	lib_blk_free(&u->blk);
	*u = (struct cur){ 0 };
}

static bool pend_push(struct pend *p, int64_t doc, uint32_t dl, const uint32_t tf[LIB_FIELDS])
{
	if (p->n == p->cap) {
		uint32_t cap = p->cap ? p->cap * 2 : 16;
		int64_t *d = realloc(p->doc, cap * sizeof *d);
		if (d)
			p->doc = d;
		uint32_t *l = realloc(p->dl, cap * sizeof *l);
		if (l)
			p->dl = l;
		uint32_t(*t)[LIB_FIELDS] = realloc(p->tf, cap * sizeof *t);
		if (t)
			p->tf = t;
		if (!d || !l || !t)
			return false;
		p->cap = cap;
	}
	p->doc[p->n] = doc;
	p->dl[p->n] = dl;
	memcpy(p->tf[p->n], tf, sizeof p->tf[p->n]);
	p->n++;
	return true;
}

/* The pending postings of the query's n terms into u[0..n), from this
 * snapshot's ix_pending (at most a merge threshold's documents, so read
 * whole: no skipping needed). */
static int pend_load(struct ctx *c, struct cur *u, char *const *term, const size_t *len,
		     unsigned n)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(c->db, "SELECT doc, terms FROM ix_pending ORDER BY doc", -1, &s,
			       NULL) != SQLITE_OK)
		return fail_sql(c, "prepare pending");
	int rc, r = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		int64_t doc = sqlite3_column_int64(s, 0);
		lib_pend_it it;
		uint32_t dl, tl, tf[LIB_FIELDS];
		const char *t;
		if (lib_pend_open(&it, sqlite3_column_blob(s, 1), (size_t)sqlite3_column_bytes(s, 1),
				  &dl)) {
			r = SDK_ECORRUPT;
			break;
		}
		while ((r = lib_pend_next(&it, &t, &tl, tf)) == 1)
			for (unsigned i = 0; r == 1 && i < n; i++)
				if (len[i] == tl && !memcmp(term[i], t, tl) &&
				    !pend_push(&u[i].p, doc, dl, tf))
					r = SDK_EIO;
		if (r)
			break;
	}
	sqlite3_finalize(s);
	if (r == SDK_EIO)
		return sdk_fail(c->err, SDK_EIO, "out of memory");
	if (r)
		return sdk_fail(c->err, SDK_ECORRUPT, "search: a pending document is damaged");
	return rc == SQLITE_DONE ? SDK_OK : fail_sql(c, "read pending");
}

/* ---- the pending documents' cache (search.h) */

struct pc_term {
	char *term; /* NULL: a free slot */
	uint32_t len, hash;
	struct pend p;
};

#define SQ_STMTS 12 /* a search's statements: 10 today (workers.c, find.c, here) */

struct sq_stmt {
	const char *sql; /* NULL: a free slot */
	sqlite3_stmt *st;
	bool taken;
};

struct lib_sq_cache {
	/* the pending set */
	struct pc_term *tab;
	uint32_t cap, used;
	size_t bytes;
	int64_t count, maxseq; /* the set it holds */
	bool valid;
	/* the statements, of db */
	sqlite3 *db;
	struct sq_stmt stmt[SQ_STMTS];
};

lib_sq_cache *lib_sq_cache_new(void) { return calloc(1, sizeof(lib_sq_cache)); }

static void pc_clear(lib_sq_cache *pc)
{
	for (uint32_t i = 0; i < pc->cap; i++)
		if (pc->tab[i].term) {
			free(pc->tab[i].term);
			pend_free(&pc->tab[i].p);
		}
	free(pc->tab);
	pc->tab = NULL;
	pc->cap = pc->used = 0;
	pc->bytes = 0;
	pc->count = pc->maxseq = 0;
	pc->valid = false;
}

static void stmts_clear(lib_sq_cache *pc)
{
	for (unsigned i = 0; i < SQ_STMTS; i++) {
		sqlite3_finalize(pc->stmt[i].st);
		pc->stmt[i] = (struct sq_stmt){ 0 };
	}
	pc->db = NULL;
}

void lib_sq_cache_free(lib_sq_cache *pc)
{
	if (!pc)
		return;
	pc_clear(pc);
	stmts_clear(pc);
	free(pc);
}

sqlite3_stmt *lib_sq_stmt_take(lib_sq_cache *pc, sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	if (pc && pc->db != db) {
		stmts_clear(pc);
		pc->db = db;
	}
	unsigned i = 0, free_slot = SQ_STMTS;
	for (; pc && i < SQ_STMTS; i++) {
		if (!pc->stmt[i].sql) {
			if (free_slot == SQ_STMTS)
				free_slot = i;
		} else if (pc->stmt[i].sql == sql || !strcmp(pc->stmt[i].sql, sql)) {
			break;
		}
	}
	if (pc && i < SQ_STMTS && !pc->stmt[i].taken) {
		pc->stmt[i].taken = true;
		return pc->stmt[i].st;
	}
	/* Taken already (the same statement twice at once), no slot, or no
	 * cache: one of its own, finalized when given back. */
	bool keep = pc && i == SQ_STMTS && free_slot < SQ_STMTS;
	if (sqlite3_prepare_v3(db, sql, -1, keep ? SQLITE_PREPARE_PERSISTENT : 0, &st, NULL) !=
	    SQLITE_OK) {
		sqlite3_finalize(st);
		return NULL;
	}
	if (keep)
		pc->stmt[free_slot] = (struct sq_stmt){ sql, st, true };
	return st;
}

void lib_sq_stmt_give(lib_sq_cache *pc, sqlite3_stmt *st)
{
	if (!st)
		return;
	for (unsigned i = 0; pc && i < SQ_STMTS; i++)
		if (pc->stmt[i].st == st) {
			sqlite3_reset(st);
			sqlite3_clear_bindings(st);
			pc->stmt[i].taken = false;
			return;
		}
	sqlite3_finalize(st);
}

/* The term's entry; add: made when missing (NULL: out of memory). */
static struct pc_term *pc_slot(lib_sq_cache *pc, const char *s, uint32_t n, bool add)
{
	if (add && (pc->used + 1) * 2 > pc->cap) {
		uint32_t cap = pc->cap ? pc->cap * 2 : 1024;
		struct pc_term *t = calloc(cap, sizeof *t);
		if (!t)
			return NULL;
		for (uint32_t i = 0; i < pc->cap; i++) {
			if (!pc->tab[i].term)
				continue;
			uint32_t j = pc->tab[i].hash & (cap - 1);
			while (t[j].term)
				j = (j + 1) & (cap - 1);
			t[j] = pc->tab[i];
		}
		free(pc->tab);
		pc->tab = t;
		pc->cap = cap;
	}
	if (!pc->cap)
		return NULL;
	uint32_t h = lib_ix_term_hash(s, n), j = h & (pc->cap - 1);
	while (pc->tab[j].term) {
		struct pc_term *e = &pc->tab[j];
		if (e->hash == h && e->len == n && !memcmp(e->term, s, n))
			return e;
		j = (j + 1) & (pc->cap - 1);
	}
	if (!add || !(pc->tab[j].term = malloc(n)))
		return NULL;
	memcpy(pc->tab[j].term, s, n);
	pc->tab[j].len = n;
	pc->tab[j].hash = h;
	pc->used++;
	pc->bytes += sizeof(struct pc_term) + n;
	return &pc->tab[j];
}

static const char sql_pending_set[] = "SELECT count(*), coalesce(max(seq), 0) FROM ix_pending";

/* The pending set of this snapshot into pc, unless pc holds it already.
 * 1: pc holds it; 0: it is too large for pc (read per search); < 0. */
static int pc_load(struct ctx *c, lib_sq_cache *pc)
{
	sqlite3_stmt *s = lib_sq_stmt_take(pc, c->db, sql_pending_set);
	if (!s)
		return fail_sql(c, "prepare pending");
	int rc = sqlite3_step(s);
	int64_t count = sqlite3_column_int64(s, 0), maxseq = sqlite3_column_int64(s, 1);
	lib_sq_stmt_give(pc, s);
	if (rc != SQLITE_ROW)
		return fail_sql(c, "read pending");
	if (pc->valid && pc->count == count && pc->maxseq == maxseq)
		return 1;
	pc_clear(pc);
	if (sqlite3_prepare_v2(c->db, "SELECT doc, terms FROM ix_pending ORDER BY doc", -1, &s,
			       NULL) != SQLITE_OK)
		return fail_sql(c, "prepare pending");
	int r = 0;
	while (!r && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		int64_t doc = sqlite3_column_int64(s, 0);
		lib_pend_it it;
		uint32_t dl, tl, tf[LIB_FIELDS];
		const char *t;
		if (lib_pend_open(&it, sqlite3_column_blob(s, 1), (size_t)sqlite3_column_bytes(s, 1),
				  &dl)) {
			r = SDK_ECORRUPT;
			break;
		}
		while ((r = lib_pend_next(&it, &t, &tl, tf)) == 1) {
			struct pc_term *e = pc_slot(pc, t, tl, true);
			if (!e || !pend_push(&e->p, doc, dl, tf)) {
				r = SDK_EIO;
				break;
			}
			pc->bytes += sizeof(int64_t) + sizeof(uint32_t) * (1 + LIB_FIELDS);
		}
		if (!r && pc->bytes > LIB_PEND_CACHE_BYTES)
			r = 1; /* too large: not kept */
	}
	sqlite3_finalize(s);
	if (r || rc != SQLITE_DONE)
		pc_clear(pc);
	if (r == 1)
		return 0;
	if (r == SDK_EIO)
		return sdk_fail(c->err, SDK_EIO, "out of memory");
	if (r)
		return sdk_fail(c->err, SDK_ECORRUPT, "search: a pending document is damaged");
	if (rc != SQLITE_DONE)
		return fail_sql(c, "read pending");
	pc->count = count;
	pc->maxseq = maxseq;
	pc->valid = true;
	return 1;
}

/* The cached postings of the n terms, borrowed into u[0..n). */
static void pc_lend(lib_sq_cache *pc, struct cur *u, char *const *term, const size_t *len,
		    unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		struct pc_term *e = pc_slot(pc, term[i], (uint32_t)len[i], false);
		u[i].p_borrowed = true;
		if (e)
			u[i].p = e->p;
	}
}

static double cur_score(const struct ctx *c, const struct cur *u, uint32_t k)
{
	return lib_bm25_term(u->idf, (double)lib_weighted(u->blk.tf[k], LIB_FIELDS_MASK),
			     (double)u->blk.dl[k], c->avgdl);
}

static double pend_score(const struct ctx *c, const struct cur *u, uint32_t k)
{
	return lib_bm25_term(u->idf, (double)lib_weighted(u->p.tf[k], LIB_FIELDS_MASK),
			     (double)u->p.dl[k], c->avgdl);
}

/* The skip list's entries statement `st` gives for term `id` (last,
 * postings, bound), after those u has; *cap: u's arrays' room. */
static int cur_rows(struct ctx *c, struct cur *u, sqlite3_stmt *st, int64_t id, bool scoring,
		    uint32_t *cap)
{
	int rc;
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (u->nb == *cap) {
			*cap = *cap ? *cap * 2 : 64;
			int64_t *l = realloc(u->last, *cap * sizeof *l);
			if (l)
				u->last = l;
			int64_t *p = realloc(u->post, *cap * sizeof *p);
			if (p)
				u->post = p;
			double *b = realloc(u->ub, *cap * sizeof *b);
			if (b)
				u->ub = b;
			if (!l || !p || !b) {
				sqlite3_reset(st);
				return sdk_fail(c->err, SDK_EIO, "out of memory");
			}
		}
		u->last[u->nb] = sqlite3_column_int64(st, 0);
		u->post[u->nb] = sqlite3_column_int64(st, 1);
		double ub = 0;
		if (scoring) {
			lib_bound bd;
			if (lib_bound_decode(sqlite3_column_blob(st, 2),
					     (size_t)sqlite3_column_bytes(st, 2), &bd)) {
				sqlite3_reset(st);
				return sdk_fail(c->err, SDK_ECORRUPT,
						"search: a block bound of a term is damaged");
			}
			ub = lib_bound_score(&bd, u->idf, c->avgdl);
		}
		u->ub[u->nb] = ub;
		if (ub > u->maxub)
			u->maxub = ub;
		u->nb++;
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? SDK_OK : fail_sql(c, "read blocks");
}

/* The term's document count (its blocks' and its pending postings') and
 * skip list; u->p is loaded already. A term not in the index has no
 * blocks (every step past it is DOC_END). */
static int cur_open(struct ctx *c, const char *term, size_t len, bool scoring, struct cur *u)
{
	sqlite3_reset(c->term);
	sqlite3_bind_text(c->term, 1, term, (int)len, SQLITE_STATIC);
	int rc = sqlite3_step(c->term);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return fail_sql(c, "read term");
	int64_t id = rc == SQLITE_ROW ? sqlite3_column_int64(c->term, 0) : 0;
	u->df = (rc == SQLITE_ROW ? sqlite3_column_int64(c->term, 1) : 0) + u->p.n;
	sqlite3_reset(c->term);
	u->idf = lib_idf(c->ndocs, u->df);
	for (uint32_t k = 0; scoring && k < u->p.n; k++) {
		double sc = pend_score(c, u, k) * LIB_BOUND_SLACK;
		if (sc > u->pub)
			u->pub = sc;
	}
	u->maxub = u->pub;
	if (!id)
		return SDK_OK;
	/* Its blocks, then its tail, which comes after them (index.h). */
	uint32_t cap = 0;
	rc = cur_rows(c, u, c->blocks, id, scoring, &cap);
	return rc ? rc : cur_rows(c, u, c->tail, id, scoring, &cap);
}

static int cur_load(struct ctx *c, struct cur *u, uint32_t b)
{
	/* A tail's postings are known by its term's id negated (sql_tail). */
	sqlite3_stmt *st = u->post[b] < 0 ? c->tail_docs : c->docs;
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, u->post[b] < 0 ? -u->post[b] : u->post[b]);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(st);
		return rc == SQLITE_DONE ? sdk_fail(c->err, SDK_ECORRUPT, "search: postings missing")
					 : fail_sql(c, "read postings");
	}
	rc = lib_blk_decode(&u->blk, sqlite3_column_blob(st, 0),
			    (size_t)sqlite3_column_bytes(st, 0), NULL, 0);
	sqlite3_reset(st);
	if (rc || u->blk.doc[u->blk.n - 1] != u->last[b])
		return sdk_fail(c->err, SDK_ECORRUPT, "search: a block of postings is damaged");
	c->r->blocks++;
	u->loaded = true;
	u->k = 0;
	return SDK_OK;
}

/* Moves to the first block that may hold a document >= d; no decoding. */
static void cur_shallow(struct cur *u, int64_t d)
{
	while (u->bi < u->nb && u->last[u->bi] < d) {
		u->bi++;
		u->loaded = false;
	}
}

static void pend_shallow(struct cur *u, int64_t d)
{
	while (u->pk < u->p.n && u->p.doc[u->pk] < d)
		u->pk++;
}

/* The first document >= d the term has (DOC_END: none), in *at: the
 * smaller of its blocks' next and its pending postings' next. */
static int cur_next(struct ctx *c, struct cur *u, int64_t d, int64_t *at)
{
	pend_shallow(u, d);
	int64_t pd = u->pk < u->p.n ? u->p.doc[u->pk] : DOC_END;
	cur_shallow(u, d);
	if (u->bi >= u->nb) {
		*at = pd;
		return SDK_OK;
	}
	if (!u->loaded) {
		int rc = cur_load(c, u, u->bi);
		if (rc)
			return rc;
	}
	while (u->blk.doc[u->k] < d)
		u->k++; /* the block's last is >= d: this stops inside it */
	*at = u->blk.doc[u->k] < pd ? u->blk.doc[u->k] : pd;
	return SDK_OK;
}

/* The term's score for document m where its cursor stands (0: not there). */
static double cur_score_at(const struct ctx *c, const struct cur *u, int64_t m)
{
	if (u->bi < u->nb && u->loaded && u->blk.doc[u->k] == m)
		return cur_score(c, u, u->k);
	if (u->pk < u->p.n && u->p.doc[u->pk] == m)
		return pend_score(c, u, u->pk);
	return 0;
}


/* ---- the k best: a heap with the worst at the top */

struct heap {
	lib_hit *h;
	unsigned n, k;
};

static bool worse(const lib_hit *a, const lib_hit *b)
{
	return a->score < b->score || (a->score == b->score && a->doc > b->doc);
}

static double heap_theta(const struct heap *hp)
{
	return hp->n < hp->k ? -INFINITY : hp->h[0].score;
}

static void heap_push(struct heap *hp, int64_t doc, double score)
{
	lib_hit x = { doc, score };
	unsigned i;
	if (hp->n < hp->k) {
		i = hp->n++;
		while (i && worse(&x, &hp->h[(i - 1) / 2])) {
			hp->h[i] = hp->h[(i - 1) / 2];
			i = (i - 1) / 2;
		}
		hp->h[i] = x;
		return;
	}
	if (!worse(&hp->h[0], &x))
		return;
	i = 0;
	for (;;) {
		unsigned l = 2 * i + 1, r = l + 1, m = i;
		const lib_hit *best = &x;
		if (l < hp->n && worse(&hp->h[l], best))
			m = l, best = &hp->h[l];
		if (r < hp->n && worse(&hp->h[r], best))
			m = r, best = &hp->h[r];
		if (m == i)
			break;
		hp->h[i] = hp->h[m];
		i = m;
	}
	hp->h[i] = x;
}

static int cmp_hit(const void *a, const void *b)
{
	const lib_hit *x = a, *y = b;
	return worse(x, y) ? 1 : worse(y, x) ? -1 : 0;
}

/* ---- the plans */

static int cmp_ub_desc(const void *a, const void *b, void *arg)
{
	const double *ub = arg;
	double x = ub[*(const uint32_t *)a], y = ub[*(const uint32_t *)b];
	return x < y ? 1 : x > y ? -1 : 0;
}

/* One word, nothing else: the blocks best bound first. */
static int rank_one(struct ctx *c, struct cur *u, struct heap *hp)
{
	uint32_t *ord = malloc((u->nb ? u->nb : 1) * sizeof *ord);
	if (!ord)
		return sdk_fail(c->err, SDK_EIO, "out of memory");
	for (uint32_t i = 0; i < u->nb; i++)
		ord[i] = i;
	qsort_r(ord, u->nb, sizeof *ord, cmp_ub_desc, u->ub);
	int rc = SDK_OK;
	for (uint32_t k = 0; k < u->p.n; k++) { /* few: all of them */
		heap_push(hp, u->p.doc[k], pend_score(c, u, k));
		c->r->scored++;
	}
	for (uint32_t i = 0; !rc && i < u->nb; i++) {
		if (u->ub[ord[i]] < heap_theta(hp))
			break;
		rc = cur_load(c, u, ord[i]);
		for (uint32_t k = 0; !rc && k < u->blk.n; k++) {
			heap_push(hp, u->blk.doc[k], cur_score(c, u, k));
			c->r->scored++;
		}
	}
	free(ord);
	c->r->total = u->df < c->cap ? u->df : c->cap;
	c->r->total_exact = u->df < c->cap;
	return rc;
}

struct plan {
	struct cur *w; /* the words, in query order */
	unsigned nw;
	unsigned lead; /* AND: the rarest word */
	struct cur *t; /* tags: required, no score */
	unsigned nt;
	struct cur *x; /* exclusions */
	unsigned nx;
	bool or_mode, exhaustive;
};

/* AND: the first document >= d every word and tag has. */
static int next_and(struct ctx *c, struct plan *p, int64_t d, int64_t *at)
{
	int64_t m;
	int rc = cur_next(c, &p->w[p->lead], d, &m);
	unsigned agree = 0, n = p->nw + p->nt, i = 0;
	while (!rc && m != DOC_END && agree < n) {
		struct cur *u = i < p->nw ? &p->w[i] : &p->t[i - p->nw];
		int64_t x;
		if (i == p->lead) {
			agree++;
		} else if (!(rc = cur_next(c, u, m, &x))) {
			if (x == m) {
				agree++;
			} else {
				rc = cur_next(c, &p->w[p->lead], x, &m);
				agree = 0;
				i = 0;
				continue;
			}
		}
		i++;
	}
	*at = m;
	return rc;
}

/* OR: the first document >= d some word has; then the tags must agree. */
static int next_or(struct ctx *c, struct plan *p, int64_t d, int64_t *at)
{
	for (;;) {
		int64_t m = DOC_END, x;
		for (unsigned i = 0; i < p->nw; i++) {
			int rc = cur_next(c, &p->w[i], d, &x);
			if (rc)
				return rc;
			if (x < m)
				m = x;
		}
		int64_t need = m;
		for (unsigned i = 0; m != DOC_END && i < p->nt; i++) {
			int rc = cur_next(c, &p->t[i], m, &x);
			if (rc)
				return rc;
			if (x > need)
				need = x;
		}
		if (need == m) {
			*at = m;
			return SDK_OK;
		}
		d = need; /* nothing between has every tag */
	}
}

/* Block-max skipping: the best a document in [d, end] could score; end is
 * where the first of the current blocks ends. false: no word left. */
static bool window(struct plan *p, int64_t d, double *ub, int64_t *end)
{
	*ub = 0;
	*end = DOC_END;
	bool any = false;
	for (unsigned i = 0; i < p->nw; i++) {
		struct cur *u = &p->w[i];
		cur_shallow(u, d);
		pend_shallow(u, d);
		bool blocks = u->bi < u->nb, pend = u->pk < u->p.n;
		if (!blocks && !pend) {
			if (!p->or_mode)
				return false;
			continue;
		}
		any = true;
		if (blocks) {
			*ub += u->ub[u->bi];
			if (u->last[u->bi] < *end)
				*end = u->last[u->bi];
		}
		if (pend) { /* one stretch up to its last, under its best score */
			*ub += u->pub;
			if (u->p.doc[u->p.n - 1] < *end)
				*end = u->p.doc[u->p.n - 1];
		}
	}
	return any;
}

static int rank_daat(struct ctx *c, struct plan *p, struct heap *hp)
{
	int64_t d = 1, count = 0;
	int rc = SDK_OK;
	for (;;) {
		if (!p->exhaustive && count >= c->cap && hp->n == hp->k) {
			double ub;
			int64_t end;
			if (!window(p, d, &ub, &end))
				break;
			if (ub < heap_theta(hp)) {
				d = end + 1;
				continue;
			}
		}
		int64_t m = DOC_END;
		rc = p->or_mode ? next_or(c, p, d, &m) : next_and(c, p, d, &m);
		if (rc || m == DOC_END)
			break;
		d = m + 1;
		bool excluded = false;
		for (unsigned i = 0; !rc && !excluded && i < p->nx; i++) {
			int64_t x;
			rc = cur_next(c, &p->x[i], m, &x);
			excluded = x == m;
		}
		if (rc)
			break;
		if (excluded)
			continue;
		if (count < c->cap || p->exhaustive)
			count++;
		/* Summed in query order, as FTS5 sums its phrases. */
		double s = 0;
		for (unsigned i = 0; i < p->nw; i++)
			s += cur_score_at(c, &p->w[i], m);
		c->r->scored++;
		heap_push(hp, m, s);
	}
	c->r->total = count < c->cap ? count : c->cap;
	c->r->total_exact = count < c->cap;
	return rc;
}

static const char sql_term[] = "SELECT id, df FROM ix_terms WHERE term = ?1";
/* A term's blocks, then its tail (index.h), whose postings are known by
 * the term's id negated: two statements, each a lookup by its table's
 * key, rather than one UNION ALL ordered by last, which SQLite runs as a
 * merge of its two sides row by row. */
static const char sql_blocks[] = "SELECT last, post, bound FROM ix_blocks WHERE term = ?1"
				 " ORDER BY last";
static const char sql_tail[] = "SELECT last, -term, bound FROM ix_tails WHERE term = ?1";
static const char sql_docs[] = "SELECT docs FROM ix_posts WHERE id = ?1";
static const char sql_tail_docs[] = "SELECT docs FROM ix_tails WHERE term = ?1";

static int plan_open(struct ctx *c, lib_sq_cache *pc, const lib_sq *sq, struct plan *p)
{
	unsigned n = sq->nword + sq->ntag + sq->nexcl;
	struct cur *all = calloc(n, sizeof *all);
	if (!all)
		return sdk_fail(c->err, SDK_EIO, "out of memory");
	p->w = all;
	p->t = all + sq->nword;
	p->x = p->t + sq->ntag;
	/* Every term of the plan in its order: words, tags, exclusions. */
	char tags[LIB_SQ_TAGS_MAX][LIB_TERM_MAX + 2];
	char *term[LIB_SQ_WORDS_MAX * 2 + LIB_SQ_TAGS_MAX];
	size_t len[LIB_SQ_WORDS_MAX * 2 + LIB_SQ_TAGS_MAX];
	unsigned nt = 0;
	for (unsigned i = 0; i < sq->nword; i++, nt++)
		len[nt] = strlen(term[nt] = sq->word[i]);
	for (unsigned i = 0; i < sq->ntag; i++, nt++)
		len[nt] = lib_tag_term(sq->tag[i], term[nt] = tags[i], sizeof tags[i]);
	for (unsigned i = 0; i < sq->nexcl; i++, nt++)
		len[nt] = strlen(term[nt] = sq->excl[i]);
	/* Counted as plan_close frees: every cursor, its pending postings. */
	p->nw = sq->nword;
	p->nt = sq->ntag;
	p->nx = sq->nexcl;
	int rc = pc ? pc_load(c, pc) : 0;
	if (rc == 1) {
		pc_lend(pc, all, term, len, nt);
		rc = SDK_OK;
	} else if (rc == 0) {
		rc = pend_load(c, all, term, len, nt);
	}
	for (unsigned i = 0; !rc && i < nt; i++)
		rc = cur_open(c, term[i], len[i], i < sq->nword, &all[i]);
	for (unsigned i = 1; i < p->nw; i++)
		if (p->w[i].df < p->w[p->lead].df)
			p->lead = i;
	return rc;
}

static void plan_close(struct plan *p)
{
	unsigned n = p->nw + p->nt + p->nx;
	for (unsigned i = 0; i < n; i++)
		cur_free(&p->w[i]);
	free(p->w);
}

int lib_sq_rank(sqlite3 *db, const lib_sq *sq, unsigned limit, int64_t count_max,
		bool exhaustive, lib_ranked *r, sdk_err *err)
{
	return lib_sq_rank_cached(db, NULL, sq, limit, count_max, exhaustive, r, err);
}

int lib_sq_rank_cached(sqlite3 *db, lib_sq_cache *pc, const lib_sq *sq, unsigned limit,
		       int64_t count_max, bool exhaustive, lib_ranked *r, sdk_err *err)
{
	memset(r, 0, sizeof *r);
	if (limit < 1 || limit > LIB_HITS_MAX || !sq->nword)
		return sdk_fail(err, SDK_EINVAL, "search: bad limit or empty query");
	lib_ix_meta m;
	sqlite3_stmt *meta = lib_sq_stmt_take(pc, db, LIB_IX_SQL_META);
	int rc = meta ? lib_ix_meta_row(meta, &m, err)
		      : sdk_fail(err, sdk_status_of_sqlite(sqlite3_extended_errcode(db)),
				 "search: read meta: %s", sqlite3_errmsg(db));
	lib_sq_stmt_give(pc, meta);
	if (rc)
		return rc;
	if (!m.complete)
		return sdk_fail(err, SDK_EBUSY, "the search index is being built");
	r->total_exact = true;
	if (m.docs == 0)
		return SDK_OK;
	struct ctx c = { .db = db, .ndocs = m.docs, .avgdl = (double)m.tokens / (double)m.docs,
			 .r = r, .err = err,
			 .cap = count_max > 0 && count_max < LIB_TOTAL_EXACT_MAX ? count_max
										 : LIB_TOTAL_EXACT_MAX };
	if (!(c.term = lib_sq_stmt_take(pc, db, sql_term)) ||
	    !(c.blocks = lib_sq_stmt_take(pc, db, sql_blocks)) ||
	    !(c.docs = lib_sq_stmt_take(pc, db, sql_docs)) ||
	    !(c.tail = lib_sq_stmt_take(pc, db, sql_tail)) ||
	    !(c.tail_docs = lib_sq_stmt_take(pc, db, sql_tail_docs))) {
		rc = fail_sql(&c, "prepare");
		goto out;
	}
	struct plan p = { .or_mode = sq->or_mode, .exhaustive = exhaustive };
	struct heap hp = { .h = r->hit, .k = limit };
	rc = plan_open(&c, pc, sq, &p);
	if (!rc && p.nw == 1 && !p.nt && !p.nx && !exhaustive)
		rc = rank_one(&c, &p.w[0], &hp);
	else if (!rc)
		rc = rank_daat(&c, &p, &hp);
	plan_close(&p);
	if (!rc) {
		qsort(r->hit, hp.n, sizeof *r->hit, cmp_hit);
		r->n = hp.n;
	}
out:
	lib_sq_stmt_give(pc, c.term);
	lib_sq_stmt_give(pc, c.blocks);
	lib_sq_stmt_give(pc, c.docs);
	lib_sq_stmt_give(pc, c.tail);
	lib_sq_stmt_give(pc, c.tail_docs);
	return rc;
}
