/* The command table and its parser (src/cli/table.c, parse.c): every
 * command complete enough for --help, the man page and the completions;
 * command lines accepted and refused as the table says. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cli/table.h"

#include <stdio.h>
#include <string.h>

#define NOW_MS INT64_C(1800000000000)

static int parse_line(const char *line, struct cli_args *a, sdk_err *err)
{
	static char buf[512];
	static char *argv[32];
	snprintf(buf, sizeof buf, "grace %s", line);
	int argc = 0;
	for (char *t = strtok(buf, " "); t && argc < 31; t = strtok(NULL, " "))
		argv[argc++] = t;
	argv[argc] = NULL;
	return cli_parse(argc, argv, NOW_MS, a, err);
}

static void table_is_complete(void **state)
{
	(void)state;
	for (size_t i = 0; i < CLI_N_CMDS; i++) {
		const struct cli_cmd *c = &cli_cmds[i];
		assert_int_equal(c->id, (int)i); /* indexed by id */
		assert_non_null(c->name);
		assert_true(strlen(c->summary) > 5);
		assert_true(strlen(c->description) > 10);
		assert_true(!strncmp(c->example, "grace ", 6) || !strncmp(c->example, "source", 6));
		assert_true(c->min_args <= c->max_args && c->max_args <= CLI_MAX_ARGS);
		assert_ptr_equal(cli_cmd_find(c->name), c);
		assert_int_equal(*c->args == '\0', c->max_args == 0);
	}
	for (int i = 0; i < CLI_N_OPTS; i++) {
		assert_non_null(cli_opts[i].name);
		assert_non_null(cli_opts[i].help);
	}
	/* No command has two options with one short letter. */
	for (size_t i = 0; i < CLI_N_CMDS; i++)
		for (int x = 0; x < CLI_N_OPTS; x++)
			for (int y = x + 1; y < CLI_N_OPTS; y++) {
				bool hx = x == OPT_HELP || (cli_cmds[i].opts & OPTB(x));
				bool hy = y == OPT_HELP || (cli_cmds[i].opts & OPTB(y));
				if (hx && hy && cli_opts[x].short_name)
					assert_int_not_equal(cli_opts[x].short_name,
							     cli_opts[y].short_name);
			}
	for (int i = 0; i < CLI_N_EXITS; i++)
		assert_int_equal(cli_exit_docs[i].code, i);
	/* Distinct codes for the failures operators tell apart. */
	assert_int_not_equal(CLI_REFUSED, CLI_TIMEOUT);
	assert_int_not_equal(CLI_UNAUTHORIZED, CLI_FAILED);
}

static void every_command_takes_help(void **state)
{
	(void)state;
	char line[64];
	sdk_err err;
	struct cli_args a;
	for (size_t i = 0; i < CLI_N_CMDS; i++) {
		snprintf(line, sizeof line, "%s --help", cli_cmds[i].name);
		assert_int_equal(parse_line(line, &a, &err), 0);
		assert_true(a.help);
		snprintf(line, sizeof line, "%s -h", cli_cmds[i].name);
		assert_int_equal(parse_line(line, &a, &err), 0);
		assert_true(a.help);
	}
}

struct line_case {
	const char *line;
	int rc;
	const char *err_part; /* in the message when rc != 0 */
};

static const struct line_case cases[] = {
	{ "status", 0, NULL },
	{ "status librarian --json", 0, NULL },
	{ "status --json librarian", 0, NULL },
	{ "status a b", CLI_USAGE, "usage: grace status [KERNEL]" },
	{ "status Lib!", CLI_USAGE, "not a kernel name" },
	{ "status --bogus", CLI_USAGE, "unknown option '--bogus'" },
	{ "status --action x", CLI_USAGE, "unknown option '--action'" },
	{ "heal", CLI_USAGE, "usage: grace heal KERNEL" },
	{ "heal librarian --action restart_component --force", 0, NULL },
	{ "heal librarian --action", CLI_USAGE, "wants a value" },
	{ "heal librarian --action=restart_component", 0, NULL },
	{ "heal librarian --force=yes", CLI_USAGE, "takes no value" },
	{ "incidents --limit 0", CLI_USAGE, "--limit wants 1 to 500" },
	{ "incidents --limit 501", CLI_USAGE, "--limit wants 1 to 500" },
	{ "incidents -n 5", 0, NULL },
	{ "status --port 70000", CLI_USAGE, "--port wants a TCP port" },
	{ "status --port -1", CLI_USAGE, "--port wants a TCP port" },
	{ "status --timeout 0.01", CLI_USAGE, "--timeout wants seconds" },
	{ "status --timeout 1.5", 0, NULL },
	{ "logs -f --since 10m --level warn librarian", 0, NULL },
	{ "logs --level loud", CLI_USAGE, "--level wants debug" },
	{ "logs --since yesterday", CLI_USAGE, "--since wants an age" },
	{ "top --interval 0.5 --iterations 2 --json", 0, NULL },
	{ "top -n 0", CLI_USAGE, "--iterations wants" },
	{ "completion bash", 0, NULL },
	{ "completion tcsh", CLI_USAGE, "bash|zsh|fish" },
	{ "completion", CLI_USAGE, "usage: grace completion" },
	{ "user add alice --admin", 0, NULL },
	{ "user del alice", CLI_USAGE, "usage: grace user add USER" },
	{ "user add Alice!", CLI_USAGE, "a user name is" },
	{ "login bob", 0, NULL },
	{ "help status", 0, NULL },
	{ "help exit-codes", 0, NULL },
	{ "help nope", CLI_USAGE, "no command 'nope'" },
	{ "nope", CLI_USAGE, "unknown command 'nope'" },
	{ "kernels-list --json", 0, NULL },
	{ "version --json", 0, NULL },
	{ "routes --json", 0, NULL },
	{ "kernel librarian --data-dir /tmp/x", 0, NULL },
	{ "kernel --data-dir /tmp/x librarian", 0, NULL },
	{ "kernel", CLI_USAGE, "usage: grace kernel NAME" },
	{ "serve extra", CLI_USAGE, "usage: grace serve" },
	{ "start librarian --wait --timeout 5", 0, NULL },
	{ "stop -- librarian", 0, NULL },
	{ "status --bogus --help", CLI_USAGE, "unknown option" },
	{ "silences --json", 0, NULL },
	{ "silences extra", CLI_USAGE, "usage: grace silences" },
	{ "silence add job=api severity=~\"crit.*\" --comment deploy --duration 30m --author ops",
	  0, NULL },
	{ "silence add job!=api x!~y --comment deploy", 0, NULL },
	{ "silence add job --comment x", CLI_USAGE, "'job' is not a matcher" },
	{ "silence add =x --comment x", CLI_USAGE, "not a matcher" },
	{ "silence add job=api", CLI_USAGE, "--comment TEXT is required" },
	{ "silence add --comment x", CLI_USAGE, "usage: grace silence add MATCHER" },
	{ "silence add job=a --comment x --duration 5q", CLI_USAGE, "--duration wants" },
	{ "silence add job=a --comment x --duration 0h", CLI_USAGE, "--duration wants" },
	{ "silence add job=a --comment x --duration 400d", CLI_USAGE, "--duration wants" },
	{ "silence add a=1 b=2 c=3 d=4 e=5 f=6 g=7 h=8 i=9 j=10 k=11 l=12 m=13 n=14 o=15 p=16 "
	  "--comment x",
	  0, NULL },
	{ "silence add a=1 b=2 c=3 d=4 e=5 f=6 g=7 h=8 i=9 j=10 k=11 l=12 m=13 n=14 o=15 p=16 q=17 "
	  "--comment x",
	  CLI_USAGE, "too many arguments" },
	{ "silence expire 6f1c0d2e-5a3b", 0, NULL },
	{ "silence expire", CLI_USAGE, "usage: grace silence" },
	{ "silence expire a b", CLI_USAGE, "usage: grace silence expire ID" },
	{ "silence expire ../x", CLI_USAGE, "is not a silence id" },
	{ "silence frob x", CLI_USAGE, "(not 'frob')" },
	{ "silence expire x --limit 3", CLI_USAGE, "unknown option '--limit'" },
};

/* Every command main's usage text listed before the table (and the
 * silences the alerts work added to it) is still a command. */
static void main_commands_survive(void **state)
{
	(void)state;
	static const char *const names[] = {
		"serve",     "kernel",   "kernels-list", "routes",  "status",  "kernels",
		"health-check", "heal",  "diagnose",     "restart", "incidents", "silences",
		"silence",   "login",    "logout",       "backup",  "restore", "user",
		"version",   "help",
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (!cli_cmd_find(names[i]))
			fail_msg("'%s' is not in the command table", names[i]);
}

static void silence_args(void **state)
{
	(void)state;
	sdk_err err;
	struct cli_args a;
	assert_int_equal(parse_line("silence add job=api --comment x", &a, &err), 0);
	assert_int_equal(a.duration_ms, 2 * 3600000); /* the default */
	assert_null(a.author);
	assert_int_equal(parse_line("silence add job=api --comment why --duration 1.5h --author ops",
				    &a, &err),
			 0);
	assert_int_equal(a.duration_ms, 5400000);
	assert_string_equal(a.comment, "why");
	assert_string_equal(a.author, "ops");
	assert_int_equal(a.n_args, 2);
	struct cli_matcher m;
	assert_int_equal(cli_matcher_parse("severity=~\"crit.*\"", &m), 0);
	assert_string_equal(m.name, "severity");
	assert_string_equal(m.value, "crit.*");
	assert_true(m.is_regex && m.is_equal);
	assert_int_equal(cli_matcher_parse("job!=api", &m), 0);
	assert_true(!m.is_regex && !m.is_equal);
	assert_string_equal(m.value, "api");
	assert_int_equal(cli_matcher_parse("job!~a|b", &m), 0);
	assert_true(m.is_regex && !m.is_equal);
	assert_int_equal(cli_matcher_parse("job=", &m), 0);
	assert_string_equal(m.value, "");
	assert_int_equal(cli_matcher_parse("job", &m), -1);
	assert_int_equal(cli_matcher_parse("!=x", &m), -1);
	assert_int_equal(cli_matcher_parse("job!x", &m), -1);
	assert_int_equal(cli_parse_duration("30s"), 30000);
	assert_int_equal(cli_parse_duration("1d"), 86400000);
	assert_int_equal(cli_parse_duration("2"), -1);
	assert_int_equal(cli_parse_duration("-1h"), -1);
	assert_int_equal(cli_parse_duration("h"), -1);
}

static void lines(void **state)
{
	(void)state;
	sdk_err err;
	struct cli_args a;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int rc = parse_line(cases[i].line, &a, &err);
		if (rc != cases[i].rc || (cases[i].err_part && !strstr(err.msg, cases[i].err_part)))
			fail_msg("'%s': rc %d, err '%s'", cases[i].line, rc, err.msg);
	}
	assert_int_equal(parse_line("heal librarian --action=clear_port --force", &a, &err),
			 0);
	assert_string_equal(a.action, "clear_port");
	assert_true(a.force);
	assert_string_equal(a.args[0], "librarian");
	assert_int_equal(parse_line("incidents", &a, &err), 0);
	assert_int_equal(a.limit, 20);
	assert_int_equal(parse_line("status --timeout 1.5 --port 9000", &a, &err), 0);
	assert_int_equal(a.timeout_ms, 1500);
	assert_int_equal(a.port, 9000);
}

static void since(void **state)
{
	(void)state;
	assert_int_equal(cli_parse_since("30s", NOW_MS), NOW_MS - 30000);
	assert_int_equal(cli_parse_since("10m", NOW_MS), NOW_MS - 600000);
	assert_int_equal(cli_parse_since("2h", NOW_MS), NOW_MS - 7200000);
	assert_int_equal(cli_parse_since("1d", NOW_MS), NOW_MS - 86400000);
	assert_int_equal(cli_parse_since("2026-01-31", NOW_MS), INT64_C(1769817600000));
	assert_int_equal(cli_parse_since("2026-01-31 12:00", NOW_MS), INT64_C(1769860800000));
	assert_int_equal(cli_parse_since("2026-01-31T12:00:30Z", NOW_MS), INT64_C(1769860830000));
	assert_int_equal(cli_parse_since("10", NOW_MS), -1);
	assert_int_equal(cli_parse_since("10x", NOW_MS), -1);
	assert_int_equal(cli_parse_since("2026-13-01", NOW_MS), -1);
	assert_int_equal(cli_parse_since("", NOW_MS), -1);
	assert_int_equal(cli_parse_since("99999999999999999999d", NOW_MS), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(table_is_complete),
		cmocka_unit_test(every_command_takes_help),
		cmocka_unit_test(lines),
		cmocka_unit_test(since),
		cmocka_unit_test(main_commands_survive),
		cmocka_unit_test(silence_args),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
