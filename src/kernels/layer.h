/* Included first by every kernel header: the SDK is compiled with
 * GRACE_LAYER_SDK defined, so it cannot include a kernel's header. */
#ifndef GRACE_KERNELS_LAYER_H
#define GRACE_KERNELS_LAYER_H
#if defined(GRACE_LAYER_SDK)
#error "a kernel header included from the SDK"
#endif
#endif
