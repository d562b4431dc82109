/* The operator's commands: `grace status`, `kernels`, `health-check`,
 * `heal`, `diagnose`, `restart`, `incidents`. Each asks the running API
 * (the same config tells where it listens) and prints a table, or the
 * API's JSON with --json. */
#ifndef GRACE_CLI_CLI_H
#define GRACE_CLI_CLI_H

#include "serve/layer.h"

#include "sdk/config.h"

#include <stdbool.h>

/* True when `cmd` is one of the CLI's commands. */
bool cli_is_command(const char *cmd);
/* argv[1] is the command. Returns the exit status: 0 when all is well, 1
 * when a kernel is not healthy or a heal did not heal, 2 on bad usage, 3
 * when the API cannot be reached. */
int cli_main(int argc, char **argv);
/* `grace routes [--json]`: every route :8000 answers (routes.c); argv[1]
 * is "routes". Needs no running Grace. */
int cli_routes_main(int argc, char **argv);
/* `grace user add NAME [--admin]`: argv[1] is "user". */
int cli_user_main(int argc, char **argv);
/* `grace policy reset|default|routes` (policy.c): argv[1] is "policy". */
int cli_policy_main(int argc, char **argv);
/* `grace kernels-list [--json]`: the kernels this binary can run, from
 * their definitions (no configuration, no running server). */
int cli_kernels_list(int argc, char **argv);

#endif
