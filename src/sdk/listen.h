/* Where a kernel's listening socket comes from: handed over by the
 * supervisor or systemd (LISTEN_FDS, fd 3), or bound by the kernel itself. */
#ifndef GRACE_SDK_LISTEN_H
#define GRACE_SDK_LISTEN_H

#define SDK_LISTEN_FDS_START 3
#define SDK_LISTEN_BACKLOG 1024

/* Number of sockets passed for this process (0 when none), and clears
 * LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES so children do not inherit them. */
int sdk_listen_fds(void);

/* Binds and listens on 127.0.0.1:port (loopback only, always). Returns the
 * fd (close-on-exec, non-blocking) or a negative errno. The caller owns it. */
int sdk_listen_tcp(int port);

#endif
