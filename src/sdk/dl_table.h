/* A library loaded at run time into a table of function pointers. Every
 * kernel is this same `grace` binary: a library that only the main process
 * or one command uses (libcurl for chat, libarchive for backups) would
 * otherwise be mapped, relocated and partly paged in by twenty kernel
 * processes and their standbys. Grace compiles against the library's
 * headers for its types and loads it where it is needed. */
#ifndef GRACE_SDK_DL_TABLE_H
#define GRACE_SDK_DL_TABLE_H

#include "sdk/err.h"

#include <stddef.h>

typedef struct sdk_dl_sym {
	const char *name;
	size_t offset; /* of its pointer in the table */
} sdk_dl_sym;

#define SDK_DL_SYM(type, sym, member) { sym, offsetof(type, member) }

/* Opens the first of `names` that loads and fills `table` with every
 * symbol; the handle goes to *lib. 0, or SDK_EIO with why in err. */
int sdk_dl_table_open(void **lib, const char *const *names, size_t n_names, const sdk_dl_sym *syms,
		      size_t n_syms, void *table, const char *what, sdk_err *err);

#endif
