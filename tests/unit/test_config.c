/* Unit tests for configuration loading (src/sdk/config.c): temporary INI
 * files in a scratch directory that is also the current directory, with the
 * GRACE_* environment cleared around every test and restored at the end. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/registry.h"
#include "sdk/config.h"

/* The kernels this binary can run, as main.c passes them. */
#define BUILTINS kernel_registry_all(), kernel_registry_count()

static const char *const env_names[] = { "GRACE_CONFIG",      "GRACE_DATA_DIR",
					 "GRACE_PORT_OFFSET", "GRACE_LIBRARY_ROOT",
					 "GRACE_LOG_LEVEL" };
#define N_ENV (sizeof env_names / sizeof env_names[0])

static struct {
	char *saved_env[N_ENV]; /* strdup'd, or NULL when unset */
	char old_cwd[PATH_MAX];
	char dir[PATH_MAX]; /* the scratch directory, and the cwd while testing */
} g;

struct fx {
	grace_config cfg;
	sdk_err err;
	char path[PATH_MAX + 16]; /* the INI file of this test */
};

/* The port table of DESIGN.md: the registry's definitions must match it. */
static const struct {
	const char *name, *tier;
	int port;
} design[] = {
	{ "message_bus", "core", 8100 },      { "immutable_log", "core", 8101 },
	{ "governance", "governance", 8110 }, { "crypto", "governance", 8111 },
	{ "trust", "governance", 8112 },      { "policy", "governance", 8113 },
	{ "compliance", "governance", 8114 }, { "audit", "governance", 8115 },
	{ "scheduler", "execution", 8120 },   { "executor", "execution", 8121 },
	{ "workflow", "execution", 8122 },    { "state_machine", "execution", 8123 },
	{ "librarian", "agentic", 8130 },     { "self_healing", "agentic", 8131 },
	{ "coding_agent", "agentic", 8132 },  { "learning", "agentic", 8133 },
	{ "research", "agentic", 8134 },      { "telemetry", "services", 8140 },
	{ "metrics", "services", 8141 },      { "alerts", "services", 8142 },
};

static void clear_env(void)
{
	for (size_t i = 0; i < N_ENV; i++)
		unsetenv(env_names[i]);
}

static int group_setup(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_ENV; i++) {
		const char *v = getenv(env_names[i]);
		g.saved_env[i] = v ? strdup(v) : NULL;
	}
	if (!getcwd(g.old_cwd, sizeof g.old_cwd))
		return -1;
	const char *tmp = getenv("TMPDIR");
	snprintf(g.dir, sizeof g.dir, "%s/grace-config-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(g.dir))
		return -1;
	/* The cwd has no etc/grace.ini, so "no file" really means none. */
	if (chdir(g.dir) < 0)
		return -1;
	/* As getcwd spells it (TMPDIR may be relative or go through a link). */
	return getcwd(g.dir, sizeof g.dir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	int rc = chdir(g.old_cwd);
	rmdir(g.dir);
	for (size_t i = 0; i < N_ENV; i++) {
		if (g.saved_env[i])
			setenv(env_names[i], g.saved_env[i], 1);
		else
			unsetenv(env_names[i]);
		free(g.saved_env[i]);
	}
	return rc;
}

static int setup(void **state)
{
	clear_env();
	struct fx *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	snprintf(f->path, sizeof f->path, "%s/grace.ini", g.dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	unlink(f->path);
	free(f);
	clear_env();
	return 0;
}

static void write_ini(struct fx *f, const char *text)
{
	FILE *fp = fopen(f->path, "w");
	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

/* Loads f->path (written by the test) with overrides `ov` (config_path set). */
static int load_file(struct fx *f, grace_config_overrides *ov)
{
	grace_config_overrides none = { 0 };
	if (!ov)
		ov = &none;
	ov->config_path = f->path;
	f->err.msg[0] = '\0';
	return grace_config_read(&f->cfg, BUILTINS, ov, &f->err);
}

static void expect_ok(struct fx *f, grace_config_overrides *ov)
{
	if (load_file(f, ov) != 0)
		fail_msg("load failed: %s", f->err.msg);
}

/* Loading fails, and the message holds the path, ":LINE:" (when line > 0)
 * and each of the words. */
static void expect_error(struct fx *f, int line, const char *w1, const char *w2)
{
	assert_int_equal(load_file(f, NULL), -1);
	print_message("error: %s\n", f->err.msg);
	assert_non_null(strstr(f->err.msg, f->path));
	if (line > 0) {
		char at[PATH_MAX + 64];
		snprintf(at, sizeof at, "%s:%d: ", f->path, line);
		if (!strstr(f->err.msg, at))
			fail_msg("'%s' does not name line %d", f->err.msg, line);
	}
	if (w1 && !strstr(f->err.msg, w1))
		fail_msg("'%s' does not name '%s'", f->err.msg, w1);
	if (w2 && !strstr(f->err.msg, w2))
		fail_msg("'%s' does not name '%s'", f->err.msg, w2);
	assert_null(strchr(f->err.msg, '\n'));
}

static void test_builtin_kernels(void **state)
{
	struct fx *f = *state;
	/* No file at all: GRACE_CONFIG unset and no etc/grace.ini here. */
	assert_int_equal(grace_config_read(&f->cfg, BUILTINS, NULL, &f->err), 0);
	assert_string_equal(f->cfg.path, "");
	assert_int_equal(f->cfg.n_kernels, sizeof design / sizeof design[0]);
	assert_int_equal(f->cfg.n_kernels, 20);
	for (size_t i = 0; i < f->cfg.n_kernels; i++) {
		const grace_kernel_cfg *k = &f->cfg.kernels[i];
		assert_string_equal(k->name, design[i].name);
		assert_string_equal(k->tier, design[i].tier);
		assert_int_equal(k->port, design[i].port);
		assert_true(k->enabled);
		assert_string_equal(k->command, "");
		/* The [defaults] of the code apply to them. */
		assert_int_equal(k->restart.burst_max, 5);
		assert_int_equal(k->restart.burst_window_ms, 10000);
		assert_int_equal(k->restart.backoff_initial_ms, 100);
		assert_int_equal(k->restart.backoff_max_ms, 5000);
		assert_int_equal(k->restart.stable_ms, 1000);
		assert_int_equal(k->watchdog_ms, 3000);
		assert_int_equal(k->ready_timeout_ms, 5000);
		assert_int_equal(k->stop_timeout_ms, 3000);
		assert_int_equal(k->health_interval_ms, 60000);
		assert_int_equal(k->health_timeout_ms, 2000);
		assert_int_equal(k->health_failures, 3);
		assert_int_equal(k->max_body_bytes, 1 << 20);
		assert_int_equal(grace_kernel_port(&f->cfg, k), design[i].port);
	}
	assert_int_equal(f->cfg.api_port, 8000);
	assert_int_equal(f->cfg.port_offset, 0);
	assert_string_equal(f->cfg.log_level, "info");
	assert_int_equal(f->cfg.limits.max_headers, 100);
	assert_int_equal(f->cfg.limits.max_header_bytes, 16384);
	assert_int_equal(f->cfg.limits.max_body_bytes, 1 << 20);
	assert_int_equal(f->cfg.limits.timeout_ms, 30000);
	assert_int_equal(f->cfg.limits.drain_ms, 5000);

	char want[PATH_MAX + 16];
	snprintf(want, sizeof want, "%s/var", g.dir);
	assert_string_equal(f->cfg.data_dir, want);
	snprintf(want, sizeof want, "%s/library", g.dir);
	assert_string_equal(f->cfg.library_root, want);
}

static void test_file_without_kernels_keeps_builtins(void **state)
{
	struct fx *f = *state;
	write_ini(f, "[grace]\napi_port = 9000\nlog_level = debug\n"
		     "[limits]\nmax_headers = 50\n"
		     "[defaults]\nrestart_burst = 9\n");
	expect_ok(f, NULL);
	assert_string_equal(f->cfg.path, f->path);
	assert_int_equal(f->cfg.api_port, 9000);
	assert_string_equal(f->cfg.log_level, "debug");
	assert_int_equal(f->cfg.limits.max_headers, 50);
	assert_int_equal(f->cfg.n_kernels, 20);
	assert_int_equal(f->cfg.kernels[19].port, 8142);
	for (size_t i = 0; i < f->cfg.n_kernels; i++)
		assert_int_equal(f->cfg.kernels[i].restart.burst_max, 9);
}

static void test_file_kernels_replace_builtins(void **state)
{
	struct fx *f = *state;
	write_ini(f, "; two kernels only\n"
		     "[kernel.alpha]\n"
		     "port = 8100\n"
		     "tier = core\n"
		     "\n"
		     "[kernel.beta_2]\n"
		     "port = 8149 ; inline comment\n"
		     "enabled = false\n"
		     "command = /bin/echo 'hello world' x\n");
	expect_ok(f, NULL);
	assert_int_equal(f->cfg.n_kernels, 2);
	assert_string_equal(f->cfg.kernels[0].name, "alpha");
	assert_string_equal(f->cfg.kernels[0].tier, "core");
	assert_int_equal(f->cfg.kernels[0].port, 8100);
	assert_true(f->cfg.kernels[0].enabled);
	assert_string_equal(f->cfg.kernels[0].command, "");
	assert_string_equal(f->cfg.kernels[1].name, "beta_2");
	assert_string_equal(f->cfg.kernels[1].tier, "custom");
	assert_int_equal(f->cfg.kernels[1].port, 8149);
	assert_false(f->cfg.kernels[1].enabled);
	assert_string_equal(f->cfg.kernels[1].command, "/bin/echo 'hello world' x");
	assert_null(grace_config_kernel(&f->cfg, "librarian"));
	assert_int_equal(grace_config_kernel_index(&f->cfg, "message_bus"), -1);
	/* Defaults still fill what the sections leave out. */
	assert_int_equal(f->cfg.kernels[1].restart.stable_ms, 1000);
	assert_int_equal(f->cfg.kernels[1].max_body_bytes, 1 << 20);
}

static void test_defaults_before_and_after(void **state)
{
	struct fx *f = *state;
	write_ini(f, "[kernel.before]\n"
		     "port = 8100\n"
		     "[defaults]\n"
		     "restart_burst = 7\n"
		     "watchdog_ms = 0\n"
		     "max_body_bytes = 2048\n"
		     "[kernel.after]\n"
		     "port = 8101\n"
		     "watchdog_ms = 500\n"
		     "restart_burst = 2\n"
		     "[kernel.before]\n"
		     "stable_ms = 0\n");
	expect_ok(f, NULL);
	assert_int_equal(f->cfg.n_kernels, 2);
	const grace_kernel_cfg *b = grace_config_kernel(&f->cfg, "before");
	const grace_kernel_cfg *a = grace_config_kernel(&f->cfg, "after");
	assert_non_null(b);
	assert_non_null(a);
	/* [defaults] reaches the kernel declared before it ... */
	assert_int_equal(b->restart.burst_max, 7);
	assert_int_equal(b->watchdog_ms, 0);
	assert_int_equal(b->max_body_bytes, 2048);
	/* ... and the one after it, where a kernel's own value wins. */
	assert_int_equal(a->restart.burst_max, 2);
	assert_int_equal(a->watchdog_ms, 500);
	assert_int_equal(a->max_body_bytes, 2048);
	/* A section may be reopened; its own value of 0 is kept, not defaulted. */
	assert_int_equal(b->restart.stable_ms, 0);
	assert_int_equal(a->restart.stable_ms, 1000);
	/* Untouched keys keep the built-in defaults. */
	assert_int_equal(a->health_failures, 3);
	assert_int_equal(b->restart.backoff_max_ms, 5000);
}

static void test_error_unknown_key(void **state)
{
	struct fx *f = *state;
	write_ini(f, "[kernel.a]\nport = 8100\nfrobnicate = 1\n");
	expect_error(f, 3, "frobnicate", NULL);
	write_ini(f, "[grace]\napi_port = 8000\n\nbogus_key = x\n");
	expect_error(f, 4, "bogus_key", NULL);
	write_ini(f, "[limits]\nstable_ms = 5\n");
	expect_error(f, 2, "stable_ms", NULL);
	write_ini(f, "; comment\n[defaults]\nport = 8100\n");
	expect_error(f, 3, "port", NULL);
}

static void test_error_unknown_section(void **state)
{
	struct fx *f = *state;
	/* Named at the section's own line, with or without keys under it. */
	write_ini(f, "[grace]\napi_port = 8000\n[nonsense]\nkey = 1\n");
	expect_error(f, 3, "nonsense", NULL);
	write_ini(f, "[grace]\napi_port = 8000\n[nonsense]\n");
	expect_error(f, 3, "nonsense", NULL);
	write_ini(f, "[kernel.Bad-Name]\nport = 8100\n");
	expect_error(f, 1, "kernel.Bad-Name", NULL);
}

static void test_error_bad_integer(void **state)
{
	struct fx *f = *state;
	static const char *const bad[] = { "ten", "-1", "+5", "5x", "0x10", "1001", "0",
					   "99999999999999999999999" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char text[256];
		snprintf(text, sizeof text, "[defaults]\nstable_ms = 5\nrestart_burst = %s\n", bad[i]);
		write_ini(f, text);
		expect_error(f, 3, "restart_burst", bad[i]);
	}
	write_ini(f, "[grace]\napi_port = 70000\n");
	expect_error(f, 2, "api_port", NULL);
	write_ini(f, "[limits]\nmax_headers = many\n");
	expect_error(f, 2, "max_headers", NULL);
	write_ini(f, "[kernel.a]\nport = 8100\nenabled = maybe\n");
	expect_error(f, 3, "enabled", NULL);
}

static void test_error_port_out_of_range(void **state)
{
	struct fx *f = *state;
	static const char *const bad[] = { "8099", "8150", "80", "0", "", "eighty" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char text[256];
		snprintf(text, sizeof text, "[kernel.a]\ntier = core\nport = %s\n", bad[i]);
		write_ini(f, text);
		expect_error(f, 3, "port", NULL);
	}
}

static void test_error_duplicate_port(void **state)
{
	struct fx *f = *state;
	write_ini(f, "[kernel.one]\nport = 8120\n[kernel.two]\nport = 8121\n"
		     "[kernel.three]\nport = 8120\n");
	expect_error(f, 0, "port", "three");
	assert_non_null(strstr(f->err.msg, "one"));
	assert_non_null(strstr(f->err.msg, "8120"));
}

static void test_error_missing_port(void **state)
{
	struct fx *f = *state;
	write_ini(f, "[kernel.one]\nport = 8120\n[kernel.portless]\ntier = core\n");
	expect_error(f, 0, "port", "portless");
}

static void test_error_cannot_open(void **state)
{
	struct fx *f = *state;
	unlink(f->path);
	expect_error(f, 0, NULL, NULL);
	/* GRACE_CONFIG names a file that must exist, too. */
	setenv("GRACE_CONFIG", f->path, 1);
	assert_int_equal(grace_config_read(&f->cfg, BUILTINS, NULL, &f->err), -1);
	assert_non_null(strstr(f->err.msg, f->path));
}

static void test_first_error_wins(void **state)
{
	struct fx *f = *state;
	write_ini(f, "[kernel.a]\nport = 8100\nbogus_one = 1\nbogus_two = 2\n");
	expect_error(f, 3, "bogus_one", NULL);
	assert_null(strstr(f->err.msg, "bogus_two"));
	write_ini(f, "[grace]\napi_port = x\n[nowhere]\nk = v\n");
	expect_error(f, 2, "api_port", NULL);
	assert_null(strstr(f->err.msg, "nowhere"));
}

static void test_syntax_error_line_and_reason(void **state)
{
	struct fx *f = *state;
	/* A line that is not "key = value" on its own. */
	write_ini(f, "[kernel.a]\nport = 8100\nthis line has no equals sign\n");
	expect_error(f, 3, "syntax error", NULL);
	/* A syntax error's line and reason go together, even when a key error
	 * follows it. */
	write_ini(f, "[kernel.a]\nport = 8100\nthis line has no equals sign\nbogus_key = 1\n");
	expect_error(f, 3, NULL, NULL);
	if (strstr(f->err.msg, "bogus_key"))
		fail_msg("line 3 is blamed for line 4's key: %s", f->err.msg);
}

static void test_env_and_overrides_precedence(void **state)
{
	struct fx *f = *state;
	write_ini(f, "[grace]\nport_offset = 5\ndata_dir = /file/data\nlibrary_root = /file/lib\n");

	/* The file alone. */
	expect_ok(f, NULL);
	assert_int_equal(f->cfg.port_offset, 5);
	assert_string_equal(f->cfg.data_dir, "/file/data");
	assert_string_equal(f->cfg.library_root, "/file/lib");

	/* The environment beats the file. */
	setenv("GRACE_PORT_OFFSET", "7", 1);
	setenv("GRACE_DATA_DIR", "/env/data", 1);
	setenv("GRACE_LIBRARY_ROOT", "/env/lib", 1);
	expect_ok(f, NULL);
	assert_int_equal(f->cfg.port_offset, 7);
	assert_string_equal(f->cfg.data_dir, "/env/data");
	assert_string_equal(f->cfg.library_root, "/env/lib");

	/* The overrides beat the environment. */
	grace_config_overrides ov = { .port_offset = "9", .data_dir = "/ov/data" };
	expect_ok(f, &ov);
	assert_int_equal(f->cfg.port_offset, 9);
	assert_string_equal(f->cfg.data_dir, "/ov/data");
	assert_string_equal(f->cfg.library_root, "/env/lib");
	const grace_kernel_cfg *k = grace_config_kernel(&f->cfg, "librarian");
	assert_non_null(k);
	assert_int_equal(grace_kernel_port(&f->cfg, k), 8139);

	/* Overrides beat the environment even when it is malformed. */
	setenv("GRACE_PORT_OFFSET", "junk", 1);
	expect_ok(f, &ov);
	assert_int_equal(f->cfg.port_offset, 9);
	/* ... which is an error without them. */
	assert_int_equal(load_file(f, NULL), -1);
	assert_non_null(strstr(f->err.msg, "junk"));
	/* An empty variable counts as unset. */
	setenv("GRACE_PORT_OFFSET", "", 1);
	setenv("GRACE_DATA_DIR", "", 1);
	expect_ok(f, NULL);
	assert_int_equal(f->cfg.port_offset, 5);
	assert_string_equal(f->cfg.data_dir, "/file/data");

	/* A bad override is an error, too. */
	grace_config_overrides bad = { .port_offset = "50001" };
	assert_int_equal(load_file(f, &bad), -1);
	assert_non_null(strstr(f->err.msg, "50001"));
}

static void test_config_path_precedence(void **state)
{
	struct fx *f = *state;
	write_ini(f, "[grace]\napi_port = 8500\n");
	/* GRACE_CONFIG is read when no path is given ... */
	setenv("GRACE_CONFIG", f->path, 1);
	assert_int_equal(grace_config_read(&f->cfg, BUILTINS, NULL, &f->err), 0);
	assert_int_equal(f->cfg.api_port, 8500);
	assert_string_equal(f->cfg.path, f->path);

	/* ... and config_path beats it. */
	char other[PATH_MAX + 16];
	snprintf(other, sizeof other, "%s/other.ini", g.dir);
	FILE *fp = fopen(other, "w");
	assert_non_null(fp);
	fputs("[grace]\napi_port = 8600\n", fp);
	assert_int_equal(fclose(fp), 0);
	grace_config_overrides ov = { .config_path = other };
	int rc = grace_config_read(&f->cfg, BUILTINS, &ov, &f->err);
	unlink(other);
	assert_int_equal(rc, 0);
	assert_int_equal(f->cfg.api_port, 8600);
	assert_string_equal(f->cfg.path, other);
}

static void test_relative_paths_become_absolute(void **state)
{
	struct fx *f = *state;
	char want[2 * PATH_MAX];
	write_ini(f, "[grace]\ndata_dir = rel/data\nlibrary_root = ./lib\n");
	expect_ok(f, NULL);
	snprintf(want, sizeof want, "%s/rel/data", g.dir);
	assert_string_equal(f->cfg.data_dir, want);
	snprintf(want, sizeof want, "%s/lib", g.dir);
	assert_string_equal(f->cfg.library_root, want);

	setenv("GRACE_DATA_DIR", "envdir", 1);
	expect_ok(f, NULL);
	snprintf(want, sizeof want, "%s/envdir", g.dir);
	assert_string_equal(f->cfg.data_dir, want);

	grace_config_overrides ov = { .data_dir = "./ovdir/x" };
	expect_ok(f, &ov);
	snprintf(want, sizeof want, "%s/ovdir/x", g.dir);
	assert_string_equal(f->cfg.data_dir, want);

	/* The config path itself is recorded absolute too. */
	grace_config_overrides rel = { .config_path = "grace.ini" };
	assert_int_equal(grace_config_read(&f->cfg, BUILTINS, &rel, &f->err), 0);
	assert_string_equal(f->cfg.path, f->path);
}

static void test_kernel_lookup(void **state)
{
	struct fx *f = *state;
	assert_int_equal(grace_config_read(&f->cfg, BUILTINS, NULL, &f->err), 0);
	const grace_kernel_cfg *k = grace_config_kernel(&f->cfg, "librarian");
	assert_non_null(k);
	assert_string_equal(k->name, "librarian");
	assert_ptr_equal(grace_config_kernel(&f->cfg, "librarian_kernel"), k);
	assert_int_equal(grace_config_kernel_index(&f->cfg, "librarian"), 12);
	assert_int_equal(grace_config_kernel_index(&f->cfg, "librarian_kernel"), 12);
	assert_int_equal(grace_config_kernel_index(&f->cfg, "message_bus_kernel"), 0);
	assert_int_equal(grace_config_kernel_index(&f->cfg, "alerts"), 19);

	assert_null(grace_config_kernel(&f->cfg, "nope"));
	assert_null(grace_config_kernel(&f->cfg, ""));
	assert_null(grace_config_kernel(&f->cfg, "_kernel"));
	assert_null(grace_config_kernel(&f->cfg, "librar"));
	assert_null(grace_config_kernel(&f->cfg, "librarian_"));
	assert_null(grace_config_kernel(&f->cfg, "librarian_kernel_kernel"));
	assert_null(grace_config_kernel(&f->cfg, "Librarian"));
	assert_int_equal(grace_config_kernel_index(&f->cfg, "nope"), -1);
}

static void test_kernel_named_with_suffix(void **state)
{
	struct fx *f = *state;
	/* "x_kernel" is a valid kernel name: its own name must find it. */
	write_ini(f, "[kernel.x_kernel]\nport = 8100\n");
	expect_ok(f, NULL);
	assert_int_equal(f->cfg.n_kernels, 1);
	assert_string_equal(f->cfg.kernels[0].name, "x_kernel");
	assert_int_equal(grace_config_kernel_index(&f->cfg, "x_kernel"), 0);
}

static void test_port_offset(void **state)
{
	struct fx *f = *state;
	setenv("GRACE_PORT_OFFSET", "1000", 1);
	assert_int_equal(grace_config_read(&f->cfg, BUILTINS, NULL, &f->err), 0);
	assert_int_equal(f->cfg.port_offset, 1000);
	for (size_t i = 0; i < f->cfg.n_kernels; i++) {
		/* The stored port is before the offset; grace_kernel_port adds it. */
		assert_int_equal(f->cfg.kernels[i].port, design[i].port);
		assert_int_equal(grace_kernel_port(&f->cfg, &f->cfg.kernels[i]),
				 design[i].port + 1000);
	}
	assert_int_equal(grace_kernel_port(&f->cfg, grace_config_kernel(&f->cfg, "alerts")), 9142);

	/* An offset that pushes a port past 65535 is refused. */
	write_ini(f, "[grace]\napi_port = 65000\nport_offset = 600\n");
	unsetenv("GRACE_PORT_OFFSET");
	assert_int_equal(load_file(f, NULL), -1);
	assert_non_null(strstr(f->err.msg, "65535"));
}

/* A port inside the ephemeral range is refused, naming range and port;
 * one just below it is not. */
static void test_ephemeral_offset(void **state)
{
	struct fx *f = *state;
	int lo = 0, hi = 0;
	FILE *r = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
	if (!r || fscanf(r, "%d %d", &lo, &hi) != 2)
		fail_msg("this test needs /proc/sys/net/ipv4/ip_local_port_range");
	fclose(r);
	char text[128], want[64];
	/* The last kernel port (8149) lands on lo + 1; the API stays below. */
	snprintf(text, sizeof text, "[grace]\nport_offset = %d\n", lo + 1 - 8149);
	write_ini(f, text);
	assert_int_equal(load_file(f, NULL), -1);
	print_message("error: %s\n", f->err.msg);
	snprintf(want, sizeof want, "%d-%d", lo, hi);
	assert_non_null(strstr(f->err.msg, want));
	snprintf(want, sizeof want, "= %d inside the ephemeral port range", lo);
	assert_non_null(strstr(f->err.msg, want)); /* the first port in it: 8148 + offset */
	assert_null(strchr(f->err.msg, '\n'));
	snprintf(text, sizeof text, "[grace]\nport_offset = %d\n", lo - 1 - 8149);
	write_ini(f, text);
	assert_int_equal(load_file(f, NULL), 0);
	/* api_port itself in the range, without any offset. */
	snprintf(text, sizeof text, "[grace]\napi_port = %d\n", lo + 10);
	write_ini(f, text);
	assert_int_equal(load_file(f, NULL), -1);
	assert_non_null(strstr(f->err.msg, "the API port"));
}

static void test_long_command(void **state)
{
	struct fx *f = *state;
	/* libinih (as Debian builds it) splits lines past its buffer: a line
	 * longer than the limit is refused with its line number, never cut. */
	char cmd[600], text[800];
	memcpy(cmd, "/usr/bin/env", 12);
	size_t n = 12;
	while (n + 8 < 500) {
		memcpy(cmd + n, " --arg=x", 8);
		n += 8;
	}
	cmd[n] = '\0';
	snprintf(text, sizeof text, "[kernel.a]\nport = 8100\ncommand = %s\nwatchdog_ms = 7\n",
		 cmd);
	write_ini(f, text);
	expect_error(f, 3, "longer than", NULL);
	/* Just under the limit is read whole. */
	char shorter[200];
	memset(shorter, 'z', 170);
	shorter[170] = '\0';
	snprintf(text, sizeof text, "[kernel.a]\nport = 8100\ncommand = /bin/%s\n", shorter);
	write_ini(f, text);
	expect_ok(f, NULL);
	assert_int_equal(strlen(f->cfg.kernels[0].command), 175);
}

static void test_command_quotes_checked_at_load(void **state)
{
	struct fx *f = *state;
	write_ini(f, "[kernel.a]\nport = 8100\ncommand = sh -c 'exit 3\n");
	expect_error(f, 3, "command", "unterminated");
	write_ini(f, "[kernel.a]\nport = 8100\ncommand = sh -c \"it's fine\"\n");
	expect_ok(f, NULL);
}

static void test_long_line_not_split(void **state)
{
	struct fx *f = *state;
	/* A command whose 190th byte starts "stable_ms=5" must not become a
	 * key of its own: the line is refused instead. */
	char cmd[256], text[400];
	size_t n = (size_t)sprintf(cmd, "/bin/echo ");
	memset(cmd + n, 'y', 178);
	n += 178;
	n += (size_t)sprintf(cmd + n, " stable_ms=5");
	assert_int_equal(strlen(cmd), 200);
	snprintf(text, sizeof text, "[kernel.a]\nport = 8100\ncommand = %s\n", cmd);
	write_ini(f, text);
	expect_error(f, 3, "longer than", NULL);
}

static void test_too_many_kernels(void **state)
{
	struct fx *f = *state;
	char *text = malloc(64 * 64);
	assert_non_null(text);
	size_t o = 0;
	for (int i = 0; i <= GRACE_KERNELS_MAX; i++)
		o += (size_t)sprintf(text + o, "[kernel.k%d]\nport = %d\n", i, 8100 + i % 50);
	write_ini(f, text);
	free(text);
	/* Kernel 51 (line 101) is one too many. */
	expect_error(f, 2 * GRACE_KERNELS_MAX + 2, "kernel.k50", NULL);
}

/* A built-in kernel's section only overrides its definition: no port or
 * tier to repeat. Listing it still makes it one of the kernels that run. */
static void test_builtin_section_overrides(void **state)
{
	struct fx *f = *state;
	write_ini(f, "[kernel.librarian]\nwatchdog_ms = 0\n"
		     "[kernel.audit]\n"
		     "[kernel.alerts]\nport = 8149\ntier = mine\n"
		     "[kernel.stub]\nport = 8148\ncommand = /bin/true\n");
	expect_ok(f, NULL);
	assert_int_equal(f->cfg.n_kernels, 4);
	const grace_kernel_cfg *k = grace_config_kernel(&f->cfg, "librarian");
	assert_non_null(k);
	assert_int_equal(k->port, 8130);
	assert_string_equal(k->tier, "agentic");
	assert_int_equal(k->watchdog_ms, 0);
	assert_int_equal(k->health_failures, 3);
	/* A section with no keys: the kernel as defined. */
	k = grace_config_kernel(&f->cfg, "audit");
	assert_non_null(k);
	assert_int_equal(k->port, 8115);
	assert_string_equal(k->tier, "governance");
	assert_true(k->enabled);
	k = grace_config_kernel(&f->cfg, "alerts");
	assert_int_equal(k->port, 8149);
	assert_string_equal(k->tier, "mine");
	/* Not built in: its port is the section's, its tier "custom". */
	k = grace_config_kernel(&f->cfg, "stub");
	assert_int_equal(k->port, 8148);
	assert_string_equal(k->tier, "custom");
	assert_string_equal(k->command, "/bin/true");
	assert_null(grace_config_kernel(&f->cfg, "message_bus"));
	/* Its default port taken by another section: refused, naming both. */
	write_ini(f, "[kernel.stub]\nport = 8130\n[kernel.librarian]\n");
	expect_error(f, 0, "8130", "stub");
}

/* The built-in list comes from the caller (the registry): a definition
 * without its port or tier is refused at load, naming the kernel. */
static void test_builtin_definitions_checked(void **state)
{
	struct fx *f = *state;
	const sdk_kernel_def good = { .name = "good", .port = 8100, .tier = "core" };
	const sdk_kernel_def portless = { .name = "portless", .tier = "core" };
	const sdk_kernel_def tierless = { .name = "tierless", .port = 8101 };
	const sdk_kernel_def badname = { .name = "Bad", .port = 8102, .tier = "core" };
	const sdk_kernel_def twin = { .name = "twin", .port = 8100, .tier = "core" };
	const sdk_kernel_def *list[2] = { &good, NULL };

	assert_int_equal(grace_config_read(&f->cfg, list, 1, NULL, &f->err), 0);
	assert_int_equal(f->cfg.n_kernels, 1);
	assert_string_equal(f->cfg.kernels[0].name, "good");
	assert_int_equal(f->cfg.kernels[0].port, 8100);
	assert_string_equal(f->cfg.kernels[0].tier, "core");
	assert_int_equal(f->cfg.kernels[0].restart.burst_max, 5);

	const sdk_kernel_def *bad[] = { &portless, &tierless, &badname, &twin };
	const char *word[] = { "portless", "tierless", "Bad", "twin" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		list[1] = bad[i];
		assert_int_equal(grace_config_read(&f->cfg, list, 2, NULL, &f->err), -1);
		print_message("error: %s\n", f->err.msg);
		if (!strstr(f->err.msg, word[i]))
			fail_msg("'%s' does not name '%s'", f->err.msg, word[i]);
	}
	/* No built-in kernels at all: a file must list its own. */
	assert_int_equal(grace_config_read(&f->cfg, NULL, 0, NULL, &f->err), 0);
	assert_int_equal(f->cfg.n_kernels, 0);
}

static void test_model_heartbeat(void **state)
{
	struct fx *f = *state;
	write_ini(f, "[model]\ntimeout_ms = 5000\n");
	expect_ok(f, NULL);
	assert_int_equal(f->cfg.model.heartbeat_ms, GRACE_MODEL_HEARTBEAT_MS);
	assert_true(GRACE_MODEL_HEARTBEAT_MS <= 15000); /* the promise of docs/chat.md */
	write_ini(f, "[model]\nheartbeat_ms = 100\n");
	expect_ok(f, NULL);
	assert_int_equal(f->cfg.model.heartbeat_ms, 100);
	/* Too often floods the stream; too rarely lets an idle proxy cut it. */
	write_ini(f, "[model]\nheartbeat_ms = 99\n");
	expect_error(f, 2, "heartbeat_ms", "100");
	write_ini(f, "[model]\n\nheartbeat_ms = 15001\n");
	expect_error(f, 3, "heartbeat_ms", "15000");
}

static void test_policy_section(void **state)
{
	struct fx *f = *state;
	write_ini(f, "[grace]\nlog_level = info\n");
	expect_ok(f, NULL);
	assert_int_equal(f->cfg.policy.authorizer, GRACE_AUTHORIZER_KERNEL);
	assert_string_equal(f->cfg.policy.policy_set, "default");
	assert_int_equal(f->cfg.policy.decision_timeout_ms, 2000);
	assert_int_equal(grace_config_check_authorizer(&f->cfg, &f->err), 0);
	write_ini(f, "[policy]\nauthorizer = table\npolicy_set = ops.v2\ndecision_timeout_ms = 50\n"
		     "cache_entries = 16\n");
	expect_ok(f, NULL);
	assert_int_equal(f->cfg.policy.authorizer, GRACE_AUTHORIZER_TABLE);
	assert_string_equal(f->cfg.policy.policy_set, "ops.v2");
	assert_int_equal(f->cfg.policy.decision_timeout_ms, 50);
	assert_int_equal(f->cfg.policy.cache_entries, 16);
	write_ini(f, "[policy]\nauthorizer = roles\n");
	expect_error(f, 2, "authorizer", "roles");
	write_ini(f, "[policy]\npolicy_set = no way\n");
	expect_error(f, 2, "policy_set", "no way");
	write_ini(f, "[policy]\ndecision_timeout_ms = 49\n");
	expect_error(f, 2, "decision_timeout_ms", "49");
	write_ini(f, "[policy]\ncolour = blue\n");
	expect_error(f, 2, "colour", "unknown key");
	/* Decisions by a policy kernel that is not configured: grace serve
	 * refuses (the file itself loads: other commands read it). */
	write_ini(f, "[kernel.a]\nport = 8100\n");
	expect_ok(f, NULL);
	assert_int_equal(grace_config_check_authorizer(&f->cfg, &f->err), -1);
	assert_non_null(strstr(f->err.msg, "[kernel.policy]"));
	write_ini(f, "[policy]\nauthorizer = table\n[kernel.a]\nport = 8100\n");
	expect_ok(f, NULL);
	assert_int_equal(grace_config_check_authorizer(&f->cfg, &f->err), 0);
}

/* [scheduler] and [executor]: their keys, their ranges, and the shipped
 * file's values equal to the compiled defaults. */
static void test_scheduler_executor_sections(void **state)
{
	struct fx *f = *state;
	write_ini(f, "[scheduler]\njobs_per_user = 7\nlate_tolerance_ms = 0\n"
		     "[executor]\nconcurrency = 2\ncgroups = 0\njobs_user = nobody\n"
		     "work_root = /var/tmp/jobs\noutput_max_bytes = 2097152\n");
	expect_ok(f, NULL);
	assert_int_equal(f->cfg.scheduler.jobs_per_user, 7);
	assert_int_equal(f->cfg.scheduler.late_tolerance_ms, 0);
	assert_int_equal(f->cfg.scheduler.jobs_max, 10000);
	assert_int_equal(f->cfg.executor.concurrency, 2);
	assert_int_equal(f->cfg.executor.cgroups, 0);
	assert_string_equal(f->cfg.executor.jobs_user, "nobody");
	assert_string_equal(f->cfg.executor.work_root, "/var/tmp/jobs");
	assert_int_equal(f->cfg.executor.output_max_bytes, 2u << 20);
	write_ini(f, "[executor]\nconcurrency = 0\n");
	expect_error(f, 2, "concurrency", "1");
	write_ini(f, "[scheduler]\nruns_per_job = 9\n");
	expect_error(f, 2, "runs_per_job", "10");
	write_ini(f, "[executor]\nwork_root = jobs\n");
	expect_error(f, 2, "work_root", "absolute");
	write_ini(f, "[executor]\nbogus = 1\n");
	expect_error(f, 2, "bogus", "unknown");
	write_ini(f, "[executor]\ntimeout_default_ms = 5000\ntimeout_max_ms = 1000\n");
	assert_int_equal(load_file(f, NULL), -1);
	assert_non_null(strstr(f->err.msg, "timeout_max_ms"));
	/* The shipped file says what the code does. */
	grace_config shipped;
	sdk_err err;
	grace_config_overrides ov = { .config_path = GRACE_SOURCE_ROOT "/etc/grace.ini" };
	if (grace_config_read(&shipped, BUILTINS, &ov, &err) != 0)
		fail_msg("etc/grace.ini: %s", err.msg);
	write_ini(f, "[grace]\n");
	expect_ok(f, NULL);
	assert_memory_equal(&shipped.scheduler, &f->cfg.scheduler, sizeof shipped.scheduler);
	assert_memory_equal(&shipped.executor, &f->cfg.executor, sizeof shipped.executor);
}

/* [crypto]: deletion windows, in bounds and in order; the shipped file
 * equals the defaults (AWS KMS's 30 days, 7 to 30). */
static void test_crypto_section(void **state)
{
	struct fx *f = *state;
	write_ini(f, "[crypto]\ndeletion_window_s = 60\ndeletion_window_min_s = 1\n"
		     "deletion_window_max_s = 120\n");
	expect_ok(f, NULL);
	assert_int_equal(f->cfg.crypto.deletion_window_s, 60);
	assert_int_equal(f->cfg.crypto.deletion_window_min_s, 1);
	assert_int_equal(f->cfg.crypto.deletion_window_max_s, 120);
	write_ini(f, "[crypto]\ndeletion_window_min_s = 0\n");
	expect_error(f, 2, "deletion_window_min_s", "1");
	write_ini(f, "[crypto]\nbogus = 1\n");
	expect_error(f, 2, "bogus", "unknown");
	write_ini(f, "[crypto]\ndeletion_window_s = 10\ndeletion_window_min_s = 20\n");
	assert_int_equal(load_file(f, NULL), -1);
	assert_non_null(strstr(f->err.msg, "[crypto]"));
	write_ini(f, "[grace]\n");
	expect_ok(f, NULL);
	assert_int_equal(f->cfg.crypto.deletion_window_s, 30 * 86400);
	assert_int_equal(f->cfg.crypto.deletion_window_min_s, 7 * 86400);
	assert_int_equal(f->cfg.crypto.deletion_window_max_s, 30 * 86400);
	grace_config shipped;
	sdk_err err;
	grace_config_overrides ov = { .config_path = GRACE_SOURCE_ROOT "/etc/grace.ini" };
	if (grace_config_read(&shipped, BUILTINS, &ov, &err) != 0)
		fail_msg("etc/grace.ini: %s", err.msg);
	assert_memory_equal(&shipped.crypto, &f->cfg.crypto, sizeof shipped.crypto);
}

/* [governance]: the gate list and the rules are checked as they are read;
 * the shipped file (strict profile commented out) equals the defaults. */
static void test_governance_section(void **state)
{
	struct fx *f = *state;
	write_ini(f, "[governance]\ngate = kernel.stop, user.delete\ndefault_rule = 2 admin\n"
		     "rule.user.delete = all_of(1 admin, any_of(2 user, 1 admin))\n"
		     "rule.user.delete = 3 admin\nexpiry_s = 5\nrun_delay_ms = 100\n");
	expect_ok(f, NULL);
	assert_string_equal(f->cfg.governance.gate, "kernel.stop, user.delete");
	assert_string_equal(f->cfg.governance.default_rule, "2 admin");
	assert_int_equal(f->cfg.governance.n_rules, 1); /* the same action twice: the last */
	assert_string_equal(f->cfg.governance.rules[0].action, "user.delete");
	assert_string_equal(f->cfg.governance.rules[0].rule, "3 admin");
	assert_int_equal(f->cfg.governance.expiry_s, 5);
	assert_int_equal(f->cfg.governance.run_delay_ms, 100);
	write_ini(f, "[governance]\ngate = kernel.stop rm.rf\n");
	expect_error(f, 2, "gate", "rm.rf");
	write_ini(f, "[governance]\ndefault_rule = 2 admins\n");
	expect_error(f, 2, "default_rule", "role");
	write_ini(f, "[governance]\nrule = 2 admin\n");
	expect_error(f, 2, "rule", "unknown key");
	write_ini(f, "[governance]\nrule.kernel.start = 1 admin\n");
	expect_error(f, 2, "kernel.start", "not an action");
	write_ini(f, "[governance]\nrule.kernel.stop = all_of(1 admin\n");
	expect_error(f, 2, "rule.kernel.stop", "')'");
	write_ini(f, "[governance]\nexpiry_s = 0\n");
	expect_error(f, 2, "expiry_s", "1");
	grace_config shipped;
	sdk_err err;
	grace_config_overrides ov = { .config_path = GRACE_SOURCE_ROOT "/etc/grace.ini" };
	if (grace_config_read(&shipped, BUILTINS, &ov, &err) != 0)
		fail_msg("etc/grace.ini: %s", err.msg);
	write_ini(f, "[grace]\n");
	expect_ok(f, NULL);
	assert_memory_equal(&shipped.governance, &f->cfg.governance, sizeof shipped.governance);
	assert_string_equal(shipped.governance.gate, ""); /* off by default */
}

/* [trust]: the trust domain, TTL bounds, rotation periods and the score
 * half-life, each within its limits; defaults that equal the old constants. */
static void test_trust_section(void **state)
{
	struct fx *f = *state;
	write_ini(f, "[grace]\napi_port = 8000\n");
	expect_ok(f, NULL);
	assert_string_equal(f->cfg.trust.domain, "grace.local");
	assert_int_equal(f->cfg.trust.jwt_ttl_default_s, 300);
	assert_int_equal(f->cfg.trust.jwt_ttl_max_s, 3600);
	assert_int_equal(f->cfg.trust.x509_rotate_s, 7 * 86400);
	assert_int_equal(f->cfg.trust.score_half_life_s, 86400);
	write_ini(f, "[trust]\ndomain = example.org\njwt_ttl_default_s = 60\njwt_ttl_max_s = 120\n"
		     "jwt_rotate_s = 600\nscore_half_life_s = 2\nscore_refresh_ms = 200\n");
	expect_ok(f, NULL);
	assert_string_equal(f->cfg.trust.domain, "example.org");
	assert_int_equal(f->cfg.trust.jwt_ttl_default_s, 60);
	assert_int_equal(f->cfg.trust.jwt_ttl_max_s, 120);
	assert_int_equal(f->cfg.trust.jwt_rotate_s, 600);
	assert_int_equal(f->cfg.trust.score_half_life_s, 2);
	assert_int_equal(f->cfg.trust.score_refresh_ms, 200);
	/* Calls between kernels: SVIDs off by default, and their lifetime. */
	write_ini(f, "[grace]\napi_port = 8000\n");
	expect_ok(f, NULL);
	assert_false(f->cfg.trust.require_svid);
	assert_int_equal(f->cfg.trust.svid_ttl_s, 300);
	write_ini(f, "[trust]\nrequire_svid = true\nsvid_ttl_s = 60\n");
	expect_ok(f, NULL);
	assert_true(f->cfg.trust.require_svid);
	assert_int_equal(f->cfg.trust.svid_ttl_s, 60);
	write_ini(f, "[trust]\nrequire_svid = sometimes\n");
	expect_error(f, 2, "require_svid", NULL);
	write_ini(f, "[trust]\nsvid_ttl_s = 5\n");
	expect_error(f, 2, "svid_ttl_s", NULL);
	/* ... and only with the trust kernel that issues them. */
	write_ini(f, "[trust]\nrequire_svid = true\n[kernel.audit]\n");
	assert_int_equal(load_file(f, NULL), -1);
	write_ini(f, "[trust]\nrequire_svid = true\n[kernel.audit]\n[kernel.trust]\n");
	expect_ok(f, NULL);
	write_ini(f, "[trust]\ndomain = Grace.Local\n");
	expect_error(f, 2, "domain", NULL);
	write_ini(f, "[trust]\ndomain = \n");
	expect_error(f, 2, "domain", NULL);
	write_ini(f, "[trust]\njwt_ttl_max_s = 5\n");
	expect_error(f, 2, "jwt_ttl_max_s", NULL);
	write_ini(f, "[trust]\nscore_half_life_s = 0\n");
	expect_error(f, 2, "score_half_life_s", NULL);
	write_ini(f, "[trust]\nbogus = 1\n");
	expect_error(f, 2, "bogus", NULL);
	write_ini(f, "[trust]\njwt_ttl_default_s = 600\njwt_ttl_max_s = 300\n");
	assert_int_equal(load_file(f, NULL), -1);
	assert_non_null(strstr(f->err.msg, "[trust]"));
	assert_non_null(strstr(f->err.msg, "jwt_ttl_max_s"));
}

/* [store]: sqlite by default; postgresql needs a URL with no password in
 * it (the password comes from password_file, made absolute). */
static void test_store_section(void **state)
{
	struct fx *f = *state;
	write_ini(f, "[grace]\napi_port = 8000\n");
	expect_ok(f, NULL);
	assert_int_equal(f->cfg.store.engine, GRACE_STORE_SQLITE);
	assert_int_equal(f->cfg.store.pool_size, 4);
	assert_int_equal(f->cfg.store.statement_timeout_ms, 5000);
	write_ini(f, "[store]\nengine = postgresql\npostgresql_url = host=db1 dbname=grace\n"
		     "password_file = pg.key\npool_size = 2\nstatement_timeout_ms = 100\n"
		     "connect_timeout_s = 3\n");
	expect_ok(f, NULL);
	assert_int_equal(f->cfg.store.engine, GRACE_STORE_POSTGRESQL);
	assert_string_equal(f->cfg.store.postgresql_url, "host=db1 dbname=grace");
	assert_true(f->cfg.store.password_file[0] == '/');
	assert_int_equal(f->cfg.store.pool_size, 2);
	assert_int_equal(f->cfg.store.statement_timeout_ms, 100);
	assert_int_equal(f->cfg.store.connect_timeout_s, 3);
	write_ini(f, "[store]\nengine = mysql\n");
	expect_error(f, 2, "engine", NULL);
	write_ini(f, "[store]\npostgresql_url = host=db1 password=secret\n");
	expect_error(f, 2, "password", NULL);
	write_ini(f, "[store]\npostgresql_url = postgresql://grace:secret@db1/grace\n");
	expect_error(f, 2, "password", NULL);
	write_ini(f, "[store]\npool_size = 0\n");
	expect_error(f, 2, "pool_size", NULL);
	write_ini(f, "[store]\nengine = postgresql\n");
	assert_int_equal(load_file(f, NULL), -1);
	assert_non_null(strstr(f->err.msg, "postgresql_url"));
	write_ini(f, "[store]\nengine = postgresql\npostgresql_url = postgresql://grace@db1/grace\n");
	expect_ok(f, NULL);
}

static void test_message_bus_section(void **state)
{
	struct fx *f = *state;
	write_ini(f, "[grace]\napi_port = 8000\n");
	expect_ok(f, NULL);
	const grace_message_bus *m = &f->cfg.message_bus;
	assert_false(m->jetstream); /* embedded unless asked */
	assert_int_equal(m->n_nats_urls, 1);
	assert_string_equal(m->nats_urls[0], "nats://127.0.0.1:4222");
	assert_string_equal(m->stream_prefix, "GRACE");
	assert_int_equal(m->replicas, 1);
	assert_int_equal(m->publish_timeout_ms, 5000);
	write_ini(f, "[message_bus]\nengine = jetstream\n"
		     "nats_urls = nats://10.0.0.1:4222, nats://10.0.0.2:4223 ,nats://h3:4222\n"
		     "stream_prefix = Prod_1\nreplicas = 3\nmax_age_s = 86400\n"
		     "max_bytes = 1073741824\npublish_timeout_ms = 2000\n");
	expect_ok(f, NULL);
	assert_true(m->jetstream);
	assert_int_equal(m->n_nats_urls, 3);
	assert_string_equal(m->nats_urls[1], "nats://10.0.0.2:4223");
	assert_string_equal(m->nats_urls[2], "nats://h3:4222");
	assert_string_equal(m->stream_prefix, "Prod_1");
	assert_int_equal(m->replicas, 3);
	assert_int_equal(m->max_age_s, 86400);
	assert_int_equal(m->max_bytes, 1073741824);
	assert_int_equal(m->publish_timeout_ms, 2000);
	write_ini(f, "[message_bus]\nengine = kafka\n");
	expect_error(f, 2, "engine", "kafka");
	write_ini(f, "[message_bus]\nnats_urls = http://x:4222\n");
	expect_error(f, 2, "nats_urls", NULL);
	write_ini(f, "[message_bus]\nnats_urls = nats://a:1,,nats://b:2\n");
	expect_error(f, 2, "nats_urls", NULL);
	write_ini(f, "[message_bus]\nnats_urls = nats://a:1,nats://a:2,nats://a:3,nats://a:4,"
		     "nats://a:5,nats://a:6,nats://a:7,nats://a:8,nats://a:9\n");
	expect_error(f, 2, "nats_urls", NULL);
	write_ini(f, "[message_bus]\nstream_prefix = a.b\n");
	expect_error(f, 2, "stream_prefix", NULL);
	write_ini(f, "[message_bus]\nreplicas = 6\n");
	expect_error(f, 2, "replicas", NULL);
	write_ini(f, "[message_bus]\nbrokers = 3\n");
	expect_error(f, 2, "brokers", NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_builtin_kernels),
		T(test_file_without_kernels_keeps_builtins),
		T(test_file_kernels_replace_builtins),
		T(test_defaults_before_and_after),
		T(test_error_unknown_key),
		T(test_error_unknown_section),
		T(test_error_bad_integer),
		T(test_error_port_out_of_range),
		T(test_error_duplicate_port),
		T(test_error_missing_port),
		T(test_error_cannot_open),
		T(test_first_error_wins),
		T(test_syntax_error_line_and_reason),
		T(test_env_and_overrides_precedence),
		T(test_config_path_precedence),
		T(test_relative_paths_become_absolute),
		T(test_kernel_lookup),
		T(test_kernel_named_with_suffix),
		T(test_port_offset),
		T(test_ephemeral_offset),
		T(test_long_command),
		T(test_long_line_not_split),
		T(test_command_quotes_checked_at_load),
		T(test_too_many_kernels),
		T(test_builtin_section_overrides),
		T(test_builtin_definitions_checked),
		T(test_model_heartbeat),
		T(test_policy_section),
		T(test_scheduler_executor_sections),
		T(test_crypto_section),
		T(test_governance_section),
		T(test_trust_section),
		T(test_store_section),
		T(test_message_bus_section),
#undef T
	};
	return cmocka_run_group_tests_name("config", tests, group_setup, group_teardown);
}
