/* The CLI's secrets: a password read from the terminal without echo (or
 * from standard input when it is not a terminal), and the session token
 * that `grace login` keeps for the other commands. */
#ifndef GRACE_CLI_SECRET_H
#define GRACE_CLI_SECRET_H

#include "serve/layer.h"

#include <stddef.h>

/* 0, or -1 when nothing could be read. The newline is removed. */
int cli_password_read(const char *prompt, char *buf, size_t len);
/* $GRACE_TOKEN, else the file `grace login` wrote; "" when neither. */
void cli_token_read(char *buf, size_t len);
/* Writes the token file (0600); 0 or -1. `path_out` gets its path. */
int cli_token_write(const char *token, char *path_out, size_t len);
int cli_token_forget(void);

#endif
