/* A scan as NIST OSCAL 1.0.4 assessment-results JSON: one result per scan,
 * an observation per control (its evidence) and a finding per assessed
 * control (pass, fail, waived, error). Pure: the caller gives the scan,
 * with the UUIDs it stored, so the same scan always gives the same report. */
#ifndef GRACE_COMPLIANCE_OSCAL_H
#define GRACE_COMPLIANCE_OSCAL_H

#include "kernels/layer.h"

#include <jansson.h>

#define CMP_OSCAL_VERSION "1.0.4"
#define CMP_OSCAL_NS "https://grace.local/ns/oscal"

/* A fresh RFC 4122 version 4 UUID into out (37 bytes). */
void cmp_uuid4(char out[37]);
/* Whether s is a lowercase RFC 4122 v4 UUID. */
int cmp_uuid4_valid(const char *s);

/* `scan`: {"uuid", "report_uuid", "profile", "profile_title",
 * "profile_version", "started_ms", "ended_ms", "log_index" (or null),
 * "leaf_hash" (or null), "results": [{"control_id", "title", "result",
 * "message", "evidence", "observation_uuid", "finding_uuid", ...}]}.
 * Returns a new {"assessment-results": {...}}. */
json_t *cmp_oscal_build(const json_t *scan);

#endif
