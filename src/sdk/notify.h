/* The systemd notification protocol (sd_notify(3)), spoken without libsystemd:
 * one datagram to the AF_UNIX socket named by $NOTIFY_SOCKET. */
#ifndef GRACE_SDK_NOTIFY_H
#define GRACE_SDK_NOTIFY_H

#include <stdint.h>

/* Sends `state` ("READY=1", "WATCHDOG=1", "STOPPING=1", "STATUS=..."). Returns
 * 0 when sent or when no NOTIFY_SOCKET is set, a negative errno otherwise. */
int sdk_notify(const char *state);

/* The watchdog interval in microseconds asked for by $WATCHDOG_USEC (and
 * $WATCHDOG_PID, when set, naming this process), or 0 when none is. */
uint64_t sdk_watchdog_usec(void);

/* Parses a NOTIFY_SOCKET value into a sockaddr_un; "@name" is abstract.
 * Returns the address length, or -1 when the value is unusable. */
struct sockaddr_un;
int sdk_notify_addr(const char *path, struct sockaddr_un *sun);

#endif
