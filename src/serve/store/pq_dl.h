/* libpq, loaded at run time (sdk/dl_table.h says why): only the main
 * process with [store] engine = postgresql needs it, and it brings
 * libssl, libcrypto, GSSAPI and LDAP that no kernel process should map. */
#ifndef GRACE_STORE_PQ_DL_H
#define GRACE_STORE_PQ_DL_H

#include "serve/layer.h"
#include "sdk/err.h"

#include <libpq-fe.h>

typedef struct pq_dl {
	void *lib;
	PGconn *(*PQconnectdbParams)(const char *const *keys, const char *const *values,
				     int expand_dbname);
	ConnStatusType (*PQstatus)(const PGconn *c);
	PGTransactionStatusType (*PQtransactionStatus)(const PGconn *c);
	char *(*PQerrorMessage)(const PGconn *c);
	void (*PQfinish)(PGconn *c);
	PGresult *(*PQexec)(PGconn *c, const char *sql);
	PGresult *(*PQexecParams)(PGconn *c, const char *sql, int n, const Oid *types,
				  const char *const *values, const int *lengths,
				  const int *formats, int result_format);
	ExecStatusType (*PQresultStatus)(const PGresult *r);
	char *(*PQresultErrorField)(const PGresult *r, int field);
	char *(*PQresultErrorMessage)(const PGresult *r);
	void (*PQclear)(PGresult *r);
	char *(*PQcmdTuples)(PGresult *r);
	int (*PQntuples)(const PGresult *r);
	int (*PQgetisnull)(const PGresult *r, int row, int col);
	char *(*PQgetvalue)(const PGresult *r, int row, int col);
} pq_dl;

/* Loads libpq once per process, from any thread; NULL with why in err.
 * Later calls return the table. */
const pq_dl *pq_dl_load(sdk_err *err);

/* The table once pq_dl_load has succeeded (store_pg_open does it first):
 * the store's files call libpq through it. */
extern const pq_dl *store_pq;

#endif
