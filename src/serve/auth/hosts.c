#include "serve/auth/hosts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* `name`, with ":port" unless port is 0. */
static void add(auth_hosts *h, const char *name, int port)
{
	if (h->n >= AUTH_HOSTS_MAX)
		return;
	if (port)
		snprintf(h->names[h->n++], AUTH_HOST_LEN, "%s:%d", name, port);
	else
		snprintf(h->names[h->n++], AUTH_HOST_LEN, "%s", name);
}

void auth_hosts_init(const grace_config *cfg, auth_hosts *hosts, auth_hosts *origins)
{
	memset(hosts, 0, sizeof *hosts);
	memset(origins, 0, sizeof *origins);
	if (cfg->auth.allowed_hosts[0]) {
		char list[sizeof cfg->auth.allowed_hosts];
		snprintf(list, sizeof list, "%s", cfg->auth.allowed_hosts);
		char *save;
		for (char *h = strtok_r(list, ", ", &save); h; h = strtok_r(NULL, ", ", &save)) {
			add(hosts, h, 0);
			add(origins, h, 0);
		}
		return;
	}
	int port = cfg->api_port + cfg->port_offset;
	static const char *const names[] = { "127.0.0.1", "localhost", "[::1]" };
	for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
		add(hosts, names[i], 0);
		add(hosts, names[i], port);
		add(origins, names[i], port);
	}
	/* The TLS door's own address, and the loopback names on its port. A
	 * DNS name clients use for it goes in allowed_hosts. */
	const char *colon = strrchr(cfg->tls.address, ':');
	if (!colon)
		return;
	int tls_port = atoi(colon + 1);
	add(hosts, cfg->tls.address, 0);
	add(origins, cfg->tls.address, 0);
	for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
		add(hosts, names[i], tls_port);
		add(origins, names[i], tls_port);
	}
}

bool auth_hosts_has(const auth_hosts *h, const char *name)
{
	for (size_t i = 0; i < h->n; i++)
		if (!strcasecmp(h->names[i], name))
			return true;
	return false;
}
