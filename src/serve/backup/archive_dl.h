/* libarchive, loaded at run time (sdk/dl_table.h says why): it brings
 * libxml2, ICU and six compressors that no kernel needs. */
#ifndef GRACE_BACKUP_ARCHIVE_DL_H
#define GRACE_BACKUP_ARCHIVE_DL_H

#include "serve/layer.h"

#include "sdk/err.h"

#include <archive.h>
#include <archive_entry.h>
#include <stddef.h>

typedef struct archive_dl {
	void *lib;
	struct archive *(*write_new)(void);
	int (*write_set_format_pax_restricted)(struct archive *a);
	int (*write_open_fd)(struct archive *a, int fd);
	int (*write_header)(struct archive *a, struct archive_entry *en);
	la_ssize_t (*write_data)(struct archive *a, const void *b, size_t n);
	int (*write_close)(struct archive *a);
	int (*write_free)(struct archive *a);
	struct archive *(*read_new)(void);
	int (*read_support_format_tar)(struct archive *a);
	int (*read_open_filename)(struct archive *a, const char *path, size_t block);
	int (*read_next_header)(struct archive *a, struct archive_entry **en);
	la_ssize_t (*read_data)(struct archive *a, void *b, size_t n);
	int (*read_free)(struct archive *a);
	const char *(*error_string)(struct archive *a);
	struct archive_entry *(*entry_new)(void);
	void (*entry_free)(struct archive_entry *en);
	void (*entry_set_pathname)(struct archive_entry *en, const char *p);
	void (*entry_set_size)(struct archive_entry *en, la_int64_t n);
	void (*entry_set_filetype)(struct archive_entry *en, unsigned int t);
	void (*entry_set_perm)(struct archive_entry *en, mode_t m);
	void (*entry_set_mtime)(struct archive_entry *en, time_t t, long ns);
	const char *(*entry_pathname)(struct archive_entry *en);
	la_int64_t (*entry_size)(struct archive_entry *en);
	int (*entry_size_is_set)(struct archive_entry *en);
	mode_t (*entry_filetype)(struct archive_entry *en);
} archive_dl;

/* Loads libarchive once per process, from any thread (the first backup
 * does it); NULL with why in err. Later calls return the table. */
const archive_dl *archive_dl_load(sdk_err *err);

#endif
