/* Included first by every main-process header. The SDK and the kernels are
 * compiled with GRACE_LAYER_SDK or GRACE_LAYER_KERNEL defined, so reaching
 * up into the main process from them fails to compile: a kernel depends on
 * src/sdk only, and the SDK on nothing above it. */
#ifndef GRACE_SERVE_LAYER_H
#define GRACE_SERVE_LAYER_H
#if defined(GRACE_LAYER_SDK) || defined(GRACE_LAYER_KERNEL)
#error "a main-process header (src/serve, src/cli) included from the SDK or a kernel"
#endif
#endif
