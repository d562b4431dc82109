#include "kernels/compliance/profile.h"

#include "sdk/json_keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum ptype { P_STR, P_INT, P_BOOL };

typedef struct cmp_param {
	const char *kind, *name;
	enum ptype type;
	bool required;
} cmp_param;

/* The fixed table of check kinds. A new kind is a row here, its
 * parameters below, and its evaluation in checks.c or compliance.c. */
static const cmp_kind kinds[] = {
	{ "file_mode", CMP_LOCAL, "files under the data directory: mode within max_mode, owned by Grace" },
	{ "config", CMP_LOCAL, "a configuration value within min and max" },
	{ "argon2_owasp", CMP_LOCAL, "the Argon2id cost at or above one of OWASP's minimum configurations" },
	{ "host_allowlist", CMP_LOCAL, "the Host allow-list holds no wildcard or any-address entry" },
	{ "listeners_loopback", CMP_LOCAL, "Grace's listening sockets bound to loopback only" },
	{ "admin_users", CMP_LOCAL, "the users holding the admin role (evidence only)" },
	{ "log_verify", CMP_REMOTE, "the immutable log's /verify passes" },
	{ "key_age", CMP_REMOTE, "every crypto key's newest version younger than max_age_days" },
	{ "kernel_identity", CMP_REMOTE, "every kernel runs as the process the trust kernel attested for its SPIFFE ID" },
};

static const cmp_param params[] = {
	{ "file_mode", "path", P_STR, true },
	{ "file_mode", "max_mode", P_STR, true },
	{ "file_mode", "owner_self", P_BOOL, false },
	{ "config", "key", P_STR, true },
	{ "config", "min", P_INT, false },
	{ "config", "max", P_INT, false },
	{ "key_age", "max_age_days", P_INT, true },
};

static const char *const config_keys[] = {
	"auth.argon2_ops",     "auth.argon2_mem_kib",        "auth.session_idle_s",
	"auth.session_max_s",  "auth.login_failures_max",    "auth.login_window_s",
	"auth.self_registration",
};

const cmp_kind *cmp_kind_find(const char *name)
{
	for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
		if (!strcmp(kinds[i].name, name))
			return &kinds[i];
	return NULL;
}

const cmp_kind *cmp_kinds(size_t *n)
{
	*n = sizeof kinds / sizeof *kinds;
	return kinds;
}

bool cmp_config_key_known(const char *key)
{
	for (size_t i = 0; i < sizeof config_keys / sizeof *config_keys; i++)
		if (!strcmp(config_keys[i], key))
			return true;
	return false;
}

bool cmp_name_valid(const char *name, size_t max)
{
	size_t n = strlen(name);
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.'))
			return false;
	}
	/* OSCAL's token: a letter or _ first (ids become control-ids). */
	char c0 = name[0];
	return (c0 >= 'a' && c0 <= 'z') || (c0 >= 'A' && c0 <= 'Z') || c0 == '_';
}

static const cmp_param *param_find(const char *kind, const char *name)
{
	for (size_t i = 0; i < sizeof params / sizeof *params; i++)
		if (!strcmp(params[i].kind, kind) && !strcmp(params[i].name, name))
			return &params[i];
	return NULL;
}

static bool type_ok(const json_t *v, enum ptype t)
{
	return t == P_STR ? json_is_string(v) : t == P_INT ? json_is_integer(v) : json_is_boolean(v);
}

static const char *type_name(enum ptype t)
{
	return t == P_STR ? "a string" : t == P_INT ? "an integer" : "a boolean";
}

/* An octal mode "0600": 1 to 4 digits 0-7. */
static bool mode_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 4)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '7')
			return false;
	return true;
}

/* A path under the data directory: relative, no "..", a glob allowed. */
static bool path_valid(const char *s)
{
	if (!*s || *s == '/' || strlen(s) > 200)
		return false;
	if (!strcmp(s, ".."))
		return false;
	if (!strncmp(s, "../", 3) || strstr(s, "/../") ||
	    (strlen(s) >= 3 && !strcmp(s + strlen(s) - 3, "/..")))
		return false;
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p < ' ')
			return false;
	return true;
}

static int check_check(const json_t *check, const char *at, sdk_err *err)
{
	if (!json_is_object(check))
		return sdk_fail(err, SDK_EINVAL, "%s.check: must be an object with a kind", at);
	const char *kname = json_string_value(json_object_get(check, "kind"));
	if (!kname)
		return sdk_fail(err, SDK_EINVAL, "%s.check.kind: required, a string", at);
	const cmp_kind *kind = cmp_kind_find(kname);
	if (!kind)
		return sdk_fail(err, SDK_EINVAL, "%s.check.kind: unknown check kind \"%.64s\"", at,
				kname);
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)check, key, v) {
		if (!strcmp(key, "kind"))
			continue;
		const cmp_param *p = param_find(kname, key);
		if (!p)
			return sdk_fail(err, SDK_EINVAL, "%s.check.%.64s: unknown parameter of %s", at,
					key, kname);
		if (!type_ok(v, p->type))
			return sdk_fail(err, SDK_EINVAL, "%s.check.%s: must be %s", at, key,
					type_name(p->type));
	}
	for (size_t i = 0; i < sizeof params / sizeof *params; i++)
		if (!strcmp(params[i].kind, kname) && params[i].required &&
		    !json_object_get(check, params[i].name))
			return sdk_fail(err, SDK_EINVAL, "%s.check.%s: required for %s", at,
					params[i].name, kname);
	if (!strcmp(kname, "file_mode")) {
		if (!path_valid(json_string_value(json_object_get(check, "path"))))
			return sdk_fail(err, SDK_EINVAL,
					"%s.check.path: a path relative to the data directory, without ..",
					at);
		if (!mode_valid(json_string_value(json_object_get(check, "max_mode"))))
			return sdk_fail(err, SDK_EINVAL, "%s.check.max_mode: an octal mode like \"0600\"",
					at);
	}
	if (!strcmp(kname, "config")) {
		const char *ck = json_string_value(json_object_get(check, "key"));
		if (!cmp_config_key_known(ck))
			return sdk_fail(err, SDK_EINVAL, "%s.check.key: unknown configuration key \"%.64s\"",
					at, ck);
		json_t *lo = json_object_get(check, "min"), *hi = json_object_get(check, "max");
		if (!lo && !hi)
			return sdk_fail(err, SDK_EINVAL, "%s.check.min: min or max is required", at);
		if (lo && hi && json_integer_value(lo) > json_integer_value(hi))
			return sdk_fail(err, SDK_EINVAL, "%s.check.min: above max", at);
	}
	if (!strcmp(kname, "key_age")) {
		json_int_t d = json_integer_value(json_object_get(check, "max_age_days"));
		if (d < 1 || d > 36500)
			return sdk_fail(err, SDK_EINVAL, "%s.check.max_age_days: from 1 to 36500", at);
	}
	return 0;
}

static int check_text(const json_t *obj, const char *field, const char *at, size_t max,
		      bool required, sdk_err *err)
{
	json_t *v = json_object_get(obj, field);
	if (!v && !required)
		return 0;
	if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > max)
		return sdk_fail(err, SDK_EINVAL, "%s%s: %s a string of 1 to %zu bytes", at, field,
				required ? "required," : "", max);
	return 0;
}

int cmp_profile_check(const json_t *profile, sdk_err *err)
{
	if (!json_is_object(profile))
		return sdk_fail(err, SDK_EINVAL, "profile: must be a JSON object");
	static const char *const top[] = { "title", "version", "description", "controls", NULL };
	const char *unknown = sdk_json_unknown_key((json_t *)profile, top);
	if (unknown)
		return sdk_fail(err, SDK_EINVAL, "%.64s: unknown field of a profile", unknown);
	if (check_text(profile, "title", "", CMP_TITLE_MAX, true, err) < 0 ||
	    check_text(profile, "version", "", CMP_ID_MAX, false, err) < 0 ||
	    check_text(profile, "description", "", CMP_TEXT_MAX, false, err) < 0)
		return SDK_EINVAL;
	json_t *controls = json_object_get(profile, "controls");
	if (!json_is_array(controls) || json_array_size(controls) == 0 ||
	    json_array_size(controls) > CMP_CONTROLS_MAX)
		return sdk_fail(err, SDK_EINVAL, "controls: required, an array of 1 to %d controls",
				CMP_CONTROLS_MAX);
	size_t i;
	json_t *c;
	json_array_foreach(controls, i, c) {
		char at[32];
		snprintf(at, sizeof at, "controls[%zu]", i);
		if (!json_is_object(c))
			return sdk_fail(err, SDK_EINVAL, "%s: must be an object", at);
		static const char *const fields[] = { "id", "title", "description", "check", NULL };
		unknown = sdk_json_unknown_key(c, fields);
		if (unknown)
			return sdk_fail(err, SDK_EINVAL, "%s.%.64s: unknown field of a control", at,
					unknown);
		const char *id = json_string_value(json_object_get(c, "id"));
		if (!id || !cmp_name_valid(id, CMP_ID_MAX))
			return sdk_fail(err, SDK_EINVAL,
					"%s.id: required, 1 to %d of A-Z a-z 0-9 _ - ., a letter or _ first", at,
					CMP_ID_MAX);
		for (size_t j = 0; j < i; j++)
			if (!strcmp(id, json_string_value(json_object_get(json_array_get(controls, j),
									  "id"))))
				return sdk_fail(err, SDK_EINVAL, "%s.id: \"%s\" is also controls[%zu]'s", at,
						id, j);
		char pre[40];
		snprintf(pre, sizeof pre, "%s.", at);
		if (check_text(c, "title", pre, CMP_TITLE_MAX, true, err) < 0 ||
		    check_text(c, "description", pre, CMP_TEXT_MAX, false, err) < 0)
			return SDK_EINVAL;
		int rc = check_check(json_object_get(c, "check"), at, err);
		if (rc < 0)
			return rc;
	}
	return 0;
}
