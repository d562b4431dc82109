#include "serve/supervisor/spawn.h"

#include "sdk/listen.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define ENV_TOTAL_MAX 512 /* inherited and extra together */

/* Writes `v` in decimal; async-signal-safe, for use between fork and exec. */
static void utoa(char *out, unsigned long v)
{
	char tmp[24];
	int n = 0;
	do
		tmp[n++] = (char)('0' + v % 10);
	while ((v /= 10));
	while (n)
		*out++ = tmp[--n];
	*out = '\0';
}

static bool env_overridden(const char *entry, const char *const *extra)
{
	const char *eq = strchr(entry, '=');
	size_t klen = eq ? (size_t)(eq - entry) : strlen(entry);
	if ((klen == 10 && !strncmp(entry, "LISTEN_PID", 10)) ||
	    (klen == 12 && !strncmp(entry, "WATCHDOG_PID", 12)))
		return true;
	for (size_t i = 0; extra[i]; i++)
		if (!strncmp(extra[i], entry, klen) &&
		    (extra[i][klen] == '=' || extra[i][klen] == '\0'))
			return true;
	return false;
}

/* Only async-signal-safe calls from here to exec: the parent may have
 * threads, and they left locks held in this copy of the address space. */
static void __attribute__((noreturn))
child(const sup_spawn_opts *o, char **envp, char *pid_slot, char *wd_slot, int err_fd,
      pid_t parent)
{
	setpgid(0, 0);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent) /* the parent died before prctl took effect */
		_exit(127);

	/* Before exec, so that every thread the kernel starts has it too. */
	if (o->nice > 0 && setpriority(PRIO_PROCESS, 0, o->nice) < 0)
		goto fail;

	sigset_t all;
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);

	int fd3 = SDK_LISTEN_FDS_START;
	if (o->listen_fd >= 0) {
		if (o->listen_fd == fd3)
			fcntl(fd3, F_SETFD, 0);
		else if (dup2(o->listen_fd, fd3) < 0)
			goto fail;
	}
	if (o->stdout_fd > STDERR_FILENO &&
	    (dup2(o->stdout_fd, STDOUT_FILENO) < 0 || dup2(o->stdout_fd, STDERR_FILENO) < 0))
		goto fail;
	int null = open("/dev/null", O_RDONLY);
	if (null > STDIN_FILENO) {
		dup2(null, STDIN_FILENO);
		close(null); /* fd 3 is the listening socket's, or nobody's */
	}
	utoa(pid_slot, (unsigned long)getpid());
	utoa(wd_slot, (unsigned long)getpid());
	environ = envp;
	execvp(o->argv[0], (char *const *)o->argv);
fail:;
	int e = errno;
	ssize_t w = write(err_fd, &e, sizeof e);
	(void)w;
	_exit(127);
}

int sup_spawn_exec_result(int exec_fd)
{
	int child_errno = 0;
	ssize_t r;
	do
		r = read(exec_fd, &child_errno, sizeof child_errno);
	while (r < 0 && errno == EINTR);
	if (r == (ssize_t)sizeof child_errno)
		return child_errno;
	if (r < 0 && errno == EAGAIN)
		return -EAGAIN;
	return 0;
}

pid_t sup_spawn(const sup_spawn_opts *o, int *exec_fd)
{
	/* The environment is built before fork: the child only fills its pid in. */
	char *envp[ENV_TOTAL_MAX];
	char listen_pid[32] = "LISTEN_PID=", watchdog_pid[32] = "WATCHDOG_PID=";
	size_t n = 0;
	for (char **e = environ; *e && n < ENV_TOTAL_MAX - SPAWN_ENV_MAX - 2; e++)
		if (!env_overridden(*e, o->env))
			envp[n++] = *e;
	for (size_t i = 0; o->env[i] && i < SPAWN_ENV_MAX; i++)
		if (strchr(o->env[i], '='))
			envp[n++] = (char *)o->env[i];
	if (o->listen_fd >= 0)
		envp[n++] = listen_pid;
	if (o->watchdog_pid)
		envp[n++] = watchdog_pid;
	envp[n] = NULL;

	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(pipefd[0]);
		close(pipefd[1]);
		return -e;
	}
	if (pid == 0) {
		close(pipefd[0]);
		child(o, envp, listen_pid + strlen("LISTEN_PID="),
		      watchdog_pid + strlen("WATCHDOG_PID="), pipefd[1], parent);
	}
	/* Both sides set the group, so a kill of -pid works whichever runs first. */
	setpgid(pid, pid);
	close(pipefd[1]);
	if (exec_fd) {
		fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
		*exec_fd = pipefd[0];
		return pid;
	}
	int child_errno = sup_spawn_exec_result(pipefd[0]);
	close(pipefd[0]);
	if (child_errno > 0) {
		/* exec failed and the child is exiting: reap it here, not as a crash. */
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		return -child_errno;
	}
	return pid;
}

int sup_split_command(const char *cmd, char *buf, size_t buflen, char **argv, int max)
{
	int argc = 0;
	size_t o = 0;
	const char *p = cmd;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		if (argc == max - 1)
			return -1;
		argv[argc++] = buf + o;
		char quote = 0;
		while (*p && (quote || (*p != ' ' && *p != '\t'))) {
			if (!quote && (*p == '\'' || *p == '"')) {
				quote = *p++;
				continue;
			}
			if (quote && *p == quote) {
				quote = 0;
				p++;
				continue;
			}
			if (o + 1 >= buflen)
				return -1;
			buf[o++] = *p++;
		}
		if (quote || o >= buflen)
			return -1;
		buf[o++] = '\0';
	}
	argv[argc] = NULL;
	return argc ? argc : -1;
}
