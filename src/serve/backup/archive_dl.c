#include "serve/backup/archive_dl.h"

#include "sdk/dl_table.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>

static const char *const names[] = { "libarchive.so.13", "libarchive.so" };

static const sdk_dl_sym syms[] = {
#define S(sym, member) SDK_DL_SYM(archive_dl, sym, member)
	S("archive_write_new", write_new),
	S("archive_write_set_format_pax_restricted", write_set_format_pax_restricted),
	S("archive_write_open_fd", write_open_fd),
	S("archive_write_header", write_header),
	S("archive_write_data", write_data),
	S("archive_write_close", write_close),
	S("archive_write_free", write_free),
	S("archive_read_new", read_new),
	S("archive_read_support_format_tar", read_support_format_tar),
	S("archive_read_open_filename", read_open_filename),
	S("archive_read_next_header", read_next_header),
	S("archive_read_data", read_data),
	S("archive_read_free", read_free),
	S("archive_error_string", error_string),
	S("archive_entry_new", entry_new),
	S("archive_entry_free", entry_free),
	S("archive_entry_set_pathname", entry_set_pathname),
	S("archive_entry_set_size", entry_set_size),
	S("archive_entry_set_filetype", entry_set_filetype),
	S("archive_entry_set_perm", entry_set_perm),
	S("archive_entry_set_mtime", entry_set_mtime),
	S("archive_entry_pathname", entry_pathname),
	S("archive_entry_size", entry_size),
	S("archive_entry_size_is_set", entry_size_is_set),
	S("archive_entry_filetype", entry_filetype),
#undef S
};

static archive_dl table; /* for the life of the process */
static bool loaded;
static sdk_err load_error;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void)
{
	loaded = sdk_dl_table_open(&table.lib, names, sizeof names / sizeof *names, syms,
				   sizeof syms / sizeof *syms, &table, "libarchive", &load_error) == 0;
}

/* Once per process, from whichever thread needs it first (the backup
 * workers): grace serve maps libarchive and what it brings only when a
 * backup is made. A failure stands until a restart (install libarchive). */
const archive_dl *archive_dl_load(sdk_err *err)
{
	pthread_once(&once, load);
	if (!loaded)
		sdk_fail(err, SDK_EIO, "%s", load_error.msg);
	return loaded ? &table : NULL;
}
