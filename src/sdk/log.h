/* One structured log line per event: a JSON object on stderr with time,
 * level, component (the kernel or "grace"), message and request id. */
#ifndef GRACE_SDK_LOG_H
#define GRACE_SDK_LOG_H

enum sdk_log_level { SDK_LOG_DEBUG, SDK_LOG_INFO, SDK_LOG_WARN, SDK_LOG_ERROR };

/* Set once at start-up, before any thread or child exists. */
void sdk_log_init(const char *component, enum sdk_log_level min);
/* Accepts "debug", "info", "warn", "error"; returns -1 on anything else. */
int sdk_log_level_parse(const char *s, enum sdk_log_level *out);
/* The trace and span this thread's lines belong to (sdk/tracer.h sets
 * them while a traced handler runs): lines then carry "trace_id" and
 * "span_id". NULL, NULL: none. */
void sdk_log_set_trace(const unsigned char trace_id[16], const unsigned char span_id[8]);

/* request_id may be NULL. */
void sdk_log(enum sdk_log_level level, const char *request_id, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define sdk_debug(...) sdk_log(SDK_LOG_DEBUG, NULL, __VA_ARGS__)
#define sdk_info(...) sdk_log(SDK_LOG_INFO, NULL, __VA_ARGS__)
#define sdk_warn(...) sdk_log(SDK_LOG_WARN, NULL, __VA_ARGS__)
#define sdk_error(...) sdk_log(SDK_LOG_ERROR, NULL, __VA_ARGS__)

#endif
