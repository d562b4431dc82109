#include "sdk/dl_table.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

int sdk_dl_table_open(void **lib, const char *const *names, size_t n_names, const sdk_dl_sym *syms,
		      size_t n_syms, void *table, const char *what, sdk_err *err)
{
	/* The soname first; an unversioned name only where a -dev package made it. */
	const char *why = "not found";
	*lib = NULL;
	for (size_t i = 0; i < n_names && !*lib; i++) {
		*lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
		if (!*lib && i == 0)
			why = dlerror();
	}
	if (!*lib)
		return sdk_fail(err, SDK_EIO, "cannot load %s: %s", what, why ? why : "not found");
	for (size_t i = 0; i < n_syms; i++) {
		void *p = dlsym(*lib, syms[i].name);
		if (!p) {
			sdk_fail(err, SDK_EIO, "%s has no %s (too old?)", what, syms[i].name);
			dlclose(*lib);
			*lib = NULL;
			return SDK_EIO;
		}
		/* POSIX guarantees a function pointer fits a void *. */
		memcpy((char *)table + syms[i].offset, &p, sizeof p);
	}
	return 0;
}
