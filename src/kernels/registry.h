/* Every kernel this binary can run, by name: the one table of kernels.
 *
 * Which kernels exist is the list `grace_kernels` in the top meson.build,
 * one name a line, in port order; meson generates kernels/kernel_list.h
 * from it. Each name NAME is defined by `const sdk_kernel_def NAME_kernel`
 * (its name, summary, port, tier and completeness), found in the folder
 * src/kernels/NAME/ when there is one, else among the placeholders in
 * registry.c. docs/kernels.md says how to add one. */
#ifndef GRACE_KERNELS_REGISTRY_H
#define GRACE_KERNELS_REGISTRY_H

#include "kernels/layer.h"

#include "sdk/kernel.h"

/* NULL when no kernel has that name (the "_kernel" suffix is accepted). */
const sdk_kernel_def *kernel_registry_find(const char *name);
const sdk_kernel_def *kernel_registry_at(size_t i);
size_t kernel_registry_count(void);
/* All of them, in port order: what grace_config_read() takes. */
const sdk_kernel_def *const *kernel_registry_all(void);

#endif
