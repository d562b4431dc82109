#include "serve/store/store.h"

#include "sdk/log.h"
#include "serve/store/pg.h"
#include "serve/store/pg_schema.h"

#include <stdlib.h>

grace_store *store_open(const grace_config *cfg, sqlite3 *db, sdk_err *err)
{
	grace_store *s = calloc(1, sizeof *s);
	if (!s) {
		sdk_fail(err, SDK_EIO, "out of memory");
		return NULL;
	}
	s->engine = cfg->store.engine;
	s->db = db;
	if (s->engine != GRACE_STORE_POSTGRESQL)
		return s;
	if (!(s->pg = store_pg_open(&cfg->store, err))) {
		free(s);
		return NULL;
	}
	PGconn *c = store_pg_acquire(s->pg, err);
	int from = 0;
	int rc = c ? store_pg_migrate(c, &from, err) : SDK_EIO;
	store_pg_release(s->pg, c);
	if (rc < 0) {
		store_close(s);
		return NULL;
	}
	sdk_info("store: users, sessions, API tokens and memory tables in PostgreSQL"
		 " (schema version %d%s)",
		 STORE_PG_VERSION, from == STORE_PG_VERSION ? "" : ", migrated now");
	return s;
}

void store_close(grace_store *s)
{
	if (!s)
		return;
	store_pg_close(s->pg);
	free(s);
}
