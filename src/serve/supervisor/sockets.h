/* The supervisor's side of a kernel's port: bound here and kept open for the
 * life of `grace serve`, so it stays bound while the kernel restarts. */
#ifndef GRACE_SUPERVISOR_SOCKETS_H
#define GRACE_SUPERVISOR_SOCKETS_H

#include "serve/layer.h"

#include <stddef.h>
#include <sys/types.h>

typedef struct sup_port_holder {
	pid_t pid; /* 0 when unknown */
	char cmdline[256];
} sup_port_holder;

/* Binds 127.0.0.1:port. Returns the fd (the caller owns it), or a negative
 * errno; on EADDRINUSE fills `holder` with whoever listens there. */
int sup_socket_bind(int port, sup_port_holder *holder);

#endif
