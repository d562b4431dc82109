#include "sdk/nats_dl.h"

#include "sdk/dl_table.h"

#include <dlfcn.h>
#include <string.h>

static const char *const nats_names[] = { "libnats.so.3.4", "libnats.so" };

static const sdk_dl_sym nats_syms[] = {
#define SDK_NATS_SYM(fn) SDK_DL_SYM(sdk_nats_dl, #fn, fn),
	SDK_NATS_FUNCTIONS(SDK_NATS_SYM)
#undef SDK_NATS_SYM
};

int sdk_nats_open(sdk_nats_dl *n, sdk_err *err)
{
	memset(n, 0, sizeof *n);
	if (sdk_dl_table_open(&n->lib, nats_names, sizeof nats_names / sizeof *nats_names,
			      nats_syms, sizeof nats_syms / sizeof *nats_syms, n,
			      "libnats (Debian: libnats3.4)", err) < 0) {
		memset(n, 0, sizeof *n);
		return SDK_EIO;
	}
	return 0;
}

const char *sdk_nats_why(const sdk_nats_dl *n, natsStatus s, jsErrCode jerr, char *buf,
			 size_t len)
{
	if (jerr)
		snprintf(buf, len, "%s (JetStream error %d)", n->natsStatus_GetText(s), (int)jerr);
	else
		snprintf(buf, len, "%s", n->natsStatus_GetText(s));
	return buf;
}

void sdk_nats_close(sdk_nats_dl *n)
{
	if (!n->lib)
		return;
	/* The library's own threads (timers, garbage collector) end here. Its
	 * code stays mapped until the process exits: the process is ending,
	 * and a leak report then can still name libnats's frames. */
	n->nats_CloseAndWait(2000);
	memset(n, 0, sizeof *n);
}
