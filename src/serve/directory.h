/* Publishes where every kernel listens now (DATA_DIR/ports.json, see
 * sdk/ports.h) for the kernels' call path: at start and after every change
 * that moves a kernel or takes it down or up. */
#ifndef GRACE_SERVE_DIRECTORY_H
#define GRACE_SERVE_DIRECTORY_H

#include "serve/layer.h"

#include "serve/supervisor/supervisor.h"

typedef struct directory directory;

directory *dir_new(const grace_config *cfg, supervisor *sup);
void dir_free(directory *d);
/* Rewrites the file when what it says has changed. */
void dir_publish(directory *d);

#endif
