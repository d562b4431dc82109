/* Unit tests for what a reload changes (src/serve/reload/plan.c): two INI
 * files loaded as grace serve loads them, then compared. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/registry.h"
#include "serve/reload/plan.h"

static char dir[] = "/tmp/grace-reload-plan-XXXXXX";

struct side {
	grace_config cfg;
	rl_ini ini;
};

static void load(struct side *s, const char *name, const char *text)
{
	char path[128];
	sdk_err err;
	snprintf(path, sizeof path, "%s/%s.ini", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	rl_ini_free(&s->ini); /* a side loaded before, in the same test */
	grace_config_overrides ov = { path, dir, "0" };
	int rc = grace_config_read(&s->cfg, kernel_registry_all(), kernel_registry_count(), &ov,
				   &err);
	if (rc < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(rl_ini_read(path, &s->ini, &err), 0);
}

static int idx(const grace_config *c, const char *name)
{
	for (size_t i = 0; i < c->n_kernels; i++)
		if (!strcmp(c->kernels[i].name, name))
			return (int)i;
	fail_msg("no kernel %s", name);
	return -1;
}

static bool later_has(const rl_plan *p, const char *what)
{
	for (size_t i = 0; i < p->n_later; i++)
		if (!strcmp(p->later[i], what))
			return true;
	return false;
}

/* The base every case changes one thing of. */
#define BASE                                                                               \
	"[grace]\napi_port = 8000\nlog_level = info\n"                                     \
	"[limits]\nmax_body_bytes = 1048576\n"                                             \
	"[kernel.message_bus]\n"                                                           \
	"[kernel.librarian]\nhealth_interval_ms = 60000\n"                                 \
	"[kernel.audit]\n"                                                                 \
	"[kernel.crypto]\nenabled = 0\n"                                                   \
	"[librarian]\ndocuments_per_user = 100\n"

static void plan_of(const char *a, const char *b, struct side *x, struct side *y, rl_plan *p)
{
	load(x, "old", a);
	load(y, "new", b);
	rl_plan_make(&x->cfg, &x->ini, &y->cfg, &y->ini, p);
}

static void done(struct side *x, struct side *y)
{
	rl_ini_free(&x->ini);
	rl_ini_free(&y->ini);
	free(x);
	free(y);
}

static void test_same_file_changes_nothing(void **state)
{
	(void)state;
	struct side *x = calloc(1, sizeof *x), *y = calloc(1, sizeof *y);
	rl_plan p;
	plan_of(BASE, BASE, x, y, &p);
	assert_true(rl_plan_empty(&p));
	/* Comments, order and spacing are not changes. */
	plan_of(BASE, "; a comment\n" BASE "\n\n", x, y, &p);
	assert_true(rl_plan_empty(&p));
	done(x, y);
}

static void test_kernel_entry_restarts_that_kernel_only(void **state)
{
	(void)state;
	struct side *x = calloc(1, sizeof *x), *y = calloc(1, sizeof *y);
	rl_plan p;
	plan_of(BASE,
		"[grace]\napi_port = 8000\nlog_level = info\n[limits]\nmax_body_bytes = 1048576\n"
		"[kernel.message_bus]\n[kernel.librarian]\nhealth_interval_ms = 30000\n"
		"[kernel.audit]\n[kernel.crypto]\nenabled = 0\n[librarian]\ndocuments_per_user = 100\n",
		x, y, &p);
	assert_int_equal(p.act[idx(&x->cfg, "librarian")], RL_RESTART);
	assert_int_equal(p.act[idx(&x->cfg, "message_bus")], RL_KEEP);
	assert_int_equal(p.act[idx(&x->cfg, "audit")], RL_KEEP);
	assert_int_equal(p.n_restart, 1);
	assert_int_equal(p.n_later, 0);
	done(x, y);
}

static void test_own_section_restarts_its_kernel(void **state)
{
	(void)state;
	struct side *x = calloc(1, sizeof *x), *y = calloc(1, sizeof *y);
	rl_plan p;
	char b[2048];
	snprintf(b, sizeof b, "%s", BASE);
	char *v = strstr(b, "documents_per_user = 100");
	memcpy(v, "documents_per_user = 50 ", 24);
	plan_of(BASE, b, x, y, &p);
	assert_int_equal(p.act[idx(&x->cfg, "librarian")], RL_RESTART);
	assert_int_equal(p.n_restart, 1);
	assert_int_equal(p.n_later, 0);
	done(x, y);
}

static void test_defaults_restart_every_enabled_kernel(void **state)
{
	(void)state;
	struct side *x = calloc(1, sizeof *x), *y = calloc(1, sizeof *y);
	rl_plan p;
	plan_of(BASE, BASE "[defaults]\nwatchdog_ms = 4000\n", x, y, &p);
	assert_int_equal(p.n_restart, 3); /* crypto is disabled: nothing to restart */
	assert_int_equal(p.act[idx(&x->cfg, "crypto")], RL_KEEP);
	done(x, y);
}

static void test_enabled_flag_starts_and_stops(void **state)
{
	(void)state;
	struct side *x = calloc(1, sizeof *x), *y = calloc(1, sizeof *y);
	rl_plan p;
	plan_of(BASE,
		"[grace]\napi_port = 8000\nlog_level = info\n[limits]\nmax_body_bytes = 1048576\n"
		"[kernel.message_bus]\nenabled = 0\n[kernel.librarian]\nhealth_interval_ms = 60000\n"
		"[kernel.audit]\n[kernel.crypto]\n[librarian]\ndocuments_per_user = 100\n",
		x, y, &p);
	assert_int_equal(p.act[idx(&x->cfg, "message_bus")], RL_STOP);
	assert_int_equal(p.act[idx(&x->cfg, "crypto")], RL_START);
	assert_int_equal(p.n_stop, 1);
	assert_int_equal(p.n_start, 1);
	assert_int_equal(p.n_restart, 0);
	done(x, y);
}

static void test_main_process_settings_wait_for_a_start(void **state)
{
	(void)state;
	struct side *x = calloc(1, sizeof *x), *y = calloc(1, sizeof *y);
	rl_plan p;
	plan_of(BASE,
		"[grace]\napi_port = 8001\nlog_level = debug\n[limits]\nmax_body_bytes = 2048\n"
		"[kernel.message_bus]\n[kernel.librarian]\nhealth_interval_ms = 60000\nport = 8139\n"
		"[kernel.audit]\n[kernel.crypto]\nenabled = 0\n[kernel.metrics]\n"
		"[librarian]\ndocuments_per_user = 100\n",
		x, y, &p);
	assert_true(later_has(&p, "[grace] api_port"));
	assert_true(later_has(&p, "[limits] max_body_bytes"));
	assert_true(later_has(&p, "[kernel.librarian] port"));
	assert_true(later_has(&p, "[kernel.metrics] added"));
	assert_false(later_has(&p, "[grace] log_level"));
	assert_true(p.log_level);
	assert_int_equal(p.n_restart, 0);
	/* A kernel taken out of the file is for the next start too. */
	plan_of(BASE,
		"[grace]\napi_port = 8000\nlog_level = info\n[limits]\nmax_body_bytes = 1048576\n"
		"[kernel.message_bus]\n[kernel.librarian]\nhealth_interval_ms = 60000\n"
		"[kernel.crypto]\nenabled = 0\n[librarian]\ndocuments_per_user = 100\n",
		x, y, &p);
	assert_true(later_has(&p, "[kernel.audit] removed"));
	assert_int_equal(p.act[idx(&x->cfg, "audit")], RL_KEEP);
	done(x, y);
}

static void test_shared_section_restarts_and_waits(void **state)
{
	(void)state;
	struct side *x = calloc(1, sizeof *x), *y = calloc(1, sizeof *y);
	rl_plan p;
	plan_of(BASE, BASE "[audit]\nwindow_s = 30\n", x, y, &p);
	assert_int_equal(p.act[idx(&x->cfg, "audit")], RL_RESTART);
	assert_true(later_has(&p, "[audit] window_s"));
	done(x, y);
}

static void test_last_of_a_repeated_key_counts(void **state)
{
	(void)state;
	char path[128];
	sdk_err err;
	snprintf(path, sizeof path, "%s/dup.ini", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("[a]\nk = 1\nz = 0\n[a]\nk = 2\n", f);
	fclose(f);
	rl_ini ini;
	assert_int_equal(rl_ini_read(path, &ini, &err), 0);
	assert_int_equal(ini.n, 2);
	assert_string_equal(ini.kv[0].key, "k");
	assert_string_equal(ini.kv[0].value, "2");
	rl_ini_free(&ini);
	assert_int_equal(rl_ini_read("", &ini, &err), 0);
	assert_int_equal(ini.n, 0);
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	const char *names[] = { "old.ini", "new.ini", "dup.ini" };
	char path[160];
	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		unlink(path);
	}
	return rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_same_file_changes_nothing),
		cmocka_unit_test(test_kernel_entry_restarts_that_kernel_only),
		cmocka_unit_test(test_own_section_restarts_its_kernel),
		cmocka_unit_test(test_defaults_restart_every_enabled_kernel),
		cmocka_unit_test(test_enabled_flag_starts_and_stops),
		cmocka_unit_test(test_main_process_settings_wait_for_a_start),
		cmocka_unit_test(test_shared_section_restarts_and_waits),
		cmocka_unit_test(test_last_of_a_repeated_key_counts),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
