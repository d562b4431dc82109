#include "sdk/config.h"
#include "sdk/kernel.h"
#include "sdk/govaction.h"
#include "sdk/govrule.h"

#include <errno.h>
#include <ini.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_CONFIG_PATH "etc/grace.ini"
#define DEFAULT_DATA_DIR "./var"
#define DEFAULT_LIBRARY_ROOT "./library"
#define DEFAULT_API_PORT 8000
#define UNSET UINT32_MAX

enum key_type { KEY_UINT, KEY_SIZE };

struct cfg_key {
	const char *name;
	size_t offset;
	enum key_type type;
	uint64_t min, max;
};

/* The keys a kernel section and [defaults] share. */
static const struct cfg_key kernel_keys[] = {
#define K(n, field, t, lo, hi) { n, offsetof(grace_kernel_cfg, field), t, lo, hi }
	K("restart_burst", restart.burst_max, KEY_UINT, 1, 1000),
	K("restart_window_ms", restart.burst_window_ms, KEY_UINT, 1, 3600000),
	K("backoff_initial_ms", restart.backoff_initial_ms, KEY_UINT, 0, 600000),
	K("backoff_max_ms", restart.backoff_max_ms, KEY_UINT, 0, 3600000),
	K("stable_ms", restart.stable_ms, KEY_UINT, 0, 3600000),
	K("watchdog_ms", watchdog_ms, KEY_UINT, 0, 3600000),
	K("ready_timeout_ms", ready_timeout_ms, KEY_UINT, 10, 600000),
	K("stop_timeout_ms", stop_timeout_ms, KEY_UINT, 10, 600000),
	K("health_interval_ms", health_interval_ms, KEY_UINT, 50, 86400000),
	K("health_timeout_ms", health_timeout_ms, KEY_UINT, 10, 600000),
	K("health_failures", health_failures, KEY_UINT, 1, 1000),
	K("max_body_bytes", max_body_bytes, KEY_SIZE, 1024, 1u << 30),
	K("standby", standby, KEY_UINT, 0, 1),
	K("nice", nice, KEY_UINT, 0, 19),
	K("manager", manager, KEY_UINT, 0, 1), /* its words: manager_value() */
#undef K
};

static const struct cfg_key limit_keys[] = {
#define L(n, field, t, lo, hi) { n, offsetof(grace_limits, field), t, lo, hi }
	L("max_header_bytes", max_header_bytes, KEY_SIZE, 512, 1u << 20),
	L("max_headers", max_headers, KEY_UINT, 4, 1000),
	L("max_body_bytes", max_body_bytes, KEY_SIZE, 1024, 1u << 30),
	L("timeout_ms", timeout_ms, KEY_UINT, 100, 3600000),
	L("head_timeout_ms", head_timeout_ms, KEY_UINT, 100, 600000),
	L("keepalive_ms", keepalive_ms, KEY_UINT, 100, 3600000),
	L("max_connections", max_connections, KEY_UINT, 16, 1000000),
	L("max_connections_per_address", max_connections_per_address, KEY_UINT, 1, 1000000),
	L("drain_ms", drain_ms, KEY_UINT, 0, 600000),
#undef L
};

static const struct cfg_key auth_keys[] = {
#define A(n, field, lo, hi) { n, offsetof(grace_auth, field), KEY_UINT, lo, hi }
	A("session_idle_s", session_idle_s, 60, 30u * 86400),
	A("session_max_s", session_max_s, 60, 365u * 86400),
	A("hash_threads", hash_threads, 1, 64),
	A("hash_queue", hash_queue, 1, 100000),
	/* OWASP's floor for Argon2id: 19 MiB and 2 iterations. */
	A("argon2_ops", argon2_ops, 2, 100),
	A("argon2_mem_kib", argon2_mem_kib, 19456, 4u << 20),
	A("login_failures_max", login_failures_max, 3, 1000),
	A("login_window_s", login_window_s, 10, 86400),
#undef A
};

static const struct cfg_key audit_keys[] = {
#define AU(n, field, t, lo, hi) { n, offsetof(grace_audit, field), t, lo, hi }
	AU("window_s", window_s, KEY_UINT, 1, 3600),
	AU("windows_max", windows_max, KEY_UINT, 4, 65536),
	AU("journal_max_events", journal_max_events, KEY_UINT, 100, 10000000),
	AU("journal_max_bytes", journal_max_bytes, KEY_SIZE, 65536, 1u << 30),
#undef AU
};

static const struct cfg_key model_keys[] = {
#define M(n, field, lo, hi) { n, offsetof(grace_model, field), KEY_UINT, lo, hi }
	M("timeout_ms", timeout_ms, 100, 3600000),
	M("max_tokens", max_tokens, 0, 1000000),
	M("heartbeat_ms", heartbeat_ms, 100, GRACE_MODEL_HEARTBEAT_MAX_MS),
#undef M
};

static const struct cfg_key memory_keys[] = {
#define Q(n, field, t, lo, hi) { n, offsetof(grace_memory, field), t, lo, hi }
	Q("tables_per_user", tables_per_user, KEY_UINT, 1, 1000000),
	Q("jobs_per_user", jobs_per_user, KEY_UINT, 1, 64),
	Q("rows_per_user", rows_per_user, KEY_SIZE, 1, 1000000000),
	Q("bytes_per_user", bytes_per_user, KEY_SIZE, 1024, (uint64_t)1 << 40),
#undef Q
};

static const struct cfg_key librarian_keys[] = {
#define B(n, field, t, lo, hi) { n, offsetof(grace_librarian, field), t, lo, hi }
	B("documents_per_user", documents_per_user, KEY_UINT, 1, 100000000),
	B("ingests_per_user", ingests_per_user, KEY_UINT, 1, 64),
	B("ingest_files_max", ingest_files_max, KEY_UINT, 1, 10000000),
	B("ingest_chunk_files", ingest_chunk_files, KEY_UINT, 1, 10000),
	B("document_bytes_per_user", document_bytes_per_user, KEY_SIZE, 1024, (uint64_t)1 << 40),
	B("ingest_bytes_max", ingest_bytes_max, KEY_SIZE, 1024, (uint64_t)1 << 40),
#undef B
};

static const struct cfg_key policy_keys[] = {
#define P(n, field, lo, hi) { n, offsetof(grace_policy, field), KEY_UINT, lo, hi }
	P("decision_timeout_ms", decision_timeout_ms, 50, 60000),
	P("cache_entries", cache_entries, 16, 1u << 20),
#undef P
};

static const struct cfg_key state_machine_keys[] = {
#define S(n, field, t, lo, hi) { n, offsetof(grace_state_machine, field), t, lo, hi }
	S("instances_per_user", instances_per_user, KEY_UINT, 1, 100000000),
	S("history_keep", history_keep, KEY_UINT, 1, 1000000),
	S("context_max_bytes", context_max_bytes, KEY_SIZE, 1024, (uint64_t)16 << 20),
	S("event_max_bytes", event_max_bytes, KEY_SIZE, 256, (uint64_t)16 << 20),
#undef S
};

static const struct cfg_key workflow_keys[] = {
#define W(n, field, t, lo, hi) { n, offsetof(grace_workflow, field), t, lo, hi }
	W("definition_max_bytes", definition_max_bytes, KEY_SIZE, 1024, (uint64_t)16 << 20),
	W("tasks_max", tasks_max, KEY_UINT, 1, 1000000),
	W("runs_max", runs_max, KEY_UINT, 1, 1000000),
	W("history_max", history_max, KEY_UINT, 100, 100000000),
	W("data_max_bytes", data_max_bytes, KEY_SIZE, 1024, (uint64_t)64 << 20),
#undef W
};

static const struct cfg_key metrics_keys[] = {
#define MT(n, field, t, lo, hi) { n, offsetof(grace_metrics, field), t, lo, hi }
	MT("scrape_interval_ms", scrape_interval_ms, KEY_UINT, 1000, 3600000),
	MT("scrape_timeout_ms", scrape_timeout_ms, KEY_UINT, 100, 3600000),
	MT("flush_interval_ms", flush_interval_ms, KEY_UINT, 1000, 600000),
	MT("retention_s", retention_s, KEY_UINT, 0, 10u * 366 * 86400),
	MT("retention_bytes", retention_bytes, KEY_SIZE, 0, (uint64_t)1 << 44),
	MT("max_series", max_series, KEY_UINT, 100, 50000000),
	MT("sample_limit", sample_limit, KEY_UINT, 0, 10000000),
	MT("query_timeout_ms", query_timeout_ms, KEY_UINT, 100, 3600000),
	MT("query_threads", query_threads, KEY_UINT, 1, 64),
	MT("query_queue", query_queue, KEY_UINT, 1, 100000),
	MT("query_max_samples", query_max_samples, KEY_SIZE, 1000, 1000000000),
	MT("log_verify_interval_s", log_verify_interval_s, KEY_UINT, 0, 30u * 86400),
#undef MT
};

static const struct cfg_key alerts_keys[] = {
#define AL(n, field, lo, hi) { n, offsetof(grace_alerts, field), KEY_UINT, lo, hi }
	AL("evaluation_interval_ms", evaluation_interval_ms, 1000, 3600000),
	AL("resend_delay_ms", resend_delay_ms, 1000, 3600000),
	AL("incident_alert_s", incident_alert_s, 0, 7u * 86400),
	AL("notify_timeout_ms", notify_timeout_ms, 100, 600000),
#undef AL
};

static const struct cfg_key scheduler_keys[] = {
#define S(n, field, lo, hi) { n, offsetof(grace_scheduler, field), KEY_UINT, lo, hi }
	S("late_tolerance_ms", late_tolerance_ms, 0, 3600000),
	S("jobs_max", jobs_max, 1, 1000000),
	S("jobs_per_user", jobs_per_user, 1, 1000000),
	S("runs_per_job", runs_per_job, 10, 1000000),
	S("active_runs_max", active_runs_max, 1, 100000),
#undef S
};

static const struct cfg_key telemetry_keys[] = {
#define T(n, field, t, lo, hi) { n, offsetof(grace_telemetry, field), t, lo, hi }
	T("retention_age_s", retention_age_s, KEY_UINT, 60, 31536000),
	T("retention_max_bytes", retention_max_bytes, KEY_SIZE, 1u << 20, 1ull << 40),
	T("retention_interval_ms", retention_interval_ms, KEY_UINT, 100, 86400000),
	T("request_items_max", request_items_max, KEY_UINT, 1, 1000000),
	T("queue_max", queue_max, KEY_UINT, 1, 100000),
	T("caller_requests_max", caller_requests_max, KEY_UINT, 1, 100000),
	T("self_trace", self_trace, KEY_UINT, 0, 1),
	T("sample_percent", sample_percent, KEY_UINT, 0, 100),
	T("sample_rate_max", sample_rate_max, KEY_UINT, 0, 1000000),
	T("store_idle", store_idle, KEY_UINT, 0, 1),
#undef T
};

static const struct cfg_key learning_keys[] = {
#define L(n, field, t, lo, hi) { n, offsetof(grace_learning, field), t, lo, hi }
	L("epsilon_percent", epsilon_percent, KEY_UINT, 0, 100),
	L("explore_floor_percent", explore_floor_percent, KEY_UINT, 0, 50),
	L("seed", seed, KEY_SIZE, 0, (1ull << 63) - 1),
	L("relapse_window_ms", relapse_window_ms, KEY_UINT, 0, 7u * 86400000),
	L("heal_bound_ms", heal_bound_ms, KEY_UINT, 1000, 3600000),
	L("decisions_max", decisions_max, KEY_UINT, 100, 10000000),
	L("evaluate_max", evaluate_max, KEY_UINT, 10, 1000000),
	L("decide_timeout_ms", decide_timeout_ms, KEY_UINT, 20, 5000),
#undef L
};

static const struct cfg_key self_healing_keys[] = {
#define H(n, field, lo, hi) { n, offsetof(grace_self_healing, field), KEY_UINT, lo, hi }
	H("stable_ms", stable_ms, 100, 86400000),
	H("flap_window_ms", flap_window_ms, 1000, 86400000),
	H("flap_threshold", flap_threshold, 2, 1000),
	H("budget_per_hour", budget_per_hour, 0, 100000),
	H("advice_timeout_ms", advice_timeout_ms, 20, 5000),
	H("approve_destructive", approve_destructive, 0, 1),
	H("watch_interval_ms", watch_interval_ms, 1000, 86400000),
#undef H
};

/* [self_healing] ladder and dependencies: NAME:VALUE pairs separated by
 * commas, of [a-z0-9_] (the kernel checks the names and numbers). */
static bool sh_spec_valid(const char *v)
{
	for (const char *p = v; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == ':' ||
		      *p == ','))
			return false;
	return v[0] != 0;
}

static const struct cfg_key research_keys[] = {
#define R(n, field, lo, hi) { n, offsetof(grace_research, field), KEY_UINT, lo, hi }
	R("steps_default", steps_default, 1, 1000),
	R("steps_max", steps_max, 1, 1000),
	R("time_ms_default", time_ms_default, 100, 600000),
	R("time_ms_max", time_ms_max, 100, 600000),
	R("call_timeout_ms", call_timeout_ms, 100, 60000),
	R("window_ms", window_ms, 1000, 7u * 86400000),
	R("running_max", running_max, 1, 256),
	R("keep", keep, 10, 1000000),
#undef R
};

static const struct cfg_key governance_keys[] = {
#define G(n, field, lo, hi) { n, offsetof(grace_governance, field), KEY_UINT, lo, hi }
	G("expiry_s", expiry_s, 1, 366u * 86400),
	G("requests_max", requests_max, 10, 10000000),
	G("poll_ms", poll_ms, 20, 60000),
	G("run_delay_ms", run_delay_ms, 0, 600000),
#undef G
};

static const struct cfg_key backup_keys[] = {
#define X(n, field, t, lo, hi) { n, offsetof(grace_backup, field), t, lo, hi }
	X("no_secrets", no_secrets, KEY_UINT, 0, 1),
	X("keep", keep, KEY_UINT, 1, 10000),
	X("max_age_days", max_age_days, KEY_UINT, 0, 36500),
	X("verify", verify, KEY_UINT, 0, 1),
#undef X
};

static const struct cfg_key executor_keys[] = {
#define X(n, field, t, lo, hi) { n, offsetof(grace_executor, field), t, lo, hi }
	X("concurrency", concurrency, KEY_UINT, 1, 1024),
	X("queue_max", queue_max, KEY_UINT, 1, 1000000),
	X("history_max", history_max, KEY_UINT, 10, 10000000),
	X("timeout_default_ms", timeout_default_ms, KEY_UINT, 100, 86400000),
	X("timeout_max_ms", timeout_max_ms, KEY_UINT, 100, 604800000),
	X("kill_grace_ms", kill_grace_ms, KEY_UINT, 0, 600000),
	X("cgroups", cgroups, KEY_UINT, 0, 1),
	X("output_default_bytes", output_default_bytes, KEY_SIZE, 0, 1u << 30),
	X("output_max_bytes", output_max_bytes, KEY_SIZE, 0, 1u << 30),
#undef X
};

static const struct cfg_key coding_agent_keys[] = {
#define CA(n, field, t, lo, hi) { n, offsetof(grace_coding_agent, field), t, lo, hi }
	CA("running_max", running_max, KEY_UINT, 1, 64),
	CA("tasks_max", tasks_max, KEY_UINT, 1, 1000000),
	CA("turns_max", turns_max, KEY_UINT, 1, 100),
	CA("turns_default", turns_default, KEY_UINT, 1, 100),
	CA("test_timeout_ms", test_timeout_ms, KEY_UINT, 100, 86400000),
	CA("git_timeout_ms", git_timeout_ms, KEY_UINT, 100, 3600000),
	CA("task_timeout_ms", task_timeout_ms, KEY_UINT, 1000, 604800000),
	CA("patch_max_bytes", patch_max_bytes, KEY_SIZE, 1024, 64u << 20),
	CA("context_max_bytes", context_max_bytes, KEY_SIZE, 0, 16u << 20),
#undef CA
};

static const struct cfg_key compliance_keys[] = {
#define CP(n, field, lo, hi) { n, offsetof(grace_compliance, field), KEY_UINT, lo, hi }
	CP("scan_interval_s", scan_interval_s, 0, 30u * 86400),
	CP("scans_keep", scans_keep, 10, 1000000),
	CP("waiver_max_days", waiver_max_days, 1, 3650),
	CP("check_timeout_ms", check_timeout_ms, 100, 600000),
#undef CP
};

static const struct cfg_key crypto_keys[] = {
#define CR(n, field) { n, offsetof(grace_crypto, field), KEY_UINT, 1, 366u * 86400 }
	CR("deletion_window_s", deletion_window_s),
	CR("deletion_window_min_s", deletion_window_min_s),
	CR("deletion_window_max_s", deletion_window_max_s),
#undef CR
};

static const struct cfg_key trust_keys[] = {
#define TR(n, field, lo, hi) { n, offsetof(grace_trust, field), KEY_UINT, lo, hi }
	TR("jwt_ttl_default_s", jwt_ttl_default_s, 10, 86400),
	TR("jwt_ttl_max_s", jwt_ttl_max_s, 10, 86400),
	TR("x509_ttl_default_s", x509_ttl_default_s, 10, 30u * 86400),
	TR("x509_ttl_max_s", x509_ttl_max_s, 10, 30u * 86400),
	TR("jwt_rotate_s", jwt_rotate_s, 60, 366u * 86400),
	TR("x509_rotate_s", x509_rotate_s, 60, 3u * 366 * 86400),
	TR("score_half_life_s", score_half_life_s, 1, 366u * 86400),
	TR("score_refresh_ms", score_refresh_ms, 100, 3600000),
	TR("score_period_s", score_period_s, 1, 86400),
	TR("svid_ttl_s", svid_ttl_s, 10, 86400),
#undef TR
};

/* A model server's base URL: http or https, and nothing odd in it. */
static bool model_url_valid(const char *v)
{
	if (strncmp(v, "http://", 7) && strncmp(v, "https://", 8))
		return false;
	for (const char *p = v; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return false;
	return strlen(v) > (size_t)(v[4] == 's' ? 8 : 7);
}

struct parse_ctx {
	grace_config *cfg;
	const sdk_kernel_def *const *builtins; /* the defaults of their sections */
	size_t n_builtins;
	grace_kernel_cfg defaults;
	bool file_lists_kernels;
	sdk_err err; /* first error, without file and line */
};

static void kernel_unset(grace_kernel_cfg *k)
{
	for (size_t i = 0; i < sizeof kernel_keys / sizeof kernel_keys[0]; i++) {
		char *p = (char *)k + kernel_keys[i].offset;
		if (kernel_keys[i].type == KEY_UINT)
			*(unsigned *)p = UNSET;
		else
			*(size_t *)p = SIZE_MAX;
	}
}

static void kernel_inherit(grace_kernel_cfg *k, const grace_kernel_cfg *d)
{
	for (size_t i = 0; i < sizeof kernel_keys / sizeof kernel_keys[0]; i++) {
		char *p = (char *)k + kernel_keys[i].offset;
		const char *q = (const char *)d + kernel_keys[i].offset;
		if (kernel_keys[i].type == KEY_UINT && *(unsigned *)p == UNSET)
			*(unsigned *)p = *(const unsigned *)q;
		else if (kernel_keys[i].type == KEY_SIZE && *(size_t *)p == SIZE_MAX)
			*(size_t *)p = *(const size_t *)q;
	}
	if (!k->node[0])
		memcpy(k->node, d->node, sizeof k->node);
}

static void defaults_init(grace_kernel_cfg *d)
{
	memset(d, 0, sizeof *d);
	d->restart = (grace_restart){ .burst_max = 5,
				      .burst_window_ms = 10000,
				      .backoff_initial_ms = 100,
				      .backoff_max_ms = 5000,
				      .stable_ms = 1000 };
	d->watchdog_ms = 3000;
	d->ready_timeout_ms = 5000;
	d->stop_timeout_ms = 3000;
	d->health_interval_ms = 60000;
	d->health_timeout_ms = 2000;
	d->health_failures = 3;
	d->max_body_bytes = 1u << 20;
	d->standby = 1;
}

static int parse_uint(const char *v, uint64_t min, uint64_t max, uint64_t *out)
{
	if (!*v || *v == '-' || *v == '+')
		return -1;
	char *end;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	if (errno || *end || n < min || n > max)
		return -1;
	*out = n;
	return 0;
}

static int parse_bool(const char *v, bool *out)
{
	if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "1"))
		*out = true;
	else if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "0"))
		*out = false;
	else
		return -1;
	return 0;
}

static int set_string(char *dst, size_t len, const char *v)
{
	if (!*v || strlen(v) >= len)
		return -1;
	memcpy(dst, v, strlen(v) + 1);
	return 0;
}

/* Sets a numeric field through a key table; 1 if `name` is not in it. */
static int set_keyed(void *base, const struct cfg_key *table, size_t n, const char *name,
		     const char *value, sdk_err *err)
{
	for (size_t i = 0; i < n; i++) {
		const struct cfg_key *k = &table[i];
		if (strcmp(k->name, name) != 0)
			continue;
		uint64_t v;
		if (parse_uint(value, k->min, k->max, &v) < 0) {
			return sdk_fail(err, SDK_EINVAL,
					"%s: expected an integer from %llu to %llu, got '%s'", name,
					(unsigned long long)k->min, (unsigned long long)k->max,
					value);
		}
		char *p = (char *)base + k->offset;
		if (k->type == KEY_UINT)
			*(unsigned *)p = (unsigned)v;
		else
			*(size_t *)p = (size_t)v;
		return 0;
	}
	return 1;
}

/* "JOB HOST:PORT [PATH]": a target on this machine (Grace's HTTP client
 * reaches loopback only). */
static bool metrics_target_valid(const char *v, sdk_err *why)
{
	char job[64], addr[64], path[96] = "/metrics", extra[8];
	int n = sscanf(v, "%63s %63s %95s %7s", job, addr, path, extra);
	if (n < 2 || n > 3) {
		sdk_fail(why, SDK_EINVAL, "target: expected JOB HOST:PORT [PATH], got '%s'", v);
		return false;
	}
	for (const char *p = job; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '_' || *p == '-' || *p == '.')) {
			sdk_fail(why, SDK_EINVAL,
				 "target: a job name is letters, digits, '_', '-' and '.'");
			return false;
		}
	char *colon = strrchr(addr, ':');
	uint64_t port;
	if (!colon || parse_uint(colon + 1, 1, 65535, &port) < 0) {
		sdk_fail(why, SDK_EINVAL, "target: expected HOST:PORT, got '%s'", addr);
		return false;
	}
	*colon = '\0';
	if (strcmp(addr, "127.0.0.1") && strcmp(addr, "localhost")) {
		sdk_fail(why, SDK_EINVAL,
			 "target: only 127.0.0.1 and localhost can be scraped, got '%s'", addr);
		return false;
	}
	if (path[0] != '/') {
		sdk_fail(why, SDK_EINVAL, "target: a path starts with '/', got '%s'", path);
		return false;
	}
	return true;
}

static int valid_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n >= GRACE_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return 0;
	return 1;
}

/* A kernel as its definition describes it: name, port and tier; the rest
 * unset until [defaults] fills it. */
static void kernel_init(grace_kernel_cfg *k, const char *name, const sdk_kernel_def *def)
{
	memset(k, 0, sizeof *k);
	snprintf(k->name, sizeof k->name, "%s", name);
	if (def) {
		k->port = def->port;
		snprintf(k->tier, sizeof k->tier, "%s", def->tier);
	}
	k->enabled = true;
	snprintf(k->unit, sizeof k->unit, "grace-kernel@%%p.service");
	snprintf(k->socket_unit, sizeof k->socket_unit, "grace-kernel@%%p.socket");
	kernel_unset(k);
}

static const sdk_kernel_def *builtin_find(const struct parse_ctx *c, const char *name)
{
	for (size_t i = 0; i < c->n_builtins; i++)
		if (!strcmp(c->builtins[i]->name, name))
			return c->builtins[i];
	return NULL;
}

static grace_kernel_cfg *kernel_section(struct parse_ctx *c, const char *name)
{
	grace_config *cfg = c->cfg;
	if (!c->file_lists_kernels) {
		/* The file lists its own kernels: only those run. */
		cfg->n_kernels = 0;
		c->file_lists_kernels = true;
	}
	for (size_t i = 0; i < cfg->n_kernels; i++)
		if (!strcmp(cfg->kernels[i].name, name))
			return &cfg->kernels[i];
	if (cfg->n_kernels == GRACE_KERNELS_MAX)
		return NULL;
	grace_kernel_cfg *k = &cfg->kernels[cfg->n_kernels++];
	/* A built-in kernel's section only overrides its definition. */
	kernel_init(k, name, builtin_find(c, name));
	return k;
}

/* `manager` is a word in the file and a number in the table: "grace" or
 * "systemd" as "0" or "1", anything else NULL. Other keys pass through. */
static const char *manager_value(const char *name, const char *value)
{
	if (strcmp(name, "manager"))
		return value;
	return !strcmp(value, "grace") ? "0" : !strcmp(value, "systemd") ? "1" : NULL;
}

/* A unit name pattern: systemd's unit-name characters, and %p or %n. */
static bool unit_pattern_valid(const char *v)
{
	size_t n = strlen(v);
	if (n >= GRACE_UNIT_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = v[i];
		if (ch == '%') {
			if (v[i + 1] != 'p' && v[i + 1] != 'n')
				return false;
			i++;
		} else if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			     (ch >= '0' && ch <= '9') || strchr("@._:-\\", ch))) {
			return false;
		}
	}
	return true;
}

static int on_kernel_key(struct parse_ctx *c, grace_kernel_cfg *k, const char *name,
			 const char *value)
{
	if (!strcmp(name, "port")) {
		uint64_t v;
		if (parse_uint(value, GRACE_KERNEL_PORT_MIN, GRACE_KERNEL_PORT_MAX, &v) < 0) {
			sdk_fail(&c->err, SDK_EINVAL, "port: expected %d-%d, got '%s'",
				 GRACE_KERNEL_PORT_MIN, GRACE_KERNEL_PORT_MAX, value);
			return 0;
		}
		k->port = (int)v;
	} else if (!strcmp(name, "tier")) {
		if (!valid_name(value)) {
			sdk_fail(&c->err, SDK_EINVAL, "tier: expected a lower-case word, got '%s'",
				 value);
			return 0;
		}
		memcpy(k->tier, value, strlen(value) + 1);
	} else if (!strcmp(name, "enabled")) {
		if (parse_bool(value, &k->enabled) < 0) {
			sdk_fail(&c->err, SDK_EINVAL, "enabled: expected true or false, got '%s'",
				 value);
			return 0;
		}
	} else if (!strcmp(name, "command")) {
		if (set_string(k->command, sizeof k->command, value) < 0) {
			sdk_fail(&c->err, SDK_EINVAL, "command: empty or longer than %d bytes",
				 GRACE_COMMAND_MAX - 1);
			return 0;
		}
		/* The supervisor splits it on blanks with '...' and "..." quoting:
		 * a quote left open would only show when the kernel starts. */
		char open_quote = 0;
		for (const char *p = value; *p; p++)
			if (!open_quote && (*p == '\'' || *p == '"'))
				open_quote = *p;
			else if (*p == open_quote)
				open_quote = 0;
		if (open_quote) {
			sdk_fail(&c->err, SDK_EINVAL, "command: unterminated %c quote", open_quote);
			return 0;
		}
	} else if (!strcmp(name, "node")) {
		if (!valid_name(value)) {
			sdk_fail(&c->err, SDK_EINVAL,
				 "node: a node's name (lower-case letters, digits, '_'), got '%s'",
				 value);
			return 0;
		}
		memcpy(k->node, value, strlen(value) + 1);
	} else if (!strcmp(name, "unit") || !strcmp(name, "socket_unit")) {
		char *dst = name[0] == 'u' ? k->unit : k->socket_unit;
		if (!unit_pattern_valid(value) || (name[0] == 'u' && !*value)) {
			sdk_fail(&c->err, SDK_EINVAL,
				 "%s: a systemd unit name (letters, digits, @._:-\\, %%p for the "
				 "port, %%n for the name) shorter than %d bytes%s",
				 name, GRACE_UNIT_MAX, name[0] == 's' ? ", or empty for none" : "");
			return 0;
		}
		memcpy(dst, value, strlen(value) + 1); /* shorter than GRACE_UNIT_MAX: checked */
	} else {
		const char *v = manager_value(name, value);
		if (!v) {
			sdk_fail(&c->err, SDK_EINVAL, "manager: grace or systemd, got '%s'", value);
			return 0;
		}
		int rc = set_keyed(k, kernel_keys, sizeof kernel_keys / sizeof kernel_keys[0], name,
				   v, &c->err);
		if (rc == 1)
			sdk_fail(&c->err, SDK_EINVAL, "%s: unknown key", name);
		return rc == 0;
	}
	return 1;
}

/* [node.NAME] address = HOST:PORT: where node NAME's link listens. */
static int on_node_key(struct parse_ctx *c, const char *node, const char *name, const char *value)
{
	grace_nodes *ns = &c->cfg->nodes;
	if (!valid_name(node)) {
		sdk_fail(&c->err, SDK_EINVAL,
			 "[node.%.32s]: a node's name is lower-case letters, digits and '_'", node);
		return 0;
	}
	grace_node_cfg *n = NULL;
	for (size_t i = 0; i < ns->n && !n; i++)
		if (!strcmp(ns->at[i].name, node))
			n = &ns->at[i];
	if (!n) {
		if (ns->n == GRACE_NODES_MAX) {
			sdk_fail(&c->err, SDK_EINVAL, "[node.%s]: more than %d nodes", node,
				 GRACE_NODES_MAX);
			return 0;
		}
		n = &ns->at[ns->n++];
		memcpy(n->name, node, strlen(node) + 1);
	}
	if (strcmp(name, "address")) {
		sdk_fail(&c->err, SDK_EINVAL, "%s: unknown key", name);
		return 0;
	}
	const char *colon = strrchr(value, ':');
	uint64_t port;
	if (!colon || colon == value || parse_uint(colon + 1, 1, 65535, &port) < 0 ||
	    set_string(n->address, sizeof n->address, value) < 0) {
		sdk_fail(&c->err, SDK_EINVAL,
			 "address: HOST:PORT (the node's link, TLS), at most %d bytes, got '%s'",
			 GRACE_NODE_ADDR_MAX - 1, value);
		return 0;
	}
	return 1;
}

static int on_model_key(struct parse_ctx *c, const char *name, const char *value)
{
	grace_model *m = &c->cfg->model;
	if (!strcmp(name, "base_url")) {
		if (!model_url_valid(value) || set_string(m->base_url, sizeof m->base_url, value) < 0) {
			sdk_fail(
				&c->err, SDK_EINVAL,
				"base_url: expected an http:// or https:// URL of at most %zu bytes",
				sizeof m->base_url - 1);
			return 0;
		}
	} else if (!strcmp(name, "model")) {
		if (set_string(m->model, sizeof m->model, value) < 0) {
			sdk_fail(&c->err, SDK_EINVAL, "model: empty or longer than %zu bytes",
				 sizeof m->model - 1);
			return 0;
		}
	} else if (!strcmp(name, "key_file")) {
		if (set_string(m->key_file, sizeof m->key_file, value) < 0) {
			sdk_fail(&c->err, SDK_EINVAL, "key_file: empty or too long");
			return 0;
		}
	} else {
		int rc = set_keyed(m, model_keys, sizeof model_keys / sizeof model_keys[0], name,
				   value, &c->err);
		if (rc == 1)
			sdk_fail(&c->err, SDK_EINVAL, "%s: unknown key", name);
		return rc == 0;
	}
	return 1;
}

/* A policy set's name as the policy kernel allows it. */
static bool policy_set_valid(const char *v)
{
	size_t n = strlen(v);
	if (n == 0 || n > GRACE_POLICY_SET_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((v[i] >= 'a' && v[i] <= 'z') || (v[i] >= 'A' && v[i] <= 'Z') ||
		      (v[i] >= '0' && v[i] <= '9') || v[i] == '_' || v[i] == '-' || v[i] == '.'))
			return false;
	return true;
}

static int on_policy_key(struct parse_ctx *c, const char *name, const char *value)
{
	grace_policy *p = &c->cfg->policy;
	if (!strcmp(name, "authorizer")) {
		if (!strcmp(value, "kernel")) {
			p->authorizer = GRACE_AUTHORIZER_KERNEL;
		} else if (!strcmp(value, "table")) {
			p->authorizer = GRACE_AUTHORIZER_TABLE;
		} else {
			sdk_fail(&c->err, SDK_EINVAL,
				 "authorizer: expected kernel or table, got '%s'", value);
			return 0;
		}
		return 1;
	}
	if (!strcmp(name, "policy_set")) {
		if (!policy_set_valid(value)) {
			sdk_fail(&c->err, SDK_EINVAL,
				 "policy_set: expected 1 to %d of A-Z a-z 0-9 _ - ., got '%s'",
				 GRACE_POLICY_SET_MAX, value);
			return 0;
		}
		memcpy(p->policy_set, value, strlen(value) + 1);
		return 1;
	}
	int rc = set_keyed(p, policy_keys, sizeof policy_keys / sizeof policy_keys[0], name, value,
			   &c->err);
	if (rc == 1)
		sdk_fail(&c->err, SDK_EINVAL, "%s: unknown key", name);
	return rc == 0;
}

/* [governance]: gate (a list of actions), default_rule and rule.ACTION (rule
 * text, parsed by the governance kernel), and the numbers. */
static int on_governance_key(struct parse_ctx *c, const char *name, const char *value)
{
	grace_governance *g = &c->cfg->governance;
	if (!strcmp(name, "gate")) {
		if (strlen(value) >= sizeof g->gate) {
			sdk_fail(&c->err, SDK_EINVAL, "gate: too long");
			return 0;
		}
		for (const char *p = value; *p;) {
			while (*p == ' ' || *p == ',')
				p++;
			size_t w = strcspn(p, " ,");
			char one[GRACE_NAME_MAX];
			if (!w)
				break;
			snprintf(one, sizeof one, "%.*s", (int)(w < sizeof one ? w : sizeof one - 1), p);
			if (w >= sizeof one || !sdk_gov_action_find(one)) {
				sdk_fail(&c->err, SDK_EINVAL, "gate: '%.*s' is not an action",
					 (int)(w > 40 ? 40 : w), p);
				return 0;
			}
			p += w;
		}
		memcpy(g->gate, value, strlen(value) + 1);
		return 1;
	}
	if (!strcmp(name, "default_rule") || !strncmp(name, "rule.", 5)) {
		sdk_err e;
		json_t *parsed = sdk_gov_rule_parse(value, &e);
		if (!parsed) {
			sdk_fail(&c->err, SDK_EINVAL, "%.40s: %.200s", name, e.msg);
			return 0;
		}
		json_decref(parsed);
		if (!strcmp(name, "default_rule")) {
			memcpy(g->default_rule, value, strlen(value) + 1);
			return 1;
		}
		const char *action = name + 5;
		if (!sdk_gov_action_find(action)) {
			sdk_fail(&c->err, SDK_EINVAL, "%s: '%s' is not an action", name, action);
			return 0;
		}
		size_t i = 0;
		while (i < g->n_rules && strcmp(g->rules[i].action, action))
			i++;
		if (i == GRACE_GOV_RULES_MAX) {
			sdk_fail(&c->err, SDK_EINVAL, "%s: at most %d rules", name,
				 GRACE_GOV_RULES_MAX);
			return 0;
		}
		snprintf(g->rules[i].action, sizeof g->rules[i].action, "%s", action);
		memcpy(g->rules[i].rule, value, strlen(value) + 1);
		if (i == g->n_rules)
			g->n_rules++;
		return 1;
	}
	int rc = set_keyed(g, governance_keys, sizeof governance_keys / sizeof governance_keys[0],
			   name, value, &c->err);
	if (rc == 1)
		sdk_fail(&c->err, SDK_EINVAL, "%s: unknown key", name);
	return rc == 0;
}

static const struct cfg_key message_bus_keys[] = {
#define MB(n, field, t, lo, hi) { n, offsetof(grace_message_bus, field), t, lo, hi }
	MB("replicas", replicas, KEY_UINT, 1, 5),
	MB("max_age_s", max_age_s, KEY_UINT, 0, 10u * 366 * 86400),
	MB("max_bytes", max_bytes, KEY_SIZE, 0, (uint64_t)1 << 50),
	MB("publish_timeout_ms", publish_timeout_ms, KEY_UINT, 100, 60000),
	MB("connect_timeout_ms", connect_timeout_ms, KEY_UINT, 100, 60000),
#undef MB
};

/* nats://host:port, comma-separated: what cnats takes, nothing that needs
 * quoting (no spaces, no commas inside one). */
static int message_bus_urls(grace_message_bus *m, const char *value, sdk_err *err)
{
	m->n_nats_urls = 0;
	const char *p = value;
	while (*p) {
		size_t n = strcspn(p, ",");
		while (n && (*p == ' ' || *p == '\t'))
			p++, n--;
		size_t len = n;
		while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (len == 0 || len >= GRACE_BUS_NATS_URL_MAX || strncmp(p, "nats://", 7) != 0 ||
		    memchr(p, ' ', len) || m->n_nats_urls == GRACE_BUS_NATS_URLS_MAX) {
			return sdk_fail(
				err, SDK_EINVAL,
				"nats_urls: 1 to %d comma-separated nats://host:port URLs of at most "
				"%d bytes each",
				GRACE_BUS_NATS_URLS_MAX, GRACE_BUS_NATS_URL_MAX - 1);
		}
		memcpy(m->nats_urls[m->n_nats_urls], p, len);
		m->nats_urls[m->n_nats_urls++][len] = '\0';
		p += n;
		if (*p == ',')
			p++;
	}
	if (m->n_nats_urls == 0) {
		return sdk_fail(err, SDK_EINVAL, "nats_urls: at least one nats://host:port URL");
	}
	return 0;
}

static int on_message_bus_key(struct parse_ctx *c, const char *name, const char *value)
{
	grace_message_bus *m = &c->cfg->message_bus;
	if (!strcmp(name, "engine")) {
		if (strcmp(value, "embedded") && strcmp(value, "jetstream")) {
			sdk_fail(&c->err, SDK_EINVAL, "engine: embedded or jetstream, got '%s'",
				 value);
			return 0;
		}
		m->jetstream = !strcmp(value, "jetstream");
		return 1;
	}
	if (!strcmp(name, "nats_urls"))
		return message_bus_urls(m, value, &c->err) == 0;
	if (!strcmp(name, "stream_prefix")) {
		size_t n = strlen(value);
		bool ok = n > 0 && n < sizeof m->stream_prefix - 4;
		for (size_t i = 0; ok && i < n; i++)
			ok = (value[i] >= 'A' && value[i] <= 'Z') || (value[i] >= 'a' && value[i] <= 'z') ||
			     (value[i] >= '0' && value[i] <= '9') || value[i] == '_' || value[i] == '-';
		if (!ok) {
			sdk_fail(&c->err, SDK_EINVAL, "stream_prefix: 1 to %zu of A-Z a-z 0-9 _ -",
				 sizeof m->stream_prefix - 5);
			return 0;
		}
		memcpy(m->stream_prefix, value, n + 1);
		return 1;
	}
	int rc =
		set_keyed(m, message_bus_keys, sizeof message_bus_keys / sizeof message_bus_keys[0],
			  name, value, &c->err);
	if (rc == 1)
		sdk_fail(&c->err, SDK_EINVAL, "%s: unknown key", name);
	return rc == 0;
}

/* A SPIFFE trust domain as the specification allows it: 1 to 255 of
 * [a-z0-9._-] (lower case only). */
static bool trust_domain_valid(const char *v)
{
	size_t n = strlen(v);
	if (n == 0 || n > 255)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((v[i] >= 'a' && v[i] <= 'z') || (v[i] >= '0' && v[i] <= '9') ||
		      v[i] == '.' || v[i] == '_' || v[i] == '-'))
			return false;
	return true;
}

static const struct cfg_key store_keys[] = {
#define ST(n, field, lo, hi) { n, offsetof(grace_store_cfg, field), KEY_UINT, lo, hi }
	ST("pool_size", pool_size, 1, 64),
	ST("statement_timeout_ms", statement_timeout_ms, 10, 600000),
	ST("connect_timeout_s", connect_timeout_s, 1, 60),
#undef ST
};

/* "password=..." in a key=value string, or "user:secret@" in a URI. */
static bool store_url_has_password(const char *v)
{
	if (strstr(v, "password"))
		return true;
	const char *scheme = strstr(v, "://");
	const char *at = scheme ? strchr(scheme + 3, '@') : NULL;
	return at && memchr(scheme + 3, ':', (size_t)(at - (scheme + 3)));
}

static int on_store_key(struct parse_ctx *c, const char *name, const char *value)
{
	grace_store_cfg *s = &c->cfg->store;
	if (!strcmp(name, "engine")) {
		if (!strcmp(value, "sqlite"))
			s->engine = GRACE_STORE_SQLITE;
		else if (!strcmp(value, "postgresql"))
			s->engine = GRACE_STORE_POSTGRESQL;
		else {
			sdk_fail(&c->err, SDK_EINVAL,
				 "engine: expected sqlite or postgresql, got '%s'", value);
			return 0;
		}
		return 1;
	}
	if (!strcmp(name, "postgresql_url")) {
		/* A secret is never a literal: the password comes from password_file. */
		if (store_url_has_password(value)) {
			sdk_fail(&c->err, SDK_EINVAL,
				 "postgresql_url: no password in it: put it in password_file");
			return 0;
		}
		if (set_string(s->postgresql_url, sizeof s->postgresql_url, value) < 0) {
			sdk_fail(&c->err, SDK_EINVAL,
				 "postgresql_url: empty or longer than %zu bytes",
				 sizeof s->postgresql_url - 1);
			return 0;
		}
		return 1;
	}
	if (!strcmp(name, "password_file")) {
		if (set_string(s->password_file, sizeof s->password_file, value) < 0) {
			sdk_fail(&c->err, SDK_EINVAL, "password_file: empty or too long");
			return 0;
		}
		return 1;
	}
	int rc = set_keyed(s, store_keys, sizeof store_keys / sizeof store_keys[0], name, value,
			   &c->err);
	if (rc == 1)
		sdk_fail(&c->err, SDK_EINVAL, "%s: unknown key", name);
	return rc == 0;
}

static int on_trust_key(struct parse_ctx *c, const char *name, const char *value)
{
	grace_trust *t = &c->cfg->trust;
	if (!strcmp(name, "domain")) {
		if (!trust_domain_valid(value)) {
			sdk_fail(&c->err, SDK_EINVAL,
				 "domain: a trust domain is 1 to 255 of a-z, 0-9, '.', '_', '-'");
			return 0;
		}
		snprintf(t->domain, sizeof t->domain, "%s", value);
		return 1;
	}
	if (!strcmp(name, "require_svid")) {
		if (parse_bool(value, &t->require_svid) < 0) {
			sdk_fail(&c->err, SDK_EINVAL, "require_svid: expected true or false");
			return 0;
		}
		t->require_svid_set = true;
		return 1;
	}
	int rc = set_keyed(t, trust_keys, sizeof trust_keys / sizeof trust_keys[0], name, value,
			   &c->err);
	if (rc == 1)
		sdk_fail(&c->err, SDK_EINVAL, "%s: unknown key", name);
	return rc == 0;
}

static int on_ini(void *user, const char *section, const char *name, const char *value)
{
	struct parse_ctx *c = user;
	grace_config *cfg = c->cfg;
	if (c->err.msg[0])
		return 0; /* keep the first error only */

	if (!strcmp(section, "grace")) {
		if (!strcmp(name, "api_port") || !strcmp(name, "port_offset")) {
			uint64_t v;
			uint64_t max = !strcmp(name, "api_port") ? 65535 : 50000;
			if (parse_uint(value, !strcmp(name, "api_port"), max, &v) < 0) {
				sdk_fail(&c->err, SDK_EINVAL,
					 "%s: expected an integer up to %llu, got '%s'", name,
					 (unsigned long long)max, value);
				return 0;
			}
			*(!strcmp(name, "api_port") ? &cfg->api_port : &cfg->port_offset) = (int)v;
		} else if (!strcmp(name, "data_dir") || !strcmp(name, "library_root")) {
			char *dst = !strcmp(name, "data_dir") ? cfg->data_dir : cfg->library_root;
			if (set_string(dst, PATH_MAX, value) < 0) {
				sdk_fail(&c->err, SDK_EINVAL, "%s: empty or too long", name);
				return 0;
			}
		} else if (!strcmp(name, "log_file_bytes") || !strcmp(name, "log_files")) {
			bool bytes = !strcmp(name, "log_file_bytes");
			uint64_t v, lo = bytes ? 0 : 1, hi = bytes ? (uint64_t)1 << 40 : 9; /* grace logs reads .1-.9 */
			if (parse_uint(value, lo, hi, &v) < 0) {
				sdk_fail(&c->err, SDK_EINVAL,
					 "%s: expected an integer from %llu to %llu, got '%s'",
					 name, (unsigned long long)lo, (unsigned long long)hi,
					 value);
				return 0;
			}
			if (bytes)
				cfg->log_file_bytes = v;
			else
				cfg->log_files = (unsigned)v;
		} else if (!strcmp(name, "node")) {
			if (!valid_name(value)) {
				sdk_fail(
					&c->err, SDK_EINVAL,
					"node: a node's name (lower-case letters, digits, '_'), got '%s'",
					value);
				return 0;
			}
			memcpy(cfg->nodes.self, value, strlen(value) + 1);
		} else if (!strcmp(name, "tls_address")) {
			const char *colon = strrchr(value, ':');
			uint64_t port;
			if (!colon || colon == value || parse_uint(colon + 1, 1, 65535, &port) < 0 ||
			    set_string(cfg->tls.address, sizeof cfg->tls.address, value) < 0) {
				sdk_fail(&c->err, SDK_EINVAL,
					 "tls_address: HOST:PORT (the API over TLS), got '%s'",
					 value);
				return 0;
			}
		} else if (!strcmp(name, "tls_cert_file") || !strcmp(name, "tls_key_file")) {
			char *dst = name[4] == 'c' ? cfg->tls.cert_file : cfg->tls.key_file;
			if (set_string(dst, PATH_MAX, value) < 0) {
				sdk_fail(&c->err, SDK_EINVAL, "%s: empty or too long", name);
				return 0;
			}
		} else if (!strcmp(name, "node_poll_ms") || !strcmp(name, "node_down_ms")) {
			uint64_t v;
			if (parse_uint(value, 100, 600000, &v) < 0) {
				sdk_fail(&c->err, SDK_EINVAL, "%s: expected 100-600000, got '%s'",
					 name, value);
				return 0;
			}
			*(name[5] == 'p' ? &cfg->nodes.poll_ms : &cfg->nodes.down_ms) = (unsigned)v;
		} else if (!strcmp(name, "log_level")) {
			if (strcmp(value, "debug") && strcmp(value, "info") && strcmp(value, "warn") &&
			    strcmp(value, "error")) {
				sdk_fail(&c->err, SDK_EINVAL,
					 "log_level: expected debug, info, warn or error, got '%s'",
					 value);
				return 0;
			}
			memcpy(cfg->log_level, value, strlen(value) + 1);
		} else {
			sdk_fail(&c->err, SDK_EINVAL, "%s: unknown key", name);
			return 0;
		}
		return 1;
	}
	if (!strcmp(section, "auth")) {
		if (!strcmp(name, "self_registration")) {
			if (parse_bool(value, &cfg->auth.self_registration) < 0) {
				sdk_fail(&c->err, SDK_EINVAL,
					 "self_registration: expected true or false, got '%s'",
					 value);
				return 0;
			}
			return 1;
		}
		if (!strcmp(name, "allowed_hosts")) {
			if (set_string(cfg->auth.allowed_hosts, sizeof cfg->auth.allowed_hosts, value) < 0) {
				sdk_fail(&c->err, SDK_EINVAL, "allowed_hosts: empty or too long");
				return 0;
			}
			return 1;
		}
		int rc = set_keyed(&cfg->auth, auth_keys, sizeof auth_keys / sizeof auth_keys[0],
				   name, value, &c->err);
		if (rc == 1)
			sdk_fail(&c->err, SDK_EINVAL, "%s: unknown key", name);
		return rc == 0;
	}
	if (!strcmp(section, "model"))
		return on_model_key(c, name, value);
	if (!strcmp(section, "policy"))
		return on_policy_key(c, name, value);
	if (!strcmp(section, "trust"))
		return on_trust_key(c, name, value);
	if (!strcmp(section, "store"))
		return on_store_key(c, name, value);
	if (!strcmp(section, "message_bus"))
		return on_message_bus_key(c, name, value);
	if (!strcmp(section, "compliance")) {
		int rc = set_keyed(&cfg->compliance, compliance_keys,
				   sizeof compliance_keys / sizeof compliance_keys[0], name, value,
				   &c->err);
		if (rc == 1)
			sdk_fail(&c->err, SDK_EINVAL, "%s: unknown key", name);
		return rc == 0;
	}
	if (!strcmp(section, "crypto")) {
		int rc =
			set_keyed(&cfg->crypto, crypto_keys,
				  sizeof crypto_keys / sizeof crypto_keys[0], name, value, &c->err);
		if (rc == 1)
			sdk_fail(&c->err, SDK_EINVAL, "%s: unknown key", name);
		return rc == 0;
	}
	if (!strcmp(section, "state_machine")) {
		int rc = set_keyed(&cfg->state_machine, state_machine_keys,
				   sizeof state_machine_keys / sizeof state_machine_keys[0], name,
				   value, &c->err);
		if (rc == 1)
			sdk_fail(&c->err, SDK_EINVAL, "%s: unknown key", name);
		return rc == 0;
	}
	if (!strcmp(section, "telemetry")) {
		int rc = set_keyed(&cfg->telemetry, telemetry_keys,
				   sizeof telemetry_keys / sizeof telemetry_keys[0], name, value,
				   &c->err);
		if (rc == 1)
			sdk_fail(&c->err, SDK_EINVAL, "%s: unknown key", name);
		return rc == 0;
	}
	if (!strcmp(section, "learning")) {
		if (!strcmp(name, "policy")) {
			if (strcmp(value, "thompson") && strcmp(value, "epsilon_greedy") &&
			    strcmp(value, "static")) {
				sdk_fail(&c->err, SDK_EINVAL,
					 "policy: thompson, epsilon_greedy or static, got '%s'",
					 value);
				return 0;
			}
			snprintf(cfg->learning.policy, sizeof cfg->learning.policy, "%s", value);
			return 1;
		}
		int rc = set_keyed(&cfg->learning, learning_keys,
				   sizeof learning_keys / sizeof learning_keys[0], name, value,
				   &c->err);
		if (rc == 1)
			sdk_fail(&c->err, SDK_EINVAL, "%s: unknown key", name);
		return rc == 0;
	}
	if (!strcmp(section, "self_healing")) {
		grace_self_healing *h = &cfg->self_healing;
		if (!strncmp(name, "watch.", 6)) {
			const char *kname = name + 6;
			if (!valid_name(kname) || strlen(kname) >= GRACE_NAME_MAX) {
				sdk_fail(&c->err, SDK_EINVAL, "%s: watch.KERNEL, a kernel's name",
					 name);
				return 0;
			}
			if (h->n_watches == GRACE_SH_WATCHES_MAX || !*value ||
			    strlen(value) > GRACE_SH_WATCH_MAX) {
				sdk_fail(
					&c->err, SDK_EINVAL,
					"%s: a PromQL expression of 1 to %d bytes, %d watches at most",
					name, GRACE_SH_WATCH_MAX, GRACE_SH_WATCHES_MAX);
				return 0;
			}
			snprintf(h->watches[h->n_watches].kernel, GRACE_NAME_MAX, "%s", kname);
			snprintf(h->watches[h->n_watches].expr, GRACE_SH_WATCH_MAX + 1, "%s", value);
			h->n_watches++;
			return 1;
		}
		if (!strcmp(name, "ladder") || !strcmp(name, "dependencies")) {
			if (strlen(value) >= GRACE_SH_SPEC_MAX || !sh_spec_valid(value)) {
				sdk_fail(
					&c->err, SDK_EINVAL,
					"%s: NAME:VALUE pairs of [a-z0-9_] separated by commas, under %d "
					"bytes",
					name, GRACE_SH_SPEC_MAX);
				return 0;
			}
			snprintf(!strcmp(name, "ladder") ? h->ladder : h->dependencies,
				 GRACE_SH_SPEC_MAX, "%s", value);
			return 1;
		}
		int rc = set_keyed(h, self_healing_keys,
				   sizeof self_healing_keys / sizeof self_healing_keys[0], name,
				   value, &c->err);
		if (rc == 1)
			sdk_fail(&c->err, SDK_EINVAL, "%s: unknown key", name);
		return rc == 0;
	}
	if (!strcmp(section, "research")) {
		int rc = set_keyed(&cfg->research, research_keys,
				   sizeof research_keys / sizeof research_keys[0], name, value,
				   &c->err);
		if (rc == 1)
			sdk_fail(&c->err, SDK_EINVAL, "%s: unknown key", name);
		return rc == 0;
	}
	if (!strcmp(section, "governance"))
		return on_governance_key(c, name, value);
	if (!strcmp(section, "systemd")) {
		if (!strcmp(name, "systemctl")) {
			if (set_string(cfg->systemd.systemctl, sizeof cfg->systemd.systemctl, value) < 0) {
				sdk_fail(&c->err, SDK_EINVAL,
					 "systemctl: empty or longer than %d bytes",
					 GRACE_COMMAND_MAX - 1);
				return 0;
			}
			return 1;
		}
		if (!strcmp(name, "poll_ms")) {
			uint64_t v;
			if (parse_uint(value, 100, 60000, &v) < 0) {
				sdk_fail(&c->err, SDK_EINVAL,
					 "poll_ms: expected 100-60000, got '%s'", value);
				return 0;
			}
			cfg->systemd.poll_ms = (unsigned)v;
			return 1;
		}
		sdk_fail(&c->err, SDK_EINVAL, "%s: unknown key", name);
		return 0;
	}
	if (!strcmp(section, "backup")) {
		grace_backup *b = &cfg->backup;
		char *dst = !strcmp(name, "schedule")   ? b->schedule
			    : !strcmp(name, "timezone") ? b->timezone
			    : !strcmp(name, "dir")      ? b->dir
			    : !strcmp(name, "key_file") ? b->key_file
							: NULL;
		if (dst) {
			size_t len = dst == b->schedule ? sizeof b->schedule
				     : dst == b->timezone ? sizeof b->timezone
							  : PATH_MAX;
			bool path = dst == b->dir || dst == b->key_file;
			if ((*value && set_string(dst, len, value) < 0) ||
			    (path && *value && *value != '/')) {
				sdk_fail(&c->err, SDK_EINVAL, "%s: too long%s", name,
					 path ? ", or not an absolute path" : "");
				return 0;
			}
			if (!*value)
				dst[0] = '\0';
			return 1;
		}
		int rc = set_keyed(b, backup_keys, sizeof backup_keys / sizeof backup_keys[0], name,
				   value, &c->err);
		if (rc == 1)
			sdk_fail(&c->err, SDK_EINVAL, "%s: unknown key", name);
		return rc == 0;
	}
	if (!strcmp(section, "workflow")) {
		int rc = set_keyed(&cfg->workflow, workflow_keys,
				   sizeof workflow_keys / sizeof workflow_keys[0], name, value,
				   &c->err);
		if (rc == 1)
			sdk_fail(&c->err, SDK_EINVAL, "%s: unknown key", name);
		return rc == 0;
	}
	if (!strcmp(section, "coding_agent")) {
		grace_coding_agent *ca = &cfg->coding_agent;
		if (!strcmp(name, "workspace_root") || !strcmp(name, "worktree_root")) {
			char *dst = name[1] == 'o' ? ca->workspace_root : ca->worktree_root;
			if ((*value && set_string(dst, PATH_MAX, value) < 0) ||
			    (*value && *value != '/')) {
				sdk_fail(&c->err, SDK_EINVAL,
					 "%s: too long, or not an absolute path", name);
				return 0;
			}
			if (!*value)
				dst[0] = '\0';
			return 1;
		}
		int rc = set_keyed(ca, coding_agent_keys,
				   sizeof coding_agent_keys / sizeof coding_agent_keys[0], name,
				   value, &c->err);
		if (rc == 1)
			sdk_fail(&c->err, SDK_EINVAL, "%s: unknown key", name);
		return rc == 0;
	}
	if (!strcmp(section, "scheduler") || !strcmp(section, "executor")) {
		if (!strcmp(section, "executor") &&
		    (!strcmp(name, "jobs_user") || !strcmp(name, "work_root") ||
		     !strcmp(name, "dir_root"))) {
			bool user = !strcmp(name, "jobs_user");
			char *dst = user ? cfg->executor.jobs_user
				    : !strcmp(name, "work_root") ? cfg->executor.work_root
								 : cfg->executor.dir_root;
			size_t len = user ? sizeof cfg->executor.jobs_user : PATH_MAX;
			if ((*value && set_string(dst, len, value) < 0) || (!user && *value && *value != '/')) {
				sdk_fail(&c->err, SDK_EINVAL, "%s: too long%s", name,
					 user ? "" : ", or not an absolute path");
				return 0;
			}
			if (!*value)
				dst[0] = '\0';
			return 1;
		}
		int rc = !strcmp(section, "scheduler")
				 ? set_keyed(&cfg->scheduler, scheduler_keys,
					     sizeof scheduler_keys / sizeof scheduler_keys[0], name,
					     value, &c->err)
				 : set_keyed(&cfg->executor, executor_keys,
					     sizeof executor_keys / sizeof executor_keys[0], name,
					     value, &c->err);
		if (rc == 1)
			sdk_fail(&c->err, SDK_EINVAL, "%s: unknown key", name);
		return rc == 0;
	}
	if (!strcmp(section, "audit") || !strcmp(section, "memory") ||
	    !strcmp(section, "librarian")) {
		int rc = !strcmp(section, "audit")
				 ? set_keyed(&cfg->audit, audit_keys,
					     sizeof audit_keys / sizeof audit_keys[0], name, value,
					     &c->err)
			 : !strcmp(section, "memory")
				 ? set_keyed(&cfg->memory, memory_keys,
					     sizeof memory_keys / sizeof memory_keys[0], name,
					     value, &c->err)
				 : set_keyed(&cfg->librarian, librarian_keys,
					     sizeof librarian_keys / sizeof librarian_keys[0], name,
					     value, &c->err);
		if (rc == 1)
			sdk_fail(&c->err, SDK_EINVAL, "%s: unknown key", name);
		return rc == 0;
	}
	if (!strcmp(section, "metrics")) {
		grace_metrics *m = &cfg->metrics;
		if (!strcmp(name, "target")) {
			if (m->n_targets == GRACE_METRICS_TARGETS_MAX) {
				sdk_fail(&c->err, SDK_EINVAL, "target: more than %d targets",
					 GRACE_METRICS_TARGETS_MAX);
				return 0;
			}
			if (!metrics_target_valid(value, &c->err))
				return 0;
			if (set_string(m->targets[m->n_targets], GRACE_METRICS_TARGET_MAX, value) < 0) {
				sdk_fail(&c->err, SDK_EINVAL, "target: too long");
				return 0;
			}
			m->n_targets++;
			return 1;
		}
		int rc = set_keyed(m, metrics_keys, sizeof metrics_keys / sizeof metrics_keys[0],
				   name, value, &c->err);
		if (rc == 1)
			sdk_fail(&c->err, SDK_EINVAL, "%s: unknown key", name);
		return rc == 0;
	}
	if (!strcmp(section, "alerts")) {
		grace_alerts *a = &cfg->alerts;
		if (!strcmp(name, "rule_files") || !strcmp(name, "notifier_file")) {
			char *dst = name[0] == 'r' ? a->rule_files : a->notifier_file;
			if (set_string(dst, PATH_MAX, value) < 0) {
				sdk_fail(&c->err, SDK_EINVAL, "%s: empty or too long", name);
				return 0;
			}
			return 1;
		}
		if (!strcmp(name, "default_rules")) {
			if (parse_bool(value, &a->default_rules) < 0) {
				sdk_fail(&c->err, SDK_EINVAL, "default_rules: true or false");
				return 0;
			}
			return 1;
		}
		int rc = set_keyed(a, alerts_keys, sizeof alerts_keys / sizeof alerts_keys[0], name,
				   value, &c->err);
		if (rc == 1)
			sdk_fail(&c->err, SDK_EINVAL, "%s: unknown key", name);
		return rc == 0;
	}
	if (!strcmp(section, "limits")) {
		int rc = set_keyed(&cfg->limits, limit_keys,
				   sizeof limit_keys / sizeof limit_keys[0], name, value, &c->err);
		if (rc == 1)
			sdk_fail(&c->err, SDK_EINVAL, "%s: unknown key", name);
		return rc == 0;
	}
	if (!strcmp(section, "defaults")) {
		if (!strcmp(name, "node"))
			return on_kernel_key(c, &c->defaults, name, value);
		const char *v = manager_value(name, value);
		if (!v) {
			sdk_fail(&c->err, SDK_EINVAL, "manager: grace or systemd, got '%s'", value);
			return 0;
		}
		int rc = set_keyed(&c->defaults, kernel_keys,
				   sizeof kernel_keys / sizeof kernel_keys[0], name, v, &c->err);
		if (rc == 1)
			sdk_fail(&c->err, SDK_EINVAL, "%s: unknown key", name);
		return rc == 0;
	}
	if (!strncmp(section, "node.", 5))
		return on_node_key(c, section + 5, name, value);
	if (!strncmp(section, "kernel.", 7)) {
		const char *kname = section + 7;
		if (!valid_name(kname)) {
			sdk_fail(&c->err, SDK_EINVAL,
				 "[%s]: a kernel name is lower-case letters, digits and '_'",
				 section);
			return 0;
		}
		grace_kernel_cfg *k = kernel_section(c, kname);
		if (!k) {
			sdk_fail(&c->err, SDK_EINVAL, "[%s]: more than %d kernels", section,
				 GRACE_KERNELS_MAX);
			return 0;
		}
		return on_kernel_key(c, k, name, value);
	}
	sdk_fail(&c->err, SDK_EINVAL, "[%s]: unknown section", section);
	return 0;
}

/* libinih (as Debian builds it) reads lines of at most this many bytes and
 * silently treats the rest as a new line: longer ones are refused here. */
#define CONFIG_LINE_MAX 198

static bool known_section(const char *name, size_t n)
{
	static const char *const fixed[] = { "grace",   "limits",    "defaults", "auth",    "model",
					     "audit",   "memory",    "librarian", "policy", "metrics",
					     "alerts",  "scheduler", "executor",  "state_machine",
					     "backup",  "compliance", "workflow", "governance",
					     "telemetry", "systemd", "crypto", "trust", "learning",
					     "self_healing", "coding_agent", "store", "message_bus", "research" };
	for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
		if (strlen(fixed[i]) == n && !strncmp(name, fixed[i], n))
			return true;
	return (n > 7 && !strncmp(name, "kernel.", 7)) || (n > 5 && !strncmp(name, "node.", 5));
}

/* A first pass over the file for what libinih would get wrong or report
 * with the wrong line: over-long lines, lines that are neither a section
 * nor a key, unknown sections, and kernel sections with no keys (which
 * libinih never reports). Returns the failing line, 0 when clean, -1 when
 * the file cannot be read. */
static int config_lint(const char *path, struct parse_ctx *c, sdk_err *why)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int lineno = 0, bad = 0;
	while (!bad && (len = getline(&line, &cap, f)) >= 0) {
		lineno++;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		char *p = line;
		while (*p == ' ' || *p == '\t')
			p++;
		if (len > CONFIG_LINE_MAX) {
			sdk_fail(why, SDK_EINVAL, "line longer than %d bytes", CONFIG_LINE_MAX);
			bad = lineno;
		} else if (*p == '\0' || *p == ';' || *p == '#') {
			continue;
		} else if (*p == '[') {
			char *end = strchr(p, ']');
			if (!end) {
				sdk_fail(why, SDK_EINVAL, "section header without ']'");
				bad = lineno;
			} else if (!known_section(p + 1, (size_t)(end - p - 1))) {
				sdk_fail(why, SDK_EINVAL, "[%.*s]: unknown section",
					 (int)(end - p - 1), p + 1);
				bad = lineno;
			} else if (!strncmp(p + 1, "kernel.", 7)) {
				*end = '\0';
				/* Registered now, so a section with no keys is still
				 * checked (its missing port reported). */
				if (!valid_name(p + 8)) {
					sdk_fail(
						why, SDK_EINVAL,
						"[%.64s]: a kernel name is lower-case letters, digits "
						"and '_'",
						p + 1);
					bad = lineno;
				} else {
					kernel_section(c, p + 8);
				}
			}
		} else if (!strchr(p, '=') && !strchr(p, ':')) {
			sdk_fail(why, SDK_EINVAL,
				 "syntax error: expected [section] or key = value");
			bad = lineno;
		}
	}
	free(line);
	fclose(f);
	return bad;
}

static void config_defaults(grace_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->api_port = DEFAULT_API_PORT;
	snprintf(cfg->data_dir, sizeof cfg->data_dir, "%s", DEFAULT_DATA_DIR);
	snprintf(cfg->library_root, sizeof cfg->library_root, "%s", DEFAULT_LIBRARY_ROOT);
	snprintf(cfg->log_level, sizeof cfg->log_level, "info");
	cfg->log_file_bytes = 10 * 1024 * 1024;
	cfg->log_files = 9;
	cfg->backup = (grace_backup){ .timezone = "UTC", .keep = 7, .verify = 1 };
	cfg->systemd = (grace_systemd){ .systemctl = "systemctl", .poll_ms = 1000 };
	cfg->nodes.poll_ms = 1000;
	cfg->nodes.down_ms = 3000;
	cfg->limits = (grace_limits){ .max_header_bytes = 16384,
				      .max_headers = 100,
				      .max_body_bytes = 1u << 20,
				      .timeout_ms = 30000,
				      .head_timeout_ms = 10000,
				      .keepalive_ms = 75000,
				      .max_connections = 10000,
				      .max_connections_per_address = 2048,
				      .drain_ms = 5000 };
	/* libsodium's "interactive" Argon2id: 64 MiB, 2 passes. */
	cfg->auth = (grace_auth){ .session_idle_s = 1800,
				  .session_max_s = 43200,
				  .hash_threads = 2,
				  .hash_queue = 256,
				  .argon2_ops = 2,
				  .argon2_mem_kib = 65536,
				  .login_failures_max = 10,
				  .login_window_s = 900 };
	cfg->audit = (grace_audit){ .window_s = 60,
				    .windows_max = 256,
				    .journal_max_events = 100000,
				    .journal_max_bytes = 64u << 20 };
	cfg->model = (grace_model){ .timeout_ms = 60000,
				    .max_tokens = 1024,
				    .heartbeat_ms = GRACE_MODEL_HEARTBEAT_MS };
	cfg->memory = (grace_memory){ .tables_per_user = 100,
				      .jobs_per_user = 8,
				      .rows_per_user = 1000000,
				      .bytes_per_user = (size_t)1 << 30 };
	cfg->librarian = (grace_librarian){ .documents_per_user = 100000,
					    .ingests_per_user = 2,
					    .ingest_files_max = 20000,
					    .ingest_chunk_files = 32,
					    .document_bytes_per_user = (size_t)1 << 30,
					    .ingest_bytes_max = (size_t)512 << 20 };
	cfg->policy = (grace_policy){ .authorizer = GRACE_AUTHORIZER_KERNEL,
				      .policy_set = "default",
				      .decision_timeout_ms = 2000,
				      .cache_entries = 4096 };
	cfg->state_machine = (grace_state_machine){ .instances_per_user = 10000,
						    .history_keep = 1000,
						    .context_max_bytes = (size_t)256 << 10,
						    .event_max_bytes = (size_t)64 << 10 };
	cfg->workflow = (grace_workflow){ .definition_max_bytes = (size_t)1 << 20,
					  .tasks_max = 10000,
					  .runs_max = 1000,
					  .history_max = 100000,
					  .data_max_bytes = (size_t)1 << 20 };
	cfg->metrics = (grace_metrics){ .scrape_interval_ms = 5000,
					.scrape_timeout_ms = 4000,
					.flush_interval_ms = 10000,
					.retention_s = 15u * 86400,
					.retention_bytes = (size_t)1 << 30,
					.max_series = 200000,
					.sample_limit = 50000,
					.query_timeout_ms = 120000,
					.query_threads = 2,
					.query_queue = 64,
					.query_max_samples = 50000000,
					.log_verify_interval_s = 3600 };
	cfg->alerts = (grace_alerts){ .evaluation_interval_ms = 10000,
				      .resend_delay_ms = 60000,
				      .incident_alert_s = 900,
				      .notify_timeout_ms = 10000,
				      .default_rules = true };
	cfg->scheduler = (grace_scheduler){ .late_tolerance_ms = 2000,
					    .jobs_max = 10000,
					    .jobs_per_user = 100,
					    .runs_per_job = 1000,
					    .active_runs_max = 256 };
	cfg->telemetry = (grace_telemetry){ .retention_age_s = 7 * 86400,
					    .retention_max_bytes = (size_t)256 << 20,
					    .retention_interval_ms = 60000,
					    .request_items_max = 10000,
					    .queue_max = 256,
					    .caller_requests_max = 64,
					    .self_trace = 1,
					    .sample_percent = 1,
					    .sample_rate_max = 100,
					    .store_idle = 1 };
	cfg->learning = (grace_learning){ .policy = "thompson",
					  .epsilon_percent = 10,
					  .explore_floor_percent = 5,
					  .relapse_window_ms = 3600000,
					  .heal_bound_ms = 120000,
					  .decisions_max = 100000,
					  .evaluate_max = 20000,
					  .decide_timeout_ms = 300 };
	cfg->self_healing = (grace_self_healing){
		.ladder = "restart_component:0,reset_port:5000,rebind_port:10000,stop:30000",
		.dependencies = "audit:immutable_log,alerts:metrics,scheduler:executor,"
				"workflow:message_bus,trust:message_bus,state_machine:message_bus",
		.stable_ms = 300000,
		.flap_window_ms = 600000,
		.flap_threshold = 3,
		.budget_per_hour = 20,
		.advice_timeout_ms = 500,
		.watch_interval_ms = 15000,
	};
	cfg->research = (grace_research){ .steps_default = 30,
					  .steps_max = 200,
					  .time_ms_default = 20000,
					  .time_ms_max = 120000,
					  .call_timeout_ms = 3000,
					  .window_ms = 900000,
					  .running_max = 8,
					  .keep = 1000 };
	cfg->compliance = (grace_compliance){ .scan_interval_s = 3600,
					      .scans_keep = 1000,
					      .waiver_max_days = 90,
					      .check_timeout_ms = 10000 };
	/* AWS KMS's: 30 days unless asked, 7 to 30. */
	cfg->crypto = (grace_crypto){ .deletion_window_s = 30 * 86400,
				      .deletion_window_min_s = 7 * 86400,
				      .deletion_window_max_s = 30 * 86400 };
	cfg->store = (grace_store_cfg){ .engine = GRACE_STORE_SQLITE,
					.pool_size = 4,
					.statement_timeout_ms = 5000,
					.connect_timeout_s = 5 };
	cfg->message_bus = (grace_message_bus){ .nats_urls = { "nats://127.0.0.1:4222" },
						.n_nats_urls = 1,
						.stream_prefix = "GRACE",
						.replicas = 1,
						.publish_timeout_ms = 5000,
						.connect_timeout_ms = 2000 };
	cfg->trust = (grace_trust){ .domain = "grace.local",
				    .jwt_ttl_default_s = 300,
				    .jwt_ttl_max_s = 3600,
				    .x509_ttl_default_s = 3600,
				    .x509_ttl_max_s = 86400,
				    .jwt_rotate_s = 86400,
				    .x509_rotate_s = 7 * 86400,
				    .score_half_life_s = 86400,
				    .score_refresh_ms = 5000,
				    .score_period_s = 300,
				    .require_svid = false,
				    .svid_ttl_s = 300 };
	cfg->governance = (grace_governance){ .expiry_s = 86400,
					      .requests_max = 100000,
					      .poll_ms = 500,
					      .default_rule = "1 admin" };
	cfg->executor = (grace_executor){ .concurrency = 4,
					  .queue_max = 100,
					  .history_max = 10000,
					  .timeout_default_ms = 60000,
					  .timeout_max_ms = 86400000,
					  .kill_grace_ms = 2000,
					  .cgroups = 1,
					  .output_default_bytes = 1u << 20,
					  .output_max_bytes = 16u << 20,
					  .jobs_user = "grace-jobs" };
	cfg->coding_agent = (grace_coding_agent){ .running_max = 2,
						  .tasks_max = 10000,
						  .turns_max = 20,
						  .turns_default = 3,
						  .test_timeout_ms = 300000,
						  .git_timeout_ms = 60000,
						  .task_timeout_ms = 3600000,
						  .patch_max_bytes = 1u << 20,
						  .context_max_bytes = 64u << 10 };
}

/* The built-in kernels are the configuration when the file lists none.
 * A definition the file could not have held (a kernel without its port)
 * is refused here, naming it, rather than as a missing key of a file. */
static int builtins_add(grace_config *cfg, const sdk_kernel_def *const *builtins, size_t n,
			sdk_err *err)
{
	if (n > GRACE_KERNELS_MAX) {
		return sdk_fail(err, SDK_EINVAL, "built-in kernels: %zu, more than %d", n,
				GRACE_KERNELS_MAX);
	}
	for (size_t i = 0; i < n; i++) {
		const sdk_kernel_def *d = builtins[i];
		if (!d->name || !valid_name(d->name)) {
			return sdk_fail(err, SDK_EINVAL,
					"built-in kernel %zu: name '%.40s' is not lower-case "
					"letters, digits and '_'",
					i, d->name ? d->name : "");
		}
		if (d->port < GRACE_KERNEL_PORT_MIN || d->port > GRACE_KERNEL_PORT_MAX ||
		    !d->tier || !valid_name(d->tier)) {
			return sdk_fail(
				err, SDK_EINVAL,
				"built-in kernel %s: its definition needs .port (%d-%d) and .tier "
				"(a lower-case word); it has port %d, tier '%.40s'",
				d->name, GRACE_KERNEL_PORT_MIN, GRACE_KERNEL_PORT_MAX, d->port,
				d->tier ? d->tier : "");
		}
		kernel_init(&cfg->kernels[cfg->n_kernels++], d->name, d);
	}
	return 0;
}

/* Makes a path absolute against the current directory, without requiring it
 * to exist yet (the data directory is created later by `grace serve`). */
static int absolutize(char *path, size_t len)
{
	if (path[0] == '/')
		return 0;
	char cwd[PATH_MAX], tmp[PATH_MAX];
	if (!getcwd(cwd, sizeof cwd))
		return -1;
	const char *rel = path[0] == '.' && path[1] == '/' ? path + 2 : path;
	if (snprintf(tmp, sizeof tmp, "%s/%s", cwd, rel) >= (int)sizeof tmp || strlen(tmp) >= len)
		return -1;
	memcpy(path, tmp, strlen(tmp) + 1);
	return 0;
}

#define EPHEMERAL_RANGE_FILE "/proc/sys/net/ipv4/ip_local_port_range"
#define RESERVED_PORTS_FILE "/proc/sys/net/ipv4/ip_local_reserved_ports"

/* Whether `port` is in ip_local_reserved_ports ("8100-8149,9000"): the
 * kernel never hands those out as ephemeral ports. */
static bool port_reserved(const char *list, int port)
{
	for (const char *p = list; *p;) {
		char *end;
		long lo = strtol(p, &end, 10), hi = lo;
		if (end == p)
			break;
		if (*end == '-')
			hi = strtol(end + 1, &end, 10);
		if (port >= lo && port <= hi)
			return true;
		p = *end == ',' ? end + 1 : end;
		if (*end != ',')
			break;
	}
	return false;
}

/* A listening port inside the ephemeral range can be taken at any moment
 * by a client's outgoing connection (or its TIME_WAIT), and the kernel
 * then cannot bind it ("held by pid 0"). Grace's ports must stay out of
 * it: refused at load, naming the range and the port. */
static int ephemeral_range(int *lo, int *hi)
{
	FILE *f = fopen(EPHEMERAL_RANGE_FILE, "r");
	if (!f)
		return -1; /* not Linux, or no /proc: nothing to go by */
	int n = fscanf(f, "%d %d", lo, hi);
	fclose(f);
	return n == 2 && *lo > 0 && *hi >= *lo ? 0 : -1;
}

int grace_ephemeral_low(void)
{
	int lo = 0, hi = 0;
	return ephemeral_range(&lo, &hi) == 0 ? lo : 32768;
}

static int check_ephemeral(const grace_config *cfg, sdk_err *err)
{
	int lo = 0, hi = 0;
	if (ephemeral_range(&lo, &hi) < 0)
		return 0;
	char reserved[4096] = "";
	FILE *f;
	if ((f = fopen(RESERVED_PORTS_FILE, "r"))) {
		if (!fgets(reserved, sizeof reserved, f))
			reserved[0] = '\0';
		fclose(f);
	}
	int api = cfg->api_port + cfg->port_offset;
	int port = 0;
	char name[96] = "";
	if (api >= lo && api <= hi && !port_reserved(reserved, api)) {
		port = api;
		snprintf(name, sizeof name, "the API port (api_port %d", cfg->api_port);
	}
	for (size_t i = 0; !port && i < cfg->n_kernels; i++) {
		int p = cfg->kernels[i].port + cfg->port_offset;
		if (p >= lo && p <= hi && !port_reserved(reserved, p)) {
			port = p;
			snprintf(name, sizeof name, "kernel %s's port (%d", cfg->kernels[i].name,
				 cfg->kernels[i].port);
		}
	}
	/* rebind_port may move a kernel anywhere in the kernel range. */
	for (int p = GRACE_KERNEL_PORT_MIN; !port && p <= GRACE_KERNEL_PORT_MAX; p++) {
		int q = p + cfg->port_offset;
		if (q >= lo && q <= hi && !port_reserved(reserved, q)) {
			port = q;
			snprintf(name, sizeof name, "the kernel port range (%d-%d",
				 GRACE_KERNEL_PORT_MIN, GRACE_KERNEL_PORT_MAX);
		}
	}
	if (!port)
		return 0;
	return sdk_fail(
		err, SDK_EINVAL,
		"%s: port_offset %d puts %s) + %d = %d inside the ephemeral port range "
		"%d-%d (%s), where clients' connections can take it; choose an offset that keeps "
		"every port out of that range, or list the ports in %s",
		cfg->path[0] ? cfg->path : "configuration", cfg->port_offset, name,
		cfg->port_offset, port, lo, hi, EPHEMERAL_RANGE_FILE, RESERVED_PORTS_FILE);
}

static int check_kernels(grace_config *cfg, const grace_kernel_cfg *d, sdk_err *err)
{
	/* Without a file the kernels are the built-in ones: name those. */
	const char *where = cfg->path[0] ? cfg->path : "built-in kernels";
	for (size_t i = 0; i < cfg->n_kernels; i++) {
		grace_kernel_cfg *k = &cfg->kernels[i];
		kernel_inherit(k, d);
		if (!k->port) {
			return sdk_fail(err, SDK_EINVAL, "%s: [kernel.%s]: port: missing", where,
					k->name);
		}
		if (!k->tier[0])
			snprintf(k->tier, sizeof k->tier, "custom");
		if (k->port == cfg->api_port) {
			return sdk_fail(err, SDK_EINVAL,
					"%s: [kernel.%s]: port: %d is also the API's (api_port)",
					where, k->name, k->port);
		}
		for (size_t j = 0; j < i; j++) {
			if (cfg->kernels[j].port == k->port) {
				return sdk_fail(err, SDK_EINVAL,
						"%s: [kernel.%s]: port: %d is also kernel %s's",
						where, k->name, k->port, cfg->kernels[j].name);
			}
		}
	}
	if (cfg->api_port + cfg->port_offset > 65535 ||
	    GRACE_KERNEL_PORT_MAX + cfg->port_offset > 65535) {
		return sdk_fail(err, SDK_EINVAL, "port_offset %d puts ports past 65535",
				cfg->port_offset);
	}
	return check_ephemeral(cfg, err);
}

/* Every node has an address; every kernel a node that exists (the first
 * by default); this process's node is one of them. */
static int check_nodes(grace_config *cfg, sdk_err *err)
{
	grace_nodes *ns = &cfg->nodes;
	const char *where = cfg->path[0] ? cfg->path : "configuration";
	for (size_t i = 0; i < ns->n; i++)
		if (!ns->at[i].address[0]) {
			return sdk_fail(err, SDK_EINVAL, "%s: [node.%s]: address: missing", where,
					ns->at[i].name);
		}
	for (size_t i = 0; i < cfg->n_kernels; i++) {
		grace_kernel_cfg *k = &cfg->kernels[i];
		if (!ns->n) {
			if (k->node[0]) {
				return sdk_fail(err, SDK_EINVAL,
						"%s: [kernel.%s]: node %s: no [node.%s] section",
						where, k->name, k->node, k->node);
			}
			continue;
		}
		if (!k->node[0])
			memcpy(k->node, ns->at[0].name, sizeof k->node);
		if (!grace_config_node(cfg, k->node)) {
			return sdk_fail(err, SDK_EINVAL,
					"%s: [kernel.%s]: node %s: no [node.%s] section", where,
					k->name, k->node, k->node);
		}
	}
	if (!ns->n) {
		if (ns->self[0]) {
			return sdk_fail(err, SDK_EINVAL, "%s: node %s: no [node.%s] section", where,
					ns->self, ns->self);
		}
		return 0;
	}
	if (ns->self[0] && !grace_config_node(cfg, ns->self)) {
		return sdk_fail(err, SDK_EINVAL,
				"%s: this process's node %s ([grace] node or GRACE_NODE): no "
				"[node.%s] section",
				where, ns->self, ns->self);
	}
	return 0;
}

/* The TLS door needs a certificate: its files, or the node's. */
static int check_tls_door(grace_config *cfg, sdk_err *err)
{
	grace_tls_door *t = &cfg->tls;
	const char *where = cfg->path[0] ? cfg->path : "configuration";
	if (!t->address[0])
		return 0;
	if (!t->cert_file[0] != !t->key_file[0]) {
		return sdk_fail(err, SDK_EINVAL,
				"%s: [grace] tls_cert_file and tls_key_file go together", where);
	}
	if (!t->cert_file[0] && !cfg->nodes.n) {
		return sdk_fail(err, SDK_EINVAL,
				"%s: [grace] tls_address needs tls_cert_file and tls_key_file "
				"(or nodes, whose certificate it then shows)",
				where);
	}
	if ((t->cert_file[0] && absolutize(t->cert_file, sizeof t->cert_file) < 0) ||
	    (t->key_file[0] && absolutize(t->key_file, sizeof t->key_file) < 0)) {
		return sdk_fail(err, SDK_EINVAL,
				"[grace] tls_cert_file or tls_key_file: path too long");
	}
	return 0;
}

int grace_config_read(grace_config *cfg, const sdk_kernel_def *const *builtins, size_t n_builtins,
		      const grace_config_overrides *ov, sdk_err *err)
{
	struct parse_ctx c = { .cfg = cfg, .builtins = builtins, .n_builtins = n_builtins };
	config_defaults(cfg);
	if (builtins_add(cfg, builtins, n_builtins, err) < 0)
		return -1;
	defaults_init(&c.defaults);

	const char *path = ov && ov->config_path ? ov->config_path : getenv("GRACE_CONFIG");
	bool required = path && *path;
	if (!required && access(DEFAULT_CONFIG_PATH, R_OK) == 0)
		path = DEFAULT_CONFIG_PATH;
	if (path && *path) {
		if (snprintf(cfg->path, sizeof cfg->path, "%s", path) >= (int)sizeof cfg->path) {
			return sdk_fail(err, SDK_EINVAL, "config path too long");
		}
		/* The earlier of the two passes' first errors is the one reported:
		 * libinih is right about every line before the first the lint
		 * pass objects to. */
		sdk_err lint_why = { "" };
		int lint_line = config_lint(path, &c, &lint_why);
		if (lint_line == -1) {
			return sdk_fail(err, SDK_EINVAL, "%s: cannot open: %s", path,
					strerror(errno));
		}
		int line = ini_parse(path, on_ini, &c);
		if (line == -1) {
			return sdk_fail(err, SDK_EINVAL, "%s: cannot open: %s", path,
					strerror(errno));
		}
		if (lint_line > 0 && (line == 0 || lint_line <= line)) {
			line = lint_line;
			c.err = lint_why;
		}
		if (line != 0) {
			return sdk_fail(
				err, SDK_EINVAL, "%s:%d: %s", path, line,
				c.err.msg[0] ? c.err.msg
					     : "syntax error (expected [section] or key = value)");
		}
		absolutize(cfg->path, sizeof cfg->path);
	}

	const char *env;
	if ((env = getenv("GRACE_DATA_DIR")) && *env)
		snprintf(cfg->data_dir, sizeof cfg->data_dir, "%s", env);
	if ((env = getenv("GRACE_LIBRARY_ROOT")) && *env)
		snprintf(cfg->library_root, sizeof cfg->library_root, "%s", env);
	if ((env = getenv("GRACE_NODE")) && *env) {
		if (!valid_name(env)) {
			return sdk_fail(err, SDK_EINVAL, "GRACE_NODE: a node's name, got '%.32s'",
					env);
		}
		snprintf(cfg->nodes.self, sizeof cfg->nodes.self, "%s", env);
	}
	if ((env = getenv("GRACE_LOG_LEVEL")) && *env) {
		if (strcmp(env, "debug") && strcmp(env, "info") && strcmp(env, "warn") &&
		    strcmp(env, "error")) {
			return sdk_fail(
				err, SDK_EINVAL,
				"GRACE_LOG_LEVEL: expected debug, info, warn or error, got '%.32s'",
				env);
		}
		snprintf(cfg->log_level, sizeof cfg->log_level, "%s", env);
	}
	const char *offset = ov && ov->port_offset ? ov->port_offset : getenv("GRACE_PORT_OFFSET");
	if (offset && *offset) {
		uint64_t v;
		if (parse_uint(offset, 0, 50000, &v) < 0) {
			return sdk_fail(
				err, SDK_EINVAL,
				"port offset: expected an integer from 0 to 50000, got '%s'",
				offset);
		}
		cfg->port_offset = (int)v;
	}
	if ((env = getenv("GRACE_MODEL_URL")) && *env) {
		if (!model_url_valid(env) || strlen(env) >= sizeof cfg->model.base_url) {
			return sdk_fail(err, SDK_EINVAL,
					"GRACE_MODEL_URL: expected an http:// or https:// URL of "
					"at most %zu bytes",
					sizeof cfg->model.base_url - 1);
		}
		snprintf(cfg->model.base_url, sizeof cfg->model.base_url, "%s", env);
	}
	if (ov && ov->data_dir)
		snprintf(cfg->data_dir, sizeof cfg->data_dir, "%s", ov->data_dir);
	if (absolutize(cfg->data_dir, sizeof cfg->data_dir) < 0 ||
	    absolutize(cfg->library_root, sizeof cfg->library_root) < 0 ||
	    (cfg->model.key_file[0] && absolutize(cfg->model.key_file, sizeof cfg->model.key_file) < 0)) {
		return sdk_fail(err, SDK_EINVAL,
				"data_dir, library_root or [model] key_file: path too long");
	}
	if (cfg->executor.timeout_default_ms > cfg->executor.timeout_max_ms ||
	    cfg->executor.output_default_bytes > cfg->executor.output_max_bytes) {
		return sdk_fail(err, SDK_EINVAL,
				"[executor]: timeout_default_ms and output_default_bytes must "
				"not exceed timeout_max_ms and output_max_bytes");
	}
	if (cfg->coding_agent.turns_default > cfg->coding_agent.turns_max) {
		return sdk_fail(err, SDK_EINVAL,
				"[coding_agent]: turns_default must not exceed turns_max");
	}
	const grace_crypto *cr = &cfg->crypto;
	if (cr->deletion_window_min_s > cr->deletion_window_s ||
	    cr->deletion_window_s > cr->deletion_window_max_s) {
		return sdk_fail(err, SDK_EINVAL,
				"[crypto]: deletion_window_min_s <= deletion_window_s <= "
				"deletion_window_max_s");
	}
	const grace_trust *t = &cfg->trust;
	if (t->jwt_ttl_default_s > t->jwt_ttl_max_s || t->x509_ttl_default_s > t->x509_ttl_max_s) {
		return sdk_fail(err, SDK_EINVAL,
				"[trust]: jwt_ttl_default_s and x509_ttl_default_s must not "
				"exceed jwt_ttl_max_s and x509_ttl_max_s");
	}
	/* SVIDs come from the trust kernel only: without it every call
	 * between kernels would be refused. */
	if (t->require_svid && grace_config_kernel_index(cfg, "trust") < 0) {
		return sdk_fail(err, SDK_EINVAL,
				"[trust]: require_svid = true needs the trust kernel "
				"([kernel.trust])");
	}
	if (cfg->store.password_file[0] &&
	    absolutize(cfg->store.password_file, sizeof cfg->store.password_file) < 0) {
		return sdk_fail(err, SDK_EINVAL, "[store] password_file: path too long");
	}
	if (cfg->store.engine == GRACE_STORE_POSTGRESQL && !cfg->store.postgresql_url[0]) {
		return sdk_fail(err, SDK_EINVAL,
				"[store] engine = postgresql needs postgresql_url");
	}
	const grace_backup *b = &cfg->backup;
	if (b->schedule[0] && (!b->dir[0] || (!b->key_file[0] && !b->no_secrets) ||
			       (b->key_file[0] && b->no_secrets))) {
		return sdk_fail(err, SDK_EINVAL,
				"[backup]: a schedule needs dir, and exactly one of key_file "
				"(the secrets sealed) or no_secrets = 1 (left out)");
	}
	if (check_kernels(cfg, &c.defaults, err) < 0 || check_nodes(cfg, err) < 0)
		return -1;
	return check_tls_door(cfg, err);
}

int grace_config_check_authorizer(const grace_config *cfg, sdk_err *err)
{
	if (cfg->policy.authorizer != GRACE_AUTHORIZER_KERNEL ||
	    grace_config_kernel_index(cfg, "policy") >= 0)
		return 0;
	return sdk_fail(
		err, SDK_EINVAL,
		"%s: [policy] authorizer = kernel (the default) needs the policy kernel: add "
		"[kernel.policy], or set authorizer = table for the built-in role table",
		cfg->path[0] ? cfg->path : "configuration");
}

int grace_config_kernel_index(const grace_config *cfg, const char *name)
{
	/* The first byte first: every request through :8000 looks up its
	 * kernel (and the policy kernel) here. */
	for (size_t i = 0; i < cfg->n_kernels; i++) /* a name may itself end in _kernel */
		if (cfg->kernels[i].name[0] == name[0] && !strcmp(cfg->kernels[i].name, name))
			return (int)i;
	size_t n = strlen(name);
	static const char suffix[] = "_kernel";
	if (n > sizeof suffix - 1 && !strcmp(name + n - (sizeof suffix - 1), suffix))
		n -= sizeof suffix - 1;
	for (size_t i = 0; i < cfg->n_kernels; i++)
		if (strlen(cfg->kernels[i].name) == n && !strncmp(cfg->kernels[i].name, name, n))
			return (int)i;
	return -1;
}

const grace_kernel_cfg *grace_config_kernel(const grace_config *cfg, const char *name)
{
	int i = grace_config_kernel_index(cfg, name);
	return i < 0 ? NULL : &cfg->kernels[i];
}

int grace_kernel_port(const grace_config *cfg, const grace_kernel_cfg *k)
{
	return k->port + cfg->port_offset;
}

bool grace_kernel_local(const grace_config *cfg, const grace_kernel_cfg *k)
{
	return !cfg->nodes.n || !strcmp(k->node, cfg->nodes.self);
}

const grace_node_cfg *grace_config_node(const grace_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nodes.n; i++)
		if (!strcmp(cfg->nodes.at[i].name, name))
			return &cfg->nodes.at[i];
	return NULL;
}

bool grace_config_self_trace(const grace_config *cfg)
{
	const grace_kernel_cfg *k = grace_config_kernel(cfg, "telemetry");
	return cfg->telemetry.self_trace && k && k->enabled;
}
