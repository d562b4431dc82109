/* Archival of the audit trail (docs/audit.md "Archival"): POST /archive
 * exports the oldest events already in the immutable log to
 * DATA_DIR/archive/audit-FIRST-LAST.jsonl, each with its log index, leaf
 * hash and inclusion proof against a signed tree head of the log (fetched
 * through the call path), so the file proves the events were logged; then,
 * asked to, removes them locally. */
#ifndef GRACE_AUDIT_ARCHIVE_H
#define GRACE_AUDIT_ARCHIVE_H

#include "kernels/layer.h"

#include "sdk/kernel.h"

#define AUD_ARCHIVE_FORMAT "grace-audit-archive/1"
/* Events one call archives: each needs a proof from the log (one call,
 * about a millisecond), and the answer must come within the gateway's
 * 10 s. */
#define AUD_ARCHIVE_MAX 2000u

typedef struct aud_archiver aud_archiver;

/* NULL when out of memory. */
aud_archiver *aud_archiver_new(sdk_kernel *k);
/* Waits for a file being written. */
void aud_archiver_free(aud_archiver *ar);
/* POST /archive. */
void aud_archive_route(sdk_req *req, aud_archiver *ar);

#endif
