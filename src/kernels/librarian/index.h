/* The librarian's inverted index, kept in the librarian's own SQLite file
 * beside the documents it indexes (docs/librarian.md says why there and
 * not in files of our own or in Xapian).
 *
 *   ix_meta    one row: documents indexed (N), their tokens (for avgdl),
 *              a generation bumped by every change of the blocks and
 *              terms (not of ix_pending alone), the next term id, and
 *              whether every document is indexed (false while a rebuild
 *              or a migration catches up)
 *   ix_terms   term -> id, df (documents it occurs in), the generation of
 *              its last change (readers cache a term's blocks by it)
 *   ix_blocks  (term, last doc) -> postings, bound, and the ix_posts row
 *              holding them: the skip list (block.h)
 *   ix_posts   the blocks' docs and positions blobs
 *   ix_tails   each term's last block, the one appends go to (schema 6):
 *              its row (by term id) rewritten in place by every flush
 *              that adds to the term, so a flush's writes lie together
 *              and cost one row a word, where a tail among the blocks
 *              cost four (its block row's key and its postings row both
 *              moved). Its documents come after every block of the
 *              term's. A term may have none (its tail emptied by
 *              removals, or a file indexed before schema 6): the next
 *              append makes one
 *   ix_docs    every indexed document and its length in tokens
 *   ix_pending a document indexed but not yet in the blocks: its terms
 *              with their counts per field (lib_pend_*), written by a
 *              one-document write (lib_ix_stage) in one or two pages
 *              instead of a block, a term row and a postings row for each
 *              of its ~100 terms; lib_ix_merge moves them into the blocks
 *              in a transaction of its own. ix_meta and ix_docs count a
 *              pending document already; ix_terms.df and the blocks do
 *              not (readers add the pending postings, search.c)
 *
 * Tags are indexed too, as terms no word can be ("\x01" + the tag), so
 * tag:x is a posting list like any other.
 *
 * Every change happens inside the caller's write transaction, with the
 * document's own row: a document and its postings commit together or not
 * at all, so no crash (kill -9 included) can leave a document half
 * indexed. lib_ix_add only collects; lib_ix_flush writes what was
 * collected (a bulk load flushes once per batch, merging each term's new
 * postings into its last block in one write). */
#ifndef GRACE_LIBRARIAN_INDEX_H
#define GRACE_LIBRARIAN_INDEX_H

#include "kernels/layer.h"

#include "kernels/librarian/bm25.h"
#include "kernels/librarian/tok.h"
#include "sdk/err.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#define LIB_IX_SCHEMA \
	"CREATE TABLE IF NOT EXISTS ix_meta (" \
	"  id INTEGER PRIMARY KEY CHECK (id = 1)," \
	"  docs INTEGER NOT NULL," \
	"  tokens INTEGER NOT NULL," \
	"  gen INTEGER NOT NULL," \
	"  next_term INTEGER NOT NULL," \
	"  complete INTEGER NOT NULL" \
	");" \
	"CREATE TABLE IF NOT EXISTS ix_terms (" \
	"  term TEXT PRIMARY KEY," \
	"  id INTEGER NOT NULL," \
	"  df INTEGER NOT NULL," \
	"  gen INTEGER NOT NULL" \
	") WITHOUT ROWID;" \
	"CREATE UNIQUE INDEX IF NOT EXISTS ix_terms_by_id ON ix_terms (id);" \
	"CREATE TABLE IF NOT EXISTS ix_blocks (" \
	"  term INTEGER NOT NULL," \
	"  last INTEGER NOT NULL," \
	"  n INTEGER NOT NULL," \
	"  bound BLOB NOT NULL," \
	"  post INTEGER NOT NULL," \
	"  PRIMARY KEY (term, last)" \
	") WITHOUT ROWID;" \
	"CREATE TABLE IF NOT EXISTS ix_posts (" \
	"  id INTEGER PRIMARY KEY," \
	"  docs BLOB NOT NULL," \
	"  pos BLOB NOT NULL" \
	");" \
	"CREATE TABLE IF NOT EXISTS ix_docs (" \
	"  id INTEGER PRIMARY KEY," \
	"  tokens INTEGER NOT NULL" \
	");"
/* Schema 4 (the migration step 3->4): the pending documents. A row is
 * never updated, and seq is never reused (AUTOINCREMENT): so (count(*),
 * max(seq)) names the set of rows, and readers cache the set by it
 * (search.h) without the writer bumping anything. */
#define LIB_IX_PENDING_SCHEMA \
	"CREATE TABLE IF NOT EXISTS ix_pending (" \
	"  seq INTEGER PRIMARY KEY AUTOINCREMENT," \
	"  doc INTEGER NOT NULL UNIQUE," \
	"  terms BLOB NOT NULL" \
	");"

/* Schema 6 (the step 5->6): the tails. Nothing to move: a term without
 * a tail row keeps its last block among the blocks, which stays valid. */
#define LIB_IX_TAILS_SCHEMA \
	"CREATE TABLE IF NOT EXISTS ix_tails (" \
	"  term INTEGER PRIMARY KEY," \
	"  last INTEGER NOT NULL," \
	"  n INTEGER NOT NULL," \
	"  bound BLOB NOT NULL," \
	"  docs BLOB NOT NULL," \
	"  pos BLOB NOT NULL" \
	");"

#define LIB_TAG_TERM_MARK '\x01'

/* The hash every term table of the librarian keys by (FNV-1a, 32 bits):
 * the writer's collector and tails cache, the readers' pending cache. */
uint32_t lib_ix_term_hash(const char *s, uint32_t n);

typedef struct lib_ix lib_ix;
typedef struct lib_ix_tails lib_ix_tails; /* below */

typedef struct lib_ix_meta {
	int64_t docs, tokens, gen, next_term;
	bool complete;
} lib_ix_meta;

/* The meta row; `complete_if_new`: the state a missing row starts in. */
int lib_ix_init(sqlite3 *db, bool complete_if_new, sdk_err *err);
int lib_ix_meta_read(sqlite3 *db, lib_ix_meta *m, sdk_err *err);
/* The same from a statement of LIB_IX_SQL_META the caller keeps prepared
 * (stepped, then reset). */
#define LIB_IX_SQL_META "SELECT docs, tokens, gen, next_term, complete FROM ix_meta WHERE id = 1"
int lib_ix_meta_row(sqlite3_stmt *s, lib_ix_meta *m, sdk_err *err);

int lib_ix_open(sqlite3 *db, lib_ix **out, sdk_err *err);
void lib_ix_close(lib_ix *ix);
/* Collects document `id` (tags: its stored JSON array text). */
int lib_ix_add(lib_ix *ix, int64_t id, const char *title, const char *body, const char *tags,
	       sdk_err *err);
/* Forgets document `id` as it is stored now: call it before its row
 * changes or goes. 0 also when it was not indexed. */
int lib_ix_remove(lib_ix *ix, int64_t id, sdk_err *err);
/* Writes what lib_ix_add collected; inside the caller's transaction. */
int lib_ix_flush(lib_ix *ix, sdk_err *err);
/* As lib_ix_flush, but one document collected goes to ix_pending (a few
 * pages written instead of ~300); more than one is flushed into the
 * blocks (a batch pays for its merge once). */
int lib_ix_stage(lib_ix *ix, sdk_err *err);
/* Moves up to `max` pending documents (the oldest ids first) into the
 * blocks, inside the caller's transaction; nothing collected may be
 * waiting. 1 when more are left, 0 when none, or a negative status;
 * *merged: the documents moved. */
int lib_ix_merge(lib_ix *ix, unsigned max, unsigned *merged, sdk_err *err);
/* Merges every pending document, LIB_IX_MERGE_STEP a transaction of its
 * own (BEGIN IMMEDIATE: the caller holds none), with the writer's tails
 * cache `t` (may be NULL). *merged: the documents moved (may be NULL). */
#define LIB_IX_MERGE_STEP 2048u
int lib_ix_merge_all(sqlite3 *db, lib_ix_tails *t, int64_t *merged, sdk_err *err);
/* The pending documents worth a merge at once, and the idle time after
 * which what is pending is merged anyway (the writer's timer). */
#define LIB_IX_PENDING_MERGE 1024u
#define LIB_IX_MERGE_IDLE_MS 1000

/* A pending document's terms blob: varint its tokens, varint its terms,
 * then per term varint length, the bytes, varint tf title, body, tags.
 * lib_pend_open reads the head; lib_pend_next each term (1), the end (0)
 * or SDK_ECORRUPT: a damaged blob is never read past its end. */
typedef struct lib_pend_it {
	const uint8_t *p;
	size_t n, i;
	uint64_t left;
} lib_pend_it;
int lib_pend_open(lib_pend_it *it, const void *blob, size_t n, uint32_t *tokens);
int lib_pend_next(lib_pend_it *it, const char **term, uint32_t *len, uint32_t tf[LIB_FIELDS]);
/* The writer's tails cache: each term's tail block (the one a flush
 * rewrites) as the last flush left it, kept between transactions so that
 * the next flush neither looks it up nor reads it. It is trusted only
 * while ix_meta.gen is what that flush made it (every change of the
 * blocks and terms, by any connection or process, bumps it) and only once
 * lib_ix_tails_done said that flush's transaction committed; a crash
 * loses it with the process. One writer thread at a time; at most 64 MiB
 * (terms past it are read from the file). */
lib_ix_tails *lib_ix_tails_new(void);
void lib_ix_tails_free(lib_ix_tails *t);
/* ix's flushes use and update `t` (borrowed; NULL: none). */
void lib_ix_use_tails(lib_ix *ix, lib_ix_tails *t);
/* After the transaction of a flush that used `t`: committed (the cache
 * holds) or not (it is emptied). */
void lib_ix_tails_done(lib_ix_tails *t, bool committed);
/* The terms it holds while it is usable (0 otherwise): for the tests. */
uint32_t lib_ix_tails_terms(const lib_ix_tails *t);
/* Drops what was collected (the transaction rolled back). */
void lib_ix_discard(lib_ix *ix);
uint32_t lib_ix_pending_docs(const lib_ix *ix);
size_t lib_ix_pending_bytes(const lib_ix *ix);
/* A writer's statement prepared once per lib_ix (a bulk load writes
 * thousands of documents with the same few): `sql_text` is a static
 * string, known by its address; the statement comes reset, is owned by
 * `ix` (finalized by lib_ix_close) and must be reset after use. NULL when
 * it cannot be prepared or LIB_IX_XSTMTS are taken: prepare it yourself. */
#define LIB_IX_XSTMTS 6
sqlite3_stmt *lib_ix_stmt(lib_ix *ix, const char *sql_text);

/* Indexes up to `max` documents that have no postings, with ids above
 * *cursor (moved on), in one transaction of its own. 1 while more may be
 * left, 0 once every document is indexed (ix_meta.complete set). */
int lib_ix_build_step(lib_ix *ix, int64_t *cursor, unsigned max, sdk_err *err);
/* Empties the index and marks it incomplete: the build steps redo it. */
int lib_ix_reset(sqlite3 *db, sdk_err *err);

/* The checks (docs/librarian.md, "Integrity"). quick: the counts agree
 * (ix_docs with ix_meta, each term's df with its blocks, no index row for
 * a document that is gone); a few hundred milliseconds for 100,000
 * documents. deep: every block decoded and checked, and `sample`
 * documents tokenized again and found in their postings. SDK_ECORRUPT
 * with the first finding, 0 when sound. Inside a read transaction of the
 * caller's, or on their own. */
int lib_ix_check_quick(sqlite3 *db, sdk_err *err);
int lib_ix_check_deep(sqlite3 *db, lib_tok *tok, unsigned sample, json_t **report, sdk_err *err);

/* The text of a tag's term ("\x01" + tag) into out (LIB_TERM_MAX + 2). */
size_t lib_tag_term(const char *tag, char *out, size_t cap);

#endif
