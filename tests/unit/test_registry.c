/* Unit tests for the one table of kernels (src/kernels/registry.c and the
 * list grace_kernels in meson.build): every definition carries what the
 * configuration, `grace kernels-list` and /kernel-ports derive from it. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "kernels/registry.h"

static bool word(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n >= GRACE_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return true;
}

static void test_every_definition_is_whole(void **state)
{
	(void)state;
	size_t n = kernel_registry_count();
	assert_true(n > 0 && n <= GRACE_KERNELS_MAX);
	assert_ptr_equal(kernel_registry_all()[0], kernel_registry_at(0));
	assert_null(kernel_registry_at(n));
	for (size_t i = 0; i < n; i++) {
		const sdk_kernel_def *d = kernel_registry_at(i);
		assert_non_null(d);
		print_message("%-14s %d %s\n", d->name, d->port, d->tier ? d->tier : "(no tier)");
		if (!word(d->name))
			fail_msg("kernel %zu: name '%s' is not a lower-case word", i, d->name);
		if (d->port < GRACE_KERNEL_PORT_MIN || d->port > GRACE_KERNEL_PORT_MAX)
			fail_msg("%s: .port %d is outside %d-%d", d->name, d->port,
				 GRACE_KERNEL_PORT_MIN, GRACE_KERNEL_PORT_MAX);
		if (!word(d->tier))
			fail_msg("%s: .tier is missing or not a lower-case word", d->name);
		if (!d->summary || !*d->summary)
			fail_msg("%s: .summary is missing", d->name);
		/* Routes and their count go together; complete needs routes. */
		assert_true(!d->routes == !d->n_routes);
		if (d->complete && !d->n_routes)
			fail_msg("%s: complete without routes of its own", d->name);
		/* The healer's rebind_port looks first in the tier's range of ten. */
		if (i > 0) {
			const sdk_kernel_def *p = kernel_registry_at(i - 1);
			if (p->port >= d->port)
				fail_msg("grace_kernels in meson.build is not in port order: %s (%d) "
					 "comes after %s (%d)", d->name, d->port, p->name, p->port);
			if (!strcmp(p->tier, d->tier) && p->port / 10 != d->port / 10)
				fail_msg("%s and %s: one tier, two ranges of ten ports", p->name,
					 d->name);
		}
		for (size_t j = 0; j < i; j++)
			if (!strcmp(kernel_registry_at(j)->name, d->name))
				fail_msg("%s is listed twice", d->name);
	}
}

static void test_find(void **state)
{
	(void)state;
	const sdk_kernel_def *d = kernel_registry_find("librarian");
	assert_non_null(d);
	assert_string_equal(d->name, "librarian");
	assert_ptr_equal(kernel_registry_find("librarian_kernel"), d);
	for (size_t i = 0; i < kernel_registry_count(); i++)
		assert_ptr_equal(kernel_registry_find(kernel_registry_at(i)->name),
				 kernel_registry_at(i));
	assert_null(kernel_registry_find(""));
	assert_null(kernel_registry_find("_kernel"));
	assert_null(kernel_registry_find("librar"));
	assert_null(kernel_registry_find("librarian_"));
	assert_null(kernel_registry_find("nope"));
}

/* A placeholder runs with the SDK's endpoints only, and says so. */
static void test_placeholders(void **state)
{
	(void)state;
	const sdk_kernel_def *d = kernel_registry_find("alerts");
	assert_non_null(d);
	size_t placeholders = 0;
	for (size_t i = 0; i < kernel_registry_count(); i++) {
		d = kernel_registry_at(i);
		if (d->n_routes)
			continue;
		placeholders++;
		assert_false(d->complete);
		assert_null(d->init);
		assert_null(d->close);
	}
	print_message("%zu placeholders\n", placeholders);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_definition_is_whole),
		cmocka_unit_test(test_find),
		cmocka_unit_test(test_placeholders),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
