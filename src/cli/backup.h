/* `grace backup FILE` (backup.c) and `grace restore FILE` (restore.c);
 * docs/backup.md. */
#ifndef GRACE_CLI_BACKUP_H
#define GRACE_CLI_BACKUP_H

#include "serve/layer.h"

#include "sdk/config.h"

/* Exit statuses: 0 done; 1 refused or failed (nothing written); 2 bad
 * usage; 3 the API cannot be reached. */
#define CLI_BACKUP_FAILED 1
#define CLI_BACKUP_USAGE 2
#define CLI_BACKUP_UNREACHABLE 3

/* argv[1] is "backup". */
int cli_backup_main(int argc, char **argv);
/* argv[1] is "restore". */
int cli_restore_main(int argc, char **argv);

#endif
