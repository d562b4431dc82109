#include "sdk/curl_dl.h"

#include "sdk/dl_table.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

static const char *const curl_names[] = { "libcurl.so.4", "libcurl.so" };

static const sdk_dl_sym curl_syms[] = {
#define S(sym, member) SDK_DL_SYM(sdk_curl_dl, sym, member)
	S("curl_global_init", global_init),
	S("curl_global_cleanup", global_cleanup),
	S("curl_version", version),
	S("curl_multi_init", multi_init),
	S("curl_multi_cleanup", multi_cleanup),
	S("curl_multi_setopt", multi_setopt),
	S("curl_multi_add_handle", multi_add_handle),
	S("curl_multi_remove_handle", multi_remove_handle),
	S("curl_multi_socket_action", multi_socket_action),
	S("curl_multi_assign", multi_assign),
	S("curl_multi_info_read", multi_info_read),
	S("curl_multi_strerror", multi_strerror),
	S("curl_easy_init", easy_init),
	S("curl_easy_cleanup", easy_cleanup),
	S("curl_easy_setopt", easy_setopt),
	S("curl_easy_getinfo", easy_getinfo),
	S("curl_easy_strerror", easy_strerror),
	S("curl_slist_append", slist_append),
	S("curl_slist_free_all", slist_free_all),
#undef S
};

int sdk_curl_open(sdk_curl_dl *c, sdk_err *err)
{
	memset(c, 0, sizeof *c);
	if (sdk_dl_table_open(&c->lib, curl_names, sizeof curl_names / sizeof *curl_names,
			      curl_syms, sizeof curl_syms / sizeof *curl_syms, c, "libcurl", err) < 0) {
		memset(c, 0, sizeof *c);
		return SDK_EIO;
	}
	CURLcode rc = c->global_init(CURL_GLOBAL_DEFAULT);
	if (rc != CURLE_OK) {
		sdk_fail(err, SDK_EIO, "curl_global_init: %s", c->easy_strerror(rc));
		dlclose(c->lib);
		memset(c, 0, sizeof *c);
		return SDK_EIO;
	}
	return 0;
}

void sdk_curl_close(sdk_curl_dl *c)
{
	if (!c->lib)
		return;
	c->global_cleanup();
	dlclose(c->lib);
	memset(c, 0, sizeof *c);
}
