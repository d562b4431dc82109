/* `grace serve`: the main process. */
#ifndef GRACE_SERVE_H
#define GRACE_SERVE_H

#include "serve/layer.h"

#include "sdk/config.h"

/* Runs until SIGTERM/SIGINT; returns the exit status. */
/* cfg outlives the call; a reload (SIGHUP, POST /reload) changes it in
 * place (serve/reload/reload.h). */
int grace_serve(grace_config *cfg);

#endif
