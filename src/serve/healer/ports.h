/* Ports a kernel was moved to by rebind_port: kept in SQLite so the kernel
 * stays there across its restarts and Grace's, until reset-port. */
#ifndef GRACE_HEALER_PORTS_H
#define GRACE_HEALER_PORTS_H

#include "serve/layer.h"

#include "serve/supervisor/supervisor.h"

#include "sdk/err.h"

#include <sqlite3.h>

int hl_ports_init(sqlite3 *db, sdk_err *err);
/* Moves every kernel with a stored port there (before they start). */
void hl_ports_apply(sqlite3 *db, supervisor *sup);
/* `port` is the configured-range port (offset not applied); 0 forgets it. */
int hl_ports_store(sqlite3 *db, const char *kernel, int port);

#endif
