/* The operator's commands. main.c parses the command line against the
 * command table (table.h), answers --help, runs `serve` and `kernel`
 * itself and hands every other command to cli_dispatch. Exit statuses are
 * table.h's enum cli_exit. */
#ifndef GRACE_CLI_CLI_H
#define GRACE_CLI_CLI_H

#include "serve/layer.h"

#include "cli/table.h"
#include "sdk/config.h"

#include <stdio.h>

/* Runs a parsed command other than serve and kernel; its exit status. */
int cli_dispatch(const struct cli_args *a);
/* The configuration the options name; 0 or CLI_USAGE (printed). */
int cli_config_load(const struct cli_args *a, grace_config *cfg);

/* help.c: made from the command table. */
void cli_help_list(FILE *out);
void cli_help_command(FILE *out, const struct cli_cmd *c);
void cli_help_exit_codes(FILE *out);
int cli_man(void);
int cli_completion(const char *shell);

/* The commands that need no running Grace. */
int cli_kernels_list(const struct cli_args *a);
int cli_routes(const struct cli_args *a);
int cli_logs(const struct cli_args *a);
int cli_top(const struct cli_args *a);
/* `grace policy reset|default|routes` (policy.c). */
int cli_policy(const struct cli_args *a);
/* `grace archive verify FILE` (archive.c). */
int cli_archive(const struct cli_args *a);
/* `grace node enroll NAME DIR` (node.c). */
int cli_node(const struct cli_args *a);
/* `grace approvals`, `grace approve ID`, `grace deny ID` (approvals.c). */
int cli_approvals(const struct cli_args *a);

#endif
