#include "kernels/executor/spec.h"
#include "sdk/json_keys.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int bad(char field[EXE_FIELD_MAX], const char *name, sdk_err *err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int bad(char field[EXE_FIELD_MAX], const char *name, sdk_err *err, const char *fmt, ...)
{
	snprintf(field, EXE_FIELD_MAX, "%s", name);
	if (err) {
		char why[200];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(why, sizeof why, fmt, ap);
		va_end(ap);
		snprintf(err->msg, sizeof err->msg, "%s: %s", name, why);
	}
	return SDK_EINVAL;
}

static int check_keys(json_t *o, const char *const *allowed, const char *prefix,
		      char field[EXE_FIELD_MAX], sdk_err *err)
{
	const char *key = sdk_json_unknown_key(o, allowed);
	if (!key)
		return 0;
	char path[EXE_FIELD_MAX];
	snprintf(path, sizeof path, "%s%.40s", prefix, key);
	return bad(field, path, err, "unknown field");
}

/* A number in [lo, hi] (`def` when absent); the value is written back. */
static int num(json_t *o, const char *key, const char *path, uint64_t lo, uint64_t hi,
	       uint64_t def, uint64_t *out, char field[EXE_FIELD_MAX], sdk_err *err)
{
	json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v)) {
		*out = def;
		if (def)
			json_object_set_new(o, key, json_integer((json_int_t)def));
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) < lo || (uint64_t)json_integer_value(v) > hi)
		return bad(field, path, err, "an integer from %llu to %llu", (unsigned long long)lo,
			   (unsigned long long)hi);
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

static bool has_nul_free_text(json_t *v)
{
	return json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v);
}

bool exe_env_name_allowed(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > 128 || (name[0] >= '0' && name[0] <= '9'))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_'))
			return false;
	}
	/* glibc's unsecure variables (they change what a program loads or
	 * resolves), and shell function imports. */
	static const char *const prefixes[] = { "LD_", "BASH_FUNC", "MALLOC_", "GLIBC_", NULL };
	static const char *const names[] = { "GCONV_PATH", "GETCONF_DIR", "HOSTALIASES",
					     "LOCALDOMAIN", "LOCPATH", "NIS_PATH", "NLSPATH",
					     "RESOLV_HOST_CONF", "RES_OPTIONS", "TZDIR",
					     "IFS", "ENV", "BASH_ENV", "SHELLOPTS", "PS4", NULL };
	for (size_t i = 0; prefixes[i]; i++)
		if (!strncmp(name, prefixes[i], strlen(prefixes[i])))
			return false;
	for (size_t i = 0; names[i]; i++)
		if (!strcmp(name, names[i]))
			return false;
	return true;
}

static int parse_program(json_t *body, char field[EXE_FIELD_MAX], sdk_err *err)
{
	json_t *argv = json_object_get(body, "argv");
	json_t *shell = json_object_get(body, "shell");
	if ((argv && !json_is_null(argv)) == (shell && !json_is_null(shell)))
		return bad(field, "argv", err, "give argv (an array) or shell (a command line), one");
	if (shell && !json_is_null(shell)) {
		if (!has_nul_free_text(shell) || json_string_length(shell) == 0 ||
		    json_string_length(shell) > EXE_ARG_BYTES_MAX)
			return bad(field, "shell", err, "a command line of 1 to %u bytes",
				   EXE_ARG_BYTES_MAX);
		return 0;
	}
	if (!json_is_array(argv) || json_array_size(argv) == 0 ||
	    json_array_size(argv) > EXE_ARGV_MAX)
		return bad(field, "argv", err, "an array of 1 to %d strings", EXE_ARGV_MAX);
	size_t bytes = 0, i;
	json_t *a;
	json_array_foreach(argv, i, a) {
		if (!has_nul_free_text(a)) {
			char f[32];
			snprintf(f, sizeof f, "argv[%zu]", i);
			return bad(field, f, err, "a string without NUL");
		}
		bytes += json_string_length(a) + 1;
	}
	if (bytes > EXE_ARG_BYTES_MAX)
		return bad(field, "argv", err, "at most %u bytes in all", EXE_ARG_BYTES_MAX);
	const char *prog = json_string_value(json_array_get(argv, 0));
	if (prog[0] != '/')
		return bad(field, "argv[0]", err,
			   "\"%.100s\" is a relative path: give the program's absolute path "
			   "(no PATH search)", prog);
	struct stat st;
	if (stat(prog, &st) < 0 || !S_ISREG(st.st_mode))
		return bad(field, "argv[0]", err, "no program at \"%.100s\"", prog);
	if (!(st.st_mode & 0111))
		return bad(field, "argv[0]", err, "\"%.100s\" is not executable", prog);
	return 0;
}

static int parse_env(json_t *body, char field[EXE_FIELD_MAX], sdk_err *err)
{
	json_t *env = json_object_get(body, "env");
	if (!env || json_is_null(env))
		return 0;
	if (!json_is_object(env) || json_object_size(env) > EXE_ENV_MAX)
		return bad(field, "env", err, "an object of at most %d string values", EXE_ENV_MAX);
	size_t bytes = 0;
	const char *k;
	json_t *v;
	json_object_foreach(env, k, v) {
		char f[EXE_FIELD_MAX];
		snprintf(f, sizeof f, "env.%.50s", k);
		if (!exe_env_name_allowed(k))
			return bad(field, f, err,
				   "not allowed: a name of letters, digits and _, and none of LD_*, "
				   "BASH_FUNC*, MALLOC_*, GCONV_PATH and the like");
		if (!has_nul_free_text(v))
			return bad(field, f, err, "a string without NUL");
		bytes += strlen(k) + json_string_length(v) + 2;
	}
	if (bytes > EXE_ENV_BYTES_MAX)
		return bad(field, "env", err, "at most %u bytes in all", EXE_ENV_BYTES_MAX);
	return 0;
}

static int parse_limits(json_t *body, const grace_executor *cfg, exe_spec *s,
			char field[EXE_FIELD_MAX], sdk_err *err)
{
	int rc;
	exe_limits *l = &s->limits;
	if ((rc = num(body, "timeout_ms", "timeout_ms", 100, cfg->timeout_max_ms,
		      cfg->timeout_default_ms, &l->timeout_ms, field, err)) < 0)
		return rc;
	uint64_t grace = cfg->kill_grace_ms;
	json_t *g = json_object_get(body, "kill_grace_ms");
	if ((!g || json_is_null(g)) && grace == 0)
		json_object_set_new(body, "kill_grace_ms", json_integer(0));
	if ((rc = num(body, "kill_grace_ms", "kill_grace_ms", 0, EXE_KILL_GRACE_MAX_MS, grace,
		      &l->kill_grace_ms, field, err)) < 0)
		return rc;
	json_t *lim = json_object_get(body, "limits");
	if (!lim || json_is_null(lim)) {
		lim = json_object();
		json_object_set_new(body, "limits", lim);
	}
	if (!json_is_object(lim))
		return bad(field, "limits", err, "an object");
	static const char *const keys[] = { "cpu_s", "memory_bytes", "pids", "nofile",
					    "output_bytes", NULL };
	if ((rc = check_keys(lim, keys, "limits.", field, err)) < 0)
		return rc;
	if ((rc = num(lim, "cpu_s", "limits.cpu_s", 1, EXE_CPU_MAX_S, 0, &l->cpu_s, field, err)) < 0 ||
	    (rc = num(lim, "memory_bytes", "limits.memory_bytes", EXE_MEMORY_MIN, EXE_MEMORY_MAX, 0,
		      &l->memory_bytes, field, err)) < 0 ||
	    (rc = num(lim, "pids", "limits.pids", 1, EXE_PIDS_MAX, EXE_PIDS_DEFAULT, &l->pids, field,
		      err)) < 0 ||
	    (rc = num(lim, "nofile", "limits.nofile", EXE_NOFILE_MIN, EXE_NOFILE_MAX,
		      EXE_NOFILE_DEFAULT, &l->nofile, field, err)) < 0)
		return rc;
	json_t *ob = json_object_get(lim, "output_bytes");
	if ((!ob || json_is_null(ob)) && cfg->output_default_bytes == 0)
		json_object_set_new(lim, "output_bytes", json_integer(0));
	return num(lim, "output_bytes", "limits.output_bytes", 0, cfg->output_max_bytes,
		   cfg->output_default_bytes, &l->output_bytes, field, err);
}

static int parse_sandbox(json_t *body, exe_spec *s, char field[EXE_FIELD_MAX], sdk_err *err)
{
	json_t *sb = json_object_get(body, "sandbox");
	s->seccomp = true;
	json_t *sc = json_object_get(body, "seccomp");
	if (sc && !json_is_null(sc)) {
		if (!json_is_boolean(sc))
			return bad(field, "seccomp", err, "true or false");
		s->seccomp = json_is_true(sc);
	}
	if (!sb || json_is_null(sb) || json_is_false(sb))
		return 0;
	if (json_is_true(sb)) {
		sb = json_object();
		json_object_set_new(body, "sandbox", sb);
	}
	if (!json_is_object(sb))
		return bad(field, "sandbox", err,
			   "true, or {\"network\": false, \"readonly_root\": true}");
	static const char *const keys[] = { "network", "readonly_root", NULL };
	int rc = check_keys(sb, keys, "sandbox.", field, err);
	if (rc < 0)
		return rc;
	json_t *n = json_object_get(sb, "network"), *r = json_object_get(sb, "readonly_root");
	if ((n && !json_is_boolean(n)) || (r && !json_is_boolean(r)))
		return bad(field, n && !json_is_boolean(n) ? "sandbox.network" : "sandbox.readonly_root",
			   err, "true or false");
	s->sandbox = true;
	s->net = json_is_true(n);
	s->readonly_root = !r || json_is_true(r);
	json_object_set_new(sb, "network", json_boolean(s->net));
	json_object_set_new(sb, "readonly_root", json_boolean(s->readonly_root));
	return 0;
}

static int parse(json_t *body, const grace_executor *cfg, exe_spec *s, char field[EXE_FIELD_MAX],
		 sdk_err *err)
{
	static const char *const keys[] = { "argv",	"shell",    "env",	   "stdin",
					    "timeout_ms", "kill_grace_ms", "limits", "sandbox",
					    "seccomp",	"priority", "idempotency_key", "name",
					    "dir",	NULL };
	int rc;
	if ((rc = check_keys(body, keys, "", field, err)) < 0 ||
	    (rc = parse_program(body, field, err)) < 0 || (rc = parse_env(body, field, err)) < 0)
		return rc;
	json_t *in = json_object_get(body, "stdin");
	if (in && !json_is_null(in) && (!json_is_string(in) || json_string_length(in) > EXE_STDIN_MAX))
		return bad(field, "stdin", err, "a string of at most %u bytes", EXE_STDIN_MAX);
	uint64_t prio;
	if ((rc = num(body, "priority", "priority", 0, EXE_PRIORITY_MAX, 0, &prio, field, err)) < 0)
		return rc;
	s->priority = (int)prio;
	json_t *key = json_object_get(body, "idempotency_key");
	if (key && !json_is_null(key)) {
		if (!has_nul_free_text(key) || json_string_length(key) == 0 ||
		    json_string_length(key) > EXE_KEY_MAX)
			return bad(field, "idempotency_key", err, "1 to %d characters", EXE_KEY_MAX);
		snprintf(s->key, sizeof s->key, "%s", json_string_value(key));
	}
	json_t *name = json_object_get(body, "name");
	if (name && !json_is_null(name)) {
		if (!has_nul_free_text(name) || json_string_length(name) > EXE_NAME_MAX)
			return bad(field, "name", err, "at most %d characters", EXE_NAME_MAX);
		snprintf(s->name, sizeof s->name, "%s", json_string_value(name));
	}
	json_t *dir = json_object_get(body, "dir");
	if (dir && !json_is_null(dir)) {
		const char *d = json_string_value(dir);
		if (!has_nul_free_text(dir) || d[0] != '/' || json_string_length(dir) >= sizeof s->dir)
			return bad(field, "dir", err, "an absolute path of fewer than %zu bytes",
				   sizeof s->dir);
		snprintf(s->dir, sizeof s->dir, "%s", d);
	}
	if ((rc = parse_limits(body, cfg, s, field, err)) < 0)
		return rc;
	return parse_sandbox(body, s, field, err);
}

int exe_spec_parse(json_t *body, const grace_executor *cfg, exe_spec *out,
		   char field[EXE_FIELD_MAX], sdk_err *err)
{
	field[0] = '\0';
	exe_spec s = { 0 };
	if (!json_is_object(body))
		return bad(field, "job", err, "an object");
	s.json = json_deep_copy(body);
	if (!s.json)
		return sdk_fail(err, SDK_EIO, "out of memory");
	int rc = parse(s.json, cfg, &s, field, err);
	if (rc < 0) {
		exe_spec_free(&s);
		return rc;
	}
	*out = s;
	return 0;
}

int exe_spec_load(const char *json_text, const grace_executor *cfg, exe_spec *out, sdk_err *err)
{
	json_t *j = json_loads(json_text, 0, NULL);
	if (!j)
		return sdk_fail(err, SDK_ECORRUPT, "a stored job spec no longer reads");
	char field[EXE_FIELD_MAX];
	/* The limits it was accepted with hold, whatever the configuration
	 * says now: read them with no upper bounds of the configuration. */
	grace_executor loose = *cfg;
	loose.timeout_max_ms = UINT32_MAX;
	loose.output_max_bytes = (size_t)1 << 40;
	int rc = exe_spec_parse(j, &loose, out, field, err);
	json_decref(j);
	return rc;
}

void exe_spec_free(exe_spec *s)
{
	json_decref(s->json);
	s->json = NULL;
}

int exe_spec_argv(const exe_spec *s, const char ***out, size_t *n)
{
	json_t *argv = json_object_get(s->json, "argv");
	json_t *shell = json_object_get(s->json, "shell");
	size_t count = json_is_array(argv) ? json_array_size(argv) : 3;
	const char **v = calloc(count + 1, sizeof *v);
	if (!v)
		return SDK_EIO;
	if (json_is_array(argv)) {
		for (size_t i = 0; i < count; i++)
			v[i] = json_string_value(json_array_get(argv, i));
	} else {
		v[0] = EXE_SHELL;
		v[1] = "-c";
		v[2] = json_string_value(shell);
	}
	*out = v;
	*n = count;
	return 0;
}
