/* `grace approvals`, `grace approve ID`, `grace deny ID`: change requests
 * in the governance kernel, through the API (docs/governance.md). */
#ifndef GRACE_CLI_APPROVALS_H
#define GRACE_CLI_APPROVALS_H

#include "serve/layer.h"

#include <stdbool.h>

/* Exit statuses: 0 done; 1 refused; 2 bad usage; 3 the API cannot be reached. */
#define CLI_APPROVALS_REFUSED 1
#define CLI_APPROVALS_USAGE 2
#define CLI_APPROVALS_UNREACHABLE 3

bool cli_approvals_is_command(const char *cmd);
/* argv[1] is "approvals", "approve" or "deny". */
int cli_approvals_main(int argc, char **argv);

#endif
