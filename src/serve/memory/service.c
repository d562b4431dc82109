#include "serve/memory/service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A purge waiting for the user's calls to drain, or running. */
struct purge {
	mem_service *s;
	char user[MEM_USER_MAX + 1];
	bool queued; /* on the pool */
	bool ran;
	int status;
	sdk_err err;
	mem_purge_cb cb;
	void *arg;
	struct purge *next;
};

struct mem_service {
	mem_store *store;
	sdk_pool *pool;
	struct purge *purges; /* loop-only */
	bool closing;         /* no purge starts while the pool is being freed */
};

mem_call *mem_call_new(enum mem_op op, const char *user)
{
	mem_call *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->op = op;
	snprintf(c->user, sizeof c->user, "%s", user);
	return c;
}

void mem_call_free(mem_call *c)
{
	if (!c)
		return;
	free(c->body);
	free(c->where);
	free(c->order);
	free(c->cursor);
	free(c->q);
	json_decref(c->users);
	json_decref(c->reply);
	sdk_buf_free(&c->text);
	free(c);
}

static int body_json(mem_call *c, json_t **out)
{
	json_error_t je;
	*out = c->body_len ? json_loadb(c->body, c->body_len, JSON_REJECT_DUPLICATES, &je) : NULL;
	if (*out)
		return 0;
	if (c->body_len)
		return sdk_fail(&c->err, SDK_EINVAL, "invalid JSON at line %d column %d: %s",
				je.line, je.column, je.text);
	return sdk_fail(&c->err, SDK_EINVAL, "a JSON body is required");
}

/* On a worker thread: touches only the call and the store. */
static int call_run(mem_store *s, mem_call *c)
{
	sdk_err *e = &c->err;
	const char *owner = c->owner[0] ? c->owner : NULL;
	json_t *body = NULL;
	int rc;
	switch (c->op) {
	case MEM_OP_TABLE_CREATE:
		if ((rc = body_json(c, &body)) == 0)
			rc = mem_table_create(s, c->user, body, c->now_ms, &c->reply, e);
		break;
	case MEM_OP_TABLE_LIST: rc = mem_table_list(s, c->user, &c->reply, e); break;
	case MEM_OP_TABLE_GET: rc = mem_table_get(s, c->user, owner, c->table, &c->reply, e); break;
	case MEM_OP_TABLE_DELETE:
		rc = mem_table_delete(s, c->user, owner, c->table, &c->reply, e);
		break;
	case MEM_OP_ROWS_INSERT:
		if ((rc = body_json(c, &body)) == 0)
			rc = mem_rows_insert(s, c->user, owner, c->table, body, c->now_ms,
					     &c->reply, e);
		break;
	case MEM_OP_ROWS_QUERY: {
		mem_query q = { .where = c->where,
				.order = c->order,
				.cursor = c->cursor,
				.q = c->q,
				.limit = c->limit };
		rc = mem_rows_query(s, c->user, owner, c->table, &q, &c->text, e);
		break;
	}
	case MEM_OP_ROW_GET: rc = mem_row_get(s, c->user, owner, c->table, c->id, &c->text, e); break;
	case MEM_OP_ROW_PATCH:
		if ((rc = body_json(c, &body)) == 0)
			rc = mem_row_patch(s, c->user, owner, c->table, c->id, body, c->now_ms,
					   &c->text, e);
		break;
	case MEM_OP_ROW_DELETE:
		rc = mem_row_delete(s, c->user, owner, c->table, c->id, &c->reply, e);
		break;
	case MEM_OP_SHARES_ADD:
		rc = mem_shares_add(s, c->owner, c->table, c->users, c->now_ms, &c->reply, e);
		break;
	case MEM_OP_SHARES_LIST: rc = mem_shares_list(s, c->owner, c->table, &c->reply, e); break;
	case MEM_OP_SHARES_REMOVE:
		rc = mem_shares_remove(s, c->owner, c->table, c->users, &c->reply, e);
		break;
	default: rc = sdk_fail(e, SDK_EINVAL, "no such operation");
	}
	json_decref(body);
	return rc;
}

struct job {
	mem_service *s;
	mem_call *c;
};

static void job_work(void *arg)
{
	struct job *j = arg;
	j->c->ran = true;
	j->c->status = call_run(j->s->store, j->c);
}

static void purges_poke(mem_service *s, const char *user);

/* On the loop. */
static void job_done(void *arg)
{
	struct job *j = arg;
	mem_service *s = j->s;
	char user[MEM_USER_MAX + 1];
	snprintf(user, sizeof user, "%s", j->c->user);
	mem_call *c = j->c;
	free(j);
	c->done(c, c->arg); /* may free c */
	purges_poke(s, user);
}

static struct purge *purge_of(const mem_service *s, const char *user)
{
	for (struct purge *p = s->purges; p; p = p->next)
		if (!strcmp(p->user, user))
			return p;
	return NULL;
}

int mem_service_submit(mem_service *s, mem_call *c, sdk_err *e)
{
	if (purge_of(s, c->user))
		return sdk_fail(e, SDK_EBUSY, "the data of an earlier user named '%s' is being removed",
				c->user);
	struct job *j = malloc(sizeof *j);
	if (!j)
		return sdk_fail(e, SDK_EBUSY, "out of memory");
	*j = (struct job){ .s = s, .c = c };
	int rc = sdk_pool_submit_as(s->pool, c->user, job_work, job_done, j);
	if (rc == SDK_POOL_ECALLER)
		sdk_fail(e, rc, "you have %zu memory requests queued or running, the most one user may",
			 sdk_pool_caller_pending(s->pool, c->user));
	else if (rc < 0)
		sdk_fail(e, rc, "too many memory requests waiting");
	if (rc < 0)
		free(j);
	return rc;
}

size_t mem_service_pending(const mem_service *s, const char *user)
{
	return sdk_pool_caller_pending(s->pool, user);
}

static void purge_work(void *arg)
{
	struct purge *p = arg;
	p->ran = true;
	int rc = mem_user_purge(p->s->store, p->user, &p->err);
	p->status = rc < 0 ? rc : 0;
}

static void purge_unlink(mem_service *s, struct purge *p)
{
	for (struct purge **pp = &s->purges; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			return;
		}
}

static void purge_done(void *arg)
{
	struct purge *p = arg;
	purge_unlink(p->s, p);
	if (!p->ran)
		p->status = sdk_fail(&p->err, SDK_EBUSY, "the memory service is stopping");
	p->cb(p->status, &p->err, p->arg);
	free(p);
}

/* A purge starts once none of its user's calls is queued or running (new
 * ones are refused meanwhile): then nothing of theirs can be written after it. */
static void purge_try(mem_service *s, struct purge *p)
{
	if (p->queued || sdk_pool_caller_pending(s->pool, p->user))
		return;
	/* Under no caller: a purge is never refused for the user's own limit. */
	int rc = sdk_pool_submit(s->pool, purge_work, purge_done, p);
	if (rc == 0) {
		p->queued = true;
		return;
	}
	purge_unlink(s, p);
	p->cb(sdk_fail(&p->err, rc, "too many memory requests waiting; the purge will be retried"),
	      &p->err, p->arg);
	free(p);
}

static void purges_poke(mem_service *s, const char *user)
{
	struct purge *p = s->closing ? NULL : purge_of(s, user);
	if (p)
		purge_try(s, p);
}

void mem_service_purge(mem_service *s, const char *user, mem_purge_cb cb, void *arg)
{
	struct purge *p = calloc(1, sizeof *p);
	if (!p) {
		sdk_err e;
		cb(sdk_fail(&e, SDK_EBUSY, "out of memory"), &e, arg);
		return;
	}
	*p = (struct purge){ .s = s, .cb = cb, .arg = arg, .next = s->purges };
	snprintf(p->user, sizeof p->user, "%s", user);
	s->purges = p;
	purge_try(s, p);
}

mem_service *mem_service_open(const char *data_dir, struct event_base *base,
			      const mem_service_opts *o, sdk_err *e)
{
	mem_service *s = calloc(1, sizeof *s);
	if (!s) {
		sdk_fail(e, SDK_EIO, "out of memory");
		return NULL;
	}
	s->store = mem_store_open(data_dir, o->store, o->threads, e);
	if (!s->store) {
		free(s);
		return NULL;
	}
	mem_store_set_quota(s->store, &o->quota);
	s->pool = sdk_pool_new(base, o->threads, MEM_QUEUE_MAX);
	if (!s->pool) {
		sdk_fail(e, SDK_EIO, "cannot start the worker pool");
		mem_store_close(s->store);
		free(s);
		return NULL;
	}
	sdk_pool_set_caller_max(s->pool, o->user_jobs_max ? o->user_jobs_max
							   : MEM_USER_JOBS_DEFAULT);
	return s;
}

void mem_service_close(mem_service *s)
{
	if (!s)
		return;
	s->closing = true;
	sdk_pool_free(s->pool); /* finishes the calls and purges still queued */
	while (s->purges) {     /* purges still waiting for their user's calls */
		struct purge *p = s->purges;
		s->purges = p->next;
		p->cb(sdk_fail(&p->err, SDK_EBUSY, "the memory service is stopping"), &p->err, p->arg);
		free(p);
	}
	mem_store_close(s->store);
	free(s);
}
