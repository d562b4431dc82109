/* Small secret files in the data directory (the immutable log's signing
 * seed, the crypto kernel's master key): created once with mode 0600 and
 * refused when anyone but their owner could read them, so a secret never
 * silently sits in a world-readable file.
 *
 * Used by the immutable log and crypto kernels and for the internal token. */
#ifndef GRACE_SDK_KEYFILE_H
#define GRACE_SDK_KEYFILE_H

#include "sdk/err.h"

#include <stddef.h>

/* Reads exactly `len` bytes from `path` into `out`. SDK_ENOTFOUND (and
 * nothing in `err`) when the file does not exist; SDK_EIO with the reason
 * in `err` when it cannot be read, is not a regular file owned by us, is
 * readable or writable by group or others, or does not hold exactly `len`
 * bytes. `out` is wiped on error. */
int keyfile_read(const char *path, unsigned char *out, size_t len, sdk_err *err);

/* Creates `path` (mode 0600, whatever the umask) holding `data`, durably and
 * atomically: a temporary file is written and synced, then linked into
 * place, so a crash never leaves a half-written secret and an existing file
 * is never replaced (SDK_EIO, errno EEXIST reported in `err`). A full disk
 * is SDK_EFULL, any other failure SDK_EIO. */
int keyfile_create(const char *path, const unsigned char *data, size_t len, sdk_err *err);

/* The same, but an existing file is replaced (atomically, by rename): for
 * secrets made anew at each start, like the internal token. */
int keyfile_replace(const char *path, const unsigned char *data, size_t len, sdk_err *err);

#endif
