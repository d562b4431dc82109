#include "serve/healer/ports.h"

#include "sdk/db.h"
#include "sdk/log.h"

int hl_ports_init(sqlite3 *db, sdk_err *err)
{
	return sdk_db_exec(db,
			   "CREATE TABLE IF NOT EXISTS kernel_ports ("
			   " kernel TEXT PRIMARY KEY, port INTEGER NOT NULL)",
			   err);
}

void hl_ports_apply(sqlite3 *db, supervisor *sup)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "SELECT kernel, port FROM kernel_ports", -1, &st, NULL) !=
	    SQLITE_OK)
		return;
	while (sqlite3_step(st) == SQLITE_ROW) {
		sup_kernel *k = sup_find(sup, (const char *)sqlite3_column_text(st, 0));
		int port = sqlite3_column_int(st, 1);
		if (!k || port < GRACE_KERNEL_PORT_MIN || port > GRACE_KERNEL_PORT_MAX)
			continue;
		int offset = k->configured_port - k->cfg->port;
		sup_kernel_set_port(k, port + offset, -1);
		sdk_info("kernel %s: on port %d, where rebind_port moved it (reset-port undoes)",
			 k->cfg->name, port + offset);
	}
	sqlite3_finalize(st);
}

int hl_ports_store(sqlite3 *db, const char *kernel, int port)
{
	sqlite3_stmt *st;
	const char *sql = port ? "INSERT INTO kernel_ports (kernel, port) VALUES (?1, ?2)"
				 " ON CONFLICT(kernel) DO UPDATE SET port = ?2"
			       : "DELETE FROM kernel_ports WHERE kernel = ?1";
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(st, 1, kernel, -1, SQLITE_STATIC);
	if (port)
		sqlite3_bind_int(st, 2, port);
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
	sqlite3_finalize(st);
	return rc;
}
