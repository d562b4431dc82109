#include "kernels/registry.h"

#include "kernels/kernel_list.h" /* generated from grace_kernels in meson.build */

#include <string.h>

/* NAME_kernel is defined in src/kernels/NAME/ when has_folder is 1, else
 * by its PLACEHOLDER line below. A name with neither fails the link. */
#define GRACE_KERNEL(n, has_folder)             \
	extern const sdk_kernel_def n##_kernel; \
	enum { kernel_has_folder_##n = has_folder };
GRACE_KERNEL_LIST
#undef GRACE_KERNEL

/* Kernels whose own code comes in later issues: each runs as its own
 * process with the SDK's standard endpoints, and says so in /health. A
 * kernel that lands deletes its line here; its folder src/kernels/NAME/
 * then defines NAME_kernel, with this port and tier. The compiler holds
 * both ends: a placeholder whose kernel has its folder, or whose name is
 * not in grace_kernels (kernel_has_folder_NAME undeclared), is an error. */
#define PLACEHOLDER(n, p, t, s)                                                           \
	_Static_assert(!kernel_has_folder_##n,                                            \
		       "src/kernels/" #n "/ defines " #n "_kernel: delete its PLACEHOLDER line"); \
	const sdk_kernel_def n##_kernel = { .name = #n, .summary = s, .port = p, .tier = t,      \
					    .complete = false, .schema_version = 1 }


/* In the order of grace_kernels, which is port order (tests/unit/test_registry.c). */
static const sdk_kernel_def *const kernels[] = {
#define GRACE_KERNEL(n, has_folder) &n##_kernel,
	GRACE_KERNEL_LIST
#undef GRACE_KERNEL
};

size_t kernel_registry_count(void) { return sizeof kernels / sizeof kernels[0]; }

const sdk_kernel_def *const *kernel_registry_all(void) { return kernels; }

const sdk_kernel_def *kernel_registry_at(size_t i)
{
	return i < kernel_registry_count() ? kernels[i] : NULL;
}

const sdk_kernel_def *kernel_registry_find(const char *name)
{
	size_t n = strlen(name);
	static const char suffix[] = "_kernel";
	if (n > sizeof suffix - 1 && !strcmp(name + n - (sizeof suffix - 1), suffix))
		n -= sizeof suffix - 1;
	for (size_t i = 0; i < kernel_registry_count(); i++) {
		const sdk_kernel_def *d = kernels[i];
		if (strlen(d->name) == n && !strncmp(d->name, name, n))
			return d;
	}
	return NULL;
}
