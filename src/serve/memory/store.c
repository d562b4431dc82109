/* Opening and closing the memory store (store.h): the engine is chosen
 * here, once, from [store]; calls.c runs every call on its steps. */
#include "serve/memory/pg_int.h"

#include <stdlib.h>

mem_store *mem_store_open(const char *data_dir, const grace_store_cfg *store, unsigned conns,
			  sdk_err *e)
{
	if (conns < 1 || conns > MEM_CONNS_MAX) {
		sdk_fail(e, SDK_EINVAL, "1 to %d connections", MEM_CONNS_MAX);
		return NULL;
	}
	mem_store *s = calloc(1, sizeof *s);
	if (!s) {
		mem_oom(e);
		return NULL;
	}
	s->quota = (mem_quota){ .tables = MEM_QUOTA_TABLES_DEFAULT,
				.rows = MEM_QUOTA_ROWS_DEFAULT,
				.bytes = MEM_QUOTA_BYTES_DEFAULT };
	bool pg = store && store->engine == GRACE_STORE_POSTGRESQL;
	s->eng = pg ? &mem_pg_engine : &mem_lite_engine;
	if ((pg ? mem_pg_open(s, store, conns, e) : mem_lite_open(s, data_dir, conns, e)) < 0) {
		mem_store_close(s);
		return NULL;
	}
	return s;
}

void mem_store_set_quota(mem_store *s, const mem_quota *q) { s->quota = *q; }

void mem_store_close(mem_store *s)
{
	if (!s)
		return;
	if (s->eng == &mem_pg_engine)
		mem_pg_close(s->pg);
	else
		mem_lite_close(s);
	free(s);
}
