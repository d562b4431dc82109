/* Everything printed about the commands, from the command table: the
 * help, grace(1) in roff, and the bash, zsh and fish completions. */
#include "cli/cli.h"

#include "kernels/registry.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static void opt_label(const struct cli_opt *o, char *buf, size_t len)
{
	char shortpart[8] = "";
	if (o->short_name)
		snprintf(shortpart, sizeof shortpart, "-%c, ", o->short_name);
	snprintf(buf, len, "%s--%s%s%s", shortpart, o->name, o->metavar ? " " : "",
		 o->metavar ? o->metavar : "");
}

/* Lines of `text` (split at "\n"), each indented. */
static void indented(FILE *out, const char *indent, const char *text)
{
	while (*text) {
		size_t n = strcspn(text, "\n");
		fprintf(out, "%s%.*s\n", indent, (int)n, text);
		text += n + (text[n] == '\n');
	}
}

/* A paragraph folded at 78 columns. */
static void folded(FILE *out, const char *indent, const char *text)
{
	const size_t width = 78 - strlen(indent);
	while (*text) {
		size_t n = strlen(text);
		if (n > width) {
			n = width;
			while (n > 0 && text[n] != ' ')
				n--;
			if (n == 0)
				n = width;
		}
		fprintf(out, "%s%.*s\n", indent, (int)n, text);
		text += n;
		while (*text == ' ')
			text++;
	}
}

void cli_help_list(FILE *out)
{
	fprintf(out, "usage: grace COMMAND [ARGS] [options]\n\ncommands:\n");
	for (size_t i = 0; i < CLI_N_CMDS; i++) {
		const struct cli_cmd *c = &cli_cmds[i];
		if (c->flags & CLI_HIDDEN)
			continue;
		char head[48];
		snprintf(head, sizeof head, "%s%s%s", c->name, *c->args ? " " : "", c->args);
		if (strlen(head) > 25) /* a long synopsis: the summary on its own line */
			fprintf(out, "  %s\n  %-25s %s\n", head, "", c->summary);
		else
			fprintf(out, "  %-25s %s\n", head, c->summary);
	}
	fprintf(out, "\n`grace COMMAND --help` (or `grace help COMMAND`) shows a command's options "
		     "and an example;\n`grace help exit-codes` the exit statuses; `man grace` "
		     "everything.\n");
}

void cli_help_command(FILE *out, const struct cli_cmd *c)
{
	fprintf(out, "usage: grace %s%s%s [options]\n\n", c->name, *c->args ? " " : "", c->args);
	fprintf(out, "%c%s.\n\n", toupper((unsigned char)c->summary[0]), c->summary + 1);
	folded(out, "", c->description);
	fprintf(out, "\noptions:\n");
	for (int i = 0; i < CLI_N_OPTS; i++) {
		if (i != OPT_HELP && !(c->opts & OPTB(i)))
			continue;
		char label[48];
		opt_label(&cli_opts[i], label, sizeof label);
		fprintf(out, "  %-24s %s\n", label, cli_opts[i].help);
	}
	fprintf(out, "\nexample%s:\n", strchr(c->example, '\n') ? "s" : "");
	indented(out, "  ", c->example);
	if (c->opts & OPTB(OPT_PORT))
		fprintf(out, "\nexit status: 0 ok, 1 failed or degraded, 2 usage, 3 unreachable, "
			     "4 timeout,\n5 not logged in, 6 forbidden, 7 API error (grace help "
			     "exit-codes)\n");
}

void cli_help_exit_codes(FILE *out)
{
	fprintf(out, "exit statuses, the same for every command:\n");
	for (int i = 0; i < CLI_N_EXITS; i++) {
		fprintf(out, "  %d  %-14s ", cli_exit_docs[i].code, cli_exit_docs[i].name);
		folded(out, "", cli_exit_docs[i].meaning);
	}
}

/* ---- grace(1) ---- */

/* roff-safe: a leading '.' or '\'' would be a request, '\\' an escape,
 * '-' a hyphen rather than a minus. */
static void roff(const char *s)
{
	for (const char *p = s; *p; p++) {
		if (*p == '\\')
			fputs("\\e", stdout);
		else if (*p == '-')
			fputs("\\-", stdout);
		else if (*p == '`')
			fputs("\\(oq", stdout); /* shown as a quote mark */
		else if ((*p == '.' || *p == '\'') && (p == s || p[-1] == '\n'))
			fputs("\\&.", stdout);
		else
			putchar(*p);
	}
}

static void roff_line(const char *s)
{
	roff(s);
	putchar('\n');
}

int cli_man(void)
{
	printf(".\\\" grace(1), made by `grace man` from the command table in src/cli/table.c\n"
	       ".TH GRACE 1 \"\" \"grace %s\" \"User Commands\"\n"
	       ".SH NAME\ngrace \\- run and operate the Grace service platform\n"
	       ".SH SYNOPSIS\n.B grace\n.I COMMAND\n[\\fIARGS\\fR] [\\fIoptions\\fR]\n"
	       ".SH DESCRIPTION\n"
	       "\\fBgrace serve\\fR runs Grace: the HTTP API on 127.0.0.1:8000, a supervisor of "
	       "its kernels (separate processes on loopback ports 8100 to 8149), a guardian that "
	       "probes them and a healer. The other commands operate a running Grace through its "
	       "API, or need none. Every command answers \\fB\\-\\-help\\fR.\n",
	       GRACE_VERSION);
	printf(".SH COMMANDS\n");
	for (size_t i = 0; i < CLI_N_CMDS; i++) {
		const struct cli_cmd *c = &cli_cmds[i];
		if (c->flags & CLI_HIDDEN)
			continue;
		printf(".SS \"grace %s", c->name);
		if (*c->args) {
			putchar(' ');
			roff(c->args);
		}
		printf("\"\n");
		roff(c->summary);
		printf(".\n.PP\n");
		roff_line(c->description);
		for (int o = 0; o < CLI_N_OPTS; o++) {
			if (o == OPT_HELP || !(c->opts & OPTB(o)))
				continue;
			char label[48];
			opt_label(&cli_opts[o], label, sizeof label);
			printf(".TP\n.B ");
			roff_line(label);
			roff_line(cli_opts[o].help);
		}
		printf(".PP\nExample:\n.PP\n.RS\n.nf\n");
		roff_line(c->example);
		printf(".fi\n.RE\n");
	}
	printf(".SH \"EXIT STATUS\"\nThe same for every command:\n");
	for (int i = 0; i < CLI_N_EXITS; i++) {
		printf(".TP\n.B %d\n", cli_exit_docs[i].code);
		roff(cli_exit_docs[i].name);
		printf(": ");
		roff_line(cli_exit_docs[i].meaning);
	}
	printf(".SH ENVIRONMENT\n"
	       ".TP\n.B GRACE_CONFIG\nthe configuration file, when \\-\\-config is not given.\n"
	       ".TP\n.B GRACE_TOKEN\na session token; used instead of the file "
	       "\\fBgrace login\\fR writes.\n"
	       ".TP\n.B GRACE_INTERNAL_TOKEN_FILE\nwhere a kernel run alone reads the internal "
	       "token (under systemd: \\fB$CREDENTIALS_DIRECTORY/internal.token\\fR).\n"
	       ".TP\n.B NO_COLOR\nwhen set, nothing is printed in colour.\n"
	       ".SH FILES\n"
	       ".TP\n.I /etc/grace/grace.ini\nthe configuration, see \\fBgrace.ini\\fR(5).\n"
	       ".TP\n.I /var/lib/grace\nthe data directory of the packaged service.\n"
	       ".TP\n.I $XDG_CONFIG_HOME/grace/token\nthe session token of \\fBgrace login\\fR "
	       "(else \\fI~/.config/grace/token\\fR).\n"
	       ".SH \"SEE ALSO\"\n\\fBgrace.ini\\fR(5), \\fBsystemctl\\fR(1), "
	       "\\fBjournalctl\\fR(1), \\fBsystemd.exec\\fR(5)\n");
	return 0;
}

/* ---- completions ---- */

static void opts_words(const struct cli_cmd *c, bool with_short)
{
	printf("--help");
	for (int i = 0; i < CLI_N_OPTS; i++)
		if (i != OPT_HELP && (c->opts & OPTB(i))) {
			printf(" --%s", cli_opts[i].name);
			if (with_short && cli_opts[i].short_name)
				printf(" -%c", cli_opts[i].short_name);
		}
}

static void kernel_words(void)
{
	for (size_t i = 0; i < kernel_registry_count(); i++)
		printf("%s%s", i ? " " : "", kernel_registry_at(i)->name);
}

static void first_words(const struct cli_cmd *c)
{
	if (c->arg_kind == ARG_KERNEL)
		kernel_words();
	else if (c->words)
		for (const char *const *w = c->words; *w; w++)
			printf("%s%s", w == c->words ? "" : " ", *w);
	else if (c->id == CMD_HELP)
		for (size_t i = 0; i < CLI_N_CMDS; i++)
			if (!(cli_cmds[i].flags & CLI_HIDDEN))
				printf("%s ", cli_cmds[i].name);
}

static void commands_words(void)
{
	for (size_t i = 0, n = 0; i < CLI_N_CMDS; i++)
		if (!(cli_cmds[i].flags & CLI_HIDDEN))
			printf("%s%s", n++ ? " " : "", cli_cmds[i].name);
}

static void completion_bash(void)
{
	printf("# bash completion for grace, made by `grace completion bash`\n"
	       "_grace() {\n"
	       "\tlocal cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n"
	       "\tif [ \"$COMP_CWORD\" -eq 1 ]; then\n"
	       "\t\tCOMPREPLY=($(compgen -W \"");
	commands_words();
	printf("\" -- \"$cur\")); return\n\tfi\n"
	       "\tcase \"$prev\" in\n"
	       "\t--config|--file) COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n"
	       "\t--data-dir) COMPREPLY=($(compgen -d -- \"$cur\")); return ;;\n"
	       "\t--level) COMPREPLY=($(compgen -W \"debug info warn error\" -- \"$cur\")); return ;;\n"
	       "\t--port|--port-offset|--timeout|--limit|--since|--interval|--iterations|--action) "
	       "return ;;\n"
	       "\tesac\n"
	       "\tlocal words\n"
	       "\tcase \"${COMP_WORDS[1]}\" in\n");
	for (size_t i = 0; i < CLI_N_CMDS; i++) {
		const struct cli_cmd *c = &cli_cmds[i];
		if (c->flags & CLI_HIDDEN)
			continue;
		printf("\t%s) words=\"", c->name);
		opts_words(c, false);
		if (c->max_args > 0) {
			printf(" ");
			first_words(c);
		}
		printf("\" ;;\n");
	}
	printf("\tesac\n"
	       "\tCOMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n"
	       "}\n"
	       "complete -F _grace grace\n");
}

static void completion_zsh(void)
{
	printf("#compdef grace\n"
	       "# zsh completion for grace, made by `grace completion zsh`\n"
	       "_grace() {\n"
	       "\tlocal -a cmds\n"
	       "\tcmds=(\n");
	for (size_t i = 0; i < CLI_N_CMDS; i++) {
		const struct cli_cmd *c = &cli_cmds[i];
		if (c->flags & CLI_HIDDEN)
			continue;
		printf("\t\t'%s:", c->name);
		for (const char *p = c->summary; *p; p++)
			fputs(*p == '\'' ? "'\\''" : *p == ':' ? "\\:" : (char[]){ *p, 0 }, stdout);
		printf("'\n");
	}
	printf("\t)\n"
	       "\tif (( CURRENT == 2 )); then\n"
	       "\t\t_describe 'command' cmds\n"
	       "\t\treturn\n"
	       "\tfi\n"
	       "\tlocal -a words_\n"
	       "\tcase $words[2] in\n");
	for (size_t i = 0; i < CLI_N_CMDS; i++) {
		const struct cli_cmd *c = &cli_cmds[i];
		if (c->flags & CLI_HIDDEN)
			continue;
		printf("\t%s) words_=(", c->name);
		opts_words(c, false);
		if (c->max_args > 0) {
			printf(" ");
			first_words(c);
		}
		printf(") ;;\n");
	}
	printf("\tesac\n"
	       "\tcompadd -- $words_\n"
	       "}\n"
	       "_grace \"$@\"\n");
}

static void completion_fish(void)
{
	printf("# fish completion for grace, made by `grace completion fish`\n"
	       "complete -c grace -f\n");
	for (size_t i = 0; i < CLI_N_CMDS; i++) {
		const struct cli_cmd *c = &cli_cmds[i];
		if (c->flags & CLI_HIDDEN)
			continue;
		printf("complete -c grace -n __fish_use_subcommand -a %s -d '", c->name);
		for (const char *p = c->summary; *p; p++)
			fputs(*p == '\'' ? "\\'" : (char[]){ *p, 0 }, stdout);
		printf("'\n");
		for (int o = 0; o < CLI_N_OPTS; o++) {
			if (o != OPT_HELP && !(c->opts & OPTB(o)))
				continue;
			printf("complete -c grace -n '__fish_seen_subcommand_from %s' -l %s%s", c->name,
			       cli_opts[o].name, cli_opts[o].metavar ? " -r" : "");
			if (cli_opts[o].short_name)
				printf(" -s %c", cli_opts[o].short_name);
			printf("\n");
		}
		if (c->max_args > 0 && (c->arg_kind == ARG_KERNEL || c->words || c->id == CMD_HELP)) {
			printf("complete -c grace -n '__fish_seen_subcommand_from %s' -a '", c->name);
			first_words(c);
			printf("'\n");
		}
	}
}

int cli_completion(const char *shell)
{
	if (!strcmp(shell, "bash"))
		completion_bash();
	else if (!strcmp(shell, "zsh"))
		completion_zsh();
	else if (!strcmp(shell, "fish"))
		completion_fish();
	else
		return CLI_USAGE; /* the parser allows only these */
	return 0;
}
