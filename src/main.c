/* grace: the one binary. `grace serve` runs the platform; `grace kernel NAME`
 * runs one kernel alone; the rest are small helpers. */
#include "cli/backup.h"
#include "cli/cli.h"
#include "kernels/registry.h"
#include "sdk/config.h"
#include "sdk/log.h"
#include "serve/serve.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define EXIT_USAGE 2

static void usage(FILE *out)
{
	fprintf(out,
		"usage: grace COMMAND [options]\n"
		"\n"
		"commands:\n"
		"  serve             run the API on :8000 and supervise every kernel\n"
		"  kernel NAME       run one kernel alone (binds its own port unless given a\n"
		"                    socket by LISTEN_FDS, as systemd socket activation does)\n"
		"  kernels-list [--json]\n"
		"                    the kernels this binary can run: name, port, tier,\n"
		"                    state (complete, partial, placeholder), summary\n"
		"  routes [--json]   every route the API on :8000 answers, the kernels' behind\n"
		"                    the gateway's prefixes included (GET /openapi.json\n"
		"                    describes the same)\n"
		"\n"
		"  status            every kernel's state (exit 1 unless all are ready)\n"
		"  kernels           kernels, ports and tiers\n"
		"  health-check      probe every kernel's /health now\n"
		"  heal NAME [--action PLAYBOOK] [--force]\n"
		"                    diagnose and heal a kernel (exit 1 unless healed)\n"
		"  diagnose NAME     findings only\n"
		"  restart NAME      graceful restart\n"
		"  incidents [--limit N]  the healer's latest incidents\n"
		"  login NAME        ask for the password, keep a session token for these\n"
		"  logout\n"
		"                    (these take --json, and --port N or the config's port;\n"
		"                    the token comes from $GRACE_TOKEN or `grace login`)\n"
		"  backup FILE [--passphrase-file F | --key-file F | --no-secrets]\n"
		"                    a consistent archive of everything Grace holds, taken\n"
		"                    while it serves (admin; docs/backup.md)\n"
		"  restore FILE --data-dir DIR [--force] [--passphrase-file F | --key-file F]\n"
		"                    check a backup whole, restore it into an empty data\n"
		"                    directory, and prove it: integrity checks, each kernel\n"
		"                    started on it, the log against the manifest's tree head\n"
		"  user add NAME [--admin]  create a user in the data directory's database\n"
		"                    (password from the terminal, or stdin)\n"
		"  version           print the version\n"
		"  help              this text\n"
		"\n"
		"options:\n"
		"  --config FILE       INI file (default: $GRACE_CONFIG, else etc/grace.ini)\n"
		"  --data-dir DIR      where kernels keep their state (default ./var)\n"
		"  --port-offset N     add N to every port (API and kernels)\n");
}

static int load_config(int argc, char **argv, grace_config *cfg)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "data-dir", required_argument, NULL, 'd' },
		{ "port-offset", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ 0, 0, 0, 0 },
	};
	grace_config_overrides ov = { 0 };
	int c;
	optind = 2;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': ov.config_path = optarg; break;
		case 'd': ov.data_dir = optarg; break;
		case 'p': ov.port_offset = optarg; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	char err[512];
	/* The registry's kernels are the configuration's built-in ones. */
	if (grace_config_load(cfg, kernel_registry_all(), kernel_registry_count(), &ov, err,
			      sizeof err) < 0) {
		fprintf(stderr, "grace: %s\n", err);
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

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
		printf("grace %s\n", GRACE_VERSION);
		return 0;
	}
	if (!strcmp(cmd, "kernels-list"))
		return cli_kernels_list(argc, argv);

	if (!strcmp(cmd, "routes"))
		return cli_routes_main(argc, argv);
	if (cli_is_command(cmd))
		return cli_main(argc, argv);
	if (!strcmp(cmd, "user"))
		return cli_user_main(argc, argv);
	if (!strcmp(cmd, "backup"))
		return cli_backup_main(argc, argv);
	if (!strcmp(cmd, "restore"))
		return cli_restore_main(argc, argv);

	/* static: grace_config is large, and the kernel keeps pointers into it. */
	static grace_config cfg;
	if (!strcmp(cmd, "serve") || !strcmp(cmd, "kernel"))
		raise_fd_limit();
	if (!strcmp(cmd, "serve")) {
		if (load_config(argc, argv, &cfg) < 0)
			return EXIT_USAGE;
		if (optind != argc) {
			fprintf(stderr, "grace: serve takes no arguments\n");
			return EXIT_USAGE;
		}
		log_setup(&cfg, "grace");
		return grace_serve(&cfg);
	}
	if (!strcmp(cmd, "kernel")) {
		/* The name may come before or after the options. */
		const char *name = NULL;
		if (argc >= 3 && argv[2][0] != '-') {
			name = argv[2];
			memmove(&argv[2], &argv[3], (size_t)(argc - 3) * sizeof *argv);
			argv[--argc] = NULL;
		}
		if (load_config(argc, argv, &cfg) < 0)
			return EXIT_USAGE;
		if (!name && optind < argc)
			name = argv[optind++];
		if (!name || optind != argc) {
			fprintf(stderr, "grace: usage: grace kernel NAME [options]\n");
			return EXIT_USAGE;
		}
		const sdk_kernel_def *def = kernel_registry_find(name);
		if (!def) {
			fprintf(stderr, "grace: no kernel named '%s' (see grace kernels-list)\n", name);
			return EXIT_USAGE;
		}
		log_setup(&cfg, def->name);
		return sdk_kernel_run(def, &cfg);
	}
	fprintf(stderr, "grace: unknown command '%s'\n", cmd);
	usage(stderr);
	return EXIT_USAGE;
}
