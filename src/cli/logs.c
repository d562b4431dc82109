/* `grace logs [KERNEL] [-f] [--since WHEN] [--level LEVEL] [--json]`: the
 * JSON log lines of Grace and its kernels (sdk/log.h), from --file, else
 * the data directory's log/grace.log and its rotations, else the journal
 * of grace.service; readable by default, raw with --json. */
#include "cli/cli.h"

#include "sdk/clock.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 65536
#define FOLLOW_POLL_US 200000
#define ROTATIONS_MAX 9
#define JOURNAL_UNIT "grace.service"

struct filter {
	const char *kernel; /* NULL: every component */
	int min_level;      /* index in levels[] */
	int64_t since_ms;   /* 0: no bound */
	bool json, colour;
};

static const char *const levels[] = { "debug", "info", "warn", "error" };

static int level_index(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (s && !strcmp(s, levels[i]))
			return i;
	return -1;
}

/* "2026-12-04T15:00:00.123Z" to wall-clock ms; -1 when not that. */
static int64_t time_ms(const char *s)
{
	struct tm tm = { 0 };
	const char *p = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
	if (!p)
		return -1;
	int ms = 0;
	if (*p == '.' && sscanf(p + 1, "%3d", &ms) != 1)
		return -1;
	return (int64_t)timegm(&tm) * 1000 + ms;
}

/* One line of the log; `line` has no newline. */
static void show(const struct filter *f, const char *line)
{
	json_t *o = json_loads(line, 0, NULL);
	if (!json_is_object(o)) {
		/* Not one of ours (a sanitizer report, a crash): shown unless filtering. */
		if (!f->kernel && f->min_level <= 0 && !f->since_ms && !f->json)
			printf("%s\n", line);
		json_decref(o);
		return;
	}
	const char *kernel = json_string_value(json_object_get(o, "kernel"));
	const char *level = json_string_value(json_object_get(o, "level"));
	const char *when = json_string_value(json_object_get(o, "time"));
	int li = level_index(level);
	bool keep = (!f->kernel || (kernel && !strcmp(kernel, f->kernel))) && li >= f->min_level &&
		    (!f->since_ms || time_ms(when) >= f->since_ms);
	if (keep && f->json) {
		printf("%s\n", line);
	} else if (keep) {
		const char *msg = json_string_value(json_object_get(o, "msg"));
		const char *rid = json_string_value(json_object_get(o, "request_id"));
		const char *on = "", *off = "";
		if (f->colour && li >= 2) {
			on = li == 3 ? "\033[1;31m" : "\033[33m";
			off = "\033[0m";
		}
		char t[32] = "-";
		if (when) /* "2026-12-04T15:00:00.123Z" shown as "2026-12-04 15:00:00.123" */
			snprintf(t, sizeof t, "%.10s %.12s", when, strlen(when) > 11 ? when + 11 : "");
		printf("%s %s%-5s%s %s[%lld]: %s%s%s%s\n", t, on, level ? level : "-", off,
		       kernel ? kernel : "-",
		       (long long)json_integer_value(json_object_get(o, "pid")), msg ? msg : "",
		       rid ? " (request " : "", rid ? rid : "", rid ? ")" : "");
	}
	json_decref(o);
}

/* Shows the lines of `in` up to its end; keeps a partial last line in
 * `buf` (`*have` bytes) for the next read. */
static void pump(const struct filter *f, FILE *in, char *buf, size_t *have)
{
	int ch;
	while ((ch = getc(in)) != EOF) {
		if (ch == '\n') {
			buf[*have] = '\0';
			show(f, buf);
			*have = 0;
		} else if (*have < LINE_MAX_BYTES - 1) {
			buf[(*have)++] = (char)ch;
		}
	}
	clearerr(in);
	fflush(stdout);
}

static volatile sig_atomic_t stop_following;
static void on_stop(int sig)
{
	(void)sig;
	stop_following = 1;
}

/* Reads `path` (and, when following, what is appended to it, reopening it
 * when it is rotated away). */
static int read_file(const struct filter *f, const char *path, bool follow)
{
	FILE *in = fopen(path, "re");
	if (!in) {
		fprintf(stderr, "grace: cannot read %s: %s\n", path, strerror(errno));
		return CLI_FAILED;
	}
	char *buf = malloc(LINE_MAX_BYTES);
	if (!buf) {
		fclose(in);
		return CLI_FAILED;
	}
	size_t have = 0;
	if (follow) { /* before the first line: an interrupt from then on ends it well */
		signal(SIGINT, on_stop);
		signal(SIGTERM, on_stop);
		signal(SIGPIPE, on_stop);
	}
	pump(f, in, buf, &have);
	while (follow && !stop_following) {
		usleep(FOLLOW_POLL_US);
		pump(f, in, buf, &have);
		struct stat now, open_st;
		if (stat(path, &now) == 0 && fstat(fileno(in), &open_st) == 0 &&
		    now.st_ino != open_st.st_ino) { /* rotated: the rest, then the new file */
			FILE *next = fopen(path, "re");
			if (next) {
				pump(f, in, buf, &have);
				fclose(in);
				in = next;
			}
		}
	}
	free(buf);
	fclose(in);
	return 0;
}

/* The data directory's log and its rotations, oldest first. */
static int read_rotated(const struct filter *f, const char *dir, bool follow, bool *found)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/log/grace.log", dir);
	*found = access(path, R_OK) == 0;
	if (!*found)
		return 0;
	for (int i = ROTATIONS_MAX; i >= 1; i--) {
		char old[4220];
		snprintf(old, sizeof old, "%s.%d", path, i);
		if (access(old, R_OK) == 0) {
			int rc = read_file(f, old, false);
			if (rc)
				return rc;
		}
	}
	return read_file(f, path, follow);
}

/* Asked for (--journal), journalctl is run wherever it is; found by
 * default only where systemd is the init. */
static int read_journal(const struct filter *f, const struct cli_args *a)
{
	if (!a->journal && (access("/run/systemd/system", F_OK) != 0 ||
			    system("command -v journalctl >/dev/null 2>&1") != 0)) {
		fprintf(stderr,
			"grace: no logs found: no log/grace.log in the data directory, and no "
			"systemd journal here; give one with --file FILE\n");
		return CLI_FAILED;
	}
	char cmd[256];
	int n = snprintf(cmd, sizeof cmd, "journalctl --no-pager -q -o cat -u %s%s", JOURNAL_UNIT,
			 a->follow ? " -f" : "");
	if (f->since_ms)
		snprintf(cmd + n, sizeof cmd - (size_t)n, " --since @%lld",
			 (long long)(f->since_ms / 1000));
	FILE *in = popen(cmd, "r");
	if (!in) {
		fprintf(stderr, "grace: cannot run journalctl: %s\n", strerror(errno));
		return CLI_FAILED;
	}
	char *buf = malloc(LINE_MAX_BYTES);
	size_t have = 0;
	if (buf)
		pump(f, in, buf, &have);
	free(buf);
	int st = pclose(in);
	if (st != 0) {
		fprintf(stderr, "grace: journalctl failed (may this user read the journal? try sudo, "
				"or the systemd-journal group)\n");
		return CLI_FAILED;
	}
	return 0;
}

int cli_logs(const struct cli_args *a)
{
	struct filter f = { .kernel = a->n_args ? a->args[0] : NULL,
			    .min_level = a->level ? level_index(a->level) : 0,
			    .since_ms = a->since_ms,
			    .json = a->json,
			    .colour = isatty(STDOUT_FILENO) && !(getenv("NO_COLOR") && *getenv("NO_COLOR")) };
	if (a->file)
		return read_file(&f, a->file, a->follow);
	if (a->journal)
		return read_journal(&f, a);
	static grace_config cfg; /* large */
	int rc = cli_config_load(a, &cfg);
	if (rc)
		return rc;
	bool found;
	rc = read_rotated(&f, cfg.data_dir, a->follow, &found);
	if (found)
		return rc;
	return read_journal(&f, a);
}
