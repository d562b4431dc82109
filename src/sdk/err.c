#include "sdk/err.h"

#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>

int sdk_fail(sdk_err *err, int code, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof err->msg, fmt, ap);
		va_end(ap);
	}
	return code;
}

int sdk_status_of_sqlite(int rc)
{
	switch (rc & 0xff) { /* the primary code of an extended one */
	case SQLITE_OK: return SDK_OK;
	case SQLITE_FULL: return SDK_EFULL;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB: return SDK_ECORRUPT;
	case SQLITE_BUSY:
	case SQLITE_LOCKED: return SDK_EBUSY;
	case SQLITE_INTERRUPT: return SDK_ETIMEOUT;
	case SQLITE_TOOBIG: return SDK_ETOOLARGE;
	case SQLITE_CONSTRAINT: return SDK_ECONFLICT;
	default: return SDK_EIO;
	}
}

static const struct {
	int status, http;
	const char *code;
} status_table[] = {
	{ SDK_EINVAL, 400, "invalid" },
	{ SDK_ENOTFOUND, 404, "not_found" },
	{ SDK_ECONFLICT, 409, "conflict" },
	{ SDK_EDENIED, 403, "forbidden" },
	{ SDK_ETOOLARGE, 413, "too_large" },
	{ SDK_EQUOTA, 403, "quota_exceeded" },
	{ SDK_EBUSY, 503, "busy" },
	{ SDK_ETIMEOUT, 503, "timeout" },
	{ SDK_EFULL, 507, "storage_full" },
	{ SDK_ECORRUPT, 500, "storage_corrupt" },
	{ SDK_EIO, 500, "storage_error" },
};

int sdk_status_http(int status)
{
	for (size_t i = 0; i < sizeof status_table / sizeof *status_table; i++)
		if (status_table[i].status == status)
			return status_table[i].http;
	return 500;
}

const char *sdk_status_code(int status)
{
	for (size_t i = 0; i < sizeof status_table / sizeof *status_table; i++)
		if (status_table[i].status == status)
			return status_table[i].code;
	return "internal";
}
