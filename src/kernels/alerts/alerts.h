/* The alerts kernel's shared state, for alerts.c (rule files, the
 * evaluation loop against the metrics kernel, deliveries, incidents from
 * the bus) and api.c (Prometheus's rules API, Alertmanager's API v2,
 * Grace's rule-file and notifier routes). */
#ifndef GRACE_ALERTS_ALERTS_H
#define GRACE_ALERTS_ALERTS_H

#include "kernels/layer.h"

#include "kernels/alerts/notifier.h"
#include "kernels/alerts/rules.h"
#include "sdk/bus_group.h"
#include "sdk/call.h"
#include "sdk/kernel.h"

#include <stdbool.h>
#include <stdint.h>

#define AK_FILE_NAME_MAX 128
#define AK_INCIDENT_KEYS_MAX 256

typedef struct ak_file {
	char name[AK_FILE_NAME_MAX + 1]; /* an API name, or the path of a configured file */
	char *yaml;
	bool paused, from_config;
	size_t n_groups;
	char error[512]; /* a configured file that did not load */
} ak_file;

typedef struct ak_incidents {
	char kernel[32], outcome[24];
	uint64_t n;
} ak_incidents;

typedef struct ak_stats {
	uint64_t evaluations, evaluation_failures;
	uint64_t notifications[3], notification_failures[3]; /* by nt_kind */
	uint64_t alerts_received, incidents;
	double evaluation_seconds;
} ak_stats;

typedef struct ak {
	sdk_kernel *k;
	ntf *ntf;
	/* For receivers outside Grace (webhooks, an Alertmanager): a caller
	 * without the internal token, which must not leave Grace. */
	sdk_caller *outside;
	/* Notifications in flight (alerts.c): freed at close, since a caller
	 * freed ends its calls without calling back. */
	struct delivery *deliveries;
	char notifier_error[512]; /* why the configured notifier file was not used */
	bool notifier_from_api;
	ak_file *files;
	size_t n_files;
	ar_group **groups;
	size_t n_groups;
	ar_group **retired; /* replaced while being evaluated: freed when done */
	size_t n_retired;
	struct event *tick;
	bool draining;
	int64_t next_gc_ms, next_save_ms;
	/* heal incidents from the bus */
	sdk_bus_group incidents;
	ak_incidents inc[AK_INCIDENT_KEYS_MAX];
	size_t n_inc;
	char external_url[128];
	ak_stats st;
} ak;

/* alerts.c */
/* Replaces (or adds) a rule file: 0, or SDK_EINVAL with the reason and
 * nothing changed. */
int ak_file_set(ak *a, const char *name, const char *yaml, bool paused, bool from_config,
		sdk_err *err);
int ak_file_remove(ak *a, const char *name, sdk_err *err);
ak_file *ak_file_find(ak *a, const char *name);
/* Evaluates the groups of `file` (NULL: every group) once at ts, then
 * calls done(arg, failures) on the loop. -1 when a group is busy. */
int ak_evaluate_now(ak *a, const char *file, int64_t ts, void (*done)(void *arg, int failures),
		    void *arg);
/* Saves a silence or a log entry (after it changed in the notifier). */
void ak_persist_silence(ak *a, const char *id);

/* api.c: the routes. */
void ak_on_rules(sdk_req *req, void *ctx);
void ak_on_prom_alerts(sdk_req *req, void *ctx);
void ak_on_am_status(sdk_req *req, void *ctx);
void ak_on_am_receivers(sdk_req *req, void *ctx);
void ak_on_am_alerts_get(sdk_req *req, void *ctx);
void ak_on_am_alerts_post(sdk_req *req, void *ctx);
void ak_on_am_groups(sdk_req *req, void *ctx);
void ak_on_am_silences_get(sdk_req *req, void *ctx);
void ak_on_am_silences_post(sdk_req *req, void *ctx);
void ak_on_am_silence_get(sdk_req *req, void *ctx);
void ak_on_am_silence_delete(sdk_req *req, void *ctx);
void ak_on_files_list(sdk_req *req, void *ctx);
void ak_on_file_get(sdk_req *req, void *ctx);
void ak_on_file_put(sdk_req *req, void *ctx);
void ak_on_file_delete(sdk_req *req, void *ctx);
void ak_on_evaluate(sdk_req *req, void *ctx);
void ak_on_notifier_get(sdk_req *req, void *ctx);
void ak_on_notifier_put(sdk_req *req, void *ctx);

#endif
