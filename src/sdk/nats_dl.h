/* libnats (cnats, the NATS C client), loaded at run time.
 *
 * Every kernel is the same `grace` binary, and linking libnats costs each
 * kernel process about 2 MiB of resident memory (libnats brings libssl and
 * libcrypto, which Grace no longer links) and tens of milliseconds of exec
 * (measured: docs/message_bus.md) for a library only the message bus uses,
 * and only with [message_bus] engine = jetstream. So Grace compiles against <nats/nats.h>
 * for its types and dlopen()s libnats.so.3.4 where it is needed
 * (sdk/dl_table.h, as sdk/curl_dl.h does for libcurl): in the bus kernel,
 * and in `grace restore` when an archive holds the bus's JetStream stream
 * (cli/restore_js.c). One table for both, here.
 *
 * The members have the functions' own names and types (__typeof__ of the
 * header's declarations), so a call reads `N->js_PublishMsg(...)`. */
#ifndef GRACE_SDK_NATS_DL_H
#define GRACE_SDK_NATS_DL_H


#include "sdk/err.h"

#include <nats/nats.h>
#include <stddef.h>

#define SDK_NATS_FUNCTIONS(X)                                                                      \
	X(natsOptions_Create) X(natsOptions_SetServers) X(natsOptions_SetTimeout)                  \
	X(natsOptions_SetMaxReconnect) X(natsOptions_SetReconnectWait)                             \
	X(natsOptions_SetErrorHandler) X(natsOptions_SetName) X(natsOptions_SetNoRandomize)        \
	X(natsOptions_SetPingInterval) X(natsOptions_SetMaxPingsOut) X(natsOptions_Destroy)        \
	X(natsConnection_Connect) X(natsConnection_Close) X(natsConnection_Destroy)                \
	X(natsConnection_JetStream) X(jsCtx_Destroy) X(natsStatus_GetText) X(nats_CloseAndWait)    \
	X(jsOptions_Init) X(jsStreamConfig_Init) X(js_AddStream) X(js_UpdateStream)                \
	X(js_GetStreamInfo) X(jsStreamInfo_Destroy) X(js_GetConsumerInfo) X(js_DeleteConsumer)     \
	X(js_AddConsumer) X(js_UpdateConsumer) X(jsConsumerConfig_Init)                          \
	X(jsConsumerInfo_Destroy) X(js_Consumers) X(jsConsumerInfoList_Destroy)                    \
	X(jsPubOptions_Init) X(js_PublishMsg) X(js_PublishMsgAsync) X(js_PublishAsyncComplete)    \
	X(js_PublishAsyncGetPendingList) X(jsPubAck_Destroy) X(jsSubOptions_Init) X(js_Subscribe)  \
	X(js_PullSubscribe) X(natsSubscription_Fetch) X(natsSubscription_Unsubscribe)              \
	X(natsSubscription_Destroy) X(natsSubscription_SetOnCompleteCB) X(natsMsg_Create)          \
	X(natsMsg_Destroy) X(natsMsg_GetSubject) X(natsMsg_GetData) X(natsMsg_GetDataLength)       \
	X(natsMsgHeader_Set) X(natsMsgHeader_Get) X(natsMsg_GetMetaData) X(jsMsgMetaData_Destroy)  \
	X(natsMsg_AckSync) X(natsMsg_Nak) X(natsMsg_Term) X(natsMsgList_Destroy)                  \
	X(natsMsg_GetReply) X(natsInbox_Create) X(natsInbox_Destroy)                               \
	X(natsConnection_SubscribeSync) X(natsSubscription_NextMsg) X(natsConnection_Publish)      \
	X(natsConnection_Request) X(natsConnection_PublishRequest) X(natsConnection_Flush)         \
	X(js_DeleteStream)

typedef struct sdk_nats_dl {
	void *lib;
#define SDK_NATS_MEMBER(fn) __typeof__(fn) *fn;
	SDK_NATS_FUNCTIONS(SDK_NATS_MEMBER)
#undef SDK_NATS_MEMBER
} sdk_nats_dl;

/* Loads libnats into `n`. 0, or SDK_EIO with the reason in err (nothing loaded). */
int sdk_nats_open(sdk_nats_dl *n, sdk_err *err);
/* A NATS status, and JetStream's error code when there is one, in words
 * (into buf, returned). */
const char *sdk_nats_why(const sdk_nats_dl *n, natsStatus s, jsErrCode jerr, char *buf,
			 size_t len);
/* Waits for the library's threads to end (nats_CloseAndWait), then unloads
 * it; a no-op on a table never opened. Every connection must be destroyed. */
void sdk_nats_close(sdk_nats_dl *n);

#endif
