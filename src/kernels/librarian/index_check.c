/* The index's integrity checks (index.h). They only read. */
#include "kernels/librarian/block.h"
#include "kernels/librarian/index.h"

#include "sdk/clock.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail_db(sqlite3 *db, sdk_err *err, const char *what)
{
	return sdk_fail(err, sdk_status_of_sqlite(sqlite3_extended_errcode(db)), "index check: %s: %s",
			what, sqlite3_errmsg(db));
}

static int one_row(sqlite3 *db, const char *q, int64_t *a, int64_t *b, sdk_err *err)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(db, q, -1, &s, NULL) != SQLITE_OK)
		return fail_db(db, err, "prepare");
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*a = sqlite3_column_int64(s, 0);
		if (b)
			*b = sqlite3_column_int64(s, 1);
		rc = SDK_OK;
	} else {
		rc = fail_db(db, err, "read");
	}
	sqlite3_finalize(s);
	return rc;
}

/* Each term's df against the postings its blocks and its tail hold, both
 * streamed in term id order. */
static int check_df(sqlite3 *db, int64_t *terms, sdk_err *err)
{
	sqlite3_stmt *t = NULL, *b = NULL;
	int rc = SDK_OK;
	if (sqlite3_prepare_v2(db, "SELECT id, df FROM ix_terms ORDER BY id", -1, &t, NULL) ||
	    sqlite3_prepare_v2(db, "SELECT term, sum(n) FROM (SELECT term, n FROM ix_blocks UNION ALL"
			       " SELECT term, n FROM ix_tails) GROUP BY term ORDER BY term",
			       -1, &b, NULL)) {
		rc = fail_db(db, err, "prepare");
		goto out;
	}
	int rt = sqlite3_step(t), rb = sqlite3_step(b);
	*terms = 0;
	while (rt == SQLITE_ROW || rb == SQLITE_ROW) {
		int64_t tid = rt == SQLITE_ROW ? sqlite3_column_int64(t, 0) : INT64_MAX;
		int64_t bid = rb == SQLITE_ROW ? sqlite3_column_int64(b, 0) : INT64_MAX;
		if (tid != bid) {
			rc = sdk_fail(err, SDK_ECORRUPT, tid < bid ? "index: term %" PRId64
				      " has no postings" : "index: postings of term %" PRId64
				      " that does not exist", tid < bid ? tid : bid);
			goto out;
		}
		if (sqlite3_column_int64(t, 1) != sqlite3_column_int64(b, 1)) {
			rc = sdk_fail(err, SDK_ECORRUPT, "index: term %" PRId64 " counts %" PRId64
				      " documents but its blocks hold %" PRId64, tid,
				      (int64_t)sqlite3_column_int64(t, 1),
				      (int64_t)sqlite3_column_int64(b, 1));
			goto out;
		}
		(*terms)++;
		rt = sqlite3_step(t);
		rb = sqlite3_step(b);
	}
	if (rt != SQLITE_DONE || rb != SQLITE_DONE)
		rc = fail_db(db, err, "read terms");
out:
	sqlite3_finalize(t);
	sqlite3_finalize(b);
	return rc;
}

int lib_ix_check_quick(sqlite3 *db, sdk_err *err)
{
	lib_ix_meta m;
	int64_t n, tokens, orphans, terms;
	int rc = lib_ix_meta_read(db, &m, err);
	if (!rc)
		rc = one_row(db, "SELECT count(*), coalesce(sum(tokens), 0) FROM ix_docs", &n, &tokens,
			     err);
	if (!rc && (n != m.docs || tokens != m.tokens))
		rc = sdk_fail(err, SDK_ECORRUPT, "index: %" PRId64 " documents of %" PRId64 " words"
			      " indexed, its totals say %" PRId64 " of %" PRId64, n, tokens, m.docs,
			      m.tokens);
	if (!rc)
		rc = one_row(db, "SELECT count(*) FROM ix_docs AS x WHERE NOT EXISTS"
			     " (SELECT 1 FROM documents AS d WHERE d.id = x.id)", &orphans, NULL, err);
	if (!rc && orphans)
		rc = sdk_fail(err, SDK_ECORRUPT, "index: %" PRId64 " indexed documents no longer"
			      " exist", orphans);
	/* A pending document is counted (ix_docs) and stored, like any other. */
	if (!rc)
		rc = one_row(db, "SELECT count(*) FROM ix_pending AS p WHERE NOT EXISTS"
			     " (SELECT 1 FROM ix_docs AS x WHERE x.id = p.doc) OR NOT EXISTS"
			     " (SELECT 1 FROM documents AS d WHERE d.id = p.doc)", &orphans, NULL,
			     err);
	if (!rc && orphans)
		rc = sdk_fail(err, SDK_ECORRUPT, "index: %" PRId64 " pending documents are not"
			      " indexed or no longer exist", orphans);
	if (!rc)
		rc = check_df(db, &terms, err);
	return rc;
}

/* ---- deep */

static bool bound_covers(const lib_bound *bd, uint32_t f, uint32_t dl)
{
	if (f == 0)
		return true;
	for (uint32_t k = 0; k < bd->n; k++)
		if (bd->f[k] >= f && bd->dl[k] <= dl)
			return true;
	return false;
}

static int check_blocks(sqlite3 *db, int64_t *blocks, int64_t *postings, sdk_err *err)
{
	sqlite3_stmt *s;
	/* A term's tail after its blocks: its documents come after theirs. */
	if (sqlite3_prepare_v2(db, "SELECT b.term, b.last, b.n, b.bound, p.docs, p.pos"
			       " FROM ix_blocks AS b LEFT JOIN ix_posts AS p ON p.id = b.post"
			       " UNION ALL SELECT term, last, n, bound, docs, pos FROM ix_tails"
			       " ORDER BY 1, 2", -1, &s, NULL) != SQLITE_OK)
		return fail_db(db, err, "prepare");
	lib_blk blk = { 0 };
	int64_t term = -1, prev_last = 0;
	int rc = SDK_OK, step;
	*blocks = *postings = 0;
	while (!rc && (step = sqlite3_step(s)) == SQLITE_ROW) {
		int64_t t = sqlite3_column_int64(s, 0), last = sqlite3_column_int64(s, 1);
		int64_t n = sqlite3_column_int64(s, 2);
		if (t != term)
			prev_last = 0;
		term = t;
		lib_bound bd;
		if (sqlite3_column_type(s, 4) != SQLITE_BLOB) {
			rc = sdk_fail(err, SDK_ECORRUPT, "index: a block of term %" PRId64 " has no"
				      " postings row", t);
			break;
		}
		const void *pos = sqlite3_column_blob(s, 5);
		size_t pos_len = (size_t)sqlite3_column_bytes(s, 5);
		if (lib_blk_decode(&blk, sqlite3_column_blob(s, 4), (size_t)sqlite3_column_bytes(s, 4),
				   pos_len ? pos : NULL, pos_len) ||
		    lib_bound_decode(sqlite3_column_blob(s, 3), (size_t)sqlite3_column_bytes(s, 3),
				     &bd)) {
			rc = sdk_fail(err, SDK_ECORRUPT, "index: a block of term %" PRId64 " does not"
				      " decode", t);
			break;
		}
		if (blk.n != n || blk.doc[0] <= prev_last || blk.doc[blk.n - 1] != last ||
		    blk.n > LIB_BLK_MAX) {
			rc = sdk_fail(err, SDK_ECORRUPT, "index: block (%" PRId64 ", %" PRId64 ") is"
				      " out of order with its neighbours or its count", t, last);
			break;
		}
		for (uint32_t k = 0; k < blk.n; k++)
			if (!bound_covers(&bd, lib_weighted(blk.tf[k], LIB_FIELDS_MASK), blk.dl[k])) {
				rc = sdk_fail(err, SDK_ECORRUPT, "index: block (%" PRId64 ", %" PRId64
					      ") has a bound below one of its postings", t, last);
				break;
			}
		prev_last = last;
		(*blocks)++;
		*postings += blk.n;
	}
	if (!rc && step != SQLITE_DONE)
		rc = fail_db(db, err, "read blocks");
	sqlite3_finalize(s);
	lib_blk_free(&blk);
	return rc;
}

/* One document tokenized again: every word's postings hold it with the
 * same counts and positions. */
struct expect {
	char term[LIB_TERM_MAX + 1];
	uint32_t len;
	unsigned field;
	uint32_t at;
};

struct sample {
	struct expect *v;
	size_t n, cap;
	unsigned field;
	uint32_t pos[LIB_FIELDS];
	bool oom;
};

static int on_sample_token(void *arg, const char *tok, int len, int start, int end)
{
	(void)start, (void)end;
	struct sample *s = arg;
	uint32_t at = s->pos[s->field]++;
	if (len <= 0 || len > LIB_TERM_MAX)
		return 0;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 256;
		struct expect *v = realloc(s->v, cap * sizeof *v);
		if (!v) {
			s->oom = true;
			return 1;
		}
		s->v = v;
		s->cap = cap;
	}
	struct expect *e = &s->v[s->n++];
	memcpy(e->term, tok, (size_t)len);
	e->term[len] = '\0';
	e->len = (uint32_t)len;
	e->field = s->field;
	e->at = at;
	return 0;
}

static int cmp_expect(const void *a, const void *b)
{
	const struct expect *x = a, *y = b;
	int c = strcmp(x->term, y->term);
	if (c)
		return c;
	if (x->field != y->field)
		return x->field < y->field ? -1 : 1;
	return (x->at > y->at) - (x->at < y->at);
}

static int cmp_term(const void *key, const void *e)
{
	const struct expect *k = key, *x = e;
	return strcmp(k->term, x->term);
}

/* A pending document (its ix_pending blob) against its text tokenized
 * again (smp, sorted): the same length, the same words with the same
 * counts per field, and none of them in a block too. */
static int check_pending(sqlite3 *db, int64_t id, const void *blob, size_t n,
			 const struct sample *smp, uint32_t dl, sdk_err *err)
{
	lib_pend_it it;
	uint32_t tokens, len, tf[LIB_FIELDS];
	const char *term;
	if (lib_pend_open(&it, blob, n, &tokens))
		return sdk_fail(err, SDK_ECORRUPT, "index: pending document %" PRId64 " is damaged",
				id);
	if (tokens != dl)
		return sdk_fail(err, SDK_ECORRUPT, "index: pending document %" PRId64 " has %" PRIu32
				" words, its text %" PRIu32, id, tokens, dl);
	sqlite3_stmt *b;
	if (sqlite3_prepare_v2(db, "SELECT docs FROM (SELECT b.last AS last, p.docs AS docs"
			       " FROM ix_blocks AS b JOIN ix_posts AS p ON p.id = b.post"
			       " WHERE b.term = (SELECT id FROM ix_terms WHERE term = ?1) AND b.last >= ?2"
			       " UNION ALL SELECT last, docs FROM ix_tails WHERE term ="
			       " (SELECT id FROM ix_terms WHERE term = ?1) AND last >= ?2)"
			       " ORDER BY last LIMIT 1", -1, &b, NULL) != SQLITE_OK)
		return fail_db(db, err, "prepare");
	size_t distinct = 0, words = 0;
	for (size_t i = 0; i < smp->n; i++)
		distinct += !i || strcmp(smp->v[i].term, smp->v[i - 1].term);
	int r, rc = SDK_OK;
	lib_blk blk = { 0 };
	while (!rc && (r = lib_pend_next(&it, &term, &len, tf)) == 1) {
		if (term[0] == LIB_TAG_TERM_MARK)
			continue; /* tags: not in the text's tokens */
		words++;
		struct expect key = { .len = len };
		memcpy(key.term, term, len < LIB_TERM_MAX ? len : LIB_TERM_MAX);
		const struct expect *e = bsearch(&key, smp->v, smp->n, sizeof *smp->v, cmp_term);
		uint32_t per_field[LIB_FIELDS] = { 0 };
		while (e && e > smp->v && !strcmp(e[-1].term, key.term))
			e--;
		for (; e && e < smp->v + smp->n && !strcmp(e->term, key.term); e++)
			per_field[e->field]++;
		if (memcmp(per_field, tf, sizeof tf))
			rc = sdk_fail(err, SDK_ECORRUPT, "index: pending document %" PRId64
				      " differs from its text", id);
		sqlite3_reset(b);
		sqlite3_bind_text(b, 1, term, (int)len, SQLITE_STATIC);
		sqlite3_bind_int64(b, 2, id);
		if (rc || sqlite3_step(b) != SQLITE_ROW)
			continue; /* past the term's blocks (or none): not in them */
		/* In a block's range is no proof it is in the block: decode. */
		if (lib_blk_decode(&blk, sqlite3_column_blob(b, 0),
				   (size_t)sqlite3_column_bytes(b, 0), NULL, 0)) {
			rc = sdk_fail(err, SDK_ECORRUPT, "index: a block does not decode");
			break;
		}
		for (uint32_t k = 0; !rc && k < blk.n; k++)
			if (blk.doc[k] == id)
				rc = sdk_fail(err, SDK_ECORRUPT, "index: document %" PRId64
					      " is pending and in a block too", id);
	}
	if (!rc && r)
		rc = sdk_fail(err, SDK_ECORRUPT, "index: pending document %" PRId64 " is damaged",
			      id);
	if (!rc && words != distinct)
		rc = sdk_fail(err, SDK_ECORRUPT, "index: pending document %" PRId64 " has %zu words,"
			      " its text %zu", id, words, distinct);
	sqlite3_finalize(b);
	lib_blk_free(&blk);
	return rc;
}

static int check_doc(sqlite3 *db, lib_tok *tok, int64_t id, sdk_err *err)
{
	sqlite3_stmt *d = NULL, *t = NULL, *b = NULL;
	struct sample smp = { 0 };
	lib_blk blk = { 0 };
	int rc = SDK_OK;
	if (sqlite3_prepare_v2(db, "SELECT title, body, tags FROM documents WHERE id = ?1", -1, &d,
			       NULL) ||
	    sqlite3_prepare_v2(db, "SELECT id FROM ix_terms WHERE term = ?1", -1, &t, NULL) ||
	    sqlite3_prepare_v2(db, "SELECT docs, pos, last FROM (SELECT p.docs AS docs, p.pos AS pos,"
			       " b.last AS last FROM ix_blocks AS b JOIN ix_posts AS p ON p.id = b.post"
			       " WHERE b.term = ?1 AND b.last >= ?2 UNION ALL SELECT docs, pos, last"
			       " FROM ix_tails WHERE term = ?1 AND last >= ?2) ORDER BY last LIMIT 1",
			       -1, &b, NULL)) {
		rc = fail_db(db, err, "prepare");
		goto out;
	}
	sqlite3_bind_int64(d, 1, id);
	if (sqlite3_step(d) != SQLITE_ROW) {
		rc = sdk_fail(err, SDK_ECORRUPT, "index: document %" PRId64 " is indexed but gone", id);
		goto out;
	}
	for (unsigned f = 0; f < LIB_FIELDS; f++) {
		const char *text = (const char *)sqlite3_column_text(d, (int)f);
		smp.field = f;
		if (lib_tok_run(tok, LIB_TOK_DOC, text ? text : "", sqlite3_column_bytes(d, (int)f),
				on_sample_token, &smp) || smp.oom) {
			rc = sdk_fail(err, SDK_EIO, "index check: cannot tokenize document %" PRId64, id);
			goto out;
		}
	}
	uint32_t dl = smp.pos[0] + smp.pos[1] + smp.pos[2];
	qsort(smp.v, smp.n, sizeof *smp.v, cmp_expect);
	sqlite3_stmt *p;
	if (sqlite3_prepare_v2(db, "SELECT terms FROM ix_pending WHERE doc = ?1", -1, &p, NULL)) {
		rc = fail_db(db, err, "prepare");
		goto out;
	}
	sqlite3_bind_int64(p, 1, id);
	if (sqlite3_step(p) == SQLITE_ROW) { /* pending: not in the blocks yet */
		rc = check_pending(db, id, sqlite3_column_blob(p, 0),
				   (size_t)sqlite3_column_bytes(p, 0), &smp, dl, err);
		sqlite3_finalize(p);
		goto out;
	}
	sqlite3_finalize(p);
	for (size_t i = 0; i < smp.n && !rc;) {
		size_t j = i;
		while (j < smp.n && !strcmp(smp.v[j].term, smp.v[i].term))
			j++;
		sqlite3_reset(t);
		sqlite3_bind_text(t, 1, smp.v[i].term, (int)smp.v[i].len, SQLITE_STATIC);
		sqlite3_reset(b);
		int64_t term = sqlite3_step(t) == SQLITE_ROW ? sqlite3_column_int64(t, 0) : 0;
		sqlite3_bind_int64(b, 1, term);
		sqlite3_bind_int64(b, 2, id);
		if (!term || sqlite3_step(b) != SQLITE_ROW) {
			rc = sdk_fail(err, SDK_ECORRUPT, "index: document %" PRId64 " is missing"
				      " from the postings of one of its words", id);
			break;
		}
		const void *pos = sqlite3_column_blob(b, 1);
		size_t pos_len = (size_t)sqlite3_column_bytes(b, 1);
		if (lib_blk_decode(&blk, sqlite3_column_blob(b, 0), (size_t)sqlite3_column_bytes(b, 0),
				   pos_len ? pos : NULL, pos_len)) {
			rc = sdk_fail(err, SDK_ECORRUPT, "index: a block does not decode");
			break;
		}
		uint32_t k = 0;
		while (k < blk.n && blk.doc[k] != id)
			k++;
		uint32_t per_field[LIB_FIELDS] = { 0 };
		for (size_t e = i; e < j; e++)
			per_field[smp.v[e].field]++;
		bool same = k < blk.n && blk.dl[k] == dl &&
			    !memcmp(blk.tf[k], per_field, sizeof per_field);
		for (size_t e = i; same && blk.has_pos && e < j; e++) {
			/* expected sorted by field then position: the block's order too */
			same = blk.pos[blk.poff[k] + (e - i)] == smp.v[e].at;
		}
		if (!same)
			rc = sdk_fail(err, SDK_ECORRUPT, "index: the postings of document %" PRId64
				      " differ from its text", id);
		i = j;
	}
out:
	sqlite3_finalize(d);
	sqlite3_finalize(t);
	sqlite3_finalize(b);
	free(smp.v);
	lib_blk_free(&blk);
	return rc;
}

int lib_ix_check_deep(sqlite3 *db, lib_tok *tok, unsigned sample, json_t **report, sdk_err *err)
{
	int64_t t0 = sdk_mono_ms();
	int64_t terms = 0, blocks = 0, postings = 0, posts = 0, tails = 0, docs = 0, checked = 0;
	lib_ix_meta m = { 0 };
	*report = NULL;
	int rc = lib_ix_check_quick(db, err);
	if (!rc)
		rc = check_df(db, &terms, err);
	if (!rc)
		rc = lib_ix_meta_read(db, &m, err);
	if (!rc)
		rc = check_blocks(db, &blocks, &postings, err);
	if (!rc)
		rc = one_row(db, "SELECT count(*) FROM ix_posts", &posts, NULL, err);
	if (!rc)
		rc = one_row(db, "SELECT count(*) FROM ix_tails", &tails, NULL, err);
	if (!rc && posts != blocks - tails) /* a tail holds its own postings */
		rc = sdk_fail(err, SDK_ECORRUPT, "index: %" PRId64 " postings rows for %" PRId64
			      " blocks", posts, blocks - tails);
	if (!rc)
		rc = one_row(db, "SELECT count(*) FROM documents", &docs, NULL, err);
	if (!rc && m.complete && docs != m.docs)
		rc = sdk_fail(err, SDK_ECORRUPT, "index: %" PRId64 " documents, %" PRId64
			      " indexed", docs, m.docs);
	if (!rc && sample) {
		sqlite3_stmt *s;
		if (sqlite3_prepare_v2(db, "SELECT id FROM ix_docs ORDER BY random() LIMIT ?1", -1, &s,
				       NULL) != SQLITE_OK)
			rc = fail_db(db, err, "prepare");
		else {
			sqlite3_bind_int(s, 1, (int)sample);
			while (!rc && sqlite3_step(s) == SQLITE_ROW) {
				rc = check_doc(db, tok, sqlite3_column_int64(s, 0), err);
				checked++;
			}
			sqlite3_finalize(s);
		}
	}
	if (rc && rc != SDK_ECORRUPT)
		return rc;
	*report = json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s?}", "ok", rc == 0,
			    "documents", (json_int_t)docs, "indexed", (json_int_t)m.docs, "terms",
			    (json_int_t)terms, "blocks", (json_int_t)blocks, "postings",
			    (json_int_t)postings, "sampled", (json_int_t)checked, "ms",
			    (json_int_t)(sdk_mono_ms() - t0), "problem", rc ? err->msg : NULL);
	return rc;
}
