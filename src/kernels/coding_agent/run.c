#include "kernels/coding_agent/run.h"

#include "sdk/proc.h"
#include "sdk/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Git sees no configuration of the machine's users, never prompts. */
static char *const git_env[] = { "PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C", "LC_ALL=C",
				 "HOME=/nonexistent", "GIT_CONFIG_NOSYSTEM=1",
				 "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0",
				 "GIT_AUTHOR_NAME=grace", "GIT_AUTHOR_EMAIL=grace@localhost",
				 "GIT_COMMITTER_NAME=grace", "GIT_COMMITTER_EMAIL=grace@localhost",
				 NULL };

void ca_run_free(ca_run *r)
{
	free(r->out);
	r->out = NULL;
}

static void keep(ca_run *r, const char *b, size_t n)
{
	if (n >= CA_RUN_KEEP) {
		b += n - CA_RUN_KEEP;
		n = CA_RUN_KEEP;
	}
	if (r->out_len + n > CA_RUN_KEEP) {
		size_t drop = r->out_len + n - CA_RUN_KEEP;
		memmove(r->out, r->out + drop, r->out_len - drop);
		r->out_len -= drop;
	}
	memcpy(r->out + r->out_len, b, n);
	r->out_len += n;
	r->out[r->out_len] = '\0';
}

int ca_git(const char *dir, const char *const *args, unsigned timeout_ms, ca_run *r)
{
	memset(r, 0, sizeof *r);
	r->exit_code = -1;
	r->out = malloc(CA_RUN_KEEP + 1);
	if (!r->out)
		return -1;
	r->out[0] = '\0';
	/* No hooks, no fsmonitor: nothing of the repository's own runs. */
	const char *argv[CA_RUN_ARGS_MAX + 8] = { "git", "-c", CA_GIT_NO_HOOKS, "-c",
						  CA_GIT_NO_FSMONITOR, "-C", dir };
	size_t n = 7;
	for (size_t i = 0; args[i] && n < CA_RUN_ARGS_MAX + 7; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	int64_t t0 = sdk_mono_ms();
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -1;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
	posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
	/* Its own process group, so a timeout kills what git started too. */
	pid_t pid;
	int rc = proc_spawn(&pid, CA_GIT, &fa, true, (char *const *)argv, git_env);
	posix_spawn_file_actions_destroy(&fa);
	close(fds[1]);
	if (rc != 0) {
		close(fds[0]);
		snprintf(r->out, CA_RUN_KEEP, "cannot start %s: %s", CA_GIT, strerror(rc));
		r->out_len = strlen(r->out);
		return -1;
	}
	bool killed = false;
	char b[8192];
	for (;;) {
		int64_t left = (int64_t)timeout_ms - (sdk_mono_ms() - t0);
		if (left <= 0 && !killed) {
			kill(-pid, SIGKILL);
			killed = true;
			keep(r, "\n[killed: past its time limit]\n", 31);
		}
		struct pollfd p = { .fd = fds[0], .events = POLLIN };
		int pr = poll(&p, 1, left > 0 ? (int)(left > 1000 ? 1000 : left) : 200);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0)
			continue;
		ssize_t got = read(fds[0], b, sizeof b);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		keep(r, b, (size_t)got);
	}
	close(fds[0]);
	int ws = 0;
	while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
		;
	r->exit_code = WIFEXITED(ws) ? WEXITSTATUS(ws) : WIFSIGNALED(ws) ? 128 + WTERMSIG(ws) : -1;
	r->ms = sdk_mono_ms() - t0;
	return 0;
}

json_t *ca_tail_json(const char *s, size_t len, size_t max)
{
	if (!s)
		return json_string("");
	size_t from = len > max ? len - max : 0;
	while (from < len && ((unsigned char)s[from] & 0xC0) == 0x80)
		from++; /* not inside a character */
	/* NULs (git's -z lists) would not read back from the store. */
	json_t *j = memchr(s + from, '\0', len - from) ? NULL : json_stringn(s + from, len - from);
	if (!j) {
		/* Not UTF-8: say so rather than pass bytes on. */
		char *c = malloc(len - from + 1);
		if (!c)
			return json_string("");
		for (size_t i = from; i < len; i++)
			c[i - from] = !s[i] ? '\n' : ((unsigned char)s[i] < 0x80) ? s[i] : '?';
		j = json_stringn(c, len - from);
		free(c);
	}
	return j;
}

json_t *ca_run_json(const char *dir, const char *const *args, const ca_run *r)
{
	json_t *argv = json_pack("[s, s, s, s, s, s, s]", "git", "-c", CA_GIT_NO_HOOKS, "-c",
				 CA_GIT_NO_FSMONITOR, "-C", dir);
	for (size_t i = 0; args[i]; i++)
		json_array_append_new(argv, json_string(args[i]));
	return json_pack("{s:s, s:o, s:i, s:o, s:I}", "kind", "git", "argv", argv, "exit_code",
			 r->exit_code, "output_tail", ca_tail_json(r->out, r->out_len, CA_RUN_TAIL),
			 "ms", (json_int_t)r->ms);
}
