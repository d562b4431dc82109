/* A job's output: what it wrote on stdout and stderr, kept up to the
 * job's limit per stream (the rest is counted and the stream marked
 * truncated), and streamed to Server-Sent Events subscribers as it comes.
 *
 * Every subscriber has its own offset in each stream, so a slow one
 * (more than EXE_SUB_BACKLOG_MAX bytes unsent) just pauses and catches
 * up from the kept bytes: nothing is dropped for it and our memory does
 * not grow for it. Events:
 *
 *   event: stdout | stderr   data: {"offset": N, "text": "..."}
 *   event: end               data: the job's record (exit code, ...)
 *
 * The text is UTF-8: a chunk never ends inside a character, and bytes
 * that are not UTF-8 arrive as U+FFFD (the stored output keeps the bytes:
 * GET .../output?format=raw). A comment line every 15 s keeps idle
 * streams alive. The object is reference counted: a finished job's
 * subscribers keep it until they have had everything. */
#ifndef GRACE_EXECUTOR_OUTPUT_H
#define GRACE_EXECUTOR_OUTPUT_H

#include "kernels/layer.h"

#include "sdk/http.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EXE_SUB_BACKLOG_MAX (256u << 10)
#define EXE_SUB_CHUNK (16u << 10)
#define EXE_SUBS_MAX 64 /* subscribers per job */

typedef struct exe_out exe_out;

exe_out *exe_out_new(struct event_base *base, uint64_t limit);
void exe_out_ref(exe_out *o);
void exe_out_unref(exe_out *o);
/* Keeps what fits under the limit, counts the rest; feeds subscribers. */
void exe_out_append(exe_out *o, int stream, const char *data, size_t n);
/* The output is complete: subscribers get the rest and then `end`
 * (stolen: the job's record). */
void exe_out_finish(exe_out *o, json_t *end);
const char *exe_out_data(const exe_out *o, int stream, size_t *len);
uint64_t exe_out_total(const exe_out *o, int stream);
bool exe_out_truncated(const exe_out *o, int stream);
/* Starts an SSE reply on req and feeds it. SDK_EBUSY past EXE_SUBS_MAX. */
int exe_out_subscribe(exe_out *o, sdk_req *req);
/* Ends every subscriber's stream now (drain). */
void exe_out_end_subscribers(exe_out *o);

#endif
