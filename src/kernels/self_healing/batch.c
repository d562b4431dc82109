/* The writes of one event or request, run later on the store's worker
 * (batch.h). */
#include "kernels/self_healing/batch.h"

#include "kernels/self_healing/store.h"
#include "sdk/db.h"

#include <stdlib.h>
#include <string.h>

enum op_kind { OP_SAVE, OP_MERGE, OP_EVENT, OP_HINTS, OP_ACTION, OP_LEARNING, OP_LADDER, OP_BUDGET };

typedef struct op {
	enum op_kind kind;
	int64_t id, id2, ts; /* incident or action ids, a time */
	int step;
	char *kernel, *s1, *s2, *s3; /* owned copies */
	json_t *json;                /* owned, deep-copied */
	union {
		sh_incident inc;
		sh_kstate ks;
		sh_budget budget;
	} u;
} op;

struct sh_batch {
	op *ops;
	size_t n, cap;
	bool failed; /* an append did not fit: refused whole */
	int64_t action_id;
};

sh_batch *sh_batch_new(void)
{
	return calloc(1, sizeof(sh_batch));
}

static void op_clear(op *o)
{
	free(o->kernel);
	free(o->s1);
	free(o->s2);
	free(o->s3);
	json_decref(o->json);
}

void sh_batch_free(sh_batch *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->n; i++)
		op_clear(&b->ops[i]);
	free(b->ops);
	free(b);
}

size_t sh_batch_len(const sh_batch *b)
{
	return b ? b->n : 0;
}

int64_t sh_batch_action_id(const sh_batch *b)
{
	return b ? b->action_id : 0;
}

static char *dup(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* A new op at the end, zeroed; NULL (and the batch failed) when it does
 * not fit. */
static op *append(sh_batch *b, enum op_kind kind)
{
	if (b->failed)
		return NULL;
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 8;
		op *ops = b->n < SH_BATCH_OPS_MAX ? realloc(b->ops, cap * sizeof *ops) : NULL;
		if (!ops) {
			b->failed = true;
			return NULL;
		}
		b->ops = ops;
		b->cap = cap;
	}
	op *o = &b->ops[b->n++];
	memset(o, 0, sizeof *o);
	o->kind = kind;
	return o;
}

/* The copies were made: 0, or the batch fails (what was copied is freed
 * with it). */
static int check(sh_batch *b, bool ok)
{
	if (!ok)
		b->failed = true;
	return ok ? 0 : SDK_EBUSY;
}

int sh_batch_save(sh_batch *b, const sh_incident *inc)
{
	op *o = append(b, OP_SAVE);
	if (!o)
		return SDK_EBUSY;
	o->u.inc = *inc;
	return 0;
}

int sh_batch_merge(sh_batch *b, int64_t from, int64_t into, int64_t now_ms)
{
	op *o = append(b, OP_MERGE);
	if (!o)
		return SDK_EBUSY;
	o->id = from;
	o->id2 = into;
	o->ts = now_ms;
	return 0;
}

int sh_batch_event(sh_batch *b, int64_t incident, int64_t ts_ms, const char *kernel,
		   const char *kind, const char *subject, json_t *detail)
{
	op *o = append(b, OP_EVENT);
	if (!o)
		return SDK_EBUSY;
	o->id = incident;
	o->ts = ts_ms;
	o->kernel = dup(kernel);
	o->s1 = dup(kind);
	o->s2 = dup(subject ? subject : "");
	o->json = detail ? json_deep_copy(detail) : NULL;
	return check(b, o->kernel && o->s1 && o->s2 && (!detail || o->json));
}

int sh_batch_hints(sh_batch *b, int64_t incident, json_t *hints)
{
	op *o = append(b, OP_HINTS);
	if (!o)
		return SDK_EBUSY;
	o->id = incident;
	o->json = json_deep_copy(hints);
	return check(b, o->json != NULL);
}

int sh_batch_action(sh_batch *b, int64_t incident, const char *kernel, int64_t at_ms, int step,
		    const char *playbook, const char *verdict, json_t *detail)
{
	op *o = append(b, OP_ACTION);
	if (!o)
		return SDK_EBUSY;
	o->id = incident;
	o->ts = at_ms;
	o->step = step;
	o->kernel = dup(kernel);
	o->s1 = dup(playbook);
	o->s2 = dup(verdict);
	o->json = detail ? json_deep_copy(detail) : NULL;
	return check(b, o->kernel && o->s1 && o->s2 && (!detail || o->json));
}

int sh_batch_learning(sh_batch *b, int64_t id, const char *playbook, json_t *learning)
{
	op *o = append(b, OP_LEARNING);
	if (!o)
		return SDK_EBUSY;
	o->id = id;
	o->s1 = dup(playbook);
	o->json = json_deep_copy(learning);
	return check(b, o->s1 && o->json);
}

int sh_batch_ladder(sh_batch *b, const sh_kstate *ks)
{
	op *o = append(b, OP_LADDER);
	if (!o)
		return SDK_EBUSY;
	o->u.ks = *ks;
	return 0;
}

int sh_batch_budget(sh_batch *b, const sh_budget *budget)
{
	op *o = append(b, OP_BUDGET);
	if (!o)
		return SDK_EBUSY;
	o->u.budget = *budget;
	return 0;
}

static int run_op(sh_batch *b, op *o, sqlite3 *db, sdk_err *err)
{
	switch (o->kind) {
	case OP_SAVE:
		return sh_store_save(db, &o->u.inc, err);
	case OP_MERGE:
		return sh_store_merge(db, o->id, o->id2, o->ts, err);
	case OP_EVENT:
		return sh_store_event(db, o->id, o->ts, o->kernel, o->s1, o->s2, o->json, err);
	case OP_HINTS:
		return sh_store_add_hints(db, o->id, o->json, err);
	case OP_ACTION:
		return sh_store_action(db, o->id, o->kernel, o->ts, o->step, o->s1, o->s2, o->json,
				       &b->action_id, err);
	case OP_LEARNING:
		return sh_store_action_learning(db, o->id, o->s1, o->json, err);
	case OP_LADDER:
		return sh_store_ladder_save(db, &o->u.ks, err);
	case OP_BUDGET:
		return sh_store_budget_save(db, &o->u.budget, err);
	}
	return sdk_fail(err, SDK_EINVAL, "no such write");
}

int sh_batch_run(sh_batch *b, sqlite3 *db, sdk_err *err)
{
	if (b->failed)
		return sdk_fail(err, SDK_EBUSY, "out of memory recording the writes");
	if (!b->n)
		return 0;
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return sdk_db_fail(db, err, "writing the incidents");
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < b->n; i++)
		rc = run_op(b, &b->ops[i], db, err);
	if (rc == 0 && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		rc = sdk_db_fail(db, err, "writing the incidents");
	if (rc < 0) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		b->action_id = 0;
	}
	return rc;
}
