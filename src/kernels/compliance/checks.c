#include "kernels/compliance/checks.h"

#include <errno.h>
#include <glob.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

json_t *cmp_result_new(const char *result, const char *message)
{
	return json_pack("{s:s, s:s, s:[]}", "result", result, "message", message, "evidence");
}

void cmp_result_evidence(json_t *result, const char *read, const char *data, size_t len)
{
	unsigned char h[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(h, (const unsigned char *)data, len);
	char hex[2 * sizeof h + 1];
	sodium_bin2hex(hex, sizeof hex, h, sizeof h);
	size_t keep = len > CMP_EVIDENCE_MAX ? CMP_EVIDENCE_MAX : len;
	while (keep < len && keep > 0 && ((unsigned char)data[keep] & 0xC0) == 0x80)
		keep--; /* cut on a character's first byte */
	json_t *ev = json_pack("{s:s, s:s%, s:s, s:b}", "read", read, "data", data, keep, "sha256",
			       hex, "truncated", keep < len);
	/* JSON holds UTF-8 only (a file's name may be anything, and a cut may
	 * split a character): the hash stays that of what was read. */
	if (!ev)
		ev = json_pack("{s:s, s:s, s:s, s:b}", "read", read ? read : "?", "data",
			       "(not valid UTF-8: see sha256)", "sha256", hex, "truncated", true);
	json_array_append_new(json_object_get(result, "evidence"), ev);
}

/* ---- file_mode */

static json_t *check_file_mode(const json_t *check, const cmp_env *env)
{
	const char *rel = json_string_value(json_object_get(check, "path"));
	unsigned max = (unsigned)strtoul(json_string_value(json_object_get(check, "max_mode")), NULL, 8);
	json_t *os = json_object_get(check, "owner_self");
	bool owner_self = !os || json_is_true(os);
	char pattern[PATH_MAX + 256];
	if (!strcmp(rel, "."))
		snprintf(pattern, sizeof pattern, "%s", env->data_dir);
	else
		snprintf(pattern, sizeof pattern, "%s/%s", env->data_dir, rel);
	glob_t g;
	int grc = glob(pattern, 0, NULL, &g);
	if (grc == GLOB_NOMATCH) {
		json_t *r = cmp_result_new("not_applicable", "no file matches");
		cmp_result_evidence(r, pattern, "", 0);
		return r;
	}
	if (grc != 0)
		return cmp_result_new("error", "cannot list the files");
	char *data = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&data, &len);
	unsigned bad = 0, failed_stat = 0;
	uid_t me = geteuid();
	for (size_t i = 0; i < g.gl_pathc && mem; i++) {
		struct stat st;
		const char *p = g.gl_pathv[i];
		const char *shown = p + strlen(env->data_dir);
		shown = *shown == '/' ? shown + 1 : *shown ? shown : ".";
		if (lstat(p, &st) < 0) {
			fprintf(mem, "%s: %s\n", shown, strerror(errno));
			failed_stat++;
			continue;
		}
		unsigned mode = (unsigned)st.st_mode & 07777;
		bool ok = (mode & ~max) == 0 && (!owner_self || st.st_uid == me) && !S_ISLNK(st.st_mode);
		fprintf(mem, "%s mode=%04o uid=%u%s%s\n", shown, mode, (unsigned)st.st_uid,
			S_ISLNK(st.st_mode) ? " symlink" : "", ok ? "" : " BAD");
		bad += !ok;
	}
	size_t n = g.gl_pathc;
	globfree(&g);
	if (!mem)
		return cmp_result_new("error", "out of memory");
	fclose(mem);
	char msg[200];
	json_t *r;
	if (failed_stat) {
		snprintf(msg, sizeof msg, "%u of %zu files could not be read", failed_stat, n);
		r = cmp_result_new("error", msg);
	} else if (bad) {
		snprintf(msg, sizeof msg, "%u of %zu files have a mode above %04o%s", bad, n, max,
			 owner_self ? " or another owner" : "");
		r = cmp_result_new("fail", msg);
	} else {
		snprintf(msg, sizeof msg, "%zu files within %04o%s", n, max,
			 owner_self ? ", owned by Grace's user" : "");
		r = cmp_result_new("pass", msg);
	}
	char read[PATH_MAX + 300];
	snprintf(read, sizeof read, "lstat %s", pattern);
	cmp_result_evidence(r, read, data ? data : "", data ? len : 0);
	free(data);
	return r;
}

/* ---- configuration */

static bool config_value(const grace_config *cfg, const char *key, long long *out)
{
	static const struct {
		const char *key;
		size_t off;
	} table[] = {
		{ "auth.argon2_ops", offsetof(grace_auth, argon2_ops) },
		{ "auth.argon2_mem_kib", offsetof(grace_auth, argon2_mem_kib) },
		{ "auth.session_idle_s", offsetof(grace_auth, session_idle_s) },
		{ "auth.session_max_s", offsetof(grace_auth, session_max_s) },
		{ "auth.login_failures_max", offsetof(grace_auth, login_failures_max) },
		{ "auth.login_window_s", offsetof(grace_auth, login_window_s) },
	};
	for (size_t i = 0; i < sizeof table / sizeof *table; i++)
		if (!strcmp(table[i].key, key)) {
			*out = *(const unsigned *)((const char *)&cfg->auth + table[i].off);
			return true;
		}
	if (!strcmp(key, "auth.self_registration")) {
		*out = cfg->auth.self_registration;
		return true;
	}
	return false;
}

static const char *config_source(const cmp_env *env)
{
	return env->cfg->path[0] ? env->cfg->path : "the built-in defaults";
}

static json_t *check_config(const json_t *check, const cmp_env *env)
{
	const char *key = json_string_value(json_object_get(check, "key"));
	long long v;
	if (!config_value(env->cfg, key, &v))
		return cmp_result_new("error", "unknown configuration key");
	json_t *lo = json_object_get(check, "min"), *hi = json_object_get(check, "max");
	bool ok = (!lo || v >= json_integer_value(lo)) && (!hi || v <= json_integer_value(hi));
	char msg[200], data[200], read[PATH_MAX + 64];
	snprintf(msg, sizeof msg, "%s = %lld, %s", key, v, ok ? "within bounds" : "out of bounds");
	int n = snprintf(data, sizeof data, "%s=%lld\n", key, v);
	snprintf(read, sizeof read, "configuration (%s)", config_source(env));
	json_t *r = cmp_result_new(ok ? "pass" : "fail", msg);
	cmp_result_evidence(r, read, data, (size_t)n);
	return r;
}

bool cmp_argon2_owasp(unsigned ops, unsigned mem_kib)
{
	/* OWASP Password Storage Cheat Sheet: m=47104 (46 MiB) t=1, m=19456
	 * (19 MiB) t=2, m=12288 t=3, m=9216 t=4, m=7168 t=5, each p=1. */
	static const struct {
		unsigned mem_kib, ops;
	} mins[] = { { 47104, 1 }, { 19456, 2 }, { 12288, 3 }, { 9216, 4 }, { 7168, 5 } };
	for (size_t i = 0; i < sizeof mins / sizeof *mins; i++)
		if (mem_kib >= mins[i].mem_kib && ops >= mins[i].ops)
			return true;
	return false;
}

static json_t *check_argon2(const cmp_env *env)
{
	unsigned ops = env->cfg->auth.argon2_ops, mem = env->cfg->auth.argon2_mem_kib;
	bool ok = cmp_argon2_owasp(ops, mem);
	char msg[200], data[120], read[PATH_MAX + 64];
	snprintf(msg, sizeof msg, "Argon2id t=%u m=%u KiB %s OWASP's minimum", ops, mem,
		 ok ? "meets" : "is below");
	int n = snprintf(data, sizeof data, "auth.argon2_ops=%u\nauth.argon2_mem_kib=%u\n", ops, mem);
	snprintf(read, sizeof read, "configuration (%s)", config_source(env));
	json_t *r = cmp_result_new(ok ? "pass" : "fail", msg);
	cmp_result_evidence(r, read, data, (size_t)n);
	return r;
}

static json_t *check_hosts(const cmp_env *env)
{
	const char *list = env->cfg->auth.allowed_hosts;
	char copy[sizeof env->cfg->auth.allowed_hosts];
	snprintf(copy, sizeof copy, "%s", list);
	bool ok = true;
	char *save;
	for (char *h = strtok_r(copy, ", ", &save); h; h = strtok_r(NULL, ", ", &save))
		if (strchr(h, '*') || !strncmp(h, "0.0.0.0", 7) || !strncmp(h, "[::]", 4))
			ok = false;
	char data[300], read[PATH_MAX + 64];
	int n = snprintf(data, sizeof data, "auth.allowed_hosts=%s\n",
			 list[0] ? list : "(the defaults: 127.0.0.1, localhost, [::1])");
	snprintf(read, sizeof read, "configuration (%s)", config_source(env));
	json_t *r = cmp_result_new(ok ? "pass" : "fail",
				   ok ? "the Host allow-list is on and names hosts only"
				      : "the Host allow-list holds a wildcard or an any-address entry");
	cmp_result_evidence(r, read, data, (size_t)n);
	return r;
}

/* ---- listening sockets */

static bool hex_all(const char *s, size_t n, char c)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != c)
			return false;
	return true;
}

bool cmp_proc_net_line(const char *line, bool v6, unsigned *port, bool *listening,
		       bool *loopback)
{
	char local[64], remote[64], state[8];
	unsigned slot;
	if (sscanf(line, " %u: %63s %63s %7s", &slot, local, remote, state) != 4)
		return false;
	char *colon = strchr(local, ':');
	size_t alen = v6 ? 32 : 8;
	if (!colon || (size_t)(colon - local) != alen)
		return false;
	*port = (unsigned)strtoul(colon + 1, NULL, 16);
	*listening = !strcmp(state, "0A");
	if (!v6) {
		/* little-endian: 127.x.y.z is "..7F" in its last byte pair */
		*loopback = local[6] == '7' && local[7] == 'F';
	} else {
		/* ::1 is 00000000 00000000 00000000 01000000 in kernel words;
		 * ::ffff:127.x.y.z is 00000000 00000000 FFFF0000 ..7F */
		*loopback = (hex_all(local, 24, '0') && !strncmp(local + 24, "01000000", 8)) ||
			    (hex_all(local, 16, '0') && !strncmp(local + 16, "FFFF0000", 8) &&
			     local[30] == '7' && local[31] == 'F');
	}
	return true;
}

static bool grace_port(const grace_config *cfg, unsigned port)
{
	if (port == (unsigned)(cfg->api_port + cfg->port_offset))
		return true;
	for (size_t i = 0; i < cfg->n_kernels; i++)
		if (port == (unsigned)grace_kernel_port(cfg, &cfg->kernels[i]))
			return true;
	return false;
}

static json_t *check_listeners(const cmp_env *env)
{
	char *data = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&data, &len);
	if (!mem)
		return cmp_result_new("error", "out of memory");
	unsigned seen = 0, bad = 0, files = 0;
	for (int v6 = 0; v6 < 2; v6++) {
		char path[PATH_MAX];
		snprintf(path, sizeof path, "%s/%s", env->proc_net_dir, v6 ? "tcp6" : "tcp");
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		files++;
		char line[512];
		while (fgets(line, sizeof line, f)) {
			unsigned port;
			bool listening, loop;
			if (!cmp_proc_net_line(line, v6, &port, &listening, &loop) || !listening ||
			    !grace_port(env->cfg, port))
				continue;
			seen++;
			bad += !loop;
			fprintf(mem, "tcp%s port %u %s\n", v6 ? "6" : "", port,
				loop ? "loopback" : "NOT loopback");
		}
		fclose(f);
	}
	fclose(mem);
	json_t *r;
	char msg[160];
	if (!files) {
		r = cmp_result_new("error", "cannot read the sockets table");
	} else if (bad) {
		snprintf(msg, sizeof msg, "%u of %u listening sockets are not on loopback", bad, seen);
		r = cmp_result_new("fail", msg);
	} else {
		snprintf(msg, sizeof msg, "%u listening sockets, all on loopback", seen);
		r = cmp_result_new("pass", msg);
	}
	char read[PATH_MAX + 64];
	snprintf(read, sizeof read, "%s/tcp and %s/tcp6, Grace's ports", env->proc_net_dir,
		 env->proc_net_dir);
	cmp_result_evidence(r, read, data ? data : "", data ? len : 0);
	free(data);
	return r;
}

/* ---- users with the admin role: read from the main process's database,
 * read-only (WAL: the writer is not disturbed). */

static json_t *check_admins(const cmp_env *env)
{
	char path[PATH_MAX + 16];
	snprintf(path, sizeof path, "%s/grace.db", env->data_dir);
	sqlite3 *db = NULL;
	if (access(path, F_OK) != 0)
		return cmp_result_new("not_applicable", "no users database");
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		sqlite3_close(db);
		return cmp_result_new("error", "cannot open the users database");
	}
	sqlite3_busy_timeout(db, 2000);
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, "SELECT name FROM users WHERE role = 'admin' ORDER BY name", -1,
			       &st, NULL) != SQLITE_OK) {
		sqlite3_close(db);
		return cmp_result_new("not_applicable", "no users table");
	}
	char *data = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&data, &len);
	unsigned n = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && mem) {
		fprintf(mem, "%s\n", (const char *)sqlite3_column_text(st, 0));
		n++;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	if (mem)
		fclose(mem);
	json_t *r;
	if (rc != SQLITE_DONE) {
		r = cmp_result_new("error", "cannot read the users table");
	} else {
		char msg[80];
		snprintf(msg, sizeof msg, "%u users hold the admin role", n);
		r = cmp_result_new("info", msg);
	}
	char read[PATH_MAX + 80];
	snprintf(read, sizeof read, "SELECT name FROM users WHERE role = 'admin' (%s)", path);
	cmp_result_evidence(r, read, data ? data : "", data ? len : 0);
	free(data);
	return r;
}

json_t *cmp_check_local(const json_t *check, const cmp_env *env)
{
	const char *kind = json_string_value(json_object_get(check, "kind"));
	if (!kind)
		return cmp_result_new("error", "no check kind");
	if (!strcmp(kind, "file_mode"))
		return check_file_mode(check, env);
	if (!strcmp(kind, "config"))
		return check_config(check, env);
	if (!strcmp(kind, "argon2_owasp"))
		return check_argon2(env);
	if (!strcmp(kind, "host_allowlist"))
		return check_hosts(env);
	if (!strcmp(kind, "listeners_loopback"))
		return check_listeners(env);
	if (!strcmp(kind, "admin_users"))
		return check_admins(env);
	return cmp_result_new("error", "not a local check kind");
}

/* ---- results */

bool cmp_result_bad(const char *result)
{
	return result && (!strcmp(result, "fail") || !strcmp(result, "error"));
}

bool cmp_result_changed(const char *prev, const char *now)
{
	if (!prev)
		return cmp_result_bad(now); /* a first scan reports only what is wrong */
	return strcmp(prev, now) != 0;
}

void cmp_waiver_apply(json_t *result, const char *id, const json_t *waivers, int64_t now_ms)
{
	const char *r = json_string_value(json_object_get(result, "result"));
	if (!r || strcmp(r, "fail"))
		return;
	size_t i;
	json_t *w;
	json_array_foreach((json_t *)waivers, i, w) {
		const char *cid = json_string_value(json_object_get(w, "control_id"));
		int64_t exp = json_integer_value(json_object_get(w, "expires_ms"));
		if (!cid || strcmp(cid, id) || exp <= now_ms)
			continue;
		json_object_set_new(result, "raw_result", json_string("fail"));
		json_object_set_new(result, "result", json_string("waived"));
		json_object_set(result, "waiver", json_object_get(w, "id"));
		return;
	}
}

bool cmp_kernel_alive(int pid, const char *name, void *arg)
{
	(void)arg;
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
	FILE *f = pid > 0 ? fopen(path, "re") : NULL;
	if (!f)
		return false;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* argv: PROGRAM kernel NAME ...: NUL-separated. */
	const char *a1 = memchr(buf, '\0', n) ? buf + strlen(buf) + 1 : NULL;
	if (!a1 || a1 >= buf + n || strcmp(a1, "kernel"))
		return false;
	const char *a2 = a1 + strlen(a1) + 1;
	return a2 < buf + n && !strcmp(a2, name);
}

bool cmp_identity_verdict(const grace_config *cfg, const json_t *workloads,
			  cmp_kernel_alive_fn alive, void *arg, char *msg, size_t n)
{
	const json_t *list = json_object_get(workloads, "workloads");
	size_t expected = 0, bad = 0, len = 0;
	msg[0] = '\0';
	for (size_t i = 0; i < cfg->n_kernels; i++) {
		const grace_kernel_cfg *kc = &cfg->kernels[i];
		if (!kc->enabled)
			continue;
		expected++;
		const json_t *row = NULL, *w;
		size_t j;
		json_array_foreach(list, j, w) {
			if (json_is_string(json_object_get(w, "name")) &&
			    !strcmp(json_string_value(json_object_get(w, "name")), kc->name))
				row = w;
		}
		json_int_t pid = json_integer_value(json_object_get(row, "pid"));
		const char *why = NULL;
		char whybuf[96];
		if (kc->manager == GRACE_MANAGER_SYSTEMD && !row)
			why = "run by systemd, not attested (enroll its join credential: "
			      "docs/trust.md, \"Under systemd\")";
		else if (!row)
			why = "never attested";
		else if (pid <= 0 || pid > INT32_MAX || !alive((int)pid, kc->name, arg)) {
			snprintf(whybuf, sizeof whybuf,
				 "its attested process (pid %lld) is gone: the running one has no "
				 "identity", (long long)pid);
			why = whybuf;
		}
		if (!why)
			continue;
		if (bad++ < 4 && len < n)
			len += (size_t)snprintf(msg + len, n - len, "%s%s: %s", bad > 1 ? "; " : "",
						kc->name, why);
	}
	if (!bad) {
		snprintf(msg, n, "each of the %zu kernels runs as the process the trust kernel "
				 "attested for its SPIFFE ID", expected);
		return true;
	}
	if (bad > 4 && len < n)
		snprintf(msg + len, n - len, "; and %zu more", bad - 4);
	return false;
}
