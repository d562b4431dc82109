/* Aider's search/replace blocks: parsed from a model's (or a reviewer's)
 * text, and applied to file contents in memory. Pure: no file is read or
 * written here (edits.c does that), so every case is unit-tested alone.
 *
 *     path/to/file.py
 *     <<<<<<< SEARCH
 *     text that is in the file now
 *     =======
 *     the text to put in its place
 *     >>>>>>> REPLACE
 *
 * The file name is the last non-blank line before the block that is not a
 * code fence (```), with backticks, a leading '#' and a trailing ':'
 * stripped; a block with none takes the previous block's file. An empty
 * SEARCH creates a new file (refused when the file exists); an empty
 * REPLACE deletes the text found. */
#ifndef GRACE_CODING_AGENT_SR_H
#define GRACE_CODING_AGENT_SR_H

#include "kernels/layer.h"

#include "sdk/err.h"

#include <stdbool.h>
#include <stddef.h>

#define CA_SR_BLOCKS_MAX 64          /* blocks in one text */
#define CA_SR_PATH_MAX 512           /* bytes of a block's file name */
#define CA_SR_WHY_MAX 1024           /* a failure's reason */

typedef struct ca_sr_block {
	char path[CA_SR_PATH_MAX]; /* relative to the worktree, as written */
	char *search;              /* owned; "" for a new file */
	size_t search_len;
	char *replace; /* owned */
	size_t replace_len;
	unsigned line_first, line_last; /* where the block is in the text (1-based) */
} ca_sr_block;

typedef struct ca_sr_list {
	ca_sr_block blocks[CA_SR_BLOCKS_MAX];
	size_t n;
} ca_sr_list;

/* Parses every block of `text`. 0 (n may be 0: no block), or SDK_EINVAL
 * with the reason (an unterminated block, no file name, too many blocks,
 * a name too long) in err. Free with ca_sr_list_free, also on failure. */
int ca_sr_parse(const char *text, size_t len, ca_sr_list *out, sdk_err *err);
void ca_sr_list_free(ca_sr_list *l);

/* Why a block does not apply. */
typedef enum ca_sr_why {
	CA_SR_OK = 0,
	CA_SR_NOT_FOUND,   /* SEARCH is not in the file */
	CA_SR_AMBIGUOUS,   /* found more than once */
	CA_SR_FILE_MISSING,
	CA_SR_FILE_EXISTS, /* an empty SEARCH (a new file) for a file that exists */
} ca_sr_why;

const char *ca_sr_why_label(ca_sr_why w); /* "not_found", "ambiguous", ... */

typedef struct ca_sr_result {
	ca_sr_why why;
	bool fuzzy;            /* matched ignoring leading and trailing whitespace */
	unsigned file_line;    /* the first line of the match in the file (1-based) */
	unsigned second_line;  /* ambiguous: where the second match starts */
	char msg[CA_SR_WHY_MAX];
} ca_sr_result;

/* Applies one block to a file's content (`exists` false: no such file;
 * content then NULL). On success *out (malloc'ed, NUL-terminated) is the
 * new content and 0 is returned; otherwise a negative status, *out NULL and
 * `res` says why. An exact match is tried first; then a match line by line
 * ignoring leading and trailing whitespace, the replacement re-indented by
 * the difference (what a model that loses the indentation writes). */
int ca_sr_apply(const char *content, size_t len, bool exists, const ca_sr_block *b,
		char **out, size_t *out_len, ca_sr_result *res);

#endif
