/* Notifications as Alertmanager 0.25 makes them (dispatch/, notify/,
 * inhibit/, silence/): alerts come in (from the rules, from POST
 * /api/v2/alerts, from heal incidents), a routing tree sends each to the
 * routes it matches (a child's `continue` lets the next sibling match
 * too), a route groups alerts by its group_by labels, and each group is
 * flushed group_wait after it began, then every group_interval. At a
 * flush, alerts a silence or an inhibition rule mutes are left out, and
 * the notification log decides (notify.go's needsUpdate):
 *
 *   never notified:          only when something fires
 *   a new alert fires:       now
 *   nothing fires any more:  once, if something fired last time
 *   newly resolved alerts:   now, when the receiver sends resolved ones
 *   nothing changed:         again after repeat_interval
 *
 * so a resolved notification is sent once and a firing alert is not
 * repeated before its interval. Pure: time comes in as now_ms; the kernel
 * sends what ntf_flush returns and reports back with ntf_sent. */
#ifndef GRACE_ALERTS_NOTIFIER_H
#define GRACE_ALERTS_NOTIFIER_H

#include "kernels/layer.h"

#include "kernels/alerts/alabels.h"
#include "sdk/err.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define NT_ALERTS_MAX 100000
#define NT_SILENCES_MAX 10000
#define NT_URL_MAX 256

typedef struct ntf ntf;

enum nt_kind { NT_WEBHOOK, NT_BUS, NT_ALERTMANAGER };

/* One way a receiver notifies (a webhook_configs entry, ...). */
typedef struct nt_integration {
	enum nt_kind kind;
	int port;                /* webhook, alertmanager: 127.0.0.1:port */
	char path[NT_URL_MAX];   /* webhook: the URL's path */
	char url[NT_URL_MAX];    /* as configured, for showing */
	char subject[128];       /* bus */
	bool send_resolved;
	unsigned max_alerts;     /* webhook: 0 = all */
} nt_integration;

ntf *ntf_new(void);
void ntf_free(ntf *n);

/* Loads a configuration in Alertmanager's format (route, receivers,
 * inhibit_rules; Grace's receivers grace_bus_configs and
 * alertmanager_configs beside webhook_configs). 0, or SDK_EINVAL with the
 * reason (nothing changes then). Alerts are regrouped under the new tree. */
int ntf_configure(ntf *n, const char *yaml, size_t len, int64_t now_ms, sdk_err *err);
/* The configuration text in force. */
const char *ntf_config_text(const ntf *n);

/* An alert in (Alertmanager's PostableAlert). ends_ms 0: firing with no
 * end given (it resolves after resolve_timeout without a refresh). */
int ntf_put(ntf *n, json_t *labels, json_t *annotations, int64_t starts_ms, int64_t ends_ms,
	    const char *generator_url, int64_t now_ms, sdk_err *err);

/* Silences. `id` "" for a new one (an id is made: a UUID). */
typedef struct nt_silence {
	char id[40];
	al_matchers m;
	int64_t starts_ms, ends_ms, updated_ms;
	char created_by[128];
	char comment[1024];
} nt_silence;

/* Takes the matchers of s (it is emptied). Checks it as Alertmanager
 * does: at least one matcher, not all matching the empty string, an end
 * after the start and not in the past. *id receives its id. */
int ntf_silence_set(ntf *n, nt_silence *s, int64_t now_ms, char id_out[40], sdk_err *err);
/* A silence read back from storage, as it was (no checks; takes its
 * matchers). */
int ntf_silence_restore(ntf *n, nt_silence *s);
/* Ends it now; SDK_ENOTFOUND, or SDK_EINVAL when it has ended already. */
int ntf_silence_expire(ntf *n, const char *id, int64_t now_ms, sdk_err *err);
const nt_silence *ntf_silence_get(const ntf *n, const char *id);
size_t ntf_silence_count(const ntf *n);
const nt_silence *ntf_silence_at(const ntf *n, size_t i);
/* "pending", "active" or "expired" at now. */
const char *ntf_silence_state(const nt_silence *s, int64_t now_ms);
json_t *ntf_silence_json(const nt_silence *s, int64_t now_ms);

/* A notification to deliver. */
typedef struct nt_out {
	char group_key[1024];
	char receiver[64];
	size_t integration;
	const nt_integration *to; /* valid until the next ntf_configure */
	json_t *payload; /* Alertmanager's webhook body, version 4 */
	json_t *posted;  /* for NT_ALERTMANAGER: the PostableAlert array */
	/* for the notification log */
	uint64_t *firing, *resolved;
	size_t n_firing, n_resolved;
	int64_t at;
} nt_out;

/* Flushes the groups due at now_ms; returns how many notifications were
 * put in *out (malloc'd; free each with ntf_out_free, then the array). */
size_t ntf_flush(ntf *n, int64_t now_ms, const char *external_url, nt_out **out);
/* A delivery's outcome: on success the notification log remembers what
 * was sent. (A failure is retried at the group's next flush.) */
void ntf_sent(ntf *n, const nt_out *o, bool ok);
void ntf_out_free(nt_out *o);

/* The notification log, for persistence: the kernel saves entries after
 * ntf_sent and loads them at start. */
typedef struct nt_log_entry {
	char key[1200]; /* group key + receiver + integration */
	uint64_t *firing, *resolved;
	size_t n_firing, n_resolved;
	int64_t at;
} nt_log_entry;
json_t *ntf_log_json(const ntf *n, const char *key);
/* The alerts held, for persistence: NULL when nothing changed since the
 * last dump, else [{"labels","annotations","starts","ends","generator"}]
 * (a new array). ntf_alerts_load puts them back at start, so an alert a
 * receiver was told about is resolved to it after a restart too. */
json_t *ntf_alerts_dump(ntf *n);
void ntf_alerts_load(ntf *n, const json_t *list, int64_t now_ms);
int ntf_log_load(ntf *n, const char *key, const json_t *entry);
/* The log key of a notification. */
void ntf_log_key(const nt_out *o, char *out, size_t len);

/* Milliseconds until the next group is due (or -1 when none). */
int64_t ntf_next_due(const ntf *n, int64_t now_ms);
/* Forgets resolved alerts no group holds (kept `keep_ms` after their end). */
void ntf_gc(ntf *n, int64_t now_ms, int64_t keep_ms);

/* The Alertmanager API's views. */
json_t *ntf_alerts_json(ntf *n, int64_t now_ms, const al_matchers *filter, bool active,
			bool silenced, bool inhibited);
json_t *ntf_groups_json(ntf *n, int64_t now_ms);
json_t *ntf_receivers_json(const ntf *n);
size_t ntf_alert_count(const ntf *n, int64_t now_ms, bool firing_only);

#endif
