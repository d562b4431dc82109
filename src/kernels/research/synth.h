/* The research kernel's synthesis (pure): the prompt that asks a model to
 * answer from the cited evidence only, the check of what it wrote (each
 * claim must cite [E1]-style ids that exist; a claim citing none, or an
 * unknown id, is dropped), and the answer without a model: the ranked
 * hypotheses and their evidence. Unit-tested in tests/unit/test_research.c. */
#ifndef GRACE_KERNELS_RESEARCH_SYNTH_H
#define GRACE_KERNELS_RESEARCH_SYNTH_H

#include "kernels/layer.h"

#include <jansson.h>
#include <stddef.h>

#define RS_PROMPT_EVIDENCE_MAX 40 /* pieces of evidence shown to the model */
#define RS_SUMMARY_MAX 400        /* bytes of one summary in the prompt */

/* The chat messages ({"role","content"}) for the model: new. `evidence`
 * and `hypotheses` are already redacted. */
json_t *rs_synth_prompt(const char *question, const json_t *evidence, const json_t *hypotheses);

/* What is left of the model's `text` once every claim is checked: a new
 * {"text", "claims":[{"text","cites":["E1",...]}], "dropped":N, "kept":N}.
 * "kept" is 0 when no claim survived (the caller then falls back). */
json_t *rs_synth_check(const char *text, const json_t *evidence);

/* The answer without a model: `why` (no model, or why it failed: may be
 * NULL) and the hypotheses with their evidence. New; the caller frees. */
char *rs_fallback_text(const char *why, const json_t *evidence, const json_t *hypotheses);

#endif
