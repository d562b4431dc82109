#include "cli/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

int cli_password_read(const char *prompt, char *buf, size_t len)
{
	struct termios old, quiet;
	int tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
	if (tty) {
		fputs(prompt, stderr);
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	}
	char *got = fgets(buf, (int)len, stdin);
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fputc('\n', stderr);
	}
	if (!got)
		return -1;
	buf[strcspn(buf, "\r\n")] = '\0';
	return 0;
}

static int token_path(char *buf, size_t len)
{
	const char *xdg = getenv("XDG_CONFIG_HOME");
	const char *home = getenv("HOME");
	int n;
	if (xdg && *xdg)
		n = snprintf(buf, len, "%s/grace/token", xdg);
	else if (home && *home)
		n = snprintf(buf, len, "%s/.config/grace/token", home);
	else
		return -1;
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

void cli_token_read(char *buf, size_t len)
{
	buf[0] = '\0';
	const char *env = getenv("GRACE_TOKEN");
	if (env && *env) {
		snprintf(buf, len, "%s", env);
		return;
	}
	char path[4096];
	if (token_path(path, sizeof path) < 0)
		return;
	FILE *f = fopen(path, "re");
	if (!f)
		return;
	if (fgets(buf, (int)len, f))
		buf[strcspn(buf, "\r\n")] = '\0';
	else
		buf[0] = '\0';
	fclose(f);
}

static int mkdirs(char *path)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		int rc = mkdir(path, 0700);
		*p = '/';
		if (rc < 0 && errno != EEXIST)
			return -1;
	}
	return 0;
}

int cli_token_write(const char *token, char *path_out, size_t len)
{
	if (token_path(path_out, len) < 0 || mkdirs(path_out) < 0)
		return -1;
	int fd = open(path_out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -1;
	fchmod(fd, 0600);
	size_t n = strlen(token);
	int rc = write(fd, token, n) == (ssize_t)n && write(fd, "\n", 1) == 1 ? 0 : -1;
	close(fd);
	return rc;
}

int cli_token_forget(void)
{
	char path[4096];
	if (token_path(path, sizeof path) < 0)
		return -1;
	return unlink(path) < 0 && errno != ENOENT ? -1 : 0;
}
