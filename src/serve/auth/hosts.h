/* Which names the API answers to. Two lists from one setting: the hosts a
 * request's Host may name (against DNS rebinding), and the origins a
 * browser page of the API itself has (against cross-site requests). */
#ifndef GRACE_AUTH_HOSTS_H
#define GRACE_AUTH_HOSTS_H

#include "serve/layer.h"

#include "sdk/config.h"

#include <stdbool.h>
#include <stddef.h>

#define AUTH_HOSTS_MAX 16
#define AUTH_HOST_LEN 128

typedef struct auth_hosts {
	char names[AUTH_HOSTS_MAX][AUTH_HOST_LEN]; /* "host" or "host:port" */
	size_t n;
} auth_hosts;

/* From `allowed_hosts` when set (each entry serves as a host and as an
 * origin's host[:port], as written), else the listen address, localhost
 * and [::1]: as hosts with and without the API's port, as origins only
 * with it (http://localhost is port 80: another server). */
void auth_hosts_init(const grace_config *cfg, auth_hosts *hosts, auth_hosts *origins);
/* Case-insensitive exact match. */
bool auth_hosts_has(const auth_hosts *h, const char *name);

#endif
