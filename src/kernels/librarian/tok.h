/* The librarian's tokens: SQLite's own FTS5 "porter unicode61" tokenizer
 * (Unicode case folding, diacritics removed, Porter stemming), reached
 * through the fts5_api of a connection. The index, the query parser and
 * the snippets all cut text here, so a word is the same word everywhere,
 * and the same word the FTS5 index before schema 3 saw.
 *
 * A document's ASCII words are cut here and their stems remembered (at
 * most 16,384 words, about 1 MiB), asking FTS5 once a word: the same
 * tokens, fewer instructions (tok.c says why it is the same).
 *
 * A lib_tok belongs to one thread at a time (the tokenizer keeps buffers);
 * it borrows nothing from the connection it was made from once made. */
#ifndef GRACE_LIBRARIAN_TOK_H
#define GRACE_LIBRARIAN_TOK_H

#include "kernels/layer.h"

#include "sdk/err.h"

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>

/* Tokens longer than this are counted (they take a position) but not
 * indexed, and a query word longer than this matches nothing. */
#define LIB_TERM_MAX 128

enum {
	LIB_TOK_DOC = FTS5_TOKENIZE_DOCUMENT,
	LIB_TOK_QUERY = FTS5_TOKENIZE_QUERY,
	LIB_TOK_PREFIX = FTS5_TOKENIZE_QUERY | FTS5_TOKENIZE_PREFIX,
};

typedef struct lib_tok lib_tok;

/* Each token: its bytes (not NUL-terminated, valid during the call) and
 * where it was in the text.
 * Returning nonzero stops the run, which returns that value. */
typedef int (*lib_tok_fn)(void *arg, const char *tok, int len, int start, int end);

int lib_tok_new(sqlite3 *db, lib_tok **out, sdk_err *err);
void lib_tok_free(lib_tok *t);
/* 0, the callback's nonzero value, or SDK_EIO when the tokenizer fails. */
int lib_tok_run(lib_tok *t, int flags, const char *text, int len, lib_tok_fn fn, void *arg);
/* lib_tok_run of a document for a caller that looks for a few stems (the
 * snippets): an ASCII token (letters and digits) whose first byte, folded
 * to lower case, is not set in want is reported as tok NULL, len 0, its
 * place only, without stemming it. That loses no wanted stem: porter
 * rewrites only a suffix after a word's first letter (and passes words
 * under 3 or over 64 bytes as they are), and unicode61 folds ASCII
 * to lower case, so an ASCII token's stem begins with its first byte,
 * folded. Tokens of other text are reported as lib_tok_run reports them. */
int lib_tok_run_some(lib_tok *t, const char *text, int len, const unsigned char want[256],
		     lib_tok_fn fn, void *arg);

/* Where a document's tokens are, for an ASCII text: spans[0..*n) (grown
 * with sdk_grow; *spans and *cap are the caller's, kept from one call to
 * the next), and for each token whose first byte, folded, is set in
 * want, its stem to fn with its index (in order). *ascii false: the text
 * has a byte past ASCII, and what was placed or reported is to be
 * forgotten (call lib_tok_run_some). 0, fn's nonzero value, or SDK_EIO (no
 * memory, or FTS5's tokenizer failed). The same tokens as lib_tok_run
 * (tok.c says how; test_librarian_search compares them). */
typedef struct lib_tok_span {
	int start, end; /* its bytes in the text */
} lib_tok_span;
typedef int (*lib_tok_at_fn)(void *arg, const char *stem, int len, int index);
int lib_tok_places(lib_tok *t, const char *text, int len, const unsigned char want[256],
		   lib_tok_span **spans, size_t *cap, int *n, bool *ascii, lib_tok_at_fn fn,
		   void *arg);

#endif
