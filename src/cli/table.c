/* The command table's data (table.h says why there is one table). */
#include "cli/table.h"

#include <string.h>

const struct cli_exit_doc cli_exit_docs[CLI_N_EXITS] = {
	{ CLI_OK, "ok", "success; for status and health-check: every kernel is ready" },
	{ CLI_FAILED, "failed",
	  "Grace answered, but something is not well: degraded (a kernel not ready or "
	  "unhealthy), a heal that did not heal, an action that failed" },
	{ CLI_USAGE, "usage",
	  "bad arguments: an unknown command, option, kernel or playbook; see "
	  "`grace COMMAND --help`" },
	{ CLI_REFUSED, "unreachable",
	  "the connection to the API was refused or lost: Grace is not running there "
	  "(start it with `systemctl start grace` or `grace serve`)" },
	{ CLI_TIMEOUT, "timeout", "connected, but the API did not answer within --timeout" },
	{ CLI_UNAUTHORIZED, "not logged in",
	  "no session token, or it has expired: run `grace login NAME` (or set GRACE_TOKEN)" },
	{ CLI_FORBIDDEN, "forbidden", "logged in, but the command needs an admin" },
	{ CLI_API_ERROR, "api error",
	  "the API answered with an error of its own (its code and message are printed)" },
};

const struct cli_opt cli_opts[CLI_N_OPTS] = {
	[OPT_HELP] = { "help", 'h', NULL, "print this command's help and exit" },
	[OPT_JSON] = { "json", 0, NULL, "print JSON (the API's answer) instead of a table" },
	[OPT_CONFIG] = { "config", 0, "FILE",
			 "INI file (default: $GRACE_CONFIG, else etc/grace.ini)" },
	[OPT_DATA_DIR] = { "data-dir", 0, "DIR", "the data directory (default: the configuration's)" },
	[OPT_PORT_OFFSET] = { "port-offset", 0, "N", "add N to every port, the API's and the kernels'" },
	[OPT_PORT] = { "port", 0, "PORT",
		       "the API's port on 127.0.0.1 (default: the configuration's api_port)" },
	[OPT_TIMEOUT] = { "timeout", 0, "SECONDS", "give up waiting for the API after this long" },
	[OPT_ACTION] = { "action", 0, "PLAYBOOK",
			 "run this playbook instead of the one the diagnosis picks" },
	[OPT_FORCE] = { "force", 0, NULL,
			"heal: act even on a process Grace did not start; backup, restore: "
			"replace what exists" },
	[OPT_LIMIT] = { "limit", 'n', "N", "show at most N (1 to 500; default 20)" },
	[OPT_ADMIN] = { "admin", 0, NULL, "make the user an administrator" },
	[OPT_FOLLOW] = { "follow", 'f', NULL, "keep printing new lines as they come" },
	[OPT_JOURNAL] = { "journal", 0, NULL,
			  "read the systemd journal of grace.service (journalctl), even where the "
			  "data directory has log files" },
	[OPT_SINCE] = { "since", 0, "WHEN",
			"only lines from WHEN on: an age (30s, 10m, 2h, 1d) or a UTC time "
			"(2026-01-31 12:00)" },
	[OPT_LEVEL] = { "level", 0, "LEVEL", "only lines at LEVEL or above: debug, info, warn, error" },
	[OPT_FILE] = { "file", 0, "FILE",
		       "read this log file (JSON lines) instead of the journal or the data "
		       "directory's log" },
	[OPT_INTERVAL] = { "interval", 'd', "SECONDS", "refresh every SECONDS (default 2)" },
	[OPT_ITERATIONS] = { "iterations", 'n', "N", "stop after N refreshes (default: until q or Ctrl-C)" },
	[OPT_PASSPHRASE_FILE] = { "passphrase-file", 0, "FILE",
				  "seal (or open) the archive's secrets with the passphrase in FILE" },
	[OPT_KEY_FILE] = { "key-file", 0, "FILE",
			   "seal (or open) the archive's secrets with the 32-byte key in FILE" },
	[OPT_NO_SECRETS] = { "no-secrets", 0, NULL, "leave the secrets out of the archive" },
	[OPT_CONFIG_OUT] = { "config-out", 0, "FILE",
			     "write the archive's configuration to FILE" },
	[OPT_NO_POSTGRESQL] = { "no-postgresql", 0, NULL,
				"restore the files only: the archive's PostgreSQL dump is read "
				"whole, not restored" },
	[OPT_NO_JETSTREAM] = { "no-jetstream", 0, NULL,
			       "restore the files only: the archive's JetStream stream is checked "
			       "by its hash, not restored" },
	[OPT_COMMENT] = { "comment", 0, "TEXT",
			  "why: the silence's reason (required; shown by grace silences), or an "
			  "approval's or a denial's comment" },
	[OPT_DURATION] = { "duration", 0, "DURATION",
			   "how long the silence lasts: 30m, 2h, 1d (default 2h; at most a year)" },
	[OPT_AUTHOR] = { "author", 0, "NAME", "who silences (default: $USER)" },
	[OPT_WAIT] = { "wait", 0, NULL,
		       "wait until the kernel is ready (start, restart) or stopped (stop)" },
	[OPT_ALL] = { "all", 'a', NULL, "every change request, not only the open ones" },
};

static const char *const completion_shells[] = { "bash", "zsh", "fish", NULL };
static const char *const user_words[] = { "add", NULL };
static const char *const policy_words[] = { "reset", "default", "routes", NULL };
static const char *const archive_words[] = { "verify", NULL };
static const char *const node_words[] = { "enroll", NULL };
static const char *const silence_words[] = { "add", "expire", NULL };

#define SERVE_OPTS (OPTS_CONFIG)

const struct cli_cmd cli_cmds[CLI_N_CMDS] = {
	{ CMD_SERVE, "serve", "", 0, 0, ARG_NONE, NULL, SERVE_OPTS, 0,
	  "run the API on 127.0.0.1:8000 and supervise every kernel",
	  "Runs Grace in the foreground: the HTTP API, the supervisor of the kernels, the "
	  "guardian and the healer. Logs are JSON lines on standard error (the journal under "
	  "systemd). SIGTERM stops every kernel, then Grace.",
	  "grace serve --config /etc/grace/grace.ini --data-dir /var/lib/grace" },
	{ CMD_KERNEL, "kernel", "NAME|PORT", 1, 1, ARG_KERNEL, NULL, SERVE_OPTS, 0,
	  "run one kernel alone, in the foreground",
	  "Runs the kernel NAME (or the one configured on PORT) by itself on its own port, or "
	  "on the socket systemd passes (LISTEN_FDS, socket activation: "
	  "grace-kernel@PORT.socket). Its routes other than /health and /metrics want "
	  "the internal token in the X-Grace-Internal-Token header; the kernel reads it from "
	  "$GRACE_INTERNAL_TOKEN_FILE, else DATA_DIR/internal.token.",
	  "grace kernel librarian --data-dir /var/lib/grace\nsystemctl enable --now grace-kernel@8130.socket" },
	{ CMD_STATUS, "status", "[KERNEL]", 0, 1, ARG_KERNEL, NULL, OPTS_API, 0,
	  "every kernel's state, or one kernel in detail",
	  "Without KERNEL: Grace's version and every kernel's state, port, pid, uptime, "
	  "restarts and last exit (needs no login). With KERNEL: that kernel in detail, with "
	  "its recent guardian events, as `systemctl status` shows a unit. Exits 1 unless "
	  "every kernel (or KERNEL) is ready.",
	  "grace status\ngrace status librarian" },
	{ CMD_KERNELS, "kernels", "", 0, 0, ARG_NONE, NULL, OPTS_API, 0,
	  "the running kernels, their ports and tiers",
	  "The kernels the running Grace supervises: name, port now and configured, tier, "
	  "state, pid, and whether the kernel is complete or a placeholder.",
	  "grace kernels --json" },
	{ CMD_HEALTH_CHECK, "health-check", "", 0, 0, ARG_NONE, NULL, OPTS_API, 0,
	  "probe every kernel's /health now",
	  "Asks every kernel's /health at once and prints each answer and its latency. Exits "
	  "1 unless all are healthy.",
	  "grace health-check" },
	{ CMD_START, "start", "KERNEL", 1, 1, ARG_KERNEL, NULL, OPTS_API | OPTB(OPT_WAIT), 0,
	  "start a stopped kernel",
	  "Asks the supervisor to start KERNEL (an admin's command). With --wait, waits until "
	  "it is ready and exits 1 if it is not within --timeout.",
	  "grace start librarian --wait" },
	{ CMD_STOP, "stop", "KERNEL", 1, 1, ARG_KERNEL, NULL, OPTS_API | OPTB(OPT_WAIT), 0,
	  "stop a kernel (it stays stopped until started)",
	  "Asks the supervisor to stop KERNEL gracefully (SIGTERM, then SIGKILL after its "
	  "stop_timeout_ms); the guardian leaves a stopped kernel alone. An admin's command.",
	  "grace stop librarian --wait" },
	{ CMD_RESTART, "restart", "KERNEL", 1, 1, ARG_KERNEL, NULL, OPTS_API | OPTB(OPT_WAIT), 0,
	  "restart a kernel gracefully",
	  "Stops KERNEL gracefully and starts it again. An admin's command.",
	  "grace restart librarian" },
	{ CMD_RELOAD, "reload", "", 0, 0, ARG_NONE, NULL, OPTS_API | OPTB(OPT_WAIT), 0,
	  "read the configuration file again, without a full restart",
	  "Grace reads its configuration file again (as SIGHUP and `systemctl reload grace` "
	  "do): a kernel whose settings or own section changed is restarted, one at a time, "
	  "each waited for before the next; a kernel disabled is stopped, one enabled is "
	  "started; log_level applies at once. What only a start can change (the API's port, "
	  "the data directory, [limits], [auth], the set of kernels and their ports) is listed "
	  "and left as it is. A file that does not load changes nothing (exit 7). With --wait, "
	  "waits for the last kernel and exits 1 if the rollout halted. An admin's command.",
	  "grace reload --wait" },
	{ CMD_LOGS, "logs", "[KERNEL]", 0, 1, ARG_KERNEL, NULL,
	  OPTB(OPT_JSON) | OPTB(OPT_FOLLOW) | OPTB(OPT_SINCE) | OPTB(OPT_LEVEL) | OPTB(OPT_FILE) |
		  OPTB(OPT_JOURNAL) | OPTS_CONFIG,
	  0, "Grace's logs, readable (or raw JSON lines with --json)",
	  "Prints the JSON log lines of Grace and its kernels (only KERNEL's with KERNEL; "
	  "\"grace\" names the main process) as readable lines: time, level, component, "
	  "message. Reads --file if given, else DATA_DIR/log/grace.log and its rotations "
	  "(grace.log.1 ...) when they exist, else (or with --journal) the journal of "
	  "grace.service (journalctl).",
	  "grace logs librarian --since 10m --level warn\ngrace logs -f\n"
	  "grace logs --journal --since 1h" },
	{ CMD_TOP, "top", "", 0, 0, ARG_NONE, NULL,
	  OPTS_API | OPTB(OPT_INTERVAL) | OPTB(OPT_ITERATIONS), 0,
	  "a live view of the kernels: state, requests per second, latency, restarts",
	  "Refreshes every --interval: each kernel's state, pid, uptime, restarts, requests "
	  "per second and mean latency (from the kernels' /metrics). On a terminal it redraws "
	  "the screen until q or Ctrl-C; otherwise it prints one table per refresh. --json "
	  "prints one JSON object per refresh.",
	  "grace top --interval 1\ngrace top --iterations 2 --json" },
	{ CMD_HEAL, "heal", "KERNEL", 1, 1, ARG_KERNEL, NULL,
	  OPTS_API | OPTB(OPT_ACTION) | OPTB(OPT_FORCE), 0, "diagnose a kernel and heal it",
	  "Diagnoses KERNEL and runs the playbook the diagnosis picks (or --action), then "
	  "verifies. Exits 0 when healed or when nothing needed healing, 1 otherwise. An "
	  "admin's command.",
	  "grace heal librarian --action restart_component" },
	{ CMD_DIAGNOSE, "diagnose", "KERNEL", 1, 1, ARG_KERNEL, NULL, OPTS_API, 0,
	  "what is wrong with a kernel, without acting",
	  "Process, port, connection and /health findings for KERNEL. Exits 1 unless it is "
	  "healthy.",
	  "grace diagnose librarian" },
	{ CMD_INCIDENTS, "incidents", "", 0, 0, ARG_NONE, NULL, OPTS_API | OPTB(OPT_LIMIT), 0,
	  "the healer's latest incidents", "The healer's incidents, newest first.",
	  "grace incidents --limit 5" },
	{ CMD_SILENCES, "silences", "", 0, 0, ARG_NONE, NULL, OPTS_API, 0,
	  "the alerts kernel's silences",
	  "Every silence of the alerts kernel (its Alertmanager API under /alertmanager): id, "
	  "state (active, pending, expired), end, matchers, author and comment.",
	  "grace silences\ngrace silences --json" },
	{ CMD_SILENCE, "silence", "add MATCHER... | expire ID", 2, CLI_MAX_ARGS, ARG_WORD,
	  silence_words, OPTS_API | OPTB(OPT_COMMENT) | OPTB(OPT_DURATION) | OPTB(OPT_AUTHOR), 0,
	  "silence alerts, or end a silence now",
	  "`silence add` silences the alerts every MATCHER matches (up to 16; a matcher is "
	  "name=value, name!=value, name=~regex or name!~regex, the value optionally in double "
	  "quotes) from now for --duration, and prints the silence's id; --comment says why. "
	  "`silence expire ID` ends a silence now. Both go to the alerts kernel's Alertmanager "
	  "API (/alertmanager/api/v2/silences).",
	  "grace silence add job=api 'severity=~\"crit.*\"' --comment \"deploy\" --duration 30m\n"
	  "grace silence expire 6f1c0d2e-5a3b-4c8d-9e7f-0a1b2c3d4e5f" },
	{ CMD_LOGIN, "login", "USER", 1, 1, ARG_USER, NULL, OPTS_API, 0,
	  "log in and keep the session token for the other commands",
	  "Asks for USER's password (from the terminal without echo, or standard input) and "
	  "keeps the session token in $XDG_CONFIG_HOME/grace/token (mode 0600). "
	  "$GRACE_TOKEN, when set, is used instead of that file.",
	  "grace login admin" },
	{ CMD_LOGOUT, "logout", "", 0, 0, ARG_NONE, NULL, OPTS_API, 0,
	  "end the session and forget its token", "Ends the session on the API and removes the token file.",
	  "grace logout" },
	{ CMD_USER, "user", "add USER", 2, 2, ARG_WORD, user_words,
	  OPTB(OPT_JSON) | OPTB(OPT_ADMIN) | OPTS_CONFIG, 0,
	  "create a user in the data directory's database",
	  "Writes the user straight into DATA_DIR/grace.db, so the first admin can be made "
	  "before Grace starts. The password comes from the terminal, or standard input.",
	  "grace user add alice --admin --data-dir /var/lib/grace" },
	{ CMD_POLICY, "policy", "reset|default|routes", 1, 1, ARG_WORD, policy_words,
	  OPTB(OPT_JSON) | OPTS_CONFIG, 0,
	  "reset the policy set offline, print the default set, list the routes' access",
	  "reset restores the built-in default policy set in DATA_DIR/policy.db, offline "
	  "(stop grace serve first): the way back in when a policy locks every admin out; "
	  "the audit trail records it at the next start. default prints the built-in set "
	  "(etc/policy/default.cedar). routes lists every route on :8000 with its access "
	  "level, its actions and its resource type (--json for scripts).",
	  "grace policy reset --data-dir /var/lib/grace\ngrace policy routes --json" },
	{ CMD_APPROVALS, "approvals", "", 0, 0, ARG_NONE, NULL, OPTS_API | OPTB(OPT_ALL), 0,
	  "change requests waiting for approval, and what each still waits for",
	  "The governance kernel's change requests (docs/governance.md), newest first: the open "
	  "ones, or every one with --all. Each line gives the id, the action, its state, its "
	  "requester and its parameters; below it, what it still waits for (\"1 more approval "
	  "from role admin\") and, once it ran, whether its action succeeded.",
	  "grace approvals\ngrace approvals --all --json" },
	{ CMD_APPROVE, "approve", "ID", 1, 1, ARG_NONE, NULL, OPTS_API | OPTB(OPT_COMMENT), 0,
	  "approve a change request",
	  "Approves change request ID as the logged-in user, who must hold a role its rule "
	  "names and may not be its requester. The approval that meets the rule runs the "
	  "action (once). Prints the request as it is then.",
	  "grace approve 12 --comment \"checked the plan\"" },
	{ CMD_DENY, "deny", "ID", 1, 1, ARG_NONE, NULL, OPTS_API | OPTB(OPT_COMMENT), 0,
	  "deny (veto) a change request",
	  "Denies change request ID as the logged-in user, who must be one who may approve "
	  "it: the request is closed and its action never runs.",
	  "grace deny 12 --comment \"not during the freeze\"" },
	{ CMD_BACKUP, "backup", "FILE", 1, 1, ARG_NONE, NULL,
	  OPTB(OPT_JSON) | OPTB(OPT_CONFIG) | OPTB(OPT_PORT_OFFSET) | OPTB(OPT_PORT) |
		  OPTB(OPT_FORCE) | OPTB(OPT_PASSPHRASE_FILE) | OPTB(OPT_KEY_FILE) |
		  OPTB(OPT_NO_SECRETS),
	  0, "a consistent archive of everything Grace holds, taken while it serves",
	  "Writes FILE: every kernel's and Grace's data, consistent, taken while Grace serves "
	  "(an admin's command), with the PostgreSQL database of [store] engine = postgresql "
	  "through pg_dump. The secrets are sealed with --passphrase-file or --key-file, "
	  "or left out with --no-secrets (one of them). docs/backup.md has the whole story.",
	  "grace backup /srv/grace-2026-12-04.tar --passphrase-file /root/backup.pass" },
	{ CMD_RESTORE, "restore", "FILE", 1, 1, ARG_NONE, NULL,
	  OPTB(OPT_JSON) | OPTB(OPT_DATA_DIR) | OPTB(OPT_FORCE) | OPTB(OPT_PASSPHRASE_FILE) |
		  OPTB(OPT_KEY_FILE) | OPTB(OPT_CONFIG_OUT) | OPTB(OPT_CONFIG) |
		  OPTB(OPT_NO_POSTGRESQL) | OPTB(OPT_NO_JETSTREAM),
	  0, "check a backup whole and restore it into an empty data directory",
	  "Checks FILE whole, restores it into the empty --data-dir, and proves it: integrity "
	  "checks, each kernel started on it, the log against the manifest's tree head. "
	  "A PostgreSQL dump in it goes into the database --config's [store] names (empty, "
	  "or cleaned with --force) through pg_restore, and is checked there; the bus's "
	  "JetStream stream goes into the JetStream its [message_bus] names (absent, or "
	  "deleted first with --force), and is checked there. "
	  "docs/backup.md has the whole story.",
	  "grace restore /srv/grace-2026-12-04.tar --data-dir /var/lib/grace "
	  "--passphrase-file /root/backup.pass" },
	{ CMD_ARCHIVE, "archive", "verify FILE", 2, 2, ARG_WORD, archive_words, OPTB(OPT_JSON), 0,
	  "check an archive of the immutable log with nothing but the file",
	  "Checks an archive file that POST /kernels/immutable_log/archive wrote "
	  "(docs/immutable-log.md \"Archival\"), offline: the manifest's SHA-256 over the "
	  "contents, the tree head's Ed25519 signature, every entry's leaf hash and inclusion "
	  "proof. Compare the key_id it prints with the log's (GET /kernels/immutable_log/key) "
	  "and the sha256 with the one the log recorded. Needs no running Grace.",
	  "grace archive verify immutable_log-00000000000000000000-00000000000000000600.jsonl" },
	{ CMD_NODE, "node", "enroll NAME DIR", 3, 3, ARG_WORD, node_words,
	  OPTS_API | OPTB(OPT_DATA_DIR), 0,
	  "a node's first certificate, for Grace on several hosts",
	  "Asks the trust kernel (an admin's command) for node NAME's X.509-SVID "
	  "(spiffe://DOMAIN/node/NAME, the longest lifetime [trust] x509_ttl_max_s allows) and "
	  "writes it to DIR: svid.pem, key.pem and bundle.pem, with the nodes' shared internal "
	  "token (internal.token, read from this node's DATA_DIR/node), all 0600. Copy DIR to "
	  "the node's "
	  "DATA_DIR/node before its first start; from then on the node renews its certificate "
	  "itself. docs/deployment.md has the whole story.",
	  "grace node enroll b /root/node-b && scp -r /root/node-b b:/var/lib/grace/node" },
	{ CMD_KERNELS_LIST, "kernels-list", "", 0, 0, ARG_NONE, NULL, OPTB(OPT_JSON), 0,
	  "the kernels this binary can run",
	  "Every kernel built into this binary: name, port, tier, state (complete, partial, "
	  "placeholder) and summary. Needs no running Grace.",
	  "grace kernels-list --json" },
	{ CMD_ROUTES, "routes", "", 0, 0, ARG_NONE, NULL, OPTB(OPT_JSON), 0,
	  "every route the API answers",
	  "Every route of the API on :8000, the kernels' behind the gateway's prefixes "
	  "included (GET /openapi.json describes the same). Needs no running Grace.",
	  "grace routes --json" },
	{ CMD_COMPLETION, "completion", "bash|zsh|fish", 1, 1, ARG_WORD, completion_shells, 0, 0,
	  "print the shell completion script",
	  "Prints a completion script for the shell, made from the same table as this help.",
	  "grace completion bash > /etc/bash_completion.d/grace\n"
	  "source <(grace completion bash)" },
	{ CMD_VERSION, "version", "", 0, 0, ARG_NONE, NULL, OPTB(OPT_JSON), 0,
	  "print the version", "Prints Grace's version.", "grace version --json" },
	{ CMD_HELP, "help", "[COMMAND]", 0, 1, ARG_WORD, NULL, 0, 0,
	  "every command, or one command's help",
	  "Without COMMAND: the list of commands. With COMMAND: the same as `grace COMMAND "
	  "--help`. `grace help exit-codes` lists the exit statuses.",
	  "grace help status" },
	{ CMD_MAN, "man", "", 0, 0, ARG_NONE, NULL, 0, CLI_HIDDEN,
	  "print the grace(1) manual page (roff)",
	  "Prints grace(1) in roff, made from this table; the build installs it.",
	  "grace man | man -l -" },
};

const struct cli_cmd *cli_cmd_find(const char *name)
{
	for (size_t i = 0; i < CLI_N_CMDS; i++)
		if (!strcmp(cli_cmds[i].name, name))
			return &cli_cmds[i];
	return NULL;
}
