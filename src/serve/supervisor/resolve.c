#include "serve/supervisor/supervisor.h"

#include "sdk/err.h"

int sup_resolve(const char *name, void *arg)
{
	sup_kernel *k = sup_find(arg, name);
	if (!k)
		return SDK_ENOTFOUND;
	switch (k->state) {
	case SUP_FAILED:
	case SUP_STOPPED:
	case SUP_PORT_UNAVAILABLE:
	case SUP_UNREACHABLE: /* its node does not answer: the relay could not carry a call */
		return SDK_EBUSY;
	default:
		/* Starting or restarting: the held socket queues the connection. */
		return k->port;
	}
}
