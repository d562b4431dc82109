/* Parsing a command line against the command table (table.h). Pure: the
 * unit test drives it with tables of command lines. */
#include "cli/table.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KERNEL_NAME_MAX 63
#define LIMIT_MAX 500
#define SECONDS_MAX 86400.0
#define DURATION_MAX_MS (366.0 * 86400000.0) /* a silence: at most a year */

/* Writes the reason into `err` and returns CLI_USAGE: the command line is
 * the caller's input, and `grace` exits with CLI_USAGE for it. */
static int usage_error(sdk_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_error(sdk_err *err, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof err->msg, fmt, ap);
		va_end(ap);
	}
	return CLI_USAGE;
}

bool cli_kernel_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > KERNEL_NAME_MAX)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
			return false;
	return true;
}

static bool user_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' ||
		      *p == '.' || *p == '-'))
			return false;
	return true;
}

static int parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
	char *end;
	errno = 0;
	if (!*s || *s == '-' || *s == '+')
		return -1;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Seconds as a decimal, to milliseconds in [min_ms, SECONDS_MAX s]. */
static int parse_seconds(const char *s, unsigned min_ms, unsigned *out_ms)
{
	char *end;
	errno = 0;
	if (!*s || *s == '-' || *s == '+')
		return -1;
	double v = strtod(s, &end);
	if (errno || *end || !(v * 1000.0 >= min_ms) || v > SECONDS_MAX)
		return -1;
	*out_ms = (unsigned)(v * 1000.0 + 0.5);
	return 0;
}

int64_t cli_parse_since(const char *s, int64_t now_ms)
{
	char *end;
	errno = 0;
	if (*s >= '0' && *s <= '9') {
		unsigned long long n = strtoull(s, &end, 10);
		int64_t unit = 0;
		if (!strcmp(end, "s"))
			unit = 1000;
		else if (!strcmp(end, "m"))
			unit = 60000;
		else if (!strcmp(end, "h"))
			unit = 3600000;
		else if (!strcmp(end, "d"))
			unit = 86400000;
		if (unit && !errno && n <= 3650ULL * 86400000 / (unsigned long long)unit)
			return now_ms - (int64_t)n * unit;
	}
	struct tm tm = { 0 };
	const char *p = strptime(s, "%Y-%m-%d", &tm);
	if (!p)
		return -1;
	if (*p == 'T' || *p == ' ') {
		const char *q = strptime(p + 1, "%H:%M:%S", &tm);
		if (!q)
			q = strptime(p + 1, "%H:%M", &tm);
		p = q;
		if (p && *p == 'Z')
			p++;
	}
	if (!p || *p)
		return -1;
	time_t t = timegm(&tm);
	return t < 0 ? -1 : (int64_t)t * 1000;
}

int64_t cli_parse_duration(const char *s)
{
	char *end;
	errno = 0;
	if (!(*s >= '0' && *s <= '9'))
		return -1;
	double v = strtod(s, &end);
	int64_t unit = !strcmp(end, "s")   ? 1000
		       : !strcmp(end, "m") ? 60000
		       : !strcmp(end, "h") ? 3600000
		       : !strcmp(end, "d") ? 86400000
					   : 0;
	if (errno || !unit || !(v > 0) || v * (double)unit > DURATION_MAX_MS)
		return -1;
	int64_t ms = (int64_t)(v * (double)unit);
	return ms > 0 ? ms : -1;
}

int cli_matcher_parse(const char *a, struct cli_matcher *m)
{
	const char *op = strpbrk(a, "=!");
	if (!op || op == a)
		return -1;
	const char *v;
	m->is_equal = op[0] == '=';
	if (op[0] == '!' && op[1] == '=') {
		m->is_regex = false;
		v = op + 2;
	} else if (op[0] == '!' && op[1] == '~') {
		m->is_regex = true;
		v = op + 2;
	} else if (op[0] == '=' && op[1] == '~') {
		m->is_regex = true;
		v = op + 2;
	} else if (op[0] == '=') {
		m->is_regex = false;
		v = op + 1;
	} else {
		return -1;
	}
	size_t nl = (size_t)(op - a), vl = strlen(v);
	if (nl >= sizeof m->name || vl >= sizeof m->value)
		return -1;
	memcpy(m->name, a, nl);
	m->name[nl] = '\0';
	if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"') {
		v++;
		vl -= 2;
	}
	memcpy(m->value, v, vl);
	m->value[vl] = '\0';
	return 0;
}

static const struct cli_opt *find_long(const struct cli_cmd *c, const char *name, size_t len,
				       enum cli_opt_id *id)
{
	for (int i = 0; i < CLI_N_OPTS; i++) {
		if (i != OPT_HELP && !(c->opts & OPTB(i)))
			continue;
		if (strlen(cli_opts[i].name) == len && !strncmp(cli_opts[i].name, name, len)) {
			*id = (enum cli_opt_id)i;
			return &cli_opts[i];
		}
	}
	return NULL;
}

static const struct cli_opt *find_short(const struct cli_cmd *c, char ch, enum cli_opt_id *id)
{
	for (int i = 0; i < CLI_N_OPTS; i++) {
		if (i != OPT_HELP && !(c->opts & OPTB(i)))
			continue;
		if (cli_opts[i].short_name == ch) {
			*id = (enum cli_opt_id)i;
			return &cli_opts[i];
		}
	}
	return NULL;
}

static int set_opt(struct cli_args *a, enum cli_opt_id id, const char *v, int64_t now_ms,
		   sdk_err *err)
{
	const char *cmd = a->cmd->name;
	unsigned long n;
	switch (id) {
	case OPT_HELP: a->help = true; break;
	case OPT_JSON: a->json = true; break;
	case OPT_FORCE: a->force = true; break;
	case OPT_ADMIN: a->admin = true; break;
	case OPT_FOLLOW: a->follow = true; break;
	case OPT_WAIT: a->wait = true; break;
	case OPT_ALL: a->all = true; break;
	case OPT_JOURNAL: a->journal = true; break;
	case OPT_CONFIG: a->config = v; break;
	case OPT_DATA_DIR: a->data_dir = v; break;
	case OPT_PORT_OFFSET: a->port_offset = v; break;
	case OPT_ACTION: a->action = v; break;
	case OPT_FILE: a->file = v; break;
	case OPT_COMMENT:
		if (!*v)
			return usage_error(err, "grace %s: --comment wants a text", cmd);
		a->comment = v;
		break;
	case OPT_AUTHOR: a->author = v; break;
	case OPT_DURATION:
		a->duration_ms = cli_parse_duration(v);
		if (a->duration_ms < 0)
			return usage_error(err,
				    "grace %s: --duration wants a number then s, m, h or d (e.g. 90m; "
				    "at most a year), not '%s'",
				    cmd, v);
		break;
	case OPT_PORT:
		if (parse_uint(v, 1, 65535, &n) < 0)
			return usage_error(err, "grace %s: --port wants a TCP port (1 to 65535), not '%s'",
				    cmd, v);
		a->port = (int)n;
		break;
	case OPT_LIMIT:
		if (parse_uint(v, 1, LIMIT_MAX, &n) < 0)
			return usage_error(err, "grace %s: --limit wants 1 to %d, not '%s'", cmd,
				    LIMIT_MAX, v);
		a->limit = (unsigned)n;
		break;
	case OPT_ITERATIONS:
		if (parse_uint(v, 1, 1000000, &n) < 0)
			return usage_error(err, "grace %s: --iterations wants 1 to 1000000, not '%s'",
				    cmd, v);
		a->iterations = (unsigned)n;
		break;
	case OPT_TIMEOUT:
		if (parse_seconds(v, 100, &a->timeout_ms) < 0)
			return usage_error(err,
				    "grace %s: --timeout wants seconds (0.1 to 86400), not '%s'", cmd, v);
		break;
	case OPT_INTERVAL:
		if (parse_seconds(v, 100, &a->interval_ms) < 0)
			return usage_error(err,
				    "grace %s: --interval wants seconds (0.1 to 86400), not '%s'", cmd, v);
		break;
	case OPT_LEVEL:
		if (strcmp(v, "debug") && strcmp(v, "info") && strcmp(v, "warn") && strcmp(v, "error"))
			return usage_error(err,
				    "grace %s: --level wants debug, info, warn or error, not '%s'", cmd, v);
		a->level = v;
		break;
	case OPT_SINCE:
		a->since_ms = cli_parse_since(v, now_ms);
		if (a->since_ms < 0)
			return usage_error(err,
				    "grace %s: --since wants an age (30s, 10m, 2h, 1d) or a UTC time "
				    "(2026-01-31 12:00), not '%s'",
				    cmd, v);
		a->since_text = v;
		break;
	case OPT_PASSPHRASE_FILE:
	case OPT_KEY_FILE:
	case OPT_NO_SECRETS:
	case OPT_NO_POSTGRESQL:
	case OPT_NO_JETSTREAM:
	case OPT_CONFIG_OUT: break; /* backup and restore read their own (main.c) */
	case CLI_N_OPTS: break;
	}
	return 0;
}

static int check_args(struct cli_args *a, sdk_err *err)
{
	const struct cli_cmd *c = a->cmd;
	if (a->n_args < c->min_args || a->n_args > c->max_args)
		return usage_error(err, "usage: grace %s%s%s [options] (see grace %s --help)", c->name,
			    *c->args ? " " : "", c->args, c->name);
	for (int i = 0; i < a->n_args; i++) {
		const char *v = a->args[i];
		if (c->arg_kind == ARG_KERNEL && !cli_kernel_name_ok(v))
			return usage_error(err,
				    "grace %s: '%s' is not a kernel name (see grace kernels-list)",
				    c->name, v);
		if (c->arg_kind == ARG_USER && !user_name_ok(v))
			return usage_error(err,
				    "grace %s: a user name is 1 to 64 of a-z, 0-9, '_', '.', '-'",
				    c->name);
	}
	if (c->arg_kind == ARG_WORD && c->words && a->n_args > 0) {
		bool known = false;
		for (const char *const *w = c->words; *w; w++)
			known = known || !strcmp(*w, a->args[0]);
		if (!known)
			return usage_error(err, "usage: grace %s %s (not '%s')", c->name, c->args,
				    a->args[0]);
	}
	if (c->id == CMD_USER && !user_name_ok(a->args[1]))
		return usage_error(err, "grace user: a user name is 1 to 64 of a-z, 0-9, '_', '.', '-'");
	if (c->id == CMD_SILENCE && !strcmp(a->args[0], "expire")) {
		const char *id = a->args[1];
		if (a->n_args != 2)
			return usage_error(err, "usage: grace silence expire ID (one id)");
		if (strlen(id) > CLI_SILENCE_ID_MAX || strpbrk(id, "/?#%"))
			return usage_error(err, "grace silence: '%s' is not a silence id", id);
	}
	if (c->id == CMD_SILENCE && !strcmp(a->args[0], "add")) {
		struct cli_matcher m;
		for (int i = 1; i < a->n_args; i++)
			if (cli_matcher_parse(a->args[i], &m) < 0)
				return usage_error(err,
					    "grace silence: '%s' is not a matcher (name=value, "
					    "name!=value, name=~regex, name!~regex)",
					    a->args[i]);
		if (!a->comment)
			return usage_error(err,
				    "grace silence add: --comment TEXT is required (why the silence)");
	}
	if (c->id == CMD_HELP && a->n_args == 1 && strcmp(a->args[0], "exit-codes") &&
	    !cli_cmd_find(a->args[0]))
		return usage_error(err, "grace help: no command '%s' (see grace help)", a->args[0]);
	return 0;
}

int cli_parse(int argc, char *const *argv, int64_t now_ms, struct cli_args *a, sdk_err *err)
{
	memset(a, 0, sizeof *a);
	a->limit = 20;
	a->interval_ms = 2000;
	a->duration_ms = 2 * 3600000;
	if (err)
		err->msg[0] = '\0';
	if (argc < 2)
		return usage_error(err, "usage: grace COMMAND [options] (see grace help)");
	a->cmd = cli_cmd_find(argv[1]);
	if (!a->cmd)
		return usage_error(err, "grace: unknown command '%s' (see grace help)", argv[1]);
	const char *cmd = a->cmd->name;
	bool options_done = false;
	for (int i = 2; i < argc; i++) {
		const char *s = argv[i];
		enum cli_opt_id id;
		const struct cli_opt *o;
		const char *value = NULL;
		if (options_done || s[0] != '-' || !s[1]) {
			if (a->n_args == CLI_MAX_ARGS)
				return usage_error(err, "grace %s: too many arguments (see grace %s --help)",
					    cmd, cmd);
			a->args[a->n_args++] = s;
			continue;
		}
		if (!strcmp(s, "--")) {
			options_done = true;
			continue;
		}
		if (s[1] == '-') {
			const char *eq = strchr(s + 2, '=');
			size_t n = eq ? (size_t)(eq - s - 2) : strlen(s + 2);
			o = find_long(a->cmd, s + 2, n, &id);
			if (!o)
				return usage_error(err,
					    "grace %s: unknown option '%.*s' (see grace %s --help)", cmd,
					    (int)(n + 2), s, cmd);
			if (eq && !o->metavar)
				return usage_error(err, "grace %s: --%s takes no value", cmd, o->name);
			value = eq ? eq + 1 : NULL;
		} else {
			if (s[2])
				return usage_error(err,
					    "grace %s: unknown option '%s' (see grace %s --help)", cmd, s,
					    cmd);
			o = find_short(a->cmd, s[1], &id);
			if (!o)
				return usage_error(err,
					    "grace %s: unknown option '%s' (see grace %s --help)", cmd, s,
					    cmd);
		}
		if (o->metavar && !value) {
			if (i + 1 >= argc)
				return usage_error(err, "grace %s: --%s wants a value (%s)", cmd, o->name,
					    o->metavar);
			value = argv[++i];
		}
		int rc = set_opt(a, id, value, now_ms, err);
		if (rc)
			return rc;
	}
	if (a->help)
		return 0; /* --help wins over anything else wrong on the line */
	return check_args(a, err);
}
