/* `grace serve`: the main process. */
#ifndef GRACE_SERVE_H
#define GRACE_SERVE_H

#include "serve/layer.h"

#include "sdk/config.h"

/* Runs until SIGTERM/SIGINT; returns the exit status. */
int grace_serve(const grace_config *cfg);

#endif
