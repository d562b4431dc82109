/* libcurl, loaded at run time. Every kernel is this same `grace` binary, and
 * linking libcurl costs each kernel process about 6 MiB of resident memory
 * and 15 ms of exec (measured) for a library only the processes that talk
 * to a model use (chat in the main process, the research and coding_agent
 * kernels), and only when a [model] is configured. So Grace compiles
 * against <curl/curl.h> for its types and constants, and such a process
 * dlopen()s libcurl.so.4 when it needs it; the functions it calls live in
 * one table here. */
#ifndef GRACE_SDK_CURL_DL_H
#define GRACE_SDK_CURL_DL_H

#include "sdk/err.h"

#include <curl/curl.h>
#include <stddef.h>

/* The members are not named curl_*: <curl/curl.h> defines some of those
 * names as function-like macros (its GCC type checks). */
typedef struct sdk_curl_dl {
	void *lib;
	CURLcode (*global_init)(long flags);
	void (*global_cleanup)(void);
	char *(*version)(void);
	CURLM *(*multi_init)(void);
	CURLMcode (*multi_cleanup)(CURLM *m);
	CURLMcode (*multi_setopt)(CURLM *m, CURLMoption opt, ...);
	CURLMcode (*multi_add_handle)(CURLM *m, CURL *e);
	CURLMcode (*multi_remove_handle)(CURLM *m, CURL *e);
	CURLMcode (*multi_socket_action)(CURLM *m, curl_socket_t s, int ev_bitmask,
					 int *running);
	CURLMcode (*multi_assign)(CURLM *m, curl_socket_t s, void *sockp);
	CURLMsg *(*multi_info_read)(CURLM *m, int *msgs_in_queue);
	const char *(*multi_strerror)(CURLMcode code);
	CURL *(*easy_init)(void);
	void (*easy_cleanup)(CURL *e);
	CURLcode (*easy_setopt)(CURL *e, CURLoption opt, ...);
	CURLcode (*easy_getinfo)(CURL *e, CURLINFO info, ...);
	const char *(*easy_strerror)(CURLcode code);
	struct curl_slist *(*slist_append)(struct curl_slist *list, const char *s);
	void (*slist_free_all)(struct curl_slist *list);
} sdk_curl_dl;

/* Loads libcurl and runs curl_global_init. 0, or SDK_EIO with the reason in
 * `err` (and nothing left loaded). */
int sdk_curl_open(sdk_curl_dl *c, sdk_err *err);
/* curl_global_cleanup, then unloads it; a no-op on a table never opened. */
void sdk_curl_close(sdk_curl_dl *c);

#endif
