#include "serve/chat/recall.h"

#include "sdk/pool.h"
#include "serve/chat/context.h"
#include "serve/memory/store.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECALL_QUEUE_MAX 64

struct chat_recall {
	mem_store *store;
	sdk_pool *pool;
};

/* Filled on the loop, run on the worker, answered on the loop. The worker
 * touches only the inputs, `sources` and `problem`. */
struct chat_recall_job {
	chat_recall *r;
	char user[MEM_NAME_MAX + 1];
	char query[MEM_Q_BYTES_MAX + 1];
	size_t max, first_n;
	json_t *sources;
	char problem[192];
	bool cancelled; /* loop only */
	chat_recall_done_fn done;
	void *arg;
};

/* One table's best rows, best first (the store orders by rank with q). */
static json_t *table_rows(chat_recall_job *j, json_t *table)
{
	const char *name = json_string_value(json_object_get(table, "name"));
	const char *owner = json_string_value(json_object_get(table, "owner"));
	if (!name || !owner)
		return NULL;
	mem_query q = { .q = j->query, .limit = (unsigned)j->max };
	sdk_buf out = { 0 };
	sdk_err e;
	json_t *rows = NULL;
	if (mem_rows_query(j->r->store, j->user, owner, name, &q, &out, &e) == 0 && !out.oom &&
	    out.p) {
		json_t *page = json_loadb(out.p, out.len, 0, NULL);
		rows = json_incref(json_object_get(page, "rows"));
		json_decref(page);
	} else if (!j->problem[0]) {
		snprintf(j->problem, sizeof j->problem, "table %s: %.120s", name, e.msg);
	}
	sdk_buf_free(&out);
	return rows;
}

static json_t *source_of(const char *table, const char *owner, const char *user, json_t *row,
			 size_t n)
{
	char *text = json_dumps(json_object_get(row, "data"), JSON_COMPACT);
	json_t *excerpt = text ? chat_excerpt(text, RECALL_EXCERPT_MAX) : NULL;
	free(text);
	json_t *s = json_pack("{s:I, s:s, s:s, s:s, s:O, s:o}", "n", (json_int_t)n, "kind", "memory",
			      "table", table, "owner", owner, "row_id", json_object_get(row, "id"),
			      "excerpt", excerpt ? excerpt : json_string(""));
	if (s && !strcmp(owner, user))
		json_object_del(s, "owner"); /* shown only for a table shared with the user */
	return s;
}

static void recall_work(void *arg)
{
	chat_recall_job *j = arg;
	sdk_err e;
	json_t *list = NULL;
	if (mem_table_list(j->r->store, j->user, &list, &e) < 0) {
		snprintf(j->problem, sizeof j->problem, "%.180s", e.msg);
		return;
	}
	/* Each searchable table's best rows, then taken in turns: the best of
	 * every table before the second best of any. */
	json_t *per_table = json_array(), *names = json_array();
	size_t i;
	json_t *t;
	json_array_foreach(json_object_get(list, "tables"), i, t) {
		if (json_array_size(per_table) >= RECALL_TABLES_MAX)
			break;
		if (!json_is_true(json_object_get(t, "full_text")))
			continue;
		json_t *rows = table_rows(j, t);
		if (json_array_size(rows)) {
			json_array_append_new(per_table, rows);
			json_array_append(names, t);
		} else {
			json_decref(rows);
		}
	}
	for (size_t depth = 0; depth < j->max && json_array_size(j->sources) < j->max; depth++) {
		bool any = false;
		json_array_foreach(per_table, i, t) {
			json_t *row = json_array_get(t, depth);
			if (!row || json_array_size(j->sources) >= j->max)
				continue;
			any = true;
			json_t *tab = json_array_get(names, i);
			json_t *s = source_of(json_string_value(json_object_get(tab, "name")),
					      json_string_value(json_object_get(tab, "owner")), j->user,
					      row, j->first_n + json_array_size(j->sources));
			if (s)
				json_array_append_new(j->sources, s);
		}
		if (!any)
			break;
	}
	json_decref(per_table);
	json_decref(names);
	json_decref(list);
}

static void recall_done(void *arg)
{
	chat_recall_job *j = arg;
	if (!j->cancelled)
		j->done(j->sources, j->problem[0] ? j->problem : NULL, j->arg);
	else
		json_decref(j->sources);
	free(j);
}

chat_recall_job *chat_recall_start(chat_recall *r, const char *user, const char *question,
				   size_t max, size_t first_n, chat_recall_done_fn done, void *arg)
{
	chat_recall_job *j = calloc(1, sizeof *j);
	if (!j)
		return NULL;
	j->r = r;
	j->max = max;
	j->first_n = first_n;
	j->done = done;
	j->arg = arg;
	snprintf(j->user, sizeof j->user, "%s", user);
	j->sources = json_array();
	if (!j->sources || !chat_search_query(question, j->query, sizeof j->query) ||
	    sdk_pool_submit(r->pool, recall_work, recall_done, j) < 0) {
		json_decref(j->sources);
		free(j);
		return NULL;
	}
	return j;
}

void chat_recall_cancel(chat_recall_job *j)
{
	if (j)
		j->cancelled = true;
}

chat_recall *chat_recall_open(struct event_base *base, const char *data_dir,
			      const grace_store_cfg *store, sdk_err *err)
{
	chat_recall *r = calloc(1, sizeof *r);
	if (!r) {
		sdk_fail(err, SDK_EIO, "out of memory");
		return NULL;
	}
	/* A store of its own: the memory API's is private to it, and SQLite
	 * (WAL) lets both read the same file; PostgreSQL any number. */
	sdk_err e;
	if (!(r->store = mem_store_open(data_dir, store, 1, &e)))
		sdk_fail(err, SDK_EIO, "%s", e.msg);
	r->pool = r->store ? sdk_pool_new(base, 1, RECALL_QUEUE_MAX) : NULL;
	if (!r->pool) {
		if (r->store)
			sdk_fail(err, SDK_EIO, "cannot start the recall worker");
		chat_recall_close(r);
		return NULL;
	}
	return r;
}

void chat_recall_close(chat_recall *r)
{
	if (!r)
		return;
	sdk_pool_free(r->pool); /* runs the done of every job: cancelled ones just go */
	if (r->store)
		mem_store_close(r->store);
	free(r);
}
