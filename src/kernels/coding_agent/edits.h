/* A turn's search/replace blocks applied to a worktree's files, all or
 * nothing: every block is checked against the files as the blocks before
 * it leave them (in memory), and only when every one applies is anything
 * written. Blocking (file I/O): called on the worker pool. */
#ifndef GRACE_CODING_AGENT_EDITS_H
#define GRACE_CODING_AGENT_EDITS_H

#include "kernels/layer.h"

#include "sdk/err.h"

#include <jansson.h>
#include <stddef.h>

#define CA_EDIT_FILE_MAX (4u << 20) /* bytes of a file an edit touches */

/* Applies the blocks of `text` under worktree `wt` (resolved). *report
 * (always set, a new reference): {"format": "search_replace", "blocks": N,
 * "applied": [{block, file, file_line, fuzzy}], "failed": [{block, file,
 * lines: [first, last], why, message, file_line?}]}. 0 when all applied
 * (and were written); SDK_ECONFLICT when any failed (nothing written);
 * SDK_EINVAL when the text does not parse (or has no block); SDK_EIO. */
int ca_edits_apply(const char *wt, const char *text, size_t len, json_t **report, sdk_err *err);

/* Whether `text` holds a search/replace block (else it is taken for a
 * unified diff). Pure. */
int ca_edits_is_sr(const char *text, size_t len);

#endif
