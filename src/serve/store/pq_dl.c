#include "serve/store/pq_dl.h"

#include "sdk/dl_table.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>

static const char *const names[] = { "libpq.so.5", "libpq.so" };

static const sdk_dl_sym syms[] = {
#define S(sym) SDK_DL_SYM(pq_dl, #sym, sym)
	S(PQconnectdbParams), S(PQstatus),	    S(PQtransactionStatus), S(PQerrorMessage),
	S(PQfinish),	      S(PQexec),	    S(PQexecParams),	    S(PQresultStatus),
	S(PQresultErrorField), S(PQresultErrorMessage), S(PQclear),	    S(PQcmdTuples),
	S(PQntuples),	      S(PQgetisnull),	    S(PQgetvalue),
#undef S
};

static pq_dl table; /* for the life of the process */
static bool loaded;
static sdk_err load_error;
static pthread_once_t once = PTHREAD_ONCE_INIT;
const pq_dl *store_pq;

static void load(void)
{
	loaded = sdk_dl_table_open(&table.lib, names, sizeof names / sizeof *names, syms,
				   sizeof syms / sizeof *syms, &table, "libpq (Debian: libpq5)", &load_error) == 0;
	if (loaded)
		store_pq = &table;
}

/* A failure stands until a restart (install libpq5). */
const pq_dl *pq_dl_load(sdk_err *err)
{
	pthread_once(&once, load);
	if (!loaded)
		sdk_fail(err, SDK_EIO, "%s", load_error.msg);
	return loaded ? &table : NULL;
}
