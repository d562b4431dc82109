/* Where every kernel listens now: DATA_DIR/ports.json, written by the
 * process that supervises them (atomically, at every change: a restart on
 * another port, a rebind_port, a reset_port) and read by the kernel call
 * path in every other process. So a kernel that calls another follows it
 * wherever it moves, without a restart and without remembering a port.
 * Without the file (a kernel run alone) the configuration's ports stand. */
#ifndef GRACE_SDK_PORTS_H
#define GRACE_SDK_PORTS_H

#include "sdk/config.h"

#include <stdbool.h>

#define SDK_PORTS_FILE "ports.json"

typedef struct sdk_ports sdk_ports;

typedef struct sdk_ports_entry {
	const char *name;
	int port;     /* the port it listens on now (offset applied) */
	bool running; /* false: stopped, failed, or its port is not ours */
} sdk_ports_entry;

/* Writes the whole table (tmp file, fsync, rename). 0 or a negative errno. */
int sdk_ports_write(const char *data_dir, const sdk_ports_entry *e, size_t n);

/* A reader that checks the file (one stat) at each resolve and reads it
 * again when it was rewritten. `cfg` is borrowed and must outlive it. */
sdk_ports *sdk_ports_open(const grace_config *cfg);
void sdk_ports_close(sdk_ports *p);
/* An sdk_resolve_fn (arg: the sdk_ports): the port, or a negative
 * sdk_status (SDK_ENOTFOUND, SDK_EBUSY when it is not running). */
int sdk_ports_resolve(const char *name, void *arg);

#endif
