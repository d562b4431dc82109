/* The standby protocol between the supervisor and a kernel process started
 * ahead of need. The supervisor starts `grace kernel NAME` with
 * GRACE_STANDBY=1 and fd 3 one end of an AF_UNIX socketpair. The process
 * execs, links and reads its configuration, opens the kernel's SQLite file,
 * then waits on fd 3. Nothing else of the kernel's own runs before the word
 * comes: not its init, no read of its state, no accept. The word is one of:
 *
 *   - one byte with the kernel's listening socket (SCM_RIGHTS): the kernel
 *     that held the port is dead; the socket becomes fd 3 and the kernel
 *     starts as if it had been spawned with it (LISTEN_FDS=1);
 *   - end of file: not needed any more; the process exits 0.
 *
 * So the time from a crash to a kernel answering again leaves out fork,
 * exec, dynamic linking and configuration, and SQLite's recovery of the
 * WAL index (docs/supervisor.md).
 *
 * The open connection is safe: SQLite's WAL mode is made for connections
 * in several processes, and this one is idle (no transaction, so no
 * snapshot and no lock but the shared one that keeps the WAL index alive).
 * When the kernel dies, even while writing, SQLite's own rules settle it: a
 * reader ignores frames never committed and recovers the index if it was
 * left torn. The state the kernel's init loads is read after the word, so
 * it includes the dead process's last commits. */
#ifndef GRACE_SDK_STANDBY_H
#define GRACE_SDK_STANDBY_H

#include <stdbool.h>

#define SDK_STANDBY_ENV "GRACE_STANDBY"
#define SDK_STANDBY_FD 3

/* Kernel side. True when this process was started as a standby. */
bool sdk_standby_requested(void);

/* Kernel side. Returns 1 to run the kernel (this process is no standby, or
 * it was handed the socket, now at fd 3), 0 to exit quietly (end of file),
 * or a negative errno. Clears GRACE_STANDBY from the environment. */
int sdk_standby_wait(void);

/* Supervisor side: hands `listen_fd` (still the caller's) over `channel`.
 * 0, or a negative errno (EPIPE/ECONNREFUSED: the standby is gone). */
int sdk_standby_hand_over(int channel, int listen_fd);

#endif
