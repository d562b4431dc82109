/* OTLP's two encodings made one: a protobuf request (protobuf-c, from our
 * own .proto files in proto/) becomes the OTLP/JSON tree it stands for,
 * and an OTLP/JSON tree is checked and normalized span by span (lowercase
 * hex ids, 64-bit integers as strings, enums as integers) into the rows the
 * store keeps. One checker for both, so both refuse the same things. */
#ifndef GRACE_TELEMETRY_OTLP_H
#define GRACE_TELEMETRY_OTLP_H

#include "kernels/layer.h"
#include "sdk/buf.h"
#include "sdk/err.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define OTLP_ANY_DEPTH_MAX 16  /* arrays and kvlists nested in an attribute */
#define OTLP_WHY_MAX 256
#define OTLP_ATTR_INDEXED_MAX 256 /* longer attribute values cannot be searched by */

/* google.rpc.Code values an OTLP/HTTP error answer carries. */
enum {
	OTLP_CODE_INVALID_ARGUMENT = 3,
	OTLP_CODE_RESOURCE_EXHAUSTED = 8,
	OTLP_CODE_UNIMPLEMENTED = 12,
	OTLP_CODE_INTERNAL = 13,
	OTLP_CODE_UNAVAILABLE = 14,
};

typedef enum { OTLP_TRACES, OTLP_LOGS, OTLP_METRICS } otlp_signal;

/* One stored row: a span's or a log record's columns, and where its body
 * (the item as canonical OTLP/JSON text, with its "resource" and "scope",
 * as json_dumps(JSON_COMPACT) would write it) and its searchable
 * attributes are in the batch. Strings are offsets into the batch's
 * `text`, each NUL-ended. */
typedef struct otlp_row {
	char trace_id[33], span_id[17], parent_id[17]; /* "" when absent */
	size_t service, name;                          /* in text */
	uint32_t kind, status, severity;
	int64_t start_ns, end_ns, time_ns;
	size_t body, body_len; /* in the batch's `bodies` */
	size_t text0;          /* where its strings start in `text` (a rejected row's go) */
	/* The item's own attributes' texts, then its resource's: in attrs. */
	size_t attr0, n_attrs, res_attr0, n_res_attrs;
} otlp_row;

/* key=value an attribute is searched by: offsets into text. */
typedef struct otlp_attr {
	size_t key, value;
} otlp_attr;

/* The rows of one request, ready to store. `rejected` items were well
 * formed but invalid by the specification (an all-zero id, an end before
 * the start): left out, counted, the first reason in `why` (the
 * partial-success answer). Everything is owned by the batch:
 * otlp_batch_free. Built as text, not as jansson objects, because
 * building and dumping a tree cost more than half the ingest's
 * instructions (docs/telemetry.md). */
typedef struct otlp_batch {
	otlp_row *rows;
	size_t n_rows, cap_rows;
	otlp_attr *attrs;
	size_t n_attrs, cap_attrs;
	sdk_buf bodies; /* the rows' bodies, one after the other */
	sdk_buf text;   /* the rows' and attributes' strings */
	size_t rejected;
	char why[OTLP_WHY_MAX];
} otlp_batch;

void otlp_batch_free(otlp_batch *b);

/* Decodes a protobuf ExportTraceServiceRequest / ExportLogsServiceRequest
 * / ExportMetricsServiceRequest into its OTLP/JSON tree (*out, new).
 * SDK_EINVAL with the reason in `err` when it does not decode. */
int otlp_pb_to_json(otlp_signal sig, const uint8_t *buf, size_t len, json_t **out,
		    sdk_err *err);

/* Checks and normalizes an OTLP/JSON request. 0 and *batch (the caller
 * frees it: otlp_batch_free), or a status with the reason in `err`: then
 * nothing of it may be stored and *batch holds nothing. SDK_EINVAL for a
 * shape that is not OTLP, an id of the wrong length; SDK_ETOOLARGE for
 * more than `items_max` spans or records (the answer is 413); SDK_EIO when
 * memory ran out. */
int otlp_json_batch(otlp_signal sig, json_t *req, size_t items_max, otlp_batch *batch,
		    sdk_err *err);

/* The answers. A success, with partial_success when rejected > 0 (or,
 * for metrics, when `why` is a warning with nothing rejected); an error
 * as google.rpc.Status. Both in protobuf when `pb`, else JSON. *out is a
 * malloc'd body of *len bytes. */
int otlp_encode_success(otlp_signal sig, bool pb, size_t rejected, const char *why, uint8_t **out,
			size_t *len);
int otlp_encode_status(bool pb, int code, const char *message, uint8_t **out, size_t *len);

/* A 64-bit unsigned integer of OTLP/JSON: a JSON number or a string of
 * digits; absent or null is 0. -1 for anything else (otlp_num.c). */
int otlp_json_u64(const json_t *v, uint64_t *out);

/* Lowercase hex of `n` bytes into out (2n+1 bytes). */
void otlp_hex(const uint8_t *in, size_t n, char *out);

#endif
