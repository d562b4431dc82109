/* An incident's postmortem (docs/self_healing.md "Postmortems"): built
 * from the stored incident (its events, hints and actions) and the audit
 * trail's events of its kernels, rendered as JSON or Markdown. Pure. */
#ifndef GRACE_SELF_HEALING_POSTMORTEM_H
#define GRACE_SELF_HEALING_POSTMORTEM_H

#include "kernels/layer.h"

#include <jansson.h>

/* `incident`: sh_store_get's object (borrowed). `audit`: the audit
 * trail's events of its kernels in the incident's span (borrowed, may be
 * NULL when the audit kernel could not be asked; `audit_error` then says
 * why). Returns a new object: incident, summary, cause, evidence,
 * timeline (ordered by time), actions, verified_heals, audit. */
json_t *sh_postmortem_build(json_t *incident, json_t *audit, const char *audit_error);

/* The postmortem as Markdown (malloc'd, the caller frees). */
char *sh_postmortem_markdown(json_t *pm);

#endif
