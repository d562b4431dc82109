/* A client for one OpenAI-compatible chat server (llama.cpp's server,
 * Ollama, vLLM, ...): POST BASE_URL/chat/completions, with or without
 * "stream": true, through libcurl's multi interface driven by the event
 * loop, so a slow model never blocks anything else. libcurl is loaded at
 * run time (see sdk_curl_dl.h). */
#ifndef GRACE_SDK_MODEL_H
#define GRACE_SDK_MODEL_H

#include "sdk/config.h"
#include "sdk/err.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct event_base;
typedef struct sdk_model sdk_model;
typedef struct sdk_model_call sdk_model_call;

#define SDK_MODEL_ANSWER_MAX (256u * 1024) /* bytes of answer text kept */
#define SDK_MODEL_RAW_MAX (2u * 1024 * 1024) /* bytes read from the server, at most */

/* Why a call failed, for metrics (sdk_model_failure_label). */
typedef enum sdk_model_failure {
	SDK_MODEL_OK = 0,
	SDK_MODEL_FAIL_TIMEOUT,     /* no whole answer within timeout_ms */
	SDK_MODEL_FAIL_UNREACHABLE, /* cannot connect, or the answer broke off before it began */
	SDK_MODEL_FAIL_HTTP_STATUS, /* the server answered other than 2xx */
	SDK_MODEL_FAIL_BAD_ANSWER,  /* not the OpenAI shape, an error event, no text, too long */
	SDK_MODEL_FAIL_TRUNCATED,   /* a stream that ended or broke off without [DONE] or a
				 * finish_reason */
	SDK_MODEL_FAILURE_KINDS
} sdk_model_failure;

/* "timeout", "unreachable", "http_status", "bad_answer", "truncated_stream". */
const char *sdk_model_failure_label(sdk_model_failure f);

/* Each piece of the answer as it arrives (streaming calls only). */
typedef void (*sdk_model_delta_cb)(const char *text, size_t len, void *arg);
/* Once, at the end. `failure` SDK_MODEL_OK: `text` is the whole answer.
 * Otherwise `error` says why it failed and `text` holds what arrived before
 * (maybe nothing). The call is gone once this returns. */
typedef void (*sdk_model_done_cb)(const char *text, size_t len, sdk_model_failure failure,
			      const char *error, void *arg);

/* Loads libcurl and reads the key file. NULL with the reason in `err`.
 * The key is never logged. */
sdk_model *sdk_model_new(struct event_base *base, const grace_model *cfg, sdk_err *err);
/* Ends every call without calling back, then unloads libcurl. */
void sdk_model_free(sdk_model *m);
const char *sdk_model_name(const sdk_model *m);

/* Asks for the next assistant message after `messages` (an array of
 * {"role","content"}, borrowed). NULL when it cannot start (no callback). */
sdk_model_call *sdk_model_chat(sdk_model *m, const json_t *messages, bool stream, sdk_model_delta_cb on_delta,
		       sdk_model_done_cb on_done, void *arg);
/* Ends a call without calling back. */
void sdk_model_call_cancel(sdk_model_call *c);

#endif
