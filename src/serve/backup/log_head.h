/* A backup names the immutable log's signed tree head, asked before any
 * copy is made, so the log's copy holds at least that tree and a restore
 * can check it (snapshot.h). POST /backup and the scheduled backups ask
 * it the same way, through this. */
#ifndef GRACE_BACKUP_LOG_HEAD_H
#define GRACE_BACKUP_LOG_HEAD_H

#include "serve/layer.h"

#include "serve/api/api.h"

#include <jansson.h>

/* The asker's: set cb and arg, keep it alive until cb is called. */
typedef struct bk_head_ask {
	/* Called once, maybe before bk_log_head_ask returns. head: owned by
	 * cb, or NULL with why set (no head to be had), or NULL with why NULL
	 * when no immutable log is configured (nothing to pin). */
	void (*cb)(json_t *head, const char *why, void *arg);
	void *arg;
} bk_head_ask;

void bk_log_head_ask(api_ctx *api, bk_head_ask *ask);

#endif
