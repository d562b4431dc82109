/* The standby protocol between the supervisor and a kernel process started
 * ahead of need. The supervisor starts `grace kernel NAME` with
 * GRACE_STANDBY=1 and fd 3 one end of an AF_UNIX socketpair. The process
 * execs, links and reads its configuration, then waits on fd 3. Nothing of
 * the kernel's own runs before the word comes: not its store, not its init,
 * no accept. The word is one of:
 *
 *   - one byte with the kernel's listening socket (SCM_RIGHTS): the kernel
 *     that held the port is dead; the socket becomes fd 3 and the kernel
 *     starts as if it had been spawned with it (LISTEN_FDS=1);
 *   - end of file: not needed any more; the process exits 0.
 *
 * So the time from a crash to a kernel answering again leaves out fork,
 * exec, dynamic linking and configuration (docs/supervisor.md). */
#ifndef GRACE_SDK_STANDBY_H
#define GRACE_SDK_STANDBY_H

#define SDK_STANDBY_ENV "GRACE_STANDBY"
#define SDK_STANDBY_FD 3

/* Kernel side. Returns 1 to run the kernel (this process is no standby, or
 * it was handed the socket, now at fd 3), 0 to exit quietly (end of file),
 * or a negative errno. Clears GRACE_STANDBY from the environment. */
int sdk_standby_wait(void);

/* Supervisor side: hands `listen_fd` (still the caller's) over `channel`.
 * 0, or a negative errno (EPIPE/ECONNREFUSED: the standby is gone). */
int sdk_standby_hand_over(int channel, int listen_fd);

#endif
