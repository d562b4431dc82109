#include "sdk/log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* Process-wide and written once before anything concurrent starts, like
 * redis's server.verbosity: logging must work from any module without a
 * context pointer threaded through every call. */
static char log_component[64] = "grace";
static enum sdk_log_level log_min = SDK_LOG_INFO;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

/* The current trace's ids, per thread (a worker's lines are not the
 * loop's span's), kept raw: set for every request, written out as hex only
 * by the rare request that logs. */
static _Thread_local unsigned char trace_raw[16], span_raw[8];
static _Thread_local bool traced;

void sdk_log_set_trace(const unsigned char trace_id[16], const unsigned char span_id[8])
{
	traced = trace_id && span_id;
	if (traced) {
		memcpy(trace_raw, trace_id, sizeof trace_raw);
		memcpy(span_raw, span_id, sizeof span_raw);
	}
}

static void hex_of(const unsigned char *in, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++)
		out[2 * i] = d[in[i] >> 4], out[2 * i + 1] = d[in[i] & 15];
	out[2 * n] = '\0';
}

void sdk_log_init(const char *component, enum sdk_log_level min)
{
	snprintf(log_component, sizeof log_component, "%s", component);
	log_min = min;
}

int sdk_log_level_parse(const char *s, enum sdk_log_level *out)
{
	for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum sdk_log_level)i;
			return 0;
		}
	}
	return -1;
}

void sdk_log(enum sdk_log_level level, const char *request_id, const char *fmt, ...)
{
	if (level < log_min)
		return;

	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);

	struct timeval tv;
	gettimeofday(&tv, NULL);
	struct tm tm;
	gmtime_r(&tv.tv_sec, &tm);
	char when[40];
	size_t n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + n, sizeof when - n, ".%03ldZ", (long)(tv.tv_usec / 1000));

	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:I}", "time", when, "level",
			      level_names[level], "kernel", log_component, "msg", msg,
			      "pid", (json_int_t)getpid());
	if (!o) /* the message was not valid UTF-8: say so rather than lose the line */
		o = json_pack("{s:s, s:s, s:s, s:s, s:I}", "time", when, "level",
			      level_names[level], "kernel", log_component, "msg",
			      "(log message was not valid UTF-8)", "pid", (json_int_t)getpid());
	if (!o)
		return;
	if (request_id)
		json_object_set_new(o, "request_id", json_string(request_id));
	if (traced) {
		char trace_hex[33], span_hex[17];
		hex_of(trace_raw, sizeof trace_raw, trace_hex);
		hex_of(span_raw, sizeof span_raw, span_hex);
		json_object_set_new(o, "trace_id", json_string(trace_hex));
		json_object_set_new(o, "span_id", json_string(span_hex));
	}
	char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
	json_decref(o);
	if (!line)
		return;
	/* One write per line so lines from concurrent processes sharing stderr
	 * never interleave. */
	size_t len = strlen(line);
	char buf[4096];
	if (len + 1 < sizeof buf) {
		memcpy(buf, line, len);
		buf[len] = '\n';
		ssize_t w = write(STDERR_FILENO, buf, len + 1);
		(void)w;
	} else {
		fprintf(stderr, "%s\n", line);
	}
	free(line);
}
