#include "kernels/librarian/tok.h"

#include <stdlib.h>

struct lib_tok {
	fts5_tokenizer api;
	Fts5Tokenizer *tok;
};

/* The documented way to reach FTS5's API from C: a pointer handed out
 * through a bound parameter of SELECT fts5(?). */
static fts5_api *fts5_of(sqlite3 *db)
{
	fts5_api *api = NULL;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "SELECT fts5(?1)", -1, &st, NULL) != SQLITE_OK)
		return NULL;
	sqlite3_bind_pointer(st, 1, &api, "fts5_api_ptr", NULL);
	sqlite3_step(st);
	sqlite3_finalize(st);
	return api;
}

int lib_tok_new(sqlite3 *db, lib_tok **out, sdk_err *err)
{
	*out = NULL;
	fts5_api *api = fts5_of(db);
	if (!api || api->iVersion < 2)
		return sdk_fail(err, SDK_EIO, "this SQLite has no FTS5");
	lib_tok *t = calloc(1, sizeof *t);
	if (!t)
		return sdk_fail(err, SDK_EIO, "out of memory");
	void *ud = NULL;
	static const char *args[] = { "unicode61" };
	if (api->xFindTokenizer(api, "porter", &ud, &t->api) != SQLITE_OK ||
	    t->api.xCreate(ud, args, 1, &t->tok) != SQLITE_OK) {
		free(t);
		return sdk_fail(err, SDK_EIO, "cannot make the porter tokenizer");
	}
	*out = t;
	return SDK_OK;
}

void lib_tok_free(lib_tok *t)
{
	if (!t)
		return;
	if (t->tok)
		t->api.xDelete(t->tok);
	free(t);
}

struct run {
	lib_tok_fn fn;
	void *arg;
	int stopped;
};

static int on_token(void *ctx, int flags, const char *tok, int len, int start, int end)
{
	struct run *r = ctx;
	if (flags & FTS5_TOKEN_COLOCATED)
		return SQLITE_OK; /* porter unicode61 makes none; a synonym takes no position */
	int rc = r->fn(r->arg, tok, len, start, end);
	if (rc) {
		r->stopped = rc;
		return SQLITE_DONE; /* anything but OK stops the tokenizer */
	}
	return SQLITE_OK;
}

int lib_tok_run(lib_tok *t, int flags, const char *text, int len, lib_tok_fn fn, void *arg)
{
	struct run r = { fn, arg, 0 };
	int rc = t->api.xTokenize(t->tok, &r, flags, text, len, on_token);
	if (r.stopped)
		return r.stopped;
	return rc == SQLITE_OK ? SDK_OK : SDK_EIO;
}
