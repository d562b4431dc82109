#include "kernels/scheduler/spec.h"
#include "sdk/json_keys.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUS_SUBJECT_MAX 255

static const char *const target_names[] = { "executor", "bus", "route", "workflow" };
static const char *const missed_names[] = { "skip", "run_once", "run_all" };
static const char *const overlap_names[] = { "allow", "forbid", "replace" };
static const char *const role_names[] = { "user", "admin", "kernel" };

const char *sch_target_type_name(sch_target_type t) { return target_names[t]; }
const char *sch_missed_name(sch_missed m) { return missed_names[m]; }
const char *sch_overlap_name(sch_overlap o) { return overlap_names[o]; }
const char *sch_role_name(sch_role r) { return role_names[r]; }

static int name_index(const char *s, const char *const *names, int n)
{
	for (int i = 0; s && i < n; i++)
		if (!strcmp(s, names[i]))
			return i;
	return -1;
}

int sch_role_parse(const char *s, sch_role *out)
{
	int i = name_index(s, role_names, 3);
	if (i < 0)
		return SDK_EINVAL;
	*out = (sch_role)i;
	return 0;
}

int sch_missed_parse(const char *s, sch_missed *out)
{
	int i = name_index(s, missed_names, 3);
	if (i < 0)
		return SDK_EINVAL;
	*out = (sch_missed)i;
	return 0;
}

int sch_overlap_parse(const char *s, sch_overlap *out)
{
	int i = name_index(s, overlap_names, 3);
	if (i < 0)
		return SDK_EINVAL;
	*out = (sch_overlap)i;
	return 0;
}

void sch_spec_free(sch_spec *s)
{
	json_decref(s->target);
	s->target = NULL;
}

/* Sets the field's name and the reason; returns SDK_EINVAL. */
static int bad(char field[SCH_FIELD_MAX], const char *name, sdk_err *err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int bad(char field[SCH_FIELD_MAX], const char *name, sdk_err *err, const char *fmt, ...)
{
	snprintf(field, SCH_FIELD_MAX, "%s", name);
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

static bool printable(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

/* An optional integer field in [lo, hi]; `def` when absent or null. */
static int opt_int(json_t *o, const char *key, const char *path, long long lo, long long hi,
		   long long def, long long *out, char field[SCH_FIELD_MAX], sdk_err *err)
{
	json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v)) {
		*out = def;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
		return bad(field, path, err, "an integer from %lld to %lld", lo, hi);
	*out = json_integer_value(v);
	return 0;
}

static int opt_bool(json_t *o, const char *key, const char *path, bool def, bool *out,
		    char field[SCH_FIELD_MAX], sdk_err *err)
{
	json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v)) {
		*out = def;
		return 0;
	}
	if (!json_is_boolean(v))
		return bad(field, path, err, "true or false");
	*out = json_is_true(v);
	return 0;
}

static int check_keys(json_t *o, const char *const *allowed, const char *prefix,
		      char field[SCH_FIELD_MAX], sdk_err *err)
{
	const char *key = sdk_json_unknown_key(o, allowed);
	if (!key)
		return 0;
	char path[SCH_FIELD_MAX];
	snprintf(path, sizeof path, "%s%.40s", prefix, key);
	return bad(field, path, err, "unknown field");
}

static int parse_bus(json_t *t, sch_spec *s, char field[SCH_FIELD_MAX], sdk_err *err)
{
	static const char *const keys[] = { "type", "subject", "payload", "headers", "idempotent",
					     NULL };
	int rc = check_keys(t, keys, "target.", field, err);
	if (rc < 0)
		return rc;
	json_t *subj = json_object_get(t, "subject");
	const char *sv = json_string_value(subj);
	if (!sv || !*sv || strlen(sv) > BUS_SUBJECT_MAX || strpbrk(sv, " \t*>") ||
	    !printable(sv) || sv[0] == '$')
		return bad(field, "target.subject", err,
			   "a subject of 1 to %d printable characters without spaces, wildcards "
			   "or a leading '$'", BUS_SUBJECT_MAX);
	json_t *h = json_object_get(t, "headers");
	if (h && !json_is_null(h)) {
		if (!json_is_object(h))
			return bad(field, "target.headers", err, "an object of strings");
		const char *k;
		json_t *v;
		json_object_foreach(h, k, v)
			if (!json_is_string(v))
				return bad(field, "target.headers", err, "an object of strings");
	}
	if (!json_object_get(t, "payload"))
		json_object_set_new(t, "payload", json_null());
	return opt_bool(t, "idempotent", "target.idempotent", false, &s->idempotent, field, err);
}

static int parse_route(json_t *t, sch_spec *s, const sch_spec_env *env,
		       char field[SCH_FIELD_MAX], sdk_err *err)
{
	static const char *const keys[] = { "type", "kernel", "method", "path", "body",
					     "timeout_ms", "idempotent", NULL };
	int rc = check_keys(t, keys, "target.", field, err);
	if (rc < 0)
		return rc;
	const char *kernel = json_string_value(json_object_get(t, "kernel"));
	if (!kernel || !*kernel || strlen(kernel) > 31)
		return bad(field, "target.kernel", err, "a kernel's name");
	if (!strcmp(kernel, "scheduler"))
		return bad(field, "target.kernel", err, "a job may not call the scheduler itself");
	if (env && env->kernel_exists && !env->kernel_exists(kernel, env->arg))
		return bad(field, "target.kernel", err, "no kernel named \"%s\" is configured", kernel);
	static const char *const methods[] = { "GET", "POST", "PUT", "PATCH", "DELETE", NULL };
	const char *m = json_string_value(json_object_get(t, "method"));
	if (!m)
		json_object_set_new(t, "method", json_string(m = "POST"));
	bool known = false;
	for (size_t i = 0; methods[i] && !known; i++)
		known = !strcmp(m, methods[i]);
	if (!known)
		return bad(field, "target.method", err, "GET, POST, PUT, PATCH or DELETE");
	const char *path = json_string_value(json_object_get(t, "path"));
	if (!path || path[0] != '/' || strlen(path) > SCH_PATH_MAX || strpbrk(path, " #") ||
	    !printable(path))
		return bad(field, "target.path", err,
			   "a path starting with '/', at most %d characters, without spaces",
			   SCH_PATH_MAX);
	long long timeout;
	rc = opt_int(t, "timeout_ms", "target.timeout_ms", SCH_CALL_TIMEOUT_MIN_MS,
		     SCH_CALL_TIMEOUT_MAX_MS, SCH_CALL_TIMEOUT_DEFAULT_MS, &timeout, field, err);
	if (rc < 0)
		return rc;
	json_object_set_new(t, "timeout_ms", json_integer(timeout));
	return opt_bool(t, "idempotent", "target.idempotent", false, &s->idempotent, field, err);
}

/* The workflow kernel's names: 1 to SCH_WF_NAME_MAX of A-Z a-z 0-9 . _ - */
static bool wf_name_ok(const char *n)
{
	size_t len = n ? strlen(n) : 0;
	if (len == 0 || len > SCH_WF_NAME_MAX)
		return false;
	for (const char *p = n; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '-' || *p == '_' || *p == '.'))
			return false;
	return true;
}

/* A run of a stored workflow definition: {definition, version?, input?}. */
static int parse_workflow(json_t *t, sch_spec *s, const sch_spec_env *env,
			  char field[SCH_FIELD_MAX], sdk_err *err)
{
	static const char *const keys[] = { "type", "definition", "version", "input", NULL };
	if (env && env->kernel_exists && !env->kernel_exists("workflow", env->arg))
		return bad(field, "target.type", err, "no workflow kernel is configured");
	int rc = check_keys(t, keys, "target.", field, err);
	if (rc < 0)
		return rc;
	const char *def = json_string_value(json_object_get(t, "definition"));
	if (!wf_name_ok(def))
		return bad(field, "target.definition", err,
			   "the name of a stored workflow definition (1 to %d of A-Z a-z 0-9 . _ -)",
			   SCH_WF_NAME_MAX);
	json_t *v = json_object_get(t, "version");
	if (v && !json_is_null(v)) {
		if (!wf_name_ok(json_string_value(v)))
			return bad(field, "target.version", err,
				   "a stored version of the definition (a string)");
	}
	if (!json_object_get(t, "input") || json_is_null(json_object_get(t, "input")))
		json_object_set_new(t, "input", json_object());
	s->idempotent = true; /* the workflow kernel knows each slot's key */
	return 0;
}

static int parse_target(json_t *t, sch_role role, const sch_spec_env *env, sch_spec *s,
			char field[SCH_FIELD_MAX], sdk_err *err)
{
	if (!json_is_object(t))
		return bad(field, "target", err,
			   "an object with a type: executor, bus, route or workflow");
	const char *type = json_string_value(json_object_get(t, "type"));
	int i = name_index(type, target_names, 4);
	if (i < 0)
		return bad(field, "target.type", err, "executor, bus, route or workflow");
	s->target_type = (sch_target_type)i;
	if ((!env || env->role_table) && role == SCH_ROLE_USER &&
	    s->target_type != SCH_TARGET_BUS && s->target_type != SCH_TARGET_WORKFLOW) {
		snprintf(field, SCH_FIELD_MAX, "target.type");
		return sdk_fail(err, SDK_EDENIED,
				"target.type: users may schedule bus and workflow targets only; %s "
				"targets are for admins (the role table: no policy kernel)", type);
	}
	char *text = json_dumps(t, JSON_COMPACT);
	size_t len = text ? strlen(text) : 0;
	free(text);
	if (!len || len > SCH_TARGET_MAX)
		return bad(field, "target", err, "at most %u bytes of JSON", SCH_TARGET_MAX);
	switch (s->target_type) {
	case SCH_TARGET_BUS:
		return parse_bus(t, s, field, err);
	case SCH_TARGET_ROUTE:
		return parse_route(t, s, env, field, err);
	case SCH_TARGET_WORKFLOW:
		return parse_workflow(t, s, env, field, err);
	case SCH_TARGET_EXECUTOR: {
		static const char *const keys[] = { "type", "job", NULL };
		int rc = check_keys(t, keys, "target.", field, err);
		if (rc < 0)
			return rc;
		if (!json_is_object(json_object_get(t, "job")))
			return bad(field, "target.job", err,
				   "an executor job (an object: argv or shell, limits, ...)");
		s->idempotent = true; /* the executor knows each slot's key */
		return 0;
	}
	}
	return bad(field, "target.type", err, "executor, bus, route or workflow");
}

int sch_spec_parse(json_t *body, sch_role role, const sch_spec_env *env, sch_spec *out,
		   char field[SCH_FIELD_MAX], sdk_err *err)
{
	sch_spec s = { .deadline_ms = -1 };
	field[0] = '\0';
	int rc;
	static const char *const keys[] = { "name",	   "schedule", "timezone",
					     "target",	   "missed",   "starting_deadline_s",
					     "overlap",	   "jitter_s", "paused",
					     NULL };
	if ((rc = check_keys(body, keys, "", field, err)) < 0)
		return rc;
	const char *name = json_string_value(json_object_get(body, "name"));
	if (!name || !*name || strlen(name) > SCH_NAME_MAX || !printable(name))
		return bad(field, "name", err, "1 to %d printable characters", SCH_NAME_MAX);
	snprintf(s.name, sizeof s.name, "%s", name);

	const char *sched = json_string_value(json_object_get(body, "schedule"));
	if (!sched)
		return bad(field, "schedule", err, "a cron expression, a shortcut or @every DURATION");
	sdk_err why = { "" };
	if (cron_parse(sched, &s.cron, &why) < 0)
		return bad(field, "schedule", err, "%s", why.msg);
	snprintf(s.schedule, sizeof s.schedule, "%s", sched);

	json_t *tzv = json_object_get(body, "timezone");
	const char *tzn = tzv && !json_is_null(tzv) ? json_string_value(tzv) : "UTC";
	if (!tzn)
		return bad(field, "timezone", err, "an IANA time zone name, like Europe/Berlin");
	tz_zone *z = NULL;
	if (tz_load(env ? env->tz_dir : NULL, tzn, &z, &why) < 0)
		return bad(field, "timezone", err, "%s", why.msg);
	tz_free(z);
	snprintf(s.timezone, sizeof s.timezone, "%s", tzn);

	json_t *missed = json_object_get(body, "missed");
	s.missed = SCH_MISSED_SKIP;
	s.missed_max = 1;
	if (missed && !json_is_null(missed)) {
		static const char *const mkeys[] = { "policy", "max", NULL };
		if (!json_is_object(missed))
			return bad(field, "missed", err, "{\"policy\": skip|run_once|run_all, \"max\": N}");
		if ((rc = check_keys(missed, mkeys, "missed.", field, err)) < 0)
			return rc;
		if (sch_missed_parse(json_string_value(json_object_get(missed, "policy")), &s.missed) < 0)
			return bad(field, "missed.policy", err, "skip, run_once or run_all");
		long long max;
		if ((rc = opt_int(missed, "max", "missed.max", 1, SCH_MISSED_MAX_LIMIT,
				  s.missed == SCH_MISSED_RUN_ALL ? 10 : 1, &max, field, err)) < 0)
			return rc;
		if (s.missed != SCH_MISSED_RUN_ALL && max != 1)
			return bad(field, "missed.max", err, "only with the run_all policy");
		s.missed_max = (unsigned)max;
	}
	long long v;
	if ((rc = opt_int(body, "starting_deadline_s", "starting_deadline_s", 1,
			  SCH_DEADLINE_MAX_S, -1, &v, field, err)) < 0)
		return rc;
	s.deadline_ms = v < 0 ? -1 : v * 1000;
	if ((rc = opt_int(body, "jitter_s", "jitter_s", 0, SCH_JITTER_MAX_S, 0, &v, field, err)) < 0)
		return rc;
	s.jitter_ms = v * 1000;
	json_t *ov = json_object_get(body, "overlap");
	s.overlap = SCH_OVERLAP_ALLOW;
	if (ov && !json_is_null(ov) && sch_overlap_parse(json_string_value(ov), &s.overlap) < 0)
		return bad(field, "overlap", err, "allow, forbid or replace");
	if ((rc = opt_bool(body, "paused", "paused", false, &s.paused, field, err)) < 0)
		return rc;

	json_t *target = json_object_get(body, "target");
	s.target = json_is_object(target) ? json_deep_copy(target) : NULL;
	if (!s.target)
		return bad(field, "target", err,
			   "an object with a type: executor, bus, route or workflow");
	if ((rc = parse_target(s.target, role, env, &s, field, err)) < 0) {
		sch_spec_free(&s);
		return rc;
	}
	*out = s;
	return 0;
}
