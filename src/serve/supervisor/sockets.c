#include "serve/supervisor/sockets.h"

#include "sdk/listen.h"
#include "sdk/proc.h"

#include <errno.h>
#include <string.h>

int sup_socket_bind(int port, sup_port_holder *holder)
{
	int fd = sdk_listen_tcp(port);
	if (fd == -EADDRINUSE && holder) {
		memset(holder, 0, sizeof *holder);
		if (proc_port_holder(port, &holder->pid) == 0 && holder->pid)
			proc_cmdline(holder->pid, holder->cmdline, sizeof holder->cmdline);
	}
	return fd;
}
