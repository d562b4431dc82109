/* The parts of an answer that are plain functions of their inputs: the
 * search query, the passages, the prompt and the answer without a model.
 * A source is a library passage {"n","kind":"document","id","title",
 * "snippet","score","source"} or a memory row {"n","kind":"memory","table",
 * "owner"?,"row_id","excerpt"}; `n` is how an answer cites it: [n]. */
#ifndef GRACE_CHAT_CONTEXT_H
#define GRACE_CHAT_CONTEXT_H

#include "serve/layer.h"

#include <jansson.h>
#include <stddef.h>

/* An FTS5 query from a question: its words, each quoted (so nothing in it
 * is ever search syntax), joined with OR, common words dropped. The length
 * written to `out`; 0 when there is no word to ask for. */
size_t chat_search_query(const char *question, char *out, size_t len);
/* Library passages from the librarian's /search answer, numbered from
 * `first_n`, snippets as plain text. A new reference. */
json_t *chat_passages(const json_t *search_answer, size_t max, size_t first_n);
/* `text` cut to at most `max` bytes on a character boundary, with "…"
 * when cut. A new reference. */
json_t *chat_excerpt(const char *text, size_t max);
/* The messages for the model: a system message with the numbered sources,
 * the history ([{"role","content"}]), then the question. A new reference. */
json_t *chat_prompt(const json_t *sources, const json_t *history, const char *question);
/* The answer without a model: that no model answered and `why` (a phrase:
 * "no model is configured"), then every source cited as [n]. A malloc'd
 * string. */
char *chat_fallback_text(const json_t *sources, const char *why, const char *librarian_problem);

#endif
