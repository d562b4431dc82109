/* A client for one OpenAI-compatible chat server (llama.cpp's server,
 * Ollama, vLLM, ...): POST BASE_URL/chat/completions, with or without
 * "stream": true, through libcurl's multi interface driven by the event
 * loop, so a slow model never blocks anything else. libcurl is loaded at
 * run time (see curl_dl.h). */
#ifndef GRACE_CHAT_MODEL_H
#define GRACE_CHAT_MODEL_H

#include "serve/layer.h"

#include "sdk/config.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct event_base;
typedef struct model model;
typedef struct model_call model_call;

#define MODEL_ANSWER_MAX (256u * 1024) /* bytes of answer text kept */
#define MODEL_RAW_MAX (2u * 1024 * 1024) /* bytes read from the server, at most */

/* Why a call failed, for metrics (model_failure_label). */
typedef enum model_failure {
	MODEL_OK = 0,
	MODEL_FAIL_TIMEOUT,     /* no whole answer within timeout_ms */
	MODEL_FAIL_UNREACHABLE, /* cannot connect, or the answer broke off before it began */
	MODEL_FAIL_HTTP_STATUS, /* the server answered other than 2xx */
	MODEL_FAIL_BAD_ANSWER,  /* not the OpenAI shape, an error event, no text, too long */
	MODEL_FAIL_TRUNCATED,   /* a stream that ended or broke off without [DONE] or a
				 * finish_reason */
	MODEL_FAILURE_KINDS
} model_failure;

/* "timeout", "unreachable", "http_status", "bad_answer", "truncated_stream". */
const char *model_failure_label(model_failure f);

/* Each piece of the answer as it arrives (streaming calls only). */
typedef void (*model_delta_cb)(const char *text, size_t len, void *arg);
/* Once, at the end. `failure` MODEL_OK: `text` is the whole answer.
 * Otherwise `error` says why it failed and `text` holds what arrived before
 * (maybe nothing). The call is gone once this returns. */
typedef void (*model_done_cb)(const char *text, size_t len, model_failure failure,
			      const char *error, void *arg);

/* Loads libcurl and reads the key file. NULL with the reason in `err`.
 * The key is never logged. */
model *model_new(struct event_base *base, const grace_model *cfg, char *err, size_t errlen);
/* Ends every call without calling back, then unloads libcurl. */
void model_free(model *m);
const char *model_name(const model *m);

/* Asks for the next assistant message after `messages` (an array of
 * {"role","content"}, borrowed). NULL when it cannot start (no callback). */
model_call *model_chat(model *m, const json_t *messages, bool stream, model_delta_cb on_delta,
		       model_done_cb on_done, void *arg);
/* Ends a call without calling back. */
void model_call_cancel(model_call *c);

#endif
