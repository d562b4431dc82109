#include "serve/schema.h"

#include "kernels/registry.h"
#include "sdk/db.h"
#include "sdk/log.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

/* Each file's tables as they are today are its version 1 (version 0: the
 * same tables, written before versions existed). A schema change is a new
 * step in the file's table and a new fixture directory made by
 * tests/fixtures/make_datadir.py (docs/upgrades.md). grace.db holds the
 * tables of auth, guardian, healer, outbox, govern and the API's user
 * data; each module still runs its CREATE ... IF NOT EXISTS at start. */
static const sdk_mig_def grace_db = { .store = "grace.db", .version = 1 };
static const sdk_mig_def chat_db = { .store = "chat.db", .version = 1 };
/* memory.db numbered its versions before the others: 1 is its first. */
static const sdk_mig_def memory_db = { .store = "memory.db", .version = 1 };

static const schema_db main_dbs[] = {
	{ "grace", &grace_db },
	{ "chat", &chat_db },
	{ "memory", &memory_db },
};

const schema_db *schema_main_dbs(size_t *n)
{
	*n = sizeof main_dbs / sizeof *main_dbs;
	return main_dbs;
}

int schema_version_of(const char *name)
{
	for (size_t i = 0; i < sizeof main_dbs / sizeof *main_dbs; i++)
		if (!strcmp(main_dbs[i].name, name))
			return main_dbs[i].mig->version;
	const sdk_kernel_def *def = kernel_registry_find(name);
	return def ? def->schema_version : 0;
}

int schema_refuse_newer_main(const char *data_dir, sdk_err *err)
{
	for (size_t i = 0; i < sizeof main_dbs / sizeof *main_dbs; i++) {
		char path[PATH_MAX];
		if (snprintf(path, sizeof path, "%s/%s.db", data_dir, main_dbs[i].name) >=
		    (int)sizeof path)
			return sdk_fail(err, SDK_EINVAL, "database path too long");
		int rc = sdk_mig_refuse_if_newer(path, main_dbs[i].mig->version, err);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int schema_migrate_main(const char *data_dir, sdk_err *err)
{
	int rc = schema_refuse_newer_main(data_dir, err);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < sizeof main_dbs / sizeof *main_dbs; i++) {
		sqlite3 *db = NULL;
		sdk_err open_err = { "" };
		/* A file that cannot be opened is left to its module's own open,
		 * which reports it in its words. */
		if (sdk_db_open_checked(data_dir, main_dbs[i].name, NULL, &db, &open_err) < 0)
			continue;
		sdk_mig_report r = { 0 };
		rc = sdk_mig_run(db, main_dbs[i].mig, &r, err);
		sqlite3_close(db);
		if (rc < 0)
			return rc;
		if (r.steps)
			sdk_info("%s/%s.db: schema migrated from version %d to %d", data_dir,
				 main_dbs[i].name, r.from, r.to);
	}
	return 0;
}
