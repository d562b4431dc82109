/* Unit tests of the compliance kernel's pure pieces
 * (src/kernels/compliance/{profile,checks,oscal}.c): profile checking with
 * the failing field named, the shipped default profile, result changes and
 * waivers (with a fake clock), OWASP's Argon2id table, /proc/net/tcp
 * lines, file-mode checks on a temporary directory, and OSCAL building. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/compliance/checks.h"
#include "kernels/compliance/oscal.h"
#include "kernels/compliance/profile.h"

/* The message of checking `text` as a profile ("" when valid). */
static const char *why(const char *text)
{
	static sdk_err e;
	json_error_t je;
	json_t *p = json_loads(text, 0, &je);
	assert_non_null(p);
	int rc = cmp_profile_check(p, &e);
	json_decref(p);
	if (rc == 0)
		return "";
	assert_int_equal(rc, SDK_EINVAL);
	return e.msg;
}

#define OK_CONTROL "{\"id\":\"a\",\"title\":\"A\",\"check\":{\"kind\":\"admin_users\"}}"

static void test_profile_valid(void **st)
{
	(void)st;
	assert_string_equal(why("{\"title\":\"t\",\"controls\":[" OK_CONTROL "]}"), "");
	assert_string_equal(
		why("{\"title\":\"t\",\"version\":\"1\",\"controls\":[{\"id\":\"f\",\"title\":\"F\","
		    "\"check\":{\"kind\":\"file_mode\",\"path\":\"*.key\",\"max_mode\":\"0600\","
		    "\"owner_self\":false}},{\"id\":\"c\",\"title\":\"C\",\"check\":{\"kind\":"
		    "\"config\",\"key\":\"auth.argon2_ops\",\"min\":2}}]}"),
		"");
}

static void test_profile_errors_name_the_field(void **st)
{
	(void)st;
	static const struct {
		const char *text, *field;
	} cases[] = {
		{ "[]", "profile" },
		{ "{\"controls\":[" OK_CONTROL "]}", "title" },
		{ "{\"title\":\"t\"}", "controls" },
		{ "{\"title\":\"t\",\"controls\":[]}", "controls" },
		{ "{\"title\":\"t\",\"controls\":[" OK_CONTROL "],\"x\":1}", "x: unknown field" },
		{ "{\"title\":\"t\",\"controls\":[" OK_CONTROL ",{\"id\":\"b\",\"title\":\"B\","
		  "\"check\":{\"kind\":\"nope\"}}]}",
		  "controls[1].check.kind: unknown check kind \"nope\"" },
		{ "{\"title\":\"t\",\"controls\":[" OK_CONTROL "," OK_CONTROL "]}", "controls[1].id" },
		{ "{\"title\":\"t\",\"controls\":[{\"id\":\"9a\",\"title\":\"A\",\"check\":{\"kind\":"
		  "\"admin_users\"}}]}",
		  "controls[0].id" },
		{ "{\"title\":\"t\",\"controls\":[{\"id\":\"a\",\"check\":{\"kind\":\"admin_users\"}}]}",
		  "controls[0].title" },
		{ "{\"title\":\"t\",\"controls\":[{\"id\":\"a\",\"title\":\"A\"}]}", "controls[0].check" },
		{ "{\"title\":\"t\",\"controls\":[{\"id\":\"a\",\"title\":\"A\",\"check\":{\"kind\":"
		  "\"admin_users\",\"path\":\"x\"}}]}",
		  "controls[0].check.path: unknown parameter" },
		{ "{\"title\":\"t\",\"controls\":[{\"id\":\"a\",\"title\":\"A\",\"check\":{\"kind\":"
		  "\"file_mode\",\"path\":\"a/../../b\",\"max_mode\":\"0600\"}}]}",
		  "controls[0].check.path" },
		{ "{\"title\":\"t\",\"controls\":[{\"id\":\"a\",\"title\":\"A\",\"check\":{\"kind\":"
		  "\"file_mode\",\"path\":\"/etc/passwd\",\"max_mode\":\"0600\"}}]}",
		  "controls[0].check.path" },
		{ "{\"title\":\"t\",\"controls\":[{\"id\":\"a\",\"title\":\"A\",\"check\":{\"kind\":"
		  "\"file_mode\",\"path\":\"x\",\"max_mode\":\"0800\"}}]}",
		  "controls[0].check.max_mode" },
		{ "{\"title\":\"t\",\"controls\":[{\"id\":\"a\",\"title\":\"A\",\"check\":{\"kind\":"
		  "\"file_mode\",\"path\":\"x\"}}]}",
		  "controls[0].check.max_mode: required" },
		{ "{\"title\":\"t\",\"controls\":[{\"id\":\"a\",\"title\":\"A\",\"check\":{\"kind\":"
		  "\"config\",\"key\":\"auth.argon2_ops\"}}]}",
		  "controls[0].check.min" },
		{ "{\"title\":\"t\",\"controls\":[{\"id\":\"a\",\"title\":\"A\",\"check\":{\"kind\":"
		  "\"config\",\"key\":\"auth.argon2_ops\",\"min\":\"2\"}}]}",
		  "controls[0].check.min: must be an integer" },
		{ "{\"title\":\"t\",\"controls\":[{\"id\":\"a\",\"title\":\"A\",\"check\":{\"kind\":"
		  "\"key_age\",\"max_age_days\":0}}]}",
		  "controls[0].check.max_age_days" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *m = why(cases[i].text);
		if (!strstr(m, cases[i].field))
			fail_msg("case %zu: \"%s\" does not name \"%s\"", i, m, cases[i].field);
	}
}

static void test_default_profile_is_valid(void **st)
{
	(void)st;
	json_error_t je;
	json_t *p = json_load_file(GRACE_SOURCE_ROOT "/etc/compliance/default.json", 0, &je);
	assert_non_null(p);
	sdk_err e;
	assert_int_equal(cmp_profile_check(p, &e), 0);
	/* Every kind of the table is used by the default profile. */
	size_t n;
	const cmp_kind *k = cmp_kinds(&n);
	for (size_t i = 0; i < n; i++) {
		bool used = false;
		size_t j;
		json_t *c;
		json_array_foreach(json_object_get(p, "controls"), j, c)
			used |= !strcmp(json_string_value(json_object_get(json_object_get(c, "check"),
									   "kind")),
					k[i].name);
		if (!used)
			fail_msg("the default profile uses no %s check", k[i].name);
	}
	json_decref(p);
}

static void test_result_changes(void **st)
{
	(void)st;
	assert_true(cmp_result_changed(NULL, "fail"));
	assert_true(cmp_result_changed(NULL, "error"));
	assert_false(cmp_result_changed(NULL, "pass"));
	assert_false(cmp_result_changed(NULL, "not_applicable"));
	assert_false(cmp_result_changed("pass", "pass"));
	assert_true(cmp_result_changed("pass", "fail"));
	assert_true(cmp_result_changed("fail", "waived"));
	assert_true(cmp_result_changed("waived", "fail"));
	assert_true(cmp_result_changed("fail", "pass"));
	assert_true(cmp_result_bad("fail"));
	assert_true(cmp_result_bad("error"));
	assert_false(cmp_result_bad("waived"));
	assert_false(cmp_result_bad(NULL));
}

static void test_waivers_and_expiry(void **st)
{
	(void)st;
	json_t *waivers = json_pack("[{s:i, s:s, s:I}, {s:i, s:s, s:I}]", "id", 1, "control_id",
				    "a", "expires_ms", (json_int_t)1000, "id", 2, "control_id", "b",
				    "expires_ms", (json_int_t)5000);
	json_t *r = cmp_result_new("fail", "m");
	cmp_waiver_apply(r, "a", waivers, 999);
	assert_string_equal(json_string_value(json_object_get(r, "result")), "waived");
	assert_string_equal(json_string_value(json_object_get(r, "raw_result")), "fail");
	assert_int_equal(json_integer_value(json_object_get(r, "waiver")), 1);
	json_decref(r);
	/* At its expiry and after, the waiver no longer applies. */
	r = cmp_result_new("fail", "m");
	cmp_waiver_apply(r, "a", waivers, 1000);
	assert_string_equal(json_string_value(json_object_get(r, "result")), "fail");
	assert_null(json_object_get(r, "waiver"));
	json_decref(r);
	/* Another control's waiver, and a pass, are left alone. */
	r = cmp_result_new("fail", "m");
	cmp_waiver_apply(r, "c", waivers, 0);
	assert_string_equal(json_string_value(json_object_get(r, "result")), "fail");
	json_decref(r);
	r = cmp_result_new("pass", "m");
	cmp_waiver_apply(r, "b", waivers, 0);
	assert_string_equal(json_string_value(json_object_get(r, "result")), "pass");
	json_decref(r);
	json_decref(waivers);
}

static void test_argon2_owasp(void **st)
{
	(void)st;
	assert_true(cmp_argon2_owasp(2, 19456));
	assert_true(cmp_argon2_owasp(1, 47104));
	assert_true(cmp_argon2_owasp(5, 7168));
	assert_true(cmp_argon2_owasp(3, 65536));
	assert_false(cmp_argon2_owasp(1, 19456));
	assert_false(cmp_argon2_owasp(2, 19455));
	assert_false(cmp_argon2_owasp(4, 9215));
	assert_false(cmp_argon2_owasp(100, 4096));
}

static void test_proc_net_lines(void **st)
{
	(void)st;
	unsigned port;
	bool listening, loop;
	assert_false(cmp_proc_net_line("  sl  local_address rem_address   st tx_queue", false,
				       &port, &listening, &loop));
	assert_true(cmp_proc_net_line("   0: 0100007F:1F40 00000000:0000 0A 00000000:00000000 "
				      "00:00000000 00000000     0        0 1 1 0 100 0 0 10 0",
				      false, &port, &listening, &loop));
	assert_int_equal(port, 8000);
	assert_true(listening);
	assert_true(loop);
	assert_true(cmp_proc_net_line("   1: 00000000:1FA2 00000000:0000 0A 0", false, &port,
				      &listening, &loop));
	assert_int_equal(port, 8098);
	assert_false(loop);
	assert_true(cmp_proc_net_line("   2: 0100007F:1F40 0100007F:9C40 01 0", false, &port,
				      &listening, &loop));
	assert_false(listening);
	assert_true(cmp_proc_net_line("   0: 00000000000000000000000001000000:1F40 "
				      "00000000000000000000000000000000:0000 0A 0",
				      true, &port, &listening, &loop));
	assert_true(loop);
	assert_true(cmp_proc_net_line("   0: 0000000000000000FFFF00000100007F:1F40 "
				      "00000000000000000000000000000000:0000 0A 0",
				      true, &port, &listening, &loop));
	assert_true(loop);
	assert_true(cmp_proc_net_line("   0: 00000000000000000000000000000000:1F40 "
				      "00000000000000000000000000000000:0000 0A 0",
				      true, &port, &listening, &loop));
	assert_false(loop);
}

static const char *result_of(json_t *r) { return json_string_value(json_object_get(r, "result")); }

static void test_file_mode_check(void **st)
{
	(void)st;
	char dir[] = "/tmp/grace-cmp-XXXXXX";
	assert_non_null(mkdtemp(dir));
	grace_config cfg;
	memset(&cfg, 0, sizeof cfg);
	cmp_env env = { .cfg = &cfg, .data_dir = dir, .proc_net_dir = "/proc/net", .now_ms = 0 };
	json_t *check = json_pack("{s:s, s:s, s:s}", "kind", "file_mode", "path", "*.key",
				  "max_mode", "0600");
	json_t *r = cmp_check_local(check, &env);
	assert_string_equal(result_of(r), "not_applicable");
	json_decref(r);
	char path[256];
	snprintf(path, sizeof path, "%s/a.key", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
	chmod(path, 0644);
	r = cmp_check_local(check, &env);
	assert_string_equal(result_of(r), "fail");
	json_t *ev = json_array_get(json_object_get(r, "evidence"), 0);
	const char *data = json_string_value(json_object_get(ev, "data"));
	assert_non_null(strstr(data, "a.key mode=0644"));
	/* The hash is of the evidence's text. */
	unsigned char h[32];
	char hex[65];
	crypto_hash_sha256(h, (const unsigned char *)data, strlen(data));
	sodium_bin2hex(hex, sizeof hex, h, sizeof h);
	assert_string_equal(json_string_value(json_object_get(ev, "sha256")), hex);
	json_decref(r);
	chmod(path, 0600);
	r = cmp_check_local(check, &env);
	assert_string_equal(result_of(r), "pass");
	json_decref(r);
	chmod(path, 0400);
	r = cmp_check_local(check, &env);
	assert_string_equal(result_of(r), "pass");
	json_decref(r);
	json_decref(check);
	unlink(path);
	rmdir(dir);
}

static void test_config_checks(void **st)
{
	(void)st;
	grace_config cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.auth.session_idle_s = 1800;
	cfg.auth.argon2_ops = 1;
	cfg.auth.argon2_mem_kib = 19456;
	snprintf(cfg.auth.allowed_hosts, sizeof cfg.auth.allowed_hosts, "grace.example, *");
	cmp_env env = { .cfg = &cfg, .data_dir = "/nonexistent", .proc_net_dir = "/proc/net" };
	json_t *c = json_pack("{s:s, s:s, s:i}", "kind", "config", "key", "auth.session_idle_s",
			      "max", 3600);
	json_t *r = cmp_check_local(c, &env);
	assert_string_equal(result_of(r), "pass");
	json_decref(r);
	json_object_set_new(c, "max", json_integer(600));
	r = cmp_check_local(c, &env);
	assert_string_equal(result_of(r), "fail");
	json_decref(r);
	json_decref(c);
	c = json_pack("{s:s}", "kind", "argon2_owasp");
	r = cmp_check_local(c, &env);
	assert_string_equal(result_of(r), "fail");
	json_decref(r);
	json_decref(c);
	c = json_pack("{s:s}", "kind", "host_allowlist");
	r = cmp_check_local(c, &env);
	assert_string_equal(result_of(r), "fail");
	json_decref(r);
	cfg.auth.allowed_hosts[0] = '\0';
	r = cmp_check_local(c, &env);
	assert_string_equal(result_of(r), "pass");
	json_decref(r);
	json_decref(c);
	c = json_pack("{s:s}", "kind", "admin_users");
	r = cmp_check_local(c, &env);
	assert_string_equal(result_of(r), "not_applicable");
	json_decref(r);
	json_decref(c);
}

static void test_evidence_utf8(void **st)
{
	(void)st;
	/* A cut inside a two-byte character backs off to its first byte. */
	size_t n = CMP_EVIDENCE_MAX + 101;
	char *big = malloc(n + 1);
	assert_non_null(big);
	big[0] = 'x';
	for (size_t i = 1; i + 1 < n; i += 2) {
		big[i] = (char)0xc3;
		big[i + 1] = (char)0xa9;
	}
	big[n] = '\0';
	json_t *r = cmp_result_new("pass", "m");
	cmp_result_evidence(r, "big", big, n);
	json_t *ev = json_array_get(json_object_get(r, "evidence"), 0);
	assert_true(json_is_true(json_object_get(ev, "truncated")));
	assert_int_equal(json_string_length(json_object_get(ev, "data")), CMP_EVIDENCE_MAX - 1);
	unsigned char h[32];
	char hex[65];
	crypto_hash_sha256(h, (const unsigned char *)big, n);
	sodium_bin2hex(hex, sizeof hex, h, sizeof h);
	assert_string_equal(json_string_value(json_object_get(ev, "sha256")), hex);
	json_decref(r);
	/* Bytes that are not UTF-8 at all: said so, the hash still theirs. */
	r = cmp_result_new("pass", "m");
	cmp_result_evidence(r, "bin", "\xff\xfe", 2);
	ev = json_array_get(json_object_get(r, "evidence"), 0);
	assert_non_null(strstr(json_string_value(json_object_get(ev, "data")), "not valid UTF-8"));
	crypto_hash_sha256(h, (const unsigned char *)"\xff\xfe", 2);
	sodium_bin2hex(hex, sizeof hex, h, sizeof h);
	assert_string_equal(json_string_value(json_object_get(ev, "sha256")), hex);
	json_decref(r);
	free(big);
}

static void test_uuid4(void **st)
{
	(void)st;
	char a[37], b[37];
	cmp_uuid4(a);
	cmp_uuid4(b);
	assert_true(cmp_uuid4_valid(a));
	assert_true(cmp_uuid4_valid(b));
	assert_string_not_equal(a, b);
	assert_false(cmp_uuid4_valid("00000000-0000-1000-8000-000000000000"));
	assert_false(cmp_uuid4_valid("00000000-0000-4000-c000-000000000000"));
	assert_false(cmp_uuid4_valid("not-a-uuid"));
}

static void test_oscal_build(void **st)
{
	(void)st;
	json_t *scan = json_pack(
		"{s:I, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:["
		"{s:s, s:s, s:s, s:s, s:s, s:s, s:[{s:s, s:s, s:s}]},"
		"{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:[]},"
		"{s:s, s:s, s:s, s:s, s:s, s:s, s:[]}]}",
		"id", (json_int_t)7, "uuid", "11111111-1111-4111-8111-111111111111", "report_uuid",
		"22222222-2222-4222-8222-222222222222", "profile", "default", "profile_title", "T",
		"profile_version", "3", "started_ms", (json_int_t)1764860000000, "ended_ms",
		(json_int_t)1764860001000, "log_index", (json_int_t)42, "leaf_hash", "ab",
		"results",
		"control_id", "a", "title", "A", "result", "pass", "message", "fine",
		"observation_uuid", "33333333-3333-4333-8333-333333333333", "finding_uuid",
		"44444444-4444-4444-8444-444444444444", "evidence", "read", "x", "data", "y", "sha256",
		"cd",
		"control_id", "b", "title", "B", "result", "waived", "raw_result", "fail", "message",
		"bad", "observation_uuid", "55555555-5555-4555-8555-555555555555", "finding_uuid",
		"66666666-6666-4666-8666-666666666666", "waiver", 9, "evidence",
		"control_id", "c", "title", "C", "result", "not_applicable", "message", "none",
		"observation_uuid", "77777777-7777-4777-8777-777777777777", "finding_uuid",
		"88888888-8888-4888-8888-888888888888", "evidence");
	assert_non_null(scan);
	json_t *doc = cmp_oscal_build(scan);
	assert_non_null(doc);
	json_t *ar = json_object_get(doc, "assessment-results");
	assert_string_equal(json_string_value(json_object_get(ar, "uuid")),
			    "22222222-2222-4222-8222-222222222222");
	json_t *md = json_object_get(ar, "metadata");
	assert_string_equal(json_string_value(json_object_get(md, "oscal-version")), "1.0.4");
	assert_string_equal(json_string_value(json_object_get(md, "version")), "3");
	assert_string_equal(json_string_value(json_object_get(md, "last-modified")),
			    "2025-12-04T14:53:21.000Z");
	json_t *res = json_array_get(json_object_get(ar, "results"), 0);
	assert_string_equal(json_string_value(json_object_get(res, "start")),
			    "2025-12-04T14:53:20.000Z");
	/* Three observations, two findings (not_applicable has none). */
	assert_int_equal(json_array_size(json_object_get(res, "observations")), 3);
	json_t *findings = json_object_get(res, "findings");
	assert_int_equal(json_array_size(findings), 2);
	json_t *st0 = json_object_get(json_object_get(json_array_get(findings, 0), "target"),
				      "status");
	assert_string_equal(json_string_value(json_object_get(st0, "state")), "satisfied");
	assert_string_equal(json_string_value(json_object_get(st0, "reason")), "pass");
	json_t *st1 = json_object_get(json_object_get(json_array_get(findings, 1), "target"),
				      "status");
	assert_string_equal(json_string_value(json_object_get(st1, "state")), "not-satisfied");
	assert_non_null(strstr(json_string_value(json_object_get(st1, "remarks")), "waiver 9"));
	/* The log index and hash are cited. */
	json_t *props = json_object_get(res, "props");
	assert_string_equal(json_string_value(json_object_get(json_array_get(props, 0), "name")),
			    "immutable-log-index");
	assert_string_equal(json_string_value(json_object_get(json_array_get(props, 0), "value")),
			    "42");
	/* An observation with no evidence has no relevant-evidence (OSCAL
	 * wants at least one item when it is there). */
	json_t *o3 = json_array_get(json_object_get(res, "observations"), 2);
	assert_null(json_object_get(o3, "relevant-evidence"));
	json_decref(doc);
	json_decref(scan);
}

/* kernel_identity, kernel by kernel: a live attested process for each
 * enabled kernel, and each reason a kernel can lack one. */
static bool fake_alive(int pid, const char *name, void *arg)
{
	(void)arg;
	/* 100 + i is kernel k<i>'s process; 999 is some other program. */
	return pid >= 100 && pid < 110 && name[0] == 'k' && name[1] - '0' == pid - 100;
}

static void test_identity_verdict(void **st)
{
	(void)st;
	static grace_config cfg; /* large: not on the stack */
	memset(&cfg, 0, sizeof cfg);
	cfg.n_kernels = 4;
	for (int i = 0; i < 4; i++) {
		snprintf(cfg.kernels[i].name, sizeof cfg.kernels[i].name, "k%d", i);
		cfg.kernels[i].enabled = true;
	}
	cfg.kernels[3].enabled = false; /* not expected */
	char msg[400];
	json_t *w = json_loads("{\"workloads\":[{\"name\":\"k0\",\"pid\":100},"
			       "{\"name\":\"k1\",\"pid\":101},{\"name\":\"k2\",\"pid\":102}]}",
			       0, NULL);
	assert_true(cmp_identity_verdict(&cfg, w, fake_alive, NULL, msg, sizeof msg));
	assert_string_equal(msg, "each of the 3 kernels runs as the process the trust kernel "
				 "attested for its SPIFFE ID");
	json_decref(w);
	/* k1's attested process is gone (pid 999 is not k1), k2 never attested. */
	w = json_loads("{\"workloads\":[{\"name\":\"k0\",\"pid\":100},"
		       "{\"name\":\"k1\",\"pid\":999}]}", 0, NULL);
	assert_false(cmp_identity_verdict(&cfg, w, fake_alive, NULL, msg, sizeof msg));
	assert_string_equal(msg, "k1: its attested process (pid 999) is gone: the running one "
				 "has no identity; k2: never attested");
	/* A kernel run by systemd says why it has none. */
	cfg.kernels[2].manager = GRACE_MANAGER_SYSTEMD;
	assert_false(cmp_identity_verdict(&cfg, w, fake_alive, NULL, msg, sizeof msg));
	assert_non_null(strstr(msg, "k2: run by systemd, not attested"));
	json_decref(w);
	/* No list at all: every kernel fails; past four, a count. */
	cfg.n_kernels = 7;
	for (int i = 3; i < 7; i++) {
		snprintf(cfg.kernels[i].name, sizeof cfg.kernels[i].name, "k%d", i);
		cfg.kernels[i].enabled = true;
	}
	w = json_object();
	assert_false(cmp_identity_verdict(&cfg, w, fake_alive, NULL, msg, sizeof msg));
	assert_non_null(strstr(msg, "k0: never attested"));
	assert_non_null(strstr(msg, "; and 3 more"));
	json_decref(w);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_profile_valid),
		cmocka_unit_test(test_profile_errors_name_the_field),
		cmocka_unit_test(test_default_profile_is_valid),
		cmocka_unit_test(test_result_changes),
		cmocka_unit_test(test_waivers_and_expiry),
		cmocka_unit_test(test_argon2_owasp),
		cmocka_unit_test(test_proc_net_lines),
		cmocka_unit_test(test_file_mode_check),
		cmocka_unit_test(test_config_checks),
		cmocka_unit_test(test_evidence_utf8),
		cmocka_unit_test(test_uuid4),
		cmocka_unit_test(test_oscal_build),
		cmocka_unit_test(test_identity_verdict),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
