/* The full-text query `q` of the PostgreSQL engine: the FTS5 query syntax
 * the SQLite engine takes (docs/memory.md) translated into PostgreSQL's
 * tsquery text, for to_tsquery('simple', $N) with the result bound as a
 * parameter. Pure: no database.
 *
 *   word, word*           'word', 'word':*  (a prefix)
 *   "a phrase", a + b     'a phrase' (to_tsquery makes it a <-> phrase)
 *   x y (implicit), AND   (x & y)
 *   x OR y                (x | y)
 *   x NOT y               (x & !y)
 *   ( ... )               grouping
 *   NEAR(a b [, N])       (a & b): nearness is not kept
 *
 * Precedence as FTS5's: NOT binds tightest, then AND, then OR; implicit
 * AND joins phrases only (as in FTS5, `a (b)` is an error). Every word
 * goes out single-quoted with its quotes doubled and its backslashes
 * escaped, so no input can add a tsquery operator; column filters
 * (`col:`) and `^` are refused. A phrase with nothing to index (`""`)
 * counts for nothing, as FTS5 ignores it; a query of nothing but those
 * translates to "" (matches no row). */
#ifndef GRACE_MEMORY_PG_FTS_H
#define GRACE_MEMORY_PG_FTS_H

#include "serve/layer.h"

#include "sdk/buf.h"
#include "sdk/err.h"

#include <stddef.h>

/* Appends the tsquery text of `q` to `out`: 0, or -1 with why in err (a
 * syntax error: the caller's 400). Check out->oom after. */
int mem_fts_tsquery(const char *q, sdk_buf *out, sdk_err *err);

#endif
