/* grace serve's log files: outside systemd (whose journal keeps every line
 * with its unit), the main process and every kernel it spawns write their
 * JSON log lines to standard error as always, and a copy goes to
 * DATA_DIR/log/grace.log, rotated by size (grace.log.1 the newest old one),
 * which `grace logs` reads. As s6-log does for a supervision tree: fd 2
 * becomes a pipe that every child inherits, and one thread copies what
 * comes out of it to the old standard error and to the file. A line is
 * never split between two files: rotation waits for a chunk that ends a
 * line. Writing the file never blocks a process longer than the pipe's
 * buffer takes to drain; a file that cannot be written is given up (logged
 * once) and standard error goes on. */
#ifndef GRACE_SERVE_LOGFILE_H
#define GRACE_SERVE_LOGFILE_H

#include "serve/layer.h"
#include "sdk/err.h"

#include <stddef.h>
#include <stdint.h>

typedef struct logfile logfile;

/* Under systemd (JOURNAL_STREAM names our standard error) or with
 * rotate_bytes 0: NULL, and nothing changes. Else fd 2 is the pipe from
 * here on. NULL too when it cannot start (err says why; standard error
 * is left as it was). */
logfile *lf_start(const char *data_dir, uint64_t rotate_bytes, unsigned keep, sdk_err *err);
/* Puts standard error back and waits for the copy of every line written
 * so far: call once the kernels have exited (they hold the pipe too). */
void lf_stop(logfile *lf);

/* Whether fd 2 is the journal's stream (systemd's JOURNAL_STREAM). */
int lf_under_journal(void);

#endif
