/* Every kernel this binary can run, by name. */
#ifndef GRACE_KERNELS_REGISTRY_H
#define GRACE_KERNELS_REGISTRY_H

#include "kernels/layer.h"

#include "sdk/kernel.h"

/* NULL when no kernel has that name (the "_kernel" suffix is accepted). */
const sdk_kernel_def *kernel_registry_find(const char *name);
const sdk_kernel_def *kernel_registry_at(size_t i);
size_t kernel_registry_count(void);

extern const sdk_kernel_def librarian_kernel;
extern const sdk_kernel_def immutable_log_kernel, crypto_kernel;
extern const sdk_kernel_def message_bus_kernel;
extern const sdk_kernel_def audit_kernel;
extern const sdk_kernel_def policy_kernel;
extern const sdk_kernel_def metrics_kernel;

#endif
