/* grace: the one binary. `grace serve` runs the platform; `grace kernel NAME`
 * runs one kernel alone; the rest are small helpers. */
#include "cli/backup.h"
#include "cli/cli.h"
#include "kernels/registry.h"
#include "sdk/config.h"
#include "sdk/log.h"
#include "sdk/clock.h"
#include "serve/serve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* serve and kernel: the configuration their options name. */
static int load_config(const struct cli_args *a, grace_config *cfg)
{
	grace_config_overrides ov = { a->config, a->data_dir, a->port_offset };
	sdk_err err;
	/* The registry's kernels are the configuration's built-in ones. */
	if (grace_config_read(cfg, kernel_registry_all(), kernel_registry_count(), &ov, &err) < 0) {
		fprintf(stderr, "grace: %s\n", err.msg);
		return -1;
	}
	return 0;
}

static void log_setup(const grace_config *cfg, const char *component)
{
	enum sdk_log_level lvl = SDK_LOG_INFO;
	sdk_log_level_parse(cfg->log_level, &lvl);
	sdk_log_init(component, lvl);
}

/* A server's connections are descriptors: take all the kernel allows this
 * process (the soft limit is often 1024 of a far larger hard one). The
 * HTTP layer caps connections below it and keeps a spare for EMFILE. */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* `grace kernel PORT`: the kernel configured on that port (after the
 * offset), as grace-kernel@PORT.service names it (the socket template
 * takes its port from the instance; see contrib/systemd). Else `arg`. */
static const char *kernel_by_port(const grace_config *cfg, const char *arg)
{
	if (strspn(arg, "0123456789") != strlen(arg))
		return arg;
	int port = atoi(arg);
	for (size_t i = 0; i < cfg->n_kernels; i++)
		if (cfg->kernels[i].port + cfg->port_offset == port)
			return cfg->kernels[i].name;
	return arg;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		cli_help_list(stderr);
		return CLI_USAGE;
	}
	const char *first = argv[1];
	if (!strcmp(first, "--help") || !strcmp(first, "-h")) {
		cli_help_list(stdout);
		return 0;
	}
	if (!strcmp(first, "--version"))
		argv[1] = "version";
	struct cli_args a;
	sdk_err err = { "" };
	int rc = cli_parse(argc, argv, sdk_wall_ms(), &a, &err);
	if (rc) {
		fprintf(stderr, "%s\n", err.msg);
		if (a.cmd && !strstr(err.msg, "usage:"))
			fprintf(stderr, "usage: grace %s%s%s [options]\n", a.cmd->name,
				*a.cmd->args ? " " : "", a.cmd->args);
		return rc;
	}
	if (a.help) {
		cli_help_command(stdout, a.cmd);
		return 0;
	}
	/* Checked against the table above; they parse their own options. */
	if (a.cmd->id == CMD_BACKUP)
		return cli_backup_main(argc, argv);
	if (a.cmd->id == CMD_RESTORE)
		return cli_restore_main(argc, argv);
	if (a.cmd->id != CMD_SERVE && a.cmd->id != CMD_KERNEL)
		return cli_dispatch(&a);

	/* static: grace_config is large, and the kernel keeps pointers into it. */
	static grace_config cfg;
	raise_fd_limit();
	if (load_config(&a, &cfg) < 0)
		return CLI_USAGE;
	if (a.cmd->id == CMD_SERVE) {
		sdk_err cerr;
		if (grace_config_check_authorizer(&cfg, &cerr) < 0) {
			fprintf(stderr, "grace: %s\n", cerr.msg);
			return CLI_USAGE;
		}
		log_setup(&cfg, "grace");
		return grace_serve(&cfg);
	}
	const char *name = kernel_by_port(&cfg, a.args[0]);
	const sdk_kernel_def *def = kernel_registry_find(name);
	if (!def) {
		fprintf(stderr, "grace: no kernel named '%s' (see grace kernels-list)\n", a.args[0]);
		return CLI_USAGE;
	}
	log_setup(&cfg, def->name);
	return sdk_kernel_run(def, &cfg);
}
