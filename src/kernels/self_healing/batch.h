/* The writes one event or one request makes, recorded on the loop and
 * run later on the store's worker (worker.h) in one transaction: the
 * correlation and the ladder decide in memory, on the loop, in the order
 * things arrive; their writes reach the store in that same order, off the
 * loop. A batch owns copies of everything it writes (no json_t is shared
 * with the loop: jansson's reference counts are not thread-safe). */
#ifndef GRACE_SELF_HEALING_BATCH_H
#define GRACE_SELF_HEALING_BATCH_H

#include "kernels/layer.h"

#include "kernels/self_healing/correlate.h"
#include "kernels/self_healing/ladder.h"
#include "sdk/err.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#define SH_BATCH_OPS_MAX 4096 /* past it an append fails: the batch is refused whole */

typedef struct sh_batch sh_batch;

sh_batch *sh_batch_new(void);
void sh_batch_free(sh_batch *b);
/* Ops appended; 0 when empty. */
size_t sh_batch_len(const sh_batch *b);
/* Each append copies what it is given (json deep-copied). 0, or SDK_EBUSY
 * when the batch is full or memory is short: the batch is then marked
 * failed, and sh_batch_run refuses it (nothing half-written). */
int sh_batch_save(sh_batch *b, const sh_incident *inc);
int sh_batch_merge(sh_batch *b, int64_t from, int64_t into, int64_t now_ms);
int sh_batch_event(sh_batch *b, int64_t incident, int64_t ts_ms, const char *kernel,
		   const char *kind, const char *subject, json_t *detail);
int sh_batch_hints(sh_batch *b, int64_t incident, json_t *hints);
/* An action; its id, once run, is sh_batch_action_id. */
int sh_batch_action(sh_batch *b, int64_t incident, const char *kernel, int64_t at_ms, int step,
		    const char *playbook, const char *verdict, json_t *detail);
/* The learning kernel's decision kept with action `id` (its playbook too). */
int sh_batch_learning(sh_batch *b, int64_t id, const char *playbook, json_t *learning);
int sh_batch_ladder(sh_batch *b, const sh_kstate *ks);
int sh_batch_budget(sh_batch *b, const sh_budget *budget);

/* Runs the ops in order in one transaction (BEGIN IMMEDIATE: the write
 * lock first, so a busy database waits in busy_timeout): all or none. */
int sh_batch_run(sh_batch *b, sqlite3 *db, sdk_err *err);
/* The id of the last action the batch inserted (0 when none). */
int64_t sh_batch_action_id(const sh_batch *b);

#endif
