/* The command table: every `grace` command, its arguments, options, help
 * text and example, in one place. Parsing (parse.c), `--help`, the man page
 * and the shell completions (help.c) are all made from it, so they cannot
 * drift apart. Pure data and pure functions: no I/O. */
#ifndef GRACE_CLI_TABLE_H
#define GRACE_CLI_TABLE_H

#include "serve/layer.h"
#include "sdk/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The exit statuses, as systemctl's: each failure its own number, the
 * same for every command (documented by `grace help exit-codes` and the
 * man page). */
enum cli_exit {
	CLI_OK = 0,
	CLI_FAILED = 1,       /* degraded, not ready, a heal that did not heal */
	CLI_USAGE = 2,        /* bad arguments, unknown command, kernel or option */
	CLI_REFUSED = 3,      /* nothing listens on the API's port */
	CLI_TIMEOUT = 4,      /* connected, but no answer in time */
	CLI_UNAUTHORIZED = 5, /* not logged in, or the session expired */
	CLI_FORBIDDEN = 6,    /* logged in, but not allowed (an admin's command) */
	CLI_API_ERROR = 7,    /* the API answered with an error of its own */
	CLI_N_EXITS
};

struct cli_exit_doc {
	int code;
	const char *name;
	const char *meaning;
};
extern const struct cli_exit_doc cli_exit_docs[CLI_N_EXITS];

enum cli_opt_id {
	OPT_HELP,
	OPT_JSON,
	OPT_CONFIG,
	OPT_DATA_DIR,
	OPT_PORT_OFFSET,
	OPT_PORT,
	OPT_TIMEOUT,
	OPT_ACTION,
	OPT_FORCE,
	OPT_LIMIT,
	OPT_ADMIN,
	OPT_FOLLOW,
	OPT_SINCE,
	OPT_LEVEL,
	OPT_FILE,
	OPT_INTERVAL,
	OPT_ITERATIONS,
	OPT_WAIT,
	OPT_PASSPHRASE_FILE,
	OPT_KEY_FILE,
	OPT_NO_SECRETS,
	OPT_CONFIG_OUT,
	OPT_NO_POSTGRESQL,
	OPT_NO_JETSTREAM,
	OPT_COMMENT,
	OPT_DURATION,
	OPT_AUTHOR,
	OPT_ALL,
	OPT_JOURNAL,
	CLI_N_OPTS
};

struct cli_opt {
	const char *name;    /* long name, without "--" */
	char short_name;     /* 0 for none */
	const char *metavar; /* NULL: a flag without a value */
	const char *help;
};
extern const struct cli_opt cli_opts[CLI_N_OPTS];

#define OPTB(id) (UINT32_C(1) << (id))
/* Where the API is and who asks: every command that talks to it. */
#define OPTS_API                                                                           \
	(OPTB(OPT_JSON) | OPTB(OPT_CONFIG) | OPTB(OPT_PORT_OFFSET) | OPTB(OPT_PORT) |      \
	 OPTB(OPT_TIMEOUT))
#define OPTS_CONFIG (OPTB(OPT_CONFIG) | OPTB(OPT_DATA_DIR) | OPTB(OPT_PORT_OFFSET))

enum cli_cmd_id {
	CMD_SERVE,
	CMD_KERNEL,
	CMD_STATUS,
	CMD_KERNELS,
	CMD_HEALTH_CHECK,
	CMD_START,
	CMD_STOP,
	CMD_RESTART,
	CMD_RELOAD,
	CMD_LOGS,
	CMD_TOP,
	CMD_HEAL,
	CMD_DIAGNOSE,
	CMD_INCIDENTS,
	CMD_SILENCES,
	CMD_SILENCE,
	CMD_LOGIN,
	CMD_LOGOUT,
	CMD_USER,
	CMD_POLICY,
	CMD_APPROVALS,
	CMD_APPROVE,
	CMD_DENY,
	CMD_BACKUP,
	CMD_RESTORE,
	CMD_ARCHIVE,
	CMD_NODE,
	CMD_KERNELS_LIST,
	CMD_ROUTES,
	CMD_COMPLETION,
	CMD_VERSION,
	CMD_HELP,
	CMD_MAN,
	CLI_N_CMDS
};

/* What a positional argument is, for checks and completion. */
enum cli_arg_kind { ARG_NONE, ARG_KERNEL, ARG_USER, ARG_WORD };

#define CLI_HIDDEN 1u /* left out of the help list and the completions */

struct cli_cmd {
	enum cli_cmd_id id;
	const char *name;
	const char *args; /* synopsis of the positional arguments, "" for none */
	int min_args, max_args;
	enum cli_arg_kind arg_kind;
	const char *const *words; /* ARG_WORD: the words allowed first, NULL-ended */
	uint32_t opts;            /* OPTB() of every option it takes (--help always) */
	unsigned flags;
	const char *summary;     /* one line */
	const char *description; /* a paragraph; may hold "\n" */
	const char *example;     /* one command line, or lines separated by "\n" */
};
extern const struct cli_cmd cli_cmds[CLI_N_CMDS];

/* NULL when there is no such command. */
const struct cli_cmd *cli_cmd_find(const char *name);

#define CLI_SILENCE_MATCHERS_MAX 16
#define CLI_MAX_ARGS (1 + CLI_SILENCE_MATCHERS_MAX) /* silence add MATCHER... */
#define CLI_SILENCE_ID_MAX 64

/* A command line, parsed: pointers into argv. */
struct cli_args {
	const struct cli_cmd *cmd;
	const char *args[CLI_MAX_ARGS];
	int n_args;
	bool help, json, force, admin, follow, wait, all, journal;
	const char *config, *data_dir, *port_offset, *action, *level, *file, *since_text;
	int port;             /* 0: from the configuration */
	unsigned timeout_ms;  /* 0: the command's own */
	unsigned limit;       /* incidents; 20 when not given */
	unsigned interval_ms; /* top */
	unsigned iterations;  /* top; 0 = until interrupted */
	int64_t since_ms;     /* logs: wall-clock ms, or a negative age; 0 = none */
	const char *comment, *author; /* silence add; approve and deny (comment) */
	int64_t duration_ms;          /* silence add; 2 h when not given */
};

/* Parses argv[1...]: argv[1] is the command. 0, or CLI_USAGE with the
 * reason in err (one line, naming what to run). Options may come before,
 * between or after the arguments; "--" ends them. `now_ms` is the wall
 * clock, for --since. */
int cli_parse(int argc, char *const *argv, int64_t now_ms, struct cli_args *out, sdk_err *err);

/* "30s", "10m", "2h", "1d" (an age before now_ms), or an ISO-8601 time
 * "YYYY-MM-DD[ HH:MM[:SS]]" (UTC, 'T' or ' ' between): wall-clock ms. -1
 * when it is neither. */
int64_t cli_parse_since(const char *s, int64_t now_ms);
/* "30s", "90m", "2h", "1d" (a decimal number then s, m, h or d; at most a
 * year): milliseconds, or -1. */
int64_t cli_parse_duration(const char *s);
/* A silence matcher: name=value, name!=value, name=~regex, name!~regex
 * (the value may be in double quotes). */
struct cli_matcher {
	char name[256], value[1024];
	bool is_equal, is_regex;
};
/* 0 with *m filled, or -1 when s is not a matcher. */
int cli_matcher_parse(const char *s, struct cli_matcher *m);
/* True when s is a kernel's name as the configuration allows it. */
bool cli_kernel_name_ok(const char *s);

#endif
