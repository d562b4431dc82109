/* `grace backup FILE`: asks the running API for a backup (POST /backup)
 * and writes the archive to FILE atomically (FILE.tmp, fsync, rename), so
 * FILE is either a whole archive or not there. The answer is streamed to
 * disk as it comes: an archive may be larger than memory. */
#include "cli/backup.h"

#include "cli/secret.h"
#include "kernels/registry.h"
#include "cli/oneshot.h"
#include "serve/backup/seal.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define ERROR_BODY_MAX 65536
/* A large data directory takes a while to copy before the first byte. */
#define BACKUP_TIMEOUT_S 3600

static int fail(int code, const char *fmt, const char *a, const char *b)
{
	fprintf(stderr, "grace: ");
	fprintf(stderr, fmt, a, b);
	fputc('\n', stderr);
	return code;
}

/* The first line of a file (a passphrase file), without its newline. */
static int read_first_line(const char *path, char *out, size_t len)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	char *ok = fgets(out, (int)len, f);
	fclose(f);
	if (!ok)
		return -1;
	out[strcspn(out, "\r\n")] = '\0';
	return 0;
}

/* The request body: {"passphrase"}, {"key"} or {"no_secrets":true}. */
static char *request_body(const char *pass_file, const char *key_file, bool no_secrets)
{
	json_t *b = NULL;
	if (no_secrets) {
		b = json_pack("{s:b}", "no_secrets", 1);
	} else if (key_file) {
		unsigned char master[BK_KEY_BYTES];
		sdk_err e;
		if (bk_master_read(key_file, false, master, &e) < 0) {
			fprintf(stderr, "grace: %s: %s\n", key_file, e.msg);
			return NULL;
		}
		char hex[2 * BK_KEY_BYTES + 1];
		sodium_bin2hex(hex, sizeof hex, master, sizeof master);
		b = json_pack("{s:s}", "key", hex);
		sodium_memzero(master, sizeof master);
		sodium_memzero(hex, sizeof hex);
	} else {
		char pass[BK_PASSPHRASE_MAX + 2], again[BK_PASSPHRASE_MAX + 2];
		if (pass_file) {
			if (read_first_line(pass_file, pass, sizeof pass) < 0) {
				fprintf(stderr, "grace: cannot read %s\n", pass_file);
				return NULL;
			}
		} else if (cli_password_read("Backup passphrase: ", pass, sizeof pass) < 0 ||
			   (isatty(0) &&
			    (cli_password_read("Again: ", again, sizeof again) < 0 ||
			     strcmp(pass, again)))) {
			fprintf(stderr, "grace: the passphrases differ, or none was given\n");
			return NULL;
		}
		b = json_pack("{s:s}", "passphrase", pass);
		sodium_memzero(pass, sizeof pass);
		sodium_memzero(again, sizeof again);
	}
	char *s = b ? json_dumps(b, JSON_COMPACT) : NULL;
	json_decref(b);
	return s;
}

/* Prints the API's JSON error from `body`; the exit status for it. */
static int report(long status, const char *body, size_t n)
{
	json_t *j = json_loadb(body, n, 0, NULL), *e = json_object_get(j, "error");
	const char *code = json_string_value(json_object_get(e, "code"));
	const char *msg = json_string_value(json_object_get(e, "message"));
	fprintf(stderr, "grace: %ld %s: %s\n", status, code ? code : "error",
		msg ? msg : "the API answered without an error message");
	if (status == 401)
		fprintf(stderr, "grace: log in first: grace login NAME\n");
	json_decref(j);
	return status == 400 ? CLI_BACKUP_USAGE : CLI_BACKUP_FAILED;
}

/* Every answer's body goes to the file; an error's is read back from it. */
static int to_file(const char *b, size_t n, void *arg)
{
	int *out = arg;
	return write(*out, b, n) == (ssize_t)n ? 0 : -1;
}

/* Sends the request and writes the 200 answer's body to `out`. */
static int fetch(int port, const char *token, const char *body, int out, oneshot_answer *a)
{
	char headers[256];
	snprintf(headers, sizeof headers,
		 "Content-Type: application/json\r\nAuthorization: Bearer %.120s\r\n", token);
	int rc = oneshot_request(port, "POST", "/backup", headers, body, strlen(body),
				 BACKUP_TIMEOUT_S, to_file, &out, a);
	if (rc < 0 && a->status == 0) {
		fprintf(stderr, "grace: cannot reach the API on 127.0.0.1:%d: %s\n", port,
			a->error);
		return CLI_BACKUP_UNREACHABLE;
	}
	if (a->status != 200) {
		char eb[ERROR_BODY_MAX];
		ssize_t n = pread(out, eb, sizeof eb, 0);
		return report(a->status, eb, n > 0 ? (size_t)n : 0);
	}
	if (rc < 0) {
		fprintf(stderr, "grace: the archive is incomplete (%lld of %lld bytes): %s\n",
			a->received, a->length, a->error);
		return CLI_BACKUP_FAILED;
	}
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: grace backup FILE [--passphrase-file F | --key-file F | "
			"--no-secrets] [--force] [--json] [--port N] [--config F]\n"
			"  takes a backup of the running Grace (admin); see docs/backup.md\n");
}

int cli_backup_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "passphrase-file", required_argument, NULL, 'P' },
		{ "key-file", required_argument, NULL, 'k' },
		{ "no-secrets", no_argument, NULL, 'n' },
		{ "force", no_argument, NULL, 'f' },
		{ "json", no_argument, NULL, 'j' },
		{ "port", required_argument, NULL, 'u' },
		{ "config", required_argument, NULL, 'c' },
		{ "port-offset", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ 0, 0, 0, 0 },
	};
	const char *pass_file = NULL, *key_file = NULL, *port_arg = NULL;
	bool no_secrets = false, force = false, as_json = false;
	grace_config_overrides ov = { 0 };
	int o;
	optind = 2;
	while ((o = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (o) {
		case 'P': pass_file = optarg; break;
		case 'k': key_file = optarg; break;
		case 'n': no_secrets = true; break;
		case 'f': force = true; break;
		case 'j': as_json = true; break;
		case 'u': port_arg = optarg; break;
		case 'c': ov.config_path = optarg; break;
		case 'p': ov.port_offset = optarg; break;
		case 'h': usage(); return 0;
		default: usage(); return CLI_BACKUP_USAGE;
		}
	}
	if (optind != argc - 1 || (pass_file != NULL) + (key_file != NULL) + no_secrets > 1) {
		usage();
		return CLI_BACKUP_USAGE;
	}
	const char *path = argv[optind];
	struct stat sb;
	if (!force && stat(path, &sb) == 0)
		return fail(CLI_BACKUP_USAGE, "%s exists; --force replaces it%s", path, "");
	int port;
	if (port_arg) {
		port = atoi(port_arg);
	} else {
		static grace_config cfg;
		sdk_err err;
		if (grace_config_read(&cfg, kernel_registry_all(), kernel_registry_count(), &ov,
				      &err) < 0)
			return fail(CLI_BACKUP_USAGE, "%s%s", err.msg, "");
		port = cfg.api_port + cfg.port_offset;
	}
	if (port <= 0 || port > 65535)
		return fail(CLI_BACKUP_USAGE, "--port must be a TCP port%s%s", "", "");
	char token[96];
	cli_token_read(token, sizeof token);
	if (!token[0])
		return fail(CLI_BACKUP_USAGE, "log in first: grace login NAME%s%s", "", "");
	if (sodium_init() < 0)
		return fail(CLI_BACKUP_FAILED, "cannot start libsodium%s%s", "", "");
	char *body = request_body(pass_file, key_file, no_secrets);
	if (!body)
		return CLI_BACKUP_USAGE;
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
		free(body);
		return fail(CLI_BACKUP_USAGE, "%s: path too long%s", path, "");
	}
	/* Read and write: an error answer is read back from it (fetch). */
	int out = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0) {
		free(body);
		return fail(CLI_BACKUP_FAILED, "cannot create %s: %s", tmp, strerror(errno));
	}
	oneshot_answer f;
	int rc = fetch(port, token, body, out, &f);
	sodium_memzero(body, strlen(body));
	free(body);
	if (!rc && fsync(out) < 0)
		rc = fail(CLI_BACKUP_FAILED, "cannot sync %s: %s", tmp, strerror(errno));
	close(out);
	if (!rc && rename(tmp, path) < 0)
		rc = fail(CLI_BACKUP_FAILED, "cannot rename %s: %s", tmp, strerror(errno));
	if (rc) {
		unlink(tmp);
		return rc;
	}
	if (as_json) {
		json_t *j = json_pack("{s:s, s:I, s:I}", "file", path, "bytes", (json_int_t)f.received,
				      "files", (json_int_t)atol(f.files));
		char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
		if (s)
			puts(s);
		free(s);
		json_decref(j);
	} else
		printf("backup written to %s: %lld bytes, %s files (grace restore checks it)\n",
		       path, f.received, f.files[0] ? f.files : "?");
	return 0;
}
