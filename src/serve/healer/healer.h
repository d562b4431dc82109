/* The network healer: diagnoses a kernel, picks the playbook for what it
 * found (or runs the one asked for), runs its steps one by one on the event
 * loop, and records the whole run as an incident. A heal counts as healed
 * only when the kernel answers /health at the end. */
#ifndef GRACE_HEALER_HEALER_H
#define GRACE_HEALER_HEALER_H

#include "serve/layer.h"

#include "serve/gateway/gateway.h"
#include "serve/guardian/guardian.h"
#include "serve/healer/diagnose.h"
#include "serve/supervisor/supervisor.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>

typedef struct healer healer;

typedef struct hl_request {
	int issue;          /* -1: diagnose */
	const char *action; /* NULL: the playbook for the issue */
	bool force;         /* may end a foreign process holding the port */
	const char *trigger; /* "api", "guardian", "reset-port" */
} hl_request;

/* Gets the finished incident (borrowed). */
typedef void (*hl_done_cb)(json_t *incident, void *arg);

healer *hl_new(struct event_base *base, supervisor *sup, gateway *gw, guardian *gd,
	       sqlite3 *db);
/* Ends running incidents as "interrupted", calling their callbacks. */
void hl_free(healer *h);

/* Starts a heal. Returns 0; -EBUSY when one runs for this kernel already
 * (*running_id says which); -EINVAL for an unknown action. `cb` may be NULL. */
int hl_heal(healer *h, sup_kernel *k, const hl_request *req, hl_done_cb cb, void *arg,
	    int64_t *running_id);

void hl_on_sup_change(healer *h, sup_kernel *k, enum sup_state old);
/* Called with every finished incident, whoever asked for it. */
void hl_set_observer(healer *h, hl_done_cb cb, void *arg);
bool hl_playbook_known(const char *name);
json_t *hl_playbooks_json(void);
sqlite3 *hl_db(healer *h);

#endif
