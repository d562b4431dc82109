/* Unit tests for the port table's reader (src/sdk/ports.c): a kernel
 * follows every rewrite of DATA_DIR/ports.json at its next resolve, with
 * no watch of the directory (a stat per resolve), and falls back to the
 * configuration's ports when the file is gone or unreadable. */
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
#include "sdk/err.h"
#include "sdk/ports.h"

struct fx {
	char dir[PATH_MAX];
	char path[PATH_MAX + 32];
	grace_config cfg;
	sdk_ports *p;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	const char *tmp = getenv("TMPDIR");
	snprintf(f->dir, sizeof f->dir, "%s/grace-ports-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof f->path, "%s/%s", f->dir, SDK_PORTS_FILE);
	/* No file: the built-in kernels at their default ports. */
	grace_config_overrides ov = { .config_path = "/dev/null", .data_dir = f->dir };
	sdk_err e = { "" };
	if (grace_config_read(&f->cfg, kernel_registry_all(), kernel_registry_count(), &ov, &e) < 0)
		return -1;
	f->p = sdk_ports_open(&f->cfg);
	*state = f;
	return f->p ? 0 : -1;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	sdk_ports_close(f->p);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void write_table(struct fx *f, int audit_port, bool running)
{
	sdk_ports_entry e[] = { { "audit", audit_port, running } };
	assert_int_equal(sdk_ports_write(f->dir, e, 1), 0);
}

static int config_port(struct fx *f, const char *name)
{
	return grace_kernel_port(&f->cfg, grace_config_kernel(&f->cfg, name));
}

static void without_file_the_configuration_stands(void **state)
{
	struct fx *f = *state;
	assert_int_equal(sdk_ports_resolve("audit", f->p), config_port(f, "audit"));
	assert_int_equal(sdk_ports_resolve("no_such_kernel", f->p), SDK_ENOTFOUND);
}

/* Each rewrite is a new file renamed over the old one: the next resolve
 * sees it, however quickly it follows (same size, same second). */
static void every_rewrite_is_seen_at_once(void **state)
{
	struct fx *f = *state;
	write_table(f, 20001, true);
	assert_int_equal(sdk_ports_resolve("audit", f->p), 20001);
	for (int port = 20002; port < 20012; port++) {
		write_table(f, port, true);
		assert_int_equal(sdk_ports_resolve("audit", f->p), port);
	}
	write_table(f, 20011, false);
	assert_int_equal(sdk_ports_resolve("audit", f->p), SDK_EBUSY);
	/* A kernel the table does not name keeps its configured port. */
	assert_int_equal(sdk_ports_resolve("librarian", f->p), config_port(f, "librarian"));
}

static void gone_or_damaged_falls_back(void **state)
{
	struct fx *f = *state;
	write_table(f, 20100, true);
	assert_int_equal(sdk_ports_resolve("audit", f->p), 20100);
	assert_int_equal(unlink(f->path), 0);
	assert_int_equal(sdk_ports_resolve("audit", f->p), config_port(f, "audit"));
	/* Not JSON: as if absent, until a good table replaces it. */
	FILE *fp = fopen(f->path, "w");
	assert_non_null(fp);
	fputs("{\"version\":1,\"kernels\":", fp);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(sdk_ports_resolve("audit", f->p), config_port(f, "audit"));
	write_table(f, 20101, true);
	assert_int_equal(sdk_ports_resolve("audit", f->p), 20101);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(without_file_the_configuration_stands, setup, teardown),
		cmocka_unit_test_setup_teardown(every_rewrite_is_seen_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(gone_or_damaged_falls_back, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
